//! A small OAuth 2.0 authorization server for the tests, on 127.0.0.1 and a
//! random port: the provider side of the authorization-code flow, written
//! from the RFCs so that Plugboard's client is tested against behaviour it
//! did not write itself.
//!
//! - RFC 6749 (OAuth 2.0): the authorization and token endpoints, client
//!   authentication (2.3.1), error responses (4.1.2.1, 5.2), single-use
//!   codes and revocation on replay (4.1.2, 10.5).
//! - RFC 7636 (PKCE): S256 only; `plain` is refused as RFC 9700 2.1.1 asks.
//! - RFC 9207: the `iss` parameter on the authorization response.
//! - RFC 7009: token revocation.
//! - RFC 9700 (security BCP): exact redirect URI matching, PKCE downgrade
//!   refused, optional refresh token rotation with reuse detection.
//!
//! Every behaviour a test may want to vary is a field of [`ProviderConfig`]
//! (changeable while running with [`Provider::configure`]); what the server
//! saw is read back from the [`Provider`] handle (counters, the last
//! requests, the tokens still valid). Starts like the stand-ins in
//! `tests/standin`: from an `#[actix_web::test]`, bound to 127.0.0.1:0,
//! stopped when the handle is dropped. It makes no outgoing requests.
//!
//! ```ignore
//! mod oauth_provider;
//! use oauth_provider::{Client, Provider, ProviderConfig};
//!
//! let provider = Provider::start(ProviderConfig::for_client(Client::new("id", "secret", &callback))).await;
//! // or, when the callback is known only later:
//! provider.configure(|c| c.clients[0].redirect_uris.push(callback.clone()));
//! ```
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// How a client may authenticate at the token and revocation endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// HTTP Basic with the form-urlencoded id and secret (RFC 6749 2.3.1,
    /// `client_secret_basic`).
    Basic,
    /// `client_id` and `client_secret` form fields (`client_secret_post`).
    Body,
    /// Either of the above (never both in one request: RFC 6749 2.3).
    Either,
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub secret: String,
    /// Compared with the request's `redirect_uri` character for character
    /// (RFC 9700 2.1: no prefix or pattern matching).
    pub redirect_uris: Vec<String>,
    /// The scopes the client may ask for; also what it gets when the
    /// authorization request has no `scope` (RFC 6749 3.3).
    pub scopes: Vec<String>,
    pub auth: ClientAuth,
}

impl Client {
    /// A client with one redirect URI (may be empty, to add one later),
    /// scopes `read` and `write`, and either kind of authentication.
    pub fn new(id: &str, secret: &str, redirect_uri: &str) -> Client {
        Client {
            id: id.into(),
            secret: secret.into(),
            redirect_uris: if redirect_uri.is_empty() { vec![] } else { vec![redirect_uri.into()] },
            scopes: vec!["read".into(), "write".into()],
            auth: ClientAuth::Either,
        }
    }

    pub fn with_scopes(mut self, scopes: &[&str]) -> Client {
        self.scopes = scopes.iter().map(|s| s.to_string()).collect();
        self
    }

    pub fn with_auth(mut self, auth: ClientAuth) -> Client {
        self.auth = auth;
        self
    }

    pub fn with_redirect_uri(mut self, uri: &str) -> Client {
        self.redirect_uris.push(uri.into());
        self
    }
}

/// How the `scope` parameter separates scopes, in requests and answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeSeparator {
    /// RFC 6749 3.3.
    Space,
    /// As Slack does: `scope=chat:write,channels:read`.
    Comma,
}

impl ScopeSeparator {
    fn char(self) -> char {
        match self {
            ScopeSeparator::Space => ' ',
            ScopeSeparator::Comma => ',',
        }
    }
}

/// What the (imaginary) user decides at `/authorize`, once the request
/// itself is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorizeOutcome {
    /// Redirects with a `code`.
    Approve,
    /// Redirects with `error=access_denied`.
    Deny,
    /// Redirects with `error=invalid_scope`, whatever the scope asked.
    InvalidScope,
}

/// The RFC 9207 `iss` parameter on authorization responses (success and
/// error alike).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Iss {
    /// Not sent, as most providers do today.
    Omit,
    /// Sent, equal to [`Provider::issuer`].
    Correct,
    /// Sent with this value, as a mix-up attacker's server would.
    Wrong(String),
}

/// What a refresh does to the refresh token it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// The answer has a new refresh token; the old one is invalid after.
    Rotate,
    /// As `Rotate`, and presenting a rotated-out token again revokes the
    /// whole grant, the new refresh token included (RFC 9700 4.14.2).
    RotateDetectReuse,
    /// The answer has no `refresh_token`; the old one stays valid.
    Keep,
}

/// How the token endpoint reports errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorStyle {
    /// RFC 6749 5.2: HTTP 400 (401 for `invalid_client`).
    Standard,
    /// As GitHub's token endpoint: HTTP 200 and an `error` in the JSON,
    /// with GitHub's names (`bad_verification_code`, `bad_refresh_token`,
    /// `incorrect_client_credentials`, `redirect_uri_mismatch`).
    InsideHttp200,
}

