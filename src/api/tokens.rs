//! API tokens: created by an admin for one environment, shown once, stored
//! only as a SHA-256 hash, revocable at once. Creating and revoking are
//! operations with their audit rows, like every other change.

use std::collections::BTreeSet;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::Permission;
use crate::audit::{self, Action, Actor, Event};
use crate::connections::Connection;
use crate::connections::listing::Reach;
use crate::db::DbConnection;
use crate::db::schema::api_tokens;
use crate::environment::Environment;
use crate::tags::TagId;

/// What every token starts with, so a leaked one is recognisable (secret
/// scanners, logs) as a Plugboard token.
pub const TOKEN_PREFIX: &str = "pbt_";
/// Characters of a token kept to recognise it on the page.
const SHOWN_CHARS: usize = 12;
/// The longest token name.
pub const MAX_NAME_CHARS: usize = 100;
/// How often the page's "last used" is written: at most this often per
/// token, so a busy automation does not make every read a write.
const LAST_USED_GRANULARITY: TimeDelta = TimeDelta::seconds(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ApiTokenId(pub i64);

impl std::fmt::Display for ApiTokenId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A token as the page and the API see it: never the token itself.
#[derive(Debug, Clone)]
pub struct ApiToken {
    pub id: ApiTokenId,
    pub name: String,
    pub environment: Environment,
    pub prefix: String,
    pub permissions: BTreeSet<Permission>,
    /// Component keys it is limited to; empty: every component.
    pub components: Vec<String>,
    /// Tags it is limited to (a connection with any of them); empty: all.
    pub tags: Vec<TagId>,
    pub expires_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    pub last_used_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub created_by: Option<String>,
}

impl ApiToken {
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&permission)
    }

    /// What the list is narrowed to; `None` for a token with no limits.
    pub fn reach(&self) -> Option<Reach> {
        (!self.components.is_empty() || !self.tags.is_empty())
            .then(|| Reach { components: self.components.clone(), tags: self.tags.clone() })
    }

    /// Whether a connection of the token's environment is within its limits.
    pub fn reaches(&self, connection: &Connection) -> bool {
        connection.environment == self.environment
            && (self.components.is_empty() || self.components.contains(&connection.component))
            && (self.tags.is_empty() || connection.tags.iter().any(|t| self.tags.contains(&t.id)))
    }

    pub fn is_expired(&self, now: NaiveDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = api_tokens)]
struct Row {
    id: i64,
    name: String,
    environment: String,
    token_hash: String,
    prefix: String,
    permissions: String,
    components: String,
    tag_ids: String,
    expires_at: Option<NaiveDateTime>,
    revoked_at: Option<NaiveDateTime>,
    last_used_at: Option<NaiveDateTime>,
    created_at: NaiveDateTime,
    created_by: Option<String>,
}

impl Row {
    fn into_token(self) -> ApiToken {
        let list = |s: &str| s.split(',').filter(|k| !k.is_empty()).map(str::to_owned).collect::<Vec<_>>();
        ApiToken {
            id: ApiTokenId(self.id),
            name: self.name,
            // A row of an environment this build does not know reaches
            // nothing: production is never the fallback.
            environment: Environment::parse(&self.environment).unwrap_or(Environment::Development),
            prefix: self.prefix,
            permissions: list(&self.permissions).iter().filter_map(|p| Permission::parse(p)).collect(),
            components: list(&self.components),
            tags: list(&self.tag_ids).iter().filter_map(|t| t.parse().ok()).map(TagId).collect(),
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            last_used_at: self.last_used_at,
            created_at: self.created_at,
            created_by: self.created_by,
        }
    }
}

/// A token to create, as the admin chose it.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub environment: Environment,
    pub permissions: BTreeSet<Permission>,
    pub components: Vec<String>,
    pub tags: Vec<TagId>,
    pub expires_at: Option<NaiveDateTime>,
}

/// A token just created: the only time its secret exists outside the
/// caller's hands.
pub struct Issued {
    pub token: ApiToken,
    pub secret: SecretString,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// What to fix in the form.
    #[error("{0}")]
    Invalid(String),
    #[error("no such API token")]
    NotFound,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

/// Why a presented token opens nothing. Said in the API's 401, which tells
/// the caller what to do; never which tokens exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Unknown,
    Expired,
    Revoked,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Unknown => {
                "This API token is not one Plugboard issued. Check that the whole token was copied, or ask an \
                 admin for a new one on the API tokens page."
            }
            Refusal::Expired => {
                "This API token has expired. Ask an admin for a new one on the API tokens page."
            }
            Refusal::Revoked => {
                "This API token was revoked. Ask an admin for a new one on the API tokens page."
            }
        }
    }
}

/// The stored form of a token.
fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn new_secret() -> Result<SecretString, TokenError> {
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut())
        .map_err(|e| TokenError::Invalid(format!("no random source to make a token with: {e}")))?;
    Ok(SecretString::from(format!("{TOKEN_PREFIX}{}", hex::encode(bytes.as_ref()))))
}

