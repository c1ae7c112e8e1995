//! Who reads which connection's credentials. Every read is an audit row
//! and updates the connection's usage summary (one row per consumer), in
//! the same transaction: the edit view lists the consumers, the Delete
//! confirmation names those of the last 30 days, and the list can show
//! the connections nobody read lately.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::Connection as _;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};
use futures_util::FutureExt as _;
use tokio::sync::{mpsc, oneshot};

use super::{ApiToken, ApiTokenId};
use crate::audit::{self, Action, Actor, Event};
use crate::connections::{Connection, ConnectionId};
use crate::db::schema::connection_usage;
use crate::db::{DbConnection, Unavailable};
use crate::environment::Environment;
use crate::state::{AppState, BlockingError};

/// "Lately", for the Delete confirmation and the list's unused filter.
pub const RECENT_DAYS: i64 = 30;

/// The start of the recent window.
pub fn recent_since(now: NaiveDateTime) -> NaiveDateTime {
    now - TimeDelta::days(RECENT_DAYS)
}

/// One consumer of a connection, as the edit view lists it.
#[derive(Debug, Clone, Queryable)]
pub struct Consumer {
    pub consumer: String,
    pub token_name: String,
    pub first_used_at: NaiveDateTime,
    pub last_used_at: NaiveDateTime,
    pub reads: i64,
}

/// One credentials read to record.
#[derive(Debug, Clone)]
pub struct Read {
    pub token: ApiTokenId,
    pub token_name: String,
    pub consumer: String,
    pub environment: Environment,
    pub connection: ConnectionId,
    /// The connection's name, for the audit trail.
    pub subject: String,
}

impl Read {
    pub fn new(token: &ApiToken, consumer: &str, connection: &Connection) -> Read {
        Read {
            token: token.id,
            token_name: token.name.clone(),
            consumer: consumer.to_owned(),
            environment: connection.environment,
            connection: connection.id,
            subject: connection.name.clone(),
        }
    }
}

/// Why a read could not be recorded (and so its credentials are not
/// answered: a read that leaves no trace is not served).
#[derive(Debug, Clone)]
pub enum Unrecorded {
    /// The database is busy or out of reach.
    Unavailable(Unavailable, String),
    /// Anything else; the detail is for the log.
    Failed(String),
}

type Reply = oneshot::Sender<Result<(), Unrecorded>>;

/// Records credentials reads in groups: each read waits until its own audit
/// row is committed, but the reads that arrive while one group is being
/// written are written together, in one transaction. On SQLite every write
/// transaction waits for the one before it, so one per read capped the API
/// at the database's commit rate; a group costs about what one read did.
/// Nothing is answered before it is recorded, so a crash loses no read that
/// was served.
#[derive(Debug, Clone)]
pub struct Recorder {
    queue: mpsc::Sender<(Read, Reply)>,
}

/// The other end of a [`Recorder`], until [`Writer::start`] runs it.
pub struct Writer {
    queue: mpsc::Receiver<(Read, Reply)>,
}

/// The most reads written in one transaction.
const MAX_GROUP: usize = 256;

impl Recorder {
    pub fn new() -> (Recorder, Writer) {
        // Bounded: under a flood the callers wait their turn here, in line,
        // rather than growing a queue without end.
        let (queue, receiver) = mpsc::channel(4 * MAX_GROUP);
        (Recorder { queue }, Writer { queue: receiver })
    }

    /// Records `read`; returns once it is committed.
    pub async fn record(&self, read: Read) -> Result<(), Unrecorded> {
        let (reply, written) = oneshot::channel();
        let stopped = || Unrecorded::Failed("the usage writer has stopped".to_owned());
        self.queue.send((read, reply)).await.map_err(|_| stopped())?;
        written.await.map_err(|_| stopped())?
    }
}

impl Writer {
    /// Writes what the recorder queues, on a thread of its own, until every
    /// [`Recorder`] is gone (the state holding it is dropped). It holds the
    /// state only while it writes a group, so it keeps nothing alive.
    pub fn start(self, state: Weak<AppState>) -> std::io::Result<()> {
        let mut queue = self.queue;
        crate::state::spawn_own_thread("plugboard-usage", "the usage writer", move || async move {
            let mut group = Vec::with_capacity(MAX_GROUP);
            while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
                let Some(state) = state.upgrade() else { break };
                // A panic fails its group's calls (their replies are
                // dropped), not every call after it.
                let written = write_group(&state, std::mem::take(&mut group));
                if AssertUnwindSafe(written).catch_unwind().await.is_err() {
                    tracing::error!("recording a group of credentials reads panicked");
                }
            }
        })
    }
}

