//! What people, and Plugboard itself, do to connections. Each operation is
//! one transaction that writes the change and its audit row: both are
//! committed, or neither is. The web handlers, the background checks and
//! the command line all go through these.

use std::collections::BTreeSet;

use chrono::NaiveDateTime;

use super::input::Draft;
pub use super::store::CheckResult;
use super::store::{self, StoreError};
use super::tokens::{self, Lifetime, Tokens};
use super::{Connection, ConnectionId, StatusReport};
use crate::audit::{self, Action, Actor, Event};
use crate::crypto::Keyring;
use crate::db::DbConnection;
use crate::environment::Environment;
use crate::tags::{TagId, TagName};

/// Saves a new connection with the result of its first check, made on the
/// credentials as typed (see [`crate::checks::schedule::create_checked`]): the
/// connection, its check and both audit rows, together.
pub fn create(
    conn: &mut DbConnection,
    keyring: &Keyring,
    actor: &Actor,
    environment: Environment,
    component: &str,
    mut draft: Draft,
    check: &CheckResult,
) -> Result<ConnectionId, StoreError> {
    draft.author = actor.author();
    crate::db::write(conn, |conn| {
        let id = store::insert(conn, keyring, environment, component, &draft, Some(check))?;
        if let Some((tokens, lifetime)) = check.issued {
            tokens::put(conn, keyring, environment, id, component, tokens, lifetime)?;
        }
        let fields: Vec<&String> = draft.parameters.keys().chain(draft.secrets.keys()).collect();
        let tags: Vec<&str> = draft.tags.iter().map(|t| t.as_str()).collect();
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ConnectionCreate,
                environment: Some(environment),
                connection: Some(id),
                subject: &draft.name,
                details: serde_json::json!({
                    "component": component, "auth_method": draft.auth_method, "fields": fields, "tags": tags,
                }),
            },
        )?;
        audit_check(conn, actor, environment, id, &draft.name, check)?;
        Ok(id)
    })
}

/// Saves an edit made from `expected_version`; [`StoreError::Conflict`] if
/// anyone saved in between.
pub fn update(
    conn: &mut DbConnection,
    keyring: &Keyring,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    expected_version: i32,
    mut draft: Draft,
) -> Result<(), StoreError> {
    draft.author = actor.author();
    crate::db::write(conn, |conn| {
        // The write lock first: see `store::lock_row`.
        store::lock_row(conn, id)?;
        let before = store::get(conn, environment, id)?;
        store::update(conn, keyring, environment, id, expected_version, &draft)?;
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ConnectionEdit,
                environment: Some(environment),
                connection: Some(id),
                subject: &draft.name,
                details: changed_fields(&before, &draft),
            },
        )?;
        Ok(())
    })
}

/// Deletes a connection; returns it as it was.
pub fn delete(
    conn: &mut DbConnection,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
) -> Result<Connection, StoreError> {
    crate::db::write(conn, |conn| {
        store::lock_row(conn, id)?;
        let connection = store::get(conn, environment, id)?;
        store::delete(conn, environment, id)?;
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ConnectionDelete,
                environment: Some(environment),
                connection: Some(id),
                subject: &connection.name,
                details: serde_json::json!({ "component": connection.component }),
            },
        )?;
        Ok(connection)
    })
}

/// What tagging did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tagged {
    /// The tag was added, under the name it has (an existing tag keeps its
    /// own spelling: "sms" stays "sms" when "SMS" is typed).
    Added(String),
    /// The connection already had this tag (by that or another spelling).
    AlreadyTagged(String),
}

/// Adds one tag to a connection, creating the tag if it is new.
pub fn tag(
    conn: &mut DbConnection,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    name: &TagName,
) -> Result<Tagged, StoreError> {
    crate::db::write(conn, |conn| {
        let (tag, added) = store::add_tag(conn, environment, id, name)?;
        if !added {
            return Ok(Tagged::AlreadyTagged(tag.name));
        }
        let connection = store::get(conn, environment, id)?;
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ConnectionTag,
                environment: Some(environment),
                connection: Some(id),
                subject: &connection.name,
                details: serde_json::json!({ "tag": tag.name }),
            },
        )?;
        Ok(Tagged::Added(tag.name))
    })
}

