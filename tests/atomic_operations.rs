//! Every operation writes its change and its audit row in one transaction:
//! when the audit row cannot be written, the change is not made either.
//! The audit insert is made to fail for real, by a trigger in the database.

mod common;

use diesel::RunQueryDsl;
use reqwest::StatusCode;

/// From now on, every insert into the audit trail fails.
fn break_the_audit_trail(app: &common::TestApp) {
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

#[actix_web::test]
async fn a_failed_audit_insert_rolls_back_every_connection_change() {
    let app = common::spawn().await;
    let id = app.create("github", "Kept as it was", &[("token", "ghp_original")]).await;
    app.post(&format!("/connections/{id}/tags"), &[("tag", "before")]).await;
    let before = app.snapshot();
    let audit_before = app.audit_rows().len();
    break_the_audit_trail(&app);

    let method = app.default_method("github").await;
    let create = app
        .post(
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", &method),
                ("name", "Never saved"),
                ("field:token", "ghp_x"),
            ],
        )
        .await;
    assert_refused(&create, "create");

    let version = app.stored(id).expect("the connection").version.to_string();
    let edit = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("component", "github"),
                ("auth_method", &method),
                ("version", &version),
                ("name", "Renamed"),
                ("field:token", "ghp_changed"),
            ],
        )
        .await;
    assert_refused(&edit, "edit");
    assert_refused(&app.post(&format!("/connections/{id}/tags"), &[("tag", "after")]).await, "tag");
    let tag_id = before.tags.iter().find(|t| t.1 == "before").expect("the tag").0;
    assert_refused(&app.post(&format!("/connections/{id}/tags/{tag_id}/delete"), &[]).await, "untag");
    assert_refused(&app.post(&format!("/connections/{id}/delete"), &[]).await, "delete");
    assert_refused(&app.post(&format!("/tags/{tag_id}/rename"), &[("name", "renamed")]).await, "tag rename");
    assert_refused(&app.post(&format!("/tags/{tag_id}/delete"), &[]).await, "tag delete");

    assert_eq!(app.snapshot(), before, "a change was kept without its audit row");
    assert_eq!(app.audit_rows().len(), audit_before);
}
