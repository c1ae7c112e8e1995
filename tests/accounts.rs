//! Accounts and roles over HTTP: first-run setup, signing in and out, the
//! sign-in throttle, what each role may do, managing people and changing
//! one's own password.

mod common;

use std::time::{Duration, Instant};

use common::{ADMIN_EMAIL, PASSWORD, Page, TestApp};
use plugboard::accounts::Role;
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_ACCOUNTSMARKER123";
const WRONG_PASSWORD: &str = "not the right password at all";
const INITIAL_PASSWORD: &str = "initial password given 42";
const NEW_PASSWORD: &str = "a brand new password of mine";

const BAD_CREDENTIALS: &str = "That email and password do not match an active account.";
const LAST_ADMIN: &str = "This is the last admin";

// ---- helpers ----

fn assert_status(page: &Page, status: StatusCode, what: &str) {
    assert_eq!(page.status, status, "{what}: {}", page.body);
}

fn assert_redirect(page: &Page, to: &str, what: &str) {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{what}: {}", page.body);
    assert_eq!(page.header("location"), Some(to), "{what}");
}

/// The value of the session cookie the browser holds, if any.
fn session_cookie(app: &TestApp, jar: &reqwest::cookie::Jar) -> Option<String> {
    use reqwest::cookie::CookieStore;
    let header = jar.cookies(&app.base.parse().unwrap())?;
    header.to_str().ok()?.split("; ").find_map(|c| c.strip_prefix("plugboard_session=")).map(str::to_owned)
}

/// A browser that sends exactly this session cookie and keeps nothing.
fn client_with_cookie(value: &str) -> reqwest::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("cookie", format!("plugboard_session={value}").parse().unwrap());
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .default_headers(headers)
        .build()
        .unwrap()
}

/// A connection with one tag; returns their ids.
async fn connection_with_tag(app: &TestApp) -> (i64, i64) {
    let id = app.create("github", "Guarded Repo", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    let tag = app.snapshot().tags.iter().find(|(_, n)| n == "ops").unwrap().0;
    (id, tag)
}

/// Every connection route that changes something, with a form that would
/// succeed for a member.
fn connection_posts(id: i64, tag: i64) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/connections".to_owned(),
            vec![
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Forged"),
                ("field:token", "ghp_FORGED123"),
            ],
        ),
        (format!("/connections/{id}"), vec![("version", "1"), ("auth_method", "token"), ("name", "Renamed")]),
        (format!("/connections/{id}/delete"), vec![]),
        (format!("/connections/{id}/tags"), vec![("tag", "forged")]),
        (format!("/connections/{id}/tags/{tag}/delete"), vec![]),
        (format!("/connections/{id}/check"), vec![]),
    ]
}

/// The connection forms, which only members and admins may open.
fn connection_forms(id: i64) -> Vec<String> {
    vec![
        "/connections/new".to_owned(),
        "/connections/new?component=github".to_owned(),
        format!("/connections/{id}/edit"),
        format!("/connections/{id}/delete"),
    ]
}

/// The admin area: pages, and posts with forms that would succeed.
fn admin_pages(tag: i64) -> Vec<String> {
    vec![
        "/admin/users".to_owned(),
        "/admin/audit".to_owned(),
        "/admin/api-tokens".to_owned(),
        "/tags".to_owned(),
        format!("/tags/{tag}/merge"),
        format!("/tags/{tag}/delete"),
    ]
}

fn admin_posts(user: i64, tag: i64) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/admin/users".to_owned(),
            vec![
                ("email", "forged@plugboard.test"),
                ("name", ""),
                ("role", "admin"),
                ("password", "forged password 123"),
            ],
        ),
        (format!("/admin/users/{user}/role"), vec![("role", "admin")]),
        (format!("/admin/users/{user}/disable"), vec![]),
        (format!("/admin/users/{user}/enable"), vec![]),
        (format!("/tags/{tag}/rename"), vec![("name", "renamed")]),
        (format!("/tags/{tag}/merge"), vec![("into", "other")]),
        (format!("/tags/{tag}/delete"), vec![]),
        (
            "/admin/api-tokens".to_owned(),
            vec![
                ("name", "forged"),
                ("environment", "production"),
                ("permission", "read_credentials"),
                ("expiry", "30"),
            ],
        ),
        ("/admin/api-tokens/1/revoke".to_owned(), vec![]),
    ]
}

/// People as stored: (email, role, disabled, must change password, epoch).
fn people(app: &TestApp) -> Vec<(String, String, bool, bool, i32)> {
    let mut conn = app.db();
    plugboard::accounts::list(&mut conn)
        .unwrap()
        .into_iter()
        .map(|u| (u.email, u.role.as_str().to_owned(), u.disabled, u.must_change_password, u.session_epoch))
        .collect()
}

fn forbidden_for(page: &Page, role: &str, needed: &str, what: &str) {
    assert_status(page, StatusCode::FORBIDDEN, what);
    assert!(
        page.body.contains(&format!("Your role ({role}) cannot do this; it needs {needed}.")),
        "{what}: {}",
        page.body
    );
}

/// Posts a password change from `client`.
async fn change_password(app: &TestApp, client: &reqwest::Client, current: &str, new: &str) -> Page {
    app.post_as(
        client,
        "/account/password",
        &[("current_password", current), ("password", new), ("password_again", new)],
    )
    .await
}

/// Adds a person through the People page; the answer.
async fn add_person(app: &TestApp, email: &str, role: &str, password: &str) -> Page {
    app.post("/admin/users", &[("email", email), ("name", ""), ("role", role), ("password", password)]).await
}

fn say_try_again(page: &Page) {
    assert_status(page, StatusCode::TOO_MANY_REQUESTS, "refused sign-in");
    let text = page.text_of("#sign-in-error");
    assert!(text.starts_with("Too many failed sign-ins. Try again in "), "{text}");
    let minutes: String = text
        .trim_start_matches("Too many failed sign-ins. Try again in ")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let minutes: i64 = minutes.parse().unwrap_or_else(|_| panic!("a number of minutes in {text:?}"));
    assert!((1..=15).contains(&minutes), "{text}");
    assert!(text.contains(" minute"), "{text}");
}

/// Moves every recorded sign-in failure `minutes` into the past.
fn age_failures(app: &TestApp, minutes: i64) {
    use diesel::prelude::*;
    use plugboard::db::schema::sign_in_failures;
    let mut conn = app.db();
    let then = chrono::Utc::now().naive_utc() - chrono::TimeDelta::minutes(minutes);
    diesel::update(sign_in_failures::table)
        .set(sign_in_failures::last_failure.eq(then))
        .execute(&mut conn)
        .unwrap();
}

fn forget_address_failures(app: &TestApp) {
    use diesel::prelude::*;
    use plugboard::db::schema::sign_in_failures;
    let mut conn = app.db();
    diesel::delete(sign_in_failures::table.filter(sign_in_failures::key.like("addr:%")))
        .execute(&mut conn)
        .unwrap();
}

// ---- first run ----

#[actix_web::test]
async fn a_fresh_install_sends_everyone_to_setup_which_creates_the_first_admin_once() {
    let app = common::spawn().await;
    {
        let mut conn = app.db();
        use diesel::RunQueryDsl;
        diesel::sql_query("DELETE FROM audit_events").execute(&mut conn).unwrap();
        diesel::sql_query("DELETE FROM users").execute(&mut conn).unwrap();
    }
    let browser = common::new_client();
    for path in ["/", "/connections/new", "/admin/users", "/account/password", "/sign-in"] {
        assert_redirect(&app.get_as(&browser, path).await, "/setup", path);
    }
    let htmx = app.hx_get_as(&browser, "/").await;
    assert_status(&htmx, StatusCode::UNAUTHORIZED, "htmx on a fresh install");
    assert_eq!(htmx.header("hx-redirect"), Some("/setup"));
    // The harness's browser was signed in as an account that is gone.
    assert_redirect(&app.get("/").await, "/setup", "a session of a deleted account");

    let setup = app.get_as(&browser, "/setup").await;
    assert_status(&setup, StatusCode::OK, "setup page");
    assert!(setup.text_of("h1").contains("Set up Plugboard"), "{}", setup.body);
    assert_eq!(setup.count("form[action='/setup'] input[name=password_again]"), 1);

    // Refused: the passwords differ, or are too short. Nothing is created.
    let token = app.csrf_as(&browser).await;
    let post = |fields: Vec<(&'static str, &'static str)>| {
        let mut form = vec![("csrf_token", token.clone())];
        form.extend(fields.into_iter().map(|(k, v)| (k, v.to_owned())));
        let request = browser.post(app.url("/setup")).form(&form);
        async move {
            let response = request.send().await.unwrap();
            (response.status(), response.text().await.unwrap())
        }
    };
    let (status, body) = post(vec![
        ("email", "first@plugboard.test"),
        ("name", "First Admin"),
        ("password", NEW_PASSWORD),
        ("password_again", "something else entirely"),
    ])
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("The two passwords differ"), "{body}");
    let (status, body) = post(vec![
        ("email", "first@plugboard.test"),
        ("name", "First Admin"),
        ("password", "short"),
        ("password_again", "short"),
    ])
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("Use at least 12 characters"), "{body}");
    assert!(people(&app).is_empty());

    // Accepted: the first admin, signed in at once.
    let (status, _) = post(vec![
        ("email", "First@Plugboard.test"),
        ("name", "First Admin"),
        ("password", NEW_PASSWORD),
        ("password_again", NEW_PASSWORD),
    ])
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let list = app.get_as(&browser, "/").await;
    assert_status(&list, StatusCode::OK, "the list after setup");
    assert!(list.text_of(".who").contains("First Admin <first@plugboard.test> · Admin"), "{}", list.body);
    assert_eq!(people(&app), vec![("first@plugboard.test".into(), "admin".into(), false, false, 0)]);

    // Once someone exists, setup is over: the page goes to sign-in and a
    // second setup creates nobody, whatever it says.
    let stranger = common::new_client();
    assert_redirect(&app.get_as(&stranger, "/setup").await, "/sign-in", "setup after the first admin");
    assert_status(&app.get_as(&stranger, "/sign-in").await, StatusCode::OK, "sign-in page");
    let token = app.csrf_as(&stranger).await;
    let response = stranger
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "intruder@plugboard.test"),
            ("name", "Intruder"),
            ("password", NEW_PASSWORD),
            ("password_again", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers().get("location").unwrap(), "/sign-in");
    assert_eq!(people(&app).len(), 1, "a second setup creates nothing");
    assert_redirect(&app.get_as(&stranger, "/").await, "/sign-in", "the stranger is not signed in");
    // The first admin can sign in again with what they chose.
    let again = common::new_client();
    assert_redirect(&app.sign_in_with(&again, "first@plugboard.test", NEW_PASSWORD).await, "/", "sign in");
}

