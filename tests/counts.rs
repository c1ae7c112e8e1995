//! The sidebar's counters (kept by triggers, `connections::counts`) agree
//! with a full recount after every kind of change, in every environment:
//! create, edit, delete, tag, untag, check, OAuth2 connect, reconnect and a
//! refused refresh, tag rename, merge and delete; and the environments'
//! list change numbers move with each of them. Runs on SQLite and, with
//! PLUGBOARD_TEST_POSTGRES, on PostgreSQL.

mod common;

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use diesel::prelude::*;
use plugboard::audit::Actor;
use plugboard::connections::operations::{self, CheckResult, RefreshOutcome};
use plugboard::connections::tokens::{Lifetime, Tokens};
use plugboard::connections::{ConnectionId, Draft, Status, StatusReport, changes, counts};
use plugboard::crypto::Keyring;
use plugboard::db::DbConnection;
use plugboard::db::schema::{connection_tags, connections, tags};
use plugboard::environment::Environment;
use plugboard::tag_admin;
use plugboard::tags::{TagId, TagName};
use secrecy::SecretString;

/// What the counters should say, counted from the rows themselves.
#[derive(Debug, PartialEq)]
struct Figures {
    active: i64,
    not_active: i64,
    components: BTreeMap<String, i64>,
    tags: BTreeMap<String, i64>,
}

fn recount(conn: &mut DbConnection, environment: Environment) -> Figures {
    let env = environment.as_str();
    let statuses: Vec<(String, i64)> = connections::table
        .filter(connections::environment.eq(env))
        .group_by(connections::status)
        .select((connections::status, diesel::dsl::count_star()))
        .load(conn)
        .expect("statuses");
    let status = |s: Status| statuses.iter().filter(|(k, _)| k == s.as_str()).map(|(_, n)| *n).sum();
    let components: Vec<(String, i64)> = connections::table
        .filter(connections::environment.eq(env))
        .group_by(connections::component)
        .select((connections::component, diesel::dsl::count_star()))
        .load(conn)
        .expect("components");
    let tags: Vec<(String, i64)> = connection_tags::table
        .inner_join(tags::table)
        .inner_join(connections::table)
        .filter(connections::environment.eq(env))
        .group_by(tags::name)
        .select((tags::name, diesel::dsl::count_star()))
        .load(conn)
        .expect("tags");
    Figures {
        active: status(Status::Active),
        not_active: status(Status::NotActive),
        components: components.into_iter().collect(),
        tags: tags.into_iter().collect(),
    }
}

fn counters(conn: &mut DbConnection, environment: Environment) -> Figures {
    let c = counts::of(conn, environment).expect("counters");
    Figures {
        active: c.active,
        not_active: c.not_active,
        components: c.components.into_iter().collect(),
        tags: c.tags.into_iter().map(|t| (t.tag.name, t.connections)).collect(),
    }
}

#[track_caller]
fn assert_counted(conn: &mut DbConnection, after: &str) {
    for environment in Environment::ALL {
        let expected = recount(conn, environment);
        assert_eq!(counters(conn, environment), expected, "after {after}, in {}", environment.as_str());
    }
}

/// Each environment's list change number (`connections::changes`), which
/// must move with every change to what its page shows, and only then.
struct Numbers(Vec<i64>);

impl Numbers {
    fn read(conn: &mut DbConnection) -> Vec<i64> {
        Environment::ALL.iter().map(|e| changes::of(conn, *e).expect("change number")).collect()
    }

    fn new(conn: &mut DbConnection) -> Numbers {
        Numbers(Numbers::read(conn))
    }

    #[track_caller]
    fn assert_moved(&mut self, conn: &mut DbConnection, moved: &[Environment], after: &str) {
        let now = Numbers::read(conn);
        for (i, environment) in Environment::ALL.iter().enumerate() {
            let name = environment.as_str();
            if moved.contains(environment) {
                assert!(
                    now[i] > self.0[i],
                    "after {after}, {name}'s number moves ({} → {})",
                    self.0[i],
                    now[i]
                );
            } else {
                assert_eq!(now[i], self.0[i], "after {after}, {name}'s number stays");
            }
        }
        self.0 = now;
    }
}

