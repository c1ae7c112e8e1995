//! Short write work, committed in groups on SQLite.
//!
//! SQLite writes one transaction at a time. When each request wrote in its
//! own transaction, creating connections stopped at about 500 a second on
//! two cores: each commit wrote the pages it touched to the write-ahead log
//! again (the counters, the rightmost page of every index), and the write
//! turn went from thread to thread, a wake-up of the next writer each time.
//! Here one thread runs the write work of every request that is waiting,
//! one after another, in one transaction, each in a savepoint of its own,
//! and commits them together.
//!
//! - A piece of work that fails is rolled back to its savepoint alone and
//!   answered with its own error; the others are committed.
//! - Nobody is answered before the commit: what a caller is told was saved
//!   is saved.
//! - An outage met by any statement (disk full, I/O error), a failed commit
//!   or a panic fails the whole group, which is rolled back as one; each
//!   caller is told so, as if its own transaction had failed.
//!
//! Work given here must be database statements only, and short: no
//! password hashing and no request to another service, since every other
//! write of the process waits behind it. On PostgreSQL, whose writers do
//! not exclude each other, work runs as [`AppState::blocking`] work.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Weak};

use diesel::Connection;
use diesel::connection::TransactionManager;
use tokio::sync::{mpsc, oneshot};

use crate::db::{DbConnection, Unavailable, take_failed_rollback, take_outage};
use crate::state::{AppState, BlockingError};

/// The most pieces of work in one transaction: enough to take what arrives
/// during one commit under load, few enough that a group's transaction
/// stays short.
const MAX_GROUP: usize = 64;

/// Where write work is queued; held by the state.
pub struct Writes {
    queue: mpsc::Sender<Box<dyn Queued>>,
}

/// The other end of [`Writes`], until [`Writer::start`] runs it.
pub struct Writer {
    queue: mpsc::Receiver<Box<dyn Queued>>,
}

/// Why a whole group failed: each of its callers gets this.
#[derive(Debug, Clone)]
enum GroupFailure {
    Unavailable(Unavailable, String),
    Internal(String),
}

impl<E> From<GroupFailure> for BlockingError<E> {
    fn from(failure: GroupFailure) -> BlockingError<E> {
        match failure {
            GroupFailure::Unavailable(why, detail) => BlockingError::Unavailable(why, detail),
            GroupFailure::Internal(detail) => BlockingError::Join(detail),
        }
    }
}

/// Work waiting for its group.
trait Queued: Send {
    /// Runs the work in a savepoint; its answer waits for the commit.
    fn run(self: Box<Self>, conn: &mut DbConnection, state: &AppState) -> Box<dyn Ran>;
    /// The group failed before this work ran.
    fn fail(self: Box<Self>, failure: GroupFailure);
}

/// Work that ran, holding its answer until the group's end is known.
trait Ran: Send {
    fn answer(self: Box<Self>, failure: Option<GroupFailure>);
}

type Reply<T, E> = oneshot::Sender<Result<T, BlockingError<E>>>;

struct Job<F, T, E> {
    work: F,
    reply: Reply<T, E>,
}

struct Done<T, E> {
    result: Result<T, E>,
    reply: Reply<T, E>,
}

impl<F, T, E> Queued for Job<F, T, E>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: From<diesel::result::Error> + Send + 'static,
{
    fn run(self: Box<Self>, conn: &mut DbConnection, state: &AppState) -> Box<dyn Ran> {
        let Job { work, reply } = *self;
        // A savepoint of the group's transaction: an error undoes this
        // work's statements only. Should a rollback fail, the error kept is
        // the work's own, and the writer, which sees the failed statement,
        // fails the whole group.
        type Manager = <DbConnection as Connection>::TransactionManager;
        let result = match Manager::begin_transaction(conn) {
            Ok(()) => match work(conn, state) {
                Ok(value) => Manager::commit_transaction(conn).map(|()| value).map_err(E::from),
                Err(e) => {
                    let _ = Manager::rollback_transaction(conn);
                    Err(e)
                }
            },
            Err(e) => Err(E::from(e)),
        };
        Box::new(Done { result, reply })
    }

    fn fail(self: Box<Self>, failure: GroupFailure) {
        // A caller that went away no longer needs the answer.
        let _ = self.reply.send(Err(failure.into()));
    }
}

impl<T: Send, E: Send> Ran for Done<T, E> {
    fn answer(self: Box<Self>, failure: Option<GroupFailure>) {
        let answer = match failure {
            None => self.result.map_err(BlockingError::Work),
            Some(failure) => Err(failure.into()),
        };
        let _ = self.reply.send(answer);
    }
}

impl Writes {
    pub fn new() -> (Writes, Writer) {
        // Bounded: under a flood callers wait their turn here, in line.
        let (queue, receiver) = mpsc::channel(4 * MAX_GROUP);
        (Writes { queue }, Writer { queue: receiver })
    }

