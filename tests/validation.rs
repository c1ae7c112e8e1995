//! Bad input: every refusal is a 4xx with a message a person can act on,
//! beside the field it concerns, and changes nothing stored.

mod common;

use common::{Page, TestApp};
use plugboard::environment::Environment;
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_abcdef123456";
const SLACK_TOKEN: &str = "xoxb-1111-2222-abcdef";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";

fn assert_client_error(page: &Page, status: StatusCode) {
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.status.is_client_error());
}

/// A plain (non-htmx) refused save: the whole form again, the message beside
/// the field, marked invalid.
fn assert_field_error(page: &Page, field: &str, expected: &str) {
    assert!(page.body.contains("<html"), "a plain post gets the whole page again");
    assert_eq!(page.count("form#connection-form"), 1, "the form is shown again: {}", page.body);
    let message = page.text_of(&format!("#error-{field}"));
    assert!(message.contains(expected), "error-{field}: {message:?}, expected {expected:?}");
    let summary = page.text_of("#form-summary");
    assert!(summary.contains("need") || summary.contains("saved"), "summary: {summary:?}");
}

async fn post_new(app: &TestApp, fields: &[(&str, &str)]) -> Page {
    app.post("/connections", fields).await
}

/// Posts a bad create and checks it is refused with `message` beside `field`
/// and that nothing was stored.
async fn refused_create(app: &TestApp, fields: &[(&str, &str)], field: &str, message: &str) -> Page {
    let before = app.snapshot();
    let page = post_new(app, fields).await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert_field_error(&page, field, message);
    assert_eq!(app.snapshot(), before, "a refused save changes nothing");
    page
}

// ---- the name ----

#[actix_web::test]
async fn create_with_an_empty_name_is_refused_beside_the_name() {
    let app = common::spawn().await;
    for name in ["", "    "] {
        let page = refused_create(
            &app,
            &[
                ("component", "slack"),
                ("auth_method", "bot_token"),
                ("name", name),
                ("field:token", SLACK_TOKEN),
            ],
            "name",
            "Give the connection a name",
        )
        .await;
        assert_eq!(page.attr("#field-name", "aria-invalid").as_deref(), Some("true"));
        assert_eq!(page.text_of("#form-summary"), "One thing needs fixing before this can be saved.");
        // The typed token is not sent back.
        assert!(!page.body.contains(SLACK_TOKEN));
        assert_eq!(page.attr("input[name='field:token']", "value").as_deref(), Some(""));
    }
    assert_eq!(app.count_rows("connections").await, 0);
}

#[actix_web::test]
async fn create_with_a_300_character_name_is_refused() {
    let app = common::spawn().await;
    let long = "n".repeat(300);
    let page = refused_create(
        &app,
        &[("component", "github"), ("auth_method", "token"), ("name", &long), ("field:token", GITHUB_TOKEN)],
        "name",
        "Use at most 100 characters; this name has 300.",
    )
    .await;
    // What was typed is kept, so it can be shortened.
    assert_eq!(page.attr("#field-name", "value"), Some(long));
}

#[actix_web::test]
async fn name_length_is_counted_in_characters() {
    let app = common::spawn().await;
    let hundred = "é".repeat(100);
    let page = post_new(
        &app,
        &[
            ("component", "github"),
            ("auth_method", "token"),
            ("name", &hundred),
            ("field:token", GITHUB_TOKEN),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "100 characters are allowed: {}", page.body);
    let hundred_one = "x".repeat(101);
    refused_create(
        &app,
        &[
            ("component", "github"),
            ("auth_method", "token"),
            ("name", &hundred_one),
            ("field:token", GITHUB_TOKEN),
        ],
        "name",
        "this name has 101",
    )
    .await;
}

#[actix_web::test]
async fn name_with_a_line_break_or_nul_is_refused() {
    let app = common::spawn().await;
    for name in ["two\nlines", "nul\0byte", "tab\there"] {
        refused_create(
            &app,
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", name),
                ("field:token", GITHUB_TOKEN),
            ],
            "name",
            "cannot contain line breaks or control characters",
        )
        .await;
    }
}

// ---- component and method ----

