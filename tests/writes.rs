//! Write work (`AppState::write`): on SQLite the work waiting at the same
//! time is committed in one transaction, each piece in a savepoint of its
//! own. A piece that fails is undone alone; a panic fails its whole group,
//! and the writer goes on. On PostgreSQL each piece is its own transaction,
//! and the same promises hold.

mod common;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use plugboard::db::DbConnection;
use plugboard::db::schema::tags;
use plugboard::state::{AppState, BlockingError};
use plugboard::tags::{self as tag_store, TagName};

type Written = Result<bool, BlockingError<diesel::result::Error>>;

fn tag(name: &str) -> TagName {
    TagName::parse(name).expect("a tag name")
}

fn has_tag(conn: &mut DbConnection, name: &str) -> bool {
    tag_store::find(conn, name).expect("tags read").is_some()
}

/// Holds the writer once it runs, until the returned sender is used or
/// dropped: the work queued meanwhile forms one group behind it.
async fn hold_the_writer(
    state: &Arc<AppState>,
) -> (tokio::task::JoinHandle<Written>, std::sync::mpsc::Sender<()>) {
    let (started, running) = tokio::sync::oneshot::channel();
    let (release, released) = std::sync::mpsc::channel::<()>();
    let state = state.clone();
    let holder = tokio::spawn(async move {
        state
            .write(move |_conn: &mut DbConnection, _: &AppState| {
                let _ = started.send(());
                let _ = released.recv();
                Ok::<_, diesel::result::Error>(true)
            })
            .await
    });
    running.await.expect("the holder runs");
    (holder, release)
}

/// Queues `work` behind the holder, after what was queued before it.
async fn queue<F>(state: &Arc<AppState>, work: F) -> tokio::task::JoinHandle<Written>
where
    F: FnOnce(&mut DbConnection, &AppState) -> Result<bool, diesel::result::Error> + Send + 'static,
{
    let state = state.clone();
    let queued = tokio::spawn(async move { state.write(work).await });
    // The task only has to reach the queue; the writer is held meanwhile.
    tokio::time::sleep(Duration::from_millis(30)).await;
    queued
}

#[actix_web::test]
async fn a_failing_write_is_undone_alone_and_the_rest_of_its_group_commits() {
    let app = common::spawn().await;
    let state = app.state.clone();
    let database_url = app.database_url.clone();
    let (holder, release) = hold_the_writer(&state).await;
    let first = queue(&state, |conn, _| {
        tag_store::ensure(conn, &[tag("first")])?;
        Ok(true)
    })
    .await;
    let failing = queue(&state, |conn, _| {
        tag_store::ensure(conn, &[tag("undone")])?;
        // A statement that fails after one that succeeded: both undone.
        diesel::sql_query("INSERT INTO no_such_table VALUES (1)").execute(conn)?;
        Ok(true)
    })
    .await;
    let sqlite = !app.is_postgres();
    let last = queue(&state, move |conn, _| {
        tag_store::ensure(conn, &[tag("last")])?;
        // On SQLite, this piece shares a transaction with `first`: it sees
        // that tag, which no other connection sees before the commit.
        let mut other = plugboard::db::establish(&database_url).expect("a second connection");
        let grouped = has_tag(conn, "first") && !has_tag(&mut other, "first");
        Ok(grouped || !sqlite)
    })
    .await;
    release.send(()).expect("the holder waits");
    assert!(holder.await.unwrap().expect("the holder commits"));
    assert!(first.await.unwrap().expect("the first piece commits"));
    assert!(
        last.await.unwrap().expect("the last piece commits"),
        "the pieces queued together were one group"
    );
    match failing.await.unwrap() {
        Err(BlockingError::Work(e)) => assert!(e.to_string().contains("no_such_table"), "{e}"),
        other => panic!("the failing piece gets its own error, not {other:?}"),
    }
    let mut conn = app.db();
    assert!(has_tag(&mut conn, "first") && has_tag(&mut conn, "last"), "the others are committed");
    assert!(!has_tag(&mut conn, "undone"), "the failing piece is undone, all of it");
}

