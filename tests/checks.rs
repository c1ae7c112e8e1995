//! Credential checks against stand-in services: real HTTP servers on a
//! loopback address that record what they received and answer as each test
//! scripts them. Components point at them through an operator catalog.

mod common;
mod oauth_provider;
mod standin;

use std::time::{Duration, Instant, SystemTime};

use common::TestApp;
use oauth_provider::{Client, ClientAuth, Provider, ProviderConfig};
use reqwest::StatusCode;
use serde_json::json;
use standin::{Recorded, Reply, StandIn, basic_auth, closed_port, verify_sigv4};

const TIMED_OUT: &str = "unreachable: timed out after 1 s";
const NOT_JSON: &str = "unexpected answer: HTTP 200, but the body is not JSON";
/// check_timeout (1 s) plus the slack the brief allows.
const WITHIN_TIMEOUT: Duration = Duration::from_secs(3);

// Distinctive credentials, so that any of them on a page is found.
const HEADER_KEY: &str = "pbk_live_7f3a9c1e5d2b";
const QUERY_KEY: &str = "pbq_4d2b8e6f1a9c7e";
const BASIC_USER: &str = "svc-robot";
const BASIC_PASSWORD: &str = "pbp_S3cr3t-9a8b7c6d";
const BEARER_TOKEN: &str = "pbt_b3ar3r_5e6f7a8b9c";
const CUSTOM_ACCOUNT: &str = "acct-42";
const CUSTOM_TOKEN: &str = "pbc_tok_1a2b3c4d5e";
const CUSTOM_APP_KEY: &str = "pbc_app_9z8y7x6w5v";
const CLIENT_ID: &str = "client-7788";
const CLIENT_SECRET: &str = "pbcc_s3cret_0f1e2d3c";
// The AWS documentation's example credentials.
const AWS_KEY_ID: &str = "AKIDEXAMPLE";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const SLACK_TOKEN: &str = "xoxb-1234-5678-pbSlackS3cret";

/// The operator catalog: one test component per kind of authorization
/// method, all at `base`, and the built-in Slack pointed there too.
fn catalog(base: &str) -> String {
    r#"
[slack]
base_url = "BASE/api"

[svc_key]
name = "Key service"
base_url = "BASE"
[svc_key.auth.key]
kind = "api_key"
header = "X-Api-Key"
prefix = "Key "
[svc_key.test]
path = "/whoami"
success_json = { pointer = "/authenticated", equals = true }

[svc_query]
name = "Query key service"
base_url = "BASE/v1"
[svc_query.auth.key]
kind = "api_key"
query = "api_key"
[svc_query.test]
path = "/account?fields=id"
success_json = { pointer = "/authenticated", equals = true }

[svc_basic]
name = "Basic service"
base_url = "BASE"
[svc_basic.auth.basic]
kind = "basic"
[svc_basic.test]
path = "/me"
success_json = { pointer = "/authenticated", equals = true }

[svc_bearer]
name = "Bearer service"
base_url = "BASE"
[svc_bearer.auth.token]
kind = "bearer"
[svc_bearer.test]
path = "/user"
success_json = { pointer = "/authenticated", equals = true }

[svc_custom]
name = "Custom service"
base_url = "BASE"
[svc_custom.auth.signed]
kind = "custom"
headers = { "X-Account" = "{account}", "Authorization" = "Token token={token}" }
query = { app_key = "{app_key}" }
fields = [
  { key = "account", label = "Account" },
  { key = "token", label = "Token", secret = true },
  { key = "app_key", label = "Application key", secret = true },
]
[svc_custom.test]
path = "/session"
headers = { Accept = "application/json" }
success_json = { pointer = "/authenticated", equals = true }

[svc_cc]
name = "Token service"
base_url = "BASE/api"
[svc_cc.auth.client]
kind = "oauth2_client_credentials"
token_url = "BASE/oauth/token"
scopes = ["read:things", "write:things"]

[svc_aws]
name = "Signed service"
base_url = "BASE"
[svc_aws.auth.keys]
kind = "aws_sigv4"
service = "sts"
[svc_aws.test]
path = "/?Action=GetCallerIdentity&Version=2011-06-15"
success_json = { pointer = "/authenticated", equals = true }

[svc_aws_post]
name = "Signed POST service"
base_url = "BASE/sts"
[svc_aws_post.auth.keys]
kind = "aws_sigv4"
service = "sts"
[svc_aws_post.test]
method = "POST"
path = "/"
headers = { "Content-Type" = "application/x-www-form-urlencoded; charset=utf-8" }
body = "Action=GetCallerIdentity&Version=2011-06-15"
success_json = { pointer = "/authenticated", equals = true }

[svc_open]
name = "Self-hosted service"
base_url = "{base_url}"
settings = [
  { key = "base_url", label = "Base URL" },
  { key = "test_path", label = "Test path", required = false },
]
[svc_open.auth.token]
kind = "bearer"
[svc_open.test]
path = "{test_path}"
"#
    .replace("BASE", base)
}

/// The application, with the test catalog pointing at `base` and a check
/// time limit of 1 s.
async fn spawn_for(base: &str) -> TestApp {
    spawn_configured(base, |_| {}).await
}

async fn spawn_configured(base: &str, configure: impl FnOnce(&mut plugboard::Settings)) -> TestApp {
    spawn_with_catalog(&catalog(base), configure).await
}

