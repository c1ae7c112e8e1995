//! Deleting a connection, after a confirmation that names it and its
//! environment.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::context::after_change;
use super::{Ctx, State, db};
use crate::audit::{self, Actor, Event};
use crate::connections::{Connection, ConnectionId, store};
use crate::environment::Environment;
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connections/{id}/delete", web::get().to(confirm))
        .route("/connections/{id}/delete", web::post().to(delete));
}

#[derive(Template)]
#[template(path = "delete_partial.html")]
struct Confirm<'a> {
    csrf: &'a str,
    connection: &'a Connection,
    component_name: &'a str,
    environment: Environment,
}

async fn confirm(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let connection = db(&state, move |conn, _| Ok(store::get(conn, environment, id)?)).await?;
    let component_name =
        state.catalog.get(&connection.component).map_or(connection.component.as_str(), |c| c.name.as_str());
    let page = Confirm { csrf: &ctx.csrf, connection: &connection, component_name, environment };
    ctx.respond(StatusCode::OK, "Delete connection", &page)
}

async fn delete(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let user = ctx.user()?.clone();
    let connection = db(&state, move |conn, _| {
        let connection = store::get(conn, environment, id)?;
        store::delete(conn, environment, id)?;
        audit::record(
            conn,
            Event {
                actor: Actor::Person(&user),
                action: "connection_delete",
                environment: Some(environment),
                connection: Some(id),
                subject: &connection.name,
                details: serde_json::json!({ "component": connection.component }),
            },
        )?;
        Ok(connection)
    })
    .await?;
    tracing::info!(connection = %id, environment = %environment.as_str(), "connection deleted");
    Ok(after_change(&ctx, &format!("Deleted \u{201c}{}\u{201d} from {environment}.", connection.name)))
}
