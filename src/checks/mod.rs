//! Checks: proving that a connection's credentials work by making the
//! request its catalog entry describes, and saying why when they do not.
//!
//! ACTIVE only when the service accepted the credentials just now. Every
//! other result is NOT ACTIVE with a reason a person can act on: rejected by
//! the service, unreachable, an unexpected answer, something missing, or an
//! address checks may not reach.

pub mod network;
mod request;
pub mod schedule;

use std::collections::BTreeMap;
use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};

use crate::catalog::{Component, TestRequest};
use crate::connections::{Connection, Status};
pub use network::NetworkPolicy;
use request::{Plan, Signing, Values};

/// Bodies are read up to this size; a "who am I" answer is far smaller.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Active(String),
    Rejected { status: Option<u16>, code: Option<String> },
    Unreachable(String),
    Unexpected(String),
    Missing(String),
    Blocked(String),
}

impl Outcome {
    pub fn status(&self) -> Status {
        match self {
            Outcome::Active(_) => Status::Active,
            _ => Status::NotActive,
        }
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(self, Outcome::Unreachable(_))
    }

    /// The sentence stored and shown with the status.
    pub fn reason(&self) -> String {
        match self {
            Outcome::Active(detail) => detail.clone(),
            Outcome::Rejected { status, code } => match (status, code) {
                (Some(s), Some(c)) => format!("rejected by the service: HTTP {s} ({c})"),
                (Some(s), None) => format!("rejected by the service: HTTP {s}"),
                (None, Some(c)) => format!("rejected by the service: {c}"),
                (None, None) => "rejected by the service".to_owned(),
            },
            Outcome::Unreachable(m) => format!("unreachable: {m}"),
            Outcome::Unexpected(m) => format!("unexpected answer: {m}"),
            Outcome::Missing(m) => format!("missing: {m}"),
            Outcome::Blocked(m) => format!("blocked: {m}"),
        }
    }
}

/// Makes checks. One per process; its HTTP client is shared.
pub struct Checker {
    client: reqwest::Client,
    /// Also applied here to URLs that name an IP address, which the client
    /// connects to without asking the resolver.
    policy: Arc<NetworkPolicy>,
    timeout: Duration,
    /// Fixed signing time, for comparing with published AWS test vectors.
    clock: Option<SystemTime>,
}

impl Checker {
    pub fn new(timeout: Duration, policy: NetworkPolicy) -> Checker {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            .dns_resolver(Arc::new(network::PolicyResolver(policy.clone())))
            // Credentials never follow a redirect to another host or scheme.
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                let first = &attempt.previous()[0];
                let same = attempt.url().host_str() == first.host_str()
                    && attempt.url().port_or_known_default() == first.port_or_known_default()
                    && attempt.url().scheme() == first.scheme();
                if same && attempt.previous().len() < 5 { attempt.follow() } else { attempt.stop() }
            }))
            .no_proxy()
            .connect_timeout(timeout)
            .user_agent(concat!("Plugboard/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client's settings are valid");
        Checker { client, policy, timeout, clock: None }
    }

    pub fn with_clock(mut self, at: SystemTime) -> Checker {
        self.clock = Some(at);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Checks a connection with its decrypted secrets.
    pub async fn check(
        &self,
        component: &Component,
        connection: &Connection,
        secrets: &BTreeMap<String, SecretString>,
    ) -> Outcome {
        let Some(method) = component.auth_method(&connection.auth_method) else {
            return Outcome::Missing(format!(
                "the authorization method `{}` is no longer in the catalog",
                connection.auth_method
            ));
        };
        let values = Values { parameters: &connection.parameters, secrets };
        let plan = match request::plan(component, method, &values) {
            Ok(plan) => plan,
            Err(outcome) => return outcome,
        };
        let secret_values: Vec<&str> = values.secret_values().collect();
        let work = self.execute(plan, &secret_values);
        match tokio::time::timeout(self.timeout, work).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome::Unreachable(format!("timed out after {} s", self.timeout.as_secs_f64())),
        }
    }

    /// A URL whose host is an IP address, judged by the policy.
    fn refuse_literal(&self, url: &url::Url) -> Option<Outcome> {
        let ip: std::net::IpAddr = match url.host()? {
            url::Host::Ipv4(v4) => v4.into(),
            url::Host::Ipv6(v6) => v6.into(),
            url::Host::Domain(_) => return None,
        };
        (!self.policy.allows(ip))
            .then(|| Outcome::Blocked(format!("{ip} is not an address checks may reach")))
    }

    async fn execute(&self, plan: Plan<'_>, secrets: &[&str]) -> Outcome {
        let target = match &plan {
            Plan::ClientCredentials { token_url, .. } => token_url,
            Plan::Test { url, .. } => url,
        };
        if let Some(refused) = self.refuse_literal(target) {
            return refused;
        }
        match plan {
            Plan::ClientCredentials { token_url, client_id, client_secret, scopes } => {
                let mut form = vec![("grant_type", "client_credentials".to_owned())];
                if !scopes.is_empty() {
                    form.push(("scope", scopes));
                }
                let request = self
                    .client
                    .post(token_url)
                    .basic_auth(client_id, Some(client_secret.expose_secret()))
                    .header(reqwest::header::ACCEPT, "application/json")
                    .form(&form);
                let (status, body) = match send(request).await {
                    Ok(answer) => answer,
                    Err(outcome) => return outcome,
                };
                token_outcome(status, &body, secrets)
            }
            Plan::Test { method, url, headers, body, signing, expect } => {
                let mut request = self.client.request(method.clone(), url.clone());
                for (name, value, secret) in &headers {
                    let Ok(mut value) = reqwest::header::HeaderValue::from_str(value) else {
                        return Outcome::Unexpected(format!(
                            "the value for header {name} is not valid in HTTP"
                        ));
                    };
                    value.set_sensitive(*secret);
                    request = request.header(name.as_str(), value);
                }
                match signing {
                    Signing::None => {}
                    Signing::Basic { username, password } => {
                        request = request.basic_auth(username, Some(password.expose_secret()));
                    }
                    Signing::AwsSigv4 { access_key_id, secret_access_key, region, service } => {
                        let at = self.clock.unwrap_or_else(SystemTime::now);
                        let signed = sigv4_headers(
                            method.as_str(),
                            url.as_str(),
                            &headers,
                            body.as_deref().unwrap_or_default().as_bytes(),
                            (&access_key_id, secret_access_key.expose_secret()),
                            &region,
                            &service,
                            at,
                        );
                        match signed {
                            Ok(signed) => {
                                for (name, value) in signed {
                                    request = request.header(name, value);
                                }
                            }
                            Err(message) => return Outcome::Unexpected(message),
                        }
                    }
                }
                if let Some(body) = body {
                    request = request.body(body);
                }
                let (status, body) = match send(request).await {
                    Ok(answer) => answer,
                    Err(outcome) => return outcome,
                };
                evaluate(status, &body, expect, secrets)
            }
        }
    }
}