fn draft(name: &str, tags: &[&str]) -> Draft {
    Draft {
        name: name.to_owned(),
        auth_method: "token".to_owned(),
        parameters: BTreeMap::new(),
        secrets: BTreeMap::from([("token".to_owned(), SecretString::from("t0ken"))]),
        kept_secrets: Default::default(),
        tags: tags.iter().map(|t| TagName::parse(t).expect("a tag name")).collect(),
        author: None,
    }
}

fn tag_id(conn: &mut DbConnection, name: &str) -> TagId {
    TagId(tags::table.filter(tags::name_key.eq(name)).select(tags::id).first(conn).expect("the tag"))
}

fn check(status: Status, version: i32) -> (StatusReport, i32) {
    let reason = if status.is_active() { String::new() } else { "rejected by the service: HTTP 401".into() };
    (StatusReport { status, reason, checked_at: Some(Utc::now().naive_utc()) }, version)
}

/// A connection's first check, made before it is created.
fn first(report: &StatusReport) -> CheckResult<'_> {
    CheckResult {
        checked_version: 1,
        report,
        trigger: "save",
        duration_ms: 2,
        unreachable: false,
        next_check_at: Utc::now().naive_utc() + Duration::hours(1),
        issued: None,
    }
}

fn record(
    conn: &mut DbConnection,
    keyring: &Keyring,
    environment: Environment,
    id: ConnectionId,
    status: Status,
    version: i32,
) {
    let (report, version) = check(status, version);
    let result = CheckResult {
        checked_version: version,
        report: &report,
        trigger: "manual",
        duration_ms: 3,
        unreachable: false,
        next_check_at: Utc::now().naive_utc() + Duration::hours(1),
        issued: None,
    };
    operations::record_check(conn, keyring, &Actor::System, environment, id, &result)
        .expect("check recorded");
}

fn tokens() -> (Tokens, Lifetime) {
    let now = Utc::now().naive_utc();
    (
        Tokens { access_token: SecretString::from("at"), refresh_token: Some(SecretString::from("rt")) },
        Lifetime { now, expires_at: Some(now + Duration::hours(1)), refresh_due_at: Some(now) },
    )
}

