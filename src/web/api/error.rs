//! The API's errors: JSON with a machine-readable `error`, a `message`
//! that says what to do next, and for a connection that needs attention
//! its status `reason`. Never a credential: messages are written here, and
//! a cause from inside Plugboard goes to the log under an incident id.

use std::fmt;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{Permission, Refusal};
use crate::connections::StoreError;
use crate::state::BlockingError;

/// What every refusal and failure answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `bad_request`, `reconnect_needed`, `unusable_credentials`,
    /// `rate_limited`, `unavailable` or `internal`.
    pub error: &'static str,
    /// What went wrong and what to do about it, in words.
    pub message: String,
    /// Why the connection cannot give working credentials (its status
    /// reason), on 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody { error, message: message.into(), reason: None },
            retry_after: None,
        }
    }

    pub fn missing_token() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Send an API token as `Authorization: Bearer <token>`. Admins create tokens on Plugboard's \
             API tokens page; a browser session does not open the API.",
        )
    }

    pub fn refused(refusal: Refusal) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refusal.message())
    }

    pub fn forbidden(missing: Permission) -> ApiError {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "This token may not do this: it needs the `{missing}` permission ({}). Ask an admin for a \
                 token that has it.",
                missing.label()
            ),
        )
    }

    pub fn connection_not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "There is no such connection for this token: it may have been deleted, or it is in another \
             environment or outside the token's limits. List the connections this token reaches with \
             GET /api/v1/connections.",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// The connection cannot give working credentials until a person acts.
    pub fn reconnect_needed(reason: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::CONFLICT,
            "reconnect_needed",
            "This connection needs to be signed in again: open it in Plugboard and click Reconnect, then \
             call again.",
        );
        error.body.reason = Some(reason.into());
        error
    }

    /// Credentials stored or configured so that they cannot be used.
    pub fn unusable(reason: impl Into<String>) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::CONFLICT,
            "unusable_credentials",
            "This connection's credentials cannot be used as they are: open it in Plugboard, fix what the \
             reason says and save, then call again.",
        );
        error.body.reason = Some(reason.into());
        error
    }

    pub fn rate_limited(per_minute: u32, retry_after: u64) -> ApiError {
        let mut error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "This token made more than {per_minute} calls in a minute. Wait {retry_after} s (Retry-After) \
                 and call again, or keep the credentials you got for as long as they are valid."
            ),
        );
        error.retry_after = Some(retry_after);
        error
    }

    pub fn unavailable(message: impl Into<String>, retry_after: u64) -> ApiError {
        let mut error = ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message);
        error.retry_after = Some(retry_after);
        error
    }

    /// A failure inside Plugboard: the cause is logged under an id, the
    /// caller gets the id. It is the request's id, which is on the
    /// request's log lines (as an error page's is); off the request's task
    /// (in its database work) a fresh one.
    pub fn internal(cause: impl fmt::Display) -> ApiError {
        use crate::web::middleware::request_log;
        let incident = request_log::current_request_id().unwrap_or_else(request_log::new_id);
        tracing::error!(incident = %incident, "API call failed: {cause}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!(
                "Plugboard could not finish this call. Try again in a moment; if it keeps happening, give \
                 your administrator the error id {incident}."
            ),
        )
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status.as_u16(), self.body.error, self.body.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        res.insert_header((header::CACHE_CONTROL, "no-store"));
        if self.status == StatusCode::UNAUTHORIZED {
            res.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"plugboard\""),
            ));
        }
        if let Some(seconds) = self.retry_after {
            res.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        res.json(&self.body)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e {
            StoreError::NotFound => ApiError::connection_not_found(),
            StoreError::Crypto(_) | StoreError::Corrupt(_) => {
                ApiError::unusable(format!("cannot decrypt the stored credentials ({e}); enter them again"))
            }
            other => ApiError::internal(other),
        }
    }
}

impl From<diesel::result::Error> for ApiError {
    fn from(e: diesel::result::Error) -> ApiError {
        ApiError::from(StoreError::Database(e))
    }
}

impl<E: Into<ApiError>> From<BlockingError<E>> for ApiError {
    fn from(e: BlockingError<E>) -> ApiError {
        match e {
            BlockingError::Work(e) => e.into(),
            BlockingError::Unavailable(why, detail) => {
                tracing::warn!("database unavailable ({why}) for an API call: {detail}");
                ApiError::unavailable(
                    format!("Plugboard cannot reach its database right now ({why}); call again shortly."),
                    u64::from(why.retry_after_secs()),
                )
            }
            BlockingError::Join(detail) => ApiError::internal(detail),
        }
    }
}
