//! Who is asking, and may they: sign-in, sign-out, first-run setup, and the
//! one place where every route's required role is decided.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, web};
use askama::Template;

use super::context::{UserSession, see_other, wants_fragment};
use super::form::FormData;
use super::{Ctx, State, db};
use crate::accounts::{self, NewUser, Role, User, throttle};
use crate::audit::{self, Actor, Event};
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/sign-in", web::get().to(sign_in_page))
        .route("/sign-in", web::post().to(sign_in))
        .route("/sign-out", web::post().to(sign_out))
        .route("/setup", web::get().to(setup_page))
        .route("/setup", web::post().to(setup))
        .route("/account/password", web::get().to(password_page))
        .route("/account/password", web::post().to(change_password));
}

/// Assets and probes: served without looking at the account at all.
fn needs_no_account(path: &str) -> bool {
    path.starts_with("/static/") || path.starts_with("/icons/") || matches!(path, "/healthz" | "/readyz")
}

/// Reachable without signing in (the sign-in pages look at the account to
/// send a signed-in person on).
fn is_public(path: &str) -> bool {
    needs_no_account(path) || matches!(path, "/sign-in" | "/setup")
}

/// The least role a request needs. The pages hide what a role may not do;
/// this refuses it whatever the page showed.
pub fn required_role(method: &Method, path: &str) -> Role {
    let admin_area =
        path.starts_with("/admin/") || path == "/admin" || path == "/tags" || path.starts_with("/tags/");
    if admin_area {
        return Role::Admin;
    }
    let own = matches!(path, "/environment" | "/sign-out" | "/account/password");
    if path.starts_with("/connections") || (*method != Method::GET && *method != Method::HEAD && !own) {
        return Role::Member;
    }
    Role::Viewer
}

/// Puts the signed-in [`User`] on every request, or answers for anonymous
/// ones: pages go to sign-in (or to setup on a fresh install), everything
/// else gets 401.
pub async fn require_user(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    // Judged on the path as the router will see it: decoded, so that
    // "/%61dmin/users" is the admin area it leads to.
    let path = percent_encoding::percent_decode_str(req.path()).decode_utf8_lossy().into_owned();
    // Assets and probes need no account: answer them without a query.
    if needs_no_account(&path) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let public = is_public(&path);
    let Some(state) = req.app_data::<State>().cloned() else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    let session = UserSession::of(req.request());
    let signed_in = session.user();
    let found = state
        .into_inner()
        .blocking(move |conn, _| -> Result<(Option<User>, i64), String> {
            let user = match signed_in {
                // A deleted account ends the session; a database failure is a
                // failure, not a reason to send someone to sign in again.
                Some((id, epoch)) => match accounts::get(conn, accounts::UserId(id)) {
                    Ok(user) => Some(user).filter(|u| !u.disabled && u.session_epoch == epoch),
                    Err(accounts::AccountError::NotFound) => None,
                    Err(e) => return Err(e.to_string()),
                },
                None => None,
            };
            let people = if user.is_some() { 1 } else { accounts::count(conn).map_err(|e| e.to_string())? };
            Ok((user, people))
        })
        .await;
    let (user, people) = match found {
        Ok(found) => found,
        Err(cause) => {
            // A public page does not need the account; let it answer.
            if public {
                return Ok(next.call(req).await?.map_into_left_body());
            }
            let error = AppError::internal(format!("loading the signed-in account: {cause}"));
            let response = super::errors::respond(req.request(), &error);
            return Ok(req.into_response(response).map_into_right_body());
        }
    };

    let Some(user) = user else {
        if signed_in.is_some() {
            // A disabled account, a new password or a sign-out elsewhere:
            // the session ends now.
            session.forget_user();
        }
        if public {
            return Ok(next.call(req).await?.map_into_left_body());
        }
        let response = anonymous(req.request(), people == 0);
        return Ok(req.into_response(response).map_into_right_body());
    };

    if user.must_change_password && !public && !matches!(path.as_str(), "/account/password" | "/sign-out") {
        let response = if *req.method() == Method::GET && !wants_fragment(req.request()) {
            see_other("/account/password")
        } else {
            super::errors::respond(
                req.request(),
                &AppError::new(StatusCode::FORBIDDEN, "New password needed", "Choose a new password first."),
            )
        };
        return Ok(req.into_response(response).map_into_right_body());
    }
    let needed = required_role(req.method(), &path);
    if !user.can(needed) {
        tracing::info!(user = %user.id, path = %path, "refused: needs the {} role", needed.label());
        let error = AppError::new(
            StatusCode::FORBIDDEN,
            "Not allowed",
            format!(
                "Your role ({}) cannot do this; it needs {}. Ask an admin if you should.",
                user.role.label(),
                needed.label()
            ),
        );
        let response = super::errors::respond(req.request(), &error);
        return Ok(req.into_response(response).map_into_right_body());
    }
    req.extensions_mut().insert(user);
    Ok(next.call(req).await?.map_into_left_body())
}

