//! The interface as people use it, in headless Chromium (issue 13): phone
//! and desktop widths with long names, input kept through a method switch,
//! a refusal and a sign-in, with and without JavaScript, where the focus
//! goes, a keyboard-only create, the component picker found by alias, by
//! category and by keyboard, and a console without errors.
//!
//!     cargo test --test browser_ux -- --nocapture
//!
//! Skipped (with a line on stderr) without Debian's chromium and
//! chromium-driver, unless `PLUGBOARD_REQUIRE_BROWSER=1`.

mod browser_support;
mod common;

use std::time::Duration;

use browser_support::{Browser, browser_paths, js_str};
use fantoccini::key::Key;

const GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";
const SLACK_TOKEN: &str = "xoxb-1111-2222-abcdef";

/// A save checks the credentials, which cannot reach GitHub from here.
const SAVE_WAIT: Duration = Duration::from_secs(15);

/// Seventy characters and no space: the worst case for a table cell.
fn long_name(i: usize) -> String {
    format!("{i:02}_stripe_live_restricted_invoicing_service_eu_west_1_primary_account_x")
}

/// HTTP connections whose check fails at once (nothing listens on port 9).
async fn seed_long_names(app: &common::TestApp, n: usize) {
    app.create_many(
        "http",
        "bearer",
        n,
        long_name,
        &[
            ("field:base_url", "http://127.0.0.1:9"),
            ("field:test_path", "/me"),
            ("field:token", "secret-token-value"),
            ("new_tags", "a_long_tag_name_of_forty_characters_xyz"),
        ],
    )
    .await;
}

/// Console lines that are errors, less what Chromium itself logs for an
/// answer that is meant (a refused save's 422, a conflict's 409, the 401 of
/// a session that ended).
fn console_errors(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter(|l| l.contains("Content Security Policy") || l.starts_with("SEVERE"))
        .filter(|l| {
            !(l.contains("Failed to load resource: the server responded with a status of 422")
                || l.contains("Failed to load resource: the server responded with a status of 409")
                || l.contains("Failed to load resource: the server responded with a status of 401"))
        })
        .cloned()
        .collect()
}

/// Ends a flow: no console error along the way, no check failed.
async fn finish(b: Browser) {
    let errors = console_errors(&b.console().await);
    if !errors.is_empty() {
        b.problem(format!("console errors: {errors:#?}"));
    }
    b.assert_no_problems();
    b.close().await;
}

async fn no_sideways_scroll(b: &Browser, width: u32) {
    // The layout viewport: with a phone's emulation, `innerWidth` is the
    // visual one, which widens when a page too wide is zoomed out to fit.
    let widths =
        b.js("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]").await;
    let (scroll, inner) = (widths[0].as_u64().unwrap_or(0), widths[1].as_u64().unwrap_or(0));
    if inner != u64::from(width) {
        b.problem(format!("the viewport is {inner} px wide, not the {width} px under test"));
    }
    if scroll > inner {
        // Name the widest element, to say what to fix.
        let culprit = b
            .js("let w = null; for (const e of document.querySelectorAll('body *')) { \
                 const r = e.getBoundingClientRect(); if (r.right > document.documentElement.clientWidth + 1 && (!w || r.right > w[1])) \
                 w = [e.tagName + '.' + e.className + '#' + e.id, r.right]; } return w;")
            .await;
        b.problem(format!(
            "at {width} px the page is {scroll} px wide (viewport {inner}); widest: {culprit}"
        ));
    }
}

/// The list's search box shows its whole placeholder ("Search by name"
/// was cut to "Search b…" at 390 px).
const SEARCH_PLACEHOLDER_FITS: &str = "(() => { const i = $('#search'); const s = getComputedStyle(i); \
     const c = document.createElement('canvas').getContext('2d'); c.font = s.font; \
     const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight); \
     return i.placeholder !== '' && c.measureText(i.placeholder).width <= room; })()";

