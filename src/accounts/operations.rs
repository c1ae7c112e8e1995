//! What people do to accounts, and what admins do to people's. Each
//! operation is one transaction that writes the change and its audit row:
//! both are committed, or neither is. The web handlers and the command line
//! (`plugboard create-admin`) all go through these.
//!
//! Checking a password is throttled (see [`throttle`]) and comes in two
//! steps, because a slowed attempt must wait without holding a database
//! connection: `start_*` counts the attempt and says how long to wait (or
//! refuses it), and `finish_*` checks the password and writes the outcome.
//! The ticket `start_*` hands out is the only way to `finish_*`, so no
//! password is ever checked without having been counted.
//!
//! The self-service operations (sign-out, one's own password) take the
//! signed-in [`User`], who is the actor. Signing in and first-run setup
//! have no actor until they succeed: the person signing in (or their typed
//! address, when it fails), the admin set up.

use std::net::IpAddr;
use std::time::Duration;

use chrono::NaiveDateTime;
use diesel::prelude::*;
use serde_json::json;

use super::throttle::{self, Admission, Keys};
use super::{AccountError, MAX_EMAIL_CHARS, NewUser, Role, User, UserId};
use crate::audit::{self, Action, Actor, Event};
use crate::db::DbConnection;

/// A throttled attempt, before its password is checked.
#[derive(Debug)]
pub enum Gate<T> {
    /// Too many failures: refused, uncounted, until this time.
    Refused { until: NaiveDateTime },
    /// Counted: wait this long, then finish with the ticket.
    Open { wait: Duration, ticket: T },
}

// ---- signing in and out ----

