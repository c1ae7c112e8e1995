//! Reading catalog files: the built-in one, and an operator's file merged
//! over it entry by entry and field by field.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;

use super::model::{AuthKind, AuthMethod, ComponentDef, Field, FieldDef, OAuth2Flow, Pattern};
use super::template::whole_setting;
use super::{Catalog, Component};

/// The largest icon accepted, so a mistaken path cannot load a huge file.
const MAX_ICON_BYTES: usize = 64 * 1024;

/// Why a catalog could not be loaded: the file, the entry and the field, so
/// the operator can go straight to the line to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub file: String,
    pub component: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "catalog file {}", self.file)?;
        if let Some(c) = &self.component {
            write!(f, ", component `{c}`")?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for CatalogError {}

/// The built-in components, one file each, embedded in the binary.
#[derive(rust_embed::RustEmbed)]
#[folder = "src/catalog/components/"]
struct Builtin;

/// Where icon files are found.
pub trait IconSource {
    fn icon(&self, name: &str) -> Option<Vec<u8>>;
}

/// One catalog file's entries, with where they came from.
struct Source {
    file: String,
    /// An operator's icon paths are relative to their own file.
    base_dir: Option<PathBuf>,
    entries: toml::Table,
}

/// The built-in catalog merged with an operator's file or folder, if any.
pub fn load(operator_path: Option<&Path>, icons: &dyn IconSource) -> Result<Catalog, CatalogError> {
    let mut merged = toml::Table::new();
    // Which file each entry's fields came from, for error messages.
    let mut origin: std::collections::HashMap<String, String> = std::collections::HashMap::new();

    // Within one catalog (the built-in one, or the operator's) a key is
    // defined once: two files defining it would leave which one wins to
    // the order of file names.
    let mut add = |sources: Vec<Source>, merge: bool| -> Result<(), CatalogError> {
        let mut seen: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for source in sources {
            for (key, value) in source.entries {
                let toml::Value::Table(mut entry) = value else {
                    return Err(CatalogError {
                        file: source.file,
                        component: Some(key),
                        field: None,
                        message: "an entry must be a table such as [my_service]".into(),
                    });
                };
                if let Some(other) = seen.insert(key.clone(), source.file.clone()) {
                    return Err(CatalogError {
                        file: source.file,
                        component: Some(key),
                        field: None,
                        message: format!("is also defined in {other}; define each component once"),
                    });
                }
                if let (Some(dir), Some(toml::Value::String(icon))) = (&source.base_dir, entry.get("icon")) {
                    let resolved = dir.join(icon);
                    entry.insert("icon".into(), toml::Value::String(resolved.display().to_string()));
                }
                origin.insert(key.clone(), source.file.clone());
                match merged.get_mut(&key) {
                    Some(toml::Value::Table(existing)) if merge => deep_merge(existing, entry),
                    _ => {
                        merged.insert(key, toml::Value::Table(entry));
                    }
                }
            }
        }
        Ok(())
    };
    add(builtin_sources()?, false)?;
    if let Some(path) = operator_path {
        add(operator_sources(path)?, true)?;
    }

    let mut components = Vec::with_capacity(merged.len());
    for (key, value) in merged {
        let file = origin.get(&key).cloned().unwrap_or_default();
        let error = |field: Option<String>, message: String| CatalogError {
            file: file.clone(),
            component: Some(key.clone()),
            field,
            message,
        };
        let def: ComponentDef = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let field = (path != ".").then_some(path);
            error(field, e.into_inner().message().to_owned())
        })?;
        components.push(build(&key, def, icons).map_err(|(field, message)| error(field, message))?);
    }
    unique_names(&components)?;
    Ok(Catalog::new(components))
}

fn builtin_sources() -> Result<Vec<Source>, CatalogError> {
    let mut names: Vec<_> = Builtin::iter().filter(|name| name.ends_with(".toml")).collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let file = format!("(built-in components/{name})");
            let bytes = Builtin::get(&name).map(|f| f.data.into_owned()).unwrap_or_default();
            let text = String::from_utf8(bytes).map_err(|_| CatalogError {
                file: file.clone(),
                component: None,
                field: None,
                message: "is not UTF-8 text".into(),
            })?;
            Ok(Source { entries: parse_table(&text, &file)?, file, base_dir: None })
        })
        .collect()
}