/// Everything a test can vary. `ProviderConfig::default()` has no client;
/// start from [`ProviderConfig::for_client`].
#[derive(Debug, Clone)]
pub struct ProviderConfig {
    pub clients: Vec<Client>,
    /// `code_challenge` with `code_challenge_method=S256` is required on
    /// every authorization request (default true). When false, PKCE is
    /// still checked whenever the client used it.
    pub require_pkce: bool,
    /// `state` is required on authorization requests (default true).
    pub require_state: bool,
    pub scope_separator: ScopeSeparator,
    pub outcome: AuthorizeOutcome,
    pub iss: Iss,
    /// How long a code can be exchanged (default 60 s).
    pub code_lifetime: Duration,
    /// `expires_in` and the real lifetime of access tokens (default 1 h).
    /// `None`: no `expires_in` in the answer and tokens that never expire.
    /// `expires_in` is in whole seconds, rounded down.
    pub access_token_lifetime: Option<Duration>,
    /// A refresh token comes with the code exchange (default true).
    pub issue_refresh_token: bool,
    pub rotation: Rotation,
    /// A renewal (a refresh, or a client-credentials grant) is decided
    /// when it arrives but answered this much later (default none), so
    /// that a test can have two renewals in flight.
    pub refresh_delay: Duration,
    /// The `token_type` sent (default `Bearer`).
    pub token_type: String,
    /// Added to every successful token answer (code exchange and refresh);
    /// a field here replaces a standard one of the same name.
    pub extra_token_fields: Map<String, Value>,
    pub error_style: ErrorStyle,
    /// What `/me` answers for a valid access token.
    pub userinfo: Value,
    /// Added to the redirect back after an approval (default none).
    pub extra_callback_params: Vec<(String, String)>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            clients: vec![],
            require_pkce: true,
            require_state: true,
            scope_separator: ScopeSeparator::Space,
            outcome: AuthorizeOutcome::Approve,
            iss: Iss::Omit,
            code_lifetime: Duration::from_secs(60),
            access_token_lifetime: Some(Duration::from_secs(3600)),
            issue_refresh_token: true,
            rotation: Rotation::Rotate,
            refresh_delay: Duration::ZERO,
            token_type: "Bearer".into(),
            extra_token_fields: Map::new(),
            error_style: ErrorStyle::Standard,
            userinfo: json!({"id": "user-1", "email": "user-1@example.test"}),
            extra_callback_params: vec![],
        }
    }
}

impl ProviderConfig {
    /// The defaults with one registered client.
    pub fn for_client(client: Client) -> ProviderConfig {
        ProviderConfig { clients: vec![client], ..ProviderConfig::default() }
    }

    /// Adds a field to every successful token answer, e.g.
    /// `("instance_url", json!("https://..."))` or a nested `authed_user`.
    pub fn with_token_field(mut self, name: &str, value: Value) -> ProviderConfig {
        self.extra_token_fields.insert(name.into(), value);
        self
    }
}

// ---------------------------------------------------------------------------
// What the server records
// ---------------------------------------------------------------------------

