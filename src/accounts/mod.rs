//! People who use Plugboard: accounts, roles and passwords.
//!
//! What changes an account is in [`operations`]: each change is one
//! transaction with its audit row. The functions here are the pieces those
//! operations are made of, and the reads; the writers are private to this
//! module so that nothing outside it changes an account without its row.

pub mod operations;
pub mod throttle;

use std::fmt;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::Utc;
use diesel::prelude::*;

use crate::db::DbConnection;
use crate::db::schema::users;

pub const MIN_PASSWORD_CHARS: usize = 12;
const MAX_PASSWORD_CHARS: usize = 256;
/// The longest email address there can be (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub i64);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What a person may do. Ordered: each role may do all a lower one may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Sees the list and statuses.
    Viewer,
    /// Creates, edits, tests, tags and deletes connections.
    Member,
    /// Also manages people and tags, and reads the audit trail.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Admin, Role::Member, Role::Viewer];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::Viewer => "Viewer",
            Role::Member => "Member",
            Role::Admin => "Admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A signed-in person, as the rest of the app sees them: no password hash.
#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub disabled: bool,
    pub must_change_password: bool,
    pub session_epoch: i32,
}

impl User {
    pub fn can(&self, role: Role) -> bool {
        !self.disabled && self.role >= role
    }

    pub fn is_admin(&self) -> bool {
        self.can(Role::Admin)
    }

    pub fn is_member(&self) -> bool {
        self.can(Role::Member)
    }

    /// How the audit trail and "created by" name this person.
    pub fn display(&self) -> String {
        if self.name.is_empty() { self.email.clone() } else { format!("{} <{}>", self.name, self.email) }
    }
}

#[derive(Queryable)]
struct Row {
    id: i64,
    email: String,
    name: String,
    role: String,
    disabled: bool,
    must_change_password: bool,
    session_epoch: i32,
}

impl From<Row> for User {
    fn from(r: Row) -> User {
        User {
            id: UserId(r.id),
            email: r.email,
            name: r.name,
            // An unknown role in the database grants the least.
            role: Role::parse(&r.role).unwrap_or(Role::Viewer),
            disabled: r.disabled,
            must_change_password: r.must_change_password,
            session_epoch: r.session_epoch,
        }
    }
}

type Columns = (
    users::id,
    users::email,
    users::name,
    users::role,
    users::disabled,
    users::must_change_password,
    users::session_epoch,
);
const COLUMNS: Columns = (
    users::id,
    users::email,
    users::name,
    users::role,
    users::disabled,
    users::must_change_password,
    users::session_epoch,
);

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("no such account")]
    NotFound,
    #[error("this is the last admin: make someone else an admin first")]
    LastAdmin,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Checks and normalises an email address (lower case, trimmed).
pub fn parse_email(raw: &str) -> Result<String, String> {
    let email = raw.trim().to_lowercase();
    let valid = email.chars().count() <= MAX_EMAIL_CHARS
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid { Ok(email) } else { Err("Enter an email address such as ada@example.com.".into()) }
}

pub fn check_password_rules(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_CHARS {
        return Err(format!("Use at least {MIN_PASSWORD_CHARS} characters; a few words together work well."));
    }
    if chars > MAX_PASSWORD_CHARS {
        return Err(format!("Use at most {MAX_PASSWORD_CHARS} characters."));
    }
    Ok(())
}

pub fn hash_password(password: &str) -> String {
    Argon2::default()
        .hash_password(password.as_bytes())
        .expect("argon2id with default parameters hashes any password")
        .to_string()
}

/// A hash compared in the same time as a real one, so that signing in as an
/// unknown address takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("plugboard dummy password"))
}

fn verify(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

pub fn count(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table.count().get_result(conn)
}

pub fn get(conn: &mut DbConnection, id: UserId) -> Result<User, AccountError> {
    // Every request reads its account. Not `.first()`: SQLite re-plans a
    // statement whose LIMIT is a bound value each time it is bound again,
    // and a primary key finds one row at most anyway.
    users::table
        .find(id.0)
        .select(COLUMNS)
        .load::<Row>(conn)?
        .pop()
        .map(User::from)
        .ok_or(AccountError::NotFound)
}

/// An account read again inside the transaction that just changed it
/// (where it cannot have gone).
fn reload(conn: &mut DbConnection, id: UserId) -> QueryResult<User> {
    users::table.find(id.0).select(COLUMNS).first::<Row>(conn).map(User::from)
}

pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<User>> {
    Ok(users::table
        .order(users::email.asc())
        .select(COLUMNS)
        .load::<Row>(conn)?
        .into_iter()
        .map(User::from)
        .collect())
}

/// The account these credentials open, if any. Disabled accounts open
/// nothing. Always spends one password verification.
pub fn authenticate(conn: &mut DbConnection, email: &str, password: &str) -> QueryResult<Option<User>> {
    let email = email.trim().to_lowercase();
    let found: Option<(Row, String)> = users::table
        .filter(users::email.eq(&email))
        .select((COLUMNS, users::password_hash))
        .first(conn)
        .optional()?;
    Ok(match found {
        Some((row, hash)) => {
            let ok = verify(password, &hash);
            let user = User::from(row);
            (ok && !user.disabled).then_some(user)
        }
        None => {
            let _ = verify(password, dummy_hash());
            None
        }
    })
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub name: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub must_change_password: bool,
}

/// Inserts an account, without an audit row: [`operations::add_person`]
/// is the way to add someone (this stays public for seeding test data).
pub fn create(conn: &mut DbConnection, new: &NewUser) -> Result<User, AccountError> {
    let email = parse_email(new.email).map_err(AccountError::Invalid)?;
    check_password_rules(new.password).map_err(AccountError::Invalid)?;
    let name = new.name.trim();
    if name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(AccountError::Invalid("Use at most 100 characters for the name, on one line.".into()));
    }
    let now = Utc::now().naive_utc();
    let inserted = diesel::insert_into(users::table)
        .values((
            users::email.eq(&email),
            users::name.eq(name),
            users::password_hash.eq(hash_password(new.password)),
            users::role.eq(new.role.as_str()),
            users::disabled.eq(false),
            users::must_change_password.eq(new.must_change_password),
            users::session_epoch.eq(0),
            users::created_at.eq(now),
            users::updated_at.eq(now),
        ))
        .returning(users::id)
        .get_result::<i64>(conn);
    match inserted {
        Ok(id) => get(conn, UserId(id)),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(AccountError::EmailTaken)
        }
        Err(e) => Err(e.into()),
    }
}