/// The application with `entries` as the operator catalog (read at start).
async fn spawn_with_catalog(entries: &str, configure: impl FnOnce(&mut plugboard::Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("catalog.toml");
    std::fs::write(&path, entries).expect("write the catalog");
    common::spawn_with(|s| {
        s.catalog = Some(path.clone());
        s.check_timeout = 1;
        configure(s);
    })
    .await
}

/// The badge and the reason the list shows for a connection.
async fn shown(app: &TestApp, id: i64) -> (String, String) {
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let row = format!("#connection-{id}");
    assert_eq!(page.count(&row), 1, "no row for connection {id}");
    (page.text_of(&format!("{row} .badge")), page.text_of(&format!("{row} .status-reason")))
}

/// Presses the Test button (a plain form post).
async fn press_test(app: &TestApp, id: i64) {
    let page = app.post(&format!("/connections/{id}/check"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[derive(Debug)]
struct HistoryRow {
    result: String,
    reason: String,
    trigger: String,
}

/// The check history on the edit page, as shown: newest first.
async fn history(app: &TestApp, id: i64) -> Vec<HistoryRow> {
    let page = app.get(&format!("/connections/{id}/edit")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let html = page.html();
    let rows = scraper::Selector::parse("#check-panel table.checks tbody tr").unwrap();
    let cells = scraper::Selector::parse("td").unwrap();
    html.select(&rows)
        .map(|row| {
            let texts: Vec<String> = row
                .select(&cells)
                .map(|c| c.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            HistoryRow { result: texts[1].clone(), reason: texts[2].clone(), trigger: texts[3].clone() }
        })
        .collect()
}

/// A secret as it may appear in HTML, escaped or not.
fn spellings(secret: &str) -> Vec<String> {
    vec![
        secret.to_owned(),
        secret.replace('/', "&#x2f;"),
        secret.replace('/', "&#47;"),
        secret.replace('+', "&#43;"),
        secret.replace('/', "&#x2f;").replace('+', "&#43;"),
    ]
}

fn assert_no_secret(what: &str, text: &str, secrets: &[&str]) {
    for secret in secrets {
        for spelling in spellings(secret) {
            assert!(!text.contains(&spelling), "{what} shows the secret {secret}:\n{text}");
        }
    }
}

/// No page about the connection shows any of the secrets.
async fn assert_hidden(app: &TestApp, id: i64, secrets: &[&str]) {
    for path in ["/".to_owned(), "/?status=not_active".to_owned(), format!("/connections/{id}/edit")] {
        let page = app.get(&path).await;
        assert_no_secret(&path, &page.body, secrets);
    }
}

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

// ---- the kinds of authorization method ----

/// One kind of authorization method and how its stand-in service behaves.
struct Kind {
    component: &'static str,
    method: &'static str,
    fields: &'static [(&'static str, &'static str)],
    secrets: &'static [&'static str],
    /// Whether the request carries the credential exactly where the catalog
    /// says, and nowhere else.
    placed: fn(&Recorded) -> Result<(), String>,
    /// The service's answer to good credentials.
    accepted: fn() -> Reply,
    /// The service's answer to bad credentials, and the reason expected.
    refusal: fn() -> Reply,
    rejected: &'static str,
}

fn authenticated() -> Reply {
    Reply::json(200, json!({ "authenticated": true, "user": "robot" }))
}

fn token_issued() -> Reply {
    Reply::json(
        200,
        json!({ "access_token": "issued-access-token", "token_type": "Bearer", "expires_in": 3600 }),
    )
}

fn key_in_header(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "GET" && r.path == "/whoami", "request to {} {}", r.method, r.path);
    let expected = format!("Key {HEADER_KEY}");
    ensure!(r.header("x-api-key") == Some(expected.as_str()), "X-Api-Key is {:?}", r.header("x-api-key"));
    ensure!(r.header("authorization").is_none(), "an Authorization header was sent too");
    ensure!(r.query.is_empty(), "the query is {:?}", r.query);
    ensure!(r.occurrences(HEADER_KEY) == 1, "the key appears {} times", r.occurrences(HEADER_KEY));
    Ok(())
}

fn key_in_query(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "GET" && r.path == "/v1/account", "request to {} {}", r.method, r.path);
    ensure!(r.query_param("api_key").as_deref() == Some(QUERY_KEY), "the query is {:?}", r.query);
    ensure!(
        r.query_param("fields").as_deref() == Some("id"),
        "the test path's query was lost: {:?}",
        r.query
    );
    ensure!(r.headers.iter().all(|(_, v)| !v.contains(QUERY_KEY)), "the key is in a header too");
    ensure!(r.occurrences(QUERY_KEY) == 1, "the key appears {} times", r.occurrences(QUERY_KEY));
    Ok(())
}

fn basic_placed(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "GET" && r.path == "/me", "request to {} {}", r.method, r.path);
    let expected = basic_auth(BASIC_USER, BASIC_PASSWORD);
    ensure!(
        r.header("authorization") == Some(expected.as_str()),
        "Authorization is {:?}",
        r.header("authorization")
    );
    ensure!(r.occurrences(BASIC_PASSWORD) == 0, "the password is sent in clear outside the header");
    ensure!(r.query.is_empty(), "the query is {:?}", r.query);
    Ok(())
}

fn bearer_placed(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "GET" && r.path == "/user", "request to {} {}", r.method, r.path);
    let expected = format!("Bearer {BEARER_TOKEN}");
    ensure!(
        r.header("authorization") == Some(expected.as_str()),
        "Authorization is {:?}",
        r.header("authorization")
    );
    ensure!(r.occurrences(BEARER_TOKEN) == 1, "the token appears {} times", r.occurrences(BEARER_TOKEN));
    Ok(())
}

fn custom_placed(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "GET" && r.path == "/session", "request to {} {}", r.method, r.path);
    ensure!(r.header("x-account") == Some(CUSTOM_ACCOUNT), "X-Account is {:?}", r.header("x-account"));
    let expected = format!("Token token={CUSTOM_TOKEN}");
    ensure!(
        r.header_all("authorization") == [expected.as_str()],
        "Authorization is {:?}",
        r.header_all("authorization")
    );
    ensure!(r.query_param("app_key").as_deref() == Some(CUSTOM_APP_KEY), "the query is {:?}", r.query);
    ensure!(r.header_all("accept") == ["application/json"], "Accept is {:?}", r.header_all("accept"));
    ensure!(r.occurrences(CUSTOM_TOKEN) == 1, "the token appears {} times", r.occurrences(CUSTOM_TOKEN));
    ensure!(
        r.occurrences(CUSTOM_APP_KEY) == 1,
        "the app key appears {} times",
        r.occurrences(CUSTOM_APP_KEY)
    );
    Ok(())
}

fn client_credentials_placed(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "POST" && r.path == "/oauth/token", "request to {} {}", r.method, r.path);
    let expected = basic_auth(CLIENT_ID, CLIENT_SECRET);
    ensure!(
        r.header("authorization") == Some(expected.as_str()),
        "client authentication is {:?}",
        r.header("authorization")
    );
    ensure!(
        r.header("content-type").is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")),
        "Content-Type is {:?}",
        r.header("content-type")
    );
    ensure!(
        r.form_value("grant_type").as_deref() == Some("client_credentials"),
        "the body is {:?}",
        String::from_utf8_lossy(&r.body)
    );
    ensure!(
        r.form_value("scope").as_deref() == Some("read:things write:things"),
        "the body is {:?}",
        String::from_utf8_lossy(&r.body)
    );
    ensure!(r.occurrences(CLIENT_SECRET) == 0, "the client secret is sent in clear");
    Ok(())
}

fn aws_placed(r: &Recorded) -> Result<(), String> {
    ensure!(r.method == "GET" && r.path == "/", "request to {} {}", r.method, r.path);
    ensure!(r.query_param("Action").as_deref() == Some("GetCallerIdentity"), "the query is {:?}", r.query);
    let signed = verify_sigv4(r, AWS_SECRET, Some(SystemTime::now()))?;
    ensure!(signed.access_key_id == AWS_KEY_ID, "signed for key {}", signed.access_key_id);
    ensure!(signed.region == "us-east-1", "signed for region {}", signed.region);
    ensure!(signed.service == "sts", "signed for service {}", signed.service);
    ensure!(r.occurrences(AWS_SECRET) == 0, "the secret key is sent");
    Ok(())
}

