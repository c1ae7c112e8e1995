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

use super::check::{self, CheckPanel};
use super::{EnvironmentCheck, opened_in};
use crate::audit::Actor;
use crate::catalog::{AuthKind, AuthMethod, Component, Field};
use crate::checks::schedule;
use crate::connections::drafts::{Draft, Target};
use crate::connections::input::{self, ConnectionInput, FieldErrors};
use crate::connections::tokens::{self, TokenState};
use crate::connections::{ConnectionId, StoreError, counts, operations, store};
use crate::environment::Environment;
use crate::tags::{self, Tag};
use crate::web::context::{Partial, after_change, html_response};
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{AppState, Ctx, State, db, db_read, db_write};

/// The prefix of a catalog field's name in the form, so a field called
/// `name` cannot collide with the connection's name.
const FIELD_PREFIX: &str = "field:";

/// No fields, for a form that restores nothing.
static NONE: BTreeSet<String> = BTreeSet::new();

#[derive(Debug, Deserialize)]
pub(super) struct NewParams {
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
    count: usize,
    groups: Vec<ChoiceGroup<'a>>,
}

/// The picker's components of one category, so that 150 of them read as a
/// short list of groups (the same with or without JavaScript).
struct ChoiceGroup<'a> {
    heading: String,
    /// The group of the components this environment uses most.
    most_used: bool,
    components: Vec<Choice<'a>>,
}

struct Choice<'a> {
    key: &'a str,
    name: &'a str,
    category: &'a str,
    /// What app.js filters on, as the server's search does.
    search_text: &'a str,
    /// Connections of this component in the environment.
    connections: i64,
}

impl Choice<'_> {
    fn connections_label(&self) -> String {
        match self.connections {
            1 => "1 connection".to_owned(),
            n => format!("{n} connections"),
        }
    }
}

/// How many of the most used components lead the picker: the few a team
/// reaches for again, not a second copy of the catalog.
const MOST_USED: usize = 8;

impl<'a> Picker<'a> {
    /// The components the environment uses most come first (most
    /// connections first), each only there; then the categories in
    /// alphabetical order with Generic last: the catch-alls are for when
    /// nothing else fits.
    fn new(
        query: &'a str,
        components: impl Iterator<Item = &'a Component>,
        environment: Environment,
        used: &[(String, i64)],
    ) -> Picker<'a> {
        let mut most_used: Vec<(&str, i64)> =
            used.iter().filter(|(_, n)| *n > 0).map(|(k, n)| (k.as_str(), *n)).collect();
        most_used.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
        most_used.truncate(MOST_USED);
        let mut first = ChoiceGroup {
            heading: format!("Most used in {environment}"),
            most_used: true,
            components: Vec::new(),
        };
        let mut groups: Vec<ChoiceGroup<'a>> = Vec::new();
        let mut count = 0;
        for c in components {
            count += 1;
            let connections = most_used.iter().find(|(k, _)| *k == c.key).map_or(0, |(_, n)| *n);
            let choice = Choice {
                key: &c.key,
                name: &c.name,
                category: &c.category,
                search_text: &c.search_text,
                connections,
            };
            if connections > 0 {
                first.components.push(choice);
                continue;
            }
            match groups.iter_mut().find(|g| g.heading == c.category) {
                Some(group) => group.components.push(choice),
                None => groups.push(ChoiceGroup {
                    heading: c.category.clone(),
                    most_used: false,
                    components: vec![choice],
                }),
            }
        }
        groups.sort_by_key(|g| (g.heading == "Generic", g.heading.to_lowercase()));
        first.components.sort_by(|a, b| b.connections.cmp(&a.connections).then_with(|| a.key.cmp(b.key)));
        if !first.components.is_empty() {
            groups.insert(0, first);
        }
        Picker { query, count, groups }
    }
}

/// One input of the generated form.
pub struct FormField<'a> {
    pub field: &'a Field,
    pub value: &'a str,
    pub error: Option<&'a str>,
    /// Edit only: a secret value is stored and a blank input keeps it.
    pub stored: bool,
    /// A refused plain form: the secret typed here was not sent back, and
    /// the field says it must be entered again.
    pub retype: bool,
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

