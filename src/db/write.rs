//! Write transactions. On SQLite a plain `BEGIN` reads under a snapshot
//! and asks for the write lock only at its first write; when another
//! writer committed in between, SQLite refuses the upgrade at once with
//! "database is locked", without waiting out the busy timeout (it cannot
//! let the transaction write from a stale snapshot). Taking the lock at
//! `BEGIN IMMEDIATE` makes concurrent writers queue behind the busy timeout
//! instead. PostgreSQL's row locks need none of this.

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
