//! OAuth2 connections end to end, against a real authorization server on
//! 127.0.0.1 (`oauth_provider`), driven through Plugboard's own endpoints
//! as a browser would: Connect, the provider's redirect, the callback.

mod common;
mod oauth_provider;

use std::time::Duration;

use common::{Page, TestApp};
use oauth_provider::{AuthorizeOutcome, Client, ErrorStyle, Iss, Provider, ProviderConfig, Rotation};
use reqwest::StatusCode;

const CLIENT_ID: &str = "plugboard-test";
const CLIENT_SECRET: &str = "s3cret-client-value";

/// An operator catalog with one OAuth2 component pointing at `provider`.
fn catalog(provider: &Provider, extra: &str) -> String {
    format!(
        r#"
[testauth]
name = "Test Auth"
category = "Testing"
base_url = "{base}"

[testauth.auth.oauth2]
kind = "oauth2_authorization_code"
label = "Sign in"
authorization_url = "{authorize}"
token_url = "{token}"
scopes = ["read"]
optional_scopes = ["write"]
{extra}

[testauth.test]
path = "/me"
"#,
        base = provider.base_url(),
        authorize = provider.authorize_url(),
        token = provider.token_url(),
    )
}

struct World {
    app: TestApp,
    provider: Provider,
    _catalog: tempfile::TempDir,
}

async fn world(config: ProviderConfig, extra: &str) -> World {
    let provider = Provider::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, catalog(&provider, extra)).unwrap();
    let app = common::spawn_with(|s| s.catalog = Some(path.clone())).await;
    let redirect = format!("{}/oauth2/callback", app.base);
    provider.configure(|c| c.clients[0].redirect_uris = vec![redirect]);
    World { app, provider, _catalog: dir }
}

fn default_config() -> ProviderConfig {
    ProviderConfig::for_client(Client::new(CLIENT_ID, CLIENT_SECRET, ""))
}

/// A browser's hop to another site: the provider answers with a redirect.
async fn follow_to_provider(location: &str) -> reqwest::Response {
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    browser.get(location).send().await.unwrap()
}

fn location(page: &Page) -> String {
    page.header("location").unwrap_or_default().to_owned()
}

/// Where Connect's answer sends the browser: its page moves on by itself
/// (a redirect would break the page's `form-action 'self'`).
fn to_provider(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let url = page.attr("#continue-to-provider", "href").expect("a link to the provider");
    let refresh = page.attr("meta[http-equiv=refresh]", "content").expect("a refresh to the provider");
    assert_eq!(refresh, format!("0;url={url}"));
    url
}

/// Clicks Connect in the New Connection dialog; returns Plugboard's answer.
async fn click_connect(app: &TestApp, name: &str, extra: &[(&str, &str)]) -> Page {
    let token = app.csrf().await;
    let mut form = vec![
        ("csrf_token", token.as_str()),
        ("component", "testauth"),
        ("auth_method", "oauth2"),
        ("environment", "development"),
        ("name", name),
        ("field:client_id", CLIENT_ID),
        ("field:client_secret", CLIENT_SECRET),
    ];
    form.extend_from_slice(extra);
    app.post_raw("/connections/oauth2/connect", &form).await
}

/// The whole sign-in: Connect, the provider's redirect, the callback.
/// Returns the callback's answer.
async fn sign_in(w: &World, name: &str, extra: &[(&str, &str)]) -> Page {
    let started = click_connect(&w.app, name, extra).await;
    let url = to_provider(&started);
    assert!(url.starts_with(&w.provider.authorize_url()), "{url}");
    let back = follow_to_provider(&url).await;
    assert_eq!(back.status(), StatusCode::FOUND, "the provider redirects back");
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let path = callback.strip_prefix(&w.app.base).expect("back to Plugboard").to_owned();
    w.app.get(&path).await
}

fn status_of(page: &Page, id: i64) -> (String, String) {
    (
        page.text_of(&format!("#connection-{id} .badge")),
        page.text_of(&format!("#connection-{id} .status-reason")),
    )
}

