//! A real browser for the smoke test: Debian's Chromium driven through
//! chromedriver (WebDriver), started here as a child process and stopped
//! when the test ends, passed or panicked.
//!
//! Paths: `/usr/bin/chromedriver` and `/usr/bin/chromium`, or
//! `PLUGBOARD_CHROMEDRIVER` and `PLUGBOARD_CHROMIUM`. When either is
//! missing the browser tests are skipped with a line on stderr, unless
//! `PLUGBOARD_REQUIRE_BROWSER=1` (as CI sets it), which makes them fail.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// How long a condition may take to come true: htmx requests to a local
/// server answer in milliseconds; this is the margin for a slow machine.
pub const WAIT: Duration = Duration::from_secs(8);

/// How long a check that does not stop the test is waited for.
pub const SOFT_WAIT: Duration = Duration::from_secs(3);

/// How long chromedriver may take to answer after it starts.
const DRIVER_START: Duration = Duration::from_secs(15);

fn path_from_env(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from).unwrap_or_else(|| default.into())
}

/// The chromedriver and Chromium to use, or `None` when the test must be
/// skipped (having said so on stderr). Panics instead of skipping when
/// `PLUGBOARD_REQUIRE_BROWSER=1`.
pub fn browser_paths() -> Option<(PathBuf, PathBuf)> {
    let driver = path_from_env("PLUGBOARD_CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = path_from_env("PLUGBOARD_CHROMIUM", "/usr/bin/chromium");
    let missing =
        [("chromedriver", &driver, "PLUGBOARD_CHROMEDRIVER"), ("chromium", &chromium, "PLUGBOARD_CHROMIUM")]
            .into_iter()
            .find(|(_, path, _)| !path.is_file());
    let Some((what, path, var)) = missing else {
        return Some((driver, chromium));
    };
    let message = format!(
        "{what} not found at {} (install Debian's chromium and chromium-driver: \
         apt-get install chromium chromium-driver, or set {var})",
        path.display()
    );
    if std::env::var("PLUGBOARD_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
        panic!(
            "browser test FAILED: {message}; PLUGBOARD_REQUIRE_BROWSER=1 requires the browser test to run"
        );
    }
    say(&format!("browser test SKIPPED: {message}"));
    None
}

/// A line on stderr that the test harness does not capture, so that it
/// shows in `cargo test`'s output even when the test passes.
pub fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// A running chromedriver with one Chromium session. Dropping it ends the
/// session (which quits Chromium) and kills chromedriver, also on panic.
pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
    session: Option<String>,
    /// Failed checks that did not stop the test, reported at its end.
    problems: std::cell::RefCell<Vec<String>>,
    /// Chromium's profile and chromedriver's output; removed last.
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("its address").port()
}

fn read_log(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(4000);
    let start = (start..text.len()).find(|&i| text.is_char_boundary(i)).unwrap_or(text.len());
    text[start..].to_owned()
}

/// Guards a chromedriver child until a session exists (so a failed start
/// kills it too).
struct DriverGuard(Option<Child>);

impl Drop for DriverGuard {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless Chromium
    /// session with a window of `width` × `height`.
    pub async fn start(driver_path: &Path, chromium: &Path, width: u32, height: u32) -> Browser {
        Browser::start_with(driver_path, chromium, width, height, true).await
    }

    /// The same with JavaScript turned off in Chromium's settings, as a
    /// person who disabled it has it: the page must work as plain HTML.
    pub async fn start_without_javascript(
        driver_path: &Path,
        chromium: &Path,
        width: u32,
        height: u32,
    ) -> Browser {
        Browser::start_with(driver_path, chromium, width, height, false).await
    }

