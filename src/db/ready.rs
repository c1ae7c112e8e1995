//! Readiness: whether this process can serve traffic. The database answers
//! a query within a short limit, accepts a write, and its migrations are
//! current.
//!
//! The probe has a connection of its own, outside the pool, opened on the
//! first probe and kept (reopened after any failure). A pool whose every
//! connection serves requests is a healthy instance under load: had the
//! probe waited for the pool, a load balancer would take that instance out
//! of service exactly when it is needed. One probe runs at a time, so a
//! database that hangs holds one thread, however often the probe is asked.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, ExpressionMethods, RunQueryDsl};
use diesel_migrations::MigrationHarness;

use super::failure::Unavailable;
use super::{Backend, DbConnection, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS, schema};

/// Why this process is not ready, in the words the probe answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("the database is not answering")]
    NotAnswering,
    /// The database answers but refuses the probe's write.
    #[error("the database does not accept writes: {0}")]
    NoWrites(&'static str),
    #[error("database migrations are not current")]
    MigrationsPending,
    #[error("cannot read the migration state")]
    MigrationState,
    #[error("the readiness check failed")]
    ProbeFailed,
}

pub struct Probe {
    backend: Backend,
    /// Every step of a probe (connecting, waiting for a lock, a statement)
    /// is bounded by this.
    limit: Duration,
    conn: Mutex<Option<DbConnection>>,
    turn: Arc<tokio::sync::Semaphore>,
}

impl Probe {
    pub fn new(backend: Backend, limit: Duration) -> Probe {
        let limit = limit.max(Duration::from_secs(1));
        Probe { backend, limit, conn: Mutex::new(None), turn: Arc::new(tokio::sync::Semaphore::new(1)) }
    }

    /// Runs one probe on a blocking thread. Whatever the database does, the
    /// answer comes within about the limit.
    pub async fn run(self: &Arc<Self>) -> Result<(), NotReady> {
        let started = Instant::now();
        // A little past the limit, so that a step that fails at the limit
        // (a lock wait, a statement timeout) reports its own reason.
        let deadline = self.limit + Duration::from_millis(500);
        let Ok(Ok(turn)) = tokio::time::timeout(deadline, self.turn.clone().acquire_owned()).await else {
            tracing::warn!("not ready: the previous readiness check is still waiting for the database");
            return Err(NotReady::NotAnswering);
        };
        let probe = self.clone();
        let work = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            probe.check()
        });
        match tokio::time::timeout(deadline.saturating_sub(started.elapsed()), work).await {
            Ok(Ok(verdict)) => verdict,
            Ok(Err(e)) => {
                tracing::error!("the readiness check failed: {e}");
                Err(NotReady::ProbeFailed)
            }
            Err(_) => {
                tracing::warn!("not ready: no answer from the database within {:?}", self.limit);
                Err(NotReady::NotAnswering)
            }
        }
    }

    fn check(&self) -> Result<(), NotReady> {
        let mut slot = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let (mut conn, kept) = match slot.take() {
            Some(conn) => (conn, true),
            None => (self.open()?, false),
        };
        let mut verdict = probe(&mut conn);
        if kept && verdict == Err(NotReady::NotAnswering) {
            // The kept connection may have died with a server that has
            // restarted since: a fresh one judges the database as it is now.
            // (A dead connection fails at once, so there is time for this.)
            conn = self.open()?;
            verdict = probe(&mut conn);
        }
        // A connection that failed may be broken; the next probe opens a
        // fresh one rather than finding out.
        if verdict.is_ok() {
            *slot = Some(conn);
        }
        verdict
    }

    /// A connection prepared so that no step can wait past the limit.
    fn open(&self) -> Result<DbConnection, NotReady> {
        let millis = self.limit.as_millis();
        let opened = match &self.backend {
            Backend::Sqlite { path } => SqliteConnection::establish(path).and_then(|mut c| {
                c.batch_execute(&format!("PRAGMA busy_timeout = {millis}; PRAGMA foreign_keys = ON;"))
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                Ok(DbConnection::Sqlite(c))
            }),
            Backend::Postgres { url } => {
                // libpq counts whole seconds, and at least 2.
                let secs = self.limit.as_secs().max(2);
                PgConnection::establish(&with_connect_timeout(url, secs)).and_then(|mut c| {
                    c.batch_execute(&format!(
                        "SET statement_timeout = {millis}; SET lock_timeout = {millis};"
                    ))
                    .map_err(|e| diesel::ConnectionError::BadConnection(e.to_string()))?;
                    Ok(DbConnection::Postgres(c))
                })
            }
        };
        opened.map_err(|e| {
            tracing::warn!(database = ?self.backend, "not ready: cannot connect: {}", super::scrub(&e.to_string(), &self.backend));
            NotReady::NotAnswering
        })
    }
}

