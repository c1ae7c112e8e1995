//! The audit trail, for admins, filtered by person, connection, action and
//! date.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use super::{Ctx, State, db};
use crate::accounts::{self, User};
use crate::audit::{self, ACTIONS, Entry, Query};
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/admin/audit", web::get().to(page));
}

#[derive(Debug, Default, Deserialize)]
struct Params {
    #[serde(default)]
    person: Option<String>,
    #[serde(default)]
    connection: Option<String>,
    #[serde(default)]
    action: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    page: Option<String>,
}

#[derive(Template)]
#[template(path = "audit_partial.html")]
struct AuditPage<'a> {
    older: Option<String>,
    newer: Option<String>,
    entries: &'a [Entry],
    people: &'a [User],
    actions: [&'static str; 17],
    query: &'a Query,
    from: String,
    to: String,
}

impl AuditPage<'_> {
    fn is_person(&self, user: &User) -> bool {
        self.query.actor_id == Some(user.id.0)
    }

    fn is_action(&self, action: &str) -> bool {
        self.query.action.as_deref() == Some(action)
    }

    fn when(entry: &Entry) -> String {
        entry.at.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

fn opt<T: std::str::FromStr>(v: &Option<String>) -> Option<T> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty()).and_then(|s| s.parse().ok())
}

async fn page(state: State, ctx: Ctx, params: web::Query<Params>) -> Result<HttpResponse, AppError> {
    let query = Query {
        actor_id: opt(&params.person),
        connection_id: opt(&params.connection),
        action: params.action.clone().filter(|a| ACTIONS.contains(&a.as_str())),
        from: opt::<NaiveDate>(&params.from),
        to: opt::<NaiveDate>(&params.to),
    };
    // Any number is a page: out of range just shows nothing more.
    let page_no: i64 = opt::<i64>(&params.page).unwrap_or(1).clamp(1, 1_000_000);
    let q = query.clone();
    let (entries, people) =
        db(&state, move |conn, _| Ok((audit::list(conn, &q, page_no)?, accounts::list(conn)?))).await?;
    let link = |page: i64| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (name, value) in [
            ("person", &params.person),
            ("connection", &params.connection),
            ("action", &params.action),
            ("from", &params.from),
            ("to", &params.to),
        ] {
            if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                url.append_pair(name, v);
            }
        }
        url.append_pair("page", &page.to_string());
        format!("/admin/audit?{}", url.finish())
    };
    let older = (entries.len() as i64 == audit::PAGE).then(|| link(page_no + 1));
    let newer = (page_no > 1).then(|| link(page_no - 1));
    let page = AuditPage {
        older,
        newer,
        entries: &entries,
        people: &people,
        actions: ACTIONS,
        from: query.from.map(|d| d.to_string()).unwrap_or_default(),
        to: query.to.map(|d| d.to_string()).unwrap_or_default(),
        query: &query,
    };
    ctx.respond(StatusCode::OK, "Audit trail", &page)
}
