//! Stand-in services for the checks: small HTTP/1.1 servers on a loopback
//! address that record every request they get and answer as the test
//! scripts them (status, body, a delay, a body dripped out slowly).
//!
//! Also an AWS Signature Version 4 verifier written from the AWS
//! documentation, independent of the signer the application uses.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One request as the stand-in received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path as sent, without the query string.
    pub path: String,
    /// The raw query string, without `?` (empty when there is none).
    pub query: String,
    /// Header names in lowercase, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Everything received: request line, headers and body.
    pub raw: String,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of a header, in order.
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().filter(|(n, _)| *n == name).map(|(_, v)| v.as_str()).collect()
    }

    /// The decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(self.query.as_bytes()).into_owned().collect()
    }

    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_pairs().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// The decoded pairs of a form-encoded body.
    pub fn form(&self) -> Vec<(String, String)> {
        form_urlencoded::parse(&self.body).into_owned().collect()
    }

    pub fn form_value(&self, name: &str) -> Option<String> {
        self.form().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    /// How many times `text` occurs anywhere in the request.
    pub fn occurrences(&self, text: &str) -> usize {
        self.raw.matches(text).count()
    }
}

/// What a stand-in answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Waits this long before answering anything.
    pub delay: Duration,
    /// Sends the body one byte at a time, this long apart.
    pub drip: Option<Duration>,
}

impl Reply {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            delay: Duration::ZERO,
            drip: None,
        }
    }

    pub fn json(status: u16, value: serde_json::Value) -> Reply {
        Reply::new(status, "application/json", value.to_string())
    }

    pub fn text(status: u16, text: &str) -> Reply {
        Reply::new(status, "text/plain", text)
    }

    pub fn html(status: u16, text: &str) -> Reply {
        Reply::new(status, "text/html", text)
    }

    pub fn redirect(status: u16, location: &str) -> Reply {
        Reply::text(status, "moved").with_header("Location", location)
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn after(mut self, delay: Duration) -> Reply {
        self.delay = delay;
        self
    }

    pub fn dripping(mut self, every: Duration) -> Reply {
        self.drip = Some(every);
        self
    }
}

type Handler = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

