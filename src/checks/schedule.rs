//! Running checks: on save, on demand, and in the background (the "due
//! checks" job in [`crate::jobs`]) on a schedule that is spread out and
//! backs off from unreachable services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use secrecy::SecretString;

use super::Outcome;
use crate::audit::{Actor, OwnedActor};
use crate::connections::tokens::{Lifetime, Tokens};
use crate::connections::{ConnectionId, Draft, Status, StatusReport, StoreError, operations, store};
use crate::environment::Environment;
use crate::state::{AppState, BlockingError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Save,
    Manual,
    Schedule,
    /// An automation through the API (`POST /api/v1/connections/{id}/check`).
    Api,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Save => "save",
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
            Trigger::Api => "api",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The database could not be reached in time: a page says so (503),
    /// not that Plugboard failed.
    #[error("{0} ({1})")]
    Unavailable(crate::db::Unavailable, String),
    #[error("{0}")]
    Internal(String),
}

impl From<BlockingError<StoreError>> for CheckError {
    fn from(e: BlockingError<StoreError>) -> CheckError {
        match e {
            BlockingError::Work(e) => CheckError::Store(e),
            BlockingError::Unavailable(why, detail) => CheckError::Unavailable(why, detail),
            other => CheckError::Internal(other.to_string()),
        }
    }
}

/// Checks one connection now and stores the result, audited as `actor`:
/// the person who asked, the API token that asked, or [`Actor::System`]
/// for the background schedule.
pub async fn check_now(
    state: &Arc<AppState>,
    environment: Environment,
    id: ConnectionId,
    trigger: Trigger,
    actor: &Actor<'_>,
) -> Result<StatusReport, CheckError> {
    let who = actor.owned();
    let started = Instant::now();
    let read = || state.blocking(move |conn, s| store::for_check(conn, &s.keyring, environment, id));
    let mut found = read().await;
    // An OAuth2 access token due for renewal is renewed first, so the check
    // proves the credentials rather than the clock. Judged on the tokens
    // just read, so that a connection without any (most of them) takes no
    // renewal lease, which costs two writes; the renewal judges again under
    // its lease.
    if let Ok(store::ForCheck { tokens: Some(tokens), .. }) = &found {
        if tokens.refresh_due(Utc::now().naive_utc()) {
            let owner = format!("check-{}", hex::encode(random_fraction().to_bits().to_le_bytes()));
            let renewal = crate::oauth::refresh::refresh_if_due(
                state.clone(),
                owner,
                environment,
                id,
                who.clone(),
                false,
            );
            if let Err(e) = renewal.await {
                tracing::warn!(connection = %id, "refresh before the check failed: {e}");
            }
            found = read().await;
        }
    }
    let (connection, secrets) = match found {
        Ok(store::ForCheck { connection, secrets, .. }) => (connection, secrets),
        // Stored credentials that cannot be opened prove nothing: say so
        // on the connection, never use them, never fail the request.
        Err(BlockingError::Work(e @ (StoreError::Crypto(_) | StoreError::Corrupt(_)))) => {
            let connection = state.blocking(move |conn, _| store::get(conn, environment, id)).await?;
            let reason = format!("cannot decrypt the stored credentials: {e}; enter them again");
            let checked = Checked::failed(
                environment,
                id,
                connection.version,
                connection.name,
                trigger,
                started,
                reason,
            );
            return record(state, checked, &who).await;
        }
        Err(e) => return Err(e.into()),
    };
    let proven =
        prove(state, &connection.component, &connection.auth_method, &connection.parameters, &secrets).await;
    drop(secrets);
    let checked = Checked {
        environment,
        id,
        version: connection.version,
        name: connection.name,
        report: proven.report,
        unreachable: proven.unreachable,
        trigger,
        started,
        issued: proven.issued,
    };
    record(state, checked, &who).await
}

/// What checking credentials found, before it is stored.
struct Proven {
    report: StatusReport,
    unreachable: bool,
    /// A token the check was issued (client credentials): kept like a
    /// sign-in's, renewed ahead of expiry by the token job.
    issued: Option<(Tokens, Lifetime)>,
}

