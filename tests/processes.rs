//! Several Plugboard processes on one database behave as one: sessions,
//! connections, optimistic locking and background checks are shared.
//! Runs on SQLite by default and on PostgreSQL with PLUGBOARD_TEST_POSTGRES.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::{App, HttpResponse, HttpServer, web};
use diesel::RunQueryDsl;
use reqwest::StatusCode;

/// A stand-in service that accepts one bearer token and counts the checks.
async fn stand_in(hits: Arc<AtomicUsize>) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let hits = hits.clone();
        App::new().route(
            "/whoami",
            web::get().to(move |req: actix_web::HttpRequest| {
                let hits = hits.clone();
                async move {
                    hits.fetch_add(1, Ordering::SeqCst);
                    let ok = req.headers().get("authorization").is_some_and(|v| v == "Bearer good-token");
                    if ok {
                        HttpResponse::Ok().json(serde_json::json!({"id": 1}))
                    } else {
                        HttpResponse::Unauthorized().finish()
                    }
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    port
}

fn catalog(dir: &std::path::Path, port: u16) -> std::path::PathBuf {
    let path = dir.join("catalog.toml");
    std::fs::write(
        &path,
        format!(
            "[svc]\nname = \"Service\"\nbase_url = \"http://127.0.0.1:{port}\"\n\
             [svc.auth.token]\nkind = \"bearer\"\n[svc.test]\npath = \"/whoami\"\n"
        ),
    )
    .unwrap();
    path
}

#[actix_web::test]
async fn a_session_made_by_one_process_works_on_the_other() {
    let a = common::spawn().await;
    let b = common::spawn_sibling(&a, |_| {}).await;
    a.switch_environment("staging").await;
    // The same browser (cookie jar) now talks to the other process.
    let token = a.csrf().await;
    let page = a
        .client
        .post(format!("{}/connections", b.base))
        .form(&[
            ("csrf_token", token.as_str()),
            ("component", "stripe"),
            ("name", "Shared Stripe"),
            ("auth_method", "secret_key"),
            ("field:token", "sk_test_shared123"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER, "B accepts A's session and CSRF token");
    let on_b = a.client.get(format!("{}/", b.base)).send().await.unwrap().text().await.unwrap();
    assert!(on_b.contains("Shared Stripe") && on_b.contains("in Staging"), "{on_b}");
    let on_a = a.get("/").await;
    assert!(on_a.body.contains("Shared Stripe"), "saved through B, listed by A");
}

#[actix_web::test]
async fn conflicting_edits_through_two_processes_save_one_and_refuse_the_other() {
    let a = common::spawn().await;
    let b = common::spawn_sibling(&a, |_| {}).await;
    let id = a.create("stripe", "Payments", &[("token", "sk_test_first111")]).await;
    let form = a.get(&format!("/connections/{id}/edit")).await;
    let version = form.attr("input[name=version]", "value").unwrap();
    let edit = |name: &'static str| {
        vec![
            ("component", "stripe".to_owned()),
            ("auth_method", "secret_key".to_owned()),
            ("version", version.clone()),
            ("name", name.to_owned()),
        ]
    };
    let first_edit = edit("Saved through A");
    let first: Vec<(&str, &str)> = first_edit.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let page = a.post(&format!("/connections/{id}"), &first).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    // The same stale version, through the other process (same session).
    let token = a.csrf().await;
    let mut second = vec![("csrf_token", token.clone())];
    second.extend(edit("Saved through B"));
    let page = a.client.post(format!("{}/connections/{id}", b.base)).form(&second).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::CONFLICT);
    assert!(page.text().await.unwrap().contains("Someone else saved this connection"));
    let list = a.get("/").await;
    assert!(list.body.contains("Saved through A") && !list.body.contains("Saved through B"));
}

#[actix_web::test]
async fn a_background_check_due_on_both_processes_runs_once() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = stand_in(hits.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let path = catalog(dir.path(), port);
    // No background threads: the test runs the rounds itself, at once.
    let a = common::spawn_with(|s| {
        s.catalog = Some(path.clone());
        s.check_interval = std::time::Duration::ZERO;
    })
    .await;
    let b = common::spawn_sibling(&a, |s| {
        s.catalog = Some(path.clone());
        s.check_interval = std::time::Duration::ZERO;
    })
    .await;
    let id = a.create("svc", "Service", &[("token", "good-token")]).await;
    assert_eq!(hits.load(Ordering::SeqCst), 1, "checked once on save");
    assert!(a.get("/").await.body.contains("ACTIVE"));

    let mut conn = a.db();
    diesel::sql_query(format!(
        "UPDATE connections SET next_check_at = created_at - INTERVAL '1 hour' WHERE id = {id}"
    ))
    .execute(&mut conn)
    .or_else(|_| {
        diesel::sql_query(format!(
            "UPDATE connections SET next_check_at = '2000-01-01 00:00:00' WHERE id = {id}"
        ))
        .execute(&mut conn)
    })
    .unwrap();

    let (ra, rb) = tokio::join!(
        plugboard::jobs::run_due(&a.state, "process-a", 4),
        plugboard::jobs::run_due(&b.state, "process-b", 4)
    );
    ra.unwrap();
    rb.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2, "the due check ran once, not once per process");

    // Now scheduled hours ahead: another round on either does nothing.
    plugboard::jobs::run_due(&b.state, "process-b", 4).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    let history = a.get(&format!("/connections/{id}/edit")).await;
    assert_eq!(history.count("#check-panel table.checks tbody tr"), 2);
    assert!(history.text_of("#check-panel table.checks").contains("schedule"));
}

#[actix_web::test]
async fn processes_with_their_own_folders_share_keys_given_as_configuration() {
    let keys = "k1 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let session = "ab".repeat(64);
    let configure = |s: &mut plugboard::Settings| {
        s.encryption_keys = Some(keys.parse().unwrap());
        s.session_key = Some(session.parse().unwrap());
    };
    let a = common::spawn_with(configure).await;
    // Its own data folder: nothing but the database and the configured keys in common.
    let other_dir = tempfile::tempdir().unwrap();
    let b = {
        let mut settings = plugboard::Settings::with_data_dir(other_dir.path());
        settings.database_url = Some(a.database_url.clone());
        configure(&mut settings);
        let app = plugboard::Application::build(&settings).unwrap();
        let base = format!("http://{}", app.addr());
        let state = app.state();
        actix_web::rt::spawn(app.run());
        (base, state)
    };
    assert!(!a.data_dir.path().join("encryption.key").exists(), "no key file when keys are configured");
    let id = a.create("stripe", "Configured keys", &[("token", "sk_test_configured999")]).await;
    // The other process opens the secret sealed by the first.
    let environment = plugboard::environment::Environment::Development;
    let secrets =
        b.1.blocking(move |conn, state| {
            plugboard::connections::store::open_secrets(
                conn,
                &state.keyring,
                environment,
                plugboard::connections::ConnectionId(id),
            )
        })
        .await
        .expect("the second process decrypts");
    use secrecy::ExposeSecret;
    assert_eq!(secrets["token"].expose_secret(), "sk_test_configured999");
    // And accepts the first one's session.
    a.switch_environment("production").await;
    let page = a.client.get(format!("{}/", b.0)).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("in Production"), "session from A honoured by B");
}

#[test]
fn a_short_session_key_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = plugboard::Settings::with_data_dir(dir.path());
    settings.session_key = Some("abcd".parse().unwrap());
    let error = plugboard::Application::build(&settings).err().expect("refused").to_string();
    assert!(error.contains("PLUGBOARD_SESSION_KEY"), "{error}");
    assert!(!error.contains("abcd"), "{error}");
}

