//! Background work: named jobs run in rounds on a thread of their own, so
//! that they never compete with requests for the web workers. Today one job,
//! the due checks; token refreshes are next.
//!
//! Several Plugboard processes may share one database, so work on a
//! connection is claimed by lease ([`crate::leases`]) and done by whoever
//! gets it: claim, make the HTTP call, then write the result under the
//! connection's version. No database transaction is open across the call.
//!
//! A unit of work (one connection's check) that fails or panics is recorded
//! on its connection like any other result, NOT ACTIVE with a reason, and
//! the round goes on; a job whose round fails runs again next round. Nothing
//! a job does stops the runner.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDateTime, TimeDelta, Utc};
use diesel::prelude::*;
use futures_util::{FutureExt, StreamExt};

use crate::audit::{Actor, OwnedActor};
use crate::checks::schedule::{self, CheckError, Checked, Trigger, random_fraction};
use crate::connections::{ConnectionId, StoreError, store, tokens};
use crate::db::DbConnection;
use crate::environment::Environment;
use crate::leases;
use crate::oauth::refresh;
use crate::state::{AppState, BlockingError};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a round or a unit of work failed. Its words go to the log, so they
/// must hold no secret; what is recorded on a connection never repeats them.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("database: {0}")]
    Database(String),
    /// The connection was deleted while its unit waited or ran: nothing to
    /// record it on, and nothing wrong.
    #[error("the connection is gone")]
    Gone,
    #[error("{0}")]
    Failed(String),
}

impl From<CheckError> for JobError {
    fn from(e: CheckError) -> JobError {
        match e {
            CheckError::Store(StoreError::NotFound) => JobError::Gone,
            other => JobError::Failed(other.to_string()),
        }
    }
}

impl<E: std::fmt::Display> From<BlockingError<E>> for JobError {
    fn from(e: BlockingError<E>) -> JobError {
        JobError::Database(e.to_string())
    }
}

/// Background work that runs in rounds.
pub trait Job: Send + Sync {
    /// For the log.
    fn name(&self) -> &str;

    /// One round: finds the work there is and does what this process can
    /// claim of it, through [`Context::each_connection`].
    fn run_once<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), JobError>>;
}

/// What a job's round is given.
pub struct Context {
    pub state: Arc<AppState>,
    /// Whom leases are taken for: this process.
    owner: String,
    /// Most units of work at once.
    concurrency: usize,
}

/// How a job's units of work are claimed, and recorded when they fail.
pub struct Units {
    /// Leases are named `{lease}:{connection id}`.
    pub lease: &'static str,
    /// The work, in a failed unit's reason: "the {what} failed inside
    /// Plugboard: ...".
    pub what: &'static str,
    /// Longer than a unit can take, so that a crashed holder's claim ends
    /// without blocking the work for long.
    pub lease_for: Duration,
    /// The trigger a failed unit's result is recorded with.
    pub trigger: Trigger,
    /// Asked with the lease held: another process may have done the work
    /// since the candidates were listed.
    pub still_wanted: fn(&mut DbConnection, ConnectionId, NaiveDateTime) -> QueryResult<bool>,
}

/// One connection's share of a job, claimed for this process.
#[derive(Debug, Clone, Copy)]
pub struct Unit {
    pub environment: Environment,
    pub id: ConnectionId,
    /// The connection's version when it was claimed.
    pub version: i32,
}

