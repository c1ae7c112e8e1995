//! The tags page: counts per environment, rename, merge and delete.

mod common;

use common::{Page, Snapshot, TestApp};
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_abcdef123456";
const SLACK_TOKEN: &str = "xoxb-1111-2222-abcdef";

/// The rows of the tags table: name, then Development, Staging,
/// Production and total counts.
fn rows(page: &Page) -> Vec<(String, [i64; 4])> {
    let html = page.html();
    let row = scraper::Selector::parse("tr[data-tag]").unwrap();
    let cell = |class: &str| scraper::Selector::parse(class).unwrap();
    let text = |e: scraper::ElementRef, s: &scraper::Selector| {
        e.select(s).next().map(|c| c.text().collect::<String>().trim().to_owned()).unwrap_or_default()
    };
    html.select(&row)
        .map(|r| {
            let n = |class: &str| text(r, &cell(class)).parse::<i64>().expect("a count");
            (
                text(r, &cell(".tag-name")),
                [n(".count-development"), n(".count-staging"), n(".count-production"), n(".count-total")],
            )
        })
        .collect()
}

fn row(name: &str, counts: [i64; 4]) -> (String, [i64; 4]) {
    (name.to_owned(), counts)
}

fn tag_id(app: &TestApp, name: &str) -> i64 {
    app.snapshot().tags.iter().find(|(_, n)| n == name).unwrap_or_else(|| panic!("no tag {name}")).0
}

fn tag_names(snapshot: &Snapshot) -> Vec<String> {
    let mut names: Vec<String> = snapshot.tags.iter().map(|(_, n)| n.clone()).collect();
    names.sort();
    names
}

/// The connections as stored, without their tags: what tag changes must
/// leave alone.
fn connections_without_tags(snapshot: &Snapshot) -> Vec<common::StoredConnection> {
    snapshot.connections.iter().cloned().map(|c| common::StoredConnection { tags: Vec::new(), ..c }).collect()
}

/// The HX-Trigger header as JSON.
fn trigger(page: &Page) -> serde_json::Value {
    let header = page.header("hx-trigger").expect("an HX-Trigger header");
    assert!(header.is_ascii());
    serde_json::from_str(header).expect("HX-Trigger is JSON")
}