/// `PLUGBOARD_CATALOG` is one file, or a folder whose `*.toml` files are
/// read in name order (other files, such as icons, are left alone).
fn operator_sources(path: &Path) -> Result<Vec<Source>, CatalogError> {
    let unreadable = |file: &Path, e: std::io::Error| CatalogError {
        file: file.display().to_string(),
        component: None,
        field: None,
        message: format!("cannot read it: {e}"),
    };
    let files = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| unreadable(path, e))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .map(|file| {
            let text = std::fs::read_to_string(file).map_err(|e| unreadable(file, e))?;
            let name = file.display().to_string();
            Ok(Source {
                entries: parse_table(&text, &name)?,
                file: name,
                base_dir: Some(file.parent().map(Path::to_path_buf).unwrap_or_default()),
            })
        })
        .collect()
}

/// A search for a name or alias must find one component: two sharing one
/// would make the picker's "Enter on a single match" guess.
fn unique_names(components: &[Component]) -> Result<(), CatalogError> {
    let mut seen: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for c in components {
        for name in std::iter::once(&c.name).chain(&c.aliases) {
            if let Some(other) = seen.insert(name.to_lowercase(), &c.key) {
                if other != c.key {
                    return Err(CatalogError {
                        file: "(the merged catalog)".into(),
                        component: Some(c.key.clone()),
                        field: None,
                        message: format!("the name or alias `{name}` is also used by `{other}`"),
                    });
                }
            }
        }
    }
    Ok(())
}

fn parse_table(text: &str, file: &str) -> Result<toml::Table, CatalogError> {
    text.parse::<toml::Table>().map_err(|e| CatalogError {
        file: file.to_owned(),
        component: None,
        field: None,
        message: e.to_string().trim().replace('\n', " "),
    })
}

/// Tables merge key by key; anything else (strings, lists) is replaced whole.
fn deep_merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => deep_merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

type BuildError = (Option<String>, String);

