//! Safety: CSRF, environments keeping to themselves, the session cookie,
//! the Content Security Policy, and secrets that never leave the database
//! in clear.

mod common;

use common::{Page, TestApp};
use plugboard::environment::Environment;
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_SECRETMARKER456";
const STRIPE_KEY: &str = "sk_test_SECRETMARKER123";
const SLACK_CLIENT_SECRET: &str = "slack-client-SECRETMARKER789";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_PASSWORD: &str = "twilio-SECRETMARKER000";

const FORM_EXPIRED: &str = "did not carry a valid security token, so nothing was changed";

/// A connection with a tag, and the tag's id, for the routes that need them.
async fn connection_with_tag(app: &TestApp) -> (i64, i64) {
    let id = app.create("github", "Guarded Repo", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    let tag = app.snapshot().tags.iter().find(|(_, n)| n == "ops").unwrap().0;
    (id, tag)
}

/// Every state-changing route with a form that would succeed with a token.
fn post_routes(id: i64, tag: i64) -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            "/connections".to_owned(),
            vec![
                ("component", "stripe"),
                ("auth_method", "secret_key"),
                ("name", "Forged"),
                ("field:token", STRIPE_KEY),
            ],
        ),
        (
            format!("/connections/{id}"),
            vec![("version", "1"), ("auth_method", "token"), ("name", "Forged name")],
        ),
        (format!("/connections/{id}/delete"), vec![]),
        (format!("/connections/{id}/tags"), vec![("tag", "forged")]),
        (format!("/connections/{id}/tags/{tag}/delete"), vec![]),
        (format!("/connections/{id}/check"), vec![]),
        ("/environment".to_owned(), vec![("environment", "production")]),
    ]
}

fn assert_forbidden(page: &Page, what: &str) {
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}: {}", page.body);
    assert!(page.body.contains(FORM_EXPIRED), "{what}: {}", page.body);
    assert!(page.body.contains("Reload the page"), "{what}");
}

async fn current_environment(app: &TestApp) -> String {
    app.get("/").await.attr("button[aria-pressed=true]", "value").unwrap()
}

// ---- CSRF ----

#[actix_web::test]
async fn posts_without_a_csrf_token_are_refused_and_change_nothing() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let before = app.snapshot();
    for (path, fields) in post_routes(id, tag) {
        let page = app.post_raw(&path, &fields).await;
        assert_forbidden(&page, &path);
        assert!(page.body.contains("<html"), "a plain post gets a whole page");
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(current_environment(&app).await, "development");
}

#[actix_web::test]
async fn posts_with_a_forged_csrf_token_are_refused_and_change_nothing() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let real = app.csrf().await;
    let mut flipped = real.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let before = app.snapshot();
    for forged in ["", "0", &"0".repeat(64), &flipped, &real[..real.len() - 1], &format!("{real}0")] {
        for (path, fields) in post_routes(id, tag) {
            let mut form = vec![("csrf_token", forged)];
            form.extend(fields);
            let page = app.post_raw(&path, &form).await;
            assert_forbidden(&page, &format!("{path} with token {forged:?}"));
        }
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(current_environment(&app).await, "development");
}

#[actix_web::test]
async fn htmx_posts_with_a_wrong_header_token_are_refused_and_change_nothing() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let real = app.csrf().await;
    let before = app.snapshot();
    for token in [None, Some(""), Some("not-the-token"), Some(&"f".repeat(64))] {
        for (path, fields) in post_routes(id, tag) {
            let page = app.hx_post_token(token, &path, &fields).await;
            assert_forbidden(&page, &format!("htmx {path} with {token:?}"));
            assert!(!page.body.contains("<html"), "htmx gets a fragment");
        }
    }
    // A wrong header is not rescued by a right form field.
    for (path, fields) in post_routes(id, tag) {
        let mut form = vec![("csrf_token", real.as_str())];
        form.extend(fields);
        let page = app.hx_post_token(Some("wrong"), &path, &form).await;
        assert_forbidden(&page, &format!("htmx {path} with a wrong header and a right field"));
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(current_environment(&app).await, "development");
}