#[actix_web::test]
async fn unknown_component_is_refused() {
    let app = common::spawn().await;
    for component in ["no-such-service", ""] {
        let page = post_new(
            &app,
            &[("component", component), ("auth_method", "token"), ("name", "X"), ("field:token", "abc")],
        )
        .await;
        assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            page.text_of("section.error-panel").contains("Plugboard does not know this component"),
            "{}",
            page.body
        );
        let page = app
            .hx_post("/connections", &[("component", component), ("name", "X"), ("field:token", "abc")])
            .await;
        assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!page.body.contains("<html"));
        assert!(page.body.contains("Plugboard does not know this component"), "{}", page.body);
    }
    // Missing altogether.
    let page = post_new(&app, &[("name", "X")]).await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.count_rows("connections").await, 0);

    // The form for an unknown component is refused too.
    let page = app.get("/connections/new?component=no-such-service").await;
    assert!(page.status.is_client_error(), "{}", page.status);
    assert!(page.body.contains("Plugboard does not know this component"));
}

#[actix_web::test]
async fn unknown_or_missing_auth_method_is_refused() {
    let app = common::spawn().await;
    let page = refused_create(
        &app,
        &[("component", "slack"), ("auth_method", "telepathy"), ("name", "X"), ("field:token", SLACK_TOKEN)],
        "auth_method",
        "Choose how to authorize: Bot token, OAuth2.",
    )
    .await;
    assert!(!page.body.contains(SLACK_TOKEN));
    refused_create(
        &app,
        &[("component", "slack"), ("name", "X"), ("field:token", SLACK_TOKEN)],
        "auth_method",
        "Choose how to authorize",
    )
    .await;
}

// ---- field values ----

#[actix_web::test]
async fn missing_required_fields_are_named() {
    let app = common::spawn().await;
    refused_create(
        &app,
        &[("component", "slack"), ("auth_method", "bot_token"), ("name", "Chat")],
        "token",
        "Bot User OAuth Token is required.",
    )
    .await;
    refused_create(
        &app,
        &[("component", "slack"), ("auth_method", "bot_token"), ("name", "Chat"), ("field:token", "   ")],
        "token",
        "Bot User OAuth Token is required.",
    )
    .await;
    // Two missing: both named, and the summary counts them.
    let page = refused_create(
        &app,
        &[("component", "twilio"), ("auth_method", "basic"), ("name", "SMS")],
        "username",
        "Account SID is required.",
    )
    .await;
    assert!(page.text_of("#error-password").contains("Auth token is required."));
    assert_eq!(page.text_of("#form-summary"), "2 things need fixing before this can be saved.");
    // A setting (not part of the method) is required too.
    refused_create(
        &app,
        &[("component", "http"), ("auth_method", "bearer"), ("name", "API"), ("field:token", "t")],
        "base_url",
        "Base URL is required.",
    )
    .await;
}

#[actix_web::test]
async fn token_patterns_are_checked_without_repeating_the_value() {
    let app = common::spawn().await;
    let cases = [
        (
            "stripe",
            "secret_key",
            "pk_test_PUBLISHABLE999",
            "Secret or restricted key does not have the expected format",
        ),
        ("github", "token", "not-a-github-token-777", "Token does not have the expected format"),
        (
            "slack",
            "bot_token",
            "xoxz-WRONGPREFIX-555",
            "Bot User OAuth Token does not have the expected format",
        ),
        ("sendgrid", "api_key", "SG-missing-dots-444", "API key does not have the expected format"),
    ];
    for (component, method, value, message) in cases {
        let page = refused_create(
            &app,
            &[("component", component), ("auth_method", method), ("name", "X"), ("field:token", value)],
            "token",
            message,
        )
        .await;
        assert!(
            page.text_of("#error-token").contains("expected something like"),
            "{}",
            page.text_of("#error-token")
        );
        assert!(!page.body.contains(value), "{component}: a refused secret must not come back in the page");
    }
    // A pattern only matches whole values.
    refused_create(
        &app,
        &[
            ("component", "stripe"),
            ("auth_method", "secret_key"),
            ("name", "X"),
            ("field:token", "sk_test_abc def"),
        ],
        "token",
        "does not have the expected format",
    )
    .await;
}

