//! OAuth2 Connect in a real browser (headless Chromium) with JavaScript:
//! the provider's sign-in runs in a popup against a real authorization
//! server on 127.0.0.1, and the list refreshes itself when it is done.
//! Without JavaScript the same flow is full-page redirects and back.
//! Skips without Chromium unless PLUGBOARD_REQUIRE_BROWSER=1.

mod browser_support;
mod common;
mod oauth_provider;

use std::time::Duration;

use browser_support::{Browser, browser_paths};
use oauth_provider::{Client, Provider, ProviderConfig};

/// A test authorization server, and Plugboard with a catalog component
/// that signs in with it, the server knowing Plugboard's redirect URI.
async fn provider_and_app() -> (Provider, common::TestApp, tempfile::TempDir) {
    let provider =
        Provider::start(ProviderConfig::for_client(Client::new("browser-client", "browser-secret", "")))
            .await;
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(
        &catalog,
        format!(
            "[testauth]\nname = \"Test Auth\"\ncategory = \"Testing\"\nbase_url = \"{base}\"\n\n\
             [testauth.auth.oauth2]\nkind = \"oauth2_authorization_code\"\nlabel = \"Sign in\"\n\
             authorization_url = \"{authorize}\"\ntoken_url = \"{token}\"\nscopes = [\"read\"]\n\n\
             [testauth.test]\npath = \"/me\"\n",
            base = provider.base_url(),
            authorize = provider.authorize_url(),
            token = provider.token_url(),
        ),
    )
    .unwrap();
    let app = common::spawn_with(|s| s.catalog = Some(catalog.clone())).await;
    provider.configure(|c| c.clients[0].redirect_uris = vec![format!("{}/oauth2/callback", app.base)]);
    (provider, app, dir)
}

/// Without JavaScript the same Connect is plain pages: the form posts, the
/// answer moves on to the provider by itself (a meta refresh), and the
/// provider's redirect back lands on the list.
#[actix_web::test]
async fn without_javascript_connect_is_full_page_redirects_back_to_the_list() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let (provider, app, _catalog) = provider_and_app().await;
    let browser = Browser::start_without_javascript(&driver, &chromium, 1280, 800).await;
    let b = &browser;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    assert_eq!(b.js("return typeof window.htmx").await, "undefined", "the page's scripts ran");
    b.goto(&app.url("/")).await;
    b.click("#new-connection").await;
    b.wait_for("the picker page", "$('a[data-component=testauth]')").await;
    b.click("a[data-component=testauth]").await;
    b.wait_for("the OAuth2 form page", "$('form[data-oauth-connect]')").await;
    b.clear("#field-name").await;
    b.type_into("#field-name", "Full-page account").await;
    b.type_into("#field-client_id", "browser-client").await;
    b.type_into("#field-client_secret", "browser-secret").await;
    b.click("form[data-oauth-connect] button[type=submit]").await;
    b.wait_for_within(
        "to the provider and back, the list shows the new connection ACTIVE",
        "location.pathname === '/' && [...document.querySelectorAll('tr[data-connection]')].some(tr => \
         tr.textContent.includes('Full-page account') && tr.querySelector('.badge')?.textContent.trim() === 'ACTIVE')",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(provider.authorize_requests(), 1);
    assert_eq!(provider.code_exchanges(), 1);
    browser.close().await;
}

#[actix_web::test]
async fn connect_runs_in_a_popup_and_the_list_shows_the_connection_active() {
    let Some((driver, chromium)) = browser_paths() else { return };
    let (provider, app, _catalog) = provider_and_app().await;

    let browser = Browser::start(&driver, &chromium, 1280, 800).await;
    let b = &browser;
    b.sign_in(&app.base, common::ADMIN_EMAIL, common::PASSWORD).await;
    b.goto(&app.url("/")).await;
    b.wait_for("the page and htmx have loaded", "window.htmx && $('#workspace')").await;
    b.click("#new-connection").await;
    b.wait_for("the picker opens", "dialogOpen() && $('#dialog a[data-component=testauth]')").await;
    b.click("#dialog a[data-component=testauth]").await;
    b.wait_for("the OAuth2 form appears", "dialogOpen() && $('#dialog form[data-oauth-connect]')").await;
    let redirect = b.value("#redirect-uri").await;
    assert_eq!(redirect, format!("{}/oauth2/callback", app.base));
    b.clear("#field-name").await;
    b.type_into("#field-name", "Popup account").await;
    b.type_into("#field-client_id", "browser-client").await;
    b.type_into("#field-client_secret", "browser-secret").await;
    b.click("#dialog form[data-oauth-connect] button[type=submit]").await;
    b.wait_for_within(
        "the popup signs in, closes, and the list shows the new connection ACTIVE",
        "!dialogOpen() && [...document.querySelectorAll('tr[data-connection]')].some(tr => \
         tr.textContent.includes('Popup account') && tr.querySelector('.badge')?.textContent.trim() === 'ACTIVE')",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(b.path().await, "/", "the page itself never left the list");
    assert_eq!(provider.code_exchanges(), 1);
    b.assert_no_problems();
    browser.close().await;
}
