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
    /// Other names people search for ("gcal", "ms teams").
    pub aliases: Vec<String>,
    /// Name, key, category and aliases, lowercased, one per line: what a
    /// search looks in, here and in the picker's script.
    pub search_text: String,
    /// SVG markup, or `None` for a letter mark drawn from the name.
    pub icon_svg: Option<String>,
    /// Non-secret values every authorization method of this component needs.
    pub settings: Vec<Field>,
    pub auth_methods: Vec<AuthMethod>,
    pub test: Option<TestRequest>,
    /// Why no request can prove a credential (the service has none that
    /// changes nothing); checks then say "cannot be checked: <why>".
    pub cannot_check: Option<String>,
}

impl Component {
    pub fn auth_method(&self, key: &str) -> Option<&AuthMethod> {
        self.auth_methods.iter().find(|m| m.key == key)
    }

    /// How a person knows the value `key`: its field's or setting's label,
    /// in any of the component's methods; the key itself otherwise.
    pub fn label_of<'a>(&'a self, key: &'a str) -> &'a str {
        self.settings
            .iter()
            .chain(self.auth_methods.iter().flat_map(|m| &m.fields))
            .find(|f| f.key == key)
            .map_or(key, |f| f.label.as_str())
    }

    /// Whether a lowercase search term is part of its name, key, category
    /// or an alias.
    pub fn matches(&self, needle: &str) -> bool {
        self.search_text.contains(needle)
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
// The OAuth2 variant is much larger than the others; a catalog holds a few
// hundred of these, read in place, so boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
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
    /// A user signs in at the service and grants access (RFC 6749 §4.1).
    /// Every provider quirk is a key here, so that a new provider is data,
    /// not code. [`AuthKind::oauth2_flow`] reads them with documentation.
    Oauth2AuthorizationCode {
        /// May name settings as `{setting}`, like the base URL.
        authorization_url: String,
        /// May name settings as `{setting}`.
        token_url: String,
        /// Always requested.
        #[serde(default)]
        scopes: Vec<String>,
        /// Offered to the user as choices; never also in `scopes`.
        #[serde(default)]
        optional_scopes: Vec<String>,
        /// Between scopes in the `scope` parameter: `" "` or `","`.
        #[serde(default = "default_scope_separator")]
        scope_separator: String,
        /// Extra query parameters on the authorization request.
        #[serde(default)]
        authorize_params: IndexMap<String, String>,
        /// How the client authenticates when it exchanges the code.
        #[serde(default)]
        token_auth: ClientAuth,
        /// How it authenticates when it refreshes; `None` means `token_auth`.
        #[serde(default)]
        refresh_auth: Option<ClientAuth>,
        /// Whether to send a PKCE challenge (RFC 7636).
        #[serde(default = "yes")]
        pkce: bool,
        /// Where the access token is in the token response.
        #[serde(default = "default_access_token_pointer")]
        access_token_pointer: String,
        /// Parameter key → JSON pointer of a non-secret value in the token
        /// response, kept with the connection.
        #[serde(default)]
        token_fields: IndexMap<String, String>,
        /// Query parameters of the redirect back, kept with the connection.
        #[serde(default)]
        callback_params: Vec<String>,
        /// The `iss` the redirect back must carry (RFC 9207).
        #[serde(default)]
        issuer: Option<String>,
        /// How long before expiry to refresh.
        #[serde(default)]
        refresh_margin_secs: Option<u64>,
        /// Where to revoke tokens (RFC 7009).
        #[serde(default)]
        revocation_url: Option<String>,
    },
    Oauth2ClientCredentials {
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        /// How the client proves itself to the token endpoint.
        #[serde(default)]
        token_auth: ClientAuth,
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

/// The keys a method of kind `oauth2_authorization_code` may have besides
/// `kind`, `label` and `fields`: every field of the variant.
pub(super) const OAUTH2_AUTHORIZATION_CODE_KEYS: &[&str] = &[
    "authorization_url",
    "token_url",
    "scopes",
    "optional_scopes",
    "scope_separator",
    "authorize_params",
    "token_auth",
    "refresh_auth",
    "pkce",
    "access_token_pointer",
    "token_fields",
    "callback_params",
    "issuer",
    "refresh_margin_secs",
    "revocation_url",
];

/// How an OAuth2 client proves who it is to the token endpoint
/// (RFC 6749 §2.3.1).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuth {
    /// `Authorization: Basic` with the client ID and secret, which every
    /// server is meant to accept.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body, for servers that
    /// accept only that (Microsoft, HubSpot, ...).
    Body,
}

/// Everything the OAuth2 sign-in, refresh and revocation code needs to know
/// about one provider, read from an `oauth2_authorization_code` method.
/// The loader has checked every value: URLs are https (or http to
/// localhost), pointers start with `/`, no reserved parameter is overridden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OAuth2Flow<'a> {
    /// Where the user is sent to sign in; may name settings as `{setting}`.
    pub authorization_url: &'a str,
    /// Where the code and refresh tokens are exchanged; may name settings.
    pub token_url: &'a str,
    /// Requested on every sign-in: what the component's test and API need.
    pub scopes: &'a [String],
    /// Offered as checkboxes, so the user grants no more than they choose.
    pub optional_scopes: &'a [String],
    /// Joins scopes in the `scope` parameter: Slack and Linear want `","`.
    pub scope_separator: &'a str,
    /// Added to the authorization request: Google's `access_type=offline`
    /// is what gets a refresh token at all. Never a reserved parameter.
    pub authorize_params: &'a IndexMap<String, String>,
    /// How the code exchange authenticates: some servers refuse Basic.
    pub token_auth: ClientAuth,
    refresh_auth: Option<ClientAuth>,
    /// Whether to send a PKCE challenge: it binds the code to this client,
    /// and servers that do not know it ignore it; `false` only where a
    /// server refuses it.
    pub pkce: bool,
    /// Where the access token is in the token response: Slack's user token
    /// is at `/authed_user/access_token`.
    pub access_token_pointer: &'a str,
    /// Parameter key → JSON pointer of a non-secret value in the token
    /// response kept with the connection (Salesforce's `instance_url`), so
    /// the base URL can name it. Only strings and numbers should be kept.
    pub token_fields: &'a IndexMap<String, String>,
    /// Query parameters of the redirect back kept with the connection, for
    /// services that say there which account was chosen (QuickBooks'
    /// `realmId`).
    pub callback_params: &'a [String],
    /// The `iss` the redirect back must carry (RFC 9207), against mix-up
    /// attacks; `None` where the provider sends none.
    pub issuer: Option<&'a str>,
    /// Refresh this long before expiry; `None` leaves it to the refresh
    /// code (the smaller of 5 minutes and half the token's lifetime).
    pub refresh_margin_secs: Option<u64>,
    /// Where to revoke tokens when a connection is deleted (RFC 7009);
    /// `None` where the provider has no such endpoint.
    pub revocation_url: Option<&'a str>,
}

impl<'a> OAuth2Flow<'a> {
    /// How a refresh authenticates: `refresh_auth`, or else `token_auth`.
    pub fn refresh_auth(&self) -> ClientAuth {
        self.refresh_auth.unwrap_or(self.token_auth)
    }

