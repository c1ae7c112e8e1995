//! OAuth2 authorization code flow (RFC 6749 section 4.1) with PKCE (RFC
//! 7636), as RFC 9700 asks of a client: the authorization request, the code
//! exchange, and refreshing tokens. The protocol work is the `oauth2`
//! crate's; every request it makes goes out through [`Outbound`], so token
//! requests obey the same network policy, redirect rules, body cap and time
//! limit as the checks.
//!
//! What differs between providers (scope separator, extra parameters,
//! client authentication, token-response fields) comes from the catalog
//! ([`Provider::of`]), never from code here.

pub mod attempts;
pub mod refresh;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta};
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicRevocationErrorResponse,
    BasicTokenIntrospectionResponse, BasicTokenType,
};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    ExtraTokenFields, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    Scope, StandardRevocableToken, StandardTokenResponse, TokenResponse, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::catalog::{AuthKind, AuthMethod, ClientAuth, Component, fill_scopes, fill_url};
use crate::connections::tokens::{Lifetime, Tokens};
use crate::outbound::{Outbound, OutboundError, Request};

/// How long a Connect may take between the click and the callback.
pub const ATTEMPT_LIFETIME: Duration = Duration::from_secs(10 * 60);

/// One provider's OAuth2 endpoints and quirks, with the connection's
/// settings filled into its URLs.
#[derive(Debug, Clone)]
pub struct Provider {
    pub authorization_url: Url,
    pub token_url: Url,
    /// Always requested.
    pub scopes: Vec<String>,
    /// Offered to the person connecting.
    pub optional_scopes: Vec<String>,
    pub scope_separator: String,
    pub authorize_params: Vec<(String, String)>,
    pub token_auth: ClientAuth,
    pub refresh_auth: ClientAuth,
    pub pkce: bool,
    pub access_token_pointer: String,
    /// Connection parameter key, and where in the token answer its value is.
    pub token_fields: Vec<(String, String)>,
    /// Callback query parameters kept as connection parameters.
    pub callback_params: Vec<String>,
    /// The `iss` expected on the callback (RFC 9207).
    pub issuer: Option<String>,
    pub refresh_margin: Option<Duration>,
}

impl Provider {
    /// The provider of an OAuth2 authorization-code method, its URLs filled
    /// from `settings` (`{shop}`, `{tenant}`); `Err` says what is missing.
    pub fn of(
        component: &Component,
        method: &AuthMethod,
        settings: &BTreeMap<String, String>,
    ) -> Result<Provider, String> {
        let flow =
            method.oauth2_flow().ok_or_else(|| format!("{} does not sign in with OAuth2", component.name))?;
        let url = |template: &str, what: &str| fill_url(template, settings, component, what);
        Ok(Provider {
            authorization_url: url(flow.authorization_url, "authorization URL")?,
            token_url: url(flow.token_url, "token URL")?,
            scopes: fill_scopes(flow.scopes, settings),
            optional_scopes: flow.optional_scopes.to_vec(),
            scope_separator: flow.scope_separator.to_owned(),
            authorize_params: flow.authorize_params.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            token_auth: flow.token_auth,
            refresh_auth: flow.refresh_auth(),
            pkce: flow.pkce,
            access_token_pointer: flow.access_token_pointer.to_owned(),
            token_fields: flow.token_fields.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            callback_params: flow.callback_params.to_vec(),
            issuer: flow.issuer.map(str::to_owned),
            refresh_margin: flow.refresh_margin_secs.map(Duration::from_secs),
        })
    }

    /// When to refresh a token that expires at `expires_at`, obtained at
    /// `now`: see [`refresh_due`].
    pub fn refresh_due(&self, now: NaiveDateTime, expires_at: NaiveDateTime) -> NaiveDateTime {
        refresh_due(now, expires_at, self.refresh_margin)
    }
}

/// When to renew a token obtained at `now` that expires at `expires_at`:
/// `margin` before expiry, by default the smaller of five minutes and half
/// the token's lifetime.
pub fn refresh_due(now: NaiveDateTime, expires_at: NaiveDateTime, margin: Option<Duration>) -> NaiveDateTime {
    let lifetime = (expires_at - now).to_std().unwrap_or_default();
    let margin = margin.unwrap_or_else(|| (lifetime / 2).min(Duration::from_secs(300)));
    expires_at - TimeDelta::from_std(margin).unwrap_or_default()
}