/// Makes the component's check on credentials in plain text.
async fn prove(
    state: &AppState,
    component: &str,
    auth_method: &str,
    parameters: &BTreeMap<String, String>,
    secrets: &BTreeMap<String, SecretString>,
) -> Proven {
    let super::Proof { outcome, issued } = match state.catalog.get(component) {
        Some(component) => state.checker.check(component, auth_method, parameters, secrets).await,
        None => super::Proof {
            outcome: Outcome::Missing(format!("the component `{component}` is no longer in the catalog")),
            issued: None,
        },
    };
    let now = Utc::now().naive_utc();
    Proven {
        report: StatusReport { status: outcome.status(), reason: outcome.reason(), checked_at: Some(now) },
        unreachable: outcome.is_unreachable(),
        issued: issued.map(|grant| {
            let lifetime = grant.lifetime(now, None, true);
            (grant.tokens, lifetime)
        }),
    }
}

/// Creates a connection, checked first: its credentials are checked as
/// typed, before anything is stored, and the connection is saved with the
/// result in one transaction ([`operations::create`]), so it is never seen
/// unchecked. Returns its id and what the check found.
pub async fn create_checked(
    state: &Arc<AppState>,
    actor: &Actor<'_>,
    environment: Environment,
    component: &str,
    draft: Draft,
) -> Result<(ConnectionId, StatusReport), BlockingError<StoreError>> {
    let first = FirstCheck::make(state, component, &draft).await;
    let (who, key) = (actor.owned(), component.to_owned());
    let (report, unreachable) = (first.report.clone(), first.unreachable);
    let id = state
        .write(move |conn, s| {
            operations::create(conn, &s.keyring, &who.actor(), environment, &key, draft, &first.result())
        })
        .await?;
    crate::metrics::check(report.status.is_active(), unreachable);
    tracing::info!(connection = %id, component, environment = %environment.as_str(), "connection created");
    Ok((id, report))
}

/// A new connection's first check.
struct FirstCheck {
    report: StatusReport,
    unreachable: bool,
    duration_ms: i32,
    next_check_at: NaiveDateTime,
    issued: Option<(Tokens, Lifetime)>,
}

impl FirstCheck {
    /// Checks `draft`, the input of a new connection of `component`.
    async fn make(state: &AppState, component: &str, draft: &Draft) -> FirstCheck {
        let started = Instant::now();
        let Proven { report, unreachable, issued } =
            prove(state, component, &draft.auth_method, &draft.parameters, &draft.secrets).await;
        let now = report.checked_at.unwrap_or_else(|| Utc::now().naive_utc());
        tracing::info!(
            component,
            trigger = Trigger::Save.as_str(),
            status = report.status.as_str(),
            "checked before saving: {}",
            report.reason
        );
        FirstCheck {
            next_check_at: next_check(now, state.check_interval, unreachable, i32::from(unreachable)),
            duration_ms: i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX),
            report,
            unreachable,
            issued,
        }
    }

    /// The result as stored with the connection, whose first version is
    /// the one checked.
    fn result(&self) -> operations::CheckResult<'_> {
        operations::CheckResult {
            checked_version: 1,
            report: &self.report,
            trigger: Trigger::Save.as_str(),
            duration_ms: self.duration_ms,
            unreachable: self.unreachable,
            next_check_at: self.next_check_at,
            issued: self.issued.as_ref().map(|(tokens, lifetime)| (tokens, lifetime)),
        }
    }
}

/// A check's result, ready to be stored.
pub struct Checked {
    pub environment: Environment,
    pub id: ConnectionId,
    /// The version whose credentials were checked: the status changes only
    /// while the connection still has them.
    pub version: i32,
    /// For the audit trail.
    pub name: String,
    pub report: StatusReport,
    pub unreachable: bool,
    pub trigger: Trigger,
    pub started: Instant,
    /// A token the check was issued, to be stored with its result.
    pub issued: Option<(Tokens, Lifetime)>,
}

