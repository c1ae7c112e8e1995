//! Overload and outages: an exhausted pool, a database that refuses
//! connections, a locked SQLite file and a full disk are each answered
//! quickly with a 503 that says what is wrong; readiness tells a busy
//! instance from a broken one; the data folder and database are private.
//!
//! SQLite by default; with PLUGBOARD_TEST_POSTGRES the tests that make
//! sense there run on PostgreSQL. Tests that need the other backend say
//! "skipped" and pass.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use diesel::RunQueryDsl;
use diesel::connection::SimpleConnection;
use reqwest::StatusCode;

const GITHUB_TOKEN: &str = "ghp_abcdef123456";

/// The bounded wait is measured against this: a request must be answered
/// well before the pool's own timeout.
const POOL_TIMEOUT_SECS: u64 = 30;
const QUICKLY: Duration = Duration::from_secs(5);

/// These tests time answers and count threads: one at a time.
async fn serial() -> tokio::sync::MutexGuard<'static, ()> {
    static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    SERIAL.lock().await
}

/// The test holds the pool's only connection, as a long request would.
async fn hold_the_only_connection(app: &common::TestApp) -> plugboard::db::PooledConnection {
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || state.pool.get()).await.expect("thread").expect("a pooled connection")
}

async fn timed<T>(future: impl std::future::Future<Output = T>) -> (T, Duration) {
    let started = Instant::now();
    let out = future.await;
    (out, started.elapsed())
}

fn threads() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

fn new_connection_form<'a>(token: &'a str, name: &'a str, secret: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf_token", token),
        ("component", "github"),
        ("auth_method", "token"),
        ("name", name),
        ("field:token", secret),
    ]
}

fn assert_security_headers(page: &common::Page) {
    for name in ["content-security-policy", "x-content-type-options", "x-frame-options", "referrer-policy"] {
        assert!(page.header(name).is_some(), "{name} missing on a {} answer", page.status);
    }
}

// ---- an exhausted pool ----

#[actix_web::test]
async fn an_exhausted_pool_is_answered_busy_within_the_bounded_wait_and_recovers() {
    let _serial = serial().await;
    let app = common::spawn_with(|s| {
        s.pool_size = 1;
        s.pool_timeout = POOL_TIMEOUT_SECS;
    })
    .await;
    let held = hold_the_only_connection(&app).await;

    let (page, took) = timed(app.get("/")).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(took < QUICKLY, "a full page waited {took:?}");
    assert_eq!(page.header("retry-after"), Some("5"));
    assert!(page.body.contains("<html"), "a whole page: {}", page.body);
    assert!(
        page.text_of("body")
            .contains("Plugboard is busy: every database connection is in use. Try again in a few seconds."),
        "{}",
        page.body
    );
    assert!(!page.body.contains("timed out"), "the cause stays in the log: {}", page.body);
    assert_security_headers(&page);
    eprintln!("busy page answered in {took:?} (pool timeout {POOL_TIMEOUT_SECS} s)");

    let (fragment, took) = timed(app.hx_get("/")).await;
    assert_eq!(fragment.status, StatusCode::SERVICE_UNAVAILABLE, "{}", fragment.body);
    assert!(took < QUICKLY, "an htmx request waited {took:?}");
    assert_eq!(fragment.header("retry-after"), Some("5"));
    assert!(!fragment.body.contains("<html"), "htmx gets the fragment: {}", fragment.body);
    assert!(fragment.body.contains("every database connection is in use"), "{}", fragment.body);

    drop(held);
    let page = app.get("/").await;
    assert_eq!(page.status, StatusCode::OK, "released, it serves again: {}", page.body);
}

