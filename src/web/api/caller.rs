//! Who is calling the API: the bearer token (never a session cookie: the
//! session is not even read under /api), the consumer it names, and
//! whether the token may do what it asks.

use std::time::Instant;

use actix_web::HttpRequest;
use actix_web::http::header;
use secrecy::{ExposeSecret, SecretString};

use super::error::ApiError;
use crate::api::{self, ApiToken, Permission, tokens};
use crate::db::DbConnection;
use crate::state::AppState;

/// The header that names the automation calling.
pub const CONSUMER_HEADER: &str = "x-plugboard-consumer";

/// Tokens are far shorter; anything longer is no token of ours and is not
/// worth hashing.
const MAX_TOKEN_CHARS: usize = 256;

/// What a request presents, read before any database work.
pub struct Presented {
    token: SecretString,
    consumer: Option<String>,
}

/// A caller the token admits.
pub struct Caller {
    pub token: ApiToken,
    /// As the header named it, or the token's name.
    pub consumer: String,
}

impl Presented {
    pub fn of(req: &HttpRequest) -> Result<Presented, ApiError> {
        let value = req.headers().get(header::AUTHORIZATION).ok_or_else(ApiError::missing_token)?;
        let text = value.to_str().map_err(|_| ApiError::missing_token())?;
        let (scheme, token) = text.split_once(' ').ok_or_else(ApiError::missing_token)?;
        let token = token.trim();
        if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
            return Err(ApiError::missing_token());
        }
        let token = if token.len() > MAX_TOKEN_CHARS {
            SecretString::from(String::new())
        } else {
            SecretString::from(token.to_owned())
        };
        let consumer = match req.headers().get(CONSUMER_HEADER) {
            None => None,
            Some(value) => {
                let text = value.to_str().map_err(|_| {
                    ApiError::bad_request(
                        "X-Plugboard-Consumer must be plain ASCII text, such as invoice-sync.",
                    )
                })?;
                Some(api::consumer_name(text).map_err(ApiError::bad_request)?)
            }
        };
        Ok(Presented { token, consumer })
    }

    /// The caller, if the token opens the API now, is within its rate
    /// limit and has `needed`. Runs on a blocking thread with the
    /// request's database connection.
    pub fn admit(
        self,
        conn: &mut DbConnection,
        state: &AppState,
        needed: Permission,
    ) -> Result<Caller, ApiError> {
        let secret = self.token.expose_secret();
        if secret.is_empty() {
            return Err(ApiError::refused(tokens::Refusal::Unknown));
        }
        let token = tokens::authenticate(conn, secret)?.map_err(ApiError::refused)?;
        if let Err(wait) = state.api_limiter.admit(token.id, Instant::now()) {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(ApiError::rate_limited(state.api_limiter.per_minute(), seconds.max(1)));
        }
        if !token.may(needed) {
            return Err(ApiError::forbidden(needed));
        }
        let consumer = self.consumer.unwrap_or_else(|| token.name.clone());
        Ok(Caller { token, consumer })
    }
}
