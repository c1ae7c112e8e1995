//! The connections list and forms over HTTP.

mod common;

use common::{Page, TestApp};
use plugboard::environment::Environment;
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_abcdef123456";
const SLACK_TOKEN: &str = "xoxb-1111-2222-abcdef";
const STRIPE_KEY: &str = "sk_test_abc123";

/// The names of the rows shown, in order.
fn names(page: &Page) -> Vec<String> {
    page.texts("tr[data-connection] .connection-name")
}

/// Sidebar entries as (name, count), in order, of the facet list under the
/// heading `title` ("Components", "Tags").
fn facets(page: &Page, title: &str) -> Vec<(String, String)> {
    facet_entries(page, title).into_iter().map(|(name, count, _)| (name, count)).collect()
}

/// The name of the entry marked current in the facet list `title`.
fn current_facet(page: &Page, title: &str) -> Vec<String> {
    facet_entries(page, title).into_iter().filter(|e| e.2).map(|e| e.0).collect()
}

fn facet_entries(page: &Page, title: &str) -> Vec<(String, String, bool)> {
    let html = page.html();
    let children = scraper::Selector::parse("aside.sidebar > *").unwrap();
    let link = scraper::Selector::parse("li a").unwrap();
    let name = scraper::Selector::parse(".facet-name").unwrap();
    let count = scraper::Selector::parse(".facet-count").unwrap();
    let mut heading = String::new();
    for child in html.select(&children) {
        match child.value().name() {
            "h2" => heading = child.text().collect::<String>().trim().to_owned(),
            "ul" if heading == title => {
                return child
                    .select(&link)
                    .map(|a| {
                        let text = |s: &scraper::Selector| {
                            a.select(s)
                                .next()
                                .map(|e| e.text().collect::<String>().trim().to_owned())
                                .unwrap_or_default()
                        };
                        (text(&name), text(&count), a.value().attr("aria-current") == Some("true"))
                    })
                    .collect();
            }
            _ => {}
        }
    }
    panic!("no facet list titled {title}");
}

fn pair(name: &str, count: usize) -> (String, String) {
    (name.to_owned(), count.to_string())
}

async fn seed_three(app: &TestApp) -> (i64, i64, i64) {
    let a =
        app.create("github", "Ops GitHub", &[("token", GITHUB_TOKEN), ("new_tags", "ops, Billing")]).await;
    let b = app.create("slack", "Team Slack", &[("token", SLACK_TOKEN), ("new_tags", "ops")]).await;
    let c = app.create("github", "Release Bot", &[("token", GITHUB_TOKEN)]).await;
    (a, b, c)
}

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
    let id = app
        .create("github", "Ops GitHub", &[("token", "ghp_abcdef123456"), ("new_tags", "ops, Billing")])
        .await;
    let page = app.get("/").await;
    let row = format!("#connection-{id}");
    assert!(page.text_of(&row).contains("Ops GitHub"));
    assert!(page.text_of(&format!("{row} .badge")).contains("NOT ACTIVE"));
    // Saving runs a check; in tests it cannot reach the service, so the
    // reason says why.
    assert!(!page.text_of(&format!("{row} .status-reason")).is_empty());
    assert_eq!(page.texts(&format!("{row} .tag a")), vec!["Billing", "ops"]);
    assert!(!page.body.contains("ghp_abcdef123456"));
}

// ---- the list page and its fragment ----

#[actix_web::test]
async fn full_page_has_layout_and_htmx_get_returns_only_the_workspace() {
    let app = common::spawn().await;
    seed_three(&app).await;

    let full = app.get("/").await;
    assert_eq!(full.status, StatusCode::OK);
    assert!(full.body.to_lowercase().starts_with("<!doctype html>"), "{}", &full.body[..100]);
    assert_eq!(full.count("html"), 1);
    assert_eq!(full.count("header.topbar"), 1);
    assert_eq!(full.count("#workspace"), 1);
    assert_eq!(full.count("form[action='/environment']"), 1);
    assert!(full.header("content-type").unwrap_or_default().starts_with("text/html"));

    let fragment = app.hx_get("/").await;
    assert_eq!(fragment.status, StatusCode::OK);
    let body = fragment.body.trim_start();
    assert!(body.starts_with("<div id=\"workspace\""), "{}", &body[..body.len().min(200)]);
    assert!(!fragment.body.contains("<html"), "a fragment must not hold the layout");
    assert!(!fragment.body.contains("<head"));
    assert!(!fragment.body.contains("topbar"));
    assert_eq!(names(&fragment), names(&full));
    assert_eq!(names(&fragment).len(), 3);
    // The page and the fragment share a URL, so caches must keep them apart.
    assert!(fragment.header("vary").unwrap_or_default().to_lowercase().contains("hx-request"));
}