/// Two people opening a fresh install at once: only one becomes the first
/// admin; the other is sent to sign in.
#[actix_web::test]
async fn simultaneous_setups_create_one_admin() {
    let app = common::spawn().await;
    for round in 0..5 {
        {
            use diesel::RunQueryDsl;
            let mut conn = app.db();
            diesel::sql_query("DELETE FROM audit_events").execute(&mut conn).unwrap();
            diesel::sql_query("DELETE FROM users").execute(&mut conn).unwrap();
        }
        let (first, second) = (common::new_client(), common::new_client());
        let (first_token, second_token) = (app.csrf_as(&first).await, app.csrf_as(&second).await);
        let setup = |client: &reqwest::Client, token: &str, email: &str| {
            client
                .post(app.url("/setup"))
                .form(&[
                    ("csrf_token", token),
                    ("email", email),
                    ("name", ""),
                    ("password", NEW_PASSWORD),
                    ("password_again", NEW_PASSWORD),
                ])
                .send()
        };
        let (a, b) = futures_util::join!(
            setup(&first, &first_token, "first@plugboard.test"),
            setup(&second, &second_token, "second@plugboard.test")
        );
        let statuses = (a.unwrap().status(), b.unwrap().status());
        let admins = people(&app);
        assert_eq!(admins.len(), 1, "round {round}: {statuses:?} created {admins:?}");
        assert_eq!(
            statuses,
            (StatusCode::SEE_OTHER, StatusCode::SEE_OTHER),
            "round {round}: both are answered (one signed in, one sent to sign in)"
        );
    }
}

// ---- signing in and out ----

#[actix_web::test]
async fn a_wrong_password_is_refused_with_a_clear_message_and_no_session() {
    let app = common::spawn().await;
    let (browser, jar) = common::new_client_with_jar();
    for (email, password) in
        [(ADMIN_EMAIL, WRONG_PASSWORD), ("nobody@plugboard.test", PASSWORD), (ADMIN_EMAIL, "")]
    {
        let page = app.sign_in_with(&browser, email, password).await;
        assert_status(&page, StatusCode::UNAUTHORIZED, email);
        assert_eq!(page.text_of("#sign-in-error"), BAD_CREDENTIALS);
        // The address typed is kept; the password is not written back.
        assert_eq!(page.attr("input[name=email]", "value").as_deref(), Some(email));
        assert_eq!(page.attr("input[name=password]", "value"), None);
        if !password.is_empty() {
            assert!(!page.body.contains(password));
        }
        assert_redirect(&app.get_as(&browser, "/").await, "/sign-in", "no session after a failure");
    }
    assert!(session_cookie(&app, &jar).is_some(), "the browser has an anonymous session for its token");
}

#[actix_web::test]
async fn the_right_password_signs_in_with_a_new_session_id() {
    let app = common::spawn().await;
    let (browser, jar) = common::new_client_with_jar();
    assert_status(&app.get_as(&browser, "/sign-in").await, StatusCode::OK, "sign-in page");
    let before = session_cookie(&app, &jar).expect("an anonymous session holding the CSRF token");

    // Any case and surrounding spaces in the address.
    let page = app.sign_in_with(&browser, "  Admin@Plugboard.TEST ", PASSWORD).await;
    assert_redirect(&page, "/", "sign in");
    let after = session_cookie(&app, &jar).expect("a session");
    assert_ne!(before, after, "signing in renews the session");

    let list = app.get_as(&browser, "/").await;
    assert_status(&list, StatusCode::OK, "the list");
    assert!(list.text_of(".who").contains(&format!("{ADMIN_EMAIL} · Admin")), "{}", list.body);
    // Signed in, the sign-in page goes to the list.
    assert_redirect(&app.get_as(&browser, "/sign-in").await, "/", "sign-in page when signed in");

    // The session from before signing in stays anonymous.
    let fixated = client_with_cookie(&before);
    assert_redirect(&app.get_as(&fixated, "/").await, "/sign-in", "the pre-sign-in session");
}

#[actix_web::test]
async fn sign_out_ends_the_session() {
    let app = common::spawn().await;
    let (browser, jar) = common::new_client_with_jar();
    assert_redirect(&app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await, "/", "sign in");
    assert!(session_cookie(&app, &jar).is_some());
    let page = app.post_as(&browser, "/sign-out", &[]).await;
    assert_redirect(&page, "/sign-in", "sign out");
    assert_eq!(session_cookie(&app, &jar), None, "the cookie is removed");
    assert_redirect(&app.get_as(&browser, "/").await, "/sign-in", "after sign-out");
    let htmx = app.hx_get_as(&browser, "/").await;
    assert_status(&htmx, StatusCode::UNAUTHORIZED, "htmx after sign-out");
    // Sessions live in the cookie, so signing out ends every session of the
    // account (a copy of this one must not stay valid): other browsers of
    // the same person are signed out too.
    assert_redirect(&app.get("/").await, "/sign-in", "the other browser");
}

#[actix_web::test]
async fn a_session_cookie_copied_before_sign_out_no_longer_works() {
    let app = common::spawn().await;
    let (browser, jar) = common::new_client_with_jar();
    assert_redirect(&app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await, "/", "sign in");
    let copied = session_cookie(&app, &jar).unwrap();
    assert_status(&app.get_as(&client_with_cookie(&copied), "/").await, StatusCode::OK, "a copy works");
    assert_redirect(&app.post_as(&browser, "/sign-out", &[]).await, "/sign-in", "sign out");
    let replayed = app.get_as(&client_with_cookie(&copied), "/").await;
    assert_redirect(&replayed, "/sign-in", "a copy of the signed-out session");
}

// ---- the sign-in throttle ----

