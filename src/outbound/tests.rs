//! The client against real listeners on 127.0.0.1, each misbehaving in one
//! way, so that every failure is seen as the client meets it.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

/// In every URL, so that any message repeating a URL is caught.
const QUERY_SECRET: &str = "pbq_query_s3cret_77";
const HEADER_SECRET: &str = "pbh_header_s3cret_88";

/// What a listener does with each connection.
#[derive(Clone)]
enum Behaviour {
    /// Reads the request, then writes these bytes and closes.
    Answer(Vec<u8>),
    /// Reads the request, then resets the connection.
    Reset,
    /// Reads the request, sends the head, then the body a byte at a time.
    Drip { head: Vec<u8>, body: Vec<u8>, every: Duration },
    /// Reads the request and never answers.
    Silent,
    /// Answers whatever arrives (a TLS ClientHello) with plain HTTP.
    Plaintext,
}

struct Listener {
    port: u16,
    /// Requests received, as raw text.
    requests: Arc<std::sync::Mutex<Vec<String>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Listener {
    async fn start(behaviour: Behaviour) -> Listener {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
        let connections: Arc<AtomicUsize> = Arc::default();
        let task = tokio::spawn({
            let requests = requests.clone();
            let connections = connections.clone();
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    connections.fetch_add(1, Ordering::SeqCst);
                    tokio::spawn(serve(stream, behaviour.clone(), requests.clone()));
                }
            }
        });
        Listener { port, requests, connections, task }
    }

    fn url(&self, path: &str) -> Url {
        Url::parse(&format!("http://127.0.0.1:{}{path}?api_key={QUERY_SECRET}", self.port)).unwrap()
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn serve(mut stream: TcpStream, behaviour: Behaviour, requests: Arc<std::sync::Mutex<Vec<String>>>) {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    if matches!(behaviour, Behaviour::Plaintext) {
        let _ = stream.read(&mut chunk).await;
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n").await;
        return;
    }
    loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            // The body, if any, is small in these tests: wait for what the
            // head announces.
            let head = String::from_utf8_lossy(&received[..end]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                break;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => received.extend_from_slice(&chunk[..n]),
        }
    }
    requests.lock().unwrap().push(String::from_utf8_lossy(&received).into_owned());
    match behaviour {
        Behaviour::Answer(bytes) => {
            let _ = stream.write_all(&bytes).await;
            let _ = stream.shutdown().await;
        }
        Behaviour::Reset => {
            // Closing with a zero linger sends RST instead of FIN.
            let _ = stream.set_zero_linger();
            drop(stream);
        }
        Behaviour::Drip { head, body, every } => {
            if stream.write_all(&head).await.is_err() {
                return;
            }
            for byte in body {
                if stream.write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
        Behaviour::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        Behaviour::Plaintext => {}
    }
}

fn answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// A body in chunked encoding: no length announced up front.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = b"HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in body.chunks(16 * 1024) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn loopback(limit: Duration) -> Outbound {
    Outbound::new(NetworkPolicy::parse("127.0.0.1").unwrap(), limit)
}

/// A request carrying a secret in its query and in a header.
fn with_secrets(url: Url) -> Request {
    Request::get(url).secret_header("X-Api-Key", HEADER_SECRET)
}

/// Sends, expecting a failure whose words carry no secret and no URL.
async fn fails(outbound: &Outbound, request: Request) -> OutboundError {
    let error = outbound.send(request).await.expect_err("the request fails");
    let words = error.to_string();
    for forbidden in [QUERY_SECRET, HEADER_SECRET, "api_key=", "http://", "https://", "?"] {
        assert!(!words.contains(forbidden), "`{words}` contains {forbidden}");
    }
    error
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test]
async fn an_answer_comes_back_whole_with_status_and_headers() {
    let service = Listener::start(Behaviour::Answer(answer(
        "201 Created",
        &[("Content-Type", "application/json")],
        br#"{"ok":true}"#,
    )))
    .await;
    let answer = loopback(Duration::from_secs(5)).send(with_secrets(service.url("/me"))).await.unwrap();
    assert_eq!(answer.status, StatusCode::CREATED);
    assert_eq!(answer.headers.get("content-type").unwrap(), "application/json");
    assert_eq!(answer.body, br#"{"ok":true}"#);
    let request = &service.requests()[0];
    assert!(request.contains(&format!("x-api-key: {HEADER_SECRET}")), "{request}");
}

#[tokio::test]
async fn basic_auth_and_a_form_body_are_sent() {
    let service = Listener::start(Behaviour::Answer(answer("200 OK", &[], b"{}"))).await;
    let password = SecretString::from("pbp_pass");
    let request = Request::post(service.url("/token"))
        .basic_auth("client", &password)
        .form(&[("grant_type", "client_credentials"), ("scope", "a b")]);
    loopback(Duration::from_secs(5)).send(request).await.unwrap();
    let received = &service.requests()[0];
    // base64("client:pbp_pass")
    assert!(received.contains("authorization: Basic Y2xpZW50OnBicF9wYXNz"), "{received}");
    assert!(received.contains("content-type: application/x-www-form-urlencoded"), "{received}");
    assert!(received.ends_with("grant_type=client_credentials&scope=a+b"), "{received}");
}

#[tokio::test]
async fn a_port_nobody_listens_on_is_refused() {
    let url = Url::parse(&format!("http://127.0.0.1:{}/?api_key={QUERY_SECRET}", closed_port())).unwrap();
    let error = fails(&loopback(Duration::from_secs(5)), with_secrets(url)).await;
    assert_eq!(error, OutboundError::Refused);
    assert_eq!(error.to_string(), "connection refused");
}

#[tokio::test]
async fn a_server_that_resets_the_connection_is_reset() {
    let service = Listener::start(Behaviour::Reset).await;
    let error = fails(&loopback(Duration::from_secs(5)), with_secrets(service.url("/"))).await;
    assert_eq!(error, OutboundError::Reset);
}

#[tokio::test]
async fn a_server_dripping_its_body_hits_the_limit_on_the_whole_exchange() {
    let service = Listener::start(Behaviour::Drip {
        head: b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec(),
        body: vec![b'x'; 100],
        every: Duration::from_millis(50),
    })
    .await;
    let limit = Duration::from_millis(600);
    let started = Instant::now();
    let error = fails(&loopback(limit), with_secrets(service.url("/"))).await;
    let elapsed = started.elapsed();
    assert_eq!(error, OutboundError::TimedOut { after: limit });
    assert_eq!(error.to_string(), "timed out after 0.6 s");
    assert!(elapsed >= limit && elapsed < limit * 3, "gave up after {elapsed:?}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let service = Listener::start(Behaviour::Silent).await;
    let limit = Duration::from_millis(300);
    let error = fails(&loopback(limit), with_secrets(service.url("/"))).await;
    assert_eq!(error, OutboundError::TimedOut { after: limit });
}

#[tokio::test]
async fn a_redirect_to_another_host_is_reported_and_nothing_goes_there() {
    let elsewhere = Listener::start(Behaviour::Answer(answer("200 OK", &[], b"{}"))).await;
    let location = format!("http://localhost:{}/steal?api_key={QUERY_SECRET}", elsewhere.port);
    let service =
        Listener::start(Behaviour::Answer(answer("302 Found", &[("Location", &location)], b""))).await;
    let error = fails(&loopback(Duration::from_secs(5)), with_secrets(service.url("/"))).await;
    assert_eq!(error, OutboundError::Redirected { status: 302, host: "localhost".into() });
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0, "the other host was contacted");
}

#[tokio::test]
async fn a_redirect_to_another_port_or_scheme_is_not_followed() {
    let elsewhere = Listener::start(Behaviour::Answer(answer("200 OK", &[], b"{}"))).await;
    for location in
        [format!("http://127.0.0.1:{}/", elsewhere.port), format!("https://127.0.0.1:{}/", elsewhere.port)]
    {
        let service =
            Listener::start(Behaviour::Answer(answer("301 Moved", &[("Location", &location)], b""))).await;
        let error = fails(&loopback(Duration::from_secs(5)), with_secrets(service.url("/"))).await;
        assert_eq!(error, OutboundError::Redirected { status: 301, host: "127.0.0.1".into() });
    }
    assert_eq!(elsewhere.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn redirects_on_the_same_origin_are_followed_five_times_at_most() {
    let service =
        Listener::start(Behaviour::Answer(answer("302 Found", &[("Location", "/again")], b""))).await;
    let error = fails(&loopback(Duration::from_secs(5)), with_secrets(service.url("/"))).await;
    assert_eq!(error, OutboundError::Redirected { status: 302, host: "127.0.0.1".into() });
    let requests = service.requests();
    assert_eq!(requests.len(), 1 + MAX_REDIRECTS, "{requests:#?}");
    // The credential went along, to the same service.
    assert!(requests[MAX_REDIRECTS].contains(HEADER_SECRET));
}

#[tokio::test]
async fn an_answer_over_the_cap_is_too_large_announced_or_not() {
    let big = vec![b'x'; MAX_BODY_BYTES + 1];
    for reply in [answer("200 OK", &[], &big), chunked(&big)] {
        let service = Listener::start(Behaviour::Answer(reply)).await;
        let error = fails(&loopback(Duration::from_secs(5)), with_secrets(service.url("/"))).await;
        assert_eq!(error, OutboundError::TooLarge);
        assert_eq!(error.to_string(), "the answer is larger than 256 KiB");
    }
    let exact = vec![b'y'; MAX_BODY_BYTES];
    let service = Listener::start(Behaviour::Answer(chunked(&exact))).await;
    let answer = loopback(Duration::from_secs(5)).send(with_secrets(service.url("/"))).await.unwrap();
    assert_eq!(answer.body.len(), MAX_BODY_BYTES);
}

#[tokio::test]
async fn an_answer_shorter_than_announced_is_cut_off() {
    let mut reply = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n".to_vec();
    reply.extend_from_slice(b"only ten..");
    let service = Listener::start(Behaviour::Answer(reply)).await;
    let error = fails(&loopback(Duration::from_secs(5)), with_secrets(service.url("/"))).await;
    assert_eq!(error, OutboundError::CutOff);
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_dns_failure() {
    // Public networks allowed, so the name is really looked up; `.invalid`
    // never resolves (RFC 6761), and fails at once without a network.
    let outbound = Outbound::new(NetworkPolicy::parse("").unwrap(), Duration::from_secs(10));
    let url = Url::parse(&format!("http://plugboard-test.invalid/?api_key={QUERY_SECRET}")).unwrap();
    let error = fails(&outbound, with_secrets(url)).await;
    assert_eq!(error, OutboundError::Dns { host: "plugboard-test.invalid".into() });
    assert_eq!(error.to_string(), "DNS lookup failed for plugboard-test.invalid");
}

#[tokio::test]
async fn names_and_addresses_outside_the_policy_are_blocked_before_anything_is_sent() {
    let service = Listener::start(Behaviour::Answer(answer("200 OK", &[], b"{}"))).await;
    let outbound = loopback(Duration::from_secs(5));
    // Public names are not even looked up when public networks are off.
    let private_only =
        Outbound::new(NetworkPolicy::parse("127.0.0.1").unwrap().without_public(), outbound.limit());
    let url = Url::parse(&format!("https://api.example.com/?api_key={QUERY_SECRET}")).unwrap();
    assert_eq!(
        fails(&private_only, with_secrets(url)).await,
        OutboundError::Blocked { host: "api.example.com".into(), addr: None }
    );
    for address in ["169.254.169.254", "0.0.0.0", "127.0.0.2", "[::1]"] {
        let url = Url::parse(&format!("http://{address}:{}/?api_key={QUERY_SECRET}", service.port)).unwrap();
        let error = fails(&outbound, with_secrets(url)).await;
        assert!(matches!(error, OutboundError::Blocked { .. }), "{address}: {error:?}");
    }
    // A name that resolves only to addresses outside the policy.
    let url = Url::parse(&format!("http://localhost:{}/?api_key={QUERY_SECRET}", service.port)).unwrap();
    let nothing_allowed = Outbound::new(NetworkPolicy::parse("10.9.0.0/16").unwrap(), outbound.limit());
    let error = fails(&nothing_allowed, with_secrets(url)).await;
    assert!(
        matches!(&error, OutboundError::Blocked { host, addr: Some(_) } if host == "localhost"),
        "{error:?}"
    );
    assert_eq!(service.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_server_that_does_not_speak_tls_fails_the_handshake() {
    let service = Listener::start(Behaviour::Plaintext).await;
    let url = Url::parse(&format!("https://127.0.0.1:{}/?api_key={QUERY_SECRET}", service.port)).unwrap();
    let error = fails(&loopback(Duration::from_secs(5)), with_secrets(url)).await;
    assert_eq!(error, OutboundError::Tls);
}

#[tokio::test]
async fn a_header_http_cannot_carry_is_refused_before_sending() {
    let service = Listener::start(Behaviour::Answer(answer("200 OK", &[], b"{}"))).await;
    let request = with_secrets(service.url("/")).secret_header("X-Token", "line\nbreak pbh_header_s3cret_88");
    let error = fails(&loopback(Duration::from_secs(5)), request).await;
    assert_eq!(error, OutboundError::BadHeader { name: "X-Token".into() });
    let request = Request::get(service.url("/")).header("Bad Name", "v");
    assert!(matches!(
        loopback(Duration::from_secs(5)).send(request).await,
        Err(OutboundError::BadHeader { .. })
    ));
    assert_eq!(service.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn only_http_and_https_are_sent() {
    let url = Url::parse("ftp://127.0.0.1/file").unwrap();
    let error = loopback(Duration::from_secs(5)).send(Request::get(url)).await.unwrap_err();
    assert_eq!(error, OutboundError::Scheme { scheme: "ftp".into() });
}