/// A running stand-in service. Stops when dropped.
pub struct StandIn {
    addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    handler: Arc<Mutex<Handler>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StandIn {
    /// A stand-in on 127.0.0.1 and a random port.
    pub async fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> StandIn {
        StandIn::start_on("127.0.0.1", handler).await
    }

    /// A stand-in on the given loopback address and a random port.
    pub async fn start_on(ip: &str, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> StandIn {
        let listener = TcpListener::bind((ip, 0)).await.expect("bind a stand-in service");
        let addr = listener.local_addr().expect("stand-in address");
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let handler: Arc<Mutex<Handler>> = Arc::new(Mutex::new(Arc::new(handler)));
        let task = tokio::spawn({
            let requests = requests.clone();
            let handler = handler.clone();
            async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    tokio::spawn(serve(stream, requests.clone(), handler.clone()));
                }
            }
        });
        StandIn { addr, requests, handler, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Answers differently from now on.
    pub fn set(&self, handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        *self.handler.lock().unwrap() = Arc::new(handler);
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The most recent request.
    pub fn last(&self) -> Recorded {
        self.requests.lock().unwrap().last().cloned().expect("the stand-in received a request")
    }
}

/// A port on 127.0.0.1 that nothing listens on.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().unwrap().port()
}

async fn serve(mut stream: TcpStream, requests: Arc<Mutex<Vec<Recorded>>>, handler: Arc<Mutex<Handler>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_owned();
    let target = parts.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_owned(), q.to_owned()),
        None => (target.clone(), String::new()),
    };
    let raw = format!("{head}{}", String::from_utf8_lossy(&body));
    let recorded = Recorded { method, path, query, headers, body, raw };
    requests.lock().unwrap().push(recorded.clone());
    let handler = handler.lock().unwrap().clone();
    let reply = handler(&recorded);

    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut out = format!("HTTP/1.1 {} Stand-in\r\n", reply.status);
    for (name, value) in &reply.headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", reply.body.len()));
    if stream.write_all(out.as_bytes()).await.is_err() {
        return;
    }
    match reply.drip {
        None => {
            let _ = stream.write_all(&reply.body).await;
        }
        Some(every) => {
            let _ = stream.flush().await;
            for byte in &reply.body {
                if stream.write_all(&[*byte]).await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
    }
    let _ = stream.shutdown().await;
}

// ---- encodings ----

pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in bytes.chunks(3) {
        let b = [group[0], *group.get(1).unwrap_or(&0), *group.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The value of an HTTP Basic `Authorization` header.
pub fn basic_auth(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let digits = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
            if let Ok(b) = u8::from_str_radix(digits, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// URI encoding as AWS defines it: everything but A-Z a-z 0-9 - _ . ~ is
/// percent-encoded, with upper-case hex digits.
fn aws_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

// ---- AWS Signature Version 4 ----

/// What a verified signature claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sigv4 {
    pub access_key_id: String,
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
}

/// Verifies the AWS Signature Version 4 of a received request with the
/// secret key the service knows, recomputing the canonical request, the
/// string to sign and the signature as the AWS documentation describes
/// (non-S3 services: path segments encoded twice). With `now`, the
/// request's time must also be within 15 minutes of it, as AWS requires.
pub fn verify_sigv4(
    request: &Recorded,
    secret_access_key: &str,
    now: Option<SystemTime>,
) -> Result<Sigv4, String> {
    let authorization = request.header("authorization").ok_or("no Authorization header")?;
    let fields = authorization
        .strip_prefix("AWS4-HMAC-SHA256 ")
        .ok_or_else(|| format!("not an AWS4-HMAC-SHA256 authorization: {authorization}"))?;
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in fields.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return Err(format!("unexpected part `{part}` in the authorization")),
        }
    }
    let credential = credential.ok_or("no Credential")?;
    let signed_headers = signed_headers.ok_or("no SignedHeaders")?;
    let signature = signature.ok_or("no Signature")?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = scope[..] else {
        return Err(format!("malformed credential scope `{credential}`"));
    };
    if terminator != "aws4_request" {
        return Err(format!("the credential scope ends with `{terminator}`"));
    }

    let amz_date = request.header("x-amz-date").ok_or("no X-Amz-Date header")?;
    if !amz_date.starts_with(date) || amz_date.len() != 16 {
        return Err(format!("X-Amz-Date {amz_date} does not match the scope's date {date}"));
    }
    if let Some(now) = now {
        let at = chrono::NaiveDateTime::parse_from_str(amz_date, "%Y%m%dT%H%M%SZ")
            .map_err(|_| format!("X-Amz-Date {amz_date} is not a timestamp"))?;
        let now = chrono::DateTime::<chrono::Utc>::from(now).naive_utc();
        if (now - at).num_seconds().abs() > 15 * 60 {
            return Err(format!("X-Amz-Date {amz_date} is more than 15 minutes from now"));
        }
    }

    let names: Vec<&str> = signed_headers.split(';').collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    sorted.dedup();
    if names != sorted || names.iter().any(|n| *n != n.to_ascii_lowercase()) {
        return Err(format!("SignedHeaders `{signed_headers}` are not lower-case and sorted"));
    }
    for required in ["host", "x-amz-date"] {
        if !names.contains(&required) {
            return Err(format!("`{required}` is not signed"));
        }
    }
    let mut canonical_headers = String::new();
    for name in &names {
        let values = request.header_all(name);
        if values.is_empty() {
            return Err(format!("signed header `{name}` is not in the request"));
        }
        let value = values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",");
        canonical_headers.push_str(&format!("{name}:{value}\n"));
    }

    // Non-S3 services: each segment of the path as sent is URI-encoded
    // again.
    let canonical_uri = if request.path.is_empty() {
        "/".to_owned()
    } else {
        request.path.split('/').map(|s| aws_encode(s.as_bytes())).collect::<Vec<_>>().join("/")
    };
    let mut pairs: Vec<(String, String)> = request
        .query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (aws_encode(&percent_decode(k)), aws_encode(&percent_decode(v)))
        })
        .collect();
    pairs.sort();
    let canonical_query = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&");

    let body_hash = sha256_hex(&request.body);
    let payload_hash = match request.header("x-amz-content-sha256") {
        Some(declared) if declared != body_hash => {
            return Err("X-Amz-Content-Sha256 does not match the body".into());
        }
        _ => body_hash,
    };

    let canonical_request = format!(
        "{}\n{canonical_uri}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        request.method
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{date}/{region}/{service}/aws4_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let k_date = hmac(format!("AWS4{secret_access_key}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    let k_signing = hmac(&k_service, b"aws4_request");
    let expected = hex::encode(hmac(&k_signing, string_to_sign.as_bytes()));
    if expected != signature {
        return Err(format!(
            "signature mismatch: expected {expected}, got {signature}\ncanonical request:\n{canonical_request}"
        ));
    }
    Ok(Sigv4 {
        access_key_id: access_key_id.to_owned(),
        date: date.to_owned(),
        region: region.to_owned(),
        service: service.to_owned(),
        signed_headers: names.iter().map(|n| (*n).to_owned()).collect(),
    })
}
