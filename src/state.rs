//! What the request handlers and the background schedule share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use crate::catalog::Catalog;
use crate::checks::Checker;
use crate::crypto::Keyring;
use crate::db::{ConnectHealth, DbConnection, Pool, PooledConnection, Probe, Unavailable, take_outage};

pub struct AppState {
    pub pool: Pool,
    /// Admission to `pool`: see [`AppState::blocking`].
    pub gate: DbGate,
    /// The readiness probe, with its own connection outside the pool.
    pub probe: Arc<Probe>,
    pub catalog: Catalog,
    pub keyring: Keyring,
    pub checker: Checker,
    /// How often each connection is checked in the background.
    pub check_interval: Duration,
    /// The OAuth2 redirect URI and the operator's OAuth apps.
    pub oauth: crate::oauth::Config,
    /// Each API token's rate limit, in this process.
    pub api_limiter: crate::api::RateLimiter,
    /// Where the API's credentials reads are recorded.
    pub usage: crate::api::usage::Recorder,
    /// Reads may run on the calling thread (SQLite): see [`AppState::read`].
    pub inline_reads: bool,
}

/// One permit per pooled connection, and how long database work waits for
/// one. tokio's semaphore is fair (first come, first served), so the
/// background jobs and the requests take turns: neither can starve the
/// other, and under overload both wait a bounded time, then give up.
pub struct DbGate {
    permits: Arc<Semaphore>,
    wait: Duration,
    connects: ConnectHealth,
}

impl DbGate {
    /// `permits` should be the pool's size; `wait` how long work may wait
    /// for a connection before it is told the database is busy.
    pub fn new(permits: u32, wait: Duration, connects: ConnectHealth) -> DbGate {
        DbGate { permits: Arc::new(Semaphore::new(permits.max(1) as usize)), wait, connects }
    }

    /// What a wait that ran out means: busy, or a database that cannot be
    /// reached at all.
    fn refusal<E>(&self, detail: String) -> BlockingError<E> {
        BlockingError::Unavailable(self.connects.timeout_means(), detail)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BlockingError<E> {
    /// No connection within the wait, or none could be opened. The detail
    /// is for the log only.
    #[error("{0} ({1})")]
    Unavailable(Unavailable, String),
    #[error("background task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Work(E),
}

impl AppState {
    /// Runs blocking database work off the async threads, with a pooled
    /// connection. Work first waits for a permit of the gate, as a future:
    /// a burst of requests queues there instead of each holding a thread
    /// that blocks in the pool (tokio would grow its blocking pool to 512
    /// threads for them). The whole wait, permit and connection, is bounded
    /// by the gate's wait, well under the pool's own timeout, so an
    /// overloaded or unreachable database is answered quickly.
    pub async fn blocking<T, E, F>(self: &Arc<Self>, work: F) -> Result<T, BlockingError<E>>
    where
        F: FnOnce(&mut DbConnection, &AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let started = Instant::now();
        let wait = self.gate.wait;
        let permit = match tokio::time::timeout(wait, self.gate.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => permit,
            // The semaphore is never closed; a closed one can only mean shutdown.
            Ok(Err(_)) => return Err(self.gate.refusal("the database gate is closed".into())),
            Err(_) => {
                crate::metrics::db_timeout();
                return Err(self
                    .gate
                    .refusal(format!("no connection was free within {} ms", wait.as_millis())));
            }
        };
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            // Held by the thread, not the future: a request given up by its
            // client still holds its connection until the work ends.
            let _permit = permit;
            let left = wait.saturating_sub(started.elapsed());
            let conn = state.pool.get_timeout(left).map_err(|e| {
                crate::metrics::db_timeout();
                state.gate.refusal(e.to_string())
            })?;
            crate::metrics::db_wait(started.elapsed());
            run(conn, &state, work)
        })
        .await
        .map_err(|e| BlockingError::Join(e.to_string()))?
    }

    /// Reading work, such as what a page shows: on SQLite it runs on the
    /// calling thread when a permit and a connection are free at once, as
    /// it then cannot wait (a WAL read takes no lock that a writer holds)
    /// and takes tens of microseconds. Handing it to a blocking thread and
    /// back cost more than the read itself: the thread switches were 40% of
    /// the server's time under load. Otherwise, and on PostgreSQL (every
    /// statement a network round trip), it is [`AppState::blocking`] work.
    /// The work must not write (a write can wait for SQLite's lock), and
    /// should be short and of bounded cost, as the worker serves nothing
    /// else meanwhile: a lookup by key, not a search. Its statements read
    /// one snapshot ([`crate::db::snapshot`]).
    pub async fn read<T, E, F>(self: &Arc<Self>, work: F) -> Result<T, BlockingError<E>>
    where
        F: FnOnce(&mut DbConnection, &AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + Send + 'static,
    {
        let work = move |conn: &mut DbConnection, state: &AppState| {
            crate::db::snapshot(conn, |conn| work(conn, state))
        };
        if self.inline_reads
            && let Ok(permit) = self.gate.permits.clone().try_acquire_owned()
        {
            if let Some(conn) = self.pool.try_get() {
                crate::metrics::db_wait(Duration::ZERO);
                // A panic fails this request alone, as on a blocking thread,
                // rather than the worker and every request it serves.
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(conn, self, work)))
                    .unwrap_or_else(|_| Err(BlockingError::Join("the read panicked".into())));
                drop(permit);
                return result;
            }
        }
        self.blocking(work).await
    }
}

/// Runs `work` on a pooled connection, telling an outage met by one of its
/// statements from the work's own failure.
fn run<T, E>(
    mut conn: PooledConnection,
    state: &AppState,
    work: impl FnOnce(&mut DbConnection, &AppState) -> Result<T, E>,
) -> Result<T, BlockingError<E>> {
    // Whatever an earlier user of this connection met is not this work's.
    take_outage(&mut conn);
    work(&mut conn, state).map_err(|e| match take_outage(&mut conn) {
        // Work that failed after one of its statements met an outage
        // failed because of it, whatever error it returned.
        Some((why, detail)) => BlockingError::Unavailable(why, detail),
        None => BlockingError::Work(e),
    })
}
