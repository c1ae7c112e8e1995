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
        Ok(_) => Ok(see_other("/admin/users")),
        Err(e) => {
            let message = account_error(e)?;
            render(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, Some(&message), (&email, &name, role))
                .await
        }
    }
}

/// Runs a change to someone's account and answers with the page again.
async fn change(
    state: State,
    ctx: Ctx,
    id: i64,
    apply: impl FnOnce(&mut DbConnection, &Actor, UserId) -> Result<User, AccountError> + Send + 'static,
) -> Result<HttpResponse, AppError> {
    let me = ctx.user()?.clone();
    let result = db(&state, move |conn, _| Ok(apply(conn, &Actor::Person(&me), UserId(id)))).await?;
    match result {
        Ok(_) => Ok(see_other("/admin/users")),
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
    change(state, ctx, id.into_inner(), move |conn, actor, id| operations::change_role(conn, actor, id, role))
        .await
}

pub(super) async fn disable(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    change(state, ctx, id.into_inner(), operations::disable).await
}

pub(super) async fn enable(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    change(state, ctx, id.into_inner(), operations::enable).await
}