fn build(key: &str, def: ComponentDef, icons: &dyn IconSource) -> Result<Component, BuildError> {
    let at = |field: &str, message: String| (Some(field.to_owned()), message);
    if !is_slug(key) {
        return Err((None, "the entry's key must be 1 to 64 lowercase letters, digits, `_` or `-`".into()));
    }
    let name = non_empty(def.name).ok_or_else(|| at("name", "is required".into()))?;
    let base_url = non_empty(def.base_url).ok_or_else(|| at("base_url", "is required".into()))?;
    // A base URL that is wholly a setting (the generic HTTP component) is
    // checked when the connection is saved instead.
    if !base_url.starts_with('{') {
        check_url(&base_url).map_err(|m| at("base_url", m))?;
    }

    let settings = build_fields(&def.settings, "settings").map_err(|(f, m)| (Some(f), m))?;
    if let Some(secret) = settings.iter().find(|f| f.secret) {
        return Err(at(
            &format!("settings.{}", secret.key),
            "settings cannot be secret; put secrets in an auth method".into(),
        ));
    }
    let setting_keys: HashSet<&str> = settings.iter().map(|f| f.key.as_str()).collect();
    // A placeholder is a setting, or a value every method keeps from its
    // sign-in (Salesforce's `instance_url`): a method without it would
    // have no base URL.
    let kept: Vec<(&str, Vec<&str>)> = def
        .auth
        .iter()
        .map(|(key, m)| {
            (key.as_str(), m.kind.oauth2_flow().map(|f| f.kept_parameters().collect()).unwrap_or_default())
        })
        .collect();
    for placeholder in placeholders(&base_url).filter(|p| !setting_keys.contains(p)) {
        let lacking: Vec<&str> =
            kept.iter().filter(|(_, keys)| !keys.contains(&placeholder)).map(|(key, _)| *key).collect();
        if lacking.len() == kept.len() {
            return Err(at("base_url", format!("uses `{{{placeholder}}}` but no setting has that key")));
        }
        if !lacking.is_empty() {
            return Err(at(
                "base_url",
                format!(
                    "uses `{{{placeholder}}}`, which is not a setting, and method `{}` does not keep it from \
                     its sign-in (`token_fields` or `callback_params`), so it would have no base URL",
                    lacking.join("`, `")
                ),
            ));
        }
    }

    if def.auth.is_empty() {
        return Err(at("auth", "at least one authorization method is required".into()));
    }
    let mut auth_methods = Vec::with_capacity(def.auth.len());
    for (method_key, method) in def.auth {
        let path = format!("auth.{method_key}");
        if !is_slug(&method_key) {
            return Err(at(&path, "method keys must be lowercase letters, digits, `_` or `-`".into()));
        }
        check_kind(&method.kind).map_err(|(f, m)| at(&format!("{path}.{f}"), m))?;
        let field_defs = method.fields.unwrap_or_else(|| method.kind.default_fields());
        let fields = build_fields(&field_defs, &format!("{path}.fields")).map_err(|(f, m)| (Some(f), m))?;
        if let Some(clash) = fields.iter().find(|f| setting_keys.contains(f.key.as_str())) {
            return Err(at(
                &format!("{path}.fields"),
                format!("`{}` is already a setting of this component", clash.key),
            ));
        }
        needed_fields(&method.kind, &fields, &setting_keys).map_err(|m| at(&format!("{path}.fields"), m))?;
        if let Some(flow) = method.kind.oauth2_flow() {
            check_oauth2(&flow, &setting_keys, &fields).map_err(|(f, m)| at(&format!("{path}.{f}"), m))?;
        }
        if let AuthKind::Custom { headers, query } = &method.kind {
            let known: HashSet<&str> =
                fields.iter().map(|f| f.key.as_str()).chain(setting_keys.iter().copied()).collect();
            for template in headers.values().chain(query.values()) {
                if let Some(unknown) = placeholders(template).find(|p| !known.contains(p)) {
                    return Err(at(
                        &path,
                        format!("a template uses `{{{unknown}}}` but no field has that key"),
                    ));
                }
            }
            if fields.is_empty() {
                return Err(at(&format!("{path}.fields"), "a custom method must list its fields".into()));
            }
        }
        auth_methods.push(AuthMethod {
            label: non_empty(method.label).unwrap_or_else(|| method.kind.label().to_owned()),
            key: method_key,
            kind: method.kind,
            fields,
        });
    }

    if let Some(test) = &def.test {
        const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "PUT", "PATCH"];
        if !METHODS.contains(&test.method.as_str()) {
            return Err(at("test.method", format!("must be one of {}", METHODS.join(", "))));
        }
        if test.path.is_empty() {
            return Err(at("test.path", "is required".into()));
        }
        if test.success_status.is_empty() || test.success_status.iter().any(|s| !(100..=599).contains(s)) {
            return Err(at("test.success_status", "must list HTTP status codes between 100 and 599".into()));
        }
        if let Some(json) = &test.success_json {
            if !json.pointer.starts_with('/') {
                return Err(at("test.success_json.pointer", "must be a JSON pointer such as \"/ok\"".into()));
            }
        }
    }

    let cannot_check = non_empty(def.cannot_check);
    if cannot_check.is_some() && def.test.is_some() {
        return Err(at(
            "cannot_check",
            "a component has either a test request or a reason it has none".into(),
        ));
    }
    let mut aliases = Vec::with_capacity(def.aliases.len());
    for (i, alias) in def.aliases.into_iter().enumerate() {
        let alias = non_empty(Some(alias)).ok_or_else(|| at(&format!("aliases[{i}]"), "is empty".into()))?;
        aliases.push(alias);
    }

    let icon_svg = match non_empty(def.icon) {
        None => None,
        Some(name) => Some(load_icon(&name, icons).map_err(|m| at("icon", m))?),
    };

    let category = non_empty(def.category).unwrap_or_else(|| "Other".to_owned());
    // One line per name, so that a search never matches across two of them.
    let search_text = [name.as_str(), key, category.as_str()]
        .into_iter()
        .chain(aliases.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join("\n")
        .to_lowercase();
    Ok(Component {
        key: key.to_owned(),
        name,
        category,
        description: def.description.unwrap_or_default(),
        base_url,
        docs_url: non_empty(def.docs_url),
        aliases,
        search_text,
        icon_svg,
        settings,
        auth_methods,
        test: def.test,
        cannot_check,
    })
}

fn build_fields(defs: &[FieldDef], path: &str) -> Result<Vec<Field>, (String, String)> {
    let mut seen = HashSet::new();
    let mut fields = Vec::with_capacity(defs.len());
    for (i, def) in defs.iter().enumerate() {
        let at = format!("{path}[{i}]");
        if !is_slug(&def.key) {
            return Err((format!("{at}.key"), "must be lowercase letters, digits, `_` or `-`".into()));
        }
        if !seen.insert(def.key.as_str()) {
            return Err((format!("{at}.key"), format!("`{}` appears twice", def.key)));
        }
        let pattern = match &def.pattern {
            None => None,
            Some(source) => {
                // Anchored, as the HTML `pattern` attribute is.
                let regex = Regex::new(&format!("^(?:{source})$")).map_err(|e| {
                    (format!("{at}.pattern"), format!("is not a valid regular expression: {e}"))
                })?;
                Some(Pattern { source: source.clone(), regex })
            }
        };
        fields.push(Field {
            key: def.key.clone(),
            label: non_empty(def.label.clone()).unwrap_or_else(|| def.key.replace('_', " ")),
            help: def.help.clone().unwrap_or_default(),
            secret: def.secret,
            required: def.required,
            pattern,
            placeholder: def.placeholder.clone().unwrap_or_default(),
            default: def.default.clone().unwrap_or_default(),
        });
    }
    Ok(fields)
}

