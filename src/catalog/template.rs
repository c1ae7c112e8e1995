//! `{key}` placeholders in catalog strings (URLs, headers, bodies), filled
//! from a connection's values. One filler for the checks and the OAuth2
//! flows, so a template means the same thing everywhere.

use std::collections::BTreeMap;

use url::Url;

use super::Component;

/// How a value is placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placing {
    /// As it is: header values and request bodies.
    Verbatim,
    /// Percent-encoded, so a value inside a URL cannot change where the
    /// URL goes (`{shop}` of `evil.test/x?` stays one host label).
    InUrl,
}

/// Fills `template`; `Err` names the key of the first value `value` did
/// not give (absent or empty), for the caller to say by its label.
pub fn fill<'v>(
    template: &str,
    value: impl Fn(&str) -> Option<&'v str>,
    placing: Placing,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            out.push_str(&rest[start..]);
            return Ok(out);
        };
        let key = &rest[start + 1..start + end];
        let found = value(key).filter(|v| !v.is_empty()).ok_or_else(|| key.to_owned())?;
        match placing {
            Placing::Verbatim => out.push_str(found),
            Placing::InUrl => out.extend(url::form_urlencoded::byte_serialize(found.as_bytes())),
        }
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `key` when a template is exactly `{key}`: a URL or scope list given
/// whole by the person connecting (the generic OAuth2 component).
pub fn whole_setting(template: &str) -> Option<&str> {
    template.strip_prefix('{')?.strip_suffix('}').filter(|key| !key.contains(['{', '}']))
}

/// One of `component`'s OAuth endpoint templates (`what` names it in
/// messages), filled from the connection's settings. A template that is
/// one whole setting takes the typed URL as it is, held to the rules the
/// catalog's own endpoints follow: it receives the client secret.
pub fn url(
    template: &str,
    settings: &BTreeMap<String, String>,
    component: &Component,
    what: &str,
) -> Result<Url, String> {
    let not_set = |key: &str| format!("{} is not set", component.label_of(key));
    let filled = match whole_setting(template) {
        Some(key) => {
            let typed = settings.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
            let typed = typed.ok_or_else(|| not_set(key))?;
            super::load::endpoint_rules(typed).map_err(|rule| format!("the {what} {rule}"))?;
            typed.to_owned()
        }
        None => fill(template, |key| settings.get(key).map(String::as_str), Placing::InUrl)
            .map_err(|key| not_set(&key))?,
    };
    Url::parse(&filled).map_err(|_| format!("the {what} `{filled}` is not a valid URL"))
}

/// A method's scopes, where a scope `{key}` stands for those typed into
/// that setting (separated by spaces or commas).
pub fn scopes(scopes: &[String], settings: &BTreeMap<String, String>) -> Vec<String> {
    scopes
        .iter()
        .flat_map(|scope| match whole_setting(scope) {
            Some(key) => settings
                .get(key)
                .map(|typed| typed.split([' ', ',']).filter(|s| !s.is_empty()).map(str::to_owned).collect())
                .unwrap_or_default(),
            None => vec![scope.clone()],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(key: &str) -> Option<&'static str> {
        match key {
            "shop" => Some("acme"),
            "odd" => Some("evil.test/x?y"),
            "empty" => Some(""),
            _ => None,
        }
    }

    #[test]
    fn fills_placeholders_and_names_the_first_missing_key() {
        assert_eq!(
            fill("https://{shop}.example.com/a", values, Placing::InUrl).unwrap(),
            "https://acme.example.com/a"
        );
        assert_eq!(fill("{nope}/{shop}", values, Placing::Verbatim).unwrap_err(), "nope");
        assert_eq!(fill("{empty}", values, Placing::Verbatim).unwrap_err(), "empty");
        assert_eq!(fill("no { closing", values, Placing::Verbatim).unwrap(), "no { closing");
    }

    #[test]
    fn a_value_in_a_url_cannot_move_the_url() {
        assert_eq!(
            fill("https://{odd}.example.com", values, Placing::InUrl).unwrap(),
            "https://evil.test%2Fx%3Fy.example.com"
        );
        assert_eq!(fill("{odd}", values, Placing::Verbatim).unwrap(), "evil.test/x?y");
    }

    #[test]
    fn a_template_that_is_one_setting_is_given_whole() {
        assert_eq!(whole_setting("{token_url}"), Some("token_url"));
        assert_eq!(whole_setting("https://{shop}.example.com"), None);
        assert_eq!(whole_setting("{a}{b}"), None);
        let typed = BTreeMap::from([("scopes".to_owned(), "read, write  offline".to_owned())]);
        let scopes = |list: &[&str]| scopes(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>(), &typed);
        assert_eq!(scopes(&["{scopes}"]), ["read", "write", "offline"]);
        assert_eq!(scopes(&["openid", "{missing}"]), ["openid"]);
    }
}