#[actix_web::test]
async fn after_three_failures_sign_ins_are_slowed() {
    let app = common::spawn().await;
    app.add_user("slow@plugboard.test", Role::Member);
    let browser = common::new_client();
    let token = app.csrf_as(&browser).await;
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let response = browser
            .post(app.url("/sign-in"))
            .form(&[
                ("csrf_token", token.as_str()),
                ("email", "slow@plugboard.test"),
                ("password", WRONG_PASSWORD),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        took.push(started.elapsed());
    }
    assert!(took[4] >= Duration::from_millis(500), "{took:?}");
    assert!(took[4] >= took[0] + Duration::from_millis(500), "the fifth attempt waits: {took:?}");
    assert!(took[4] > took[3], "each further attempt waits longer: {took:?}");
    // Slowed, not refused: the right password still works.
    assert_redirect(&app.sign_in_with(&browser, "slow@plugboard.test", PASSWORD).await, "/", "sign in");
}

#[actix_web::test]
async fn after_ten_failures_an_account_is_refused_even_with_the_right_password() {
    let app = common::spawn().await;
    app.add_user("target@plugboard.test", Role::Admin);
    app.add_user("bystander@plugboard.test", Role::Member);
    let browser = common::new_client();
    for attempt in 1..=10 {
        let page = app.sign_in_with(&browser, "target@plugboard.test", WRONG_PASSWORD).await;
        assert_status(&page, StatusCode::UNAUTHORIZED, &format!("attempt {attempt}"));
    }
    let page = app.sign_in_with(&browser, "target@plugboard.test", PASSWORD).await;
    say_try_again(&page);
    assert!(!page.body.contains(PASSWORD));
    assert_redirect(&app.get_as(&browser, "/").await, "/sign-in", "not signed in");

    // Per account: with the address's count forgotten (as if the guesses
    // came from elsewhere), this account stays refused from a new browser
    // and others sign in.
    forget_address_failures(&app);
    let elsewhere = common::new_client();
    say_try_again(&app.sign_in_with(&elsewhere, "TARGET@plugboard.test", PASSWORD).await);
    assert_redirect(
        &app.sign_in_with(&elsewhere, "bystander@plugboard.test", PASSWORD).await,
        "/",
        "another account",
    );
    // Sessions already open are not affected.
    assert_status(&app.get("/").await, StatusCode::OK, "the admin's session");

    // Once the window has passed, the right password works again.
    age_failures(&app, 16);
    let later = common::new_client();
    assert_redirect(
        &app.sign_in_with(&later, "target@plugboard.test", PASSWORD).await,
        "/",
        "after the window",
    );
}

#[actix_web::test]
async fn failures_spread_over_many_accounts_from_one_address_are_refused() {
    let app = common::spawn().await;
    app.add_user("real@plugboard.test", Role::Member);
    let browser = common::new_client();
    for i in 0..10 {
        let email = format!("guess{i}@plugboard.test");
        let page = app.sign_in_with(&browser, &email, WRONG_PASSWORD).await;
        assert_status(&page, StatusCode::UNAUTHORIZED, &email);
    }
    // No account failed more than once, but this address failed ten times.
    say_try_again(&app.sign_in_with(&browser, "real@plugboard.test", PASSWORD).await);
    let other_browser = common::new_client();
    say_try_again(&app.sign_in_with(&other_browser, "real@plugboard.test", PASSWORD).await);
    assert_redirect(&app.get_as(&other_browser, "/").await, "/sign-in", "not signed in");
}

/// Guesses sent all at once: no more than the limit may be checked against
/// the password, and every failure counts.
#[actix_web::test]
async fn concurrent_guesses_cannot_exceed_the_limit() {
    use diesel::prelude::*;
    use plugboard::db::schema::sign_in_failures;
    let app = common::spawn().await;
    app.add_user("burst@plugboard.test", Role::Member);
    let browser = common::new_client();
    let token = app.csrf_as(&browser).await;
    let attempts = (0..30).map(|i| {
        let request = browser.post(app.url("/sign-in")).form(&[
            ("csrf_token", token.clone()),
            ("email", "burst@plugboard.test".to_owned()),
            ("password", format!("guess number {i} of thirty")),
        ]);
        async move { request.send().await.unwrap().status() }
    });
    let statuses = futures_util::future::join_all(attempts).await;
    assert!(
        statuses.iter().all(|s| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{statuses:?}"
    );
    // After all that, the right password is refused.
    let failed = app.audit_rows().iter().filter(|r| r.action == "sign_in_failed").count();
    let counted: i32 = sign_in_failures::table
        .find("account:burst@plugboard.test")
        .select(sign_in_failures::failures)
        .first(&mut app.db())
        .unwrap();
    forget_address_failures(&app);
    say_try_again(&app.sign_in_with(&common::new_client(), "burst@plugboard.test", PASSWORD).await);

    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert_eq!(counted as usize, failed, "every failed guess is counted (lost updates otherwise)");
    assert!(
        checked <= plugboard::accounts::throttle::REFUSE_AFTER as usize,
        "{checked} of 30 simultaneous guesses were checked against the password; at most 10 may be"
    );
}

/// Sign-in failures as stored: key and count, by key.
fn failure_rows(app: &TestApp) -> Vec<(String, i32, chrono::NaiveDateTime)> {
    use diesel::prelude::*;
    use plugboard::db::schema::sign_in_failures;
    sign_in_failures::table
        .order(sign_in_failures::key)
        .select((sign_in_failures::key, sign_in_failures::failures, sign_in_failures::last_failure))
        .load(&mut app.db())
        .unwrap()
}

fn failures_of(app: &TestApp, key: &str) -> Option<(i32, chrono::NaiveDateTime)> {
    failure_rows(app).into_iter().find(|(k, _, _)| k == key).map(|(_, n, at)| (n, at))
}

/// Moves every recorded sign-in failure (and so every lock's start)
/// `minutes` further into the past, as if that much time had gone by.
fn let_time_pass(app: &TestApp, minutes: i64) {
    use diesel::prelude::*;
    use plugboard::db::schema::sign_in_failures;
    let mut conn = app.db();
    for (key, _, at) in failure_rows(app) {
        diesel::update(sign_in_failures::table.find(&key))
            .set(sign_in_failures::last_failure.eq(at - chrono::TimeDelta::minutes(minutes)))
            .execute(&mut conn)
            .unwrap();
    }
}

/// Posts the sign-in form `n` times at once from `browser` (one token),
/// with the email `email(i)` and extra headers; the statuses.
async fn sign_ins_at_once(
    app: &TestApp,
    browser: &reqwest::Client,
    n: usize,
    email: impl Fn(usize) -> String,
    password: &str,
    headers: &[(&str, &str)],
) -> Vec<StatusCode> {
    use futures_util::StreamExt;
    let token = app.csrf_as(browser).await;
    let requests: Vec<_> = (0..n)
        .map(|i| {
            let mut request = browser.post(app.url("/sign-in")).form(&[
                ("csrf_token", token.clone()),
                ("email", email(i)),
                ("password", password.to_owned()),
            ]);
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            async move { request.send().await.unwrap().status() }
        })
        .collect();
    futures_util::stream::iter(requests).buffer_unordered(16).collect().await
}

fn count(statuses: &[StatusCode], status: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

#[actix_web::test]
async fn an_email_longer_than_any_address_is_refused_before_anything_is_written() {
    let app = common::spawn().await;
    let browser = common::new_client();
    let before = (failure_rows(&app), app.audit_rows().len());
    for local in [242, 60_000] {
        let email = format!("{}@example.test", "a".repeat(local));
        let page = app.sign_in_with(&browser, &email, WRONG_PASSWORD).await;
        assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, &format!("{local} characters"));
        assert_eq!(
            page.text_of("#sign-in-error"),
            format!("An email address has at most 254 characters; this one has {}.", local + 13)
        );
        assert!(!page.body.contains(WRONG_PASSWORD));
    }
    assert_eq!((failure_rows(&app), app.audit_rows().len()), before, "nothing counted or recorded");
    // The longest address there can be is an ordinary failure.
    let longest = format!("{}@example.test", "a".repeat(241));
    assert_status(
        &app.sign_in_with(&browser, &longest, WRONG_PASSWORD).await,
        StatusCode::UNAUTHORIZED,
        "254",
    );
}

/// A guesser trying a new random address each time: the rows it leaves are
/// bounded, whatever it sends.
#[actix_web::test]
async fn many_distinct_emails_from_one_address_leave_a_bounded_number_of_rows() {
    let app = common::spawn().await;
    let browser = common::new_client();
    let (failures_before, audit_before) = (failure_rows(&app).len(), app.audit_rows().len());
    let statuses = sign_ins_at_once(
        &app,
        &browser,
        500,
        |_| format!("{}@guess.test", common::random_hex(12)),
        WRONG_PASSWORD,
        &[],
    )
    .await;
    let refused = count(&statuses, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 10, "{statuses:?}");
    assert_eq!(refused, 490);
    let new_failures = failure_rows(&app).len() - failures_before;
    let new_audit = app.audit_rows().len() - audit_before;
    // At most: one shared counter per checked attempt, the address's own
    // row, and one audit row per checked attempt.
    assert!(new_failures <= 11, "{new_failures} new sign_in_failures rows: {:#?}", failure_rows(&app));
    assert!(new_audit <= 10, "{new_audit} new audit rows");
    // The attempt that started the lock says so; refused ones wrote nothing.
    let rows = app.audit_rows();
    let locking: Vec<_> = rows.iter().filter(|r| r.details.contains("locked_until")).collect();
    assert_eq!(locking.len(), 1, "{rows:#?}");
    assert_eq!(locking[0].action, "sign_in_failed");
}

#[actix_web::test]
async fn a_lock_ends_on_schedule_whatever_is_sent_meanwhile() {
    let app = common::spawn().await;
    app.add_user("target@plugboard.test", Role::Member);
    let browser = common::new_client();
    let statuses =
        sign_ins_at_once(&app, &browser, 10, |_| "target@plugboard.test".into(), WRONG_PASSWORD, &[]).await;
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 10, "{statuses:?}");
    say_try_again(&app.sign_in_with(&browser, "target@plugboard.test", PASSWORD).await);
    let locked = failures_of(&app, "account:target@plugboard.test").expect("counted");
    assert_eq!(locked.0, 10);

    // Ten minutes into the lock, the guesser keeps trying.
    let_time_pass(&app, 10);
    let during = failure_rows(&app);
    let audit_during = app.audit_rows().len();
    let statuses =
        sign_ins_at_once(&app, &browser, 30, |_| "target@plugboard.test".into(), WRONG_PASSWORD, &[]).await;
    assert_eq!(count(&statuses, StatusCode::TOO_MANY_REQUESTS), 30, "{statuses:?}");
    let page = app.sign_in_with(&browser, "target@plugboard.test", PASSWORD).await;
    say_try_again(&page);
    assert!(
        page.text_of("#sign-in-error").contains("Try again in 5 minutes."),
        "{}",
        page.text_of("#sign-in-error")
    );
    assert_eq!(failure_rows(&app), during, "refused attempts are not counted and do not move the lock");
    assert_eq!(app.audit_rows().len(), audit_during, "nor are they recorded one by one");

    // Fifteen minutes after it began, the lock is over.
    let_time_pass(&app, 5);
    assert_redirect(
        &app.sign_in_with(&browser, "target@plugboard.test", PASSWORD).await,
        "/",
        "after the lock",
    );
}

#[actix_web::test]
async fn the_current_password_check_is_throttled_like_sign_in() {
    let app = common::spawn().await;
    let browser = app.client_as("changer@plugboard.test", Role::Member).await;
    let token = app.csrf_as(&browser).await;
    let attempt = |current: &str| {
        browser.post(app.url("/account/password")).form(&[
            ("csrf_token", token.as_str()),
            ("current_password", current),
            ("password", NEW_PASSWORD),
            ("password_again", NEW_PASSWORD),
        ])
    };
    let started = Instant::now();
    let wrong: Vec<_> = (0..10).map(|i| attempt(&format!("wrong current password {i}")).send()).collect();
    let statuses: Vec<StatusCode> =
        futures_util::future::join_all(wrong).await.into_iter().map(|r| r.unwrap().status()).collect();
    assert_eq!(count(&statuses, StatusCode::UNPROCESSABLE_ENTITY), 10, "{statuses:?}");
    assert!(started.elapsed() >= Duration::from_millis(3500), "the later checks were slowed");

    let response = attempt(PASSWORD).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let page = Page {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap(),
    };
    let text = page.text_of("[role=alert]");
    assert!(text.starts_with("Too many failed sign-ins. Try again in "), "{text}");
    assert!(!page.body.contains(PASSWORD));
    // Nothing changed: the old password still opens the account.
    let mut conn = app.db();
    let still = plugboard::accounts::authenticate(&mut conn, "changer@plugboard.test", PASSWORD).unwrap();
    assert!(still.is_some(), "the password was changed while refused");
    // The counters are sign-in's: the account cannot be signed in to from
    // elsewhere either.
    forget_address_failures(&app);
    say_try_again(&app.sign_in_with(&common::new_client(), "changer@plugboard.test", PASSWORD).await);
}

#[actix_web::test]
async fn behind_a_trusted_proxy_each_client_is_counted_apart() {
    let app = common::spawn_with(|s| s.trusted_proxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap()).await;
    app.add_user("colleague@plugboard.test", Role::Member);
    let guesser = common::new_client();
    // The guesser writes an address of its own at the left; the proxies
    // (127.0.0.1, then 10.1.2.3) append what they saw.
    let via = [("X-Forwarded-For", "198.51.100.99, 203.0.113.5, 10.1.2.3")];
    let statuses =
        sign_ins_at_once(&app, &guesser, 10, |i| format!("guess{i}@plugboard.test"), WRONG_PASSWORD, &via)
            .await;
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 10, "{statuses:?}");
    assert_eq!(failures_of(&app, "addr:203.0.113.5").map(|f| f.0), Some(10));
    // Changing what it wrote itself does not help it.
    for spoofed in ["192.0.2.1, 203.0.113.5", "203.0.113.5"] {
        let statuses = sign_ins_at_once(
            &app,
            &guesser,
            1,
            |_| "colleague@plugboard.test".into(),
            PASSWORD,
            &[("X-Forwarded-For", spoofed)],
        )
        .await;
        assert_eq!(statuses, vec![StatusCode::TOO_MANY_REQUESTS], "{spoofed}");
    }
    // Everyone else behind the same proxy signs in.
    let colleague = common::new_client();
    let statuses = sign_ins_at_once(
        &app,
        &colleague,
        1,
        |_| "colleague@plugboard.test".into(),
        PASSWORD,
        &[("X-Forwarded-For", "203.0.113.6")],
    )
    .await;
    assert_eq!(statuses, vec![StatusCode::SEE_OTHER]);
}

