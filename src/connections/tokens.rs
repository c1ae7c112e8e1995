//! OAuth2 tokens of a connection, stored apart from what a person edits:
//! refreshing them never changes the connection's edit version, so nobody's
//! open edit form goes stale because a token was renewed.
//!
//! The access and refresh tokens are sealed together, bound to the
//! connection's identity like its other secrets. Every write bumps
//! `token_version`; a refresh stores its result only if the version is the
//! one it read, so two refreshes that raced cannot both land.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::ConnectionId;
use super::store::StoreError;
use crate::crypto::{Keyring, Sealed};
use crate::db::DbConnection;
use crate::db::fixed_sql::IdsIn;
use crate::db::schema::{connection_tokens, connections};
use crate::environment::Environment;

/// The tokens themselves. Never shown, never logged.
pub struct Tokens {
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens {{ refresh_token: {} }}", self.refresh_token.is_some())
    }
}

/// What may be shown about a connection's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Queryable)]
pub struct TokenState {
    pub has_refresh_token: bool,
    pub expires_at: Option<NaiveDateTime>,
    pub obtained_at: NaiveDateTime,
    pub refreshed_at: Option<NaiveDateTime>,
    pub refresh_due_at: Option<NaiveDateTime>,
    pub refresh_failures: i32,
    pub token_version: i32,
}

impl TokenState {
    /// Whether the tokens are due for their scheduled renewal.
    pub fn refresh_due(&self, now: NaiveDateTime) -> bool {
        self.refresh_due_at.is_some_and(|due| due <= now)
    }
}

const STATE_COLUMNS: (
    connection_tokens::has_refresh_token,
    connection_tokens::expires_at,
    connection_tokens::obtained_at,
    connection_tokens::refreshed_at,
    connection_tokens::refresh_due_at,
    connection_tokens::refresh_failures,
    connection_tokens::token_version,
) = (
    connection_tokens::has_refresh_token,
    connection_tokens::expires_at,
    connection_tokens::obtained_at,
    connection_tokens::refreshed_at,
    connection_tokens::refresh_due_at,
    connection_tokens::refresh_failures,
    connection_tokens::token_version,
);

#[derive(Serialize, Deserialize)]
struct Plain<'a> {
    access_token: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
}

#[derive(Deserialize)]
struct Opened {
    access_token: String,
    #[serde(default)]
    refresh_token: Option<String>,
}

/// Tokens moved to another row, environment or component no longer open.
fn associated_data(id: ConnectionId, environment: Environment, component: &str) -> Vec<u8> {
    format!("plugboard/connection-tokens/{}/{}/{}", id.0, environment.as_str(), component).into_bytes()
}

fn seal(
    keyring: &Keyring,
    id: ConnectionId,
    environment: Environment,
    component: &str,
    tokens: &Tokens,
) -> Sealed {
    let plain = Plain {
        access_token: tokens.access_token.expose_secret(),
        refresh_token: tokens.refresh_token.as_ref().map(|t| t.expose_secret()),
    };
    let json = Zeroizing::new(serde_json::to_vec(&plain).expect("two strings serialise"));
    keyring.seal(&json, &associated_data(id, environment, component))
}

/// When a write happens and what the tokens' lifetime is.
pub struct Lifetime {
    pub now: NaiveDateTime,
    pub expires_at: Option<NaiveDateTime>,
    /// When the background refresh should run; `None` when there is
    /// nothing to refresh with, or nothing expires.
    pub refresh_due_at: Option<NaiveDateTime>,
}

/// Stores freshly issued tokens (a Connect or Reconnect), replacing any.
pub fn put(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
    component: &str,
    tokens: &Tokens,
    lifetime: &Lifetime,
) -> Result<(), StoreError> {
    let sealed = seal(keyring, id, environment, component, tokens);
    diesel::delete(connection_tokens::table.find(id.0)).execute(conn)?;
    diesel::insert_into(connection_tokens::table)
        .values((
            connection_tokens::connection_id.eq(id.0),
            connection_tokens::sealed.eq(sealed.bytes),
            connection_tokens::key_id.eq(sealed.key_id),
            connection_tokens::has_refresh_token.eq(tokens.refresh_token.is_some()),
            connection_tokens::expires_at.eq(lifetime.expires_at),
            connection_tokens::obtained_at.eq(lifetime.now),
            connection_tokens::refreshed_at.eq(None::<NaiveDateTime>),
            connection_tokens::refresh_due_at.eq(lifetime.refresh_due_at),
            connection_tokens::refresh_failures.eq(0),
            connection_tokens::token_version.eq(1),
        ))
        .execute(conn)?;
    Ok(())
}

