//! The API tokens page: admins create tokens (shown once, right after),
//! see each one's last use, and revoke them.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{NaiveDateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;

use crate::api::tokens::{self, MAX_NAME_CHARS};
use crate::api::{ApiToken, ApiTokenId, NewToken, Permission, TokenError};
use crate::audit::Actor;
use crate::catalog::Component;
use crate::environment::Environment;
use crate::tags::{self, Tag, TagId};
use crate::web::context::see_other;
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db};

/// How long a new token may live, as the form offers it.
const EXPIRIES: [(&str, &str, Option<i64>); 5] = [
    ("30", "30 days", Some(30)),
    ("90", "90 days", Some(90)),
    ("365", "1 year", Some(365)),
    ("7", "7 days", Some(7)),
    ("never", "Never", None),
];

#[derive(Template)]
#[template(path = "api_tokens_partial.html")]
struct TokensPage<'a> {
    csrf: &'a str,
    tokens: &'a [ApiToken],
    environments: [Environment; 3],
    permissions: [Permission; 3],
    components: Vec<&'a Component>,
    all_tags: &'a [Tag],
    expiries: &'a [(&'static str, &'static str, Option<i64>)],
    max_name: usize,
    /// Just created: its secret, shown this once.
    created: Option<(&'a ApiToken, &'a str)>,
    error: Option<&'a str>,
    /// What was typed, kept on a refused create.
    typed: &'a Typed,
    now: NaiveDateTime,
}

#[derive(Default)]
struct Typed {
    name: String,
    environment: Option<Environment>,
    permissions: BTreeSet<Permission>,
    components: BTreeSet<String>,
    tags: BTreeSet<i64>,
    expiry: String,
}

impl TokensPage<'_> {
    fn when(at: &Option<NaiveDateTime>) -> String {
        at.map_or_else(|| "never".to_owned(), |at| format!("{} UTC", at.format("%Y-%m-%d %H:%M")))
    }

    fn state(&self, token: &ApiToken) -> &'static str {
        if token.revoked_at.is_some() {
            "revoked"
        } else if token.is_expired(self.now) {
            "expired"
        } else {
            "active"
        }
    }

    fn limits(&self, token: &ApiToken) -> String {
        let mut parts = Vec::new();
        if !token.components.is_empty() {
            parts.push(format!("components: {}", token.components.join(", ")));
        }
        if !token.tags.is_empty() {
            let names: Vec<&str> = token
                .tags
                .iter()
                .map(|id| {
                    self.all_tags.iter().find(|t| t.id == *id).map_or("(deleted tag)", |t| t.name.as_str())
                })
                .collect();
            parts.push(format!("tags: {}", names.join(", ")));
        }
        if parts.is_empty() { "all connections".to_owned() } else { parts.join("; ") }
    }

    fn permission_list(token: &ApiToken) -> String {
        token.permissions.iter().map(|p| p.label()).collect::<Vec<_>>().join(", ")
    }

    fn typed_permission(&self, p: &Permission) -> bool {
        self.typed.permissions.contains(p)
    }

    fn typed_component(&self, key: &str) -> bool {
        self.typed.components.contains(key)
    }

    fn typed_tag(&self, id: &TagId) -> bool {
        self.typed.tags.contains(&id.0)
    }

    fn typed_environment(&self, e: &Environment) -> bool {
        self.typed.environment == Some(*e)
    }

    fn typed_expiry(&self, key: &str) -> bool {
        self.typed.expiry == key || (self.typed.expiry.is_empty() && key == EXPIRIES[1].0)
    }
}

