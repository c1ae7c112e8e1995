//! The shape of a component definition, as written in a catalog file.
//!
//! Raw (`*Def`) types mirror the TOML; [`super::load`] checks them and turns
//! them into the validated types below, so that code using a [`Component`]
//! never meets a missing label or an uncompilable pattern.

use indexmap::IndexMap;
use regex::Regex;
use serde::Deserialize;

/// A third-party service that connections can be made to.
#[derive(Debug, Clone)]
pub struct Component {
    pub key: String,
    pub name: String,
    pub category: String,
    pub description: String,
    /// May contain `{setting}` placeholders filled from the connection's
    /// settings (a Shopify shop, a Zendesk subdomain).
    pub base_url: String,
    pub docs_url: Option<String>,
    /// SVG markup, or `None` for a letter mark drawn from the name.
    pub icon_svg: Option<String>,
    /// Non-secret values every authorization method of this component needs.
    pub settings: Vec<Field>,
    pub auth_methods: Vec<AuthMethod>,
    pub test: Option<TestRequest>,
}

impl Component {
    pub fn auth_method(&self, key: &str) -> Option<&AuthMethod> {
        self.auth_methods.iter().find(|m| m.key == key)
    }

    /// The letter shown when the component has no icon.
    pub fn initial(&self) -> char {
        self.name.chars().find(|c| c.is_alphanumeric()).map(|c| c.to_ascii_uppercase()).unwrap_or('?')
    }
}

#[derive(Debug, Clone)]
pub struct AuthMethod {
    pub key: String,
    pub label: String,
    pub kind: AuthKind,
    pub fields: Vec<Field>,
}

impl AuthMethod {
    pub fn field(&self, key: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.key == key)
    }
}

/// How a credential is presented to the service.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthKind {
    /// A key sent in a header (`header`, with an optional `prefix`) or in a
    /// query parameter (`query`).
    ApiKey {
        #[serde(default)]
        header: Option<String>,
        #[serde(default)]
        prefix: Option<String>,
        #[serde(default)]
        query: Option<String>,
    },
    Basic,
    Bearer,
    Oauth2AuthorizationCode {
        authorization_url: String,
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
    },
    Oauth2ClientCredentials {
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// AWS Signature Version 4 over the named service (`s3`, `sts`, ...).
    AwsSigv4 {
        service: String,
    },
    /// Fields placed by templates: `headers` and `query` values may name any
    /// field as `{field_key}`.
    Custom {
        #[serde(default)]
        headers: IndexMap<String, String>,
        #[serde(default)]
        query: IndexMap<String, String>,
    },
}

impl AuthKind {
    pub fn label(&self) -> &'static str {
        match self {
            AuthKind::ApiKey { .. } => "API key",
            AuthKind::Basic => "Basic auth",
            AuthKind::Bearer => "Bearer token",
            AuthKind::Oauth2AuthorizationCode { .. } => "OAuth2",
            AuthKind::Oauth2ClientCredentials { .. } => "OAuth2 client credentials",
            AuthKind::AwsSigv4 { .. } => "AWS access keys",
            AuthKind::Custom { .. } => "Custom",
        }
    }

    /// The fields a method of this kind needs when the catalog lists none.
    pub(super) fn default_fields(&self) -> Vec<FieldDef> {
        let f = |key: &str, label: &str, secret: bool| FieldDef {
            key: key.to_owned(),
            label: Some(label.to_owned()),
            secret,
            ..FieldDef::default()
        };
        match self {
            AuthKind::ApiKey { .. } => vec![f("api_key", "API key", true)],
            AuthKind::Basic => vec![f("username", "Username", false), f("password", "Password", true)],
            AuthKind::Bearer => vec![f("token", "Token", true)],
            AuthKind::Oauth2AuthorizationCode { .. } | AuthKind::Oauth2ClientCredentials { .. } => {
                vec![f("client_id", "Client ID", false), f("client_secret", "Client secret", true)]
            }
            AuthKind::AwsSigv4 { .. } => vec![
                f("access_key_id", "Access key ID", false),
                f("secret_access_key", "Secret access key", true),
                FieldDef { default: Some("us-east-1".to_owned()), ..f("region", "Region", false) },
            ],
            AuthKind::Custom { .. } => Vec::new(),
        }
    }
}