#[actix_web::test]
async fn phone_and_desktop_widths_never_scroll_sideways_with_long_names() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    seed_long_names(&app, 4).await;

    let b = Browser::start(&driver, &chromium, 1280, 800).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.wait_for("the rows", "document.querySelectorAll('tr[data-connection]').length === 4").await;
    no_sideways_scroll(&b, 1280).await;
    b.expect("the search's placeholder is read whole", SEARCH_PLACEHOLDER_FITS).await;
    b.expect(
        "the filters show beside the list",
        "$('.sidebar').checkVisibility() && !isShown('.filters-toggle')",
    )
    .await;
    b.expect(
        "the full name is the name's hover text",
        &format!("$('.connection-name').title === {}", js_str(&long_name(3))),
    )
    .await;
    finish(b).await;

    let b = Browser::start(&driver, &chromium, 390, 844).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.wait_for("the rows", "document.querySelectorAll('tr[data-connection]').length === 4").await;
    no_sideways_scroll(&b, 390).await;
    b.expect("the search's placeholder is read whole on a phone", SEARCH_PLACEHOLDER_FITS).await;
    if let Some(dir) = std::env::var_os("PLUGBOARD_UX_SHOTS") {
        b.screenshot(&std::path::Path::new(&dir).join("phone.png")).await;
    }
    b.expect(
        "the filters are folded above the list",
        "isShown('.filters-toggle') && !$('#filters').open && !$('.sidebar').checkVisibility()",
    )
    .await;
    b.expect(
        "the rows are cards: one row takes the width",
        "$('tr[data-connection]').getBoundingClientRect().width > 300 && getComputedStyle($('tr[data-connection]')).display === 'block'",
    )
    .await;
    let reachable = "(() => { const r = $(arguments_css).getBoundingClientRect(); \
                     return r.width > 0 && r.left >= 0 && r.right <= window.innerWidth; })()";
    for (what, css) in [
        ("the environment switch", ".env-switch button[value=production]"),
        ("Sign out", ".who button[type=submit]"),
        ("New connection", "#new-connection"),
    ] {
        b.expect(&format!("{what} is on screen"), &reachable.replace("arguments_css", &js_str(css))).await;
    }
    b.click(".filters-toggle").await;
    b.expect("the filters open", "$('.sidebar').checkVisibility() && $('#filters').open").await;
    no_sideways_scroll(&b, 390).await;
    // The dialog fits a phone too.
    b.click("#new-connection").await;
    b.wait_for("the picker", "dialogOpen() && $('#dialog a[data-component=github]')").await;
    b.click("#dialog a[data-component=github]").await;
    b.wait_for("the GitHub form", "$('#dialog #field-name')").await;
    no_sideways_scroll(&b, 390).await;
    finish(b).await;
}

#[actix_web::test]
async fn with_javascript_input_survives_a_method_switch_a_refusal_and_a_sign_in() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    let b = Browser::start(&driver, &chromium, 1280, 800).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.wait_for("htmx", "window.htmx && $('#workspace')").await;

    b.goto(&app.url("/")).await;
    b.wait_for("htmx", "window.htmx && $('#new-connection')").await;
    b.click("#new-connection").await;
    b.wait_for("the picker", "dialogOpen() && $('#dialog a[data-component=github]')").await;
    b.click("#dialog a[data-component=github]").await;
    b.wait_for("the GitHub form", "$('#dialog #field-name')").await;
    b.clear("#field-name").await;
    b.type_into("#field-name", "Release bot").await;
    b.type_into("#field-token", "not-a-token").await;
    b.type_into("#field-new_tags", "release,").await;
    b.expect(
        "a comma makes the typed tag a chip",
        "$('#chosen-tags input[name=tag][value=release]')?.checked",
    )
    .await;

    // Another method and back: what both share is kept.
    let other_tab = b.js("const t = [...document.querySelectorAll('[data-method-tab]')].find(a => !a.classList.contains('current')); return t ? t.getAttribute('href') : null").await;
    let other_tab = other_tab.as_str().expect("GitHub offers more than one method").to_owned();
    b.click(&format!("[data-method-tab][href={}]", js_str(&other_tab))).await;
    b.wait_for(
        "the other method's form",
        &format!("$('#dialog [data-method-tab].current').getAttribute('href') === {}", js_str(&other_tab)),
    )
    .await;
    b.expect("the name is kept across the switch", "$('#field-name').value === 'Release bot'").await;
    b.expect("the chosen tag is kept", "$('#chosen-tags input[value=release]')?.checked").await;
    b.click("[data-method-tab]:not(.current)").await;
    b.wait_for("back on the token form", "$('#dialog #field-token')").await;
    b.expect("the name is still kept", "$('#field-name').value === 'Release bot'").await;
    b.expect("the token typed earlier is back", "$('#field-token').value === 'not-a-token'").await;

    // Refused: the token has the wrong shape. Everything stays.
    b.click("#dialog button[type=submit]").await;
    b.wait_for("the token's error", "text('#error-token') !== ''").await;
    b.expect("the focus is on the token", "document.activeElement === $('#field-token')").await;
    b.expect("the name stayed", "$('#field-name').value === 'Release bot'").await;
    b.expect("the tag stayed", "$('#chosen-tags input[value=release]')?.checked").await;

    // The session ends in another tab: the next save goes to sign-in,
    // which says why, and the form comes back with its non-secret input.
    b.client.delete_all_cookies().await.expect("cookies deleted");
    b.clear("#field-token").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.click("#dialog button[type=submit]").await;
    b.wait_for(
        "the sign-in page says the session ended",
        "location.pathname === '/sign-in' && isShown('#session-ended')",
    )
    .await;
    b.expect("it says the input is kept", "isShown('#draft-kept')").await;
    b.type_into("#email", common::ADMIN_EMAIL).await;
    b.type_into("#password", common::PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for("the form is open again", "dialogOpen() && $('#dialog #field-name')").await;
    b.wait_for("the name is back", "$('#field-name').value === 'Release bot'").await;
    b.expect("the tag is back", "$('#chosen-tags input[value=release]')?.checked").await;
    b.expect("no secret was kept", "$('#field-token').value === ''").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.click("#dialog button[type=submit]").await;
    b.wait_for_within("saved", "!dialogOpen() && text('#workspace').includes('Release bot')", SAVE_WAIT)
        .await;
    assert_eq!(app.count_rows("connections").await, 1);

    finish(b).await;
}