    async fn start_with(
        driver_path: &Path,
        chromium: &Path,
        width: u32,
        height: u32,
        javascript: bool,
    ) -> Browser {
        let dir = tempfile::tempdir().expect("temporary folder for the browser");
        let profile = dir.path().join("profile");
        std::fs::create_dir(&profile).expect("profile folder");
        let log_path = dir.path().join("chromedriver.log");
        let log = std::fs::File::create(&log_path).expect("chromedriver log file");
        let port = free_port();
        let child = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", driver_path.display()));
        let mut guard = DriverGuard(Some(child));

        // Wait until it answers.
        let status_url = format!("http://127.0.0.1:{port}/status");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().expect("http client");
        let started = Instant::now();
        loop {
            if let Ok(Some(exit)) = guard.0.as_mut().expect("driver").try_wait() {
                panic!("chromedriver exited at once ({exit}); its output:\n{}", read_log(&log_path));
            }
            if let Ok(res) = http.get(&status_url).send().await {
                if res.status().is_success() {
                    break;
                }
            }
            if started.elapsed() > DRIVER_START {
                panic!(
                    "chromedriver did not answer on port {port} within {DRIVER_START:?}; its output:\n{}",
                    read_log(&log_path)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let args = vec![
            "--headless".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-quic".to_owned(),
            "--hide-scrollbars".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        let mut options = json!({ "binary": chromium, "args": args });
        if !javascript {
            // 2 = blocked, for every site: the page's own scripts do not run
            // (WebDriver's scripts still do, so the test can look).
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        if width < 500 {
            // Headless Chromium keeps its window at least 500 px wide; a
            // phone's viewport needs the device emulation.
            options["mobileEmulation"] =
                json!({ "deviceMetrics": { "width": width, "height": height, "pixelRatio": 1.0 } });
        }
        caps.insert("goog:chromeOptions".into(), options);
        // Keeps the console, so CSP violations and script errors can be read.
        caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        let client = ClientBuilder::native()
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not open a Chromium session: {e}; chromedriver's output:\n{}",
                    read_log(&log_path)
                )
            });
        let session = client.session_id().await.ok().flatten();
        let driver = guard.0.take().expect("driver");
        let browser = Browser { client, driver, port, session, problems: Default::default(), dir };
        // The window size flag sets the window; make sure of the viewport.
        browser.fit_viewport(width, height).await;
        browser
    }

    /// Resizes the window so that the page's viewport is `width` × `height`.
    async fn fit_viewport(&self, width: u32, height: u32) {
        let inner = self.js("return [window.innerWidth, window.innerHeight]").await;
        let (w, h) = (inner[0].as_u64().unwrap_or(0) as u32, inner[1].as_u64().unwrap_or(0) as u32);
        if (w, h) == (width, height) || w == 0 || h == 0 {
            return;
        }
        if let Ok((ow, oh)) = self.client.get_window_size().await {
            let _ = self
                .client
                .set_window_size(ow as u32 + width.saturating_sub(w), oh as u32 + height.saturating_sub(h))
                .await;
        }
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(mut self) {
        if self.session.take().is_some() {
            let _ = self.client.clone().close().await;
        }
        // Drop kills chromedriver.
    }

    /// Runs a script (`return …` gives its value).
    pub async fn js(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    pub async fn js_with(&self, script: &str, args: Vec<Value>) -> Value {
        self.client.execute(script, args).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Signs in through the sign-in page, as a person does.
    pub async fn sign_in(&self, base: &str, email: &str, password: &str) {
        self.goto(&format!("{base}/sign-in")).await;
        self.wait_for("the sign-in form", "$('#email') && $('#password')").await;
        self.type_into("#email", email).await;
        self.type_into("#password", password).await;
        self.click("button[type=submit]").await;
        self.wait_for("signed in, on the list", "location.pathname === '/' && $('#workspace')").await;
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("could not open {url}: {e}"));
    }

    pub async fn url(&self) -> url::Url {
        self.client.current_url().await.expect("current URL")
    }

    /// The page's path and query, such as `/?component=github`.
    pub async fn path(&self) -> String {
        let url = self.url().await;
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The one element matching a CSS selector; panics with the page if
    /// there is none.
    pub async fn find(&self, css: &str) -> Element {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => self.fail(&format!("no element matches `{css}`: {e}")).await,
        }
    }

    /// Waits until an element matching `css` is displayed, then clicks it.
    pub async fn click(&self, css: &str) {
        self.wait_for(&format!("`{css}` is shown"), &format!("isShown({})", js_str(css))).await;
        let element = self.find(css).await;
        if let Err(e) = element.click().await {
            self.fail(&format!("could not click `{css}`: {e}")).await;
        }
    }

    /// Types into the input matching `css` (after what is in it).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        if let Err(e) = element.send_keys(text).await {
            self.fail(&format!("could not type into `{css}`: {e}")).await;
        }
    }

    /// Empties the input matching `css` as a person would: select all, delete.
    pub async fn clear(&self, css: &str) {
        let element = self.find(css).await;
        let select_all = format!(
            "{}a{}",
            char::from(fantoccini::key::Key::Control),
            char::from(fantoccini::key::Key::Null)
        );
        let delete = char::from(fantoccini::key::Key::Backspace).to_string();
        if let Err(e) = element.send_keys(&select_all).await {
            self.fail(&format!("could not select the text of `{css}`: {e}")).await;
        }
        if let Err(e) = element.send_keys(&delete).await {
            self.fail(&format!("could not clear `{css}`: {e}")).await;
        }
    }

    /// Presses a key in whatever has the focus.
    pub async fn press(&self, key: fantoccini::key::Key) {
        let active = self.client.active_element().await.expect("the focused element");
        if let Err(e) = active.send_keys(&char::from(key).to_string()).await {
            self.fail(&format!("could not press {key:?}: {e}")).await;
        }
    }

    /// The text of the first element matching `css`, whitespace collapsed;
    /// empty when there is none.
    pub async fn text(&self, css: &str) -> String {
        let value = self
            .js_with(
                "const e = document.querySelector(arguments[0]); \
                 return e ? e.textContent.replace(/\\s+/g, ' ').trim() : '';",
                vec![json!(css)],
            )
            .await;
        value.as_str().unwrap_or_default().to_owned()
    }

    /// The `value` of the input matching `css`.
    pub async fn value(&self, css: &str) -> String {
        let value = self
            .js_with(
                "const e = document.querySelector(arguments[0]); return e ? e.value : null;",
                vec![json!(css)],
            )
            .await;
        match value {
            Value::String(s) => s,
            _ => self.fail(&format!("no input matches `{css}`")).await,
        }
    }

    /// Polls a JavaScript condition until it is true, for up to [`WAIT`];
    /// panics with `what` and the page when it never is. Helpers usable in
    /// `condition`: `$(css)` (first match or null), `text(css)` (collapsed
    /// text, '' if none), `isShown(css)`, `dialogOpen()`.
    pub async fn wait_for(&self, what: &str, condition: &str) {
        self.wait_for_within(what, condition, WAIT).await;
    }

    pub async fn wait_for_within(&self, what: &str, condition: &str, limit: Duration) {
        if let Err(message) = self.poll(what, condition, limit).await {
            self.fail(&message).await;
        }
    }

    /// Like [`Browser::wait_for`], but a condition that never comes true is
    /// recorded and the test goes on: for checks that later steps do not
    /// depend on, so that one run reports every such problem.
    /// [`Browser::assert_no_problems`] fails the test with them.
    pub async fn expect(&self, what: &str, condition: &str) {
        if let Err(message) = self.poll(what, condition, SOFT_WAIT).await {
            let state = self.focus_and_dialog().await;
            let state = state.lines().next().unwrap_or_default().to_owned();
            eprintln!("browser test PROBLEM: {message}\n  {state}");
            self.problems.borrow_mut().push(format!("{message}\n  {state}"));
        }
    }

    /// Records a problem found by the test itself.
    pub fn problem(&self, message: String) {
        eprintln!("browser test PROBLEM: {message}");
        self.problems.borrow_mut().push(message);
    }

    /// Fails the test if [`Browser::expect`] recorded any problem.
    pub fn assert_no_problems(&self) {
        let problems = self.problems.borrow();
        assert!(
            problems.is_empty(),
            "{} check(s) failed in the browser:\n\n{}",
            problems.len(),
            problems.join("\n\n")
        );
    }

    async fn poll(&self, what: &str, condition: &str, limit: Duration) -> Result<(), String> {
        let script = format!(
            "const $ = (s) => document.querySelector(s); \
             const text = (s) => {{ const e = $(s); return e ? e.textContent.replace(/\\s+/g, ' ').trim() : ''; }}; \
             const isShown = (s) => {{ const e = $(s); return !!e && e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden'; }}; \
             const dialogOpen = () => {{ const d = $('dialog#dialog'); return !!d && d.open; }}; \
             try {{ return !!({condition}); }} catch (e) {{ return 'error: ' + e; }}"
        );
        let started = Instant::now();
        let mut last = Value::Null;
        loop {
            // A navigation in progress can make a script fail; try again.
            if let Ok(value) = self.client.execute(&script, vec![]).await {
                if value == Value::Bool(true) {
                    return Ok(());
                }
                last = value;
            }
            if started.elapsed() > limit {
                return Err(format!(
                    "timed out after {limit:?} waiting until {what}\n  condition: {condition}\n  last result: {last}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
    }

    /// Panics with `message`, the URL, the browser console and the page.
    pub async fn fail(&self, message: &str) -> ! {
        let url = self.client.current_url().await.map(|u| u.to_string()).unwrap_or_default();
        let dialog = self.focus_and_dialog().await;
        let source = self.client.source().await.unwrap_or_default();
        let console = self.console().await;
        let earlier = self.problems.borrow().join("\n\n");
        panic!(
            "{message}\n\n--- URL: {url}\n--- console:\n{}\n--- {}\n--- page source:\n{}\n--- problems found earlier:\n{earlier}",
            console.join("\n"),
            truncate(&dialog, 6000),
            truncate(&source, 20000)
        );
    }

    /// Which element has the focus, and the dialog's state and content.
    async fn focus_and_dialog(&self) -> String {
        self.client
            .execute(
                "const a = document.activeElement; \
                 const focus = a ? a.tagName.toLowerCase() + (a.id ? '#' + a.id : '') \
                   + (a.className ? '.' + String(a.className).trim().split(/\\s+/).join('.') : '') : 'none'; \
                 const d = document.getElementById('dialog'); \
                 return 'focus: ' + focus + '\\n' + (d ? 'dialog open: ' + d.open + '\\n' + d.outerHTML : 'no dialog');",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    /// The browser console since the last call, as `LEVEL message` lines
    /// (empty when chromedriver does not keep it).
    pub async fn console(&self) -> Vec<String> {
        let Some(session) = &self.session else { return Vec::new() };
        let url = format!("http://127.0.0.1:{}/session/{session}/se/log", self.port);
        let Ok(res) = reqwest::Client::new().post(url).json(&json!({ "type": "browser" })).send().await
        else {
            return Vec::new();
        };
        let Ok(body) = res.json::<Value>().await else { return Vec::new() };
        body["value"]
            .as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| {
                        format!(
                            "{} {}",
                            e["level"].as_str().unwrap_or("?"),
                            e["message"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub async fn screenshot(&self, path: &Path) {
        let png = self.client.screenshot().await.expect("screenshot");
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("screenshot folder");
        }
        std::fs::write(path, png).unwrap_or_else(|e| panic!("could not write {}: {e}", path.display()));
    }
}

/// A string as a JavaScript literal.
pub fn js_str(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A test that panicked still has its session: end it, so that
        // chromedriver quits Chromium, before chromedriver itself goes.
        if let Some(session) = self.session.take() {
            delete_session(self.port, &session);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` without an async runtime (Drop may run while
/// unwinding, outside any).
fn delete_session(port: u16, session: &str) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else { return };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let request = format!(
        "DELETE /session/{session} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    if stream.write_all(request.as_bytes()).is_ok() {
        // Wait for the answer (Chromium has quit once it comes), but not for
        // the connection to close: chromedriver may keep it open.
        let mut answer = [0u8; 512];
        let _ = stream.read(&mut answer);
    }
}
