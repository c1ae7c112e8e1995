//! Write transactions. On SQLite a plain `BEGIN` reads under a snapshot
//! and asks for the write lock only at its first write; when another
//! writer committed in between, SQLite refuses the upgrade at once with
//! "database is locked", without waiting out the busy timeout (it cannot
//! let the transaction write from a stale snapshot). Taking the lock at
//! `BEGIN IMMEDIATE` makes concurrent writers queue behind the busy timeout
//! instead. PostgreSQL's row locks need none of this.
//!
//! SQLite's busy timeout is a poll: a writer that finds the lock taken
//! sleeps 1, 2, 5, 10 ms and more before it asks again, however soon the
//! lock is free. Under load, writers of one process then spend most of
//! their time asleep behind commits of a tenth of a millisecond (the API's
//! credentials reads, which each write a row, went no faster than about
//! 3,500/s, p99 67 ms). So the writers of one process first queue on a
//! lock of their own, which wakes the next one the moment it is released;
//! SQLite's timeout is then left to arbitrate between processes.

use std::time::Duration;

use diesel::Connection;
use diesel::connection::{AnsiTransactionManager, TransactionManager};
use diesel::result::Error;

use super::DbConnection;

/// Runs `f` in a transaction that holds the write lock from its start (on
/// SQLite; an ordinary transaction on PostgreSQL). Inside another
/// transaction it is a savepoint of that one, which holds the lock already.
pub fn write<T, E>(conn: &mut DbConnection, f: impl FnOnce(&mut DbConnection) -> Result<T, E>) -> Result<T, E>
where
    E: From<Error>,
{
    let DbConnection::Sqlite(sqlite) = conn else {
        return conn.transaction(f);
    };
    if AnsiTransactionManager::transaction_manager_status_mut(sqlite).transaction_depth()?.is_some() {
        return conn.transaction(f);
    }
    // One database per process in production, so one lock; a process's
    // tests may open several, which then share it (their writes are short).
    // A writer that waits longer than SQLite's own timeout (a transaction
    // gone slow) goes on without it, to wait on SQLite as before rather
    // than hang.
    static WRITERS: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _turn = WRITERS.try_lock_for(Duration::from_millis(super::SQLITE_BUSY_TIMEOUT_MS));
    AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE")?;
    type Manager = <DbConnection as Connection>::TransactionManager;
    match f(conn) {
        Ok(value) => {
            Manager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(error) => match Manager::rollback_transaction(conn) {
            Ok(()) | Err(Error::BrokenTransactionManager) => Err(error),
            Err(rollback) => Err(rollback.into()),
        },
    }
}
