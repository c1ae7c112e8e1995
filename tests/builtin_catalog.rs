//! Every built-in component, checked against the catalog's rules: it
//! loads, its URLs are https, its OAuth2 methods are complete, its test
//! request only reads, its icon is a real SVG, and nothing is named twice.

use std::collections::HashMap;
use std::path::Path;

use plugboard::catalog::{AuthKind, Catalog, Component};
use plugboard::web::assets::BuiltinIcons;

/// The categories the picker groups by (the list in components/README.md).
const CATEGORIES: [&str; 23] = [
    "Accounting",
    "AI",
    "Analytics",
    "Cloud",
    "Commerce",
    "Communication",
    "CRM",
    "Databases",
    "Developer tools",
    "E-signature",
    "Email",
    "Forms",
    "Generic",
    "HR",
    "Marketing",
    "Monitoring",
    "Payments",
    "Productivity",
    "Project management",
    "Scheduling",
    "Social",
    "Storage",
    "Support",
];

/// Test requests that are POSTs, each documented by its service as
/// read-only: an RPC that only reads, a GraphQL query, a SELECT.
const READ_ONLY_POSTS: [(&str, &str); 12] = [
    ("aws_dynamodb", "/"),
    ("cohere", "/v1/check-api-key"),
    ("dropbox", "/users/get_current_account"),
    ("fly_io", "/graphql"),
    ("linear", "/graphql"),
    ("mandrill", "/users/ping"),
    ("monday", "/v2"),
    ("new_relic", "/graphql"),
    ("pushover", "/users/validate.json"),
    ("railway", "/graphql/v2"),
    ("slack", "/auth.test"),
    ("snowflake", "/statements"),
];

fn catalog() -> Catalog {
    Catalog::load(None, &BuiltinIcons).expect("the built-in catalog loads")
}

fn components_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog/components")
}

#[test]
fn there_are_at_least_150_components_one_file_each_named_after_its_key() {
    let catalog = catalog();
    assert!(catalog.components().len() >= 150, "{} components", catalog.components().len());
    let mut files = 0;
    for entry in std::fs::read_dir(components_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        files += 1;
        let table: toml::Table = std::fs::read_to_string(&path).unwrap().parse().unwrap();
        let stem = path.file_stem().unwrap().to_str().unwrap();
        let keys: Vec<&String> = table.keys().collect();
        assert_eq!(keys, [stem], "{} must hold [{stem}] alone", path.display());
        assert!(catalog.get(stem).is_some(), "{stem}");
    }
    assert_eq!(files, catalog.components().len());
}

fn is_generic(c: &Component) -> bool {
    c.category == "Generic"
}

#[test]
fn every_url_is_https_except_the_generic_components() {
    for c in catalog().components().iter().filter(|c| !is_generic(c)) {
        let mut urls = vec![("base_url", c.base_url.as_str())];
        urls.extend(c.docs_url.as_deref().map(|u| ("docs_url", u)));
        if let Some(test) = &c.test {
            if test.path.contains("://") {
                urls.push(("test.path", &test.path));
            }
        }
        for method in &c.auth_methods {
            match &method.kind {
                AuthKind::Oauth2ClientCredentials { token_url, .. } => urls.push(("token_url", token_url)),
                kind => {
                    if let Some(flow) = kind.oauth2_flow() {
                        urls.extend([
                            ("authorization_url", flow.authorization_url),
                            ("token_url", flow.token_url),
                        ]);
                        urls.extend(flow.revocation_url.map(|u| ("revocation_url", u)));
                    }
                }
            }
        }
        for (what, url) in urls {
            assert!(url.starts_with("https://") && url.len() > "https://".len(), "{}: {what} `{url}`", c.key);
        }
    }
}

