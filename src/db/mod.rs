//! The database: one schema over SQLite (the embedded default) and
//! PostgreSQL, a pool whose backend is chosen from the URL's scheme, and the
//! migrations of each backend embedded in the binary.

mod failure;
mod files;
pub mod fixed_sql;
mod ready;
pub mod schema;
mod write;

pub use failure::{ConnectHealth, Unavailable, take_failed_rollback, take_outage};
pub use files::create_private_dir;
pub use ready::{NotReady, Probe};
pub use write::write;

use std::fmt;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

pub type Pool = r2d2::Pool<Manager>;
pub type PooledConnection = r2d2::PooledConnection<Manager>;

/// Which database a URL names. Decided from the scheme, never by trying
/// each backend in turn (which once turned a PostgreSQL DSN into a SQLite
/// file named after it).
#[derive(Clone, PartialEq, Eq)]
pub enum Backend {
    Sqlite { path: String },
    Postgres { url: String },
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, DbError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(DbError::Url("DATABASE_URL is empty".into()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Backend::Postgres { url: url.to_owned() });
        }
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(DbError::Url("sqlite:// needs a file path after it".into()));
            }
            return Ok(Backend::Sqlite { path: path.to_owned() });
        }
        if let Some((scheme, _)) = url.split_once("://") {
            return Err(DbError::Url(format!(
                "`{scheme}://` is not supported; use a SQLite file path or a postgres:// URL"
            )));
        }
        if url.contains('=') && url.contains(' ') {
            return Err(DbError::Url(
                "this looks like a key=value PostgreSQL DSN; write it as a postgres:// URL".into(),
            ));
        }
        Ok(Backend::Sqlite { path: url.to_owned() })
    }

    pub fn name(&self) -> &'static str {
        match self {
            Backend::Sqlite { .. } => "SQLite",
            Backend::Postgres { .. } => "PostgreSQL",
        }
    }

    /// Where the database is, with any password removed: fit for logs.
    pub fn redacted(&self) -> String {
        match self {
            Backend::Sqlite { path } => path.clone(),
            Backend::Postgres { url } => redact_password(url),
        }
    }
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.name(), self.redacted())
    }
}

fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            // The query string may carry a password too.
            let tail = match tail.split_once('?') {
                Some((path, _)) => format!("{path}?…"),
                None => tail.to_owned(),
            };
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => match tail.split_once('?') {
            Some((path, _)) => format!("{scheme}://{authority}{path}?…"),
            None => url.to_owned(),
        },
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid database URL: {0}")]
    Url(String),
    #[error("cannot open the {backend} database at {location}: {message}")]
    Connect { backend: &'static str, location: String, message: String },
    #[error("cannot create the database folder {path}: {source}")]
    Folder { path: String, source: std::io::Error },
    #[error("database migrations failed: {0}")]
    Migration(String),
    #[error("the database pool could not start: {0}")]
    Pool(String),
}

/// How long a SQLite writer waits for another one before "database is
/// locked".
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 5000;

/// An r2d2 manager that opens the backend the URL names and prepares each
/// new connection (SQLite pragmas are per connection).
#[derive(Debug, Clone)]
pub struct Manager {
    backend: Backend,
    connects: ConnectHealth,
}

impl Manager {
    fn connect(&self) -> Result<DbConnection, DbError> {
        let fail = |message: String| DbError::Connect {
            backend: self.backend.name(),
            location: self.backend.redacted(),
            message: scrub(&message, &self.backend),
        };
        let mut conn = match &self.backend {
            Backend::Sqlite { path } => {
                let mut conn = SqliteConnection::establish(path).map_err(|e| fail(e.to_string()))?;
                // WAL lets readers work while one writer writes; the busy
                // timeout makes writers wait for each other instead of failing.
                // It comes first: switching to WAL waits for a connection
                // that is still recovering a large write-ahead log (after a
                // crash, or a bulk import), and without a timeout the other
                // connections the pool opens at start-up would fail at once.
                conn.batch_execute(&format!(
                    "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL; \
                     PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
                ))
                .map_err(|e| fail(e.to_string()))?;
                DbConnection::Sqlite(conn)
            }
            Backend::Postgres { url } => {
                DbConnection::Postgres(PgConnection::establish(url).map_err(|e| fail(e.to_string()))?)
            }
        };
        conn.set_instrumentation(failure::OutageRecorder::default());
        Ok(conn)
    }
}

/// libpq repeats parts of the connection string in some messages; make sure
/// a password never rides along into a log line.
fn scrub(message: &str, backend: &Backend) -> String {
    let Backend::Postgres { url } = backend else {
        return message.trim().to_owned();
    };
    let mut out = message.trim().to_owned();
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or_default();
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                if !password.is_empty() {
                    out = out.replace(password, "…");
                }
            }
        }
    }
    out
}

impl r2d2::ManageConnection for Manager {
    type Connection = DbConnection;
    type Error = r2d2::Error;