#[actix_web::test]
async fn without_javascript_a_refused_save_keeps_input_and_says_to_enter_the_secret_again() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    let b = Browser::start_without_javascript(&driver, &chromium, 1280, 800).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    assert_eq!(b.js("return typeof window.htmx").await, "undefined", "the page's scripts ran");
    b.goto(&app.url("/?q=Release")).await;
    b.click("#new-connection").await;
    b.wait_for("the picker page", "$('a[data-component=github]')").await;
    b.click("a[data-component=github]").await;
    b.wait_for("the GitHub form page", "$('#field-name')").await;
    b.clear("#field-name").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.type_into("#field-new_tags", "release").await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_for("the refusal", "text('#error-name') !== ''").await;
    b.expect("the tags typed are kept", "$('#field-new_tags').value === 'release'").await;
    b.expect("the secret was not sent back", "$('#field-token').value === ''").await;
    b.expect(
        "beside it, a line says to enter it again",
        "text('#retype-token').startsWith('Enter this again')",
    )
    .await;
    b.type_into("#field-name", "Release bot").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_for_within(
        "back on the list it came from",
        "location.pathname === '/' && $('#workspace')",
        SAVE_WAIT,
    )
    .await;
    b.expect("the search is kept", "location.search === '?q=Release'").await;
    b.expect(
        "a notice says it was created",
        "text('#flash').startsWith('Created “Release bot” in Development')",
    )
    .await;

    // Signed out in another tab while a form is open: the save lands on
    // sign-in, which says why, and the form comes back without its secret.
    b.goto(&app.url("/connections/new?component=github")).await;
    b.wait_for("the GitHub form page", "$('#field-name')").await;
    b.clear("#field-name").await;
    b.type_into("#field-name", "Release bot 2").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.type_into("#field-new_tags", "release").await;

    // Signed out in another tab: the save lands on sign-in, which says why.
    b.client.delete_all_cookies().await.expect("cookies deleted");
    b.click("#connection-form button[type=submit]").await;
    b.wait_for("the sign-in form", "$('#email') && isShown('#session-ended')").await;
    b.expect("it says the input is kept", "text('#draft-kept').includes('comes back')").await;
    b.expect("the page holds none of it", "!document.body.innerHTML.includes('Release bot 2')").await;
    b.type_into("#email", common::ADMIN_EMAIL).await;
    b.type_into("#password", common::PASSWORD).await;
    b.click("button[type=submit]").await;
    b.wait_for("the form again", "location.pathname === '/connections/draft' && $('#field-name')").await;
    b.expect("the name is back", "$('#field-name').value === 'Release bot 2'").await;
    b.expect("the tag is back", "$('#field-new_tags').value === 'release'").await;
    b.expect("the secret is not", "$('#field-token').value === ''").await;
    b.expect(
        "beside it, a line says to enter it again",
        "text('#retype-token').startsWith('Enter this again')",
    )
    .await;
    b.expect("a notice says so", "text('#flash').startsWith('Signed in again')").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.click("#connection-form button[type=submit]").await;
    b.wait_for_within(
        "saved",
        "location.pathname === '/' && text('#workspace').includes('Release bot 2')",
        SAVE_WAIT,
    )
    .await;
    assert_eq!(app.count_rows("connections").await, 2);
    finish(b).await;
}