/// The OAuth app a connection signs in with.
#[derive(Clone)]
pub struct App {
    pub client_id: String,
    pub client_secret: SecretString,
}

/// Where providers send people back, and the OAuth apps the operator
/// configured (per component and environment), so that people only click
/// Connect.
pub struct Config {
    /// `{PLUGBOARD_PUBLIC_URL}/oauth2/callback`: registered with providers.
    pub redirect_uri: Url,
    apps: std::collections::HashMap<(String, crate::environment::Environment), App>,
}

/// The path of the redirect callback.
pub const CALLBACK_PATH: &str = "/oauth2/callback";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppEntry {
    client_id: String,
    client_secret: String,
}

impl Config {
    /// `public_url` is where browsers reach Plugboard; `apps_file` a TOML
    /// file of `[component.environment]` tables with `client_id` and
    /// `client_secret`.
    pub fn load(public_url: &str, apps_file: Option<&std::path::Path>) -> Result<Config, String> {
        let base = Url::parse(public_url.trim_end_matches('/'))
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
            .ok_or_else(|| format!("PLUGBOARD_PUBLIC_URL `{public_url}` is not an http or https URL"))?;
        let redirect_uri = base
            .join(CALLBACK_PATH)
            .map_err(|_| format!("PLUGBOARD_PUBLIC_URL `{public_url}` cannot take a path"))?;
        let mut apps = std::collections::HashMap::new();
        if let Some(path) = apps_file {
            let shown = path.display();
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("OAuth apps file {shown}: cannot read it: {e}"))?,
            );
            let table: BTreeMap<String, BTreeMap<String, AppEntry>> =
                toml::from_str(&text).map_err(|e| format!("OAuth apps file {shown}: {}", e.message()))?;
            for (component, environments) in table {
                for (environment, entry) in environments {
                    let env = crate::environment::Environment::parse(&environment).ok_or_else(|| {
                        format!(
                            "OAuth apps file {shown}, [{component}.{environment}]: the environment must be \
                             development, staging or production"
                        )
                    })?;
                    let app = App {
                        client_id: entry.client_id.clone(),
                        client_secret: SecretString::from(entry.client_secret.clone()),
                    };
                    apps.insert((component.clone(), env), app);
                }
            }
        }
        Ok(Config { redirect_uri, apps })
    }

    /// The operator's OAuth app for this component and environment.
    pub fn app(&self, component: &str, environment: crate::environment::Environment) -> Option<App> {
        self.apps.get(&(component.to_owned(), environment)).cloned()
    }
}

/// Everything the token answer carried that is kept.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RawFields {
    #[serde(flatten)]
    pub fields: serde_json::Map<String, serde_json::Value>,
}

impl ExtraTokenFields for RawFields {}

type TokenAnswer = StandardTokenResponse<RawFields, BasicTokenType>;

type Client<HasAuth, HasToken> = oauth2::Client<
    BasicErrorResponse,
    TokenAnswer,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    HasAuth,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasToken,
>;

fn auth_type(auth: ClientAuth) -> AuthType {
    match auth {
        ClientAuth::Basic => AuthType::BasicAuth,
        ClientAuth::Body => AuthType::RequestBody,
    }
}

fn client(provider: &Provider, app: &App, auth: ClientAuth) -> Client<EndpointSet, EndpointSet> {
    oauth2::Client::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.client_secret.expose_secret().to_owned()))
        .set_auth_uri(AuthUrl::from_url(provider.authorization_url.clone()))
        .set_token_uri(TokenUrl::from_url(provider.token_url.clone()))
        .set_auth_type(auth_type(auth))
}

/// A Connect about to send the browser away: where to, and what must be
/// kept server-side to finish it.
pub struct Authorization {
    pub url: Url,
    /// The `state` sent through the browser; stored only as its hash.
    pub state: SecretString,
    /// Never leaves Plugboard: the token request proves it.
    pub pkce_verifier: Option<SecretString>,
}

