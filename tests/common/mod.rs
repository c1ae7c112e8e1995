//! The test harness: starts the real application on a random port over a
//! fresh database, and a client that keeps cookies and the CSRF token.
//!
//! SQLite by default. With `PLUGBOARD_TEST_POSTGRES` set to a server URL
//! (`postgres://postgres@127.0.0.1:5432`), each test gets its own new
//! PostgreSQL database instead, dropped when the test ends.
#![allow(dead_code)]

use std::path::PathBuf;

use diesel::RunQueryDsl;
use plugboard::db::DbConnection;
use plugboard::{Application, Settings};
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use scraper::{Html, Selector};

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub data_dir: tempfile::TempDir,
    pub database_url: String,
    postgres: Option<(String, String)>,
}

pub struct Page {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn html(&self) -> Html {
        Html::parse_document(&self.body)
    }

    /// Texts of the elements matching a CSS selector.
    pub fn texts(&self, selector: &str) -> Vec<String> {
        let selector = Selector::parse(selector).expect("valid selector");
        self.html()
            .select(&selector)
            .map(|e| e.text().collect::<String>().split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    }

    pub fn text_of(&self, selector: &str) -> String {
        self.texts(selector).join(" ")
    }

    pub fn attr(&self, selector: &str, attr: &str) -> Option<String> {
        let selector = Selector::parse(selector).expect("valid selector");
        self.html().select(&selector).next().and_then(|e| e.value().attr(attr).map(str::to_owned))
    }

    pub fn count(&self, selector: &str) -> usize {
        let selector = Selector::parse(selector).expect("valid selector");
        self.html().select(&selector).count()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A test application over a fresh database, with `configure` applied to
/// its settings.
pub async fn spawn_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temporary folder");
    let mut settings = Settings::with_data_dir(data_dir.path());
    let postgres = std::env::var("PLUGBOARD_TEST_POSTGRES").ok().filter(|s| !s.is_empty()).map(|server| {
        let name = format!("plugboard_test_{}", random_hex(6));
        let mut admin = plugboard::db::establish(&format!("{}/postgres", server.trim_end_matches('/')))
            .expect("connect to PLUGBOARD_TEST_POSTGRES");
        diesel::sql_query(format!("CREATE DATABASE {name}")).execute(&mut admin).expect("create test database");
        (server.trim_end_matches('/').to_owned(), name)
    });
    if let Some((server, name)) = &postgres {
        settings.database_url = Some(format!("{server}/{name}"));
    }
    configure(&mut settings);
    let database_url = settings.database_url();
    let app = Application::build(&settings).expect("application starts");
    let base = format!("http://{}", app.addr());
    actix_web::rt::spawn(app.run());
    let client = reqwest::Client::builder().cookie_store(true).redirect(Policy::none()).build().expect("client");
    TestApp { base, client, data_dir, database_url, postgres }
}

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("random");
    hex::encode(buf)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            if let Ok(mut admin) = plugboard::db::establish(&format!("{server}/postgres")) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).execute(&mut admin);
            }
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }

    /// The SQLite database file (empty for PostgreSQL).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (!self.is_postgres()).then(|| PathBuf::from(&self.database_url))
    }

    /// A direct database connection, for checking what was stored.
    pub fn db(&self) -> DbConnection {
        plugboard::db::establish(&self.database_url).expect("direct database connection")
    }

    async fn page(response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.text().await.expect("body");
        Page { status, headers, body }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::page(self.client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// As htmx asks: wants a fragment.
    pub async fn hx_get(&self, path: &str) -> Page {
        Self::page(self.client.get(self.url(path)).header("HX-Request", "true").send().await.expect("GET")).await
    }

    /// The session's CSRF token, as the page hands it to forms.
    pub async fn csrf(&self) -> String {
        let page = self.get("/").await;
        page.attr("input[name=csrf_token]", "value").expect("a CSRF token on the page")
    }

    /// A form post with the session's CSRF token, as a browser sends it.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf().await;
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        form.extend_from_slice(fields);
        self.post_raw(path, &form).await
    }

    /// A form post exactly as given: no token added.
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Self::page(self.client.post(self.url(path)).form(fields).send().await.expect("POST")).await
    }

    /// A post as htmx sends it: token in the header, fragment wanted.
    pub async fn hx_post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf().await;
        let response = self
            .client
            .post(self.url(path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token)
            .form(fields)
            .send()
            .await
            .expect("POST");
        Self::page(response).await
    }

    pub async fn switch_environment(&self, environment: &str) {
        let page = self.post("/environment", &[("environment", environment)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    }

    /// Creates a connection through the form and returns its id. `fields`
    /// are catalog field keys, plus `auth_method`, `tag` and `new_tags`.
    pub async fn create(&self, component: &str, name: &str, fields: &[(&str, &str)]) -> i64 {
        let mut form: Vec<(String, String)> =
            vec![("component".into(), component.into()), ("name".into(), name.into())];
        if !fields.iter().any(|(k, _)| *k == "auth_method") {
            form.push(("auth_method".into(), self.default_method(component).await));
        }
        for (key, value) in fields {
            let name = match *key {
                "tag" | "new_tags" | "auth_method" => (*key).to_owned(),
                _ => format!("field:{key}"),
            };
            form.push((name, (*value).into()));
        }
        let pairs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = self.post("/connections", &pairs).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "create failed: {}", page.body);
        self.connection_ids().await.into_iter().max().expect("the new connection")
    }

    /// The auth method the form preselects for a component.
    pub async fn default_method(&self, component: &str) -> String {
        let page = self.get(&format!("/connections/new?component={component}")).await;
        page.attr("input[name=auth_method]", "value").expect("an auth method in the form")
    }

    /// Ids of the connections on the first page of the list.
    pub async fn connection_ids(&self) -> Vec<i64> {
        let page = self.get("/?sort=newest").await;
        let selector = Selector::parse("tr[data-connection]").unwrap();
        page.html()
            .select(&selector)
            .filter_map(|e| e.value().attr("data-connection").and_then(|v| v.parse().ok()))
            .collect()
    }

    pub async fn count_rows(&self, table: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db();
        let rows: Vec<Count> =
            diesel::sql_query(format!("SELECT COUNT(*) AS n FROM {table}")).load(&mut conn).expect("count");
        rows[0].n
    }
}