/// Parameters of the standard authorization request; anything else is
/// "extra" (`access_type`, `prompt`, ...).
const STANDARD_AUTHORIZE_PARAMS: &[&str] = &[
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// One request to `/authorize`, as received (valid or not).
#[derive(Debug, Clone)]
pub struct AuthorizeRequest {
    /// Decoded query parameters, in order, repeats kept.
    pub params: Vec<(String, String)>,
}

impl AuthorizeRequest {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// The parameters outside the standard authorization request.
    pub fn extra(&self) -> Vec<(String, String)> {
        self.params
            .iter()
            .filter(|(k, _)| !STANDARD_AUTHORIZE_PARAMS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// One request to `/token`, as received (valid or not).
#[derive(Debug, Clone)]
pub struct TokenRequest {
    /// Decoded form fields, in order, repeats kept.
    pub form: Vec<(String, String)>,
    /// The raw `Authorization` header, if any.
    pub authorization: Option<String>,
}

impl TokenRequest {
    pub fn form_value(&self, name: &str) -> Option<&str> {
        self.form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn grant_type(&self) -> Option<&str> {
        self.form_value("grant_type")
    }

    /// The client id and secret from a Basic `Authorization` header,
    /// decoded as RFC 6749 2.3.1 says (base64, then form-urldecoding).
    pub fn basic_credentials(&self) -> Option<(String, String)> {
        self.authorization.as_deref().and_then(|h| parse_basic(h).ok().flatten())
    }
}

#[derive(Default)]
struct Counters {
    authorize: AtomicUsize,
    token: AtomicUsize,
    code_exchanges: AtomicUsize,
    refreshes: AtomicUsize,
    client_credentials: AtomicUsize,
    failed_token: AtomicUsize,
    me: AtomicUsize,
    revoke: AtomicUsize,
}

// ---------------------------------------------------------------------------
// Grants and tokens
// ---------------------------------------------------------------------------

/// Every code starts a grant; the tokens issued from the code, and from
/// the refresh tokens descended from it, belong to that grant. Revoking a
/// grant (code replay, reuse of a rotated refresh token, RFC 7009 on a
/// refresh token) invalidates all of them.
type GrantId = u64;

struct CodeRecord {
    client_id: String,
    /// As sent on the authorization request (None when omitted): the token
    /// request must send the same (RFC 6749 4.1.3).
    redirect_uri: Option<String>,
    scope: Vec<String>,
    code_challenge: Option<String>,
    expires: Instant,
    redeemed: bool,
    grant: GrantId,
}

struct AccessRecord {
    client_id: String,
    expires: Option<Instant>,
    revoked: bool,
    grant: GrantId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Active,
    /// Replaced by a newer refresh token (rotation).
    Rotated,
    Revoked,
}

struct RefreshRecord {
    client_id: String,
    scope: Vec<String>,
    state: RefreshState,
    grant: GrantId,
}

#[derive(Default)]
struct Store {
    codes: HashMap<String, CodeRecord>,
    access: HashMap<String, AccessRecord>,
    refresh: HashMap<String, RefreshRecord>,
    next_grant: GrantId,
}

impl Store {
    fn revoke_grant(&mut self, grant: GrantId) {
        for code in self.codes.values_mut().filter(|c| c.grant == grant) {
            code.redeemed = true;
        }
        for token in self.access.values_mut().filter(|t| t.grant == grant) {
            token.revoked = true;
        }
        for token in self.refresh.values_mut().filter(|t| t.grant == grant) {
            token.state = RefreshState::Revoked;
        }
    }

    fn access_valid(&self, token: &str) -> bool {
        self.access
            .get(token)
            .is_some_and(|t| !t.revoked && t.expires.is_none_or(|expires| Instant::now() < expires))
    }
}

struct Shared {
    issuer: String,
    config: Mutex<ProviderConfig>,
    store: Mutex<Store>,
    counters: Counters,
    authorize_log: Mutex<Vec<AuthorizeRequest>>,
    token_log: Mutex<Vec<TokenRequest>>,
}

impl Shared {
    fn config(&self) -> ProviderConfig {
        self.config.lock().unwrap().clone()
    }
}

// ---------------------------------------------------------------------------
// The handle
// ---------------------------------------------------------------------------

/// A running authorization server. Stops when dropped.
pub struct Provider {
    addr: SocketAddr,
    shared: web::Data<Shared>,
    server: ServerHandle,
}

impl Drop for Provider {
    fn drop(&mut self) {
        // `stop` sends the command at once; the future it returns only waits
        // for the server to finish, which a drop cannot do.
        let stopping = self.server.stop(false);
        drop(stopping);
    }
}

impl Provider {
    /// Starts the server on 127.0.0.1 and a random port. Call from an
    /// `#[actix_web::test]` (the server task is spawned on its runtime).
    pub async fn start(config: ProviderConfig) -> Provider {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the OAuth provider");
        let addr = listener.local_addr().expect("OAuth provider address");
        let shared = web::Data::new(Shared {
            issuer: format!("http://{addr}"),
            config: Mutex::new(config),
            store: Mutex::default(),
            counters: Counters::default(),
            authorize_log: Mutex::default(),
            token_log: Mutex::default(),
        });
        let data = shared.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .service(web::resource("/authorize").route(web::get().to(authorize)))
                .service(web::resource("/token").route(web::post().to(token)))
                .service(web::resource("/me").route(web::get().to(me)))
                .service(web::resource("/revoke").route(web::post().to(revoke)))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen for the OAuth provider")
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Provider { addr, shared, server: handle }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The issuer identifier: what `iss` carries with [`Iss::Correct`].
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    pub fn authorize_url(&self) -> String {
        format!("{}/authorize", self.base_url())
    }

    pub fn token_url(&self) -> String {
        format!("{}/token", self.base_url())
    }

    /// The "who am I" resource: `GET` with `Authorization: Bearer`.
    pub fn userinfo_url(&self) -> String {
        format!("{}/me", self.base_url())
    }

    /// RFC 7009 token revocation.
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.base_url())
    }

    /// Changes the configuration; requests from now on see the change.
    pub fn configure(&self, change: impl FnOnce(&mut ProviderConfig)) {
        change(&mut self.shared.config.lock().unwrap());
    }

    pub fn config(&self) -> ProviderConfig {
        self.shared.config()
    }

    // Counters. Token requests are counted by the grant_type they carry,
    // whatever the outcome; failures are also counted apart.

    pub fn authorize_requests(&self) -> usize {
        self.shared.counters.authorize.load(Ordering::SeqCst)
    }

    /// All requests to `/token`.
    pub fn token_requests(&self) -> usize {
        self.shared.counters.token.load(Ordering::SeqCst)
    }

    /// Token requests with `grant_type=authorization_code`.
    pub fn code_exchanges(&self) -> usize {
        self.shared.counters.code_exchanges.load(Ordering::SeqCst)
    }

    /// Token requests with `grant_type=refresh_token`.
    pub fn refreshes(&self) -> usize {
        self.shared.counters.refreshes.load(Ordering::SeqCst)
    }

    /// Token requests with `grant_type=client_credentials`.
    pub fn client_credentials_grants(&self) -> usize {
        self.shared.counters.client_credentials.load(Ordering::SeqCst)
    }

    /// Token requests answered with an error (in either [`ErrorStyle`]).
    pub fn failed_token_requests(&self) -> usize {
        self.shared.counters.failed_token.load(Ordering::SeqCst)
    }

    pub fn me_requests(&self) -> usize {
        self.shared.counters.me.load(Ordering::SeqCst)
    }

    pub fn revoke_requests(&self) -> usize {
        self.shared.counters.revoke.load(Ordering::SeqCst)
    }

    // What was received.

    pub fn last_authorize(&self) -> Option<AuthorizeRequest> {
        self.shared.authorize_log.lock().unwrap().last().cloned()
    }

    pub fn all_authorize_requests(&self) -> Vec<AuthorizeRequest> {
        self.shared.authorize_log.lock().unwrap().clone()
    }

    pub fn last_token_request(&self) -> Option<TokenRequest> {
        self.shared.token_log.lock().unwrap().last().cloned()
    }

    pub fn all_token_requests(&self) -> Vec<TokenRequest> {
        self.shared.token_log.lock().unwrap().clone()
    }

    // The user or the provider acting on existing grants.

    /// Invalidates every refresh token; access tokens keep working until
    /// they expire (as when a provider ends offline access).
    pub fn revoke_refresh_tokens(&self) {
        let mut store = self.shared.store.lock().unwrap();
        for token in store.refresh.values_mut() {
            token.state = RefreshState::Revoked;
        }
    }

    /// Invalidates every code, access token and refresh token: the user
    /// revoked the application's access.
    pub fn revoke_all(&self) {
        let mut store = self.shared.store.lock().unwrap();
        let grants: Vec<GrantId> = store.codes.values().map(|c| c.grant).collect();
        for grant in grants {
            store.revoke_grant(grant);
        }
    }

    /// Makes every access token issued so far expired, without waiting.
    pub fn expire_access_tokens(&self) {
        let past = Instant::now() - Duration::from_millis(1);
        for token in self.shared.store.lock().unwrap().access.values_mut() {
            token.expires = Some(past);
        }
    }

    /// Makes every code issued so far expired, without waiting.
    pub fn expire_codes(&self) {
        let past = Instant::now() - Duration::from_millis(1);
        for code in self.shared.store.lock().unwrap().codes.values_mut() {
            code.expires = past;
        }
    }

    /// The access tokens `/me` would accept now.
    pub fn valid_access_tokens(&self) -> Vec<String> {
        let store = self.shared.store.lock().unwrap();
        store.access.keys().filter(|t| store.access_valid(t)).cloned().collect()
    }

    /// The refresh tokens a refresh would accept now.
    pub fn valid_refresh_tokens(&self) -> Vec<String> {
        let store = self.shared.store.lock().unwrap();
        store
            .refresh
            .iter()
            .filter(|(_, t)| t.state == RefreshState::Active)
            .map(|(k, _)| k.clone())
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Request parsing shared by the endpoints
// ---------------------------------------------------------------------------

fn decode_pairs(encoded: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(encoded).into_owned().collect()
}

/// The one value of a parameter. RFC 6749 3.1 and 3.2: a parameter sent
/// without a value is treated as omitted, and none may be repeated.
fn single<'a>(pairs: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, String> {
    let mut values = pairs.iter().filter(|(k, v)| k == name && !v.is_empty()).map(|(_, v)| v.as_str());
    let first = values.next();
    if values.next().is_some() {
        return Err(format!("{name} is repeated"));
    }
    Ok(first)
}

fn repeated_param(pairs: &[(String, String)]) -> Option<&str> {
    pairs
        .iter()
        .enumerate()
        .find(|(i, (k, _))| pairs[..*i].iter().any(|(earlier, _)| earlier == k))
        .map(|(_, (k, _))| k.as_str())
}

fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// `Ok(None)`: no Basic credentials. `Err`: a Basic header that does not
/// decode. RFC 6749 2.3.1: id and secret are each form-urlencoded, joined
/// by `:`, then base64-encoded (RFC 7617); the scheme name is
/// case-insensitive.
fn parse_basic(header: &str) -> Result<Option<(String, String)>, ()> {
    let Some((scheme, encoded)) = header.trim().split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let decoded = base64_decode(encoded.trim()).ok_or(())?;
    let decoded = String::from_utf8(decoded).map_err(|_| ())?;
    let (id, secret) = decoded.split_once(':').ok_or(())?;
    Ok(Some((form_urldecode(id)?, form_urldecode(secret)?)))
}

/// application/x-www-form-urlencoded decoding of one value: `+` is a space.
fn form_urldecode(text: &str) -> Result<String, ()> {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced).decode_utf8().map(|s| s.into_owned()).map_err(|_| ())
}

fn join_scopes(scopes: &[String], separator: ScopeSeparator) -> String {
    scopes.join(&separator.char().to_string())
}

fn split_scopes(text: &str, separator: ScopeSeparator) -> Vec<String> {
    text.split(separator.char()).filter(|s| !s.is_empty()).map(str::to_owned).collect()
}

/// A random token, prefixed by what it is so a test failure reads clearly.
fn random_token(kind: &str) -> String {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).expect("random bytes");
    format!("{kind}_{}", hex::encode(bytes))
}

// ---------------------------------------------------------------------------
// PKCE and base64
// ---------------------------------------------------------------------------

/// RFC 7636 4.1 and 4.2: 43 to 128 characters of the unreserved set.
pub fn is_valid_verifier(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// RFC 7636 4.2: BASE64URL-ENCODE(SHA256(ASCII(code_verifier))).
pub fn s256_challenge(verifier: &str) -> String {
    base64url_nopad(&Sha256::digest(verifier.as_bytes()))
}

const STANDARD_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// RFC 4648 section 5 (URL and filename safe alphabet), without padding,
/// as RFC 7636 appendix A asks.
pub fn base64url_nopad(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let group = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        // 1 input byte gives 2 characters, 2 give 3, 3 give 4.
        for i in 0..=chunk.len() {
            out.push(URL_ALPHABET[((group >> (18 - 6 * i)) & 0x3f) as usize] as char);
        }
    }
    out
}

/// RFC 4648 section 4 (standard alphabet, padded), as Basic credentials
/// are sent. Strict: wrong length, padding or characters give `None`.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 4 != 0 {
        return None;
    }
    let body = text.trim_end_matches('=');
    if text.len() - body.len() > 2 {
        return None;
    }
    let mut values = Vec::with_capacity(body.len());
    for c in body.bytes() {
        values.push(STANDARD_ALPHABET.iter().position(|&a| a == c)? as u32);
    }
    let mut out = Vec::with_capacity(values.len() * 3 / 4);
    for chunk in values.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let group = chunk.iter().enumerate().fold(0u32, |acc, (i, v)| acc | (v << (18 - 6 * i)));
        // 2 characters give 1 byte, 3 give 2, 4 give 3.
        for i in 0..chunk.len() - 1 {
            out.push((group >> (16 - 8 * i)) as u8);
        }
    }
    Some(out)
}

