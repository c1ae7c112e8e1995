//! What the request handlers and the background schedule share.

use std::time::Duration;

use crate::catalog::Catalog;
use crate::checks::Checker;
use crate::crypto::Keyring;
use crate::db::{DbConnection, Pool};

pub struct AppState {
    pub pool: Pool,
    pub catalog: Catalog,
    pub keyring: Keyring,
    pub checker: Checker,
    /// How often each connection is checked in the background.
    pub check_interval: Duration,
    /// The OAuth2 redirect URI and the operator's OAuth apps.
    pub oauth: crate::oauth::Config,
}

#[derive(Debug, thiserror::Error)]
pub enum BlockingError<E> {
    #[error("database pool: {0}")]
    Pool(String),
    #[error("background task failed: {0}")]
    Join(String),
    #[error(transparent)]
    Work(E),
}

impl AppState {
    /// Runs blocking database work off the async threads.
    pub async fn blocking<T, E, F>(self: &std::sync::Arc<Self>, work: F) -> Result<T, BlockingError<E>>
    where
        F: FnOnce(&mut DbConnection, &AppState) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: Send + 'static,
    {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = state.pool.get().map_err(|e| BlockingError::Pool(e.to_string()))?;
            work(&mut conn, &state).map_err(BlockingError::Work)
        })
        .await
        .map_err(|e| BlockingError::Join(e.to_string()))?
    }
}