/// Builds the authorization request: state and PKCE verifier fresh for
/// this attempt, `scopes` joined the provider's way.
pub fn authorize(provider: &Provider, app: &App, redirect_uri: &Url, scopes: &[String]) -> Authorization {
    let client = client(provider, app, provider.token_auth)
        .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
    let mut request = client.authorize_url(CsrfToken::new_random);
    if !scopes.is_empty() {
        // One `scope` parameter, separated as this provider expects.
        request = request.add_scope(Scope::new(scopes.join(&provider.scope_separator)));
    }
    for (name, value) in &provider.authorize_params {
        request = request.add_extra_param(name.clone(), value.clone());
    }
    let verifier = if provider.pkce {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        request = request.set_pkce_challenge(challenge);
        Some(SecretString::from(verifier.secret().to_owned()))
    } else {
        None
    };
    let (url, state) = request.url();
    Authorization { url, state: SecretString::from(state.secret().to_owned()), pkce_verifier: verifier }
}

/// Tokens as a provider issued them.
pub struct Grant {
    pub tokens: Tokens,
    pub expires_in: Option<Duration>,
    /// Values the catalog keeps from the token answer (Salesforce's
    /// `instance_url`).
    pub fields: BTreeMap<String, String>,
}

impl Grant {
    /// When these tokens expire, and when to renew them: `margin` before
    /// expiry (see [`refresh_due`]), if `renewable` (there is a refresh
    /// token, or the client's own credentials get new tokens).
    pub fn lifetime(&self, now: NaiveDateTime, margin: Option<Duration>, renewable: bool) -> Lifetime {
        let expires_at = self.expires_in.and_then(|d| TimeDelta::from_std(d).ok()).map(|d| now + d);
        Lifetime {
            now,
            expires_at,
            refresh_due_at: expires_at.filter(|_| renewable).map(|e| refresh_due(now, e, margin)),
        }
    }
}

/// Why a token request did not give tokens, in words for a status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The provider refused the code or refresh token for good
    /// (`invalid_grant`): only signing in again helps.
    #[error("the provider refused the {what} (invalid_grant)")]
    InvalidGrant { what: &'static str, status: Option<u16> },
    /// The client id or secret is wrong.
    #[error("the provider refused the client id or secret (invalid_client)")]
    InvalidClient { status: Option<u16> },
    /// Another error the provider named.
    #[error("the provider answered {code}")]
    Refused { code: String, status: Option<u16> },
    /// No usable answer: worth trying again later.
    #[error("{0}")]
    Unreachable(OutboundError),
    #[error("the provider's answer could not be read as tokens")]
    Unreadable { status: Option<u16>, json: bool },
}

impl TokenError {
    /// Trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, TokenError::Unreachable(_))
    }

    /// The provider's error code and the HTTP status it came with, for a
    /// refusal by the provider (`None` when there was no usable answer).
    pub fn refusal(&self) -> Option<(Option<u16>, String)> {
        match self {
            TokenError::InvalidGrant { status, .. } => Some((*status, "invalid_grant".to_owned())),
            TokenError::InvalidClient { status } => Some((*status, "invalid_client".to_owned())),
            TokenError::Refused { code, status } => Some((*status, code.clone())),
            TokenError::Unreachable(_) | TokenError::Unreadable { .. } => None,
        }
    }
}

/// The HTTP status of the token endpoint's answer, as `send` saw it: the
/// `oauth2` crate parses an error answer without keeping its status, and a
/// status line is clearer with it ("HTTP 401 (invalid_client)").
#[derive(Clone, Default)]
struct SeenStatus(std::sync::Arc<(std::sync::atomic::AtomicU16, std::sync::atomic::AtomicBool)>);

impl SeenStatus {
    fn set(&self, status: u16, json: bool) {
        self.0.0.store(status, std::sync::atomic::Ordering::Relaxed);
        self.0.1.store(json, std::sync::atomic::Ordering::Relaxed);
    }

    fn get(&self) -> Option<u16> {
        Some(self.0.0.load(std::sync::atomic::Ordering::Relaxed)).filter(|s| *s != 0)
    }

