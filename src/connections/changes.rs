//! An environment's list change number: database triggers move it in the
//! same transaction as every change to what the Connections page shows
//! (its rows, their tags and OAuth2 token state, the sidebar's counts;
//! migration `list_changes`). Two snapshots with the same number show the
//! same page, so a page may be kept and shown again for as long as the
//! number stays; every process sharing the database reads the same
//! committed number.

use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::list_changes;
use crate::environment::Environment;

/// The environment's number, 0 before its first change. Not `.first()`:
/// a bound LIMIT makes SQLite plan the statement again at every call.
pub fn of(conn: &mut DbConnection, environment: Environment) -> QueryResult<i64> {
    let found: Vec<i64> =
        list_changes::table.find(environment.as_str()).select(list_changes::change).load(conn)?;
    Ok(found.first().copied().unwrap_or(0))
}
