//! What runs around every request: the account, roles, CSRF and origin
//! checks, security headers, error pages, the request log and metrics.

pub mod auth;
pub mod csrf;
pub mod error_pages;
pub mod request_log;
pub mod security;
