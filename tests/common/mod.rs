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
    /// What the running application's handlers share.
    pub state: std::sync::Arc<plugboard::state::AppState>,
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
    if let Ok(filter) = std::env::var("PLUGBOARD_TEST_LOG") {
        // Server logs for debugging a test: PLUGBOARD_TEST_LOG=warn cargo test -- --nocapture
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    }
    let data_dir = tempfile::tempdir().expect("temporary folder");
    let mut settings = Settings::with_data_dir(data_dir.path());
    let postgres = std::env::var("PLUGBOARD_TEST_POSTGRES").ok().filter(|s| !s.is_empty()).map(|server| {
        let name = format!("plugboard_test_{}", random_hex(6));
        let mut admin =
            plugboard::db::establish(&format!("{}/postgres{NO_TLS}", server.trim_end_matches('/')))
                .expect("connect to PLUGBOARD_TEST_POSTGRES");
        diesel::sql_query(format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .expect("create test database");
        (server.trim_end_matches('/').to_owned(), name)
    });
    if let Some((server, name)) = &postgres {
        settings.database_url = Some(format!("{server}/{name}{NO_TLS}"));
    }
    configure(&mut settings);
    let database_url = settings.database_url();
    let app = Application::build(&settings).expect("application starts");
    let state = app.state();
    let base = format!("http://{}", app.addr());
    actix_web::rt::spawn(app.run());
    let client = new_client();
    let app = TestApp { base, client, data_dir, database_url, state, postgres };
    // Every test starts signed in as an admin, as a person using the page
    // would be; tests of access rules make their own clients.
    app.add_user(ADMIN_EMAIL, plugboard::accounts::Role::Admin);
    app.sign_in(&app.client, ADMIN_EMAIL).await;
    app
}

/// A second Plugboard process on the same database and data folder (so the
/// same keys), as several processes behind a load balancer run. It does not
/// own the database: `first` drops it.
pub async fn spawn_sibling(first: &TestApp, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let own_dir = tempfile::tempdir().expect("temporary folder");
    let mut settings = Settings::with_data_dir(first.data_dir.path());
    settings.database_url = Some(first.database_url.clone());
    configure(&mut settings);
    let app = Application::build(&settings).expect("second process starts");
    let state = app.state();
    let base = format!("http://{}", app.addr());
    actix_web::rt::spawn(app.run());
    let app = TestApp {
        base,
        client: new_client(),
        data_dir: own_dir,
        database_url: first.database_url.clone(),
        state,
        postgres: None,
    };
    app.sign_in(&app.client, ADMIN_EMAIL).await;
    app
}

/// The test server is on loopback: TLS would add nothing but OpenSSL's
/// exit-time clean-up racing the test's still-running threads (seen as a
/// "double free" abort after all tests had passed).
const NO_TLS: &str = "?sslmode=disable";

pub async fn spawn() -> TestApp {
    spawn_with(|_| {}).await
}

pub const ADMIN_EMAIL: &str = "admin@plugboard.test";
/// Every test account's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A browser with no session yet.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(Policy::none())
        // Shorter than the server's keep-alive (5 s), so a test that pauses
        // never reuses a connection the server has just closed.
        .pool_idle_timeout(std::time::Duration::from_secs(2))
        .build()
        .expect("client")
}

pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("random");
    hex::encode(buf)
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some((server, name)) = &self.postgres {
            if let Ok(mut admin) = plugboard::db::establish(&format!("{server}/postgres{NO_TLS}")) {
                let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin);
            }
        }
    }
}

impl TestApp {
    /// Creates an account directly in the database (password [`PASSWORD`]).
    pub fn add_user(&self, email: &str, role: plugboard::accounts::Role) -> plugboard::accounts::User {
        let mut conn = self.db();
        plugboard::accounts::create(
            &mut conn,
            &plugboard::accounts::NewUser {
                email,
                name: "",
                password: PASSWORD,
                role,
                must_change_password: false,
            },
        )
        .expect("test account")
    }

    /// Signs `client` in through the sign-in form.
    pub async fn sign_in(&self, client: &reqwest::Client, email: &str) {
        let page = client.get(self.url("/sign-in")).send().await.expect("sign-in page").text().await.unwrap();
        let token = {
            let html = Html::parse_document(&page);
            let selector = Selector::parse("input[name=csrf_token]").unwrap();
            html.select(&selector)
                .next()
                .and_then(|e| e.value().attr("value"))
                .expect("a CSRF token on the sign-in page")
                .to_owned()
        };
        let response = client
            .post(self.url("/sign-in"))
            .form(&[("csrf_token", token.as_str()), ("email", email), ("password", PASSWORD)])
            .send()
            .await
            .expect("sign in");
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{email} signs in");
    }

