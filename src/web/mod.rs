//! The web layer: translates HTTP into calls on the domain modules and
//! renders their results. Pages are askama templates; every page is also
//! served as a fragment to htmx, which swaps it in place.

pub mod assets;
mod audit_page;
mod auth;
mod check;
mod connection_form;
mod context;
mod csrf;
mod delete;
mod environment_switch;
pub mod errors;
mod form;
mod health;
mod list;
mod people;
mod security;
mod tag_admin;
mod tagging;

use actix_web::web;

use crate::db::DbConnection;
use crate::error::AppError;
pub use crate::state::AppState;

pub use auth::require_user;
pub use context::Ctx;
pub use csrf::csrf_guard;
pub use security::security_headers;

pub type State = web::Data<AppState>;

pub fn routes(cfg: &mut web::ServiceConfig) {
    assets::routes(cfg);
    health::routes(cfg);
    auth::routes(cfg);
    people::routes(cfg);
    audit_page::routes(cfg);
    list::routes(cfg);
    environment_switch::routes(cfg);
    connection_form::routes(cfg);
    check::routes(cfg);
    delete::routes(cfg);
    tagging::routes(cfg);
    tag_admin::routes(cfg);
}

/// Runs blocking database work on the thread pool meant for it.
pub async fn db<T, F>(state: &State, work: F) -> Result<T, AppError>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<T, AppError> + Send + 'static,
    T: Send + 'static,
{
    state.clone().into_inner().blocking(work).await.map_err(|e| match e {
        crate::state::BlockingError::Work(e) => e,
        other => AppError::internal(other),
    })
}
