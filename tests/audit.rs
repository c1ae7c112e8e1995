//! The audit trail: every action leaves a row saying who, when, in which
//! environment and what changed (by field name, never a value); admins read
//! and filter it at /admin/audit; rows are never changed or removed.

mod common;

use std::time::Duration;

use chrono::{NaiveDateTime, TimeDelta, Utc};
use common::{ADMIN_EMAIL, PASSWORD, Page, TestApp};
use plugboard::accounts::Role;
use plugboard::audit::Entry;
use reqwest::StatusCode;
use serde_json::{Value, json};

const TOKEN_ONE: &str = "ghp_AUDITSECRETONE111";
const TOKEN_TWO: &str = "ghp_AUDITSECRETTWO222";
const CLIENT_SECRET: &str = "cs-AUDITSECRET333";
const HTTP_TOKEN: &str = "tok-AUDITSECRET444";
const HTTP_TOKEN_TWO: &str = "tok-AUDITSECRET555";
const WRONG_PASSWORD: &str = "wrong password AUDITSECRET666";
const INITIAL_PASSWORD: &str = "initial password AUDITSECRET777";
const NEW_PASSWORD: &str = "new password AUDITSECRET888";

/// Every secret value and password the tests type.
const SECRETS: [&str; 9] = [
    TOKEN_ONE,
    TOKEN_TWO,
    CLIENT_SECRET,
    HTTP_TOKEN,
    HTTP_TOKEN_TWO,
    WRONG_PASSWORD,
    INITIAL_PASSWORD,
    NEW_PASSWORD,
    PASSWORD,
];

// ---- helpers ----

fn rows(app: &TestApp, action: &str) -> Vec<Entry> {
    app.audit_rows().into_iter().filter(|r| r.action == action).collect()
}

/// The only row of `action`.
fn only(app: &TestApp, action: &str) -> Entry {
    let found = rows(app, action);
    assert_eq!(found.len(), 1, "one {action} row: {found:#?}");
    found.into_iter().next().unwrap()
}

fn details(entry: &Entry) -> Value {
    serde_json::from_str(&entry.details)
        .unwrap_or_else(|e| panic!("details are JSON ({e}): {}", entry.details))
}

/// The `fields` list of a row's details, as strings.
fn fields(entry: &Entry) -> Vec<String> {
    details(entry)["fields"]
        .as_array()
        .unwrap_or_else(|| panic!("a fields list: {}", entry.details))
        .iter()
        .map(|f| f.as_str().unwrap().to_owned())
        .collect()
}

/// Asserts who did it, in which environment, to what, and that it is recent.
fn assert_row(entry: &Entry, actor: &str, actor_id: Option<i64>, environment: Option<&str>, subject: &str) {
    assert_eq!(entry.actor, actor, "{entry:#?}");
    assert_eq!(entry.actor_id, actor_id, "{entry:#?}");
    assert_eq!(entry.environment.as_deref(), environment, "{entry:#?}");
    assert_eq!(entry.subject, subject, "{entry:#?}");
    assert_recent(entry.at);
}

fn assert_recent(at: NaiveDateTime) {
    let now = Utc::now().naive_utc();
    assert!(
        at <= now + TimeDelta::seconds(5) && at >= now - TimeDelta::minutes(5),
        "{at} is not now ({now})"
    );
}

fn assert_no_secret_in_rows(app: &TestApp) {
    let rows = app.audit_rows();
    assert!(!rows.is_empty());
    for row in &rows {
        let columns = [
            row.id.to_string(),
            row.at.to_string(),
            format!("{:?}", row.actor_id),
            row.actor.clone(),
            row.action.clone(),
            format!("{:?}", row.environment),
            format!("{:?}", row.connection_id),
            row.subject.clone(),
            row.details.clone(),
        ];
        for column in &columns {
            for secret in SECRETS {
                assert!(!column.contains(secret), "the audit row {row:#?} holds the secret {secret:?}");
            }
        }
    }
}

fn admin_id(app: &TestApp) -> i64 {
    app.user(ADMIN_EMAIL).id.0
}

async fn edit(app: &TestApp, id: i64, fields: &[(&str, &str)]) -> Page {
    let version = app.stored(id).unwrap().version.to_string();
    let mut form = vec![("version", version.as_str())];
    form.extend_from_slice(fields);
    let page = app.post(&format!("/connections/{id}"), &form).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "edit: {}", page.body);
    page
}

/// An HTTP connection with settings and a secret token.
async fn http_connection(app: &TestApp, name: &str) -> i64 {
    app.create(
        "http",
        name,
        &[("base_url", "https://api.internal.example"), ("test_path", "/me"), ("token", HTTP_TOKEN)],
    )
    .await
}