impl Context {
    pub fn new(state: Arc<AppState>, owner: &str, concurrency: usize) -> Context {
        Context { state, owner: owner.to_owned(), concurrency: concurrency.max(1) }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes the lease `name` for `duration`, if it is free, expired or
    /// already this process's.
    pub async fn claim(&self, name: &str, duration: Duration) -> Result<bool, JobError> {
        let (name, owner, until) = (name.to_owned(), self.owner.clone(), from_now(duration));
        Ok(self.state.blocking(move |conn, _| leases::try_acquire(conn, &name, &owner, until)).await?)
    }

    pub async fn release(&self, name: &str) -> Result<(), JobError> {
        let (name, owner) = (name.to_owned(), self.owner.clone());
        Ok(self.state.blocking(move |conn, _| leases::release(conn, &name, &owner)).await?)
    }

    /// Runs `work` for each candidate connection this process can claim,
    /// `concurrency` at a time. A unit whose work fails or panics is logged
    /// and recorded on its connection; the others go on regardless.
    pub async fn each_connection<F, Fut>(
        &self,
        units: &Units,
        candidates: Vec<(Environment, ConnectionId)>,
        work: F,
    ) where
        F: Fn(Unit) -> Fut + Sync,
        Fut: Future<Output = Result<(), JobError>> + Send,
    {
        let work = &work;
        futures_util::stream::iter(candidates)
            .for_each_concurrent(self.concurrency, |(environment, id)| async move {
                self.one_unit(units, environment, id, work).await;
            })
            .await;
    }

    async fn one_unit<F, Fut>(&self, units: &Units, environment: Environment, id: ConnectionId, work: &F)
    where
        F: Fn(Unit) -> Fut + Sync,
        Fut: Future<Output = Result<(), JobError>> + Send,
    {
        let lease = format!("{}:{id}", units.lease);
        let claimed = match self.claim_unit(units, &lease, environment, id).await {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(connection = %id, "could not claim {lease}: {e}");
                return;
            }
        };
        let (version, name) = claimed;
        let started = Instant::now();
        let unit = Unit { environment, id, version };
        // The call is inside the future, so that a panic before the work's
        // first await is caught as well.
        let failure = match AssertUnwindSafe(async { work(unit).await }).catch_unwind().await {
            Ok(Ok(())) => None,
            Ok(Err(JobError::Gone)) => {
                tracing::debug!(connection = %id, "{lease}: the connection was deleted meanwhile");
                None
            }
            Ok(Err(e)) => {
                tracing::warn!(connection = %id, "{lease} failed: {e}");
                Some("internal error".to_owned())
            }
            Err(payload) => {
                let why = panic_words(payload.as_ref());
                tracing::error!(connection = %id, "{lease} panicked: {why}");
                Some(why)
            }
        };
        if let Some(why) = failure {
            let reason = format!("the {} failed inside Plugboard: {why}", units.what);
            let checked = Checked::failed(environment, id, version, name, units.trigger, started, reason);
            if let Err(e) = schedule::record(&self.state, checked, &OwnedActor::System).await {
                tracing::warn!(connection = %id, "could not record the failure of {lease}: {e}");
            }
        }
        if let Err(e) = self.release(&lease).await {
            // It expires on its own.
            tracing::warn!(connection = %id, "could not release {lease}: {e}");
        }
    }

    /// The lease on one connection's work, and the connection's version and
    /// name, if this process gets the lease and the work is still wanted.
    async fn claim_unit(
        &self,
        units: &Units,
        lease: &str,
        environment: Environment,
        id: ConnectionId,
    ) -> Result<Option<(i32, String)>, JobError> {
        let (lease, owner, until) = (lease.to_owned(), self.owner.clone(), from_now(units.lease_for));
        let still_wanted = units.still_wanted;
        let claimed = self
            .state
            .blocking(move |conn, _| {
                if !leases::try_acquire(conn, &lease, &owner, until)? {
                    return Ok(None);
                }
                if still_wanted(conn, id, Utc::now().naive_utc())? {
                    use crate::db::schema::connections as c;
                    let row = c::table
                        .filter(c::id.eq(id.0))
                        .filter(c::environment.eq(environment.as_str()))
                        .select((c::version, c::name))
                        .first::<(i32, String)>(conn)
                        .optional()?;
                    if row.is_some() {
                        return Ok(row);
                    }
                }
                leases::release(conn, &lease, &owner)?;
                Ok::<_, diesel::result::Error>(None)
            })
            .await?;
        Ok(claimed)
    }
}

fn from_now(duration: Duration) -> NaiveDateTime {
    Utc::now().naive_utc() + TimeDelta::from_std(duration).unwrap_or(TimeDelta::minutes(1))
}

/// A panic, in words fit for a status reason and a log line. Only text
/// written into the program is repeated: a formatted message may carry
/// whatever was formatted into it, a secret included.
fn panic_words(payload: &(dyn Any + Send)) -> String {
    const MAX: usize = 120;
    match payload.downcast_ref::<&'static str>() {
        Some(text) => {
            let line = text.lines().next().unwrap_or_default().trim();
            match line.char_indices().nth(MAX) {
                Some((cut, _)) => format!("{}…", &line[..cut]),
                None if line.is_empty() => "internal error".to_owned(),
                None => line.to_owned(),
            }
        }
        None => "internal error".to_owned(),
    }
}

/// The due checks: every connection whose next check time has come.
pub struct DueChecks;

impl Job for DueChecks {
    fn name(&self) -> &str {
        "due checks"
    }

    fn run_once<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let state = &cx.state;
            let now = Utc::now().naive_utc();
            // Connections never scheduled get a time each, somewhere in the
            // next interval, so that many of them do not all come due at once.
            // 500 a round keeps the write short.
            let unscheduled = state.read(|conn, _| store::unscheduled(conn, 500)).await?;
            if !unscheduled.is_empty() {
                let interval = state.check_interval;
                let spread = move || schedule::first_check_time(now, interval);
                state.write(move |conn, _| store::schedule(conn, &unscheduled, spread)).await?;
            }
            let due = state.read(move |conn, _| store::due_for_check(conn, now, 256)).await?;
            let units = Units {
                lease: "check",
                what: "check",
                lease_for: state.checker.timeout() * 3,
                trigger: Trigger::Schedule,
                still_wanted: store::is_due,
            };
            let candidates = due.into_iter().map(|d| (d.environment, d.id)).collect();
            cx.each_connection(&units, candidates, |unit| async move {
                schedule::check_now(&cx.state, unit.environment, unit.id, Trigger::Schedule, &Actor::System)
                    .await?;
                Ok(())
            })
            .await;
            Ok(())
        })
    }
}