/// Writes a group in one transaction. If that fails for anything but an
/// outage (a connection deleted since it was read, say), each read is
/// written on its own, so that one cannot fail the others.
async fn write_group(state: &Arc<AppState>, group: Vec<(Read, Reply)>) {
    let (reads, replies): (Vec<Read>, Vec<Reply>) = group.into_iter().unzip();
    let reads = Arc::new(reads);
    let all = reads.clone();
    let outcome = state.blocking(move |conn, _| write(conn, &all)).await;
    let outcome = match outcome {
        Ok(()) => Ok(()),
        Err(BlockingError::Unavailable(why, detail)) => Err(Unrecorded::Unavailable(why, detail)),
        Err(e) if replies.len() > 1 => {
            tracing::warn!(
                reads = replies.len(),
                "a group of credentials reads failed together ({e}); writing them one by one"
            );
            for (i, reply) in replies.into_iter().enumerate() {
                let reads = reads.clone();
                let one = state.blocking(move |conn, _| write(conn, &reads[i..=i])).await;
                let _ = reply.send(one.map_err(unrecorded));
            }
            return;
        }
        Err(e) => Err(unrecorded(e)),
    };
    for reply in replies {
        // A caller that went away no longer needs the answer.
        let _ = reply.send(outcome.clone());
    }
}

fn unrecorded(e: BlockingError<Error>) -> Unrecorded {
    match e {
        BlockingError::Unavailable(why, detail) => Unrecorded::Unavailable(why, detail),
        other => Unrecorded::Failed(other.to_string()),
    }
}

/// An audit row per read, and each consumer's summary row updated once.
fn write(conn: &mut DbConnection, reads: &[Read]) -> QueryResult<()> {
    crate::db::write(conn, |conn| {
        let now = Utc::now().naive_utc();
        // In key order, so that two processes writing groups lock the
        // summary rows in the same order.
        let mut summaries: BTreeMap<(ConnectionId, &str), (&Read, i64)> = BTreeMap::new();
        for read in reads {
            audit::record(
                conn,
                Event {
                    actor: Actor::ApiToken(&read.token_name),
                    action: Action::ApiCredentialsRead,
                    environment: Some(read.environment),
                    connection: Some(read.connection),
                    subject: &read.subject,
                    details: serde_json::json!({ "consumer": read.consumer, "token_id": read.token.0 }),
                },
            )?;
            let summary = summaries.entry((read.connection, &read.consumer)).or_insert((read, 0));
            // The latest read's token names the consumer's row.
            *summary = (read, summary.1 + 1);
        }
        for (read, count) in summaries.into_values() {
            summarise(conn, read, count, now)?;
        }
        Ok(())
    })
}

/// An update of the consumer's row, or its insert the first time; an
/// insert that loses to a concurrent one updates instead. Portable across
/// both backends (no upsert syntax), like `leases::try_acquire`. The
/// insert is a savepoint of its own: on PostgreSQL a refused statement
/// would otherwise abort the whole transaction, the update after it too.
fn summarise(conn: &mut DbConnection, read: &Read, count: i64, now: NaiveDateTime) -> QueryResult<()> {
    let update = |conn: &mut DbConnection| {
        diesel::update(
            connection_usage::table
                .filter(connection_usage::connection_id.eq(read.connection.0))
                .filter(connection_usage::consumer.eq(&read.consumer)),
        )
        .set((
            connection_usage::last_used_at.eq(now),
            connection_usage::reads.eq(connection_usage::reads + count),
            connection_usage::token_id.eq(read.token.0),
            connection_usage::token_name.eq(&read.token_name),
        ))
        .execute(conn)
    };
    if update(conn)? == 1 {
        return Ok(());
    }
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(connection_usage::table)
            .values((
                connection_usage::connection_id.eq(read.connection.0),
                connection_usage::consumer.eq(&read.consumer),
                connection_usage::environment.eq(read.environment.as_str()),
                connection_usage::token_id.eq(read.token.0),
                connection_usage::token_name.eq(&read.token_name),
                connection_usage::first_used_at.eq(now),
                connection_usage::last_used_at.eq(now),
                connection_usage::reads.eq(count),
            ))
            .execute(conn)
    });
    match inserted {
        Ok(_) => Ok(()),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => update(conn).map(|_| ()),
        Err(e) => Err(e),
    }
}

/// The consumers of a connection, most recently used first.
pub fn consumers(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
) -> QueryResult<Vec<Consumer>> {
    consumers_since(conn, environment, id, None)
}

/// The consumers that read the connection since `since`.
pub fn consumers_since(
    conn: &mut DbConnection,
    environment: Environment,
    id: ConnectionId,
    since: Option<NaiveDateTime>,
) -> QueryResult<Vec<Consumer>> {
    let mut q = connection_usage::table
        .filter(connection_usage::connection_id.eq(id.0))
        .filter(connection_usage::environment.eq(environment.as_str()))
        .into_boxed::<crate::db::MultiBackend>();
    if let Some(since) = since {
        q = q.filter(connection_usage::last_used_at.ge(since));
    }
    q.order((connection_usage::last_used_at.desc(), connection_usage::consumer.asc()))
        .select((
            connection_usage::consumer,
            connection_usage::token_name,
            connection_usage::first_used_at,
            connection_usage::last_used_at,
            connection_usage::reads,
        ))
        .load(conn)
}