/// The rows shown on an audit page: (who, action, environment, what, the
/// sentence saying what happened). Who, action and what are read from the
/// row's data attributes and the connection link.
fn shown(page: &Page) -> Vec<(String, String, String, String, String)> {
    let html = page.html();
    let row = scraper::Selector::parse("tr[data-action]").unwrap();
    let cell = scraper::Selector::parse("td").unwrap();
    html.select(&row)
        .map(|tr| {
            let cells: Vec<String> = tr
                .select(&cell)
                .map(|td| td.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            let attr = |name: &str| tr.value().attr(name).unwrap_or_default().to_owned();
            let subject = attr("data-subject");
            let what = if cells[3].is_empty() { subject } else { format!("{subject} {}", cells[3]) };
            (attr("data-actor"), attr("data-action"), cells[2].clone(), what, cells[1].clone())
        })
        .collect()
}

async fn audit_page(app: &TestApp, query: &str) -> Page {
    let page = app.get(&format!("/admin/audit{query}")).await;
    assert_eq!(page.status, StatusCode::OK, "{query}: {}", page.body);
    page
}

// ---- one row per action ----

#[actix_web::test]
async fn signing_in_failing_to_and_signing_out_are_recorded() {
    let app = common::spawn().await;
    let admin = admin_id(&app);
    // The harness signed the admin in.
    assert_row(&only(&app, "sign_in"), ADMIN_EMAIL, Some(admin), None, ADMIN_EMAIL);

    let browser = common::new_client();
    let page = app.sign_in_with(&browser, "Admin@plugboard.test", WRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let page = app.sign_in_with(&browser, "ghost@plugboard.test", WRONG_PASSWORD).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    let failed = rows(&app, "sign_in_failed");
    assert_eq!(failed.len(), 2, "{failed:#?}");
    assert_row(&failed[0], "(not signed in) admin@plugboard.test", None, None, ADMIN_EMAIL);
    assert_row(&failed[1], "(not signed in) ghost@plugboard.test", None, None, "ghost@plugboard.test");

    let page = app.post("/sign-out", &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_row(&only(&app, "sign_out"), ADMIN_EMAIL, Some(admin), None, ADMIN_EMAIL);
    // Signing out when already out records nothing more.
    let token = app.csrf_as(&app.client).await;
    app.post_with_token(&token, "/sign-out", &[]).await;
    assert_eq!(rows(&app, "sign_out").len(), 1);
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn setup_is_recorded_as_the_first_admin() {
    let app = common::spawn().await;
    {
        use diesel::RunQueryDsl;
        let mut conn = app.db();
        diesel::sql_query("DELETE FROM audit_events").execute(&mut conn).unwrap();
        diesel::sql_query("DELETE FROM users").execute(&mut conn).unwrap();
    }
    let browser = common::new_client();
    let token = app.csrf_as(&browser).await;
    let response = browser
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "first@plugboard.test"),
            ("name", "Ada Lovelace"),
            ("password", NEW_PASSWORD),
            ("password_again", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let first = app.user("first@plugboard.test");
    let rows = app.audit_rows();
    assert_eq!(rows.iter().map(|r| r.action.as_str()).collect::<Vec<_>>(), vec!["setup"]);
    assert_row(
        &rows[0],
        "Ada Lovelace <first@plugboard.test>",
        Some(first.id.0),
        None,
        "first@plugboard.test",
    );
    assert_eq!(details(&rows[0]), json!({ "role": "admin" }));
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn a_password_change_is_recorded_without_the_password() {
    let app = common::spawn().await;
    let form = |current: &'static str| {
        [("current_password", current), ("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)]
    };
    let page = app.post("/account/password", &form(WRONG_PASSWORD)).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(rows(&app, "password_change").is_empty(), "a refused change is not a change");
    let page = app.post("/account/password", &form(PASSWORD)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let row = only(&app, "password_change");
    assert_row(&row, ADMIN_EMAIL, Some(admin_id(&app)), None, ADMIN_EMAIL);
    assert_eq!(fields(&row), vec!["password"]);
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn creating_a_connection_lists_its_fields_by_name() {
    let app = common::spawn().await;
    let id = app
        .create(
            "slack",
            "Audited Slack",
            &[
                ("auth_method", "oauth2"),
                ("client_id", "cid-audited"),
                ("client_secret", CLIENT_SECRET),
                ("new_tags", "ops, Billing"),
            ],
        )
        .await;
    let row = only(&app, "connection_create");
    assert_row(&row, ADMIN_EMAIL, Some(admin_id(&app)), Some("development"), "Audited Slack");
    assert_eq!(row.connection_id, Some(id));
    let details = details(&row);
    assert_eq!(details["component"], "slack");
    assert_eq!(details["auth_method"], "oauth2");
    let mut names = fields(&row);
    names.sort();
    assert_eq!(names, vec!["client_id", "client_secret"]);
    let mut tags: Vec<&str> =
        details["tags"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    tags.sort();
    assert_eq!(tags, vec!["Billing", "ops"]);
    assert!(!row.details.contains("cid-audited"), "values are not recorded, even non-secret ones");

    // In another environment, by a member.
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    app.post_as(&member, "/environment", &[("environment", "staging")]).await;
    let page = app
        .post_as(
            &member,
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Staging Repo"),
                ("field:token", TOKEN_ONE),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let created = rows(&app, "connection_create");
    assert_eq!(created.len(), 2);
    let member_id = app.user("member@plugboard.test").id.0;
    assert_row(&created[1], "member@plugboard.test", Some(member_id), Some("staging"), "Staging Repo");
    assert_eq!(fields(&created[1]), vec!["token"]);
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn an_edit_lists_only_the_changed_field_names() {
    let app = common::spawn().await;
    let id = http_connection(&app, "Internal API").await;

    // Only a setting changed; the blank secret is kept.
    edit(
        &app,
        id,
        &[
            ("auth_method", "bearer"),
            ("name", "Internal API"),
            ("field:base_url", "https://api.internal.example"),
            ("field:test_path", "/health"),
            ("field:token", ""),
        ],
    )
    .await;
    let edits = rows(&app, "connection_edit");
    assert_eq!(edits.len(), 1, "{edits:#?}");
    assert_row(&edits[0], ADMIN_EMAIL, Some(admin_id(&app)), Some("development"), "Internal API");
    assert_eq!(edits[0].connection_id, Some(id));
    assert_eq!(details(&edits[0]), json!({ "fields": ["test_path"], "tags_added": [], "tags_removed": [] }));

    // The name and the secret changed, and a tag was added, by a member.
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let page = app
        .post_as(
            &member,
            &format!("/connections/{id}"),
            &[
                ("version", "2"),
                ("auth_method", "bearer"),
                ("name", "Internal API v2"),
                ("field:base_url", "https://api.internal.example"),
                ("field:test_path", "/health"),
                ("field:token", HTTP_TOKEN_TWO),
                ("new_tags", "billing"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let edits = rows(&app, "connection_edit");
    assert_eq!(edits.len(), 2);
    let member_id = app.user("member@plugboard.test").id.0;
    assert_row(&edits[1], "member@plugboard.test", Some(member_id), Some("development"), "Internal API v2");
    let mut names = fields(&edits[1]);
    names.sort();
    assert_eq!(names, vec!["name", "token"]);
    assert_eq!(details(&edits[1])["tags_added"], json!(["billing"]));
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn checks_are_recorded_on_save_and_when_asked() {
    let app = common::spawn().await;
    let id = app.create("github", "Checked Repo", &[("token", TOKEN_ONE)]).await;
    let admin = admin_id(&app);
    let checks = rows(&app, "connection_check");
    assert_eq!(checks.len(), 1, "a check on save: {checks:#?}");
    assert_row(&checks[0], ADMIN_EMAIL, Some(admin), Some("development"), "Checked Repo");
    assert_eq!(checks[0].connection_id, Some(id));
    assert_eq!(details(&checks[0])["trigger"], "save");
    assert!(details(&checks[0])["status"].as_str().is_some_and(|s| !s.is_empty()));

    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let page = app.post_as(&member, &format!("/connections/{id}/check"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let checks = rows(&app, "connection_check");
    assert_eq!(checks.len(), 2);
    let member_id = app.user("member@plugboard.test").id.0;
    assert_row(&checks[1], "member@plugboard.test", Some(member_id), Some("development"), "Checked Repo");
    assert_eq!(details(&checks[1])["trigger"], "manual");
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn scheduled_checks_are_recorded_as_plugboard() {
    let app = common::spawn_with(|s| s.check_interval = Duration::from_millis(300)).await;
    let id = app.create("github", "Watched Repo", &[("token", TOKEN_ONE)]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let row = loop {
        let found = rows(&app, "connection_check").into_iter().find(|r| details(r)["trigger"] == "schedule");
        if let Some(row) = found {
            break row;
        }
        assert!(std::time::Instant::now() < deadline, "no scheduled check recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_row(&row, "Plugboard (schedule)", None, Some("development"), "Watched Repo");
    assert_eq!(row.connection_id, Some(id));
    assert_no_secret_in_rows(&app);
}

#[actix_web::test]
async fn tagging_and_untagging_are_recorded() {
    let app = common::spawn().await;
    let id = app.create("github", "Tagged Repo", &[("token", TOKEN_ONE)]).await;
    let page = app.post(&format!("/connections/{id}/tags"), &[("tag", "Billing")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let row = only(&app, "connection_tag");
    assert_row(&row, ADMIN_EMAIL, Some(admin_id(&app)), Some("development"), "Tagged Repo");
    assert_eq!(row.connection_id, Some(id));
    assert_eq!(details(&row), json!({ "tag": "Billing" }));

    let tag = app.snapshot().tags[0].0;
    let page = app.post(&format!("/connections/{id}/tags/{tag}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let row = only(&app, "connection_untag");
    assert_row(&row, ADMIN_EMAIL, Some(admin_id(&app)), Some("development"), "Tagged Repo");
    assert_eq!(details(&row), json!({ "tag": "Billing" }));
}

#[actix_web::test]
async fn deleting_a_connection_is_recorded_and_its_earlier_rows_remain() {
    let app = common::spawn().await;
    app.switch_environment("production").await;
    let id = app.create("github", "Doomed Repo", &[("token", TOKEN_ONE), ("new_tags", "ops")]).await;
    let before: Vec<Entry> = app.audit_rows().into_iter().filter(|r| r.connection_id == Some(id)).collect();
    assert!(before.len() >= 2, "created and checked: {before:#?}");

    let page = app.post(&format!("/connections/{id}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(app.stored(id).is_none());
    let row = only(&app, "connection_delete");
    assert_row(&row, ADMIN_EMAIL, Some(admin_id(&app)), Some("production"), "Doomed Repo");
    assert_eq!(row.connection_id, Some(id));
    assert_eq!(details(&row)["component"], "github");

    let after: Vec<String> = app
        .audit_rows()
        .into_iter()
        .filter(|r| r.connection_id == Some(id))
        .map(|r| format!("{r:?}"))
        .collect();
    let mut expected: Vec<String> = before.iter().map(|r| format!("{r:?}")).collect();
    expected.push(format!("{row:?}"));
    assert_eq!(after, expected, "the deleted connection's history is kept as it was");
    // And the audit page still shows it.
    let page = audit_page(&app, &format!("?connection={id}")).await;
    assert_eq!(shown(&page).len(), expected.len());
    assert_eq!(shown(&page)[0].1, "connection_delete");
}

#[actix_web::test]
async fn people_changes_are_recorded_and_refused_ones_are_not() {
    let app = common::spawn().await;
    let admin = admin_id(&app);
    let page = app
        .post(
            "/admin/users",
            &[
                ("email", "grace@plugboard.test"),
                ("name", "Grace"),
                ("role", "member"),
                ("password", INITIAL_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let row = only(&app, "user_create");
    assert_row(&row, ADMIN_EMAIL, Some(admin), None, "grace@plugboard.test");
    assert_eq!(details(&row), json!({ "role": "member" }));
    // Refused: a taken address.
    let page = app
        .post(
            "/admin/users",
            &[
                ("email", "Grace@plugboard.test"),
                ("name", ""),
                ("role", "admin"),
                ("password", INITIAL_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(rows(&app, "user_create").len(), 1);

    let grace = app.user("grace@plugboard.test").id.0;
    let page = app.post(&format!("/admin/users/{grace}/role"), &[("role", "viewer")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let row = only(&app, "user_role");
    assert_row(&row, ADMIN_EMAIL, Some(admin), None, "grace@plugboard.test");
    assert_eq!(details(&row), json!({ "from": "member", "to": "viewer" }));

    assert_eq!(app.post(&format!("/admin/users/{grace}/disable"), &[]).await.status, StatusCode::SEE_OTHER);
    assert_eq!(app.post(&format!("/admin/users/{grace}/enable"), &[]).await.status, StatusCode::SEE_OTHER);
    let toggles = rows(&app, "user_disable");
    assert_eq!(toggles.len(), 2);
    assert_row(&toggles[0], ADMIN_EMAIL, Some(admin), None, "grace@plugboard.test");
    assert_eq!(details(&toggles[0]), json!({ "disabled": true }));
    assert_eq!(details(&toggles[1]), json!({ "disabled": false }));

    // Refused by the last-admin rule: nothing recorded.
    assert_eq!(
        app.post(&format!("/admin/users/{admin}/role"), &[("role", "member")]).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(app.post(&format!("/admin/users/{admin}/disable"), &[]).await.status, StatusCode::CONFLICT);
    assert_eq!(rows(&app, "user_role").len(), 1);
    assert_eq!(rows(&app, "user_disable").len(), 2);

    // Grace signs in, changes her password, signs out.
    let browser = common::new_client();
    let page = app.sign_in_with(&browser, "grace@plugboard.test", INITIAL_PASSWORD).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = app
        .post_as(
            &browser,
            "/account/password",
            &[
                ("current_password", INITIAL_PASSWORD),
                ("password", NEW_PASSWORD),
                ("password_again", NEW_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    app.post_as(&browser, "/sign-out", &[]).await;
    let theirs: Vec<(String, String)> = app
        .audit_rows()
        .into_iter()
        .filter(|r| r.actor_id == Some(grace))
        .map(|r| (r.action, r.actor))
        .collect();
    let grace_display = "Grace <grace@plugboard.test>".to_owned();
    assert_eq!(
        theirs,
        vec![
            ("sign_in".to_owned(), grace_display.clone()),
            ("password_change".to_owned(), grace_display.clone()),
            ("sign_out".to_owned(), grace_display),
        ]
    );
    assert_no_secret_in_rows(&app);
}

// ---- no secrets ----

#[actix_web::test]
async fn no_audit_row_holds_a_secret_value_or_a_password() {
    let app = common::spawn().await;
    // Connections with secrets: created, edited with new secrets, tested,
    // tagged, deleted, in two environments.
    let github = app.create("github", "Secret Repo", &[("token", TOKEN_ONE), ("new_tags", "ops")]).await;
    edit(&app, github, &[("auth_method", "token"), ("name", "Secret Repo"), ("field:token", TOKEN_TWO)])
        .await;
    let http = http_connection(&app, "Secret API").await;
    edit(
        &app,
        http,
        &[
            ("auth_method", "bearer"),
            ("name", "Secret API"),
            ("field:base_url", "https://api.internal.example"),
            ("field:test_path", "/me"),
            ("field:token", HTTP_TOKEN_TWO),
        ],
    )
    .await;
    app.post(&format!("/connections/{http}/check"), &[]).await;
    app.post(&format!("/connections/{http}/tags"), &[("tag", "billing")]).await;
    app.switch_environment("staging").await;
    app.create(
        "slack",
        "Secret Slack",
        &[("auth_method", "oauth2"), ("client_id", "cid"), ("client_secret", CLIENT_SECRET)],
    )
    .await;
    app.switch_environment("development").await;
    // A refused save with a secret typed records nothing.
    let page = app
        .post(
            "/connections",
            &[("component", "github"), ("auth_method", "token"), ("name", ""), ("field:token", TOKEN_TWO)],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    app.post(&format!("/connections/{github}/delete"), &[]).await;

    // People and passwords: added with an initial password, failed and
    // successful sign-ins, changes, sign-outs.
    app.post(
        "/admin/users",
        &[("email", "p@plugboard.test"), ("name", ""), ("role", "member"), ("password", INITIAL_PASSWORD)],
    )
    .await;
    let browser = common::new_client();
    app.sign_in_with(&browser, "p@plugboard.test", WRONG_PASSWORD).await;
    app.sign_in_with(&browser, "p@plugboard.test", INITIAL_PASSWORD).await;
    app.post_as(
        &browser,
        "/account/password",
        &[
            ("current_password", INITIAL_PASSWORD),
            ("password", NEW_PASSWORD),
            ("password_again", NEW_PASSWORD),
        ],
    )
    .await;
    app.post_as(&browser, "/sign-out", &[]).await;
    app.sign_in_with(&browser, "p@plugboard.test", NEW_PASSWORD).await;
    app.post(
        "/account/password",
        &[("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)],
    )
    .await;

    let actions: std::collections::BTreeSet<String> =
        app.audit_rows().into_iter().map(|r| r.action).collect();
    for action in [
        "sign_in",
        "sign_in_failed",
        "sign_out",
        "password_change",
        "connection_create",
        "connection_edit",
        "connection_delete",
        "connection_check",
        "connection_tag",
        "user_create",
    ] {
        assert!(actions.contains(action), "{action} in {actions:?}");
    }
    assert_no_secret_in_rows(&app);
    // Nor does the page that shows them.
    let page = audit_page(&app, "").await;
    for secret in SECRETS {
        assert!(!page.body.contains(secret), "the audit page shows {secret:?}");
    }
}

// ---- the audit page ----

#[actix_web::test]
async fn the_audit_page_lists_rows_newest_first_with_who_what_and_where() {
    let app = common::spawn().await;
    let id = app.create("github", "Listed Repo", &[("token", TOKEN_ONE)]).await;
    app.post(&format!("/connections/{id}/tags"), &[("tag", "ops")]).await;
    let page = audit_page(&app, "").await;
    assert!(page.text_of("h1").contains("Audit trail"));
    let listed = shown(&page);
    let stored = app.audit_rows();
    assert_eq!(listed.len(), stored.len());
    let actions: Vec<&str> = listed.iter().map(|r| r.1.as_str()).collect();
    let newest_first: Vec<&str> = stored.iter().rev().map(|r| r.action.as_str()).collect();
    assert_eq!(actions, newest_first);
    assert_eq!(actions[..3], ["connection_tag", "connection_check", "connection_create"]);
    let (who, _, environment, what, details) = &listed[0];
    assert_eq!(who, ADMIN_EMAIL);
    assert_eq!(environment, "development");
    assert_eq!(what, &format!("Listed Repo #{id}"));
    // In words, not codes and JSON.
    assert_eq!(details, &format!("{ADMIN_EMAIL} tagged \u{201c}Listed Repo\u{201d} \u{201c}ops\u{201d}"));
    assert_eq!(
        listed[2].4,
        format!("{ADMIN_EMAIL} created \u{201c}Listed Repo\u{201d}"),
        "the creation, in words"
    );
    assert_eq!(page.attr("tr[data-action] a", "href"), Some(format!("/admin/audit?connection={id}")));
    // Times are shown, in UTC.
    let when = page.text_of("tr[data-action] time");
    assert!(when.starts_with(&Utc::now().format("%Y-").to_string()), "{when}");
    // As a fragment for htmx.
    let fragment = app.hx_get("/admin/audit").await;
    assert_eq!(fragment.status, StatusCode::OK);
    assert!(!fragment.body.contains("<html"));
    assert_eq!(shown(&fragment).len(), listed.len());
}

#[actix_web::test]
async fn the_audit_page_escapes_what_people_typed() {
    let app = common::spawn().await;
    app.create("github", "<script>alert(1)</script>", &[("token", TOKEN_ONE)]).await;
    let page = audit_page(&app, "").await;
    assert!(!page.body.contains("<script>alert(1)</script>"));
    assert!(shown(&page).iter().any(|r| r.3.starts_with("<script>alert(1)</script>")));
}

#[actix_web::test]
async fn the_audit_page_filters_by_person_connection_action_and_date() {
    let app = common::spawn().await;
    let admin = admin_id(&app);
    let first = app.create("github", "First Repo", &[("token", TOKEN_ONE)]).await;
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let member_id = app.user("member@plugboard.test").id.0;
    let page = app
        .post_as(
            &member,
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Second Repo"),
                ("field:token", TOKEN_TWO),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let second = app.snapshot().connections.iter().map(|c| c.id).max().unwrap();
    assert_ne!(first, second);
    app.post_as(&member, &format!("/connections/{first}/check"), &[]).await;
    let all = app.audit_rows();

    // By person.
    let page = audit_page(&app, &format!("?person={member_id}")).await;
    let listed = shown(&page);
    assert_eq!(listed.len(), all.iter().filter(|r| r.actor_id == Some(member_id)).count());
    assert!(listed.len() >= 4, "sign in, create, check on save, test: {listed:#?}");
    assert!(listed.iter().all(|r| r.0 == "member@plugboard.test"), "{listed:#?}");
    assert_eq!(page.attr("select[name=person] option[selected]", "value"), Some(member_id.to_string()));
    let page = audit_page(&app, &format!("?person={admin}")).await;
    assert!(shown(&page).iter().all(|r| r.0 == ADMIN_EMAIL));

    // By connection.
    let page = audit_page(&app, &format!("?connection={first}")).await;
    let listed = shown(&page);
    assert_eq!(listed.len(), all.iter().filter(|r| r.connection_id == Some(first)).count());
    assert_eq!(listed.len(), 3, "created, checked on save, tested: {listed:#?}");
    assert!(listed.iter().all(|r| r.3 == format!("First Repo #{first}")), "{listed:#?}");
    assert_eq!(page.attr("input[name=connection]", "value"), Some(first.to_string()));

    // By action.
    let page = audit_page(&app, "?action=connection_create").await;
    let listed = shown(&page);
    assert_eq!(
        listed.iter().map(|r| r.3.as_str()).collect::<Vec<_>>(),
        vec![format!("Second Repo #{second}"), format!("First Repo #{first}")]
    );
    assert_eq!(
        page.attr("select[name=action] option[selected]", "value").as_deref(),
        Some("connection_create")
    );
    // An action that does not exist is refused, not ignored (which would
    // list the whole trail as if it matched); so are other unreadable values.
    for query in ["?action=drop_table", "?person=abc", "?connection=12345678901234567890", "?from=2026-13-45"]
    {
        let page = app.get(&format!("/admin/audit{query}")).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{query}");
        assert!(shown(&page).is_empty(), "{query} lists rows");
        assert!(page.text_of("#audit-filter-error").contains("cannot be used"), "{query}: {}", page.body);
    }
    let page = app.get("/admin/audit?person=abc&to=2026-01-01").await;
    assert_eq!(page.attr("input[name=to]", "value").as_deref(), Some("2026-01-01"), "the typed filter stays");

    // Combined.
    let page = audit_page(&app, &format!("?person={member_id}&action=connection_check")).await;
    let listed = shown(&page);
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert!(listed.iter().all(|r| r.0 == "member@plugboard.test" && r.1 == "connection_check"));
    let page = audit_page(&app, &format!("?person={admin}&connection={second}")).await;
    assert_eq!(page.text_of("tbody"), "Nothing recorded matches.");

    // By date (UTC).
    let today = Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let tomorrow = today.succ_opt().unwrap();
    assert_eq!(shown(&audit_page(&app, &format!("?from={today}")).await).len(), all.len());
    assert_eq!(shown(&audit_page(&app, &format!("?to={today}")).await).len(), all.len());
    assert_eq!(shown(&audit_page(&app, &format!("?from={yesterday}&to={today}")).await).len(), all.len());
    let page = audit_page(&app, &format!("?to={yesterday}")).await;
    assert!(shown(&page).is_empty());
    assert_eq!(page.text_of("tbody"), "Nothing recorded matches.");
    assert_eq!(page.attr("input[name=to]", "value"), Some(yesterday.to_string()));
    assert!(shown(&audit_page(&app, &format!("?from={tomorrow}")).await).is_empty());
    // Blank filters, as the form sends them, filter nothing.
    let page = audit_page(&app, "?person=&action=&connection=&from=&to=").await;
    assert_eq!(shown(&page).len(), all.len());
}

/// Writes `n` rows straight into the trail, as the schedule would.
fn many_rows(app: &TestApp, n: usize) {
    let mut conn = app.db();
    for i in 0..n {
        plugboard::audit::record(
            &mut conn,
            plugboard::audit::Event {
                actor: plugboard::audit::Actor::System,
                action: plugboard::audit::Action::ConnectionCheck,
                environment: Some(plugboard::environment::Environment::Development),
                connection: None,
                subject: &format!("Row {i}"),
                details: json!({ "trigger": "schedule" }),
            },
        )
        .unwrap();
    }
}

#[actix_web::test]
async fn the_audit_page_links_to_older_rows_beyond_the_first_hundred() {
    let app = common::spawn().await;
    many_rows(&app, 150);
    let total = app.audit_rows().len();
    let first = audit_page(&app, "?action=connection_check").await;
    assert_eq!(shown(&first).len(), 100);
    assert_eq!(shown(&first)[0].3, "Row 149");
    // The older rows are reachable from the page, with the filter kept.
    let next = first
        .attr("a[href*='page=2']", "href")
        .unwrap_or_else(|| panic!("no link to the older rows on a full page of 100"));
    assert!(next.contains("action=connection_check"), "{next}");
    let second = audit_page(&app, &next.replace("/admin/audit", "")).await;
    assert_eq!(shown(&second).len(), 50);
    assert_eq!(shown(&second)[49].3, "Row 0");
    assert!(total > 150);
}

#[actix_web::test]
async fn an_out_of_range_page_number_is_not_an_error() {
    let app = common::spawn().await;
    many_rows(&app, 3);
    for page in ["0", "-1", "abc", "2", "999999999999999999"] {
        let listed = app.get(&format!("/admin/audit?page={page}")).await;
        assert_eq!(listed.status, StatusCode::OK, "page={page}: {}", listed.body);
    }
    assert_eq!(shown(&audit_page(&app, "?page=0").await).len(), app.audit_rows().len());
    assert!(shown(&audit_page(&app, "?page=2").await).is_empty());
}

#[actix_web::test]
async fn only_admins_read_the_audit_trail() {
    let app = common::spawn().await;
    for role in [Role::Member, Role::Viewer] {
        let email = format!("{}@plugboard.test", role.as_str());
        let client = app.client_as(&email, role).await;
        let page = app.get_as(&client, "/admin/audit").await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{role:?}");
        assert!(shown(&page).is_empty());
        assert!(!page.body.contains("sign_in"), "{role:?}");
    }
    let anonymous = common::new_client();
    let page = app.get_as(&anonymous, "/admin/audit?action=sign_in").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

// ---- rows are only ever added ----

#[actix_web::test]
async fn audit_rows_are_never_changed_or_removed() {
    let app = common::spawn().await;
    let repo = app.create("github", "Kept Repo", &[("token", TOKEN_ONE), ("new_tags", "ops, billing")]).await;
    let api = http_connection(&app, "Kept API").await;
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let member_id = app.user("member@plugboard.test").id.0;
    let earlier = app.audit_rows();

    // Everything that might tidy up after itself.
    let tags = app.snapshot().tags;
    let ops = tags.iter().find(|(_, n)| n == "ops").unwrap().0;
    let billing = tags.iter().find(|(_, n)| n == "billing").unwrap().0;
    app.post(&format!("/connections/{repo}/tags/{ops}/delete"), &[]).await;
    // (The edit form sends no tags, so this edit also drops "billing".)
    edit(&app, repo, &[("auth_method", "token"), ("name", "Kept Repo renamed"), ("field:token", TOKEN_TWO)])
        .await;
    app.post(&format!("/connections/{repo}/check"), &[]).await;
    let page = app.post(&format!("/tags/{billing}/rename"), &[("name", "finance")]).await;
    assert!(page.status.is_redirection() || page.status.is_success(), "{}", page.body);
    let page = app.post(&format!("/tags/{billing}/delete"), &[]).await;
    assert!(page.status.is_redirection() || page.status.is_success(), "{}", page.body);
    app.post(&format!("/connections/{repo}/delete"), &[]).await;
    app.post(&format!("/connections/{api}/delete"), &[]).await;
    app.post(&format!("/admin/users/{member_id}/role"), &[("role", "viewer")]).await;
    app.post(&format!("/admin/users/{member_id}/disable"), &[]).await;
    assert_eq!(app.get_as(&member, "/").await.status, StatusCode::SEE_OTHER);
    app.post(
        "/account/password",
        &[("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)],
    )
    .await;
    app.post("/sign-out", &[]).await;

    let later = app.audit_rows();
    assert!(later.len() > earlier.len() + 10, "{} then {}", earlier.len(), later.len());
    let kept: Vec<String> = later[..earlier.len()].iter().map(|r| format!("{r:?}")).collect();
    let was: Vec<String> = earlier.iter().map(|r| format!("{r:?}")).collect();
    assert_eq!(kept, was, "earlier rows are exactly as they were");
    assert!(later.windows(2).all(|w| w[0].id < w[1].id && w[0].at <= w[1].at), "in order of time");
    for action in ["tag_rename", "tag_delete", "connection_untag", "user_role", "user_disable", "sign_out"] {
        assert_eq!(rows(&app, action).len(), 1, "{action}");
    }
    assert_eq!(rows(&app, "connection_delete").len(), 2);
    assert_no_secret_in_rows(&app);
}

// ---- who created and changed each connection ----

#[actix_web::test]
async fn each_connection_shows_who_created_it_and_who_changed_it_last() {
    let app = common::spawn().await;
    {
        let mut conn = app.db();
        plugboard::accounts::create(
            &mut conn,
            &plugboard::accounts::NewUser {
                email: "grace@plugboard.test",
                name: "Grace Hopper",
                password: PASSWORD,
                role: Role::Member,
                must_change_password: false,
            },
        )
        .unwrap();
    }
    let grace = common::new_client();
    app.sign_in(&grace, "grace@plugboard.test").await;
    let page = app
        .post_as(
            &grace,
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Grace Repo"),
                ("field:token", TOKEN_ONE),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let id = app.snapshot().connections[0].id;
    let by = |page: &Page| page.texts(&format!("#connection-{id} .by"));

    let list = app.get("/").await;
    assert_eq!(by(&list), vec!["by Grace Hopper <grace@plugboard.test>"]);
    // Testing and tagging are not changes to the connection's credentials.
    app.post(&format!("/connections/{id}/check"), &[]).await;
    assert_eq!(by(&app.get("/").await), vec!["by Grace Hopper <grace@plugboard.test>"]);

    edit(&app, id, &[("auth_method", "token"), ("name", "Grace Repo"), ("field:token", TOKEN_TWO)]).await;
    let list = app.get("/").await;
    assert_eq!(
        by(&list),
        vec!["by Grace Hopper <grace@plugboard.test>".to_owned(), format!("changed by {ADMIN_EMAIL}")]
    );
    // A viewer sees the same.
    let viewer = app.client_as("viewer@plugboard.test", Role::Viewer).await;
    assert_eq!(by(&app.get_as(&viewer, "/").await), by(&list));

    // The last to change it is named, whoever they are.
    let page = app
        .post_as(
            &grace,
            &format!("/connections/{id}"),
            &[("version", "2"), ("auth_method", "token"), ("name", "Grace Repo 2")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(
        by(&app.get("/").await),
        vec!["by Grace Hopper <grace@plugboard.test>", "changed by Grace Hopper <grace@plugboard.test>"]
    );
}