#[actix_web::test]
async fn forwarded_for_from_an_untrusted_peer_is_not_believed() {
    let app = common::spawn().await;
    app.add_user("colleague@plugboard.test", Role::Member);
    let guesser = common::new_client();
    let statuses = sign_ins_at_once(
        &app,
        &guesser,
        10,
        |i| format!("guess{i}@plugboard.test"),
        WRONG_PASSWORD,
        &[("X-Forwarded-For", "203.0.113.5")],
    )
    .await;
    assert_eq!(count(&statuses, StatusCode::UNAUTHORIZED), 10, "{statuses:?}");
    assert_eq!(failures_of(&app, "addr:203.0.113.5"), None);
    assert_eq!(failures_of(&app, "addr:127.0.0.1").map(|f| f.0), Some(10));
    // Claiming another address does not escape the count.
    let statuses = sign_ins_at_once(
        &app,
        &common::new_client(),
        1,
        |_| "colleague@plugboard.test".into(),
        PASSWORD,
        &[("X-Forwarded-For", "203.0.113.6")],
    )
    .await;
    assert_eq!(statuses, vec![StatusCode::TOO_MANY_REQUESTS]);
}

// ---- anonymous requests ----

#[actix_web::test]
async fn anonymous_requests_go_to_sign_in_and_change_nothing() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let admin = app.user(ADMIN_EMAIL).id.0;
    let before = (app.snapshot(), people(&app), app.audit_rows().len());
    let browser = common::new_client();

    let mut pages = vec!["/".to_owned(), "/?tag=ops".to_owned(), "/account/password".to_owned()];
    pages.extend(connection_forms(id));
    pages.extend(admin_pages(tag));
    for path in &pages {
        assert_redirect(&app.get_as(&browser, path).await, "/sign-in", path);
        let htmx = app.hx_get_as(&browser, path).await;
        assert_status(&htmx, StatusCode::UNAUTHORIZED, &format!("htmx {path}"));
        assert_eq!(htmx.header("hx-redirect"), Some("/sign-in?ended=1"), "htmx {path}");
        assert!(!htmx.body.contains("<html"), "htmx gets a fragment");
    }
    // Posts, even with a valid token of the anonymous session.
    let mut posts = connection_posts(id, tag);
    posts.extend(admin_posts(admin, tag));
    posts.push((
        "/account/password".into(),
        vec![("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)],
    ));
    posts.push(("/environment".into(), vec![("environment", "production")]));
    for (path, fields) in &posts {
        let page = app.post_as(&browser, path, fields).await;
        assert_status(&page, StatusCode::UNAUTHORIZED, path);
        assert!(page.body.contains("Sign in again"), "{path}: {}", page.body);
        let page = app.hx_post_as(&browser, path, fields).await;
        assert_status(&page, StatusCode::UNAUTHORIZED, &format!("htmx {path}"));
        assert_eq!(page.header("hx-redirect"), Some("/sign-in?ended=1"), "htmx {path}");
    }
    assert_eq!((app.snapshot(), people(&app), app.audit_rows().len()), before);
    assert!(!app.get("/").await.body.contains("Renamed"));
}

/// Signs `browser` in, opens `form_path` (taking its CSRF token, as the
/// open form holds it), then signs out "in another tab": the form's token
/// is now stale and the session gone.
async fn form_open_when_the_session_ends(
    app: &TestApp,
    browser: &reqwest::Client,
    form_path: &str,
) -> String {
    assert_redirect(&app.sign_in_with(browser, ADMIN_EMAIL, PASSWORD).await, "/", "sign in");
    let form = app.get_as(browser, form_path).await;
    assert_status(&form, StatusCode::OK, form_path);
    let token = form.attr("input[name=csrf_token]", "value").expect("the form's token");
    assert_redirect(&app.post_as(browser, "/sign-out", &[]).await, "/sign-in", "sign out in another tab");
    token
}

async fn post_stale(
    app: &TestApp,
    browser: &reqwest::Client,
    path: &str,
    token: &str,
    fields: &[(&str, &str)],
) -> Page {
    let mut form = vec![("csrf_token", token)];
    form.extend_from_slice(fields);
    // From the page the form was on, as a browser says.
    let request = browser.post(app.url(path)).header("Origin", app.base.as_str()).form(&form);
    TestApp::page(request.send().await.expect("POST")).await
}

#[actix_web::test]
async fn without_javascript_a_form_sent_after_the_session_ended_comes_back_after_sign_in_without_its_secrets()
{
    let app = common::spawn().await;
    let (browser, _jar) = common::new_client_with_jar();
    let token =
        form_open_when_the_session_ends(&app, &browser, "/connections/new?component=activecampaign").await;
    let secret = "SECRET-ac-0f9e8d7c6b5a";
    let fields = [
        ("component", "activecampaign"),
        ("environment", "development"),
        ("auth_method", "api_key"),
        ("name", "ActiveCampaign EU"),
        ("field:account", "acme-eu"),
        ("field:api_key", secret),
        ("field:not_in_the_catalog", "dropped"),
        ("new_tags", "crm"),
    ];
    let page = post_stale(&app, &browser, "/connections", &token, &fields).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "the save after the session ended");
    assert!(page.text_of("#session-ended").starts_with("Your session has ended"), "{}", page.body);
    assert!(page.text_of("#draft-kept").contains("apart from secrets, comes back"), "{}", page.body);
    for typed in [secret, "ActiveCampaign EU", "acme-eu", token.as_str()] {
        assert!(!page.body.contains(typed), "the sign-in page holds no input and not the old token: {typed}");
    }
    assert_eq!(app.count_rows("connections").await, 0, "nothing saved");
    // Kept sealed: not even the name is readable in the database.
    let sealed: Vec<u8> = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Binary)]
            sealed: Vec<u8>,
        }
        let rows: Vec<Row> =
            diesel::sql_query("SELECT sealed FROM sign_in_drafts").load(&mut app.db()).expect("drafts");
        assert_eq!(rows.len(), 1, "one draft kept");
        rows.into_iter().next().unwrap().sealed
    };
    for typed in [secret, "ActiveCampaign EU", "acme-eu"] {
        assert!(!String::from_utf8_lossy(&sealed).contains(typed), "{typed} is sealed");
    }

    assert_redirect(
        &app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await,
        "/connections/draft",
        "signing in goes back to the form",
    );
    let form = app.get_as(&browser, "/connections/draft").await;
    assert_status(&form, StatusCode::OK, "the form again");
    assert_eq!(form.text_of("#dialog-title"), "New ActiveCampaign connection");
    assert_eq!(form.attr("#field-name", "value").as_deref(), Some("ActiveCampaign EU"));
    assert_eq!(form.attr("#field-account", "value").as_deref(), Some("acme-eu"));
    assert_eq!(form.attr("#field-new_tags", "value").as_deref(), Some("crm"));
    assert_eq!(form.attr("#field-api_key", "value").as_deref(), Some(""), "no secret comes back");
    assert!(!form.body.contains(secret) && !form.body.contains("dropped"), "{}", form.body);
    assert!(form.text_of("#retype-api_key").starts_with("Enter this again"), "{}", form.body);
    assert!(
        form.text_of("#flash").starts_with("Signed in again: what you had typed is back."),
        "{}",
        form.body
    );

    // Taken once: the page does not open twice, and says why.
    let again = app.get_as(&browser, "/connections/draft").await;
    assert_status(&again, StatusCode::GONE, "the second visit");
    assert!(again.body.contains("it comes back once"), "{}", again.body);
    assert_eq!(app.count_rows("sign_in_drafts").await, 0, "nothing left behind");
}

