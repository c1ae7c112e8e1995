//! The one error type handlers return.
//!
//! An [`AppError`] carries what the user is told (a status, a title, a
//! message saying what to do next) apart from the cause, which is logged
//! with an id and never shown. Validation problems are not `AppError`s: they
//! go back to the form beside their fields (see `web::connection_form`).

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

use crate::connections::StoreError;

pub struct AppError {
    pub status: StatusCode,
    pub title: &'static str,
    pub message: String,
    /// Set for server-side failures: the id in the log line beside the cause.
    pub incident: Option<String>,
}

impl AppError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> AppError {
        AppError { status, title, message: message.into(), incident: None }
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, "Not found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, "Bad request", message)
    }

    pub fn connection_not_found() -> AppError {
        AppError::not_found(
            "There is no such connection in this environment. It may have been deleted, \
             or it belongs to another environment: switch environment at the top of the page.",
        )
    }

    /// A failure on our side. The cause goes to the log under a fresh id;
    /// the user gets the id and nothing of the cause.
    pub fn internal(cause: impl fmt::Display) -> AppError {
        let mut bytes = [0u8; 4];
        // The id only correlates a page with a log line; if the random source
        // fails, a constant still lets the log be searched by time.
        let incident =
            getrandom::fill(&mut bytes).map(|_| hex::encode(bytes)).unwrap_or_else(|_| "00000000".into());
        tracing::error!(incident = %incident, "request failed: {cause}");
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            title: "Something went wrong",
            message: format!(
                "Plugboard could not finish this request. Try again in a moment; if it keeps \
                 happening, give your administrator the error id {incident}."
            ),
            incident: Some(incident),
        }
    }
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

    /// A full page; `web::errors` swaps in a fragment for htmx requests.
    fn error_response(&self) -> HttpResponse {
        crate::web::errors::page(self)
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
            other => AppError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for AppError {
    fn from(e: diesel::result::Error) -> AppError {
        AppError::internal(e)
    }
}
