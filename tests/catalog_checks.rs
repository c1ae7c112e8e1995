//! Built-in components checked against local stand-ins that answer as the
//! real services document (status, body and error shape), one or two per
//! kind of authorization: each gives the right ACTIVE / NOT ACTIVE reason,
//! with the credential placed where that service expects it.
//!
//! Only the base URL (and for OAuth2 the endpoints) is pointed at the
//! stand-in; methods, fields and test requests are the built-in ones.

mod common;
mod oauth_provider;
mod standin;

use common::TestApp;
use oauth_provider::{Client, ClientAuth, Provider, ProviderConfig};
use reqwest::StatusCode;
use serde_json::json;
use standin::{Recorded, Reply, StandIn, basic_auth, verify_sigv4};

/// Points built-in components at `base` and nothing else.
async fn spawn_pointing(entries: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, entries).unwrap();
    let app = common::spawn_with(|s| {
        s.catalog = Some(path.clone());
        s.check_timeout = 2;
    })
    .await;
    (app, dir)
}

async fn shown(app: &TestApp, id: i64) -> (String, String) {
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let row = format!("#connection-{id}");
    (page.text_of(&format!("{row} .badge")), page.text_of(&format!("{row} .status-reason")))
}

/// Saves a good and a bad credential; the stand-in accepts only `good`.
async fn good_and_bad(
    app: &TestApp,
    component: &str,
    good: &[(&str, &str)],
    bad: &[(&str, &str)],
) -> ((String, String), (String, String)) {
    let ok = app.create(component, "good", good).await;
    let refused = app.create(component, "bad", bad).await;
    (shown(app, ok).await, shown(app, refused).await)
}

fn assert_active(shown: &(String, String)) {
    assert_eq!(shown.0, "ACTIVE", "{}", shown.1);
    assert!(shown.1.starts_with("credentials accepted"), "{}", shown.1);
}

fn assert_refused(shown: &(String, String), reason: &str) {
    assert_eq!(shown.0, "NOT ACTIVE", "{}", shown.1);
    assert_eq!(shown.1, reason);
}

