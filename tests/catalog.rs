//! An operator's catalog file: adds components and overrides built-in ones;
//! a malformed one stops start-up with a message naming the file, the entry
//! and the field.

mod common;

use std::path::{Path, PathBuf};

use plugboard::catalog::Catalog;
use plugboard::environment::Environment;
use plugboard::web::assets::BuiltinIcons;
use reqwest::StatusCode;

const OPERATOR_CATALOG: &str = r#"
# An internal service, and GitHub Enterprise instead of github.com.
[acme]
name = "Acme Widgets"
category = "Internal"
description = "Acme's widget API."
base_url = "https://{region}.api.acme.test"
icon = "acme.svg"
settings = [
  { key = "region", label = "Region", default = "eu", pattern = "[a-z]{2}", help = "Two letters." },
]

[acme.auth.key]
kind = "api_key"
label = "Acme key"
header = "X-Acme-Key"
fields = [
  { key = "api_key", label = "Acme key", secret = true, pattern = "acme_[a-z0-9]+", placeholder = "acme_…" },
]

[acme.auth.basic]
kind = "basic"

[github]
base_url = "https://github.example.com/api/v3"
"#;

const ACME_ICON: &str = r##"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24"><circle cx="12" cy="12" r="10" fill="#123456"/></svg>"##;

fn write_catalog(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("operator-catalog.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[actix_web::test]
async fn an_operator_catalog_adds_a_component_and_overrides_a_builtin() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(dir.path(), OPERATOR_CATALOG);
    std::fs::write(dir.path().join("acme.svg"), ACME_ICON).unwrap();

    // The merged catalog: GitHub keeps everything but its base URL.
    let catalog = Catalog::load(Some(&path), &BuiltinIcons).expect("the operator catalog loads");
    let github = catalog.get("github").unwrap();
    assert_eq!(github.base_url, "https://github.example.com/api/v3");
    assert_eq!(github.name, "GitHub");
    assert_eq!(github.auth_methods.len(), 2);
    assert!(github.auth_methods[0].fields[0].pattern.is_some(), "the built-in field rules stay");
    assert_eq!(
        catalog.get("gitlab").unwrap().base_url,
        Catalog::load(None, &BuiltinIcons).unwrap().get("gitlab").unwrap().base_url
    );
    let acme = catalog.get("acme").unwrap();
    assert_eq!(acme.base_url, "https://{region}.api.acme.test");
    assert_eq!(acme.auth_methods.len(), 2);
    assert_eq!(acme.auth_methods[1].fields.len(), 2, "basic gets username and password by default");
    assert_eq!(
        catalog.components().len(),
        Catalog::load(None, &BuiltinIcons).unwrap().components().len() + 1
    );

    // The running application offers it.
    let app = common::spawn_with(|s| s.catalog = Some(path.clone())).await;
    let picker = app.get("/connections/new?q=acme").await;
    assert_eq!(picker.status, StatusCode::OK);
    assert_eq!(picker.count("#component-choices a[data-component]"), 1);
    assert!(picker.text_of("a[data-component=acme]").contains("Acme Widgets"));
    assert!(picker.text_of("a[data-component=acme]").contains("Internal"));
    let picker = app.get("/connections/new?q=internal").await;
    assert_eq!(picker.count("a[data-component=acme]"), 1, "found by category too");

    let form = app.get("/connections/new?component=acme").await;
    assert_eq!(form.status, StatusCode::OK);
    assert_eq!(form.text_of("#dialog-title"), "New Acme Widgets connection");
    assert_eq!(form.attr("input[name=name]", "value").as_deref(), Some("Acme Widgets"));
    assert_eq!(form.attr("input[name='field:region']", "value").as_deref(), Some("eu"));
    assert_eq!(form.attr("input[name='field:api_key']", "type").as_deref(), Some("password"));
    assert_eq!(form.attr("input[name='field:api_key']", "pattern").as_deref(), Some("acme_[a-z0-9]+"));
    assert_eq!(form.texts("nav.method-tabs a"), vec!["Acme key", "Basic auth"]);

    // Its rules apply to saves.
    let page = app
        .post(
            "/connections",
            &[
                ("component", "acme"),
                ("auth_method", "key"),
                ("name", "Widgets"),
                ("field:region", "eu"),
                ("field:api_key", "wrong"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.text_of("#error-api_key").contains("expected something like acme_…"),
        "{}",
        page.text_of("#error-api_key")
    );
    let page = app
        .post(
            "/connections",
            &[
                ("component", "acme"),
                ("auth_method", "key"),
                ("name", "Widgets"),
                ("field:region", "europe"),
                ("field:api_key", "acme_1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.text_of("#error-region").contains("Region does not have the expected format"));
    assert_eq!(app.count_rows("connections").await, 0);

    let id = app.create("acme", "Widgets", &[("region", "us"), ("api_key", "acme_secret1")]).await;
    let list = app.get("/").await;
    assert!(list.text_of(&format!("#connection-{id} .component-cell")).contains("Acme Widgets"));
    assert!(list.text_of(&format!("#connection-{id} .auth-method")).contains("Acme key"));
    assert!(list.text_of("aside.sidebar").contains("Acme Widgets"));
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["api_key"], "acme_secret1");
    assert!(app.stored(id).unwrap().parameters.contains("\"region\":\"us\""));

    // Its icon, from beside the catalog file.
    let icon = app.get("/icons/acme.svg").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.body, ACME_ICON);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));

    // GitHub still works as before.
    let form = app.get("/connections/new?component=github").await;
    assert_eq!(form.attr("input[name=name]", "value").as_deref(), Some("GitHub"));
    app.create("github", "GHE", &[("token", "ghp_enterprise1")]).await;
}

#[actix_web::test]
async fn operator_icons_are_served_with_a_policy_that_runs_no_script() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(dir.path(), OPERATOR_CATALOG);
    std::fs::write(dir.path().join("acme.svg"), ACME_ICON).unwrap();
    let app = common::spawn_with(|s| s.catalog = Some(path.clone())).await;
    // An operator's SVG could hold script: opened on its own, it must not
    // be able to run any, not even script from this site.
    let icon = app.get("/icons/acme.svg").await;
    assert_eq!(icon.status, StatusCode::OK);
    let csp = icon.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src 'self'"), "{csp}");
}

#[actix_web::test]
async fn without_an_operator_catalog_the_extra_component_is_unknown() {
    let app = common::spawn().await;
    let page = app.get("/connections/new?q=acme").await;
    assert_eq!(page.count("#component-choices a[data-component]"), 0);
    let page = app.get("/connections/new?component=acme").await;
    assert!(page.status.is_client_error());
}

/// Builds the application with `text` as the operator catalog and returns
/// the start-up error's message and the catalog's path.
fn startup_error(text: &str) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(dir.path(), text);
    let mut settings = plugboard::Settings::with_data_dir(dir.path().join("data"));
    settings.catalog = Some(path.clone());
    match plugboard::Application::build(&settings) {
        Ok(_) => panic!("a malformed catalog must stop start-up:\n{text}"),
        Err(e) => (e.to_string(), path.display().to_string()),
    }
}