impl Checked {
    /// A result that proves nothing about the credentials, because the
    /// work failed before it could (an error or a panic inside Plugboard):
    /// NOT ACTIVE, with `reason` saying where the fault lies.
    pub fn failed(
        environment: Environment,
        id: ConnectionId,
        version: i32,
        name: String,
        trigger: Trigger,
        started: Instant,
        reason: String,
    ) -> Checked {
        Checked {
            environment,
            id,
            version,
            name,
            report: StatusReport {
                status: Status::NotActive,
                reason,
                checked_at: Some(Utc::now().naive_utc()),
            },
            unreachable: false,
            trigger,
            started,
            issued: None,
        }
    }
}

/// Stores a check's result: its history row, the connection's status
/// (guarded by the checked version), when to check next, and the audit row.
/// Every result goes through here, a check's own or a failed one's.
pub async fn record(
    state: &Arc<AppState>,
    checked: Checked,
    who: &OwnedActor,
) -> Result<StatusReport, CheckError> {
    // The name is the operation's to read, inside its transaction.
    let Checked { environment, id, version, name: _, report, unreachable, trigger, started, issued } =
        checked;
    let now = report.checked_at.unwrap_or_else(|| Utc::now().naive_utc());
    let failures = if unreachable { connection_failures(state, environment, id).await + 1 } else { 0 };
    let next = next_check(now, state.check_interval, unreachable, failures);
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let checked_version = version;
    let stored = report.clone();
    let who = who.clone();
    state
        .write(move |conn, s| {
            let actor = who.actor();
            let result = operations::CheckResult {
                checked_version,
                report: &stored,
                trigger: trigger.as_str(),
                duration_ms,
                unreachable,
                next_check_at: next,
                issued: issued.as_ref().map(|(tokens, lifetime)| (tokens, lifetime)),
            };
            operations::record_check(conn, &s.keyring, &actor, environment, id, &result)
        })
        .await?;
    crate::metrics::check(report.status.is_active(), unreachable);
    tracing::info!(connection = %id, environment = %environment.as_str(), trigger = trigger.as_str(),
        status = report.status.as_str(), "checked: {}", report.reason);
    Ok(report)
}

async fn connection_failures(state: &Arc<AppState>, environment: Environment, id: ConnectionId) -> i32 {
    state
        .blocking(move |conn, _| {
            use diesel::prelude::*;
            crate::db::schema::connections::table
                .filter(crate::db::schema::connections::id.eq(id.0))
                .filter(crate::db::schema::connections::environment.eq(environment.as_str()))
                .select(crate::db::schema::connections::check_failures)
                .first::<i32>(conn)
        })
        .await
        .unwrap_or(0)
}

/// When to check again: one interval later, less a random tenth so that
/// connections saved together drift apart; after an unreachable service,
/// sooner but doubling each time (a sixty-fourth of the interval, then a
/// thirty-second, ...), so a service that is down is not hammered and one
/// that comes back is noticed.
pub fn next_check(now: NaiveDateTime, interval: Duration, unreachable: bool, failures: i32) -> NaiveDateTime {
    let interval = effective(interval);
    let wait = if unreachable {
        let base = (interval / 64).max(Duration::from_secs(1));
        base.saturating_mul(1u32 << failures.clamp(0, 6) as u32).min(interval)
    } else {
        interval.mul_f64(1.0 - random_fraction() * 0.1)
    };
    now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::hours(6))
}

/// A first check time for a connection that has none: anywhere in the
/// next interval, so that many such connections do not come due at once.
pub fn first_check_time(now: NaiveDateTime, interval: Duration) -> NaiveDateTime {
    now + TimeDelta::from_std(effective(interval).mul_f64(random_fraction())).unwrap_or(TimeDelta::hours(6))
}

/// The interval checks are spread over: the configured one, or six hours
/// where background checks are off (checks made on demand still schedule
/// the next one).
pub fn effective(interval: Duration) -> Duration {
    if interval.is_zero() { Duration::from_secs(6 * 3600) } else { interval }
}

/// A number in [0, 1], for spreading work out in time.
pub(crate) fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}