static KEY_HEADER: Kind = Kind {
    component: "svc_key",
    method: "key",
    fields: &[("api_key", HEADER_KEY)],
    secrets: &[HEADER_KEY],
    placed: key_in_header,
    accepted: authenticated,
    refusal: || Reply::json(401, json!({ "error": "invalid_api_key", "message": "Invalid API key" })),
    rejected: "rejected by the service: HTTP 401 (invalid_api_key)",
};

static KEY_QUERY: Kind = Kind {
    component: "svc_query",
    method: "key",
    fields: &[("api_key", QUERY_KEY)],
    secrets: &[QUERY_KEY],
    placed: key_in_query,
    accepted: authenticated,
    refusal: || {
        Reply::json(403, json!({ "errors": [{ "code": "key_revoked", "detail": "This key was revoked" }] }))
    },
    rejected: "rejected by the service: HTTP 403 (key_revoked)",
};

static BASIC: Kind = Kind {
    component: "svc_basic",
    method: "basic",
    fields: &[("username", BASIC_USER), ("password", BASIC_PASSWORD)],
    secrets: &[BASIC_PASSWORD],
    placed: basic_placed,
    accepted: authenticated,
    // Twilio's style: a numeric code.
    refusal: || Reply::json(401, json!({ "code": 20003, "message": "Authenticate", "status": 401 })),
    rejected: "rejected by the service: HTTP 401 (20003)",
};

static BEARER: Kind = Kind {
    component: "svc_bearer",
    method: "token",
    fields: &[("token", BEARER_TOKEN)],
    secrets: &[BEARER_TOKEN],
    placed: bearer_placed,
    accepted: authenticated,
    // Stripe's style: the code in error.type.
    refusal: || {
        Reply::json(401, json!({ "error": { "type": "authentication_error", "message": "Invalid token" } }))
    },
    rejected: "rejected by the service: HTTP 401 (authentication_error)",
};

static CUSTOM: Kind = Kind {
    component: "svc_custom",
    method: "signed",
    fields: &[("account", CUSTOM_ACCOUNT), ("token", CUSTOM_TOKEN), ("app_key", CUSTOM_APP_KEY)],
    secrets: &[CUSTOM_TOKEN, CUSTOM_APP_KEY],
    placed: custom_placed,
    accepted: authenticated,
    // No JSON: no code to give.
    refusal: || Reply::text(403, "Forbidden"),
    rejected: "rejected by the service: HTTP 403",
};

static CLIENT_CREDENTIALS: Kind = Kind {
    component: "svc_cc",
    method: "client",
    fields: &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
    secrets: &[CLIENT_SECRET],
    placed: client_credentials_placed,
    accepted: token_issued,
    refusal: || {
        Reply::json(
            401,
            json!({ "error": "invalid_client", "error_description": "Client authentication failed" }),
        )
    },
    rejected: "rejected by the service: HTTP 401 (invalid_client)",
};

static AWS: Kind = Kind {
    component: "svc_aws",
    method: "keys",
    fields: &[("access_key_id", AWS_KEY_ID), ("secret_access_key", AWS_SECRET), ("region", "us-east-1")],
    secrets: &[AWS_SECRET],
    placed: aws_placed,
    accepted: authenticated,
    // What STS answers: XML, whose <Code> names what is wrong.
    refusal: || Reply::new(403, "text/xml", sts_error("InvalidClientTokenId")),
    rejected: "rejected by the service: HTTP 403 (InvalidClientTokenId)",
};

fn sts_error(code: &str) -> String {
    format!(
        "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
         <Code>{code}</Code><Message>refused</Message></Error><RequestId>1</RequestId></ErrorResponse>"
    )
}

fn form(kind: &Kind) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![("auth_method", kind.method)];
    fields.extend_from_slice(kind.fields);
    fields
}

/// The service answers only when the credential is where the catalog says:
/// ACTIVE, and the request it got is checked again here.
async fn accepted(kind: &'static Kind) {
    let (placed, accepted) = (kind.placed, kind.accepted);
    let service = StandIn::start(move |r| match placed(r) {
        Ok(()) => accepted(),
        Err(_) => Reply::json(401, json!({ "error": "not_where_expected" })),
    })
    .await;
    let app = spawn_for(&service.url()).await;
    let id = app.create(kind.component, "Under test", &form(kind)).await;

    let (badge, reason) = shown(&app, id).await;
    let requests = service.requests();
    assert_eq!(requests.len(), 1, "one request per check: {requests:#?}");
    if let Err(problem) = placed(&requests[0]) {
        panic!("{problem}\n{:#?}", requests[0]);
    }
    assert_eq!(badge, "ACTIVE", "reason: {reason}");
    assert_eq!(reason, "", "an active connection shows no reason");
    let rows = history(&app, id).await;
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].result.as_str(), rows[0].trigger.as_str()), ("ACTIVE", "save"));
    assert_hidden(&app, id, kind.secrets).await;
}

/// The service refuses: NOT ACTIVE, with its own error code when it gives one.
async fn rejected(kind: &'static Kind) {
    let refusal = kind.refusal;
    let service = StandIn::start(move |_| refusal()).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create(kind.component, "Under test", &form(kind)).await;

    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert_eq!(reason, kind.rejected);
    assert_eq!(service.count(), 1);
    (kind.placed)(&service.last()).unwrap();
    assert_hidden(&app, id, kind.secrets).await;
}

/// The service answers later than the time limit.
async fn times_out(kind: &'static Kind) {
    let accepted = kind.accepted;
    let service = StandIn::start(move |_| accepted().after(Duration::from_secs(5))).await;
    let app = spawn_for(&service.url()).await;
    let started = Instant::now();
    let id = app.create(kind.component, "Under test", &form(kind)).await;
    let elapsed = started.elapsed();

    let (badge, reason) = shown(&app, id).await;
    assert_eq!((badge.as_str(), reason.as_str()), ("NOT ACTIVE", TIMED_OUT));
    assert!(elapsed < WITHIN_TIMEOUT, "saving took {elapsed:?}");
    assert_eq!(service.count(), 1);
    assert_hidden(&app, id, kind.secrets).await;
}

