//! The background job runner: a unit of work that panics or fails is
//! recorded on its connection, and neither it nor a job whose whole round
//! panics stops the other units, the other jobs or the next round.
//!
//! The jobs here are the tests' own, so that a panic can be made without a
//! hook in the application; they do their work through the same runner,
//! leases and recording as the due checks, and check the connections they
//! do not blow up on with the real checker.

mod common;
mod standin;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use plugboard::audit::Actor;
use plugboard::checks::schedule::{Trigger, check_now};
use plugboard::connections::{ConnectionId, Status};
use plugboard::db::schema::{connection_checks, connections, leases};
use plugboard::environment::Environment;
use plugboard::jobs::{self, BoxFuture, Context, Job, JobError, Units};
use serde_json::json;
use standin::{Recorded, Reply, StandIn};

const TOKEN: &str = "pbt_jobs_t0ken_4c5d6e";
const FAILED: &str = "the check failed inside Plugboard: ";

fn answers_bearer(r: &Recorded) -> Reply {
    if r.header("authorization") == Some(format!("Bearer {TOKEN}").as_str()) {
        Reply::json(200, json!({ "authenticated": true }))
    } else {
        Reply::json(401, json!({ "error": "invalid_token" }))
    }
}

/// The application with a bearer component at `service`, and its own
/// background checks off: the tests run the jobs they need.
async fn spawn_for(service: &StandIn) -> (common::TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("catalog.toml");
    let catalog = format!(
        "[svc_bearer]\nname = \"Bearer service\"\nbase_url = \"{}\"\n[svc_bearer.auth.token]\nkind = \"bearer\"\n[svc_bearer.test]\npath = \"/user\"\nsuccess_json = {{ pointer = \"/authenticated\", equals = true }}\n",
        service.url()
    );
    std::fs::write(&path, catalog).expect("write the catalog");
    let app = common::spawn_with(|s| {
        s.catalog = Some(path.clone());
        s.check_timeout = 2;
        s.check_interval = Duration::ZERO;
    })
    .await;
    (app, dir)
}

async fn create(app: &common::TestApp, name: &str) -> i64 {
    app.create("svc_bearer", name, &[("token", TOKEN)]).await
}

/// A connection's status and reason, as stored.
fn status(app: &common::TestApp, id: i64) -> (String, String) {
    connections::table
        .filter(connections::id.eq(id))
        .select((connections::status, connections::status_reason))
        .first(&mut app.db())
        .expect("the connection")
}

/// A connection's history as stored, oldest first: (status, reason, trigger).
fn history(app: &common::TestApp, id: i64) -> Vec<(String, String, String)> {
    connection_checks::table
        .filter(connection_checks::connection_id.eq(id))
        .order(connection_checks::id)
        .select((connection_checks::status, connection_checks::reason, connection_checks::trigger))
        .load(&mut app.db())
        .expect("the history")
}

fn scheduled_checks(app: &common::TestApp, id: i64) -> usize {
    history(app, id).iter().filter(|(_, _, trigger)| trigger == "schedule").count()
}

const EVERY_ONE: Units = Units {
    lease: "test-job",
    what: "check",
    lease_for: Duration::from_secs(30),
    trigger: Trigger::Schedule,
    still_wanted: |_, _, _| Ok(true),
};

/// Every connection of Development, in the order they were made.
async fn everyone(cx: &Context) -> Result<Vec<(Environment, ConnectionId)>, JobError> {
    let ids: Vec<i64> = cx
        .state
        .blocking(|conn, _| connections::table.order(connections::id).select(connections::id).load(conn))
        .await?;
    Ok(ids.into_iter().map(|id| (Environment::Development, ConnectionId(id))).collect())
}

/// Checks every connection, but panics on one of them.
struct Bomb {
    bomb: i64,
    rounds: Arc<AtomicUsize>,
}

impl Job for Bomb {
    fn name(&self) -> &str {
        "bomb"
    }

    fn run_once<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let candidates = everyone(cx).await?;
            cx.each_connection(&EVERY_ONE, candidates, |unit| async move {
                if unit.id.0 == self.bomb {
                    panic!("the test job blew up");
                }
                check_now(&cx.state, unit.environment, unit.id, Trigger::Schedule, &Actor::System).await?;
                Ok(())
            })
            .await;
            self.rounds.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
    }
}

/// A job whose every round panics before doing anything.
struct Broken {
    rounds: Arc<AtomicUsize>,
}

impl Job for Broken {
    fn name(&self) -> &str {
        "broken"
    }

