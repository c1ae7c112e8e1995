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

/// Ready for traffic: the database answers within a short limit, accepts a
/// write, and its schema is current (see `db::ready`). A pool busy with
/// requests is not a reason to be taken out of service: the probe does not
/// use the pool.
async fn readyz(state: State) -> HttpResponse {
    match state.probe.run().await {
        Ok(()) => HttpResponse::Ok().content_type("text/plain; charset=utf-8").body("ready\n"),
        Err(reason) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("not ready: {reason}\n")),
    }
}
