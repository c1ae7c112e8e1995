//! The one HTTP client for everything Plugboard sends to a service: checks
//! today, OAuth2 token and refresh requests next. Whoever calls it gets the
//! same rules, so none of them can be forgotten by a new caller:
//!
//! - the network policy ([`NetworkPolicy`]) on every address, whether a
//!   name resolves to it or the URL names it;
//! - no redirect to another scheme, host or port (at most
//!   [`MAX_REDIRECTS`] on the same one), because credentials must never
//!   follow a redirect elsewhere; such a redirect is reported, not followed;
//! - answers read up to [`MAX_BODY_BYTES`], streamed, so a huge answer is
//!   never held;
//! - one time limit on the whole exchange (resolving, connecting, the
//!   headers and the body), so a service that drips its answer a byte at a
//!   time is cut off like one that never answers.
//!
//! Failures come back as an [`OutboundError`], recognised by the types in
//! the client's error chain, never by its words, and worded by Plugboard:
//! the client's own messages carry the URL, whose path or query may hold a
//! key, so none of their text is shown or logged.

pub mod network;

use std::error::Error as StdError;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use url::Url;

pub use network::{Blocked, DnsFailed, NetworkPolicy};

/// Answers are read up to this size; a "who am I" or token answer is far
/// smaller.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Redirects followed on the same scheme, host and port.
pub const MAX_REDIRECTS: usize = 5;

/// Why a request got no answer Plugboard can use. The wording is for the
/// people reading a status: it names at most a host, never a URL, a query
/// string or anything that was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutboundError {
    /// The policy refuses every address of `host` (`addr` is the first one
    /// found; `None` when the name was not even looked up, or the URL
    /// named the address itself).
    #[error("{host} is not on a network checks may reach{}", addr.map(|a| format!(" ({a})")).unwrap_or_default())]
    Blocked { host: String, addr: Option<IpAddr> },
    #[error("connection refused")]
    Refused,
    #[error("connection reset")]
    Reset,
    #[error("timed out after {} s", after.as_secs_f64())]
    TimedOut { after: Duration },
    #[error("DNS lookup failed for {host}")]
    Dns { host: String },
    #[error("TLS handshake failed (certificate or protocol)")]
    Tls,
    /// A redirect the client did not follow: to another host, scheme or
    /// port, or one too many. Nothing was sent to `host`.
    #[error("HTTP {status} redirect to {host}; the credentials were not sent there")]
    Redirected { status: u16, host: String },
    #[error("the answer is larger than {} KiB", MAX_BODY_BYTES / 1024)]
    TooLarge,
    #[error("the answer was cut off")]
    CutOff,
    /// Connecting failed for a reason other than the ones above (no route,
    /// network down).
    #[error("could not connect")]
    Unconnected,
    #[error("only http and https URLs can be reached, not `{scheme}`")]
    Scheme { scheme: String },
    /// A header name or value that HTTP cannot carry; the value may be a
    /// secret, so only the name is kept.
    #[error("the value for header {name} is not valid in HTTP")]
    BadHeader { name: String },
    #[error("the request failed")]
    Other,
}

/// What to send. Built with the methods below; a header that HTTP cannot
/// carry is reported by [`Outbound::send`], before anything is sent.
pub struct Request {
    method: Method,
    url: Url,
    headers: HeaderMap,
    bad_header: Option<String>,
    basic: Option<(String, SecretString)>,
    body: Option<Vec<u8>>,
}

impl Request {
    pub fn new(method: Method, url: Url) -> Request {
        Request { method, url, headers: HeaderMap::new(), bad_header: None, basic: None, body: None }
    }

    pub fn get(url: Url) -> Request {
        Request::new(Method::GET, url)
    }

    pub fn post(url: Url) -> Request {
        Request::new(Method::POST, url)
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn url(&self) -> &Url {
        &self.url
    }

    /// Adds a header (another value if the name is already there).
    pub fn header(self, name: &str, value: &str) -> Request {
        self.header_marked(name, value, false)
    }

    /// Adds a header whose value is a secret: marked sensitive, so the
    /// client never prints it and HTTP/2 never indexes it.
    pub fn secret_header(self, name: &str, value: &str) -> Request {
        self.header_marked(name, value, true)
    }

    /// [`Request::header`] or [`Request::secret_header`], as `sensitive` says.
    pub fn header_marked(mut self, name: &str, value: &str, sensitive: bool) -> Request {
        let parsed = HeaderName::from_bytes(name.as_bytes()).ok().zip(HeaderValue::from_str(value).ok());
        match parsed {
            Some((name, mut value)) => {
                value.set_sensitive(sensitive);
                self.headers.append(name, value);
            }
            None => {
                self.bad_header.get_or_insert_with(|| short(name));
            }
        }
        self
    }

    /// HTTP Basic authentication.
    pub fn basic_auth(mut self, username: &str, password: &SecretString) -> Request {
        self.basic = Some((username.to_owned(), password.clone()));
        self
    }

    /// A form-encoded body (`application/x-www-form-urlencoded`).
    pub fn form(mut self, pairs: &[(&str, &str)]) -> Request {
        let body = form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        if !self.headers.contains_key(CONTENT_TYPE) {
            self.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        }
        self.body = Some(body.into_bytes());
        self
    }

    /// A body sent as it is; the caller sets its Content-Type.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = Some(body.into());
        self
    }
}

