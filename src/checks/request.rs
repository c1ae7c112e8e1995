//! Turning a connection into the request that proves its credentials:
//! the catalog's test request, with the credential placed the way the
//! service expects it.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use super::Outcome;
use crate::catalog::template::{self, Placing};
use crate::catalog::{AuthKind, AuthMethod, Component, TestRequest};
use crate::oauth::{App, TokenEndpoint};

/// A connection's values: settings and plain fields, then secrets.
pub struct Values<'a> {
    pub parameters: &'a BTreeMap<String, String>,
    pub secrets: &'a BTreeMap<String, SecretString>,
}

impl Values<'_> {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.parameters
            .get(key)
            .map(String::as_str)
            .or_else(|| self.secrets.get(key).map(|s| s.expose_secret()))
            .filter(|v| !v.is_empty())
    }

    /// Every secret value, so that nothing the service says back can carry
    /// one into a status reason.
    pub fn secret_values(&self) -> impl Iterator<Item = &str> {
        self.secrets.values().map(|s| s.expose_secret()).filter(|s| s.len() >= 4)
    }
}

/// Where a credential goes, besides plain headers.
pub enum Signing {
    None,
    Basic { username: String, password: SecretString },
    AwsSigv4 { access_key_id: String, secret_access_key: SecretString, region: String, service: String },
}

/// What to send.
pub enum Plan<'a> {
    /// The catalog's test request.
    Test {
        method: reqwest::Method,
        url: Url,
        /// (name, value, is secret)
        headers: Vec<(String, String, bool)>,
        body: Option<String>,
        signing: Signing,
        expect: &'a TestRequest,
    },
    /// OAuth2 client credentials: a token issued proves the client.
    ClientCredentials { endpoint: TokenEndpoint, app: App },
}

/// Fills `{key}` placeholders. A missing value is reported by its field's
/// label, for a reason a person can act on.
fn fill(template: &str, values: &Values, label_of: &dyn Fn(&str) -> String) -> Result<String, Outcome> {
    template::fill(template, |key| values.get(key), Placing::Verbatim)
        .map_err(|key| Outcome::Missing(format!("{} is not set", label_of(&key))))
}

/// The `{key}` names a template refers to.
fn placeholders(template: &str) -> Vec<&str> {
    template.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(key, _)| key)).collect()
}

/// Only the form of the URL: which schemes and addresses may be reached is
/// the outbound client's rule, applied to every request it sends.
fn parse_url(text: &str) -> Result<Url, Outcome> {
    Url::parse(text).map_err(|_| Outcome::Unexpected(format!("`{}` is not a valid URL", redact_query(text))))
}

/// A URL fit for a message: no query string (it may hold a key).
fn redact_query(text: &str) -> &str {
    text.split('?').next().unwrap_or(text)
}

