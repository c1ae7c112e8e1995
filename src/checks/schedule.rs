//! Running checks: on save, on demand, and in the background on a schedule
//! that is spread out, bounded, and backs off from unreachable services.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use futures_util::StreamExt;

use super::Outcome;
use crate::accounts::User;
use crate::audit::Actor;
use crate::connections::{ConnectionId, StatusReport, StoreError, operations, store};
use crate::environment::Environment;
use crate::leases;
use crate::state::{AppState, BlockingError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    Save,
    Manual,
    Schedule,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Save => "save",
            Trigger::Manual => "manual",
            Trigger::Schedule => "schedule",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<BlockingError<StoreError>> for CheckError {
    fn from(e: BlockingError<StoreError>) -> CheckError {
        match e {
            BlockingError::Work(e) => CheckError::Store(e),
            other => CheckError::Internal(other.to_string()),
        }
    }
}

/// Checks one connection now and stores the result.
/// `who` is the person who asked; `None` for the background schedule.
pub async fn check_now(
    state: &Arc<AppState>,
    environment: Environment,
    id: ConnectionId,
    trigger: Trigger,
    who: Option<&User>,
) -> Result<StatusReport, CheckError> {
    let (connection, secrets) =
        state.blocking(move |conn, s| store::for_check(conn, &s.keyring, environment, id)).await?;
    let started = Instant::now();
    let outcome = match state.catalog.get(&connection.component) {
        Some(component) => state.checker.check(component, &connection, &secrets).await,
        None => {
            Outcome::Missing(format!("the component `{}` is no longer in the catalog", connection.component))
        }
    };
    drop(secrets);
    let now = Utc::now().naive_utc();
    let report = StatusReport { status: outcome.status(), reason: outcome.reason(), checked_at: Some(now) };
    let unreachable = outcome.is_unreachable();
    let failures = if unreachable { connection_failures(state, environment, id).await + 1 } else { 0 };
    let next = next_check(now, state.check_interval, unreachable, failures);
    let duration_ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
    let checked_version = connection.version;
    let stored = report.clone();
    let who = who.cloned();
    state
        .blocking(move |conn, _| {
            let actor = who.as_ref().map_or(Actor::System, Actor::Person);
            let result = operations::CheckResult {
                checked_version,
                report: &stored,
                trigger: trigger.as_str(),
                duration_ms,
                unreachable,
                next_check_at: next,
            };
            operations::record_check(conn, &actor, environment, id, &result)
        })
        .await?;
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
    let interval = if interval.is_zero() { Duration::from_secs(6 * 3600) } else { interval };
    let wait = if unreachable {
        let base = (interval / 64).max(Duration::from_secs(1));
        base.saturating_mul(1u32 << failures.clamp(0, 6) as u32).min(interval)
    } else {
        interval.mul_f64(1.0 - random_fraction() * 0.1)
    };
    now + TimeDelta::from_std(wait).unwrap_or(TimeDelta::hours(6))
}

fn random_fraction() -> f64 {
    let mut bytes = [0u8; 4];
    let _ = getrandom::fill(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX)
}

/// Stops the background schedule when dropped.
pub struct Schedule {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Schedule {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts the background schedule on a thread of its own, so that checks
/// never compete with requests for the web workers.
pub fn start(state: Arc<AppState>, concurrency: usize) -> std::io::Result<Schedule> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let owner = format!(
        "plugboard-{}-{}",
        std::process::id(),
        hex::encode(random_fraction().to_bits().to_le_bytes())
    );
    std::thread::Builder::new().name("plugboard-checks".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                tracing::error!("the background checks could not start: {e}");
                return;
            }
        };
        runtime.block_on(async move {
            let tick = (state.check_interval / 20).clamp(Duration::from_millis(100), Duration::from_secs(30));
            loop {
                if let Err(e) = run_due(&state, &owner, concurrency.max(1)).await {
                    tracing::warn!("background checks: {e}");
                }
                tokio::select! {
                    _ = tokio::time::sleep(tick) => {}
                    _ = stopped.changed() => return,
                }
            }
        });
    })?;
    Ok(Schedule { stop })
}

/// One round: every due connection whose lease `owner` gets. Several
/// processes may run rounds at the same time; each due check runs once.
pub async fn run_due(state: &Arc<AppState>, owner: &str, concurrency: usize) -> Result<(), CheckError> {
    let now = Utc::now().naive_utc();
    let spread = TimeDelta::from_std(state.check_interval.mul_f64(random_fraction())).unwrap_or_default();
    let due = state
        .blocking(move |conn, _| {
            store::schedule_unscheduled(conn, now + spread)?;
            store::due_for_check(conn, now, 256)
        })
        .await
        .map_err(|e| CheckError::Internal(e.to_string()))?;
    let lease_for = TimeDelta::from_std(state.checker.timeout() * 3).unwrap_or(TimeDelta::minutes(1));
    futures_util::stream::iter(due)
        .for_each_concurrent(concurrency, |due| async move {
            let name = format!("check:{}", due.id);
            let owner_name = owner.to_owned();
            let lease = name.clone();
            // Another process may have checked it since the list was read:
            // with the lease held, make sure it is still due.
            let acquired = state
                .blocking(move |conn, _| {
                    if !leases::try_acquire(conn, &lease, &owner_name, Utc::now().naive_utc() + lease_for)? {
                        return Ok(false);
                    }
                    if store::is_due(conn, due.id, now)? {
                        return Ok(true);
                    }
                    leases::release(conn, &lease, &owner_name)?;
                    Ok::<_, diesel::result::Error>(false)
                })
                .await;
            if !matches!(acquired, Ok(true)) {
                return;
            }
            if let Err(e) = check_now(state, due.environment, due.id, Trigger::Schedule, None).await {
                tracing::warn!(connection = %due.id, "background check failed: {e}");
            }
            let owner_name = owner.to_owned();
            let _ = state.blocking(move |conn, _| leases::release(conn, &name, &owner_name)).await;
        })
        .await;
    Ok(())
}