/// A service's answer, read whole (within [`MAX_BODY_BYTES`]). Redirects
/// never come back as answers: they are followed or reported.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// The client. One per process: clones share its connection pool.
#[derive(Clone)]
pub struct Outbound {
    client: reqwest::Client,
    /// Also applied here to URLs that name an IP address, which the client
    /// connects to without asking the resolver.
    policy: Arc<NetworkPolicy>,
    limit: Duration,
}

impl Outbound {
    /// A client that allows what `policy` allows and gives each exchange
    /// `limit` in all.
    pub fn new(policy: NetworkPolicy, limit: Duration) -> Outbound {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(network::PolicyResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::custom(same_origin_only))
            // The previous URL may hold a key in its query.
            .referer(false)
            .no_proxy()
            .user_agent(concat!("Plugboard/", env!("CARGO_PKG_VERSION")))
            .build()
            // Only a TLS back end that cannot start fails here, and the
            // built-in rustls with compiled-in roots reads no file and
            // takes no input: a broken build, not a condition to handle.
            .expect("the HTTP client's settings are valid");
        Outbound { client, policy, limit }
    }

    /// The time limit on one whole exchange.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// Sends `request` and reads the answer, within the time limit.
    pub async fn send(&self, request: Request) -> Result<Answer, OutboundError> {
        if let Some(name) = request.bad_header {
            return Err(OutboundError::BadHeader { name });
        }
        let url = &request.url;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(OutboundError::Scheme { scheme: short(url.scheme()) });
        }
        // The client connects to an address in the URL without asking the
        // resolver, where the policy is applied to names.
        let literal: Option<IpAddr> = match url.host() {
            None => return Err(OutboundError::Other),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(v4)) => Some(v4.into()),
            Some(url::Host::Ipv6(v6)) => Some(v6.into()),
        };
        if let Some(ip) = literal.filter(|ip| !self.policy.allows(*ip)) {
            return Err(OutboundError::Blocked { host: ip.to_string(), addr: None });
        }
        match tokio::time::timeout(self.limit, self.exchange(request)).await {
            Ok(result) => result,
            Err(_) => Err(OutboundError::TimedOut { after: self.limit }),
        }
    }

    async fn exchange(&self, request: Request) -> Result<Answer, OutboundError> {
        let Request { method, url, headers, bad_header: _, basic, body } = request;
        let mut builder = self.client.request(method, url).headers(headers);
        if let Some((username, password)) = &basic {
            builder = builder.basic_auth(username, Some(password.expose_secret()));
        }
        if let Some(body) = body {
            builder = builder.body(body);
        }
        let mut response = builder.send().await.map_err(|e| classify(&e, self.limit))?;
        let status = response.status();
        if status.is_redirection() {
            // The policy stopped here: to another origin, or one too many.
            let host = response
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| response.url().join(l).ok())
                .and_then(|u| u.host_str().map(short))
                .unwrap_or_else(|| "elsewhere".to_owned());
            return Err(OutboundError::Redirected { status: status.as_u16(), host });
        }
        if response.content_length().is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(OutboundError::TooLarge);
        }
        let headers = std::mem::take(response.headers_mut());
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e, self.limit))? {
            if body.len() + chunk.len() > MAX_BODY_BYTES {
                return Err(OutboundError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer { status, headers, body })
    }
}

/// Follows a redirect only to the scheme, host and port first asked.
fn same_origin_only(attempt: reqwest::redirect::Attempt<'_>) -> reqwest::redirect::Action {
    let Some(first) = attempt.previous().first() else { return attempt.stop() };
    let next = attempt.url();
    let same = next.scheme() == first.scheme()
        && next.host_str() == first.host_str()
        && next.port_or_known_default() == first.port_or_known_default();
    if same && attempt.previous().len() <= MAX_REDIRECTS { attempt.follow() } else { attempt.stop() }
}

/// A failed exchange, by the types in the error's chain of causes.
fn classify(error: &reqwest::Error, limit: Duration) -> OutboundError {
    for cause in causes(error) {
        if let Some(blocked) = cause.downcast_ref::<Blocked>() {
            return OutboundError::Blocked { host: short(&blocked.host), addr: blocked.addr };
        }
        if let Some(dns) = cause.downcast_ref::<DnsFailed>() {
            return OutboundError::Dns { host: short(&dns.host) };
        }
        if cause.is::<rustls::Error>() {
            return OutboundError::Tls;
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            match io.kind() {
                io::ErrorKind::ConnectionRefused => return OutboundError::Refused,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => return OutboundError::Reset,
                io::ErrorKind::TimedOut => return OutboundError::TimedOut { after: limit },
                _ => {}
            }
        }
    }
    if error.is_timeout() {
        OutboundError::TimedOut { after: limit }
    } else if error.is_body() || error.is_decode() {
        OutboundError::CutOff
    } else if error.is_connect() {
        OutboundError::Unconnected
    } else {
        OutboundError::Other
    }
}

/// An error and its causes, outermost first. `io::Error::source` skips the
/// error an `io::Error` wraps (it returns that error's own source), which
/// is where TLS failures travel, so the wrapped one is visited instead.
fn causes<'a>(error: &'a (dyn StdError + 'static)) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(error), |&cause| next_cause(cause))
}

fn next_cause<'a>(cause: &'a (dyn StdError + 'static)) -> Option<&'a (dyn StdError + 'static)> {
    match cause.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => cause.source(),
    }
}

/// Text from outside (a host name, a header name) cut to a size fit for a
/// one-line reason.
fn short(text: &str) -> String {
    const MAX: usize = 100;
    if text.chars().count() > MAX {
        format!("{}…", text.chars().take(MAX).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests;