// ---------------------------------------------------------------------------
// GET /authorize (RFC 6749 4.1.1, 4.1.2)
// ---------------------------------------------------------------------------

/// RFC 6749 4.1.2.1: when the client or the redirect URI cannot be trusted,
/// the user agent must not be sent anywhere; the error is shown instead.
fn error_page(message: &str) -> HttpResponse {
    let escaped =
        message.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    HttpResponse::BadRequest().content_type("text/html; charset=utf-8").body(format!(
        "<!doctype html><title>Authorization error</title><h1>Authorization error</h1><p>{escaped}</p>"
    ))
}

/// The one redirect this server ever sends: back to a registered redirect
/// URI, with the given parameters added to its query (RFC 6749 4.1.2;
/// an existing query is kept, 3.1.2).
fn redirect_to(target: &str, params: &[(String, String)]) -> HttpResponse {
    let mut url = url::Url::parse(target).expect("registered redirect URIs are absolute URLs");
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
    }
    HttpResponse::Found()
        .insert_header(("Location", url.as_str()))
        .insert_header(("Cache-Control", "no-store"))
        .finish()
}

async fn authorize(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.counters.authorize.fetch_add(1, Ordering::SeqCst);
    let params = decode_pairs(req.query_string().as_bytes());
    shared.authorize_log.lock().unwrap().push(AuthorizeRequest { params: params.clone() });
    let config = shared.config();

    // First the client and where to send the answer; failures here are
    // shown, never redirected.
    let client_id = match single(&params, "client_id") {
        Ok(Some(id)) => id,
        Ok(None) => return error_page("The request has no client_id."),
        Err(e) => return error_page(&e),
    };
    let Some(client) = config.clients.iter().find(|c| c.id == client_id) else {
        return error_page(&format!("Unknown client: {client_id}"));
    };
    let requested_redirect = match single(&params, "redirect_uri") {
        Ok(r) => r,
        Err(e) => return error_page(&e),
    };
    let target = match requested_redirect {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_owned(),
        Some(uri) => return error_page(&format!("redirect_uri is not registered for this client: {uri}")),
        // RFC 6749 3.1.2.3: it may be omitted when only one is registered.
        None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
        None => return error_page("The request has no redirect_uri."),
    };

    // From here on, errors go back to the client.
    let iss = match &config.iss {
        Iss::Omit => None,
        Iss::Correct => Some(shared.issuer.clone()),
        Iss::Wrong(value) => Some(value.clone()),
    };
    let state = single(&params, "state").ok().flatten();
    let respond = |answer: &[(&str, &str)]| {
        let mut params: Vec<(String, String)> =
            answer.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        if let Some(state) = state {
            params.push(("state".into(), state.into()));
        }
        if let Some(iss) = &iss {
            params.push(("iss".into(), iss.clone()));
        }
        redirect_to(&target, &params)
    };
    let error =
        |code: &str, description: &str| respond(&[("error", code), ("error_description", description)]);

    if let Some(name) = repeated_param(&params) {
        return error("invalid_request", &format!("{name} is repeated"));
    }
    match single(&params, "response_type").ok().flatten() {
        None => return error("invalid_request", "response_type is missing"),
        Some("code") => {}
        Some(_) => return error("unsupported_response_type", "only response_type=code is supported"),
    }
    if config.require_state && state.is_none() {
        return error("invalid_request", "state is missing");
    }

    // PKCE (RFC 7636 4.3, 4.4.1). A challenge without a method means
    // `plain` (RFC 7636 4.3), which RFC 9700 2.1.1 says not to accept.
    let challenge = single(&params, "code_challenge").ok().flatten();
    let method = single(&params, "code_challenge_method").ok().flatten();
    match (challenge, method) {
        (None, None) if config.require_pkce => return error("invalid_request", "code_challenge is required"),
        (None, None) => {}
        (None, Some(_)) => return error("invalid_request", "code_challenge_method without code_challenge"),
        (Some(_), None | Some("plain")) => {
            return error("invalid_request", "code_challenge_method must be S256 (plain is not accepted)");
        }
        (Some(_), Some(m)) if m != "S256" => {
            return error("invalid_request", "transform algorithm not supported");
        }
        // An S256 challenge is 32 bytes in base64url: 43 characters.
        (Some(c), Some(_)) if c.len() != 43 || !is_valid_verifier(c) => {
            return error("invalid_request", "code_challenge is not a base64url SHA-256 value");
        }
        (Some(_), Some(_)) => {}
    }

    let scope = match single(&params, "scope").ok().flatten() {
        None => client.scopes.clone(),
        Some(text) => split_scopes(text, config.scope_separator),
    };
    if let Some(unknown) = scope.iter().find(|s| !client.scopes.contains(s)) {
        return error("invalid_scope", &format!("scope not allowed for this client: {unknown}"));
    }

    match config.outcome {
        AuthorizeOutcome::Deny => error("access_denied", "the user denied access"),
        AuthorizeOutcome::InvalidScope => error("invalid_scope", "the requested scope is invalid"),
        AuthorizeOutcome::Approve => {
            let code = random_token("code");
            let mut store = shared.store.lock().unwrap();
            store.next_grant += 1;
            let grant = store.next_grant;
            store.codes.insert(
                code.clone(),
                CodeRecord {
                    client_id: client.id.clone(),
                    redirect_uri: requested_redirect.map(str::to_owned),
                    scope,
                    code_challenge: challenge.map(str::to_owned),
                    expires: Instant::now() + config.code_lifetime,
                    redeemed: false,
                    grant,
                },
            );
            // Providers may add their own values to the redirect back
            // (QuickBooks' `realmId`: the company the person chose).
            let mut pairs: Vec<(&str, &str)> = vec![("code", &code)];
            pairs.extend(config.extra_callback_params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            respond(&pairs)
        }
    }
}

// ---------------------------------------------------------------------------
// POST /token (RFC 6749 4.1.3, 4.1.4, 5, 6)
// ---------------------------------------------------------------------------

/// An error answer of the token or revocation endpoint (RFC 6749 5.2).
struct OAuthError {
    /// The RFC 6749 error code.
    error: &'static str,
    /// The name GitHub uses for it, for [`ErrorStyle::InsideHttp200`].
    github: &'static str,
    description: String,
}

impl OAuthError {
    fn new(error: &'static str, description: impl Into<String>) -> OAuthError {
        OAuthError { error, github: error, description: description.into() }
    }

    fn github(mut self, name: &'static str) -> OAuthError {
        self.github = name;
        self
    }

    fn invalid_client(description: impl Into<String>) -> OAuthError {
        OAuthError::new("invalid_client", description).github("incorrect_client_credentials")
    }

    fn response(&self, style: ErrorStyle) -> HttpResponse {
        let (status, error) = match style {
            ErrorStyle::InsideHttp200 => (StatusCode::OK, self.github),
            ErrorStyle::Standard if self.error == "invalid_client" => (StatusCode::UNAUTHORIZED, self.error),
            ErrorStyle::Standard => (StatusCode::BAD_REQUEST, self.error),
        };
        let mut answer = HttpResponse::build(status);
        answer.insert_header(("Cache-Control", "no-store")).insert_header(("Pragma", "no-cache"));
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6749 5.2 (and RFC 9110: every 401 names a scheme).
            answer.insert_header(("WWW-Authenticate", "Basic realm=\"oauth-provider\""));
        }
        answer.json(json!({"error": error, "error_description": self.description}))
    }
}