    fn run_once<'a>(&'a self, _: &'a Context) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            self.rounds.fetch_add(1, Ordering::SeqCst);
            panic!("every round of this job panics");
        })
    }
}

async fn wait_until(what: &str, within: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[actix_web::test]
async fn a_panicking_unit_is_recorded_and_the_runner_checks_the_next_connection_round_after_round() {
    let service = StandIn::start(answers_bearer).await;
    let (app, _catalog) = spawn_for(&service).await;
    let bomb = create(&app, "Bomb").await;
    let next = create(&app, "Next").await;
    assert_eq!(status(&app, bomb).0, Status::Active.as_str(), "checked on save");

    let rounds = Arc::new(AtomicUsize::new(0));
    let broken_rounds = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<Arc<dyn Job>> = vec![
        Arc::new(Broken { rounds: broken_rounds.clone() }),
        Arc::new(Bomb { bomb, rounds: rounds.clone() }),
    ];
    // One unit at a time: the bomb, then the next connection.
    let runner = jobs::start_with(app.state.clone(), jobs, 1, Duration::from_millis(100)).unwrap();
    wait_until("three rounds", Duration::from_secs(20), || rounds.load(Ordering::SeqCst) >= 3).await;
    drop(runner);

    let (bomb_status, bomb_reason) = status(&app, bomb);
    assert_eq!(bomb_status, Status::NotActive.as_str());
    assert_eq!(bomb_reason, format!("{FAILED}the test job blew up"));
    let failures: Vec<_> = history(&app, bomb).into_iter().filter(|(_, _, t)| t == "schedule").collect();
    assert!(failures.len() >= 3, "every round recorded the panic: {failures:#?}");
    assert!(failures.iter().all(|(s, r, _)| s == Status::NotActive.as_str() && *r == bomb_reason));

    // The connection after the bomb was checked in every round, for real.
    assert_eq!(
        status(&app, next),
        (Status::Active.as_str().to_owned(), "credentials accepted (HTTP 200)".to_owned())
    );
    assert!(scheduled_checks(&app, next) >= 3, "{:#?}", history(&app, next));
    assert!(service.count() >= 2 + 3, "two checks on save, one a round after");
    // A job that panics every round kept its place in every round.
    assert!(broken_rounds.load(Ordering::SeqCst) >= 3);

    // The failure is in the audit trail like any check.
    let audited = app
        .audit_rows()
        .into_iter()
        .filter(|e| e.action == "connection_check" && e.connection_id == Some(bomb))
        .count();
    // One on save, one a round.
    assert!(audited >= 4, "{audited} audit rows for the bomb's checks");

    // Every claim was released.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held: i64 =
        leases::table.filter(leases::name.like("test-job:%")).count().get_result(&mut app.db()).unwrap();
    assert_eq!(held, 0);

    // Dropped: no more rounds (one in progress may finish).
    let after = rounds.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(rounds.load(Ordering::SeqCst) <= after + 1, "the runner went on after being dropped");
}

/// Units that fail in ways whose words must not be repeated.
struct Leaky {
    failing: i64,
    formatted_panic: i64,
    /// Edited while its unit runs, then panics.
    edited: i64,
}

impl Job for Leaky {
    fn name(&self) -> &str {
        "leaky"
    }

    fn run_once<'a>(&'a self, cx: &'a Context) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let candidates = everyone(cx).await?;
            cx.each_connection(&EVERY_ONE, candidates, |unit| async move {
                if unit.id.0 == self.failing {
                    return Err(JobError::Failed(format!("could not use {TOKEN}")));
                }
                if unit.id.0 == self.formatted_panic {
                    panic!("the key {TOKEN} broke it");
                }
                if unit.id.0 == self.edited {
                    let id = unit.id.0;
                    cx.state
                        .blocking(move |conn, _| {
                            diesel::update(connections::table.filter(connections::id.eq(id)))
                                .set(connections::version.eq(connections::version + 1))
                                .execute(conn)
                        })
                        .await?;
                    panic!("edited meanwhile");
                }
                check_now(&cx.state, unit.environment, unit.id, Trigger::Schedule, &Actor::System).await?;
                Ok(())
            })
            .await;
            Ok(())
        })
    }
}

