//! Admins manage people: add them with an initial password they must
//! change, change roles, disable and enable accounts. The last admin can be
//! neither demoted nor disabled.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::accounts::operations;
use crate::accounts::{self, AccountError, NewUser, Role, User, UserId};
use crate::audit::Actor;
use crate::db::DbConnection;
use crate::web::context::see_other;
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db};

#[derive(Template)]
#[template(path = "people_partial.html")]
struct People<'a> {
    csrf: &'a str,
    me: &'a User,
    people: &'a [User],
    roles: [Role; 3],
    error: Option<&'a str>,
    email: &'a str,
    name: &'a str,
    role: Role,
}

pub(super) async fn render(
    state: &State,
    ctx: &Ctx,
    status: StatusCode,
    error: Option<&str>,
    typed: (&str, &str, Role),
) -> Result<HttpResponse, AppError> {
    let people = db(state, |conn, _| Ok(accounts::list(conn)?)).await?;
    let page = People {
        csrf: &ctx.csrf,
        me: ctx.user()?,
        people: &people,
        roles: Role::ALL,
        error,
        email: typed.0,
        name: typed.1,
        role: typed.2,
    };
    ctx.respond(status, "People", &page)
}

pub(super) async fn page(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    render(&state, &ctx, StatusCode::OK, None, ("", "", Role::Member)).await
}

fn account_error(e: AccountError) -> Result<String, AppError> {
    match e {
        AccountError::Invalid(message) => Ok(message),
        AccountError::EmailTaken => Ok("Someone already has an account with this email.".into()),
        AccountError::LastAdmin => {
            Ok("This is the last admin. Make someone else an admin first, so Plugboard is never without one."
                .into())
        }
        AccountError::NotFound => Err(AppError::not_found("There is no such account.")),
        AccountError::Database(e) => Err(AppError::from(e)),
    }
}

pub(super) async fn add(state: State, ctx: Ctx, form: FormData) -> Result<HttpResponse, AppError> {
    let me = ctx.user()?.clone();
    let (email, name, password) = (form.text("email"), form.text("name"), form.text("password"));
    let Some(role) = Role::parse(&form.text("role")) else {
        return render(
            &state,
            &ctx,
            StatusCode::UNPROCESSABLE_ENTITY,
            Some("Choose a role."),
            (&email, &name, Role::Member),
        )
        .await;
    };
    let (e, n) = (email.clone(), name.clone());
    let created = db(&state, move |conn, _| {
        let new = NewUser { email: &e, name: &n, password: &password, role, must_change_password: true };
        Ok(operations::add_person(conn, &Actor::Person(&me), &new))
    })
    .await?;
    match created {
        Ok(user) => {
            ctx.session.set_notice(&format!(
                "Added {} as {}. Give them the initial password in person or another safe way; they \
                 choose their own when they first sign in.",
                user.email,
                user.role.label()
            ));
            Ok(see_other("/admin/users"))
        }
        Err(e) => {
            let message = account_error(e)?;
            render(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, Some(&message), (&email, &name, role))
                .await
        }
    }
}

/// Runs a change to someone's account and answers with the page again,
/// saying what changed (`said`).
async fn change(
    state: State,
    ctx: Ctx,
    id: i64,
    apply: impl FnOnce(&mut DbConnection, &Actor, UserId) -> Result<User, AccountError> + Send + 'static,
    said: impl FnOnce(&User) -> String,
) -> Result<HttpResponse, AppError> {
    let me = ctx.user()?.clone();
    let result = db(&state, move |conn, _| Ok(apply(conn, &Actor::Person(&me), UserId(id)))).await?;
    match result {
        Ok(user) => {
            ctx.session.set_notice(&said(&user));
            Ok(see_other("/admin/users"))
        }
        Err(e) => {
            let message = account_error(e)?;
            render(&state, &ctx, StatusCode::CONFLICT, Some(&message), ("", "", Role::Member)).await
        }
    }
}

pub(super) async fn set_role(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let role = Role::parse(&form.text("role")).ok_or_else(|| {
        AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "Unknown role", "Choose Admin, Member or Viewer.")
    })?;
    let apply =
        move |conn: &mut DbConnection, actor: &Actor, id| operations::change_role(conn, actor, id, role);
    change(state, ctx, id.into_inner(), apply, |u| format!("{} is now {}.", u.email, u.role.label())).await
}

pub(super) async fn disable(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let said =
        |u: &User| format!("Disabled {}: they are signed out and cannot sign in until enabled.", u.email);
    change(state, ctx, id.into_inner(), operations::disable, said).await
}

pub(super) async fn enable(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let said = |u: &User| format!("Enabled {}: they can sign in again.", u.email);
    change(state, ctx, id.into_inner(), operations::enable, said).await
}

/// What a confirmation asks before a change to someone's account.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Asked {
    Disable,
    ResetPassword,
}

#[derive(Template)]
#[template(path = "person_confirm_partial.html")]
struct Confirm<'a> {
    csrf: &'a str,
    person: &'a User,
    asked: Asked,
}

async fn confirm(state: State, ctx: Ctx, id: i64, asked: Asked) -> Result<HttpResponse, AppError> {
    let person = db(&state, move |conn, _| Ok(accounts::get(conn, UserId(id))?)).await?;
    let title = match asked {
        Asked::Disable => "Disable account",
        Asked::ResetPassword => "Reset password",
    };
    ctx.respond(StatusCode::OK, title, &Confirm { csrf: &ctx.csrf, person: &person, asked })
}

pub(super) async fn confirm_disable(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    confirm(state, ctx, id.into_inner(), Asked::Disable).await
}

pub(super) async fn confirm_reset(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    confirm(state, ctx, id.into_inner(), Asked::ResetPassword).await
}

/// The new initial password, shown once to the admin who asked for it.
#[derive(Template)]
#[template(path = "person_password_partial.html")]
struct NewPassword<'a> {
    person: &'a User,
    password: &'a str,
}

pub(super) async fn reset_password(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let me = ctx.user()?.clone();
    let id = UserId(id.into_inner());
    let reset =
        db(&state, move |conn, _| Ok(operations::reset_password(conn, &Actor::Person(&me), id))).await?;
    match reset {
        Ok((person, password)) => {
            tracing::info!(user = %person.id, "password reset by an admin");
            // Answered as a page (never a redirect): the password must not
            // travel in a cookie or a URL. The answer is not cached.
            let page =
                NewPassword { person: &person, password: secrecy::ExposeSecret::expose_secret(&password) };
            ctx.respond(StatusCode::OK, "Password reset", &page)
        }
        Err(e) => {
            let message = account_error(e)?;
            render(&state, &ctx, StatusCode::CONFLICT, Some(&message), ("", "", Role::Member)).await
        }
    }
}
