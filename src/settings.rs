//! Start-up configuration: command-line flags, each also readable from a
//! `PLUGBOARD_*` environment variable (and `DATABASE_URL`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use ipnet::IpNet;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "plugboard",
    version,
    about = "Plugboard: manage the credentials your automations use to reach third-party services."
)]
pub struct Settings {
    #[command(subcommand)]
    pub command: Option<Command>,

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

    /// An extra catalog file (TOML), or a folder of `*.toml` files, whose
    /// entries add components or override fields of built-in ones.
    #[arg(long, env = "PLUGBOARD_CATALOG")]
    pub catalog: Option<PathBuf>,

    /// The encryption keys themselves, instead of the key file: `<id> <64 hex
    /// digits>` entries separated by `;`, the first one sealing. Give every
    /// process of one deployment the same value.
    #[arg(long, env = "PLUGBOARD_ENCRYPTION_KEYS", hide_env_values = true)]
    pub encryption_keys: Option<SecretValue>,

    /// The session cookie key itself (128 hex digits), instead of the key
    /// file; the same on every process so sessions work on all of them.
    #[arg(long, env = "PLUGBOARD_SESSION_KEY", hide_env_values = true)]
    pub session_key: Option<SecretValue>,

    /// Seconds the database pool waits for a connection when asked without
    /// a limit of its own (the command-line tasks); requests and background
    /// work wait PLUGBOARD_BUSY_WAIT.
    #[arg(long, env = "PLUGBOARD_POOL_TIMEOUT", default_value_t = 10)]
    pub pool_timeout: u64,

    /// How long a request waits for a free database connection before it is
    /// answered "busy, try again" (503), such as `2s` or `500ms`; at most the
    /// pool timeout. Also the time limit of the readiness probe (at least 1 s).
    #[arg(long, env = "PLUGBOARD_BUSY_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub busy_wait: Duration,

    /// Most database connections held open at once.
    #[arg(long, env = "PLUGBOARD_POOL_SIZE", default_value_t = 8)]
    pub pool_size: u32,

    /// Mark the session cookie Secure; turn on when served over HTTPS.
    #[arg(long, env = "PLUGBOARD_SECURE_COOKIES", default_value_t = false)]
    pub secure_cookies: bool,

    /// HTTP worker threads; default: one per CPU core.
    #[arg(long, env = "PLUGBOARD_WORKERS")]
    pub workers: Option<usize>,

    /// Time limit of one credential check, in seconds.
    #[arg(long, env = "PLUGBOARD_CHECK_TIMEOUT", default_value_t = 10)]
    pub check_timeout: u64,

    /// How often each connection is checked in the background, such as
    /// `6h`, `30m` or `45s`; `0` turns the background checks off.
    #[arg(long, env = "PLUGBOARD_CHECK_INTERVAL", default_value = "6h", value_parser = parse_duration)]
    pub check_interval: Duration,

    /// Most background checks running at once.
    #[arg(long, env = "PLUGBOARD_CHECK_CONCURRENCY", default_value_t = 4)]
    pub check_concurrency: usize,

    /// Private address ranges that checks may reach, comma-separated CIDRs
    /// (`10.0.0.0/8,127.0.0.1`) for self-hosted services. Link-local and
    /// cloud metadata addresses are never reachable.
    #[arg(long, env = "PLUGBOARD_ALLOW_NETWORKS", default_value = "")]
    pub allow_networks: String,

    /// Whether checks may reach public addresses; turn off where every
    /// service is inside the ranges of PLUGBOARD_ALLOW_NETWORKS.
    #[arg(long, env = "PLUGBOARD_CHECK_PUBLIC_NETWORKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub check_public_networks: bool,

    /// Reverse proxies (load balancers) in front of Plugboard whose
    /// `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Host` are
    /// believed: comma-separated IP addresses or CIDR ranges. Empty: the
    /// client is the peer of the connection and those headers are ignored.
    #[arg(long, env = "PLUGBOARD_TRUSTED_PROXIES", default_value = "")]
    pub trusted_proxies: TrustedProxies,

