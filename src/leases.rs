//! Named, expiring claims on background work. Several Plugboard processes
//! may share one database; before doing a job, each takes its lease, and
//! only the one that gets it does the work. A crashed holder's lease simply
//! expires.

use chrono::{NaiveDateTime, Utc};
use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error};

use crate::db::DbConnection;
use crate::db::schema::leases;

/// Takes the lease `name` for `owner` until `until`, if it is free, expired
/// or already `owner`'s. Portable across both backends: a conditional
/// update, or an insert that loses cleanly to a concurrent one.
pub fn try_acquire(
    conn: &mut DbConnection,
    name: &str,
    owner: &str,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let now = Utc::now().naive_utc();
    let taken = diesel::update(
        leases::table
            .filter(leases::name.eq(name))
            .filter(leases::expires_at.lt(now).or(leases::owner.eq(owner))),
    )
    .set((leases::owner.eq(owner), leases::expires_at.eq(until)))
    .execute(conn)?;
    if taken == 1 {
        return Ok(true);
    }
    let inserted = diesel::insert_into(leases::table)
        .values((leases::name.eq(name), leases::owner.eq(owner), leases::expires_at.eq(until)))
        .execute(conn);
    match inserted {
        Ok(_) => Ok(true),
        Err(Error::DatabaseError(DatabaseErrorKind::UniqueViolation, _)) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn release(conn: &mut DbConnection, name: &str, owner: &str) -> QueryResult<()> {
    diesel::delete(leases::table.filter(leases::name.eq(name)).filter(leases::owner.eq(owner)))
        .execute(conn)?;
    Ok(())
}

/// Whether someone holds the lease `name` now.
pub fn is_held(conn: &mut DbConnection, name: &str, now: NaiveDateTime) -> QueryResult<bool> {
    let held: i64 = leases::table
        .filter(leases::name.eq(name))
        .filter(leases::expires_at.ge(now))
        .count()
        .get_result(conn)?;
    Ok(held > 0)
}