    /// A new browser signed in as a new account with `role`.
    pub async fn client_as(&self, email: &str, role: plugboard::accounts::Role) -> reqwest::Client {
        self.add_user(email, role);
        let client = new_client();
        self.sign_in(&client, email).await;
        client
    }

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

    pub async fn page(response: reqwest::Response) -> Page {
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
        Self::page(self.client.get(self.url(path)).header("HX-Request", "true").send().await.expect("GET"))
            .await
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

/// One connection row as stored, read straight from the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredConnection {
    pub id: i64,
    pub environment: String,
    pub component: String,
    pub name: String,
    pub auth_method: String,
    pub parameters: String,
    pub secrets: Option<Vec<u8>>,
    pub secrets_key_id: Option<String>,
    pub secret_fields: String,
    pub version: i32,
    /// Tag names, sorted.
    pub tags: Vec<String>,
}

/// Everything stored, in a form that can be compared before and after a
/// request that must change nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub connections: Vec<StoredConnection>,
    pub tags: Vec<(i64, String)>,
    pub links: Vec<(i64, i64)>,
}

impl TestApp {
    /// The encryption keys the application uses.
    pub fn keyring(&self) -> plugboard::crypto::Keyring {
        plugboard::crypto::Keyring::load_or_create(&self.data_dir.path().join("encryption.key"))
            .expect("key file")
            .0
    }

    /// The decrypted secrets of a connection, as plain strings.
    pub fn secrets(
        &self,
        environment: plugboard::environment::Environment,
        id: i64,
    ) -> Result<std::collections::BTreeMap<String, String>, plugboard::connections::StoreError> {
        use secrecy::ExposeSecret;
        let mut conn = self.db();
        plugboard::connections::store::open_secrets(
            &mut conn,
            &self.keyring(),
            environment,
            plugboard::connections::ConnectionId(id),
        )
        .map(|m| m.into_iter().map(|(k, v)| (k, v.expose_secret().to_owned())).collect())
    }

    /// A connection row as stored, or `None`.
    pub fn stored(&self, id: i64) -> Option<StoredConnection> {
        self.snapshot().connections.into_iter().find(|c| c.id == id)
    }

    pub fn snapshot(&self) -> Snapshot {
        use diesel::prelude::*;
        use plugboard::db::schema::{connection_tags, connections, tags};
        let mut conn = self.db();
        type Raw =
            (i64, String, String, String, String, String, Option<Vec<u8>>, Option<String>, String, i32);
        let rows: Vec<Raw> = connections::table
            .order(connections::id)
            .select((
                connections::id,
                connections::environment,
                connections::component,
                connections::name,
                connections::auth_method,
                connections::parameters,
                connections::secrets,
                connections::secrets_key_id,
                connections::secret_fields,
                connections::version,
            ))
            .load(&mut conn)
            .expect("read connections");
        let tags: Vec<(i64, String)> =
            tags::table.order(tags::id).select((tags::id, tags::name)).load(&mut conn).expect("read tags");
        let links: Vec<(i64, i64)> = connection_tags::table
            .order((connection_tags::connection_id, connection_tags::tag_id))
            .select((connection_tags::connection_id, connection_tags::tag_id))
            .load(&mut conn)
            .expect("read connection tags");
        let connections = rows
            .into_iter()
            .map(|r| {
                let mut names: Vec<String> = links
                    .iter()
                    .filter(|(c, _)| *c == r.0)
                    .filter_map(|(_, t)| tags.iter().find(|(id, _)| id == t).map(|(_, n)| n.clone()))
                    .collect();
                names.sort();
                StoredConnection {
                    id: r.0,
                    environment: r.1,
                    component: r.2,
                    name: r.3,
                    auth_method: r.4,
                    parameters: r.5,
                    secrets: r.6,
                    secrets_key_id: r.7,
                    secret_fields: r.8,
                    version: r.9,
                    tags: names,
                }
            })
            .collect();
        Snapshot { connections, tags, links }
    }

    /// A form post with a token already fetched (for many posts in a row).
    pub async fn post_with_token(&self, token: &str, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", token)];
        form.extend_from_slice(fields);
        self.post_raw(path, &form).await
    }

