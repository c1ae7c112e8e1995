//! `/metrics`: the Prometheus text format, for signed-in admins and for the
//! addresses in `PLUGBOARD_METRICS_ALLOW` (a Prometheus server has no
//! session). Everyone else is refused: route names and volumes say what
//! an installation is used for.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::web::{self, get};
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use crate::accounts::{Role, User};
use crate::settings::AddressRanges;
use crate::web::error::{AppError, respond};
use crate::web::middleware::csrf::client_address;
use crate::web::resource;

/// The addresses that may scrape without signing in.
#[derive(Clone, Default)]
pub struct MetricsAllow(pub AddressRanges);

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(resource("/metrics").route(get().to(metrics)));
}

async fn metrics(req: HttpRequest) -> HttpResponse {
    let allowed = req.app_data::<MetricsAllow>().cloned().unwrap_or_default();
    let from_allowed = client_address(&req).is_some_and(|ip| allowed.0.contains(ip));
    let admin = req.extensions().get::<User>().is_some_and(|u| u.can(Role::Admin) && !u.must_change_password);
    if !(from_allowed || admin) {
        let error = AppError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            "Metrics are open to admins, and to the addresses in PLUGBOARD_METRICS_ALLOW. Sign in as an \
             admin, or ask one to add your Prometheus server's address.",
        );
        return respond(&req, &error);
    }
    HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        ))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .body(crate::metrics::render())
}
