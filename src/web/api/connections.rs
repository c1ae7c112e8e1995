//! The Connections API's routes: the list, one connection, its
//! credentials, and running its check. Each reads the token first, then
//! works only inside the token's environment and limits.

use std::collections::BTreeMap;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::caller::{Caller, Presented};
use super::error::{ApiError, ErrorBody};
use super::{State, api_db};
use crate::api::{Permission, usage};
use crate::audit::{Actor, OwnedActor};
use crate::catalog::AuthKind;
use crate::checks::schedule::{self, Trigger};
use crate::connections::listing::{self, ListQuery, Sort};
use crate::connections::store;
use crate::connections::tokens::{self, TokenState};
use crate::connections::{Connection, ConnectionId, Status, StatusReport};
use crate::db::DbConnection;
use crate::oauth::refresh::{self, RECONNECT_NEEDED, Refreshed};
use crate::state::{AppState, BlockingError};

/// An OAuth2 access token handed out is good for at least this long.
const MIN_VALIDITY: TimeDelta = TimeDelta::seconds(60);
/// The longest filter value (as on the page).
const MAX_FILTER_CHARS: usize = 100;
const DEFAULT_PER_PAGE: i64 = 50;
const MAX_PER_PAGE: i64 = 200;

fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    DateTime::from_naive_utc_and_offset(at, Utc)
}

/// `active` or `not_active`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusValue {
    Active,
    NotActive,
}

impl From<Status> for StatusValue {
    fn from(s: Status) -> StatusValue {
        match s {
            Status::Active => StatusValue::Active,
            Status::NotActive => StatusValue::NotActive,
        }
    }
}

/// Whether the credentials worked when last checked, and why not.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusView {
    pub status: StatusValue,
    pub reason: String,
    pub checked_at: Option<DateTime<Utc>>,
}

impl From<&StatusReport> for StatusView {
    fn from(r: &StatusReport) -> StatusView {
        StatusView { status: r.status.into(), reason: r.reason.clone(), checked_at: r.checked_at.map(utc) }
    }
}

/// A connection's metadata: never a secret value, only which secret
/// fields are set.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionMeta {
    pub id: i64,
    pub name: String,
    /// `development`, `staging` or `production`: the token's own.
    pub environment: String,
    /// The component's key in the catalog (`slack`).
    pub component: String,
    pub component_name: String,
    /// The authorization method's key (`api_key`, `oauth2`).
    pub auth_method: String,
    pub status: StatusView,
    pub tags: Vec<String>,
    /// Non-secret settings and fields.
    pub parameters: BTreeMap<String, String>,
    /// Names of the secret fields that have a value.
    pub secret_fields: Vec<String>,
    /// OAuth2: when the stored access token expires.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl ConnectionMeta {
    fn of(state: &AppState, c: &Connection, tokens: Option<&TokenState>) -> ConnectionMeta {
        ConnectionMeta {
            id: c.id.0,
            name: c.name.clone(),
            environment: c.environment.as_str().to_owned(),
            component: c.component.clone(),
            component_name: state
                .catalog
                .get(&c.component)
                .map_or_else(|| c.component.clone(), |k| k.name.clone()),
            auth_method: c.auth_method.clone(),
            status: (&c.status).into(),
            tags: c.tags.iter().map(|t| t.name.clone()).collect(),
            parameters: c.parameters.clone(),
            secret_fields: c.secret_fields.iter().cloned().collect(),
            access_token_expires_at: tokens.and_then(|t| t.expires_at).map(utc),
            created_at: utc(c.created_at),
            updated_at: utc(c.updated_at),
        }
    }
}

/// One page of connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionMeta>,
    /// Matching connections in all pages.
    pub total: i64,
    /// Counted from 1.
    pub page: i64,
    pub pages: i64,
    pub per_page: i64,
}