fn validate(new: &NewToken) -> Result<String, TokenError> {
    let name = new.name.trim();
    if name.is_empty() {
        return Err(TokenError::Invalid(
            "Give the token a name that says who uses it, for example \u{201c}n8n production\u{201d}.".into(),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        return Err(TokenError::Invalid(format!(
            "The name can be at most {MAX_NAME_CHARS} printable characters."
        )));
    }
    if new.permissions.is_empty() {
        return Err(TokenError::Invalid("Tick at least one thing the token may do.".into()));
    }
    if new.expires_at.is_some_and(|at| at <= Utc::now().naive_utc()) {
        return Err(TokenError::Invalid("Choose an expiry in the future.".into()));
    }
    Ok(name.to_owned())
}

fn join<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")
}

/// Creates a token. The secret in the answer is never stored.
pub fn create(conn: &mut DbConnection, actor: &Actor, new: &NewToken) -> Result<Issued, TokenError> {
    let name = validate(new)?;
    let secret = new_secret()?;
    let now = Utc::now().naive_utc();
    let prefix: String = secret.expose_secret().chars().take(SHOWN_CHARS).collect();
    crate::db::write(conn, |conn| {
        let id: i64 = diesel::insert_into(api_tokens::table)
            .values((
                api_tokens::name.eq(&name),
                api_tokens::environment.eq(new.environment.as_str()),
                api_tokens::token_hash.eq(digest(secret.expose_secret())),
                api_tokens::prefix.eq(&prefix),
                api_tokens::permissions.eq(join(new.permissions.iter().map(|p| p.as_str()))),
                api_tokens::components.eq(join(&new.components)),
                api_tokens::tag_ids.eq(join(new.tags.iter().map(|t| t.0))),
                api_tokens::expires_at.eq(new.expires_at),
                api_tokens::created_at.eq(now),
                api_tokens::created_by.eq(actor.author()),
            ))
            .returning(api_tokens::id)
            .get_result(conn)?;
        let token = get(conn, ApiTokenId(id))?;
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ApiTokenCreate,
                environment: Some(token.environment),
                connection: None,
                subject: &token.name,
                details: serde_json::json!({
                    "token_id": token.id.0,
                    "prefix": token.prefix,
                    "permissions": token.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "components": token.components,
                    "tag_ids": token.tags.iter().map(|t| t.0).collect::<Vec<_>>(),
                    "expires_at": token.expires_at,
                }),
            },
        )?;
        Ok(Issued { token, secret })
    })
}

/// Revokes a token: the next call presenting it is refused, in every
/// process, since each call reads the token's row.
pub fn revoke(conn: &mut DbConnection, actor: &Actor, id: ApiTokenId) -> Result<ApiToken, TokenError> {
    crate::db::write(conn, |conn| {
        let now = Utc::now().naive_utc();
        let changed = diesel::update(api_tokens::table.find(id.0).filter(api_tokens::revoked_at.is_null()))
            .set(api_tokens::revoked_at.eq(now))
            .execute(conn)?;
        let token = get(conn, id)?;
        if changed == 1 {
            audit::record(
                conn,
                Event {
                    actor: *actor,
                    action: Action::ApiTokenRevoke,
                    environment: Some(token.environment),
                    connection: None,
                    subject: &token.name,
                    details: serde_json::json!({ "token_id": token.id.0, "prefix": token.prefix }),
                },
            )?;
        }
        Ok(token)
    })
}

pub fn get(conn: &mut DbConnection, id: ApiTokenId) -> Result<ApiToken, TokenError> {
    let row: Row = api_tokens::table
        .find(id.0)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .ok_or(TokenError::NotFound)?;
    Ok(row.into_token())
}

/// Every token, newest first (revoked ones too: the page shows them so).
pub fn list(conn: &mut DbConnection) -> QueryResult<Vec<ApiToken>> {
    let rows: Vec<Row> =
        api_tokens::table.order(api_tokens::id.desc()).select(Row::as_select()).load(conn)?;
    Ok(rows.into_iter().map(Row::into_token).collect())
}

/// The token a caller presented, if it opens the API now; notes its use.
pub fn authenticate(conn: &mut DbConnection, presented: &str) -> QueryResult<Result<ApiToken, Refusal>> {
    let hash = digest(presented);
    // Hashes are unique: no bound LIMIT, which SQLite would plan again on
    // every call (see db::fixed_sql).
    let row: Option<Row> =
        api_tokens::table.filter(api_tokens::token_hash.eq(&hash)).select(Row::as_select()).load(conn)?.pop();
    // The lookup is by the hash of a 256-bit secret, so its timing tells
    // nothing; the comparison is constant-time all the same, so that no
    // future change of lookup could make it tell.
    let Some(row) = row.filter(|r| bool::from(r.token_hash.as_bytes().ct_eq(hash.as_bytes()))) else {
        return Ok(Err(Refusal::Unknown));
    };
    let token = row.into_token();
    let now = Utc::now().naive_utc();
    if token.revoked_at.is_some() {
        return Ok(Err(Refusal::Revoked));
    }
    if token.is_expired(now) {
        return Ok(Err(Refusal::Expired));
    }
    if token.last_used_at.is_none_or(|at| now - at >= LAST_USED_GRANULARITY) {
        diesel::update(api_tokens::table.find(token.id.0))
            .set(api_tokens::last_used_at.eq(now))
            .execute(conn)?;
    }
    Ok(Ok(token))
}