    /// Queues `work` for the writer and waits until its group has ended.
    /// A full queue is waited on for at most `wait`, then refused as busy.
    pub(crate) async fn run<T, E, F>(&self, wait: std::time::Duration, work: F) -> Result<T, BlockingError<E>>
    where
        F: FnOnce(&mut DbConnection, &AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn Queued> = Box::new(Job { work, reply });
        let stopped = || {
            BlockingError::Join(
                "the database writer did not answer (the work panicked, or it stopped)".to_owned(),
            )
        };
        match tokio::time::timeout(wait, self.queue.send(job)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(stopped()),
            Err(_) => {
                crate::metrics::db_timeout();
                return Err(BlockingError::Unavailable(
                    Unavailable::Busy,
                    format!("the write queue stayed full for {} ms", wait.as_millis()),
                ));
            }
        }
        answer.await.map_err(|_| stopped())?
    }
}

impl Writer {
    /// Runs the queued work on a thread of its own until every [`Writes`]
    /// is gone (the state holding it is dropped). It holds the state only
    /// while it writes a group, so it keeps nothing alive.
    pub fn start(self, state: Weak<AppState>) -> std::io::Result<()> {
        let mut queue = self.queue;
        crate::state::spawn_own_thread("plugboard-writer", "the database writer", move || async move {
            let mut group = Vec::with_capacity(MAX_GROUP);
            while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
                let Some(state) = state.upgrade() else { break };
                write_group(&state, std::mem::take(&mut group)).await;
            }
        })
    }
}

/// Runs a group in one transaction and answers each of its callers.
async fn write_group(state: &Arc<AppState>, group: Vec<Box<dyn Queued>>) {
    let (permit, mut conn) = match state.checkout::<std::convert::Infallible>().await {
        Ok(held) => held,
        Err(BlockingError::Unavailable(why, detail)) => {
            return fail_all(group, &GroupFailure::Unavailable(why, detail));
        }
        Err(other) => return fail_all(group, &GroupFailure::Internal(other.to_string())),
    };
    take_outage(&mut conn);
    take_failed_rollback(&mut conn);
    let mut pending = group.into_iter();
    let mut ran: Vec<Box<dyn Ran>> = Vec::new();
    let mut outage = None;
    let written = std::panic::catch_unwind(AssertUnwindSafe(|| {
        crate::db::write(&mut conn, |conn| {
            for job in pending.by_ref() {
                ran.push(job.run(conn, state));
                // SQLite ends the whole transaction by itself on some
                // errors (SQLITE_FULL, I/O errors): nothing of the group is
                // left to commit, whatever the piece made of its error. And
                // a piece whose rollback failed may have left changes its
                // caller is told were undone.
                outage = take_outage(conn);
                let rollback_failed = take_failed_rollback(conn);
                if outage.is_some() || rollback_failed || !in_group_transaction(conn) {
                    return Err(Stop::Aborted);
                }
            }
            Ok(())
        })
    }));
    let failure = match written {
        Ok(Ok(())) => None,
        Ok(Err(stop)) => Some(match outage.or_else(|| take_outage(&mut conn)) {
            Some((why, detail)) => GroupFailure::Unavailable(why, detail),
            None => match stop {
                Stop::Database(e) => match Unavailable::of_query(&e) {
                    Some(why) => GroupFailure::Unavailable(why, e.to_string()),
                    None => GroupFailure::Internal(format!("a group of writes failed: {e}")),
                },
                Stop::Aborted => GroupFailure::Internal("a group of writes lost its transaction".to_owned()),
            },
        }),
        // The connection is left inside its transaction: the pool drops it
        // rather than take it back, and SQLite rolls the group back.
        Err(_) => {
            tracing::error!(
                writes = ran.len() + 1,
                "a piece of write work panicked; its group is rolled back"
            );
            Some(GroupFailure::Internal("a piece of write work in the same group panicked".to_owned()))
        }
    };
    drop(conn);
    drop(permit);
    crate::metrics::write_group(ran.len(), failure.is_none());
    for done in ran {
        done.answer(failure.clone());
    }
    if let Some(failure) = failure {
        fail_all(pending.collect(), &failure);
    }
}

fn fail_all(group: Vec<Box<dyn Queued>>, failure: &GroupFailure) {
    for job in group {
        job.fail(failure.clone());
    }
}

/// Whether `conn` is still inside the group's transaction, and only that:
/// each piece's savepoint is closed after it.
fn in_group_transaction(conn: &mut DbConnection) -> bool {
    type Manager = <DbConnection as Connection>::TransactionManager;
    matches!(
        Manager::transaction_manager_status_mut(conn).transaction_depth(),
        Ok(Some(depth)) if depth.get() == 1
    )
}

/// Why a group's transaction stopped before its commit.
enum Stop {
    /// A piece met an outage, or the transaction is gone.
    Aborted,
    /// The commit (or the begin) failed.
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for Stop {
    fn from(e: diesel::result::Error) -> Stop {
        Stop::Database(e)
    }
}