#[derive(Clone, Copy)]
pub enum Mode {
    New,
    Edit { id: ConnectionId, version: i32 },
}

#[derive(Template)]
#[template(path = "connection_form_partial.html")]
struct ConnectionForm<'a> {
    mode: Mode,
    /// Where it saves; sent back with the form, so a save never lands in
    /// an environment switched to in another tab.
    environment: Environment,
    csrf: &'a str,
    component: &'a Component,
    method: &'a AuthMethod,
    input: &'a ConnectionInput,
    fields: Vec<FormField<'a>>,
    errors: &'a FieldErrors,
    /// The connection's tags (or those ticked before a refusal), each a
    /// ticked box that unticking removes.
    chosen_tags: Vec<&'a str>,
    /// Every other tag, offered as the person types; one input scales to
    /// any number of tags where a box per tag would not.
    suggestions: Vec<&'a str>,
    /// Edit only: the status and recent checks.
    check_panel: Option<Partial<'a, CheckPanel<'a>>>,
    /// For an OAuth2 sign-in method: what Connect will ask for.
    oauth: Option<OAuthView>,
}

/// What the dialog shows of an OAuth2 sign-in.
#[derive(Clone)]
pub(super) struct OAuthView {
    /// To register with the provider; shown with a copy button.
    redirect_uri: String,
    scopes: Vec<String>,
    /// Each optional scope, and whether it is ticked.
    optional_scopes: Vec<(String, bool)>,
    /// The operator configured the OAuth app: no client id or secret asked.
    operator_app: bool,
    /// Edit only: the tokens' state.
    tokens: Option<TokenState>,
}

impl OAuthView {
    fn expires(&self) -> String {
        match self.tokens.as_ref().and_then(|t| t.expires_at) {
            Some(at) => format!("access token expires {} UTC", at.format("%Y-%m-%d %H:%M")),
            None if self.tokens.is_some() => "the access token does not expire".to_owned(),
            None => "not signed in yet".to_owned(),
        }
    }

    fn refreshed(&self) -> String {
        match self.tokens.as_ref() {
            Some(t) => match t.refreshed_at {
                Some(at) => format!("last refreshed {} UTC", at.format("%Y-%m-%d %H:%M")),
                None => {
                    format!("signed in {} UTC, not refreshed since", t.obtained_at.format("%Y-%m-%d %H:%M"))
                }
            },
            None => String::new(),
        }
    }
}

/// The client id and secret fields, which an operator's OAuth app makes
/// unnecessary.
pub(super) const APP_FIELDS: [&str; 2] = ["client_id", "client_secret"];

/// The dialog's OAuth2 part, if `method` signs in with OAuth2.
pub(super) fn oauth_view(
    state: &AppState,
    component: &Component,
    method: &AuthMethod,
    environment: Environment,
    input: &ConnectionInput,
    tokens: Option<TokenState>,
) -> Option<OAuthView> {
    let AuthKind::Oauth2AuthorizationCode { scopes, optional_scopes, .. } = &method.kind else {
        return None;
    };
    Some(OAuthView {
        redirect_uri: state.oauth.redirect_uri.to_string(),
        scopes: scopes.clone(),
        optional_scopes: optional_scopes.iter().map(|s| (s.clone(), input.scopes.contains(s))).collect(),
        operator_app: state.oauth.app(&component.key, environment).is_some(),
        tokens,
    })
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

    fn error(&self, key: &str) -> Option<&str> {
        self.errors.get(key)
    }

    /// A new OAuth2 connection is made by signing in, not by saving.
    fn connects(&self) -> bool {
        self.oauth.is_some() && matches!(self.mode, Mode::New)
    }
}

/// Only the error messages, swapped into their places out of band.
#[derive(Template)]
#[template(path = "form_errors_partial.html")]
struct FormErrors<'a> {
    keys: Vec<&'a str>,
    errors: &'a FieldErrors,
    /// Set when the session moved to another environment since the form
    /// was opened: the form now says (and sends) that one.
    switched_to: Option<Environment>,
}

