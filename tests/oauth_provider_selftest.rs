//! The test OAuth provider (tests/oauth_provider) checked on its own, with
//! plain reqwest and redirects disabled, so that Plugboard's OAuth tests
//! can rely on it behaving as the RFCs say.

mod oauth_provider;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use oauth_provider::{
    AuthorizeOutcome, Client, ClientAuth, ErrorStyle, Iss, Provider, ProviderConfig, Rotation, ScopeSeparator,
};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

// RFC 7636 appendix B: a verifier and its S256 challenge (checked with
// `openssl dgst -sha256 -binary | base64`, not with the provider's code).
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// Never contacted: redirects are not followed, only read.
const CALLBACK: &str = "http://127.0.0.1:9/oauth/callback";
const CLIENT_ID: &str = "plugboard-test";
const SECRET: &str = "s3cret-value";

fn http() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

fn config() -> ProviderConfig {
    ProviderConfig::for_client(Client::new(CLIENT_ID, SECRET, CALLBACK))
}

/// A parameter to set (`Some`) or remove (`None`).
type Change<'a> = (&'a str, Option<&'a str>);

/// A well-formed authorization request, with `changes` applied: a
/// `Some` value sets (or adds) a parameter, `None` removes it.
async fn authorize(p: &Provider, changes: &[Change<'_>]) -> reqwest::Response {
    let mut params: Vec<(String, String)> = [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", CALLBACK),
        ("scope", "read write"),
        ("state", "st-123"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for (name, value) in changes {
        params.retain(|(k, _)| k != name);
        if let Some(value) = value {
            params.push((name.to_string(), value.to_string()));
        }
    }
    let query: String = form_urlencoded::Serializer::new(String::new()).extend_pairs(&params).finish();
    http().get(format!("{}?{query}", p.authorize_url())).send().await.unwrap()
}

/// The parameters of the redirect back to CALLBACK.
fn redirect_params(answer: &reqwest::Response) -> HashMap<String, String> {
    assert_eq!(answer.status(), StatusCode::FOUND);
    let location = answer.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(&format!("{CALLBACK}?")), "redirected to {location}");
    url::Url::parse(location).unwrap().query_pairs().into_owned().collect()
}

async fn new_code(p: &Provider) -> String {
    redirect_params(&authorize(p, &[]).await)["code"].clone()
}

#[derive(Clone, Copy)]
enum Auth<'a> {
    /// RFC 6749 2.3.1: each part form-urlencoded, then Basic.
    Basic(&'a str, &'a str),
    /// client_id and client_secret form fields.
    Body(&'a str, &'a str),
    /// An Authorization header exactly as given.
    Raw(&'a str),
    None,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    json: Value,
}

impl Answer {
    fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or_else(|| panic!("no error in {}", self.json))
    }

    fn str(&self, name: &str) -> String {
        self.json[name].as_str().unwrap_or_else(|| panic!("no {name} in {}", self.json)).to_owned()
    }
}

async fn post_form(url: &str, auth: Auth<'_>, form: &[(&str, &str)]) -> Answer {
    let encode = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let mut fields: Vec<(&str, &str)> = form.to_vec();
    let mut request = http().post(url);
    match auth {
        Auth::Basic(id, secret) => request = request.basic_auth(encode(id), Some(encode(secret))),
        Auth::Body(id, secret) => fields.extend([("client_id", id), ("client_secret", secret)]),
        Auth::Raw(header) => request = request.header("Authorization", header),
        Auth::None => {}
    }
    let answer = request.form(&fields).send().await.unwrap();
    let (status, headers) = (answer.status(), answer.headers().clone());
    let text = answer.text().await.unwrap();
    let json = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap() };
    Answer { status, headers, json }
}

async fn exchange_with(p: &Provider, auth: Auth<'_>, code: &str, verifier: &str, redirect: &str) -> Answer {
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect),
        ("code_verifier", verifier),
    ];
    post_form(&p.token_url(), auth, &form).await
}

async fn exchange(p: &Provider, code: &str) -> Answer {
    exchange_with(p, Auth::Basic(CLIENT_ID, SECRET), code, VERIFIER, CALLBACK).await
}