#[actix_web::test]
async fn an_edit_or_a_tag_sent_after_the_session_ended_comes_back_as_the_edit_form() {
    let app = common::spawn().await;
    let (id, _) = connection_with_tag(&app).await;
    let version = app.stored(id).expect("stored").version.to_string();
    let (browser, _jar) = common::new_client_with_jar();

    let token = form_open_when_the_session_ends(&app, &browser, &format!("/connections/{id}/edit")).await;
    let fields = [
        ("component", "github"),
        ("environment", "development"),
        ("auth_method", "token"),
        ("version", version.as_str()),
        ("name", "Renamed after sign-in"),
        ("tag", "ops"),
    ];
    let page = post_stale(&app, &browser, &format!("/connections/{id}"), &token, &fields).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "the edit after the session ended");
    assert_eq!(app.stored(id).expect("stored").name, "Guarded Repo", "nothing saved");
    assert_redirect(
        &app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await,
        "/connections/draft",
        "sign in",
    );
    let form = app.get_as(&browser, "/connections/draft").await;
    assert_status(&form, StatusCode::OK, "the edit form again");
    assert_eq!(form.attr("#field-name", "value").as_deref(), Some("Renamed after sign-in"));
    assert_eq!(form.attr("input[name=version]", "value"), Some(version.clone()));
    assert!(form.attr("#field-token", "placeholder").unwrap_or_default().contains("leave blank to keep"));
    assert_eq!(form.attr("#chosen-tags input[value=ops]", "checked").as_deref(), Some(""), "{}", form.body);

    // A row's tag comes back typed into the edit form.
    let token = form_open_when_the_session_ends(&app, &browser, "/").await;
    let page = post_stale(
        &app,
        &browser,
        &format!("/connections/{id}/tags"),
        &token,
        &[("environment", "development"), ("tag", "urgent")],
    )
    .await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "the tag after the session ended");
    assert_redirect(
        &app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await,
        "/connections/draft",
        "sign in",
    );
    let form = app.get_as(&browser, "/connections/draft").await;
    assert_eq!(form.attr("#field-new_tags", "value").as_deref(), Some("urgent"), "{}", form.body);
    assert_eq!(form.attr("#field-name", "value").as_deref(), Some("Guarded Repo"), "the stored name");
}

#[actix_web::test]
async fn input_kept_across_a_sign_in_that_is_stale_or_missing_is_refused_clearly() {
    let app = common::spawn().await;
    let (browser, _jar) = common::new_client_with_jar();
    // Nothing kept: a clear 410, not an error.
    assert_redirect(&app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await, "/", "sign in");
    let none = app.get_as(&browser, "/connections/draft").await;
    assert_status(&none, StatusCode::GONE, "no draft");
    assert!(none.body.contains("Open the form again from the list"), "{}", none.body);

    // Sent from another site: nothing kept, so nothing it chose can fill
    // the form opened after the sign-in.
    let token = form_open_when_the_session_ends(&app, &browser, "/connections/new?component=github").await;
    let planted = [
        ("csrf_token", token.as_str()),
        ("component", "github"),
        ("auth_method", "token"),
        ("name", "Planted"),
    ];
    let request =
        browser.post(app.url("/connections")).header("Origin", "https://elsewhere.example").form(&planted);
    let page = TestApp::page(request.send().await.expect("POST")).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "a post from another site");
    assert_eq!(page.count("#draft-kept"), 0, "{}", page.body);
    assert_eq!(app.count_rows("sign_in_drafts").await, 0);
    assert_redirect(&app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await, "/", "nothing to restore");

    // Kept, but the person came back after more than an hour.
    let token = form_open_when_the_session_ends(&app, &browser, "/connections/new?component=github").await;
    let fields = [("component", "github"), ("auth_method", "token"), ("name", "Late")];
    let page = post_stale(&app, &browser, "/connections", &token, &fields).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "the save after the session ended");
    {
        use diesel::prelude::*;
        diesel::sql_query("UPDATE sign_in_drafts SET created_at = '2000-01-01 00:00:00'")
            .execute(&mut app.db())
            .expect("age the draft");
    }
    assert_redirect(
        &app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await,
        "/connections/draft",
        "sign in",
    );
    let late = app.get_as(&browser, "/connections/draft").await;
    assert_status(&late, StatusCode::GONE, "a stale draft");
    assert!(late.body.contains("that hour has passed"), "{}", late.body);
    assert!(!late.body.contains("Late"), "{}", late.body);

    // With htmx the same draft is kept; app.js's flag sends the person to
    // the list, which opens it in the dialog.
    let token = form_open_when_the_session_ends(&app, &browser, "/connections/new?component=github").await;
    let response = browser
        .post(app.url("/connections"))
        .header("HX-Request", "true")
        .header("X-CSRF-Token", token)
        .header("Origin", app.base.as_str())
        .form(&[("component", "github"), ("auth_method", "token"), ("name", "With htmx")])
        .send()
        .await
        .expect("POST");
    let page = TestApp::page(response).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "htmx");
    assert_eq!(page.header("hx-redirect"), Some("/sign-in?ended=1"));
    let sign_in = app.get_as(&browser, "/sign-in?ended=1").await;
    assert!(sign_in.text_of("#draft-kept").contains("comes back"), "{}", sign_in.body);
    let token = sign_in.attr("input[name=csrf_token]", "value").expect("token");
    let form =
        [("csrf_token", token.as_str()), ("email", ADMIN_EMAIL), ("password", PASSWORD), ("script", "1")];
    let signed_in =
        TestApp::page(browser.post(app.url("/sign-in")).form(&form).send().await.expect("sign in")).await;
    assert_redirect(&signed_in, "/#restore-draft", "with JavaScript, the list");
    let dialog = app.hx_get_as(&browser, "/connections/draft").await;
    assert_status(&dialog, StatusCode::OK, "the dialog's form");
    assert_eq!(dialog.attr("#field-name", "value").as_deref(), Some("With htmx"));
    assert!(dialog.header("hx-trigger").unwrap_or_default().contains("Signed in again"));
}

// ---- roles ----

