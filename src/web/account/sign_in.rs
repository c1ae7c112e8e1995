//! Signing in, signing out and first-run setup.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts::{self, NewUser, Role, throttle};
use crate::audit::{self, Actor, Event};
use crate::web::context::{Layout, UserSession, see_other};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db};

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    layout: Layout<'a>,
    csrf: &'a str,
    email: &'a str,
    error: Option<&'a str>,
    setup: bool,
    name: &'a str,
}

impl<'a> SignInPage<'a> {
    fn new(ctx: &'a Ctx, setup: bool) -> SignInPage<'a> {
        let title = if setup { "Set up" } else { "Sign in" };
        SignInPage { layout: ctx.layout(title), csrf: &ctx.csrf, email: "", error: None, setup, name: "" }
    }
}

pub async fn sign_in_page(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    if ctx.user.is_some() {
        return Ok(see_other("/"));
    }
    if db(&state, |conn, _| Ok(accounts::count(conn)?)).await? == 0 {
        return Ok(see_other("/setup"));
    }
    ctx.page(StatusCode::OK, &SignInPage::new(&ctx, false))
}

pub async fn sign_in(
    state: State,
    ctx: Ctx,
    req: HttpRequest,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let email = form.text("email").trim().to_lowercase();
    let password = form.text("password");
    let address = req.peer_addr().map(|a| a.ip().to_string()).unwrap_or_else(|| "unknown".into());
    let keys = vec![format!("account:{email}"), format!("addr:{address}")];
    let refuse = |message: String, status: StatusCode| {
        ctx.page(status, &SignInPage { email: &email, error: Some(&message), ..SignInPage::new(&ctx, false) })
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
                    action: audit::Action::SignInFailed,
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
                        action: audit::Action::SignIn,
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
                        action: audit::Action::SignInFailed,
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
pub async fn sign_out(state: State, ctx: Ctx, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(user) = ctx.user.clone() {
        db(&state, move |conn, _| {
            accounts::end_sessions(conn, user.id)?;
            Ok(audit::record(
                conn,
                Event {
                    actor: Actor::Person(&user),
                    action: audit::Action::SignOut,
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

pub async fn setup_page(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    if db(&state, |conn, _| Ok(accounts::count(conn)?)).await? > 0 {
        return Ok(see_other("/sign-in"));
    }
    ctx.page(StatusCode::OK, &SignInPage::new(&ctx, true))
}

pub async fn setup(
    state: State,
    ctx: Ctx,
    req: HttpRequest,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let email = form.text("email");
    let name = form.text("name");
    let password = form.text("password");
    if password != form.text("password_again") {
        let message = "The two passwords differ. Type the same password twice.";
        return ctx.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage { email: &email, error: Some(message), name: &name, ..SignInPage::new(&ctx, true) },
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
                    action: audit::Action::Setup,
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
        Some(Err(message)) => ctx.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage { email: &email, error: Some(&message), name: &name, ..SignInPage::new(&ctx, true) },
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