#[actix_web::test]
async fn a_burst_against_a_held_pool_waits_as_futures_not_threads() {
    let _serial = serial().await;
    let app = common::spawn_with(|s| {
        s.pool_size = 1;
        s.pool_timeout = POOL_TIMEOUT_SECS;
    })
    .await;
    // Everything the app starts on first use (the worker's blocking
    // thread, the client's connections) exists before counting.
    assert_eq!(app.get("/").await.status, StatusCode::OK);
    let held = hold_the_only_connection(&app).await;

    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(threads(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    std::thread::sleep(Duration::from_millis(20));
    let before = threads();

    const BURST: usize = 300;
    let started = Instant::now();
    let requests = (0..BURST).map(|_| {
        let client = app.client.clone();
        let url = app.url("/");
        async move {
            let response = client.get(url).send().await.expect("an answer");
            (response.status(), started.elapsed())
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let peak = peak.load(Ordering::Relaxed);

    let busy = answers.iter().filter(|(status, _)| *status == StatusCode::SERVICE_UNAVAILABLE).count();
    let slowest = answers.iter().map(|(_, t)| *t).max().unwrap_or_default();
    eprintln!(
        "{BURST} requests against a held pool of one: {busy} answered 503, slowest {slowest:?}, all in \
         {took:?}; threads {before} before, {peak} at the peak"
    );
    assert_eq!(busy, BURST, "every request is told the pool is busy");
    assert!(slowest < QUICKLY + QUICKLY, "the slowest waited {slowest:?}");
    // A thread parked per waiting request would add about BURST threads
    // (tokio grows its blocking pool to 512). What may appear is fixed in
    // number, whatever the burst: a blocking thread per server worker and
    // the client's, which differ from one machine to the next.
    assert!(peak <= before + 16, "threads grew from {before} to {peak} during a burst of {BURST}");

    drop(held);
    assert_eq!(app.get("/").await.status, StatusCode::OK);
}

#[actix_web::test]
async fn readiness_is_ready_while_every_connection_is_in_use() {
    let _serial = serial().await;
    let app = common::spawn_with(|s| {
        s.pool_size = 1;
        s.pool_timeout = POOL_TIMEOUT_SECS;
    })
    .await;
    let held = hold_the_only_connection(&app).await;
    // A request queued behind the held connection, as under load.
    let waiting = actix_web::rt::spawn({
        let (client, url) = (app.client.clone(), app.url("/"));
        async move { client.get(url).send().await.map(|r| r.status()) }
    });

    let (ready, took) = timed(app.get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.body);
    assert_eq!(ready.body, "ready\n");
    assert!(took < QUICKLY, "the probe took {took:?}");
    eprintln!("readiness with every connection in use: ready in {took:?}");

    assert_eq!(waiting.await.expect("task").expect("answer"), StatusCode::SERVICE_UNAVAILABLE);
    drop(held);
}

// ---- PostgreSQL refusing connections ----

/// A TCP proxy between Plugboard and PostgreSQL that the test can stop,
/// closing every connection through it, and start again on the same port.
/// It runs on a thread of its own: start-up and the harness's direct
/// connections block the test's thread.
struct Proxy {
    addr: SocketAddr,
    target: SocketAddr,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    fn start(addr: SocketAddr, target: SocketAddr) -> Proxy {
        let listener = std::net::TcpListener::bind(addr).expect("the proxy listens");
        listener.set_nonblocking(true).expect("non-blocking");
        let addr = listener.local_addr().expect("the proxy's address");
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let thread = std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let mut relays = tokio::task::JoinSet::new();
                let mut stop = stopped.clone();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let Ok((mut inbound, _)) = accepted else { continue };
                            relays.spawn(async move {
                                let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            });
                        }
                        _ = stop.changed() => break,
                    }
                }
                // Dropping the listener and every relay closes all their sockets.
                relays.abort_all();
                while relays.join_next().await.is_some() {}
            });
        });
        Proxy { addr, target, stop: Some(stop), thread: Some(thread) }
    }

    /// Stops listening and drops every connection: PostgreSQL as seen
    /// from Plugboard when the server is stopped.
    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the proxy stops");
        }
    }

    fn restart(&mut self) {
        self.stop();
        *self = Proxy::start(self.addr, self.target);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The PostgreSQL server of PLUGBOARD_TEST_POSTGRES, to put a proxy in front of.
fn postgres_server() -> Option<SocketAddr> {
    let server = std::env::var("PLUGBOARD_TEST_POSTGRES").ok().filter(|s| !s.is_empty())?;
    let url = url::Url::parse(&server).expect("PLUGBOARD_TEST_POSTGRES is a URL");
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).ok()?.next()
}

/// A Plugboard on PostgreSQL whose every connection goes through `proxy`.
async fn spawn_behind(proxy: &Proxy, pool_size: u32) -> common::TestApp {
    let port = proxy.addr.port();
    common::spawn_with(move |s| {
        s.pool_size = pool_size;
        s.pool_timeout = POOL_TIMEOUT_SECS;
        let mut url = url::Url::parse(s.database_url.as_deref().expect("a PostgreSQL test database"))
            .expect("a database URL");
        url.set_host(Some("127.0.0.1")).expect("host");
        url.set_port(Some(port)).expect("port");
        s.database_url = Some(url.to_string());
    })
    .await
}

