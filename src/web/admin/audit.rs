//! The audit trail, for admins, filtered by person, connection, action and
//! date.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::Deserialize;

use crate::accounts::{self, User};
use crate::audit::{self, Action, Entry, Query};
use crate::web::error::AppError;
use crate::web::{Ctx, State, db};

#[derive(Debug, Default, Deserialize)]
pub(super) struct Params {
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
    actions: [Action; Action::ALL.len()],
    query: &'a Query,
    /// The filter as typed, shown again when it cannot be read.
    params: &'a Params,
    /// Why the filter could not be used; then nothing is listed.
    invalid: Vec<String>,
}

impl AuditPage<'_> {
    fn is_person(&self, user: &User) -> bool {
        self.query.actor_id == Some(user.id.0)
    }

    fn is_action(&self, action: &Action) -> bool {
        self.query.action == Some(*action)
    }

    fn typed<'b>(&self, value: &'b Option<String>) -> &'b str {
        value.as_deref().unwrap_or_default()
    }

    fn when(entry: &Entry) -> String {
        entry.at.format("%Y-%m-%d %H:%M:%S").to_string()
    }

    fn sentence(entry: &Entry) -> String {
        sentence(entry)
    }
}

/// What happened, in words: "Ada edited “Stripe billing”: name, token".
/// The details hold names and counts, never values; an entry whose details
/// cannot be read still says who did what to what.
fn sentence(entry: &Entry) -> String {
    let details: serde_json::Value = serde_json::from_str(&entry.details).unwrap_or_default();
    let text = |key: &str| details.get(key).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let list = |key: &str| -> Vec<String> {
        details
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    let who = &entry.actor;
    let what = format!("\u{201c}{}\u{201d}", entry.subject);
    let Some(action) = Action::parse(&entry.action) else {
        return format!("{who}: {} {what}", entry.action);
    };
    match action {
        Action::SignIn => format!("{who} signed in"),
        Action::SignInFailed => {
            let lock = text("locked_until");
            let lock = if lock.is_empty() { String::new() } else { format!("; sign-in locked until {lock}") };
            format!("A sign-in as {} failed{lock}", entry.subject)
        }
        Action::SignOut => format!("{who} signed out"),
        Action::Setup => format!("{who} set up Plugboard as its first admin"),
        Action::PasswordChange => format!("{who} changed their password"),
        Action::ConnectionCreate => format!("{who} created {what}"),
        Action::ConnectionEdit => {
            let mut changes = list("fields");
            changes.extend(list("tags_added").into_iter().map(|t| format!("tag {t} added")));
            changes.extend(list("tags_removed").into_iter().map(|t| format!("tag {t} removed")));
            if changes.is_empty() {
                format!("{who} saved {what} unchanged")
            } else {
                format!("{who} edited {what}: {}", changes.join(", "))
            }
        }
        Action::ConnectionDelete => format!("{who} deleted {what}"),
        Action::ConnectionCheck => {
            let status = match text("status").as_str() {
                "active" => " (ACTIVE)",
                "not_active" => " (NOT ACTIVE)",
                _ => "",
            };
            format!("{who} checked {what}{status}")
        }
        Action::ConnectionTag => format!("{who} tagged {what} \u{201c}{}\u{201d}", text("tag")),
        Action::ConnectionUntag => {
            format!("{who} removed the tag \u{201c}{}\u{201d} from {what}", text("tag"))
        }
        Action::TagRename => {
            format!(
                "{who} renamed the tag \u{201c}{}\u{201d} to \u{201c}{}\u{201d}",
                text("from"),
                text("to")
            )
        }
        Action::TagMerge => {
            format!(
                "{who} merged the tag \u{201c}{}\u{201d} into \u{201c}{}\u{201d}",
                text("from"),
                text("into")
            )
        }
        Action::TagDelete => format!("{who} deleted the tag {what}"),
        Action::UserCreate => {
            let role = accounts::Role::parse(&text("role")).map_or("", |r| r.label());
            if role.is_empty() {
                format!("{who} added {}", entry.subject)
            } else {
                format!("{who} added {} as {role}", entry.subject)
            }
        }
        Action::UserRole => {
            let label = |key: &str| {
                accounts::Role::parse(&text(key)).map_or_else(|| text(key), |r| r.label().to_owned())
            };
            format!("{who} changed the role of {} from {} to {}", entry.subject, label("from"), label("to"))
        }
        Action::UserDisable => match details.get("disabled").and_then(|v| v.as_bool()) {
            Some(false) => format!("{who} enabled {}", entry.subject),
            _ => format!("{who} disabled {}", entry.subject),
        },
        Action::ConnectionConnect => format!("{who} connected {what} by signing in"),
        Action::ConnectionReconnect => format!("{who} reconnected {what}"),
        Action::TokenRefresh => format!("{who} refreshed the access token of {what}"),
        Action::TokenRefreshFailed => {
            let reason = text("reason");
            let reason = if reason.is_empty() { String::new() } else { format!(": {reason}") };
            format!("{who} could not refresh the access token of {what}{reason}")
        }
        Action::UserPasswordReset => format!("{who} reset the password of {}", entry.subject),
        Action::ApiTokenCreate => format!("{who} created the API token {what}"),
        Action::ApiTokenRevoke => format!("{who} revoked the API token {what}"),
        Action::ApiCredentialsRead => {
            let consumer = text("consumer");
            if consumer.is_empty() {
                format!("{who} read the credentials of {what}")
            } else {
                format!("{who} read the credentials of {what} for \u{201c}{consumer}\u{201d}")
            }
        }
    }
}

/// A filter value: absent or blank means "any"; anything else must be read
/// as `T`, or the filter is refused rather than silently dropped (which
/// would show the whole trail as if it matched).
fn parse<T: std::str::FromStr>(
    value: &Option<String>,
    what: &str,
    example: &str,
    invalid: &mut Vec<String>,
) -> Option<T> {
    let text = value.as_deref().map(str::trim).filter(|s| !s.is_empty())?;
    match text.parse() {
        Ok(v) => Some(v),
        Err(_) => {
            let shown: String = text.chars().take(40).collect();
            invalid.push(format!("{what} \u{201c}{shown}\u{201d} is not valid; use {example}."));
            None
        }
    }
}

pub(super) async fn page(
    state: State,
    ctx: Ctx,
    params: web::Query<Params>,
) -> Result<HttpResponse, AppError> {
    let params = params.into_inner();
    let mut invalid = Vec::new();
    let actor_id = parse::<u32>(&params.person, "Person", "one of the people in the list", &mut invalid);
    let connection_id =
        parse::<u32>(&params.connection, "Connection id", "a number such as 42", &mut invalid);
    let action = match params.action.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(text) => {
            let action = Action::parse(text);
            if action.is_none() {
                invalid.push("Action is not one Plugboard records; choose one from the list.".to_owned());
            }
            action
        }
    };
    let from = parse::<NaiveDate>(&params.from, "From", "a date such as 2026-03-31", &mut invalid);
    let to = parse::<NaiveDate>(&params.to, "To", "a date such as 2026-03-31", &mut invalid);
    let query = Query {
        actor_id: actor_id.map(i64::from),
        connection_id: connection_id.map(i64::from),
        action,
        from,
        to,
    };
    // Any page number is a page (an old link should still open): past the
    // end shows nothing more.
    let page_no: i64 =
        params.page.as_deref().and_then(|p| p.trim().parse::<i64>().ok()).unwrap_or(1).clamp(1, 1_000_000);
    let q = query.clone();
    let search = invalid.is_empty();
    let (entries, people) = db(&state, move |conn, _| {
        let entries = if search { audit::list(conn, &q, page_no)? } else { Vec::new() };
        Ok((entries, accounts::list(conn)?))
    })
    .await?;
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
    let newer = (page_no > 1 && search).then(|| link(page_no - 1));
    let status = if search { StatusCode::OK } else { StatusCode::BAD_REQUEST };
    let page = AuditPage {
        older,
        newer,
        entries: &entries,
        people: &people,
        actions: Action::ALL,
        query: &query,
        params: &params,
        invalid,
    };
    ctx.respond(status, "Audit trail", &page)
}