/// A form as it is shown again: what was typed, and what is wrong with it.
pub(super) struct Shown<'a> {
    pub(super) mode: Mode,
    pub(super) environment: Environment,
    pub(super) component: &'a Component,
    pub(super) input: &'a ConnectionInput,
    pub(super) errors: &'a FieldErrors,
    pub(super) all_tags: &'a [Tag],
    /// Secret fields with a stored value that a blank input keeps.
    pub(super) stored: &'a BTreeSet<String>,
    /// Secret fields typed before the session ended: restored without
    /// their values, they say to enter them again.
    pub(super) retype: &'a BTreeSet<String>,
    pub(super) oauth: Option<OAuthView>,
}

pub(super) async fn new(
    state: State,
    ctx: Ctx,
    params: web::Query<NewParams>,
) -> Result<HttpResponse, AppError> {
    let params = params.into_inner();
    let Some(key) = params.component.filter(|k| !k.is_empty()) else {
        let query = params.q.unwrap_or_default();
        let environment = ctx.environment;
        let used = db(&state, move |conn, _| Ok(counts::of(conn, environment)?.components)).await?;
        let picker = Picker::new(query.trim(), state.catalog.search(&query), environment, &used);
        return ctx.respond(StatusCode::OK, "New connection", &picker);
    };
    let component = state.catalog.get(&key).ok_or_else(unknown_component)?;
    new_form(&state, &ctx, component, params.method.as_deref(), None).await
}

/// The New Connection form of `component`, with its defaults or, after a
/// sign-in, with the input kept from before it (`kept`).
pub(super) async fn new_form(
    state: &State,
    ctx: &Ctx,
    component: &Component,
    method: Option<&str>,
    kept: Option<&Draft>,
) -> Result<HttpResponse, AppError> {
    let method = pick_method(component, kept.map(|d| d.input.auth_method.as_str()).or(method));
    let input = match kept {
        Some(draft) => ConnectionInput { auth_method: method.key.clone(), ..draft.input.clone() },
        None => ConnectionInput {
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
        },
    };
    let all_tags = db(state, |conn, _| Ok(tags::all(conn)?)).await?;
    let shown = Shown {
        mode: Mode::New,
        environment: ctx.environment,
        component,
        input: &input,
        errors: &FieldErrors::default(),
        all_tags: &all_tags,
        stored: &BTreeSet::new(),
        retype: kept.map_or(&NONE, |d| &d.retype),
        oauth: oauth_view(state, component, method, ctx.environment, &input, None),
    };
    render_form(ctx, StatusCode::OK, &shown, None)
}

pub(super) async fn create(state: State, ctx: Ctx, form: FormData) -> Result<HttpResponse, AppError> {
    let key = form.text("component");
    let component = state.catalog.get(&key).ok_or_else(unknown_component)?;
    let input = read_input(&form);
    let environment = ctx.environment;
    let ctx = &ctx;
    let refuse = |errors: FieldErrors, status: StatusCode, switched: bool| {
        let state = state.clone();
        let input = input.clone();
        async move {
            let all_tags = db(&state, |conn, _| Ok(tags::all(conn)?)).await?;
            let method = pick_method(component, Some(&input.auth_method));
            let shown = Shown {
                mode: Mode::New,
                environment,
                component,
                input: &input,
                errors: &errors,
                all_tags: &all_tags,
                stored: &BTreeSet::new(),
                retype: &BTreeSet::new(),
                oauth: oauth_view(&state, component, method, environment, &input, None),
            };
            refused(ctx, status, &shown, switched.then_some(environment))
        }
    };
    if let EnvironmentCheck::Switched { opened } = opened_in(ctx, &form)? {
        let message = format!(
            "This form was opened in {opened}, but Plugboard now shows {environment} (it was switched in \
             another tab or window), so nothing was saved. Save again to create it in {environment}, or \
             switch back to {opened} at the top of the page first."
        );
        return refuse(FieldErrors::single("form", message), StatusCode::CONFLICT, true).await;
    }
    let draft = match input::validate(component, &input, None, &BTreeSet::new()) {
        Ok(draft) => draft,
        Err(errors) => return refuse(errors, StatusCode::UNPROCESSABLE_ENTITY, false).await,
    };
    let user = ctx.user()?.clone();
    let name = draft.name.clone();
    let (_, report) = schedule::create_checked(
        &state.clone().into_inner(),
        &Actor::Person(&user),
        environment,
        &component.key,
        draft,
    )
    .await?;
    let verdict = check::verdict(&report);
    Ok(after_change(ctx, &format!("Created \u{201c}{name}\u{201d} in {environment}: {verdict}.")))
}

