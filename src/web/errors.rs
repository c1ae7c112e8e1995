//! Rendering an [`AppError`]: a whole page, or a fragment that htmx swaps
//! into the dialog.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::context::{html_response, wants_fragment};
use crate::error::AppError;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    error: &'a AppError,
}

#[derive(Template)]
#[template(path = "error_partial.html")]
struct ErrorFragment<'a> {
    error: &'a AppError,
}

fn render(template: &impl Template) -> String {
    // An error page that fails to render must not become a second error.
    template.render().unwrap_or_else(|_| "Plugboard could not finish this request.".to_owned())
}

pub fn page(error: &AppError) -> HttpResponse {
    html_response(error.status, render(&ErrorPage { error }))
}

pub fn fragment(error: &AppError) -> HttpResponse {
    html_response(error.status, render(&ErrorFragment { error }))
}

pub fn respond(req: &HttpRequest, error: &AppError) -> HttpResponse {
    if wants_fragment(req) { fragment(error) } else { page(error) }
}

/// Gives every error response Plugboard's own page (or, for htmx, its
/// fragment). Errors raised by actix itself (an unreadable query string, a
/// body over the size limit) carry internal wording, so they are replaced by
/// a message chosen by status.
pub async fn error_pages(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let res = next.call(req).await?;
    let Some(error) = res.response().error() else {
        return Ok(res.map_into_left_body());
    };
    let replacement = match error.as_error::<AppError>() {
        Some(app_error) if wants_fragment(res.request()) => fragment(app_error),
        Some(_) => return Ok(res.map_into_left_body()),
        None => {
            let status = res.status();
            tracing::info!(%status, path = %res.request().path(), "request refused: {error}");
            respond(res.request(), &framework_error(status))
        }
    };
    Ok(res.into_response(replacement).map_into_right_body())
}

pub fn framework_error(status: StatusCode) -> AppError {
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => {
            "What was sent is larger than Plugboard accepts. Shorten the long values and try again."
        }
        StatusCode::NOT_FOUND => "There is no page at this address. Go back to the connections list.",
        StatusCode::METHOD_NOT_ALLOWED => {
            "This address does not accept that kind of request. Use the links and buttons on the page."
        }
        s if s.is_server_error() => {
            return AppError::internal(format!("framework error with status {s}"));
        }
        _ => "Plugboard could not read this request. Reload the page and try again.",
    };
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::PAYLOAD_TOO_LARGE => "Too large",
        _ => "Bad request",
    };
    AppError::new(status, title, message)
}

/// Routes that do not exist.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(AppError::not_found("There is no page at this address. Go back to the connections list."))
}
