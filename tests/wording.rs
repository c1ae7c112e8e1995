//! What the pages say, word for word, where earlier wording misled (issue
//! 13): each message names what happened, and only what happened.

mod common;

use common::{Page, TestApp};
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

/// The notice an htmx answer carries in its HX-Trigger header.
fn notice(page: &Page) -> String {
    let header = page.header("hx-trigger").unwrap_or_else(|| panic!("no HX-Trigger: {}", page.body));
    let json: serde_json::Value = serde_json::from_str(header).expect("HX-Trigger is JSON");
    json["plugboard-notice"].as_str().unwrap_or_else(|| panic!("no notice in {header}")).to_owned()
}

fn tag_id(app: &TestApp, name: &str) -> i64 {
    app.snapshot().tags.iter().find(|(_, n)| n == name).unwrap_or_else(|| panic!("no tag {name}")).0
}

#[actix_web::test]
async fn adding_a_tag_in_another_case_says_nothing_changed_or_names_the_existing_tag() {
    let app = common::spawn().await;
    let tagged = app.create("github", "Repo bot", &[("token", GITHUB_TOKEN), ("new_tags", "sms")]).await;
    let other = app.create("github", "Other bot", &[("token", GITHUB_TOKEN)]).await;
    let env = [("environment", "development")];

    let again = app.hx_post(&format!("/connections/{tagged}/tags"), &[("tag", "SMS"), env[0]]).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.body);
    assert_eq!(notice(&again), "Already tagged \u{201c}sms\u{201d}; nothing changed.");

    let added = app.hx_post(&format!("/connections/{other}/tags"), &[("tag", "SMS"), env[0]]).await;
    assert_eq!(notice(&added), "Tagged \u{201c}sms\u{201d}.", "the existing tag keeps its spelling");
}

#[actix_web::test]
async fn a_rows_test_names_the_connection_it_checked() {
    let app = common::spawn().await;
    let id = app.create("github", "Release bot", &[("token", GITHUB_TOKEN)]).await;
    let page = app.hx_post(&format!("/connections/{id}/check"), &[("environment", "development")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let said = notice(&page);
    assert!(said.starts_with("Checked \u{201c}Release bot\u{201d}: "), "{said}");
}

#[actix_web::test]
async fn deleting_an_unused_tag_does_not_speak_of_zero_connections() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo bot", &[("token", GITHUB_TOKEN), ("new_tags", "team-a")]).await;
    let tag = tag_id(&app, "team-a");
    let removed =
        app.hx_post(&format!("/connections/{id}/tags/{tag}/delete"), &[("environment", "development")]).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    let page = app.hx_post(&format!("/tags/{tag}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(notice(&page), "Deleted the tag \u{201c}team-a\u{201d}; no connection had it.");

    let used = app.create("github", "Other", &[("token", GITHUB_TOKEN), ("new_tags", "team-b")]).await;
    let _ = used;
    let page = app.hx_post(&format!("/tags/{}/delete", tag_id(&app, "team-b")), &[]).await;
    assert_eq!(notice(&page), "Deleted the tag \u{201c}team-b\u{201d} from 1 connection.");
}

#[actix_web::test]
async fn an_error_in_the_dialog_offers_close_and_a_page_offers_the_way_back() {
    let app = common::spawn().await;
    app.create("github", "A", &[("token", GITHUB_TOKEN), ("new_tags", "ops, team")]).await;
    let ops = tag_id(&app, "ops");
    // Renaming onto another tag's name is refused: a conflict dialog.
    let dialog = app.hx_post(&format!("/tags/{ops}/rename"), &[("name", "Team")]).await;
    assert_eq!(dialog.status, StatusCode::CONFLICT, "{}", dialog.body);
    assert_eq!(dialog.text_of(".error-panel .actions"), "Close");
    assert_eq!(dialog.attr(".error-panel .actions a", "data-close-dialog").as_deref(), Some(""));

    let page = app.get("/connections/999999/edit").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert_eq!(page.text_of(".error-panel .actions"), "Back to connections");
    assert_eq!(
        page.text_of(".error-panel p:not(.actions)"),
        "There is no such connection in this environment. It may have been deleted, or it is in another \
         environment: on the connections list, choose that environment with the switch at the top."
    );
}

#[actix_web::test]
async fn a_format_error_gives_an_example_never_a_regular_expression() {
    let app = common::spawn().await;
    let page = app
        .post(
            "/connections",
            &[
                ("component", "aws_s3"),
                ("name", "Buckets"),
                ("auth_method", "access_keys"),
                ("field:access_key_id", "AKIA0123456789ABCDEF"),
                ("field:secret_access_key", "too short"),
                ("field:region", "useast"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert_eq!(
        page.text_of("#error-region"),
        "Region does not have the expected format: expected something like us-east-1."
    );
    assert_eq!(
        page.text_of("#error-secret_access_key"),
        "Secret access key does not have the expected format. Copy it again from the service, whole, \
         with nothing added or cut off."
    );
    assert!(!page.body.contains("expected the pattern"), "a pattern is shown: {}", page.body);
}