#[actix_web::test]
async fn focus_goes_where_the_person_is_after_test_tag_add_page_change_and_close() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    seed_long_names(&app, 55).await;
    let b = Browser::start(&driver, &chromium, 1280, 800).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.wait_for("htmx and the rows", "window.htmx && $('tr[data-connection]')").await;
    let id =
        b.js("return document.querySelector('tr[data-connection]').getAttribute('data-connection')").await;
    let id = id.as_str().expect("a row").to_owned();

    // Test.
    b.click(&format!("#test-{id}")).await;
    b.wait_for("the notice names the connection", "text('#notice').startsWith('Checked')").await;
    b.expect("the focus stays on Test", &format!("document.activeElement?.id === 'test-{id}'")).await;

    // "+ tag" opens into its input; after the add, the focus is on "+ tag".
    b.click(&format!("#add-tag-summary-{id}")).await;
    b.expect("the tag input has the focus", &format!("document.activeElement?.id === 'add-tag-{id}'")).await;
    b.type_into(&format!("#add-tag-{id}"), "ops").await;
    b.press(Key::Enter).await;
    b.wait_for("the tag is on the row", &format!("text('#connection-{id} .tags-cell').includes('ops')"))
        .await;
    b.expect(
        "the focus is on the row's + tag",
        &format!("document.activeElement?.id === 'add-tag-summary-{id}'"),
    )
    .await;

    // Dialog close: back on what opened it.
    b.click(&format!("#edit-{id}")).await;
    b.wait_for("the edit dialog", "dialogOpen() && $('#dialog #field-name')").await;
    b.press(Key::Escape).await;
    b.wait_for("the dialog closed", "!dialogOpen()").await;
    b.expect("the focus is back on Edit", &format!("document.activeElement?.id === 'edit-{id}'")).await;

    // Next page: at its top, its heading focused.
    b.js("window.scrollTo(0, document.body.scrollHeight)").await;
    b.click(".pagination a[rel=next]").await;
    b.wait_for("page 2", "location.search.includes('page=2') && text('.pagination').includes('Page 2')")
        .await;
    b.expect("the list's heading has the focus", "document.activeElement === $('#list-title')").await;
    b.expect("scrolled to the top", "window.scrollY === 0").await;

    finish(b).await;
}

#[actix_web::test]
async fn a_connection_is_created_with_the_keyboard_alone() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    let b = Browser::start(&driver, &chromium, 1280, 800).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.wait_for("htmx", "window.htmx && $('#new-connection')").await;

    async fn tab_to(b: &Browser, css: &str) {
        for _ in 0..80 {
            let at = b
                .js_with(
                    "return document.activeElement === document.querySelector(arguments[0])",
                    vec![serde_json::json!(css)],
                )
                .await;
            if at == true {
                return;
            }
            b.client
                .active_element()
                .await
                .expect("focus")
                .send_keys(&char::from(Key::Tab).to_string())
                .await
                .expect("Tab");
        }
        b.fail(&format!("Tab never reached `{css}`")).await;
    }

    b.js("document.activeElement.blur()").await;
    tab_to(&b, "#new-connection").await;
    b.press(Key::Enter).await;
    b.wait_for("the picker, searching", "dialogOpen() && document.activeElement === $('#component-search')")
        .await;
    b.type_into("#component-search", "github").await;
    b.wait_for(
        "GitHub is offered",
        "$('#dialog a[data-component=github]').offsetParent && !$('#dialog a[data-component=slack]').offsetParent",
    )
    .await;
    tab_to(&b, "#dialog a[data-component=github]").await;
    b.press(Key::Enter).await;
    b.wait_for(
        "the form, its name focused",
        "$('#dialog #field-name') && document.activeElement === $('#field-name')",
    )
    .await;
    tab_to(&b, "#field-token").await;
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.press(Key::Enter).await;
    b.wait_for_within("saved and closed", "!dialogOpen() && $('tr[data-connection]')", SAVE_WAIT).await;
    b.expect("the focus is back on New connection", "document.activeElement === $('#new-connection')").await;

    // Escape closes a dialog opened from the keyboard.
    b.press(Key::Enter).await;
    b.wait_for("the picker again", "dialogOpen()").await;
    b.press(Key::Escape).await;
    b.wait_for("closed by Escape", "!dialogOpen()").await;
    b.expect("the focus is back on New connection", "document.activeElement === $('#new-connection')").await;
    assert_eq!(app.count_rows("connections").await, 1);
    finish(b).await;
}

