//! "Test" on a row or in the edit form: check a connection now.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;

use crate::api::usage::{self, Consumer};
use crate::checks::schedule::{self, Trigger};
use crate::connections::store::{self, CheckRecord};
use crate::connections::{Connection, ConnectionId, StatusReport};
use crate::environment::Environment;
use crate::web::context::after_change;
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db};

/// The status and recent checks of one connection, in the edit view.
#[derive(Template)]
#[template(path = "check_panel_partial.html")]
pub struct CheckPanel<'a> {
    pub csrf: &'a str,
    pub environment: Environment,
    pub id: ConnectionId,
    pub status: &'a StatusReport,
    pub checks: &'a [CheckRecord],
    /// Who read its credentials through the API, most recent first.
    pub consumers: &'a [Consumer],
}

impl CheckPanel<'_> {
    pub fn when(record: &CheckRecord) -> String {
        record.checked_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()
    }

    pub fn used(consumer: &Consumer) -> String {
        consumer.last_used_at.format("%Y-%m-%d %H:%M UTC").to_string()
    }
}

/// Runs a check right after a save; says what it found, for the notice.
pub async fn after_save(state: &State, ctx: &Ctx, id: ConnectionId) -> String {
    let environment = ctx.environment;
    match schedule::check_now(&state.clone().into_inner(), environment, id, Trigger::Save, &ctx.actor()).await
    {
        Ok(report) => verdict(&report),
        Err(e) => {
            tracing::warn!(connection = %id, "check after save failed: {e}");
            "NOT ACTIVE (not checked yet)".to_owned()
        }
    }
}

/// A check's result as a notice says it.
pub fn verdict(report: &StatusReport) -> String {
    if report.status.is_active() { "ACTIVE".to_owned() } else { format!("NOT ACTIVE ({})", report.reason) }
}

pub(super) async fn check(
    state: State,
    ctx: Ctx,
    req: HttpRequest,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    super::require_same_environment(&ctx, &form)?;
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let report =
        schedule::check_now(&state.clone().into_inner(), environment, id, Trigger::Manual, &ctx.actor())
            .await
            .map_err(|e| match e {
                schedule::CheckError::Store(e) => AppError::from(e),
                schedule::CheckError::Unavailable(why, detail) => AppError::unavailable(why, detail),
                other => AppError::internal(other),
            })?;
    let wants_panel = req.headers().get("hx-target").is_some_and(|t| t.as_bytes() == b"check-panel");
    type Read = (Connection, Vec<CheckRecord>, Vec<Consumer>);
    let (connection, checks, consumers): Read = db(&state, move |conn, _| {
        let connection = store::get(conn, environment, id)?;
        if !wants_panel {
            return Ok((connection, Vec::new(), Vec::new()));
        }
        let checks = store::recent_checks(conn, environment, id)?;
        Ok((connection, checks, usage::consumers(conn, environment, id)?))
    })
    .await?;
    if !wants_panel {
        // Named, since the notice outlives the click and rows look alike.
        let verdict = verdict(&report);
        return Ok(after_change(&ctx, &format!("Checked \u{201c}{}\u{201d}: {verdict}.", connection.name)));
    }
    let panel = CheckPanel {
        csrf: &ctx.csrf,
        environment,
        id,
        status: &connection.status,
        checks: &checks,
        consumers: &consumers,
    };
    let mut res = ctx.respond(StatusCode::OK, "Checks", &panel)?;
    res.headers_mut().insert(
        actix_web::http::header::HeaderName::from_static("hx-trigger"),
        actix_web::http::header::HeaderValue::from_static("connections-changed"),
    );
    Ok(res)
}
