//! Per-request context: the session's environment and CSRF token, and
//! whether htmx asked for a fragment.

use std::future::{Ready, ready};

use actix_session::{Session, SessionExt};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{FromRequest, HttpMessage, HttpRequest, HttpResponse, dev::Payload};
use askama::Template;

use crate::accounts::User;
use crate::audit::Actor;
use crate::environment::Environment;
use crate::web::error::AppError;

const ENVIRONMENT_KEY: &str = "environment";
const CSRF_KEY: &str = "csrf";
const USER_KEY: &str = "user";
const EPOCH_KEY: &str = "epoch";
const NOTICE_KEY: &str = "notice";
const LIST_KEY: &str = "list";
const DRAFT_KEY: &str = "draft";

/// The typed session: its keys are defined here and nowhere else.
pub struct UserSession(Session);

impl UserSession {
    pub fn of(req: &HttpRequest) -> UserSession {
        UserSession(req.get_session())
    }

    pub fn environment(&self) -> Environment {
        self.0
            .get::<String>(ENVIRONMENT_KEY)
            .ok()
            .flatten()
            .and_then(|s| Environment::parse(&s))
            .unwrap_or_default()
    }

    pub fn set_environment(&self, environment: Environment) -> Result<(), AppError> {
        self.0.insert(ENVIRONMENT_KEY, environment.as_str()).map_err(AppError::internal)
    }

    /// The session's CSRF token, created on first use.
    pub fn csrf_token(&self) -> String {
        if let Ok(Some(token)) = self.0.get::<String>(CSRF_KEY) {
            return token;
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).expect("the operating system's random source");
        let token = hex::encode(bytes);
        // A session that cannot be written fails the next CSRF check, which
        // says to reload: nothing is lost by ignoring the error here.
        let _ = self.0.insert(CSRF_KEY, &token);
        token
    }

    /// The signed-in account's id and the session epoch it signed in at.
    pub fn user(&self) -> Option<(i64, i32)> {
        let id = self.0.get::<i64>(USER_KEY).ok().flatten()?;
        let epoch = self.0.get::<i32>(EPOCH_KEY).ok().flatten()?;
        Some((id, epoch))
    }

    /// Signs in: a new session id (against fixation), a new CSRF token.
    pub fn sign_in(&self, id: i64, epoch: i32) -> Result<(), AppError> {
        self.0.renew();
        self.0.remove(CSRF_KEY);
        self.0.insert(USER_KEY, id).map_err(AppError::internal)?;
        self.0.insert(EPOCH_KEY, epoch).map_err(AppError::internal)
    }

    pub fn sign_out(&self) {
        self.0.purge();
    }

    /// Drops an account that may no longer use this session (disabled,
    /// signed out elsewhere), keeping the rest so the sign-in form works.
    pub fn forget_user(&self) {
        self.0.remove(USER_KEY);
        self.0.remove(EPOCH_KEY);
    }

    /// A notice for the next page, for a plain form answered by a
    /// redirect (with htmx the notice travels in a header instead).
    pub fn set_notice(&self, notice: &str) {
        // A notice that cannot be kept is a convenience lost, no more.
        let _ = self.0.insert(NOTICE_KEY, notice);
    }

    pub fn take_notice(&self) -> Option<String> {
        self.0.remove_as::<String>(NOTICE_KEY).and_then(Result::ok)
    }

    /// The list as last shown (its filters and page), where a plain form
    /// returns to. Always a path of this site: the list builds it.
    pub fn remember_list(&self, url: &str) {
        if self.list_url().as_deref() != Some(url) {
            let _ = self.0.insert(LIST_KEY, url);
        }
    }

    pub fn list_url(&self) -> Option<String> {
        self.0.get::<String>(LIST_KEY).ok().flatten().filter(|u| u.starts_with('/') && !u.starts_with("//"))
    }

    /// The key of the input kept when this session's account was lost
    /// (`connections::drafts`); it survives the sign-in that follows.
    pub fn keep_draft(&self, key: &str) {
        // Not kept: the sign-in page then does not promise the input back.
        let _ = self.0.insert(DRAFT_KEY, key);
    }

    pub fn draft_key(&self) -> Option<String> {
        self.0.get::<String>(DRAFT_KEY).ok().flatten()
    }

