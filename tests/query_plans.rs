//! The list stays fast at 100,000 connections: each query the list makes
//! is answered from an index, never by reading the whole table. Prints the
//! plans (run with --nocapture to read them) and asserts on them, on SQLite
//! and, with PLUGBOARD_TEST_POSTGRES, on PostgreSQL.

mod common;

use diesel::RunQueryDsl;
use diesel::sql_types::Text;

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

/// The list's queries, as `store::list`, `component_counts`, `status_counts`
/// and `tags::counts` send them (with the values inlined).
const QUERIES: [(&str, &str); 8] = [
    (
        "newest first",
        "SELECT id FROM connections WHERE environment = 'development' ORDER BY created_at DESC, id DESC LIMIT 50 OFFSET 0",
    ),
    (
        "name A-Z, page 100",
        "SELECT id FROM connections WHERE environment = 'development' ORDER BY name_key ASC, id ASC LIMIT 50 OFFSET 4950",
    ),
    (
        "one component",
        "SELECT id FROM connections WHERE environment = 'development' AND component = 'slack' ORDER BY created_at DESC, id DESC LIMIT 50",
    ),
    (
        "one status",
        "SELECT id FROM connections WHERE environment = 'development' AND status = 'active' ORDER BY created_at DESC, id DESC LIMIT 50",
    ),
    (
        "one tag",
        "SELECT id FROM connections WHERE environment = 'development' AND id IN (SELECT connection_id FROM connection_tags WHERE environment = 'development' AND tag_id = 1) ORDER BY created_at DESC, id DESC LIMIT 50",
    ),
    (
        "component counts",
        "SELECT component, COUNT(*) FROM connections WHERE environment = 'development' GROUP BY component",
    ),
    (
        "tag counts",
        "SELECT tag_id, COUNT(*) FROM connection_tags WHERE environment = 'development' GROUP BY tag_id",
    ),
    ("total", "SELECT COUNT(*) FROM connections WHERE environment = 'development'"),
];

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
    diesel::sql_query("ANALYZE").execute(conn).expect("analyze");
}

#[actix_web::test]
async fn list_queries_use_indexes_at_100k_connections() {
    let app = common::spawn().await;
    let postgres = app.is_postgres();
    let mut conn = app.db();
    fill(&mut conn, postgres);
    if postgres {
        diesel::sql_query("VACUUM ANALYZE connections, connection_tags").execute(&mut conn).expect("vacuum");
    }
    let mut problems = Vec::new();
    for (what, sql) in QUERIES {
        let plan: Vec<String> = if postgres {
            diesel::sql_query(format!("EXPLAIN {sql}"))
                .load::<PgPlan>(&mut conn)
                .expect("explain")
                .into_iter()
                .map(|p| p.line)
                .collect()
        } else {
            diesel::sql_query(format!("EXPLAIN QUERY PLAN {sql}"))
                .load::<SqlitePlan>(&mut conn)
                .expect("explain")
                .into_iter()
                .map(|p| p.detail)
                .collect()
        };
        println!("-- {what}\n{}\n", plan.join("\n"));
        let full_scan = plan.iter().any(|line| {
            if postgres {
                line.contains("Seq Scan on connections") || line.contains("Seq Scan on connection_tags")
            } else {
                line.starts_with("SCAN connections") || line.starts_with("SCAN connection_tags")
            }
        });
        if full_scan {
            problems.push(format!("{what}: reads the whole table\n{}", plan.join("\n")));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n\n"));
    // And the page itself answers over these rows.
    let page = app.get("/?sort=name&page=100").await;
    assert_eq!(page.status, reqwest::StatusCode::OK);
    assert_eq!(page.count("tr[data-connection]"), 50);
}
