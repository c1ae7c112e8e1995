//! The connections list and forms over HTTP.

mod common;

use reqwest::StatusCode;

#[actix_web::test]
async fn empty_list_offers_to_create_a_connection() {
    let app = common::spawn().await;
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text_of(".empty-state").contains("No connections in Development yet"), "{}", page.body);
    assert_eq!(page.attr(".empty-state a.button", "href").as_deref(), Some("/connections/new"));
}

#[actix_web::test]
async fn created_connection_is_listed_not_active_with_tags() {
    let app = common::spawn().await;
    let id = app.create("github", "Ops GitHub", &[("token", "ghp_abcdef123456"), ("new_tags", "ops, Billing")]).await;
    let page = app.get("/").await;
    let row = format!("#connection-{id}");
    assert!(page.text_of(&row).contains("Ops GitHub"));
    assert!(page.text_of(&format!("{row} .badge")).contains("NOT ACTIVE"));
    assert!(page.text_of(&format!("{row} .status-reason")).contains("not checked yet"));
    assert_eq!(page.texts(&format!("{row} .tag a")), vec!["Billing", "ops"]);
    assert!(!page.body.contains("ghp_abcdef123456"));
}
