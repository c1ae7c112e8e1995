//! The smoke test in a real browser: headless Chromium, driven through
//! chromedriver, uses the application as a person would, with htmx and
//! app.js running.
//!
//! Needs Debian's `chromium` and `chromium-driver`; without them the tests
//! pass with a "browser test SKIPPED" line on stderr, unless
//! `PLUGBOARD_REQUIRE_BROWSER=1` (CI), which makes them fail. Run:
//!
//!     cargo test --test browser -- --nocapture
//!
//! With `PLUGBOARD_SCREENSHOT=docs/screenshot.png` the screenshot test also
//! saves the README's picture of a list with several connections.

mod browser_support;
mod common;

use std::time::Duration;

use browser_support::{Browser, browser_paths, js_str, say};
use fantoccini::key::Key;

/// A classic GitHub token shape (`ghp_` and 36 letters and digits), as the
/// catalog's pattern wants.
const GITHUB_TOKEN: &str = "ghp_0123456789abcdefghijABCDEFGHIJ012345";

/// Saving runs a credential check, which cannot reach GitHub from a test:
/// allow it its time limit.
const SAVE_WAIT: Duration = Duration::from_secs(15);

#[actix_web::test]
async fn a_person_creates_filters_and_switches_environment_in_a_real_browser() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let started = std::time::Instant::now();
    let step = |name: &str| eprintln!("browser test [{:>4.1}s] {name}", started.elapsed().as_secs_f64());
    let app = common::spawn().await;
    let browser = Browser::start(&driver, &chromium, 1280, 800).await;
    let b = &browser;
    step("browser started");

    step("0. sign in");
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;

    step("1. empty list");
    // 1. The empty list offers to create a connection.
    b.goto(&app.url("/")).await;
    b.wait_for("the page and htmx have loaded", "window.htmx && $('#workspace')").await;
    b.wait_for(
        "the empty state says there is nothing in Development",
        "text('.empty-state h2') === 'No connections in Development yet'",
    )
    .await;
    assert_eq!(b.text(".empty-state a.button").await, "Create Connection");
    assert_eq!(b.text("#new-connection").await, "+ New connection");
    // Survives only as long as the page is not reloaded.
    b.js("window.plugboardSmokeMarker = 'still here'").await;

    step("2. picker");
    // 2. "+ New connection" opens the dialog with the component picker.
    b.click("#new-connection").await;
    b.wait_for(
        "the dialog opens with the component picker",
        "dialogOpen() && $('#dialog #component-search') && $('#dialog a[data-component=slack]')",
    )
    .await;
    assert_eq!(b.text("#dialog-title").await, "New connection");
    b.wait_for("the search box has the focus", "document.activeElement === $('#component-search')").await;
    b.type_into("#component-search", "git").await;
    b.wait_for(
        "searching for `git` leaves GitHub and drops Slack",
        "$('#dialog a[data-component=github]').offsetParent && !$('#dialog a[data-component=slack]').offsetParent",
    )
    .await;
    assert!(b.path().await == "/", "searching the picker changed the page's URL to {}", b.path().await);
    b.click("#dialog a[data-component=github]").await;

    step("3. GitHub form");
    // 3. The GitHub form, in the same dialog.
    b.wait_for("the GitHub form appears in the dialog", "dialogOpen() && $('#dialog form#connection-form')")
        .await;
    assert_eq!(b.text("#dialog-title").await, "New GitHub connection");
    b.expect(
        "the form's first field, the name, has the focus",
        "document.activeElement === $('#field-name')",
    )
    .await;
    assert_eq!(b.value("#field-name").await, "GitHub", "the name defaults to the component's");
    let token_type = b.js("return document.querySelector('#field-token').type").await;
    assert_eq!(token_type, "password", "the token is typed into a password input");
    b.type_into("#field-token", GITHUB_TOKEN).await;
    b.type_into("#field-new_tags", "release").await;

    step("4. refused save");
    // 4. A refused save: no name. The error shows beside the name, the
    // dialog stays open, and nothing typed is lost.
    b.clear("#field-name").await;
    assert_eq!(b.value("#field-name").await, "");
    b.click("#dialog button[type=submit]").await;
    b.wait_for("an error appears beside the empty name", "text('#error-name') !== ''").await;
    let name_error = b.text("#error-name").await;
    assert!(b.js("return document.getElementById('dialog').open").await == true, "the dialog closed");
    assert_eq!(b.value("#field-token").await, GITHUB_TOKEN, "the typed token was lost by the refused save");
    assert_eq!(b.value("#field-new_tags").await, "release", "the typed tag was lost by the refused save");
    assert!(
        b.text("#form-summary").await.contains("needs fixing"),
        "no summary of the errors: {:?}",
        b.text("#form-summary").await
    );
    b.wait_for("the name is marked invalid", "$('#field-name').getAttribute('aria-invalid') === 'true'")
        .await;
    b.expect("the focus moves to the name, the field to fix", "document.activeElement === $('#field-name')")
        .await;
    assert_eq!(app.count_rows("connections").await, 0, "a refused save stored something");
    eprintln!("refused save said: {name_error}");

    step("3. save");
    // 3 (end). Name it and save.
    b.type_into("#field-name", "Release bot").await;
    b.click("#dialog button[type=submit]").await;

    step("5. row appears");
    // 5. The dialog closes and the row appears, without a page reload.
    b.wait_for_within("the dialog closes after the save", "!dialogOpen()", SAVE_WAIT).await;
    b.wait_for(
        "the new row appears in the list",
        "text('tr[data-connection] .connection-name') === 'Release bot'",
    )
    .await;
    assert_eq!(
        b.js("return window.plugboardSmokeMarker").await,
        "still here",
        "the page was reloaded: the list should refresh in place"
    );
    let row = "tr[data-connection]";
    assert_eq!(b.js(&format!("return document.querySelectorAll({}).length", js_str(row))).await, 1);
    assert_eq!(b.text(&format!("{row} .component-cell")).await, "GitHub");
    assert_eq!(b.text(&format!("{row} .badge")).await, "NOT ACTIVE");
    assert_eq!(b.text(&format!("{row} .tag a")).await, "release");
    assert!(!b.js("return document.documentElement.outerHTML").await.to_string().contains(GITHUB_TOKEN));
    b.wait_for("the empty state is gone", "!$('.empty-state')").await;
    b.wait_for(
        "the notice says what was created",
        "text('#notice').includes('Release bot') && $('#notice').classList.contains('shown')",
    )
    .await;
    let stored = app.snapshot().connections;
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].name.as_str(), stored[0].component.as_str()), ("Release bot", "github"));
    assert_eq!(stored[0].tags, vec!["release"]);

    step("6. component filter and Back");
    // 6. The sidebar's component filter changes the URL (pushState), and
    // Back goes back.
    let github_facet = "aside.sidebar .facets.components a[href='/?component=github']";
    b.click(github_facet).await;
    b.wait_for(
        "the GitHub filter is current and in the URL",
        &format!(
            "location.search === '?component=github' && {facet} && {facet}.getAttribute('aria-current') === 'true'",
            facet = format!("$({})", js_str(github_facet))
        ),
    )
    .await;
    assert_eq!(b.path().await, "/?component=github");
    b.wait_for(
        "the filtered list shows the row",
        "text('tr[data-connection] .connection-name') === 'Release bot'",
    )
    .await;
    assert!(
        b.text("#filter-summary").await.contains("component GitHub"),
        "{}",
        b.text("#filter-summary").await
    );
    assert_eq!(b.js("return window.plugboardSmokeMarker").await, "still here", "filtering reloaded the page");
    b.client.back().await.expect("browser back");
    b.wait_for(
        "Back returns to the unfiltered list",
        "location.search === '' && text('#filter-summary').startsWith('1 connection in Development') \
         && $('aside.sidebar .facets.components a[href=\"/\"]').getAttribute('aria-current') === 'true'",
    )
    .await;
    assert_eq!(b.path().await, "/");
    b.wait_for("the row is still listed", "text('tr[data-connection] .connection-name') === 'Release bot'")
        .await;

    step("7. Staging");
    // 7. Staging has its own connections: none yet.
    b.click("button[value=staging]").await;
    b.wait_for(
        "Staging is selected and empty",
        "$('button[value=staging]').getAttribute('aria-pressed') === 'true' \
         && text('.empty-state h2') === 'No connections in Staging yet'",
    )
    .await;
    assert!(b.text("tr[data-connection]").await.is_empty(), "a Development row shows in Staging");

    step("8. Escape");
    // 8. Keyboard: Escape closes the dialog (opened here from the empty
    // state's button).
    b.click(".empty-state a.button").await;
    b.wait_for(
        "the dialog opens from \"Create Connection\"",
        "dialogOpen() && $('#dialog #component-search')",
    )
    .await;
    b.press(Key::Escape).await;
    b.wait_for("Escape closes the dialog", "!dialogOpen()").await;
    b.wait_for("the closed dialog is emptied", "$('dialog#dialog').innerHTML.trim() === ''").await;

    b.click("button[value=development]").await;
    b.wait_for(
        "Development is selected again and lists the row",
        "$('button[value=development]').getAttribute('aria-pressed') === 'true' \
         && text('tr[data-connection] .connection-name') === 'Release bot'",
    )
    .await;

    // And once more with "+ New connection", where the focus goes back to
    // the button after Escape.
    b.click("#new-connection").await;
    b.wait_for("the dialog opens again", "dialogOpen() && $('#dialog #component-search')").await;
    b.press(Key::Escape).await;
    b.wait_for("Escape closes the dialog again", "!dialogOpen()").await;
    b.expect(
        "the focus returns to \"+ New connection\" after Escape",
        "document.activeElement === $('#new-connection')",
    )
    .await;

    // No Content Security Policy violations, nor script errors, on the way.
    let console = b.console().await;
    let problems: Vec<&String> = console
        .iter()
        .filter(|line| {
            line.contains("Content Security Policy") || line.starts_with("SEVERE") && !is_expected_error(line)
        })
        .collect();
    if !problems.is_empty() {
        b.problem(format!(
            "the browser console reported problems:\n{problems:#?}\n(all of it: {console:#?})"
        ));
    }

    browser.assert_no_problems();
    browser.close().await;
    step("done");
}