/// The due token refreshes: every OAuth2 connection whose access token
/// comes within its margin of expiry.
pub struct TokenRefreshes;

impl Job for TokenRefreshes {
    fn name(&self) -> &str {
        "token refreshes"
    }

    fn run_once<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let state = &cx.state;
            let now = Utc::now().naive_utc();
            let due = state.blocking(move |conn, _| tokens::due(conn, now, 256)).await?;
            let units = Units {
                lease: "refresh",
                what: "token refresh",
                lease_for: state.checker.outbound().limit() * 3,
                trigger: Trigger::Schedule,
                still_wanted: tokens::is_due,
            };
            cx.each_connection(&units, due, |unit| async move {
                refresh::refresh_if_due(
                    cx.state.clone(),
                    cx.owner().to_owned(),
                    unit.environment,
                    unit.id,
                    OwnedActor::System,
                    false,
                )
                .await
                .map_err(|e| JobError::Database(e.to_string()))?;
                Ok(())
            })
            .await;
            Ok(())
        })
    }
}

/// One round of the token refreshes as `owner`.
pub async fn run_refreshes(state: &Arc<AppState>, owner: &str, concurrency: usize) -> Result<(), JobError> {
    TokenRefreshes.run_once(&Context::new(state.clone(), owner, concurrency)).await
}

/// One round of the due checks as `owner`. Several processes may run
/// rounds at the same time; each due check runs once.
pub async fn run_due(state: &Arc<AppState>, owner: &str, concurrency: usize) -> Result<(), JobError> {
    DueChecks.run_once(&Context::new(state.clone(), owner, concurrency)).await
}

/// Stops the runner when dropped (after the round in progress).
pub struct Runner {
    stop: tokio::sync::watch::Sender<bool>,
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Starts Plugboard's background jobs, a round every twentieth of the check
/// interval (between 0.1 and 30 s).
pub fn start(state: Arc<AppState>, concurrency: usize) -> std::io::Result<Runner> {
    let tick = (state.check_interval / 20).clamp(Duration::from_millis(100), Duration::from_secs(30));
    start_with(state, vec![Arc::new(TokenRefreshes), Arc::new(DueChecks)], concurrency, tick)
}

/// Starts a runner for `jobs`, each run once per round, a round every
/// `tick`.
pub fn start_with(
    state: Arc<AppState>,
    jobs: Vec<Arc<dyn Job>>,
    concurrency: usize,
    tick: Duration,
) -> std::io::Result<Runner> {
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    // Unique per process and start, so that two processes never mistake
    // each other's leases for their own.
    let owner = format!(
        "plugboard-{}-{}",
        std::process::id(),
        hex::encode(random_fraction().to_bits().to_le_bytes())
    );
    let cx = Context::new(state, &owner, concurrency);
    crate::state::spawn_own_thread("plugboard-jobs", "the background jobs", move || async move {
        loop {
            for job in &jobs {
                run_round(job.as_ref(), &cx).await;
            }
            crate::metrics::upkeep();
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = stopped.changed() => return,
            }
        }
    })?;
    Ok(Runner { stop })
}

async fn run_round(job: &dyn Job, cx: &Context) {
    let ok = match AssertUnwindSafe(async { job.run_once(cx).await }).catch_unwind().await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::warn!(job = job.name(), "background job failed: {e}");
            false
        }
        Err(payload) => {
            tracing::error!(job = job.name(), "background job panicked: {}", panic_words(payload.as_ref()));
            false
        }
    };
    crate::metrics::job_run(job.name(), ok);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_panic_text_written_into_the_program_is_repeated() {
        let literal: Box<dyn Any + Send> = Box::new("index out of range\nmore");
        assert_eq!(panic_words(literal.as_ref()), "index out of range");
        let formatted: Box<dyn Any + Send> = Box::new(format!("bad key {}", "sk_live_123"));
        assert_eq!(panic_words(formatted.as_ref()), "internal error");
        let long: &'static str = "x".repeat(500).leak();
        let long: Box<dyn Any + Send> = Box::new(long);
        assert_eq!(panic_words(long.as_ref()).chars().count(), 121);
        let other: Box<dyn Any + Send> = Box::new(42);
        assert_eq!(panic_words(other.as_ref()), "internal error");
    }
}
