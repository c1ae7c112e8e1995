//! Adding and removing a tag inline on a row of the list.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::require_same_environment;
use crate::audit::Actor;
use crate::connections::ConnectionId;
use crate::connections::operations::{self, Tagged};
use crate::tags::{TagId, TagName};
use crate::web::context::after_change;
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db_write};

pub(super) async fn add(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    require_same_environment(&ctx, &form)?;
    let id = ConnectionId(id.into_inner());
    let name = TagName::parse(&form.text("tag"))
        .map_err(|message| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "Tag not added", message))?;
    let environment = ctx.environment;
    let user = ctx.user()?.clone();
    let tagged = db_write(&state, move |conn, _| {
        Ok(operations::tag(conn, &Actor::Person(&user), environment, id, &name)?)
    })
    .await?;
    let notice = match tagged {
        Tagged::Added(tag) => format!("Tagged \u{201c}{tag}\u{201d}."),
        Tagged::AlreadyTagged(tag) => format!("Already tagged \u{201c}{tag}\u{201d}; nothing changed."),
    };
    Ok(after_change(&ctx, &notice))
}

pub(super) async fn remove(
    state: State,
    ctx: Ctx,
    path: web::Path<(i64, i64)>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    require_same_environment(&ctx, &form)?;
    let (id, tag) = path.into_inner();
    let environment = ctx.environment;
    let user = ctx.user()?.clone();
    let removed = db_write(&state, move |conn, _| {
        Ok(operations::untag(conn, &Actor::Person(&user), environment, ConnectionId(id), TagId(tag))?)
    })
    .await?;
    let notice = match removed {
        Some(tag) => format!("Removed the tag \u{201c}{tag}\u{201d}."),
        None => "That tag was already removed; nothing changed.".to_owned(),
    };
    Ok(after_change(&ctx, &notice))
}