#[actix_web::test]
async fn connect_signs_in_stores_tokens_and_is_active() {
    let w = world(default_config(), "").await;
    let dialog = w.app.get("/connections/new?component=testauth").await;
    assert!(dialog.body.contains(&format!("{}/oauth2/callback", w.app.base)), "the redirect URI is shown");
    assert!(dialog.body.contains("Connect with Test Auth"), "{}", dialog.body);

    let done = sign_in(&w, "Test account", &[("scope", "write"), ("new_tags", "oauth")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(location(&done), "/");

    // The provider saw a correct request: PKCE S256, both scopes, the state.
    let asked = w.provider.last_authorize().expect("an authorization request");
    assert_eq!(asked.param("code_challenge_method"), Some("S256"));
    assert_eq!(asked.param("scope"), Some("read write"));
    let exchange = w.provider.last_token_request().expect("a token request");
    assert_eq!(exchange.grant_type(), Some("authorization_code"));
    assert!(
        exchange.form_value("code_verifier").is_some_and(|v| v.len() >= 43),
        "the verifier went to the token endpoint"
    );
    assert!(
        !asked.params.iter().any(|(k, _)| k == "code_verifier"),
        "the verifier never went through the browser"
    );

    let ids = w.app.connection_ids().await;
    assert_eq!(ids.len(), 1);
    let list = w.app.get("/").await;
    let (badge, reason) = status_of(&list, ids[0]);
    assert_eq!(badge, "ACTIVE", "{reason}");
    assert!(w.provider.me_requests() >= 1, "the check used the access token");
    let stored = w.app.stored(ids[0]).unwrap();
    assert_eq!(stored.tags, vec!["oauth".to_owned()]);
    // No token in the connection's own fields, nor in any page.
    for token in w.provider.valid_access_tokens().iter().chain(w.provider.valid_refresh_tokens().iter()) {
        assert!(!list.body.contains(token.as_str()));
        assert!(!stored.parameters.contains(token.as_str()));
    }
    assert!(
        list.text_of(&format!("#connection-{} .token-state", ids[0])).starts_with("token expires"),
        "the row shows the token's expiry"
    );
    let edit = w.app.get(&format!("/connections/{}/edit", ids[0])).await;
    assert!(edit.text_of("#token-state").contains("access token expires"), "{}", edit.body);
    assert!(!edit.body.contains(CLIENT_SECRET));
    let audit: Vec<String> = w.app.audit_rows().into_iter().map(|r| r.action).collect();
    assert!(audit.contains(&"connection_connect".to_owned()), "{audit:?}");
}

#[actix_web::test]
async fn a_refused_or_failed_sign_in_says_why_and_saves_nothing() {
    for (case, change, expected) in [
        (
            "access_denied",
            Box::new(|c: &mut ProviderConfig| c.outcome = AuthorizeOutcome::Deny)
                as Box<dyn Fn(&mut ProviderConfig)>,
            "Access was not granted",
        ),
        (
            "invalid_scope",
            Box::new(|c: &mut ProviderConfig| c.outcome = AuthorizeOutcome::InvalidScope),
            "refused the scopes",
        ),
        (
            "iss mismatch",
            Box::new(|c: &mut ProviderConfig| c.iss = Iss::Wrong("https://evil.example".into())),
            "another authorization server",
        ),
        (
            "200 with error",
            Box::new(|c: &mut ProviderConfig| c.error_style = ErrorStyle::InsideHttp200),
            "refused",
        ),
    ] {
        let w = world(default_config(), "").await;
        w.provider.configure(|c| change(c));
        if case == "200 with error" {
            // A code that no longer works makes the token endpoint refuse.
            w.provider.configure(|c| c.code_lifetime = Duration::ZERO);
        }
        let page = sign_in(&w, "Refused", &[]).await;
        assert!(page.status.is_client_error() || page.status.is_server_error(), "{case}: {}", page.status);
        assert!(page.text_of("#oauth-message").contains(expected), "{case}: {}", page.body);
        assert!(w.app.connection_ids().await.is_empty(), "{case}: nothing saved");
    }
}

#[actix_web::test]
async fn a_wrong_client_secret_is_named() {
    let w = world(default_config(), "").await;
    w.provider.configure(|c| c.clients[0].secret = "another".into());
    let page = sign_in(&w, "Wrong secret", &[]).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(page.text_of("#oauth-message").contains("refused the client id or secret"), "{}", page.body);
    assert!(!page.body.contains(CLIENT_SECRET));
    assert!(w.app.connection_ids().await.is_empty());
}

#[actix_web::test]
async fn forged_replayed_expired_and_other_peoples_states_change_nothing() {
    let w = world(default_config(), "").await;
    // Forged.
    let page = w.app.get("/oauth2/callback?code=x&state=forged").await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert_eq!(w.provider.code_exchanges(), 0);

    // Another person's: a second browser signed in as someone else.
    let started = click_connect(&w.app, "Mine", &[]).await;
    let back = follow_to_provider(&to_provider(&started)).await;
    let callback = back.headers()["location"].to_str().unwrap().strip_prefix(&w.app.base).unwrap().to_owned();
    let other = w.app.client_as("other@plugboard.test", plugboard::accounts::Role::Member).await;
    let page = w.app.get_as(&other, &callback).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    assert!(page.body.contains("another browser session"), "{}", page.body);
    assert_eq!(w.provider.code_exchanges(), 0);

    // The rightful callback still works, once.
    let page = w.app.get(&callback).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let replay = w.app.get(&callback).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(replay.body.contains("already finished"), "{}", replay.body);
    assert_eq!(w.provider.code_exchanges(), 1);
    assert_eq!(w.app.connection_ids().await.len(), 1);

    // Expired: an attempt older than ten minutes.
    let started = click_connect(&w.app, "Late", &[]).await;
    let back = follow_to_provider(&to_provider(&started)).await;
    let callback = back.headers()["location"].to_str().unwrap().strip_prefix(&w.app.base).unwrap().to_owned();
    {
        use diesel::prelude::*;
        use plugboard::db::schema::oauth_attempts;
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(11);
        diesel::update(oauth_attempts::table)
            .set(oauth_attempts::expires_at.eq(past))
            .execute(&mut w.app.db())
            .unwrap();
    }
    let page = w.app.get(&callback).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    assert!(page.body.contains("expired"), "{}", page.body);
    assert_eq!(w.app.connection_ids().await.len(), 1);
}

/// Makes the tokens of `id` due for refresh now.
fn make_due(app: &TestApp, id: i64) {
    use diesel::prelude::*;
    use plugboard::db::schema::connection_tokens;
    let now = chrono::Utc::now().naive_utc() - chrono::TimeDelta::seconds(1);
    diesel::update(connection_tokens::table.find(id))
        .set(connection_tokens::refresh_due_at.eq(now))
        .execute(&mut app.db())
        .unwrap();
}

#[actix_web::test]
async fn tokens_are_refreshed_ahead_of_expiry_with_and_without_rotation() {
    let w = world(default_config(), "").await;
    sign_in(&w, "Refreshing", &[]).await;
    let id = w.app.connection_ids().await[0];
    let version_before = w.app.stored(id).unwrap().version;
    let first_refresh_token = w.provider.valid_refresh_tokens()[0].clone();

    // Rotation: a new refresh token replaces the old one.
    make_due(&w.app, id);
    plugboard::jobs::run_refreshes(&w.app.state, "test", 2).await.unwrap();
    assert_eq!(w.provider.refreshes(), 1);
    let rotated = w.provider.valid_refresh_tokens();
    assert_eq!(rotated.len(), 1);
    assert_ne!(rotated[0], first_refresh_token);
    assert_eq!(w.app.stored(id).unwrap().version, version_before, "a refresh never changes the edit version");
    // Not due again: nothing more.
    plugboard::jobs::run_refreshes(&w.app.state, "test", 2).await.unwrap();
    assert_eq!(w.provider.refreshes(), 1);

    // Without rotation the old refresh token is kept and still works.
    w.provider.configure(|c| c.rotation = Rotation::Keep);
    make_due(&w.app, id);
    plugboard::jobs::run_refreshes(&w.app.state, "test", 2).await.unwrap();
    make_due(&w.app, id);
    plugboard::jobs::run_refreshes(&w.app.state, "test", 2).await.unwrap();
    assert_eq!(w.provider.refreshes(), 3);
    assert_eq!(w.provider.failed_token_requests(), 0);

    // The check after a refresh uses the new access token.
    w.app.post(&format!("/connections/{id}/check"), &[("environment", "development")]).await;
    let (badge, reason) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "{reason}");
    let actions: Vec<String> = w.app.audit_rows().into_iter().map(|r| r.action).collect();
    assert_eq!(actions.iter().filter(|a| *a == "token_refresh").count(), 3, "{actions:?}");
}

/// Test (a check) renews tokens that are due before it proves them, and
/// leaves alone those that are not.
#[actix_web::test]
async fn a_check_renews_due_tokens_first_and_only_those() {
    let w = world(default_config(), "").await;
    sign_in(&w, "Checked after renewal", &[]).await;
    let id = w.app.connection_ids().await[0];
    let path = format!("/connections/{id}/check");
    let check = || w.app.post(&path, &[("environment", "development")]);
    check().await;
    assert_eq!(w.provider.refreshes(), 0, "not due: the check uses the stored token");
    make_due(&w.app, id);
    check().await;
    assert_eq!(w.provider.refreshes(), 1, "due: renewed before the check");
    let (badge, reason) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "{reason}");
    check().await;
    assert_eq!(w.provider.refreshes(), 1, "renewed tokens are not due again");
}