/// 200, but not the JSON the check reads.
async fn not_json(kind: &'static Kind) {
    let service =
        StandIn::start(|_| Reply::html(200, "<!doctype html><html><body>Welcome back!</body></html>")).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create(kind.component, "Under test", &form(kind)).await;

    let (badge, reason) = shown(&app, id).await;
    assert_eq!((badge.as_str(), reason.as_str()), ("NOT ACTIVE", NOT_JSON));
    assert_hidden(&app, id, kind.secrets).await;
}

macro_rules! kind_tests {
    ($module:ident, $kind:expr) => {
        mod $module {
            #[actix_web::test]
            async fn accepted_credentials_are_active_and_sent_where_the_catalog_says() {
                super::accepted(&$kind).await;
            }

            #[actix_web::test]
            async fn refused_credentials_are_not_active_with_the_services_error_code() {
                super::rejected(&$kind).await;
            }

            #[actix_web::test]
            async fn a_service_slower_than_the_time_limit_is_unreachable() {
                super::times_out(&$kind).await;
            }

            #[actix_web::test]
            async fn an_answer_that_is_not_json_is_unexpected() {
                super::not_json(&$kind).await;
            }
        }
    };
}

kind_tests!(api_key_in_header, super::KEY_HEADER);
kind_tests!(api_key_in_query, super::KEY_QUERY);
kind_tests!(basic, super::BASIC);
kind_tests!(bearer, super::BEARER);
kind_tests!(custom, super::CUSTOM);
kind_tests!(oauth2_client_credentials, super::CLIENT_CREDENTIALS);
kind_tests!(aws_sigv4, super::AWS);

// ---- OAuth2 client credentials, beyond the common cases ----

#[actix_web::test]
async fn client_credentials_refused_with_400_give_the_oauth_error_code() {
    let service = StandIn::start(|_| {
        Reply::json(
            400,
            json!({ "error": "invalid_scope", "error_description": "write:things is not allowed" }),
        )
    })
    .await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_cc", "Token", &form(&CLIENT_CREDENTIALS)).await;
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "rejected by the service: HTTP 400 (invalid_scope)".to_owned())
    );
}

#[actix_web::test]
async fn client_credentials_answered_without_an_access_token_are_not_active() {
    let service = StandIn::start(|_| Reply::json(200, json!({ "token_type": "Bearer" }))).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_cc", "Token", &form(&CLIENT_CREDENTIALS)).await;
    assert_eq!(
        shown(&app, id).await,
        (
            "NOT ACTIVE".to_owned(),
            "unexpected answer: HTTP 200, but no access_token in the answer".to_owned()
        )
    );
}

// ---- AWS Signature Version 4 ----

/// The verifier the stand-in uses is itself right: it accepts AWS's
/// published "get-vanilla" and "get-vanilla-query-order-key-case" requests
/// and refuses them once anything signed is changed.
#[test]
fn sigv4_verifier_agrees_with_the_published_test_vectors() {
    let request = |path: &str, query: &str, date: &str, signed: &str, signature: &str| Recorded {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![
            ("host".into(), "example.amazonaws.com".into()),
            ("x-amz-date".into(), date.into()),
            (
                "authorization".into(),
                format!(
                    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                     SignedHeaders={signed}, Signature={signature}"
                ),
            ),
        ],
        body: Vec::new(),
        raw: String::new(),
    };
    let vanilla = request(
        "/",
        "",
        "20150830T123600Z",
        "host;x-amz-date",
        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
    );
    let verified = verify_sigv4(&vanilla, AWS_SECRET, None).expect("get-vanilla verifies");
    assert_eq!(verified.access_key_id, "AKIDEXAMPLE");
    assert_eq!((verified.region.as_str(), verified.service.as_str()), ("us-east-1", "service"));

    let query_order = request(
        "/",
        "Param2=value2&Param1=value1",
        "20150830T123600Z",
        "host;x-amz-date",
        "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
    );
    verify_sigv4(&query_order, AWS_SECRET, None).expect("get-vanilla-query-order-key-case verifies");

    assert!(verify_sigv4(&vanilla, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEZ", None).is_err());
    let mut other_path = vanilla.clone();
    other_path.path = "/other".into();
    assert!(verify_sigv4(&other_path, AWS_SECRET, None).is_err());
    let mut other_host = vanilla.clone();
    other_host.headers[0].1 = "example.amazonaws.com:8080".into();
    assert!(verify_sigv4(&other_host, AWS_SECRET, None).is_err());
    let mut other_body = vanilla.clone();
    other_body.body = b"x".to_vec();
    assert!(verify_sigv4(&other_body, AWS_SECRET, None).is_err());
    // A request signed long ago is refused, as AWS does.
    assert!(verify_sigv4(&vanilla, AWS_SECRET, Some(SystemTime::now())).is_err());
}

/// A stand-in that verifies every request's signature with the real secret
/// key and answers 403 SignatureDoesNotMatch otherwise.
async fn verifying_aws_service() -> StandIn {
    StandIn::start(|r| match verify_sigv4(r, AWS_SECRET, Some(SystemTime::now())) {
        Ok(_) => authenticated(),
        Err(_) => Reply::new(403, "text/xml", sts_error("SignatureDoesNotMatch")),
    })
    .await
}

#[actix_web::test]
async fn aws_sigv4_with_a_wrong_secret_key_is_rejected_by_a_verifying_service() {
    let service = verifying_aws_service().await;
    let app = spawn_for(&service.url()).await;
    let wrong = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYWRONGKEYXX";
    let id = app
        .create(
            "svc_aws",
            "Wrong secret",
            &[
                ("auth_method", "keys"),
                ("access_key_id", AWS_KEY_ID),
                ("secret_access_key", wrong),
                ("region", "us-east-1"),
            ],
        )
        .await;
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "rejected by the service: HTTP 403 (SignatureDoesNotMatch)".to_owned())
    );
    // The request was well signed, with the key it was given.
    let request = service.last();
    assert!(verify_sigv4(&request, AWS_SECRET, None).is_err());
    let signed = verify_sigv4(&request, wrong, Some(SystemTime::now())).expect("signed with the given key");
    assert_eq!(signed.access_key_id, AWS_KEY_ID);
    assert_hidden(&app, id, &[wrong, AWS_SECRET]).await;
}

#[actix_web::test]
async fn aws_sigv4_signs_a_post_body_its_headers_and_the_chosen_region() {
    let service = verifying_aws_service().await;
    let app = spawn_for(&service.url()).await;
    let id = app
        .create(
            "svc_aws_post",
            "Signed POST",
            &[
                ("auth_method", "keys"),
                ("access_key_id", AWS_KEY_ID),
                ("secret_access_key", AWS_SECRET),
                ("region", "eu-west-2"),
            ],
        )
        .await;
    let request = service.last();
    let signed = verify_sigv4(&request, AWS_SECRET, Some(SystemTime::now()))
        .unwrap_or_else(|e| panic!("{e}\n{request:#?}"));
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/sts/"));
    assert_eq!(request.body, b"Action=GetCallerIdentity&Version=2011-06-15");
    assert_eq!(signed.region, "eu-west-2");
    assert!(signed.signed_headers.contains(&"content-type".to_owned()), "{:?}", signed.signed_headers);
    assert_eq!(shown(&app, id).await.0, "ACTIVE");
}