#[actix_web::test]
async fn a_panic_fails_its_group_and_the_writer_goes_on() {
    let app = common::spawn().await;
    let state = app.state.clone();
    let (holder, release) = hold_the_writer(&state).await;
    let before = queue(&state, |conn, _| {
        tag_store::ensure(conn, &[tag("beside-the-panic")])?;
        Ok(true)
    })
    .await;
    let panicking = queue(&state, |conn, _| {
        tag_store::ensure(conn, &[tag("panicked")])?;
        panic!("a bug in a piece of write work");
    })
    .await;
    release.send(()).expect("the holder waits");
    assert!(holder.await.unwrap().expect("the holder commits"));
    assert!(panicking.await.unwrap().is_err(), "the panicking piece fails");
    let beside = before.await.unwrap();
    let mut conn = app.db();
    assert!(!has_tag(&mut conn, "panicked"), "nothing of the panicking piece is kept");
    if app.is_postgres() {
        // Its own transaction: untouched by the other's panic.
        assert!(beside.expect("committed"));
        assert!(has_tag(&mut conn, "beside-the-panic"));
    } else {
        // Its group was rolled back, and it was told so: never told
        // "saved" for something that is not.
        assert!(
            matches!(&beside, Err(BlockingError::Join(why)) if why.contains("panicked")),
            "the piece in the same group is told its group failed: {beside:?}"
        );
        assert!(!has_tag(&mut conn, "beside-the-panic"), "and nothing of it is kept");
    }
    // The writer goes on, on a connection that is not left in a transaction.
    let after = state
        .write(|conn, _| {
            tag_store::ensure(conn, &[tag("after")])?;
            Ok::<_, diesel::result::Error>(())
        })
        .await;
    assert!(after.is_ok(), "{after:?}");
    assert!(has_tag(&mut conn, "after"));
    assert!(!has_tag(&mut conn, "panicked"), "still nothing of the panicking piece");
}

/// Requests that write at the same time, some of them refused: 25 new
/// tags for one connection that may have 20, beside new connections. Each
/// is answered for itself; a refused tag leaves no tag behind; what was
/// answered as saved is saved, new connections with their first check.
#[actix_web::test]
async fn concurrent_writes_are_each_answered_for_themselves() {
    let app = common::spawn().await;
    let id = app.create("github", "tagged", &[("token", "ghp_tagged")]).await;
    let token = app.csrf().await;
    let method = app.default_method("github").await;
    let send = |path: String, fields: Vec<(&'static str, String)>| {
        let request = app.client.post(app.url(&path)).header("HX-Request", "true").form(&fields);
        async move { request.send().await.expect("POST").status() }
    };
    let tag_path = format!("/connections/{id}/tags");
    let tagging = (0..25)
        .map(|i| send(tag_path.clone(), vec![("csrf_token", token.clone()), ("tag", format!("t{i:02}"))]));
    let creating = (0..12).map(|i| {
        send(
            "/connections".to_owned(),
            vec![
                ("csrf_token", token.clone()),
                ("component", "github".to_owned()),
                ("auth_method", method.clone()),
                ("name", format!("concurrent {i:02}")),
                ("field:token", format!("ghp_{i:036}")),
            ],
        )
    });
    let (tagged, created) = futures_util::future::join(
        futures_util::future::join_all(tagging),
        futures_util::future::join_all(creating),
    )
    .await;
    let added = tagged.iter().filter(|s| s.is_success()).count();
    assert_eq!(added, 20, "as many tags as a connection may have: {tagged:?}");
    assert!(tagged.iter().all(|s| s.is_success() || s.is_client_error()), "{tagged:?}");
    assert!(created.iter().all(|s| s.is_success()), "{created:?}");

    use plugboard::db::schema::{connection_checks, connection_tags, connections};
    let mut conn = app.db();
    let tags_stored: i64 = tags::table.count().get_result(&mut conn).unwrap();
    assert_eq!(tags_stored, 20, "a refused tag leaves no tag behind");
    let links: i64 = connection_tags::table.count().get_result(&mut conn).unwrap();
    assert_eq!(links, 20);
    let stored: Vec<(i64, String)> = connections::table
        .filter(connections::name.like("concurrent %"))
        .select((connections::id, connections::status_reason))
        .load(&mut conn)
        .unwrap();
    assert_eq!(stored.len(), 12, "every create answered as saved is saved");
    for (created, reason) in &stored {
        assert_ne!(reason, "not checked yet", "connection {created} is stored with its check");
        let history: i64 = connection_checks::table
            .filter(connection_checks::connection_id.eq(created))
            .count()
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(history, 1, "connection {created} has its first check in its history");
    }
}
