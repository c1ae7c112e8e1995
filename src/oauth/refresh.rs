//! Keeping OAuth2 access tokens fresh: ahead of expiry in the background,
//! and before any check that would otherwise use an expiring token.
//!
//! One refresh at a time per connection, whichever process: the refresh
//! takes the lease `refresh:{id}` first, reads the tokens again with it
//! held (another process may have just refreshed them), makes the HTTP call
//! with no database lock held, and stores the result only if the tokens are
//! still the ones it read (`token_version`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};

use secrecy::SecretString;

use super::{App, Provider, TokenEndpoint, TokenError};
use crate::audit::OwnedActor;
use crate::checks::Outcome;
use crate::connections::operations::{self, RefreshOutcome};
use crate::connections::tokens::{self, TokenState, Tokens};
use crate::connections::{Connection, ConnectionId, StoreError, store};
use crate::environment::Environment;
use crate::leases;
use crate::state::{AppState, BlockingError};

/// The status reason of a connection whose refresh token was refused.
pub const RECONNECT_NEEDED: &str = "reconnect needed: the provider refused the refresh token";

/// What a refresh did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Not needed: the access token is good for longer than the margin (or
    /// never expires, or there is nothing to refresh it with).
    NotDue,
    /// Another process holds the refresh; its result is in the database.
    ByAnother,
    Done,
    /// The provider refused the refresh token: reconnect needed.
    Refused(String),
    /// Could not reach the provider; tried again later.
    Postponed(String),
}

#[derive(Debug, thiserror::Error)]
pub enum RefreshError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl<E: Into<RefreshError> + std::fmt::Display> From<BlockingError<E>> for RefreshError {
    fn from(e: BlockingError<E>) -> RefreshError {
        match e {
            BlockingError::Work(e) => e.into(),
            other => RefreshError::Internal(other.to_string()),
        }
    }
}

impl From<diesel::result::Error> for RefreshError {
    fn from(e: diesel::result::Error) -> RefreshError {
        RefreshError::Store(e.into())
    }
}

/// The lease a refresh of `id` takes.
pub fn lease_name(id: ConnectionId) -> String {
    format!("refresh:{}", id.0)
}

/// What a refresh needs, read with the lease held.
struct Current {
    connection: Connection,
    tokens: Tokens,
    state: TokenState,
    client_secret: Option<SecretString>,
}

/// Refreshes the tokens of `id` if they are due (or always, with `force`),
/// as `owner` (the lease holder: a process's job runner, or a request),
/// audited as `who`. Takes its arguments owned, so that its future is
/// `Send` for the job runner whatever the caller borrows.
pub async fn refresh_if_due(
    state: Arc<AppState>,
    owner: String,
    environment: Environment,
    id: ConnectionId,
    who: OwnedActor,
    force: bool,
) -> Result<Refreshed, RefreshError> {
    let need = if force { Need::Always } else { Need::Due };
    refresh_when(state, owner, environment, id, who, need).await
}

/// Renews the access token of `id` unless it stays valid for `at_least`
/// more (an API caller needs one it can use): a refresh-token sign-in and
/// a client-credentials grant alike. Decided on the tokens read with the
/// lease held, so that many callers at once make one renewal and the rest
/// use its result.
pub async fn refresh_unless_valid_for(
    state: Arc<AppState>,
    owner: String,
    environment: Environment,
    id: ConnectionId,
    who: OwnedActor,
    at_least: TimeDelta,
) -> Result<Refreshed, RefreshError> {
    refresh_when(state, owner, environment, id, who, Need::ValidFor(at_least)).await
}

/// When a renewal is wanted, judged on the tokens read under the lease.
#[derive(Debug, Clone, Copy)]
enum Need {
    /// At its scheduled time.
    Due,
    Always,
    /// Unless the access token is good for this much longer.
    ValidFor(TimeDelta),
}

impl Need {
    fn met(self, tokens: &TokenState, now: NaiveDateTime) -> bool {
        match self {
            Need::Due => tokens.refresh_due(now),
            Need::Always => true,
            Need::ValidFor(span) => tokens.expires_at.is_some_and(|at| at < now + span),
        }
    }
}

async fn refresh_when(
    state: Arc<AppState>,
    owner: String,
    environment: Environment,
    id: ConnectionId,
    who: OwnedActor,
    need: Need,
) -> Result<Refreshed, RefreshError> {
    let lease = lease_name(id);
    let lease_for =
        TimeDelta::from_std(state.checker.outbound().limit() * 3).unwrap_or(TimeDelta::minutes(1));
    let (name, holder) = (lease.clone(), owner.to_owned());
    let claimed = state
        .blocking(move |conn, _| {
            leases::try_acquire(conn, &name, &holder, Utc::now().naive_utc() + lease_for)
        })
        .await?;
    if !claimed {
        // Someone else is refreshing: wait for them (a little), and use
        // what they store.
        let wait = state.checker.outbound().limit() + Duration::from_secs(1);
        wait_for_release(state.clone(), lease, wait).await;
        return Ok(Refreshed::ByAnother);
    }
    let result = refresh_claimed(state.clone(), environment, id, who, need).await;
    let (name, holder) = (lease, owner.to_owned());
    let _ = state.blocking(move |conn, _| leases::release(conn, &name, &holder)).await;
    result
}