#[actix_web::test]
async fn a_viewer_sees_the_list_without_edit_buttons() {
    let app = common::spawn().await;
    let (id, _) = connection_with_tag(&app).await;
    let viewer = app.client_as("viewer@plugboard.test", Role::Viewer).await;
    let page = app.get_as(&viewer, "/").await;
    assert_status(&page, StatusCode::OK, "the list");
    assert!(page.text_of(&format!("#connection-{id}")).contains("Guarded Repo"), "{}", page.body);
    assert_eq!(page.texts(&format!("#connection-{id} .tag a")), vec!["ops"]);
    assert!(page.text_of(".who").contains("viewer@plugboard.test · Viewer"));
    for selector in [
        "#new-connection",
        "a[href='/connections/new']",
        "a[href$='/edit']",
        "a[href$='/delete']",
        "form[action$='/check']",
        "form[action$='/tags']",
        "form[action*='/tags/']",
        ".tag-remove",
        "details.add-tag",
        "a[href='/admin/users']",
        "a[href='/admin/audit']",
        "a[href='/admin/api-tokens']",
        "a[href='/tags']",
    ] {
        assert_eq!(page.count(selector), 0, "a viewer is not offered {selector}");
    }
    assert!(!page.body.contains(">Test<"), "no Test button");
    // The fragment htmx loads is the same.
    let fragment = app.hx_get_as(&viewer, "/").await;
    assert_eq!(fragment.count("a[href$='/edit']") + fragment.count("form[action$='/check']"), 0);
    // The empty state does not offer to create either.
    app.post_as(&viewer, "/environment", &[("environment", "staging")]).await;
    let empty = app.get_as(&viewer, "/").await;
    assert!(empty.text_of(".empty-state").contains("Ask a member or an admin"), "{}", empty.body);
    assert_eq!(empty.count("a[href='/connections/new']"), 0);

    // The same list for a member has the buttons.
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let page = app.get_as(&member, "/").await;
    assert_eq!(page.count("#new-connection"), 1);
    assert_eq!(page.count(&format!("a[href='/connections/{id}/edit']")), 1);
    assert_eq!(page.count(&format!("form[action='/connections/{id}/check']")), 1);
    assert_eq!(page.count("a[href='/admin/users']"), 0, "members have no People link");
}

#[actix_web::test]
async fn a_viewer_is_refused_every_change_and_every_form() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let viewer = app.client_as("viewer@plugboard.test", Role::Viewer).await;
    let before = (app.snapshot(), people(&app), app.audit_rows().len());
    for (path, fields) in connection_posts(id, tag) {
        forbidden_for(&app.post_as(&viewer, &path, &fields).await, "Viewer", "Member", &path);
        let page = app.hx_post_as(&viewer, &path, &fields).await;
        forbidden_for(&page, "Viewer", "Member", &format!("htmx {path}"));
        assert!(!page.body.contains("<html"), "htmx gets a fragment");
    }
    for path in connection_forms(id) {
        forbidden_for(&app.get_as(&viewer, &path).await, "Viewer", "Member", &path);
        forbidden_for(&app.hx_get_as(&viewer, &path).await, "Viewer", "Member", &format!("htmx {path}"));
    }
    let admin = app.user(ADMIN_EMAIL).id.0;
    for path in admin_pages(tag) {
        forbidden_for(&app.get_as(&viewer, &path).await, "Viewer", "Admin", &path);
    }
    for (path, fields) in admin_posts(admin, tag) {
        forbidden_for(&app.post_as(&viewer, &path, &fields).await, "Viewer", "Admin", &path);
    }
    assert_eq!((app.snapshot(), people(&app), app.audit_rows().len()), before);
    // What a viewer may do: switch environment, change their own password.
    let page = app.post_as(&viewer, "/environment", &[("environment", "staging")]).await;
    assert_status(&page, StatusCode::SEE_OTHER, "environment switch");
    assert_status(&app.get_as(&viewer, "/account/password").await, StatusCode::OK, "password page");
}

#[actix_web::test]
async fn a_member_manages_connections_but_not_people_tags_or_the_audit_trail() {
    let app = common::spawn().await;
    let member = app.client_as("member@plugboard.test", Role::Member).await;

    // Create, edit, test, tag, untag and delete.
    assert_status(
        &app.get_as(&member, "/connections/new?component=github").await,
        StatusCode::OK,
        "new form",
    );
    let page = app
        .post_as(
            &member,
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Member Repo"),
                ("field:token", GITHUB_TOKEN),
            ],
        )
        .await;
    assert_redirect(&page, "/", "create");
    let stored = app.snapshot().connections;
    assert_eq!(stored.len(), 1);
    let id = stored[0].id;
    assert_status(
        &app.get_as(&member, &format!("/connections/{id}/edit")).await,
        StatusCode::OK,
        "edit form",
    );
    let page = app
        .post_as(
            &member,
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", "token"), ("name", "Member Repo 2")],
        )
        .await;
    assert_redirect(&page, "/", "edit");
    assert_eq!(app.stored(id).unwrap().name, "Member Repo 2");
    assert_redirect(&app.post_as(&member, &format!("/connections/{id}/check"), &[]).await, "/", "test");
    assert_redirect(
        &app.post_as(&member, &format!("/connections/{id}/tags"), &[("tag", "ops")]).await,
        "/",
        "tag",
    );
    let stored = app.stored(id).unwrap();
    assert_eq!(stored.tags, vec!["ops"]);
    let tag = app.snapshot().tags[0].0;

    // The admin area stays closed.
    let admin = app.user(ADMIN_EMAIL).id.0;
    let before = (app.snapshot(), people(&app), app.audit_rows().len());
    for path in admin_pages(tag) {
        forbidden_for(&app.get_as(&member, &path).await, "Member", "Admin", &path);
        forbidden_for(&app.hx_get_as(&member, &path).await, "Member", "Admin", &format!("htmx {path}"));
    }
    for (path, fields) in admin_posts(admin, tag) {
        forbidden_for(&app.post_as(&member, &path, &fields).await, "Member", "Admin", &path);
        forbidden_for(
            &app.hx_post_as(&member, &path, &fields).await,
            "Member",
            "Admin",
            &format!("htmx {path}"),
        );
    }
    assert_eq!((app.snapshot(), people(&app), app.audit_rows().len()), before);
    assert!(people(&app).iter().all(|p| p.0 != "forged@plugboard.test"));

    let page = app.post_as(&member, &format!("/connections/{id}/tags/{tag}/delete"), &[]).await;
    assert_redirect(&page, "/", "untag");
    assert!(app.stored(id).unwrap().tags.is_empty());
    assert_status(
        &app.get_as(&member, &format!("/connections/{id}/delete")).await,
        StatusCode::OK,
        "confirm",
    );
    assert_redirect(&app.post_as(&member, &format!("/connections/{id}/delete"), &[]).await, "/", "delete");
    assert!(app.stored(id).is_none());
}

#[actix_web::test]
async fn an_admin_may_open_everything() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let page = app.get("/").await;
    for link in ["/tags", "/admin/users", "/admin/api-tokens", "/admin/audit"] {
        assert_eq!(page.count(&format!("header a[href='{link}']")), 1, "{link} in the header");
    }
    let mut paths = admin_pages(tag);
    paths.extend(connection_forms(id));
    for path in paths {
        assert_status(&app.get(&path).await, StatusCode::OK, &path);
        assert_status(&app.hx_get(&path).await, StatusCode::OK, &format!("htmx {path}"));
    }
    let page = app.post(&format!("/tags/{tag}/rename"), &[("name", "operations")]).await;
    assert!(page.status.is_redirection() || page.status.is_success(), "{}", page.body);
    assert_eq!(app.stored(id).unwrap().tags, vec!["operations"]);
}

/// The router decodes percent-encoded letters; the role check must see the
/// same path, or `/%61dmin/...` would skip it.
#[actix_web::test]
async fn roles_cannot_be_bypassed_with_percent_encoded_paths() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let viewer = app.client_as("viewer@plugboard.test", Role::Viewer).await;
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let member_id = app.user("member@plugboard.test").id.0;
    let before = (app.snapshot(), people(&app));

    // Every way through is listed, not only the first.
    let mut through: Vec<String> = Vec::new();
    let mut refused = |page: &Page, what: &str| {
        if ![StatusCode::FORBIDDEN, StatusCode::NOT_FOUND].contains(&page.status) {
            through.push(format!("{what}: {}", page.status));
        }
    };
    for path in [
        "/%61dmin/audit".to_owned(),
        "/%61dmin/users".to_owned(),
        "/admin/%75sers".to_owned(),
        "/%74ags".to_owned(),
        format!("/%74ags/{tag}/merge"),
    ] {
        let page = app.get_as(&member, &path).await;
        refused(&page, &format!("member GET {path}"));
        refused(&app.get_as(&viewer, &path).await, &format!("viewer GET {path}"));
    }
    for path in [
        "/%63onnections/new".to_owned(),
        format!("/%63onnections/{id}/edit"),
        format!("/c%6fnnections/{id}/delete"),
    ] {
        refused(&app.get_as(&viewer, &path).await, &format!("viewer GET {path}"));
    }
    // A member making themself an admin, or adding one.
    let page = app.post_as(&member, &format!("/%61dmin/users/{member_id}/role"), &[("role", "admin")]).await;
    refused(&page, "member promoting themself");
    let page = app
        .post_as(
            &member,
            "/%61dmin/users",
            &[("email", "mole@plugboard.test"), ("name", ""), ("role", "admin"), ("password", NEW_PASSWORD)],
        )
        .await;
    refused(&page, "member adding an admin");
    let page = app.post_as(&member, &format!("/%74ags/{tag}/delete"), &[]).await;
    refused(&page, "member deleting a tag");
    let changed = (app.snapshot(), people(&app)) != before;
    let role = app.user("member@plugboard.test").role;
    assert!(
        through.is_empty() && !changed && role == Role::Member,
        "let through: {through:#?}; data changed: {changed}; the member is now {role:?}"
    );
}