    /// Addresses that may read `/metrics` without signing in (a Prometheus
    /// server): comma-separated IP addresses or CIDR ranges. Signed-in
    /// admins may always read it.
    #[arg(long, env = "PLUGBOARD_METRICS_ALLOW", default_value = "")]
    pub metrics_allow: AddressRanges,

    /// Where browsers reach Plugboard, such as `https://plugboard.example.com`:
    /// OAuth2 providers send people back to `<this>/oauth2/callback`.
    /// Default: `http://` and the address it listens on.
    #[arg(long, env = "PLUGBOARD_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// A TOML file of OAuth apps the operator registered, one
    /// `[component.environment]` table each with `client_id` and
    /// `client_secret`; those components then need only Connect.
    #[arg(long, env = "PLUGBOARD_OAUTH_APPS")]
    pub oauth_apps: Option<PathBuf>,

    /// API calls each token may make per minute, in each process (a full
    /// minute's worth may come at once); 0: no limit.
    #[arg(long, env = "PLUGBOARD_API_RATE_LIMIT", default_value_t = 600)]
    pub api_rate_limit: u32,

    /// Log filter, such as `info` or `plugboard=debug,actix_web=info`.
    #[arg(long, env = "PLUGBOARD_LOG", default_value = "info")]
    pub log: String,
}

/// Tasks run instead of serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Create an admin account, for scripted installs. The password is read
    /// from PLUGBOARD_ADMIN_PASSWORD, or else from standard input.
    CreateAdmin {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "")]
        name: String,
    },
}

impl Settings {
    /// Defaults for tests and embedders, with data kept in `data_dir`: a
    /// random port, one worker, and checks that reach only 127.0.0.1.
    pub fn with_data_dir(data_dir: impl Into<PathBuf>) -> Settings {
        Settings {
            command: None,
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            database_url: None,
            catalog: None,
            pool_size: 4,
            pool_timeout: 10,
            busy_wait: Duration::from_secs(2),
            encryption_keys: None,
            session_key: None,
            workers: Some(1),
            check_timeout: 10,
            check_interval: Duration::from_secs(6 * 3600),
            check_concurrency: 4,
            // Tests stand local servers in for the services, and never
            // reach the internet.
            allow_networks: "127.0.0.1".into(),
            check_public_networks: false,
            secure_cookies: false,
            trusted_proxies: TrustedProxies::default(),
            metrics_allow: AddressRanges::default(),
            public_url: None,
            oauth_apps: None,
            api_rate_limit: 600,
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

/// A configuration value that must never be printed: its Debug is redacted.
#[derive(Clone)]
pub struct SecretValue(pub zeroize::Zeroizing<String>);

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretValue(…)")
    }
}

impl std::str::FromStr for SecretValue {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(SecretValue(zeroize::Zeroizing::new(s.to_owned())))
    }
}

/// Comma-separated IP addresses and CIDR ranges, as a setting gives them.
/// Cheap to clone: the web layer keeps one per worker.
#[derive(Debug, Clone, Default)]
pub struct AddressRanges(Arc<Vec<IpNet>>);

impl AddressRanges {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl std::str::FromStr for AddressRanges {
    type Err = String;
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut nets = Vec::new();
        for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let net =
                part.parse::<IpNet>().or_else(|_| part.parse::<IpAddr>().map(IpNet::from)).map_err(|_| {
                    format!("`{part}` is not an IP address or CIDR range such as 10.0.0.0/8 or 192.0.2.7")
                })?;
            nets.push(net);
        }
        Ok(AddressRanges(Arc::new(nets)))
    }
}

/// The proxies whose forwarding headers are believed
/// (`PLUGBOARD_TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(AddressRanges);

impl std::str::FromStr for TrustedProxies {
    type Err = String;
    fn from_str(list: &str) -> Result<Self, Self::Err> {
        list.parse().map(TrustedProxies)
    }
}