/// What a service needs, ready to use. Returned with `Cache-Control: no-store`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Credentials {
    pub connection_id: i64,
    pub component: String,
    pub auth_method: String,
    /// The kind of method: `api_key`, `basic`, `bearer`,
    /// `oauth2_authorization_code`, `oauth2_client_credentials`,
    /// `aws_sigv4` or `custom`.
    pub kind: String,
    /// The method's fields and the component's settings, secret ones
    /// decrypted (`api_key`, `username` and `password`, AWS keys ...). For
    /// OAuth2, only the non-secret ones: use `access_token`.
    pub fields: BTreeMap<String, String>,
    /// OAuth2: an access token valid for at least the next 60 seconds.
    pub access_token: Option<String>,
    pub token_type: Option<String>,
    /// OAuth2: when `access_token` expires (absent: the provider did not say).
    pub expires_at: Option<DateTime<Utc>>,
}

/// Filters, as on the Connections page.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// A component key (`slack`).
    pub component: Option<String>,
    /// A tag name.
    pub tag: Option<String>,
    pub status: Option<StatusValue>,
    /// Part of the connection's name (case and accents ignored).
    pub search: Option<String>,
    /// `true`: only connections whose credentials nobody read in the last
    /// 30 days.
    pub unused: Option<bool>,
    /// Counted from 1 (default 1).
    pub page: Option<i64>,
    /// 1 to 200 (default 50).
    pub per_page: Option<i64>,
}

impl ListParams {
    fn query(&self, caller: &Caller) -> Result<ListQuery, ApiError> {
        for (what, value) in [("search", &self.search), ("component", &self.component), ("tag", &self.tag)] {
            if value
                .as_deref()
                .is_some_and(|v| v.chars().count() > MAX_FILTER_CHARS || v.chars().any(char::is_control))
            {
                return Err(ApiError::bad_request(format!(
                    "`{what}` can be at most {MAX_FILTER_CHARS} printable characters; no name is longer."
                )));
            }
        }
        let per_page = self.per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            return Err(ApiError::bad_request(format!("`per_page` must be between 1 and {MAX_PER_PAGE}.")));
        }
        let page = self.page.unwrap_or(1);
        if page < 1 {
            return Err(ApiError::bad_request("`page` counts from 1."));
        }
        let text =
            |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_owned);
        Ok(ListQuery {
            component: text(&self.component),
            tag: text(&self.tag),
            status: self.status.map(|s| match s {
                StatusValue::Active => Status::Active,
                StatusValue::NotActive => Status::NotActive,
            }),
            search: text(&self.search),
            sort: Sort::NameAsc,
            reach: caller.token.reach(),
            unused_since: self.unused.filter(|u| *u).map(|_| usage::recent_since(Utc::now().naive_utc())),
            page,
            after: None,
            before: None,
            per_page,
        })
    }
}

