//! Changing one's own password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use super::try_again_message;
use crate::accounts::operations::{self, Gate, PasswordError};
use crate::web::context::{Layout, UserSession, see_other};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::middleware::csrf::client_address;
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
    let client = client_address(&req);
    let refuse = |message: &str, status: StatusCode| {
        ctx.page(
            status,
            &PasswordPage {
                layout: ctx.layout(TITLE),
                csrf: &ctx.csrf,
                error: Some(message),
                forced: user.must_change_password,
            },
        )
    };
    let refused = |e: PasswordError| match e {
        PasswordError::Invalid(message) => refuse(&message, StatusCode::UNPROCESSABLE_ENTITY),
        PasswordError::Unchanged => {
            refuse("Choose a password different from the current one.", StatusCode::UNPROCESSABLE_ENTITY)
        }
        PasswordError::WrongCurrent => {
            refuse("The current password is not right.", StatusCode::UNPROCESSABLE_ENTITY)
        }
        PasswordError::Database(e) => Err(AppError::from(e)),
    };
    if new != form.text("password_again") {
        return refuse(
            "The two new passwords differ. Type the same password twice.",
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let (who, typed_current, typed_new) = (user.clone(), current.clone(), new.clone());
    let started = db(&state, move |conn, _| {
        Ok(operations::start_password_change(conn, &who, client, &typed_current, &typed_new))
    })
    .await?;
    let ticket = match started {
        Err(e) => return refused(e),
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
    let changed =
        db(&state, move |conn, _| Ok(operations::finish_password_change(conn, ticket, &current, &new)))
            .await?;
    let updated = match changed {
        Ok(updated) => updated,
        Err(e) => return refused(e),
    };
    // Other sessions ended with the new epoch; this one continues.
    UserSession::of(&req).sign_in(updated.id.0, updated.session_epoch)?;
    Ok(see_other("/"))
}
