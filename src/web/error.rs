//! The one error type handlers return, and how it is shown.
//!
//! An [`AppError`] carries what the user is told (a status, a title, a
//! message saying what to do next) apart from the cause, which is logged
//! with an id and never shown. Domain modules have their own error types;
//! the `From` impls here decide what each means for a person in a browser.
//! Validation problems are not `AppError`s: they go back to the form beside
//! their fields (see `web::connections::form`).

use std::any::Any;
use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use askama::Template;

use crate::connections::StoreError;
use crate::db::Unavailable;
use crate::web::context::{Layout, html_response, wants_fragment};

pub struct AppError {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
    /// Set for server-side failures: the id in the log line beside the cause.
    pub incident: Option<String>,
    /// Seconds after which trying again is worth it (`Retry-After`), for 503s.
    pub retry_after: Option<u32>,
}

impl AppError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> AppError {
        AppError { status, title, message: message.into(), incident: None, retry_after: None }
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "Bad request", message)
    }

    pub fn connection_not_found() -> AppError {
        AppError::not_found(
            "There is no such connection in this environment. It may have been deleted, or it is \
             in another environment: on the connections list, choose that environment with the \
             switch at the top.",
        )
    }

    /// The database is overloaded or out of service: not a bug, so the
    /// person is told what is wrong and when to try again (503 with
    /// `Retry-After`). The cause goes to the log; it may name the database's
    /// address, so it is never shown.
    pub fn unavailable(why: Unavailable, cause: impl fmt::Display) -> AppError {
        tracing::warn!("database unavailable ({why}): {cause}");
        let (title, message) = match why {
            Unavailable::Busy => (
                "Plugboard is busy",
                "Plugboard is busy: every database connection is in use. Try again in a few seconds.",
            ),
            Unavailable::NotAnswering => (
                "Database not answering",
                "The database is not answering. Nothing was saved; try again in a minute, and tell \
                 your administrator if it lasts.",
            ),
            Unavailable::DiskFull => {
                ("Disk full", "The disk is full: nothing was saved. Tell your administrator.")
            }
            Unavailable::Locked => (
                "Database locked",
                "The database is locked by another program (a backup or a database tool, perhaps), \
                 so nothing was saved. Try again in a moment; if it lasts, tell your administrator.",
            ),
        };
        AppError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            title,
            message: message.into(),
            incident: None,
            retry_after: Some(why.retry_after_secs()),
        }
    }

    /// A failure on our side. The cause goes to the log under a fresh id;
    /// the user gets the id and nothing of the cause. A database outage
    /// handed over as it is (a handler passing on a domain error) is still
    /// told as the outage it is.
    pub fn internal(cause: impl fmt::Display + 'static) -> AppError {
        if let Some(why) = database_error(&cause).and_then(Unavailable::of_query) {
            return AppError::unavailable(why, cause);
        }
        // The request's id, which is on its log lines; outside a request
        // (a background job's error) a fresh one.
        let incident = crate::web::middleware::request_log::current_request_id()
            .unwrap_or_else(crate::web::middleware::request_log::new_id);
        tracing::error!(incident = %incident, "request failed: {cause}");
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            message: format!(
                "Plugboard could not finish this request. Try again in a moment; if it keeps \
                 happening, give your administrator the error id {incident}."
            ),
            incident: Some(incident),
            retry_after: None,
        }
    }
}

