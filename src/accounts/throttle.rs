//! Slowing and then refusing repeated failed password checks (sign-in,
//! and the current password on the password page), per account and per
//! client address, so a password cannot be guessed by trying many.
//!
//! Every attempt is counted *before* its password is checked, so that
//! many guesses sent at once cannot all slip under the limit; one that
//! turns out right is taken back ([`succeeded`]). The attempt that reaches
//! [`REFUSE_AFTER`] starts a lock of [`WINDOW_MINUTES`]. A refused attempt
//! writes nothing at all: it is not counted and does not move the lock's
//! end, so nobody can keep an account locked by sending more, and a flood
//! of refused attempts costs the database no writes and no rows.
//!
//! Rows stay bounded: one per account that exists, one per client address
//! (an IPv6 client by its /64, which one subscriber usually holds whole),
//! and at most [`UNKNOWN_BUCKETS`] shared by every address typed that has
//! no account.

use std::net::IpAddr;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::sign_in_failures;

/// Failures after which each further attempt waits a little longer.
pub const SLOW_AFTER: i32 = 3;
/// Failures after which attempts are refused until the lock ends.
pub const REFUSE_AFTER: i32 = 10;
/// Failures older than this are forgotten; a lock lasts this long.
pub const WINDOW_MINUTES: i64 = 15;
/// How many shared counters the addresses without an account are spread
/// over. Counting them one row each would let anyone grow the table
/// without end; one counter per client address would lock an unknown
/// address only through that client, so a guesser spread over many
/// addresses could tell which addresses have an account (those lock).
/// Hashed into a fixed set of counters, an unknown address locks like an
/// account does, and the rows are bounded for good.
pub const UNKNOWN_BUCKETS: u64 = 1024;

/// The counters one attempt is counted on: its account's (or its unknown
/// address's shared one) and its client address's.
#[derive(Debug, Clone)]
pub struct Keys(Vec<String>);

impl Keys {
    /// For an account that exists, by its (normalised) email.
    pub fn account(email: &str, client: Option<IpAddr>) -> Keys {
        Keys::new(format!("account:{email}"), client)
    }

    /// For an email that has no account.
    pub fn unknown_email(email: &str, client: Option<IpAddr>) -> Keys {
        Keys::new(format!("unknown:{}", fnv1a(email.as_bytes()) % UNKNOWN_BUCKETS), client)
    }

    fn new(account: String, client: Option<IpAddr>) -> Keys {
        let mut keys = vec![account, address_key(client)];
        // Always taken in the same order, so that two attempts locking the
        // same rows on PostgreSQL never wait for each other in a cycle.
        keys.sort();
        Keys(keys)
    }

    fn account_key(&self) -> Option<&str> {
        self.0.iter().map(String::as_str).find(|k| !k.starts_with("addr:"))
    }

    fn address_key(&self) -> Option<&str> {
        self.0.iter().map(String::as_str).find(|k| k.starts_with("addr:"))
    }
}

fn address_key(client: Option<IpAddr>) -> String {
    match client {
        Some(IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let net = ipnet::Ipv6Net::new(v6, 64).map(|n| n.trunc().to_string());
            format!("addr:{}", net.unwrap_or_else(|_| v6.to_string()))
        }
        Some(IpAddr::V6(v6)) => {
            format!("addr:{}", v6.to_ipv4_mapped().map_or(v6.to_string(), |v4| v4.to_string()))
        }
        Some(IpAddr::V4(v4)) => format!("addr:{v4}"),
        None => "addr:unknown".to_owned(),
    }
}

/// A stable hash (the same in every process and every build), so that
/// several Plugboard processes count an unknown address on one counter.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

/// What to do with an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Refused until this time, without being counted.
    Refused { until: NaiveDateTime },
    /// Counted at `at`; `failures` is the highest count it brought a key to.
    Admitted { failures: i32, at: NaiveDateTime },
}

impl Admission {
    /// How long an admitted attempt waits before its password is checked.
    pub fn wait(failures: i32) -> Duration {
        if failures > SLOW_AFTER {
            Duration::from_millis(500 * (failures - SLOW_AFTER) as u64)
        } else {
            Duration::ZERO
        }
    }

    /// When the lock this attempt starts if its password is wrong ends;
    /// `None` if it starts none.
    pub fn lock_if_wrong(failures: i32, at: NaiveDateTime) -> Option<NaiveDateTime> {
        (failures == REFUSE_AFTER).then(|| lock_end(at))
    }
}

/// When a lock that begins now ends.
pub fn lock_end(began: NaiveDateTime) -> NaiveDateTime {
    began + TimeDelta::minutes(WINDOW_MINUTES)
}

enum AdmitError {
    Locked(NaiveDateTime),
    Database(diesel::result::Error),
}

impl From<diesel::result::Error> for AdmitError {
    fn from(e: diesel::result::Error) -> AdmitError {
        AdmitError::Database(e)
    }
}