#[derive(Debug, Deserialize)]
pub(super) struct EditParams {
    #[serde(default)]
    method: Option<String>,
}

pub(super) async fn edit(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    params: web::Query<EditParams>,
) -> Result<HttpResponse, AppError> {
    edit_form(&state, &ctx, ConnectionId(id.into_inner()), params.method.as_deref(), None).await
}

/// The edit form, with the stored values or, after a sign-in, with the
/// input kept from before it (`kept`).
pub(super) async fn edit_form(
    state: &State,
    ctx: &Ctx,
    id: ConnectionId,
    method: Option<&str>,
    kept: Option<&Draft>,
) -> Result<HttpResponse, AppError> {
    let environment = ctx.environment;
    let (connection, all_tags, checks, unreadable, token_state, consumers) =
        db_read(state, move |conn, state| {
            let unreadable = match store::open_secrets(conn, &state.keyring, environment, id) {
                Ok(_) => None,
                Err(e @ (StoreError::Crypto(_) | StoreError::Corrupt(_))) => Some(e.to_string()),
                Err(e) => return Err(e.into()),
            };
            let token_state = tokens::states(conn, &[id])?.remove(&id);
            Ok((
                store::get(conn, environment, id)?,
                tags::all(conn)?,
                store::recent_checks(conn, environment, id)?,
                unreadable,
                token_state,
                crate::api::usage::consumers(conn, environment, id)?,
            ))
        })
        .await?;
    let component =
        state.catalog.get(&connection.component).ok_or_else(|| removed_component(&connection.component))?;
    // A whole form kept across a sign-in names its method; a tag does not.
    let kept_form = kept.filter(|d| !matches!(d.target, Target::Tag { .. }));
    let method = pick_method(
        component,
        kept_form.map(|d| d.input.auth_method.as_str()).or(method).or(Some(&connection.auth_method)),
    );
    let check_panel = CheckPanel {
        csrf: &ctx.csrf,
        environment,
        id,
        status: &connection.status,
        checks: &checks,
        consumers: &consumers,
    };
    let mut input = ConnectionInput {
        name: connection.name.clone(),
        auth_method: method.key.clone(),
        values: connection.parameters.clone(),
        tags: connection.tags.iter().map(|t| t.name.clone()).collect(),
        new_tags: String::new(),
        scopes: Vec::new(),
    };
    match (kept, kept_form) {
        (_, Some(form)) => input = ConnectionInput { auth_method: method.key.clone(), ..form.input.clone() },
        (Some(tag), None) => input.new_tags = tag.input.new_tags.clone(),
        (None, None) => {}
    }
    // Stored secrets that cannot be opened are as good as none: the form
    // asks for them again rather than pretending they are kept.
    let stored = if method.key == connection.auth_method && unreadable.is_none() {
        connection.secret_fields.clone()
    } else {
        BTreeSet::new()
    };
    let errors = match &unreadable {
        Some(why) => FieldErrors::single("form", undecryptable(why)),
        None => FieldErrors::default(),
    };
    let shown = Shown {
        mode: Mode::Edit { id, version: connection.version },
        environment,
        component,
        input: &input,
        errors: &errors,
        all_tags: &all_tags,
        stored: &stored,
        retype: kept.map_or(&NONE, |d| &d.retype),
        oauth: oauth_view(state, component, method, environment, &input, token_state),
    };
    render_form(ctx, StatusCode::OK, &shown, Some(Partial(&check_panel)))
}