/// Client authentication (RFC 6749 2.3.1), with the method the client is
/// registered for.
fn authenticate<'c>(
    config: &'c ProviderConfig,
    req: &HttpRequest,
    form: &[(String, String)],
) -> Result<&'c Client, OAuthError> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    let basic = match header.map(parse_basic) {
        None | Some(Ok(None)) => None,
        Some(Ok(Some(credentials))) => Some(credentials),
        Some(Err(())) => return Err(OAuthError::invalid_client("the Basic credentials do not decode")),
    };
    let body_id = single(form, "client_id").map_err(|e| OAuthError::new("invalid_request", e))?;
    let body_secret = single(form, "client_secret").map_err(|e| OAuthError::new("invalid_request", e))?;
    let find = |id: &str| {
        config.clients.iter().find(|c| c.id == id).ok_or_else(|| OAuthError::invalid_client("unknown client"))
    };
    match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => Err(OAuthError::new(
            "invalid_request",
            "more than one client authentication method (RFC 6749 2.3)",
        )),
        (Some((id, secret)), body_id, None) => {
            // A client_id field may accompany Basic, but must agree with it.
            if body_id.is_some_and(|b| b != id) {
                return Err(OAuthError::invalid_client("client_id differs from the Basic credentials"));
            }
            let client = find(&id)?;
            if client.auth == ClientAuth::Body {
                return Err(OAuthError::invalid_client("this client must authenticate with form fields"));
            }
            if client.secret != secret {
                return Err(OAuthError::invalid_client("wrong client secret"));
            }
            Ok(client)
        }
        (None, Some(id), Some(secret)) => {
            let client = find(id)?;
            if client.auth == ClientAuth::Basic {
                return Err(OAuthError::invalid_client("this client must authenticate with HTTP Basic"));
            }
            if client.secret != secret {
                return Err(OAuthError::invalid_client("wrong client secret"));
            }
            Ok(client)
        }
        (None, _, _) => Err(OAuthError::invalid_client("no client authentication")),
    }
}

