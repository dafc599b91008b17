//! The one integration-test harness: a real server on an ephemeral port (`TestServer`), a raw
//! HTTP/1.1 client over `TcpStream` (`Response`), a token helper, and an SSE reader that yields
//! exact frames (`SseStream`). Everything is blocking std I/O with deadlines, so a test reads
//! top to bottom like a user session; the server runs on its own tokio runtime thread.
//!
//! Limits are read from `server.config`, never assumed.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use castbrick_push::Config;
use serde_json::{json, Value};

/// Deadline for anything that should happen "at once" (generous: CI machines are loaded).
pub const WAIT: Duration = Duration::from_secs(10);

/// A server running `castbrick_push::run` on 127.0.0.1:0 with its own shutdown.
pub struct TestServer {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub api_key: String,
    /// The exact configuration the server runs with.
    pub config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with test keys; `tweak` adjusts the config (limits, heartbeat, ...).
    pub fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let api_key = format!("cb_test_{}", castbrick_push::config::random_hex(16));
        let mut config = Config {
            api_keys: vec![api_key.clone()],
            signing_secrets: vec![castbrick_push::config::random_hex(32)],
            shards: 2,
            ..Config::default()
        };
        tweak(&mut config);
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        config.listen = addr;
        config.validate().expect("test config is valid");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let run_config = config.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                castbrick_push::run(listener, run_config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
            });
        });
        TestServer {
            addr,
            base: format!("http://{addr}"),
            api_key,
            config,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// A server with the default configuration.
    pub fn default_config() -> TestServer {
        TestServer::start(|_| {})
    }

    /// Triggers the server's shutdown and waits (up to `within`) for `run` to return.
    pub fn shutdown(&mut self, within: Duration) -> bool {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn request(
        &self,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut sock = self.connect();
        write_request(&mut sock, method, target, headers, body);
        read_response(&mut sock, method == "HEAD")
    }

    /// `POST path` with a JSON body and, if given, `Authorization: Bearer <key>`.
    pub fn post_json(&self, path: &str, key: Option<&str>, body: &str) -> Response {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        self.request("POST", path, &headers, body.as_bytes())
    }

    /// `POST /push/tokens` with the server's key; panics unless 200. Returns the JSON reply.
    pub fn token_response(&self, body: Value) -> Value {
        let r = self.post_json("/push/tokens", Some(&self.api_key), &body.to_string());
        assert_eq!(r.status, 200, "token request {body} failed: {}", r.text());
        r.json()
    }

    /// A token for `channels`.
    pub fn token(&self, channels: &[&str]) -> String {
        self.token_response(json!({ "channels": channels }))["token"]
            .as_str()
            .expect("token is a string")
            .to_string()
    }

    /// `POST /push/publish` with `data` given as raw JSON text; the raw response.
    pub fn publish_raw(&self, channel: &str, event: &str, data: &str) -> Response {
        let body = format!(
            r#"{{"channel":{},"event":{},"data":{data}}}"#,
            json!(channel),
            json!(event)
        );
        self.post_json("/push/publish", Some(&self.api_key), &body)
    }

    /// Publishes and panics unless 200.
    pub fn publish(&self, channel: &str, event: &str, data: &str) -> Published {
        let r = self.publish_raw(channel, event, data);
        assert_eq!(r.status, 200, "publish to {channel:?} failed: {}", r.text());
        let v = r.json();
        Published {
            id: v["messageId"].as_str().expect("messageId").to_string(),
            delivered: v["delivered"].as_u64().expect("delivered"),
        }
    }

    /// Opens `GET /push/stream?token=…` and reads the response head.
    pub fn stream(&self, token: &str) -> SseStream {
        self.stream_with(&format!("token={}", url_encode(token)), &[])
    }

    /// Opens `GET /push/stream?<query>` with extra request headers.
    pub fn stream_with(&self, query: &str, headers: &[(&str, &str)]) -> SseStream {
        SseStream::open(self.addr, &format!("/push/stream?{query}"), headers)
    }

    /// Opens a stream, checks 200 and that the first frame is `connected`; returns both.
    pub fn subscribe(&self, token: &str) -> (SseStream, Frame) {
        let mut s = self.stream(token);
        assert_eq!(s.status, 200, "stream refused");
        let connected = s.frame();
        assert_eq!(
            connected.event.as_deref(),
            Some("connected"),
            "{connected:?}"
        );
        (s, connected)
    }

    pub fn connect(&self) -> TcpStream {
        let sock = TcpStream::connect(self.addr).expect("connect to test server");
        sock.set_nodelay(true).ok();
        sock.set_read_timeout(Some(WAIT)).ok();
        sock.set_write_timeout(Some(WAIT)).ok();
        sock
    }

    /// Signs `claims` (JSON text) like the server does, with its first signing secret.
    pub fn mint_token(&self, claims: &str) -> String {
        mint_token(
            self.config.signing_secrets[0].as_bytes(),
            r#"{"alg":"HS256","typ":"JWT"}"#,
            claims,
        )
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // The server drains in the background; tests do not wait for it.
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A successful publish.
#[derive(Debug, Clone)]
pub struct Published {
    pub id: String,
    pub delivered: u64,
}

/// A compact JWT: `b64(header).b64(claims).b64(HMAC-SHA256(secret, …))`.
pub fn mint_token(secret: &[u8], header: &str, claims: &str) -> String {
    let signed = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    let sig = ring::hmac::sign(&key, signed.as_bytes());
    format!("{signed}.{}", B64.encode(sig.as_ref()))
}

/// The decoded JSON of a JWT's part `i` (0 header, 1 claims).
pub fn jwt_part(token: &str, i: usize) -> Value {
    let part = token.split('.').nth(i).expect("jwt part");
    serde_json::from_slice(&B64.decode(part).expect("base64url")).expect("json")
}

/// Seconds since the Unix epoch, with fractions.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

/// Percent-encodes everything but unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Polls `f` until it returns `Some`, or panics with `what` after `within`.
pub fn wait_for<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 over a raw socket
// ---------------------------------------------------------------------------------------------

/// A complete HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// First value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.text()))
    }

    /// Asserts the one error shape `{"error":{"code":"…","message":"…"}}` with `status` and
    /// `code`, served as JSON; returns the message.
    pub fn assert_error(&self, status: u16, code: &str) -> String {
        assert_eq!(self.status, status, "status; body: {}", self.text());
        let ct = self.header("content-type").unwrap_or("");
        assert!(
            ct.starts_with("application/json"),
            "error content-type {ct:?}"
        );
        let v = self.json();
        let obj = v.as_object().expect("error body is an object");
        assert_eq!(obj.len(), 1, "only the error key: {v}");
        let err = v["error"].as_object().expect("error object");
        assert_eq!(err.len(), 2, "error has exactly code and message: {v}");
        assert_eq!(v["error"]["code"], code, "error code: {v}");
        let message = v["error"]["message"].as_str().expect("message string");
        assert!(!message.is_empty(), "message is empty");
        message.to_string()
    }
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Writes a request; `Content-Length` is added for POST/PUT or any body. Large bodies are written
/// from a helper thread so that a server that answers early (413) never deadlocks the test.
pub fn write_request(
    sock: &mut TcpStream,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    let has = |n: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    if !has("content-length")
        && !has("transfer-encoding")
        && (!body.is_empty() || method == "POST" || method == "PUT")
    {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    sock.write_all(head.as_bytes()).expect("write request head");
    if body.len() > 64 << 10 {
        let mut w = sock.try_clone().expect("clone socket");
        let body = body.to_vec();
        // Errors are expected when the server refuses the body before reading it.
        std::thread::spawn(move || {
            let _ = w.write_all(&body);
        });
    } else if !body.is_empty() {
        let _ = sock.write_all(body);
    }
}

/// Reads a whole response (to EOF, or to the end of its declared body).
pub fn read_response(sock: &mut TcpStream, head_only: bool) -> Response {
    let mut buf = Vec::new();
    let (status, headers, head_len) = loop {
        if let Some(h) = parse_head(&buf) {
            break h;
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).expect("read response head");
        assert!(n > 0, "connection closed before a response head: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut wire = buf.split_off(head_len);
    let chunked = header(&headers, "transfer-encoding").is_some_and(|v| v.contains("chunked"));
    let length = header(&headers, "content-length").and_then(|v| v.parse::<usize>().ok());
    let mut decoder = Dechunk::default();
    let mut body = Vec::new();
    if !head_only && status != 204 && status != 304 {
        loop {
            if chunked {
                decoder.feed(&mut wire, &mut body);
                if decoder.done {
                    break;
                }
            } else if length.is_some_and(|n| wire.len() >= n) {
                wire.truncate(length.unwrap_or(0));
                break;
            }
            let mut chunk = [0u8; 65536];
            match sock.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => wire.extend_from_slice(&chunk[..n]),
                Err(e) => panic!("reading response body: {e}"),
            }
        }
        if !chunked {
            body = wire;
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

/// A parsed response head: status, headers, and its length in bytes.
type Head = (u16, Vec<(String, String)>, usize);

/// The head, once `buf` holds a complete one.
fn parse_head(buf: &[u8]) -> Option<Head> {
    let mut hs = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut hs);
    match r.parse(buf).expect("valid HTTP response head") {
        httparse::Status::Complete(len) => {
            let headers = r
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_string(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            Some((r.code.expect("status code"), headers, len))
        }
        httparse::Status::Partial => None,
    }
}

/// Incremental `Transfer-Encoding: chunked` decoder.
#[derive(Default)]
struct Dechunk {
    /// Bytes left in the current chunk (plus its trailing CRLF), or `None` between chunks.
    left: Option<usize>,
    done: bool,
}

impl Dechunk {
    /// Moves whatever complete chunk data `wire` holds into `out`.
    fn feed(&mut self, wire: &mut Vec<u8>, out: &mut Vec<u8>) {
        loop {
            if self.done {
                return;
            }
            match self.left {
                None => {
                    let Some(eol) = wire.windows(2).position(|w| w == b"\r\n") else {
                        return;
                    };
                    let line = std::str::from_utf8(&wire[..eol]).expect("chunk size line");
                    let size = usize::from_str_radix(line.split(';').next().unwrap().trim(), 16)
                        .expect("hex chunk size");
                    wire.drain(..eol + 2);
                    if size == 0 {
                        self.done = true;
                        return;
                    }
                    self.left = Some(size + 2);
                }
                Some(left) => {
                    if wire.is_empty() {
                        return;
                    }
                    let take = left.min(wire.len());
                    let data_left = left.saturating_sub(2);
                    out.extend_from_slice(&wire[..take.min(data_left)]);
                    wire.drain(..take);
                    self.left = (left > take).then_some(left - take);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SSE reader
// ---------------------------------------------------------------------------------------------

/// One SSE frame (the lines up to a blank line), parsed as the WHATWG algorithm would.
#[derive(Debug, Clone)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    /// `data:` lines joined with `\n`.
    pub data: Option<String>,
    pub comments: Vec<String>,
    /// The exact frame text, including its terminating blank line.
    pub raw: String,
    /// When the reader completed this frame.
    pub at: Instant,
}

impl Frame {
    fn parse(raw: String, at: Instant) -> Frame {
        let mut f = Frame {
            id: None,
            event: None,
            data: None,
            comments: Vec::new(),
            raw,
            at,
        };
        for line in f.raw.trim_end_matches('\n').split('\n') {
            if let Some(c) = line.strip_prefix(':') {
                f.comments.push(c.trim_start().to_string());
                continue;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value).to_string();
            match name {
                "id" => f.id = Some(value),
                "event" => f.event = Some(value),
                "data" => {
                    f.data = Some(match f.data.take() {
                        Some(d) => format!("{d}\n{value}"),
                        None => value,
                    })
                }
                _ => {}
            }
        }
        f
    }

    /// A comment-only frame (heartbeat).
    pub fn is_comment(&self) -> bool {
        self.id.is_none() && self.event.is_none() && self.data.is_none()
    }

    /// The data parsed as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().expect("frame has data"))
            .unwrap_or_else(|e| panic!("frame data is not JSON ({e}): {:?}", self.raw))
    }
}

/// Why no frame came back.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Timeout,
    Closed,
}

/// A stream response read frame by frame from a raw socket (HTTP/1.1, plain or chunked body).
pub struct SseStream {
    sock: TcpStream,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    wire: Vec<u8>,
    chunked: Option<Dechunk>,
    body: Vec<u8>,
    eof: bool,
    /// Every body byte received so far, for byte-level checks.
    pub received: Vec<u8>,
}

impl SseStream {
    /// Sends `GET target` to `addr` (the server, or a proxy in front of it) and reads the head.
    pub fn open(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> SseStream {
        let mut sock = TcpStream::connect(addr).expect("connect for a stream");
        sock.set_nodelay(true).ok();
        sock.set_read_timeout(Some(WAIT)).ok();
        sock.set_write_timeout(Some(WAIT)).ok();
        write_request(&mut sock, "GET", target, headers, b"");
        SseStream::read_head(sock)
    }

    /// Reads the response head of a request already written to `sock`.
    pub fn read_head(mut sock: TcpStream) -> SseStream {
        let mut buf = Vec::new();
        let (status, headers, len) = loop {
            if let Some(h) = parse_head(&buf) {
                break h;
            }
            let mut chunk = [0u8; 8192];
            let n = sock.read(&mut chunk).expect("read stream response head");
            assert!(n > 0, "connection closed before a response head");
            buf.extend_from_slice(&chunk[..n]);
        };
        let chunked = header(&headers, "transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
            .then(Dechunk::default);
        let mut s = SseStream {
            sock,
            status,
            headers,
            wire: buf.split_off(len),
            chunked,
            body: Vec::new(),
            eof: false,
            received: Vec::new(),
        };
        s.decode();
        s
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The whole body of a non-stream (error) response.
    pub fn error_body(mut self) -> Value {
        let mut deadline_left = 50;
        while !self.eof && deadline_left > 0 {
            let want = header(&self.headers, "content-length").and_then(|v| v.parse().ok());
            if want.is_some_and(|n: usize| self.body.len() >= n) {
                break;
            }
            self.fill(Instant::now() + WAIT);
            deadline_left -= 1;
        }
        serde_json::from_slice(&self.body).expect("JSON error body")
    }

    fn decode(&mut self) {
        let before = self.body.len();
        match &mut self.chunked {
            Some(d) => {
                d.feed(&mut self.wire, &mut self.body);
                if d.done {
                    self.eof = true;
                }
            }
            None => self.body.append(&mut self.wire),
        }
        self.received.extend_from_slice(&self.body[before..]);
    }

    /// Reads more bytes; false on timeout.
    fn fill(&mut self, deadline: Instant) -> bool {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        self.sock.set_read_timeout(Some(deadline - now)).ok();
        let mut chunk = [0u8; 65536];
        match self.sock.read(&mut chunk) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                self.wire.extend_from_slice(&chunk[..n]);
                self.decode();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            // A reset after the server closed a stream is an end like any other.
            Err(_) => self.eof = true,
        }
        true
    }

    /// The next frame (heartbeats included) within `timeout`.
    pub fn try_frame(&mut self, timeout: Duration) -> Result<Frame, End> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(end) = self.body.windows(2).position(|w| w == b"\n\n") {
                let raw: Vec<u8> = self.body.drain(..end + 2).collect();
                let raw = String::from_utf8(raw)
                    .unwrap_or_else(|e| panic!("frame is not valid UTF-8: {e}"));
                return Ok(Frame::parse(raw, Instant::now()));
            }
            if self.eof {
                // An incomplete frame at EOF is discarded, as SSE parsers do.
                return Err(End::Closed);
            }
            if !self.fill(deadline) {
                return Err(End::Timeout);
            }
        }
    }

    /// The next frame, heartbeats included; panics if none arrives within `WAIT`.
    pub fn frame(&mut self) -> Frame {
        self.try_frame(WAIT)
            .unwrap_or_else(|e| panic!("expected a frame, got {e:?}"))
    }

    /// The next frame that is not a comment; panics if none arrives within `WAIT`.
    pub fn event(&mut self) -> Frame {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_frame(left) {
                Ok(f) if f.is_comment() => continue,
                Ok(f) => return f,
                Err(e) => panic!("expected an event, got {e:?}"),
            }
        }
    }

    /// Asserts that no event (comments aside) arrives within `d`.
    pub fn assert_no_event(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_frame(left) {
                Ok(f) if f.is_comment() => continue,
                Ok(f) => panic!("unexpected event: {:?}", f.raw),
                Err(End::Timeout) => return,
                Err(End::Closed) => panic!("stream closed unexpectedly"),
            }
        }
    }

    /// Reads until the server closes the stream (within `within`); returns the frames seen.
    pub fn wait_closed(&mut self, within: Duration) -> Vec<Frame> {
        let deadline = Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_frame(left) {
                Ok(f) => frames.push(f),
                Err(End::Closed) => return frames,
                Err(End::Timeout) => panic!("stream still open after {within:?}: {frames:?}"),
            }
        }
    }

    /// The underlying socket (e.g. to close it abruptly).
    pub fn socket(&self) -> &TcpStream {
        &self.sock
    }
}

// ---------------------------------------------------------------------------------------------
// External tools (curl, nginx, node)
// ---------------------------------------------------------------------------------------------

/// True if `program` runs. If not: with `CASTBRICK_REQUIRE_ALL=1` the test fails, otherwise it
/// says loudly that it is skipped (the caller returns).
pub fn have_tool(program: &str, version_arg: &str, test: &str) -> bool {
    let ok = Command::new(program)
        .arg(version_arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("CASTBRICK_REQUIRE_ALL").as_deref() == Ok("1") {
            panic!("{test}: `{program}` is required (CASTBRICK_REQUIRE_ALL=1) but not installed");
        }
        eprintln!(
            "\n!!! SKIPPED {test}: `{program}` is not installed; this test did NOT run !!!\n"
        );
    }
    ok
}

/// A fresh, empty directory for one test's files.
pub fn temp_dir(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("castbrick-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A child process killed (by its own PID) and reaped when dropped.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Collects a child's stdout lines on a thread; `next_line` waits with a deadline.
pub struct Lines {
    rx: std::sync::mpsc::Receiver<String>,
}

impl Lines {
    pub fn spawn(out: impl Read + Send + 'static) -> Lines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { rx }
    }

    /// The next line, or `None` at EOF or after `within`.
    pub fn next_line(&self, within: Duration) -> Option<String> {
        self.rx.recv_timeout(within).ok()
    }
}
