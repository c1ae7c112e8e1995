//! Adding and removing a tag inline on a row of the list.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::context::after_change;
use super::form::FormData;
use super::{Ctx, State, db};
use crate::audit::{self, Actor, Event};
use crate::connections::{ConnectionId, store};
use crate::error::AppError;
use crate::tags::{TagId, TagName};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connections/{id}/tags", web::post().to(add))
        .route("/connections/{id}/tags/{tag}/delete", web::post().to(remove));
}

async fn add(state: State, ctx: Ctx, id: web::Path<i64>, form: FormData) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let name = TagName::parse(&form.text("tag"))
        .map_err(|message| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "Tag not added", message))?;
    let environment = ctx.environment;
    let shown = name.as_str().to_owned();
    let user = ctx.user()?.clone();
    db(&state, move |conn, _| {
        store::add_tag(conn, environment, id, &name)?;
        let connection = store::get(conn, environment, id)?;
        audit::record(
            conn,
            Event {
                actor: Actor::Person(&user),
                action: "connection_tag",
                environment: Some(environment),
                connection: Some(id),
                subject: &connection.name,
                details: serde_json::json!({ "tag": name.as_str() }),
            },
        )?;
        Ok(())
    })
    .await?;
    Ok(after_change(&ctx, &format!("Tagged \u{201c}{shown}\u{201d}.")))
}

async fn remove(state: State, ctx: Ctx, path: web::Path<(i64, i64)>) -> Result<HttpResponse, AppError> {
    let (id, tag) = path.into_inner();
    let environment = ctx.environment;
    let user = ctx.user()?.clone();
    db(&state, move |conn, _| {
        let id = ConnectionId(id);
        let connection = store::get(conn, environment, id)?;
        store::remove_tag(conn, environment, id, TagId(tag))?;
        let removed = connection.tags.iter().find(|t| t.id == TagId(tag)).map(|t| t.name.clone());
        audit::record(
            conn,
            Event {
                actor: Actor::Person(&user),
                action: "connection_untag",
                environment: Some(environment),
                connection: Some(id),
                subject: &connection.name,
                details: serde_json::json!({ "tag": removed }),
            },
        )?;
        Ok(())
    })
    .await?;
    Ok(after_change(&ctx, "Tag removed."))
}