    /// Whether the answer's body was JSON at all.
    fn json(&self) -> bool {
        self.0.1.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Exchanges an authorization code for tokens, with exactly the redirect
/// URI the authorization request carried.
pub async fn exchange_code(
    outbound: &Outbound,
    provider: &Provider,
    app: &App,
    redirect_uri: &Url,
    code: &str,
    pkce_verifier: Option<&SecretString>,
) -> Result<Grant, TokenError> {
    let client = client(provider, app, provider.token_auth)
        .set_redirect_uri(RedirectUrl::from_url(redirect_uri.clone()));
    let mut request = client.exchange_code(AuthorizationCode::new(code.to_owned()));
    if let Some(verifier) = pkce_verifier {
        request = request.set_pkce_verifier(PkceCodeVerifier::new(verifier.expose_secret().to_owned()));
    }
    let seen = SeenStatus::default();
    let http = |request: oauth2::HttpRequest| send(outbound.clone(), request, seen.clone());
    let answer =
        request.request_async(&http).await.map_err(|e| token_error(e, "authorization code", &seen))?;
    grant(provider, answer, None)
}

/// Refreshes the access token. An answer without a new refresh token keeps
/// `refresh_token`; a rotated one replaces it.
pub async fn refresh(
    outbound: &Outbound,
    provider: &Provider,
    app: &App,
    refresh_token: &SecretString,
) -> Result<Grant, TokenError> {
    let client = client(provider, app, provider.refresh_auth);
    let token = RefreshToken::new(refresh_token.expose_secret().to_owned());
    let seen = SeenStatus::default();
    let http = |request: oauth2::HttpRequest| send(outbound.clone(), request, seen.clone());
    let answer = client
        .exchange_refresh_token(&token)
        .request_async(&http)
        .await
        .map_err(|e| token_error(e, "refresh token", &seen))?;
    grant(provider, answer, Some(refresh_token))
}

/// A client-credentials method's token endpoint (RFC 6749 section 4.4),
/// its URL filled from the connection's settings.
#[derive(Debug, Clone)]
pub struct TokenEndpoint {
    pub token_url: Url,
    pub scopes: Vec<String>,
    pub token_auth: ClientAuth,
}

impl TokenEndpoint {
    /// The endpoint of a client-credentials method; `None` for any other
    /// kind, `Err` when a setting its URL needs is missing.
    pub fn of(
        component: &Component,
        method: &AuthMethod,
        settings: &BTreeMap<String, String>,
    ) -> Option<Result<TokenEndpoint, String>> {
        let AuthKind::Oauth2ClientCredentials { token_url, scopes, token_auth } = &method.kind else {
            return None;
        };
        Some(TokenEndpoint::new(component, token_url, scopes, *token_auth, settings))
    }

    /// The endpoint a method's `token_url` template names, filled.
    pub fn new(
        component: &Component,
        token_url: &str,
        scopes: &[String],
        token_auth: ClientAuth,
        settings: &BTreeMap<String, String>,
    ) -> Result<TokenEndpoint, String> {
        let token_url = fill_url(token_url, settings, component, "token URL")?;
        Ok(TokenEndpoint { token_url, scopes: fill_scopes(scopes, settings), token_auth })
    }
}

/// Asks for an access token with the client's own credentials: what
/// proves a client-credentials connection, and what renews its token.
pub async fn client_credentials(
    outbound: &Outbound,
    endpoint: &TokenEndpoint,
    app: &App,
) -> Result<Grant, TokenError> {
    let client = oauth2::Client::new(ClientId::new(app.client_id.clone()))
        .set_client_secret(ClientSecret::new(app.client_secret.expose_secret().to_owned()))
        .set_token_uri(TokenUrl::from_url(endpoint.token_url.clone()))
        .set_auth_type(auth_type(endpoint.token_auth));
    let client: Client<EndpointNotSet, EndpointSet> = client;
    let mut request = client.exchange_client_credentials();
    if !endpoint.scopes.is_empty() {
        request = request.add_scope(Scope::new(endpoint.scopes.join(" ")));
    }
    let seen = SeenStatus::default();
    let http = |request: oauth2::HttpRequest| send(outbound.clone(), request, seen.clone());
    let answer =
        request.request_async(&http).await.map_err(|e| token_error(e, "client credentials", &seen))?;
    grant_with("/access_token", &[], answer, None)
}

fn grant(
    provider: &Provider,
    answer: TokenAnswer,
    old_refresh: Option<&SecretString>,
) -> Result<Grant, TokenError> {
    grant_with(&provider.access_token_pointer, &provider.token_fields, answer, old_refresh)
}

/// The tokens of an answer: the access token at `access_token_pointer`,
/// and the `token_fields` kept as connection parameters.
fn grant_with(
    access_token_pointer: &str,
    token_fields: &[(String, String)],
    answer: TokenAnswer,
    old_refresh: Option<&SecretString>,
) -> Result<Grant, TokenError> {
    let raw = serde_json::to_value(&answer)
        .map_err(|_| TokenError::Unreadable { status: Some(200), json: true })?;
    // Usually the standard field; a provider may keep the token people
    // mean elsewhere (Slack's user token under `authed_user`).
    let access = raw
        .pointer(access_token_pointer)
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| answer.access_token().secret().clone());
    let refresh_token = answer
        .refresh_token()
        .map(|t| SecretString::from(t.secret().clone()))
        .or_else(|| old_refresh.map(|t| SecretString::from(t.expose_secret().to_owned())));
    let mut fields = BTreeMap::new();
    for (key, pointer) in token_fields {
        if let Some(value) = raw.pointer(pointer) {
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            fields.insert(key.clone(), text);
        }
    }
    Ok(Grant {
        tokens: Tokens { access_token: SecretString::from(access), refresh_token },
        expires_in: answer.expires_in(),
        fields,
    })
}

fn token_error(
    error: RequestTokenError<OutboundError, BasicErrorResponse>,
    what: &'static str,
    seen: &SeenStatus,
) -> TokenError {
    let status = seen.get();
    match error {
        RequestTokenError::ServerResponse(answer) => match answer.error() {
            BasicErrorResponseType::InvalidGrant => TokenError::InvalidGrant { what, status },
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                TokenError::InvalidClient { status }
            }
            other => TokenError::Refused { code: short_code(other.as_ref()), status },
        },
        RequestTokenError::Request(e) => TokenError::Unreachable(e),
        RequestTokenError::Parse(..) | RequestTokenError::Other(_) => {
            TokenError::Unreadable { status, json: seen.json() }
        }
    }
}