#[actix_web::test]
async fn a_revoked_refresh_token_needs_a_reconnect_which_keeps_the_connection() {
    let w = world(default_config(), "").await;
    sign_in(&w, "Revoked", &[("new_tags", "keep-me")]).await;
    let id = w.app.connection_ids().await[0];
    w.provider.revoke_all();
    make_due(&w.app, id);
    plugboard::jobs::run_refreshes(&w.app.state, "test", 2).await.unwrap();
    let (badge, reason) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.starts_with("reconnect needed: the provider refused the refresh token"), "{reason}");
    let list = w.app.get("/").await;
    assert_eq!(list.count(&format!("#connection-{id} button.reconnect-row")), 1, "the row offers Reconnect");

    // Reconnect from the edit view: same id, name and tags, ACTIVE again.
    let token = w.app.csrf().await;
    let started = w
        .app
        .post_raw(
            "/connections/oauth2/connect",
            &[("csrf_token", &token), ("environment", "development"), ("connection", &id.to_string())],
        )
        .await;
    let back = follow_to_provider(&to_provider(&started)).await;
    let callback = back.headers()["location"].to_str().unwrap().strip_prefix(&w.app.base).unwrap().to_owned();
    let done = w.app.get(&callback).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(w.app.connection_ids().await, vec![id]);
    let stored = w.app.stored(id).unwrap();
    assert_eq!(stored.name, "Revoked");
    assert_eq!(stored.tags, vec!["keep-me".to_owned()]);
    let (badge, reason) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "{reason}");
}