/// Console errors that are the application working as meant: the refused
/// save answers 422, which Chromium logs as a failed request (htmx itself
/// logs nothing for it: see `responseHandling` in base.html).
fn is_expected_error(line: &str) -> bool {
    line.contains("/connections - Failed to load resource: the server responded with a status of 422")
}

/// The README's screenshot: several varied connections, at 1280 × 800 (or
/// `PLUGBOARD_SCREENSHOT_SIZE`). Only with `PLUGBOARD_SCREENSHOT` set to the
/// PNG's path; `scripts/screenshots` takes the desktop and phone pictures.
#[actix_web::test]
async fn readme_screenshot() {
    let Some(path) = std::env::var_os("PLUGBOARD_SCREENSHOT").filter(|p| !p.is_empty()) else {
        eprintln!("readme screenshot not taken: set PLUGBOARD_SCREENSHOT=docs/screenshot.png to take it");
        return;
    };
    let Some((driver, chromium)) = browser_paths() else { return };
    let app = common::spawn().await;
    const ACCEPTED: &str = "credentials accepted (HTTP 200)";
    let seeds = [
        Seed {
            component: "slack",
            name: "Support alerts",
            fields: &[("token", "xoxb-2041-7731-q8Zr2mNfPw"), ("new_tags", "support, alerts")],
            status: ("active", ACCEPTED),
        },
        Seed {
            component: "github",
            name: "Release bot",
            fields: &[("token", GITHUB_TOKEN), ("new_tags", "release")],
            status: ("not_active", "rejected by the service: HTTP 401"),
        },
        Seed {
            component: "stripe",
            name: "Billing (test mode)",
            fields: &[("token", "sk_test_51Hk2mQa8Vx"), ("new_tags", "billing")],
            status: ("active", ACCEPTED),
        },
        Seed {
            component: "openai",
            name: "Ticket summaries",
            fields: &[("token", "sk-proj-7fQ2xLm9"), ("new_tags", "support, ai")],
            status: ("not_active", "rejected by the service: HTTP 401 (invalid_api_key)"),
        },
        Seed {
            component: "notion",
            name: "Team wiki",
            fields: &[("token", "ntn_4821zkq7Hc"), ("new_tags", "docs")],
            status: ("active", ACCEPTED),
        },
        Seed {
            component: "aws_s3",
            name: "Nightly backups",
            fields: &[
                ("access_key_id", "AKIAIOSFODNN7EXAMPLE"),
                ("secret_access_key", "wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLEKEYab"),
                ("region", "eu-west-1"),
                ("new_tags", "backups, billing"),
            ],
            status: ("active", ACCEPTED),
        },
    ];
    for seed in seeds {
        let id = app.create(seed.component, seed.name, seed.fields).await;
        // Checks cannot reach the services from a test; show what they
        // would have found.
        use diesel::prelude::*;
        use plugboard::db::schema::connections;
        diesel::update(connections::table.find(id))
            .set((connections::status.eq(seed.status.0), connections::status_reason.eq(seed.status.1)))
            .execute(&mut app.db())
            .expect("set the status");
    }

    // `PLUGBOARD_SCREENSHOT_SIZE=390x844` takes the phone picture.
    let size = std::env::var("PLUGBOARD_SCREENSHOT_SIZE").unwrap_or_default();
    let (width, height) = size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .unwrap_or((1280, 800));
    let browser = Browser::start(&driver, &chromium, width, height).await;
    browser.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "the list shows six connections",
            "document.querySelectorAll('tr[data-connection]').length === 6",
        )
        .await;
    // Icons and fonts loaded.
    browser
        .wait_for(
            "every image has loaded",
            "[...document.images].every((i) => i.complete && i.naturalWidth > 0)",
        )
        .await;
    let path = std::path::PathBuf::from(path);
    browser.screenshot(&path).await;
    let inner = browser
        .js("return [window.innerWidth, window.innerHeight, document.documentElement.scrollWidth]")
        .await;
    say(&format!("screenshot saved to {} (viewport and page width: {inner})", path.display()));
    browser.close().await;
}

/// A connection for the screenshot: what the form gets, and the status
/// and reason a check would have left.
struct Seed {
    component: &'static str,
    name: &'static str,
    fields: &'static [(&'static str, &'static str)],
    status: (&'static str, &'static str),
}
