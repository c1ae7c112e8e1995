//! A form saves into the environment it was opened in, or nothing is saved:
//! tab A shows Development, tab B switches the session to Production, and
//! tab A's forms are refused (409) with a message naming both, nothing
//! changed and nothing typed lost. Every dialog says where it saves.

mod common;

use common::{Page, TestApp};
use reqwest::StatusCode;

const TOKEN: &str = "ghp_0123456789abcdefghijklmnopqrstuvwxyz";

/// The form of the dialog as tab A has it: its hidden fields and action.
fn form_fields(page: &Page, form: &str) -> Vec<(String, String)> {
    let html = page.html();
    let selector = scraper::Selector::parse(&format!("{form} input[type=hidden]")).unwrap();
    html.select(&selector)
        .filter_map(|e| Some((e.value().attr("name")?.to_owned(), e.value().attr("value")?.to_owned())))
        .collect()
}

fn with(mut fields: Vec<(String, String)>, more: &[(&str, &str)]) -> Vec<(String, String)> {
    fields.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    fields
}

async fn post(app: &TestApp, path: &str, fields: &[(String, String)], htmx: bool) -> Page {
    let mut request = app.client.post(app.url(path)).form(fields);
    if htmx {
        request = request.header("HX-Request", "true");
    }
    TestApp::page(request.send().await.unwrap()).await
}

fn assert_conflict_names_both(page: &Page, opened: &str, now: &str) {
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(page.body.contains(opened) && page.body.contains(now), "names both environments: {}", page.body);
    assert!(page.body.contains("nothing was"), "says nothing happened: {}", page.body);
}

#[actix_web::test]
async fn a_new_connection_form_from_before_a_switch_is_refused_and_keeps_what_was_typed() {
    let app = common::spawn().await;
    let dialog = app.get("/connections/new?component=github").await;
    assert!(dialog.text_of("#saves-to").contains("Saves to Development"), "{}", dialog.body);
    let opened = form_fields(&dialog, "#connection-form");
    assert!(opened.contains(&("environment".into(), "development".into())), "{opened:?}");

    // Another tab switches the session.
    app.switch_environment("production").await;
    let before = app.snapshot();
    let typed =
        with(opened, &[("name", "Typed in Development"), ("field:token", TOKEN), ("new_tags", "kept")]);

    // Without JavaScript: the form comes back with what was typed (not the
    // secret), now saving to the session's environment, and says so.
    let page = post(&app, "/connections", &typed, false).await;
    assert_conflict_names_both(&page, "Development", "Production");
    assert_eq!(page.attr("#field-name", "value").as_deref(), Some("Typed in Development"));
    assert_eq!(page.attr("#field-new_tags", "value").as_deref(), Some("kept"));
    assert_eq!(page.attr("#form-environment", "value").as_deref(), Some("production"));
    assert!(!page.body.contains(TOKEN), "the secret is never sent back");
    assert_eq!(app.snapshot(), before, "nothing saved");

    // With htmx: only the messages, and the form now says (and sends) Production.
    let page = post(&app, "/connections", &typed, true).await;
    assert_conflict_names_both(&page, "Development", "Production");
    assert_eq!(page.header("hx-reswap"), Some("none"), "the typed form stays in the browser");
    assert!(page.body.contains(r#"id="form-environment""#) && page.body.contains("production"));
    assert!(page.text_of("#saves-to").contains("Production"), "{}", page.body);
    assert_eq!(app.snapshot(), before, "nothing saved");

    // Saving again, knowingly, saves to Production.
    let again = with(
        form_fields(&app.get("/connections/new?component=github").await, "#connection-form"),
        &[("name", "Typed in Development"), ("field:token", TOKEN)],
    );
    let page = post(&app, "/connections", &again, false).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let saved = app.snapshot().connections;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0].environment, "production");
}

#[actix_web::test]
async fn row_actions_and_the_edit_form_from_another_environment_change_nothing() {
    let app = common::spawn().await;
    let id = app.create("github", "Dev repo", &[("token", TOKEN), ("new_tags", "ops")]).await;
    let tag = app.snapshot().tags[0].0;
    let edit = app.get(&format!("/connections/{id}/edit")).await;
    assert!(edit.text_of("#saves-to").contains("Development"), "{}", edit.body);
    let edit_fields = form_fields(&edit, "#connection-form");
    let delete = app.get(&format!("/connections/{id}/delete")).await;
    let delete_fields = form_fields(&delete, "form");
    let list = app.get("/").await;
    let env_field = ("environment".to_owned(), "development".to_owned());
    assert!(list.body.contains(r#"name="environment" value="development""#), "row forms carry it");
    assert_eq!(delete_fields.iter().filter(|f| **f == env_field).count(), 1, "{delete_fields:?}");

    app.switch_environment("production").await;
    let before = app.snapshot();
    let token = app.csrf().await;
    let plain = |more: &[(&str, &str)]| {
        let mut fields = vec![("csrf_token".to_owned(), token.clone()), env_field.clone()];
        fields.extend(more.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        fields
    };
    for htmx in [false, true] {
        let page = post(
            &app,
            &format!("/connections/{id}"),
            &with(edit_fields.clone(), &[("name", "Renamed")]),
            htmx,
        )
        .await;
        assert_conflict_names_both(&page, "Development", "Production");
        if !htmx {
            assert_eq!(page.attr("#field-name", "value").as_deref(), Some("Renamed"), "what was typed stays");
        }
        assert_conflict_names_both(
            &post(&app, &format!("/connections/{id}/delete"), &delete_fields, htmx).await,
            "Development",
            "Production",
        );
        assert_conflict_names_both(
            &post(&app, &format!("/connections/{id}/check"), &plain(&[]), htmx).await,
            "Development",
            "Production",
        );
        assert_conflict_names_both(
            &post(&app, &format!("/connections/{id}/tags"), &plain(&[("tag", "new")]), htmx).await,
            "Development",
            "Production",
        );
        assert_conflict_names_both(
            &post(&app, &format!("/connections/{id}/tags/{tag}/delete"), &plain(&[]), htmx).await,
            "Development",
            "Production",
        );
    }
    assert_eq!(app.snapshot(), before, "nothing changed");

    // An environment that does not exist is refused plainly.
    let page = post(
        &app,
        &format!("/connections/{id}/check"),
        &[("csrf_token".to_owned(), token.clone()), ("environment".to_owned(), "moon".to_owned())],
        false,
    )
    .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);

    // Back in Development, the same forms work.
    app.switch_environment("development").await;
    let page = post(&app, &format!("/connections/{id}/delete"), &delete_fields, false).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(app.snapshot().connections.is_empty());
}
