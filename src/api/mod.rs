//! The Connections API's domain: the tokens automations present, what each
//! may do and which connections it reaches, the per-token rate limit, and
//! who read which connection's credentials. The HTTP side is
//! `web::api`; the connections themselves stay `connections`' business.

pub mod rate_limit;
pub mod tokens;
pub mod usage;

use std::fmt;

pub use rate_limit::RateLimiter;
pub use tokens::{ApiToken, ApiTokenId, Issued, NewToken, Refusal, TokenError};

/// What a token may do. Stored by [`Permission::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Permission {
    ReadMetadata,
    ReadCredentials,
    RunChecks,
}

impl Permission {
    pub const ALL: [Permission; 3] =
        [Permission::ReadMetadata, Permission::ReadCredentials, Permission::RunChecks];

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::ReadMetadata => "read_metadata",
            Permission::ReadCredentials => "read_credentials",
            Permission::RunChecks => "run_checks",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Permission::ReadMetadata => "Read connection metadata",
            Permission::ReadCredentials => "Read credentials",
            Permission::RunChecks => "Run checks",
        }
    }

    pub fn parse(s: &str) -> Option<Permission> {
        Permission::ALL.into_iter().find(|p| p.as_str() == s)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The longest consumer name recorded (`X-Plugboard-Consumer`).
pub const MAX_CONSUMER_CHARS: usize = 100;

/// A consumer name as sent, or why it cannot be recorded. Control
/// characters would make the edit view and the audit trail lie.
pub fn consumer_name(sent: &str) -> Result<String, String> {
    let name = sent.trim();
    if name.is_empty() {
        return Err(
            "X-Plugboard-Consumer is empty: name the automation calling (for example invoice-sync), \
                    or leave the header out to be recorded under the token's name."
                .to_owned(),
        );
    }
    if name.chars().count() > MAX_CONSUMER_CHARS || name.chars().any(char::is_control) {
        return Err(format!(
            "X-Plugboard-Consumer must be at most {MAX_CONSUMER_CHARS} printable characters; shorten it."
        ));
    }
    Ok(name.to_owned())
}