// ---- Slack: 200 with ok = false ----

fn slack_form() -> Vec<(&'static str, &'static str)> {
    vec![("auth_method", "bot_token"), ("token", SLACK_TOKEN)]
}

#[actix_web::test]
async fn slack_ok_true_is_active() {
    let service =
        StandIn::start(|_| Reply::json(200, json!({ "ok": true, "team": "Acme", "user": "bot" }))).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("slack", "Slack", &slack_form()).await;
    assert_eq!(shown(&app, id).await.0, "ACTIVE");
    let request = service.last();
    assert_eq!((request.method.as_str(), request.path.as_str()), ("POST", "/api/auth.test"));
    assert_eq!(request.header("authorization"), Some(format!("Bearer {SLACK_TOKEN}").as_str()));
    assert_hidden(&app, id, &[SLACK_TOKEN]).await;
}

#[actix_web::test]
async fn slack_ok_false_is_not_active_with_slacks_error() {
    let service = StandIn::start(|_| Reply::json(200, json!({ "ok": false, "error": "invalid_auth" }))).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("slack", "Slack", &slack_form()).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.contains("invalid_auth"), "{reason}");
    assert!(reason.starts_with("rejected by the service"), "{reason}");
    assert_hidden(&app, id, &[SLACK_TOKEN]).await;
}

// ---- redirects ----

#[actix_web::test]
async fn a_redirect_to_another_host_is_not_followed_and_the_key_never_goes_there() {
    let elsewhere = StandIn::start(|_| authenticated()).await;
    let location = format!("http://localhost:{}/whoami", elsewhere.port());
    let service = StandIn::start(move |_| Reply::redirect(302, &location)).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Redirected", &form(&KEY_HEADER)).await;

    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert_eq!(
        reason,
        "unexpected answer: HTTP 302 redirect to localhost; the credentials were not sent there"
    );
    assert!(reason.contains("redirect"));
    assert_eq!(elsewhere.count(), 0, "the other host was asked: {:#?}", elsewhere.requests());
    assert_eq!(service.count(), 1);
}

#[actix_web::test]
async fn a_redirect_to_another_port_of_the_same_address_is_not_followed() {
    let elsewhere = StandIn::start(|_| authenticated()).await;
    let location = format!("http://127.0.0.1:{}/whoami", elsewhere.port());
    let service = StandIn::start(move |_| Reply::redirect(301, &location)).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Redirected", &form(&KEY_HEADER)).await;

    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.starts_with("unexpected answer: HTTP 301 redirect"), "{reason}");
    assert_eq!(elsewhere.count(), 0, "the other port was asked: {:#?}", elsewhere.requests());
}

#[actix_web::test]
async fn a_token_endpoint_redirecting_elsewhere_never_gets_the_client_secret_there() {
    let elsewhere = StandIn::start(|_| token_issued()).await;
    let location = format!("http://localhost:{}/oauth/token", elsewhere.port());
    let service = StandIn::start(move |_| Reply::redirect(307, &location)).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_cc", "Redirected", &form(&CLIENT_CREDENTIALS)).await;

    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.starts_with("unexpected answer: HTTP 307 redirect to localhost"), "{reason}");
    assert_eq!(elsewhere.count(), 0, "the other host was asked: {:#?}", elsewhere.requests());
}

#[actix_web::test]
async fn a_redirect_on_the_same_host_is_followed() {
    let service = StandIn::start(|r| match r.path.as_str() {
        "/whoami" => Reply::redirect(302, "/v2/whoami"),
        "/v2/whoami" if r.header("x-api-key") == Some(format!("Key {HEADER_KEY}").as_str()) => {
            authenticated()
        }
        _ => Reply::json(401, json!({ "error": "invalid_api_key" })),
    })
    .await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Moved", &form(&KEY_HEADER)).await;

    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "ACTIVE", "{reason}");
    let paths: Vec<String> = service.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/whoami", "/v2/whoami"]);
}

// ---- answers that are too big, too slow, or absent ----

#[actix_web::test]
async fn an_answer_over_the_size_limit_is_not_read() {
    let padding = "x".repeat(300 * 1024);
    let service =
        StandIn::start(move |_| Reply::json(200, json!({ "authenticated": true, "padding": padding }))).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Big", &form(&KEY_HEADER)).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.contains("larger than"), "{reason}");
    assert_eq!(reason, "unexpected answer: the answer is larger than 256 KiB");
}

#[actix_web::test]
async fn an_answer_under_the_size_limit_is_read_whole() {
    let padding = "x".repeat(200 * 1024);
    let service =
        StandIn::start(move |_| Reply::json(200, json!({ "padding": padding, "authenticated": true }))).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Big but fine", &form(&KEY_HEADER)).await;
    assert_eq!(shown(&app, id).await.0, "ACTIVE");
}

#[actix_web::test]
async fn a_service_dripping_its_answer_is_cut_off_at_the_time_limit() {
    let service = StandIn::start(|_| {
        Reply::json(200, json!({ "authenticated": true, "padding": "x".repeat(100) }))
            .dripping(Duration::from_millis(200))
    })
    .await;
    let app = spawn_for(&service.url()).await;
    let started = Instant::now();
    let id = app.create("svc_key", "Dripping", &form(&KEY_HEADER)).await;
    assert!(started.elapsed() < WITHIN_TIMEOUT, "saving took {:?}", started.elapsed());
    assert_eq!(shown(&app, id).await, ("NOT ACTIVE".to_owned(), TIMED_OUT.to_owned()));

    let started = Instant::now();
    press_test(&app, id).await;
    let elapsed = started.elapsed();
    assert!(elapsed < WITHIN_TIMEOUT, "the Test button took {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(900), "gave up before the time limit: {elapsed:?}");
    assert_eq!(shown(&app, id).await, ("NOT ACTIVE".to_owned(), TIMED_OUT.to_owned()));
}

#[actix_web::test]
async fn a_port_nobody_listens_on_is_unreachable_connection_refused() {
    let app = spawn_for(&format!("http://127.0.0.1:{}", closed_port())).await;
    let id = app.create("svc_key", "Nobody home", &form(&KEY_HEADER)).await;
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "unreachable: connection refused".to_owned())
    );
    assert_hidden(&app, id, &[HEADER_KEY]).await;
}