fn check_kind(kind: &AuthKind) -> Result<(), (String, String)> {
    match kind {
        AuthKind::ApiKey { header, query, .. } => match (header, query) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(("header".into(), "an API key goes in exactly one of `header` or `query`".into())),
        },
        // Checked with the fields and settings, in `check_oauth2`.
        AuthKind::Oauth2AuthorizationCode { .. } => Ok(()),
        AuthKind::Oauth2ClientCredentials { token_url, .. } => {
            check_url(token_url).map_err(|m| ("token_url".to_owned(), m))
        }
        AuthKind::AwsSigv4 { service } if service.trim().is_empty() => {
            Err(("service".into(), "is required, such as \"s3\" or \"sts\"".into()))
        }
        _ => Ok(()),
    }
}

/// The fields a check and a sign-in read by key, which an operator's
/// `fields` list may have left out. Only what cannot work is refused: an
/// optional value (a Basic password, an AWS region) may be missing.
fn needed_fields(kind: &AuthKind, fields: &[Field], settings: &HashSet<&str>) -> Result<(), String> {
    let (kind_name, needed): (&str, &[&str]) = match kind {
        // The key's field may have any name, but there must be one, and only
        // one, for a check to know which value is the key.
        AuthKind::ApiKey { .. } if fields.len() != 1 => {
            return Err(format!(
                "an api_key method needs exactly one field, the key (this one lists {})",
                fields.len()
            ));
        }
        AuthKind::Basic => ("basic", &["username"]),
        AuthKind::Bearer => ("bearer", &["token"]),
        AuthKind::AwsSigv4 { .. } => ("aws_sigv4", &["access_key_id", "secret_access_key"]),
        AuthKind::Oauth2ClientCredentials { .. } => {
            ("oauth2_client_credentials", &["client_id", "client_secret"])
        }
        // The secret may be absent for a public client using PKCE.
        AuthKind::Oauth2AuthorizationCode { .. } => ("oauth2_authorization_code", &["client_id"]),
        _ => return Ok(()),
    };
    let missing: Vec<String> = needed
        .iter()
        .filter(|key| !fields.iter().any(|f| f.key == **key) && !settings.contains(**key))
        .map(|key| format!("`{key}`"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let all = needed.iter().map(|key| format!("`{key}`")).collect::<Vec<_>>().join(" and ");
    Err(format!("a {kind_name} method needs a field for {all}; {} is missing", missing.join(" and ")))
}

/// Parameters the sign-in sets on the authorization request itself.
const RESERVED_AUTHORIZE_PARAMS: [&str; 7] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "code_challenge",
    "code_challenge_method",
];

/// Parameters of the redirect back that the sign-in reads itself (`code` is
/// a secret, and must never be kept as a plain parameter).
const RESERVED_CALLBACK_PARAMS: [&str; 6] =
    ["code", "state", "iss", "error", "error_description", "error_uri"];

/// Where the sign-in keeps the tokens and what it learns of them; a value
/// kept from the token response or the redirect may not take these keys.
const RESERVED_PARAMETER_KEYS: [&str; 7] =
    ["access_token", "refresh_token", "id_token", "token_type", "expires_in", "expires_at", "scope"];

/// Members of a token response that hold secrets.
const SECRET_MEMBERS: [&str; 3] = ["access_token", "refresh_token", "id_token"];

/// The checks of an `oauth2_authorization_code` method, each naming the key
/// it is about (relative to the method).
fn check_oauth2(
    flow: &OAuth2Flow,
    settings: &HashSet<&str>,
    fields: &[Field],
) -> Result<(), (String, String)> {
    check_endpoint(flow.authorization_url, settings).map_err(|m| ("authorization_url".to_owned(), m))?;
    if let Some((_, query)) = flow.authorization_url.split_once('?') {
        for name in query.split('&').filter_map(|pair| pair.split('=').next()).filter(|n| !n.is_empty()) {
            if RESERVED_AUTHORIZE_PARAMS.contains(&name.to_ascii_lowercase().as_str()) {
                return Err((
                    "authorization_url".to_owned(),
                    format!("its query sets `{name}`, which the sign-in sets itself"),
                ));
            }
            if flow.authorize_params.contains_key(name) {
                return Err((
                    format!("authorize_params.{name}"),
                    format!("`{name}` is already in the query of authorization_url"),
                ));
            }
        }
    }
    check_endpoint(flow.token_url, settings).map_err(|m| ("token_url".to_owned(), m))?;
    if let Some(url) = flow.revocation_url {
        check_endpoint(url, settings).map_err(|m| ("revocation_url".to_owned(), m))?;
    }
    if let Some(issuer) = flow.issuer {
        check_endpoint(issuer, settings).map_err(|m| ("issuer".to_owned(), m))?;
        if issuer.contains('?') {
            return Err((
                "issuer".to_owned(),
                format!("`{issuer}` must have no query: an issuer is a plain URL"),
            ));
        }
    }

    if !matches!(flow.scope_separator, " " | ",") {
        return Err(("scope_separator".to_owned(), "must be \" \" or \",\"".to_owned()));
    }
    check_scopes(flow.scopes, flow.scope_separator).map_err(|(i, m)| (format!("scopes[{i}]"), m))?;
    // A scope `{key}` is the setting's scopes, typed by the person
    // connecting (the generic OAuth2 component).
    for (i, scope) in flow.scopes.iter().enumerate() {
        if let Some(key) = whole_setting(scope).filter(|key| !settings.contains(key)) {
            return Err((format!("scopes[{i}]"), format!("uses `{{{key}}}` but no setting has that key")));
        }
    }
    check_scopes(flow.optional_scopes, flow.scope_separator)
        .map_err(|(i, m)| (format!("optional_scopes[{i}]"), m))?;
    if let Some((i, both)) = flow.optional_scopes.iter().enumerate().find(|(_, s)| flow.scopes.contains(s)) {
        return Err((
            format!("optional_scopes[{i}]"),
            format!(
                "`{both}` is also in `scopes`: a scope is either always requested or offered as a choice"
            ),
        ));
    }

    for (name, value) in flow.authorize_params {
        let field = format!("authorize_params.{name}");
        if !is_param_name(name) {
            return Err((field, format!("`{name}` is not a query parameter name")));
        }
        if RESERVED_AUTHORIZE_PARAMS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err((
                field,
                format!(
                    "`{name}` is set by the sign-in itself and cannot be given here (reserved: {})",
                    RESERVED_AUTHORIZE_PARAMS.join(", ")
                ),
            ));
        }
        if let Some(unknown) = placeholders(value).find(|p| !settings.contains(p)) {
            return Err((field, format!("uses `{{{unknown}}}` but no setting has that key")));
        }
    }

    check_pointer(flow.access_token_pointer).map_err(|m| ("access_token_pointer".to_owned(), m))?;

    // Kept values become parameters of the connection, beside its settings
    // and fields.
    let free = |key: &str| -> Result<(), String> {
        if settings.contains(key) {
            Err(format!("`{key}` is already a setting of this component"))
        } else if fields.iter().any(|f| f.key == key) {
            Err(format!("`{key}` is already a field of this method"))
        } else if RESERVED_PARAMETER_KEYS.contains(&key) {
            Err(format!("`{key}` is where the sign-in keeps its own values"))
        } else {
            Ok(())
        }
    };
    for (key, pointer) in flow.token_fields {
        let field = format!("token_fields.{key}");
        if !is_slug(key) {
            return Err((field, "a key must be lowercase letters, digits, `_` or `-`".into()));
        }
        free(key).map_err(|m| (field.clone(), m))?;
        check_pointer(pointer).map_err(|m| (field.clone(), m))?;
        if points_at_secret(pointer, flow.access_token_pointer) {
            return Err((
                field,
                format!("`{pointer}` holds a token, which is secret; token_fields keep plain values only"),
            ));
        }
    }
    let mut seen = HashSet::new();
    for (i, name) in flow.callback_params.iter().enumerate() {
        let field = format!("callback_params[{i}]");
        if !is_param_name(name) || name.contains(['{', '}']) {
            return Err((field, format!("`{name}` is not a query parameter name")));
        }
        if RESERVED_CALLBACK_PARAMS.contains(&name.as_str()) {
            return Err((field, format!("`{name}` is read by the sign-in itself and is never kept")));
        }
        if !seen.insert(name.as_str()) {
            return Err((field, format!("`{name}` appears twice")));
        }
        if flow.token_fields.contains_key(name) {
            return Err((field, format!("`{name}` is also a key of token_fields")));
        }
        free(name).map_err(|m| (field, m))?;
    }
    Ok(())
}