/// Development: Ops GitHub (ops, Billing), Team Slack (ops);
/// Staging: Stage Bot (ops); Production: Prod Slack (Billing, ci).
async fn seed(app: &TestApp) -> [i64; 4] {
    let a =
        app.create("github", "Ops GitHub", &[("token", GITHUB_TOKEN), ("new_tags", "ops, Billing")]).await;
    let b = app.create("slack", "Team Slack", &[("token", SLACK_TOKEN), ("new_tags", "ops")]).await;
    app.switch_environment("staging").await;
    let c = app.create("github", "Stage Bot", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    app.switch_environment("production").await;
    let d = app.create("slack", "Prod Slack", &[("token", SLACK_TOKEN), ("new_tags", "Billing, ci")]).await;
    app.switch_environment("development").await;
    [a, b, c, d]
}

// ---- the list ----

#[actix_web::test]
async fn tags_page_lists_every_tag_with_counts_per_environment() {
    let app = common::spawn().await;
    let [a, ..] = seed(&app).await;
    // A tag no connection carries any more is listed too, with zeros.
    let page = app.post(&format!("/connections/{a}/tags"), &[("tag", "orphan")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let orphan = tag_id(&app, "orphan");
    let page = app.post(&format!("/connections/{a}/tags/{orphan}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);

    let page = app.get("/tags").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.to_lowercase().starts_with("<!doctype html>"));
    assert_eq!(page.count("header.topbar"), 1);
    assert_eq!(page.text_of("h1#tags-title"), "Tags");
    // By name, ignoring case.
    assert_eq!(
        rows(&page),
        vec![
            row("Billing", [1, 0, 1, 2]),
            row("ci", [0, 0, 1, 1]),
            row("ops", [2, 1, 0, 3]),
            row("orphan", [0, 0, 0, 0]),
        ]
    );
    assert_eq!(
        page.texts("table.tag-usage thead th")[1..5],
        ["Development", "Staging", "Production", "Total"]
    );
    // Each row offers its actions; every form that changes something
    // carries the CSRF token.
    let id = tag_id(&app, "ops");
    let row_sel = format!("tr[data-tag='{id}']");
    assert_eq!(page.attr(&format!("{row_sel} form"), "action"), Some(format!("/tags/{id}/rename")));
    assert_eq!(page.attr(&format!("{row_sel} form input[name=name]"), "value").as_deref(), Some("ops"));
    assert_eq!(page.attr(&format!("{row_sel} a.merge-link"), "href"), Some(format!("/tags/{id}/merge")));
    assert_eq!(page.attr(&format!("{row_sel} a.danger-link"), "href"), Some(format!("/tags/{id}/delete")));
    let forms = page.count("#tag-admin form[method=post]");
    assert_eq!(forms, 4);
    assert_eq!(page.count("#tag-admin form[method=post] input[name=csrf_token]"), forms);
    // The list refreshes itself when a change is made through htmx.
    assert_eq!(page.attr("#tag-admin", "hx-trigger").as_deref(), Some("tags-changed from:body"));
    assert_eq!(page.attr("#tag-admin", "hx-get").as_deref(), Some("/tags"));
    // The page header links here.
    assert_eq!(page.count("header.topbar a[href='/tags']"), 1);
}

#[actix_web::test]
async fn tags_page_says_when_there_are_no_tags() {
    let app = common::spawn().await;
    let page = app.get("/tags").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text_of(".empty-state").contains("No tags yet"), "{}", page.body);
    assert_eq!(page.count("tr[data-tag]"), 0);
}

#[actix_web::test]
async fn htmx_gets_the_tags_list_alone() {
    let app = common::spawn().await;
    seed(&app).await;
    let full = app.get("/tags").await;
    let fragment = app.hx_get("/tags").await;
    assert_eq!(fragment.status, StatusCode::OK);
    let body = fragment.body.trim_start();
    assert!(body.starts_with("<section id=\"tag-admin\""), "{}", &body[..body.len().min(200)]);
    assert!(!fragment.body.contains("<html"));
    assert!(!fragment.body.contains("topbar"));
    assert_eq!(rows(&fragment), rows(&full));
    assert!(fragment.header("vary").unwrap_or_default().to_lowercase().contains("hx-request"));
}

// ---- rename ----

#[actix_web::test]
async fn rename_changes_the_name_on_every_connection() {
    let app = common::spawn().await;
    let [a, b, c, _] = seed(&app).await;
    let before = app.snapshot();
    let id = tag_id(&app, "ops");
    let page = app.post(&format!("/tags/{id}/rename"), &[("name", "  Operations   team ")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/tags"));

    let after = app.snapshot();
    assert_eq!(tag_id(&app, "Operations team"), id, "the same tag, renamed (spaces collapsed)");
    assert_eq!(after.links, before.links, "links are untouched");
    assert_eq!(connections_without_tags(&after), connections_without_tags(&before));
    assert_eq!(app.stored(a).unwrap().tags, vec!["Billing", "Operations team"]);
    assert_eq!(app.stored(b).unwrap().tags, vec!["Operations team"]);
    assert_eq!(app.stored(c).unwrap().tags, vec!["Operations team"]);
    let list = app.get("/tags").await;
    assert!(rows(&list).contains(&row("Operations team", [2, 1, 0, 3])));
    // The connections list filters by the new name, ignoring case.
    let filtered = app.get("/?tag=operations+team").await;
    assert_eq!(filtered.count("tr[data-connection]"), 2);
    let old = app.get("/?tag=ops").await;
    assert_eq!(old.count("tr[data-connection]"), 0);
}

#[actix_web::test]
async fn rename_may_change_only_the_case() {
    let app = common::spawn().await;
    seed(&app).await;
    let id = tag_id(&app, "ops");
    let page = app.post(&format!("/tags/{id}/rename"), &[("name", "OPS")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(tag_id(&app, "OPS"), id);
    assert_eq!(app.count_rows("tags").await, 3);
    // The same name again is accepted and changes nothing.
    let before = app.snapshot();
    let page = app.hx_post(&format!("/tags/{id}/rename"), &[("name", "OPS")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(app.snapshot(), before);
    let notice = trigger(&page)["plugboard-notice"].as_str().unwrap_or_default().to_owned();
    assert!(notice.contains("already has that name"), "{notice}");
}

#[actix_web::test]
async fn rename_to_another_tags_name_is_refused_and_suggests_merge() {
    let app = common::spawn().await;
    seed(&app).await;
    let before = app.snapshot();
    let id = tag_id(&app, "ops");
    for name in ["Billing", "billing", "  BILLING ", "ci"] {
        let page = app.post(&format!("/tags/{id}/rename"), &[("name", name)]).await;
        assert_eq!(page.status, StatusCode::CONFLICT, "{name:?}: {}", page.body);
        let message = page.text_of("#rename-error");
        assert!(message.contains("Merge"), "{message}");
        assert!(message.contains("already named"), "{message}");
        assert_eq!(app.snapshot(), before, "{name:?} changed something");
    }
    // Without JavaScript, the tags page comes back with the name as typed
    // beside the row, whose rename form is open.
    let page = app.post(&format!("/tags/{id}/rename"), &[("name", "billing")]).await;
    assert!(page.text_of("#rename-error").contains("\u{201c}Billing\u{201d}"), "{}", page.body);
    let row_sel = format!("tr[data-tag='{id}']");
    assert_eq!(page.attr(&format!("{row_sel} input[name=name]"), "value").as_deref(), Some("billing"));
    assert_eq!(page.attr(&format!("{row_sel} input[name=name]"), "aria-invalid").as_deref(), Some("true"));
    assert!(page.attr(&format!("{row_sel} details"), "open").is_some());
    assert_eq!(rows(&page).len(), 3);

    // With htmx the message comes as a fragment for the dialog.
    let page = app.hx_post(&format!("/tags/{id}/rename"), &[("name", "BILLING")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(!page.body.contains("<html"));
    let text = page.text_of("section.error-panel");
    assert!(text.contains("Merge") && text.contains("Billing"), "{text}");
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn invalid_names_are_refused_and_change_nothing() {
    let app = common::spawn().await;
    seed(&app).await;
    let before = app.snapshot();
    let id = tag_id(&app, "ops");
    let long = "x".repeat(41);
    for (name, expected) in [
        ("", "at least one character"),
        ("    ", "at least one character"),
        (long.as_str(), "at most 40 characters"),
        ("a,b", "commas"),
        ("line\nbreak", "control characters"),
        ("nul\0", "control characters"),
    ] {
        let page = app.post(&format!("/tags/{id}/rename"), &[("name", name)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}: {}", page.body);
        assert!(
            page.text_of("#rename-error").contains(expected),
            "{name:?}: {}",
            page.text_of("#rename-error")
        );
        let page = app.hx_post(&format!("/tags/{id}/rename"), &[("name", name)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        assert!(page.text_of("section.error-panel").contains(expected), "{name:?}: {}", page.body);
    }
    // No name field at all.
    let page = app.post(&format!("/tags/{id}/rename"), &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.snapshot(), before);

    // Forty characters is allowed.
    let forty = "y".repeat(40);
    let page = app.post(&format!("/tags/{id}/rename"), &[("name", &forty)]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(tag_id(&app, &forty), id);
}

#[actix_web::test]
async fn rename_via_htmx_answers_empty_with_triggers() {
    let app = common::spawn().await;
    seed(&app).await;
    let id = tag_id(&app, "ci");
    let page = app.hx_post(&format!("/tags/{id}/rename"), &[("name", "Équipe CI")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty(), "an empty answer closes the dialog");
    let json = trigger(&page);
    assert!(json.get("tags-changed").is_some(), "{json}");
    assert_eq!(
        json["plugboard-notice"].as_str(),
        Some("Renamed \u{201c}ci\u{201d} to \u{201c}Équipe CI\u{201d}.")
    );
    assert_eq!(tag_id(&app, "Équipe CI"), id);
}

#[actix_web::test]
async fn concurrent_renames_to_one_name_let_exactly_one_through() {
    let app = common::spawn_with(|s| s.workers = Some(4)).await;
    seed(&app).await;
    let token = app.csrf().await;
    for round in 0..3 {
        let ids: Vec<i64> = app.snapshot().tags.iter().map(|(id, _)| *id).collect();
        let name = format!("shared-{round}");
        let requests = ids.iter().map(|id| {
            let (app, token, name) = (&app, &token, &name);
            async move {
                app.post_with_token(token, &format!("/tags/{id}/rename"), &[("name", name)]).await.status
            }
        });
        let statuses = futures_util::future::join_all(requests).await;
        let ok = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
        let taken = statuses.iter().filter(|s| **s == StatusCode::CONFLICT).count();
        assert_eq!((ok, taken), (1, ids.len() - 1), "{statuses:?}");
        assert_eq!(app.snapshot().tags.iter().filter(|(_, n)| *n == name).count(), 1);
    }
}

// ---- merge ----

#[actix_web::test]
async fn merge_confirmation_says_how_many_connections_move() {
    let app = common::spawn().await;
    seed(&app).await;
    let (ops, billing, ci) = (tag_id(&app, "ops"), tag_id(&app, "Billing"), tag_id(&app, "ci"));
    let page = app.get(&format!("/tags/{ops}/merge")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<html"));
    assert_eq!(page.text_of("#dialog-title"), "Merge \u{201c}ops\u{201d} into another tag");
    let summary = page.text_of(".merge-summary");
    assert!(summary.contains("3 connections will move"), "{summary}");
    assert!(summary.contains("2 in Development, 1 in Staging and 0 in Production"), "{summary}");
    assert_eq!(page.attr("section.panel form", "action"), Some(format!("/tags/{ops}/merge")));
    assert_eq!(page.attr("section.panel form", "method").as_deref(), Some("post"));
    assert!(page.attr("section.panel form input[name=csrf_token]", "value").is_some());
    // The other tags, by name; never the tag itself.
    let html = page.html();
    let option = scraper::Selector::parse("select[name=into] option").unwrap();
    let options: Vec<(String, String)> = html
        .select(&option)
        .map(|o| (o.value().attr("value").unwrap_or_default().to_owned(), o.text().collect::<String>()))
        .collect();
    assert_eq!(options.len(), 3, "{options:?}");
    assert_eq!(options[0].0, "");
    assert_eq!(
        options[1],
        (billing.to_string(), "Billing (2 connections; 1 already tagged both)".to_owned())
    );
    assert_eq!(options[2], (ci.to_string(), "ci (1 connection)".to_owned()));
    // Asking changes nothing; htmx gets the confirmation alone.
    let before = app.snapshot();
    let page = app.hx_get(&format!("/tags/{ops}/merge")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<html"));
    assert!(page.text_of("#dialog-title").contains("ops"));
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn merge_with_no_other_tag_says_so() {
    let app = common::spawn().await;
    app.create("github", "Solo", &[("token", GITHUB_TOKEN), ("new_tags", "only")]).await;
    let id = tag_id(&app, "only");
    let page = app.get(&format!("/tags/{id}/merge")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text_of("section.panel").contains("no other tag"), "{}", page.body);
    assert_eq!(page.count("section.panel form"), 0);
}

#[actix_web::test]
async fn merge_moves_connections_without_duplicates_and_deletes_the_source() {
    let app = common::spawn().await;
    let [a, b, c, d] = seed(&app).await;
    let before = app.snapshot();
    let (ops, billing) = (tag_id(&app, "ops"), tag_id(&app, "Billing"));
    let page = app.post(&format!("/tags/{ops}/merge"), &[("into", &billing.to_string())]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/tags"));

    let after = app.snapshot();
    assert_eq!(tag_names(&after), vec!["Billing", "ci"], "the source tag is gone");
    assert_eq!(app.stored(a).unwrap().tags, vec!["Billing"], "had both: keeps one");
    assert_eq!(app.stored(b).unwrap().tags, vec!["Billing"]);
    assert_eq!(app.stored(c).unwrap().tags, vec!["Billing"]);
    assert_eq!(app.stored(d).unwrap().tags, vec!["Billing", "ci"]);
    assert_eq!(after.links.len(), 5);
    assert_eq!(connections_without_tags(&after), connections_without_tags(&before));
    // Each link kept its connection's environment.
    let page = app.get("/tags").await;
    assert_eq!(rows(&page), vec![row("Billing", [2, 1, 1, 4]), row("ci", [0, 0, 1, 1])]);
    app.switch_environment("staging").await;
    let list = app.get("/?tag=billing").await;
    assert_eq!(list.texts("tr[data-connection] .connection-name"), vec!["Stage Bot"]);

    // The source is gone: merging it again is "not found".
    let page = app.post(&format!("/tags/{ops}/merge"), &[("into", &billing.to_string())]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn merge_via_htmx_answers_empty_with_triggers() {
    let app = common::spawn().await;
    seed(&app).await;
    let (ci, billing) = (tag_id(&app, "ci"), tag_id(&app, "Billing"));
    let page = app.hx_post(&format!("/tags/{ci}/merge"), &[("into", &billing.to_string())]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty());
    let json = trigger(&page);
    assert!(json.get("tags-changed").is_some());
    let notice = json["plugboard-notice"].as_str().unwrap_or_default();
    assert!(notice.starts_with("Merged \u{201c}ci\u{201d} into \u{201c}Billing\u{201d}"), "{notice}");
    assert_eq!(tag_names(&app.snapshot()), vec!["Billing", "ops"]);
}

#[actix_web::test]
async fn bad_merges_are_refused_and_change_nothing() {
    let app = common::spawn().await;
    seed(&app).await;
    let before = app.snapshot();
    let ops = tag_id(&app, "ops");
    let path = format!("/tags/{ops}/merge");

    let page = app.post(&path, &[("into", &ops.to_string())]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert!(page.text_of("section.error-panel").contains("cannot be merged into itself"), "{}", page.body);

    let page = app.post(&path, &[("into", "999999")]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert!(page.text_of("section.error-panel").contains("does not exist"), "{}", page.body);

    for into in ["", "abc", "1.5", "99999999999999999999999", "-1 OR 1=1"] {
        let page = app.post(&path, &[("into", into)]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{into:?}: {}", page.body);
    }
    let page = app.post(&path, &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert!(page.text_of("section.error-panel").contains("Choose the tag"), "{}", page.body);

    let page = app.hx_post(&path, &[("into", &ops.to_string())]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!page.body.contains("<html"));
    assert!(page.text_of("section.error-panel").contains("itself"));

    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn opposite_merges_at_once_leave_one_tag() {
    let app = common::spawn_with(|s| s.workers = Some(4)).await;
    let token = app.csrf().await;
    for round in 0..4 {
        let first = format!("first-{round}");
        let second = format!("second-{round}");
        app.create("github", &format!("A{round}"), &[("token", GITHUB_TOKEN), ("new_tags", &first)]).await;
        app.create("slack", &format!("B{round}"), &[("token", SLACK_TOKEN), ("new_tags", &second)]).await;
        let (x, y) = (tag_id(&app, &first), tag_id(&app, &second));
        let (x_path, y_path, x_id, y_id) =
            (format!("/tags/{x}/merge"), format!("/tags/{y}/merge"), x.to_string(), y.to_string());
        let (into_y, into_x) = ([("into", y_id.as_str())], [("into", x_id.as_str())]);
        let one = app.post_with_token(&token, &x_path, &into_y);
        let other = app.post_with_token(&token, &y_path, &into_x);
        let (one, other) = futures_util::join!(one, other);
        let statuses = [one.status, other.status];
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count(), 1, "{statuses:?}");
        assert!(statuses.iter().all(|s| s.is_redirection() || s.is_client_error()), "{statuses:?}");
        let snapshot = app.snapshot();
        let left: Vec<i64> =
            snapshot.tags.iter().map(|(id, _)| *id).filter(|id| [x, y].contains(id)).collect();
        assert_eq!(left.len(), 1, "exactly one of the two remains");
        assert_eq!(snapshot.links.iter().filter(|(_, t)| *t == left[0]).count(), 2, "on both connections");
    }
}

// ---- delete ----

#[actix_web::test]
async fn delete_confirmation_names_the_tag_and_its_connections() {
    let app = common::spawn().await;
    seed(&app).await;
    let ops = tag_id(&app, "ops");
    let page = app.get(&format!("/tags/{ops}/delete")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.text_of("#dialog-title"), "Delete the tag \u{201c}ops\u{201d}?");
    let text = page.text_of(".delete-summary");
    assert!(text.contains("from 3 connections"), "{text}");
    assert!(text.contains("2 in Development, 1 in Staging and 0 in Production"), "{text}");
    assert!(text.contains("connections themselves are not changed"), "{text}");
    assert_eq!(page.attr("section.panel form", "action"), Some(format!("/tags/{ops}/delete")));
    assert!(page.attr("section.panel form input[name=csrf_token]", "value").is_some());
    let page = app.hx_get(&format!("/tags/{ops}/delete")).await;
    assert!(!page.body.contains("<html"));
    assert!(page.text_of("#dialog-title").contains("ops"));
}

#[actix_web::test]
async fn delete_removes_the_tag_from_every_connection_and_keeps_them() {
    let app = common::spawn().await;
    let [a, b, c, d] = seed(&app).await;
    let before = app.snapshot();
    let ops = tag_id(&app, "ops");
    let page = app.post(&format!("/tags/{ops}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/tags"));
    let after = app.snapshot();
    assert_eq!(tag_names(&after), vec!["Billing", "ci"]);
    assert!(after.links.iter().all(|(_, t)| *t != ops));
    assert_eq!(after.connections.len(), 4, "connections stay");
    assert_eq!(connections_without_tags(&after), connections_without_tags(&before));
    assert_eq!(app.stored(a).unwrap().tags, vec!["Billing"]);
    assert!(app.stored(b).unwrap().tags.is_empty());
    assert!(app.stored(c).unwrap().tags.is_empty());
    assert_eq!(app.stored(d).unwrap().tags, vec!["Billing", "ci"]);
    assert_eq!(rows(&app.get("/tags").await), vec![row("Billing", [1, 0, 1, 2]), row("ci", [0, 0, 1, 1])]);

    // Gone: a second delete is "not found".
    let page = app.post(&format!("/tags/{ops}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text_of("section.error-panel").contains("no such tag"), "{}", page.body);
}

#[actix_web::test]
async fn delete_via_htmx_answers_empty_with_triggers() {
    let app = common::spawn().await;
    seed(&app).await;
    let billing = tag_id(&app, "Billing");
    let page = app.hx_post(&format!("/tags/{billing}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty());
    let json = trigger(&page);
    assert!(json.get("tags-changed").is_some());
    assert_eq!(
        json["plugboard-notice"].as_str(),
        Some("Deleted the tag \u{201c}Billing\u{201d} from 2 connections.")
    );
    assert_eq!(tag_names(&app.snapshot()), vec!["ci", "ops"]);
}

// ---- refusals ----

#[actix_web::test]
async fn posts_without_a_valid_csrf_token_are_refused() {
    let app = common::spawn().await;
    seed(&app).await;
    let before = app.snapshot();
    let (ops, billing) = (tag_id(&app, "ops"), tag_id(&app, "Billing"));
    let billing = billing.to_string();
    let posts: [(String, Vec<(&str, &str)>); 3] = [
        (format!("/tags/{ops}/rename"), vec![("name", "renamed")]),
        (format!("/tags/{ops}/merge"), vec![("into", billing.as_str())]),
        (format!("/tags/{ops}/delete"), vec![]),
    ];
    for (path, fields) in &posts {
        let page = app.post_raw(path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} without a token");
        let mut wrong = vec![("csrf_token", "not-the-token")];
        wrong.extend_from_slice(fields);
        let page = app.post_raw(path, &wrong).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} with a wrong token");
        let page = app.hx_post_token(None, path, fields).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} via htmx without a token");
    }
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn unknown_tags_are_not_found() {
    let app = common::spawn().await;
    seed(&app).await;
    let before = app.snapshot();
    let billing = tag_id(&app, "Billing").to_string();
    for path in
        ["/tags/999999/merge", "/tags/999999/delete", "/tags/abc/delete", "/tags/99999999999999999999/merge"]
    {
        let page = app.get(path).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {path}");
    }
    for (path, fields) in [
        ("/tags/999999/rename", vec![("name", "fine")]),
        ("/tags/999999/rename", vec![("name", "")]),
        ("/tags/999999/rename", vec![("name", "Billing")]),
        ("/tags/999999/merge", vec![("into", billing.as_str())]),
        ("/tags/999999/merge", vec![("into", "garbage")]),
        ("/tags/999999/merge", vec![("into", "999999")]),
        ("/tags/999999/delete", vec![]),
        ("/tags/-1/delete", vec![]),
        ("/tags/abc/rename", vec![("name", "fine")]),
    ] {
        let page = app.post(path, &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "POST {path} {fields:?}: {}", page.body);
        let page = app.hx_post(path, &fields).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "htmx POST {path} {fields:?}");
        assert!(!page.body.contains("<html"));
    }
    assert_eq!(app.snapshot(), before);
}
