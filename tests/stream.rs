//! `GET|HEAD|OPTIONS /push/stream`: `connected` at once (C09), HEAD, response headers (C07),
//! Accept variants (C21), CORS (C06), HTTP/2 (C19), keep-alive connections, and shutdown.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have_tool, read_response, url_encode, write_request, SseStream, TestServer};
use serde_json::json;

fn stream_url(s: &TestServer, token: &str) -> String {
    format!("{}/push/stream?token={}", s.base, url_encode(token))
}

/// Response header lines (`name: value`, lowercased names) as curl printed them with `-D -`/`-v`.
fn header_lines(text: &str, prefix: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn find<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// C07's header contract, wherever the stream is served from.
fn assert_sse_headers(h: &[(String, String)], via: &str) {
    let ct = find(h, "content-type").unwrap_or_else(|| panic!("{via}: no content-type"));
    let ct = ct.to_ascii_lowercase();
    assert!(
        ct.starts_with("text/event-stream"),
        "{via}: content-type {ct}"
    );
    if let Some(cs) = ct.split("charset=").nth(1) {
        assert_eq!(cs.trim(), "utf-8", "{via}: any charset is utf-8");
    }
    let cc = find(h, "cache-control").unwrap_or_else(|| panic!("{via}: no cache-control"));
    assert!(cc.contains("no-cache"), "{via}: cache-control {cc}");
    assert_eq!(find(h, "x-accel-buffering"), Some("no"), "{via}");
    assert_eq!(
        find(h, "content-length"),
        None,
        "{via}: a stream has no length"
    );
}

fn lower(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect()
}

#[test]
fn c09_headers_and_connected_arrive_at_once_on_a_quiet_channel() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let start = Instant::now();
    let mut st = s.stream(&token);
    assert_eq!(st.status, 200);
    let f = st.frame();
    let ttfb = start.elapsed();
    assert_eq!(
        f.raw,
        "event: connected\ndata: {\"channels\":[\"orders\"]}\n\n"
    );
    assert!(ttfb < Duration::from_secs(1), "connected after {ttfb:?}");
    assert!(
        st.received.starts_with(b"event: connected\n"),
        "the body begins with connected"
    );
}

#[test]
fn c07_stream_response_headers_are_proxy_safe_on_every_transport() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    // Raw HTTP/1.1 path.
    let st = s.stream(&token);
    assert_sse_headers(&lower(&st.headers), "raw HTTP/1.1");
    // A keep-alive connection whose first request was something else (served by hyper).
    let st = keepalive_stream(&s, &token);
    assert_sse_headers(&lower(&st.headers), "keep-alive HTTP/1.1");
}

#[test]
fn c07_stream_headers_seen_by_curl() {
    if !have_tool("curl", "--version", "c07_stream_headers_seen_by_curl") {
        return;
    }
    let s = TestServer::default_config();
    let out = Command::new("curl")
        .args(["-s", "-m", "2", "-D", "-", "-o", "/dev/null"])
        .arg(stream_url(&s, &s.token(&["orders"])))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_sse_headers(&header_lines(&text, ""), "curl");
}

/// Opens a stream on a connection that first served `POST /push/tokens` with keep-alive.
fn keepalive_stream(s: &TestServer, token: &str) -> SseStream {
    let mut sock = s.connect();
    let auth = format!("Bearer {}", s.api_key);
    write_request(
        &mut sock,
        "POST",
        "/push/tokens",
        &[
            ("Connection", "keep-alive"),
            ("Content-Type", "application/json"),
            ("Authorization", &auth),
        ],
        br#"{"channels":["other"]}"#,
    );
    let r = read_response(&mut sock, false);
    assert_eq!(r.status, 200, "{}", r.text());
    write_request(
        &mut sock,
        "GET",
        &format!("/push/stream?token={}", url_encode(token)),
        &[("Connection", "keep-alive")],
        b"",
    );
    SseStream::read_head(sock)
}

#[test]
fn stream_on_a_reused_keep_alive_connection_delivers_events() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let mut st = keepalive_stream(&s, &token);
    assert_eq!(st.status, 200);
    assert_eq!(
        st.frame().raw,
        "event: connected\ndata: {\"channels\":[\"orders\"]}\n\n"
    );
    let p = s.publish("orders", "order.created", r#"{"n":1}"#);
    assert_eq!(p.delivered, 1);
    assert_eq!(
        st.event().raw,
        format!("id: {}\nevent: order.created\ndata: {{\"n\":1}}\n\n", p.id)
    );
    drop(st);
    common::wait_for(
        Duration::from_secs(2),
        "the closed stream to stop counting",
        || (s.publish("orders", "e", "0").delivered == 0).then_some(()),
    );
}