async fn render(
    state: &State,
    ctx: &Ctx,
    status: StatusCode,
    created: Option<(&ApiToken, &str)>,
    error: Option<&str>,
    typed: &Typed,
) -> Result<HttpResponse, AppError> {
    let (list, all_tags) = db(state, |conn, _| Ok((tokens::list(conn)?, tags::all(conn)?))).await?;
    let page = TokensPage {
        csrf: &ctx.csrf,
        tokens: &list,
        environments: Environment::ALL,
        permissions: Permission::ALL,
        components: state.catalog.components().iter().collect(),
        all_tags: &all_tags,
        expiries: &EXPIRIES,
        max_name: MAX_NAME_CHARS,
        created,
        error,
        typed,
        now: Utc::now().naive_utc(),
    };
    let mut res = ctx.respond(status, "API tokens", &page)?;
    // The page may carry a token's secret: never keep it in a cache.
    res.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

pub(super) async fn page(state: State, ctx: Ctx) -> Result<HttpResponse, AppError> {
    render(&state, &ctx, StatusCode::OK, None, None, &Typed::default()).await
}

/// The form as typed, or what to fix.
fn read_form(state: &State, form: &FormData) -> (Typed, Result<NewToken, String>) {
    let typed = Typed {
        name: form.text("name"),
        environment: Environment::parse(&form.text("environment")),
        permissions: form.all("permission").filter_map(Permission::parse).collect(),
        components: form.all("component").map(str::to_owned).collect(),
        tags: form.all("tag").filter_map(|t| t.parse().ok()).collect(),
        expiry: form.text("expiry"),
    };
    let parsed = (|| {
        let environment =
            typed.environment.ok_or_else(|| "Choose the environment the token opens.".to_owned())?;
        if let Some(unknown) = typed.components.iter().find(|c| state.catalog.get(c).is_none()) {
            return Err(format!("There is no component `{unknown}`; choose from the list."));
        }
        let days = EXPIRIES
            .iter()
            .find(|(key, _, _)| *key == typed.expiry)
            .map(|(_, _, days)| *days)
            .ok_or_else(|| "Choose when the token expires.".to_owned())?;
        Ok(NewToken {
            name: typed.name.clone(),
            environment,
            permissions: typed.permissions.clone(),
            components: typed.components.iter().cloned().collect(),
            tags: typed.tags.iter().map(|t| TagId(*t)).collect(),
            expires_at: days.map(|d| Utc::now().naive_utc() + TimeDelta::days(d)),
        })
    })();
    (typed, parsed)
}

pub(super) async fn create(state: State, ctx: Ctx, form: FormData) -> Result<HttpResponse, AppError> {
    let me = ctx.user()?.clone();
    let (typed, parsed) = read_form(&state, &form);
    let new = match parsed {
        Ok(new) => new,
        Err(message) => {
            return render(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&message), &typed)
                .await;
        }
    };
    let created = db(&state, move |conn, _| Ok(tokens::create(conn, &Actor::Person(&me), &new))).await?;
    match created {
        Ok(issued) => {
            tracing::info!(token = %issued.token.id, environment = %issued.token.environment.as_str(), "API token created");
            let shown = (&issued.token, issued.secret.expose_secret());
            render(&state, &ctx, StatusCode::CREATED, Some(shown), None, &Typed::default()).await
        }
        Err(TokenError::Invalid(message)) => {
            render(&state, &ctx, StatusCode::UNPROCESSABLE_ENTITY, None, Some(&message), &typed).await
        }
        Err(TokenError::NotFound) => Err(AppError::not_found("There is no such API token.")),
        Err(TokenError::Database(e)) => Err(AppError::from(e)),
    }
}

pub(super) async fn revoke(state: State, ctx: Ctx, id: web::Path<i64>) -> Result<HttpResponse, AppError> {
    let me = ctx.user()?.clone();
    let id = ApiTokenId(id.into_inner());
    let revoked = db(&state, move |conn, _| Ok(tokens::revoke(conn, &Actor::Person(&me), id))).await?;
    match revoked {
        Ok(token) => {
            tracing::info!(token = %token.id, "API token revoked");
            Ok(see_other("/admin/api-tokens"))
        }
        Err(TokenError::NotFound) => Err(AppError::not_found("There is no such API token.")),
        Err(TokenError::Invalid(message)) => Err(AppError::bad_request(message)),
        Err(TokenError::Database(e)) => Err(AppError::from(e)),
    }
}