    pub fn take_draft_key(&self) -> Option<String> {
        self.0.remove_as::<String>(DRAFT_KEY).and_then(Result::ok)
    }

    pub fn stored_csrf_token(&self) -> Option<String> {
        self.0.get::<String>(CSRF_KEY).ok().flatten()
    }
}

/// What every page handler needs to know about the request.
pub struct Ctx {
    pub environment: Environment,
    pub csrf: String,
    /// htmx wants a fragment rather than a whole page.
    pub fragment: bool,
    /// The signed-in person (set by `web::auth`); `None` only on public pages.
    pub user: Option<User>,
    /// The request's path, for the menu's current page.
    pub path: String,
    /// A notice left by the change before a redirect, shown on this page.
    pub notice: Option<String>,
    pub session: UserSession,
}

impl FromRequest for Ctx {
    type Error = actix_web::Error;
    type Future = Ready<Result<Ctx, actix_web::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = UserSession::of(req);
        let fragment = wants_fragment(req);
        // Only a whole page shows (and so uses up) a notice.
        let notice = (!fragment && req.method() == actix_web::http::Method::GET)
            .then(|| session.take_notice())
            .flatten();
        ready(Ok(Ctx {
            environment: session.environment(),
            csrf: session.csrf_token(),
            fragment,
            user: req.extensions().get::<User>().cloned(),
            path: req.path().to_owned(),
            notice,
            session,
        }))
    }
}

impl Ctx {
    /// Who acts, for the audit trail: the signed-in person. Only public
    /// pages have none, and they change nothing; were one to, the row
    /// would say Plugboard rather than name nobody.
    pub fn actor(&self) -> Actor<'_> {
        self.user.as_ref().map_or(Actor::System, Actor::Person)
    }
}

/// htmx requests get fragments, except when htmx restores a page from
/// history after a cache miss: then it needs the whole page.
pub fn wants_fragment(req: &HttpRequest) -> bool {
    let has = |name: &str| req.headers().get(name).is_some_and(|v| v.as_bytes() == b"true");
    has("hx-request") && !has("hx-history-restore-request")
}

/// What the base layout (`base.html`) needs: the title, the header's
/// environment switch, the signed-in person's links, and the CSRF token
/// htmx sends with every change.
pub struct Layout<'a> {
    pub title: &'a str,
    pub environment: Environment,
    pub environments: [Environment; 3],
    pub csrf: String,
    pub user: Option<User>,
    pub path: String,
    pub notice: Option<String>,
}

impl<'a> Layout<'a> {
    /// Whether the menu entry for `section` is the page shown.
    pub fn is_current(&self, section: &str) -> bool {
        match section {
            "/" => self.path == "/" || self.path.starts_with("/connections"),
            _ => self.path.starts_with(section),
        }
    }

    /// The layout for this request, outside a handler (error pages).
    pub fn of(req: &HttpRequest, title: &'a str) -> Layout<'a> {
        let session = UserSession::of(req);
        Layout {
            title,
            environment: session.environment(),
            environments: Environment::ALL,
            csrf: session.stored_csrf_token().unwrap_or_default(),
            user: req.extensions().get::<User>().cloned(),
            path: req.path().to_owned(),
            notice: None,
        }
    }

    /// Without any request: only the brand and the content.
    pub fn anonymous(title: &'a str) -> Layout<'a> {
        Layout {
            title,
            environment: Environment::default(),
            environments: Environment::ALL,
            csrf: String::new(),
            user: None,
            path: String::new(),
            notice: None,
        }
    }
}

/// A typed template placed inside another one. It escapes its own values,
/// so the outer template writes its output as it is.
pub struct Partial<'a, T>(pub &'a T);

impl<T: Template> std::fmt::Display for Partial<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.render_into(f).map_err(|_| std::fmt::Error)
    }
}

impl<T: Template> askama::filters::HtmlSafe for Partial<'_, T> {}

/// A fragment rendered already (and escaped by its own template).
pub struct Rendered<'a>(pub &'a str);

impl std::fmt::Display for Rendered<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl askama::filters::HtmlSafe for Rendered<'_> {}

/// A fragment wrapped in the base layout, for requests without htmx.
#[derive(Template)]
#[template(path = "page.html")]
struct Page<'a, C: std::fmt::Display + askama::filters::HtmlSafe> {
    layout: Layout<'a>,
    content: C,
}