/// Admins that can still act: the ones the last-admin rule protects.
fn active_admins(conn: &mut DbConnection) -> QueryResult<i64> {
    users::table
        .filter(users::role.eq(Role::Admin.as_str()))
        .filter(users::disabled.eq(false))
        .count()
        .get_result(conn)
}

/// For first-run setup: only one of several simultaneous requests may see
/// "nobody yet" and create the first admin.
fn lock_for_setup(conn: &mut DbConnection) -> QueryResult<()> {
    match conn {
        DbConnection::Postgres(pg) => {
            diesel::sql_query("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").execute(pg)?;
        }
        DbConnection::Sqlite(sqlite) => {
            // Any write takes SQLite's write lock for the transaction.
            diesel::sql_query("DELETE FROM sign_in_failures WHERE key = ''").execute(sqlite)?;
        }
    }
    Ok(())
}

/// Writes the account's row and every admin's without changing them,
/// before anything is read: on PostgreSQL that locks those rows, so two
/// admins demoting each other at once run one after the other; on SQLite
/// it takes the write lock, so the transaction never has to upgrade a read
/// snapshot another writer made stale.
fn lock_people(conn: &mut DbConnection, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.filter(users::id.eq(id.0).or(users::role.eq(Role::Admin.as_str()))))
        .set(users::role.eq(users::role))
        .execute(conn)?;
    Ok(())
}

/// Whether changing `user` so they no longer act as an admin would leave
/// nobody who does. Call after [`lock_people`].
fn would_remove_last_admin(conn: &mut DbConnection, user: &User) -> QueryResult<bool> {
    Ok(user.role == Role::Admin && !user.disabled && active_admins(conn)? <= 1)
}

fn set_role(conn: &mut DbConnection, id: UserId, role: Role) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((users::role.eq(role.as_str()), users::updated_at.eq(Utc::now().naive_utc())))
        .execute(conn)?;
    Ok(())
}

/// Disabling also ends every session of the account at once.
fn set_disabled(conn: &mut DbConnection, id: UserId, disabled: bool) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((
            users::disabled.eq(disabled),
            users::session_epoch.eq(users::session_epoch + 1),
            users::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Ends every session of the account (sign-out).
fn end_sessions(conn: &mut DbConnection, id: UserId) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set(users::session_epoch.eq(users::session_epoch + 1))
        .execute(conn)?;
    Ok(())
}

/// A new password ends the account's other sessions; the caller renews its
/// own. The rules are checked by the caller.
fn set_password(conn: &mut DbConnection, id: UserId, password: &str) -> QueryResult<()> {
    replace_password(conn, id, password, false)
}

/// Sets a password and ends every session of the account; `must_change`
/// makes the person choose their own at the next sign-in.
fn replace_password(
    conn: &mut DbConnection,
    id: UserId,
    password: &str,
    must_change: bool,
) -> QueryResult<()> {
    diesel::update(users::table.find(id.0))
        .set((
            users::password_hash.eq(hash_password(password)),
            users::must_change_password.eq(must_change),
            users::session_epoch.eq(users::session_epoch + 1),
            users::updated_at.eq(Utc::now().naive_utc()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Whether an account has this (normalised) email.
fn exists(conn: &mut DbConnection, email: &str) -> QueryResult<bool> {
    Ok(users::table.filter(users::email.eq(email)).select(users::id).first::<i64>(conn).optional()?.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(parse_email("  Ada@Example.COM ").unwrap(), "ada@example.com");
        for bad in ["", "ada", "ada@", "@example.com", "ada@example", "a da@example.com"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery");
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify("correct horse battery", &hash));
        assert!(!verify("correct horse battery!", &hash));
        assert!(check_password_rules("short").is_err());
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin > Role::Member && Role::Member > Role::Viewer);
    }
}
