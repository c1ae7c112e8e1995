//! The New Connection dialog (pick a component, then fill its form) and
//! the edit form. Both render as a dialog fragment for htmx and as a plain
//! page without JavaScript.
//!
//! When a save is refused, htmx requests get only the error messages (as
//! out-of-band swaps) so that everything typed, secrets included, stays in
//! the browser; secrets are never sent back into a page. Without JavaScript
//! the form is rendered again with every non-secret value as typed.

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::context::{after_change, html_response};
use super::form::FormData;
use super::{Ctx, State, db};
use crate::audit::{self, Actor, Event};
use crate::catalog::{AuthMethod, Component, Field};
use crate::connections::input::{self, ConnectionInput, FieldErrors};
use crate::connections::{ConnectionId, StoreError, store};
use crate::error::AppError;
use crate::tags::{self, Tag};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/connections/new", web::get().to(new))
        .route("/connections", web::post().to(create))
        .route("/connections/{id}/edit", web::get().to(edit))
        .route("/connections/{id}", web::post().to(update));
}

/// The prefix of a catalog field's name in the form, so a field called
/// `name` cannot collide with the connection's name.
const FIELD_PREFIX: &str = "field:";

#[derive(Debug, Deserialize)]
struct NewParams {
    #[serde(default)]
    component: Option<String>,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "picker_partial.html")]
struct Picker<'a> {
    query: &'a str,
    components: Vec<&'a Component>,
}

/// One input of the generated form.
pub struct FormField<'a> {
    pub field: &'a Field,
    pub value: &'a str,
    pub error: Option<&'a str>,
    /// Edit only: a secret value is stored and a blank input keeps it.
    pub stored: bool,
}

impl FormField<'_> {
    pub fn input_type(&self) -> &'static str {
        if self.field.secret { "password" } else { "text" }
    }

    pub fn required(&self) -> bool {
        self.field.required && !self.stored
    }

    pub fn placeholder(&self) -> &str {
        if self.stored {
            "•••••••• (set; leave blank to keep)"
        } else {
            &self.field.placeholder
        }
    }
}

pub enum Mode {
    New,
    Edit { id: ConnectionId, version: i32 },
}

#[derive(Template)]
#[template(path = "connection_form_partial.html")]
struct ConnectionForm<'a> {
    mode: Mode,
    csrf: &'a str,
    component: &'a Component,
    method: &'a AuthMethod,
    input: &'a ConnectionInput,
    fields: Vec<FormField<'a>>,
    errors: &'a FieldErrors,
    all_tags: &'a [Tag],
    /// Tags that exist nowhere yet but were typed, shown as ticked boxes.
    extra_tags: Vec<&'a str>,
    /// Edit only: the status and recent checks.
    check_panel: Option<String>,
}

impl ConnectionForm<'_> {
    fn action(&self) -> String {
        match &self.mode {
            Mode::New => "/connections".to_owned(),
            Mode::Edit { id, .. } => format!("/connections/{id}"),
        }
    }

    fn method_url(&self, method: &str) -> String {
        match &self.mode {
            Mode::New => format!("/connections/new?component={}&method={method}", self.component.key),
            Mode::Edit { id, .. } => format!("/connections/{id}/edit?method={method}"),
        }
    }

    fn is_ticked(&self, tag: &str) -> bool {
        let key = tag.to_lowercase();
        self.input.tags.iter().any(|t| t.trim().to_lowercase() == key)
    }

    fn error(&self, key: &str) -> Option<&str> {
        self.errors.get(key)
    }
}

/// Only the error messages, swapped into their places out of band.
#[derive(Template)]
#[template(path = "form_errors_partial.html")]
struct FormErrors<'a> {
    keys: Vec<&'a str>,
    errors: &'a FieldErrors,
}

async fn new(state: State, ctx: Ctx, params: web::Query<NewParams>) -> Result<HttpResponse, AppError> {
    let params = params.into_inner();
    let Some(key) = params.component.filter(|k| !k.is_empty()) else {
        let query = params.q.unwrap_or_default();
        let picker = Picker { query: query.trim(), components: state.catalog.search(&query).collect() };
        return ctx.respond(StatusCode::OK, "New connection", &picker);
    };
    let component = state.catalog.get(&key).ok_or_else(unknown_component)?;
    let method = pick_method(component, params.method.as_deref());
    let input = ConnectionInput {
        name: component.name.clone(),
        auth_method: method.key.clone(),
        values: component
            .settings
            .iter()
            .chain(&method.fields)
            .filter(|f| !f.default.is_empty())
            .map(|f| (f.key.clone(), f.default.clone()))
            .collect(),
        ..ConnectionInput::default()
    };
    let all_tags = db(&state, |conn, _| Ok(tags::all(conn)?)).await?;
    render_form(
        &ctx,
        StatusCode::OK,
        Mode::New,
        component,
        &input,
        &FieldErrors::default(),
        &all_tags,
        &BTreeSet::new(),
        None,
    )
}