async fn wait_for_release(state: Arc<AppState>, lease: String, at_most: Duration) {
    let deadline = tokio::time::Instant::now() + at_most;
    while tokio::time::Instant::now() < deadline {
        let name = lease.clone();
        let held = state.blocking(move |conn, _| leases::is_held(conn, &name, Utc::now().naive_utc())).await;
        if !matches!(held, Ok(true)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refresh_claimed(
    state: Arc<AppState>,
    environment: Environment,
    id: ConnectionId,
    who: OwnedActor,
    need: Need,
) -> Result<Refreshed, RefreshError> {
    let current = state
        .blocking(move |conn, s| -> Result<Option<Current>, StoreError> {
            let Some((tokens, token_state)) = tokens::get(conn, &s.keyring, environment, id)? else {
                return Ok(None);
            };
            let connection = store::get(conn, environment, id)?;
            let client_secret =
                store::open_secrets(conn, &s.keyring, environment, id)?.remove("client_secret");
            Ok(Some(Current { connection, tokens, state: token_state, client_secret }))
        })
        .await?;
    let Some(current) = current else {
        return Ok(Refreshed::NotDue);
    };
    let now = Utc::now().naive_utc();
    if !need.met(&current.state, now) {
        return Ok(Refreshed::NotDue);
    }
    let Some(component) = state.catalog.get(&current.connection.component) else {
        return Ok(Refreshed::NotDue);
    };
    let Some(method) = component.auth_method(&current.connection.auth_method) else {
        return Ok(Refreshed::NotDue);
    };
    let settings = &current.connection.parameters;
    let version = current.state.token_version;
    let failure = |why: String, transient: bool, reason: String| Failure {
        tokens: current.state.clone(),
        reason: if transient { format!("refresh failed: {why}") } else { reason },
        transient,
    };

    // The connection's own OAuth app, as its settings and secrets give it.
    let own_app = || App {
        client_id: settings.get("client_id").cloned().unwrap_or_default(),
        client_secret: current.client_secret.clone().unwrap_or_else(|| SecretString::from(String::new())),
    };

    // Client credentials renew with the client's own credentials; an
    // authorization-code sign-in needs its refresh token.
    let client_credentials = TokenEndpoint::of(component, method, settings);
    let renews_itself = client_credentials.is_some();
    let renewal = if let Some(endpoint) = client_credentials {
        match endpoint {
            Err(why) => Err(failure(why.clone(), false, why)),
            Ok(endpoint) => super::client_credentials(state.checker.outbound(), &endpoint, &own_app())
                .await
                .map(|grant| (grant, None))
                .map_err(|error| {
                    let reason = Outcome::from_token_error(&error, &[]).reason();
                    failure(error.to_string(), renewal_may_succeed_later(&error), reason)
                }),
        }
    } else {
        let Some(refresh_token) = current.tokens.refresh_token.as_ref() else {
            return Ok(Refreshed::NotDue);
        };
        match Provider::of(component, method, settings) {
            Err(why) => {
                let reason = format!("{RECONNECT_NEEDED} ({why})");
                Err(failure(why, false, reason))
            }
            Ok(provider) => {
                let app = state.oauth.app(&current.connection.component, environment).unwrap_or_else(own_app);
                super::refresh(state.checker.outbound(), &provider, &app, refresh_token)
                    .await
                    .map(|grant| (grant, provider.refresh_margin))
                    .map_err(|error| {
                        let reason = format!("{RECONNECT_NEEDED} ({error})");
                        failure(error.to_string(), renewal_may_succeed_later(&error), reason)
                    })
            }
        }
    };
    let (grant, margin) = match renewal {
        Ok(renewed) => renewed,
        Err(failed) => return record_failure(&state, environment, id, who, failed).await,
    };
    // A client-credentials token is always renewable; a sign-in's only
    // while the provider gave a refresh token.
    let renewable = renews_itself || grant.tokens.refresh_token.is_some();
    let lifetime = grant.lifetime(Utc::now().naive_utc(), margin, renewable);
    let stored = state
        .blocking(move |conn, s| {
            let actor = who.actor();
            let outcome = RefreshOutcome::Refreshed { tokens: &grant.tokens, lifetime: &lifetime };
            operations::record_refresh(conn, &s.keyring, &actor, environment, id, version, &outcome)
        })
        .await?;
    tracing::info!(connection = %id, stored, "OAuth2 tokens refreshed");
    Ok(if stored { Refreshed::Done } else { Refreshed::ByAnother })
}

/// An answer that was not tokens may be a provider having a bad moment;
/// a refusal is not.
fn renewal_may_succeed_later(error: &TokenError) -> bool {
    error.is_transient() || matches!(error, TokenError::Unreadable { .. })
}

/// A renewal that did not give tokens.
struct Failure {
    tokens: TokenState,
    /// The status reason, when the provider refused for good.
    reason: String,
    transient: bool,
}

async fn record_failure(
    state: &Arc<AppState>,
    environment: Environment,
    id: ConnectionId,
    who: OwnedActor,
    failure: Failure,
) -> Result<Refreshed, RefreshError> {
    let Failure { tokens, reason, transient } = failure;
    let now = Utc::now().naive_utc();
    let version = tokens.token_version;
    let retry_at = retry_time(now, tokens.refresh_failures);
    tracing::warn!(connection = %id, "OAuth2 token renewal failed: {reason}");
    let stored_reason = reason.clone();
    state
        .blocking(move |conn, s| {
            let actor = who.actor();
            let outcome = if transient {
                RefreshOutcome::Postponed { reason: &stored_reason, retry_at }
            } else {
                RefreshOutcome::Refused { reason: &stored_reason, at: now }
            };
            operations::record_refresh(conn, &s.keyring, &actor, environment, id, version, &outcome)
        })
        .await?;
    Ok(if transient { Refreshed::Postponed(reason) } else { Refreshed::Refused(reason) })
}

/// After a failure: half a minute, doubling to at most an hour.
fn retry_time(now: NaiveDateTime, failures: i32) -> NaiveDateTime {
    let wait = Duration::from_secs(30)
        .saturating_mul(1u32 << failures.clamp(0, 7) as u32)
        .min(Duration::from_secs(3600));
    now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::hours(1))
}
