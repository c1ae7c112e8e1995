//! Who is asking, and may they.
//!
//! [`load_user`] runs on every request: it puts the signed-in [`User`] on
//! the request (or ends a session whose account may no longer use it). The
//! access a route needs is declared where the route is registered, with one
//! of [`anyone`], [`signed_in`], [`members_only`] or [`admins_only`]
//! wrapped around its scope or resource. Each guard then checks the CSRF
//! token of a state-changing request. The role guards fail closed: no user
//! on the request means no access, whatever the reason.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};

use super::csrf;
use crate::accounts::{self, Role, User};
use crate::web::State;
use crate::web::context::{UserSession, see_other, wants_fragment};
use crate::web::error::{AppError, respond};

/// Assets and probes: answered without looking at the account at all. So
/// is the API: a session cookie never opens it, only its bearer token.
fn needs_no_account(path: &str) -> bool {
    path.starts_with("/static/")
        || path.starts_with("/icons/")
        || is_api(path)
        || matches!(path, "/healthz" | "/readyz")
}

/// The JSON API, which answers its own errors (`web::api`).
pub fn is_api(path: &str) -> bool {
    path.strip_prefix(crate::web::api::PREFIX).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Loads the signed-in account onto the request. A session whose account
/// was disabled, deleted or signed out elsewhere loses its account here.
pub async fn load_user(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    if needs_no_account(req.path()) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let session = UserSession::of(req.request());
    let Some((id, epoch)) = session.user() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let Some(state) = req.app_data::<State>().cloned() else {
        return refuse(req, AppError::internal("the application state is missing"));
    };
    let found = state.into_inner().read(move |conn, _| accounts::get(conn, accounts::UserId(id))).await;
    match found {
        Ok(user) if !user.disabled && user.session_epoch == epoch => {
            req.extensions_mut().insert(user);
        }
        // A database failure is a failure, not a reason to sign someone out.
        Err(crate::state::BlockingError::Work(accounts::AccountError::NotFound)) | Ok(_) => {
            session.forget_user();
        }
        Err(e) => return refuse(req, AppError::from(e)),
    }
    Ok(next.call(req).await?.map_into_left_body())
}

/// Pages for people not signed in (sign-in, setup): only the CSRF check.
pub async fn anyone(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    match csrf::verify(req).await {
        Ok(req) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => Ok(refusal.map_into_right_body()),
    }
}

/// Any signed-in account.
pub async fn signed_in(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    guard(Role::Viewer, req, next).await
}

/// Members and admins: whatever changes connections.
pub async fn members_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    guard(Role::Member, req, next).await
}

/// Admins: people, tags, the audit trail.
pub async fn admins_only(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    guard(Role::Admin, req, next).await
}

/// Where a person with a password chosen for them may still go.
fn allowed_before_password_change(path: &str) -> bool {
    matches!(path, "/account/password" | "/sign-out")
}

async fn guard(
    needed: Role,
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let user = req.extensions().get::<User>().cloned();
    let Some(user) = user else {
        let mut req = req;
        let fresh_install = match req.app_data::<State>().cloned() {
            Some(state) => match state.into_inner().blocking(|conn, _| accounts::count(conn)).await {
                Ok(people) => people == 0,
                Err(e) => return refuse(req, AppError::from(e)),
            },
            None => return refuse(req, AppError::internal("the application state is missing")),
        };
        let kept = !fresh_install && crate::web::connections::draft::keep(&mut req).await;
        let response = anonymous(req.request(), fresh_install, kept);
        return Ok(req.into_response(response).map_into_right_body());
    };
    if user.must_change_password && !allowed_before_password_change(req.path()) {
        if *req.method() == Method::GET && !wants_fragment(req.request()) {
            return Ok(req.into_response(see_other("/account/password")).map_into_right_body());
        }
        let error =
            AppError::new(StatusCode::FORBIDDEN, "New password needed", "Choose a new password first.");
        return refuse(req, error);
    }
    if !user.can(needed) {
        tracing::info!(user = %user.id, path = %req.path(), "refused: needs the {} role", needed.label());
        let error = AppError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!(
                "Your role ({}) cannot do this; it needs {}. Ask an admin if you should.",
                user.role.label(),
                needed.label()
            ),
        );
        return refuse(req, error);
    }
    match csrf::verify(req).await {
        Ok(req) => Ok(next.call(req).await?.map_into_left_body()),
        Err(refusal) => Ok(refusal.map_into_right_body()),
    }
}

fn refuse<B>(
    req: ServiceRequest,
    error: AppError,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let response = respond(req.request(), &error);
    Ok(req.into_response(response).map_into_right_body())
}

/// Pages go to sign-in (or to setup on a fresh install). A form sent
/// after its session ended gets the sign-in page saying so (401), and htmx
/// a 401 with a redirect to it instead of an error swapped in; `kept`
/// says the form's non-secret input waits for after the sign-in.
fn anonymous(req: &HttpRequest, fresh_install: bool, kept: bool) -> HttpResponse {
    let target = if fresh_install { "/setup" } else { "/sign-in" };
    let hx_target = if fresh_install { "/setup" } else { "/sign-in?ended=1" };
    if *req.method() == Method::GET && !wants_fragment(req) {
        return see_other(target);
    }
    if !fresh_install && !wants_fragment(req) {
        return crate::web::account::sign_in::ended_page(req, kept);
    }
    let error = AppError::new(
        StatusCode::UNAUTHORIZED,
        "Sign in",
        if fresh_install {
            "Plugboard has no accounts yet: open it in a browser to create the first admin."
        } else {
            "Your session has ended. Sign in again, then repeat what you were doing."
        },
    );
    let mut response = respond(req, &error);
    response
        .headers_mut()
        .insert(header::HeaderName::from_static("hx-redirect"), HeaderValue::from_static(hx_target));
    response
}