#[test]
fn every_oauth2_method_has_both_endpoints_and_a_scope_or_says_why_not() {
    let mut seen = 0;
    for c in catalog().components() {
        for method in &c.auth_methods {
            let Some(flow) = method.oauth2_flow() else { continue };
            seen += 1;
            assert!(!flow.authorization_url.is_empty() && !flow.token_url.is_empty(), "{}", c.key);
            if flow.scopes.is_empty() && flow.optional_scopes.is_empty() {
                // tests/catalog.rs holds the list, each with its comment.
                let source =
                    std::fs::read_to_string(components_dir().join(format!("{}.toml", c.key))).unwrap();
                assert!(
                    source.contains("scopes = []"),
                    "{}.auth.{}: no scope and no reason",
                    c.key,
                    method.key
                );
            }
        }
    }
    assert!(seen >= 70, "{seen}");
}

#[test]
fn every_component_can_be_checked_by_a_read_or_says_why_not() {
    let posts: HashMap<&str, &str> = READ_ONLY_POSTS.into_iter().collect();
    let mut found_posts = Vec::new();
    for c in catalog().components() {
        match (&c.test, &c.cannot_check) {
            (Some(test), None) => match test.method.as_str() {
                "GET" => {}
                "POST" => {
                    assert_eq!(
                        posts.get(c.key.as_str()),
                        Some(&test.path.as_str()),
                        "{}: POST {}",
                        c.key,
                        test.path
                    );
                    found_posts.push(c.key.as_str());
                }
                other => panic!("{}: a test request must read, not {other}", c.key),
            },
            (None, Some(why)) => assert!(why.len() > 20, "{}: say why it cannot be checked", c.key),
            _ => panic!("{}: needs a [test] request or a cannot_check reason, not both", c.key),
        }
        assert!(CATEGORIES.contains(&c.category.as_str()), "{}: category {}", c.key, c.category);
        assert!(!c.description.is_empty(), "{}: description", c.key);
        if !is_generic(c) {
            assert!(c.docs_url.is_some(), "{}: docs_url", c.key);
        }
    }
    found_posts.sort_unstable();
    let expected: Vec<&str> = READ_ONLY_POSTS.iter().map(|(k, _)| *k).collect();
    assert_eq!(found_posts, expected);
}

#[test]
fn every_icon_file_exists_and_is_a_valid_svg() {
    let catalog = catalog();
    let mut icons = 0;
    for c in catalog.components() {
        let source = std::fs::read_to_string(components_dir().join(format!("{}.toml", c.key))).unwrap();
        let table: toml::Table = source.parse().unwrap();
        let Some(name) = table[&c.key].get("icon").and_then(|v| v.as_str()) else {
            assert!(c.icon_svg.is_none(), "{}", c.key);
            continue;
        };
        icons += 1;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("static/icons").join(name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {}: {e}", c.key, path.display()));
        let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{name}: not XML: {e}"));
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg", "{name}");
        assert_eq!(root.tag_name().namespace(), Some("http://www.w3.org/2000/svg"), "{name}");
        assert!(root.attribute("viewBox").is_some(), "{name}: viewBox");
        assert!(!text.contains("<script"), "{name}");
        assert_eq!(c.icon_svg.as_deref(), Some(text.as_str()), "{}: the embedded icon is the file", c.key);
    }
    assert!(icons >= 100, "{icons} components have a brand icon");
}

#[test]
fn no_two_components_share_a_key_a_name_or_an_alias() {
    let catalog = catalog();
    let mut names: HashMap<String, &str> = HashMap::new();
    for c in catalog.components() {
        for name in std::iter::once(&c.name).chain(&c.aliases).chain(std::iter::once(&c.key)) {
            let earlier = names.insert(name.to_lowercase(), &c.key);
            assert!(
                earlier.is_none_or(|k| k == c.key),
                "`{name}` is used by {} and {}",
                earlier.unwrap(),
                c.key
            );
        }
    }
}

#[test]
fn aliases_find_their_components() {
    let catalog = catalog();
    for (query, key) in [
        ("gcal", "google_calendar"),
        ("ms teams", "microsoft_teams"),
        ("sendinblue", "brevo"),
        ("qbo", "quickbooks"),
    ] {
        let found: Vec<&str> = catalog.search(query).map(|c| c.key.as_str()).collect();
        assert_eq!(found, [key], "{query}");
    }
}