/// An OAuth endpoint receives the client secret, codes or tokens: https,
/// or plain http only to this machine (a local stand-in).
fn check_endpoint(url: &str, settings: &HashSet<&str>) -> Result<(), String> {
    // Wholly a setting (the generic OAuth2 component): the sign-in checks
    // the value it is given by the same rules (`template::url`).
    if let Some(key) = whole_setting(url) {
        return if settings.contains(key) {
            Ok(())
        } else {
            Err(format!("uses `{{{key}}}` but no setting has that key"))
        };
    }
    endpoint_rules(url)?;
    match placeholders(url).find(|p| !settings.contains(p)) {
        Some(unknown) => Err(format!("uses `{{{unknown}}}` but no setting has that key")),
        None => Ok(()),
    }
}

/// What an OAuth endpoint must look like, whether the catalog or the
/// person connecting gives it.
pub(super) fn endpoint_rules(url: &str) -> Result<(), String> {
    check_url(url)?;
    let (scheme, rest) = url.split_once("://").unwrap_or_default();
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(format!("`{url}` must not hold a user name or password"));
    }
    if url.contains('#') {
        return Err(format!("`{url}` must not have a fragment (`#...`)"));
    }
    if scheme == "http" {
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        if !matches!(host.to_ascii_lowercase().as_str(), "localhost" | "127.0.0.1" | "::1") {
            return Err(format!(
                "`{url}` must use https:// (http:// is accepted only for localhost and 127.0.0.1)"
            ));
        }
    }
    Ok(())
}