/// What the form says when the stored credentials cannot be opened.
fn undecryptable(why: &str) -> String {
    format!(
        "Plugboard cannot decrypt the stored credentials ({why}). Enter them again to save this connection."
    )
}

pub(super) async fn update(
    state: State,
    ctx: Ctx,
    id: web::Path<i64>,
    form: FormData,
) -> Result<HttpResponse, AppError> {
    let id = ConnectionId(id.into_inner());
    let version: i32 = form.text("version").parse().map_err(|_| {
        AppError::bad_request("This form is missing its version, so it cannot be saved safely. Open the connection again and redo the change.")
    })?;
    // A form opened in another environment than the session's now: it
    // is shown (and refused) as the connection it was opened for.
    let check = opened_in(&ctx, &form)?;
    let environment = match check {
        EnvironmentCheck::Switched { opened } => opened,
        EnvironmentCheck::Same => ctx.environment,
    };
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
    let refuse = |errors: &FieldErrors, status: StatusCode| {
        let method = pick_method(component, Some(&input.auth_method));
        let shown = Shown {
            mode: Mode::Edit { id, version },
            environment,
            component,
            input: &input,
            errors,
            all_tags: &all_tags,
            stored: &stored,
            retype: &BTreeSet::new(),
            oauth: oauth_view(&state, component, method, environment, &input, None),
        };
        refused(&ctx, status, &shown, None)
    };
    if let EnvironmentCheck::Switched { opened } = check {
        let message = format!(
            "This connection is in {opened}, but Plugboard now shows {} (it was switched in another tab \
             or window), so nothing was saved. Switch back to {opened} at the top of the page, then save \
             again.",
            ctx.environment
        );
        return refuse(&FieldErrors::single("form", message), StatusCode::CONFLICT);
    }
    let draft =
        match input::validate(component, &input, Some(&connection.auth_method), &connection.secret_fields) {
            Ok(draft) => draft,
            Err(errors) => return refuse(&errors, StatusCode::UNPROCESSABLE_ENTITY),
        };
    let name = draft.name.clone();
    let kept: Vec<String> = draft.kept_secrets.iter().cloned().collect();
    let user = ctx.user()?.clone();
    let saved = db_write(&state, move |conn, state| {
        let actor = Actor::Person(&user);
        Ok(operations::update(conn, &state.keyring, &actor, environment, id, version, draft))
    })
    .await?;
    match saved {
        Ok(()) => {}
        Err(StoreError::Conflict) => {
            let errors = FieldErrors::single(
                "form",
                "Someone else saved this connection after you opened it, so your changes were not saved. \
                 Open it again to see the latest version, then make your change again.",
            );
            return refuse(&errors, StatusCode::CONFLICT);
        }
        // A kept secret that cannot be opened: ask for it, change nothing.
        Err(e @ (StoreError::Crypto(_) | StoreError::Corrupt(_))) => {
            let why = e.to_string();
            let mut errors = FieldErrors::single("form", undecryptable(&why));
            for key in &kept {
                errors.add(key, "The stored value cannot be decrypted; enter it again.");
            }
            return refuse(&errors, StatusCode::UNPROCESSABLE_ENTITY);
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(connection = %id, environment = %environment.as_str(), "connection updated");
    let verdict = check::after_save(&state, &ctx, id).await;
    Ok(after_change(&ctx, &format!("Saved \u{201c}{name}\u{201d}: {verdict}.")))
}

pub(super) fn read_input(form: &FormData) -> ConnectionInput {
    ConnectionInput {
        name: form.text("name"),
        auth_method: form.text("auth_method"),
        values: form.with_prefix(FIELD_PREFIX).map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        tags: form.all("tag").map(str::to_owned).collect(),
        new_tags: form.text("new_tags"),
        scopes: form.all("scope").map(str::to_owned).collect(),
    }
}

pub(super) fn pick_method<'a>(component: &'a Component, key: Option<&str>) -> &'a AuthMethod {
    key.and_then(|k| component.auth_method(k)).unwrap_or(&component.auth_methods[0])
}