/// One value a user types into the connection form.
#[derive(Debug, Clone)]
pub struct Field {
    pub key: String,
    pub label: String,
    pub help: String,
    pub secret: bool,
    pub required: bool,
    pub pattern: Option<Pattern>,
    pub placeholder: String,
    pub default: String,
}

/// A compiled pattern plus the source text (for the HTML `pattern` attribute
/// and for messages).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub source: String,
    pub regex: Regex,
}

/// The request that proves a credential works.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    #[serde(default = "default_method")]
    pub method: String,
    /// Appended to the base URL; may be an absolute URL for services whose
    /// identity endpoint lives elsewhere.
    pub path: String,
    #[serde(default)]
    pub headers: IndexMap<String, String>,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default = "default_success_status")]
    pub success_status: Vec<u16>,
    /// For services that answer 200 to a failure: a JSON field that must hold
    /// a given value (Slack's `ok = true`).
    #[serde(default)]
    pub success_json: Option<JsonExpectation>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonExpectation {
    /// A JSON pointer, such as `/ok`.
    pub pointer: String,
    pub equals: serde_json::Value,
    /// Where the service puts its error code when the check fails (`/error`).
    #[serde(default)]
    pub error_pointer: Option<String>,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_success_status() -> Vec<u16> {
    vec![200]
}

// ---- raw definitions, as deserialised ----

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ComponentDef {
    pub name: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    pub base_url: Option<String>,
    #[serde(default)]
    pub docs_url: Option<String>,
    /// A file name: under static/icons for the built-in catalog, relative to
    /// the catalog file for an operator's.
    #[serde(default)]
    pub icon: Option<String>,
    #[serde(default)]
    pub settings: Vec<FieldDef>,
    #[serde(default)]
    pub auth: IndexMap<String, AuthMethodDef>,
    #[serde(default)]
    pub test: Option<TestRequest>,
}

#[derive(Debug, Clone)]
pub(super) struct AuthMethodDef {
    pub label: Option<String>,
    pub kind: AuthKind,
    pub fields: Option<Vec<FieldDef>>,
}

// Written by hand because serde cannot combine `flatten` with
// `deny_unknown_fields`, and a misspelt key in a catalog must be an error.
impl<'de> Deserialize<'de> for AuthMethodDef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut table = toml::Table::deserialize(deserializer)?;
        let label = match table.remove("label") {
            None => None,
            Some(toml::Value::String(s)) => Some(s),
            Some(_) => return Err(D::Error::custom("`label` must be a string")),
        };
        let fields = match table.remove("fields") {
            None => None,
            Some(v) => Some(
                Vec::<FieldDef>::deserialize(v)
                    .map_err(|e| D::Error::custom(format!("in `fields`: {}", e.message())))?,
            ),
        };
        let kind_name = table.get("kind").and_then(|k| k.as_str()).unwrap_or_default().to_owned();
        // serde ignores extra keys beside a unit variant such as `bearer`;
        // a misspelt key must not pass silently.
        let allowed: &[&str] = match kind_name.as_str() {
            "api_key" => &["header", "prefix", "query"],
            "oauth2_authorization_code" => &["authorization_url", "token_url", "scopes"],
            "oauth2_client_credentials" => &["token_url", "scopes"],
            "aws_sigv4" => &["service"],
            "custom" => &["headers", "query"],
            _ => &[],
        };
        if let Some(unknown) = table.keys().find(|k| *k != "kind" && !allowed.contains(&k.as_str())) {
            return Err(D::Error::custom(format!(
                "unknown field `{unknown}` for an authorization method of kind `{kind_name}`"
            )));
        }
        let kind =
            AuthKind::deserialize(toml::Value::Table(table)).map_err(|e| D::Error::custom(e.message()))?;
        Ok(AuthMethodDef { label, kind, fields })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FieldDef {
    pub key: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(default)]
    pub help: Option<String>,
    #[serde(default)]
    pub secret: bool,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default)]
    pub pattern: Option<String>,
    #[serde(default)]
    pub placeholder: Option<String>,
    #[serde(default)]
    pub default: Option<String>,
}

fn yes() -> bool {
    true
}

impl Default for FieldDef {
    fn default() -> Self {
        FieldDef {
            key: String::new(),
            label: None,
            help: None,
            secret: false,
            required: true,
            pattern: None,
            placeholder: None,
            default: None,
        }
    }
}