#[actix_web::test]
async fn a_non_secret_field_that_fails_its_pattern_keeps_what_was_typed() {
    let app = common::spawn().await;
    let page = refused_create(
        &app,
        &[
            ("component", "twilio"),
            ("auth_method", "basic"),
            ("name", "SMS line"),
            ("field:username", "AC-not-hex"),
            ("field:password", "twilio-SECRET-777"),
            ("new_tags", "sms, eu"),
        ],
        "username",
        "Account SID does not have the expected format: expected something like AC…",
    )
    .await;
    assert_eq!(page.attr("#field-username", "aria-invalid").as_deref(), Some("true"));
    assert_eq!(page.attr("#field-name", "value").as_deref(), Some("SMS line"));
    assert_eq!(page.attr("#field-username", "value").as_deref(), Some("AC-not-hex"));
    assert_eq!(page.attr("#field-new_tags", "value").as_deref(), Some("sms, eu"));
    assert_eq!(page.attr("#field-password", "type").as_deref(), Some("password"));
    assert_eq!(page.attr("#field-password", "value").as_deref(), Some(""));
    assert!(!page.body.contains("twilio-SECRET-777"));
    assert_eq!(page.attr("input[name=auth_method]", "value").as_deref(), Some("basic"));
    assert_eq!(page.attr("input[name=component]", "value").as_deref(), Some("twilio"));
}