#[actix_web::test]
async fn failed_units_are_recorded_without_their_words_and_under_the_version_guard() {
    let service = StandIn::start(answers_bearer).await;
    let (app, _catalog) = spawn_for(&service).await;
    let failing = create(&app, "Failing").await;
    let formatted_panic = create(&app, "Formatted panic").await;
    let edited = create(&app, "Edited meanwhile").await;
    let fine = create(&app, "Fine").await;

    let cx = Context::new(app.state.clone(), "test-process", 2);
    Leaky { failing, formatted_panic, edited }.run_once(&cx).await.unwrap();

    let internal = format!("{FAILED}internal error");
    for id in [failing, formatted_panic] {
        assert_eq!(status(&app, id), (Status::NotActive.as_str().to_owned(), internal.clone()));
    }
    // Edited while it ran: the history has the failure, but the status of
    // the newer version is not overwritten by a result about the older one.
    let last = history(&app, edited).pop().unwrap();
    assert_eq!(
        (last.1.as_str(), last.2.as_str()),
        (format!("{FAILED}edited meanwhile").as_str(), "schedule")
    );
    assert_eq!(status(&app, edited).0, Status::Active.as_str());
    // The others were not held up.
    assert_eq!(scheduled_checks(&app, fine), 1);
    assert_eq!(status(&app, fine).0, Status::Active.as_str());

    for id in [failing, formatted_panic, edited, fine] {
        for (_, reason, _) in history(&app, id) {
            assert!(!reason.contains(TOKEN), "a reason repeats the token: {reason}");
        }
    }
    for entry in app.audit_rows() {
        assert!(!format!("{entry:?}").contains(TOKEN), "an audit row repeats the token: {entry:?}");
    }
}

#[actix_web::test]
async fn the_due_checks_job_claims_each_due_connection_once_and_checks_it() {
    let service = StandIn::start(answers_bearer).await;
    let (app, _catalog) = spawn_for(&service).await;
    let id = create(&app, "Due").await;
    diesel::update(connections::table.filter(connections::id.eq(id)))
        .set(
            connections::next_check_at
                .eq(chrono::NaiveDate::from_ymd_opt(2000, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap()),
        )
        .execute(&mut app.db())
        .unwrap();
    // The same process twice at once: one claim, one check.
    let (a, b) = tokio::join!(jobs::run_due(&app.state, "p1", 4), jobs::run_due(&app.state, "p2", 4));
    a.unwrap();
    b.unwrap();
    assert_eq!(scheduled_checks(&app, id), 1);
    assert_eq!(service.count(), 2, "one check on save, one due");
    jobs::run_due(&app.state, "p1", 4).await.unwrap();
    assert_eq!(service.count(), 2, "checked, so no longer due");
}

/// Connections without a check time (from before the schedule, or
/// imported) are each given their own time within the interval, a bounded
/// number per round: 1,200 of them do not all come due at one moment.
#[actix_web::test]
async fn unscheduled_connections_are_spread_over_the_interval_a_batch_at_a_time() {
    let service = StandIn::start(answers_bearer).await;
    let (app, _catalog) = spawn_for(&service).await;
    let first = create(&app, "Template").await;
    // Copies of the connection with no check time, as an import leaves them.
    diesel::sql_query(format!(
        "INSERT INTO connections (environment, component, name, name_key, auth_method, parameters, \
         secret_fields, status, status_reason, created_at, updated_at, version, check_failures) \
         SELECT environment, component, name, name_key, auth_method, parameters, secret_fields, status, \
         status_reason, created_at, updated_at, version, 0 FROM connections AS c, \
         (SELECT 1 FROM connections LIMIT 1) AS one, \
         (WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1200) SELECT i FROM n) AS copies \
         WHERE c.id = {first}"
    ))
    .execute(&mut app.db())
    .unwrap();
    let unscheduled = || {
        connections::table
            .filter(connections::next_check_at.is_null())
            .count()
            .get_result::<i64>(&mut app.db())
            .unwrap()
    };
    assert_eq!(unscheduled(), 1200);
    jobs::run_due(&app.state, "p1", 4).await.unwrap();
    assert_eq!(unscheduled(), 700, "500 a round");
    jobs::run_due(&app.state, "p1", 4).await.unwrap();
    jobs::run_due(&app.state, "p1", 4).await.unwrap();
    assert_eq!(unscheduled(), 0);
    let times: std::collections::BTreeSet<chrono::NaiveDateTime> = connections::table
        .filter(connections::id.ne(first))
        .select(connections::next_check_at.assume_not_null())
        .load(&mut app.db())
        .unwrap()
        .into_iter()
        .collect();
    assert!(times.len() > 1000, "each its own time: {} distinct of 1,200", times.len());
    let now = chrono::Utc::now().naive_utc();
    let interval =
        chrono::TimeDelta::from_std(plugboard::checks::schedule::effective(app.state.check_interval))
            .unwrap();
    assert!(times.iter().all(|t| *t <= now + interval), "all within one interval");
}
