//! The pages as people use them without JavaScript (issue 13): notices
//! after a change and the way back to the list they came from, a refused
//! save that says which secrets to enter again, readable times, the
//! connection's id, the finished People and audit pages, the menu.

mod common;

use common::{ADMIN_EMAIL, PASSWORD, Page};
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

fn location(page: &Page) -> String {
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    page.header("location").expect("a Location header").to_owned()
}

#[actix_web::test]
async fn a_plain_form_returns_to_the_filtered_list_with_a_notice() {
    let app = common::spawn().await;
    let id = app.create("github", "Release bot", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    // The list as the person last saw it: filtered by a tag.
    let list = app.get("/?tag=ops").await;
    assert_eq!(list.status, StatusCode::OK);
    let token = list.attr("input[name=csrf_token]", "value").expect("a CSRF token");
    let env = ("environment", "development");

    let tested = app.post_with_token(&token, &format!("/connections/{id}/check"), &[env]).await;
    assert_eq!(location(&tested), "/?tag=ops");
    let back = app.get("/?tag=ops").await;
    let notice = back.text_of("#flash");
    assert!(notice.starts_with("Checked \u{201c}Release bot\u{201d}: NOT ACTIVE"), "{notice}");
    // Shown once.
    assert_eq!(app.get("/?tag=ops").await.count("#flash"), 0);

    let saved = app
        .post_with_token(
            &token,
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", "token"), ("name", "Release bot 2"), ("tag", "ops"), env],
        )
        .await;
    assert_eq!(location(&saved), "/?tag=ops");
    assert!(app.get("/?tag=ops").await.text_of("#flash").starts_with("Saved \u{201c}Release bot 2\u{201d}"));

    let deleted = app.post_with_token(&token, &format!("/connections/{id}/delete"), &[env]).await;
    assert_eq!(location(&deleted), "/?tag=ops");
    assert_eq!(
        app.get("/?tag=ops").await.text_of("#flash"),
        "Deleted \u{201c}Release bot 2\u{201d} from Development."
    );
}

#[actix_web::test]
async fn a_refused_plain_save_says_beside_each_typed_secret_to_enter_it_again() {
    let app = common::spawn().await;
    let page = app
        .post(
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", ""),
                ("field:token", GITHUB_TOKEN),
                ("environment", "development"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert!(!page.body.contains(GITHUB_TOKEN), "a secret was sent back");
    assert_eq!(
        page.text_of("#retype-token"),
        "Enter this again: secrets are never sent back to the page, so what you typed was not kept."
    );
    let described = page.attr("#field-token", "aria-describedby").unwrap_or_default();
    assert!(described.split(' ').any(|id| id == "retype-token"), "{described}");
    // A secret left empty has its own error, and no such line.
    let empty =
        app.post("/connections", &[("component", "github"), ("auth_method", "token"), ("name", "X")]).await;
    assert_eq!(empty.count("#retype-token"), 0);
    assert_eq!(empty.text_of("#error-token"), "Token is required.");
}

#[actix_web::test]
async fn rows_say_when_they_were_created_and_checked_and_the_edit_view_gives_the_id() {
    let app = common::spawn().await;
    let id = app.create("github", "Release bot", &[("token", GITHUB_TOKEN)]).await;
    let list = app.get("/").await;
    let row = format!("#connection-{id}");
    assert_eq!(list.text_of(&format!("{row} .date-cell time")), "created just now");
    assert_eq!(list.text_of(&format!("{row} .checked-at")), "checked just now");
    let exact = list.attr(&format!("{row} .checked-at"), "title").unwrap_or_default();
    assert!(exact.ends_with(" UTC") && exact.len() == "2026-01-01 00:00 UTC".len(), "{exact}");

    let edit = app.get(&format!("/connections/{id}/edit")).await;
    assert_eq!(edit.attr("#connection-id", "value"), Some(id.to_string()));
    assert_eq!(edit.attr("[data-copy='#connection-id']", "type").as_deref(), Some("button"));
}

#[actix_web::test]
async fn the_menu_marks_the_current_page() {
    let app = common::spawn().await;
    for (path, current) in
        [("/", "Connections"), ("/tags", "Tags"), ("/admin/users", "People"), ("/admin/audit", "Audit trail")]
    {
        let page = app.get(path).await;
        assert_eq!(page.texts(".topnav a[aria-current=page]"), vec![current], "{path}");
    }
}

#[actix_web::test]
async fn people_disable_asks_first_and_every_change_says_what_it_did() {
    let app = common::spawn().await;
    let added = app
        .post(
            "/admin/users",
            &[("email", "ada@plugboard.test"), ("name", "Ada"), ("role", "member"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(location(&added), "/admin/users");
    let people = app.get("/admin/users").await;
    assert_eq!(
        people.text_of("#flash"),
        "Added ada@plugboard.test as Member. Give them the initial password in person or another safe way; \
         they choose their own when they first sign in."
    );
    let id = app.user("ada@plugboard.test").id.0;
    // Disable is a link to a question, not a button that acts at once.
    assert_eq!(people.attr(&format!("#disable-{id}"), "href"), Some(format!("/admin/users/{id}/disable")));
    let asked = app.get(&format!("/admin/users/{id}/disable")).await;
    assert_eq!(asked.status, StatusCode::OK);
    assert_eq!(asked.text_of("#dialog-title"), "Disable ada@plugboard.test?");
    assert!(!app.user("ada@plugboard.test").disabled, "asking changed something");
    let done = app.post(&format!("/admin/users/{id}/disable"), &[]).await;
    assert_eq!(location(&done), "/admin/users");
    assert!(app.user("ada@plugboard.test").disabled);
    assert_eq!(
        app.get("/admin/users").await.text_of("#flash"),
        "Disabled ada@plugboard.test: they are signed out and cannot sign in until enabled."
    );
}

#[actix_web::test]
async fn an_admin_resets_a_password_to_a_new_initial_one_that_must_be_changed() {
    let app = common::spawn().await;
    let ada = common::new_client();
    app.add_user("ada@plugboard.test", plugboard::accounts::Role::Member);
    app.sign_in(&ada, "ada@plugboard.test").await;
    let id = app.user("ada@plugboard.test").id.0;

    let asked = app.get(&format!("/admin/users/{id}/reset-password")).await;
    assert_eq!(asked.text_of("#dialog-title"), "Reset the password of ada@plugboard.test?");
    let page = app.post(&format!("/admin/users/{id}/reset-password"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let password = page.attr("#new-initial-password", "value").expect("the new password");
    assert!(password.len() >= 20, "{password}");

    // Ada's session ended; her old password no longer works.
    assert_eq!(app.get_as(&ada, "/").await.status, StatusCode::SEE_OTHER);
    let user = app.user("ada@plugboard.test");
    assert!(user.must_change_password);
    let refused = signs_in(&app, "ada@plugboard.test", PASSWORD).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "the old password still works");
    let fresh = common::new_client();
    let signed = signs_in_as(&app, &fresh, "ada@plugboard.test", &password).await;
    assert_eq!(location(&signed), "/account/password", "she must choose her own first");
    assert_eq!(location(&app.get_as(&fresh, "/").await), "/account/password");

    // The audit trail says so in words, and holds no password.
    let audit = app.get("/admin/audit?action=user_password_reset").await;
    assert_eq!(
        audit.text_of(".audit-sentence"),
        format!("{ADMIN_EMAIL} reset the password of ada@plugboard.test")
    );
    assert!(app.audit_rows().iter().all(|r| !r.details.contains(&password)));
}

async fn signs_in(app: &common::TestApp, email: &str, password: &str) -> Page {
    signs_in_as(app, &common::new_client(), email, password).await
}

async fn signs_in_as(app: &common::TestApp, client: &reqwest::Client, email: &str, password: &str) -> Page {
    let page = app.get_as(client, "/sign-in").await;
    let token = page.attr("input[name=csrf_token]", "value").expect("a CSRF token");
    let response = client
        .post(app.url("/sign-in"))
        .form(&[("csrf_token", token.as_str()), ("email", email), ("password", password)])
        .send()
        .await
        .expect("sign in");
    common::TestApp::page(response).await
}

#[actix_web::test]
async fn the_audit_trail_says_what_an_edit_changed() {
    let app = common::spawn().await;
    let id = app.create("stripe", "Stripe billing", &[("token", "sk_test_abc123")]).await;
    let method = app.default_method("stripe").await;
    let saved = app
        .post(
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", &method), ("name", "Stripe invoices")],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.body);
    let audit = app.get("/admin/audit?action=connection_edit").await;
    assert_eq!(
        audit.text_of(".audit-sentence"),
        format!("{ADMIN_EMAIL} edited \u{201c}Stripe invoices\u{201d}: name")
    );
}

#[actix_web::test]
async fn the_sign_in_page_says_when_the_session_ended() {
    let app = common::spawn().await;
    let visitor = common::new_client();
    let page = app.get_as(&visitor, "/sign-in?ended=1").await;
    assert_eq!(
        page.text_of("#session-ended"),
        "Your session has ended: you signed out in another tab or window, or an admin ended it. Sign in \
         again to carry on."
    );
    assert_eq!(app.get_as(&visitor, "/sign-in").await.count("#session-ended"), 0);
}