#[actix_web::test]
async fn htmx_history_restore_gets_the_whole_page() {
    let app = common::spawn().await;
    let page = app.get_with("/", &[("HX-Request", "true"), ("HX-History-Restore-Request", "true")]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<html"), "history restore needs the whole page");
}

#[actix_web::test]
async fn search_by_name_is_case_insensitive() {
    let app = common::spawn().await;
    seed_three(&app).await;
    for q in ["slack", "SLACK", "sLaCk", "team s"] {
        let page = app.get(&format!("/?q={}", q.replace(' ', "+"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(names(&page), vec!["Team Slack"], "search {q:?}");
    }
    let page = app.get("/?q=GITHUB").await;
    assert_eq!(names(&page), vec!["Ops GitHub"]);
    let page = app.get("/?q=o").await;
    assert_eq!(names(&page).len(), 2, "Ops GitHub and Release Bot contain an o");
    // The search box keeps what was searched.
    assert_eq!(page.attr("input#search", "value").as_deref(), Some("o"));
    // No match: says so, offers to clear.
    let page = app.get("/?q=nothing-like-this").await;
    assert!(names(&page).is_empty());
    assert!(page.text_of(".empty-state").contains("No connection matches these filters"), "{}", page.body);
    assert_eq!(page.attr(".empty-state a", "href").as_deref(), Some("/"));
}

#[actix_web::test]
async fn search_is_case_insensitive_for_non_ascii_names() {
    let app = common::spawn().await;
    app.create("slack", "Équipe Ünited", &[("token", SLACK_TOKEN)]).await;
    app.create("slack", "Other", &[("token", SLACK_TOKEN)]).await;
    for q in ["équipe", "ÉQUIPE", "ünited", "ÜNITED"] {
        let page = app.get(&format!("/?q={}", urlencode(q))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert_eq!(names(&page), vec!["Équipe Ünited"], "search {q:?} should ignore case");
    }
}

#[actix_web::test]
async fn search_treats_percent_and_underscore_literally() {
    let app = common::spawn().await;
    app.create("slack", "100% uptime", &[("token", SLACK_TOKEN)]).await;
    app.create("slack", "snake_case", &[("token", SLACK_TOKEN)]).await;
    app.create("slack", "plain", &[("token", SLACK_TOKEN)]).await;
    let page = app.get("/?q=%25").await;
    assert_eq!(names(&page), vec!["100% uptime"]);
    let page = app.get("/?q=_").await;
    assert_eq!(names(&page), vec!["snake_case"]);
    let page = app.get("/?q=%5C").await;
    assert!(names(&page).is_empty(), "a backslash matches nothing here");
}

#[actix_web::test]
async fn sort_by_name_and_by_date() {
    let app = common::spawn().await;
    for name in ["bravo", "Alpha", "charlie", "Delta"] {
        app.create("slack", name, &[("token", SLACK_TOKEN)]).await;
    }
    // Default: newest first.
    assert_eq!(names(&app.get("/").await), vec!["Delta", "charlie", "Alpha", "bravo"]);
    assert_eq!(names(&app.get("/?sort=newest").await), vec!["Delta", "charlie", "Alpha", "bravo"]);
    assert_eq!(names(&app.get("/?sort=oldest").await), vec!["bravo", "Alpha", "charlie", "Delta"]);
    // By name, ignoring case.
    assert_eq!(names(&app.get("/?sort=name").await), vec!["Alpha", "bravo", "charlie", "Delta"]);
    assert_eq!(names(&app.get("/?sort=-name").await), vec!["Delta", "charlie", "bravo", "Alpha"]);
    // The select shows the sort in use; an unknown sort falls back to newest.
    let page = app.get("/?sort=name").await;
    assert_eq!(page.attr("select#sort option[selected]", "value").as_deref(), Some("name"));
    let page = app.get("/?sort=sideways").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(names(&page), vec!["Delta", "charlie", "Alpha", "bravo"]);
    assert_eq!(page.attr("select#sort option[selected]", "value").as_deref(), Some("newest"));
}

#[actix_web::test]
async fn name_sort_keeps_accented_names_with_their_letter() {
    let app = common::spawn().await;
    for name in ["Zed", "Émile", "eve", "adam", "Örjan", "oscar"] {
        app.create("slack", name, &[("token", SLACK_TOKEN)]).await;
    }
    let order = names(&app.get("/?sort=name").await);
    let at = |n: &str| order.iter().position(|x| x == n).unwrap();
    // "Name A–Z" must not put É and Ö after Z.
    assert!(at("adam") < at("Émile") && at("Émile") < at("Zed"), "{order:?}");
    assert!(at("eve") < at("Örjan") && at("Örjan") < at("Zed"), "{order:?}");
    let reverse = names(&app.get("/?sort=-name").await);
    assert_eq!(reverse.first().map(String::as_str), Some("Zed"), "{reverse:?}");
}

#[actix_web::test]
async fn pagination_shows_fifty_per_page() {
    let app = common::spawn().await;
    app.create_many("slack", "bot_token", 55, |i| format!("Conn {i:02}"), &[("field:token", SLACK_TOKEN)])
        .await;
    assert_eq!(app.count_rows("connections").await, 55);

    let first = app.get("/?sort=name").await;
    assert_eq!(first.status, StatusCode::OK);
    let shown = names(&first);
    assert_eq!(shown.len(), 50);
    assert_eq!(shown[0], "Conn 00");
    assert_eq!(shown[49], "Conn 49");
    let nav = first.text_of("nav.pagination");
    assert!(nav.contains("1–50 of 55"), "{nav}");
    assert!(nav.contains("Page 1 of 2"), "{nav}");
    assert_eq!(first.count("nav.pagination a[rel=prev]"), 0);
    let next = first.attr("nav.pagination a[rel=next]", "href").expect("a next link");
    assert!(next.contains("page=2") && next.contains("sort=name"), "{next}");
    assert!(first.text_of("#filter-summary").contains("55 connections in Development"));

    let second = app.get(&next).await;
    assert_eq!(names(&second), vec!["Conn 50", "Conn 51", "Conn 52", "Conn 53", "Conn 54"]);
    let nav = second.text_of("nav.pagination");
    assert!(nav.contains("51–55 of 55"), "{nav}");
    assert!(nav.contains("Page 2 of 2"), "{nav}");
    assert_eq!(second.count("nav.pagination a[rel=next]"), 0);
    let prev = second.attr("nav.pagination a[rel=prev]", "href").expect("a previous link");
    assert_eq!(names(&app.get(&prev).await), shown);

    // The Next link starts after the page's last row, rather than
    // counting rows from the start again.
    assert!(next.contains("after="), "{next}");
    // A page past the end is answered with the last page, under its own
    // address; unreadable pages show the first.
    let past = app.get("/?sort=name&page=99").await;
    assert_eq!(past.status, StatusCode::SEE_OTHER);
    let last = past.header("location").expect("where the last page is").to_owned();
    assert_eq!(last, "/?sort=name&page=2");
    let last = app.get(&last).await;
    assert_eq!(names(&last).len(), 5);
    assert!(last.text_of("nav.pagination").contains("Page 2 of 2"));
    for bad in ["0", "-3", "abc", "99999999999999999999999"] {
        let page = app.get(&format!("/?sort=name&page={bad}")).await;
        assert_eq!(page.status, StatusCode::OK, "page={bad}");
        assert_eq!(names(&page), shown, "page={bad}");
    }
    // Filters narrow the count too.
    let page = app.get("/?q=Conn+5").await;
    assert_eq!(names(&page).len(), 5);
    assert!(page.text_of("nav.pagination").contains("1–5 of 5"));
}

#[actix_web::test]
async fn filter_by_component_lists_only_its_connections_and_says_so() {
    let app = common::spawn().await;
    seed_three(&app).await;
    let page = app.get("/?component=github").await;
    assert_eq!(page.status, StatusCode::OK);
    let mut shown = names(&page);
    shown.sort();
    assert_eq!(shown, vec!["Ops GitHub", "Release Bot"]);
    let summary = page.text_of("#filter-summary");
    assert!(summary.contains("Showing 2 of 3"), "{summary}");
    assert!(summary.contains("component GitHub"), "{summary}");
    assert_eq!(page.attr("#filter-summary a.clear-filters", "href").as_deref(), Some("/"));
    // The sidebar marks the component in use.
    assert_eq!(current_facet(&page, "Components"), vec!["GitHub"]);
    // A component without connections here, or unknown, lists nothing.
    let page = app.get("/?component=stripe").await;
    assert!(names(&page).is_empty());
    assert!(page.text_of(".empty-state").contains("No connection matches"));
    let page = app.get("/?component=no-such-thing").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(names(&page).is_empty());
}

#[actix_web::test]
async fn filter_by_tag_is_case_insensitive_and_says_so() {
    let app = common::spawn().await;
    seed_three(&app).await;
    for tag in ["ops", "OPS", "Ops"] {
        let page = app.get(&format!("/?tag={tag}")).await;
        assert_eq!(page.status, StatusCode::OK);
        let mut shown = names(&page);
        shown.sort();
        assert_eq!(shown, vec!["Ops GitHub", "Team Slack"], "tag {tag}");
    }
    let page = app.get("/?tag=billing").await;
    assert_eq!(names(&page), vec!["Ops GitHub"]);
    let summary = page.text_of("#filter-summary");
    assert!(summary.contains("Showing 1 of 3"), "{summary}");
    assert!(summary.contains("tag billing"), "{summary}");
    assert_eq!(
        page.attr("#filter-summary a[aria-label='Remove the tag filter']", "href").as_deref(),
        Some("/")
    );
    assert_eq!(page.attr("#filter-summary a.clear-filters", "href").as_deref(), Some("/"));
    assert_eq!(current_facet(&page, "Tags"), vec!["Billing"]);
}

#[actix_web::test]
async fn filter_by_unknown_tag_gives_an_empty_list() {
    let app = common::spawn().await;
    seed_three(&app).await;
    for tag in ["nope", "x%2Cy", &"t".repeat(41)] {
        let page = app.get(&format!("/?tag={tag}")).await;
        assert_eq!(page.status, StatusCode::OK, "tag {tag}");
        assert!(names(&page).is_empty(), "an unknown tag must match nothing, not everything: {tag}");
        assert!(page.text_of(".empty-state").contains("No connection matches these filters"));
        assert!(page.text_of("#filter-summary").contains("Showing 0 of 3"));
    }
}

#[actix_web::test]
async fn combined_filters_are_described_and_clearing_keeps_the_sort() {
    let app = common::spawn().await;
    seed_three(&app).await;
    let page = app.get("/?component=github&tag=ops&q=git&sort=name").await;
    assert_eq!(names(&page), vec!["Ops GitHub"]);
    let summary = page.text_of("#filter-summary");
    assert!(summary.contains("Showing 1 of 3"), "{summary}");
    assert!(summary.contains("component GitHub"), "{summary}");
    assert!(summary.contains("tag ops"), "{summary}");
    assert!(summary.contains("name contains “git”"), "{summary}");
    assert!(summary.contains("Clear filters"), "{summary}");
    assert_eq!(page.attr("a.clear-filters", "href").as_deref(), Some("/?sort=name"));
    // Removing one filter keeps the others.
    let without_tag = page.attr("#filter-summary a[aria-label='Remove the tag filter']", "href").unwrap();
    assert!(without_tag.contains("component=github") && !without_tag.contains("tag="), "{without_tag}");
    let without_search = page.attr("#filter-summary a[aria-label='Remove the search']", "href").unwrap();
    assert!(without_search.contains("tag=ops") && !without_search.contains("q="), "{without_search}");
    // The search form carries the other filters along.
    assert_eq!(page.attr("form.list-controls input[name=component]", "value").as_deref(), Some("github"));
    assert_eq!(page.attr("form.list-controls input[name=tag]", "value").as_deref(), Some("ops"));
    // Unfiltered: no clear link, a plain count.
    let page = app.get("/").await;
    assert_eq!(page.count("a.clear-filters"), 0);
    assert!(page.text_of("#filter-summary").starts_with("3 connections in Development"));
}

#[actix_web::test]
async fn sidebar_lists_components_with_connections_in_this_environment() {
    let app = common::spawn().await;
    seed_three(&app).await;
    app.switch_environment("staging").await;
    app.create("stripe", "Staging Stripe", &[("token", STRIPE_KEY), ("new_tags", "payments")]).await;
    app.switch_environment("development").await;

    let page = app.get("/").await;
    assert_eq!(
        facets(&page, "Components"),
        vec![pair("All Components", 3), pair("GitHub", 2), pair("Slack", 1)]
    );
    assert_eq!(page.attr("aside.sidebar ul.facets a[aria-current=true]", "href").as_deref(), Some("/"));
    let link = page.attr("aside.sidebar a[href='/?component=slack']", "href");
    assert_eq!(link.as_deref(), Some("/?component=slack"));
    // Tags with their counts, only those used here.
    assert_eq!(facets(&page, "Tags"), vec![pair("Billing", 1), pair("ops", 2)]);

    app.switch_environment("staging").await;
    let page = app.get("/").await;
    assert_eq!(facets(&page, "Components"), vec![pair("All Components", 1), pair("Stripe", 1)]);
    assert_eq!(facets(&page, "Tags"), vec![pair("payments", 1)]);

    app.switch_environment("production").await;
    let page = app.get("/").await;
    assert_eq!(facets(&page, "Components"), vec![pair("All Components", 0)]);
    assert!(page.text_of("aside.sidebar .facet-empty").contains("No tags in Production yet"));
    assert!(page.text_of(".empty-state").contains("No connections in Production yet"));
}

#[actix_web::test]
async fn sidebar_component_link_keeps_the_tag_filter() {
    let app = common::spawn().await;
    seed_three(&app).await;
    // A second page as its Next link reaches it: after a row.
    let first = app.get("/?tag=ops&sort=name").await;
    let first_id = first.attr("tr[data-connection]", "data-connection").unwrap();
    let page = app.get(&format!("/?tag=ops&sort=name&page=2&after={first_id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let href = page.attr("aside.sidebar a[href*='component=slack']", "href").unwrap();
    assert!(href.contains("tag=ops") && href.contains("sort=name"), "{href}");
    assert!(
        !href.contains("page=") && !href.contains("after="),
        "choosing a component goes back to page 1: {href}"
    );
    assert_eq!(names(&app.get(&href).await), vec!["Team Slack"]);
}

#[actix_web::test]
async fn status_filter_lists_only_that_status_and_says_so() {
    let app = common::spawn().await;
    let (a, _, _) = seed_three(&app).await;
    {
        use diesel::prelude::*;
        use plugboard::db::schema::connections;
        diesel::update(connections::table.find(a))
            .set((connections::status.eq("active"), connections::status_reason.eq("checked")))
            .execute(&mut app.db())
            .unwrap();
    }
    let page = app.get("/?status=active").await;
    assert_eq!(names(&page), vec!["Ops GitHub"]);
    let mut others = names(&app.get("/?status=not_active").await);
    others.sort();
    assert_eq!(others, vec!["Release Bot", "Team Slack"]);
    let summary = page.text_of("#filter-summary");
    assert!(summary.contains("Showing 1 of 3"), "{summary}");
    assert_eq!(page.attr("a.clear-filters", "href").as_deref(), Some("/"));
    // The header says what is filtered.
    assert!(summary.to_lowercase().contains("active"), "the status filter is not described: {summary}");
}

#[actix_web::test]
async fn overlong_filters_are_refused_with_a_message_not_run() {
    let app = common::spawn().await;
    seed_three(&app).await;
    let long = "x".repeat(300);
    // 25,000 underscores once made SQLite refuse the LIKE pattern (a 500).
    let underscores = "_".repeat(25_000);
    for query in
        [format!("q={long}"), format!("tag={long}"), format!("component={long}"), format!("q={underscores}")]
    {
        for page in [app.get(&format!("/?{query}")).await, app.hx_get(&format!("/?{query}")).await] {
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", &page.body[..page.body.len().min(300)]);
            assert!(page.body.contains("at most 100 characters"), "{}", page.body);
            assert!(names(&page).is_empty(), "an overlong filter lists {:?}", names(&page));
        }
    }
    // At the limit, the filter runs.
    let page = app.get(&format!("/?q={}", "x".repeat(100))).await;
    assert_eq!(page.status, StatusCode::OK);
}

// ---- New Connection: picker and form ----

#[actix_web::test]
async fn new_connection_picker_lists_and_searches_components() {
    let app = common::spawn().await;
    let page = app.get("/connections/new").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<html"));
    let all = page.count("#component-choices a[data-component]");
    assert!(all >= 30, "the whole catalog is offered: {all}");
    assert_eq!(
        page.attr("a[data-component=slack]", "href").as_deref(),
        Some("/connections/new?component=slack")
    );

    let page = app.get("/connections/new?q=SLACK").await;
    let keys: Vec<String> = page
        .html()
        .select(&scraper::Selector::parse("#component-choices a[data-component]").unwrap())
        .map(|a| a.value().attr("data-component").unwrap().to_owned())
        .collect();
    assert_eq!(keys, vec!["slack"]);
    assert_eq!(page.attr("input#component-search", "value").as_deref(), Some("SLACK"));

    // By category too.
    let page = app.get("/connections/new?q=payments").await;
    assert!(page.count("a[data-component=stripe]") == 1, "{}", page.body);
    assert_eq!(page.count("a[data-component=slack]"), 0);

    // htmx gets the picker alone.
    let page = app.hx_get("/connections/new?q=git").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(!page.body.contains("<html"));
    assert_eq!(page.count("a[data-component=github]"), 1);
    assert_eq!(page.count("a[data-component=gitlab]"), 1);
}

#[actix_web::test]
async fn picker_search_without_match_says_so_and_escapes_the_query() {
    let app = common::spawn().await;
    let page = app.get("/connections/new?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.count("#component-choices a[data-component]"), 0);
    assert!(page.text_of("#component-choices .empty").contains("No component matches"));
    assert!(!page.body.contains("<script>alert(1)"), "the query must be escaped");
}

#[actix_web::test]
async fn new_form_defaults_the_name_and_offers_method_tabs() {
    let app = common::spawn().await;
    let page = app.get("/connections/new?component=slack").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text_of("#dialog-title"), "New Slack connection");
    assert_eq!(page.attr("form#connection-form input[name=name]", "value").as_deref(), Some("Slack"));
    assert_eq!(page.attr("form#connection-form", "action").as_deref(), Some("/connections"));
    assert_eq!(page.attr("input[name=component]", "value").as_deref(), Some("slack"));
    assert_eq!(page.attr("input[name=auth_method]", "value").as_deref(), Some("bot_token"));
    assert!(page.attr("input[name=csrf_token]", "value").is_some_and(|t| t.len() >= 32));
    // Tabs for each method, the current one marked.
    let tabs = page.texts("nav.method-tabs a");
    assert_eq!(tabs.len(), 2, "{tabs:?}");
    assert_eq!(tabs[0], "Bot token");
    assert_eq!(page.text_of("nav.method-tabs a[aria-current=true]"), "Bot token");
    // The secret is a password input, with its pattern and required.
    assert_eq!(page.attr("input[name='field:token']", "type").as_deref(), Some("password"));
    assert_eq!(page.attr("input[name='field:token']", "value").as_deref(), Some(""));
    assert!(page.attr("input[name='field:token']", "pattern").is_some());
    assert!(page.attr("input[name='field:token']", "required").is_some());
    assert_eq!(page.count("#error-token"), 1);
    assert_eq!(page.count("#error-name"), 1);

    // The other tab.
    let other = page.html();
    let href = other
        .select(&scraper::Selector::parse("nav.method-tabs a").unwrap())
        .nth(1)
        .and_then(|a| a.value().attr("href"))
        .unwrap()
        .to_owned();
    assert_eq!(href, "/connections/new?component=slack&method=oauth2");
    let page = app.get(&href).await;
    assert_eq!(page.attr("input[name=auth_method]", "value").as_deref(), Some("oauth2"));
    assert_eq!(page.attr("input[name='field:client_id']", "type").as_deref(), Some("text"));
    assert_eq!(page.attr("input[name='field:client_secret']", "type").as_deref(), Some("password"));
    assert_eq!(page.count("input[name='field:token']"), 0);
    assert_eq!(page.text_of("nav.method-tabs a[aria-current=true]"), "OAuth2");

    // An unknown method falls back to the first.
    let page = app.get("/connections/new?component=slack&method=telepathy").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.attr("input[name=auth_method]", "value").as_deref(), Some("bot_token"));
}

#[actix_web::test]
async fn new_form_for_a_single_method_component_has_no_tabs_and_fills_defaults() {
    let app = common::spawn().await;
    let page = app.get("/connections/new?component=stripe").await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.attr("input[name=name]", "value").as_deref(), Some("Stripe"));
    assert_eq!(page.count("nav.method-tabs"), 0);
    assert_eq!(page.attr("input[name='field:token']", "type").as_deref(), Some("password"));

    // Defaults from the catalog are filled in (Mailgun's host and username).
    let page = app.get("/connections/new?component=mailgun").await;
    assert_eq!(page.attr("input[name='field:api_host']", "value").as_deref(), Some("api.mailgun.net"));
    assert_eq!(page.attr("input[name='field:username']", "value").as_deref(), Some("api"));
    assert_eq!(page.attr("input[name='field:password']", "type").as_deref(), Some("password"));

    // htmx gets the form alone.
    let page = app.hx_get("/connections/new?component=github").await;
    assert!(!page.body.contains("<html"));
    assert_eq!(page.count("form#connection-form"), 1);
}

#[actix_web::test]
async fn new_form_offers_existing_tags() {
    let app = common::spawn().await;
    seed_three(&app).await;
    let page = app.get("/connections/new?component=slack").await;
    // Offered as suggestions for the one tag input, not a box per tag.
    assert_eq!(page.count("fieldset.tags-field input[name=tag]"), 0);
    assert_eq!(page.attr("#field-new_tags", "list").as_deref(), Some("tag-suggestions-form"));
    let offered: Vec<String> = page
        .html()
        .select(&scraper::Selector::parse("datalist#tag-suggestions-form option").unwrap())
        .filter_map(|o| o.value().attr("value").map(str::to_owned))
        .collect();
    assert_eq!(offered, vec!["Billing", "ops"]);
}

// ---- create ----

#[actix_web::test]
async fn create_via_plain_form_redirects_to_the_list_and_stores_the_connection() {
    let app = common::spawn().await;
    let page = app
        .post(
            "/connections",
            &[
                ("component", "slack"),
                ("auth_method", "bot_token"),
                ("name", "  Marketing Slack  "),
                ("field:token", SLACK_TOKEN),
                ("new_tags", "marketing, Marketing , eu"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/"));

    let snapshot = app.snapshot();
    assert_eq!(snapshot.connections.len(), 1);
    let stored = &snapshot.connections[0];
    assert_eq!(stored.name, "Marketing Slack", "the name is trimmed");
    assert_eq!(stored.environment, "development");
    assert_eq!(stored.component, "slack");
    assert_eq!(stored.auth_method, "bot_token");
    assert_eq!(stored.version, 1);
    assert_eq!(stored.secret_fields, "token");
    assert_eq!(stored.tags, vec!["eu", "marketing"], "tags are deduplicated ignoring case");
    assert!(!stored.parameters.contains(SLACK_TOKEN), "a secret is never a plain parameter");
    let secrets = app.secrets(Environment::Development, stored.id).unwrap();
    assert_eq!(secrets.get("token").map(String::as_str), Some(SLACK_TOKEN));

    let list = app.get("/").await;
    assert_eq!(names(&list), vec!["Marketing Slack"]);
    assert!(list.text_of(&format!("#connection-{} .auth-method", stored.id)).contains("Bot token"));
}

#[actix_web::test]
async fn create_stores_settings_as_parameters() {
    let app = common::spawn().await;
    let id = app
        .create(
            "http",
            "Internal API",
            &[("base_url", "https://api.internal.example"), ("test_path", "/me"), ("token", "tok-123")],
        )
        .await;
    let stored = app.stored(id).unwrap();
    let parameters: serde_json::Value = serde_json::from_str(&stored.parameters).unwrap();
    assert_eq!(parameters["base_url"], "https://api.internal.example");
    assert_eq!(parameters["test_path"], "/me");
    assert!(parameters.get("token").is_none());
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], "tok-123");
}

#[actix_web::test]
async fn create_via_htmx_answers_empty_with_a_refresh_trigger() {
    let app = common::spawn().await;
    let page = app
        .hx_post(
            "/connections",
            &[
                ("component", "github"),
                ("auth_method", "token"),
                ("name", "Équipe GitHub"),
                ("field:token", GITHUB_TOKEN),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty(), "an empty answer closes the dialog: {:?}", page.body);
    let trigger = page.header("hx-trigger").expect("an HX-Trigger header");
    assert!(trigger.contains("connections-changed"), "{trigger}");
    let json: serde_json::Value = serde_json::from_str(trigger).expect("HX-Trigger is JSON");
    assert!(json.get("connections-changed").is_some());
    let notice = json["plugboard-notice"].as_str().unwrap_or_default();
    assert!(notice.starts_with("Created “Équipe GitHub” in Development"), "{notice}");
    assert_eq!(app.count_rows("connections").await, 1);
    assert_eq!(names(&app.get("/").await), vec!["Équipe GitHub"]);
}

#[actix_web::test]
async fn create_with_existing_tag_ticked_reuses_it() {
    let app = common::spawn().await;
    app.create("github", "First", &[("token", GITHUB_TOKEN), ("new_tags", "Ops")]).await;
    let id =
        app.create("slack", "Second", &[("token", SLACK_TOKEN), ("tag", "Ops"), ("new_tags", "OPS")]).await;
    assert_eq!(app.count_rows("tags").await, 1, "tags are unique ignoring case");
    assert_eq!(app.stored(id).unwrap().tags, vec!["Ops"]);
}

// ---- edit ----

#[actix_web::test]
async fn edit_form_shows_stored_values_and_that_the_secret_is_set() {
    let app = common::spawn().await;
    let id = app
        .create(
            "twilio",
            "SMS",
            &[
                ("username", "AC0123456789abcdef0123456789abcdef"),
                ("password", "twilio-SECRET-1"),
                ("new_tags", "sms"),
            ],
        )
        .await;
    let page = app.get(&format!("/connections/{id}/edit")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text_of("#dialog-title"), "Edit SMS");
    assert_eq!(page.attr("form#connection-form", "action"), Some(format!("/connections/{id}")));
    assert_eq!(page.attr("input[name=name]", "value").as_deref(), Some("SMS"));
    assert_eq!(page.attr("input[name=version]", "value").as_deref(), Some("1"));
    assert_eq!(
        page.attr("input[name='field:username']", "value").as_deref(),
        Some("AC0123456789abcdef0123456789abcdef")
    );
    // The secret: a blank password input that says a value is stored.
    assert_eq!(page.attr("input[name='field:password']", "type").as_deref(), Some("password"));
    assert_eq!(page.attr("input[name='field:password']", "value").as_deref(), Some(""));
    assert!(page.attr("input[name='field:password']", "required").is_none(), "blank keeps the value");
    let placeholder = page.attr("input[name='field:password']", "placeholder").unwrap();
    assert!(placeholder.contains("set; leave blank to keep"), "{placeholder}");
    assert!(page.text_of("#help-password").contains("A value is stored"));
    assert!(!page.body.contains("twilio-SECRET-1"));
    // Its tag is ticked.
    assert_eq!(page.attr("input[name=tag][checked]", "value").as_deref(), Some("sms"));
    // And the list links to this form.
    let list = app.get("/").await;
    assert_eq!(
        list.attr(&format!("#connection-{id} a[aria-label='Edit SMS']"), "href"),
        Some(format!("/connections/{id}/edit"))
    );
}

#[actix_web::test]
async fn edit_keeps_a_blank_secret_and_replaces_a_typed_one() {
    let app = common::spawn().await;
    let id = app.create("stripe", "Payments", &[("token", "sk_test_ORIGINAL1")]).await;

    // Blank: kept.
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", "secret_key"), ("name", "Payments EU"), ("field:token", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/"));
    let stored = app.stored(id).unwrap();
    assert_eq!(stored.name, "Payments EU");
    assert_eq!(stored.version, 2);
    assert_eq!(stored.secret_fields, "token");
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], "sk_test_ORIGINAL1");

    // Typed: replaced.
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "2"),
                ("auth_method", "secret_key"),
                ("name", "Payments EU"),
                ("field:token", "sk_live_NEW2"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.stored(id).unwrap().version, 3);
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], "sk_live_NEW2");
}

