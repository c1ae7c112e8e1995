//! Signing in, signing out and first-run setup.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::try_again_message;
use crate::accounts::operations::{self, Gate, Setup, SignIn, SignInError};
use crate::accounts::{self, AccountError};
use crate::web::connections::draft::{RESTORE_HASH, RESTORE_PATH};
use crate::web::context::{Layout, UserSession, html_response, see_other};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::middleware::csrf::client_address;
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
    /// Came here because the session ended while a page was open.
    ended: bool,
    /// What was typed then (apart from secrets) waits for the sign-in.
    draft_kept: bool,
}

impl<'a> SignInPage<'a> {
    fn new(ctx: &'a Ctx, setup: bool) -> SignInPage<'a> {
        let title = if setup { "Set up" } else { "Sign in" };
        SignInPage {
            layout: ctx.layout(title),
            csrf: &ctx.csrf,
            email: "",
            error: None,
            setup,
            name: "",
            ended: false,
            draft_kept: ctx.session.draft_key().is_some(),
        }
    }
}

/// The sign-in page for a form sent after its session ended (401).
pub fn ended_page(req: &HttpRequest, draft_kept: bool) -> HttpResponse {
    let layout = Layout::of(req, "Sign in");
    let csrf = UserSession::of(req).csrf_token();
    let page = SignInPage {
        layout,
        csrf: &csrf,
        email: "",
        error: None,
        setup: false,
        name: "",
        ended: true,
        draft_kept,
    };
    match page.render() {
        Ok(html) => html_response(StatusCode::UNAUTHORIZED, html),
        Err(e) => crate::web::error::respond(req, &AppError::internal(e)),
    }
}

#[derive(serde::Deserialize)]
pub struct SignInParams {
    #[serde(default)]
    ended: Option<String>,
}

pub async fn sign_in_page(
    state: State,
    ctx: Ctx,
    params: actix_web::web::Query<SignInParams>,
) -> Result<HttpResponse, AppError> {
    if ctx.user.is_some() {
        return Ok(see_other("/"));
    }
    if db(&state, |conn, _| Ok(accounts::count(conn)?)).await? == 0 {
        return Ok(see_other("/setup"));
    }
    let ended = params.ended.is_some();
    ctx.page(StatusCode::OK, &SignInPage { ended, ..SignInPage::new(&ctx, false) })
}

pub async fn sign_in(
    state: State,
    ctx: Ctx,
    req: HttpRequest,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let email = form.text("email");
    let password = form.text("password");
    let client = client_address(&req);
    let refuse = |message: &str, status: StatusCode| {
        ctx.page(status, &SignInPage { email: &email, error: Some(message), ..SignInPage::new(&ctx, false) })
    };
    let typed = email.clone();
    let started = db(&state, move |conn, _| match operations::start_sign_in(conn, &typed, client) {
        Err(SignInError::EmailTooLong(chars)) => Ok(Err(chars)),
        other => Ok(Ok(other.map_err(AppError::internal)?)),
    })
    .await?;
    let ticket = match started {
        Err(chars) => {
            let message = format!(
                "An email address has at most {} characters; this one has {chars}.",
                accounts::MAX_EMAIL_CHARS
            );
            return refuse(&message, StatusCode::UNPROCESSABLE_ENTITY);
        }
        Ok(Gate::Refused { until }) => {
            return refuse(&try_again_message(until), StatusCode::TOO_MANY_REQUESTS);
        }
        Ok(Gate::Open { wait, ticket }) => {
            if !wait.is_zero() {
                actix_web::rt::time::sleep(wait).await;
            }
            ticket
        }
    };
    let signed_in =
        db(&state, move |conn, _| Ok(operations::finish_sign_in(conn, ticket, &password)?)).await?;
    let SignIn::SignedIn(user) = signed_in else {
        return refuse("That email and password do not match an active account.", StatusCode::UNAUTHORIZED);
    };
    let session = UserSession::of(&req);
    session.sign_in(user.id.0, user.session_epoch)?;
    tracing::info!(user = %user.id, "signed in");
    if user.must_change_password {
        return Ok(see_other("/account/password"));
    }
    if session.draft_key().is_none() {
        return Ok(see_other("/"));
    }
    // Input kept from before: a page without JavaScript opens its form as
    // a page; with JavaScript (app.js fills `script`) the list opens it
    // in the dialog, as before the session ended.
    if form.text("script") == "1" {
        let list = session.list_url().unwrap_or_else(|| "/".to_owned());
        return Ok(see_other(&format!("{list}#{RESTORE_HASH}")));
    }
    Ok(see_other(RESTORE_PATH))
}

pub async fn sign_out(state: State, ctx: Ctx, req: HttpRequest) -> Result<HttpResponse, AppError> {
    if let Some(user) = ctx.user.clone() {
        db(&state, move |conn, _| Ok(operations::sign_out(conn, &user)?)).await?;
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
    let refuse = |message: &str| {
        ctx.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SignInPage { email: &email, error: Some(message), name: &name, ..SignInPage::new(&ctx, true) },
        )
    };
    if password != form.text("password_again") {
        return refuse("The two passwords differ. Type the same password twice.");
    }
    let (typed_email, typed_name) = (email.clone(), name.clone());
    let done =
        db(&state, move |conn, _| match operations::setup(conn, &typed_email, &typed_name, &password) {
            Err(AccountError::Invalid(message)) => Ok(Err(message)),
            other => Ok(Ok(other?)),
        })
        .await?;
    match done {
        Err(message) => refuse(&message),
        Ok(Setup::AlreadyDone) => Ok(see_other("/sign-in")),
        Ok(Setup::Created(user)) => {
            UserSession::of(&req).sign_in(user.id.0, user.session_epoch)?;
            Ok(see_other("/"))
        }
    }
}
