//! The list stays fast at 100,000 connections: each statement the list
//! sends is answered from an index, never by reading the whole table. The
//! statements are the ones `store::overview` (what the page calls) really
//! sends, recorded through diesel's instrumentation, not copies of them.
//! Prints the plans (run with --nocapture to read them) and asserts on
//! them, on SQLite and, with PLUGBOARD_TEST_POSTGRES, on PostgreSQL.

mod common;

use diesel::RunQueryDsl;
use diesel::connection::{Connection, InstrumentationEvent};
use diesel::sql_types::Text;
use plugboard::connections::listing::Reach;
use plugboard::connections::{ConnectionId, ListQuery, Sort, Status, listing};
use plugboard::db::DbConnection;
use plugboard::environment::Environment;
use plugboard::tags::TagId;

const PER_PAGE: i64 = 50;

#[derive(diesel::QueryableByName)]
struct PgPlan {
    #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
    line: String,
}

#[derive(diesel::QueryableByName)]
struct SqlitePlan {
    #[diesel(sql_type = Text)]
    detail: String,
}

const ROWS: u32 = 100_000;

/// The unused filter's "since": 30 days before now, as the page asks.
fn unused_since() -> chrono::NaiveDateTime {
    plugboard::api::usage::recent_since(chrono::Utc::now().naive_utc())
}

/// The lists a person opens: every filter and sort the page offers, a
/// bookmarked page, the pages a Next and a Previous link open (starting
/// from `anchor`), and name searches long and short.
fn list_queries(anchor: ConnectionId) -> Vec<(String, ListQuery)> {
    let base = ListQuery { page: 1, per_page: PER_PAGE, ..ListQuery::default() };
    let mut queries = vec![
        ("one component".to_owned(), ListQuery { component: Some("slack".into()), ..base.clone() }),
        ("one status".to_owned(), ListQuery { status: Some(Status::Active), ..base.clone() }),
        ("one tag".to_owned(), ListQuery { tag: Some("billing".into()), ..base.clone() }),
        (
            "component and status".to_owned(),
            ListQuery { component: Some("slack".into()), status: Some(Status::NotActive), ..base.clone() },
        ),
        ("name search".to_owned(), ListQuery { search: Some("ction 12".into()), ..base.clone() }),
        ("short name search".to_owned(), ListQuery { search: Some("12".into()), ..base.clone() }),
        // The unused filter, and an API token's limits (counted, not from
        // the counters).
        ("unused".to_owned(), ListQuery { unused_since: Some(unused_since()), ..base.clone() }),
        (
            "an API token's limits".to_owned(),
            ListQuery {
                reach: Some(Reach {
                    components: vec!["slack".into(), "github".into()],
                    tags: vec![TagId(1)],
                }),
                ..base.clone()
            },
        ),
    ];
    for sort in Sort::ALL {
        let name = sort.as_str();
        queries.push((format!("{name}, page 1"), ListQuery { sort, ..base.clone() }));
        queries.push((format!("{name}, page 100"), ListQuery { sort, page: 100, ..base.clone() }));
        queries.push((
            format!("{name}, next"),
            ListQuery { sort, page: 3, after: Some(anchor), ..base.clone() },
        ));
        queries.push((
            format!("{name}, previous"),
            ListQuery { sort, page: 3, before: Some(anchor), ..base.clone() },
        ));
    }
    queries
}

/// Runs `work` on `conn` and returns every statement it sent, with the
/// bound values written into the SQL so that it can be EXPLAINed.
fn recorded(conn: &mut DbConnection, work: impl FnOnce(&mut DbConnection)) -> Vec<String> {
    let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = sent.clone();
    conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
        if let InstrumentationEvent::StartQuery { query, .. } = event {
            sink.lock().unwrap().push(query.to_string());
        }
    });
    work(conn);
    conn.set_instrumentation(|_: InstrumentationEvent<'_>| {});
    let statements = sent.lock().unwrap().clone();
    statements.iter().map(|s| inline_binds(s)).collect()
}

