//! OAuth2 sign-ins under way, kept in the database so that the callback may
//! reach any Plugboard process behind a load balancer.
//!
//! An attempt is found by the hash of its `state`, belongs to one session
//! (by the hash of that session's secret) and one person, and is consumed
//! by the first callback that names it: a replayed, forged, expired or
//! another person's callback finds nothing it may use.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::accounts::UserId;
use crate::connections::{ConnectionId, StoreError};
use crate::crypto::{Keyring, Sealed};
use crate::db::DbConnection;
use crate::db::schema::oauth_attempts;
use crate::environment::Environment;

/// What the callback needs to finish: sealed at rest, as it holds the
/// PKCE verifier and possibly a client secret.
#[derive(Serialize, Deserialize)]
pub struct Pending {
    pub name: String,
    pub tags: Vec<String>,
    /// Settings and non-secret fields of the connection.
    pub parameters: std::collections::BTreeMap<String, String>,
    pub client_id: String,
    /// Typed in the dialog, when the operator configured no OAuth app.
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub pkce_verifier: Option<String>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        if let Some(secret) = self.client_secret.as_mut() {
            secret.zeroize();
        }
        if let Some(verifier) = self.pkce_verifier.as_mut() {
            verifier.zeroize();
        }
    }
}

/// One attempt, as the callback finds it.
pub struct Attempt {
    pub user: UserId,
    pub environment: Environment,
    pub component: String,
    pub auth_method: String,
    /// The connection being reconnected, if any.
    pub connection: Option<ConnectionId>,
    pub redirect_uri: String,
    pub popup: bool,
    pub pending: Pending,
}

/// A new attempt to store.
pub struct NewAttempt<'a> {
    pub state_hash: &'a str,
    pub session_binding: &'a str,
    pub user: UserId,
    pub environment: Environment,
    pub component: &'a str,
    pub auth_method: &'a str,
    pub connection: Option<ConnectionId>,
    pub redirect_uri: &'a str,
    pub popup: bool,
    pub pending: &'a Pending,
}

const AAD: &[u8] = b"plugboard/oauth-attempt";

fn aad(state_hash: &str) -> Vec<u8> {
    [AAD, b"/", state_hash.as_bytes()].concat()
}

pub fn create(
    conn: &mut DbConnection,
    keyring: &Keyring,
    attempt: &NewAttempt,
    now: NaiveDateTime,
    lifetime: TimeDelta,
) -> Result<(), StoreError> {
    let json = Zeroizing::new(serde_json::to_vec(attempt.pending)?);
    let sealed = keyring.seal(&json, &aad(attempt.state_hash));
    // Abandoned attempts go as new ones come: the table never grows with
    // clicks nobody finished.
    diesel::delete(oauth_attempts::table.filter(oauth_attempts::expires_at.lt(now))).execute(conn)?;
    diesel::insert_into(oauth_attempts::table)
        .values((
            oauth_attempts::state_hash.eq(attempt.state_hash),
            oauth_attempts::session_binding.eq(attempt.session_binding),
            oauth_attempts::user_id.eq(attempt.user.0),
            oauth_attempts::environment.eq(attempt.environment.as_str()),
            oauth_attempts::component.eq(attempt.component),
            oauth_attempts::auth_method.eq(attempt.auth_method),
            oauth_attempts::connection_id.eq(attempt.connection.map(|c| c.0)),
            oauth_attempts::redirect_uri.eq(attempt.redirect_uri),
            oauth_attempts::sealed.eq(sealed.bytes),
            oauth_attempts::key_id.eq(sealed.key_id),
            oauth_attempts::popup.eq(attempt.popup),
            oauth_attempts::created_at.eq(now),
            oauth_attempts::expires_at.eq(now + lifetime),
        ))
        .execute(conn)?;
    Ok(())
}

/// Why a callback's state was refused. Deliberately coarse: the page says
/// the same for a forged state as for someone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No attempt has this state: forged, or already used.
    Unknown,
    /// Older than ten minutes.
    Expired,
    /// Started in another session or by another person.
    NotYours,
}

/// Takes the attempt named by `state_hash` out of the database, if it
/// belongs to this session and person and has not expired. Taking it is
/// one conditional delete, so of two callbacks with the same state only
/// one gets it; another session's callback leaves it where it is.
pub fn consume(
    conn: &mut DbConnection,
    keyring: &Keyring,
    state_hash: &str,
    session_binding: &str,
    user: UserId,
    now: NaiveDateTime,
) -> Result<Result<Attempt, Refused>, StoreError> {
    type Row =
        (String, i64, String, String, String, Option<i64>, String, Vec<u8>, String, bool, NaiveDateTime);
    let mine = oauth_attempts::table
        .filter(oauth_attempts::state_hash.eq(state_hash))
        .filter(oauth_attempts::session_binding.eq(session_binding))
        .filter(oauth_attempts::user_id.eq(user.0));
    let row: Option<Row> = diesel::delete(mine)
        .returning((
            oauth_attempts::session_binding,
            oauth_attempts::user_id,
            oauth_attempts::environment,
            oauth_attempts::component,
            oauth_attempts::auth_method,
            oauth_attempts::connection_id,
            oauth_attempts::redirect_uri,
            oauth_attempts::sealed,
            oauth_attempts::key_id,
            oauth_attempts::popup,
            oauth_attempts::expires_at,
        ))
        .get_result(conn)
        .optional()?;
    let Some((
        _,
        user_id,
        environment,
        component,
        auth_method,
        connection,
        redirect_uri,
        bytes,
        key_id,
        popup,
        expires_at,
    )) = row
    else {
        let exists: i64 = oauth_attempts::table
            .filter(oauth_attempts::state_hash.eq(state_hash))
            .count()
            .get_result(conn)?;
        return Ok(Err(if exists > 0 { Refused::NotYours } else { Refused::Unknown }));
    };
    if expires_at < now {
        return Ok(Err(Refused::Expired));
    }
    let Some(environment) = Environment::parse(&environment) else {
        return Ok(Err(Refused::Unknown));
    };
    let plain = keyring.open(&Sealed { key_id, bytes }, &aad(state_hash))?;
    let pending: Pending = serde_json::from_slice(&plain)?;
    Ok(Ok(Attempt {
        user: UserId(user_id),
        environment,
        component,
        auth_method,
        connection: connection.map(ConnectionId),
        redirect_uri,
        popup,
        pending,
    }))
}
