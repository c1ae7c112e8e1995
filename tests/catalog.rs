//! The catalog: an operator's file or folder adds components and overrides
//! built-in ones, a malformed one stops start-up with a message naming the
//! file, the entry and the field; and every built-in entry against the
//! catalog's rules (it loads, https URLs, complete OAuth2 methods, a test
//! request that only reads, a real SVG icon, nothing named twice).

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use plugboard::catalog::{AuthKind, Catalog, CatalogError, ClientAuth, Component};
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

/// `PLUGBOARD_CATALOG` may be a folder: its `*.toml` files, one entry or
/// more each, with icons beside them; other files are left alone.
#[test]
fn an_operator_folder_adds_one_component_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("catalog.d");
    std::fs::create_dir(&folder).unwrap();
    let acme = &OPERATOR_CATALOG[..OPERATOR_CATALOG.find("[github]").unwrap()];
    std::fs::write(folder.join("acme.toml"), acme).unwrap();
    std::fs::write(
        folder.join("github.toml"),
        "[github]\nbase_url = \"https://github.example.com/api/v3\"\n",
    )
    .unwrap();
    std::fs::write(folder.join("acme.svg"), ACME_ICON).unwrap();
    std::fs::write(folder.join("notes.txt"), "not a catalog file").unwrap();
    let catalog = Catalog::load(Some(&folder), &BuiltinIcons).expect("the operator folder loads");
    assert_eq!(catalog.get("github").unwrap().base_url, "https://github.example.com/api/v3");
    assert_eq!(catalog.get("github").unwrap().name, "GitHub");
    assert_eq!(catalog.get("acme").unwrap().icon_svg.as_deref(), Some(ACME_ICON));
    assert_eq!(catalog.components().len(), builtin().components().len() + 1);

    // One key in two files would leave the winner to the order of names.
    let twice = folder.join("zz-github-again.toml");
    std::fs::write(&twice, "[github]\nname = \"GitHub again\"\n").unwrap();
    let error = Catalog::load(Some(&folder), &BuiltinIcons).expect_err("a key defined twice");
    assert_names(
        &error.to_string(),
        &[&twice.display().to_string(), "`github`", "define each component once"],
    );
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

// ---- OAuth2 authorization code: provider quirks as catalog data ----

/// An operator component using every key of an OAuth2 method, and one on
/// this machine over plain http with only a few.
const OAUTH_CATALOG: &str = r#"
[acme_oauth]
name = "Acme OAuth"
base_url = "{instance_url}/api/{realmId}"
settings = [{ key = "tenant", label = "Tenant", pattern = "[a-z0-9-]+" }]

[acme_oauth.auth.signin]
kind = "oauth2_authorization_code"
authorization_url = "https://{tenant}.auth.acme.test/authorize?display=page"
token_url = "https://{tenant}.auth.acme.test/token"
scopes = ["profile", "offline_access"]
optional_scopes = ["write", "admin"]
scope_separator = ","
authorize_params = { access_type = "offline", audience = "{tenant}.api.acme.test" }
token_auth = "body"
refresh_auth = "basic"
pkce = false
access_token_pointer = "/authed_user/access_token"
token_fields = { instance_url = "/instance_url", team_id = "/team/id" }
callback_params = ["realmId"]
issuer = "https://{tenant}.auth.acme.test"
refresh_margin_secs = 120
revocation_url = "https://{tenant}.auth.acme.test/revoke"

[acme_local]
name = "Acme on this machine"
base_url = "http://127.0.0.1:9/api"

[acme_local.auth.signin]
kind = "oauth2_authorization_code"
authorization_url = "http://localhost:9/authorize"
token_url = "http://127.0.0.1:9/token"
token_auth = "body"
"#;

