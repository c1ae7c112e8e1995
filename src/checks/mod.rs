//! Checks: proving that a connection's credentials work by making the
//! request its catalog entry describes, and saying why when they do not.
//!
//! ACTIVE only when the service accepted the credentials just now. Every
//! other result is NOT ACTIVE with a reason a person can act on: rejected by
//! the service, unreachable, an unexpected answer, something missing, or an
//! address checks may not reach.

mod request;
pub mod schedule;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use secrecy::{ExposeSecret, SecretString};

use crate::catalog::{Component, TestRequest};
use crate::connections::Status;
pub use crate::outbound::NetworkPolicy;
use crate::outbound::{Answer, Outbound, OutboundError, Request};
use request::{Plan, Signing, Values};

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Active(String),
    Rejected {
        status: Option<u16>,
        code: Option<String>,
    },
    Unreachable(String),
    Unexpected(String),
    Missing(String),
    Blocked(String),
    /// The service has no request that proves a credential without
    /// changing something; the connection says so rather than pretend.
    Uncheckable(String),
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
            Outcome::Uncheckable(m) => format!("cannot be checked: {m}"),
        }
    }

    /// A token request that gave no token, as a check result: the
    /// provider's refusal with its code, or why there was no answer.
    pub fn from_token_error(error: &crate::oauth::TokenError, secrets: &[&str]) -> Outcome {
        match (error.refusal(), error) {
            (Some((status, code)), _) => Outcome::Rejected { status, code: Some(code) },
            (None, crate::oauth::TokenError::Unreachable(e)) => Outcome::from_outbound(e, secrets),
            (None, crate::oauth::TokenError::Unreadable { status, json }) => {
                let status = status.map_or_else(|| "an answer".to_owned(), |s| format!("HTTP {s}"));
                Outcome::Unexpected(if *json {
                    format!("{status}, but no access_token in the answer")
                } else {
                    format!("{status}, but the body is not JSON")
                })
            }
            (None, _) => Outcome::Unexpected("the token endpoint's answer could not be read".into()),
        }
    }

    /// A request that got no usable answer, as a check result.
    fn from_outbound(error: &OutboundError, secrets: &[&str]) -> Outcome {
        let words = error.to_string();
        // The client names no more than a host; should a secret have been
        // made part of one, it still goes no further.
        let words =
            if secrets.iter().any(|s| words.contains(s)) { "the request failed".to_owned() } else { words };
        match error {
            OutboundError::Blocked { .. } => Outcome::Blocked(words),
            OutboundError::Scheme { scheme } => {
                Outcome::Blocked(format!("only http and https URLs can be checked, not `{scheme}`"))
            }
            OutboundError::Redirected { .. }
            | OutboundError::TooLarge
            | OutboundError::CutOff
            | OutboundError::BadHeader { .. } => Outcome::Unexpected(words),
            OutboundError::Refused
            | OutboundError::Reset
            | OutboundError::TimedOut { .. }
            | OutboundError::Dns { .. }
            | OutboundError::Tls
            | OutboundError::Unconnected
            | OutboundError::Other => Outcome::Unreachable(words),
        }
    }
}

/// Makes checks. One per process; its HTTP client is shared.
pub struct Checker {
    outbound: Outbound,
    /// Fixed signing time, for comparing with published AWS test vectors.
    clock: Option<SystemTime>,
}

impl Checker {
    /// `timeout` limits each check's whole exchange with the service.
    pub fn new(timeout: Duration, policy: NetworkPolicy) -> Checker {
        Checker { outbound: Outbound::new(policy, timeout), clock: None }
    }

    pub fn with_clock(mut self, at: SystemTime) -> Checker {
        self.clock = Some(at);
        self
    }

    pub fn timeout(&self) -> Duration {
        self.outbound.limit()
    }

    /// The process's outbound client, for other requests to services (the
    /// OAuth2 token endpoints) under the same rules.
    pub fn outbound(&self) -> &Outbound {
        &self.outbound
    }