/// Signs with AWS Signature Version 4 and returns the headers to add.
#[allow(clippy::too_many_arguments)]
pub fn sigv4_headers(
    method: &str,
    url: &str,
    headers: &[(String, String, bool)],
    body: &[u8],
    (access_key_id, secret_access_key): (&str, &str),
    region: &str,
    service: &str,
    at: SystemTime,
) -> Result<Vec<(String, String)>, String> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let identity =
        aws_credential_types::Credentials::new(access_key_id, secret_access_key, None, None, "plugboard")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(at)
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| "the AWS signing settings are incomplete".to_owned())?
        .into();
    let signable = SignableRequest::new(
        method,
        url,
        headers.iter().map(|(n, v, _)| (n.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|_| "the request could not be prepared for AWS signing".to_owned())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|_| "the request could not be signed for AWS".to_owned())?
        .into_parts();
    Ok(instructions.headers().map(|(n, v)| (n.to_owned(), v.to_owned())).collect())
}

/// Sends, then reads the body up to the limit.
async fn send(request: reqwest::RequestBuilder) -> Result<(u16, Vec<u8>), Outcome> {
    let response = request.send().await.map_err(|e| classify(&e))?;
    let status = response.status();
    if status.is_redirection() {
        let host = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| url::Url::parse(l).ok())
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "elsewhere".to_owned());
        return Err(Outcome::Unexpected(format!(
            "HTTP {} redirect to {host}; the credentials were not sent there",
            status.as_u16()
        )));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(&e))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Outcome::Unexpected(format!(
                "the answer is larger than {} KiB",
                MAX_BODY_BYTES / 1024
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status.as_u16(), body))
}

/// A failed request, in words. Only our own wording: the client's messages
/// carry the URL, which may hold a key.
fn classify(error: &reqwest::Error) -> Outcome {
    // The policy's refusal travels inside the client's "dns error"; look for
    // it first, wherever it is in the chain.
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(blocked) = cause.downcast_ref::<network::Blocked>() {
            return Outcome::Blocked(blocked.to_string());
        }
        source = cause.source();
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    return Outcome::Unreachable("connection refused".into());
                }
                std::io::ErrorKind::ConnectionReset => {
                    return Outcome::Unreachable("connection reset".into());
                }
                std::io::ErrorKind::TimedOut => return Outcome::Unreachable("connection timed out".into()),
                _ => {}
            }
        }
        let text = cause.to_string().to_lowercase();
        if text.contains("dns error") || text.contains("failed to lookup") || text.contains("name or service")
        {
            let host = error.url().and_then(|u| u.host_str()).unwrap_or("the host");
            return Outcome::Unreachable(format!("DNS lookup failed for {host}"));
        }
        if text.contains("certificate") || text.contains("tls") || text.contains("handshake") {
            return Outcome::Unreachable("TLS handshake failed (certificate or protocol)".into());
        }
        source = cause.source();
    }
    if error.is_timeout() {
        return Outcome::Unreachable("timed out".into());
    }
    if error.is_connect() {
        return Outcome::Unreachable("could not connect".into());
    }
    if error.is_body() || error.is_decode() {
        return Outcome::Unexpected("the answer was cut off".into());
    }
    Outcome::Unreachable("the request failed".into())
}

