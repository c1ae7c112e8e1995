//! Running Plugboard: probes, and start-up errors that say what is wrong.

mod common;

use plugboard::{Application, Settings};
use reqwest::StatusCode;

#[actix_web::test]
async fn health_and_readiness_probes_answer() {
    let app = common::spawn().await;
    let health = app.get("/healthz").await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body, "ok\n");
    let probes = || {
        use diesel::prelude::*;
        use plugboard::db::schema::readiness;
        readiness::table.select(readiness::probes).first::<i64>(&mut app.db()).expect("the readiness row")
    };
    let before = probes();
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body, "ready\n");
    assert_eq!(probes(), before + 1, "the probe proves a write by committing one");
}

fn start_error(database_url: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::with_data_dir(dir.path());
    settings.database_url = Some(database_url.to_owned());
    match Application::build(&settings) {
        Ok(_) => panic!("{database_url} must not start"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_unsupported_database_url_is_refused_by_name() {
    let message = start_error("mysql://root@127.0.0.1:3306/plugboard");
    assert!(message.contains("`mysql://` is not supported"), "{message}");
    assert!(message.contains("postgres://"), "{message}");
}

#[test]
fn a_refused_postgres_connection_names_host_and_port_but_not_the_password() {
    // Port 9 (discard) has nothing listening on these machines.
    let message = start_error("postgres://plugboard:hunter2secret@127.0.0.1:9/plugboard");
    assert!(message.contains("PostgreSQL"), "{message}");
    assert!(message.contains("127.0.0.1"), "{message}");
    assert!(message.contains('9'), "{message}");
    assert!(message.to_lowercase().contains("refused"), "the server's own reason: {message}");
    assert!(!message.contains("hunter2secret"), "{message}");
}

#[test]
fn a_bad_postgres_password_or_database_shows_the_servers_message() {
    if std::env::var("PLUGBOARD_TEST_POSTGRES").is_err() {
        eprintln!("skipped: PLUGBOARD_TEST_POSTGRES is not set");
        return;
    }
    let message = start_error("postgres://postgres:wrongpass@127.0.0.1:5432/plugboard_no_such_database");
    assert!(message.contains("plugboard_no_such_database"), "{message}");
    assert!(message.contains("does not exist"), "{message}");
    assert!(!message.contains("wrongpass"), "{message}");
}

#[test]
fn an_unreadable_sqlite_location_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("file");
    std::fs::write(&blocker, "not a folder").unwrap();
    let message = start_error(&blocker.join("db.sqlite3").display().to_string());
    assert!(message.contains("cannot create the database folder"), "{message}");
}

#[test]
fn create_admin_command_makes_an_account_that_can_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let run = |email: &str, password: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_plugboard"))
            .env_clear()
            .env("PLUGBOARD_DATA_DIR", dir.path())
            .env("PLUGBOARD_ADMIN_PASSWORD", password)
            .args(["create-admin", "--email", email, "--name", "Ops"])
            .output()
            .unwrap()
    };
    let ok = run("Ops@Example.com", "a long enough password");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("created admin ops@example.com"));
    let short = run("two@example.com", "short");
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("at least 12 characters") && !stderr.contains("short\n"), "{stderr}");
    let again = run("ops@example.com", "another long password");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let mut conn =
        plugboard::db::establish(&dir.path().join("plugboard.sqlite3").display().to_string()).unwrap();
    let user =
        plugboard::accounts::authenticate(&mut conn, "OPS@example.com", "a long enough password").unwrap();
    assert_eq!(user.map(|u| u.role), Some(plugboard::accounts::Role::Admin));
}