/// The list a process keeps (`web::connections::list_cache`) is never
/// shown once another process has changed what it shows, and each
/// session sharing a kept page gets its own CSRF token in every form.
#[actix_web::test]
async fn a_kept_list_shows_the_other_processes_changes_at_once() {
    let a = common::spawn().await;
    let b = common::spawn_sibling(&a, |_| {}).await;
    let id = a.create("stripe", "Kept once", &[("token", "sk_test_kept1111")]).await;
    let first = b.get("/").await;
    assert!(first.body.contains("Kept once"), "{}", first.body);
    assert_eq!(b.get("/").await.body, first.body, "the same page again, from what B keeps");

    // Another session of B's, with the same right to edit: the same kept
    // page, with its own token wherever one goes.
    let member = b.client_as("member@example.com", plugboard::accounts::Role::Member).await;
    let theirs = b.get_as(&member, "/").await;
    let tokens = |page: &common::Page| -> Vec<String> {
        let selector = scraper::Selector::parse("input[name=csrf_token]").unwrap();
        page.html().select(&selector).filter_map(|i| i.value().attr("value").map(str::to_owned)).collect()
    };
    let (mine, their_tokens) = (tokens(&first), tokens(&theirs));
    assert!(mine.len() > 3 && their_tokens.len() == mine.len(), "{} and {}", mine.len(), their_tokens.len());
    assert!(mine.iter().all(|t| *t == mine[0]) && their_tokens.iter().all(|t| *t == their_tokens[0]));
    assert_ne!(mine[0], their_tokens[0], "each session's own token");
    assert!(theirs.body.contains("Kept once"));

    // Changes through A: B's next page shows each.
    let tagged = a
        .post(&format!("/connections/{id}/tags"), &[("tag", "kept-tag"), ("environment", "development")])
        .await;
    assert_eq!(tagged.status, StatusCode::SEE_OTHER, "{}", tagged.body);
    assert!(b.get("/").await.body.contains("kept-tag"), "a tag added through A");
    let second = a.create("stripe", "Made through A", &[("token", "sk_test_kept2222")]).await;
    let page = b.get("/").await;
    assert!(page.body.contains("Made through A") && page.body.contains("of 2"), "{}", page.body);
    let gone = a.post(&format!("/connections/{second}/delete"), &[("environment", "development")]).await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER, "{}", gone.body);
    let page = b.get("/").await;
    assert!(!page.body.contains("Made through A") && page.body.contains("Kept once"), "{}", page.body);
    // A change straight in the database, as a third process would make it.
    let mut conn = a.db();
    diesel::sql_query(format!("UPDATE connections SET name = 'Renamed elsewhere' WHERE id = {id}"))
        .execute(&mut conn)
        .unwrap();
    assert!(b.get("/").await.body.contains("Renamed elsewhere"));
}
