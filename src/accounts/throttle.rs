//! Slowing and then refusing repeated failed sign-ins, per account and per
//! address, so a password cannot be guessed by trying many.

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::sign_in_failures;

/// Failures after which each further attempt waits a little longer.
pub const SLOW_AFTER: i32 = 3;
/// Failures after which sign-in is refused until the window passes.
pub const REFUSE_AFTER: i32 = 10;
/// Failures older than this are forgotten.
pub const WINDOW_MINUTES: i64 = 15;

pub enum Verdict {
    Allow,
    /// Wait this long before checking the password.
    Slow(std::time::Duration),
    /// Refused until this time.
    Refuse(NaiveDateTime),
}

fn recent_failures(
    conn: &mut DbConnection,
    key: &str,
    now: NaiveDateTime,
) -> QueryResult<Option<(i32, NaiveDateTime)>> {
    let row: Option<(i32, NaiveDateTime)> = sign_in_failures::table
        .find(key)
        .select((sign_in_failures::failures, sign_in_failures::last_failure))
        .first(conn)
        .optional()?;
    Ok(row.filter(|(_, last)| *last + TimeDelta::minutes(WINDOW_MINUTES) > now))
}

/// What to do with a sign-in attempt for these keys ("account:..", "addr:..").
pub fn verdict(conn: &mut DbConnection, keys: &[String]) -> QueryResult<Verdict> {
    let now = Utc::now().naive_utc();
    let mut worst = 0;
    let mut last_seen = now;
    for key in keys {
        if let Some((failures, last)) = recent_failures(conn, key, now)? {
            if failures > worst {
                worst = failures;
                last_seen = last;
            }
        }
    }
    // `worst` includes the attempt being judged (see `record_failure`).
    Ok(if worst > REFUSE_AFTER {
        Verdict::Refuse(last_seen + TimeDelta::minutes(WINDOW_MINUTES))
    } else if worst > SLOW_AFTER {
        Verdict::Slow(std::time::Duration::from_millis(500 * (worst - SLOW_AFTER) as u64))
    } else {
        Verdict::Allow
    })
}

pub fn record_failure(conn: &mut DbConnection, keys: &[String]) -> QueryResult<()> {
    let now = Utc::now().naive_utc();
    let window_start = now - TimeDelta::minutes(WINDOW_MINUTES);
    for key in keys {
        // Forget failures older than the window, then count this one with
        // an increment in the database, so concurrent guesses are all counted.
        diesel::update(
            sign_in_failures::table.find(key).filter(sign_in_failures::last_failure.lt(window_start)),
        )
        .set(sign_in_failures::failures.eq(0))
        .execute(conn)?;
        let increment = |conn: &mut DbConnection| {
            diesel::update(sign_in_failures::table.find(key))
                .set((
                    sign_in_failures::failures.eq(sign_in_failures::failures + 1),
                    sign_in_failures::last_failure.eq(now),
                ))
                .execute(conn)
        };
        if increment(conn)? == 1 {
            continue;
        }
        let inserted = diesel::insert_into(sign_in_failures::table)
            .values((
                sign_in_failures::key.eq(key),
                sign_in_failures::failures.eq(1),
                sign_in_failures::last_failure.eq(now),
            ))
            .execute(conn);
        match inserted {
            Ok(_) => {}
            // Someone else's first failure got there first: count on top.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {
                increment(conn)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Takes back one counted attempt (a sign-in that succeeded from an address).
pub fn take_back(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    diesel::update(sign_in_failures::table.find(key).filter(sign_in_failures::failures.gt(0)))
        .set(sign_in_failures::failures.eq(sign_in_failures::failures - 1))
        .execute(conn)?;
    Ok(())
}

/// A successful sign-in clears the account's count (not the address's: one
/// right guess from an address trying many accounts should not reset it).
pub fn clear(conn: &mut DbConnection, key: &str) -> QueryResult<()> {
    diesel::delete(sign_in_failures::table.find(key)).execute(conn)?;
    Ok(())
}