#[actix_web::test]
async fn the_provider_being_down_keeps_the_connection_and_retries_later() {
    let w = world(default_config(), "").await;
    sign_in(&w, "Flaky", &[]).await;
    let id = w.app.connection_ids().await[0];
    let (badge, _) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "ACTIVE");
    // The token endpoint stops answering: point the catalog... simplest is
    // to drop the provider, so its port refuses connections.
    let World { app, provider, _catalog } = w;
    drop(provider);
    tokio::time::sleep(Duration::from_millis(200)).await;
    make_due(&app, id);
    plugboard::jobs::run_refreshes(&app.state, "test", 2).await.unwrap();
    let (badge, _) = status_of(&app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "a network failure does not mark the connection NOT ACTIVE");
    use diesel::prelude::*;
    use plugboard::db::schema::connection_tokens;
    let (failures, due): (i32, Option<chrono::NaiveDateTime>) = connection_tokens::table
        .find(id)
        .select((connection_tokens::refresh_failures, connection_tokens::refresh_due_at))
        .first(&mut app.db())
        .unwrap();
    assert_eq!(failures, 1);
    assert!(due.is_some_and(|d| d > chrono::Utc::now().naive_utc()), "retried later");
}

#[actix_web::test]
async fn an_operators_oauth_app_means_only_connect() {
    let provider = Provider::start(default_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let catalog_path = dir.path().join("catalog.toml");
    std::fs::write(&catalog_path, catalog(&provider, "")).unwrap();
    let apps_path = dir.path().join("apps.toml");
    std::fs::write(
        &apps_path,
        format!("[testauth.development]\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\n"),
    )
    .unwrap();
    let app = common::spawn_with(|s| {
        s.catalog = Some(catalog_path.clone());
        s.oauth_apps = Some(apps_path.clone());
    })
    .await;
    provider.configure(|c| c.clients[0].redirect_uris = vec![format!("{}/oauth2/callback", app.base)]);
    let w = World { app, provider, _catalog: dir };

    let dialog = w.app.get("/connections/new?component=testauth").await;
    assert_eq!(dialog.count("#field-client_id"), 0, "no client id asked");
    assert_eq!(dialog.count("#field-client_secret"), 0, "no client secret asked");
    assert!(dialog.body.contains("Your operator set up"), "{}", dialog.body);
    assert!(!dialog.body.contains(CLIENT_SECRET));

    let token = w.app.csrf().await;
    let started = w
        .app
        .post_raw(
            "/connections/oauth2/connect",
            &[
                ("csrf_token", token.as_str()),
                ("component", "testauth"),
                ("auth_method", "oauth2"),
                ("environment", "development"),
                ("name", "Operator app"),
            ],
        )
        .await;
    let back = follow_to_provider(&to_provider(&started)).await;
    let callback = back.headers()["location"].to_str().unwrap().strip_prefix(&w.app.base).unwrap().to_owned();
    assert_eq!(w.app.get(&callback).await.status, StatusCode::SEE_OTHER);
    let id = w.app.connection_ids().await[0];
    let (badge, reason) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "{reason}");
    assert!(w.app.stored(id).unwrap().secrets.is_none(), "the operator's secret is not copied into the row");
    // In another environment there is no operator app: the fields are asked.
    w.app.switch_environment("staging").await;
    let dialog = w.app.get("/connections/new?component=testauth").await;
    assert_eq!(dialog.count("#field-client_id"), 1);
}