impl Ctx {
    /// The signed-in person; handlers behind `web::auth` always have one.
    pub fn user(&self) -> Result<&User, AppError> {
        self.user
            .as_ref()
            .ok_or_else(|| AppError::new(StatusCode::UNAUTHORIZED, "Sign in", "Sign in to continue."))
    }

    pub fn can_edit(&self) -> bool {
        self.user.as_ref().is_some_and(User::is_member)
    }

    pub fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(User::is_admin)
    }

    /// The fragment alone for htmx, wrapped in the page layout otherwise.
    pub fn respond(
        &self,
        status: StatusCode,
        title: &str,
        fragment: &impl Template,
    ) -> Result<HttpResponse, AppError> {
        let html = if self.fragment {
            fragment.render()
        } else {
            Page { layout: self.layout(title), content: Partial(fragment) }.render()
        };
        Ok(html_response(status, html.map_err(AppError::internal)?))
    }

    /// [`Ctx::respond`] for a fragment rendered already.
    pub fn respond_html(
        &self,
        status: StatusCode,
        title: &str,
        fragment: String,
    ) -> Result<HttpResponse, AppError> {
        if self.fragment {
            return Ok(html_response(status, fragment));
        }
        let page = Page { layout: self.layout(title), content: Rendered(&fragment) };
        Ok(html_response(status, page.render().map_err(AppError::internal)?))
    }

    pub fn layout<'a>(&self, title: &'a str) -> Layout<'a> {
        Layout {
            title,
            environment: self.environment,
            environments: Environment::ALL,
            csrf: self.csrf.clone(),
            user: self.user.clone(),
            path: self.path.clone(),
            notice: self.notice.clone(),
        }
    }

    /// A whole page that has no fragment form (sign-in, password).
    pub fn page(&self, status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
        Ok(html_response(status, page.render().map_err(AppError::internal)?))
    }
}

pub fn html_response(status: StatusCode, html: String) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    res.content_type("text/html; charset=utf-8")
        // The same URL answers a page or a fragment; caches must keep both.
        .insert_header((header::VARY, HeaderValue::from_static("HX-Request")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
    res.body(html)
}

/// After a change: htmx closes the dialog (the answer is empty), refreshes
/// the list and shows `notice`; a plain form goes back to the list as it
/// was last shown (filters and page), which then shows the notice.
pub fn after_change(ctx: &Ctx, notice: &str) -> HttpResponse {
    let back_to = ctx.session.list_url().unwrap_or_else(|| "/".to_owned());
    after_change_of(ctx, notice, "connections-changed", &back_to)
}

/// The same for any page: `event` is what the page listens to for a
/// refresh, `back_to` where a plain form returns.
pub fn after_change_of(ctx: &Ctx, notice: &str, event: &str, back_to: &str) -> HttpResponse {
    if !ctx.fragment {
        ctx.session.set_notice(notice);
        return see_other(back_to);
    }
    let trigger = serde_json::json!({ event: null, "plugboard-notice": notice });
    HttpResponse::Ok()
        .insert_header((HeaderName::from_static("hx-trigger"), ascii_json(&trigger)))
        .content_type("text/html; charset=utf-8")
        .body("")
}

pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            HeaderValue::from_str(location).unwrap_or(HeaderValue::from_static("/")),
        ))
        .finish()
}

pub fn back_to_list() -> HttpResponse {
    see_other("/")
}

/// A notice for htmx to show (`plugboard-notice`), as a header.
pub fn notice_trigger(notice: &str) -> HeaderValue {
    ascii_json(&serde_json::json!({ "plugboard-notice": notice }))
}

/// JSON with every non-ASCII character escaped, as a header value must be
/// visible ASCII (a connection may well be named “Équipe”).
fn ascii_json(value: &serde_json::Value) -> HeaderValue {
    let mut out = String::new();
    for c in value.to_string().chars() {
        if c.is_ascii() && !c.is_ascii_control() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    HeaderValue::from_str(&out).unwrap_or_else(|_| HeaderValue::from_static("connections-changed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_header_is_ascii_json() {
        let value = serde_json::json!({ "n": "“Équipe” 🚀" });
        let header = ascii_json(&value);
        let text = header.to_str().unwrap();
        assert!(text.is_ascii());
        assert_eq!(serde_json::from_str::<serde_json::Value>(text).unwrap(), value);
    }
}