#[test]
fn an_operator_oauth2_method_using_every_key_loads_with_its_values() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(dir.path(), OAUTH_CATALOG);
    let catalog = Catalog::load(Some(&path), &BuiltinIcons).expect("the operator catalog loads");

    let acme = catalog.get("acme_oauth").unwrap();
    assert_eq!(acme.base_url, "{instance_url}/api/{realmId}", "kept values may fill the base URL");
    let flow = acme.auth_method("signin").unwrap().oauth2_flow().expect("an OAuth2 method");
    assert_eq!(flow.authorization_url, "https://{tenant}.auth.acme.test/authorize?display=page");
    assert_eq!(flow.token_url, "https://{tenant}.auth.acme.test/token");
    assert_eq!(flow.scopes, ["profile", "offline_access"]);
    assert_eq!(flow.optional_scopes, ["write", "admin"]);
    assert_eq!(flow.scope_separator, ",");
    let params: Vec<(&str, &str)> =
        flow.authorize_params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(params, [("access_type", "offline"), ("audience", "{tenant}.api.acme.test")]);
    assert_eq!(flow.token_auth, ClientAuth::Body);
    assert_eq!(flow.refresh_auth(), ClientAuth::Basic);
    assert!(!flow.pkce);
    assert_eq!(flow.access_token_pointer, "/authed_user/access_token");
    let kept: Vec<(&str, &str)> = flow.token_fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(kept, [("instance_url", "/instance_url"), ("team_id", "/team/id")]);
    assert_eq!(flow.callback_params, ["realmId"]);
    assert_eq!(flow.kept_parameters().collect::<Vec<_>>(), ["instance_url", "team_id", "realmId"]);
    assert_eq!(flow.issuer, Some("https://{tenant}.auth.acme.test"));
    assert_eq!(flow.refresh_margin_secs, Some(120));
    assert_eq!(flow.revocation_url, Some("https://{tenant}.auth.acme.test/revoke"));
    // Chosen optional scopes are added; anything not offered is ignored.
    assert_eq!(flow.scope_param(&["admin", "root"]), "profile,offline_access,admin");
    assert_eq!(flow.scope_param(&[]), "profile,offline_access");

    // Plain http only to this machine; refresh authenticates as the code
    // exchange when refresh_auth is not given; the rest are defaults.
    let local = catalog.get("acme_local").unwrap().auth_method("signin").unwrap().oauth2_flow().unwrap();
    assert_eq!(local.token_url, "http://127.0.0.1:9/token");
    assert_eq!(local.token_auth, ClientAuth::Body);
    assert_eq!(local.refresh_auth(), ClientAuth::Body);
    assert!(local.scopes.is_empty() && local.optional_scopes.is_empty());
    assert_eq!(local.scope_param(&["anything"]), "");
    assert_eq!(local.scope_separator, " ");
    assert!(local.authorize_params.is_empty() && local.token_fields.is_empty());
    assert!(local.callback_params.is_empty());
    assert!(local.pkce);
    assert_eq!(local.access_token_pointer, "/access_token");
    assert_eq!((local.issuer, local.refresh_margin_secs, local.revocation_url), (None, None, None));

    // A built-in method that sets none of the new keys has the defaults.
    let figma = catalog.get("figma").unwrap().auth_method("oauth2").unwrap().oauth2_flow().unwrap();
    assert_eq!((figma.token_auth, figma.refresh_auth()), (ClientAuth::Basic, ClientAuth::Basic));
    assert!(figma.pkce);
    // Other kinds have no OAuth2 flow.
    assert!(catalog.get("figma").unwrap().auth_method("token").unwrap().oauth2_flow().is_none());
}