/// Scopes are sent joined by the separator, so none may be empty or hold
/// it (or a space, which would split it anyway). The error gives the index.
fn check_scopes(scopes: &[String], separator: &str) -> Result<(), (usize, String)> {
    let mut seen = HashSet::new();
    for (i, scope) in scopes.iter().enumerate() {
        if scope.is_empty() || scope.chars().any(char::is_whitespace) {
            return Err((
                i,
                format!("`{scope}` is not a scope: it is empty or has spaces; list each scope alone"),
            ));
        }
        if scope.contains(separator) {
            return Err((i, format!("`{scope}` holds the separator `{separator}`; list each scope alone")));
        }
        if !seen.insert(scope.as_str()) {
            return Err((i, format!("`{scope}` appears twice")));
        }
    }
    Ok(())
}

/// A JSON pointer (RFC 6901) into a response, not the whole of it.
fn check_pointer(pointer: &str) -> Result<(), String> {
    let escapes_ok = pointer.split('~').skip(1).all(|after| after.starts_with(['0', '1']));
    if pointer.len() < 2 || !pointer.starts_with('/') || !escapes_ok {
        return Err(format!(
            "`{pointer}` is not a JSON pointer such as \"/access_token\": it must start with `/`"
        ));
    }
    Ok(())
}

/// Whether a pointer reaches a token: a member named like one, the access
/// token itself, or an object holding it.
fn points_at_secret(pointer: &str, access_token_pointer: &str) -> bool {
    let last = pointer.rsplit('/').next().unwrap_or_default().replace("~1", "/").replace("~0", "~");
    SECRET_MEMBERS.contains(&last.as_str())
        || pointer == access_token_pointer
        || access_token_pointer.starts_with(&format!("{pointer}/"))
}

fn is_param_name(name: &str) -> bool {
    !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || "&=#?".contains(c))
}

fn load_icon(name: &str, icons: &dyn IconSource) -> Result<String, String> {
    let bytes = if Path::new(name).is_absolute() {
        std::fs::read(name).map_err(|e| format!("cannot read {name}: {e}"))?
    } else {
        icons.icon(name).ok_or_else(|| format!("no built-in icon named {name}"))?
    };
    if bytes.len() > MAX_ICON_BYTES {
        return Err(format!("{name} is larger than {} KiB", MAX_ICON_BYTES / 1024));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("{name} is not UTF-8 text"))?;
    if !text.contains("<svg") {
        return Err(format!("{name} is not an SVG image"));
    }
    Ok(text)
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("`{url}` must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') || url.chars().any(char::is_whitespace) {
        return Err(format!("`{url}` is not a valid URL"));
    }
    Ok(())
}

