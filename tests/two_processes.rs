//! Two real `plugboard` processes (the built binary, started twice) on one
//! database with the same keys, as behind a load balancer.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

struct Process {
    child: Child,
    base: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const KEYS: &str = "k1 8899aabbccddeeff00112233445566778899aabbccddeeff0011223344556677";

fn start(data_dir: &std::path::Path, database_url: &str) -> Process {
    start_with(data_dir, database_url, &[])
}

fn start_with(data_dir: &std::path::Path, database_url: &str, extra: &[(&str, String)]) -> Process {
    let mut command = Command::new(env!("CARGO_BIN_EXE_plugboard"));
    command.env_clear();
    for (name, value) in extra {
        command.env(name, value);
    }
    let mut child = command
        .env("PLUGBOARD_BIND", "127.0.0.1:0")
        .env("PLUGBOARD_DATA_DIR", data_dir)
        .env("DATABASE_URL", database_url)
        .env("PLUGBOARD_ENCRYPTION_KEYS", KEYS)
        .env("PLUGBOARD_SESSION_KEY", "cd".repeat(64))
        .env("PLUGBOARD_CHECK_PUBLIC_NETWORKS", "false")
        .env("PLUGBOARD_WORKERS", "1")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the plugboard binary starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(at) = line.find("listening on http://") {
                let _ = tx.send(line[at + "listening on ".len()..].trim().to_owned());
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(30)).expect("the process says where it listens");
    Process { child, base }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().cookie_store(true).redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

async fn token(client: &reqwest::Client, base: &str) -> String {
    let html = client.get(format!("{base}/")).send().await.unwrap().text().await.unwrap();
    let at =
        html.find("name=\"csrf_token\" value=\"").expect("a token") + "name=\"csrf_token\" value=\"".len();
    html[at..at + 64].to_owned()
}

/// Signs in as the harness's admin, through this process's form.
async fn sign_in(client: &reqwest::Client, base: &str) {
    let html = client.get(format!("{base}/sign-in")).send().await.unwrap().text().await.unwrap();
    let at =
        html.find("name=\"csrf_token\" value=\"").expect("a token") + "name=\"csrf_token\" value=\"".len();
    let token = html[at..at + 64].to_owned();
    let res = client
        .post(format!("{base}/sign-in"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", common::ADMIN_EMAIL),
            ("password", common::PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[actix_web::test]
async fn two_processes_share_sessions_connections_and_locking() {
    // The database comes from the harness (SQLite file or a fresh
    // PostgreSQL database); the harness's own server is not used.
    let harness = common::spawn().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start(dir_a.path(), &harness.database_url);
    let b = start(dir_b.path(), &harness.database_url);

    // A session made on A works on B: same environment, same CSRF token.
    let browser = client();
    sign_in(&browser, &a.base).await;
    let t = token(&browser, &a.base).await;
    let res = browser
        .post(format!("{}/environment", a.base))
        .form(&[("csrf_token", &t), ("environment", &"staging".to_owned())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let res = browser
        .post(format!("{}/connections", b.base))
        .form(&[
            ("csrf_token", t.as_str()),
            ("component", "stripe"),
            ("name", "Saved through B"),
            ("auth_method", "secret_key"),
            ("field:token", "sk_test_twoprocesses1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "B honours A's session and token");

    // Saved through B, listed by A, in the session's environment.
    let on_a = browser.get(format!("{}/", a.base)).send().await.unwrap().text().await.unwrap();
    assert!(on_a.contains("Saved through B") && on_a.contains("in Staging"), "{on_a}");
    let id: i64 = {
        let at = on_a.find("data-connection=\"").unwrap() + "data-connection=\"".len();
        on_a[at..].split('"').next().unwrap().parse().unwrap()
    };

    // Two edits from the same version, one through each process.
    let form =
        browser.get(format!("{}/connections/{id}/edit", a.base)).send().await.unwrap().text().await.unwrap();
    let at = form.find("name=\"version\" value=\"").unwrap() + "name=\"version\" value=\"".len();
    let version = form[at..].split('"').next().unwrap().to_owned();
    let edit = |name: &'static str| {
        vec![
            ("csrf_token", t.clone()),
            ("component", "stripe".to_owned()),
            ("auth_method", "secret_key".to_owned()),
            ("version", version.clone()),
            ("name", name.to_owned()),
        ]
    };
    let first =
        browser.post(format!("{}/connections/{id}", a.base)).form(&edit("Edited on A")).send().await.unwrap();
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    let second =
        browser.post(format!("{}/connections/{id}", b.base)).form(&edit("Edited on B")).send().await.unwrap();
    assert_eq!(second.status(), StatusCode::CONFLICT);
    let on_b = browser.get(format!("{}/", b.base)).send().await.unwrap().text().await.unwrap();
    assert!(on_b.contains("Edited on A") && !on_b.contains("Edited on B"));

    // Both answer their probes; the secret sealed by B opens on A (edit
    // page says it is stored, and A's check could read it).
    for p in [&a, &b] {
        let started = Instant::now();
        let ready = browser.get(format!("{}/readyz", p.base)).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
    assert!(form.contains("A value is stored"));
}

/// A service on 127.0.0.1 whose `/whoami` answers 200 after `delay`, and a
/// catalog file (in the returned folder) with a component `key` checked
/// against it with a bearer token (auth method `t`).
fn stand_in_service(key: &str, delay: Duration) -> (tempfile::TempDir, std::path::PathBuf) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new().route(
            "/whoami",
            actix_web::web::get().to(move || async move {
                actix_web::rt::time::sleep(delay).await;
                actix_web::HttpResponse::Ok().body("{}")
            }),
        )
    })
    .listen(listener)
    .unwrap()
    .run();
    actix_web::rt::spawn(server);
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!("[{key}]\nname = \"{key}\"\nbase_url = \"http://127.0.0.1:{port}\"\n[{key}.auth.t]\nkind = \"bearer\"\n[{key}.test]\npath = \"/whoami\"\n"),
    )
    .unwrap();
    (dir, catalog)
}

#[actix_web::test]
async fn stopping_finishes_the_requests_in_flight() {
    // A service that takes 1.5 s to answer, so a check is in flight when
    // the stop signal arrives.
    let (dir, catalog) = stand_in_service("slow", Duration::from_millis(1500));
    let harness = common::spawn().await;
    let mut p = start_with(
        dir.path(),
        &harness.database_url,
        &[
            ("PLUGBOARD_CATALOG", catalog.display().to_string()),
            ("PLUGBOARD_ALLOW_NETWORKS", "127.0.0.1".into()),
        ],
    );
    let browser = client();
    sign_in(&browser, &p.base).await;
    let t = token(&browser, &p.base).await;
    let created = browser
        .post(format!("{}/connections", p.base))
        .form(&[
            ("csrf_token", t.as_str()),
            ("component", "slow"),
            ("name", "Slow"),
            ("auth_method", "t"),
            ("field:token", "x"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    let html = browser.get(format!("{}/", p.base)).send().await.unwrap().text().await.unwrap();
    let at = html.find("data-connection=\"").unwrap() + "data-connection=\"".len();
    let id = html[at..].split('"').next().unwrap().to_owned();

    let in_flight = {
        let browser = browser.clone();
        let url = format!("{}/connections/{id}/check", p.base);
        let t = t.clone();
        actix_web::rt::spawn(async move {
            browser.post(url).form(&[("csrf_token", t)]).send().await.map(|r| r.status())
        })
    };
    actix_web::rt::time::sleep(Duration::from_millis(400)).await;
    let pid = p.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = in_flight.await.unwrap().expect("the request in flight is answered");
    assert_eq!(status, StatusCode::SEE_OTHER);
    let started = Instant::now();
    loop {
        if let Some(exit) = p.child.try_wait().unwrap() {
            assert!(exit.success(), "exits cleanly: {exit:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "stops after finishing its requests");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A process killed (SIGKILL) while people create connections: every
/// create it answered as saved is in the database after a restart, with
/// its check, and the counters agree with the rows. On SQLite the creates
/// were committed in groups by one writer, which answers nobody before
/// the commit.
#[actix_web::test]
async fn a_process_killed_while_creating_loses_nothing_it_answered_as_saved() {
    let (dir, catalog) = stand_in_service("quick", Duration::ZERO);
    let harness = common::spawn().await;
    let settings = [
        ("PLUGBOARD_CATALOG", catalog.display().to_string()),
        ("PLUGBOARD_ALLOW_NETWORKS", "127.0.0.1".into()),
    ];
    let mut p = start_with(dir.path(), &harness.database_url, &settings);
    let browser = client();
    sign_in(&browser, &p.base).await;
    let t = token(&browser, &p.base).await;

    let creators: Vec<_> = (0..8)
        .map(|worker| {
            let (browser, url, t) = (browser.clone(), format!("{}/connections", p.base), t.clone());
            actix_web::rt::spawn(async move {
                let mut saved = Vec::new();
                for i in 0.. {
                    let name = format!("killed {worker}-{i}");
                    let form = [
                        ("csrf_token", t.as_str()),
                        ("component", "quick"),
                        ("name", name.as_str()),
                        ("auth_method", "t"),
                        ("field:token", "x"),
                    ];
                    match browser.post(&url).form(&form).send().await {
                        Ok(res) if res.status() == StatusCode::SEE_OTHER => saved.push(name),
                        // Busy under this load: not saved, and said so.
                        Ok(res) if res.status() == StatusCode::SERVICE_UNAVAILABLE => {}
                        Ok(res) => panic!("{name}: {}", res.status()),
                        // The process is gone.
                        Err(_) => return saved,
                    }
                }
                saved
            })
        })
        .collect();
    actix_web::rt::time::sleep(Duration::from_millis(1500)).await;
    p.child.kill().expect("SIGKILL");
    p.child.wait().unwrap();
    let mut saved = Vec::new();
    for creator in creators {
        saved.extend(creator.await.unwrap());
    }
    assert!(saved.len() > 20, "the load was real: {} saved", saved.len());

    // Started again on the same database (SQLite recovers its log).
    let again = start_with(dir.path(), &harness.database_url, &settings);
    // The session made before the kill still holds: the same session key.
    let page = browser.get(format!("{}/?q=killed", again.base)).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);

    use diesel::prelude::*;
    use plugboard::db::schema::{connection_checks, connection_counts, connections};
    let mut conn = harness.db();
    let stored: std::collections::BTreeMap<String, String> = connections::table
        .select((connections::name, connections::status))
        .load::<(String, String)>(&mut conn)
        .unwrap()
        .into_iter()
        .collect();
    for name in &saved {
        assert_eq!(stored.get(name).map(String::as_str), Some("active"), "{name} was answered as saved");
    }
    let checks: i64 = connection_checks::table.count().get_result(&mut conn).unwrap();
    assert_eq!(checks, stored.len() as i64, "each stored connection has its first check");
    let counted: i64 = connection_counts::table
        .filter(connection_counts::facet.eq("status"))
        .select(connection_counts::connections)
        .load::<i64>(&mut conn)
        .unwrap()
        .iter()
        .sum();
    assert_eq!(counted, stored.len() as i64, "the counters agree with the rows");
}
