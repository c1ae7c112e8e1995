//! Start-up configuration: command-line flags, each also readable from a
//! `PLUGBOARD_*` environment variable (and `DATABASE_URL`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Plugboard: manage the credentials your automations use to reach third-party services."
)]
pub struct Settings {
    /// Address and port to listen on.
    #[arg(long, env = "PLUGBOARD_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,

    /// Folder for the SQLite database and the key files; created if missing.
    #[arg(long, env = "PLUGBOARD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,

    /// A SQLite file path (or sqlite://path), or a postgres:// URL.
    /// Default: plugboard.sqlite3 in the data folder.
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// An extra catalog file (TOML) whose entries add components or override
    /// fields of built-in ones.
    #[arg(long, env = "PLUGBOARD_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// Most database connections held open at once.
    #[arg(long, env = "PLUGBOARD_POOL_SIZE", default_value_t = 8)]
    pub pool_size: u32,

    /// Mark the session cookie Secure; turn on when served over HTTPS.
    #[arg(long, env = "PLUGBOARD_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// HTTP worker threads; default: one per CPU core.
    #[arg(long, env = "PLUGBOARD_WORKERS")]
    pub workers: Option<usize>,

    /// Log filter, such as `info` or `plugboard=debug,actix_web=info`.
    #[arg(long, env = "PLUGBOARD_LOG", default_value = "info")]
    pub log: String,
}

impl Settings {
    /// Defaults for everything, with data kept in `data_dir`: what tests and
    /// embedders start from.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            catalog: None,
            pool_size: 4,
            workers: Some(1),
            secure_cookies: false,
            log: "info".into(),
        }
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("plugboard.sqlite3").display().to_string())
    }

    pub fn encryption_key_path(&self) -> PathBuf {
        self.data_dir.join("encryption.key")
    }

    pub fn session_key_path(&self) -> PathBuf {
        self.data_dir.join("session.key")
    }
}