pub(super) fn unknown_component() -> AppError {
    AppError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "Unknown component",
        "Plugboard does not know this component. Choose one from the New Connection list.",
    )
}

pub(super) fn removed_component(key: &str) -> AppError {
    AppError::new(
        StatusCode::CONFLICT,
        "Component unavailable",
        format!(
            "This connection's component `{key}` is no longer in the catalog, so it cannot be edited. \
             Ask your operator to restore it, or delete the connection."
        ),
    )
}

/// A refused save. htmx gets only the messages, so everything typed stays
/// in the browser; a plain form comes back with the non-secret values.
pub(super) fn refused(
    ctx: &Ctx,
    status: StatusCode,
    shown: &Shown,
    switched_to: Option<Environment>,
) -> Result<HttpResponse, AppError> {
    if !ctx.fragment {
        return render_form(ctx, status, shown, None);
    }
    let method = pick_method(shown.component, Some(&shown.input.auth_method));
    let keys = ["form", "name", "auth_method", "tags"]
        .into_iter()
        .chain(shown.component.settings.iter().chain(&method.fields).map(|f| f.key.as_str()))
        .collect();
    let html = FormErrors { keys, errors: shown.errors, switched_to }.render().map_err(AppError::internal)?;
    let mut res = html_response(status, html);
    // Leave the form as it is; only the out-of-band messages change.
    res.headers_mut().insert(header::HeaderName::from_static("hx-reswap"), HeaderValue::from_static("none"));
    Ok(res)
}

pub(super) fn render_form(
    ctx: &Ctx,
    status: StatusCode,
    shown: &Shown,
    check_panel: Option<Partial<'_, CheckPanel<'_>>>,
) -> Result<HttpResponse, AppError> {
    let method = pick_method(shown.component, Some(&shown.input.auth_method));
    let operator_app = shown.oauth.as_ref().is_some_and(|o| o.operator_app);
    let fields = shown
        .component
        .settings
        .iter()
        .chain(&method.fields)
        .filter(|field| !(operator_app && APP_FIELDS.contains(&field.key.as_str())))
        .map(|field| FormField {
            field,
            // A secret is never written back into a page.
            value: if field.secret { "" } else { shown.input.value(&field.key) },
            error: shown.errors.get(&field.key),
            stored: field.secret && shown.stored.contains(&field.key),
            retype: field.secret
                && ((status.is_client_error() && !shown.input.value(&field.key).is_empty())
                    || shown.retype.contains(&field.key)),
        })
        .collect();
    let chosen: BTreeSet<String> = shown.input.tags.iter().map(|t| t.trim().to_lowercase()).collect();
    // A chosen tag shows as the tag is spelled; one typed that exists
    // nowhere yet, as typed.
    let mut chosen_tags: Vec<&str> = Vec::with_capacity(chosen.len());
    for typed in &shown.input.tags {
        let key = typed.trim().to_lowercase();
        let name =
            shown.all_tags.iter().find(|t| t.name.to_lowercase() == key).map_or(typed.trim(), |t| &t.name);
        if !name.is_empty() && !chosen_tags.iter().any(|c| c.to_lowercase() == key) {
            chosen_tags.push(name);
        }
    }
    let suggestions = shown
        .all_tags
        .iter()
        .map(|t| t.name.as_str())
        .filter(|name| !chosen.contains(&name.to_lowercase()))
        .collect();
    let form = ConnectionForm {
        mode: shown.mode,
        environment: shown.environment,
        csrf: &ctx.csrf,
        component: shown.component,
        method,
        input: shown.input,
        fields,
        errors: shown.errors,
        chosen_tags,
        suggestions,
        check_panel,
        oauth: shown.oauth.clone(),
    };
    let title = match form.mode {
        Mode::New => "New connection",
        Mode::Edit { .. } => "Edit connection",
    };
    ctx.respond(status, title, &form)
}