/// A counted sign-in attempt, waiting for its password check.
#[derive(Debug)]
pub struct SignInTicket {
    email: String,
    keys: Keys,
    /// When the lock this attempt starts ends, if its password is wrong.
    lock_if_wrong: Option<NaiveDateTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Longer than any email address can be; nothing was counted or written.
    #[error("an email address has at most {max} characters; this one has {0}", max = MAX_EMAIL_CHARS)]
    EmailTooLong(usize),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

#[derive(Debug)]
pub enum SignIn {
    SignedIn(User),
    /// Wrong email or password, or a disabled account: one answer for all.
    Refused,
}

/// Counts a sign-in attempt by `email` from `client`, or refuses it.
pub fn start_sign_in(
    conn: &mut DbConnection,
    email: &str,
    client: Option<IpAddr>,
) -> Result<Gate<SignInTicket>, SignInError> {
    let email = email.trim().to_lowercase();
    let chars = email.chars().count();
    if chars > MAX_EMAIL_CHARS {
        return Err(SignInError::EmailTooLong(chars));
    }
    let keys = if super::exists(conn, &email)? {
        Keys::account(&email, client)
    } else {
        Keys::unknown_email(&email, client)
    };
    Ok(gate(throttle::admit(conn, &keys)?, |lock_if_wrong| SignInTicket { email, keys, lock_if_wrong }))
}

/// Checks the password of a counted attempt; records the sign-in, or the
/// failure (saying so when it starts a lock).
pub fn finish_sign_in(conn: &mut DbConnection, ticket: SignInTicket, password: &str) -> QueryResult<SignIn> {
    // Checked before the transaction: argon2 takes a while, and no lock
    // should be held meanwhile.
    let user = super::authenticate(conn, &ticket.email, password)?;
    crate::db::write(conn, |conn| match user {
        Some(user) => {
            throttle::succeeded(conn, &ticket.keys)?;
            record(conn, Actor::Person(&user), Action::SignIn, &user.email, json!({}))?;
            Ok(SignIn::SignedIn(user))
        }
        None => {
            // The attempts refused during a lock write no rows of their
            // own: the failure that starts it says until when.
            let details = match ticket.lock_if_wrong {
                Some(until) => json!({ "locked_until": until.format("%Y-%m-%d %H:%M:%S UTC").to_string() }),
                None => json!({}),
            };
            record(conn, Actor::Anonymous(&ticket.email), Action::SignInFailed, &ticket.email, details)?;
            Ok(SignIn::Refused)
        }
    })
}

/// Ends every session of the account: with sessions kept in the cookie, a
/// copy of this one would otherwise stay valid.
pub fn sign_out(conn: &mut DbConnection, user: &User) -> QueryResult<()> {
    crate::db::write(conn, |conn| {
        super::end_sessions(conn, user.id)?;
        record(conn, Actor::Person(user), Action::SignOut, &user.email, json!({}))
    })
}

// ---- first-run setup ----

#[derive(Debug)]
pub enum Setup {
    /// The first admin, who is signed in.
    Created(User),
    /// Someone exists already: setup is over, nothing was created.
    AlreadyDone,
}

/// Creates the first admin, only while nobody exists. Of several
/// simultaneous setups, one creates and the others hear `AlreadyDone`.
pub fn setup(
    conn: &mut DbConnection,
    email: &str,
    name: &str,
    password: &str,
) -> Result<Setup, AccountError> {
    crate::db::write(conn, |conn| {
        super::lock_for_setup(conn)?;
        if super::count(conn)? > 0 {
            return Ok(Setup::AlreadyDone);
        }
        let user = super::create(
            conn,
            &NewUser { email, name, password, role: Role::Admin, must_change_password: false },
        )?;
        record(conn, Actor::Person(&user), Action::Setup, &user.email, json!({ "role": "admin" }))?;
        Ok(Setup::Created(user))
    })
}

// ---- one's own password ----

/// A counted check of the current password, waiting for its turn.
#[derive(Debug)]
pub struct PasswordTicket {
    user: UserId,
    email: String,
    keys: Keys,
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The new password breaks a rule; the message says which.
    #[error("{0}")]
    Invalid(String),
    #[error("the new password is the current one")]
    Unchanged,
    #[error("the current password is not right")]
    WrongCurrent,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Checks the new password's rules, then counts the check of the current
/// one (per account and per client address, with sign-in's counters: a
/// guesser gains nothing by switching between the two), or refuses it.
pub fn start_password_change(
    conn: &mut DbConnection,
    user: &User,
    client: Option<IpAddr>,
    current: &str,
    new: &str,
) -> Result<Gate<PasswordTicket>, PasswordError> {
    super::check_password_rules(new).map_err(PasswordError::Invalid)?;
    if new == current {
        return Err(PasswordError::Unchanged);
    }
    let keys = Keys::account(&user.email, client);
    Ok(gate(throttle::admit(conn, &keys)?, |_| PasswordTicket {
        user: user.id,
        email: user.email.clone(),
        keys,
    }))
}

/// Checks the current password of a counted attempt and, if it is right,
/// sets the new one; returns the account as it now is (its other sessions
/// have ended; the caller renews its own).
pub fn finish_password_change(
    conn: &mut DbConnection,
    ticket: PasswordTicket,
    current: &str,
    new: &str,
) -> Result<User, PasswordError> {
    let Some(user) = super::authenticate(conn, &ticket.email, current)?.filter(|u| u.id == ticket.user)
    else {
        return Err(PasswordError::WrongCurrent);
    };
    crate::db::write(conn, |conn| {
        super::set_password(conn, user.id, new)?;
        throttle::succeeded(conn, &ticket.keys)?;
        record(
            conn,
            Actor::Person(&user),
            Action::PasswordChange,
            &user.email,
            json!({ "fields": ["password"] }),
        )?;
        Ok(super::reload(conn, user.id)?)
    })
}

// ---- people, by an admin (or the command line) ----

/// Adds a person. The People page gives them a password they must change;
/// `plugboard create-admin` (actor [`Actor::System`]) one they chose.
pub fn add_person(conn: &mut DbConnection, actor: &Actor, new: &NewUser) -> Result<User, AccountError> {
    crate::db::write(conn, |conn| {
        let user = super::create(conn, new)?;
        let mut details = json!({ "role": user.role.as_str() });
        if matches!(actor, Actor::System) {
            details["by"] = json!("create-admin command");
        }
        record(conn, *actor, Action::UserCreate, &user.email, details)?;
        Ok(user)
    })
}

/// Gives a person another role. The last active admin keeps theirs.
pub fn change_role(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
    role: Role,
) -> Result<User, AccountError> {
    crate::db::write(conn, |conn| {
        super::lock_people(conn, id)?;
        let before = super::get(conn, id)?;
        if role != Role::Admin && super::would_remove_last_admin(conn, &before)? {
            return Err(AccountError::LastAdmin);
        }
        super::set_role(conn, id, role)?;
        let details = json!({ "from": before.role.as_str(), "to": role.as_str() });
        record(conn, *actor, Action::UserRole, &before.email, details)?;
        Ok(super::reload(conn, id)?)
    })
}

/// Gives a person a new initial password, made here, that they must change
/// when they next sign in; their sessions end at once. The password is
/// returned to be handed over and is stored only as its hash.
pub fn reset_password(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
) -> Result<(User, secrecy::SecretString), AccountError> {
    let password = initial_password();
    // Hashing (argon2) happens inside: the row is locked for that long,
    // which a rare admin action can afford.
    crate::db::write(conn, |conn| {
        super::lock_people(conn, id)?;
        let before = super::get(conn, id)?;
        super::replace_password(conn, id, secrecy::ExposeSecret::expose_secret(&password), true)?;
        record(conn, *actor, Action::UserPasswordReset, &before.email, json!({ "fields": ["password"] }))?;
        Ok((super::reload(conn, id)?, password))
    })
}

/// Four groups of five letters and digits from the system's random source
/// (about 100 bits), without look-alikes, easy to read out or type.
fn initial_password() -> secrecy::SecretString {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    let mut out = String::with_capacity(23);
    for (i, b) in bytes.iter().enumerate() {
        if i > 0 && i % 5 == 0 {
            out.push('-');
        }
        out.push(char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]));
    }
    bytes.fill(0);
    secrecy::SecretString::from(out)
}