fn probe(conn: &mut DbConnection) -> Result<(), NotReady> {
    if let Err(e) = diesel::sql_query("SELECT 1").execute(conn) {
        tracing::warn!("not ready: the database does not answer a query: {e}");
        return Err(NotReady::NotAnswering);
    }
    write(conn).map_err(|e| {
        tracing::warn!("not ready: the database refused the readiness write: {e}");
        match e {
            DieselError::DatabaseError(DatabaseErrorKind::ReadOnlyTransaction, _) => {
                NotReady::NoWrites("the database is read-only")
            }
            other => match Unavailable::of_query(&other) {
                Some(Unavailable::NotAnswering) => NotReady::NotAnswering,
                Some(Unavailable::DiskFull) => NotReady::NoWrites("disk full"),
                Some(Unavailable::Locked) => NotReady::NoWrites("locked by another program"),
                Some(Unavailable::Busy) | None => NotReady::NoWrites("the write failed (see the log)"),
            },
        }
    })?;
    let pending = match conn {
        DbConnection::Sqlite(c) => c.has_pending_migration(SQLITE_MIGRATIONS),
        DbConnection::Postgres(c) => c.has_pending_migration(POSTGRES_MIGRATIONS),
    };
    match pending {
        Ok(false) => Ok(()),
        Ok(true) => Err(NotReady::MigrationsPending),
        Err(e) => {
            tracing::warn!("not ready: cannot read the migration state: {e}");
            Err(NotReady::MigrationState)
        }
    }
}

/// A write that changes nothing anyone reads, committed, so that it needs
/// what every save needs: the write lock, and room on the disk for the
/// change (SQLite appends it to the -wal file, PostgreSQL to its WAL).
/// A write rolled back would prove less: SQLite keeps an uncommitted
/// change in memory, so a full disk would go unnoticed.
fn write(conn: &mut DbConnection) -> Result<(), DieselError> {
    use schema::readiness::dsl::{id, probed_at, probes, readiness};
    let now = chrono::Utc::now().naive_utc();
    let changed = diesel::update(readiness)
        .filter(id.eq(1))
        .set((probes.eq(probes + 1), probed_at.eq(Some(now))))
        .execute(conn)?;
    if changed == 0 {
        // The row is made by the migration; put it back if it was deleted.
        diesel::insert_into(readiness)
            .values((id.eq(1), probes.eq(1), probed_at.eq(Some(now))))
            .execute(conn)?;
    }
    Ok(())
}

/// The URL with libpq's `connect_timeout`, unless it sets one already.
fn with_connect_timeout(url: &str, secs: u64) -> String {
    if url.contains("connect_timeout=") {
        return url.to_owned();
    }
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}connect_timeout={secs}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connect_timeout_is_added_once() {
        assert_eq!(with_connect_timeout("postgres://u@h/db", 2), "postgres://u@h/db?connect_timeout=2");
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?sslmode=require", 3),
            "postgres://u@h/db?sslmode=require&connect_timeout=3"
        );
        assert_eq!(
            with_connect_timeout("postgres://u@h/db?connect_timeout=9", 2),
            "postgres://u@h/db?connect_timeout=9"
        );
    }
}
