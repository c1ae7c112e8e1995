//! Every state-changing request must carry the session's CSRF token: in the
//! `X-CSRF-Token` header (htmx sends it from the `hx-headers` on <body>) or
//! as the `csrf_token` field of a form. Checked here, once, for every route,
//! so no handler can forget it.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use subtle::ConstantTimeEq;

use super::context::UserSession;
use crate::error::AppError;

pub const HEADER: &str = "x-csrf-token";
pub const FIELD: &str = "csrf_token";

pub async fn csrf_guard(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.call(req).await?.map_into_left_body());
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
                let error = super::errors::framework_error(e.as_response_error().status_code());
                let response = super::errors::respond(req.request(), &error);
                return Ok(req.into_response(response).map_into_right_body());
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
        let response = super::errors::respond(req.request(), &error);
        return Ok(req.into_response(response).map_into_right_body());
    }
    Ok(next.call(req).await?.map_into_left_body())
}