// ---- people ----

#[actix_web::test]
async fn a_person_added_with_an_initial_password_must_change_it_first() {
    let app = common::spawn().await;
    let page = add_person(&app, "New.Person@plugboard.test", "member", INITIAL_PASSWORD).await;
    assert_redirect(&page, "/admin/users", "add");
    let person = app.user("new.person@plugboard.test");
    assert_eq!((person.role, person.must_change_password, person.disabled), (Role::Member, true, false));
    let people_page = app.get("/admin/users").await;
    let row = people_page.text_of(&format!("tr[data-user='{}']", person.id));
    assert!(row.contains("new.person@plugboard.test") && row.contains("must choose a password"), "{row}");
    assert!(!people_page.body.contains(INITIAL_PASSWORD));

    let browser = common::new_client();
    let page = app.sign_in_with(&browser, "new.person@plugboard.test", INITIAL_PASSWORD).await;
    assert_redirect(&page, "/account/password", "first sign-in");
    for path in ["/", "/connections/new", "/?tag=ops", "/admin/users"] {
        assert_redirect(&app.get_as(&browser, path).await, "/account/password", path);
    }
    let page = app.hx_get_as(&browser, "/").await;
    assert_status(&page, StatusCode::FORBIDDEN, "htmx before the change");
    assert!(page.body.contains("Choose a new password first."), "{}", page.body);
    let before = app.snapshot();
    let page = app
        .post_as(
            &browser,
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Early"),
                ("field:token", GITHUB_TOKEN),
            ],
        )
        .await;
    assert_status(&page, StatusCode::FORBIDDEN, "a change before the password");
    assert_eq!(app.snapshot(), before);

    let form = app.get_as(&browser, "/account/password").await;
    assert_status(&form, StatusCode::OK, "password page");
    assert!(form.body.contains("a password chosen for you"), "{}", form.body);
    assert_eq!(form.count("a[href='/']"), 1, "only the brand link: no Cancel");

    // The initial password cannot be kept by typing a wrong current one.
    let page = change_password(&app, &browser, WRONG_PASSWORD, NEW_PASSWORD).await;
    assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, "wrong current password");
    assert!(app.user("new.person@plugboard.test").must_change_password);

    let page = change_password(&app, &browser, INITIAL_PASSWORD, NEW_PASSWORD).await;
    assert_redirect(&page, "/", "password changed");
    assert_status(&app.get_as(&browser, "/").await, StatusCode::OK, "the list afterwards");
    assert_status(&app.get_as(&browser, "/connections/new").await, StatusCode::OK, "the new form afterwards");
    assert!(!app.user("new.person@plugboard.test").must_change_password);
    assert!(
        !app.get("/admin/users")
            .await
            .text_of(&format!("tr[data-user='{}']", person.id))
            .contains("must choose")
    );

    let fresh = common::new_client();
    let page = app.sign_in_with(&fresh, "new.person@plugboard.test", INITIAL_PASSWORD).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "the initial password no longer works");
    assert_redirect(
        &app.sign_in_with(&fresh, "new.person@plugboard.test", NEW_PASSWORD).await,
        "/",
        "new one",
    );
}

/// The change forced at first sign-in must leave the password the admin
/// chose behind.
#[actix_web::test]
async fn a_forced_password_change_cannot_keep_the_initial_password() {
    let app = common::spawn().await;
    assert_redirect(
        &add_person(&app, "same@plugboard.test", "member", INITIAL_PASSWORD).await,
        "/admin/users",
        "add",
    );
    let browser = common::new_client();
    let page = app.sign_in_with(&browser, "same@plugboard.test", INITIAL_PASSWORD).await;
    assert_redirect(&page, "/account/password", "first sign-in");
    let page = change_password(&app, &browser, INITIAL_PASSWORD, INITIAL_PASSWORD).await;
    assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, "the same password again");
    assert!(app.user("same@plugboard.test").must_change_password);
    assert_redirect(&app.get_as(&browser, "/").await, "/account/password", "still to change");
}

#[actix_web::test]
async fn adding_a_person_refuses_a_taken_email_a_short_password_and_a_bad_address() {
    let app = common::spawn().await;
    assert_redirect(
        &add_person(&app, "dup@plugboard.test", "viewer", INITIAL_PASSWORD).await,
        "/admin/users",
        "add",
    );
    let before = people(&app);
    let cases = [
        (
            "DUP@plugboard.test ",
            "member",
            INITIAL_PASSWORD,
            "Someone already has an account with this email.",
        ),
        (ADMIN_EMAIL, "admin", INITIAL_PASSWORD, "Someone already has an account with this email."),
        ("short@plugboard.test", "member", "short pw", "Use at least 12 characters"),
        ("not-an-address", "member", INITIAL_PASSWORD, "Enter an email address such as ada@example.com."),
        ("norole@plugboard.test", "owner", INITIAL_PASSWORD, "Choose a role."),
    ];
    for (email, role, password, message) in cases {
        let page = add_person(&app, email, role, password).await;
        assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, email);
        assert!(
            page.text_of("#people-error").contains(message),
            "{email}: {}",
            page.text_of("#people-error")
        );
        assert_eq!(page.attr("#new-email", "value").as_deref(), Some(email), "the address typed is kept");
        assert!(!page.body.contains(password), "the password typed is not sent back");
    }
    assert_eq!(people(&app), before, "nobody added");
}

#[actix_web::test]
async fn changing_a_role_takes_effect_on_the_next_request() {
    let app = common::spawn().await;
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let id = app.user("member@plugboard.test").id.0;
    assert_status(&app.get_as(&member, "/connections/new").await, StatusCode::OK, "as a member");

    assert_redirect(
        &app.post(&format!("/admin/users/{id}/role"), &[("role", "viewer")]).await,
        "/admin/users",
        "role",
    );
    assert_eq!(app.user("member@plugboard.test").role, Role::Viewer);
    forbidden_for(&app.get_as(&member, "/connections/new").await, "Viewer", "Member", "as a viewer");
    assert_status(&app.get_as(&member, "/").await, StatusCode::OK, "the session goes on");
    let shown = app.get("/admin/users").await;
    assert_eq!(shown.attr(&format!("#role-{id} option[selected]"), "value").as_deref(), Some("viewer"));

    assert_redirect(
        &app.post(&format!("/admin/users/{id}/role"), &[("role", "admin")]).await,
        "/admin/users",
        "role",
    );
    assert_status(&app.get_as(&member, "/admin/users").await, StatusCode::OK, "as an admin");

    // An unknown role or person changes nothing.
    let before = people(&app);
    let page = app.post(&format!("/admin/users/{id}/role"), &[("role", "owner")]).await;
    assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, "unknown role");
    assert_status(
        &app.post("/admin/users/999999/role", &[("role", "viewer")]).await,
        StatusCode::NOT_FOUND,
        "nobody",
    );
    assert_status(&app.post("/admin/users/999999/disable", &[]).await, StatusCode::NOT_FOUND, "nobody");
    assert_eq!(people(&app), before);
}

