//! OAuth2 Connect and Reconnect: the button that sends the browser to the
//! provider, and the redirect callback the provider sends it back to.
//!
//! The state, the PKCE verifier and what was typed stay on the server
//! (`oauth::attempts`); the browser carries only the state. Without
//! JavaScript the whole page goes to the provider and back to the list;
//! with it, app.js runs the same flow in a popup and refreshes the list
//! when the popup reports back.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};
use askama::Template;
use chrono::{TimeDelta, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::form::{self, APP_FIELDS, Mode, Shown, oauth_view, pick_method, read_input, unknown_component};
use super::{EnvironmentCheck, opened_in, require_same_environment};
use crate::audit::Actor;
use crate::catalog::{AuthKind, AuthMethod, Component};
use crate::connections::input::{self, Draft, FieldErrors};
use crate::connections::operations::{self, SCOPES_PARAMETER};
use crate::connections::{ConnectionId, store};
use crate::oauth::attempts::{self, NewAttempt, Pending, Refused};
use crate::oauth::{self, App, Provider, TokenError};
use crate::tags::{self, TagName};
use crate::web::context::see_other;
use crate::web::error::AppError;
use crate::web::form::FormData;
use crate::web::{Ctx, State, db, db_write};

/// The session's own secret, hashed: binds an attempt to the session that
/// started it. The CSRF token is that secret: random, per session, renewed
/// at sign-in, never in a URL.
fn session_binding(ctx: &Ctx) -> String {
    oauth::digest(&ctx.csrf)
}

/// The method as the dialog shows it: without the client id and secret
/// fields when the operator configured the OAuth app.
fn method_for_form(method: &AuthMethod, operator_app: bool) -> AuthMethod {
    let mut method = method.clone();
    if operator_app {
        method.fields.retain(|f| !APP_FIELDS.contains(&f.key.as_str()));
    }
    method
}

/// Connect (a new connection) or Reconnect (`connection` set).
pub(super) async fn connect(state: State, ctx: Ctx, form: FormData) -> Result<HttpResponse, AppError> {
    let popup = form.text("popup") == "1";
    if let Some(id) = form.get("connection").filter(|v| !v.is_empty()) {
        require_same_environment(&ctx, &form)?;
        let id = id.parse::<i64>().map(ConnectionId).map_err(|_| AppError::connection_not_found())?;
        return reconnect(state, ctx, id, popup).await;
    }
    let component = state.catalog.get(&form.text("component")).ok_or_else(unknown_component)?;
    let input = read_input(&form);
    let environment = ctx.environment;
    let method = pick_method(component, Some(&input.auth_method));
    let operator_app = state.oauth.app(&component.key, environment);
    let refuse = |errors: FieldErrors, status: StatusCode| {
        let (state, input) = (state.clone(), input.clone());
        let ctx = &ctx;
        async move {
            let all_tags = db(&state, |conn, _| Ok(tags::all(conn)?)).await?;
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
            form::refused(ctx, status, &shown, None)
        }
    };
    if let EnvironmentCheck::Switched { opened } = opened_in(&ctx, &form)? {
        let message = format!(
            "This form was opened in {opened}, but Plugboard now shows {environment} (it was switched in \
             another tab or window), so nothing was started. Switch back to {opened} first, or reopen \
             New Connection to connect in {environment}."
        );
        return refuse(FieldErrors::single("form", message), StatusCode::CONFLICT).await;
    }
    if !matches!(method.kind, AuthKind::Oauth2AuthorizationCode { .. }) {
        let message = format!("{} is not an OAuth2 sign-in of {}.", method.label, component.name);
        return refuse(FieldErrors::single("auth_method", message), StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    // Validated as the dialog showed it: without the app fields when the
    // operator's app is used.
    let mut checked = component.clone();
    if let Some(m) = checked.auth_methods.iter_mut().find(|m| m.key == method.key) {
        *m = method_for_form(method, operator_app.is_some());
    }
    let draft = match input::validate(&checked, &input, None, &BTreeSet::new()) {
        Ok(draft) => draft,
        Err(errors) => return refuse(errors, StatusCode::UNPROCESSABLE_ENTITY).await,
    };
    let provider = match Provider::of(component, method, &draft.parameters) {
        Ok(provider) => provider,
        Err(why) => {
            return refuse(FieldErrors::single("form", format!("{why}.")), StatusCode::UNPROCESSABLE_ENTITY)
                .await;
        }
    };
    let app = match operator_app {
        Some(app) => app,
        None => App {
            client_id: draft.parameters.get("client_id").cloned().unwrap_or_default(),
            client_secret: draft
                .secrets
                .get("client_secret")
                .cloned()
                .unwrap_or_else(|| SecretString::from(String::new())),
        },
    };
    let mut scopes = provider.scopes.clone();
    scopes.extend(input.scopes.iter().filter(|s| provider.optional_scopes.contains(s)).cloned());
    let pending = Pending {
        name: draft.name.clone(),
        tags: draft.tags.iter().map(|t| t.as_str().to_owned()).collect(),
        parameters: draft.parameters.clone(),
        client_id: app.client_id.clone(),
        client_secret: draft.secrets.get("client_secret").map(|s| s.expose_secret().to_owned()),
        scopes,
        pkce_verifier: None,
    };
    start(&state, &ctx, component, method, None, &provider, &app, pending, popup).await
}

/// Reconnect: the same flow for a connection that exists, keeping it.
async fn reconnect(state: State, ctx: Ctx, id: ConnectionId, popup: bool) -> Result<HttpResponse, AppError> {
    let environment = ctx.environment;
    let (connection, secrets) = db(&state, move |conn, s| {
        Ok((store::get(conn, environment, id)?, store::open_secrets(conn, &s.keyring, environment, id)))
    })
    .await?;
    let component = state
        .catalog
        .get(&connection.component)
        .ok_or_else(|| form::removed_component(&connection.component))?;
    let method = component
        .auth_method(&connection.auth_method)
        .filter(|m| matches!(m.kind, AuthKind::Oauth2AuthorizationCode { .. }))
        .ok_or_else(|| AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "Not an OAuth2 connection", "Only connections that sign in with OAuth2 can be reconnected. Edit this one's credentials instead."))?;
    let provider = Provider::of(component, method, &connection.parameters).map_err(|why| {
        AppError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Cannot reconnect",
            format!("{why}. Edit the connection first."),
        )
    })?;
    let client_secret = match &secrets {
        Ok(secrets) => secrets.get("client_secret").map(|s| s.expose_secret().to_owned()),
        Err(_) => None,
    };
    let app = match state.oauth.app(&component.key, environment) {
        Some(app) => app,
        None => App {
            client_id: connection.parameters.get("client_id").cloned().unwrap_or_default(),
            client_secret: SecretString::from(client_secret.clone().ok_or_else(|| {
                AppError::new(StatusCode::UNPROCESSABLE_ENTITY, "Client secret needed", "Plugboard cannot read this connection's client secret. Edit the connection, enter the client secret again, then reconnect.")
            })?),
        },
    };
    let scopes = connection
        .parameters
        .get(SCOPES_PARAMETER)
        .map(|s| s.split(' ').filter(|s| !s.is_empty()).map(str::to_owned).collect())
        .unwrap_or_else(|| provider.scopes.clone());
    let pending = Pending {
        name: connection.name.clone(),
        tags: connection.tags.iter().map(|t| t.name.clone()).collect(),
        parameters: connection.parameters.clone(),
        client_id: app.client_id.clone(),
        client_secret,
        scopes,
        pkce_verifier: None,
    };
    start(&state, &ctx, component, method, Some(id), &provider, &app, pending, popup).await
}

/// Stores the attempt and sends the browser to the provider.
#[allow(clippy::too_many_arguments)]
async fn start(
    state: &State,
    ctx: &Ctx,
    component: &Component,
    method: &AuthMethod,
    connection: Option<ConnectionId>,
    provider: &Provider,
    app: &App,
    mut pending: Pending,
    popup: bool,
) -> Result<HttpResponse, AppError> {
    let redirect_uri = state.oauth.redirect_uri.clone();
    let authorization = oauth::authorize(provider, app, &redirect_uri, &pending.scopes);
    pending.pkce_verifier = authorization.pkce_verifier.as_ref().map(|v| v.expose_secret().to_owned());
    let state_hash = oauth::digest(authorization.state.expose_secret());
    let binding = session_binding(ctx);
    let user = ctx.user()?.id;
    let (environment, component_key, method_key) =
        (ctx.environment, component.key.clone(), method.key.clone());
    db(state, move |conn, s| {
        let attempt = NewAttempt {
            state_hash: &state_hash,
            session_binding: &binding,
            user,
            environment,
            component: &component_key,
            auth_method: &method_key,
            connection,
            redirect_uri: redirect_uri.as_str(),
            popup,
            pending: &pending,
        };
        let lifetime = TimeDelta::from_std(oauth::ATTEMPT_LIFETIME).unwrap_or(TimeDelta::minutes(10));
        Ok(attempts::create(conn, &s.keyring, &attempt, Utc::now().naive_utc(), lifetime)?)
    })
    .await?;
    tracing::info!(component = %component.key, reconnect = connection.is_some(), "OAuth2 sign-in started");
    let location = authorization.url.to_string();
    if ctx.fragment {
        // htmx would follow a redirect itself; the browser must go instead.
        let mut res = HttpResponse::Ok().finish();
        res.headers_mut().insert(
            header::HeaderName::from_static("hx-redirect"),
            HeaderValue::from_str(&location).map_err(AppError::internal)?,
        );
        return Ok(res);
    }
    // Not a redirect: browsers hold a form's redirects to the page's
    // `form-action 'self'`, which the provider is not. This page, the
    // form's own answer, moves on by itself (and offers a link).
    let page = Leaving { layout: ctx.layout("Signing in"), provider: &component.name, url: &location };
    ctx.page(StatusCode::OK, &page)
}

/// The step between Connect and the provider.
#[derive(Template)]
#[template(path = "oauth_leaving.html")]
struct Leaving<'a> {
    layout: crate::web::context::Layout<'a>,
    provider: &'a str,
    url: &'a str,
}

