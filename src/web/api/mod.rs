//! The Connections API under `/api/v1`: JSON for automations, opened only
//! by an API token (`Authorization: Bearer`). The session is never read
//! here (see `middleware::auth::needs_no_account`) and no CSRF token is
//! asked: a bearer token is not something a browser sends on its own.
//!
//! The routes are one table, [`ROUTES`], registered as they are listed;
//! the OpenAPI document ([`openapi`]) is generated from the handlers'
//! annotations, and a test checks that the two agree.

mod caller;
mod connections;
mod error;
mod openapi;

use actix_web::Route;
use actix_web::http::{Method, StatusCode};
use actix_web::web;

use crate::db::DbConnection;
use crate::state::AppState;
pub use error::{ApiError, ErrorBody};

pub type State = web::Data<AppState>;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

/// A route: its path under [`PREFIX`], its method, and how it is made.
type Served = (&'static str, Method, fn() -> Route);

/// Every route the API serves.
const ROUTES: [Served; 5] = [
    ("/openapi.json", Method::GET, || web::get().to(openapi::document)),
    ("/connections", Method::GET, || web::get().to(connections::list)),
    ("/connections/{id}", Method::GET, || web::get().to(connections::get)),
    ("/connections/{id}/credentials", Method::GET, || web::get().to(connections::credentials)),
    ("/connections/{id}/check", Method::POST, || web::post().to(connections::check)),
];

/// The routes served, as (method, full path), for the test that compares
/// them with the OpenAPI document.
pub fn served() -> Vec<(String, String)> {
    ROUTES.iter().map(|(path, method, _)| (method.as_str().to_owned(), format!("{PREFIX}{path}"))).collect()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    let mut scope = web::scope(PREFIX)
        .app_data(web::QueryConfig::default().error_handler(|e, _| {
            ApiError::bad_request(format!("The query string cannot be read: {e}. See /api/v1/openapi.json."))
                .into()
        }))
        .app_data(web::PathConfig::default().error_handler(|_, _| ApiError::connection_not_found().into()))
        .default_service(web::to(no_such_route));
    let mut paths: Vec<&str> = ROUTES.iter().map(|(path, _, _)| *path).collect();
    paths.dedup();
    for path in paths {
        let mut resource = web::resource(path).default_service(web::to(method_not_allowed));
        for (_, _, route) in ROUTES.iter().filter(|(p, _, _)| *p == path) {
            resource = resource.route(route());
        }
        scope = scope.service(resource);
    }
    cfg.service(scope);
}

async fn no_such_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "There is no such API route. The routes are described in /api/v1/openapi.json.",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This route does not answer this method. The routes are described in /api/v1/openapi.json.",
    )
}

impl actix_web::Responder for ApiError {
    type Body = actix_web::body::BoxBody;

    fn respond_to(self, _: &actix_web::HttpRequest) -> actix_web::HttpResponse {
        actix_web::ResponseError::error_response(&self)
    }
}

/// Blocking database work for an API call, through the same gate as the
/// pages' (`AppState::blocking`): an outage answers 503 in JSON.
async fn api_db<T, F>(state: &State, work: F) -> Result<T, ApiError>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<T, ApiError> + Send + 'static,
    T: Send + 'static,
{
    state.clone().into_inner().blocking(work).await.map_err(ApiError::from)
}

/// A random name for a lease holder.
fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    hex::encode(bytes)
}