#[actix_web::test]
async fn a_token_from_another_session_is_refused() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let theirs = app.csrf().await;
    let before = app.snapshot();

    // Another browser, with its own session (or none yet).
    let other = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for (path, fields) in post_routes(id, tag) {
        let mut form = vec![("csrf_token", theirs.as_str())];
        form.extend(fields.iter().copied());
        let response = other.post(app.url(&path)).form(&form).send().await.unwrap();
        // Not signed in: refused before the token is even looked at.
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} without a session");
        let response =
            other.post(app.url(&path)).header("X-CSRF-Token", &theirs).form(&fields).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path} without a session, header token");
    }
    // Now signed in with a session of its own: still not the other one's token.
    app.add_user("other@plugboard.test", plugboard::accounts::Role::Admin);
    app.sign_in(&other, "other@plugboard.test").await;
    let own = other.get(app.url("/")).send().await.unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    for (path, fields) in post_routes(id, tag) {
        let mut form = vec![("csrf_token", theirs.as_str())];
        form.extend(fields.iter().copied());
        let response = other.post(app.url(&path)).form(&form).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path} with another session's token");
    }
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn other_methods_need_the_token_too() {
    let app = common::spawn().await;
    let (id, _) = connection_with_tag(&app).await;
    let before = app.snapshot();
    for method in [reqwest::Method::PUT, reqwest::Method::DELETE, reqwest::Method::PATCH] {
        let response =
            app.client.request(method.clone(), app.url(&format!("/connections/{id}"))).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{method}");
    }
    assert_eq!(app.snapshot(), before);
}

// ---- other environments and unknown ids ----

#[actix_web::test]
async fn unknown_and_other_environment_ids_are_not_found_and_not_named() {
    let app = common::spawn().await;
    app.switch_environment("staging").await;
    let secret_name = "Staging Payroll SECRETNAME";
    let staging =
        app.create("github", secret_name, &[("token", GITHUB_TOKEN), ("new_tags", "payroll")]).await;
    let tag = app.snapshot().tags[0].0;
    app.switch_environment("development").await;
    let mine = app.create("github", "Mine", &[("token", GITHUB_TOKEN)]).await;
    let before = app.snapshot();

    for id in [staging, 999_999, 0, -1] {
        let mut checks: Vec<(String, Page)> = Vec::new();
        checks.push((format!("GET edit {id}"), app.get(&format!("/connections/{id}/edit")).await));
        checks.push((format!("htmx GET edit {id}"), app.hx_get(&format!("/connections/{id}/edit")).await));
        checks.push((format!("GET delete {id}"), app.get(&format!("/connections/{id}/delete")).await));
        checks.push((
            format!("POST edit {id}"),
            app.post(
                &format!("/connections/{id}"),
                &[("version", "1"), ("auth_method", "token"), ("name", "Hijacked")],
            )
            .await,
        ));
        checks.push((
            format!("htmx POST edit {id}"),
            app.hx_post(
                &format!("/connections/{id}"),
                &[("version", "1"), ("auth_method", "token"), ("name", "Hijacked")],
            )
            .await,
        ));
        checks.push((format!("POST delete {id}"), app.post(&format!("/connections/{id}/delete"), &[]).await));
        checks.push((
            format!("htmx POST delete {id}"),
            app.hx_post(&format!("/connections/{id}/delete"), &[]).await,
        ));
        checks.push((
            format!("POST tag add {id}"),
            app.post(&format!("/connections/{id}/tags"), &[("tag", "hijacked")]).await,
        ));
        checks.push((
            format!("POST tag remove {id}"),
            app.post(&format!("/connections/{id}/tags/{tag}/delete"), &[]).await,
        ));
        checks.push((format!("POST check {id}"), app.post(&format!("/connections/{id}/check"), &[]).await));
        for (what, page) in checks {
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{what}: {}", page.body);
            assert!(
                page.body.contains("There is no such connection in this environment"),
                "{what}: {}",
                page.body
            );
            assert!(!page.body.contains("SECRETNAME"), "{what} leaks the connection's name");
            assert!(!page.body.contains("SECRETMARKER"), "{what} leaks a secret");
        }
    }
    assert_eq!(app.snapshot(), before, "nothing in Staging was touched from Development");
    assert_eq!(app.count_rows("tags").await, 1, "no tag was created for a connection that was not found");

    // Removing a tag of this environment's connection that it does not have
    // changes nothing either.
    let page = app.post(&format!("/connections/{mine}/tags/{tag}/delete"), &[]).await;
    assert!(page.status == StatusCode::SEE_OTHER || page.status.is_client_error(), "{}", page.status);
    assert_eq!(app.stored(staging).unwrap().tags, vec!["payroll"]);
}

