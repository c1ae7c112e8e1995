//! The Connections API end to end, on SQLite and (with
//! PLUGBOARD_TEST_POSTGRES) PostgreSQL: tokens made on the admin page,
//! every route with a good token, every refusal, environments kept apart,
//! revocation seen by a second process, usage on the edit view and the
//! Delete confirmation, OAuth2 tokens refreshed once for many callers, and
//! the OpenAPI document checked against the routes and the answers.

mod common;
mod oauth_provider;

use std::time::Duration;

use common::TestApp;
use oauth_provider::{Client, Provider, ProviderConfig};
use reqwest::StatusCode;
use serde_json::Value;

const GITHUB_TOKEN: &str = "ghp_apiTestSecretValue0123456789";

/// Creates a token on the API tokens page; returns its secret.
async fn make_token(app: &TestApp, name: &str, environment: &str, extra: &[(&str, &str)]) -> String {
    let mut form = vec![("name", name), ("environment", environment), ("expiry", "30")];
    form.extend_from_slice(extra);
    let page = app.post("/admin/api-tokens", &form).await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let secret = page.text_of("#new-token-value");
    assert!(secret.starts_with("pbt_") && secret.len() > 40, "{secret}");
    secret
}

const ALL: [(&str, &str); 3] =
    [("permission", "read_metadata"), ("permission", "read_credentials"), ("permission", "run_checks")];

struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    json: Value,
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    consumer: Option<&str>,
) -> Answer {
    // A client without the test's session: the API must not need one.
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let mut request = client.request(method, app.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(consumer) = consumer {
        request = request.header("X-Plugboard-Consumer", consumer);
    }
    let response = request.send().await.expect("API call");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap();
    let json = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON from {path}: {body}"));
    Answer { status, headers, json }
}

async fn get(app: &TestApp, path: &str, token: &str) -> Answer {
    call(app, reqwest::Method::GET, path, Some(token), None).await
}

fn assert_error(answer: &Answer, status: StatusCode, code: &str) {
    assert_eq!(answer.status, status, "{}", answer.json);
    assert_eq!(answer.json["error"], code, "{}", answer.json);
    assert!(answer.json["message"].as_str().is_some_and(|m| m.len() > 20), "a message: {}", answer.json);
    assert!(!answer.json.to_string().contains(GITHUB_TOKEN), "no credential in an error");
}

#[actix_web::test]
async fn every_route_answers_a_good_token_and_keeps_to_its_environment() {
    let app = common::spawn().await;
    let id = app.create("github", "Deploy bot", &[("token", GITHUB_TOKEN), ("new_tags", "ci")]).await;
    let token = make_token(&app, "n8n production", "development", &ALL).await;

    let list = get(&app, "/api/v1/connections", &token).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.json);
    assert_eq!(list.json["total"], 1);
    assert_eq!(list.json["connections"][0]["name"], "Deploy bot");
    assert_eq!(list.json["connections"][0]["secret_fields"][0], "token");
    assert!(!list.json.to_string().contains(GITHUB_TOKEN), "metadata never holds a secret");
    let filtered = get(&app, "/api/v1/connections?component=slack", &token).await;
    assert_eq!(filtered.json["total"], 0);
    let searched = get(&app, "/api/v1/connections?search=deploy&tag=ci&status=not_active", &token).await;
    assert_eq!(searched.json["total"], 1, "{}", searched.json);

    let one = get(&app, &format!("/api/v1/connections/{id}"), &token).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.json["tags"][0], "ci");

    let creds = call(
        &app,
        reqwest::Method::GET,
        &format!("/api/v1/connections/{id}/credentials"),
        Some(&token),
        Some("invoice-sync"),
    )
    .await;
    assert_eq!(creds.status, StatusCode::OK, "{}", creds.json);
    assert_eq!(creds.json["fields"]["token"], GITHUB_TOKEN);
    assert_eq!(creds.json["kind"], "bearer");
    assert_eq!(creds.headers["cache-control"], "no-store");

    let checked =
        call(&app, reqwest::Method::POST, &format!("/api/v1/connections/{id}/check"), Some(&token), None)
            .await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.json);
    assert_eq!(checked.json["status"], "not_active", "checks may not reach github.com from the tests");
    // The check is the token's, in the audit trail, not the schedule's.
    let by_api: Vec<_> = app
        .audit_rows()
        .into_iter()
        .filter(|e| e.action == "connection_check" && e.details.contains("\"api\""))
        .collect();
    assert_eq!(by_api.len(), 1, "{by_api:?}");
    assert_eq!(by_api[0].actor, "API token \u{201c}n8n production\u{201d}", "{by_api:?}");

    // The audit trail has the read, by the token, naming the consumer.
    let read =
        app.audit_rows().into_iter().find(|e| e.action == "api_credentials_read").expect("an audit row");
    assert!(read.actor.contains("n8n production") && read.details.contains("invoice-sync"), "{read:?}");
    assert!(!read.details.contains(GITHUB_TOKEN));

    // Another environment's connections are not there for this token.
    app.switch_environment("staging").await;
    let staging = app.create("github", "Staging bot", &[("token", GITHUB_TOKEN)]).await;
    let staging_token = make_token(&app, "staging runner", "staging", &ALL).await;
    for path in ["", "/credentials"] {
        assert_error(
            &get(&app, &format!("/api/v1/connections/{staging}{path}"), &token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            &get(&app, &format!("/api/v1/connections/{id}{path}"), &staging_token).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
    assert_eq!(get(&app, "/api/v1/connections", &staging_token).await.json["total"], 1);
    assert_eq!(get(&app, "/api/v1/connections", &token).await.json["connections"][0]["id"], id);
}

#[actix_web::test]
async fn every_refusal_is_json_that_says_what_to_do() {
    let app = common::spawn_with(|s| s.api_rate_limit = 5).await;
    let id = app.create("github", "Deploy bot", &[("token", GITHUB_TOKEN)]).await;
    let path = format!("/api/v1/connections/{id}/credentials");

    let missing = call(&app, reqwest::Method::GET, &path, None, None).await;
    assert_error(&missing, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(missing.headers.contains_key("www-authenticate"));
    assert_error(&get(&app, &path, "pbt_0000").await, StatusCode::UNAUTHORIZED, "unauthorized");
    // The test's signed-in session does not open the API.
    let by_session = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(by_session.status(), StatusCode::UNAUTHORIZED);

    let reader = make_token(&app, "metadata only", "development", &[("permission", "read_metadata")]).await;
    let refused = get(&app, &path, &reader).await;
    assert_error(&refused, StatusCode::FORBIDDEN, "forbidden");
    assert!(refused.json["message"].as_str().unwrap().contains("read_credentials"), "{}", refused.json);
    let no_checks =
        call(&app, reqwest::Method::POST, &format!("/api/v1/connections/{id}/check"), Some(&reader), None)
            .await;
    assert!(no_checks.json["message"].as_str().unwrap().contains("run_checks"));

    // A token never opens a page.
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = browser.get(app.url("/")).bearer_auth(&reader).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "a page asks for a sign-in, whatever the token");

    // Limits: a token for Slack only does not see the GitHub connection.
    let slack_only =
        make_token(&app, "slack only", "development", &[ALL[0], ALL[1], ("component", "slack")]).await;
    assert_error(&get(&app, &path, &slack_only).await, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(get(&app, "/api/v1/connections", &slack_only).await.json["total"], 0);
    assert_error(&get(&app, "/api/v1/connections/999999", &reader).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &get(&app, "/api/v1/connections/not-a-number", &reader).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(&get(&app, "/api/v1/nothing", &reader).await, StatusCode::NOT_FOUND, "not_found");
    assert_error(
        &get(&app, "/api/v1/connections?per_page=5000", &reader).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    assert_error(
        &get(&app, "/api/v1/connections?status=broken", &reader).await,
        StatusCode::BAD_REQUEST,
        "bad_request",
    );
    let bad_consumer =
        call(&app, reqwest::Method::GET, "/api/v1/connections", Some(&reader), Some(&"x".repeat(300))).await;
    assert_error(&bad_consumer, StatusCode::BAD_REQUEST, "bad_request");

    // The rate limit: 5 a minute, then 429 with Retry-After.
    let limited = make_token(&app, "busy", "development", &ALL).await;
    for _ in 0..5 {
        assert_eq!(get(&app, "/api/v1/connections", &limited).await.status, StatusCode::OK);
    }
    let over = get(&app, "/api/v1/connections", &limited).await;
    assert_error(&over, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = over.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=12).contains(&wait), "{wait}");

    // Expired.
    {
        use diesel::prelude::*;
        use plugboard::db::schema::api_tokens;
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(1);
        diesel::update(api_tokens::table.filter(api_tokens::name.eq("metadata only")))
            .set(api_tokens::expires_at.eq(past))
            .execute(&mut app.db())
            .unwrap();
    }
    let expired = get(&app, "/api/v1/connections", &reader).await;
    assert_error(&expired, StatusCode::UNAUTHORIZED, "unauthorized");
    assert!(expired.json["message"].as_str().unwrap().contains("expired"));

    // No log line, page or error carried the secret: the stored token is a hash.
    let stored: Vec<String> = {
        use diesel::prelude::*;
        use plugboard::db::schema::api_tokens;
        api_tokens::table.select(api_tokens::token_hash).load(&mut app.db()).unwrap()
    };
    assert!(stored.iter().all(|h| h.len() == 64 && !h.contains("pbt_")));
    assert!(!stored.contains(&limited));
}

#[actix_web::test]
async fn a_revoked_token_is_refused_at_once_also_by_another_process() {
    let app = common::spawn().await;
    let id = app.create("github", "Deploy bot", &[("token", GITHUB_TOKEN)]).await;
    let token = make_token(&app, "to revoke", "development", &ALL).await;
    let sibling = common::spawn_sibling(&app, |_| {}).await;
    let path = format!("/api/v1/connections/{id}/credentials");
    assert_eq!(get(&app, &path, &token).await.status, StatusCode::OK);
    assert_eq!(get(&sibling, &path, &token).await.status, StatusCode::OK);

    let page = app.get("/admin/api-tokens").await;
    assert!(page.text_of("tr[data-token] .last-used") != "never", "last use is listed");
    let token_id = page.attr("tr[data-token]", "data-token").unwrap();
    let revoked = app.post(&format!("/admin/api-tokens/{token_id}/revoke"), &[]).await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert!(app.get("/admin/api-tokens").await.body.contains("REVOKED"));

    for process in [&app, &sibling] {
        let refused = get(process, &path, &token).await;
        assert_error(&refused, StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(refused.json["message"].as_str().unwrap().contains("revoked"));
    }
    let rows = app.audit_rows();
    assert!(
        rows.iter().any(|e| e.action == "api_token_create")
            && rows.iter().any(|e| e.action == "api_token_revoke")
    );
}

#[actix_web::test]
async fn usage_shows_on_the_edit_view_the_delete_confirmation_and_the_unused_filter() {
    let app = common::spawn().await;
    let used = app.create("github", "Used bot", &[("token", GITHUB_TOKEN)]).await;
    let idle = app.create("github", "Idle bot", &[("token", GITHUB_TOKEN)]).await;
    let token = make_token(&app, "n8n production", "development", &ALL).await;

    let edit = app.get(&format!("/connections/{used}/edit")).await;
    assert_eq!(edit.count("#no-consumers"), 1, "nobody used it yet");
    let confirm = app.get(&format!("/connections/{used}/delete")).await;
    assert_eq!(confirm.count("#recent-consumers"), 0);

    let path = format!("/api/v1/connections/{used}/credentials");
    call(&app, reqwest::Method::GET, &path, Some(&token), Some("invoice-sync")).await;
    call(&app, reqwest::Method::GET, &path, Some(&token), Some("invoice-sync")).await;
    call(&app, reqwest::Method::GET, &path, Some(&token), None).await;

    let edit = app.get(&format!("/connections/{used}/edit")).await;
    let consumers = edit.texts("table.consumers td.consumer");
    assert_eq!(consumers.len(), 2, "{}", edit.body);
    assert!(
        consumers.contains(&"invoice-sync".to_owned()) && consumers.contains(&"n8n production".to_owned())
    );
    let confirm = app.get(&format!("/connections/{used}/delete")).await;
    let warning = confirm.text_of("#recent-consumers");
    assert!(warning.contains("invoice-sync") && warning.contains("replacement"), "{warning}");

    let unused = app.get("/?usage=unused").await;
    let ids: Vec<String> = unused
        .html()
        .select(&scraper::Selector::parse("tr[data-connection]").unwrap())
        .filter_map(|e| e.value().attr("data-connection").map(str::to_owned))
        .collect();
    assert_eq!(ids, vec![idle.to_string()], "only the idle one is unused");
    let api_unused = get(&app, "/api/v1/connections?unused=true", &token).await;
    assert_eq!(api_unused.json["total"], 1);
    assert_eq!(api_unused.json["connections"][0]["id"], idle);
}

/// Reads are recorded in groups (one transaction for those that arrive
/// together): each must still leave its own audit row and count, and one
/// that cannot be recorded must not take the others down with it.
#[actix_web::test]
async fn concurrent_reads_are_each_recorded_and_one_unrecordable_read_fails_alone() {
    let app = common::spawn().await;
    let id = app.create("github", "Busy bot", &[("token", GITHUB_TOKEN)]).await;
    let token = make_token(&app, "n8n production", "development", &ALL).await;
    let path = format!("/api/v1/connections/{id}/credentials");
    let consumers = ["invoice-sync", "nightly-export", "crm-import"];
    let calls =
        (0..60).map(|i| call(&app, reqwest::Method::GET, &path, Some(&token), Some(consumers[i % 3])));
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert_eq!(answer.json["fields"]["token"], GITHUB_TOKEN);
    }
    let reads = |connection: i64| {
        let app = &app;
        async move {
            app.count_rows(&format!(
                "audit_events WHERE action = 'api_credentials_read' AND connection_id = {connection}"
            ))
            .await
        }
    };
    assert_eq!(reads(id).await, 60, "one audit row per read");
    for consumer in consumers {
        let counted = app
            .count_rows(&format!(
                "connection_usage WHERE connection_id = {id} AND consumer = '{consumer}' AND reads = 20"
            ))
            .await;
        assert_eq!(counted, 1, "{consumer} read 20 times");
    }

    // A read of a connection deleted since it was read cannot be recorded
    // (its rows would point at nothing); queued with good ones, it fails alone.
    let token_id = app.count_rows("api_tokens").await; // the only token, id 1
    let read = |connection: i64| plugboard::api::usage::Read {
        token: plugboard::api::ApiTokenId(token_id),
        token_name: "n8n production".to_owned(),
        consumer: "invoice-sync".to_owned(),
        environment: plugboard::environment::Environment::Development,
        connection: plugboard::connections::ConnectionId(connection),
        subject: "Busy bot".to_owned(),
    };
    let mut records: Vec<_> = (0..20).map(|_| app.state.usage.record(read(id))).collect();
    records.insert(10, app.state.usage.record(read(id + 1000)));
    let outcomes = futures_util::future::join_all(records).await;
    for (i, outcome) in outcomes.iter().enumerate() {
        assert_eq!(outcome.is_ok(), i != 10, "read {i}: {outcome:?}");
    }
    assert_eq!(reads(id).await, 80, "the good reads of the group are recorded");
    assert_eq!(reads(id + 1000).await, 0, "the bad one left nothing");
}

// ---- OAuth2 ----

const CLIENT_ID: &str = "plugboard-test";
const CLIENT_SECRET: &str = "s3cret-client-value";

async fn oauth_world(lifetime: Duration) -> (TestApp, Provider, tempfile::TempDir) {
    let mut config = ProviderConfig::for_client(Client::new(CLIENT_ID, CLIENT_SECRET, ""));
    config.access_token_lifetime = Some(lifetime);
    let provider = Provider::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    let catalog = format!(
        "[testauth]\nname = \"Test Auth\"\ncategory = \"Testing\"\nbase_url = \"{}\"\n\n[testauth.auth.oauth2]\n\
         kind = \"oauth2_authorization_code\"\nlabel = \"Sign in\"\nauthorization_url = \"{}\"\ntoken_url = \"{}\"\n\
         scopes = [\"read\"]\n\n[testauth.test]\npath = \"/me\"\n",
        provider.base_url(),
        provider.authorize_url(),
        provider.token_url()
    );
    std::fs::write(&path, catalog).unwrap();
    let app = common::spawn_with(|s| s.catalog = Some(path.clone())).await;
    let redirect = format!("{}/oauth2/callback", app.base);
    provider.configure(|c| c.clients[0].redirect_uris = vec![redirect]);
    (app, provider, dir)
}

/// Connect, the provider's redirect, the callback; returns the new id.
async fn connect(app: &TestApp) -> i64 {
    let token = app.csrf().await;
    let form = [
        ("csrf_token", token.as_str()),
        ("component", "testauth"),
        ("auth_method", "oauth2"),
        ("environment", "development"),
        ("name", "Signed in"),
        ("field:client_id", CLIENT_ID),
        ("field:client_secret", CLIENT_SECRET),
    ];
    let started = app.post_raw("/connections/oauth2/connect", &form).await;
    let url = started.attr("#continue-to-provider", "href").expect("a link to the provider");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = browser.get(url).send().await.unwrap();
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let done = app.get(callback.strip_prefix(&app.base).unwrap()).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    app.connection_ids().await.into_iter().max().unwrap()
}

#[actix_web::test]
async fn oauth2_credentials_refresh_a_token_near_expiry_once_for_many_callers() {
    // Signed in with a token that has 30 s left: under the minute a caller needs.
    let (app, provider, _dir) = oauth_world(Duration::from_secs(30)).await;
    let id = connect(&app).await;
    provider.configure(|c| {
        c.access_token_lifetime = Some(Duration::from_secs(3600));
        c.refresh_delay = Duration::from_millis(300);
    });
    let token = make_token(&app, "many callers", "development", &ALL).await;
    let path = format!("/api/v1/connections/{id}/credentials");
    let calls = (0..8).map(|_| get(&app, &path, &token));
    let answers = futures_util::future::join_all(calls).await;
    assert_eq!(provider.refreshes(), 1, "many callers, one refresh");
    let valid = provider.valid_access_tokens();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        let access = answer.json["access_token"].as_str().unwrap();
        assert!(valid.iter().any(|t| t == access), "a token the provider accepts");
        let expires: chrono::DateTime<chrono::Utc> =
            answer.json["expires_at"].as_str().unwrap().parse().unwrap();
        assert!(expires > chrono::Utc::now() + chrono::TimeDelta::seconds(60), "valid for at least a minute");
        assert!(answer.json.get("refresh_token").is_none(), "never the refresh token");
    }
    // Fresh enough now: no further refresh.
    assert_eq!(get(&app, &path, &token).await.status, StatusCode::OK);
    assert_eq!(provider.refreshes(), 1);

    // A refresh token the provider refuses: 409 with the reason.
    {
        use diesel::prelude::*;
        use plugboard::db::schema::connection_tokens;
        let soon = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(10);
        diesel::update(connection_tokens::table.find(id))
            .set(connection_tokens::expires_at.eq(soon))
            .execute(&mut app.db())
            .unwrap();
    }
    provider.revoke_refresh_tokens();
    let refused = get(&app, &path, &token).await;
    assert_error(&refused, StatusCode::CONFLICT, "reconnect_needed");
    let asked = provider.refreshes() + provider.failed_token_requests();
    assert!(refused.json["reason"].as_str().unwrap().contains("reconnect needed"), "{}", refused.json);
    // And later calls say so at once, without asking the provider again.
    let again = get(&app, &path, &token).await;
    assert_error(&again, StatusCode::CONFLICT, "reconnect_needed");
    assert_eq!(
        provider.refreshes() + provider.failed_token_requests(),
        asked,
        "the provider was not asked again"
    );
}

/// A client-credentials catalog entry whose token endpoint is `provider`'s.
async fn client_credentials_world(lifetime: Duration) -> (TestApp, Provider, tempfile::TempDir) {
    let mut config =
        ProviderConfig::for_client(Client::new(CLIENT_ID, CLIENT_SECRET, "").with_scopes(&["read"]));
    config.access_token_lifetime = Some(lifetime);
    let provider = Provider::start(config).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("catalog.toml");
    let catalog = format!(
        "[machine]\nname = \"Machine API\"\ncategory = \"Testing\"\nbase_url = \"{}\"\n\n\
         [machine.auth.client]\nkind = \"oauth2_client_credentials\"\ntoken_url = \"{}\"\n\
         scopes = [\"read\"]\ntoken_auth = \"body\"\n",
        provider.base_url(),
        provider.token_url()
    );
    std::fs::write(&path, catalog).unwrap();
    let app = common::spawn_with(|s| s.catalog = Some(path.clone())).await;
    (app, provider, dir)
}

#[actix_web::test]
async fn client_credentials_answer_the_stored_token_renewed_once_near_expiry() {
    // The check on save is issued a token with 30 s left: under the minute
    // a caller needs.
    let (app, provider, _dir) = client_credentials_world(Duration::from_secs(30)).await;
    let id = app
        .create("machine", "Nightly export", &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .await;
    assert_eq!(provider.client_credentials_grants(), 1, "the check on save was issued a token");
    let token = make_token(&app, "exporter", "development", &ALL).await;
    let path = format!("/api/v1/connections/{id}/credentials");

    provider.configure(|c| {
        c.access_token_lifetime = Some(Duration::from_secs(3600));
        c.refresh_delay = Duration::from_millis(300);
    });
    let answers = futures_util::future::join_all((0..8).map(|_| get(&app, &path, &token))).await;
    assert_eq!(provider.client_credentials_grants(), 2, "many callers, one renewal");
    let valid = provider.valid_access_tokens();
    for answer in &answers {
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert_eq!(answer.json["kind"], "oauth2_client_credentials");
        let access = answer.json["access_token"].as_str().unwrap();
        assert!(valid.iter().any(|t| t == access), "a token the provider accepts");
        let expires: chrono::DateTime<chrono::Utc> =
            answer.json["expires_at"].as_str().unwrap().parse().unwrap();
        assert!(expires > chrono::Utc::now() + chrono::TimeDelta::seconds(60), "valid for at least a minute");
        assert!(!answer.json.to_string().contains(CLIENT_SECRET), "never the client secret");
    }
    let first = answers[0].json["access_token"].clone();
    assert!(answers.iter().all(|a| a.json["access_token"] == first), "all got the one renewed token");
    // The stored token is the answer while it is fresh: no token request.
    let again = get(&app, &path, &token).await;
    assert_eq!(again.json["access_token"], first);
    assert_eq!(provider.client_credentials_grants(), 2);
    let renewals: Vec<_> = app.audit_rows().into_iter().filter(|e| e.action == "token_refresh").collect();
    assert_eq!(renewals.len(), 1, "{renewals:?}");
    assert_eq!(renewals[0].actor, "API token \u{201c}exporter\u{201d}", "the renewal is the token's");

    // The provider stops accepting the client: 409 with its reason, and
    // later calls say so without asking the provider again.
    provider.configure(|c| c.clients[0].secret = "rotated-by-the-provider".into());
    {
        use diesel::prelude::*;
        use plugboard::db::schema::connection_tokens;
        let soon = chrono::Utc::now().naive_utc() + chrono::TimeDelta::seconds(10);
        diesel::update(connection_tokens::table.find(id))
            .set(connection_tokens::expires_at.eq(soon))
            .execute(&mut app.db())
            .unwrap();
    }
    let refused = get(&app, &path, &token).await;
    assert_error(&refused, StatusCode::CONFLICT, "unusable_credentials");
    assert_eq!(
        refused.json["reason"], "rejected by the service: HTTP 401 (invalid_client)",
        "{}",
        refused.json
    );
    let asked = provider.client_credentials_grants();
    let again = get(&app, &path, &token).await;
    assert_error(&again, StatusCode::CONFLICT, "unusable_credentials");
    assert_eq!(provider.client_credentials_grants(), asked, "the provider was not asked again");

    // A client refused from the start has no token to hand out.
    let never = app
        .create("machine", "Wrong secret", &[("client_id", CLIENT_ID), ("client_secret", "not-the-secret")])
        .await;
    let none = get(&app, &format!("/api/v1/connections/{never}/credentials"), &token).await;
    assert_error(&none, StatusCode::CONFLICT, "unusable_credentials");
    let reason = none.json["reason"].as_str().unwrap();
    assert!(
        reason.contains("no access token has been issued") && reason.contains("invalid_client"),
        "{reason}"
    );
    assert!(!none.json.to_string().contains("not-the-secret"), "no secret in an error");
}

// ---- the OpenAPI document ----

/// Whether `value` matches `schema` (the parts of JSON Schema that
/// utoipa's documents use), resolving `$ref`s in `doc`; the error says where not.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let pointer = reference.trim_start_matches('#');
        return conforms(doc, doc.pointer(pointer).ok_or(format!("{at}: no {reference}"))?, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            if !options.iter().any(|s| conforms(doc, s, value, at).is_ok()) {
                return Err(format!("{at}: {value} matches none of {key}"));
            }
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            conforms(doc, s, value, at)?;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            return Err(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !types.iter().any(|t| *t == actual || (*t == "number" && actual == "integer")) {
            return Err(format!("{at}: {actual} where the schema says {types:?}"));
        }
    }
    if let Value::Object(fields) = value {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                return Err(format!("{at}: `{name}` is required but missing"));
            }
        }
        for (name, field) in fields {
            match (properties.and_then(|p| p.get(name)), schema.get("additionalProperties")) {
                (Some(s), _) => conforms(doc, s, field, &format!("{at}.{name}"))?,
                (None, Some(extra)) if extra.is_object() => {
                    conforms(doc, extra, field, &format!("{at}.{name}"))?
                }
                (None, _) if properties.is_some() => {
                    return Err(format!("{at}: `{name}` is not in the schema"));
                }
                _ => {}
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, item) in items.iter().enumerate() {
            conforms(doc, item_schema, item, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[test]
fn the_schema_check_can_fail() {
    let doc = serde_json::json!({});
    let schema =
        serde_json::json!({"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}});
    assert!(conforms(&doc, &schema, &serde_json::json!({"id": 1}), "$").is_ok());
    assert!(conforms(&doc, &schema, &serde_json::json!({"id": "1"}), "$").is_err());
    assert!(conforms(&doc, &schema, &serde_json::json!({}), "$").is_err());
    assert!(conforms(&doc, &schema, &serde_json::json!({"id": 1, "extra": 2}), "$").is_err());
}

#[actix_web::test]
async fn the_openapi_document_lists_exactly_the_routes_and_the_answers_match_it() {
    let app = common::spawn().await;
    let id = app.create("github", "Deploy bot", &[("token", GITHUB_TOKEN)]).await;
    let token = make_token(&app, "documented", "development", &ALL).await;
    let reader = make_token(&app, "reader", "development", &[("permission", "read_metadata")]).await;
    let doc = call(&app, reqwest::Method::GET, "/api/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    let doc = doc.json;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));

    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut served = plugboard::web::api::served();
    documented.sort();
    served.sort();
    assert_eq!(documented, served, "the document lists exactly the routes served");

    // Every documented route is answered (with a good token, and refused
    // without), and every answer matches the schema its status documents.
    let mut seen = 0;
    for (method, path) in &documented {
        let concrete = path.replace("{id}", &id.to_string());
        let method: reqwest::Method = method.parse().unwrap();
        let cases = [Some(token.as_str()), Some(reader.as_str()), None, Some("pbt_unknown")];
        for case in cases {
            let answer = call(&app, method.clone(), &concrete, case, None).await;
            let operation = &doc["paths"][path][method.as_str().to_lowercase()];
            let response = &operation["responses"][answer.status.as_str()];
            assert!(response.is_object(), "{method} {path}: {} is not documented", answer.status);
            if let Some(schema) = response.pointer("/content/application~1json/schema") {
                conforms(&doc, schema, &answer.json, &format!("{method} {path} {}", answer.status)).unwrap();
                seen += 1;
            }
        }
    }
    assert!(seen >= 12, "answers were checked against schemas: {seen}");
    // The 404 for an unknown connection is documented too, and matches.
    let missing = get(&app, "/api/v1/connections/424242", &token).await;
    let schema = doc
        .pointer("/paths/~1api~1v1~1connections~1{id}/get/responses/404/content/application~1json/schema")
        .unwrap();
    conforms(&doc, schema, &missing.json, "404").unwrap();
}