fn token_answer(fields: Map<String, Value>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .insert_header(("Pragma", "no-cache"))
        .json(Value::Object(fields))
}

/// Issues an access token (and a refresh token when asked) for a grant,
/// and builds the RFC 6749 5.1 answer.
fn issue(
    store: &mut Store,
    config: &ProviderConfig,
    client_id: &str,
    scope: &[String],
    grant: GrantId,
    with_refresh_token: bool,
) -> Map<String, Value> {
    let access_token = random_token("at");
    store.access.insert(
        access_token.clone(),
        AccessRecord {
            client_id: client_id.into(),
            expires: config.access_token_lifetime.map(|d| Instant::now() + d),
            revoked: false,
            grant,
        },
    );
    let mut fields = Map::new();
    fields.insert("access_token".into(), json!(access_token));
    fields.insert("token_type".into(), json!(config.token_type));
    if let Some(lifetime) = config.access_token_lifetime {
        fields.insert("expires_in".into(), json!(lifetime.as_secs()));
    }
    if with_refresh_token {
        let refresh_token = random_token("rt");
        store.refresh.insert(
            refresh_token.clone(),
            RefreshRecord {
                client_id: client_id.into(),
                scope: scope.to_vec(),
                state: RefreshState::Active,
                grant,
            },
        );
        fields.insert("refresh_token".into(), json!(refresh_token));
    }
    fields.insert("scope".into(), json!(join_scopes(scope, config.scope_separator)));
    for (name, value) in &config.extra_token_fields {
        fields.insert(name.clone(), value.clone());
    }
    fields
}