    fn connect(&self) -> Result<DbConnection, r2d2::Error> {
        let result = Manager::connect(self);
        self.connects.record(result.is_ok());
        result
            .map_err(|e| r2d2::Error::ConnectionError(diesel::ConnectionError::BadConnection(e.to_string())))
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), r2d2::Error> {
        diesel::sql_query("SELECT 1").execute(conn).map(|_| ()).map_err(r2d2::Error::QueryError)
    }

    /// A connection left inside a transaction that could not be ended (the
    /// server went away mid-way) is not put back into the pool.
    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        std::thread::panicking() || r2d2::R2D2Connection::is_broken(conn)
    }
}

/// Runs reading work in one read transaction on SQLite: its statements
/// then read one snapshot, and take the WAL's read lock once (outside a
/// transaction each statement takes and drops it, a system call on the
/// shared-memory file each time: a third of the edit view's time). On
/// PostgreSQL the work runs as it is.
pub fn snapshot<T, E>(
    conn: &mut DbConnection,
    work: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match conn {
        DbConnection::Sqlite(_) => diesel::Connection::transaction(conn, work),
        DbConnection::Postgres(_) => work(conn),
    }
}

/// An open database: its pool, which backend it is, and whether the pool
/// can currently open connections.
pub struct Database {
    pub pool: Pool,
    pub backend: Backend,
    pub connects: ConnectHealth,
}

/// Opens the database, creating the SQLite file (and its folder) private to
/// this user if needed, and brings its schema up to date. The first
/// connection is made directly so that a refused connection or bad password
/// stops start-up with the real message rather than a pool timeout.
pub fn open(url: &str, pool_size: u32, timeout_secs: u64) -> Result<Database, DbError> {
    let backend = Backend::from_url(url)?;
    if let Backend::Sqlite { path } = &backend {
        // `:memory:` and `file:` URIs name no file of ours to create.
        if path != ":memory:" && !path.starts_with("file:") {
            let file = std::path::Path::new(path);
            if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
                create_private_dir(dir)
                    .map_err(|source| DbError::Folder { path: dir.display().to_string(), source })?;
            }
            files::create_private_database(file).map_err(|e| DbError::Connect {
                backend: backend.name(),
                location: backend.redacted(),
                message: e.to_string(),
            })?;
        }
    }
    let connects = ConnectHealth::default();
    let manager = Manager { backend: backend.clone(), connects: connects.clone() };
    let mut first = manager.connect()?;
    migrate(&mut first)?;
    drop(first);
    // A SQLite connection is a file handle in this process: it cannot be
    // dropped by a server, so checking it with a `SELECT 1` at every
    // checkout only costs a statement. PostgreSQL's can, and are checked.
    let sqlite = matches!(backend, Backend::Sqlite { .. });
    let pool = r2d2::Pool::builder()
        .max_size(pool_size.max(1))
        .test_on_check_out(!sqlite)
        .connection_timeout(Duration::from_secs(timeout_secs.max(1)))
        .build(manager)
        .map_err(|e| DbError::Pool(e.to_string()))?;
    Ok(Database { pool, backend, connects })
}

/// [`open`], for tools that need only the pool.
pub fn connect(url: &str, pool_size: u32, timeout_secs: u64) -> Result<(Pool, Backend), DbError> {
    open(url, pool_size, timeout_secs).map(|db| (db.pool, db.backend))
}

/// One connection outside the pool, with the same backend choice and
/// preparation as pooled ones (for tools and tests).
pub fn establish(url: &str) -> Result<DbConnection, DbError> {
    Manager { backend: Backend::from_url(url)?, connects: ConnectHealth::default() }.connect()
}

fn migrate(conn: &mut DbConnection) -> Result<(), DbError> {
    let result = match conn {
        DbConnection::Sqlite(c) => c.run_pending_migrations(SQLITE_MIGRATIONS).map(|_| ()),
        DbConnection::Postgres(c) => c.run_pending_migrations(POSTGRES_MIGRATIONS).map(|_| ()),
    };
    result.map_err(|e| DbError::Migration(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_follows_the_scheme() {
        assert!(matches!(Backend::from_url("data/x.sqlite3"), Ok(Backend::Sqlite { .. })));
        assert!(
            matches!(Backend::from_url("sqlite://data/x.db"), Ok(Backend::Sqlite { path }) if path == "data/x.db")
        );
        assert!(matches!(Backend::from_url("postgres://u@h/db"), Ok(Backend::Postgres { .. })));
        assert!(matches!(Backend::from_url("postgresql://u@h/db"), Ok(Backend::Postgres { .. })));
        let err = Backend::from_url("mysql://root@localhost/db").unwrap_err().to_string();
        assert!(err.contains("mysql://"), "{err}");
        assert!(Backend::from_url("host=localhost user=me password=pw").is_err());
        assert!(Backend::from_url("  ").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        let b = Backend::from_url("postgres://app:s3cret@db.example:5432/plug?sslmode=require").unwrap();
        let shown = b.redacted();
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app@db.example:5432/plug"), "{shown}");
        assert!(!format!("{b:?}").contains("s3cret"));
        assert_eq!(scrub("bad password s3cret", &b), "bad password …");
    }
}