#[derive(Debug, Deserialize)]
pub(super) struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(flatten)]
    rest: BTreeMap<String, String>,
}

/// What the callback page says when the popup is done.
#[derive(Template)]
#[template(path = "oauth_done.html")]
struct Done<'a> {
    layout: crate::web::context::Layout<'a>,
    ok: bool,
    message: &'a str,
}

/// The provider's redirect back, with a code or an error.
pub(super) async fn callback(
    state: State,
    ctx: Ctx,
    query: web::Query<Callback>,
) -> Result<HttpResponse, AppError> {
    let query = query.into_inner();
    let refused =
        |status: StatusCode, title: &'static str, message: String| AppError::new(status, title, message);
    let raw_state = query.state.as_deref().filter(|s| !s.is_empty() && s.len() <= 512).ok_or_else(|| {
        refused(
            StatusCode::BAD_REQUEST,
            "Sign-in incomplete",
            "This address is missing the sign-in's state, so nothing was changed. Start again with Connect."
                .into(),
        )
    })?;
    let state_hash = oauth::digest(raw_state);
    let binding = session_binding(&ctx);
    let user = ctx.user()?.clone();
    let user_id = user.id;
    let attempt = db(&state, move |conn, s| Ok(attempts::consume(conn, &s.keyring, &state_hash, &binding, user_id, Utc::now().naive_utc())?))
        .await?
        .map_err(|why| {
            let message = match why {
                Refused::Unknown => "This sign-in was already finished, or it did not start here, so nothing was changed. Start again with Connect.",
                Refused::Expired => "This sign-in took longer than 10 minutes and has expired, so nothing was changed. Start again with Connect.",
                Refused::NotYours => "This sign-in was started in another browser session or by someone else, so nothing was changed. Start it again here with Connect.",
            };
            tracing::warn!(?why, "refused an OAuth2 callback");
            refused(StatusCode::BAD_REQUEST, "Sign-in refused", message.to_owned())
        })?;
    let popup = attempt.popup;
    let failed = |status: StatusCode, message: String| finish(&ctx, popup, Some(status), message);
    if let Some(error) = query.error.as_deref() {
        return failed(StatusCode::BAD_REQUEST, provider_error(error, query.error_description.as_deref()));
    }
    let component =
        state.catalog.get(&attempt.component).ok_or_else(|| form::removed_component(&attempt.component))?;
    let method = component.auth_method(&attempt.auth_method).ok_or_else(unknown_component)?;
    let provider = match Provider::of(component, method, &attempt.pending.parameters) {
        Ok(provider) => provider,
        Err(why) => return failed(StatusCode::UNPROCESSABLE_ENTITY, format!("{why}.")),
    };
    if let Err(message) = check_issuer(&provider, query.iss.as_deref()) {
        return failed(StatusCode::BAD_REQUEST, message);
    }
    let Some(code) = query.code.as_deref().filter(|c| !c.is_empty() && c.len() <= 4096) else {
        return failed(
            StatusCode::BAD_REQUEST,
            format!("{} sent no authorization code back. Try Connect again.", component.name),
        );
    };
    let app = match state.oauth.app(&component.key, attempt.environment) {
        Some(app) => app,
        None => App {
            client_id: attempt.pending.client_id.clone(),
            client_secret: SecretString::from(attempt.pending.client_secret.clone().unwrap_or_default()),
        },
    };
    let redirect_uri = Url::parse(&attempt.redirect_uri).map_err(AppError::internal)?;
    let verifier = attempt.pending.pkce_verifier.as_ref().map(|v| SecretString::from(v.clone()));
    let grant = match oauth::exchange_code(
        state.checker.outbound(),
        &provider,
        &app,
        &redirect_uri,
        code,
        verifier.as_ref(),
    )
    .await
    {
        Ok(grant) => grant,
        Err(e) => return failed(StatusCode::BAD_GATEWAY, exchange_error(&component.name, &e)),
    };

    // What the provider issued besides tokens, kept as parameters.
    let mut issued = grant.fields.clone();
    for name in &provider.callback_params {
        if let Some(value) = query.rest.get(name).filter(|v| v.len() <= 256) {
            issued.insert(name.clone(), value.clone());
        }
    }
    issued.insert(SCOPES_PARAMETER.to_owned(), attempt.pending.scopes.join(" "));
    let renewable = grant.tokens.refresh_token.is_some();
    let lifetime = grant.lifetime(Utc::now().naive_utc(), provider.refresh_margin, renewable);
    let environment = attempt.environment;
    let (id, name) = match attempt.connection {
        Some(id) => {
            let who = user.clone();
            let tokens = grant.tokens;
            db_write(&state, move |conn, s| {
                operations::reconnect(
                    conn,
                    &s.keyring,
                    &Actor::Person(&who),
                    environment,
                    id,
                    &issued,
                    &tokens,
                    &lifetime,
                )?;
                Ok(())
            })
            .await?;
            (id, attempt.pending.name.clone())
        }
        None => {
            let mut parameters = attempt.pending.parameters.clone();
            parameters.extend(issued);
            let mut secrets = BTreeMap::new();
            if let Some(secret) = attempt
                .pending
                .client_secret
                .as_ref()
                .filter(|_| state.oauth.app(&component.key, environment).is_none())
            {
                secrets.insert("client_secret".to_owned(), SecretString::from(secret.clone()));
            }
            let draft = Draft {
                name: attempt.pending.name.clone(),
                auth_method: attempt.auth_method.clone(),
                parameters,
                secrets,
                kept_secrets: BTreeSet::new(),
                tags: attempt.pending.tags.iter().filter_map(|t| TagName::parse(t).ok()).collect(),
                author: None,
            };
            let (who, key, tokens) = (user.clone(), component.key.clone(), grant.tokens);
            let id = db_write(&state, move |conn, s| {
                Ok(operations::connect(
                    conn,
                    &s.keyring,
                    &Actor::Person(&who),
                    environment,
                    &key,
                    draft,
                    &tokens,
                    &lifetime,
                )?)
            })
            .await?;
            (id, attempt.pending.name.clone())
        }
    };
    tracing::info!(connection = %id, component = %component.key, "OAuth2 sign-in finished");
    let verdict = match crate::checks::schedule::check_now(
        &state.clone().into_inner(),
        environment,
        id,
        crate::checks::schedule::Trigger::Save,
        &Actor::Person(&user),
    )
    .await
    {
        Ok(report) if report.status.is_active() => "ACTIVE".to_owned(),
        Ok(report) => format!("NOT ACTIVE ({})", report.reason),
        Err(e) => {
            tracing::warn!(connection = %id, "check after sign-in failed: {e}");
            "NOT ACTIVE (not checked yet)".to_owned()
        }
    };
    let what = if attempt.connection.is_some() { "Reconnected" } else { "Connected" };
    finish(&ctx, popup, None, format!("{what} \u{201c}{name}\u{201d} in {environment}: {verdict}."))
}

