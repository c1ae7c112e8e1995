//! What runs around every request: the account, roles, CSRF and origin
//! checks, security headers, error pages.

pub mod auth;
pub mod csrf;
pub mod error_pages;
pub mod security;
