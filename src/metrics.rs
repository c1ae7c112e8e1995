//! What operators graph: request counts and latencies per route pattern,
//! database waits and timeouts, checks by outcome and background job
//! runs, in the Prometheus text format at `/metrics` (see
//! `web::metrics`). Recorded through the `metrics` crate's macros into one
//! process-wide recorder.
//!
//! Labels are always from a small, fixed set: a route's pattern
//! (`/connections/{id}/edit`), never its path or query, so neither ids nor
//! anything a user typed becomes a label.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const HTTP_REQUESTS: &str = "plugboard_http_requests_total";
pub const HTTP_SECONDS: &str = "plugboard_http_request_duration_seconds";
pub const DB_WAIT_SECONDS: &str = "plugboard_db_wait_seconds";
pub const DB_TIMEOUTS: &str = "plugboard_db_wait_timeouts_total";
pub const WRITE_GROUPS: &str = "plugboard_db_write_groups_total";
pub const WRITES: &str = "plugboard_db_writes_total";
pub const CHECKS: &str = "plugboard_checks_total";
pub const JOB_RUNS: &str = "plugboard_job_runs_total";

/// Latency buckets, in seconds: from a cached page to a slow check.
const BUCKETS: &[f64] = &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// The process's recorder, installed on first use. `None` if another
/// recorder was installed first (then nothing is recorded here).
pub fn handle() -> Option<&'static PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let installed = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .and_then(|b| b.install_recorder());
            match installed {
                Ok(handle) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::warn!("metrics are off: {e}");
                    None
                }
            }
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "Requests answered, by method, route pattern and status.");
    metrics::describe_histogram!(
        HTTP_SECONDS,
        metrics::Unit::Seconds,
        "Time to answer a request, by method and route pattern."
    );
    metrics::describe_histogram!(
        DB_WAIT_SECONDS,
        metrics::Unit::Seconds,
        "Time database work waited for a pooled connection."
    );
    metrics::describe_counter!(DB_TIMEOUTS, "Database work refused because no connection was free in time.");
    metrics::describe_counter!(
        WRITE_GROUPS,
        "SQLite transactions of grouped write work, by result (committed or failed)."
    );
    metrics::describe_counter!(
        WRITES,
        "Pieces of write work in those transactions (over the groups: their mean size)."
    );
    metrics::describe_counter!(CHECKS, "Connection checks recorded, by outcome.");
    metrics::describe_counter!(JOB_RUNS, "Background job rounds, by job and result.");
}

/// The text format, as of now.
pub fn render() -> String {
    match handle() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// Drains recorded latencies into their buckets, so that memory stays flat
/// between scrapes (the job runner calls it every round).
pub fn upkeep() {
    if let Some(handle) = handle() {
        handle.run_upkeep();
    }
}

pub fn request(method: &str, route: &str, status: u16, took: Duration) {
    let status = status.to_string();
    metrics::counter!(HTTP_REQUESTS, "method" => method.to_owned(), "route" => route.to_owned(), "status" => status)
        .increment(1);
    metrics::histogram!(HTTP_SECONDS, "method" => method.to_owned(), "route" => route.to_owned())
        .record(took.as_secs_f64());
}

pub fn db_wait(took: Duration) {
    metrics::histogram!(DB_WAIT_SECONDS).record(took.as_secs_f64());
}

pub fn db_timeout() {
    metrics::counter!(DB_TIMEOUTS).increment(1);
}

/// A group of write work ended (`crate::writes`).
pub fn write_group(pieces: usize, committed: bool) {
    metrics::counter!(WRITE_GROUPS, "result" => if committed { "committed" } else { "failed" }).increment(1);
    metrics::counter!(WRITES).increment(pieces as u64);
}

/// A check's result, counted once it is committed.
pub fn check(active: bool, unreachable: bool) {
    let outcome = match (unreachable, active) {
        (true, _) => "unreachable",
        (false, true) => "active",
        (false, false) => "not_active",
    };
    metrics::counter!(CHECKS, "outcome" => outcome).increment(1);
}

pub fn job_run(job: &str, ok: bool) {
    metrics::counter!(JOB_RUNS, "job" => job.to_owned(), "result" => if ok { "ok" } else { "error" })
        .increment(1);
}