/// RFC 9207: an `iss` on the callback must be the issuer expected; where
/// the catalog names none, it must at least be the authorization server's
/// own origin.
fn check_issuer(provider: &Provider, iss: Option<&str>) -> Result<(), String> {
    let Some(iss) = iss else { return Ok(()) };
    let expected = match &provider.issuer {
        Some(issuer) => issuer.trim_end_matches('/') == iss.trim_end_matches('/'),
        None => Url::parse(iss).is_ok_and(|u| u.origin() == provider.authorization_url.origin()),
    };
    if expected {
        Ok(())
    } else {
        Err("The answer came from another authorization server than the one asked (its issuer does not match), so it was not used. Try Connect again; if it keeps happening, tell your administrator.".to_owned())
    }
}

/// The provider's callback error, in words that say what to do.
fn provider_error(code: &str, description: Option<&str>) -> String {
    let said = description
        .filter(|d| d.len() <= 200 && !d.chars().any(char::is_control))
        .map(|d| format!(" The provider said: \u{201c}{d}\u{201d}."))
        .unwrap_or_default();
    let what = match code {
        "access_denied" => "Access was not granted (the sign-in was cancelled or declined), so nothing was saved. Click Connect again and allow access.".to_owned(),
        "invalid_scope" => "The provider refused the scopes asked for, so nothing was saved. Untick optional scopes the app is not allowed, or enable them for the app in the provider's console.".to_owned(),
        "unauthorized_client" | "invalid_client" => "The provider does not accept this OAuth app for sign-in, so nothing was saved. Check the client id and that the redirect URI shown in the dialog is registered with the app.".to_owned(),
        "server_error" | "temporarily_unavailable" => "The provider could not finish the sign-in just now, so nothing was saved. Try again in a moment.".to_owned(),
        other => {
            let clean: String = other.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
            format!("The provider refused the sign-in ({clean}), so nothing was saved. Try Connect again.")
        }
    };
    format!("{what}{said}")
}