/// Counts an attempt on every key, or refuses it (counting nothing) if any
/// of them is locked.
pub fn admit(conn: &mut DbConnection, keys: &Keys) -> QueryResult<Admission> {
    let now = Utc::now().naive_utc();
    // Read-only first: while locked, an attempt costs no write.
    if let Some(until) = locked_until(conn, keys, now)? {
        return Ok(Admission::Refused { until });
    }
    let counted = crate::db::write(conn, |conn| {
        let mut worst = 0;
        for key in &keys.0 {
            // Written before anything is read: on SQLite this takes the
            // write lock, so the counts below cannot go stale; on
            // PostgreSQL the row lock serialises attempts on this key.
            insert_if_absent(conn, key, now)?;
            diesel::update(
                sign_in_failures::table
                    .find(key)
                    .filter(sign_in_failures::last_failure.le(now - TimeDelta::minutes(WINDOW_MINUTES))),
            )
            .set(sign_in_failures::failures.eq(0))
            .execute(conn)?;
            let counted = diesel::update(
                sign_in_failures::table.find(key).filter(sign_in_failures::failures.lt(REFUSE_AFTER)),
            )
            .set((
                sign_in_failures::failures.eq(sign_in_failures::failures + 1),
                sign_in_failures::last_failure.eq(now),
            ))
            .execute(conn)?;
            let (failures, last): (i32, NaiveDateTime) = sign_in_failures::table
                .find(key)
                .select((sign_in_failures::failures, sign_in_failures::last_failure))
                .first(conn)?;
            if counted == 0 {
                // Locked by attempts that committed since the read above:
                // undo the counts made on the other keys.
                return Err(AdmitError::Locked(lock_end(last)));
            }
            worst = worst.max(failures);
        }
        Ok(worst)
    });
    match counted {
        Ok(failures) => Ok(Admission::Admitted { failures, at: now }),
        Err(AdmitError::Locked(until)) => Ok(Admission::Refused { until }),
        Err(AdmitError::Database(e)) => Err(e),
    }
}

/// The latest end of a lock on any of these keys, if one is locked.
fn locked_until(
    conn: &mut DbConnection,
    keys: &Keys,
    now: NaiveDateTime,
) -> QueryResult<Option<NaiveDateTime>> {
    let locks: Vec<NaiveDateTime> = sign_in_failures::table
        .filter(sign_in_failures::key.eq_any(&keys.0))
        .filter(sign_in_failures::failures.ge(REFUSE_AFTER))
        .filter(sign_in_failures::last_failure.gt(now - TimeDelta::minutes(WINDOW_MINUTES)))
        .select(sign_in_failures::last_failure)
        .load(conn)?;
    Ok(locks.into_iter().max().map(lock_end))
}

/// A key's first attempt and a concurrent one must both be counted; the
/// SQL differs by backend (diesel's `on_conflict` does not compile over the
/// multi-backend connection).
fn insert_if_absent(conn: &mut DbConnection, key: &str, now: NaiveDateTime) -> QueryResult<()> {
    let row = (
        sign_in_failures::key.eq(key),
        sign_in_failures::failures.eq(0),
        sign_in_failures::last_failure.eq(now),
    );
    match conn {
        DbConnection::Postgres(pg) => diesel::insert_into(sign_in_failures::table)
            .values(row)
            .on_conflict(sign_in_failures::key)
            .do_nothing()
            .execute(pg)?,
        DbConnection::Sqlite(sqlite) => {
            diesel::insert_or_ignore_into(sign_in_failures::table).values(row).execute(sqlite)?
        }
    };
    Ok(())
}

/// The password was right: the account's count is cleared, and the
/// address's attempt taken back (not cleared: one right guess from an
/// address trying many accounts must not reset it). A lock already begun
/// by other attempts stays.
pub fn succeeded(conn: &mut DbConnection, keys: &Keys) -> QueryResult<()> {
    if let Some(account) = keys.account_key() {
        diesel::delete(sign_in_failures::table.find(account)).execute(conn)?;
    }
    if let Some(address) = keys.address_key() {
        diesel::update(
            sign_in_failures::table
                .find(address)
                .filter(sign_in_failures::failures.gt(0))
                .filter(sign_in_failures::failures.lt(REFUSE_AFTER)),
        )
        .set(sign_in_failures::failures.eq(sign_in_failures::failures - 1))
        .execute(conn)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_per_account_or_shared_bucket_and_per_address() {
        let v4 = Some("203.0.113.5".parse().unwrap());
        assert_eq!(
            Keys::account("ada@example.com", v4).0,
            vec!["account:ada@example.com", "addr:203.0.113.5"]
        );
        let unknown = Keys::unknown_email("nobody@example.com", v4);
        assert_eq!(
            unknown.account_key(),
            Some(format!("unknown:{}", fnv1a(b"nobody@example.com") % 1024).as_str())
        );
        assert_eq!(unknown.address_key(), Some("addr:203.0.113.5"));
        // One IPv6 subscriber (a /64) is one address.
        let a = Keys::account("a@example.com", Some("2001:db8:1:2:aaaa::1".parse().unwrap()));
        let b = Keys::account("a@example.com", Some("2001:db8:1:2:bbbb::9".parse().unwrap()));
        assert_eq!(a.address_key(), Some("addr:2001:db8:1:2::/64"));
        assert_eq!(a.address_key(), b.address_key());
        let mapped = Keys::account("a@example.com", Some("::ffff:192.0.2.1".parse().unwrap()));
        assert_eq!(mapped.address_key(), Some("addr:192.0.2.1"));
        assert_eq!(Keys::account("a@example.com", None).address_key(), Some("addr:unknown"));
    }

    #[test]
    fn the_hash_is_stable() {
        // Several processes (and versions) must agree on the bucket.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn waits_grow_after_three_and_the_tenth_starts_a_lock() {
        assert_eq!(Admission::wait(3), Duration::ZERO);
        assert_eq!(Admission::wait(4), Duration::from_millis(500));
        assert_eq!(Admission::wait(10), Duration::from_millis(3500));
        let now = Utc::now().naive_utc();
        assert_eq!(Admission::lock_if_wrong(9, now), None);
        assert_eq!(Admission::lock_if_wrong(10, now), Some(now + TimeDelta::minutes(15)));
    }
}