#[actix_web::test]
async fn connections_of_another_environment_are_not_listed_or_counted() {
    let app = common::spawn().await;
    app.switch_environment("staging").await;
    let staging =
        app.create("stripe", "Staging Stripe", &[("token", STRIPE_KEY), ("new_tags", "payments")]).await;
    app.create("github", "Staging GitHub", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    app.switch_environment("development").await;
    app.create("github", "Dev GitHub", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;

    let page = app.get("/").await;
    assert_eq!(page.texts("tr[data-connection] .connection-name"), vec!["Dev GitHub"]);
    assert_eq!(page.count(&format!("#connection-{staging}")), 0);
    assert!(!page.body.contains("Staging Stripe"));
    assert!(!page.body.contains("Staging GitHub"));
    let sidebar = page.text_of("aside.sidebar");
    assert!(!sidebar.contains("Stripe"), "{sidebar}");
    assert!(!sidebar.contains("payments"), "{sidebar}");
    assert_eq!(page.text_of("aside.sidebar a[href='/'] .facet-count"), "1");
    assert_eq!(page.text_of("aside.sidebar a[href='/?component=github'] .facet-count"), "1");
    assert_eq!(page.text_of("aside.sidebar a[href='/?tag=ops'] .facet-count"), "1");
    assert!(page.text_of("#filter-summary").starts_with("1 connection in Development"));

    // Filters and search do not reach across either.
    for query in ["/?component=stripe", "/?tag=payments", "/?q=staging", "/?tag=ops&component=github&q=git"] {
        let page = app.get(query).await;
        assert!(!page.body.contains("Staging Stripe") && !page.body.contains("Staging GitHub"), "{query}");
    }
    assert_eq!(app.get("/?tag=ops").await.texts("tr[data-connection] .connection-name"), vec!["Dev GitHub"]);

    // And Staging sees its own.
    app.switch_environment("staging").await;
    let page = app.get("/").await;
    let mut shown = page.texts("tr[data-connection] .connection-name");
    shown.sort();
    assert_eq!(shown, vec!["Staging GitHub", "Staging Stripe"]);
    assert_eq!(page.text_of("aside.sidebar a[href='/'] .facet-count"), "2");
    assert_eq!(page.text_of("aside.sidebar a[href='/?tag=ops'] .facet-count"), "1");
}

// ---- cookie and headers ----

#[actix_web::test]
async fn the_session_cookie_is_http_only_and_same_site_lax() {
    let app = common::spawn().await;
    let page = app.get("/").await;
    let cookies: Vec<String> =
        page.headers.get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let session = cookies.iter().find(|c| c.starts_with("plugboard_session=")).expect("a session cookie");
    let attributes: Vec<String> = session.split(';').map(|a| a.trim().to_lowercase()).collect();
    assert!(attributes.contains(&"httponly".to_owned()), "{session}");
    assert!(attributes.contains(&"samesite=lax".to_owned()), "{session}");
    assert!(attributes.contains(&"path=/".to_owned()), "{session}");
    // The cookie is sealed: the CSRF token is not readable in it.
    let token = page.attr("input[name=csrf_token]", "value").unwrap();
    assert!(!session.contains(&token));

    let secure = common::spawn_with(|s| s.secure_cookies = true).await;
    let page = secure.get("/").await;
    let session = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("plugboard_session="))
        .unwrap();
    assert!(session.to_lowercase().split(';').any(|a| a.trim() == "secure"), "{session}");
}

/// The checks every HTML response must pass.
fn check_html_response(what: &str, page: &Page) -> Vec<String> {
    let mut problems = Vec::new();
    let csp = page.header("content-security-policy").unwrap_or_default().to_owned();
    if csp.is_empty() {
        problems.push(format!("{what} ({}): no Content-Security-Policy", page.status));
    } else {
        let directive = |name: &str| {
            csp.split(';').map(str::trim).find(|d| d.starts_with(&format!("{name} "))).map(str::to_owned)
        };
        let script_src = directive("script-src").or_else(|| directive("default-src")).unwrap_or_default();
        if script_src.is_empty()
            || script_src.contains("'unsafe-inline'")
            || script_src.contains("'unsafe-eval'")
        {
            problems.push(format!("{what}: script-src allows inline script: {csp}"));
        }
        if !csp.contains("frame-ancestors 'none'") {
            problems.push(format!("{what}: framing allowed: {csp}"));
        }
    }
    if page.header("x-content-type-options") != Some("nosniff") {
        problems.push(format!("{what}: no X-Content-Type-Options: nosniff"));
    }
    let html = page.html();
    let scripts = scraper::Selector::parse("script").unwrap();
    for script in html.select(&scripts) {
        if script.value().attr("src").is_none() || !script.text().collect::<String>().trim().is_empty() {
            problems.push(format!("{what}: inline <script>: {}", script.html()));
        }
    }
    let all = scraper::Selector::parse("*").unwrap();
    for element in html.select(&all) {
        for (name, value) in element.value().attrs() {
            if name.starts_with("on") {
                problems.push(format!("{what}: inline event handler {name}={value:?}"));
            }
            if name == "style" {
                problems.push(format!("{what}: inline style attribute on <{}>", element.value().name()));
            }
            if (name == "href" || name == "src" || name == "action")
                && value.trim().to_lowercase().starts_with("javascript:")
            {
                problems.push(format!("{what}: javascript: URL"));
            }
        }
    }
    if html.select(&scraper::Selector::parse("style").unwrap()).next().is_some() {
        problems.push(format!("{what}: inline <style>"));
    }
    problems
}

#[actix_web::test]
async fn every_html_response_has_a_strict_csp_and_no_inline_script() {
    let app = common::spawn().await;
    let (id, _) = connection_with_tag(&app).await;
    let token = app.csrf().await;
    let mut pages: Vec<(String, Page)> = Vec::new();
    for path in [
        "/".to_owned(),
        "/?tag=ops&q=repo&sort=name".to_owned(),
        "/?tag=nope".to_owned(),
        "/connections/new".to_owned(),
        "/connections/new?q=slack".to_owned(),
        "/connections/new?component=slack".to_owned(),
        "/connections/new?component=nope".to_owned(),
        format!("/connections/{id}/edit"),
        format!("/connections/{id}/delete"),
        "/connections/424242/edit".to_owned(),
        "/no/such/page".to_owned(),
    ] {
        pages.push((format!("GET {path}"), app.get(&path).await));
        pages.push((format!("htmx GET {path}"), app.hx_get(&path).await));
    }
    pages.push(("POST without token".into(), app.post_raw("/connections", &[("name", "x")]).await));
    pages.push(("htmx POST without token".into(), app.hx_post_token(None, "/connections", &[]).await));
    pages.push((
        "refused create".into(),
        app.post("/connections", &[("component", "slack"), ("auth_method", "bot_token"), ("name", "")]).await,
    ));
    pages.push((
        "htmx refused create".into(),
        app.hx_post("/connections", &[("component", "slack"), ("auth_method", "bot_token"), ("name", "")])
            .await,
    ));
    pages.push((
        "conflict".into(),
        app.post(&format!("/connections/{id}"), &[("version", "9"), ("auth_method", "token"), ("name", "x")])
            .await,
    ));
    pages.push(("bad version".into(), app.post(&format!("/connections/{id}"), &[("name", "x")]).await));
    pages.push(("bad environment".into(), app.post("/environment", &[("environment", "moon")]).await));
    pages.push(("bad tag".into(), app.post(&format!("/connections/{id}/tags"), &[("tag", "a,b")]).await));
    let big = format!("csrf_token={token}&name={}", "n".repeat(70 * 1024));
    pages.push(("oversized".into(), app.post_body("/connections", &[], big.clone().into_bytes()).await));
    pages.push((
        "htmx oversized".into(),
        app.post_body("/connections", &[("HX-Request", "true"), ("X-CSRF-Token", &token)], big.into_bytes())
            .await,
    ));

    let mut problems = Vec::new();
    for (what, page) in &pages {
        assert!(!page.status.is_server_error(), "{what}: {}", page.status);
        problems.extend(check_html_response(what, page));
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The layout loads its scripts from /static.
    let page = app.get("/").await;
    let srcs: Vec<String> = page
        .html()
        .select(&scraper::Selector::parse("script[src]").unwrap())
        .map(|s| s.value().attr("src").unwrap().to_owned())
        .collect();
    assert_eq!(srcs, vec!["/static/htmx.min.js", "/static/app.js"]);
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(page.header("cache-control"), Some("no-store"));
}

#[actix_web::test]
async fn names_and_tags_are_escaped_everywhere() {
    let app = common::spawn().await;
    let name = "<script>alert(1)</script> \"quoted\" & 'single'";
    let id = app.create("github", name, &[("token", GITHUB_TOKEN), ("new_tags", "<b>bold</b>")]).await;
    assert_eq!(app.stored(id).unwrap().name, name);
    for path in [
        "/".to_owned(),
        format!("/connections/{id}/edit"),
        format!("/connections/{id}/delete"),
        "/?tag=%3Cb%3Ebold%3C%2Fb%3E".to_owned(),
    ] {
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(!page.body.contains("<script>alert(1)"), "{path}: unescaped name");
        assert!(!page.body.contains("<b>bold</b>"), "{path}: unescaped tag");
        assert!(check_html_response(&path, &page).is_empty(), "{:?}", check_html_response(&path, &page));
    }
    let list = app.get("/").await;
    assert_eq!(
        list.text_of(&format!("#connection-{id} .connection-name")),
        name.split_whitespace().collect::<Vec<_>>().join(" ")
    );
    assert_eq!(list.texts(&format!("#connection-{id} .tag a")), vec!["<b>bold</b>"]);
    let page = app.hx_post(&format!("/connections/{id}/delete"), &[]).await;
    let trigger = page.header("hx-trigger").unwrap_or_default();
    let json: serde_json::Value = serde_json::from_str(trigger).expect("HX-Trigger stays valid JSON");
    assert!(json["plugboard-notice"].as_str().unwrap().contains(name));
}

// ---- secrets ----

async fn create_secret_connections(app: &TestApp) -> Vec<i64> {
    vec![
        app.create("stripe", "Payments", &[("token", STRIPE_KEY)]).await,
        app.create("github", "Repo", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await,
        app.create(
            "slack",
            "Slack app",
            &[
                ("auth_method", "oauth2"),
                ("client_id", "client-id-plain"),
                ("client_secret", SLACK_CLIENT_SECRET),
            ],
        )
        .await,
        app.create("twilio", "SMS", &[("username", TWILIO_SID), ("password", TWILIO_PASSWORD)]).await,
    ]
}

const MARKERS: [&str; 4] = [STRIPE_KEY, GITHUB_TOKEN, SLACK_CLIENT_SECRET, TWILIO_PASSWORD];

#[actix_web::test]
async fn secrets_are_not_in_the_database_file() {
    let app = common::spawn().await;
    let ids = create_secret_connections(&app).await;
    // An edit with a new secret, one keeping it, and a refused one.
    let page = app
        .post(
            &format!("/connections/{}", ids[0]),
            &[
                ("version", "1"),
                ("auth_method", "secret_key"),
                ("name", "Payments"),
                ("field:token", "sk_live_SECRETMARKER321"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = app
        .post(
            &format!("/connections/{}", ids[1]),
            &[("version", "1"), ("auth_method", "token"), ("name", "Repo 2")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = app
        .post(
            "/connections",
            &[
                ("component", "stripe"),
                ("auth_method", "secret_key"),
                ("name", ""),
                ("field:token", "sk_test_SECRETMARKER555"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);

    // The secrets are stored, sealed.
    let secrets = app.secrets(Environment::Development, ids[0]).unwrap();
    assert_eq!(secrets["token"], "sk_live_SECRETMARKER321");
    assert_eq!(app.secrets(Environment::Development, ids[1]).unwrap()["token"], GITHUB_TOKEN);
    for id in &ids {
        let stored = app.stored(*id).unwrap();
        let bytes = stored.secrets.expect("sealed secrets");
        assert!(!bytes.windows(12).any(|w| w == b"SECRETMARKER"), "a ciphertext holds the plain text");
        assert!(!stored.parameters.contains("SECRETMARKER"));
        assert!(stored.secrets_key_id.is_some());
    }

    let Some(path) = app.sqlite_path() else {
        return; // PostgreSQL: no file to read; the checks above still ran.
    };
    let mut files = vec![path.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let extra = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        if extra.exists() {
            files.push(extra);
        }
    }
    let mut searched = 0;
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        searched += bytes.len();
        for marker in
            MARKERS.iter().chain(&["sk_live_SECRETMARKER321", "sk_test_SECRETMARKER555", "SECRETMARKER"])
        {
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker.as_bytes()),
                "{marker} found in clear in {}",
                file.display()
            );
        }
        // Non-secret values are there, so the search itself works.
    }
    let all: Vec<u8> = files.iter().flat_map(|f| std::fs::read(f).unwrap()).collect();
    assert!(
        all.windows(15).any(|w| w == b"client-id-plain"),
        "searched {searched} bytes without finding a plain value"
    );
}

#[actix_web::test]
async fn a_ciphertext_copied_onto_another_row_does_not_open() {
    use diesel::prelude::*;
    use plugboard::db::schema::connections;

    let app = common::spawn().await;
    let a = app.create("stripe", "A", &[("token", "sk_test_AAAAAAAA")]).await;
    let b = app.create("stripe", "B", &[("token", "sk_test_BBBBBBBB")]).await;
    app.switch_environment("staging").await;
    let c = app.create("stripe", "C", &[("token", "sk_test_CCCCCCCC")]).await;
    app.switch_environment("development").await;
    let d = app.create("github", "D", &[("token", GITHUB_TOKEN)]).await;
    let a_row = app.stored(a).unwrap();

    let mut conn = app.db();
    for target in [b, c, d] {
        diesel::update(connections::table.find(target))
            .set((
                connections::secrets.eq(&a_row.secrets),
                connections::secrets_key_id.eq(&a_row.secrets_key_id),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    // Same component and environment, another row.
    let opened = app.secrets(Environment::Development, b);
    assert!(
        opened.is_err(),
        "B must not open A's secrets: {:?}",
        opened.map(|m| m.keys().cloned().collect::<Vec<_>>())
    );
    // Another environment.
    assert!(app.secrets(Environment::Staging, c).is_err());
    // Another component.
    assert!(app.secrets(Environment::Development, d).is_err());
    // A itself still opens.
    assert_eq!(app.secrets(Environment::Development, a).unwrap()["token"], "sk_test_AAAAAAAA");

    // A row moved to another environment no longer opens either.
    diesel::update(connections::table.find(a))
        .set(connections::environment.eq("production"))
        .execute(&mut conn)
        .unwrap();
    assert!(app.secrets(Environment::Production, a).is_err());

    // And the pages still do not show anything of A.
    let page = app.get(&format!("/connections/{b}/edit")).await;
    assert!(!page.body.contains("AAAAAAAA"));
    assert!(!page.body.contains("BBBBBBBB"));
}

#[actix_web::test]
async fn no_secret_appears_in_any_page() {
    let app = common::spawn().await;
    let ids = create_secret_connections(&app).await;
    let mut pages: Vec<(String, Page)> = Vec::new();
    for path in ["/".to_owned(), "/?q=a".to_owned(), "/?tag=ops".to_owned(), "/?sort=name".to_owned()] {
        pages.push((format!("GET {path}"), app.get(&path).await));
        pages.push((format!("htmx GET {path}"), app.hx_get(&path).await));
    }
    for id in &ids {
        for path in [format!("/connections/{id}/edit"), format!("/connections/{id}/delete")] {
            pages.push((format!("GET {path}"), app.get(&path).await));
            pages.push((format!("htmx GET {path}"), app.hx_get(&path).await));
        }
    }
    pages.push((
        "edit of slack with the other method".into(),
        app.get(&format!("/connections/{}/edit?method=bot_token", ids[2])).await,
    ));
    // Refused saves, with a secret typed.
    pages.push((
        "refused create".into(),
        app.post(
            "/connections",
            &[
                ("component", "stripe"),
                ("auth_method", "secret_key"),
                ("name", ""),
                ("field:token", STRIPE_KEY),
            ],
        )
        .await,
    ));
    pages.push((
        "htmx refused create".into(),
        app.hx_post(
            "/connections",
            &[
                ("component", "stripe"),
                ("auth_method", "secret_key"),
                ("name", ""),
                ("field:token", STRIPE_KEY),
            ],
        )
        .await,
    ));
    pages.push((
        "refused create, bad pattern".into(),
        app.post(
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "x"),
                ("field:token", "bad-SECRETMARKER-1"),
            ],
        )
        .await,
    ));
    pages.push((
        "refused edit".into(),
        app.post(
            &format!("/connections/{}", ids[3]),
            &[
                ("version", "1"),
                ("auth_method", "basic"),
                ("name", ""),
                ("field:username", TWILIO_SID),
                ("field:password", TWILIO_PASSWORD),
            ],
        )
        .await,
    ));
    pages.push((
        "conflicting edit".into(),
        app.post(
            &format!("/connections/{}", ids[0]),
            &[("version", "5"), ("auth_method", "secret_key"), ("name", "x"), ("field:token", STRIPE_KEY)],
        )
        .await,
    ));
    pages.push((
        "htmx conflicting edit".into(),
        app.hx_post(
            &format!("/connections/{}", ids[0]),
            &[("version", "5"), ("auth_method", "secret_key"), ("name", "x"), ("field:token", STRIPE_KEY)],
        )
        .await,
    ));
    pages.push((
        "htmx successful edit".into(),
        app.hx_post(
            &format!("/connections/{}", ids[1]),
            &[("version", "1"), ("auth_method", "token"), ("name", "Repo"), ("field:token", GITHUB_TOKEN)],
        )
        .await,
    ));
    for (what, page) in &pages {
        assert!(!page.status.is_server_error(), "{what}: {}", page.status);
        assert!(!page.body.contains("SECRETMARKER"), "{what} shows a secret");
        for (name, value) in &page.headers {
            assert!(
                !value.to_str().unwrap_or_default().contains("SECRETMARKER"),
                "{what}: header {name} holds a secret"
            );
        }
    }
}

// ---- the origin of state-changing requests ----

const OTHER_SITE: &str = "was sent from another site, so nothing was changed";

fn assert_other_site(page: &Page, what: &str) {
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{what}: {}", page.body);
    assert!(page.body.contains(OTHER_SITE), "{what}: {}", page.body);
}

/// A form post with the session's valid token and extra headers.
async fn post_with_headers(
    app: &TestApp,
    token: &str,
    path: &str,
    fields: &[(&str, &str)],
    headers: &[(&str, String)],
) -> Page {
    let mut form = vec![("csrf_token", token)];
    form.extend_from_slice(fields);
    let mut request = app.client.post(app.url(path)).form(&form);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("POST");
    let status = response.status();
    let headers = response.headers().clone();
    Page { status, headers, body: response.text().await.expect("body") }
}

#[actix_web::test]
async fn posts_naming_another_origin_are_refused_even_with_a_valid_token() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let token = app.csrf().await;
    let before = app.snapshot();
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let forged: Vec<(&str, String)> = vec![
        ("Origin", "http://evil.example".into()),
        ("Origin", format!("http://evil.example:{port}")),
        // Same host, another port: another origin.
        ("Origin", "http://127.0.0.1:1".into()),
        ("Origin", "null".into()),
        ("Origin", "not a url".into()),
        ("Referer", "http://evil.example/page?x=1".into()),
        ("Referer", format!("http://127.0.0.1.evil.example:{port}/")),
    ];
    for (path, fields) in post_routes(id, tag) {
        for (header, value) in &forged {
            let page = post_with_headers(&app, &token, &path, &fields, &[(*header, value.clone())]).await;
            assert_other_site(&page, &format!("{path} with {header}: {value}"));
        }
        // The Origin decides when both are sent.
        let page = post_with_headers(
            &app,
            &token,
            &path,
            &fields,
            &[("Origin", "http://evil.example".into()), ("Referer", format!("{}/", app.base))],
        )
        .await;
        assert_other_site(&page, &format!("{path} with a forged Origin and a matching Referer"));
        // htmx sends the token in a header; the origin is still checked.
        let response = app
            .client
            .post(app.url(&path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", &token)
            .header("Origin", "http://evil.example")
            .form(&fields)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "htmx {path}");
        assert!(response.text().await.unwrap().contains(OTHER_SITE));
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(current_environment(&app).await, "development");

    // Signing in (login CSRF) is judged the same way.
    let browser = common::new_client();
    let anonymous = app.csrf_as(&browser).await;
    let response = browser
        .post(app.url("/sign-in"))
        .header("Origin", "http://evil.example")
        .form(&[
            ("csrf_token", anonymous.as_str()),
            ("email", common::ADMIN_EMAIL),
            ("password", common::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.get_as(&browser, "/").await.status, StatusCode::SEE_OTHER, "not signed in");
}

#[actix_web::test]
async fn posts_naming_their_own_origin_or_none_are_judged_by_the_token() {
    let app = common::spawn().await;
    let token = app.csrf().await;
    let own = app.base.clone();
    let localhost = own.replace("127.0.0.1", "localhost");
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("staging", vec![("Origin", own.clone())]),
        ("production", vec![("Referer", format!("{own}/connections?x=1"))]),
        ("development", vec![]),
        // As the browser saw it: the Host header it sent.
        (
            "staging",
            vec![("Origin", localhost.clone()), ("Host", localhost.trim_start_matches("http://").into())],
        ),
        // Plugboard may sit behind a TLS proxy it does not know of.
        ("production", vec![("Origin", own.replace("http://", "https://"))]),
    ];
    for (environment, headers) in cases {
        let page =
            post_with_headers(&app, &token, "/environment", &[("environment", environment)], &headers).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{headers:?}: {}", page.body);
        assert_eq!(current_environment(&app).await, environment, "{headers:?}");
    }
    // A matching origin does not stand in for the token.
    let page = app.post_raw("/environment", &[("environment", "staging")]).await;
    assert_forbidden(&page, "no token");
    let page = post_with_headers(
        &app,
        "wrong",
        "/environment",
        &[("environment", "staging")],
        &[("Origin", own.clone())],
    )
    .await;
    assert_forbidden(&page, "a matching origin and a wrong token");
    assert_eq!(current_environment(&app).await, "production", "as the last accepted post left it");
}

#[actix_web::test]
async fn forwarded_host_and_scheme_are_believed_only_from_a_trusted_proxy() {
    let forwarded = |proto: &str| {
        vec![
            ("Origin", "https://plugboard.example".to_owned()),
            ("X-Forwarded-Host", "plugboard.example".to_owned()),
            ("X-Forwarded-Proto", proto.to_owned()),
        ]
    };
    // No proxy is trusted: the headers are anyone's to send.
    let app = common::spawn().await;
    let token = app.csrf().await;
    let page =
        post_with_headers(&app, &token, "/environment", &[("environment", "staging")], &forwarded("https"))
            .await;
    assert_other_site(&page, "forwarded headers from an untrusted peer");

    // The test client's address (127.0.0.1) is the trusted proxy.
    let app = common::spawn_with(|s| s.trusted_proxies = "127.0.0.1".parse().unwrap()).await;
    let token = app.csrf().await;
    let page =
        post_with_headers(&app, &token, "/environment", &[("environment", "staging")], &forwarded("https"))
            .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(current_environment(&app).await, "staging");
    // The proxy says the browser used plain HTTP: an HTTPS origin is another one.
    let page =
        post_with_headers(&app, &token, "/environment", &[("environment", "production")], &forwarded("http"))
            .await;
    assert_other_site(&page, "another scheme than the proxy reports");
    // Without X-Forwarded-Host, the Host header is the browser's.
    let page = post_with_headers(
        &app,
        &token,
        "/environment",
        &[("environment", "production")],
        &[("Origin", "https://plugboard.example".into()), ("X-Forwarded-Proto", "https".into())],
    )
    .await;
    assert_other_site(&page, "a host the browser did not address");
    assert_eq!(current_environment(&app).await, "staging");
}

// ---- look-alike tag names ----

#[actix_web::test]
async fn full_width_tags_are_the_plain_tag_and_invisible_characters_are_refused() {
    let app = common::spawn().await;
    let (id, tag) = connection_with_tag(&app).await;
    let other = app.create("github", "Other Repo", &[("token", GITHUB_TOKEN)]).await;

    // The inline tag form: "ｏｐｓ" is the existing "ops".
    let page = app.post(&format!("/connections/{other}/tags"), &[("tag", "ｏｐｓ")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let stored = app.snapshot();
    assert_eq!(stored.tags, vec![(tag, "ops".to_owned())], "no second tag");
    assert_eq!(app.stored(other).unwrap().tags, vec!["ops"]);

    let before = app.snapshot();
    let refused =
        [("o\u{200B}ps", "U+200B ZERO WIDTH SPACE"), ("ops\u{202E}", "U+202E RIGHT-TO-LEFT OVERRIDE")];
    for (name, named) in refused {
        let page = app.post(&format!("/connections/{id}/tags"), &[("tag", name)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {}", page.body);
        assert!(page.body.contains(named), "{name:?}: {}", page.body);
        let page = app.hx_post(&format!("/connections/{id}/tags"), &[("tag", name)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "htmx {name:?}");
        assert!(page.body.contains(named), "htmx {name:?}: {}", page.body);
    }
    assert_eq!(app.snapshot(), before, "nothing tagged");

    // The connection form: the same names, beside the tags field.
    let method = app.default_method("github").await;
    for (name, named) in refused {
        let page = app
            .post(
                "/connections",
                &[
                    ("component", "github"),
                    ("auth_method", &method),
                    ("name", "Look-alike"),
                    ("field:token", GITHUB_TOKEN),
                    ("new_tags", name),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {}", page.body);
        assert!(page.text_of("#error-tags").contains(named), "{name:?}: {}", page.text_of("#error-tags"));
    }
    assert_eq!(app.snapshot(), before, "nothing saved");
    let created =
        app.create("github", "Full width", &[("token", GITHUB_TOKEN), ("new_tags", "ＯＰＳ, ｅｕ")]).await;
    let mut tags = app.stored(created).unwrap().tags;
    tags.sort();
    assert_eq!(tags, vec!["eu", "ops"]);
    assert_eq!(app.snapshot().tags.len(), 2, "ops and eu, once each");
}

// ---- /metrics ----

/// `/metrics` is for admins and for the configured scrapers: an anonymous
/// visitor and a member are refused; what it shows is labelled by route
/// pattern, so no connection id, query or secret becomes a label.
#[actix_web::test]
async fn metrics_are_for_admins_and_allowed_addresses_and_labelled_by_route() {
    let app = common::spawn().await;
    let id = app.create("github", "Metered", &[("token", GITHUB_TOKEN)]).await;
    app.get(&format!("/connections/{id}/edit")).await;
    app.get("/?q=SECRETMARKER").await;

    let anonymous = common::new_client();
    let refused = app.get_as(&anonymous, "/metrics").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("PLUGBOARD_METRICS_ALLOW"), "{}", refused.body);
    let member = app.client_as("member@plugboard.test", plugboard::accounts::Role::Member).await;
    assert_eq!(app.get_as(&member, "/metrics").await.status, StatusCode::FORBIDDEN);

    let page = app.get("/metrics").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/plain"));
    let edit = r#"plugboard_http_requests_total{method="GET",route="/connections/{id}/edit",status="200"}"#;
    assert!(page.body.contains(edit), "{}", page.body);
    assert!(page.body.contains("plugboard_http_request_duration_seconds_bucket"), "{}", page.body);
    // The save's check, whatever it found.
    assert!(page.body.contains(r#"plugboard_checks_total{outcome=""#), "{}", page.body);
    assert!(page.body.contains("plugboard_db_wait_seconds_count"), "{}", page.body);
    if !app.is_postgres() {
        // The create was committed in a group of the SQLite writer.
        assert!(
            page.body.contains(r#"plugboard_db_write_groups_total{result="committed"}"#),
            "{}",
            page.body
        );
        assert!(page.body.contains("plugboard_db_writes_total"), "{}", page.body);
    }
    assert!(!page.body.contains(&format!("/connections/{id}/")), "a raw path became a label");
    assert!(!page.body.contains("SECRETMARKER"), "a query became a label");

    let scraper_app = common::spawn_with(|s| s.metrics_allow = "127.0.0.1".parse().unwrap()).await;
    let scraped = scraper_app.get_as(&common::new_client(), "/metrics").await;
    assert_eq!(scraped.status, StatusCode::OK, "{}", scraped.body);
}