/// API key in a header: Postmark's server token.
#[actix_web::test]
async fn postmark_server_token_in_its_header() {
    let service =
        StandIn::start(|r: &Recorded| match (r.path.as_str(), r.header("x-postmark-server-token")) {
            ("/server", Some("pm-good-token")) => Reply::json(200, json!({"ID": 1, "Name": "Production"})),
            _ => Reply::json(
                401,
                json!({"ErrorCode": 10, "Message": "Request does not contain a valid Server token."}),
            ),
        })
        .await;
    let (app, _dir) = spawn_pointing(&format!("[postmark]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) =
        good_and_bad(&app, "postmark", &[("api_key", "pm-good-token")], &[("api_key", "pm-revoked-token")])
            .await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 401");
    assert_eq!(service.last().header("accept"), Some("application/json"));
}

/// API key in the query: Gumroad's access_token, with `success` in the body.
#[actix_web::test]
async fn gumroad_access_token_in_the_query() {
    let service =
        StandIn::start(|r: &Recorded| match (r.path.as_str(), r.query_param("access_token").as_deref()) {
            ("/user", Some("gum-good")) => {
                Reply::json(200, json!({"success": true, "user": {"name": "Ada"}}))
            }
            _ => Reply::json(401, json!({"success": false, "message": "The access token is invalid"})),
        })
        .await;
    let (app, _dir) = spawn_pointing(&format!("[gumroad]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) =
        good_and_bad(&app, "gumroad", &[("api_key", "gum-good")], &[("api_key", "gum-bad")]).await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 401 (The access token is invalid)");
}

/// Basic: Freshdesk's API key as the user name, `X` as the password.
#[actix_web::test]
async fn freshdesk_api_key_as_basic_user_name() {
    let expected = basic_auth("fd-good-key", "X");
    let service = StandIn::start(move |r: &Recorded| match (r.path.as_str(), r.header("authorization")) {
        ("/agents/me", Some(auth)) if auth == expected => Reply::json(200, json!({"id": 7, "contact": {}})),
        _ => Reply::json(401, json!({"code": "invalid_credentials", "message": "You have to be logged in to perform this action."})),
    })
    .await;
    let (app, _dir) = spawn_pointing(&format!("[freshdesk]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(
        &app,
        "freshdesk",
        &[("domain", "acme"), ("username", "fd-good-key")],
        &[("domain", "acme"), ("username", "fd-old-key")],
    )
    .await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 401 (invalid_credentials)");
}

/// Bearer: Vercel's access token, refused with 403 and its error object.
#[actix_web::test]
async fn vercel_bearer_token() {
    let service = StandIn::start(|r: &Recorded| match (r.path.as_str(), r.header("authorization")) {
        ("/v2/user", Some("Bearer vc-good")) => Reply::json(200, json!({"user": {"id": "u1"}})),
        _ => Reply::json(
            403,
            json!({"error": {"code": "forbidden", "message": "Not authorized", "invalidToken": true}}),
        ),
    })
    .await;
    let (app, _dir) = spawn_pointing(&format!("[vercel]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(&app, "vercel", &[("token", "vc-good")], &[("token", "vc-bad")]).await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 403 (forbidden)");
}

/// AWS: SES GetAccount, signed for the region setting, verified.
#[actix_web::test]
async fn amazon_ses_signed_for_its_region() {
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let service = StandIn::start(|r: &Recorded| match verify_sigv4(r, SECRET, None) {
        Ok(sig) if r.path == "/v2/email/account" && sig.region == "eu-west-1" && sig.service == "ses" => {
            Reply::json(200, json!({"SendingEnabled": true, "ProductionAccessEnabled": true}))
        }
        _ => Reply::json(403, json!({"message": "The request signature we calculated does not match the signature you provided."}))
            .with_header("x-amzn-ErrorType", "SignatureDoesNotMatchException"),
    })
    .await;
    let (app, _dir) = spawn_pointing(&format!("[amazon_ses]\nbase_url = \"{}\"\n", service.url())).await;
    let key = ("access_key_id", "AKIAIOSFODNN7EXAMPLE");
    let (good, bad) = good_and_bad(
        &app,
        "amazon_ses",
        &[("region", "eu-west-1"), key, ("secret_access_key", SECRET)],
        &[("region", "eu-west-1"), key, ("secret_access_key", "not-the-secret")],
    )
    .await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 403");
}

/// Custom: Telegram's bot token in the path, `ok` in the body.
#[actix_web::test]
async fn telegram_bot_token_in_the_path() {
    let service = StandIn::start(|r: &Recorded| match r.path.as_str() {
        "/bot123456:AAgood/getMe" => {
            Reply::json(200, json!({"ok": true, "result": {"id": 123456, "is_bot": true}}))
        }
        _ => Reply::json(401, json!({"ok": false, "error_code": 401, "description": "Unauthorized"})),
    })
    .await;
    let (app, _dir) = spawn_pointing(&format!("[telegram_bot]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(
        &app,
        "telegram_bot",
        &[("bot_token", "123456:AAgood")],
        &[("bot_token", "123456:AAbad")],
    )
    .await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 401 (Unauthorized)");
    let page = app.get("/").await;
    assert!(!page.body.contains("AAbad"), "the token is in the path, never on the page");
}

/// Custom headers: Harvest's token with its account ID.
#[actix_web::test]
async fn harvest_token_with_account_header() {
    let service = StandIn::start(|r: &Recorded| {
        match (r.path.as_str(), r.header("authorization"), r.header("harvest-account-id")) {
            ("/users/me", Some("Bearer hv-good"), Some("42")) => Reply::json(200, json!({"id": 1, "email": "a@b.test"})),
            _ => Reply::json(401, json!({"error": "invalid_token", "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons."})),
        }
    })
    .await;
    let (app, _dir) = spawn_pointing(&format!("[harvest]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(
        &app,
        "harvest",
        &[("token", "hv-good"), ("account_id", "42")],
        &[("token", "hv-good"), ("account_id", "43")],
    )
    .await;
    assert_active(&good);
    assert_refused(&bad, "rejected by the service: HTTP 401 (invalid_token)");
}

/// A documented read-only POST that answers 200 to a bad key: Cohere.
#[actix_web::test]
async fn cohere_check_api_key_answers_200_either_way() {
    let service = StandIn::start(|r: &Recorded| match (r.method.as_str(), r.header("authorization")) {
        ("POST", Some("Bearer co-good")) => Reply::json(200, json!({"valid": true, "organization_id": "o1"})),
        _ => Reply::json(200, json!({"valid": false})),
    })
    .await;
    let (app, _dir) = spawn_pointing(&format!("[cohere]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(&app, "cohere", &[("token", "co-good")], &[("token", "co-bad")]).await;
    assert_active(&good);
    assert_refused(&bad, "unexpected answer: `valid` is false instead of true");
    assert_eq!(service.last().path, "/v1/check-api-key");
}

/// A service with no read-only request says so instead of pretending.
#[actix_web::test]
async fn a_component_without_a_read_only_request_cannot_be_checked() {
    let (app, _dir) = spawn_pointing("").await;
    let id = app.create("perplexity", "pplx", &[("token", "pplx-abc123")]).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert_eq!(
        reason,
        "cannot be checked: Perplexity's API has no read-only request: every call is a billed completion"
    );
}

const CLIENT_ID: &str = "plugboard-catalog";
const CLIENT_SECRET: &str = "catalog-client-secret";

/// The whole OAuth2 sign-in for a built-in component whose endpoints and
/// base URL point at the local authorization server, which accepts only
/// the client authentication `auth`.
async fn oauth_sign_in(component: &str, auth: ClientAuth) -> (String, String) {
    let provider = Provider::start(ProviderConfig::for_client(
        Client::new(CLIENT_ID, CLIENT_SECRET, "").with_auth(auth),
    ))
    .await;
    let entries = format!(
        "[{component}]\nbase_url = \"{base}\"\n[{component}.auth.oauth2]\nauthorization_url = \"{authorize}\"\ntoken_url = \"{token}\"\n",
        base = provider.base_url(),
        authorize = provider.authorize_url(),
        token = provider.token_url(),
    );
    let (app, _dir) = spawn_pointing(&entries).await;
    provider.configure(|c| c.clients[0].redirect_uris = vec![format!("{}/oauth2/callback", app.base)]);
    let token = app.csrf().await;
    let started = app
        .post_raw(
            "/connections/oauth2/connect",
            &[
                ("csrf_token", token.as_str()),
                ("component", component),
                ("auth_method", "oauth2"),
                ("environment", "development"),
                ("name", "signed in"),
                ("field:client_id", CLIENT_ID),
                ("field:client_secret", CLIENT_SECRET),
            ],
        )
        .await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let url = started.attr("#continue-to-provider", "href").expect("a link to the provider");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = browser.get(&url).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let done = app.get(callback.strip_prefix(&app.base).unwrap()).await;
    let asked = provider.last_authorize().expect("an authorization request");
    let expected = match component {
        "spotify" => "user-read-email user-read-private",
        _ => "accounts:read forms:read responses:read offline",
    };
    assert_eq!(asked.param("scope"), Some(expected), "the catalog's scopes");
    match app.connection_ids().await.first() {
        Some(id) => shown(&app, *id).await,
        None => ("not saved".to_owned(), done.body),
    }
}

/// OAuth2 with HTTP Basic client authentication: Spotify.
#[actix_web::test]
async fn spotify_signs_in_with_basic_client_authentication() {
    let (badge, reason) = oauth_sign_in("spotify", ClientAuth::Basic).await;
    assert_eq!(badge, "ACTIVE", "{reason}");
    // A server that wanted the secret in the body would refuse this one.
    let (badge, _) = oauth_sign_in("spotify", ClientAuth::Body).await;
    assert_ne!(badge, "ACTIVE");
}

/// OAuth2 with the client secret in the form body: Typeform.
#[actix_web::test]
async fn typeform_signs_in_with_the_secret_in_the_body() {
    let (badge, reason) = oauth_sign_in("typeform", ClientAuth::Body).await;
    assert_eq!(badge, "ACTIVE", "{reason}");
    let (badge, _) = oauth_sign_in("typeform", ClientAuth::Basic).await;
    assert_ne!(badge, "ACTIVE");
}