impl TrustedProxies {
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The address of the client that sent a request which reached us from
    /// `peer` with these `X-Forwarded-For` values (in header order).
    ///
    /// Each proxy appends the address it received the request from, so the
    /// list is only as trustworthy as the proxy that wrote each entry:
    /// walking from the right, entries are believed while they were written
    /// by a trusted proxy, and the first address that is not itself a
    /// trusted proxy is the client. Anything the client put further left is
    /// never reached. A peer that is not trusted is the client, whatever it
    /// sent.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        let entries =
            forwarded_for.iter().flat_map(|v| v.split(',')).map(str::trim).filter(|e| !e.is_empty());
        for entry in entries.rev() {
            // An entry that is not an address means the chain cannot be
            // followed further: the last proxy that can be named is asking.
            let Some(ip) = parse_forwarded_address(entry) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// `192.0.2.7`, `192.0.2.7:5678`, `2001:db8::1` or `[2001:db8::1]:5678`.
fn parse_forwarded_address(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(canonical(ip))
}

/// IPv4 written as IPv6 (::ffff:a.b.c.d) is the IPv4 address: a dual-stack
/// listener reports IPv4 peers that way.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// `45s`, `30m`, `6h`, `2d`, `500ms`, or a number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| format!("`{text}` is not a duration such as 45s, 30m or 6h"))?;
    let seconds = match unit.trim() {
        "" | "s" => return Ok(Duration::from_secs(n)),
        "ms" => return Ok(Duration::from_millis(n)),
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => return Err(format!("unknown unit `{other}` in `{text}`; use ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(n.saturating_mul(seconds)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6h").unwrap(), Duration::from_secs(21600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("6 hours").is_err());
        assert!(parse_duration("h").is_err());
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_parse_addresses_and_ranges() {
        let trusted: TrustedProxies = " 10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,".parse().unwrap();
        assert!(trusted.trusts(ip("10.1.2.3")));
        assert!(trusted.trusts(ip("192.0.2.7")));
        assert!(trusted.trusts(ip("::ffff:192.0.2.7")));
        assert!(trusted.trusts(ip("2001:db8::5")));
        assert!(!trusted.trusts(ip("192.0.2.8")));
        assert!("".parse::<TrustedProxies>().unwrap().0.0.is_empty());
        let error = "10.0.0.0/8, proxy.internal".parse::<TrustedProxies>().unwrap_err();
        assert!(error.contains("`proxy.internal` is not an IP address"), "{error}");
    }

    #[test]
    fn the_client_is_the_rightmost_untrusted_forwarded_address_from_a_trusted_peer() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let peer = ip("10.0.0.2");
        assert_eq!(trusted.client(peer, &["203.0.113.5"]), ip("203.0.113.5"));
        // The client wrote the leftmost entry itself: never reached.
        assert_eq!(trusted.client(peer, &["198.51.100.1, 203.0.113.5, 10.0.0.9"]), ip("203.0.113.5"));
        // Several header lines are one list, in order.
        assert_eq!(trusted.client(peer, &["198.51.100.1", "203.0.113.5"]), ip("203.0.113.5"));
        assert_eq!(trusted.client(peer, &["[2001:db8::7]:443", "203.0.113.5:1234"]), ip("203.0.113.5"));
        assert_eq!(trusted.client(peer, &["2001:db8::7"]), ip("2001:db8::7"));
        // Nothing forwarded, or only proxies: the innermost one named.
        assert_eq!(trusted.client(peer, &[]), peer);
        assert_eq!(trusted.client(peer, &["10.0.0.7, 10.0.0.8"]), ip("10.0.0.7"));
        // Garbage stops the walk at the proxy that wrote it.
        assert_eq!(trusted.client(peer, &["203.0.113.5, unknown"]), peer);
        // An untrusted peer is the client whatever it claims.
        assert_eq!(trusted.client(ip("203.0.113.9"), &["10.0.0.1"]), ip("203.0.113.9"));
        assert_eq!(TrustedProxies::default().client(peer, &["203.0.113.5"]), peer);
    }
}