#[actix_web::test]
async fn edit_keeps_one_secret_and_replaces_another() {
    let app = common::spawn().await;
    let id = app
        .create(
            "slack",
            "Slack app",
            &[("auth_method", "oauth2"), ("client_id", "cid-1"), ("client_secret", "cs-ONE")],
        )
        .await;
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "oauth2"),
                ("name", "Slack app"),
                ("field:client_id", "cid-2"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let stored = app.stored(id).unwrap();
    assert!(stored.parameters.contains("cid-2"));
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["client_secret"], "cs-ONE");
}

#[actix_web::test]
async fn edit_switching_method_needs_the_new_secrets_and_drops_the_old() {
    let app = common::spawn().await;
    let id = app.create("slack", "Slack", &[("token", SLACK_TOKEN)]).await;
    // The edit form for the other method has no stored secret.
    let page = app.get(&format!("/connections/{id}/edit?method=oauth2")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.attr("input[name=auth_method]", "value").as_deref(), Some("oauth2"));
    assert!(page.attr("input[name='field:client_secret']", "required").is_some());
    assert!(!page.text_of("#help-client_secret").contains("A value is stored"));

    let page = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "oauth2"),
                ("name", "Slack"),
                ("field:client_id", "cid"),
                ("field:client_secret", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", page.body);
    assert!(page.text_of("#error-client_secret").contains("Client secret is required"));
    assert_eq!(app.stored(id).unwrap().version, 1);

    let page = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "oauth2"),
                ("name", "Slack"),
                ("field:client_id", "cid"),
                ("field:client_secret", "cs"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let stored = app.stored(id).unwrap();
    assert_eq!(stored.auth_method, "oauth2");
    assert_eq!(stored.secret_fields, "client_secret");
    let secrets = app.secrets(Environment::Development, id).unwrap();
    assert_eq!(secrets.keys().collect::<Vec<_>>(), vec!["client_secret"], "the old token is gone");
}

