//! Changing one's own password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::accounts;
use crate::audit::{self, Actor, Event};
use crate::web::context::{Layout, UserSession, see_other};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db};

const TITLE: &str = "Change password";

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage<'a> {
    layout: Layout<'a>,
    csrf: &'a str,
    error: Option<&'a str>,
    forced: bool,
}

pub async fn password_page(ctx: Ctx) -> Result<HttpResponse, AppError> {
    let forced = ctx.user()?.must_change_password;
    ctx.page(
        StatusCode::OK,
        &PasswordPage { layout: ctx.layout(TITLE), csrf: &ctx.csrf, error: None, forced },
    )
}

pub async fn change_password(
    state: State,
    ctx: Ctx,
    req: HttpRequest,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let user = ctx.user()?.clone();
    let current = form.text("current_password");
    let new = form.text("password");
    let refuse = |message: &str| {
        ctx.page(
            StatusCode::UNPROCESSABLE_ENTITY,
            &PasswordPage {
                layout: ctx.layout(TITLE),
                csrf: &ctx.csrf,
                error: Some(message),
                forced: user.must_change_password,
            },
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
                action: audit::Action::PasswordChange,
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