#[actix_web::test]
async fn a_value_over_8192_characters_is_refused() {
    let app = common::spawn().await;
    let long = "v".repeat(8193);
    let page = refused_create(
        &app,
        &[("component", "gitlab"), ("auth_method", "token"), ("name", "Git"), ("field:token", &long)],
        "token",
        "Access token can be at most 8192 characters; this has 8193.",
    )
    .await;
    assert!(!page.body.contains(&long[..100]));
    // A non-secret value too, and what was typed is not lost.
    let long_url = format!("https://example.com/{}", "p".repeat(8200));
    refused_create(
        &app,
        &[
            ("component", "http"),
            ("auth_method", "bearer"),
            ("name", "API"),
            ("field:base_url", &long_url),
            ("field:token", "t"),
        ],
        "base_url",
        "at most 8192 characters",
    )
    .await;
    // Exactly 8192 is fine.
    let page = post_new(
        &app,
        &[("component", "gitlab"), ("auth_method", "token"), ("name", "Git"), ("field:token", &long[..8192])],
    )
    .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[actix_web::test]
async fn a_value_with_a_nul_character_is_refused() {
    let app = common::spawn().await;
    refused_create(
        &app,
        &[("component", "gitlab"), ("auth_method", "token"), ("name", "Git"), ("field:token", "abc\0def")],
        "token",
        "contains a NUL character",
    )
    .await;
    refused_create(
        &app,
        &[
            ("component", "http"),
            ("auth_method", "bearer"),
            ("name", "API"),
            ("field:base_url", "https://x.example"),
            ("field:test_path", "/me\0"),
            ("field:token", "t"),
        ],
        "test_path",
        "contains a NUL character",
    )
    .await;
}

// ---- tags in the form ----

#[actix_web::test]
async fn bad_tags_in_the_form_are_refused() {
    let app = common::spawn().await;
    let base =
        [("component", "github"), ("auth_method", "token"), ("name", "Repo"), ("field:token", GITHUB_TOKEN)];
    let with = |extra: (&'static str, String)| {
        let mut fields: Vec<(&str, String)> = base.iter().map(|(k, v)| (*k, v.to_string())).collect();
        fields.push(extra);
        fields
    };
    let cases = [
        (("new_tags", format!("ok, {}", "t".repeat(41))), "Tags can be at most 40 characters; one has 41."),
        (("tag", "a,b".to_owned()), "Tags cannot contain commas"),
        (("new_tags", "line\u{7}bell".to_owned()), "Tags cannot contain commas or control characters"),
    ];
    for (extra, message) in cases {
        let fields = with(extra);
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        refused_create(&app, &pairs, "tags", message).await;
    }
    // Twenty-one tags.
    let many: Vec<String> = (0..21).map(|i| format!("t{i}")).collect();
    let fields = with(("new_tags", many.join(",")));
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    refused_create(&app, &pairs, "tags", "A connection can have at most 20 tags; this has 21.").await;
    assert_eq!(app.count_rows("tags").await, 0, "no tag is created by a refused save");
    // Exactly 40 characters is a valid tag.
    let fields = with(("new_tags", "t".repeat(40)));
    let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(post_new(&app, &pairs).await.status, StatusCode::SEE_OTHER);
}

// ---- htmx refusals ----

#[actix_web::test]
async fn htmx_refused_save_answers_out_of_band_errors_without_secrets() {
    let app = common::spawn().await;
    let secret = "sk_test_TYPEDSECRET42";
    let page = app
        .hx_post(
            "/connections",
            &[
                ("component", "stripe"),
                ("auth_method", "secret_key"),
                ("name", ""),
                ("field:token", secret),
                ("new_tags", &"x".repeat(41)),
            ],
        )
        .await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(page.header("hx-reswap"), Some("none"), "the form stays as typed");
    assert!(!page.body.contains("<html"));
    assert!(!page.body.contains(secret), "a secret never comes back: {}", page.body);
    assert!(page.header("hx-trigger").is_none_or(|t| !t.contains("connections-changed")));
    for (field, message) in
        [("name", "Give the connection a name"), ("tags", "Tags can be at most 40 characters")]
    {
        let selector = format!("#error-{field}[hx-swap-oob]");
        assert_eq!(page.count(&selector), 1, "{selector} in {}", page.body);
        assert!(page.text_of(&selector).contains(message), "{selector}: {}", page.text_of(&selector));
    }
    // The other fields' messages are cleared, out of band too.
    assert_eq!(page.count("#error-token[hx-swap-oob]"), 1);
    assert_eq!(page.text_of("#error-token"), "");
    assert!(page.text_of("#form-summary[hx-swap-oob]").contains("2 things need fixing"));
    assert_eq!(app.count_rows("connections").await, 0);

    // A pattern failure on the secret itself.
    let page = app
        .hx_post(
            "/connections",
            &[
                ("component", "stripe"),
                ("auth_method", "secret_key"),
                ("name", "Pay"),
                ("field:token", "pk_live_NOPE31"),
            ],
        )
        .await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(page.header("hx-reswap"), Some("none"));
    assert!(page.text_of("#error-token[hx-swap-oob]").contains("does not have the expected format"));
    assert!(!page.body.contains("pk_live_NOPE31"));
    assert_eq!(app.count_rows("connections").await, 0);
}

/// Bad creates as (fields, field with the error, message).
type BadCreate = (Vec<(&'static str, String)>, &'static str, &'static str);

fn bad_creates() -> Vec<BadCreate> {
    let base =
        |component: &'static str, method: &'static str, name: String, extra: &[(&'static str, String)]| {
            let mut fields =
                vec![("component", component.to_owned()), ("auth_method", method.to_owned()), ("name", name)];
            fields.extend(extra.iter().cloned());
            fields
        };
    let token = |v: &str| [("field:token", v.to_owned())];
    vec![
        (
            base("slack", "bot_token", String::new(), &token("xoxb-SECRET-1")),
            "name",
            "Give the connection a name",
        ),
        (
            base("slack", "bot_token", "n".repeat(300), &token("xoxb-SECRET-2")),
            "name",
            "Use at most 100 characters",
        ),
        (base("slack", "bot_token", "X".into(), &[]), "token", "Bot User OAuth Token is required."),
        (
            base("slack", "telepathy", "X".into(), &token("xoxb-SECRET-3")),
            "auth_method",
            "Choose how to authorize",
        ),
        (
            base("stripe", "secret_key", "X".into(), &token("pk_test_SECRET4")),
            "token",
            "does not have the expected format",
        ),
        (
            base("github", "token", "X".into(), &token("SECRET-5")),
            "token",
            "does not have the expected format",
        ),
        (
            base("slack", "bot_token", "X".into(), &token("xoxq-SECRET-6")),
            "token",
            "does not have the expected format",
        ),
        (
            base("gitlab", "token", "X".into(), &token(&format!("SECRET-7{}", "v".repeat(8200)))),
            "token",
            "at most 8192 characters",
        ),
        (
            base(
                "github",
                "token",
                "X".into(),
                &[("field:token", "ghp_SECRET8".into()), ("new_tags", "t".repeat(41))],
            ),
            "tags",
            "Tags can be at most 40 characters",
        ),
        (
            base(
                "github",
                "token",
                "X".into(),
                &[("field:token", "ghp_SECRET9".into()), ("tag", "a,b".into())],
            ),
            "tags",
            "Tags cannot contain commas",
        ),
    ]
}

#[actix_web::test]
async fn every_bad_create_over_htmx_gets_out_of_band_errors_and_changes_nothing() {
    let app = common::spawn().await;
    app.create("github", "Existing", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    let before = app.snapshot();
    for (fields, field, message) in bad_creates() {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = app.hx_post("/connections", &pairs).await;
        let what = format!("{field}: {message}");
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {}", page.body);
        assert_eq!(page.header("hx-reswap"), Some("none"), "{what}");
        let selector = format!("p#error-{field}[hx-swap-oob]");
        assert!(page.text_of(&selector).contains(message), "{what}: {}", page.body);
        assert!(!page.body.contains("SECRET"), "{what}: a typed secret came back");
        assert!(!page.body.contains("<html"));

        // And the same without JavaScript.
        let page = app.post("/connections", &pairs).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert!(page.text_of(&format!("#error-{field}")).contains(message), "{what}");
        assert!(!page.body.contains("SECRET"), "{what}: a typed secret came back");
        for input in ["field:token", "field:password", "field:client_secret"] {
            if let Some(value) = page.attr(&format!("input[name='{input}']"), "value") {
                assert_eq!(value, "", "{what}: secret input {input} is not empty");
            }
        }
    }
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn every_bad_edit_is_refused_and_changes_nothing() {
    let app = common::spawn().await;
    let id = app.create("slack", "Chat", &[("token", SLACK_TOKEN), ("new_tags", "ops")]).await;
    let before = app.snapshot();
    let path = format!("/connections/{id}");
    for (fields, field, message) in bad_creates() {
        let slack = fields.iter().any(|(k, v)| *k == "component" && v == "slack");
        if message.contains("required") || (!slack && field != "tags") {
            // A blank secret keeps the stored one on edit; other components'
            // fields do not apply to this Slack connection.
            continue;
        }
        let mut fields: Vec<(&str, String)> = fields
            .into_iter()
            .filter(|(k, _)| *k != "component" && (slack || *k != "field:token"))
            .map(|(k, v)| if k == "auth_method" && !slack { (k, "bot_token".to_owned()) } else { (k, v) })
            .collect();
        fields.push(("version", "1".into()));
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = app.post(&path, &pairs).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", page.body);
        assert!(page.text_of(&format!("#error-{field}")).contains(message), "{field}: {}", page.body);
        assert!(!page.body.contains("SECRET"));
        assert!(!page.body.contains(SLACK_TOKEN), "the stored secret never comes back");
        let page = app.hx_post(&path, &pairs).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}");
        assert_eq!(page.header("hx-reswap"), Some("none"));
        assert!(page.text_of(&format!("#error-{field}[hx-swap-oob]")).contains(message), "{field}");
    }
    assert_eq!(app.snapshot(), before);
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], SLACK_TOKEN);
}

#[actix_web::test]
async fn an_edit_cannot_change_the_component() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[("version", "1"), ("component", "stripe"), ("auth_method", "token"), ("name", "Repo")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.stored(id).unwrap().component, "github");
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], GITHUB_TOKEN);
}