/// Stores a refresh's result if nothing else wrote the tokens since
/// `read_version`. A refresh answer without a refresh token keeps the old
/// one (`tokens.refresh_token` is then the old one, passed back in).
/// Returns whether it was stored.
#[allow(clippy::too_many_arguments)]
pub fn refreshed(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
    component: &str,
    read_version: i32,
    tokens: &Tokens,
    lifetime: &Lifetime,
) -> Result<bool, StoreError> {
    let sealed = seal(keyring, id, environment, component, tokens);
    let updated = diesel::update(
        connection_tokens::table
            .filter(connection_tokens::connection_id.eq(id.0))
            .filter(connection_tokens::token_version.eq(read_version)),
    )
    .set((
        connection_tokens::sealed.eq(sealed.bytes),
        connection_tokens::key_id.eq(sealed.key_id),
        connection_tokens::has_refresh_token.eq(tokens.refresh_token.is_some()),
        connection_tokens::expires_at.eq(lifetime.expires_at),
        connection_tokens::refreshed_at.eq(lifetime.now),
        connection_tokens::refresh_due_at.eq(lifetime.refresh_due_at),
        connection_tokens::refresh_failures.eq(0),
        connection_tokens::token_version.eq(read_version + 1),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// A refresh that could not be made: try again at `retry_at` (or never,
/// when the provider refused the refresh token for good).
pub fn refresh_failed(
    conn: &mut DbConnection,
    id: ConnectionId,
    read_version: i32,
    retry_at: Option<NaiveDateTime>,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        connection_tokens::table
            .filter(connection_tokens::connection_id.eq(id.0))
            .filter(connection_tokens::token_version.eq(read_version)),
    )
    .set((
        connection_tokens::refresh_due_at.eq(retry_at),
        connection_tokens::refresh_failures.eq(connection_tokens::refresh_failures + 1),
        connection_tokens::token_version.eq(read_version + 1),
    ))
    .execute(conn)?;
    Ok(updated == 1)
}

/// The tokens of a connection in `environment`, opened, with their state.
pub fn get(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
) -> Result<Option<(Tokens, TokenState)>, StoreError> {
    let row: Option<(String, Vec<u8>, String, TokenState)> = connection_tokens::table
        .inner_join(connections::table)
        .filter(connections::id.eq(id.0).and(connections::environment.eq(environment.as_str())))
        .select((connections::component, connection_tokens::sealed, connection_tokens::key_id, STATE_COLUMNS))
        // At most one row (one per connection): no bound LIMIT, which SQLite
        // would plan again on every use (see db::fixed_sql).
        .load(conn)?
        .pop();
    let Some((component, bytes, key_id, state)) = row else {
        return Ok(None);
    };
    let plain = keyring.open(&Sealed { key_id, bytes }, &associated_data(id, environment, &component))?;
    let opened: Opened = serde_json::from_slice(&plain)?;
    let tokens = Tokens {
        access_token: SecretString::from(opened.access_token),
        refresh_token: opened.refresh_token.map(SecretString::from),
    };
    Ok(Some((tokens, state)))
}

/// What the list shows about the tokens of these connections.
pub fn states(
    conn: &mut DbConnection,
    ids: &[ConnectionId],
) -> QueryResult<std::collections::HashMap<ConnectionId, TokenState>> {
    let rows: Vec<(i64, TokenState)> = connection_tokens::table
        .filter(IdsIn::new("connection_tokens.connection_id", ids.iter().map(|id| id.0)))
        .select((connection_tokens::connection_id, STATE_COLUMNS))
        .load(conn)?;
    Ok(rows.into_iter().map(|(id, state)| (ConnectionId(id), state)).collect())
}

/// Connections whose tokens are due for a refresh, soonest first.
pub fn due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<(Environment, ConnectionId)>> {
    let rows: Vec<(String, i64)> = connection_tokens::table
        .inner_join(connections::table)
        // Only renewable tokens have a due time: a refresh token, or a
        // client-credentials grant that renews itself.
        .filter(connection_tokens::refresh_due_at.le(now))
        .order(connection_tokens::refresh_due_at.asc())
        .limit(limit)
        .select((connections::environment, connections::id))
        .load(conn)?;
    Ok(rows.into_iter().filter_map(|(env, id)| Some((Environment::parse(&env)?, ConnectionId(id)))).collect())
}

/// Whether the tokens of `id` are (still) due for a refresh.
pub fn is_due(conn: &mut DbConnection, id: ConnectionId, now: NaiveDateTime) -> QueryResult<bool> {
    let due: i64 = connection_tokens::table
        .filter(connection_tokens::connection_id.eq(id.0))
        .filter(connection_tokens::refresh_due_at.le(now))
        .count()
        .get_result(conn)?;
    Ok(due == 1)
}