fn anonymous(req: &HttpRequest, fresh_install: bool) -> HttpResponse {
    let page = *req.method() == Method::GET && !wants_fragment(req);
    if page {
        return see_other(if fresh_install { "/setup" } else { "/sign-in" });
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
    let mut response = super::errors::respond(req, &error);
    // htmx follows this to the sign-in page instead of swapping an error in.
    let target = if fresh_install { "/setup" } else { "/sign-in" };
    response
        .headers_mut()
        .insert(header::HeaderName::from_static("hx-redirect"), HeaderValue::from_static(target));
    response
}

// ---- sign-in ----

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    setup: bool,
    name: &'a str,
}

fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, AppError> {
    Ok(super::context::html_response(status, page.render().map_err(AppError::internal)?))
}

async fn sign_in_page(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    if ctx.user.is_some() {
        return Ok(see_other("/"));
    }
    if db(&state, |conn, _| Ok(accounts::count(conn)?)).await? == 0 {
        return Ok(see_other("/setup"));
    }
    render(StatusCode::OK, &SignInPage { csrf: &ctx.csrf, email: "", error: None, setup: false, name: "" })
}

async fn sign_in(state: State, ctx: Ctx, req: HttpRequest, form: FormData) -> Result<HttpResponse, AppError> {
    let email = form.text("email").trim().to_lowercase();
    let password = form.text("password");
    let address = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
    let keys = vec![format!("account:{email}"), format!("addr:{address}")];
    let refuse = |message: String, status: StatusCode| {
        render(
            status,
            &SignInPage { csrf: &ctx.csrf, email: &email, error: Some(&message), setup: false, name: "" },
        )
    };
    // Every attempt is counted before its password is checked, so that
    // many guesses sent at once cannot all slip under the limit; a
    // successful one takes its count back.
    let (counted_keys, typed) = (keys.clone(), email.clone());
    let verdict = db(&state, move |conn, _| {
        throttle::record_failure(conn, &counted_keys)?;
        let verdict = throttle::verdict(conn, &counted_keys)?;
        if let throttle::Verdict::Refuse(_) = verdict {
            audit::record(
                conn,
                Event {
                    actor: Actor::Anonymous(&typed),
                    action: "sign_in_failed",
                    environment: None,
                    connection: None,
                    subject: &typed,
                    details: serde_json::json!({ "refused": "too many failures" }),
                },
            )?;
        }
        Ok(verdict)
    })
    .await?;
    match verdict {
        throttle::Verdict::Refuse(until) => {
            let minutes = (until - chrono::Utc::now().naive_utc()).num_minutes().max(1);
            return refuse(
                format!(
                    "Too many failed sign-ins. Try again in {minutes} minute{}.",
                    if minutes == 1 { "" } else { "s" }
                ),
                StatusCode::TOO_MANY_REQUESTS,
            );
        }
        throttle::Verdict::Slow(wait) => actix_web::rt::time::sleep(wait).await,
        throttle::Verdict::Allow => {}
    }
    let typed = email.clone();
    let user = db(&state, move |conn, _| {
        let user = accounts::authenticate(conn, &typed, &password)?;
        match &user {
            Some(user) => {
                throttle::clear(conn, &keys[0])?;
                throttle::take_back(conn, &keys[1])?;
                audit::record(
                    conn,
                    Event {
                        actor: Actor::Person(user),
                        action: "sign_in",
                        environment: None,
                        connection: None,
                        subject: &user.email,
                        details: serde_json::json!({}),
                    },
                )?;
            }
            None => {
                audit::record(
                    conn,
                    Event {
                        actor: Actor::Anonymous(&typed),
                        action: "sign_in_failed",
                        environment: None,
                        connection: None,
                        subject: &typed,
                        details: serde_json::json!({}),
                    },
                )?;
            }
        }
        Ok(user)
    })
    .await?;
    let Some(user) = user else {
        return refuse(
            "That email and password do not match an active account.".into(),
            StatusCode::UNAUTHORIZED,
        );
    };
    UserSession::of(&req).sign_in(user.id.0, user.session_epoch)?;
    tracing::info!(user = %user.id, "signed in");
    Ok(see_other(if user.must_change_password { "/account/password" } else { "/" }))
}

