//! Every account operation writes its change and its audit row in one
//! transaction: when the audit row cannot be written, the change is not
//! made either. The audit insert is made to fail for real, by a trigger in
//! the database.

mod common;

use common::{ADMIN_EMAIL, PASSWORD, TestApp};
use diesel::RunQueryDsl;
use plugboard::accounts::Role;
use reqwest::StatusCode;

const NEW_PASSWORD: &str = "a brand new password of mine";

/// From now on, every insert into the audit trail fails.
fn break_the_audit_trail(app: &TestApp) {
    let mut conn = app.db();
    if app.is_postgres() {
        diesel::sql_query(
            "CREATE FUNCTION refuse_audit() RETURNS trigger LANGUAGE plpgsql AS \
             $$ BEGIN RAISE EXCEPTION 'audit trail unavailable'; END $$",
        )
        .execute(&mut conn)
        .expect("trigger function");
        diesel::sql_query(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             FOR EACH ROW EXECUTE FUNCTION refuse_audit()",
        )
        .execute(&mut conn)
        .expect("trigger");
    } else {
        diesel::sql_query(
            "CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_events \
             BEGIN SELECT RAISE(ABORT, 'audit trail unavailable'); END",
        )
        .execute(&mut conn)
        .expect("trigger");
    }
}

fn assert_refused(page: &common::Page, what: &str) {
    assert_eq!(page.status, StatusCode::INTERNAL_SERVER_ERROR, "{what}: {}", page.body);
    assert!(!page.body.contains("audit trail unavailable"), "{what}: the cause reached the page");
}

/// Every account as stored, with its password hash: what a rolled-back
/// operation must leave exactly as it was.
fn accounts(app: &TestApp) -> Vec<(String, String, bool, bool, i32, String)> {
    use diesel::prelude::*;
    use plugboard::db::schema::users;
    users::table
        .order(users::id)
        .select((
            users::email,
            users::role,
            users::disabled,
            users::must_change_password,
            users::session_epoch,
            users::password_hash,
        ))
        .load(&mut app.db())
        .expect("read accounts")
}

#[actix_web::test]
async fn a_failed_audit_insert_rolls_back_every_account_change() {
    let app = common::spawn().await;
    let member = app.client_as("member@plugboard.test", Role::Member).await;
    let member_id = app.user("member@plugboard.test").id.0;
    let before = accounts(&app);
    let audit_before = app.audit_rows().len();
    break_the_audit_trail(&app);

    // A person added on the People page.
    let page = app
        .post(
            "/admin/users",
            &[("email", "new@plugboard.test"), ("name", ""), ("role", "member"), ("password", NEW_PASSWORD)],
        )
        .await;
    assert_refused(&page, "add a person");
    // A role changed, an account disabled and enabled.
    let page = app.post(&format!("/admin/users/{member_id}/role"), &[("role", "viewer")]).await;
    assert_refused(&page, "change a role");
    assert_refused(&app.post(&format!("/admin/users/{member_id}/disable"), &[]).await, "disable");
    assert_refused(&app.post(&format!("/admin/users/{member_id}/enable"), &[]).await, "enable");
    // One's own password.
    let page = app
        .post_as(
            &member,
            "/account/password",
            &[("current_password", PASSWORD), ("password", NEW_PASSWORD), ("password_again", NEW_PASSWORD)],
        )
        .await;
    assert_refused(&page, "change one's password");
    // Signing out: the account's sessions are not ended without the row.
    assert_refused(&app.post_as(&member, "/sign-out", &[]).await, "sign out");
    // Signing in: no session without the row.
    let browser = common::new_client();
    assert_refused(&app.sign_in_with(&browser, ADMIN_EMAIL, PASSWORD).await, "sign in");
    assert_eq!(app.get_as(&browser, "/").await.status, StatusCode::SEE_OTHER, "not signed in");
    // `plugboard create-admin` runs the People page's operation.
    let mut settings = plugboard::Settings::with_data_dir(app.data_dir.path());
    settings.database_url = Some(app.database_url.clone());
    let created = plugboard::create_admin(&settings, "cli@plugboard.test", "", NEW_PASSWORD);
    assert!(created.is_err(), "{created:?}");

    assert_eq!(accounts(&app), before, "an account change was kept without its audit row");
    assert_eq!(app.audit_rows().len(), audit_before);
    assert_eq!(app.get_as(&member, "/").await.status, StatusCode::OK, "the member's session goes on");
}

#[actix_web::test]
async fn a_failed_audit_insert_rolls_back_first_run_setup() {
    let app = common::spawn().await;
    {
        let mut conn = app.db();
        diesel::sql_query("DELETE FROM audit_events").execute(&mut conn).unwrap();
        diesel::sql_query("DELETE FROM users").execute(&mut conn).unwrap();
    }
    break_the_audit_trail(&app);
    let browser = common::new_client();
    let token = app.csrf_as(&browser).await;
    let response = browser
        .post(app.url("/setup"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", "first@plugboard.test"),
            ("name", ""),
            ("password", NEW_PASSWORD),
            ("password_again", NEW_PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(accounts(&app).is_empty(), "the first admin was kept without its audit row");
}