/// List the connections the token reaches.
#[utoipa::path(
    get, path = "/api/v1/connections", tag = "connections", operation_id = "list_connections",
    params(ListParams),
    responses(
        (status = 200, description = "A page of connections, by name", body = ConnectionList),
        (status = 400, description = "A filter that cannot be read", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = ErrorBody),
        (status = 403, description = "The token lacks `read_metadata`", body = ErrorBody),
        (status = 429, description = "Over the token's rate limit; see Retry-After", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn list(
    state: State,
    req: HttpRequest,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let presented = Presented::of(&req)?;
    let params = params.into_inner();
    let answer = api_db(&state, move |conn, s| {
        let caller = presented.admit(conn, s, Permission::ReadMetadata)?;
        let query = params.query(&caller)?;
        let environment = caller.token.environment;
        // The page as the Connections page finds it (keyset, by the name
        // index); then the metadata the list's own rows leave out.
        let listing::Overview { page, tokens: token_states, .. } =
            listing::overview(conn, environment, &query)?;
        let (total, number, pages) = (page.total, page.page, page.pages);
        let connections = store::details(conn, environment, page.connections)?;
        Ok(ConnectionList {
            connections: connections
                .iter()
                .map(|c| ConnectionMeta::of(s, c, token_states.get(&c.id)))
                .collect(),
            total,
            page: number,
            pages,
            per_page: query.per_page,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// The connection `id` if the token reaches it; 404 otherwise, whether it
/// is in another environment, outside the limits or gone.
fn reachable(conn: &mut DbConnection, caller: &Caller, id: ConnectionId) -> Result<Connection, ApiError> {
    let connection = store::get(conn, caller.token.environment, id)?;
    if !caller.token.reaches(&connection) {
        return Err(ApiError::connection_not_found());
    }
    Ok(connection)
}

/// One connection's metadata and status.
#[utoipa::path(
    get, path = "/api/v1/connections/{id}", tag = "connections", operation_id = "get_connection",
    params(("id" = i64, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "The connection", body = ConnectionMeta),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = ErrorBody),
        (status = 403, description = "The token lacks `read_metadata`", body = ErrorBody),
        (status = 404, description = "No such connection for this token", body = ErrorBody),
        (status = 429, description = "Over the token's rate limit; see Retry-After", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn get(state: State, req: HttpRequest, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let presented = Presented::of(&req)?;
    let id = ConnectionId(id.into_inner());
    let answer = api_db(&state, move |conn, s| {
        let caller = presented.admit(conn, s, Permission::ReadMetadata)?;
        let connection = reachable(conn, &caller, id)?;
        let token_state = tokens::states(conn, &[id])?.remove(&id);
        Ok(ConnectionMeta::of(s, &connection, token_state.as_ref()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(answer))
}

/// What the first database step of a credentials call found.
enum Read {
    /// The answer, once the read is recorded.
    Ready(Box<(Credentials, usage::Read)>),
    /// The stored access token is the answer, renewed first if need be.
    OAuth2(Box<(Caller, Connection)>, Grant),
}

/// How an OAuth2 connection's access token is renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Grant {
    /// With the refresh token a person's sign-in gave.
    AuthorizationCode,
    /// With the client's own id and secret.
    ClientCredentials,
}

impl Grant {
    fn kind(self) -> &'static str {
        match self {
            Grant::AuthorizationCode => "oauth2_authorization_code",
            Grant::ClientCredentials => "oauth2_client_credentials",
        }
    }

    /// The provider refused to renew the token: a sign-in needs a person
    /// to reconnect, a client its credentials fixed.
    fn refused(self, reason: impl Into<String>) -> ApiError {
        match self {
            Grant::AuthorizationCode => ApiError::reconnect_needed(reason),
            Grant::ClientCredentials => ApiError::unusable(reason),
        }
    }

    /// No token is stored yet.
    fn missing(self, connection: &Connection) -> ApiError {
        match self {
            Grant::AuthorizationCode => {
                ApiError::reconnect_needed("not signed in yet: click Connect on the connection")
            }
            // A client-credentials token is issued by the connection's
            // check (on save, Test, or the check route).
            Grant::ClientCredentials => ApiError::unusable(format!(
                "no access token has been issued for this connection yet; its last check says: {} ({}). \
                 Its check (Test in Plugboard, or POST /api/v1/connections/{}/check) asks for one",
                connection.status.status.label(),
                connection.status.reason,
                connection.id
            )),
        }
    }
}

fn kind_name(kind: &AuthKind) -> &'static str {
    match kind {
        AuthKind::ApiKey { .. } => "api_key",
        AuthKind::Basic => "basic",
        AuthKind::Bearer => "bearer",
        AuthKind::Oauth2AuthorizationCode { .. } => "oauth2_authorization_code",
        AuthKind::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
        AuthKind::AwsSigv4 { .. } => "aws_sigv4",
        AuthKind::Custom { .. } => "custom",
    }
}

fn credentials_of(
    connection: &Connection,
    kind: &'static str,
    fields: BTreeMap<String, String>,
) -> Credentials {
    Credentials {
        connection_id: connection.id.0,
        component: connection.component.clone(),
        auth_method: connection.auth_method.clone(),
        kind: kind.to_owned(),
        fields,
        access_token: None,
        token_type: None,
        expires_at: None,
    }
}

/// The connection's credentials, ready to use.
#[utoipa::path(
    get, path = "/api/v1/connections/{id}/credentials", tag = "connections", operation_id = "get_credentials",
    params(
        ("id" = i64, Path, description = "The connection's id"),
        ("X-Plugboard-Consumer" = Option<String>, Header,
            description = "Which automation is calling (`invoice-sync`), as recorded and shown on the connection; default: the token's name"),
    ),
    responses(
        (status = 200, description = "Credentials; for OAuth2 an access token valid for at least 60 s", body = Credentials),
        (status = 400, description = "An unreadable X-Plugboard-Consumer", body = ErrorBody),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = ErrorBody),
        (status = 403, description = "The token lacks `read_credentials`", body = ErrorBody),
        (status = 404, description = "No such connection for this token", body = ErrorBody),
        (status = 409, description = "The connection needs reconnecting, or its credentials cannot be used; `reason` says why", body = ErrorBody),
        (status = 429, description = "Over the token's rate limit; see Retry-After", body = ErrorBody),
        (status = 503, description = "The OAuth2 provider or the database cannot be reached now; see Retry-After", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn credentials(
    state: State,
    req: HttpRequest,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    let presented = Presented::of(&req)?;
    let id = ConnectionId(id.into_inner());
    let read = api_db(&state, move |conn, s| {
        let caller = presented.admit(conn, s, Permission::ReadCredentials)?;
        let connection = reachable(conn, &caller, id)?;
        let kind = s
            .catalog
            .get(&connection.component)
            .and_then(|c| c.auth_method(&connection.auth_method))
            .map(|m| &m.kind)
            .ok_or_else(|| {
                ApiError::unusable(format!(
                    "the authorization method `{}` of `{}` is no longer in the catalog",
                    connection.auth_method, connection.component
                ))
            })?;
        match kind {
            AuthKind::Oauth2AuthorizationCode { .. } => {
                Ok(Read::OAuth2(Box::new((caller, connection)), Grant::AuthorizationCode))
            }
            AuthKind::Oauth2ClientCredentials { .. } => {
                Ok(Read::OAuth2(Box::new((caller, connection)), Grant::ClientCredentials))
            }
            other => {
                let mut fields = connection.parameters.clone();
                let secrets = store::open_secrets(conn, &s.keyring, caller.token.environment, id)?;
                fields.extend(secrets.into_iter().map(|(k, v)| (k, v.expose_secret().to_owned())));
                let read = usage::Read::new(&caller.token, &caller.consumer, &connection);
                Ok(Read::Ready(Box::new((credentials_of(&connection, kind_name(other), fields), read))))
            }
        }
    })
    .await?;
    let answer = match read {
        Read::Ready(ready) => {
            let (answer, read) = *ready;
            record(&state, read).await?;
            answer
        }
        Read::OAuth2(pending, grant) => {
            let (caller, connection) = *pending;
            oauth2_credentials(&state, caller, connection, grant).await?
        }
    };
    Ok(HttpResponse::Ok().insert_header((header::CACHE_CONTROL, "no-store")).json(answer))
}

/// Whether the provider refused to renew these tokens for good (a
/// refused renewal is never retried on its own: `tokens::refresh_failed`
/// with no retry time), until a sign-in or a check stores new ones.
fn renewal_refused(tokens: &TokenState) -> bool {
    tokens.refresh_due_at.is_none() && tokens.refresh_failures > 0
}

/// The stored access token, renewed first (through the one renewal per
/// connection of `oauth::refresh`, the same for a refresh token and a
/// client-credentials grant) unless it stays valid for a minute.
async fn oauth2_credentials(
    state: &State,
    caller: Caller,
    connection: Connection,
    grant: Grant,
) -> Result<Credentials, ApiError> {
    if grant == Grant::AuthorizationCode && connection.status.reason.starts_with(RECONNECT_NEEDED) {
        return Err(ApiError::reconnect_needed(connection.status.reason));
    }
    let (environment, id) = (connection.environment, connection.id);
    let read_tokens = move |conn: &mut DbConnection, s: &AppState| {
        tokens::get(conn, &s.keyring, environment, id).map_err(ApiError::from)
    };
    let Some((mut stored, mut token_state)) = api_db(state, read_tokens).await? else {
        return Err(grant.missing(&connection));
    };
    let now = Utc::now().naive_utc();
    if token_state.expires_at.is_some_and(|at| at < now + MIN_VALIDITY) {
        if renewal_refused(&token_state) {
            // Asking again would be refused again: say so at once.
            return Err(grant.refused(connection.status.reason));
        }
        let owner = format!("api-{}", super::random_id());
        let refreshed = refresh::refresh_unless_valid_for(
            state.clone().into_inner(),
            owner,
            environment,
            id,
            OwnedActor::ApiToken(caller.token.name.clone()),
            MIN_VALIDITY,
        )
        .await
        .map_err(ApiError::internal)?;
        match refreshed {
            Refreshed::Refused(reason) => return Err(grant.refused(reason)),
            Refreshed::Postponed(reason) => {
                return Err(ApiError::unavailable(
                    format!(
                        "The access token is about to expire and the provider cannot be reached to renew it ({reason}). Call again shortly."
                    ),
                    30,
                ));
            }
            Refreshed::NotDue | Refreshed::ByAnother | Refreshed::Done => {}
        }
        let Some(again) = api_db(state, read_tokens).await? else {
            return Err(grant.missing(&connection));
        };
        (stored, token_state) = again;
        if token_state.expires_at.is_some_and(|at| at < Utc::now().naive_utc() + MIN_VALIDITY) {
            if grant == Grant::AuthorizationCode && !token_state.has_refresh_token {
                return Err(ApiError::reconnect_needed(
                    "the access token expires within a minute and the provider issued no refresh token",
                ));
            }
            if renewal_refused(&token_state) {
                return Err(grant.refused(connection.status.reason));
            }
            // Another caller's renewal failed, or is still under way.
            return Err(ApiError::unavailable(
                "The access token expires within a minute and could not be renewed yet. Call again shortly.",
                30,
            ));
        }
    }
    let mut answer = credentials_of(&connection, grant.kind(), connection.parameters.clone());
    answer.access_token = Some(stored.access_token.expose_secret().to_owned());
    answer.token_type = Some("Bearer".to_owned());
    answer.expires_at = token_state.expires_at.map(utc);
    record(state, usage::Read::new(&caller.token, &caller.consumer, &connection)).await?;
    Ok(answer)
}

/// Records the read; the credentials are answered only once it is.
async fn record(state: &State, read: usage::Read) -> Result<(), ApiError> {
    state.usage.record(read).await.map_err(|e| match e {
        usage::Unrecorded::Unavailable(why, detail) => {
            BlockingError::<ApiError>::Unavailable(why, detail).into()
        }
        usage::Unrecorded::Failed(detail) => {
            ApiError::internal(format!("recording the read failed: {detail}"))
        }
    })
}

/// Check the connection now, as "Test" on the page does.
#[utoipa::path(
    post, path = "/api/v1/connections/{id}/check", tag = "connections", operation_id = "check_connection",
    params(("id" = i64, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "What the check found, as now stored", body = StatusView),
        (status = 401, description = "Missing, unknown, expired or revoked token", body = ErrorBody),
        (status = 403, description = "The token lacks `run_checks`", body = ErrorBody),
        (status = 404, description = "No such connection for this token", body = ErrorBody),
        (status = 429, description = "Over the token's rate limit; see Retry-After", body = ErrorBody),
    ),
    security(("token" = []))
)]
pub async fn check(state: State, req: HttpRequest, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let presented = Presented::of(&req)?;
    let id = ConnectionId(id.into_inner());
    let (environment, caller) = api_db(&state, move |conn, s| {
        let caller = presented.admit(conn, s, Permission::RunChecks)?;
        Ok((reachable(conn, &caller, id)?.environment, caller))
    })
    .await?;
    let actor = Actor::ApiToken(&caller.token.name);
    let report = schedule::check_now(&state.clone().into_inner(), environment, id, Trigger::Api, &actor)
        .await
        .map_err(|e| match e {
            schedule::CheckError::Store(e) => ApiError::from(e),
            schedule::CheckError::Unavailable(why, detail) => {
                ApiError::from(crate::state::BlockingError::<ApiError>::Unavailable(why, detail))
            }
            other => ApiError::internal(other),
        })?;
    Ok(HttpResponse::Ok().json(StatusView::from(&report)))
}