fn exchange_error(provider: &str, error: &TokenError) -> String {
    match error {
        TokenError::InvalidClient { .. } => format!(
            "{provider} refused the client id or secret, so nothing was saved. Check them in {provider}'s developer console, then Connect again."
        ),
        TokenError::InvalidGrant { .. } => format!(
            "{provider} refused the sign-in code (it may have expired or been used), so nothing was saved. Connect again."
        ),
        TokenError::Refused { code, .. } => {
            format!("{provider} refused the token request ({code}), so nothing was saved. Connect again.")
        }
        TokenError::Unreachable(e) => format!(
            "Plugboard could not reach {provider}'s token endpoint ({e}), so nothing was saved. Try again in a moment."
        ),
        TokenError::Unreadable { .. } => format!(
            "{provider}'s token answer could not be read, so nothing was saved. Try again; if it keeps happening, tell your administrator."
        ),
    }
}

/// Ends a sign-in: the popup gets a page that reports back and closes;
/// a full-page sign-in goes back to the list, or, when it failed (`failed`
/// holds the status), to a page saying why.
fn finish(
    ctx: &Ctx,
    popup: bool,
    failed: Option<StatusCode>,
    message: String,
) -> Result<HttpResponse, AppError> {
    if failed.is_none() && !popup {
        return Ok(see_other("/"));
    }
    let title = if failed.is_none() { "Connected" } else { "Sign-in failed" };
    let page = Done { layout: ctx.layout(title), ok: failed.is_none(), message: &message };
    ctx.page(failed.unwrap_or(StatusCode::OK), &page)
}
