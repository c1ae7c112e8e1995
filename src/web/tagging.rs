//! Adding and removing a tag inline on a row of the list.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::context::after_change;
use super::form::FormData;
use super::{Ctx, State, db};
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
    db(&state, move |conn, _| Ok(store::add_tag(conn, environment, id, &name)?)).await?;
    Ok(after_change(&ctx, &format!("Tagged \u{201c}{shown}\u{201d}.")))
}

async fn remove(state: State, ctx: Ctx, path: web::Path<(i64, i64)>) -> Result<HttpResponse, AppError> {
    let (id, tag) = path.into_inner();
    let environment = ctx.environment;
    db(&state, move |conn, _| Ok(store::remove_tag(conn, environment, ConnectionId(id), TagId(tag))?))
        .await?;
    Ok(after_change(&ctx, "Tag removed."))
}