/// `SELECT ... WHERE a = ? LIMIT ? -- binds: ["x", 50]` (or `$1`, `$2` on
/// PostgreSQL) with the values in place of the placeholders.
fn inline_binds(statement: &str) -> String {
    let (sql, binds) = statement.rsplit_once(" -- binds: ").unwrap_or((statement, "[]"));
    let binds = binds.trim();
    let values = parse_binds(binds.strip_prefix('[').and_then(|b| b.strip_suffix(']')).unwrap_or(binds));
    let mut out = String::new();
    let mut rest = sql;
    let mut index = 0;
    while let Some(pos) = rest.find(['?', '$']) {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        let digits = after.chars().take_while(char::is_ascii_digit).count();
        let n = if rest.as_bytes()[pos] == b'?' {
            index += 1;
            index
        } else if digits > 0 {
            after[..digits].parse().unwrap()
        } else {
            out.push('$');
            rest = after;
            continue;
        };
        out.push_str(values.get(n - 1).map(String::as_str).unwrap_or("NULL"));
        rest = &after[if rest.as_bytes()[pos] == b'?' { 0 } else { digits }..];
    }
    out.push_str(rest);
    out
}

/// Debug-printed bind values as SQL literals: strings quoted, numbers as
/// they are.
fn parse_binds(list: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut chars = list.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ',' || c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut text = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => text.extend(chars.next()),
                    '"' => break,
                    other => text.push(other),
                }
            }
            values.push(format!("'{}'", text.replace('\'', "''")));
        } else if c == '[' {
            // An array (PostgreSQL's `= ANY($1)` for `eq_any`): of ids
            // (64-bit integers), or of quoted names (an API token's
            // components).
            chars.next();
            let items: String = std::iter::from_fn(|| chars.next_if(|c| *c != ']')).collect();
            chars.next();
            let kind = if items.contains('"') { "text" } else { "bigint" };
            values.push(format!("'{{{}}}'::{kind}[]", items.replace(", ", ",")));
        } else {
            let token: String = std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect();
            let token = token.trim();
            if token.contains(':') {
                // A timestamp, debug-printed as 2026-01-01T23:39:12.
                values.push(format!("'{}'", token.replace('T', " ")));
            } else {
                values.push(token.to_owned());
            }
        }
    }
    values
}

fn fill(conn: &mut plugboard::db::DbConnection, postgres: bool) {
    let numbers = if postgres {
        format!("SELECT generate_series(1, {ROWS}) AS n")
    } else {
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < {ROWS}) SELECT n FROM seq"
        )
    };
    let env = "CASE n % 3 WHEN 0 THEN 'development' WHEN 1 THEN 'staging' ELSE 'production' END";
    let component =
        "CASE n % 4 WHEN 0 THEN 'slack' WHEN 1 THEN 'github' WHEN 2 THEN 'stripe' ELSE 'notion' END";
    let timestamp = if postgres {
        "TIMESTAMP '2026-01-01' + n * INTERVAL '1 second'".to_owned()
    } else {
        "datetime('2026-01-01', '+' || n || ' seconds')".to_owned()
    };
    let concat = |a: &str, b: &str| format!("{a} || {b}");
    let insert = format!(
        "INSERT INTO connections (environment, component, name, name_key, auth_method, parameters, secret_fields, \
         status, status_reason, created_at, updated_at, version, check_failures) \
         SELECT {env}, {component}, {name}, {name_key}, 'token', '{{}}', '', \
         CASE WHEN n % 5 = 0 THEN 'not_active' ELSE 'active' END, 'seeded', {timestamp}, {timestamp}, 1, 0 FROM ({numbers}) AS s",
        name = concat("'Connection '", "CAST(n AS TEXT)"),
        name_key = concat("'connection '", "CAST(n AS TEXT)"),
    );
    diesel::sql_query(insert).execute(conn).expect("seed connections");
    diesel::sql_query(
        "INSERT INTO tags (name, name_key, created_at) VALUES ('billing', 'billing', CURRENT_TIMESTAMP)",
    )
    .execute(conn)
    .expect("seed tag");
    diesel::sql_query(
        "INSERT INTO connection_tags (connection_id, tag_id, environment) \
         SELECT id, 1, environment FROM connections WHERE id % 8 = 0",
    )
    .execute(conn)
    .expect("seed tag links");
    // One connection in ten was read through the API lately.
    diesel::sql_query(
        "INSERT INTO connection_usage (connection_id, consumer, environment, token_name, first_used_at, \
         last_used_at, reads) SELECT id, 'invoice-sync', environment, 'seeded', created_at, CURRENT_TIMESTAMP, 1 \
         FROM connections WHERE id % 10 = 0",
    )
    .execute(conn)
    .expect("seed usage");
    diesel::sql_query("ANALYZE").execute(conn).expect("analyze");
}