pub fn plan<'a>(
    component: &'a Component,
    method: &'a AuthMethod,
    values: &Values,
) -> Result<Plan<'a>, Outcome> {
    let label_of = |key: &str| -> String {
        component
            .settings
            .iter()
            .chain(&method.fields)
            .find(|f| f.key == key)
            .map_or_else(|| key.to_owned(), |f| f.label.clone())
    };
    // An OAuth2 sign-in's own fields are its client app (possibly the
    // operator's, then absent here): the check needs only the access token.
    let own_fields: &[crate::catalog::Field] =
        if matches!(method.kind, AuthKind::Oauth2AuthorizationCode { .. }) { &[] } else { &method.fields };
    for field in component.settings.iter().chain(own_fields).filter(|f| f.required) {
        if values.get(&field.key).is_none() {
            return Err(Outcome::Missing(format!("{} is not set", field.label)));
        }
    }
    let get = |key: &str| {
        values
            .get(key)
            .map(str::to_owned)
            .ok_or_else(|| Outcome::Missing(format!("{} is not set", label_of(key))))
    };

    // Where the credential goes, read first: a client-credentials method
    // is proven by its token endpoint and needs no test request.
    let credential = match &method.kind {
        AuthKind::Oauth2ClientCredentials { token_url, scopes, token_auth } => {
            let endpoint = TokenEndpoint::new(component, token_url, scopes, *token_auth, values.parameters)
                .map_err(Outcome::Missing)?;
            let app = App {
                client_id: get("client_id")?,
                client_secret: SecretString::from(get("client_secret")?),
            };
            return Ok(Plan::ClientCredentials { endpoint, app });
        }
        AuthKind::Oauth2AuthorizationCode { .. } => match values.get("access_token") {
            Some(token) => Credential::Header("Authorization".into(), format!("Bearer {token}")),
            None => {
                return Err(Outcome::Missing(
                    "no OAuth2 sign-in yet: the client is saved, but nobody has signed in to grant access"
                        .into(),
                ));
            }
        },
        AuthKind::ApiKey { header, prefix, query } => {
            // The loader gives an API key method exactly one field; a
            // catalog built some other way gets a reason, not a panic.
            let Some(field) = method.fields.first() else {
                return Err(Outcome::Unexpected(
                    "the catalog gives this API key method no field for the key".into(),
                ));
            };
            let key = get(&field.key)?;
            match (header, query) {
                (Some(header), _) => Credential::Header(
                    header.clone(),
                    format!("{}{key}", prefix.as_deref().unwrap_or_default()),
                ),
                (None, Some(param)) => Credential::Query(vec![(param.clone(), key)]),
                (None, None) => {
                    return Err(Outcome::Unexpected(
                        "the catalog does not say whether this API key goes in a header or the query".into(),
                    ));
                }
            }
        }
        AuthKind::Bearer => Credential::Header("Authorization".into(), format!("Bearer {}", get("token")?)),
        AuthKind::Basic => Credential::Signed(Signing::Basic {
            username: get("username")?,
            password: SecretString::from(values.get("password").unwrap_or_default().to_owned()),
        }),
        AuthKind::AwsSigv4 { service } => Credential::Signed(Signing::AwsSigv4 {
            access_key_id: get("access_key_id")?,
            secret_access_key: SecretString::from(get("secret_access_key")?),
            region: values.get("region").unwrap_or("us-east-1").to_owned(),
            service: service.clone(),
        }),
        AuthKind::Custom { headers: templates, query } => {
            let mut headers = Vec::with_capacity(templates.len());
            for (name, template) in templates {
                headers.push((name.clone(), fill(template, values, &label_of)?));
            }
            let mut pairs = Vec::with_capacity(query.len());
            for (name, template) in query {
                pairs.push((name.clone(), fill(template, values, &label_of)?));
            }
            Credential::Custom { headers, query: pairs }
        }
    };

    if let Some(why) = &component.cannot_check {
        return Err(Outcome::Uncheckable(why.clone()));
    }
    let test = component
        .test
        .as_ref()
        .ok_or_else(|| Outcome::Uncheckable("the catalog gives this component no test request".into()))?;
    let base = fill(&component.base_url, values, &label_of)?;
    // The test path may be the person's to give (the generic HTTP
    // component); left empty, no check can ever prove anything, and the
    // reason says so rather than looking like a fault that may pass.
    let path = fill(&test.path, values, &label_of).map_err(|outcome| match outcome {
        Outcome::Missing(_) => {
            let keys = placeholders(&test.path);
            let label = keys.first().map_or_else(|| "The test path".to_owned(), |k| label_of(k));
            Outcome::Missing(format!(
                "{label} is empty, so this connection cannot be checked; set it to a request that \
                 succeeds only with valid credentials"
            ))
        }
        other => other,
    })?;
    let target = if path.starts_with("http://") || path.starts_with("https://") {
        path
    } else {
        format!("{}/{}", base.trim_end_matches('/'), path.trim_start_matches('/'))
    };
    let mut url = parse_url(&target)?;
    let method_name = reqwest::Method::from_bytes(test.method.as_bytes())
        .map_err(|_| Outcome::Unexpected(format!("`{}` is not an HTTP method", test.method)))?;
    let mut headers: Vec<(String, String, bool)> = Vec::new();
    for (name, template) in &test.headers {
        headers.push((name.clone(), fill(template, values, &label_of)?, false));
    }
    let mut signing = Signing::None;
    match credential {
        Credential::Header(name, value) => headers.push((name, value, true)),
        Credential::Query(pairs) => {
            url.query_pairs_mut().extend_pairs(pairs);
        }
        Credential::Custom { headers: placed, query } => {
            headers.extend(placed.into_iter().map(|(name, value)| (name, value, true)));
            if !query.is_empty() {
                url.query_pairs_mut().extend_pairs(query);
            }
        }
        Credential::Signed(how) => signing = how,
    }
    let body = match &test.body {
        Some(template) => Some(fill(template, values, &label_of)?),
        None => None,
    };
    Ok(Plan::Test { method: method_name, url, headers, body, signing, expect: test })
}

/// Where a connection's credential goes in the test request.
enum Credential {
    /// (name, value): a secret header.
    Header(String, String),
    Query(Vec<(String, String)>),
    /// A custom method's templates, filled: secret headers and query pairs.
    Custom {
        headers: Vec<(String, String)>,
        query: Vec<(String, String)>,
    },
    Signed(Signing),
}
