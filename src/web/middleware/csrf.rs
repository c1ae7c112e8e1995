//! Every state-changing request must carry the session's CSRF token: in the
//! `X-CSRF-Token` header (htmx sends it from the `hx-headers` on <body>) or
//! as the `csrf_token` field of a form. Checked by the access guards of
//! `middleware::auth`, which every route is registered behind, after they
//! decide who may ask (so a request without a session hears "sign in", not
//! "form expired").

use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use subtle::ConstantTimeEq;

use crate::web::context::UserSession;
use crate::web::error::AppError;

pub const HEADER: &str = "x-csrf-token";
pub const FIELD: &str = "csrf_token";

/// Gives a safe request back untouched, and a state-changing one back only
/// if it carries the session's token (its body restored for the handler);
/// otherwise the refusal to send.
pub async fn verify(mut req: ServiceRequest) -> Result<ServiceRequest, ServiceResponse> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(req);
    }
    let expected = UserSession::of(req.request()).stored_csrf_token();
    let mut presented = req.headers().get(HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    if presented.is_none() {
        // Read the form body for its token, then put the body back for the
        // handler. The app's PayloadConfig bounds how much is read.
        let body = match req.extract::<Bytes>().await {
            Ok(body) => body,
            Err(e) => {
                // Too large or unreadable: answered here, with the headers
                // every response carries, rather than escaping as an error.
                let error = crate::web::error::framework_error(e.as_response_error().status_code());
                let response = crate::web::error::respond(req.request(), &error);
                return Err(req.into_response(response));
            }
        };
        presented = form_urlencoded::parse(&body).find(|(k, _)| k == FIELD).map(|(_, v)| v.into_owned());
        let (_, mut payload) = actix_http::h1::Payload::create(true);
        payload.unread_data(body);
        req.set_payload(payload.into());
    }
    let valid = match (expected, presented) {
        (Some(expected), Some(presented)) => bool::from(expected.as_bytes().ct_eq(presented.as_bytes())),
        _ => false,
    };
    if !valid {
        tracing::warn!(path = %req.path(), "refused a request without a valid CSRF token");
        let error = AppError::new(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This request did not carry a valid security token, so nothing was changed. \
             Reload the page and try again.",
        );
        let response = crate::web::error::respond(req.request(), &error);
        return Err(req.into_response(response));
    }
    Ok(req)
}
