//! The database failures that are not bugs: overload and outages. They are
//! told apart here, by type wherever the type exists, so that the web layer
//! can say what is wrong and the readiness probe can name it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use diesel::Connection;
use diesel::connection::{Instrumentation, InstrumentationEvent};
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use super::DbConnection;

/// Why the database could not do what was asked, in terms someone can act
/// on. Anything else a database call fails with is a bug, or a rule the
/// domain reports itself (a unique name taken, a version conflict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unavailable {
    /// Every connection of the pool is in use, for longer than a request
    /// waits.
    #[error("every database connection is in use")]
    Busy,
    /// The server refuses connections, or dropped the one in use.
    #[error("the database is not answering")]
    NotAnswering,
    /// SQLITE_FULL: the disk (or a size limit of the database) is full.
    #[error("disk full")]
    DiskFull,
    /// SQLITE_BUSY after the busy timeout: another connection, usually
    /// another program, holds the write lock.
    #[error("locked by another program")]
    Locked,
}

impl Unavailable {
    /// The outage a query's error shows, or `None` when it shows none.
    pub fn of_query(error: &DieselError) -> Option<Unavailable> {
        match error {
            // diesel reports a lost PostgreSQL connection as ClosedConnection
            // (SQLSTATE class 08, or libpq's CONNECTION_BAD), and a query
            // libpq could not send as UnableToSendCommand. The other cause of
            // the latter, more than 65,535 bind parameters, cannot happen:
            // every list Plugboard queries with is bounded.
            DieselError::DatabaseError(
                DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::UnableToSendCommand,
                _,
            ) => Some(Unavailable::NotAnswering),
            DieselError::DatabaseError(_, info) => sqlite_outage(info.message()),
            // A COMMIT that failed and whose ROLLBACK failed too: the commit's
            // error is the one that says what happened.
            DieselError::RollbackErrorOnCommit { commit_error, .. } => Unavailable::of_query(commit_error),
            _ => None,
        }
    }

    /// What a person is told to expect: seconds until trying again is worth it.
    pub fn retry_after_secs(self) -> u32 {
        match self {
            Unavailable::Busy => 5,
            Unavailable::Locked => 10,
            Unavailable::NotAnswering => 60,
            Unavailable::DiskFull => 300,
        }
    }
}

/// diesel keeps SQLite's result code only for constraint violations; every
/// other SQLite error becomes `DatabaseErrorKind::Unknown` carrying
/// `sqlite3_errmsg()`. For the two codes that mean an outage, that text is
/// SQLite's fixed description of the code (`sqlite3ErrStr`, listed at
/// <https://www.sqlite.org/rescode.html>), so the message is matched, whole,
/// here and nowhere else. PostgreSQL never words an error this way.
///
/// SQLITE_LOCKED ("database table is locked") is left out on purpose: it
/// comes from a conflict inside one connection or a shared cache, which
/// Plugboard does not use, so it would be our bug, not another program.
fn sqlite_outage(message: &str) -> Option<Unavailable> {
    match message {
        "database or disk is full" => Some(Unavailable::DiskFull),
        "database is locked" => Some(Unavailable::Locked),
        _ => None,
    }
}

/// Remembers the last outage a statement on its connection met. The error
/// a piece of work returns may no longer say: when SQLite ends a
/// transaction by itself (it does on SQLITE_FULL), diesel's `transaction`
/// returns the error of its own ROLLBACK ("cannot rollback - no transaction
/// is active") instead of the statement's.
///
/// It also notes a ROLLBACK that failed: diesel then counts the savepoint
/// as closed anyway (and an outer rollback that fails after an inner one
/// failed as done), so only the statement itself can tell that changes the
/// work meant to undo may still be in the transaction.
#[derive(Debug, Default)]
pub(crate) struct OutageRecorder {
    last: Option<(Unavailable, String)>,
    rollback_failed: bool,
}

impl Instrumentation for OutageRecorder {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        if let InstrumentationEvent::FinishQuery { query, error: Some(error), .. } = event {
            if let Some(why) = Unavailable::of_query(error) {
                self.last = Some((why, error.to_string()));
            }
            if query.to_string().trim_start().starts_with("ROLLBACK") {
                self.rollback_failed = true;
            }
        }
    }
}

/// Whether a ROLLBACK on `conn` failed since the last call.
pub fn take_failed_rollback(conn: &mut DbConnection) -> bool {
    conn.instrumentation()
        .downcast_mut::<OutageRecorder>()
        .is_some_and(|recorder| std::mem::take(&mut recorder.rollback_failed))
}