#[test]
fn token_expiry_ends_keep_alive_and_http2_streams_too() {
    let s = TestServer::default_config();
    let v = s.token_response(json!({"channels": ["orders"], "ttlSeconds": 2}));
    let token = v["token"].as_str().unwrap();
    let exp = common::jwt_part(token, 1)["exp"].as_u64().unwrap() as f64;
    let mut h1 = keepalive_stream(&s, token);
    assert_eq!(h1.frame().event.as_deref(), Some("connected"));
    let mut h2 = h2c::Conn::connect(&s);
    let id = h2.get(&format!("/push/stream?token={}", url_encode(token)));
    let expired = "event: expired\ndata: {\"reason\":\"token_expired\"}\n\n";
    h2.pump_until("the HTTP/2 stream to end after its expired frame", |c| {
        c.ended(id)
    });
    assert!(h2.data(id).ends_with(expired), "{:?}", h2.data(id));
    let frames = h1.wait_closed(Duration::from_secs(5));
    assert_eq!(frames.last().map(|f| f.raw.as_str()), Some(expired));
    let now = common::unix_now();
    assert!(now <= exp + 1.5, "ended {:.2} s after expiry", now - exp);
    assert_eq!(s.publish("orders", "e", "{}").delivered, 0);
}

#[test]
fn head_answers_headers_at_once_and_registers_no_subscriber() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let start = Instant::now();
    let r = s.request(
        "HEAD",
        &format!("/push/stream?token={}", url_encode(&token)),
        &[],
        b"",
    );
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "HEAD answered at once"
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_sse_headers(&lower(&r.headers), "HEAD");
    assert_eq!(
        s.publish("orders", "e", "{}").delivered,
        0,
        "HEAD is not a subscriber"
    );
    // HEAD checks the token like GET does.
    let r = s.request("HEAD", "/push/stream?token=not.a.jwt", &[], b"");
    assert_eq!(r.status, 401);
}