fn assert_names(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

#[test]
fn bad_toml_syntax_names_the_file_and_line() {
    let (message, file) = startup_error("[acme]\nname = \"Acme\"\n[acme.auth\nkind = \"bearer\"\n");
    assert_names(&message, &[&file, "line 3"]);
    let (message, file) = startup_error("[acme]\nname = Acme\n");
    assert_names(&message, &[&file, "line 2"]);
}

#[test]
fn an_unknown_field_names_the_file_entry_and_field() {
    let (message, file) = startup_error("[slack]\nbase_urll = \"https://x.test\"\n");
    assert_names(&message, &[&file, "`slack`", "base_urll"]);

    let (message, file) = startup_error("[slack.test]\npathh = \"/x\"\n");
    assert_names(&message, &[&file, "`slack`", "test", "pathh"]);

    let (message, file) = startup_error(
        "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\nfields = [{ key = \"t\", secrett = true }]\n",
    );
    assert_names(&message, &[&file, "`acme`", "auth.k", "secrett"]);

    let (message, file) = startup_error(
        "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"api_key\"\nheadr = \"X-Key\"\n",
    );
    assert_names(&message, &[&file, "`acme`", "auth.k", "headr"]);
}

#[test]
fn a_misspelt_key_in_a_simple_auth_method_is_an_error() {
    // `bearer` and `basic` take no options of their own, so anything beside
    // `kind`, `label` and `fields` is a mistake (here, a misspelt label).
    let (message, file) = startup_error(
        "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\nlabell = \"Acme token\"\n",
    );
    assert_names(&message, &[&file, "`acme`", "auth.k", "labell"]);
    let (message, file) = startup_error("[slack.auth.bot_token]\nheader = \"X-Slack\"\n");
    assert_names(&message, &[&file, "`slack`", "auth.bot_token", "header"]);
}

#[test]
fn a_new_entry_without_a_name_is_an_error() {
    let (message, file) =
        startup_error("[acme]\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\n");
    assert_names(&message, &[&file, "`acme`", "`name`", "is required"]);
    let (message, _) = startup_error(
        "[acme]\nname = \"  \"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\n",
    );
    assert_names(&message, &["`acme`", "`name`", "is required"]);
    let (message, _) =
        startup_error("[acme]\nname = 5\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\n");
    assert_names(&message, &["`acme`", "name", "string"]);
}

#[test]
fn an_invalid_pattern_is_an_error() {
    let (message, file) = startup_error(
        "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\nfields = [{ key = \"t\", pattern = \"(\" }]\n",
    );
    assert_names(&message, &[&file, "`acme`", "auth.k.fields[0].pattern", "not a valid regular expression"]);
    // In an override of a built-in entry, the operator's file is named.
    let (message, file) =
        startup_error("[stripe.auth.secret_key]\nfields = [{ key = \"token\", pattern = \"[a-\" }]\n");
    assert_names(&message, &[&file, "`stripe`", "auth.secret_key.fields[0].pattern"]);
    assert!(!message.contains("built-in"), "{message}");
    // In a setting.
    let (message, file) = startup_error(
        "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\nsettings = [{ key = \"r\", pattern = \"[\" }]\n[acme.auth.k]\nkind = \"bearer\"\n",
    );
    assert_names(&message, &[&file, "`acme`", "settings[0].pattern"]);
}

#[test]
fn a_base_url_placeholder_without_a_setting_is_an_error() {
    let (message, file) = startup_error(
        "[acme]\nname = \"A\"\nbase_url = \"https://{shop}.a.test\"\n[acme.auth.k]\nkind = \"bearer\"\n",
    );
    assert_names(&message, &[&file, "`acme`", "`base_url`", "{shop}"]);
    // Overriding a built-in's base URL with a placeholder it has no setting for.
    let (message, file) = startup_error("[github]\nbase_url = \"https://{host}/api/v3\"\n");
    assert_names(&message, &[&file, "`github`", "`base_url`", "{host}"]);
}

#[test]
fn other_mistakes_name_the_entry_and_field() {
    let cases: [(&str, &[&str]); 6] = [
        ("acme = 5\n", &["`acme`", "must be a table"]),
        (
            "[Acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[Acme.auth.k]\nkind = \"bearer\"\n",
            &["`Acme`", "lowercase"],
        ),
        ("[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n", &["`acme`", "`auth`"]),
        (
            "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\n[acme.auth.k]\nkind = \"magic\"\n",
            &["`acme`", "auth.k", "magic"],
        ),
        (
            "[acme]\nname = \"A\"\nbase_url = \"ftp://a.test\"\n[acme.auth.k]\nkind = \"bearer\"\n",
            &["`acme`", "`base_url`", "https://"],
        ),
        (
            "[acme]\nname = \"A\"\nbase_url = \"https://a.test\"\nicon = \"missing.svg\"\n[acme.auth.k]\nkind = \"bearer\"\n",
            &["`acme`", "`icon`", "missing.svg"],
        ),
    ];
    for (text, parts) in cases {
        let (message, file) = startup_error(text);
        assert_names(&message, &[&file]);
        assert_names(&message, parts);
    }
}

#[test]
fn a_missing_catalog_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.toml");
    let mut settings = plugboard::Settings::with_data_dir(dir.path().join("data"));
    settings.catalog = Some(missing.clone());
    let message = match plugboard::Application::build(&settings) {
        Ok(_) => panic!("a missing catalog must stop start-up"),
        Err(e) => e.to_string(),
    };
    assert_names(&message, &[&missing.display().to_string(), "cannot read"]);
}

/// An `api_key` method with no field loaded, then made every check of it
/// panic; now it stops start-up, as does any method without a field its
/// check reads.
#[test]
fn an_auth_method_without_the_fields_its_check_reads_stops_start_up() {
    let (message, file) = startup_error(
        "[acme]\nname = \"Acme\"\nbase_url = \"https://a.test\"\n[acme.test]\npath = \"/me\"\n[acme.auth.api_key]\nkind = \"api_key\"\nheader = \"X-Key\"\nfields = []\n",
    );
    assert_eq!(
        message,
        format!(
            "catalog file {file}, component `acme`, field `auth.api_key.fields`: an api_key method needs exactly one field, the key (this one lists 0)"
        )
    );
    // Replacing a built-in method's fields with ones its check cannot use.
    let (message, file) = startup_error("[github.auth.token]\nfields = [{ key = \"pat\", secret = true }]\n");
    assert_names(&message, &[&file, "`github`", "auth.token.fields", "`token`"]);
}