    /// The `scope` parameter: every scope in `scopes`, then those of
    /// `chosen` that are in `optional_scopes` (anything else is ignored, so
    /// a tampered form cannot ask for more), joined by the separator. Empty
    /// when there is none, in which case the parameter is left out.
    pub fn scope_param(&self, chosen: &[&str]) -> String {
        let optional = self.optional_scopes.iter().filter(|s| chosen.contains(&s.as_str()));
        self.scopes.iter().chain(optional).map(String::as_str).collect::<Vec<_>>().join(self.scope_separator)
    }

    /// The parameter keys a sign-in adds to the connection: `token_fields`
    /// keys, then `callback_params`.
    pub fn kept_parameters(&self) -> impl Iterator<Item = &'a str> + use<'a> {
        let (token_fields, callback_params) = (self.token_fields, self.callback_params);
        token_fields.keys().chain(callback_params).map(String::as_str)
    }
}

impl AuthMethod {
    /// The OAuth2 authorization-code settings, for a method of that kind.
    pub fn oauth2_flow(&self) -> Option<OAuth2Flow<'_>> {
        self.kind.oauth2_flow()
    }
}

impl AuthKind {
    /// The OAuth2 authorization-code settings, for a method of that kind.
    pub fn oauth2_flow(&self) -> Option<OAuth2Flow<'_>> {
        let AuthKind::Oauth2AuthorizationCode {
            authorization_url,
            token_url,
            scopes,
            optional_scopes,
            scope_separator,
            authorize_params,
            token_auth,
            refresh_auth,
            pkce,
            access_token_pointer,
            token_fields,
            callback_params,
            issuer,
            refresh_margin_secs,
            revocation_url,
        } = self
        else {
            return None;
        };
        Some(OAuth2Flow {
            authorization_url,
            token_url,
            scopes,
            optional_scopes,
            scope_separator,
            authorize_params,
            token_auth: *token_auth,
            refresh_auth: *refresh_auth,
            pkce: *pkce,
            access_token_pointer,
            token_fields,
            callback_params,
            issuer: issuer.as_deref(),
            refresh_margin_secs: *refresh_margin_secs,
            revocation_url: revocation_url.as_deref(),
        })
    }

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

fn default_scope_separator() -> String {
    " ".to_owned()
}

fn default_access_token_pointer() -> String {
    "/access_token".to_owned()
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
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default)]
    pub cannot_check: Option<String>,
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
            "oauth2_authorization_code" => OAUTH2_AUTHORIZATION_CODE_KEYS,
            "oauth2_client_credentials" => &["token_url", "scopes", "token_auth"],
            "aws_sigv4" => &["service"],
            "custom" => &["headers", "query"],
            _ => &[],
        };
        if let Some(unknown) = table.keys().find(|k| *k != "kind" && !allowed.contains(&k.as_str())) {
            return Err(D::Error::custom(format!(
                "unknown field `{unknown}` for an authorization method of kind `{kind_name}`"
            )));
        }
        // serde's message for a wrong variant would not say which key holds it.
        for key in ["token_auth", "refresh_auth"] {
            if let Some(value) = table.get(key) {
                if !matches!(value.as_str(), Some("basic" | "body")) {
                    return Err(D::Error::custom(format!("`{key}` must be \"basic\" or \"body\"")));
                }
            }
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
