//! One log line and one metrics sample per request, under a request id.
//! The id is on every log line written while the request is answered (a
//! tracing span), and an error page's id is this id, so a person's "error
//! id 3f9c01ab" finds the request's lines.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

/// The id of the request being answered on this task, if any.
pub fn current_request_id() -> Option<String> {
    REQUEST_ID.try_with(Clone::clone).ok()
}

/// Eight random hex digits: enough to tell a day's requests apart in a log.
pub fn new_id() -> String {
    let mut bytes = [0u8; 4];
    // The id only correlates lines; if the random source fails, a constant
    // still lets the log be searched by time.
    getrandom::fill(&mut bytes).map(|_| hex::encode(bytes)).unwrap_or_else(|_| "00000000".into())
}

/// Method, route pattern (never the path's ids, the query or the body,
/// which may hold what users typed), status and time taken.
pub async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let id = new_id();
    let span = tracing::info_span!("request", id = %id);
    let method = req.method().clone();
    let res = REQUEST_ID.scope(id, next.call(req)).instrument(span.clone()).await?;
    // Known only once routing has run; requests no route matched share one
    // label, so a scan of random paths cannot grow the metrics.
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let status = res.status().as_u16();
    let took = started.elapsed();
    crate::metrics::request(method.as_str(), &route, status, took);
    span.in_scope(|| {
        tracing::info!(target: "plugboard::http", "{method} {route} {status} {:.1} ms", took.as_secs_f64() * 1000.0)
    });
    Ok(res)
}