#[actix_web::test]
async fn list_queries_use_indexes_at_100k_connections() {
    let app = common::spawn().await;
    let postgres = app.is_postgres();
    let mut conn = app.db();
    fill(&mut conn, postgres);
    if postgres {
        diesel::sql_query("VACUUM ANALYZE connections, connection_tags, connection_usage")
            .execute(&mut conn)
            .expect("vacuum");
    }
    let mut statements: Vec<(String, String)> = Vec::new();
    let anchor = ConnectionId(3 * 5_000);
    for (what, query) in list_queries(anchor) {
        let sent = recorded(&mut conn, |conn| {
            let page = listing::overview(conn, Environment::Development, &query).expect("the list loads");
            assert_eq!(page.page.connections.len(), PER_PAGE as usize, "{what}: a full page");
        });
        assert!(sent.len() >= 4, "{what}: expected the counters, the page and its tags, got {sent:?}");
        for (i, sql) in sent.into_iter().enumerate() {
            statements.push((format!("{what}, statement {}", i + 1), sql));
        }
    }
    let mut problems = Vec::new();
    for (what, sql) in &statements {
        let plan: Vec<String> = if postgres {
            diesel::sql_query(format!("EXPLAIN {sql}"))
                .load::<PgPlan>(&mut conn)
                .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
                .into_iter()
                .map(|p| p.line)
                .collect()
        } else {
            diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                .load::<SqlitePlan>(&mut conn)
                .unwrap_or_else(|e| panic!("explain {sql}: {e}"))
                .into_iter()
                .map(|p| p.detail)
                .collect()
        };
        println!("-- {what}\n{}\n", plan.join("\n"));
        let full_scan = plan.iter().any(|line| {
            if postgres {
                ["connections", "connection_tags", "connection_usage"]
                    .iter()
                    .any(|table| line.contains(&format!("Seq Scan on {table} ")))
            } else {
                ["connections", "connection_tags", "connection_usage"].iter().any(|table| {
                    line == &format!("SCAN {table}") || line.starts_with(&format!("SCAN {table} "))
                })
            }
        });
        if full_scan {
            problems.push(format!("{what}: reads the whole table\n{}", plan.join("\n")));
        }
        // A subquery PostgreSQL neither hashes nor indexes is read whole
        // again for every row (`id <> ALL (SELECT ...)` was).
        let rescanned = postgres
            && plan
                .windows(2)
                .any(|w| w[0].trim_start().starts_with("SubPlan") && w[1].contains("Materialize"));
        if rescanned {
            problems.push(format!("{what}: reads a subquery again for every row\n{}", plan.join("\n")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // And the page itself answers over these rows.
    let page = app.get("/?sort=name&page=100").await;
    assert_eq!(page.status, reqwest::StatusCode::OK);
    assert_eq!(page.count("tr[data-connection]"), 50);
}