#[actix_web::test]
async fn counters_match_a_recount_after_every_kind_of_change() {
    let app = common::spawn().await;
    let keyring = app.keyring();
    let mut conn = app.db();
    let conn = &mut conn;
    let actor = Actor::System;
    let (dev, prod) = (Environment::Development, Environment::Production);
    assert_counted(conn, "nothing");
    let mut numbers = Numbers::new(conn);
    let both = [dev, prod];

    // Created with their first checks: one accepted, two refused.
    let (active, _) = check(Status::Active, 1);
    let (refused, _) = check(Status::NotActive, 1);
    let a = operations::create(
        conn,
        &keyring,
        &actor,
        dev,
        "github",
        draft("A", &["ops", "eu"]),
        &first(&active),
    )
    .unwrap();
    let b = operations::create(conn, &keyring, &actor, dev, "slack", draft("B", &["ops"]), &first(&refused))
        .unwrap();
    let c = operations::create(
        conn,
        &keyring,
        &actor,
        prod,
        "github",
        draft("C", &["ops", "us"]),
        &first(&refused),
    )
    .unwrap();
    assert_counted(conn, "create");
    numbers.assert_moved(conn, &both, "create");

    record(conn, &keyring, dev, a, Status::Active, 1);
    record(conn, &keyring, dev, b, Status::Active, 1);
    record(conn, &keyring, prod, c, Status::Active, 1);
    assert_counted(conn, "checks finding them ACTIVE");
    numbers.assert_moved(conn, &both, "checks");
    record(conn, &keyring, dev, b, Status::NotActive, 1);
    // A check of credentials that have changed since moves nothing.
    record(conn, &keyring, dev, a, Status::NotActive, 7);
    assert_counted(conn, "checks finding one NOT ACTIVE, and a stale check");
    numbers.assert_moved(conn, &[dev], "a check in Development");
    record(conn, &keyring, dev, a, Status::Active, 7);
    numbers.assert_moved(conn, &[], "a stale check alone");

    // An edit makes the connection NOT ACTIVE until checked, and changes tags.
    operations::update(conn, &keyring, &actor, dev, a, 1, draft("A2", &["eu", "new"])).unwrap();
    assert_counted(conn, "edit");
    numbers.assert_moved(conn, &[dev], "edit");

    let ops = tag_id(conn, "ops");
    operations::tag(conn, &actor, dev, a, &TagName::parse("ops").unwrap()).unwrap();
    operations::tag(conn, &actor, dev, a, &TagName::parse("OPS").unwrap()).unwrap();
    operations::untag(conn, &actor, dev, b, ops).unwrap();
    operations::untag(conn, &actor, dev, b, ops).unwrap();
    assert_counted(conn, "tag and untag, twice each");
    numbers.assert_moved(conn, &[dev], "tag and untag");

    let (issued, lifetime) = tokens();
    let mut signed_in = draft("D", &["ops"]);
    signed_in.auth_method = "oauth2".into();
    let d =
        operations::connect(conn, &keyring, &actor, prod, "github", signed_in, &issued, &lifetime).unwrap();
    record(conn, &keyring, prod, d, Status::Active, 1);
    assert_counted(conn, "OAuth2 connect and a check");
    numbers.assert_moved(conn, &[prod], "OAuth2 connect");
    let version: i32 = plugboard::db::schema::connection_tokens::table
        .find(d.0)
        .select(plugboard::db::schema::connection_tokens::token_version)
        .first(conn)
        .unwrap();
    let refused =
        RefreshOutcome::Refused { reason: "refresh failed: invalid_grant", at: Utc::now().naive_utc() };
    assert!(operations::record_refresh(conn, &keyring, &actor, prod, d, version, &refused).unwrap());
    assert_counted(conn, "a refused refresh");
    numbers.assert_moved(conn, &[prod], "a refused refresh");
    operations::reconnect(conn, &keyring, &actor, prod, d, &BTreeMap::new(), &issued, &lifetime).unwrap();
    assert_counted(conn, "reconnect");
    numbers.assert_moved(conn, &[prod], "reconnect");

    let (eu, us, new) = (tag_id(conn, "eu"), tag_id(conn, "us"), tag_id(conn, "new"));
    tag_admin::rename(conn, &actor, eu, "Europe").unwrap();
    assert_counted(conn, "tag rename");
    // Tags are shared: every environment with connections shows it.
    numbers.assert_moved(conn, &both, "tag rename");
    tag_admin::merge(conn, &actor, us, ops).unwrap();
    tag_admin::merge(conn, &actor, new, eu).unwrap();
    assert_counted(conn, "tag merges (one connection had both tags)");
    numbers.assert_moved(conn, &both, "tag merges");
    tag_admin::delete(conn, &actor, ops).unwrap();
    assert_counted(conn, "tag delete");
    numbers.assert_moved(conn, &both, "tag delete");

    operations::delete(conn, &actor, dev, a).unwrap();
    operations::delete(conn, &actor, prod, d).unwrap();
    assert_counted(conn, "delete");
    numbers.assert_moved(conn, &both, "delete");
    let dev_counts = counts::of(conn, dev).unwrap();
    assert_eq!((dev_counts.active, dev_counts.not_active), (0, 1), "only B is left in Development");
    assert_eq!(dev_counts.components, vec![("slack".to_owned(), 1)]);
}

/// The page shows the counters: the header total, the sidebar, and a
/// filtered list's total, which comes from them too.
#[actix_web::test]
async fn the_page_shows_the_counters() {
    let app = common::spawn().await;
    let first = app.create("github", "Counted one", &[("token", "ghp_1")]).await;
    app.create("github", "Counted two", &[("token", "ghp_2")]).await;
    app.create("slack", "Counted three", &[("token", "xoxb-3")]).await;
    app.post(&format!("/connections/{first}/tags"), &[("tag", "billing")]).await;

    let page = app.get("/").await;
    assert!(page.text_of("#filter-summary").contains("3 connections in Development"), "{}", page.body);
    let sidebar = page.texts(".components .facet-count");
    assert_eq!(sidebar[0], "3", "All Components: {sidebar:?}");
    assert_eq!(page.texts(".tags .facet-count"), vec!["1"]);

    let filtered = app.get("/?component=github").await;
    assert!(filtered.text_of("#filter-summary").contains("Showing 2 of 3"), "{}", filtered.body);
    assert_eq!(filtered.count("tr[data-connection]"), 2);
    let tagged = app.get("/?tag=billing").await;
    assert!(tagged.text_of("#filter-summary").contains("Showing 1 of 3"), "{}", tagged.body);
}
