//! What a user typed into a connection form, and the rules that turn it into
//! something that can be saved. Errors are keyed by the field they belong
//! to, so the form can show each one beside its input.

use std::collections::{BTreeMap, BTreeSet};

use secrecy::SecretString;

use crate::catalog::{Component, Field};
use crate::tags::TagName;

pub const MAX_NAME_CHARS: usize = 100;
pub const MAX_VALUE_CHARS: usize = 8192;
pub const MAX_TAGS: usize = 20;

/// The form as typed, kept verbatim so it can be shown again after an error.
/// (Serialized only into a sign-in draft, once its secrets are removed.)
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ConnectionInput {
    pub name: String,
    pub auth_method: String,
    /// Field key to typed value, for settings and the method's fields.
    pub values: BTreeMap<String, String>,
    /// Names of existing tags ticked, and new ones typed (comma-separated).
    pub tags: Vec<String>,
    pub new_tags: String,
    /// OAuth2: the optional scopes ticked.
    pub scopes: Vec<String>,
}

impl ConnectionInput {
    pub fn value(&self, key: &str) -> &str {
        self.values.get(key).map(String::as_str).unwrap_or_default()
    }

    /// Every tag name the form asks for, ticked or typed, without blanks.
    pub fn requested_tags(&self) -> impl Iterator<Item = &str> {
        self.tags
            .iter()
            .map(String::as_str)
            .chain(self.new_tags.split(','))
            .map(str::trim)
            .filter(|t| !t.is_empty())
    }
}

/// Messages by field key; `name`, `auth_method` and `tags` for the fixed
/// parts of the form, `form` for what belongs to no single field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(BTreeMap<String, String>);

impl FieldErrors {
    pub fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.entry(key.to_owned()).or_insert_with(|| message.into());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn single(key: &str, message: impl Into<String>) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.add(key, message);
        errors
    }
}

/// A connection that passed every rule, ready to store.
pub struct Draft {
    pub name: String,
    pub auth_method: String,
    /// Settings and non-secret fields.
    pub parameters: BTreeMap<String, String>,
    /// Secret values typed this time.
    pub secrets: BTreeMap<String, SecretString>,
    /// Secret fields left blank on edit whose stored value stays.
    pub kept_secrets: BTreeSet<String>,
    pub tags: Vec<TagName>,
    /// Who saves it, for "created by" and "changed by".
    pub author: Option<String>,
}

/// Checks `input` against the component's catalog entry. `stored_secrets`
/// names the secret fields already saved (on edit) under `stored_method`:
/// left blank, those keep their value.
pub fn validate(
    component: &Component,
    input: &ConnectionInput,
    stored_method: Option<&str>,
    stored_secrets: &BTreeSet<String>,
) -> Result<Draft, FieldErrors> {
    let mut errors = FieldErrors::default();

    let name = input.name.trim();
    let name_chars = name.chars().count();
    if name.is_empty() {
        errors.add("name", "Give the connection a name, such as \u{201c}Marketing Slack\u{201d}.");
    } else if name_chars > MAX_NAME_CHARS {
        errors.add("name", format!("Use at most {MAX_NAME_CHARS} characters; this name has {name_chars}."));
    } else if name.chars().any(char::is_control) {
        errors.add("name", "The name cannot contain line breaks or control characters.");
    }

    let method = component.auth_method(&input.auth_method);
    if method.is_none() {
        let choices: Vec<&str> = component.auth_methods.iter().map(|m| m.label.as_str()).collect();
        errors.add("auth_method", format!("Choose how to authorize: {}.", choices.join(", ")));
    }
    let same_method = stored_method.is_some() && stored_method == method.map(|m| m.key.as_str());

    let mut parameters = BTreeMap::new();
    let mut secrets = BTreeMap::new();
    let mut kept_secrets = BTreeSet::new();
    let fields = component.settings.iter().chain(method.iter().flat_map(|m| m.fields.iter()));
    for field in fields {
        let value = input.value(&field.key).trim();
        if value.is_empty() && field.secret && same_method && stored_secrets.contains(&field.key) {
            kept_secrets.insert(field.key.clone());
            continue;
        }
        if let Err(message) = check_value(field, value) {
            errors.add(&field.key, message);
            continue;
        }
        if value.is_empty() {
            continue;
        }
        if field.secret {
            secrets.insert(field.key.clone(), SecretString::from(value.to_owned()));
        } else {
            parameters.insert(field.key.clone(), value.to_owned());
        }
    }

    let mut tags: Vec<TagName> = Vec::new();
    for raw in input.requested_tags() {
        match TagName::parse(raw) {
            Ok(tag) => {
                if !tags.iter().any(|t| t.key() == tag.key()) {
                    tags.push(tag);
                }
            }
            Err(message) => errors.add("tags", message),
        }
    }
    if tags.len() > MAX_TAGS {
        errors
            .add("tags", format!("A connection can have at most {MAX_TAGS} tags; this has {}.", tags.len()));
    }

    match method {
        Some(method) if errors.is_empty() => Ok(Draft {
            name: name.to_owned(),
            auth_method: method.key.clone(),
            parameters,
            secrets,
            kept_secrets,
            tags,
            author: None,
        }),
        _ => Err(errors),
    }
}

/// One value against its field's rules. Messages never repeat the value, as
/// it may be a secret.
fn check_value(field: &Field, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return if field.required { Err(format!("{} is required.", field.label)) } else { Ok(()) };
    }
    let chars = value.chars().count();
    if chars > MAX_VALUE_CHARS {
        return Err(format!(
            "{} can be at most {MAX_VALUE_CHARS} characters; this has {chars}.",
            field.label
        ));
    }
    if value.contains('\0') {
        return Err(format!("{} contains a NUL character.", field.label));
    }
    if let Some(pattern) = &field.pattern {
        if !pattern.regex.is_match(value) {
            // An example, never the regular expression: few people read those.
            let example = [&field.placeholder, &field.default].into_iter().find(|e| !e.is_empty());
            return Err(match example {
                Some(example) => format!(
                    "{} does not have the expected format: expected something like {example}.",
                    field.label
                ),
                None => format!(
                    "{} does not have the expected format. Copy it again from the service, whole, \
                     with nothing added or cut off.",
                    field.label
                ),
            });
        }
    }
    Ok(())
}
