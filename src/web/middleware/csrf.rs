//! Every state-changing request must carry the session's CSRF token: in the
//! `X-CSRF-Token` header (htmx sends it from the `hx-headers` on <body>) or
//! as the `csrf_token` field of a form. Beside the token, a request whose
//! `Origin` (or else `Referer`) names another site is refused: a defence
//! that holds even if a token leaks. Checked by the access guards of
//! `middleware::auth`, which every route is registered behind, after they
//! decide who may ask (so a request without a session hears "sign in", not
//! "form expired").
//!
//! What the request looked like to the browser (its client address, the
//! scheme and host it addressed) is read here too: behind a reverse proxy
//! only the proxy knows, and only a proxy in `PLUGBOARD_TRUSTED_PROXIES`
//! is believed.

use std::net::IpAddr;

use actix_web::HttpRequest;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::{Method, StatusCode};
use actix_web::web::Bytes;
use subtle::ConstantTimeEq;

use crate::settings::TrustedProxies;
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
    if let Err(claimed) = same_origin(req.request()) {
        tracing::warn!(path = %req.path(), origin = ?claimed, "refused a request from another origin");
        let error = AppError::new(
            StatusCode::FORBIDDEN,
            "Request from another site",
            "This request was sent from another site, so nothing was changed. If you meant to do \
             this, open Plugboard at its own address and do it there.",
        );
        let response = crate::web::error::respond(req.request(), &error);
        return Err(req.into_response(response));
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

/// The client's address: the peer of the connection, or what a trusted
/// proxy says it is (see [`TrustedProxies::client`]). `None` only when the
/// peer is unknown (not over TCP).
pub fn client_address(req: &HttpRequest) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let forwarded: Vec<&str> =
        req.headers().get_all("x-forwarded-for").filter_map(|v| v.to_str().ok()).collect();
    Some(trusted_proxies(req).client(peer, &forwarded))
}

fn trusted_proxies(req: &HttpRequest) -> TrustedProxies {
    // Missing only in an app built without it: then nobody is trusted.
    req.app_data::<TrustedProxies>().cloned().unwrap_or_default()
}

/// `Ok` unless the request names an origin other than its own: by its
/// `Origin` header, or else its `Referer`. A request with neither (an old
/// browser, a privacy setting, a script) is judged by its token alone.
/// `Err` carries what was claimed, for the log.
fn same_origin(req: &HttpRequest) -> Result<(), String> {
    let headers = req.headers();
    let claimed = match text(headers, header::ORIGIN) {
        Some(origin) => origin,
        None => match text(headers, header::REFERER) {
            Some(referer) => referer,
            None => return Ok(()),
        },
    };
    // "null" (a sandboxed frame, a redirect across sites) and anything
    // unreadable name no origin of ours.
    let Ok(origin) = url::Url::parse(claimed).map(|u| u.origin()) else {
        return Err(claimed.to_owned());
    };
    if own_origins(req).contains(&origin) { Ok(()) } else { Err(claimed.to_owned()) }
}

/// Whether the request names this site as its origin (`Origin`, or else
/// `Referer`). Stricter than [`same_origin`]: naming none is not enough,
/// for what only our own pages may do without a token.
pub fn names_own_origin(req: &HttpRequest) -> bool {
    let headers = req.headers();
    let named = text(headers, header::ORIGIN).or_else(|| text(headers, header::REFERER)).is_some();
    named && same_origin(req).is_ok()
}

/// The origins the browser may have addressed this request to: the scheme
/// and `Host` it used (from a trusted proxy, its `X-Forwarded-Proto` and
/// `X-Forwarded-Host`, where the outermost proxy, the one the browser
/// reached, is first). Plugboard serves plain HTTP, yet a proxy that is
/// not trusted may have served the browser HTTPS; without a proxy's word
/// for the scheme, either is taken, for the very same host and port.
fn own_origins(req: &HttpRequest) -> Vec<url::Origin> {
    let headers = req.headers();
    let from_proxy = req.peer_addr().is_some_and(|peer| trusted_proxies(req).trusts(peer.ip()));
    let forwarded = |name: &str| {
        from_proxy.then(|| text(headers, name)).flatten().and_then(|v| v.split(',').next()).map(str::trim)
    };
    let host = forwarded("x-forwarded-host")
        .or_else(|| text(headers, header::HOST))
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    // Only a bare host[:port]: anything else could make the URL below name
    // a host other than the one written (`evil@host`, `host/path`).
    let Some(host) = host
        .filter(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_alphanumeric() || b".-_:[]".contains(&b)))
    else {
        return Vec::new();
    };
    let schemes: &[&str] = match forwarded("x-forwarded-proto").map(str::to_ascii_lowercase).as_deref() {
        Some("https") => &["https"],
        Some("http") => &["http"],
        _ => &["http", "https"],
    };
    schemes
        .iter()
        .filter_map(|scheme| url::Url::parse(&format!("{scheme}://{host}/")).ok())
        .map(|u| u.origin())
        .collect()
}

fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}