/// A provider's error code, fit for a status line: short and plain.
fn short_code(code: &str) -> String {
    let clean = code.len() <= 64 && code.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if clean { code.to_owned() } else { "an error".to_owned() }
}

/// The `oauth2` crate's requests, sent through the one outbound client.
/// Takes the client owned (a cheap clone), so the future borrows nothing
/// and stays `Send` for the job runner.
async fn send(
    outbound: Outbound,
    request: oauth2::HttpRequest,
    seen: SeenStatus,
) -> Result<oauth2::HttpResponse, OutboundError> {
    let url = Url::parse(&request.uri().to_string()).map_err(|_| OutboundError::Other)?;
    let mut out = Request::new(request.method().clone(), url);
    for (name, value) in request.headers() {
        let value = value.to_str().map_err(|_| OutboundError::BadHeader { name: name.to_string() })?;
        let secret = name == reqwest::header::AUTHORIZATION;
        out = out.header_marked(name.as_str(), value, secret);
    }
    out = out.body(request.into_body());
    let answer = outbound.send(out).await?;
    let mut status = answer.status;
    let json = serde_json::from_slice::<serde_json::Value>(&answer.body).ok();
    seen.set(status.as_u16(), json.is_some());
    // Some token endpoints (GitHub's; Slack's `ok: false`) answer errors
    // with HTTP 200: an answer carrying `error` is an error whatever its
    // status, so the crate parses it as one.
    if status.is_success() && json.is_some_and(|json| json.get("error").is_some_and(|e| e.is_string())) {
        status = reqwest::StatusCode::BAD_REQUEST;
    }
    let mut response = oauth2::HttpResponse::new(answer.body);
    *response.status_mut() = status;
    *response.headers_mut() = answer.headers;
    Ok(response)
}

/// SHA-256, hex: how states and session secrets are stored.
pub fn digest(value: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(value.as_bytes()))
}