    /// Checks credentials of `component` given by `auth_method`: its
    /// settings and fields (`parameters`), and the secrets in plain text
    /// (a stored connection's, decrypted, or a new one's, as typed).
    pub async fn check(
        &self,
        component: &Component,
        auth_method: &str,
        parameters: &BTreeMap<String, String>,
        secrets: &BTreeMap<String, SecretString>,
    ) -> Proof {
        let Some(method) = component.auth_method(auth_method) else {
            return Proof::of(Outcome::Missing(format!(
                "the authorization method `{auth_method}` is no longer in the catalog"
            )));
        };
        let values = Values { parameters, secrets };
        let plan = match request::plan(component, method, &values) {
            Ok(plan) => plan,
            Err(outcome) => return Proof::of(outcome),
        };
        let secret_values: Vec<&str> = values.secret_values().collect();
        let (method, url, headers, body, signing, expect) = match plan {
            Plan::ClientCredentials { endpoint, app } => {
                return match crate::oauth::client_credentials(&self.outbound, &endpoint, &app).await {
                    Ok(grant) => Proof {
                        outcome: Outcome::Active("token issued by the OAuth2 server".to_owned()),
                        issued: Some(grant),
                    },
                    Err(error) => Proof::of(Outcome::from_token_error(&error, &secret_values)),
                };
            }
            Plan::Test { method, url, headers, body, signing, expect } => {
                (method, url, headers, body, signing, expect)
            }
        };
        let request = match self.prepare(method, url, &headers, body, &signing) {
            Ok(request) => request,
            Err(outcome) => return Proof::of(outcome),
        };
        Proof::of(match self.outbound.send(request).await {
            Ok(answer) => evaluate(&answer, expect, &secret_values),
            Err(error) => Outcome::from_outbound(&error, &secret_values),
        })
    }

    /// The test request, its credential placed or signed.
    fn prepare(
        &self,
        method: reqwest::Method,
        url: url::Url,
        headers: &[(String, String, bool)],
        body: Option<String>,
        signing: &Signing,
    ) -> Result<Request, Outcome> {
        let mut request = Request::new(method, url);
        for (name, value, secret) in headers {
            request = request.header_marked(name, value, *secret);
        }
        match signing {
            Signing::None => {}
            Signing::Basic { username, password } => request = request.basic_auth(username, password),
            Signing::AwsSigv4 { access_key_id, secret_access_key, region, service } => {
                let signed = sigv4_headers(
                    request.method().as_str(),
                    request.url().as_str(),
                    headers,
                    body.as_deref().unwrap_or_default().as_bytes(),
                    (access_key_id, secret_access_key.expose_secret()),
                    region,
                    service,
                    self.clock.unwrap_or_else(SystemTime::now),
                )
                .map_err(Outcome::Unexpected)?;
                for (name, value) in &signed {
                    request = request.header(name, value);
                }
            }
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        Ok(request)
    }
}

/// What a check found, and the access token it was issued on the way (a
/// client-credentials check), to be stored like any OAuth2 token.
pub struct Proof {
    pub outcome: Outcome,
    pub issued: Option<crate::oauth::Grant>,
}

impl Proof {
    fn of(outcome: Outcome) -> Proof {
        Proof { outcome, issued: None }
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

/// Judges a test request's answer by its catalog expectation.
fn evaluate(answer: &Answer, expect: &TestRequest, secrets: &[&str]) -> Outcome {
    let status = answer.status.as_u16();
    let json: Option<serde_json::Value> = serde_json::from_slice(&answer.body).ok();
    let error_pointer = expect.success_json.as_ref().and_then(|j| j.error_pointer.as_deref());
    let code = json
        .as_ref()
        .and_then(|j| error_code(j, error_pointer, secrets))
        .or_else(|| xml_error_code(&answer.body, secrets));
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

/// AWS answers errors in XML (`<Error><Code>SignatureDoesNotMatch</Code>`);
/// its code says which part of the credentials is wrong.
fn xml_error_code(body: &[u8], secrets: &[&str]) -> Option<String> {
    let text = String::from_utf8_lossy(&body[..body.len().min(4096)]);
    let start = text.find("<Code>")? + "<Code>".len();
    let end = start + text[start..].find("</Code>")?;
    Some(text[start..end].trim().to_owned()).filter(|code| is_clean_code(code, secrets))
}

/// Short, plain, and not one of the secrets: fit to be shown as a code.
fn is_clean_code(text: &str, secrets: &[&str]) -> bool {
    text.len() <= 64
        && !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || "_-.: ".contains(c))
        && !secrets.iter().any(|s| text.contains(s))
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
        if is_clean_code(&text, secrets) {
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