async fn create(state: State, ctx: Ctx, form: FormData) -> Result<HttpResponse, AppError> {
    let key = form.text("component");
    let component = state.catalog.get(&key).ok_or_else(unknown_component)?;
    let input = read_input(&form);
    match input::validate(component, &input, None, &BTreeSet::new()) {
        Ok(mut draft) => {
            let environment = ctx.environment;
            let key = component.key.clone();
            let name = draft.name.clone();
            let user = ctx.user()?.clone();
            draft.author = Some(user.display());
            let id = db(&state, move |conn, state| {
                let id = store::insert(conn, &state.keyring, environment, &key, &draft)?;
                let fields: Vec<&String> = draft.parameters.keys().chain(draft.secrets.keys()).collect();
                let tags: Vec<&str> = draft.tags.iter().map(|t| t.as_str()).collect();
                audit::record(conn, Event {
                    actor: Actor::Person(&user),
                    action: "connection_create",
                    environment: Some(environment),
                    connection: Some(id),
                    subject: &draft.name,
                    details: serde_json::json!({
                        "component": key, "auth_method": draft.auth_method, "fields": fields, "tags": tags,
                    }),
                })?;
                Ok(id)
            })
            .await?;
            tracing::info!(connection = %id, component = %component.key, environment = %environment.as_str(), "connection created");
            let verdict = super::check::after_save(&state, &ctx, id).await;
            Ok(saved(&ctx, &format!("Created \u{201c}{name}\u{201d} in {environment}: {verdict}.")))
        }
        Err(errors) => {
            let all_tags = db(&state, |conn, _| Ok(tags::all(conn)?)).await?;
            refused(
                &ctx,
                StatusCode::UNPROCESSABLE_ENTITY,
                Mode::New,
                component,
                &input,
                &errors,
                &all_tags,
                &BTreeSet::new(),
            )
        }
    }
}

#[derive(Debug, Deserialize)]
struct EditParams {
    #[serde(default)]
    method: Option<String>,
}

async fn edit(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    params: web::Query<EditParams>,
) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let (connection, all_tags, checks) = db(&state, move |conn, _| {
        Ok((
            store::get(conn, environment, id)?,
            tags::all(conn)?,
            store::recent_checks(conn, environment, id)?,
        ))
    })
    .await?;
    let component =
        state.catalog.get(&connection.component).ok_or_else(|| removed_component(&connection.component))?;
    let method = pick_method(component, params.method.as_deref().or(Some(&connection.auth_method)));
    let check_panel =
        super::check::CheckPanel { csrf: &ctx.csrf, id, status: &connection.status, checks: &checks }
            .render()
            .map_err(AppError::internal)?;
    let input = ConnectionInput {
        name: connection.name.clone(),
        auth_method: method.key.clone(),
        values: connection.parameters.clone(),
        tags: connection.tags.iter().map(|t| t.name.clone()).collect(),
        new_tags: String::new(),
    };
    let stored =
        if method.key == connection.auth_method { connection.secret_fields.clone() } else { BTreeSet::new() };
    let mode = Mode::Edit { id, version: connection.version };
    render_form(
        &ctx,
        StatusCode::OK,
        mode,
        component,
        &input,
        &FieldErrors::default(),
        &all_tags,
        &stored,
        Some(check_panel),
    )
}

async fn update(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let environment = ctx.environment;
    let version: i32 = form.text("version").parse().map_err(|_| {
        AppError::bad_request("This form is missing its version, so it cannot be saved safely. Open the connection again and redo the change.")
    })?;
    let (connection, all_tags) =
        db(&state, move |conn, _| Ok((store::get(conn, environment, id)?, tags::all(conn)?))).await?;
    let component =
        state.catalog.get(&connection.component).ok_or_else(|| removed_component(&connection.component))?;
    let input = read_input(&form);
    let stored = if input.auth_method == connection.auth_method {
        connection.secret_fields.clone()
    } else {
        BTreeSet::new()
    };
    let mode = Mode::Edit { id, version };
    let draft =
        match input::validate(component, &input, Some(&connection.auth_method), &connection.secret_fields) {
            Ok(draft) => draft,
            Err(errors) => {
                return refused(
                    &ctx,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    mode,
                    component,
                    &input,
                    &errors,
                    &all_tags,
                    &stored,
                );
            }
        };
    let name = draft.name.clone();
    let user = ctx.user()?.clone();
    let mut draft = draft;
    draft.author = Some(user.display());
    let changes = changed_fields(&connection, &draft);
    let saved_result = db(&state, move |conn, state| {
        match store::update(conn, &state.keyring, environment, id, version, &draft) {
            Err(StoreError::Conflict) => Ok(false),
            Ok(()) => {
                audit::record(
                    conn,
                    Event {
                        actor: Actor::Person(&user),
                        action: "connection_edit",
                        environment: Some(environment),
                        connection: Some(id),
                        subject: &draft.name,
                        details: changes,
                    },
                )?;
                Ok(true)
            }
            Err(e) => Err(AppError::from(e)),
        }
    })
    .await?;
    if !saved_result {
        let errors = FieldErrors::single(
            "form",
            "Someone else saved this connection after you opened it, so your changes were not saved. \
             Open it again to see the latest version, then make your change again.",
        );
        return refused(&ctx, StatusCode::CONFLICT, mode, component, &input, &errors, &all_tags, &stored);
    }
    tracing::info!(connection = %id, environment = %environment.as_str(), "connection updated");
    let verdict = super::check::after_save(&state, &ctx, id).await;
    Ok(saved(&ctx, &format!("Saved \u{201c}{name}\u{201d}: {verdict}.")))
}

