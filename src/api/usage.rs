//! Who reads which connection's credentials. Every read is an audit row
//! and updates the connection's usage summary (one row per consumer), in
//! one transaction: the edit view lists the consumers, the Delete
//! confirmation names those of the last 30 days, and the list can show
//! the connections nobody read lately.

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::Connection as _;
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use super::ApiToken;
use crate::audit::{self, Action, Actor, Event};
use crate::connections::{Connection, ConnectionId};
use crate::db::DbConnection;
use crate::db::schema::connection_usage;
use crate::environment::Environment;

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

/// Records one credentials read by `consumer` with `token`.
pub fn record_read(
    conn: &mut DbConnection,
    token: &ApiToken,
    consumer: &str,
    connection: &Connection,
) -> QueryResult<()> {
    crate::db::write(conn, |conn| {
        let now = Utc::now().naive_utc();
        audit::record(
            conn,
            Event {
                actor: Actor::ApiToken(&token.name),
                action: Action::ApiCredentialsRead,
                environment: Some(connection.environment),
                connection: Some(connection.id),
                subject: &connection.name,
                details: serde_json::json!({ "consumer": consumer, "token_id": token.id.0 }),
            },
        )?;
        summarise(conn, token, consumer, connection, now)
    })
}

/// An update of the consumer's row, or its insert the first time; an
/// insert that loses to a concurrent one updates instead. Portable across
/// both backends (no upsert syntax), like `leases::try_acquire`. The
/// insert is a savepoint of its own: on PostgreSQL a refused statement
/// would otherwise abort the whole transaction, the update after it too.
fn summarise(
    conn: &mut DbConnection,
    token: &ApiToken,
    consumer: &str,
    connection: &Connection,
    now: NaiveDateTime,
) -> QueryResult<()> {
    let update = |conn: &mut DbConnection| {
        diesel::update(
            connection_usage::table
                .filter(connection_usage::connection_id.eq(connection.id.0))
                .filter(connection_usage::consumer.eq(consumer)),
        )
        .set((
            connection_usage::last_used_at.eq(now),
            connection_usage::reads.eq(connection_usage::reads + 1),
            connection_usage::token_id.eq(token.id.0),
            connection_usage::token_name.eq(&token.name),
        ))
        .execute(conn)
    };
    if update(conn)? == 1 {
        return Ok(());
    }
    let inserted = conn.transaction(|conn| {
        diesel::insert_into(connection_usage::table)
            .values((
                connection_usage::connection_id.eq(connection.id.0),
                connection_usage::consumer.eq(consumer),
                connection_usage::environment.eq(connection.environment.as_str()),
                connection_usage::token_id.eq(token.id.0),
                connection_usage::token_name.eq(&token.name),
                connection_usage::first_used_at.eq(now),
                connection_usage::last_used_at.eq(now),
                connection_usage::reads.eq(1i64),
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