// ---- edit ----

#[actix_web::test]
async fn refused_edit_changes_nothing_and_keeps_the_stored_secret() {
    let app = common::spawn().await;
    let id = app.create("twilio", "SMS", &[("username", TWILIO_SID), ("password", "twilio-SECRET-1")]).await;
    let before = app.snapshot();
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "basic"),
                ("name", "SMS renamed"),
                ("field:username", "bad sid"),
                ("field:password", "twilio-SECRET-2"),
            ],
        )
        .await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert_field_error(&page, "username", "Account SID does not have the expected format");
    assert_eq!(page.attr("form#connection-form", "action"), Some(format!("/connections/{id}")));
    assert_eq!(page.attr("#field-name", "value").as_deref(), Some("SMS renamed"));
    assert_eq!(page.attr("#field-username", "value").as_deref(), Some("bad sid"));
    assert_eq!(page.attr("#field-password", "value").as_deref(), Some(""));
    assert!(!page.body.contains("twilio-SECRET-2"));
    assert!(!page.body.contains("twilio-SECRET-1"));
    assert!(page.text_of("#help-password").contains("A value is stored"));
    assert_eq!(page.attr("input[name=version]", "value").as_deref(), Some("1"));
    assert_eq!(app.snapshot(), before);
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["password"], "twilio-SECRET-1");

    // htmx: only the errors.
    let page = app
        .hx_post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "basic"),
                ("name", ""),
                ("field:password", "twilio-SECRET-3"),
            ],
        )
        .await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(page.header("hx-reswap"), Some("none"));
    assert!(page.text_of("#error-name[hx-swap-oob]").contains("Give the connection a name"));
    assert!(page.text_of("#error-username[hx-swap-oob]").contains("Account SID is required"));
    assert!(!page.body.contains("twilio-SECRET-3"));
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn a_stale_version_is_refused_with_a_conflict_and_overwrites_nothing() {
    let app = common::spawn().await;
    let id = app.create("stripe", "Payments", &[("token", "sk_test_ORIGINAL1")]).await;
    // Two people open the form at version 1; the first saves.
    let first = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "secret_key"),
                ("name", "First"),
                ("field:token", "sk_test_FIRST2"),
            ],
        )
        .await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{}", first.body);
    let after_first = app.snapshot();

    let second = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "secret_key"),
                ("name", "Second"),
                ("field:token", "sk_test_SECOND3"),
                ("new_tags", "late"),
            ],
        )
        .await;
    assert_client_error(&second, StatusCode::CONFLICT);
    assert!(second.body.contains("<html"));
    let message = second.text_of("#error-form");
    assert!(message.contains("Someone else saved this connection after you opened it"), "{message}");
    assert!(message.contains("Open it again"), "{message}");
    assert!(second.text_of("#form-summary").contains("Someone else saved"));
    assert!(!second.body.contains("sk_test_SECOND3"));
    assert_eq!(app.snapshot(), after_first, "the second save overwrote nothing");
    let stored = app.stored(id).unwrap();
    assert_eq!((stored.name.as_str(), stored.version), ("First", 2));
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], "sk_test_FIRST2");
    assert_eq!(app.count_rows("tags").await, 0);

    // The same over htmx.
    let page = app
        .hx_post(
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", "secret_key"), ("name", "Third")],
        )
        .await;
    assert_client_error(&page, StatusCode::CONFLICT);
    assert_eq!(page.header("hx-reswap"), Some("none"));
    assert!(page.text_of("#error-form[hx-swap-oob]").contains("Someone else saved this connection"));
    // A version from the future is as stale as one from the past.
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[("version", "7"), ("auth_method", "secret_key"), ("name", "Future")],
        )
        .await;
    assert_client_error(&page, StatusCode::CONFLICT);
    assert_eq!(app.snapshot(), after_first);
}