/// Removes one tag from a connection; returns the tag's name if it had it.
pub fn untag(
    conn: &mut DbConnection,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    tag: TagId,
) -> Result<Option<String>, StoreError> {
    crate::db::write(conn, |conn| {
        store::lock_row(conn, id)?;
        let connection = store::get(conn, environment, id)?;
        let removed = connection.tags.iter().find(|t| t.id == tag).map(|t| t.name.clone());
        store::remove_tag(conn, environment, id, tag)?;
        if removed.is_some() {
            audit::record(
                conn,
                Event {
                    actor: *actor,
                    action: Action::ConnectionUntag,
                    environment: Some(environment),
                    connection: Some(id),
                    subject: &connection.name,
                    details: serde_json::json!({ "tag": removed }),
                },
            )?;
        }
        Ok(removed)
    })
}

/// Records a check: its history row, the connection's status (only if the
/// checked credentials are still the current ones) and the audit row.
/// Returns whether the status changed.
pub fn record_check(
    conn: &mut DbConnection,
    keyring: &Keyring,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    result: &CheckResult,
) -> Result<bool, StoreError> {
    crate::db::write(conn, |conn| {
        let current = store::record_check(conn, environment, id, result)?;
        let connection = store::get(conn, environment, id)?;
        if let Some((tokens, lifetime)) = result.issued
            && connection.version == result.checked_version
        {
            tokens::put(conn, keyring, environment, id, &connection.component, tokens, lifetime)?;
        }
        audit_check(conn, actor, environment, id, &connection.name, result)?;
        Ok(current)
    })
}

fn audit_check(
    conn: &mut DbConnection,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    name: &str,
    result: &CheckResult,
) -> Result<(), StoreError> {
    audit::record(
        conn,
        Event {
            actor: *actor,
            action: Action::ConnectionCheck,
            environment: Some(environment),
            connection: Some(id),
            subject: name,
            details: serde_json::json!({ "trigger": result.trigger, "status": result.report.status.as_str() }),
        },
    )?;
    Ok(())
}

/// What an edit changes, by name only: never a value, so the audit trail
/// holds no secret.
fn changed_fields(before: &Connection, after: &Draft) -> serde_json::Value {
    let mut fields: Vec<String> = Vec::new();
    if before.name != after.name {
        fields.push("name".into());
    }
    if before.auth_method != after.auth_method {
        fields.push("auth_method".into());
    }
    let keys: BTreeSet<&String> = before.parameters.keys().chain(after.parameters.keys()).collect();
    for key in keys {
        if before.parameters.get(key) != after.parameters.get(key) {
            fields.push(key.clone());
        }
    }
    // A secret typed again counts as changed: its value is never compared.
    fields.extend(after.secrets.keys().cloned());
    let old_tags: BTreeSet<String> = before.tags.iter().map(|t| t.name.to_lowercase()).collect();
    let new_tags: BTreeSet<String> = after.tags.iter().map(|t| t.key()).collect();
    serde_json::json!({
        "fields": fields,
        "tags_added": new_tags.difference(&old_tags).collect::<Vec<_>>(),
        "tags_removed": old_tags.difference(&new_tags).collect::<Vec<_>>(),
    })
}

/// A connection signed in with OAuth2 for the first time: the connection,
/// its tokens and the audit row, together.
#[allow(clippy::too_many_arguments)]
pub fn connect(
    conn: &mut DbConnection,
    keyring: &Keyring,
    actor: &Actor,
    environment: Environment,
    component: &str,
    mut draft: Draft,
    tokens: &Tokens,
    lifetime: &Lifetime,
) -> Result<ConnectionId, StoreError> {
    draft.author = actor.author();
    crate::db::write(conn, |conn| {
        let id = store::insert(conn, keyring, environment, component, &draft, None)?;
        tokens::put(conn, keyring, environment, id, component, tokens, lifetime)?;
        let scopes: Vec<&str> =
            draft.parameters.get(SCOPES_PARAMETER).map(|s| s.split(' ').collect()).unwrap_or_default();
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ConnectionConnect,
                environment: Some(environment),
                connection: Some(id),
                subject: &draft.name,
                details: serde_json::json!({
                    "component": component, "auth_method": draft.auth_method, "scopes": scopes,
                    "refresh_token": tokens.refresh_token.is_some(),
                }),
            },
        )?;
        Ok(id)
    })
}