#[test]
fn c21_every_accept_variant_gets_the_stream() {
    if !have_tool(
        "curl",
        "--version",
        "c21_every_accept_variant_gets_the_stream",
    ) {
        return;
    }
    let s = TestServer::default_config();
    let url = stream_url(&s, &s.token(&["orders"]));
    let dir = common::temp_dir("c21");
    // `application/json` alone also gets the stream: documented choice (the endpoint has one
    // representation; refusing it would only break clients that send a generic Accept).
    let variants = [
        "",
        "*/*",
        "text/event-stream",
        "application/json, text/event-stream",
        "text/event-stream;q=1.0, */*;q=0.1",
        "text/html,*/*;q=0.8",
        "application/json",
    ];
    let runs: Vec<_> = variants
        .iter()
        .enumerate()
        .map(|(i, accept)| {
            let file = dir.join(format!("a{i}.txt"));
            let mut cmd = Command::new("curl");
            cmd.args(["-s", "-m", "3", "-w", "%{http_code} %{content_type}", "-o"])
                .arg(&file);
            if !accept.is_empty() {
                cmd.arg("-H").arg(format!("Accept: {accept}"));
            }
            let child = cmd.arg(&url).stdout(Stdio::piped()).spawn().expect("curl");
            (accept, file, child)
        })
        .collect();
    for (accept, file, child) in runs {
        let out = child.wait_with_output().expect("curl output");
        let status = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            status.starts_with("200 text/event-stream"),
            "[{accept}] {status}"
        );
        let body = std::fs::read_to_string(&file).expect("curl wrote the body");
        assert!(
            body.starts_with("event: connected\ndata: {\"channels\":[\"orders\"]}\n\n"),
            "[{accept}] {body:?}"
        );
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn c06_cors_preflight_allows_last_event_id_without_credentials() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    for query in [format!("?token={}", url_encode(&token)), String::new()] {
        let r = s.request(
            "OPTIONS",
            &format!("/push/stream{query}"),
            &[
                ("Origin", "https://app.example"),
                ("Access-Control-Request-Method", "GET"),
                (
                    "Access-Control-Request-Headers",
                    "cache-control,last-event-id",
                ),
            ],
            b"",
        );
        assert!(
            r.status == 200 || r.status == 204,
            "preflight status {}",
            r.status
        );
        let origin = r.header("access-control-allow-origin").expect("ACAO");
        assert!(origin == "*" || origin == "https://app.example", "{origin}");
        let methods = r
            .header("access-control-allow-methods")
            .unwrap()
            .to_ascii_uppercase();
        assert!(methods.split(',').any(|m| m.trim() == "GET"), "{methods}");
        let allowed = r
            .header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase();
        let allowed: Vec<&str> = allowed.split(',').map(str::trim).collect();
        for h in ["last-event-id", "cache-control", "authorization"] {
            assert!(allowed.contains(&h), "{h} missing from {allowed:?}");
        }
        assert_ne!(r.header("access-control-allow-credentials"), Some("true"));
    }

    // The GET from that origin carries ACAO and still replays.
    let first = s.publish("orders", "e", r#"{"n":1}"#).id;
    s.publish("orders", "e", r#"{"n":2}"#);
    let mut st = s.stream_with(
        &format!("token={}", url_encode(&token)),
        &[("Origin", "https://app.example"), ("Last-Event-ID", &first)],
    );
    assert_eq!(st.status, 200);
    let origin = st
        .header("access-control-allow-origin")
        .expect("ACAO on the GET");
    assert!(origin == "*" || origin == "https://app.example", "{origin}");
    assert_eq!(
        st.frame().json(),
        json!({"channels": ["orders"], "replayed": 1, "complete": true})
    );
    assert_eq!(st.frame().json(), json!({"n": 2}));
}

#[test]
fn cors_allow_list_echoes_allowed_origins_and_refuses_others() {
    let s = TestServer::start(|c| c.cors_allowed_origins = vec!["https://app.example".into()]);
    let token = s.token(&["orders"]);
    let target = format!("/push/stream?token={}", url_encode(&token));
    let pre = |origin: &str| {
        s.request(
            "OPTIONS",
            &target,
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            b"",
        )
    };
    let ok = pre("https://app.example");
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    assert!(ok
        .header("vary")
        .unwrap_or("")
        .to_ascii_lowercase()
        .contains("origin"));
    pre("https://evil.example").assert_error(403, "origin_not_allowed");
    let st = s.stream_with(
        &format!("token={}", url_encode(&token)),
        &[("Origin", "https://app.example")],
    );
    assert_eq!(st.status, 200);
    assert_eq!(
        st.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let st = s.stream_with(
        &format!("token={}", url_encode(&token)),
        &[("Origin", "https://evil.example")],
    );
    assert_eq!(st.status, 403);
    // Errors for an allowed origin stay readable by the page.
    let st = s.stream_with("token=not.a.jwt", &[("Origin", "https://app.example")]);
    assert_eq!(st.status, 401);
    assert_eq!(
        st.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    // Without an Origin (curl, servers) the stream works as usual.
    assert_eq!(s.stream(&token).status, 200);
}

#[test]
fn api_key_endpoints_send_no_cors_headers() {
    let s = TestServer::default_config();
    let auth = format!("Bearer {}", s.api_key);
    for (path, body) in [
        (
            "/push/publish",
            r#"{"channel":"orders","event":"e","data":{}}"#,
        ),
        ("/push/tokens", r#"{"channels":["orders"]}"#),
    ] {
        let r = s.request(
            "POST",
            path,
            &[
                ("Origin", "https://app.example"),
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
            ],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        assert!(
            !r.headers
                .iter()
                .any(|(k, _)| k.to_ascii_lowercase().starts_with("access-control-")),
            "{path}: {:?}",
            r.headers
        );
    }
}

#[test]
fn c19_http2_stream_has_no_connection_specific_headers() {
    if !have_tool(
        "curl",
        "--version",
        "c19_http2_stream_has_no_connection_specific_headers",
    ) {
        return;
    }
    let s = TestServer::default_config();
    let out = Command::new("curl")
        .args(["-sv", "--http2-prior-knowledge", "-m", "2"])
        .arg(stream_url(&s, &s.token(&["orders"])))
        .output()
        .expect("run curl");
    let err = String::from_utf8_lossy(&out.stderr);
    let body = String::from_utf8_lossy(&out.stdout);
    assert!(err.contains("< HTTP/2 200"), "{err}");
    assert!(
        !err.to_ascii_uppercase().contains("PROTOCOL_ERROR"),
        "{err}"
    );
    let headers = header_lines(&err, "< ");
    for forbidden in ["connection", "keep-alive", "transfer-encoding", "upgrade"] {
        assert_eq!(
            find(&headers, forbidden),
            None,
            "HTTP/2 response has {forbidden}: {err}"
        );
    }
    assert_sse_headers(&headers, "HTTP/2");
    assert!(
        body.starts_with("event: connected\ndata: {\"channels\":[\"orders\"]}\n\n"),
        "{body:?}"
    );
}

/// curl 7.88's `--parallel` never starts transfers queued behind a long-lived HTTP/2 stream
/// ("Transfer was pending, now try another"), so the multiplexing half of C19 uses a tiny HTTP/2
/// client (`h2c` below) that opens all ten streams on one TCP connection by construction.
#[test]
fn c19_ten_http2_streams_multiplexed_on_one_connection_all_get_the_event() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let mut conn = h2c::Conn::connect(&s);
    let path = format!("/push/stream?token={}", url_encode(&token));
    let ids: Vec<u32> = (0..10).map(|_| conn.get(&path)).collect();
    let connected = "event: connected\ndata: {\"channels\":[\"orders\"]}\n\n";
    conn.pump_until("ten connected events", |c| {
        ids.iter().all(|id| c.data(*id).starts_with(connected))
    });
    for id in &ids {
        assert_eq!(conn.status(*id), Some(200), "stream {id}");
    }
    let p = s.publish("orders", "e", "{}");
    assert_eq!(p.delivered, 10);
    let want = format!("{connected}id: {}\nevent: e\ndata: {{}}\n\n", p.id);
    conn.pump_until("the event on all ten streams", |c| {
        ids.iter().all(|id| c.data(*id) == want)
    });
    // Closing one stream (RST_STREAM) stops it counting; the others are unaffected.
    conn.reset(ids[0]);
    common::wait_for(
        Duration::from_secs(2),
        "the reset stream to stop counting",
        || (s.publish("orders", "probe", "0").delivered == 9).then_some(()),
    );
}

/// A minimal HTTP/2 (prior knowledge, cleartext) client: GET requests on one connection, DATA
/// collected per stream. Request headers use HPACK literals without Huffman coding; of the
/// response headers only `:status 200` (static-table index 8) is recognised.
mod h2c {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    use super::common::{TestServer, WAIT};

    const DATA: u8 = 0;
    const HEADERS: u8 = 1;
    const RST_STREAM: u8 = 3;
    const SETTINGS: u8 = 4;
    const PING: u8 = 6;
    const GOAWAY: u8 = 7;
    const WINDOW_UPDATE: u8 = 8;

    pub struct Conn {
        sock: TcpStream,
        authority: String,
        next_id: u32,
        inbox: Vec<u8>,
        data: HashMap<u32, Vec<u8>>,
        status: HashMap<u32, u16>,
        ended: Vec<u32>,
    }

    impl Conn {
        pub fn connect(s: &TestServer) -> Conn {
            let mut sock = s.connect();
            sock.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").unwrap();
            let mut c = Conn {
                sock,
                authority: s.addr.to_string(),
                next_id: 1,
                inbox: Vec::new(),
                data: HashMap::new(),
                status: HashMap::new(),
                ended: Vec::new(),
            };
            c.frame(SETTINGS, 0, 0, &[]);
            c
        }

        fn frame(&mut self, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
            let len = payload.len() as u32;
            let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
            f.extend_from_slice(&stream.to_be_bytes());
            f.extend_from_slice(payload);
            self.sock.write_all(&f).expect("write h2 frame");
        }

        /// Sends `GET path`; returns the stream id.
        pub fn get(&mut self, path: &str) -> u32 {
            let id = self.next_id;
            self.next_id += 2;
            let mut block = vec![0x82, 0x86]; // :method GET, :scheme http (static table)
            literal(&mut block, 4, path); // :path
            literal(&mut block, 1, &self.authority.clone()); // :authority
            self.frame(HEADERS, 0x4 | 0x1, id, &block); // END_HEADERS | END_STREAM
            id
        }

        pub fn reset(&mut self, id: u32) {
            self.frame(RST_STREAM, 0, id, &8u32.to_be_bytes()); // CANCEL
        }

        pub fn data(&self, id: u32) -> String {
            String::from_utf8_lossy(self.data.get(&id).map_or(&[][..], |d| d)).into_owned()
        }

        /// True once the server ended stream `id` (END_STREAM).
        pub fn ended(&self, id: u32) -> bool {
            self.ended.contains(&id)
        }

        pub fn status(&self, id: u32) -> Option<u16> {
            self.status.get(&id).copied()
        }

        /// Reads frames until `done(self)` holds; panics after `WAIT`.
        pub fn pump_until(&mut self, what: &str, done: impl Fn(&Conn) -> bool) {
            let deadline = Instant::now() + WAIT;
            while !done(self) {
                let left = deadline.saturating_duration_since(Instant::now());
                assert!(!left.is_zero(), "HTTP/2: timed out waiting for {what}");
                self.sock
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .ok();
                let mut buf = [0u8; 16384];
                match self.sock.read(&mut buf) {
                    Ok(0) => panic!("HTTP/2 connection closed while waiting for {what}"),
                    Ok(n) => self.inbox.extend_from_slice(&buf[..n]),
                    Err(_) => continue,
                }
                self.handle_frames();
            }
        }

        fn handle_frames(&mut self) {
            while self.inbox.len() >= 9 {
                let len =
                    u32::from_be_bytes([0, self.inbox[0], self.inbox[1], self.inbox[2]]) as usize;
                if self.inbox.len() < 9 + len {
                    return;
                }
                let (kind, flags) = (self.inbox[3], self.inbox[4]);
                let stream = u32::from_be_bytes(self.inbox[5..9].try_into().unwrap()) & !(1 << 31);
                let payload: Vec<u8> = self.inbox[9..9 + len].to_vec();
                self.inbox.drain(..9 + len);
                match kind {
                    DATA => {
                        if flags & 0x1 != 0 {
                            self.ended.push(stream); // END_STREAM
                        }
                        self.data
                            .entry(stream)
                            .or_default()
                            .extend_from_slice(&payload);
                        if !payload.is_empty() {
                            // Give the flow-control credit back for both levels.
                            let credit = (payload.len() as u32).to_be_bytes();
                            self.frame(WINDOW_UPDATE, 0, 0, &credit);
                            self.frame(WINDOW_UPDATE, 0, stream, &credit);
                        }
                    }
                    HEADERS if payload.first() == Some(&0x88) => {
                        self.status.insert(stream, 200);
                    }
                    SETTINGS if flags & 1 == 0 => self.frame(SETTINGS, 1, 0, &[]),
                    PING if flags & 1 == 0 => self.frame(PING, 1, 0, &payload),
                    RST_STREAM => panic!("server reset stream {stream}: {payload:?}"),
                    GOAWAY => panic!("server sent GOAWAY: {payload:?}"),
                    _ => {}
                }
            }
        }
    }

    /// HPACK "literal header field without indexing, indexed name" (RFC 7541, 6.2.2).
    fn literal(out: &mut Vec<u8>, name_index: u8, value: &str) {
        out.push(name_index); // 0000 + 4-bit index (all indexes used here are < 15)
        integer(out, 7, value.len());
        out.extend_from_slice(value.as_bytes());
    }

    /// HPACK integer with an `n`-bit prefix (RFC 7541, 5.1); the prefix byte's high bits are 0.
    fn integer(out: &mut Vec<u8>, n: u32, mut v: usize) {
        let max = (1usize << n) - 1;
        if v < max {
            out.push(v as u8);
            return;
        }
        out.push(max as u8);
        v -= max;
        while v >= 128 {
            out.push((v % 128 + 128) as u8);
            v /= 128;
        }
        out.push(v as u8);
    }
}

#[test]
fn shutdown_ends_open_streams_cleanly() {
    let mut s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let (mut raw, _) = s.subscribe(&token);
    let mut kept = keepalive_stream(&s, &token);
    assert_eq!(kept.frame().event.as_deref(), Some("connected"));
    assert_eq!(s.publish("orders", "e", "1").delivered, 2);
    assert!(
        s.shutdown(Duration::from_secs(20)),
        "run returns after shutdown"
    );
    for (name, st) in [("raw", &mut raw), ("keep-alive", &mut kept)] {
        let frames = st.wait_closed(Duration::from_secs(1));
        let data: Vec<_> = frames.iter().filter_map(|f| f.data.clone()).collect();
        assert_eq!(data, ["1"], "{name}: queued event flushed before the end");
    }
    assert!(
        std::net::TcpStream::connect(s.addr).is_err(),
        "no longer listening"
    );
}
