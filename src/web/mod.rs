//! The web layer: translates HTTP into calls on the domain modules and
//! renders their results. Nothing outside `web` imports from it.
//!
//! Routes are grouped by area (`connections`, `admin`, `account`); each
//! area registers its routes with the role they need. Pages are askama
//! templates; every page is also served as a fragment to htmx, which swaps
//! it in place.

mod account;
mod admin;
pub mod api;
pub mod assets;
mod connections;
pub mod context;
mod environment;
pub mod error;
mod form;
mod health;
pub mod metrics;
pub mod middleware;
mod time;

use actix_web::Resource;
use actix_web::middleware::from_fn;
use actix_web::web::{self, post};

use crate::db::DbConnection;
pub use crate::state::AppState;
pub use context::Ctx;
use error::AppError;

pub type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    assets::routes(cfg);
    health::routes(cfg);
    metrics::routes(cfg);
    account::routes(cfg);
    connections::routes(cfg);
    admin::routes(cfg);
    api::routes(cfg);
    cfg.service(
        resource("/environment")
            .wrap(from_fn(middleware::auth::signed_in))
            .route(post().to(environment::switch)),
    );
}

/// The Connections page's kept workspaces, shared by the workers.
pub fn list_cache() -> connections::list_cache::ListCache {
    connections::list_cache::ListCache::new()
}

/// A route's resource: asked with a method it does not answer, it says so
/// (405) rather than that nothing is there.
pub fn resource(path: &str) -> Resource {
    web::resource(path).default_service(web::to(error::method_not_allowed))
}

/// Runs blocking database work on the thread pool meant for it, through
/// the gate of [`AppState::blocking`]: a busy, unreachable, full or locked
/// database comes back as the 503 `AppError` that says so.
pub async fn db<T, F>(state: &State, work: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    state.clone().into_inner().blocking(work).await.map_err(AppError::from)
}

/// [`db`] for short write work, database statements only: on SQLite it is
/// committed together with the other writes waiting ([`AppState::write`]).
pub async fn db_write<T, F>(state: &State, work: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    state.clone().into_inner().write(work).await.map_err(AppError::from)
}

/// [`db`] for work that only reads, such as what a page shows: on SQLite
/// it runs on this thread when a connection is free ([`AppState::read`]).
pub async fn db_read<T, F>(state: &State, work: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    state.clone().into_inner().read(work).await.map_err(AppError::from)
}