async fn token(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let counters = &shared.counters;
    counters.token.fetch_add(1, Ordering::SeqCst);
    let form = decode_pairs(&body);
    let authorization = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.token_log.lock().unwrap().push(TokenRequest { form: form.clone(), authorization });
    let grant_type = single(&form, "grant_type").ok().flatten().map(str::to_owned);
    match grant_type.as_deref() {
        Some("authorization_code") => counters.code_exchanges.fetch_add(1, Ordering::SeqCst),
        Some("refresh_token") => counters.refreshes.fetch_add(1, Ordering::SeqCst),
        Some("client_credentials") => counters.client_credentials.fetch_add(1, Ordering::SeqCst),
        _ => 0,
    };
    let config = shared.config();

    let outcome = exchange(&shared, &config, &req, &form, grant_type.as_deref());
    let renewal = matches!(grant_type.as_deref(), Some("refresh_token" | "client_credentials"));
    if renewal && !config.refresh_delay.is_zero() {
        // Decided already (a rotated token is already invalid): only the
        // answer waits, as when a provider is slow to respond.
        actix_web::rt::time::sleep(config.refresh_delay).await;
    }
    match outcome {
        Ok(fields) => token_answer(fields),
        Err(e) => {
            counters.failed_token.fetch_add(1, Ordering::SeqCst);
            e.response(config.error_style)
        }
    }
}

fn exchange(
    shared: &Shared,
    config: &ProviderConfig,
    req: &HttpRequest,
    form: &[(String, String)],
    grant_type: Option<&str>,
) -> Result<Map<String, Value>, OAuthError> {
    // RFC 6749 3.2 and 4.1.3: a form, no repeated parameters.
    if !is_form(req) {
        return Err(OAuthError::new("invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    if let Some(name) = repeated_param(form) {
        return Err(OAuthError::new("invalid_request", format!("{name} is repeated")));
    }
    let client = authenticate(config, req, form)?;
    let value = |name: &str| single(form, name).ok().flatten();
    match grant_type {
        None => Err(OAuthError::new("invalid_request", "grant_type is missing")),
        Some("authorization_code") => redeem_code(shared, config, client, value),
        Some("refresh_token") => refresh(shared, config, client, value),
        Some("client_credentials") => client_credentials(shared, config, client, value),
        Some(_) => Err(OAuthError::new(
            "unsupported_grant_type",
            "only authorization_code, refresh_token and client_credentials",
        )),
    }
}

/// `grant_type=authorization_code` (RFC 6749 4.1.3, RFC 7636 4.5, 4.6).
/// A failed attempt leaves the code as it was; the first success uses it.
fn redeem_code<'a>(
    shared: &Shared,
    config: &ProviderConfig,
    client: &Client,
    value: impl Fn(&str) -> Option<&'a str>,
) -> Result<Map<String, Value>, OAuthError> {
    let invalid_grant = |d: &str| OAuthError::new("invalid_grant", d).github("bad_verification_code");
    let code = value("code").ok_or_else(|| OAuthError::new("invalid_request", "code is missing"))?;
    let mut store = shared.store.lock().unwrap();
    let Some(record) = store.codes.get(code) else {
        return Err(invalid_grant("unknown code"));
    };
    if record.client_id != client.id {
        return Err(invalid_grant("the code was issued to another client"));
    }
    if record.redeemed {
        // RFC 6749 4.1.2 and 10.5: a second use may be an attacker's (or
        // the client's) replay; the tokens already issued are revoked.
        let grant = record.grant;
        store.revoke_grant(grant);
        return Err(invalid_grant("the code was already used; the tokens issued from it are revoked"));
    }
    if Instant::now() >= record.expires {
        return Err(invalid_grant("the code has expired"));
    }
    if record.redirect_uri.as_deref() != value("redirect_uri") {
        return Err(invalid_grant("redirect_uri differs from the authorization request's")
            .github("redirect_uri_mismatch"));
    }
    match (record.code_challenge.as_deref(), value("code_verifier")) {
        (None, None) => {}
        // RFC 9700 2.1.1: a verifier for a code issued without a challenge
        // is a PKCE downgrade attempt.
        (None, Some(_)) => {
            return Err(OAuthError::new(
                "invalid_request",
                "code_verifier sent but the code has no challenge",
            ));
        }
        (Some(_), None) => return Err(OAuthError::new("invalid_request", "code_verifier is missing")),
        (Some(_), Some(v)) if !is_valid_verifier(v) => {
            return Err(OAuthError::new(
                "invalid_request",
                "code_verifier is not 43-128 unreserved characters",
            ));
        }
        (Some(challenge), Some(v)) if s256_challenge(v) != challenge => {
            return Err(invalid_grant("code_verifier does not match the code_challenge"));
        }
        (Some(_), Some(_)) => {}
    }
    let (scope, grant) = (record.scope.clone(), record.grant);
    store.codes.get_mut(code).expect("looked up above").redeemed = true;
    Ok(issue(&mut store, config, &client.id, &scope, grant, config.issue_refresh_token))
}

/// `grant_type=refresh_token` (RFC 6749 6, RFC 9700 4.14).
fn refresh<'a>(
    shared: &Shared,
    config: &ProviderConfig,
    client: &Client,
    value: impl Fn(&str) -> Option<&'a str>,
) -> Result<Map<String, Value>, OAuthError> {
    let invalid_grant = |d: &str| OAuthError::new("invalid_grant", d).github("bad_refresh_token");
    let token = value("refresh_token")
        .ok_or_else(|| OAuthError::new("invalid_request", "refresh_token is missing"))?;
    let mut store = shared.store.lock().unwrap();
    let Some(record) = store.refresh.get(token) else {
        return Err(invalid_grant("unknown refresh token"));
    };
    if record.client_id != client.id {
        return Err(invalid_grant("the refresh token was issued to another client"));
    }
    match record.state {
        RefreshState::Active => {}
        RefreshState::Revoked => return Err(invalid_grant("the refresh token is revoked")),
        RefreshState::Rotated => {
            if config.rotation == Rotation::RotateDetectReuse {
                let grant = record.grant;
                store.revoke_grant(grant);
                return Err(invalid_grant("the refresh token was already used; the grant is revoked"));
            }
            return Err(invalid_grant("the refresh token was replaced by a newer one"));
        }
    }
    // RFC 6749 6: a narrower scope may be asked, never a wider one.
    let scope = match value("scope") {
        None => record.scope.clone(),
        Some(text) => {
            let asked = split_scopes(text, config.scope_separator);
            if let Some(extra) = asked.iter().find(|s| !record.scope.contains(s)) {
                return Err(OAuthError::new("invalid_scope", format!("not in the original grant: {extra}")));
            }
            asked
        }
    };
    let grant = record.grant;
    let rotate = config.rotation != Rotation::Keep;
    if rotate {
        store.refresh.get_mut(token).expect("looked up above").state = RefreshState::Rotated;
    }
    Ok(issue(&mut store, config, &client.id, &scope, grant, rotate))
}