/// Signing out ends every session of the account: with sessions kept in
/// the cookie, a copy of this one would otherwise stay valid.
async fn sign_out(state: State, ctx: Ctx, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(user) = ctx.user.clone() {
        db(&state, move |conn, _| {
            accounts::end_sessions(conn, user.id)?;
            Ok(audit::record(
                conn,
                Event {
                    actor: Actor::Person(&user),
                    action: "sign_out",
                    environment: None,
                    connection: None,
                    subject: &user.email,
                    details: serde_json::json!({}),
                },
            )?)
        })
        .await?;
    }
    UserSession::of(&req).sign_out();
    Ok(see_other("/sign-in"))
}

// ---- first run ----

async fn setup_page(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    if db(&state, |conn, _| Ok(accounts::count(conn)?)).await? > 0 {
        return Ok(see_other("/sign-in"));
    }
    render(StatusCode::OK, &SignInPage { csrf: &ctx.csrf, email: "", error: None, setup: true, name: "" })
}

async fn setup(state: State, ctx: Ctx, req: HttpRequest, form: FormData) -> Result<HttpResponse, AppError> {
    let email = form.text("email");
    let name = form.text("name");
    let password = form.text("password");
    if password != form.text("password_again") {
        let message = "The two passwords differ. Type the same password twice.";
        return render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage { csrf: &ctx.csrf, email: &email, error: Some(message), setup: true, name: &name },
        );
    }
    let (typed_email, typed_name) = (email.clone(), name.clone());
    let created = db(&state, move |conn, _| {
        // Only while nobody exists: checked inside the transaction that creates.
        use diesel::Connection as _;
        Ok(conn.transaction(|conn| {
            accounts::lock_for_setup(conn)?;
            if accounts::count(conn)? > 0 {
                return Ok(None);
            }
            let user = match accounts::create(
                conn,
                &NewUser {
                    email: &typed_email,
                    name: &typed_name,
                    password: &password,
                    role: Role::Admin,
                    must_change_password: false,
                },
            ) {
                Ok(user) => user,
                Err(accounts::AccountError::Invalid(message)) => return Ok(Some(Err(message))),
                Err(e) => return Err(diesel_error(e)),
            };
            audit::record(
                conn,
                Event {
                    actor: Actor::Person(&user),
                    action: "setup",
                    environment: None,
                    connection: None,
                    subject: &user.email,
                    details: serde_json::json!({ "role": "admin" }),
                },
            )?;
            Ok(Some(Ok(user)))
        })?)
    })
    .await?;
    match created {
        None => Ok(see_other("/sign-in")),
        Some(Err(message)) => render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage { csrf: &ctx.csrf, email: &email, error: Some(&message), setup: true, name: &name },
        ),
        Some(Ok(user)) => {
            UserSession::of(&req).sign_in(user.id.0, user.session_epoch)?;
            Ok(see_other("/"))
        }
    }
}

fn diesel_error(e: accounts::AccountError) -> diesel::result::Error {
    match e {
        accounts::AccountError::Database(e) => e,
        other => diesel::result::Error::QueryBuilderError(other.to_string().into()),
    }
}

// ---- own password ----

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    csrf: &'a str,
    error: Option<&'a str>,
    forced: bool,
}

async fn password_page(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let forced = ctx.user()?.must_change_password;
    render(StatusCode::OK, &PasswordPage { csrf: &ctx.csrf, error: None, forced })
}

async fn change_password(
    state: State,
    ctx: Ctx,
    req: HttpRequest,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let user = ctx.user()?.clone();
    let current = form.text("current_password");
    let new = form.text("password");
    let refuse = |message: &str| {
        render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage { csrf: &ctx.csrf, error: Some(message), forced: user.must_change_password },
        )
    };
    if new != form.text("password_again") {
        return refuse("The two new passwords differ. Type the same password twice.");
    }
    if let Err(message) = accounts::check_password_rules(&new) {
        return refuse(&message);
    }
    if new == current {
        return refuse("Choose a password different from the current one.");
    }
    let who = user.clone();
    let changed = db(&state, move |conn, _| {
        if accounts::authenticate(conn, &who.email, &current)?.is_none() {
            return Ok(None);
        }
        let updated = accounts::set_password(conn, who.id, &new).map_err(AppError::internal)?;
        audit::record(
            conn,
            Event {
                actor: Actor::Person(&who),
                action: "password_change",
                environment: None,
                connection: None,
                subject: &who.email,
                details: serde_json::json!({ "fields": ["password"] }),
            },
        )?;
        Ok(Some(updated))
    })
    .await?;
    let Some(updated) = changed else {
        return refuse("The current password is not right.");
    };
    // Other sessions ended with the new epoch; this one continues.
    UserSession::of(&req).sign_in(updated.id.0, updated.session_epoch)?;
    Ok(see_other("/"))
}