/// The names inside `{...}` in a template.
fn placeholders(template: &str) -> impl Iterator<Item = &str> {
    template.split('{').skip(1).filter_map(|part| part.split_once('}').map(|(name, _)| name))
}

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoIcons;
    impl IconSource for NoIcons {
        fn icon(&self, _: &str) -> Option<Vec<u8>> {
            Some(b"<svg/>".to_vec())
        }
    }

    fn with_operator(text: &str) -> Result<Catalog, CatalogError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("extra.toml");
        std::fs::write(&path, text).unwrap();
        load(Some(&path), &NoIcons)
    }

    #[test]
    fn builtin_catalog_loads_with_every_required_service() {
        let catalog = load(None, &NoIcons).expect("built-in catalog is valid");
        assert!(catalog.components().len() >= 30);
        for key in
            ["gmail", "google_drive", "slack", "github", "gitlab", "aws_s3", "stripe", "openai", "http"]
        {
            let c = catalog.get(key).unwrap_or_else(|| panic!("{key} missing"));
            assert!(!c.auth_methods.is_empty());
        }
    }

    #[test]
    fn operator_overrides_one_field_and_keeps_the_rest() {
        let catalog = with_operator("[gitlab]\nbase_url = \"https://git.example.com/api/v4\"\n").unwrap();
        let gitlab = catalog.get("gitlab").unwrap();
        assert_eq!(gitlab.base_url, "https://git.example.com/api/v4");
        assert_eq!(gitlab.name, "GitLab");
        assert!(!gitlab.auth_methods.is_empty());
    }

    #[test]
    fn operator_adds_a_component_with_default_fields() {
        let catalog = with_operator(
            "[acme]\nname = \"Acme\"\nbase_url = \"https://api.acme.test\"\n[acme.auth.key]\nkind = \"api_key\"\nheader = \"X-Key\"\n",
        )
        .unwrap();
        let acme = catalog.get("acme").unwrap();
        assert_eq!(acme.auth_methods[0].fields[0].key, "api_key");
        assert!(acme.auth_methods[0].fields[0].secret);
        assert_eq!(acme.initial(), 'A');
    }

    #[test]
    fn a_misspelt_key_beside_a_unit_kind_is_an_error() {
        let err = with_operator("[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\nlabell = \"Acme token\"\n").unwrap_err();
        assert!(err.to_string().contains("labell"), "{err}");
    }

    #[test]
    fn errors_name_file_entry_and_field() {
        let err = with_operator("[acme]\nname = \"Acme\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\nfields = [{ key = \"t\", pattern = \"(\" }]\n").unwrap_err();
        assert!(err.file.ends_with("extra.toml"), "{err}");
        assert_eq!(err.component.as_deref(), Some("acme"));
        assert_eq!(err.field.as_deref(), Some("auth.k.fields[0].pattern"), "{err}");

        let err = with_operator("[slack]\nbase_urll = \"https://x.test\"\n").unwrap_err();
        assert_eq!(err.component.as_deref(), Some("slack"));
        assert!(err.message.contains("base_urll"), "{err}");

        let err = with_operator("[acme]\nbase_url = \"https://a.test\"\n").unwrap_err();
        assert_eq!(err.field.as_deref(), Some("name"), "{err}");

        let err = with_operator(
            "[acme]\nname = \"A\"\nbase_url = \"https://{shop}.a.test\"\n[acme.auth.b]\nkind = \"bearer\"\n",
        )
        .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("base_url"), "{err}");

        let err = with_operator("[acme\nname = 1").unwrap_err();
        assert!(err.to_string().contains("extra.toml"), "{err}");
    }

    fn acme_with(method: &str) -> Result<Catalog, CatalogError> {
        with_operator(&format!(
            "[acme]\nname = \"Acme\"\nbase_url = \"https://api.acme.test\"\n[acme.test]\npath = \"/me\"\n[acme.auth.api_key]\n{method}\n"
        ))
    }

    #[test]
    fn an_api_key_method_without_its_one_field_is_refused() {
        let err = acme_with("kind = \"api_key\"\nheader = \"X-Key\"\nfields = []").unwrap_err();
        assert_eq!(err.component.as_deref(), Some("acme"));
        assert_eq!(err.field.as_deref(), Some("auth.api_key.fields"), "{err}");
        let text = err.to_string();
        assert!(text.starts_with("catalog file "), "{text}");
        assert!(text.contains("extra.toml, component `acme`, field `auth.api_key.fields`: an api_key method needs exactly one field, the key"), "{text}");

        let two = "kind = \"api_key\"\nheader = \"X-Key\"\nfields = [{ key = \"a\" }, { key = \"b\" }]";
        assert!(acme_with(two).unwrap_err().message.contains("exactly one field"));
        // The key's field may have any name.
        let named = "kind = \"api_key\"\nquery = \"token\"\nfields = [{ key = \"token\", secret = true }]";
        assert!(acme_with(named).is_ok());
    }

    #[test]
    fn methods_missing_a_field_they_read_are_refused_and_optional_ones_may_go() {
        let cases = [
            ("kind = \"basic\"\nfields = [{ key = \"password\", secret = true }]", "`username`"),
            ("kind = \"bearer\"\nfields = [{ key = \"api_token\", secret = true }]", "`token`"),
            (
                "kind = \"aws_sigv4\"\nservice = \"sts\"\nfields = [{ key = \"access_key_id\" }]",
                "`secret_access_key` is missing",
            ),
            (
                "kind = \"oauth2_client_credentials\"\ntoken_url = \"https://a.test/t\"\nfields = [{ key = \"client_secret\" }]",
                "`client_id` is missing",
            ),
        ];
        for (method, needle) in cases {
            let err = acme_with(method).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("auth.api_key.fields"), "{err}");
            assert!(err.message.contains(needle), "{needle}: {err}");
        }
        // A Basic method without a password, and AWS keys without a region,
        // still work: the password is empty, the region us-east-1.
        assert!(acme_with("kind = \"basic\"\nfields = [{ key = \"username\" }]").is_ok());
        assert!(
            acme_with("kind = \"aws_sigv4\"\nservice = \"sts\"\nfields = [{ key = \"access_key_id\" }, { key = \"secret_access_key\", secret = true }]")
                .is_ok()
        );
        // Default fields are always complete.
        for kind in [
            "kind = \"basic\"",
            "kind = \"bearer\"",
            "kind = \"api_key\"\nheader = \"X\"",
            "kind = \"aws_sigv4\"\nservice = \"s3\"",
        ] {
            assert!(acme_with(kind).is_ok(), "{kind}");
        }
    }

    #[test]
    fn oauth_endpoints_are_https_or_this_machine() {
        let settings: HashSet<&str> = ["shop"].into_iter().collect();
        for ok in [
            "https://auth.example.com/token",
            "https://{shop}.myshopify.com/admin/oauth/access_token",
            "http://localhost/cb",
            "http://LOCALHOST:8080/token",
            "http://127.0.0.1:9/token?x=1",
            "http://[::1]:9/token",
        ] {
            assert_eq!(check_endpoint(ok, &settings), Ok(()), "{ok}");
        }
        for (bad, needle) in [
            ("http://auth.example.com/token", "must use https://"),
            ("http://localhost.example.com/token", "must use https://"),
            ("http://127.0.0.1.example.com/token", "must use https://"),
            ("http://[::2]/token", "must use https://"),
            ("http://localhost@example.com/token", "user name"),
            ("https://a:b@example.com/token", "user name"),
            ("https://example.com/token#frag", "fragment"),
            ("https://{tenant}.example.com/token", "{tenant}"),
            ("{base}/token", "https://"),
            ("https://example.com/a b", "not a valid URL"),
        ] {
            let message = check_endpoint(bad, &settings).unwrap_err();
            assert!(message.contains(needle), "{bad}: {message}");
        }
    }

    #[test]
    fn pointers_and_the_secrets_they_may_reach() {
        for ok in ["/access_token", "/authed_user/access_token", "/a~0b", "/a~1b", "/team/0/id"] {
            assert_eq!(check_pointer(ok), Ok(()), "{ok}");
        }
        for bad in ["", "/", "access_token", "#/access_token", "/a~", "/a~2"] {
            assert!(check_pointer(bad).is_err(), "{bad}");
        }
        for secret in [
            "/refresh_token",
            "/authed_user/refresh_token",
            "/id_token",
            "/access_token",
            "/data/access~1token",
        ] {
            // The last one is a member literally named `access/token`: not a secret name.
            let expected = !secret.ends_with("access~1token");
            assert_eq!(points_at_secret(secret, "/access_token"), expected, "{secret}");
        }
        assert!(points_at_secret("/authed_user", "/authed_user/access_token"));
        assert!(points_at_secret("/data/token", "/data/token"));
        assert!(!points_at_secret("/authed_user_id", "/authed_user/access_token"));
        assert!(!points_at_secret("/instance_url", "/access_token"));
    }
}