/// The database error inside a cause, for the error types that carry one.
fn database_error(cause: &dyn Any) -> Option<&diesel::result::Error> {
    if let Some(e) = cause.downcast_ref::<diesel::result::Error>() {
        return Some(e);
    }
    if let Some(StoreError::Database(e)) = cause.downcast_ref::<StoreError>() {
        return Some(e);
    }
    if let Some(crate::accounts::AccountError::Database(e)) =
        cause.downcast_ref::<crate::accounts::AccountError>()
    {
        return Some(e);
    }
    if let Some(crate::tag_admin::TagAdminError::Database(e)) =
        cause.downcast_ref::<crate::tag_admin::TagAdminError>()
    {
        return Some(e);
    }
    None
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppError({}: {})", self.status, self.message)
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    /// A full page without the request's context; the `error_pages`
    /// middleware renders it again with the request (layout, or a fragment
    /// for htmx).
    fn error_response(&self) -> HttpResponse {
        page(&Layout::anonymous(self.title), self)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> AppError {
        match e {
            StoreError::NotFound => AppError::connection_not_found(),
            StoreError::Conflict => AppError::new(
                StatusCode::CONFLICT,
                "Changed by someone else",
                "Someone else changed this connection since you opened it, so nothing was saved. \
                 Reload it to see the latest version, then make your change again.",
            ),
            StoreError::TooManyTags => AppError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Too many tags",
                format!(
                    "A connection can have at most {} tags. Remove one before adding another.",
                    crate::connections::input::MAX_TAGS
                ),
            ),
            StoreError::Database(e) => AppError::from(e),
            other => AppError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> AppError {
        match Unavailable::of_query(&e) {
            Some(why) => AppError::unavailable(why, e),
            None => AppError::internal(e),
        }
    }
}

impl<E: fmt::Display> From<crate::state::BlockingError<E>> for AppError
where
    E: Into<AppError>,
{
    fn from(e: crate::state::BlockingError<E>) -> AppError {
        match e {
            crate::state::BlockingError::Work(e) => e.into(),
            crate::state::BlockingError::Unavailable(why, detail) => AppError::unavailable(why, detail),
            crate::state::BlockingError::Join(detail) => {
                AppError::internal(format!("background task failed: {detail}"))
            }
        }
    }
}

impl From<crate::accounts::AccountError> for AppError {
    fn from(e: crate::accounts::AccountError) -> AppError {
        match e {
            crate::accounts::AccountError::NotFound => AppError::not_found("There is no such account."),
            crate::accounts::AccountError::Database(e) => AppError::from(e),
            other => AppError::internal(other),
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    layout: &'a Layout<'a>,
    error: &'a AppError,
}

#[derive(Template)]
#[template(path = "error_partial.html")]
struct ErrorFragment<'a> {
    error: &'a AppError,
    /// htmx shows error fragments in the dialog, where the button closes
    /// it rather than leading anywhere.
    in_dialog: bool,
}

fn render(template: &impl Template) -> String {
    // An error page that fails to render must not become a second error.
    template.render().unwrap_or_else(|_| "Plugboard could not finish this request.".to_owned())
}

pub fn page(layout: &Layout, error: &AppError) -> HttpResponse {
    with_retry_after(html_response(error.status, render(&ErrorPage { layout, error })), error)
}

pub fn fragment(error: &AppError) -> HttpResponse {
    with_retry_after(html_response(error.status, render(&ErrorFragment { error, in_dialog: true })), error)
}

fn with_retry_after(mut response: HttpResponse, error: &AppError) -> HttpResponse {
    if let Some(seconds) = error.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The error as this request wants it: a fragment for htmx, else a page.
pub fn respond(req: &HttpRequest, error: &AppError) -> HttpResponse {
    if wants_fragment(req) { fragment(error) } else { page(&Layout::of(req, error.title), error) }
}

/// Errors raised by actix itself (an unreadable query string, a body over
/// the size limit) carry internal wording; this is what is said instead.
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
        StatusCode::METHOD_NOT_ALLOWED => "Not allowed here",
        _ => "Bad request",
    };
    AppError::new(status, title, message)
}

/// Routes that do not exist.
pub async fn not_found() -> Result<HttpResponse, AppError> {
    Err(framework_error(StatusCode::NOT_FOUND))
}

/// A route that exists, asked with a method it does not answer.
pub async fn method_not_allowed() -> Result<HttpResponse, AppError> {
    Err(framework_error(StatusCode::METHOD_NOT_ALLOWED))
}