    /// A post as htmx sends it, with `token` (or none) in the header.
    pub async fn hx_post_token(&self, token: Option<&str>, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut request = self.client.post(self.url(path)).header("HX-Request", "true").form(fields);
        if let Some(token) = token {
            request = request.header("X-CSRF-Token", token);
        }
        Self::page(request.send().await.expect("POST")).await
    }

    /// A post of a raw body, with the given headers.
    pub async fn post_body(&self, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Page {
        let mut request = self
            .client
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::page(request.send().await.expect("POST")).await
    }

    /// A GET with extra headers.
    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Page {
        let mut request = self.client.get(self.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::page(request.send().await.expect("GET")).await
    }

    /// Creates `n` connections of a component quickly (one token, no
    /// look-ups), named by `name(i)`. Returns nothing; read ids from the list.
    pub async fn create_many(
        &self,
        component: &str,
        auth_method: &str,
        n: usize,
        name: impl Fn(usize) -> String,
        fields: &[(&str, &str)],
    ) {
        let token = self.csrf().await;
        for i in 0..n {
            let name = name(i);
            let mut form: Vec<(&str, &str)> =
                vec![("component", component), ("auth_method", auth_method), ("name", &name)];
            form.extend_from_slice(fields);
            let page = self.post_with_token(&token, "/connections", &form).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER, "create failed: {}", page.body);
        }
    }
}

// ---- accounts and the audit trail ----

/// A browser with no session yet, whose cookies the test can read.
pub fn new_client_with_jar() -> (reqwest::Client, std::sync::Arc<reqwest::cookie::Jar>) {
    let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
    let client = reqwest::Client::builder()
        .cookie_provider(jar.clone())
        .redirect(Policy::none())
        .build()
        .expect("client");
    (client, jar)
}

impl TestApp {
    /// A GET from another browser.
    pub async fn get_as(&self, client: &reqwest::Client, path: &str) -> Page {
        Self::page(client.get(self.url(path)).send().await.expect("GET")).await
    }

    /// A GET from another browser, as htmx asks.
    pub async fn hx_get_as(&self, client: &reqwest::Client, path: &str) -> Page {
        Self::page(client.get(self.url(path)).header("HX-Request", "true").send().await.expect("GET")).await
    }

    /// Another browser's CSRF token: from the password page when signed in,
    /// else from the sign-in (or setup) page.
    pub async fn csrf_as(&self, client: &reqwest::Client) -> String {
        for path in ["/account/password", "/sign-in", "/setup"] {
            let page = self.get_as(client, path).await;
            if let Some(token) = page.attr("input[name=csrf_token]", "value") {
                return token;
            }
        }
        panic!("no page offers this browser a CSRF token");
    }

    /// A form post from another browser, with its CSRF token.
    pub async fn post_as(&self, client: &reqwest::Client, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf_as(client).await;
        let mut form: Vec<(&str, &str)> = vec![("csrf_token", &token)];
        form.extend_from_slice(fields);
        Self::page(client.post(self.url(path)).form(&form).send().await.expect("POST")).await
    }

    /// A post from another browser as htmx sends it.
    pub async fn hx_post_as(&self, client: &reqwest::Client, path: &str, fields: &[(&str, &str)]) -> Page {
        let token = self.csrf_as(client).await;
        let response = client
            .post(self.url(path))
            .header("HX-Request", "true")
            .header("X-CSRF-Token", token)
            .form(fields)
            .send()
            .await
            .expect("POST");
        Self::page(response).await
    }

    /// Posts the sign-in form with any password; the answer as it came.
    pub async fn sign_in_with(&self, client: &reqwest::Client, email: &str, password: &str) -> Page {
        let token = self.csrf_as(client).await;
        let form = [("csrf_token", token.as_str()), ("email", email), ("password", password)];
        Self::page(client.post(self.url("/sign-in")).form(&form).send().await.expect("sign in")).await
    }

    /// Every audit row, oldest first, read straight from the database.
    pub fn audit_rows(&self) -> Vec<plugboard::audit::Entry> {
        use diesel::prelude::*;
        use plugboard::db::schema::audit_events;
        let mut conn = self.db();
        audit_events::table.order(audit_events::id).load(&mut conn).expect("read audit events")
    }

    /// An account as stored.
    pub fn user(&self, email: &str) -> plugboard::accounts::User {
        let mut conn = self.db();
        plugboard::accounts::list(&mut conn)
            .expect("read accounts")
            .into_iter()
            .find(|u| u.email == email)
            .unwrap_or_else(|| panic!("no account {email}"))
    }
}