/// What an edit changes, by name only: never a value, so the audit trail
/// holds no secret.
fn changed_fields(
    before: &crate::connections::Connection,
    after: &crate::connections::Draft,
) -> serde_json::Value {
    let mut fields: Vec<String> = Vec::new();
    if before.name != after.name {
        fields.push("name".into());
    }
    if before.auth_method != after.auth_method {
        fields.push("auth_method".into());
    }
    let keys: BTreeSet<&String> = before.parameters.keys().chain(after.parameters.keys()).collect();
    for key in keys {
        if before.parameters.get(key) != after.parameters.get(key) {
            fields.push(key.clone());
        }
    }
    // A secret typed again counts as changed: its value is never compared.
    fields.extend(after.secrets.keys().cloned());
    let old_tags: BTreeSet<String> = before.tags.iter().map(|t| t.name.to_lowercase()).collect();
    let new_tags: BTreeSet<String> = after.tags.iter().map(|t| t.key()).collect();
    serde_json::json!({
        "fields": fields,
        "tags_added": new_tags.difference(&old_tags).collect::<Vec<_>>(),
        "tags_removed": old_tags.difference(&new_tags).collect::<Vec<_>>(),
    })
}

fn read_input(form: &FormData) -> ConnectionInput {
    ConnectionInput {
        name: form.text("name"),
        auth_method: form.text("auth_method"),
        values: form.with_prefix(FIELD_PREFIX).map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        tags: form.all("tag").map(str::to_owned).collect(),
        new_tags: form.text("new_tags"),
    }
}

fn pick_method<'a>(component: &'a Component, key: Option<&str>) -> &'a AuthMethod {
    key.and_then(|k| component.auth_method(k)).unwrap_or(&component.auth_methods[0])
}

fn unknown_component() -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Unknown component",
        "Plugboard does not know this component. Choose one from the New Connection list.",
    )
}

fn removed_component(key: &str) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "Component unavailable",
        format!(
            "This connection's component `{key}` is no longer in the catalog, so it cannot be edited. \
             Ask your operator to restore it, or delete the connection."
        ),
    )
}

fn saved(ctx: &Ctx, notice: &str) -> HttpResponse {
    after_change(ctx, notice)
}

#[allow(clippy::too_many_arguments)]
fn refused(
    ctx: &Ctx,
    status: StatusCode,
    mode: Mode,
    component: &Component,
    input: &ConnectionInput,
    errors: &FieldErrors,
    all_tags: &[Tag],
    stored: &BTreeSet<String>,
) -> Result<HttpResponse, AppError> {
    if !ctx.fragment {
        return render_form(ctx, status, mode, component, input, errors, all_tags, stored, None);
    }
    let method = pick_method(component, Some(&input.auth_method));
    let keys = ["form", "name", "auth_method", "tags"]
        .into_iter()
        .chain(component.settings.iter().chain(&method.fields).map(|f| f.key.as_str()))
        .collect();
    let html = FormErrors { keys, errors }.render().map_err(AppError::internal)?;
    let mut res = html_response(status, html);
    // Leave the form as it is; only the out-of-band messages change.
    res.headers_mut().insert(header::HeaderName::from_static("hx-reswap"), HeaderValue::from_static("none"));
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
fn render_form(
    ctx: &Ctx,
    status: StatusCode,
    mode: Mode,
    component: &Component,
    input: &ConnectionInput,
    errors: &FieldErrors,
    all_tags: &[Tag],
    stored: &BTreeSet<String>,
    check_panel: Option<String>,
) -> Result<HttpResponse, AppError> {
    let method = pick_method(component, Some(&input.auth_method));
    let fields = component
        .settings
        .iter()
        .chain(&method.fields)
        .map(|field| FormField {
            field,
            // A secret is never written back into a page.
            value: if field.secret { "" } else { input.value(&field.key) },
            error: errors.get(&field.key),
            stored: field.secret && stored.contains(&field.key),
        })
        .collect();
    let known: BTreeSet<String> = all_tags.iter().map(|t| t.name.to_lowercase()).collect();
    let extra_tags =
        input.tags.iter().map(String::as_str).filter(|t| !known.contains(&t.to_lowercase())).collect();
    let form = ConnectionForm {
        mode,
        csrf: &ctx.csrf,
        component,
        method,
        input,
        fields,
        errors,
        all_tags,
        extra_tags,
        check_panel,
    };
    let title = match form.mode {
        Mode::New => "New connection",
        Mode::Edit { .. } => "Edit connection",
    };
    ctx.respond(status, title, &form)
}