/// Disables an account, ending its sessions at once. The last active admin
/// cannot be disabled.
pub fn disable(conn: &mut DbConnection, actor: &Actor, id: UserId) -> Result<User, AccountError> {
    set_disabled(conn, actor, id, true)
}

/// Lets a disabled account sign in again (its old sessions stay ended).
pub fn enable(conn: &mut DbConnection, actor: &Actor, id: UserId) -> Result<User, AccountError> {
    set_disabled(conn, actor, id, false)
}

fn set_disabled(
    conn: &mut DbConnection,
    actor: &Actor,
    id: UserId,
    disabled: bool,
) -> Result<User, AccountError> {
    crate::db::write(conn, |conn| {
        super::lock_people(conn, id)?;
        let before = super::get(conn, id)?;
        if disabled && super::would_remove_last_admin(conn, &before)? {
            return Err(AccountError::LastAdmin);
        }
        super::set_disabled(conn, id, disabled)?;
        record(conn, *actor, Action::UserDisable, &before.email, json!({ "disabled": disabled }))?;
        Ok(super::reload(conn, id)?)
    })
}

// ---- shared ----

fn gate<T>(admission: Admission, ticket: impl FnOnce(Option<NaiveDateTime>) -> T) -> Gate<T> {
    match admission {
        Admission::Refused { until } => Gate::Refused { until },
        Admission::Admitted { failures, at } => Gate::Open {
            wait: Admission::wait(failures),
            ticket: ticket(Admission::lock_if_wrong(failures, at)),
        },
    }
}

/// An account change's audit row, in the change's transaction. Accounts
/// belong to no environment.
fn record(
    conn: &mut DbConnection,
    actor: Actor,
    action: Action,
    subject: &str,
    details: serde_json::Value,
) -> QueryResult<()> {
    audit::record(conn, Event { actor, action, environment: None, connection: None, subject, details })
}
