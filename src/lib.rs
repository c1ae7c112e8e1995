//! Plugboard: a web application for managing the connections (credentials
//! and settings) that automations use to reach third-party services.
//!
//! The binary in `main.rs` only reads [`Settings`] and calls
//! [`Application::build`]; tests build the very same application.

pub mod accounts;
pub mod api;
pub mod audit;
pub mod catalog;
pub mod checks;
pub mod connections;
pub mod crypto;
pub mod db;
pub mod environment;
pub mod jobs;
pub mod keyfile;
pub mod leases;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod settings;
pub mod state;
pub mod tag_admin;
pub mod tags;
pub mod web;
pub mod writes;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{CookieContentSecurity, PersistentSession};
use actix_session::storage::CookieSessionStore;

use actix_web::cookie::{Key, SameSite, time::Duration as CookieDuration};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web as aw};

pub use settings::Settings;

use crate::catalog::Catalog;
use crate::checks::{Checker, NetworkPolicy};
use crate::crypto::Keyring;
use crate::state::AppState;

/// Largest request body accepted: far above any real form, far below harm.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Blocking threads per HTTP worker beyond one per pooled connection.
const BLOCKING_HEADROOM: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot create the data folder {path}: {source}")]
    DataDir { path: String, source: std::io::Error },
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error(transparent)]
    KeyFile(#[from] crypto::KeyFileError),
    #[error("session key {path}: {source}")]
    SessionKey { path: String, source: std::io::Error },
    #[error("PLUGBOARD_SESSION_KEY must be at least 128 hex digits (64 bytes)")]
    SessionKeyValue,
    #[error(transparent)]
    Database(#[from] db::DbError),
    #[error("PLUGBOARD_ALLOW_NETWORKS: {0}")]
    Networks(String),
    #[error("{0}")]
    OAuth(String),
    #[error("cannot start the background checks: {0}")]
    Schedule(std::io::Error),
    #[error("cannot start the writer of API usage: {0}")]
    UsageWriter(std::io::Error),
    #[error("cannot start the database writer: {0}")]
    Writer(std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
}

/// A built, bound, not yet running Plugboard.
pub struct Application {
    server: Server,
    addr: SocketAddr,
    state: aw::Data<AppState>,
    schedule: Option<jobs::Runner>,
}

impl Application {
    pub fn build(settings: &Settings) -> Result<Application, StartupError> {
        metrics::handle();
        db::create_private_dir(&settings.data_dir).map_err(|source| StartupError::DataDir {
            path: settings.data_dir.display().to_string(),
            source,
        })?;
        let catalog = Catalog::load(settings.catalog.as_deref(), &web::assets::BuiltinIcons)?;
        tracing::info!(components = catalog.components().len(), "component catalog loaded");

        let keyring = match &settings.encryption_keys {
            Some(keys) => Keyring::from_config(&keys.0)?,
            None => {
                let key_path = settings.encryption_key_path();
                let (keyring, created) = Keyring::load_or_create(&key_path)?;
                if created {
                    tracing::warn!(
                        path = %key_path.display(),
                        "created a new encryption key (mode 0600); back it up: without it stored credentials cannot be decrypted"
                    );
                }
                keyring
            }
        };
        let session_key = match &settings.session_key {
            Some(hex_key) => zeroize::Zeroizing::new(
                hex::decode(hex_key.0.trim())
                    .ok()
                    .filter(|k| k.len() >= 64)
                    .ok_or(StartupError::SessionKeyValue)?,
            ),
            None => {
                let session_path = settings.session_key_path();
                let (session_key, created) =
                    keyfile::load_or_create_session_key(&session_path).map_err(|source| {
                        StartupError::SessionKey { path: session_path.display().to_string(), source }
                    })?;
                if created {
                    tracing::warn!(path = %session_path.display(), "created a new session key (mode 0600)");
                }
                session_key
            }
        };
        let session_key = Key::from(&session_key);

        let database = db::open(&settings.database_url(), settings.pool_size, settings.pool_timeout)?;
        tracing::info!(database = ?database.backend, "database ready");
        let busy_wait = settings.busy_wait.min(Duration::from_secs(settings.pool_timeout.max(1)));
        let pool_size = database.pool.max_size();

        let listener = TcpListener::bind(settings.bind)
            .map_err(|source| StartupError::Bind { addr: settings.bind, source })?;
        let addr =
            listener.local_addr().map_err(|source| StartupError::Bind { addr: settings.bind, source })?;

        let mut policy = NetworkPolicy::parse(&settings.allow_networks).map_err(StartupError::Networks)?;
        if !settings.check_public_networks {
            policy = policy.without_public();
        }
        let checker = Checker::new(std::time::Duration::from_secs(settings.check_timeout.max(1)), policy);
        // Known only once bound when the port was 0 (tests).
        let public_url = settings.public_url.clone().unwrap_or_else(|| format!("http://{addr}"));
        let oauth =
            oauth::Config::load(&public_url, settings.oauth_apps.as_deref()).map_err(StartupError::OAuth)?;
        tracing::info!(redirect_uri = %oauth.redirect_uri, "OAuth2 providers send people back here");
        let (usage, usage_writer) = api::usage::Recorder::new();
        let (writes, writer) = writes::Writes::new();
        let state = aw::Data::new(AppState {
            sqlite: matches!(database.backend, db::Backend::Sqlite { .. }),
            writes,
            gate: state::DbGate::new(pool_size, busy_wait, database.connects),
            probe: std::sync::Arc::new(db::Probe::new(database.backend, busy_wait)),
            pool: database.pool,
            catalog,
            keyring,
            checker,
            check_interval: settings.check_interval,
            oauth,
            api_limiter: api::RateLimiter::new(settings.api_rate_limit),
            usage,
        });
        usage_writer
            .start(std::sync::Arc::downgrade(&state.clone().into_inner()))
            .map_err(StartupError::UsageWriter)?;
        writer.start(std::sync::Arc::downgrade(&state.clone().into_inner())).map_err(StartupError::Writer)?;
        let schedule = if settings.check_interval.is_zero() {
            tracing::info!("background checks are off (PLUGBOARD_CHECK_INTERVAL=0)");
            None
        } else {
            Some(
                jobs::start(state.clone().into_inner(), settings.check_concurrency)
                    .map_err(StartupError::Schedule)?,
            )
        };
        let secure_cookies = settings.secure_cookies;
        let trusted_proxies = settings.trusted_proxies.clone();
        let metrics_allow = web::metrics::MetricsAllow(settings.metrics_allow.clone());
        let app_state = state.clone();
        let list_cache = aw::Data::new(web::list_cache());
        let mut server = HttpServer::new(move || {
            let session = SessionMiddleware::builder(CookieSessionStore::default(), session_key.clone())
                .cookie_name("plugboard_session".into())
                .cookie_http_only(true)
                .cookie_same_site(SameSite::Lax)
                .cookie_secure(secure_cookies)
                .cookie_content_security(CookieContentSecurity::Private)
                .session_lifecycle(PersistentSession::default().session_ttl(CookieDuration::days(30)))
                .build();
            App::new()
                .app_data(app_state.clone())
                .app_data(list_cache.clone())
                .app_data(trusted_proxies.clone())
                .app_data(metrics_allow.clone())
                .app_data(aw::PayloadConfig::new(MAX_BODY_BYTES))
                .configure(web::routes)
                .default_service(aw::to(web::error::not_found))
                .wrap(from_fn(web::middleware::error_pages::error_pages))
                .wrap(from_fn(web::middleware::auth::load_user))
                .wrap(session)
                .wrap(from_fn(web::middleware::security::security_headers))
                .wrap(from_fn(web::middleware::request_log::log_request))
        });
        if let Some(workers) = settings.workers {
            server = server.workers(workers.max(1));
        }
        // Database work is already bounded by the gate's permits (one per
        // pooled connection); this bounds the rest of what runs on a worker's
        // blocking threads (the readiness probe, name lookups of checks),
        // which would otherwise be allowed 512 threads shared out per worker.
        server = server.worker_max_blocking_threads(pool_size as usize + BLOCKING_HEADROOM);
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind { addr: settings.bind, source })?
            .run();
        Ok(Application { server, addr, state, schedule })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// What the handlers share; for tools and tests.
    pub fn state(&self) -> std::sync::Arc<AppState> {
        self.state.clone().into_inner()
    }

    /// Serves until stopped (Ctrl-C or SIGTERM finish the requests in
    /// flight first), then stops the background checks.
    pub async fn run(self) -> std::io::Result<()> {
        let result = self.server.await;
        drop(self.schedule);
        result
    }
}

/// `plugboard create-admin`: an admin account without the browser. Returns
/// the message to print.
pub fn create_admin(settings: &Settings, email: &str, name: &str, password: &str) -> Result<String, String> {
    db::create_private_dir(&settings.data_dir).map_err(|e| format!("cannot create the data folder: {e}"))?;
    let (pool, _) =
        db::connect(&settings.database_url(), 1, settings.pool_timeout).map_err(|e| e.to_string())?;
    let mut conn = pool.get().map_err(|e| e.to_string())?;
    // The same operation as the People page, so the same rules and the same
    // audit row (by Plugboard itself: nobody is signed in).
    let new =
        accounts::NewUser { email, name, password, role: accounts::Role::Admin, must_change_password: false };
    let user = accounts::operations::add_person(&mut conn, &audit::Actor::System, &new)
        .map_err(|e| e.to_string())?;
    Ok(format!("created admin {}", user.email))
}