/// Judges a test request's answer by its catalog expectation.
fn evaluate(status: u16, body: &[u8], expect: &TestRequest, secrets: &[&str]) -> Outcome {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let error_pointer = expect.success_json.as_ref().and_then(|j| j.error_pointer.as_deref());
    let code = json.as_ref().and_then(|j| error_code(j, error_pointer, secrets));
    if matches!(status, 401 | 403) {
        return Outcome::Rejected { status: Some(status), code };
    }
    if !expect.success_status.contains(&status) {
        return match status {
            400 | 404 | 407 | 422 => Outcome::Rejected { status: Some(status), code },
            _ => Outcome::Unexpected(match code {
                Some(code) => format!("HTTP {status} ({code})"),
                None => format!("HTTP {status}"),
            }),
        };
    }
    if let Some(expectation) = &expect.success_json {
        let Some(json) = json else {
            return Outcome::Unexpected(format!("HTTP {status}, but the body is not JSON"));
        };
        match json.pointer(&expectation.pointer) {
            Some(value) if *value == expectation.equals => {}
            Some(value) => {
                return match code {
                    Some(code) => Outcome::Rejected { status: None, code: Some(code) },
                    None => {
                        let shown = value.to_string();
                        // The service may echo what it was sent; never repeat a secret.
                        let shown = if secrets.iter().any(|secret| shown.contains(secret)) {
                            "another value".to_owned()
                        } else {
                            short(&shown)
                        };
                        Outcome::Unexpected(format!(
                            "`{}` is {shown} instead of {}",
                            expectation.pointer.trim_start_matches('/'),
                            expectation.equals
                        ))
                    }
                };
            }
            None => {
                return Outcome::Unexpected(format!(
                    "the answer has no `{}` field",
                    expectation.pointer.trim_start_matches('/')
                ));
            }
        }
    }
    Outcome::Active(format!("credentials accepted (HTTP {status})"))
}

fn token_outcome(status: u16, body: &[u8], secrets: &[&str]) -> Outcome {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let code = json.as_ref().and_then(|j| error_code(j, None, secrets));
    match (status, &json) {
        (200, Some(j)) if j.get("access_token").is_some_and(|t| t.is_string()) => {
            Outcome::Active("token issued by the OAuth2 server".to_owned())
        }
        (200, Some(_)) => Outcome::Unexpected("HTTP 200, but no access_token in the answer".into()),
        (200, None) => Outcome::Unexpected("HTTP 200, but the body is not JSON".into()),
        (400 | 401 | 403, _) => Outcome::Rejected { status: Some(status), code },
        _ => Outcome::Unexpected(format!("HTTP {status} from the token endpoint")),
    }
}

/// The service's own error code, where it gives a short one. Never a secret.
fn error_code(json: &serde_json::Value, pointer: Option<&str>, secrets: &[&str]) -> Option<String> {
    let candidates =
        pointer.into_iter().chain(["/error", "/error/code", "/error/type", "/code", "/errors/0/code"]);
    for pointer in candidates {
        let Some(value) = json.pointer(pointer) else { continue };
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => continue,
        };
        let clean = text.len() <= 64
            && !text.is_empty()
            && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.: ".contains(c))
            && !secrets.iter().any(|s| text.contains(s));
        if clean {
            return Some(text);
        }
    }
    None
}

fn short(text: &str) -> String {
    if text.chars().count() > 40 {
        format!("{}…", text.chars().take(40).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The "get-vanilla" case of AWS's published SigV4 test suite.
    #[test]
    fn sigv4_matches_the_published_get_vanilla_vector() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160); // 2015-08-30T12:36:00Z
        let headers = sigv4_headers(
            "GET",
            "https://example.amazonaws.com/",
            &[],
            b"",
            ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            "us-east-1",
            "service",
            at,
        )
        .unwrap();
        let authorization =
            headers.iter().find(|(n, _)| n == "authorization").map(|(_, v)| v.as_str()).unwrap();
        assert_eq!(
            authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
             SignedHeaders=host;x-amz-date, \
             Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
        );
    }

    #[test]
    fn reasons_read_as_sentences() {
        assert_eq!(
            Outcome::Rejected { status: Some(401), code: Some("invalid_auth".into()) }.reason(),
            "rejected by the service: HTTP 401 (invalid_auth)"
        );
        assert_eq!(
            Outcome::Unreachable("timed out after 10 s".into()).reason(),
            "unreachable: timed out after 10 s"
        );
    }

    #[test]
    fn error_codes_never_carry_secrets() {
        let json = serde_json::json!({ "error": "bad key sk_live_abcdef" });
        assert_eq!(error_code(&json, None, &["sk_live_abcdef"]), None);
        let json = serde_json::json!({ "error": "invalid_auth" });
        assert_eq!(error_code(&json, None, &[]).as_deref(), Some("invalid_auth"));
    }
}