#[actix_web::test]
async fn two_processes_refreshing_at_once_make_one_refresh_and_share_its_token() {
    let w = world(default_config(), "").await;
    sign_in(&w, "Shared", &[]).await;
    let id = w.app.connection_ids().await[0];
    let catalog_path = w._catalog.path().join("catalog.toml");
    let sibling = common::spawn_sibling(&w.app, |s| s.catalog = Some(catalog_path)).await;
    // The provider takes its time, so both processes are in it together.
    w.provider.configure(|c| c.refresh_delay = Duration::from_millis(600));
    make_due(&w.app, id);
    let (a, b) = tokio::join!(
        plugboard::jobs::run_refreshes(&w.app.state, "process-a", 1),
        plugboard::jobs::run_refreshes(&sibling.state, "process-b", 1),
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(w.provider.refreshes(), 1, "exactly one refresh reached the provider");
    // Both then check with the one new access token.
    w.provider.configure(|c| c.refresh_delay = Duration::ZERO);
    for app in [&w.app, &sibling] {
        app.post(&format!("/connections/{id}/check"), &[("environment", "development")]).await;
        let (badge, reason) = status_of(&app.get("/").await, id);
        assert_eq!(badge, "ACTIVE", "{reason}");
    }
    assert_eq!(w.provider.refreshes(), 1);
    assert_eq!(w.provider.failed_token_requests(), 0);
}

#[actix_web::test]
async fn provider_quirks_come_from_the_catalog() {
    let mut config =
        default_config().with_token_field("instance_url", serde_json::json!("https://eu12.example.test"));
    config.scope_separator = oauth_provider::ScopeSeparator::Comma;
    config.clients[0].auth = oauth_provider::ClientAuth::Body;
    config.extra_callback_params =
        vec![("realmId".into(), "4620816365".into()), ("unasked".into(), "dropped".into())];
    let extra = r#"scope_separator = ","
token_auth = "body"
authorize_params = { access_type = "offline", prompt = "consent" }
token_fields = { instance_url = "/instance_url" }
callback_params = ["realmId"]"#;
    let w = world(config, extra).await;
    let done = sign_in(&w, "Quirky", &[("scope", "write")]).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    let asked = w.provider.last_authorize().unwrap();
    assert_eq!(asked.param("scope"), Some("read,write"));
    assert_eq!(asked.param("access_type"), Some("offline"));
    assert_eq!(asked.param("prompt"), Some("consent"));
    let exchange = w.provider.last_token_request().unwrap();
    assert!(exchange.basic_credentials().is_none(), "client authentication in the body");
    assert_eq!(exchange.form_value("client_id"), Some(CLIENT_ID));
    let id = w.app.connection_ids().await[0];
    let parameters = w.app.stored(id).unwrap().parameters;
    assert!(parameters.contains("\"instance_url\":\"https://eu12.example.test\""), "{parameters}");
    assert!(
        parameters.contains("\"realmId\":\"4620816365\""),
        "the callback's realmId is kept: {parameters}"
    );
    assert!(!parameters.contains("unasked"), "only the values the catalog names are kept: {parameters}");
    let (badge, reason) = status_of(&w.app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "{reason}");
}

/// A client-credentials connection (RFC 6749 4.4) keeps the token its check
/// was issued, sealed beside the sign-in tokens, and renews it ahead of
/// expiry with the same job and lease; a client the provider stops
/// accepting turns NOT ACTIVE with the provider's words.
#[actix_web::test]
async fn client_credentials_share_the_token_storage_and_renewal() {
    let provider = Provider::start(default_config()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(
        &path,
        format!(
            "[machine]\nname = \"Machine API\"\ncategory = \"Testing\"\nbase_url = \"{base}\"\n\n\
             [machine.auth.client]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"{token}\"\n\
             scopes = [\"read\"]\ntoken_auth = \"body\"\n",
            base = provider.base_url(),
            token = provider.token_url(),
        ),
    )
    .unwrap();
    let app = common::spawn_with(|s| s.catalog = Some(path.clone())).await;
    let id = app
        .create("machine", "Nightly export", &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .await;
    let (badge, reason) = status_of(&app.get("/").await, id);
    assert_eq!(badge, "ACTIVE", "{reason}");
    assert_eq!(provider.client_credentials_grants(), 1);
    let asked = provider.last_token_request().unwrap();
    assert!(asked.basic_credentials().is_none(), "the catalog asked for the client in the body");
    assert_eq!(asked.form_value("scope"), Some("read"));

    // Stored sealed, with its expiry: the row says when it runs out.
    let issued = provider.valid_access_tokens();
    assert_eq!(issued.len(), 1);
    let sealed: Vec<Vec<u8>> = {
        use diesel::prelude::*;
        use plugboard::db::schema::connection_tokens;
        connection_tokens::table.select(connection_tokens::sealed).load(&mut app.db()).unwrap()
    };
    assert_eq!(sealed.len(), 1, "the check's token is kept");
    let token = issued[0].as_bytes();
    assert!(!sealed[0].windows(token.len()).any(|w| w == token), "the token is sealed");
    let page = app.get("/").await;
    assert!(page.text_of(&format!("#connection-{id} .token-state")).contains("expires"), "{}", page.body);

    // Renewed by the token job, not by a person: the edit version stays.
    let version = app.stored(id).unwrap().version;
    make_due(&app, id);
    plugboard::jobs::run_refreshes(&app.state, "test", 2).await.unwrap();
    assert_eq!(provider.client_credentials_grants(), 2);
    assert_eq!(provider.refreshes(), 0, "there is no refresh token to use");
    assert_eq!(app.stored(id).unwrap().version, version);
    let actions: Vec<String> = app.audit_rows().into_iter().map(|r| r.action).collect();
    assert!(actions.contains(&"token_refresh".to_owned()), "{actions:?}");

    // The provider stops accepting the client: NOT ACTIVE, and why.
    provider.configure(|c| c.clients[0].secret = "rotated-by-the-provider".into());
    make_due(&app, id);
    plugboard::jobs::run_refreshes(&app.state, "test", 2).await.unwrap();
    let (badge, reason) = status_of(&app.get("/").await, id);
    assert_eq!(badge, "NOT ACTIVE");
    assert_eq!(reason, "rejected by the service: HTTP 401 (invalid_client)");
}