/// Loads `[acme]` with one OAuth2 method `signin` whose keys are `keys`
/// (one per line), with working endpoints unless `keys` gives its own, and
/// any `extra` TOML after it.
fn load_oauth(keys: &str, extra: &str) -> (Result<Catalog, CatalogError>, String) {
    let mut method = String::from("kind = \"oauth2_authorization_code\"\n");
    for (key, default) in [
        ("authorization_url", "\"https://auth.acme.test/authorize\""),
        ("token_url", "\"https://auth.acme.test/token\""),
    ] {
        if !keys.lines().any(|line| line.trim_start().starts_with(&format!("{key} "))) {
            method.push_str(&format!("{key} = {default}\n"));
        }
    }
    method.push_str(keys);
    let text = format!(
        "[acme]\nname = \"Acme\"\nbase_url = \"https://api.acme.test\"\nsettings = [{{ key = \"tenant\", label = \"Tenant\" }}]\n\n[acme.auth.signin]\n{method}\n{extra}\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = write_catalog(dir.path(), &text);
    (Catalog::load(Some(&path), &BuiltinIcons), path.display().to_string())
}

/// The refusal of `keys`: it names the operator's file, the entry and
/// `field`, and says `needle`.
fn assert_refused(keys: &str, field: &str, needle: &str) {
    assert_refused_with(keys, "", field, needle);
}

fn assert_refused_with(keys: &str, extra: &str, field: &str, needle: &str) {
    let (result, file) = load_oauth(keys, extra);
    let err = match result {
        Ok(_) => panic!("must be refused:\n{keys}"),
        Err(err) => err,
    };
    assert_eq!(err.file, file, "{err}");
    assert_eq!(err.component.as_deref(), Some("acme"), "{err}");
    assert_eq!(err.field.as_deref(), Some(field), "{keys}\n{err}");
    assert!(err.message.contains(needle), "{needle:?} missing from: {err}");
    let text = err.to_string();
    assert!(text.contains(&file) && text.contains("`acme`") && text.contains(field), "{text}");
}

fn assert_loads(keys: &str) {
    if let (Err(err), _) = load_oauth(keys, "") {
        panic!("must load:\n{keys}\n{err}");
    }
}

#[test]
fn a_reserved_authorization_parameter_is_refused_naming_the_key() {
    for name in [
        "response_type",
        "client_id",
        "redirect_uri",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ] {
        assert_refused(
            &format!("authorize_params = {{ {name} = \"x\" }}"),
            &format!("auth.signin.authorize_params.{name}"),
            "set by the sign-in itself",
        );
    }
    // Whatever the case, and in the authorization URL's own query too.
    assert_refused(
        "authorize_params = { Redirect_URI = \"x\" }",
        "auth.signin.authorize_params.Redirect_URI",
        "reserved",
    );
    assert_refused(
        "authorization_url = \"https://auth.acme.test/authorize?owner=user&redirect_uri=https://evil.test\"",
        "auth.signin.authorization_url",
        "`redirect_uri`",
    );
    assert_refused(
        "authorization_url = \"https://auth.acme.test/authorize?owner=user\"\nauthorize_params = { owner = \"team\" }",
        "auth.signin.authorize_params.owner",
        "already in the query",
    );
    assert_refused(
        "authorize_params = { audience = \"{region}.acme.test\" }",
        "auth.signin.authorize_params.audience",
        "{region}",
    );
    assert_loads(
        "authorize_params = { access_type = \"offline\", prompt = \"consent\", audience = \"{tenant}\" }",
    );
    assert_loads("authorization_url = \"https://auth.acme.test/authorize?owner=user\"");
}

#[test]
fn scopes_are_listed_one_by_one_and_never_in_both_lists() {
    assert_refused(
        "scopes = [\"read\", \"write\"]\noptional_scopes = [\"admin\", \"write\"]",
        "auth.signin.optional_scopes[1]",
        "`write` is also in `scopes`",
    );
    assert_refused(
        "scopes = [\"read,write\"]\nscope_separator = \",\"",
        "auth.signin.scopes[0]",
        "separator",
    );
    assert_refused("scopes = [\"read\", \"read write\"]", "auth.signin.scopes[1]", "spaces");
    assert_refused("optional_scopes = [\"\"]", "auth.signin.optional_scopes[0]", "empty");
    assert_refused("scopes = [\"read\", \"read\"]", "auth.signin.scopes[1]", "twice");
    assert_refused("scope_separator = \";\"", "auth.signin.scope_separator", "\",\"");
    // Under the default space separator a comma is part of one scope.
    assert_loads("scopes = [\"read,write\"]");
    assert_loads("scopes = [\"read\", \"write\"]\noptional_scopes = [\"admin\"]\nscope_separator = \",\"");
}

#[test]
fn a_bad_json_pointer_is_refused_naming_the_key() {
    assert_refused(
        "access_token_pointer = \"access_token\"",
        "auth.signin.access_token_pointer",
        "JSON pointer",
    );
    assert_refused("access_token_pointer = \"\"", "auth.signin.access_token_pointer", "start with `/`");
    assert_refused(
        "token_fields = { instance_url = \"instance_url\" }",
        "auth.signin.token_fields.instance_url",
        "JSON pointer",
    );
    assert_refused(
        "token_fields = { team = \"/team~2id\" }",
        "auth.signin.token_fields.team",
        "JSON pointer",
    );
    // A token is a secret and is never kept as a plain parameter.
    assert_refused(
        "token_fields = { renewal = \"/refresh_token\" }",
        "auth.signin.token_fields.renewal",
        "secret",
    );
    assert_refused(
        "access_token_pointer = \"/authed_user/access_token\"\ntoken_fields = { user = \"/authed_user\" }",
        "auth.signin.token_fields.user",
        "secret",
    );
    // Kept keys are new parameters: not a setting, a field or the sign-in's own.
    assert_refused("token_fields = { tenant = \"/tenant\" }", "auth.signin.token_fields.tenant", "setting");
    assert_refused(
        "token_fields = { client_id = \"/client\" }",
        "auth.signin.token_fields.client_id",
        "field",
    );
    assert_refused(
        "token_fields = { access_token = \"/token\" }",
        "auth.signin.token_fields.access_token",
        "own values",
    );
    assert_refused(
        "token_fields = { Instance = \"/instance_url\" }",
        "auth.signin.token_fields.Instance",
        "lowercase",
    );
    assert_refused(
        "callback_params = [\"realmId\", \"code\"]",
        "auth.signin.callback_params[1]",
        "never kept",
    );
    assert_refused("callback_params = [\"state\"]", "auth.signin.callback_params[0]", "never kept");
    assert_refused(
        "token_fields = { realmid = \"/realm\" }\ncallback_params = [\"realmid\"]",
        "auth.signin.callback_params[0]",
        "token_fields",
    );
    assert_loads(
        "access_token_pointer = \"/authed_user/access_token\"\ntoken_fields = { team_id = \"/team/id\", a = \"/a~1b\" }",
    );
}

#[test]
fn an_oauth2_endpoint_over_plain_http_is_refused_unless_it_is_this_machine() {
    for (keys, field) in [
        ("token_url = \"http://auth.acme.test/token\"", "auth.signin.token_url"),
        ("authorization_url = \"http://auth.acme.test/authorize\"", "auth.signin.authorization_url"),
        ("authorization_url = \"http://localhost.acme.test/authorize\"", "auth.signin.authorization_url"),
        ("token_url = \"http://127.0.0.1.nip.io/token\"", "auth.signin.token_url"),
        ("revocation_url = \"http://auth.acme.test/revoke\"", "auth.signin.revocation_url"),
        ("issuer = \"http://auth.acme.test\"", "auth.signin.issuer"),
    ] {
        assert_refused(keys, field, "must use https://");
    }
    assert_refused("token_url = \"https://user@auth.acme.test/token\"", "auth.signin.token_url", "user name");
    assert_refused(
        "token_url = \"http://localhost@auth.acme.test/token\"",
        "auth.signin.token_url",
        "user name",
    );
    assert_refused(
        "authorization_url = \"https://auth.acme.test/a#x\"",
        "auth.signin.authorization_url",
        "fragment",
    );
    assert_refused("token_url = \"ftp://auth.acme.test/token\"", "auth.signin.token_url", "https://");
    assert_refused("token_url = \"https://{region}.acme.test/token\"", "auth.signin.token_url", "{region}");
    assert_refused("issuer = \"https://auth.acme.test/?x=1\"", "auth.signin.issuer", "no query");
    for keys in [
        "token_url = \"http://127.0.0.1:8080/token\"",
        "authorization_url = \"http://localhost/authorize\"",
        "token_url = \"http://[::1]:9/token\"",
        "token_url = \"https://{tenant}.acme.test/token\"",
        "issuer = \"https://{tenant}.acme.test\"\nrevocation_url = \"https://auth.acme.test/revoke\"",
    ] {
        assert_loads(keys);
    }
}

#[test]
fn other_oauth2_mistakes_name_the_entry_and_key() {
    assert_refused("token_auth = \"header\"", "auth.signin", "`token_auth` must be \"basic\" or \"body\"");
    assert_refused("refresh_auth = \"Basic\"", "auth.signin", "`refresh_auth` must be");
    assert_refused("scope_seperator = \",\"", "auth.signin", "scope_seperator");
    assert_refused("pkce = \"yes\"", "auth.signin", "boolean");
    assert_refused("refresh_margin_secs = -5", "auth.signin", "");
    // A method needs the client ID its sign-in sends.
    assert_refused(
        "fields = [{ key = \"client_secret\", secret = true }]",
        "auth.signin.fields",
        "`client_id`",
    );
    assert_loads("fields = [{ key = \"client_id\" }]");
    // The base URL may name a kept value only if every method keeps it.
    let signin = "token_fields = { instance_url = \"/instance_url\" }";
    let (result, _) = load_oauth(signin, "");
    assert!(result.is_ok());
    let (message, file) = startup_error(&format!(
        "[acme]\nname = \"Acme\"\nbase_url = \"{{instance_url}}/api\"\n[acme.auth.signin]\nkind = \"oauth2_authorization_code\"\nauthorization_url = \"https://a.test/authorize\"\ntoken_url = \"https://a.test/token\"\n{signin}\n[acme.auth.key]\nkind = \"bearer\"\n"
    ));
    assert_names(&message, &[&file, "`acme`", "`base_url`", "{instance_url}", "method `key`"]);
    // Through the application too, with the file, entry and field named.
    let (message, file) = startup_error(
        "[acme]\nname = \"Acme\"\nbase_url = \"https://a.test\"\n[acme.auth.signin]\nkind = \"oauth2_authorization_code\"\nauthorization_url = \"https://a.test/authorize\"\ntoken_url = \"http://a.test/token\"\n",
    );
    assert_names(&message, &[&file, "`acme`", "`auth.signin.token_url`", "must use https://"]);
}

/// Built-in OAuth2 methods that request no scope, each for a reason written
/// in a comment above it in its component's file.
const BUILTIN_WITHOUT_SCOPES: [&str; 15] = [
    "attio",
    "bitbucket",
    "box",
    "clickup",
    "eventbrite",
    "front",
    "gusto",
    "help_scout",
    "intercom",
    "mailchimp",
    "netlify",
    "notion",
    "ringcentral",
    "surveymonkey",
    "zoom",
];

/// A built-in component's own file, as written.
fn builtin_source(key: &str) -> String {
    let path = components_dir().join(format!("{key}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_builtin_oauth2_method_has_https_endpoints_and_scopes_or_a_written_reason() {
    let catalog = builtin();
    let mut methods = 0;
    let mut without_scopes = Vec::new();
    for component in catalog.components().iter().filter(|c| c.category != "Generic") {
        let source = builtin_source(&component.key);
        let raw: toml::Table = source.parse().unwrap();
        let lines: Vec<&str> = source.lines().collect();
        for method in &component.auth_methods {
            let Some(flow) = method.oauth2_flow() else { continue };
            methods += 1;
            let name = format!("{}.auth.{}", component.key, method.key);
            assert!(
                !flow.authorization_url.is_empty() && !flow.token_url.is_empty(),
                "{name}: both endpoints"
            );
            let endpoints =
                [Some(flow.authorization_url), Some(flow.token_url), flow.revocation_url, flow.issuer];
            for url in endpoints.into_iter().flatten() {
                assert!(url.starts_with("https://"), "{name}: {url} is not https");
            }
            if !flow.scopes.is_empty() || !flow.optional_scopes.is_empty() {
                continue;
            }
            without_scopes.push(component.key.as_str());
            let written = &raw[&component.key]["auth"][&method.key];
            assert_eq!(
                written.get("scopes"),
                Some(&toml::Value::Array(Vec::new())),
                "{name}: write `scopes = []`"
            );
            let header = lines.iter().position(|l| l.trim() == format!("[{name}]")).unwrap();
            let comment: Vec<&str> =
                lines[..header].iter().rev().take_while(|l| l.starts_with('#')).copied().collect();
            assert!(
                comment.iter().any(|l| l.to_lowercase().contains("scope")),
                "{name} requests no scope; say why in a comment right above [{name}]"
            );
        }
    }
    assert!(methods >= 70, "{methods} OAuth2 methods");
    without_scopes.sort_unstable();
    assert_eq!(without_scopes, BUILTIN_WITHOUT_SCOPES, "a new scope-less method is a deliberate choice");
}

#[test]
fn builtin_oauth2_methods_carry_their_providers_documented_quirks() {
    let catalog = Catalog::load(None, &BuiltinIcons).unwrap();
    let flow = |key: &str| catalog.get(key).unwrap().auth_method("oauth2").unwrap().oauth2_flow().unwrap();
    let param = |key: &str, name: &str| flow(key).authorize_params.get(name).cloned();

    for google in ["gmail", "google_drive", "google_sheets", "google_calendar"] {
        assert_eq!(param(google, "access_type").as_deref(), Some("offline"), "{google}");
        assert_eq!(param(google, "prompt").as_deref(), Some("consent"), "{google}");
        assert_eq!(flow(google).revocation_url, Some("https://oauth2.googleapis.com/revoke"));
    }
    for microsoft in ["outlook", "microsoft_teams", "onedrive"] {
        assert_eq!(flow(microsoft).token_auth, ClientAuth::Body, "{microsoft}");
        assert!(flow(microsoft).scopes.iter().any(|s| s == "offline_access"), "{microsoft}");
    }
    for comma in ["slack", "linear", "shopify"] {
        assert_eq!(flow(comma).scope_separator, ",", "{comma}");
        assert!(flow(comma).scopes.len() > 1, "{comma}: each scope listed alone");
    }
    assert_eq!(flow("slack").access_token_pointer, "/access_token", "the bot token");
    assert_eq!(param("dropbox", "token_access_type").as_deref(), Some("offline"));
    assert_eq!(param("notion", "owner").as_deref(), Some("user"));
    assert!(!flow("notion").authorization_url.contains('?'));
    assert_eq!(flow("notion").token_auth, ClientAuth::Basic);
    assert!(flow("airtable").pkce);
    assert_eq!(flow("airtable").token_auth, ClientAuth::Basic);
    assert_eq!(flow("hubspot").token_auth, ClientAuth::Body);
    assert_eq!(flow("github").token_auth, ClientAuth::Body);
    assert_eq!(flow("zoom").token_auth, ClientAuth::Basic);
    let salesforce = flow("salesforce");
    assert_eq!(salesforce.token_fields.get("instance_url").map(String::as_str), Some("/instance_url"));
    assert_eq!(flow("shopify").token_url, "https://{shop}.myshopify.com/admin/oauth/access_token");
    assert_eq!(flow("zendesk").token_url, "https://{subdomain}.zendesk.com/oauth/tokens");
    assert_eq!(flow("quickbooks").callback_params, ["realmId"]);
    assert_eq!(flow("quickbooks").token_auth, ClientAuth::Basic);
    assert_eq!(param("atlassian", "audience").as_deref(), Some("api.atlassian.com"));
    assert_eq!(param("atlassian", "prompt").as_deref(), Some("consent"));
    assert_eq!(param("reddit", "duration").as_deref(), Some("permanent"));
    assert_eq!(flow("zoho_crm").scope_separator, ",");
    assert_eq!(param("zoho_crm", "access_type").as_deref(), Some("offline"));
    assert!(!flow("linkedin").pkce && !flow("constant_contact").pkce);
}

// ---- Every built-in entry against the catalog's rules ----

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
const READ_ONLY_POSTS: [(&str, &str); 11] = [
    ("aws_dynamodb", "/"),
    ("cohere", "/v1/check-api-key"),
    ("dropbox", "/users/get_current_account"),
    ("linear", "/graphql"),
    ("mandrill", "/users/ping"),
    ("monday", "/v2"),
    ("new_relic", "/graphql"),
    ("pushover", "/users/validate.json"),
    ("railway", "/graphql/v2"),
    ("slack", "/auth.test"),
    ("snowflake", "/statements"),
];

fn builtin() -> Catalog {
    Catalog::load(None, &BuiltinIcons).expect("the built-in catalog loads")
}

fn components_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog/components")
}

#[test]
fn there_are_at_least_150_components_one_file_each_named_after_its_key() {
    let catalog = builtin();
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
    for c in builtin().components().iter().filter(|c| !is_generic(c)) {
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
fn every_component_can_be_checked_by_a_read_or_says_why_not() {
    let posts: HashMap<&str, &str> = READ_ONLY_POSTS.into_iter().collect();
    let mut found_posts = Vec::new();
    let catalog = builtin();
    for c in catalog.components() {
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
                    // What the POST asks must read too: no GraphQL mutation,
                    // no SQL but a SELECT.
                    let body = test.body.as_deref().unwrap_or_default().to_lowercase();
                    assert!(!body.contains("mutation"), "{}: {body}", c.key);
                    if let Some(statement) = body.split("\"statement\":\"").nth(1) {
                        assert!(statement.starts_with("select "), "{}: {body}", c.key);
                    }
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
    let catalog = builtin();
    let mut icons = 0;
    for c in catalog.components() {
        let table: toml::Table = builtin_source(&c.key).parse().unwrap();
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
    let catalog = builtin();
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
    let catalog = builtin();
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

/// The README's "Adding a component" example is a working catalog file.
#[test]
fn the_readmes_complete_example_loads() {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = &readme[readme.find("## Adding a component").expect("the section")..];
    let example = section
        .split("```toml\n")
        .skip(1)
        .map(|block| &block[..block.find("```").unwrap()])
        .find(|block| block.contains("[acme.auth.oauth2]"))
        .expect("a complete example with OAuth2");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme.toml");
    std::fs::write(&path, example).unwrap();
    std::fs::write(dir.path().join("acme.svg"), ACME_ICON).unwrap();
    let catalog = Catalog::load(Some(&path), &BuiltinIcons).unwrap_or_else(|e| panic!("{e}"));
    let acme = catalog.get("acme").unwrap();
    assert_eq!(acme.auth_methods.len(), 2);
    assert!(acme.auth_method("oauth2").and_then(|m| m.oauth2_flow()).is_some());
    assert_eq!(catalog.search("acmecrm").map(|c| c.key.as_str()).collect::<Vec<_>>(), ["acme"]);
}