async fn refresh(p: &Provider, refresh_token: &str) -> Answer {
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await
}

/// A code flow carried through: the token answer.
async fn tokens(p: &Provider) -> Answer {
    let code = new_code(p).await;
    let answer = exchange(p, &code).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    answer
}

async fn me(p: &Provider, access_token: &str) -> (StatusCode, Value) {
    let answer = http().get(p.userinfo_url()).bearer_auth(access_token).send().await.unwrap();
    (answer.status(), answer.json().await.unwrap())
}

fn assert_refused(answer: &Answer, status: StatusCode, error: &str) {
    assert_eq!((answer.status, answer.error()), (status, error), "{}", answer.json);
}

// ---------------------------------------------------------------------------

#[test]
fn pkce_and_base64_match_the_rfc_vectors() {
    assert_eq!(oauth_provider::s256_challenge(VERIFIER), CHALLENGE);
    // RFC 4648 section 10, without padding; and the two URL-safe characters.
    for (input, encoded) in
        [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE")]
    {
        assert_eq!(oauth_provider::base64url_nopad(input.as_bytes()), encoded);
    }
    assert_eq!(oauth_provider::base64url_nopad(&[0xfb, 0xff]), "-_8");
    for (decoded, encoded) in [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foobar", "Zm9vYmFy")] {
        assert_eq!(oauth_provider::base64_decode(encoded).unwrap(), decoded.as_bytes());
    }
    assert_eq!(oauth_provider::base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
    for bad in ["Zg", "Zg=", "Z===", "Zm9v!A==", "-_8="] {
        assert!(oauth_provider::base64_decode(bad).is_none(), "{bad}");
    }
    assert!(oauth_provider::is_valid_verifier(VERIFIER));
    assert!(!oauth_provider::is_valid_verifier(&VERIFIER[..42]));
    assert!(!oauth_provider::is_valid_verifier(&"a".repeat(129)));
    assert!(!oauth_provider::is_valid_verifier(&format!("{}+", &VERIFIER[..43])));
}

#[actix_web::test]
async fn a_code_flow_with_pkce_and_basic_auth_gets_tokens_that_work() {
    let p = Provider::start(config()).await;
    let answer = authorize(&p, &[("access_type", Some("offline")), ("prompt", Some("consent"))]).await;
    let params = redirect_params(&answer);
    assert_eq!(params["state"], "st-123");
    assert!(!params.contains_key("iss"), "no iss unless configured");
    let seen = p.last_authorize().unwrap();
    assert_eq!(seen.param("code_challenge"), Some(CHALLENGE));
    assert_eq!(
        seen.extra(),
        [("access_type".to_string(), "offline".to_string()), ("prompt".into(), "consent".into())]
    );

    let answer = exchange(&p, &params["code"]).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    assert_eq!(answer.headers["cache-control"], "no-store");
    assert_eq!(answer.json["token_type"], "Bearer");
    assert_eq!(answer.json["expires_in"], 3600);
    assert_eq!(answer.json["scope"], "read write");
    assert!(answer.str("refresh_token").starts_with("rt_"));
    let access = answer.str("access_token");
    let sent = p.last_token_request().unwrap();
    assert_eq!(sent.basic_credentials(), Some((CLIENT_ID.into(), SECRET.into())));
    assert_eq!(sent.form_value("code_verifier"), Some(VERIFIER));

    assert_eq!(
        me(&p, &access).await,
        (StatusCode::OK, json!({"id": "user-1", "email": "user-1@example.test"}))
    );
    assert_eq!(me(&p, "at_not-a-token").await, (StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"})));
    assert_eq!(p.authorize_requests(), 1);
    assert_eq!(
        (p.token_requests(), p.code_exchanges(), p.refreshes(), p.failed_token_requests()),
        (1, 1, 0, 0)
    );
    assert_eq!(p.me_requests(), 2);
    assert_eq!(p.valid_access_tokens(), [access]);
}

#[actix_web::test]
async fn a_wrong_verifier_is_refused_and_leaves_the_code_usable() {
    let p = Provider::start(config()).await;
    let code = new_code(&p).await;
    let other = "x".repeat(43);
    let answer = exchange_with(&p, Auth::Basic(CLIENT_ID, SECRET), &code, &other, CALLBACK).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(answer.headers["cache-control"], "no-store");
    // Too short to be a verifier at all.
    let answer = exchange_with(&p, Auth::Basic(CLIENT_ID, SECRET), &code, "short", CALLBACK).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CALLBACK)];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(p.failed_token_requests(), 3);
    // The check is what refused it: the right verifier still works.
    assert_eq!(exchange(&p, &code).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn a_verifier_for_a_code_without_challenge_is_a_downgrade_and_refused() {
    let p = Provider::start(ProviderConfig { require_pkce: false, ..config() }).await;
    let without = [("code_challenge", None), ("code_challenge_method", None)];
    let code = redirect_params(&authorize(&p, &without).await)["code"].clone();
    assert_refused(&exchange(&p, &code).await, StatusCode::BAD_REQUEST, "invalid_request");
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("redirect_uri", CALLBACK)];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_eq!(answer.status, StatusCode::OK, "without PKCE on both sides it works: {}", answer.json);
}

#[actix_web::test]
async fn the_redirect_uri_must_match_exactly() {
    let p = Provider::start(config()).await;
    // At /authorize: not redirected anywhere, a 400 page instead.
    for wrong in
        [&format!("{CALLBACK}/"), "http://127.0.0.1:9/oauth/callback?x=1", "http://127.0.0.1:9/oauth"]
    {
        let answer = authorize(&p, &[("redirect_uri", Some(wrong))]).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert!(answer.headers().get("location").is_none());
        assert!(answer.text().await.unwrap().contains("not registered"));
    }
    // At /token: the authorization request's, exactly.
    let code = new_code(&p).await;
    let answer =
        exchange_with(&p, Auth::Basic(CLIENT_ID, SECRET), &code, VERIFIER, &format!("{CALLBACK}/")).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("code_verifier", VERIFIER)];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[actix_web::test]
async fn an_unknown_client_gets_a_page_not_a_redirect() {
    let p = Provider::start(config()).await;
    for changes in [[("client_id", Some("someone-else"))], [("client_id", None)]] {
        let answer = authorize(&p, &changes).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
        assert!(answer.headers().get("location").is_none());
    }
    assert_eq!(p.authorize_requests(), 2);
}

#[actix_web::test]
async fn a_redirect_uri_registered_after_start_is_accepted() {
    let p = Provider::start(ProviderConfig::for_client(Client::new(CLIENT_ID, SECRET, ""))).await;
    assert_eq!(authorize(&p, &[]).await.status(), StatusCode::BAD_REQUEST);
    p.configure(|c| c.clients[0].redirect_uris.push(CALLBACK.into()));
    assert!(redirect_params(&authorize(&p, &[]).await).contains_key("code"));
}

#[actix_web::test]
async fn invalid_authorization_requests_are_sent_back_with_the_error_and_state() {
    let p = Provider::start(config()).await;
    let cases: &[(&[Change<'_>], &str)] = &[
        (&[("response_type", Some("token"))], "unsupported_response_type"),
        (&[("response_type", None)], "invalid_request"),
        (&[("code_challenge", None), ("code_challenge_method", None)], "invalid_request"),
        (&[("code_challenge_method", Some("plain"))], "invalid_request"),
        (&[("code_challenge_method", None)], "invalid_request"),
        (&[("code_challenge", Some("too-short"))], "invalid_request"),
        (&[("scope", Some("read admin"))], "invalid_scope"),
    ];
    for (changes, error) in cases {
        let params = redirect_params(&authorize(&p, changes).await);
        assert_eq!(params.get("error").map(String::as_str), Some(*error), "{changes:?}");
        assert_eq!(params["state"], "st-123");
        assert!(!params.contains_key("code"));
    }
    // No state: refused too (there is none to send back).
    let params = redirect_params(&authorize(&p, &[("state", None)]).await);
    assert_eq!((params["error"].as_str(), params.get("state")), ("invalid_request", None));
    // A repeated parameter (RFC 6749 3.1).
    let query = format!(
        "response_type=code&client_id={CLIENT_ID}&redirect_uri={}&state=a&state=b&code_challenge={CHALLENGE}\
         &code_challenge_method=S256",
        form_urlencoded::byte_serialize(CALLBACK.as_bytes()).collect::<String>()
    );
    let answer = http().get(format!("{}?{query}", p.authorize_url())).send().await.unwrap();
    assert_eq!(redirect_params(&answer)["error"], "invalid_request");
}

#[actix_web::test]
async fn scopes_can_be_comma_separated_and_default_to_the_clients() {
    let client = Client::new(CLIENT_ID, SECRET, CALLBACK).with_scopes(&["chat:write", "channels:read"]);
    let p = Provider::start(ProviderConfig {
        scope_separator: ScopeSeparator::Comma,
        ..ProviderConfig::for_client(client)
    })
    .await;
    let params = redirect_params(&authorize(&p, &[("scope", Some("chat:write,channels:read"))]).await);
    assert_eq!(exchange(&p, &params["code"]).await.json["scope"], "chat:write,channels:read");
    // A space is not a separator here: "chat:write channels:read" is one unknown scope.
    let params = redirect_params(&authorize(&p, &[("scope", Some("chat:write channels:read"))]).await);
    assert_eq!(params["error"], "invalid_scope");
    let params = redirect_params(&authorize(&p, &[("scope", None)]).await);
    assert_eq!(exchange(&p, &params["code"]).await.json["scope"], "chat:write,channels:read");
}

#[actix_web::test]
async fn a_reused_code_is_refused_and_revokes_what_it_gave() {
    let p = Provider::start(config()).await;
    let code = new_code(&p).await;
    let first = exchange(&p, &code).await;
    assert_eq!(first.status, StatusCode::OK);
    let access = first.str("access_token");
    let refreshed = refresh(&p, &first.str("refresh_token")).await;
    assert_eq!(refreshed.status, StatusCode::OK);

    assert_refused(&exchange(&p, &code).await, StatusCode::BAD_REQUEST, "invalid_grant");
    // RFC 6749 10.5: everything issued from the code is revoked, the
    // refreshed tokens included.
    assert_eq!(me(&p, &access).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(me(&p, &refreshed.str("access_token")).await.0, StatusCode::UNAUTHORIZED);
    assert_refused(
        &refresh(&p, &refreshed.str("refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert!(p.valid_access_tokens().is_empty() && p.valid_refresh_tokens().is_empty());
    assert_eq!((p.code_exchanges(), p.refreshes(), p.failed_token_requests()), (2, 2, 2));
}

#[actix_web::test]
async fn codes_expire_and_are_bound_to_their_client() {
    let other = Client::new("other-client", "other-secret", CALLBACK);
    let p = Provider::start(ProviderConfig { code_lifetime: Duration::from_millis(300), ..config() }).await;
    p.configure(|c| c.clients.push(other));
    let code = new_code(&p).await;
    let answer =
        exchange_with(&p, Auth::Basic("other-client", "other-secret"), &code, VERIFIER, CALLBACK).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_grant");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_refused(&exchange(&p, &code).await, StatusCode::BAD_REQUEST, "invalid_grant");

    p.configure(|c| c.code_lifetime = Duration::from_secs(60));
    let code = new_code(&p).await;
    p.expire_codes();
    assert_refused(&exchange(&p, &code).await, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_refused(&exchange(&p, "code_unknown").await, StatusCode::BAD_REQUEST, "invalid_grant");
}

#[actix_web::test]
async fn wrong_or_missing_client_authentication_is_invalid_client() {
    let p = Provider::start(config()).await;
    let code = new_code(&p).await;
    for auth in [
        Auth::Basic(CLIENT_ID, "wrong"),
        Auth::Basic("nobody", SECRET),
        Auth::Body(CLIENT_ID, "wrong"),
        Auth::Raw("Basic !!not-base64"),
        Auth::None,
    ] {
        let answer = exchange_with(&p, auth, &code, VERIFIER, CALLBACK).await;
        assert_refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
        assert!(answer.headers["www-authenticate"].to_str().unwrap().starts_with("Basic"));
    }
    // client_id without a secret is no authentication.
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("client_id", CLIENT_ID)];
    assert_refused(
        &post_form(&p.token_url(), Auth::None, &form).await,
        StatusCode::UNAUTHORIZED,
        "invalid_client",
    );
    // Two methods at once (RFC 6749 2.3).
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("client_secret", SECRET)];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(p.failed_token_requests(), 7);
    assert_eq!(exchange(&p, &code).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn each_client_authenticates_only_the_way_it_is_registered() {
    let p = Provider::start(config()).await;
    p.configure(|c| c.clients[0].auth = ClientAuth::Basic);
    let code = new_code(&p).await;
    let answer = exchange_with(&p, Auth::Body(CLIENT_ID, SECRET), &code, VERIFIER, CALLBACK).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(exchange(&p, &code).await.status, StatusCode::OK);

    p.configure(|c| c.clients[0].auth = ClientAuth::Body);
    let code = new_code(&p).await;
    assert_refused(&exchange(&p, &code).await, StatusCode::UNAUTHORIZED, "invalid_client");
    let answer = exchange_with(&p, Auth::Body(CLIENT_ID, SECRET), &code, VERIFIER, CALLBACK).await;
    assert_eq!(answer.status, StatusCode::OK);
}

#[actix_web::test]
async fn basic_credentials_are_form_urlencoded_before_base64() {
    // RFC 6749 2.3.1: a secret with characters that encoding changes.
    let (id, secret) = ("client:one", "s+e/c r%t=é");
    let p = Provider::start(ProviderConfig::for_client(Client::new(id, secret, CALLBACK))).await;
    let code = redirect_params(&authorize(&p, &[("client_id", Some(id))]).await)["code"].clone();
    // Not encoded first (plain RFC 7617 Basic): "+" would read as a space.
    let raw = http().post(p.token_url()).basic_auth("client%3Aone", Some(secret));
    let answer = raw
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
    let answer = exchange_with(&p, Auth::Basic(id, secret), &code, VERIFIER, CALLBACK).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
}

#[actix_web::test]
async fn the_token_endpoint_wants_a_form_without_repeats() {
    let p = Provider::start(config()).await;
    let code = new_code(&p).await;
    let body = json!({"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK,
                      "code_verifier": VERIFIER, "client_id": CLIENT_ID, "client_secret": SECRET});
    let answer = http().post(p.token_url()).json(&body).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert_eq!(answer.json::<Value>().await.unwrap()["error"], "invalid_request");
    let form = [("grant_type", "authorization_code"), ("code", code.as_str()), ("code", code.as_str())];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_request");
    let answer =
        post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &[("grant_type", "password")]).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    let answer = http().get(p.token_url()).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn a_rotating_refresh_invalidates_the_old_refresh_token() {
    let p = Provider::start(config()).await;
    let first = tokens(&p).await;
    let old = first.str("refresh_token");
    let answer = refresh(&p, &old).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
    let new = answer.str("refresh_token");
    assert_ne!(new, old);
    assert_ne!(answer.str("access_token"), first.str("access_token"));
    assert_eq!(
        (answer.json["expires_in"].clone(), answer.json["scope"].clone()),
        (json!(3600), json!("read write"))
    );
    assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::OK);

    assert_refused(&refresh(&p, &old).await, StatusCode::BAD_REQUEST, "invalid_grant");
    // Plain rotation: the reuse does not harm the new token.
    assert_eq!(refresh(&p, &new).await.status, StatusCode::OK);
    assert_eq!((p.refreshes(), p.failed_token_requests()), (3, 1));
}

#[actix_web::test]
async fn reuse_of_a_rotated_refresh_token_can_revoke_the_grant() {
    let p = Provider::start(ProviderConfig { rotation: Rotation::RotateDetectReuse, ..config() }).await;
    let old = tokens(&p).await.str("refresh_token");
    let answer = refresh(&p, &old).await;
    let (new, access) = (answer.str("refresh_token"), answer.str("access_token"));
    assert_refused(&refresh(&p, &old).await, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_refused(&refresh(&p, &new).await, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_eq!(me(&p, &access).await.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn a_refresh_without_rotation_keeps_the_refresh_token() {
    let p = Provider::start(ProviderConfig { rotation: Rotation::Keep, ..config() }).await;
    let kept = tokens(&p).await.str("refresh_token");
    for _ in 0..2 {
        let answer = refresh(&p, &kept).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.json);
        assert!(answer.json.get("refresh_token").is_none(), "{}", answer.json);
        assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::OK);
    }
    assert_eq!(p.valid_refresh_tokens(), std::slice::from_ref(&kept));
    // Narrower scope may be asked, wider not (RFC 6749 6).
    let form = [("grant_type", "refresh_token"), ("refresh_token", kept.as_str()), ("scope", "read")];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_eq!(answer.json["scope"], "read");
    let form = [("grant_type", "refresh_token"), ("refresh_token", kept.as_str()), ("scope", "admin")];
    let answer = post_form(&p.token_url(), Auth::Basic(CLIENT_ID, SECRET), &form).await;
    assert_refused(&answer, StatusCode::BAD_REQUEST, "invalid_scope");
}

#[actix_web::test]
async fn a_refresh_delay_lets_two_refreshes_overlap() {
    let p = Provider::start(ProviderConfig { refresh_delay: Duration::from_millis(500), ..config() }).await;
    let old = tokens(&p).await.str("refresh_token");
    let started = Instant::now();
    let (a, b) = tokio::join!(refresh(&p, &old), refresh(&p, &old));
    let elapsed = started.elapsed();
    // Both were in flight at once: together they took one delay, not two.
    assert!(elapsed >= Duration::from_millis(500) && elapsed < Duration::from_millis(1000), "{elapsed:?}");
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::OK, StatusCode::BAD_REQUEST]);
    assert_eq!((p.refreshes(), p.failed_token_requests()), (2, 1));
}

#[actix_web::test]
async fn an_expired_access_token_gets_401() {
    let p =
        Provider::start(ProviderConfig { access_token_lifetime: Some(Duration::from_secs(2)), ..config() })
            .await;
    let answer = tokens(&p).await;
    assert_eq!(answer.json["expires_in"], 2);
    let access = answer.str("access_token");
    assert_eq!(me(&p, &access).await.0, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, body) = me(&p, &access).await;
    assert_eq!((status, body), (StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"})));
    // A refresh gives a working one again; expire_access_tokens skips the wait.
    let access = refresh(&p, &answer.str("refresh_token")).await.str("access_token");
    assert_eq!(me(&p, &access).await.0, StatusCode::OK);
    p.expire_access_tokens();
    assert_eq!(me(&p, &access).await.0, StatusCode::UNAUTHORIZED);
}

#[actix_web::test]
async fn tokens_without_expiry_or_refresh_token_when_configured() {
    let p = Provider::start(ProviderConfig {
        access_token_lifetime: None,
        issue_refresh_token: false,
        token_type: "bearer".into(),
        ..config()
    })
    .await;
    let answer = tokens(&p).await;
    assert!(answer.json.get("expires_in").is_none() && answer.json.get("refresh_token").is_none());
    assert_eq!(answer.json["token_type"], "bearer");
    assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::OK);
}

#[actix_web::test]
async fn revocation_by_the_endpoint_and_by_the_handle() {
    let p = Provider::start(config()).await;
    let revoke = |token: String| {
        let url = p.revoke_url();
        async move { post_form(&url, Auth::Basic(CLIENT_ID, SECRET), &[("token", &token)]).await }
    };
    // RFC 7009: revoking a refresh token also ends its access tokens.
    let answer = tokens(&p).await;
    assert_eq!(revoke(answer.str("refresh_token")).await.status, StatusCode::OK);
    assert_refused(
        &refresh(&p, &answer.str("refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::UNAUTHORIZED);
    // An access token alone.
    let answer = tokens(&p).await;
    assert_eq!(revoke(answer.str("access_token")).await.status, StatusCode::OK);
    assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(refresh(&p, &answer.str("refresh_token")).await.status, StatusCode::OK);
    // Unknown tokens: 200 all the same. No client authentication: 401.
    assert_eq!(revoke("rt_unknown".into()).await.status, StatusCode::OK);
    let answer = post_form(&p.revoke_url(), Auth::None, &[("token", "rt_unknown")]).await;
    assert_refused(&answer, StatusCode::UNAUTHORIZED, "invalid_client");
    assert_eq!(p.revoke_requests(), 4);

    // The handle: refresh tokens only, then everything.
    let answer = tokens(&p).await;
    p.revoke_refresh_tokens();
    assert_refused(
        &refresh(&p, &answer.str("refresh_token")).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
    assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::OK);
    p.revoke_all();
    assert_eq!(me(&p, &answer.str("access_token")).await.0, StatusCode::UNAUTHORIZED);
    assert!(p.valid_access_tokens().is_empty() && p.valid_refresh_tokens().is_empty());
}

#[actix_web::test]
async fn errors_can_come_inside_http_200_as_github_sends_them() {
    let p = Provider::start(ProviderConfig { error_style: ErrorStyle::InsideHttp200, ..config() }).await;
    let answer = exchange(&p, "code_bad").await;
    assert_eq!((answer.status, answer.error()), (StatusCode::OK, "bad_verification_code"));
    assert!(answer.json["error_description"].is_string());
    assert!(answer.json.get("access_token").is_none());
    let code = new_code(&p).await;
    let answer = exchange_with(&p, Auth::Basic(CLIENT_ID, "wrong"), &code, VERIFIER, CALLBACK).await;
    assert_eq!((answer.status, answer.error()), (StatusCode::OK, "incorrect_client_credentials"));
    assert_eq!(p.failed_token_requests(), 2);
    assert_eq!(exchange(&p, &code).await.status, StatusCode::OK);
}

#[actix_web::test]
async fn denial_and_forced_invalid_scope_come_back_on_the_redirect() {
    let p = Provider::start(ProviderConfig { outcome: AuthorizeOutcome::Deny, ..config() }).await;
    let params = redirect_params(&authorize(&p, &[]).await);
    assert_eq!((params["error"].as_str(), params["state"].as_str()), ("access_denied", "st-123"));
    assert!(!params.contains_key("code"));
    p.configure(|c| c.outcome = AuthorizeOutcome::InvalidScope);
    assert_eq!(redirect_params(&authorize(&p, &[]).await)["error"], "invalid_scope");
}

#[actix_web::test]
async fn iss_is_sent_when_configured_right_or_wrong() {
    let p = Provider::start(ProviderConfig { iss: Iss::Correct, ..config() }).await;
    let params = redirect_params(&authorize(&p, &[]).await);
    assert_eq!(params["iss"], p.issuer());
    assert_eq!(p.issuer(), p.base_url());
    // RFC 9207: on error responses too.
    p.configure(|c| c.outcome = AuthorizeOutcome::Deny);
    assert_eq!(redirect_params(&authorize(&p, &[]).await)["iss"], p.issuer());
    p.configure(|c| {
        c.outcome = AuthorizeOutcome::Approve;
        c.iss = Iss::Wrong("https://attacker.example".into());
    });
    let params = redirect_params(&authorize(&p, &[]).await);
    assert_eq!((params["iss"].as_str(), params.contains_key("code")), ("https://attacker.example", true));
}

#[actix_web::test]
async fn extra_token_fields_are_added_to_token_answers() {
    let config = config()
        .with_token_field("instance_url", json!("https://example.my.test"))
        .with_token_field("authed_user", json!({"id": "U1", "access_token": "xoxp-1"}));
    let p = Provider::start(config).await;
    let answer = tokens(&p).await;
    assert_eq!(answer.json["instance_url"], "https://example.my.test");
    assert_eq!(answer.json["authed_user"]["id"], "U1");
    let answer = refresh(&p, &answer.str("refresh_token")).await;
    assert_eq!(answer.json["instance_url"], "https://example.my.test");
}