#[actix_web::test]
async fn a_server_error_is_an_unexpected_answer_not_a_rejection() {
    let service = StandIn::start(|_| Reply::json(503, json!({ "error": "maintenance" }))).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_bearer", "Down", &form(&BEARER)).await;
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "unexpected answer: HTTP 503 (maintenance)".to_owned())
    );
}

// ---- addresses checks may not reach, and missing values ----

/// The built-in generic HTTP component, with a base URL and test path the
/// user chooses.
fn http_form<'a>(base_url: &'a str, test_path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("auth_method", "bearer"), ("base_url", base_url), ("test_path", test_path), ("token", BEARER_TOKEN)]
}

/// The operator's component with a user-set base URL and test path.
fn open_form<'a>(base_url: &'a str, test_path: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("auth_method", "token"), ("base_url", base_url), ("test_path", test_path), ("token", BEARER_TOKEN)]
}

fn answers_bearer(r: &Recorded) -> Reply {
    if r.header("authorization") == Some(format!("Bearer {BEARER_TOKEN}").as_str()) {
        Reply::json(200, json!({ "authenticated": true, "id": 1 }))
    } else {
        Reply::json(401, json!({ "error": "invalid_token" }))
    }
}

#[actix_web::test]
async fn generic_http_connection_is_checked_at_its_base_url_and_test_path() {
    let service = StandIn::start(answers_bearer).await;
    let app = spawn_for(&service.url()).await;
    let base = format!("{}/api", service.url());
    let id = app.create("http", "Internal API", &http_form(&base, "/me")).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "ACTIVE", "{reason}");
    assert_eq!(service.last().path, "/api/me");
}

#[actix_web::test]
async fn generic_http_connection_to_the_metadata_address_is_blocked() {
    let app = spawn_for("http://127.0.0.1:9").await;
    let id =
        app.create("http", "Metadata", &http_form("http://169.254.169.254", "/latest/meta-data/iam/")).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.starts_with("blocked: "), "{reason}");
}

#[actix_web::test]
async fn generic_http_connection_to_a_public_hostname_is_blocked_without_a_dns_lookup() {
    let app = spawn_for("http://127.0.0.1:9").await;
    let id = app.create("http", "Public", &http_form("https://api.example.com", "/me")).await;
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "blocked: api.example.com is not on a network checks may reach".to_owned())
    );
}

#[actix_web::test]
async fn generic_http_connection_without_a_test_path_says_it_is_missing() {
    let service = StandIn::start(answers_bearer).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("http", "No test path", &http_form(&service.url(), "")).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.starts_with("missing: "), "{reason}");
    assert!(reason.contains("Test path"), "{reason}");
    assert_eq!(service.count(), 0);
}

/// 0.0.0.0 reaches this machine on Linux, but it is never a place for
/// checks, whatever the operator allows. (The metadata address itself is
/// covered by the generic HTTP test; this one shows locally whether a
/// request went out.)
#[actix_web::test]
async fn user_set_base_url_on_the_unspecified_address_is_blocked_and_nothing_is_sent() {
    let service = StandIn::start(answers_bearer).await;
    let app = spawn_for("http://127.0.0.1:9").await;
    let base = format!("http://0.0.0.0:{}", service.port());
    let id = app.create("svc_open", "Unspecified", &open_form(&base, "/me")).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE", "{reason}");
    assert!(reason.starts_with("blocked: "), "{reason}");
    assert_eq!(service.count(), 0, "a forbidden address received the token: {:#?}", service.requests());
}

#[actix_web::test]
async fn user_set_base_url_on_a_loopback_address_outside_the_allowed_range_is_blocked_and_nothing_is_sent() {
    // Tests allow 127.0.0.1 only; 127.0.0.2 is loopback but not allowed.
    let service = StandIn::start_on("127.0.0.2", answers_bearer).await;
    let app = spawn_for("http://127.0.0.1:9").await;
    let id = app.create("svc_open", "Other loopback", &open_form(&service.url(), "/me")).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert!(reason.starts_with("blocked: "), "{reason}");
    assert_eq!(service.count(), 0, "a blocked address received the token: {:#?}", service.requests());
}

#[actix_web::test]
async fn user_set_base_url_on_a_public_hostname_is_blocked_without_a_dns_lookup() {
    let app = spawn_for("http://127.0.0.1:9").await;
    let id = app.create("svc_open", "Public", &open_form("https://api.example.com", "/me")).await;
    // No address in the reason: the name was never looked up.
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "blocked: api.example.com is not on a network checks may reach".to_owned())
    );
}

#[actix_web::test]
async fn user_set_base_url_named_localhost_reaches_the_allowed_loopback_service() {
    let service = StandIn::start(answers_bearer).await;
    let app = spawn_for("http://127.0.0.1:9").await;
    let base = format!("http://localhost:{}", service.port());
    let id = app.create("svc_open", "Local", &open_form(&base, "/me")).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "ACTIVE", "{reason}");
    assert_eq!(service.last().path, "/me");
}

#[actix_web::test]
async fn user_set_empty_test_path_says_it_cannot_be_checked_and_nothing_is_sent() {
    let service = StandIn::start(answers_bearer).await;
    let app = spawn_for("http://127.0.0.1:9").await;
    let id = app.create("svc_open", "No test path", &open_form(&service.url(), "")).await;
    assert_eq!(
        shown(&app, id).await,
        (
            "NOT ACTIVE".to_owned(),
            "missing: Test path is empty, so this connection cannot be checked; set it to a request that \
             succeeds only with valid credentials"
                .to_owned()
        )
    );
    assert_eq!(service.count(), 0);
}

// ---- secrets stay out of reasons and pages ----

#[actix_web::test]
async fn a_service_echoing_the_credential_in_its_errors_does_not_put_it_in_the_reason() {
    let echo = |status: u16| {
        move |_: &Recorded| {
            Reply::json(
                status,
                json!({
                    "error": format!("invalid token {BEARER_TOKEN}"),
                    "code": BEARER_TOKEN,
                    "errors": [{ "code": BEARER_TOKEN }],
                }),
            )
        }
    };
    let service = StandIn::start(echo(401)).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_bearer", "Echo", &form(&BEARER)).await;
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "rejected by the service: HTTP 401".to_owned())
    );
    assert_hidden(&app, id, &[BEARER_TOKEN]).await;

    service.set(echo(500));
    // The Test button as htmx presses it: the notice travels in a header.
    let token = app.csrf().await;
    let response = app
        .client
        .post(app.url(&format!("/connections/{id}/check")))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let trigger = response.headers().get("hx-trigger").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    assert!(trigger.contains("NOT ACTIVE"), "{trigger}");
    assert_no_secret("the HX-Trigger notice", &trigger, &[BEARER_TOKEN]);
    assert_eq!(shown(&app, id).await, ("NOT ACTIVE".to_owned(), "unexpected answer: HTTP 500".to_owned()));
    assert_hidden(&app, id, &[BEARER_TOKEN]).await;
}