/// The outage met by a statement on `conn` since the last call, with the
/// statement's error for the log.
pub fn take_outage(conn: &mut DbConnection) -> Option<(Unavailable, String)> {
    conn.instrumentation().downcast_mut::<OutageRecorder>()?.last.take()
}

/// Whether the last attempt to open a database connection failed. r2d2
/// opens connections on its own threads and a timed-out `get` says only
/// that it timed out; this is how a timeout is told apart: a pool that
/// cannot connect is an outage, a pool whose connections are all in use is
/// merely busy.
#[derive(Debug, Clone, Default)]
pub struct ConnectHealth(Arc<AtomicBool>);

impl ConnectHealth {
    pub(crate) fn record(&self, connected: bool) {
        self.0.store(!connected, Ordering::Relaxed);
    }

    pub fn failing(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// What a pool timeout means now.
    pub fn timeout_means(&self) -> Unavailable {
        if self.failing() { Unavailable::NotAnswering } else { Unavailable::Busy }
    }
}

#[cfg(test)]
mod tests {
    use diesel::connection::SimpleConnection;
    use diesel::{RunQueryDsl, SqliteConnection};

    use super::*;

    fn sqlite(path: &std::path::Path) -> SqliteConnection {
        SqliteConnection::establish(&path.display().to_string()).expect("open")
    }

    /// The messages matched are the ones this SQLite really produces.
    #[test]
    fn sqlite_full_and_busy_are_recognised_from_real_errors() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("t.sqlite3");
        let mut a = sqlite(&path);
        a.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB);").expect("set up");

        let pages: Vec<Count> =
            diesel::sql_query("SELECT page_count AS n FROM pragma_page_count()").load(&mut a).expect("count");
        a.batch_execute(&format!("PRAGMA max_page_count = {}", pages[0].n)).expect("limit");
        let full =
            diesel::sql_query("INSERT INTO t VALUES (randomblob(100000))").execute(&mut a).unwrap_err();
        assert_eq!(Unavailable::of_query(&full), Some(Unavailable::DiskFull), "{full}");

        let mut b = sqlite(&path);
        b.batch_execute("PRAGMA busy_timeout = 0; BEGIN EXCLUSIVE;").expect("lock");
        let mut c = sqlite(&path);
        c.batch_execute("PRAGMA busy_timeout = 0").expect("no wait");
        let locked = diesel::sql_query("INSERT INTO t VALUES (1)").execute(&mut c).unwrap_err();
        assert_eq!(Unavailable::of_query(&locked), Some(Unavailable::Locked), "{locked}");

        let bug = diesel::sql_query("SELECT * FROM no_such_table").execute(&mut c).unwrap_err();
        assert_eq!(Unavailable::of_query(&bug), None, "{bug}");
    }

    /// SQLite ends the transaction on SQLITE_FULL, and diesel then returns
    /// the failed ROLLBACK's error; the recorder still knows why.
    #[test]
    fn an_outage_inside_a_transaction_is_remembered() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = dir.path().join("t.sqlite3");
        let mut conn = DbConnection::Sqlite(sqlite(&path));
        conn.set_instrumentation(OutageRecorder::default());
        conn.batch_execute("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB); PRAGMA max_page_count = 2;")
            .expect("set up");
        let result: Result<usize, DieselError> =
            conn.transaction(|c| diesel::sql_query("INSERT INTO t VALUES (randomblob(100000))").execute(c));
        let error = result.expect_err("no room");
        assert_eq!(Unavailable::of_query(&error), None, "diesel's error no longer says why: {error}");
        assert_eq!(take_outage(&mut conn).map(|(why, _)| why), Some(Unavailable::DiskFull));
        assert_eq!(take_outage(&mut conn), None, "taken once");
        assert!(take_failed_rollback(&mut conn), "the ROLLBACK after it failed, and that is noted");
        assert!(!take_failed_rollback(&mut conn), "taken once");
    }

    #[test]
    fn only_a_failed_rollback_is_noted_as_one() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut conn = DbConnection::Sqlite(sqlite(&dir.path().join("t.sqlite3")));
        conn.set_instrumentation(OutageRecorder::default());
        let _ = conn.batch_execute("SELECT * FROM no_such_table");
        assert!(!take_failed_rollback(&mut conn), "another statement's failure");
        conn.batch_execute("BEGIN; SAVEPOINT s; ROLLBACK TO SAVEPOINT s; ROLLBACK;").expect("rollbacks");
        assert!(!take_failed_rollback(&mut conn), "rollbacks that worked");
        let _ = conn.batch_execute("ROLLBACK TO SAVEPOINT never_made");
        assert!(take_failed_rollback(&mut conn));
    }

    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
}