#[actix_web::test]
async fn postgresql_refusing_connections_is_answered_not_answering_quickly_and_recovers() {
    let Some(server) = postgres_server() else {
        eprintln!("skipped: PLUGBOARD_TEST_POSTGRES is not set");
        return;
    };
    let _serial = serial().await;
    let mut proxy = Proxy::start("127.0.0.1:0".parse().expect("address"), server);
    let app = spawn_behind(&proxy, 2).await;
    let token = app.csrf().await;
    assert_eq!(app.get("/readyz").await.status, StatusCode::OK);

    proxy.stop();
    assert!(std::net::TcpStream::connect(proxy.addr).is_err(), "the proxy refuses connections");
    let (page, took) = timed(app.get("/")).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert!(took < QUICKLY, "waited {took:?} for a database that refuses");
    assert_eq!(page.header("retry-after"), Some("60"));
    let text = page.text_of("body");
    assert!(
        text.contains(
            "The database is not answering. Nothing was saved; try again in a minute, and tell your \
             administrator if it lasts."
        ),
        "{}",
        page.body
    );
    let port = proxy.addr.port().to_string();
    assert!(!page.body.contains("postgres") && !page.body.contains(&port), "no DSN shown: {}", page.body);
    eprintln!("PostgreSQL refusing: a page answered 503 in {took:?}");

    let (saved, took) =
        timed(app.post_raw("/connections", &new_connection_form(&token, "While down", GITHUB_TOKEN))).await;
    assert_eq!(saved.status, StatusCode::SERVICE_UNAVAILABLE, "{}", saved.body);
    assert!(took < QUICKLY, "a save waited {took:?}");
    assert!(saved.body.contains("Nothing was saved"), "{}", saved.body);

    let (ready, took) = timed(app.get("/readyz")).await;
    assert_eq!(ready.status, StatusCode::SERVICE_UNAVAILABLE, "{}", ready.body);
    assert_eq!(ready.body, "not ready: the database is not answering\n");
    assert!(took < QUICKLY, "the probe took {took:?}");
    eprintln!("PostgreSQL refusing: not ready in {took:?}");

    proxy.restart();
    let back = Instant::now();
    loop {
        let page = app.get("/").await;
        if page.status == StatusCode::OK {
            break;
        }
        assert!(back.elapsed() < Duration::from_secs(POOL_TIMEOUT_SECS), "not back: {}", page.status);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("PostgreSQL back: pages served again after {:?}", back.elapsed());
    assert_eq!(app.get("/readyz").await.body, "ready\n");
    assert_eq!(app.count_rows("connections").await, 0, "nothing was saved while it was down");

    // Restarted between two probes: the probe's kept connection is dead,
    // the database is not, and the probe says so at once.
    proxy.restart();
    assert_eq!(app.get("/readyz").await.body, "ready\n");
}

// ---- SQLite: locked, full ----

#[actix_web::test]
async fn a_locked_sqlite_database_is_answered_503_on_save_and_nothing_is_saved() {
    let _serial = serial().await;
    let app = common::spawn().await;
    if app.is_postgres() {
        eprintln!("skipped: SQLite only");
        return;
    }
    let token = app.csrf().await;
    // Another program (a backup tool, the sqlite3 shell) holds the lock.
    let mut other = app.db();
    other.batch_execute("BEGIN EXCLUSIVE").expect("the other program locks the database");

    let (page, took) =
        timed(app.post_raw("/connections", &new_connection_form(&token, "Locked out", GITHUB_TOKEN))).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert_eq!(page.header("retry-after"), Some("10"));
    let text = page.text_of("body");
    assert!(text.contains("The database is locked by another program"), "{}", page.body);
    assert!(text.contains("nothing was saved"), "{}", page.body);
    // SQLite's busy timeout (5 s) is how long a writer waits for another.
    assert!(took < Duration::from_secs(10), "waited {took:?}");
    eprintln!("locked SQLite: the save answered 503 in {took:?}");
    assert_eq!(
        app.get("/readyz").await.body,
        "not ready: the database does not accept writes: locked by another program\n"
    );

    other.batch_execute("ROLLBACK").expect("the other program lets go");
    assert_eq!(app.count_rows("connections").await, 0);
    assert_eq!(app.count_rows("audit_events WHERE action = 'connection_create'").await, 0);
    let page = app.post_raw("/connections", &new_connection_form(&token, "Saved later", GITHUB_TOKEN)).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[actix_web::test]
async fn a_full_sqlite_database_is_answered_disk_full_and_nothing_is_saved() {
    let _serial = serial().await;
    let app = common::spawn_with(|s| s.pool_size = 1).await;
    if app.is_postgres() {
        eprintln!("skipped: SQLite only");
        return;
    }
    let token = app.csrf().await;
    // SQLite's page limit is per connection: it is set on the app's only
    // one, which then answers SQLITE_FULL as it would on a full disk. The
    // database is compacted first so that no free page is left to reuse.
    let state = app.state.clone();
    tokio::task::spawn_blocking(move || {
        let mut conn = state.pool.get().expect("the pooled connection");
        conn.batch_execute("VACUUM").expect("vacuum");
        #[derive(diesel::QueryableByName)]
        struct Pages {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let pages: Vec<Pages> = diesel::sql_query("SELECT page_count AS n FROM pragma_page_count()")
            .load(&mut *conn)
            .expect("pages");
        conn.batch_execute(&format!("PRAGMA max_page_count = {}", pages[0].n)).expect("limit");
    })
    .await
    .expect("thread");

    // A secret larger than a page needs new pages.
    let big = format!("ghp_{}", "a".repeat(6000));
    let page = app.post_raw("/connections", &new_connection_form(&token, "No room", &big)).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE, "{}", page.body);
    assert_eq!(page.header("retry-after"), Some("300"));
    assert!(
        page.text_of("body").contains("The disk is full: nothing was saved. Tell your administrator."),
        "{}",
        page.body
    );
    assert_eq!(app.count_rows("connections").await, 0);
}

/// A Plugboard process whose data folder is a small tmpfs of its own, in a
/// private mount namespace: a real file system that fills up.
struct FullDiskProcess {
    child: Child,
    base: String,
    data_dir: String,
    _mount_point: tempfile::TempDir,
}

impl Drop for FullDiskProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FullDiskProcess {
    /// `None` where this machine allows no private mount (no root, no user
    /// namespaces).
    fn start() -> Option<FullDiskProcess> {
        let mount_point = tempfile::tempdir().expect("a mount point");
        let data_dir = mount_point.path().display().to_string();
        // `-r` maps the caller to root in a new user namespace, so this works
        // without root where user namespaces are allowed, and as root.
        let script = r#"mount -t tmpfs -o size=4m plugboard-test "$PLUGBOARD_DATA_DIR" || exit 97
"$PLUGBOARD_BIN" create-admin --email "$ADMIN_EMAIL" --name Admin >/dev/null || exit 98
exec "$PLUGBOARD_BIN""#;
        let mut child = Command::new("unshare")
            .args(["-r", "-m", "sh", "-c", script])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PLUGBOARD_BIN", env!("CARGO_BIN_EXE_plugboard"))
            .env("ADMIN_EMAIL", common::ADMIN_EMAIL)
            .env("PLUGBOARD_ADMIN_PASSWORD", common::PASSWORD)
            .env("PLUGBOARD_DATA_DIR", &data_dir)
            .env("PLUGBOARD_BIND", "127.0.0.1:0")
            .env("PLUGBOARD_CHECK_INTERVAL", "0")
            .env("PLUGBOARD_CHECK_PUBLIC_NETWORKS", "false")
            .env("PLUGBOARD_WORKERS", "1")
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .ok()?;
        let stdout = child.stdout.take()?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find("listening on http://") {
                    let _ = tx.send(line[at + "listening on ".len()..].trim().to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => Some(FullDiskProcess { child, base, data_dir, _mount_point: mount_point }),
            Err(_) => {
                let status = child.wait().ok().and_then(|s| s.code());
                assert_ne!(status, Some(98), "create-admin failed on the tmpfs");
                eprintln!("no private tmpfs here (unshare/mount exit status {status:?})");
                None
            }
        }
    }

    /// The data folder as this process sees it: through the child's root,
    /// which is in the child's mount namespace.
    fn data_path(&self, name: &str) -> std::path::PathBuf {
        std::path::PathBuf::from(format!("/proc/{}/root{}/{name}", self.child.id(), self.data_dir))
    }

    /// Writes a file until the file system has no byte left.
    fn fill_disk(&self) {
        use std::io::Write;
        let mut filler = std::fs::File::create(self.data_path("filler")).expect("the filler file");
        for chunk in [65536, 4096, 512, 1] {
            let bytes = vec![0u8; chunk];
            while filler.write_all(&bytes).is_ok() {}
        }
    }

    fn free_disk(&self) {
        std::fs::remove_file(self.data_path("filler")).expect("remove the filler");
    }
}

#[actix_web::test]
async fn a_full_disk_is_answered_disk_full_and_readiness_names_it() {
    if std::env::var("PLUGBOARD_TEST_POSTGRES").is_ok_and(|s| !s.is_empty()) {
        eprintln!("skipped: SQLite only (a PostgreSQL server's disk cannot be filled from here)");
        return;
    }
    let _serial = serial().await;
    let Some(process) = FullDiskProcess::start() else {
        eprintln!("skipped: cannot mount a private tmpfs on this machine");
        return;
    };
    let base = process.base.clone();
    let client = common::new_client();
    let sign_in = client.get(format!("{base}/sign-in")).send().await.expect("sign-in page");
    let html = scraper::Html::parse_document(&sign_in.text().await.expect("body"));
    let selector = scraper::Selector::parse("input[name=csrf_token]").expect("selector");
    let token =
        html.select(&selector).next().and_then(|e| e.value().attr("value")).expect("token").to_owned();
    let signed_in = client
        .post(format!("{base}/sign-in"))
        .form(&[
            ("csrf_token", token.as_str()),
            ("email", common::ADMIN_EMAIL),
            ("password", common::PASSWORD),
        ])
        .send()
        .await
        .expect("sign in");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let list = client.get(format!("{base}/")).send().await.expect("list").text().await.expect("body");
    let html = scraper::Html::parse_document(&list);
    let token =
        html.select(&selector).next().and_then(|e| e.value().attr("value")).expect("token").to_owned();
    let ready = client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.text().await.expect("body"), "ready\n");

    process.fill_disk();
    let (ready, took) = timed(client.get(format!("{base}/readyz")).send()).await;
    let ready = ready.expect("readyz");
    eprintln!("full disk: not ready in {took:?}");
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        ready.text().await.expect("body"),
        "not ready: the database does not accept writes: disk full\n"
    );

    let saved = client
        .post(format!("{base}/connections"))
        .form(&new_connection_form(&token, "No room at all", GITHUB_TOKEN))
        .send()
        .await
        .expect("save");
    assert_eq!(saved.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(saved.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("300"));
    let body = saved.text().await.expect("body");
    assert!(body.contains("The disk is full: nothing was saved. Tell your administrator."), "{body}");

    process.free_disk();
    let ready = client.get(format!("{base}/readyz")).send().await.expect("readyz");
    assert_eq!(ready.text().await.expect("body"), "ready\n", "room again, ready again");
    let list = client.get(format!("{base}/")).send().await.expect("list").text().await.expect("body");
    assert!(!list.contains("No room at all"), "nothing was saved");
}

// ---- file permissions ----

#[cfg(unix)]
#[actix_web::test]
async fn a_fresh_data_folder_and_its_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |path: &std::path::Path| {
        std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode()
            & 0o777
    };
    let root = tempfile::tempdir().expect("temporary folder");
    let data = root.path().join("fresh").join("data");
    let app = common::spawn_with({
        let data = data.clone();
        move |s| s.data_dir = data
    })
    .await;
    assert_eq!(mode(&data), 0o700, "the data folder");
    for key in ["encryption.key", "session.key"] {
        assert_eq!(mode(&data.join(key)), 0o600, "{key}");
    }
    if app.is_postgres() {
        return;
    }
    // The pool's connections keep the database open, in WAL mode.
    for file in ["plugboard.sqlite3", "plugboard.sqlite3-wal", "plugboard.sqlite3-shm"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }

    // The command-line tool makes its folder the same way.
    let other = root.path().join("from-create-admin");
    let made = Command::new(env!("CARGO_BIN_EXE_plugboard"))
        .env_clear()
        .env("PLUGBOARD_DATA_DIR", &other)
        .env("PLUGBOARD_ADMIN_PASSWORD", common::PASSWORD)
        .args(["create-admin", "--email", "ops@example.com"])
        .output()
        .expect("create-admin runs");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    assert_eq!(mode(&other), 0o700);
    assert_eq!(mode(&other.join("plugboard.sqlite3")), 0o600);
}