#[actix_web::test]
async fn a_service_echoing_the_credential_in_the_checked_field_does_not_put_it_in_the_reason() {
    let service = StandIn::start(|r| {
        // Echoes the token it got in the very field the catalog checks.
        let token = r.header("authorization").unwrap_or_default().trim_start_matches("Bearer ").to_owned();
        Reply::json(200, json!({ "authenticated": token }))
    })
    .await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_bearer", "Echo", &form(&BEARER)).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert_no_secret("the reason", &reason, &[BEARER_TOKEN]);
    assert_hidden(&app, id, &[BEARER_TOKEN]).await;
}

// ---- the Test button and the check history ----

#[actix_web::test]
async fn test_button_rechecks_and_the_history_grows_newest_first_up_to_twenty() {
    let service = StandIn::start(|_| authenticated()).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Tested", &form(&KEY_HEADER)).await;
    assert_eq!(shown(&app, id).await.0, "ACTIVE");

    service.set(|_| Reply::json(401, json!({ "error": "invalid_api_key" })));
    press_test(&app, id).await;
    assert_eq!(service.count(), 2);
    assert_eq!(
        shown(&app, id).await,
        ("NOT ACTIVE".to_owned(), "rejected by the service: HTTP 401 (invalid_api_key)".to_owned())
    );
    let rows = history(&app, id).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert_eq!(rows[0].result, "NOT ACTIVE");
    assert_eq!(rows[0].reason, "rejected by the service: HTTP 401 (invalid_api_key)");
    assert_eq!(rows[0].trigger, "manual");
    assert_eq!((rows[1].result.as_str(), rows[1].trigger.as_str()), ("ACTIVE", "save"));

    service.set(|_| authenticated());
    let token = app.csrf().await;
    for _ in 0..20 {
        let page = app.post_with_token(&token, &format!("/connections/{id}/check"), &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
    }
    assert_eq!(service.count(), 22);
    assert_eq!(shown(&app, id).await.0, "ACTIVE");
    let rows = history(&app, id).await;
    assert_eq!(rows.len(), 20, "the history keeps the last 20 checks");
    assert!(rows.iter().all(|r| r.trigger == "manual" && r.result == "ACTIVE"), "{rows:#?}");
    assert_eq!(app.count_rows("connection_checks").await, 20);
    assert_hidden(&app, id, &[HEADER_KEY]).await;
}

#[actix_web::test]
async fn test_button_via_htmx_answers_with_the_updated_check_panel() {
    let service = StandIn::start(|_| authenticated()).await;
    let app = spawn_for(&service.url()).await;
    let id = app.create("svc_key", "Tested", &form(&KEY_HEADER)).await;
    service.set(|_| Reply::json(403, json!({ "error": "key_disabled" })));

    let token = app.csrf().await;
    let response = app
        .client
        .post(app.url(&format!("/connections/{id}/check")))
        .header("HX-Request", "true")
        .header("HX-Target", "check-panel")
        .header("X-CSRF-Token", token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers().get("hx-trigger").and_then(|v| v.to_str().ok()),
        Some("connections-changed")
    );
    let body = response.text().await.unwrap();
    let panel = scraper::Html::parse_fragment(&body);
    let text = |selector: &str| {
        let selector = scraper::Selector::parse(selector).unwrap();
        panel.select(&selector).map(|e| e.text().collect::<String>().trim().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(text("#check-panel .check-head .badge"), ["NOT ACTIVE"]);
    assert_eq!(
        text("#check-panel .check-head .status-reason"),
        ["rejected by the service: HTTP 403 (key_disabled)"]
    );
    let rows = text("#check-panel table.checks tbody tr");
    assert_eq!(rows.len(), 2, "{body}");
    assert!(rows[0].contains("manual") && rows[0].contains("key_disabled"), "{rows:?}");
    assert!(rows[1].contains("save"), "{rows:?}");
    assert_no_secret("the check panel", &body, &[HEADER_KEY]);
}

// ---- the background schedule ----

/// Polls the list until the connection shows `badge`; returns its reason.
async fn wait_for_badge(app: &TestApp, id: i64, badge: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let (shown_badge, reason) = shown(app, id).await;
        if shown_badge == badge {
            return reason;
        }
        assert!(Instant::now() < deadline, "still {shown_badge} ({reason}) after {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[actix_web::test]
async fn background_checks_notice_a_service_that_starts_refusing_and_recovers() {
    let service = StandIn::start(answers_bearer).await;
    let app = spawn_configured(&service.url(), |s| s.check_interval = Duration::from_millis(300)).await;
    let id = app.create("svc_bearer", "Watched", &form(&BEARER)).await;
    assert_eq!(shown(&app, id).await.0, "ACTIVE");

    service.set(|_| Reply::json(401, json!({ "error": "token_revoked" })));
    let reason = wait_for_badge(&app, id, "NOT ACTIVE", Duration::from_secs(10)).await;
    assert_eq!(reason, "rejected by the service: HTTP 401 (token_revoked)");

    service.set(answers_bearer);
    wait_for_badge(&app, id, "ACTIVE", Duration::from_secs(10)).await;

    let rows = history(&app, id).await;
    assert!(rows.len() >= 3, "{rows:#?}");
    assert_eq!((rows[0].result.as_str(), rows[0].trigger.as_str()), ("ACTIVE", "schedule"));
    assert!(
        rows.iter()
            .any(|r| r.trigger == "schedule"
                && r.reason == "rejected by the service: HTTP 401 (token_revoked)"),
        "{rows:#?}"
    );
    assert_eq!(rows.last().unwrap().trigger, "save");
    assert!(service.count() >= 3);
    assert_hidden(&app, id, &[BEARER_TOKEN]).await;
}

// ---- built-in components against stand-ins answering as they document ----
//
// One or two per kind of authorization: the right ACTIVE / NOT ACTIVE
// reason, with the credential placed where that service expects it. Only
// the base URL (for OAuth2, the endpoints too) points at the stand-in; the
// methods, fields and test requests are the built-in ones.

/// The application with built-in components overridden by `entries`.
async fn spawn_pointing(entries: &str) -> TestApp {
    spawn_with_catalog(entries, |_| {}).await
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
    let app = spawn_pointing(&format!("[postmark]\nbase_url = \"{}\"\n", service.url())).await;
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
    let app = spawn_pointing(&format!("[gumroad]\nbase_url = \"{}\"\n", service.url())).await;
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
    let app = spawn_pointing(&format!("[freshdesk]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(
        &app,
        "freshdesk",
        // The form offers the password Freshdesk's documentation uses.
        &[("domain", "acme"), ("username", "fd-good-key"), ("password", "X")],
        &[("domain", "acme"), ("username", "fd-old-key"), ("password", "X")],
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
    let app = spawn_pointing(&format!("[vercel]\nbase_url = \"{}\"\n", service.url())).await;
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
    let app = spawn_pointing(&format!("[amazon_ses]\nbase_url = \"{}\"\n", service.url())).await;
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
    let app = spawn_pointing(&format!("[telegram_bot]\nbase_url = \"{}\"\n", service.url())).await;
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
    let app = spawn_pointing(&format!("[harvest]\nbase_url = \"{}\"\n", service.url())).await;
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
    let app = spawn_pointing(&format!("[cohere]\nbase_url = \"{}\"\n", service.url())).await;
    let (good, bad) = good_and_bad(&app, "cohere", &[("token", "co-good")], &[("token", "co-bad")]).await;
    assert_active(&good);
    assert_refused(&bad, "unexpected answer: `valid` is false instead of true");
    assert_eq!(service.last().path, "/v1/check-api-key");
}

/// A service with no read-only request says so instead of pretending,
/// and nothing is sent to it.
#[actix_web::test]
async fn a_component_without_a_read_only_request_cannot_be_checked() {
    let service = StandIn::start(|_: &Recorded| Reply::json(200, json!({"success": true}))).await;
    let app = spawn_pointing(&format!("[segment_tracking]\nbase_url = \"{}\"\n", service.url())).await;
    let id = app.create("segment_tracking", "events", &[("username", "wk-abc123")]).await;
    let (badge, reason) = shown(&app, id).await;
    assert_eq!(badge, "NOT ACTIVE");
    assert_eq!(
        reason,
        "cannot be checked: Segment's Tracking API only records events and accepts them even with an \
         unknown write key, so no request proves one"
    );
    assert_eq!(service.count(), 0);
}

/// The whole OAuth2 sign-in for a built-in component whose endpoints and
/// base URL point at the local authorization server, which accepts only
/// the client authentication `auth`.
async fn oauth_sign_in(component: &str, auth: ClientAuth) -> (String, String) {
    // The catalog's scopes, which the app registered with the provider may ask.
    let expected = match component {
        "spotify" => "user-read-email user-read-private",
        _ => "accounts:read forms:read responses:read offline",
    };
    let scopes: Vec<&str> = expected.split(' ').collect();
    let provider = Provider::start(ProviderConfig::for_client(
        Client::new(CLIENT_ID, CLIENT_SECRET, "").with_auth(auth).with_scopes(&scopes),
    ))
    .await;
    let entries = format!(
        "[{component}]\nbase_url = \"{base}\"\n[{component}.auth.oauth2]\nauthorization_url = \"{authorize}\"\ntoken_url = \"{token}\"\n",
        base = provider.base_url(),
        authorize = provider.authorize_url(),
        token = provider.token_url(),
    );
    let app = spawn_pointing(&entries).await;
    let shown = sign_in_through(&app, &provider, component, "oauth2", &[]).await;
    let asked = provider.last_authorize().expect("an authorization request");
    assert_eq!(asked.param("scope"), Some(expected), "the catalog's scopes");
    shown
}

/// Connect, the provider's consent (granted at once), the callback: the
/// connection's badge and reason, or the page's body if nothing was saved.
async fn sign_in_through(
    app: &TestApp,
    provider: &Provider,
    component: &str,
    method: &str,
    fields: &[(&str, &str)],
) -> (String, String) {
    provider.configure(|c| c.clients[0].redirect_uris = vec![format!("{}/oauth2/callback", app.base)]);
    let token = app.csrf().await;
    let mut form = vec![
        ("csrf_token", token.as_str()),
        ("component", component),
        ("auth_method", method),
        ("environment", "development"),
        ("name", "signed in"),
        ("field:client_id", CLIENT_ID),
        ("field:client_secret", CLIENT_SECRET),
    ];
    form.extend_from_slice(fields);
    let started = app.post_raw("/connections/oauth2/connect", &form).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    let url = started.attr("#continue-to-provider", "href").expect("a link to the provider");
    let browser = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let back = browser.get(&url).send().await.unwrap();
    assert_eq!(back.status(), StatusCode::FOUND);
    let callback = back.headers()["location"].to_str().unwrap().to_owned();
    let done = app.get(callback.strip_prefix(&app.base).unwrap()).await;
    match app.connection_ids().await.first() {
        Some(id) => shown(app, *id).await,
        None => ("not saved".to_owned(), done.body),
    }
}

/// The generic OAuth2 component: endpoints, scopes and test path typed in
/// the form, held to the rules of the catalog's own endpoints.
#[actix_web::test]
async fn the_generic_oauth2_component_signs_in_where_the_person_says() {
    let provider = Provider::start(ProviderConfig::for_client(
        Client::new(CLIENT_ID, CLIENT_SECRET, "")
            .with_auth(ClientAuth::Body)
            .with_scopes(&["read", "offline"]),
    ))
    .await;
    let app = spawn_pointing("").await;
    let (base, authorize, token_url) = (provider.base_url(), provider.authorize_url(), provider.token_url());
    let typed = [
        ("field:base_url", base.as_str()),
        ("field:authorization_url", authorize.as_str()),
        ("field:token_url", token_url.as_str()),
        ("field:scopes", "read, offline"),
        ("field:test_path", "/me"),
    ];
    let (badge, reason) = sign_in_through(&app, &provider, "oauth2", "oauth2_body", &typed).await;
    assert_eq!(badge, "ACTIVE", "{reason}");
    let asked = provider.last_authorize().expect("an authorization request");
    assert_eq!(asked.param("scope"), Some("read offline"), "typed scopes, sent space-separated");
    assert!(provider.me_requests() >= 1, "the typed test path was checked");

    // A token URL that would send the client secret in the clear is refused
    // before anyone is sent to sign in.
    let csrf = app.csrf().await;
    let mut form = vec![
        ("csrf_token", csrf.as_str()),
        ("component", "oauth2"),
        ("auth_method", "oauth2_basic"),
        ("environment", "development"),
        ("name", "plain http"),
        ("field:client_id", CLIENT_ID),
        ("field:client_secret", CLIENT_SECRET),
    ];
    form.extend_from_slice(&typed);
    form.retain(|(k, _)| *k != "field:token_url");
    form.push(("field:token_url", "http://auth.example.com/token"));
    let refused = app.post_raw("/connections/oauth2/connect", &form).await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.body.contains("must use https://"), "{}", refused.body);
    assert!(!refused.body.contains(CLIENT_SECRET));
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
