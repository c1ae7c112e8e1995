//! What the request handlers and the background schedule share.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

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
    /// The database is SQLite: reads may run on the calling thread, and
    /// writes are grouped (see [`AppState::read`] and [`AppState::write`]).
    pub sqlite: bool,
    /// Where [`AppState::write`] queues work on SQLite.
    pub writes: crate::writes::Writes,
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
        let permit = self.permit().await?;
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            // Held by the thread, not the future: a request given up by its
            // client still holds its connection until the work ends.
            let _permit = permit;
            let conn = state.connection(started)?;
            run(conn, &state, work)
        })
        .await
        .map_err(|e| BlockingError::Join(e.to_string()))?
    }

    /// Short write work (database statements only: no password hashing,
    /// no request to a service). On SQLite it is committed together with
    /// the other write work waiting at the time ([`crate::writes`]); on
    /// PostgreSQL it is [`AppState::blocking`] work. Either way it runs in
    /// a transaction of its own or a savepoint: an error undoes all of it.
    pub async fn write<T, E, F>(self: &Arc<Self>, work: F) -> Result<T, BlockingError<E>>
    where
        F: FnOnce(&mut DbConnection, &AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<diesel::result::Error> + Send + 'static,
    {
        if self.sqlite {
            return self.writes.run(self.gate.wait, work).await;
        }
        self.blocking(move |conn, state| diesel::Connection::transaction(conn, |conn| work(conn, state)))
            .await
    }

    /// A permit of the gate and a pooled connection, for a thread of
    /// Plugboard's own that may block on the pool (the writer's).
    pub(crate) async fn checkout<E>(
        &self,
    ) -> Result<(OwnedSemaphorePermit, PooledConnection), BlockingError<E>> {
        let started = Instant::now();
        let permit = self.permit().await?;
        Ok((permit, self.connection(started)?))
    }

    /// Waits for a permit of the gate, at most the gate's wait.
    async fn permit<E>(&self) -> Result<OwnedSemaphorePermit, BlockingError<E>> {
        let wait = self.gate.wait;
        match tokio::time::timeout(wait, self.gate.permits.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one can only mean shutdown.
            Ok(Err(_)) => Err(self.gate.refusal("the database gate is closed".into())),
            Err(_) => {
                crate::metrics::db_timeout();
                Err(self.gate.refusal(format!("no connection was free within {} ms", wait.as_millis())))
            }
        }
    }

    /// A pooled connection, waiting (blocking this thread) for what is left
    /// of the gate's wait since `started`.
    fn connection<E>(&self, started: Instant) -> Result<PooledConnection, BlockingError<E>> {
        let left = self.gate.wait.saturating_sub(started.elapsed());
        let conn = self.pool.get_timeout(left).map_err(|e| {
            crate::metrics::db_timeout();
            self.gate.refusal(e.to_string())
        })?;
        crate::metrics::db_wait(started.elapsed());
        Ok(conn)
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
        if self.sqlite
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

/// Runs what `work` makes on a thread of its own, on a single-threaded
/// runtime, until it ends: the background jobs and the writers, which must
/// neither wait for the request workers nor hold them up. `what` names it
/// in the log should the runtime not start.
pub fn spawn_own_thread<F, Fut>(name: &str, what: &'static str, work: F) -> std::io::Result<()>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    std::thread::Builder::new().name(name.to_owned()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime.block_on(work()),
            Err(e) => tracing::error!("{what} could not start: {e}"),
        }
    })?;
    Ok(())
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