#[actix_web::test]
async fn a_missing_or_unreadable_version_is_refused() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let before = app.snapshot();
    let path = format!("/connections/{id}");
    let mut cases: Vec<Vec<(&str, &str)>> = vec![vec![("auth_method", "token"), ("name", "Changed")]];
    for bad in ["", "abc", "1.0", "-", "99999999999", "1; DROP TABLE connections"] {
        cases.push(vec![("version", bad), ("auth_method", "token"), ("name", "Changed")]);
    }
    for fields in cases {
        let page = app.post(&path, &fields).await;
        assert_client_error(&page, StatusCode::BAD_REQUEST);
        assert!(
            page.text_of("section.error-panel").contains("missing its version"),
            "{fields:?}: {}",
            page.body
        );
        let page = app.hx_post(&path, &fields).await;
        assert_client_error(&page, StatusCode::BAD_REQUEST);
        assert!(page.body.contains("missing its version"));
        assert!(!page.body.contains("<html"));
    }
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn a_connection_whose_component_left_the_catalog_cannot_be_edited_but_can_be_deleted() {
    let app = common::spawn().await;
    let id = app.create("github", "Orphan", &[("token", GITHUB_TOKEN)]).await;
    {
        use diesel::prelude::*;
        use plugboard::db::schema::connections;
        diesel::update(connections::table.find(id))
            .set(connections::component.eq("retired_service"))
            .execute(&mut app.db())
            .unwrap();
    }
    let list = app.get("/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text_of(&format!("#connection-{id}")).contains("retired_service"));
    let before = app.snapshot();
    let page = app.get(&format!("/connections/{id}/edit")).await;
    assert_client_error(&page, StatusCode::CONFLICT);
    assert!(page.body.contains("no longer in the catalog"), "{}", page.body);
    let page = app.post(&format!("/connections/{id}"), &[("version", "1"), ("name", "X")]).await;
    assert_client_error(&page, StatusCode::CONFLICT);
    assert_eq!(app.snapshot(), before);
    let page = app.get(&format!("/connections/{id}/delete")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text_of("section.panel").contains("retired_service"));
    let page = app.post(&format!("/connections/{id}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(app.count_rows("connections").await, 0);
}

// ---- oversized bodies ----

#[actix_web::test]
async fn an_oversized_body_gets_413_with_a_friendly_page() {
    let app = common::spawn().await;
    let token = app.csrf().await;
    let big = format!(
        "csrf_token={token}&component=slack&auth_method=bot_token&name=Big&field%3Atoken={}",
        "a".repeat(70 * 1024)
    );
    let page = app.post_body("/connections", &[], big.into_bytes()).await;
    assert_client_error(&page, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        page.header("content-type").unwrap_or_default().starts_with("text/html"),
        "a page, not framework text: {:?} {}",
        page.header("content-type"),
        page.body
    );
    assert!(page.body.contains("larger than Plugboard accepts"), "{}", page.body);
    assert!(page.header("content-security-policy").is_some(), "error pages carry the security headers too");
    assert_eq!(app.count_rows("connections").await, 0);
}

#[actix_web::test]
async fn an_oversized_htmx_body_gets_413_with_a_friendly_fragment() {
    let app = common::spawn().await;
    let token = app.csrf().await;
    let big =
        format!("component=slack&auth_method=bot_token&name=Big&field%3Atoken={}", "a".repeat(70 * 1024));
    let page = app
        .post_body("/connections", &[("HX-Request", "true"), ("X-CSRF-Token", &token)], big.into_bytes())
        .await;
    assert_client_error(&page, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!page.body.contains("<html"));
    assert!(page.body.contains("larger than Plugboard accepts"), "{}", page.body);
    assert_eq!(app.count_rows("connections").await, 0);
}

#[actix_web::test]
async fn an_oversized_edit_changes_nothing() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let before = app.snapshot();
    let token = app.csrf().await;
    let big = format!("csrf_token={token}&version=1&auth_method=token&name={}", "n".repeat(70 * 1024));
    let page = app.post_body(&format!("/connections/{id}"), &[], big.into_bytes()).await;
    assert_client_error(&page, StatusCode::PAYLOAD_TOO_LARGE);
    let big = format!("version=1&auth_method=token&name={}", "n".repeat(70 * 1024));
    let page = app
        .post_body(
            &format!("/connections/{id}"),
            &[("HX-Request", "true"), ("X-CSRF-Token", &token)],
            big.into_bytes(),
        )
        .await;
    assert_client_error(&page, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.snapshot(), before);
}

// ---- inline tags ----

#[actix_web::test]
async fn bad_inline_tags_are_refused_and_change_nothing() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    let before = app.snapshot();
    let path = format!("/connections/{id}/tags");
    let forty_one = "t".repeat(41);
    let cases: [(&[(&str, &str)], &str); 5] = [
        (&[("tag", "")], "A tag needs at least one character."),
        (&[("tag", "   ")], "A tag needs at least one character."),
        (&[], "A tag needs at least one character."),
        (&[("tag", &forty_one)], "Tags can be at most 40 characters; one has 41."),
        (&[("tag", "eu,us")], "Tags cannot contain commas"),
    ];
    for (fields, message) in cases {
        let page = app.post(&path, fields).await;
        assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.text_of("section.error-panel").contains(message), "{fields:?}: {}", page.body);
        let page = app.hx_post(&path, fields).await;
        assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(!page.body.contains("<html"));
        assert!(page.body.contains(message), "{}", page.body);
    }
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn a_twenty_first_inline_tag_is_refused() {
    let app = common::spawn().await;
    let twenty: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN), ("new_tags", &twenty.join(","))]).await;
    assert_eq!(app.stored(id).unwrap().tags.len(), 20);
    let before = app.snapshot();
    let page = app.post(&format!("/connections/{id}/tags"), &[("tag", "one-more")]).await;
    assert_client_error(&page, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("at most 20 tags"), "{}", page.body);
    assert_eq!(app.snapshot(), before, "not even the new tag name is kept");
    // A tag it already has is not a 21st.
    let page = app.post(&format!("/connections/{id}/tags"), &[("tag", "T3")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[actix_web::test]
async fn tag_removal_with_a_malformed_tag_id_is_not_found() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    let before = app.snapshot();
    for tag in ["abc", "1.5", "99999999999999999999999"] {
        let page = app.post(&format!("/connections/{id}/tags/{tag}/delete"), &[]).await;
        assert_client_error(&page, StatusCode::NOT_FOUND);
        assert!(page.body.contains("There is no page at this address"), "{}", page.body);
    }
    assert_eq!(app.snapshot(), before);
}

// ---- environment ----

#[actix_web::test]
async fn an_unknown_environment_is_refused_and_the_current_one_kept() {
    let app = common::spawn().await;
    app.switch_environment("staging").await;
    for fields in
        [&[("environment", "moon")][..], &[("environment", "Production")], &[("environment", "")], &[]]
    {
        let page = app.post("/environment", fields).await;
        assert_client_error(&page, StatusCode::BAD_REQUEST);
        assert!(page.text_of("section.error-panel").contains("Choose Development, Staging or Production."));
    }
    let page = app.get("/").await;
    assert_eq!(page.attr("button[aria-pressed=true]", "value").as_deref(), Some("staging"));
}

// ---- addresses and queries ----

#[actix_web::test]
async fn malformed_ids_and_unknown_addresses_are_not_found() {
    let app = common::spawn().await;
    app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let before = app.snapshot();
    for path in [
        "/connections/abc/edit",
        "/connections/abc/delete",
        "/connections/-/edit",
        "/connections/99999999999999999999/edit",
        "/nowhere",
        "/connections/1/edit/extra",
    ] {
        let page = app.get(path).await;
        assert_client_error(&page, StatusCode::NOT_FOUND);
        assert!(page.text_of("section.error-panel").contains("Not found"), "{path}: {}", page.body);
        assert_eq!(page.attr("section.error-panel a", "href").as_deref(), Some("/"));
    }
    for path in ["/connections/abc", "/connections/abc/delete", "/connections/abc/tags"] {
        let page = app.post(path, &[("version", "1"), ("name", "X"), ("tag", "x")]).await;
        assert_client_error(&page, StatusCode::NOT_FOUND);
        assert!(page.body.contains("There is no page at this address"));
    }
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn the_wrong_method_on_a_route_gets_a_friendly_refusal() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let before = app.snapshot();
    for path in [format!("/connections/{id}"), format!("/connections/{id}/tags"), "/environment".to_owned()] {
        let page = app.get(&path).await;
        assert!(
            matches!(page.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED),
            "{path}: {}",
            page.status
        );
        assert!(page.body.contains("error-panel"), "{path}: {}", page.body);
    }
    let page = app.post("/", &[]).await;
    assert!(matches!(page.status, StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED));
    assert!(page.body.contains("error-panel"));
    assert_eq!(app.snapshot(), before);
}

#[actix_web::test]
async fn odd_list_queries_never_fail() {
    let app = common::spawn().await;
    app.create("github", "Repo", &[("token", GITHUB_TOKEN), ("new_tags", "ops")]).await;
    let long = "q".repeat(500);
    let mut failures = Vec::new();
    for query in [
        "q=%00",
        "q=a%00b",
        "component=%00",
        "tag=%00",
        "q=%FF%FE",
        "status=bogus",
        "status=active",
        "sort=%00",
        "page=%00",
        "q=%27%3B+DROP+TABLE+connections%3B--",
        "component=%27+OR+1%3D1--",
    ] {
        let page = app.get(&format!("/?{query}")).await;
        if page.status != StatusCode::OK {
            failures.push(format!("/?{query}: {}", page.status));
        }
        let page = app.hx_get(&format!("/?{query}")).await;
        if page.status != StatusCode::OK {
            failures.push(format!("htmx /?{query}: {}", page.status));
        }
    }
    // Values longer than any name are refused with a message, never run.
    for query in [format!("q={long}"), format!("tag={long}")] {
        for page in [app.get(&format!("/?{query}")).await, app.hx_get(&format!("/?{query}")).await] {
            if page.status != StatusCode::BAD_REQUEST || !page.body.contains("at most 100 characters") {
                failures.push(format!("/?{query}: {}", page.status));
            }
        }
    }
    assert!(failures.is_empty(), "list queries that failed: {failures:#?}");
    assert_eq!(app.count_rows("connections").await, 1);
    // An unreadable query string is refused plainly, not with a server error.
    let page = app.get("/?q=a&q=b").await;
    assert!(page.status == StatusCode::OK || page.status == StatusCode::BAD_REQUEST, "{}", page.status);
    for query in ["q=%00", "component=%00"] {
        let page = app.get(&format!("/connections/new?{query}")).await;
        assert!(!page.status.is_server_error(), "/connections/new?{query}: {}", page.status);
    }
}