/// The parameter that records which scopes were granted, for the page.
pub const SCOPES_PARAMETER: &str = "oauth_scopes";

/// Signs an existing connection in again: new tokens, the same id, name,
/// tags and history. `parameters` are the provider-issued values to merge
/// (token fields, callback values, the scopes).
#[allow(clippy::too_many_arguments)]
pub fn reconnect(
    conn: &mut DbConnection,
    keyring: &Keyring,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    parameters: &std::collections::BTreeMap<String, String>,
    tokens: &Tokens,
    lifetime: &Lifetime,
) -> Result<(), StoreError> {
    crate::db::write(conn, |conn| {
        store::lock_row(conn, id)?;
        let connection = store::get(conn, environment, id)?;
        store::merge_parameters(conn, environment, id, parameters, actor.author().as_deref())?;
        tokens::put(conn, keyring, environment, id, &connection.component, tokens, lifetime)?;
        audit::record(
            conn,
            Event {
                actor: *actor,
                action: Action::ConnectionReconnect,
                environment: Some(environment),
                connection: Some(id),
                subject: &connection.name,
                details: serde_json::json!({ "refresh_token": tokens.refresh_token.is_some() }),
            },
        )?;
        Ok(())
    })
}

/// How a refresh ended, as stored.
pub enum RefreshOutcome<'a> {
    /// New tokens (with the old refresh token when none was issued).
    Refreshed { tokens: &'a Tokens, lifetime: &'a Lifetime },
    /// The provider refused the refresh token for good: the connection is
    /// NOT ACTIVE until someone reconnects it.
    Refused { reason: &'a str, at: NaiveDateTime },
    /// The provider could not be reached: the connection stays as it is
    /// and the refresh is tried again at `retry_at`.
    Postponed { reason: &'a str, retry_at: NaiveDateTime },
}

/// Records a refresh made from the tokens at `read_version`. Returns false
/// (and writes nothing) if the tokens changed meanwhile.
pub fn record_refresh(
    conn: &mut DbConnection,
    keyring: &Keyring,
    actor: &Actor,
    environment: Environment,
    id: ConnectionId,
    read_version: i32,
    outcome: &RefreshOutcome,
) -> Result<bool, StoreError> {
    crate::db::write(conn, |conn| {
        let connection = store::get(conn, environment, id)?;
        let (stored, action, details) = match outcome {
            RefreshOutcome::Refreshed { tokens, lifetime } => (
                tokens::refreshed(
                    conn,
                    keyring,
                    environment,
                    id,
                    &connection.component,
                    read_version,
                    tokens,
                    lifetime,
                )?,
                Action::TokenRefresh,
                serde_json::json!({ "expires_at": lifetime.expires_at, "refresh_token_rotated": tokens.refresh_token.is_some() }),
            ),
            RefreshOutcome::Refused { reason, at } => {
                let stored = tokens::refresh_failed(conn, id, read_version, None)?;
                if stored {
                    let report = StatusReport {
                        status: super::Status::NotActive,
                        reason: (*reason).to_owned(),
                        checked_at: Some(*at),
                    };
                    store::set_status(conn, environment, id, &report)?;
                }
                (stored, Action::TokenRefreshFailed, serde_json::json!({ "reason": reason, "retry": false }))
            }
            RefreshOutcome::Postponed { reason, retry_at } => (
                tokens::refresh_failed(conn, id, read_version, Some(*retry_at))?,
                Action::TokenRefreshFailed,
                serde_json::json!({ "reason": reason, "retry_at": retry_at }),
            ),
        };
        if stored {
            audit::record(
                conn,
                Event {
                    actor: *actor,
                    action,
                    environment: Some(environment),
                    connection: Some(id),
                    subject: &connection.name,
                    details,
                },
            )?;
        }
        Ok(stored)
    })
}
