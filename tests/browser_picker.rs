//! The component picker in headless Chromium with its 150-odd entries:
//! found by an alias, by a category, and with the keyboard alone.
//! Skips like tests/browser.rs when Chromium is not installed.

mod browser_support;
mod common;

use browser_support::Browser;
use fantoccini::key::Key;

/// The keys of the choices a person can see, in order.
const VISIBLE: &str = "Array.from(document.querySelectorAll('#dialog a[data-component]')).filter(a => a.offsetParent).map(a => a.dataset.component)";

#[actix_web::test]
async fn the_picker_finds_components_by_alias_category_and_keyboard() {
    let Some((driver, chromium)) = browser_support::browser_paths() else { return };
    let app = common::spawn().await;
    let browser = Browser::start(&driver, &chromium, 1280, 800).await;
    let b = &browser;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.goto(&app.url("/")).await;
    b.wait_for("the page and htmx have loaded", "window.htmx && $('#new-connection')").await;

    b.click("#new-connection").await;
    b.wait_for("the picker opens", "dialogOpen() && $('#dialog #component-search')").await;
    let all = b.js(&format!("return {VISIBLE}.length")).await.as_u64().unwrap();
    assert!(all >= 150, "{all} components listed");
    let groups = b.js("return Array.from(document.querySelectorAll('#dialog .choice-group-name')).map(h => h.textContent)").await;
    assert!(groups.as_array().unwrap().len() >= 15, "grouped by category: {groups}");
    assert_eq!(groups.as_array().unwrap().last().unwrap(), "Generic", "the catch-alls come last");

    // By alias: "gcal" is Google Calendar, "ms teams" Microsoft Teams.
    b.type_into("#component-search", "gcal").await;
    b.wait_for(
        "gcal finds Google Calendar alone",
        &format!("JSON.stringify({VISIBLE}) === '[\"google_calendar\"]'"),
    )
    .await;
    b.clear("#component-search").await;
    b.type_into("#component-search", "ms teams").await;
    b.wait_for(
        "ms teams finds Microsoft Teams",
        &format!("JSON.stringify({VISIBLE}) === '[\"microsoft_teams\"]'"),
    )
    .await;

    // By category: every choice left is a payment service, under its heading.
    b.clear("#component-search").await;
    b.type_into("#component-search", "payments").await;
    b.wait_for("the Payments group alone", "Array.from(document.querySelectorAll('#dialog .choice-group')).filter(g => g.offsetParent).length === 1").await;
    let payments = b.js(&format!("return {VISIBLE}")).await;
    let payments: Vec<&str> = payments.as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(
        payments.contains(&"stripe") && payments.contains(&"square") && payments.len() >= 8,
        "{payments:?}"
    );
    assert_eq!(b.text("#dialog .choice-group:not([hidden]) .choice-group-name").await, "Payments");

    // Nothing matches: said so.
    b.clear("#component-search").await;
    b.type_into("#component-search", "no such service").await;
    b.wait_for("the empty message", "$('[data-picker-empty]') && !$('[data-picker-empty]').hidden").await;

    // Keyboard alone: type, step down the matches, Enter opens the one.
    b.clear("#component-search").await;
    b.type_into("#component-search", "google").await;
    b.press(Key::Down).await;
    b.wait_for("↓ moves into the list", "document.activeElement.dataset.component !== undefined").await;
    let first = b.js("return document.activeElement.dataset.component").await;
    b.press(Key::Down).await;
    let second = b.js("return document.activeElement.dataset.component").await;
    assert_ne!(first, second, "↓ moves to the next match");
    b.press(Key::Up).await;
    assert_eq!(b.js("return document.activeElement.dataset.component").await, first);
    b.press(Key::Up).await;
    b.wait_for(
        "↑ from the first match returns to the search",
        "document.activeElement === $('#component-search')",
    )
    .await;
    b.clear("#component-search").await;
    b.type_into("#component-search", "qbo").await;
    b.wait_for("one match", &format!("{VISIBLE}.length === 1")).await;
    b.press(Key::Enter).await;
    b.wait_for("Enter opens the only match", "$('#dialog form#connection-form')").await;
    assert_eq!(b.text("#dialog-title").await, "New QuickBooks Online connection");
    b.assert_no_problems();
    browser.close().await;
}

#[actix_web::test]
async fn without_javascript_the_picker_is_a_grouped_list_the_server_searches() {
    let app = common::spawn().await;
    let page = app.get("/connections/new").await;
    assert!(page.count("#component-choices a[data-component]") >= 150);
    assert!(page.count("#component-choices .choice-group") >= 15);
    let page = app.get("/connections/new?q=ms+teams").await;
    assert_eq!(page.texts("#component-choices .choice-name"), ["Microsoft Teams"]);
    assert_eq!(page.texts("#component-choices .choice-group-name"), ["Communication"]);
    let page = app.get("/connections/new?q=nothing+like+this").await;
    assert!(page.text_of("[data-picker-empty]").contains("No component matches"));
}