// ---- the component picker with its 150-odd entries ----

/// The keys of the choices a person can see, in order.
const VISIBLE: &str = "Array.from(document.querySelectorAll('#dialog a[data-component]')).filter(a => a.offsetParent).map(a => a.dataset.component)";

#[actix_web::test]
async fn the_picker_finds_components_by_alias_category_and_keyboard() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    let browser = Browser::start(&driver, &chromium, 1280, 800).await;
    let b = &browser;
    app.create("github", "Release repo", &[("token", GITHUB_TOKEN)]).await;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.goto(&app.url("/")).await;
    b.wait_for("the page and htmx have loaded", "window.htmx && $('#new-connection')").await;

    b.click("#new-connection").await;
    b.wait_for("the picker opens", "dialogOpen() && $('#dialog #component-search')").await;
    // What the environment already uses leads, and ↓ reaches it first.
    b.expect(
        "the most used group comes first",
        "text('#dialog .choice-group-name') === 'Most used in Development'",
    )
    .await;
    b.expect("the search has the focus", "document.activeElement === $('#component-search')").await;
    b.press(Key::Down).await;
    b.expect("↓ lands on the most used", "document.activeElement.dataset.component === 'github'").await;
    b.press(Key::Up).await;
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

    // Escape clears a search and shows everything again; on an empty
    // search it closes the picker, as it closes every dialog.
    b.press(Key::Escape).await;
    b.wait_for(
        "Escape clears the search, the picker stays",
        &format!("dialogOpen() && $('#component-search').value === '' && {VISIBLE}.length === {all}"),
    )
    .await;
    b.expect("the focus stays in the search", "document.activeElement === $('#component-search')").await;
    b.press(Key::Escape).await;
    b.wait_for("a second Escape closes the picker", "!dialogOpen()").await;
    b.click("#new-connection").await;
    b.wait_for("the picker again", "dialogOpen() && $('#dialog #component-search')").await;
    b.type_into("#component-search", "qbo").await;
    b.wait_for("one match", &format!("{VISIBLE}.length === 1")).await;
    b.press(Key::Enter).await;
    b.wait_for("Enter opens the only match", "$('#dialog form#connection-form')").await;
    assert_eq!(b.text("#dialog-title").await, "New QuickBooks Online connection");
    finish(browser).await;
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
    assert_eq!(page.count("#most-used"), 0, "nothing used yet, no such group");
}

#[actix_web::test]
async fn the_picker_leads_with_the_components_this_environment_uses_most() {
    let app = common::spawn().await;
    for name in ["Repo one", "Repo two", "Repo three"] {
        app.create("github", name, &[("token", GITHUB_TOKEN)]).await;
    }
    for name in ["Team Slack", "Alerts Slack"] {
        app.create("slack", name, &[("token", SLACK_TOKEN)]).await;
    }
    app.switch_environment("production").await;
    for name in ["Prod bot one", "Prod bot two", "Prod bot three", "Prod bot four"] {
        app.create("slack", name, &[("token", SLACK_TOKEN)]).await;
    }
    app.switch_environment("development").await;

    let page = app.get("/connections/new").await;
    let groups = page.texts("#component-choices .choice-group-name");
    assert_eq!(groups[0], "Most used in Development", "{groups:?}");
    // Most connections first, counted in this environment only.
    assert_eq!(page.texts("#most-used .choice-name"), ["GitHub", "Slack"]);
    assert_eq!(
        page.texts("#most-used .choice-category"),
        ["3 connections · Developer tools", "2 connections · Communication"]
    );
    // Each component is listed once, so Enter on a single match still opens it.
    assert_eq!(page.count("a[data-component=github]"), 1);
    assert_eq!(page.count("a[data-component=slack]"), 1);
    // The server's search (without JavaScript) keeps the group.
    let page = app.get("/connections/new?q=slack").await;
    assert_eq!(page.texts("#component-choices .choice-group-name"), ["Most used in Development"]);

    app.switch_environment("production").await;
    let page = app.get("/connections/new").await;
    assert_eq!(page.texts("#most-used .choice-name"), ["Slack"]);
    assert_eq!(page.text_of("#most-used .choice-group-name"), "Most used in Production");
}
