//! Deleting a connection, after a confirmation that names it and its
//! environment.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::require_same_environment;
use crate::api::usage::{self, Consumer};
use crate::audit::Actor;
use crate::connections::{Connection, ConnectionId, operations, store};
use crate::environment::Environment;
use crate::web::context::after_change;
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db, db_write};

#[derive(Template)]
#[template(path = "delete_partial.html")]
struct Confirm<'a> {
    csrf: &'a str,
    connection: &'a Connection,
    component_name: &'a str,
    environment: Environment,
    /// Who read its credentials in the last 30 days.
    consumers: &'a [Consumer],
    recent_days: i64,
}

pub(super) async fn confirm(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let since = usage::recent_since(chrono::Utc::now().naive_utc());
    let (connection, consumers) = db(&state, move |conn, _| {
        Ok((store::get(conn, environment, id)?, usage::consumers_since(conn, environment, id, Some(since))?))
    })
    .await?;
    let component_name =
        state.catalog.get(&connection.component).map_or(connection.component.as_str(), |c| c.name.as_str());
    let page = Confirm {
        csrf: &ctx.csrf,
        connection: &connection,
        component_name,
        environment,
        consumers: &consumers,
        recent_days: usage::RECENT_DAYS,
    };
    ctx.respond(StatusCode::OK, "Delete connection", &page)
}

pub(super) async fn delete(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    require_same_environment(&ctx, &form)?;
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let user = ctx.user()?.clone();
    let connection = db_write(&state, move |conn, _| {
        Ok(operations::delete(conn, &Actor::Person(&user), environment, id)?)
    })
    .await?;
    tracing::info!(connection = %id, environment = %environment.as_str(), "connection deleted");
    Ok(after_change(&ctx, &format!("Deleted \u{201c}{}\u{201d} from {environment}.", connection.name)))
}