#[actix_web::test]
async fn edit_changes_tags() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo bot", &[("token", GITHUB_TOKEN), ("new_tags", "ops, billing")]).await;
    // Untick billing, keep ops, add two new ones.
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[
                ("version", "1"),
                ("auth_method", "token"),
                ("name", "Repo bot"),
                ("tag", "ops"),
                ("new_tags", "ci, Deploy"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.stored(id).unwrap().tags, vec!["Deploy", "ci", "ops"]);
    let list = app.get("/").await;
    assert_eq!(list.texts(&format!("#connection-{id} .tag a")), vec!["ci", "Deploy", "ops"]);
    // billing is no longer used in Development, so the sidebar leaves it out.
    assert!(!list.texts("aside.sidebar .facet-name").contains(&"billing".to_owned()));

    // Unticking everything removes every tag.
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[("version", "2"), ("auth_method", "token"), ("name", "Repo bot")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(app.stored(id).unwrap().tags.is_empty());
}

#[actix_web::test]
async fn edit_via_htmx_answers_empty_with_a_refresh_trigger() {
    let app = common::spawn().await;
    let id = app.create("github", "Old", &[("token", GITHUB_TOKEN)]).await;
    let page = app
        .hx_post(
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", "token"), ("name", "New")],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty());
    let trigger = page.header("hx-trigger").unwrap_or_default();
    assert!(trigger.contains("connections-changed"), "{trigger}");
    assert!(trigger.contains("Saved"), "{trigger}");
    assert_eq!(app.stored(id).unwrap().name, "New");
    // The secret was kept.
    assert_eq!(app.secrets(Environment::Development, id).unwrap()["token"], GITHUB_TOKEN);
}

#[actix_web::test]
async fn edit_marks_a_checked_connection_not_active_again() {
    let app = common::spawn().await;
    let id = app.create("github", "Checked", &[("token", GITHUB_TOKEN)]).await;
    {
        use diesel::prelude::*;
        use plugboard::db::schema::connections;
        let mut conn = app.db();
        diesel::update(connections::table.find(id))
            .set((connections::status.eq("active"), connections::status_reason.eq("checked")))
            .execute(&mut conn)
            .unwrap();
    }
    let list = app.get("/").await;
    assert_eq!(list.text_of(&format!("#connection-{id} .badge")), "ACTIVE");
    let page = app
        .post(
            &format!("/connections/{id}"),
            &[("version", "1"), ("auth_method", "token"), ("name", "Checked")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let list = app.get("/").await;
    assert_eq!(list.text_of(&format!("#connection-{id} .badge")), "NOT ACTIVE");
}

// ---- delete ----

#[actix_web::test]
async fn delete_confirmation_names_the_connection_and_its_environment() {
    let app = common::spawn().await;
    app.switch_environment("staging").await;
    let id = app.create("github", "Deploy Keys", &[("token", GITHUB_TOKEN), ("new_tags", "ci, ops")]).await;
    let list = app.get("/").await;
    assert_eq!(
        list.attr(&format!("#connection-{id} a.danger-link"), "href"),
        Some(format!("/connections/{id}/delete"))
    );
    let page = app.get(&format!("/connections/{id}/delete")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.text_of("#dialog-title"), "Delete “Deploy Keys”?");
    let text = page.text_of("section.panel");
    assert!(text.contains("GitHub connection “Deploy Keys” from Staging"), "{text}");
    assert!(text.contains("its 2 tags"), "{text}");
    assert!(text.contains("cannot be undone"), "{text}");
    assert_eq!(page.attr("section.panel form", "action"), Some(format!("/connections/{id}/delete")));
    assert_eq!(page.attr("section.panel form", "method").as_deref(), Some("post"));
    // Only asking changes nothing.
    assert_eq!(app.count_rows("connections").await, 1);
    // htmx gets the confirmation alone.
    let page = app.hx_get(&format!("/connections/{id}/delete")).await;
    assert!(!page.body.contains("<html"));
    assert!(page.text_of("#dialog-title").contains("Deploy Keys"));
}

#[actix_web::test]
async fn delete_removes_the_connection_and_its_tag_links() {
    let app = common::spawn().await;
    let (a, b, _) = seed_three(&app).await;
    let page = app.post(&format!("/connections/{a}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/"));
    let snapshot = app.snapshot();
    assert_eq!(snapshot.connections.len(), 2);
    assert!(app.stored(a).is_none());
    assert!(snapshot.links.iter().all(|(c, _)| *c != a), "tag links go with the connection");
    assert_eq!(app.stored(b).unwrap().tags, vec!["ops"]);
    let list = app.get("/").await;
    assert_eq!(list.count(&format!("#connection-{a}")), 0);
    assert_eq!(facets(&list, "Tags"), vec![pair("ops", 1)]);

    // Deleting again: it is gone.
    let page = app.post(&format!("/connections/{a}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.text_of("section.error-panel").contains("no such connection"), "{}", page.body);
}

#[actix_web::test]
async fn delete_via_htmx_answers_empty_with_a_refresh_trigger() {
    let app = common::spawn().await;
    let id = app.create("github", "Short-lived", &[("token", GITHUB_TOKEN)]).await;
    let page = app.hx_post(&format!("/connections/{id}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty());
    let trigger = page.header("hx-trigger").unwrap_or_default();
    assert!(trigger.contains("connections-changed"), "{trigger}");
    assert!(trigger.contains("Deleted"), "{trigger}");
    assert_eq!(app.count_rows("connections").await, 0);
}

#[actix_web::test]
async fn concurrent_saves_with_the_same_new_tag_all_succeed() {
    let app = common::spawn_with(|s| s.workers = Some(4)).await;
    let token = app.csrf().await;
    let mut statuses = Vec::new();
    for round in 0..4 {
        let tag = format!("shared-{round}");
        let requests = (0..10).map(|i| {
            let name = format!("Conn {round}-{i}");
            let new_tags = format!("{tag}, other-{round}");
            let (app, token) = (&app, &token);
            async move {
                let fields = [
                    ("component", "github"),
                    ("auth_method", "token"),
                    ("name", name.as_str()),
                    ("field:token", GITHUB_TOKEN),
                    ("new_tags", new_tags.as_str()),
                ];
                app.post_with_token(token, "/connections", &fields).await.status
            }
        });
        statuses.extend(futures_util::future::join_all(requests).await);
    }
    let failed = statuses.iter().filter(|s| **s != StatusCode::SEE_OTHER).count();
    assert_eq!(failed, 0, "{failed} of {} concurrent saves failed: {statuses:?}", statuses.len());
    assert_eq!(app.count_rows("connections").await, 40);
    assert_eq!(app.count_rows("tags").await, 8);
}

// ---- inline tags ----

#[actix_web::test]
async fn inline_tag_add_and_remove_on_a_row() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let other = app.create("slack", "Chat", &[("token", SLACK_TOKEN), ("new_tags", "urgent")]).await;

    let list = app.get("/").await;
    let action = list.attr(&format!("#connection-{id} details.add-tag form"), "action").unwrap();
    assert_eq!(action, format!("/connections/{id}/tags"));

    let page = app.post(&action, &[("tag", "  Urgent  ")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.count_rows("tags").await, 1, "the existing tag is reused, ignoring case");
    assert_eq!(app.stored(id).unwrap().tags, vec!["urgent"]);
    // Adding it again changes nothing.
    let page = app.post(&action, &[("tag", "URGENT")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(app.count_rows("connection_tags").await, 2);

    let page = app.post(&action, &[("tag", "team  a")]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(app.stored(id).unwrap().tags, vec!["team a", "urgent"], "inner spaces are collapsed");

    let list = app.get("/").await;
    assert_eq!(list.texts(&format!("#connection-{id} .tag a")), vec!["team a", "urgent"]);
    assert_eq!(facets(&list, "Tags"), vec![pair("team a", 1), pair("urgent", 2)]);

    // Remove "urgent" from this row only.
    let remove = scraper::Selector::parse(&format!("#connection-{id} li.tag")).unwrap();
    let form = scraper::Selector::parse("form").unwrap();
    let link = scraper::Selector::parse("a").unwrap();
    let html = list.html();
    let action = html
        .select(&remove)
        .find(|li| li.select(&link).next().unwrap().text().collect::<String>() == "urgent")
        .and_then(|li| li.select(&form).next())
        .and_then(|f| f.value().attr("action"))
        .unwrap()
        .to_owned();
    assert!(
        action.starts_with(&format!("/connections/{id}/tags/")) && action.ends_with("/delete"),
        "{action}"
    );
    let page = app.post(&action, &[]).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.header("location"), Some("/"));
    assert_eq!(app.stored(id).unwrap().tags, vec!["team a"]);
    assert_eq!(app.stored(other).unwrap().tags, vec!["urgent"], "the other row keeps its tag");
    assert_eq!(app.count_rows("tags").await, 2, "the tag itself stays for others");
}

#[actix_web::test]
async fn inline_tag_changes_via_htmx_trigger_a_refresh() {
    let app = common::spawn().await;
    let id = app.create("github", "Repo", &[("token", GITHUB_TOKEN)]).await;
    let page = app.hx_post(&format!("/connections/{id}/tags"), &[("tag", "ci")]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty());
    assert!(page.header("hx-trigger").unwrap_or_default().contains("connections-changed"));
    let snapshot = app.snapshot();
    let tag_id = snapshot.tags.iter().find(|(_, n)| n == "ci").unwrap().0;
    let page = app.hx_post(&format!("/connections/{id}/tags/{tag_id}/delete"), &[]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.is_empty());
    assert!(page.header("hx-trigger").unwrap_or_default().contains("connections-changed"));
    assert!(app.stored(id).unwrap().tags.is_empty());
}

// ---- environments ----

#[actix_web::test]
async fn environment_switch_is_remembered_and_shown() {
    let app = common::spawn().await;
    let page = app.get("/").await;
    assert_eq!(page.attr("button[aria-pressed=true]", "value").as_deref(), Some("development"));
    assert!(page.text_of("h1#list-title").contains("Development"));
    app.switch_environment("production").await;
    let page = app.get("/").await;
    assert_eq!(page.attr("button[aria-pressed=true]", "value").as_deref(), Some("production"));
    assert!(page.text_of("h1#list-title").contains("Production"));
    assert_eq!(page.attr("main", "class").as_deref(), Some("env-production"));
    let id = app.create("github", "Prod", &[("token", GITHUB_TOKEN)]).await;
    assert_eq!(app.stored(id).unwrap().environment, "production");
    assert!(app.secrets(Environment::Production, id).is_ok());
}

// ---- static files ----

#[actix_web::test]
async fn static_files_and_icons_are_served() {
    let app = common::spawn().await;
    let js = app.get("/static/app.js").await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.header("content-type").unwrap_or_default().starts_with("text/javascript"));
    let htmx = app.get("/static/htmx.min.js").await;
    assert_eq!(htmx.status, StatusCode::OK);
    let css = app.get("/static/app.css").await;
    assert!(css.header("content-type").unwrap_or_default().starts_with("text/css"));
    let icon = app.get("/icons/slack.svg").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert_eq!(icon.header("content-type"), Some("image/svg+xml"));
    assert!(icon.body.contains("<svg"));
    // A component without an icon file gets a letter mark.
    let icon = app.get("/icons/twilio.svg").await;
    assert_eq!(icon.status, StatusCode::OK);
    assert!(icon.body.contains(">T</text>"), "{}", icon.body);
    for missing in ["/static/nope.js", "/icons/nope.svg"] {
        let page = app.get(missing).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{missing}");
    }
}

fn urlencode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Following Next from the first page, and Previous back from the last,
/// meets every connection once, in the order each sort promises; a
/// bookmarked page number opens the same rows as the links reach.
#[actix_web::test]
async fn every_sort_pages_through_every_connection_both_ways() {
    use diesel::RunQueryDsl;
    use plugboard::connections::Sort;

    #[derive(diesel::QueryableByName)]
    struct Named {
        #[diesel(sql_type = diesel::sql_types::Text)]
        name: String,
    }

    let app = common::spawn().await;
    let names_of =
        |i: usize| ["Émile", "alpha", "Zeta", "beta", "émile"][i % 5].to_owned() + &format!(" {}", i / 5);
    app.create_many("slack", "bot_token", 60, names_of, &[("field:token", SLACK_TOKEN)]).await;
    app.create_many("github", "token", 50, |i| names_of(i + 1), &[("field:token", "ghp_x")]).await;
    // Some ACTIVE, so the status sort has two groups.
    diesel::sql_query("UPDATE connections SET status = 'active' WHERE id % 3 = 0")
        .execute(&mut app.db())
        .unwrap();

    for sort in Sort::ALL {
        let order = match sort.as_str().trim_start_matches('-') {
            "newest" => "created_at DESC, id DESC",
            "oldest" => "created_at, id",
            "name" => "name_key, id",
            "component" => "component, name_key, id",
            _ => "status, name_key, id",
        };
        let order = if sort.as_str().starts_with('-') {
            order.split(", ").map(|c| format!("{c} DESC")).collect::<Vec<_>>().join(", ")
        } else {
            order.to_owned()
        };
        let expected: Vec<String> =
            diesel::sql_query(format!("SELECT name FROM connections ORDER BY {order}"))
                .load::<Named>(&mut app.db())
                .unwrap()
                .into_iter()
                .map(|n| n.name)
                .collect();

        let mut forward = Vec::new();
        let mut url = format!("/?sort={}", sort.as_str());
        let mut pages = Vec::new();
        loop {
            let page = app.get(&url).await;
            assert_eq!(page.status, StatusCode::OK, "{url}");
            forward.extend(names(&page));
            pages.push(names(&page));
            match page.attr("nav.pagination a[rel=next]", "href") {
                Some(next) => url = next,
                None => break,
            }
        }
        assert_eq!(forward, expected, "{}: forward", sort.as_str());
        assert_eq!(pages.len(), 3);

        let mut backward: Vec<Vec<String>> = Vec::new();
        loop {
            let page = app.get(&url).await;
            backward.push(names(&page));
            match page.attr("nav.pagination a[rel=prev]", "href") {
                Some(prev) => url = prev,
                None => break,
            }
        }
        backward.reverse();
        assert_eq!(backward, pages, "{}: backward", sort.as_str());
        for (i, shown) in pages.iter().enumerate() {
            let bookmark = app.get(&format!("/?sort={}&page={}", sort.as_str(), i + 1)).await;
            assert_eq!(&names(&bookmark), shown, "{}: page {}", sort.as_str(), i + 1);
        }
    }
}

/// The column headers sort the list, and say which way it is sorted.
#[actix_web::test]
async fn column_headers_sort_the_list() {
    let app = common::spawn().await;
    app.create("github", "bravo", &[("token", "ghp_1")]).await;
    app.create("slack", "alpha", &[("token", SLACK_TOKEN)]).await;
    let page = app.get("/").await;
    let header = |page: &Page, label: &str| {
        let html = page.html();
        let selector = scraper::Selector::parse("table.connections th").unwrap();
        let th =
            html.select(&selector).find(|th| th.text().collect::<String>().contains(label)).expect(label);
        let link = th.select(&scraper::Selector::parse("a").unwrap()).next().expect("a link");
        (link.value().attr("href").unwrap().to_owned(), th.value().attr("aria-sort").map(str::to_owned))
    };
    assert_eq!(header(&page, "Created"), ("/?sort=oldest".to_owned(), Some("descending".to_owned())));
    let (by_name, sorted) = header(&page, "Name");
    assert_eq!((by_name.as_str(), sorted), ("/?sort=name", None));
    let page = app.get(&by_name).await;
    assert_eq!(names(&page), vec!["alpha", "bravo"]);
    assert_eq!(header(&page, "Name"), ("/?sort=-name".to_owned(), Some("ascending".to_owned())));
    let page = app.get("/?sort=-component").await;
    assert_eq!(names(&page), vec!["alpha", "bravo"], "Slack before GitHub");
    assert_eq!(header(&page, "Component").0, "/?sort=component");
}