#[actix_web::test]
async fn disabling_a_person_ends_their_sessions_at_once_and_enabling_lets_them_back() {
    let app = common::spawn().await;
    let page_browser = app.client_as("leaver@plugboard.test", Role::Member).await;
    let htmx_browser = common::new_client();
    app.sign_in(&htmx_browser, "leaver@plugboard.test").await;
    let post_browser = common::new_client();
    app.sign_in(&post_browser, "leaver@plugboard.test").await;
    // A token fetched while still allowed in.
    let token = app.csrf_as(&post_browser).await;
    let id = app.user("leaver@plugboard.test").id.0;
    assert_status(&app.get_as(&page_browser, "/").await, StatusCode::OK, "before");

    assert_redirect(&app.post(&format!("/admin/users/{id}/disable"), &[]).await, "/admin/users", "disable");
    assert!(app.user("leaver@plugboard.test").disabled);
    assert!(app.get("/admin/users").await.text_of(&format!("tr[data-user='{id}']")).contains("DISABLED"));

    assert_redirect(&app.get_as(&page_browser, "/").await, "/sign-in", "a page");
    let htmx = app.hx_get_as(&htmx_browser, "/").await;
    assert_status(&htmx, StatusCode::UNAUTHORIZED, "htmx");
    assert_eq!(htmx.header("hx-redirect"), Some("/sign-in?ended=1"));
    let before = app.snapshot();
    let response = post_browser
        .post(app.url("/connections"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("component", "github"),
            ("auth_method", "token"),
            ("name", "After leaving"),
            ("field:token", GITHUB_TOKEN),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(app.snapshot(), before);
    // Nor can they sign in again.
    let page = app.sign_in_with(&common::new_client(), "leaver@plugboard.test", PASSWORD).await;
    assert_status(&page, StatusCode::UNAUTHORIZED, "sign-in while disabled");
    assert_eq!(page.text_of("#sign-in-error"), BAD_CREDENTIALS);

    assert_redirect(&app.post(&format!("/admin/users/{id}/enable"), &[]).await, "/admin/users", "enable");
    assert!(!app.user("leaver@plugboard.test").disabled);
    assert_redirect(&app.get_as(&page_browser, "/").await, "/sign-in", "the old session stays ended");
    assert_redirect(
        &app.sign_in_with(&page_browser, "leaver@plugboard.test", PASSWORD).await,
        "/",
        "sign in",
    );
    assert_status(&app.get_as(&page_browser, "/").await, StatusCode::OK, "back");
}

#[actix_web::test]
async fn the_last_admin_can_be_neither_demoted_nor_disabled() {
    let app = common::spawn().await;
    let me = app.user(ADMIN_EMAIL).id.0;
    let before = people(&app);
    for role in ["member", "viewer"] {
        let page = app.post(&format!("/admin/users/{me}/role"), &[("role", role)]).await;
        assert_status(&page, StatusCode::CONFLICT, role);
        assert!(page.text_of("#people-error").contains(LAST_ADMIN), "{}", page.body);
    }
    let page = app.post(&format!("/admin/users/{me}/disable"), &[]).await;
    assert_status(&page, StatusCode::CONFLICT, "disable");
    assert!(page.text_of("#people-error").contains("Make someone else an admin first"), "{}", page.body);
    assert_eq!(people(&app), before);
    assert_status(&app.get("/admin/users").await, StatusCode::OK, "still an admin");

    // A disabled admin does not count.
    app.add_user("second@plugboard.test", Role::Admin);
    let second = app.user("second@plugboard.test").id.0;
    assert_redirect(
        &app.post(&format!("/admin/users/{second}/disable"), &[]).await,
        "/admin/users",
        "disable",
    );
    let before = people(&app);
    assert_status(
        &app.post(&format!("/admin/users/{me}/role"), &[("role", "member")]).await,
        StatusCode::CONFLICT,
        "demote",
    );
    assert_status(
        &app.post(&format!("/admin/users/{me}/disable"), &[]).await,
        StatusCode::CONFLICT,
        "disable",
    );
    assert_eq!(people(&app), before);

    // With another active admin, either may step down, and then the other
    // is the last.
    assert_redirect(&app.post(&format!("/admin/users/{second}/enable"), &[]).await, "/admin/users", "enable");
    let other = common::new_client();
    app.sign_in(&other, "second@plugboard.test").await;
    assert_redirect(
        &app.post(&format!("/admin/users/{me}/role"), &[("role", "member")]).await,
        "/admin/users",
        "demote",
    );
    forbidden_for(&app.get("/admin/users").await, "Member", "Admin", "the demoted admin");
    let before = people(&app);
    let page = app.post_as(&other, &format!("/admin/users/{second}/role"), &[("role", "viewer")]).await;
    assert_status(&page, StatusCode::CONFLICT, "the new last admin");
    let page = app.post_as(&other, &format!("/admin/users/{second}/disable"), &[]).await;
    assert_status(&page, StatusCode::CONFLICT, "the new last admin");
    assert_eq!(people(&app), before);
}

/// Two admins each demoting the other at the same moment: one of them must
/// stay an admin.
#[actix_web::test]
async fn two_admins_demoting_each_other_at_once_leave_an_admin() {
    use plugboard::accounts::UserId;
    use plugboard::accounts::operations::change_role;
    use plugboard::audit::Actor;
    let app = common::spawn().await;
    app.add_user("second@plugboard.test", Role::Admin);
    let other = common::new_client();
    app.sign_in(&other, "second@plugboard.test").await;
    let (me, second) = (app.user(ADMIN_EMAIL).id.0, app.user("second@plugboard.test").id.0);
    let (my_token, their_token) = (app.csrf_as(&app.client).await, app.csrf_as(&other).await);
    for round in 0..20 {
        let mine = app
            .client
            .post(app.url(&format!("/admin/users/{second}/role")))
            .form(&[("csrf_token", my_token.as_str()), ("role", "member")])
            .send();
        let theirs = other
            .post(app.url(&format!("/admin/users/{me}/role")))
            .form(&[("csrf_token", their_token.as_str()), ("role", "member")])
            .send();
        let (mine, theirs) = futures_util::join!(mine, theirs);
        let statuses = (mine.unwrap().status(), theirs.unwrap().status());
        let admins = people(&app).iter().filter(|p| p.1 == "admin" && !p.2).count();
        assert_eq!(admins, 1, "round {round}: both demotions went through ({statuses:?}), leaving no admin");
        let mut conn = app.db();
        change_role(&mut conn, &Actor::System, UserId(me), Role::Admin).unwrap();
        change_role(&mut conn, &Actor::System, UserId(second), Role::Admin).unwrap();
    }
}

// ---- own password ----

#[actix_web::test]
async fn changing_the_password_checks_the_current_one_and_ends_other_sessions() {
    let app = common::spawn().await;
    let (this, jar) = common::new_client_with_jar();
    assert_redirect(&app.sign_in_with(&this, ADMIN_EMAIL, PASSWORD).await, "/", "sign in");
    let other = &app.client;
    assert_status(&app.get_as(other, "/").await, StatusCode::OK, "the other session");
    let before = people(&app);

    let page = change_password(&app, &this, WRONG_PASSWORD, NEW_PASSWORD).await;
    assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, "wrong current password");
    assert!(page.text_of("[role=alert]").contains("The current password is not right."), "{}", page.body);
    let page = app
        .post_as(
            &this,
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("password", NEW_PASSWORD),
                ("password_again", "different one here"),
            ],
        )
        .await;
    assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, "new passwords differ");
    assert!(page.text_of("[role=alert]").contains("differ"), "{}", page.body);
    let page = change_password(&app, &this, PASSWORD, "too short").await;
    assert_status(&page, StatusCode::UNPROCESSABLE_ENTITY, "short");
    assert!(page.text_of("[role=alert]").contains("Use at least 12 characters"), "{}", page.body);
    for secret in [PASSWORD, NEW_PASSWORD, WRONG_PASSWORD] {
        assert!(!page.body.contains(secret));
    }
    assert_eq!(people(&app), before, "nothing changed");
    assert_status(&app.get_as(other, "/").await, StatusCode::OK, "the other session");

    let cookie_before = session_cookie(&app, &jar);
    let page = change_password(&app, &this, PASSWORD, NEW_PASSWORD).await;
    assert_redirect(&page, "/", "changed");
    assert_ne!(session_cookie(&app, &jar), cookie_before);
    assert_status(&app.get_as(&this, "/").await, StatusCode::OK, "this session goes on");
    let page = app
        .post_as(
            &this,
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Still here"),
                ("field:token", GITHUB_TOKEN),
            ],
        )
        .await;
    assert_redirect(&page, "/", "this session can still change things");
    assert_redirect(&app.get_as(other, "/").await, "/sign-in", "the other session ended");

    let fresh = common::new_client();
    assert_status(&app.sign_in_with(&fresh, ADMIN_EMAIL, PASSWORD).await, StatusCode::UNAUTHORIZED, "old");
    assert_redirect(&app.sign_in_with(&fresh, ADMIN_EMAIL, NEW_PASSWORD).await, "/", "new");
}

#[actix_web::test]
async fn a_browser_whose_session_ended_elsewhere_can_sign_in_from_the_sign_in_page() {
    let app = common::spawn().await;
    let browser = app.client_as("moved@plugboard.test", Role::Member).await;
    // The password is changed in another browser: this session ends.
    let elsewhere = common::new_client();
    app.sign_in(&elsewhere, "moved@plugboard.test").await;
    assert_redirect(&change_password(&app, &elsewhere, PASSWORD, NEW_PASSWORD).await, "/", "changed");
    // The person opens the sign-in page (a bookmark) and signs in with the
    // form it gave them.
    let page = app.get_as(&browser, "/sign-in").await;
    assert_status(&page, StatusCode::OK, "the sign-in page");
    let token = page.attr("input[name=csrf_token]", "value").unwrap();
    let response = browser
        .post(app.url("/sign-in"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "moved@plugboard.test"),
            ("password", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, StatusCode::SEE_OTHER, "the form the sign-in page gave works: {body}");
}