/// `grant_type=client_credentials` (RFC 6749 4.4): the client's own
/// access, for the scopes it may have; no refresh token (4.4.3).
fn client_credentials<'a>(
    shared: &Shared,
    config: &ProviderConfig,
    client: &Client,
    value: impl Fn(&str) -> Option<&'a str>,
) -> Result<Map<String, Value>, OAuthError> {
    let scope = match value("scope") {
        None => client.scopes.clone(),
        Some(text) => split_scopes(text, config.scope_separator),
    };
    if let Some(unknown) = scope.iter().find(|s| !client.scopes.contains(s)) {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope not allowed for this client: {unknown}"),
        ));
    }
    let mut store = shared.store.lock().unwrap();
    store.next_grant += 1;
    let grant = store.next_grant;
    Ok(issue(&mut store, config, &client.id, &scope, grant, false))
}

// ---------------------------------------------------------------------------
// GET /me (a protected resource, RFC 6750)
// ---------------------------------------------------------------------------

async fn me(req: HttpRequest, shared: web::Data<Shared>) -> HttpResponse {
    shared.counters.me.fetch_add(1, Ordering::SeqCst);
    let presented = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let valid = presented.as_deref().is_some_and(|t| shared.store.lock().unwrap().access_valid(t));
    if valid {
        HttpResponse::Ok().json(shared.config().userinfo)
    } else {
        HttpResponse::Unauthorized()
            .insert_header(("WWW-Authenticate", "Bearer error=\"invalid_token\""))
            .json(json!({"error": "invalid_token"}))
    }
}

// ---------------------------------------------------------------------------
// POST /revoke (RFC 7009)
// ---------------------------------------------------------------------------

async fn revoke(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    shared.counters.revoke.fetch_add(1, Ordering::SeqCst);
    let form = decode_pairs(&body);
    let config = shared.config();
    match revoke_token(&shared, &config, &req, &form) {
        // RFC 7009 2.2: 200 whether or not the token was known.
        Ok(()) => HttpResponse::Ok().finish(),
        // RFC 7009 2.2.1: errors as RFC 6749 5.2.
        Err(e) => e.response(ErrorStyle::Standard),
    }
}

fn revoke_token(
    shared: &Shared,
    config: &ProviderConfig,
    req: &HttpRequest,
    form: &[(String, String)],
) -> Result<(), OAuthError> {
    if !is_form(req) {
        return Err(OAuthError::new("invalid_request", "the body must be application/x-www-form-urlencoded"));
    }
    let client = authenticate(config, req, form)?;
    let token = single(form, "token")
        .map_err(|e| OAuthError::new("invalid_request", e))?
        .ok_or_else(|| OAuthError::new("invalid_request", "token is missing"))?;
    // token_type_hint is only a hint (RFC 7009 2.1): both kinds are looked up.
    let mut store = shared.store.lock().unwrap();
    let owner_and_grant = |client_id: &str, grant: GrantId| {
        if client_id == client.id {
            Ok(grant)
        } else {
            Err(OAuthError::new("invalid_request", "the token was issued to another client"))
        }
    };
    if let Some(record) = store.refresh.get(token) {
        // RFC 7009 2.1: revoking a refresh token also invalidates the access
        // tokens of the same grant.
        let grant = owner_and_grant(&record.client_id, record.grant)?;
        store.revoke_grant(grant);
    } else if let Some(record) = store.access.get(token) {
        owner_and_grant(&record.client_id, record.grant)?;
        store.access.get_mut(token).expect("looked up above").revoked = true;
    }
    Ok(())
}
