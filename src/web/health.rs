//! Probes for load balancers and orchestrators.

use actix_web::{HttpResponse, web};

use crate::web::State;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz)).route("/readyz", web::get().to(readyz));
}

/// The process is up and serving.
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ok\n")
}

/// The database answers and its schema is current: ready for traffic.
async fn readyz(state: State) -> HttpResponse {
    let verdict =
        state.into_inner().blocking(|conn, _| crate::db::check_ready(conn)).await.map_err(|e| match e {
            crate::state::BlockingError::Work(reason) => reason,
            other => other.to_string(),
        });
    match verdict {
        Ok(()) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready\n"),
        Err(reason) => {
            tracing::warn!("not ready: {reason}");
            HttpResponse::ServiceUnavailable()
                .content_type("text/plain; charset=utf-8")
                .body(format!("not ready: {reason}\n"))
        }
    }
}
