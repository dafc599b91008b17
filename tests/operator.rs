//! The operator surface as an operator meets it: `/metrics` counters moving as the events they
//! count happen, the audit endpoints listing and closing exactly the right streams, the admin
//! listener taking the operator paths off the main one, and the per-stream log lines.

mod common;

use std::collections::HashMap;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{read_response, url_encode, wait_for, write_request, Response, TestServer, WAIT};
use serde_json::{json, Value};

/// `name{labels}` → value, exactly as the exposition writes them.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').expect("`name value` line");
            let v = match v {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            };
            (k.to_string(), v)
        })
        .collect()
}

fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(WAIT)).ok();
    write_request(&mut sock, "GET", target, headers, b"");
    read_response(&mut sock, false)
}

fn scrape_at(addr: SocketAddr) -> HashMap<String, f64> {
    let r = get(addr, "/metrics", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    parse_metrics(&r.text())
}

fn scrape(s: &TestServer) -> HashMap<String, f64> {
    scrape_at(s.addr)
}

/// The value of `key`, 0 when the series is absent.
fn val(m: &HashMap<String, f64>, key: &str) -> f64 {
    m.get(key).copied().unwrap_or(0.0)
}

/// Waits until `key` reads `want`.
fn wait_metric(s: &TestServer, key: &str, want: f64) {
    wait_for(WAIT, &format!("{key} == {want}"), || {
        (val(&scrape(s), key) == want).then_some(())
    })
}

fn sum_of(m: &HashMap<String, f64>, prefix: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, v)| v)
        .sum()
}

fn closed(reason: &str) -> String {
    format!("castbrick_streams_closed_total{{reason=\"{reason}\"}}")
}

fn rejected(reason: &str) -> String {
    format!("castbrick_tokens_rejected_total{{reason=\"{reason}\"}}")
}

fn user_token(s: &TestServer, channels: &[&str], user: Option<&str>, ttl: u64) -> String {
    let mut body = json!({ "channels": channels, "ttlSeconds": ttl });
    if let Some(u) = user {
        body["userId"] = json!(u);
    }
    s.token_response(body)["token"]
        .as_str()
        .expect("token")
        .to_string()
}

fn authed(s: &TestServer, method: &str, target: &str) -> Response {
    let auth = format!("Bearer {}", s.api_key);
    s.request(method, target, &[("Authorization", &auth)], b"")
}

#[test]
fn metrics_move_as_streams_open_publish_close_and_expire() {
    let s = TestServer::default_config();
    let m = scrape(&s);
    for key in [
        "castbrick_streams_open",
        "castbrick_streams_opened_total",
        "castbrick_events_published_total",
        "castbrick_deliveries_total",
        "castbrick_publish_duration_seconds_count",
        "castbrick_retained_events",
    ] {
        assert_eq!(m.get(key), Some(&0.0), "{key} starts at 0");
    }
    for r in [
        "client_gone",
        "expired",
        "slow_consumer",
        "shutdown",
        "revoked",
    ] {
        assert_eq!(m.get(&closed(r)), Some(&0.0), "closed {r} is exported");
    }
    let shards = s.config.shards;
    for i in 0..shards {
        assert!(m.contains_key(&format!("castbrick_shard_streams{{shard=\"{i}\"}}")));
        assert!(m.contains_key(&format!("castbrick_shard_channels{{shard=\"{i}\"}}")));
    }

    // Open: counted at once, and the owning shard reports it.
    let token = user_token(&s, &["orders"], Some("u1"), 3600);
    let (mut stream, _) = s.subscribe(&token);
    let m = scrape(&s);
    assert_eq!(val(&m, "castbrick_tokens_issued_total"), 1.0);
    assert_eq!(val(&m, "castbrick_streams_opened_total"), 1.0);
    assert_eq!(val(&m, "castbrick_streams_open"), 1.0);
    wait_for(WAIT, "shard gauges", || {
        let m = scrape(&s);
        (sum_of(&m, "castbrick_shard_streams{") == 1.0
            && sum_of(&m, "castbrick_shard_channels{") == 1.0)
            .then_some(())
    });
    let bytes_before = val(&scrape(&s), "castbrick_stream_bytes_written_total");
    assert!(bytes_before > 0.0, "head and connected frame were written");

    // Publish: one event, one delivery, one latency observation, one retained event.
    let p = s.publish("orders", "order.created", r#"{"n":1}"#);
    assert_eq!(p.delivered, 1);
    let ev = stream.event();
    assert_eq!(ev.id.as_deref(), Some(p.id.as_str()));
    let m = scrape(&s);
    assert_eq!(val(&m, "castbrick_events_published_total"), 1.0);
    assert_eq!(val(&m, "castbrick_deliveries_total"), 1.0);
    assert_eq!(val(&m, "castbrick_publish_duration_seconds_count"), 1.0);
    assert_eq!(
        val(&m, "castbrick_publish_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert!(val(&m, "castbrick_publish_duration_seconds_sum") > 0.0);
    assert_eq!(val(&m, "castbrick_retained_events"), 1.0);
    assert!(val(&m, "castbrick_retained_bytes") >= ev.raw.len() as f64);
    assert!(val(&m, "castbrick_stream_bytes_written_total") >= bytes_before + ev.raw.len() as f64);

    // Resume: one replay request; the event after the given id is replayed.
    let resume = format!("token={}", url_encode(&token));
    let zero = "00000000-0000-7000-8000-000000000000";
    let mut again = s.stream_with(&resume, &[("Last-Event-ID", zero)]);
    assert_eq!(again.status, 200);
    let connected = again.event();
    assert_eq!(connected.json()["complete"], false, "{}", connected.raw);
    let m = scrape(&s);
    assert_eq!(val(&m, "castbrick_replay_requests_total"), 1.0);
    assert_eq!(val(&m, "castbrick_replays_incomplete_total"), 1.0);
    let mut exact = s.stream_with(&resume, &[("Last-Event-ID", &p.id)]);
    assert_eq!(exact.event().json()["complete"], true);
    let m = scrape(&s);
    assert_eq!(val(&m, "castbrick_replay_requests_total"), 2.0);
    assert_eq!(val(&m, "castbrick_replays_incomplete_total"), 1.0);
    assert_eq!(val(&m, "castbrick_streams_open"), 3.0);
    drop(again);
    drop(exact);

    // Client gone.
    drop(stream);
    wait_metric(&s, &closed("client_gone"), 3.0);
    assert_eq!(val(&scrape(&s), "castbrick_streams_open"), 0.0);
    wait_for(WAIT, "shard gauges back to 0", || {
        (sum_of(&scrape(&s), "castbrick_shard_streams{") == 0.0).then_some(())
    });

    // Expired: the token runs out while the stream is open.
    let short = user_token(&s, &["orders"], None, 1);
    let (mut stream, _) = s.subscribe(&short);
    let frames = stream.wait_closed(WAIT);
    assert!(
        frames.iter().any(|f| f.event.as_deref() == Some("expired")),
        "{frames:?}"
    );
    wait_metric(&s, &closed("expired"), 1.0);

    // Rejected tokens, by reason; refused API keys.
    let bad = s.stream("not-a-token");
    assert_eq!(bad.status, 401);
    let missing = s.stream_with("", &[]);
    assert_eq!(missing.status, 401);
    let forged = common::mint_token(
        b"some-other-secret-some-other-secret",
        r#"{"alg":"HS256","typ":"JWT"}"#,
        r#"{"channels":["orders"],"iat":1,"exp":99999999999}"#,
    );
    assert_eq!(s.stream(&forged).status, 401);
    let m = scrape(&s);
    assert_eq!(val(&m, &rejected("malformed")), 1.0);
    assert_eq!(val(&m, &rejected("missing")), 1.0);
    assert_eq!(val(&m, &rejected("bad_signature")), 1.0);
    assert_eq!(val(&m, &rejected("expired")), 0.0);
    let r = s.post_json("/push/publish", None, "{}");
    assert_eq!(r.status, 401);
    assert_eq!(val(&scrape(&s), "castbrick_api_key_rejected_total"), 1.0);
}

#[test]
fn sessions_lists_one_users_streams_with_pagination() {
    let s = TestServer::default_config();
    let mut u1 = Vec::new();
    for chans in [&["a"][..], &["a", "b"], &["b"]] {
        u1.push(s.subscribe(&user_token(&s, chans, Some("user:1"), 3600)).0);
    }
    let _u2 = s.subscribe(&user_token(&s, &["a"], Some("user:2"), 3600)).0;
    let _anon = s.subscribe(&s.token(&["a"])).0;

    let target = format!("/push/sessions?userId={}", url_encode("user:1"));
    let r = authed(&s, "GET", &target);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["userId"], "user:1");
    assert_eq!(v["nextCursor"], Value::Null);
    let sessions = v["sessions"].as_array().expect("sessions");
    assert_eq!(sessions.len(), 3, "{v}");
    let mut ids = Vec::new();
    for (sess, chans) in sessions
        .iter()
        .zip([json!(["a"]), json!(["a", "b"]), json!(["b"])])
    {
        assert_eq!(sess["userId"], "user:1");
        assert_eq!(sess["channels"], chans, "token order, stream-id order: {v}");
        let at = sess["connectedAt"].as_str().expect("connectedAt");
        humantime::parse_rfc3339(at).unwrap_or_else(|e| panic!("{at}: {e}"));
        let remote: SocketAddr = sess["remoteAddr"].as_str().unwrap().parse().unwrap();
        assert!(remote.ip().is_loopback());
        ids.push(sess["streamId"].as_str().expect("string id").to_string());
    }
    let as_num: Vec<u64> = ids.iter().map(|i| i.parse().unwrap()).collect();
    assert!(as_num.windows(2).all(|w| w[0] < w[1]), "{ids:?}");

    // Pages of 2: the cursor walks the same list.
    let r = authed(&s, "GET", &format!("{target}&limit=2"));
    let page1 = r.json();
    assert_eq!(page1["sessions"].as_array().unwrap().len(), 2);
    let cursor = page1["nextCursor"]
        .as_str()
        .expect("more pages")
        .to_string();
    let page2 = authed(&s, "GET", &format!("{target}&limit=2&cursor={cursor}")).json();
    assert_eq!(page2["nextCursor"], Value::Null);
    let walked: Vec<String> = page1["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .chain(page2["sessions"].as_array().unwrap())
        .map(|x| x["streamId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(walked, ids);

    // A user with nothing open, and one whose streams closed.
    let none = authed(&s, "GET", "/push/sessions?userId=nobody").json();
    assert_eq!(none["sessions"], json!([]));
    drop(u1.pop());
    wait_for(WAIT, "closed stream leaves the list", || {
        let v = authed(&s, "GET", &target).json();
        (v["sessions"].as_array().unwrap().len() == 2).then_some(())
    });
}

#[test]
fn audit_endpoints_need_the_key_and_check_their_parameters() {
    let s = TestServer::default_config();
    for (method, target) in [
        ("GET", "/push/sessions?userId=u"),
        ("DELETE", "/push/sessions?userId=u"),
        ("GET", "/push/channels/orders"),
    ] {
        s.request(method, target, &[], b"")
            .assert_error(401, "invalid_api_key");
        let wrong = format!("Bearer {}x", s.api_key);
        s.request(method, target, &[("Authorization", &wrong)], b"")
            .assert_error(401, "invalid_api_key");
    }
    authed(&s, "GET", "/push/sessions").assert_error(400, "invalid_user_id");
    authed(&s, "DELETE", "/push/sessions?userId=").assert_error(400, "invalid_user_id");
    authed(&s, "GET", "/push/sessions?userId=u&limit=0").assert_error(400, "invalid_limit");
    authed(&s, "GET", "/push/sessions?userId=u&limit=1001").assert_error(400, "invalid_limit");
    authed(&s, "GET", "/push/sessions?userId=u&cursor=abc").assert_error(400, "invalid_cursor");
    authed(&s, "GET", "/push/channels/a%20b").assert_error(400, "invalid_channel");
    authed(&s, "GET", "/push/channels/%FF").assert_error(400, "invalid_channel");
    authed(&s, "GET", "/push/channels/").assert_error(400, "invalid_channel");
    let r = authed(&s, "PUT", "/push/sessions?userId=u");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, DELETE"));
    let r = authed(&s, "POST", "/push/channels/orders");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(
        val(&scrape(&s), "castbrick_api_key_rejected_total"),
        6.0,
        "each refused key is counted"
    );
}

#[test]
fn channel_audit_counts_subscribers_users_and_retention() {
    let s = TestServer::default_config();
    // Channel names are opaque: `/` and non-ASCII are fine, percent-encoded in the path.
    let ch = "org/1/café";
    let _a = s.subscribe(&user_token(&s, &[ch], Some("bob"), 3600)).0;
    let _b = s
        .subscribe(&user_token(&s, &[ch, "other"], Some("alice"), 3600))
        .0;
    let _c = s.subscribe(&user_token(&s, &[ch], Some("alice"), 3600)).0;
    let _d = s.subscribe(&s.token(&[ch])).0;

    let target = format!("/push/channels/{}", url_encode(ch));
    let v = authed(&s, "GET", &target).json();
    assert_eq!(v["channel"], ch);
    assert_eq!(v["subscribers"], 4);
    assert_eq!(
        v["userIds"],
        json!(["alice", "bob"]),
        "distinct, sorted: {v}"
    );
    assert_eq!(v["userIdsTruncated"], false);
    assert_eq!(v["anonymousSubscribers"], 1);
    assert_eq!(v["retention"]["retainedEvents"], 0);
    assert_eq!(v["retention"]["newestId"], Value::Null);
    assert_eq!(v["retention"]["capacity"], s.config.replay_capacity);

    let p1 = s.publish(ch, "e", "1");
    let p2 = s.publish(ch, "e", "2");
    let v = authed(&s, "GET", &target).json();
    assert_eq!(v["retention"]["retainedEvents"], 2);
    assert_eq!(v["retention"]["oldestId"], p1.id.as_str());
    assert_eq!(v["retention"]["newestId"], p2.id.as_str());
    assert_eq!(v["retention"]["evictedUpTo"], Value::Null);

    // A channel nobody is on and nothing was published to.
    let v = authed(&s, "GET", "/push/channels/quiet").json();
    assert_eq!(v["subscribers"], 0);
    assert_eq!(v["userIds"], json!([]));
    assert_eq!(v["retention"]["retainedEvents"], 0);
}

#[test]
fn channel_audit_lists_at_most_100_user_ids_and_says_so() {
    let s = TestServer::default_config();
    let streams: Vec<_> = (0..101)
        .map(|i| {
            s.subscribe(&user_token(&s, &["crowd"], Some(&format!("u{i:03}")), 3600))
                .0
        })
        .collect();
    let v = authed(&s, "GET", "/push/channels/crowd").json();
    assert_eq!(v["subscribers"], 101);
    let ids = v["userIds"].as_array().unwrap();
    assert_eq!(ids.len(), 100);
    assert_eq!(ids[0], "u000");
    assert_eq!(ids[99], "u099", "the 100 smallest, across shards");
    assert_eq!(v["userIdsTruncated"], true);
    drop(streams);
}

#[test]
fn deleting_sessions_closes_only_that_users_streams_with_a_revoked_event() {
    let s = TestServer::default_config();
    let mut victims: Vec<_> = (0..3)
        .map(|_| {
            s.subscribe(&user_token(&s, &["a"], Some("mallory"), 3600))
                .0
        })
        .collect();
    let mut other = s.subscribe(&user_token(&s, &["a"], Some("alice"), 3600)).0;
    let mut anon = s.subscribe(&s.token(&["a"])).0;

    let r = authed(&s, "DELETE", "/push/sessions?userId=mallory");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"userId": "mallory", "closed": 3}));
    for v in &mut victims {
        let frames = v.wait_closed(WAIT);
        let last = frames
            .iter()
            .rfind(|f| !f.is_comment())
            .expect("a final event");
        assert_eq!(last.event.as_deref(), Some("expired"));
        assert_eq!(last.json(), json!({"reason": "revoked"}));
    }
    wait_metric(&s, &closed("revoked"), 3.0);

    // Everyone else is untouched and still receives events.
    let p = s.publish("a", "still.here", "{}");
    assert_eq!(p.delivered, 2);
    assert_eq!(other.event().event.as_deref(), Some("still.here"));
    assert_eq!(anon.event().event.as_deref(), Some("still.here"));
    let v = authed(&s, "GET", "/push/sessions?userId=mallory").json();
    assert_eq!(v["sessions"], json!([]));
    let again = authed(&s, "DELETE", "/push/sessions?userId=mallory").json();
    assert_eq!(again["closed"], 0);
}

/// A server with an admin listener, both on 127.0.0.1:0.
struct AdminServer {
    main: SocketAddr,
    admin: SocketAddr,
    key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl AdminServer {
    fn start() -> AdminServer {
        let key = format!("cb_test_{}", castbrick_push::config::random_hex(16));
        let config = castbrick_push::Config {
            api_keys: vec![key.clone()],
            signing_secrets: vec![castbrick_push::config::random_hex(32)],
            shards: 2,
            ..castbrick_push::Config::default()
        };
        let bind = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            l
        };
        let (main, admin) = (bind(), bind());
        let addrs = (main.local_addr().unwrap(), admin.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let main = tokio::net::TcpListener::from_std(main).unwrap();
                let admin = tokio::net::TcpListener::from_std(admin).unwrap();
                castbrick_push::server::run_with_admin(main, Some(admin), config, async {
                    let _ = stopped.await;
                })
                .await
                .expect("server runs");
            });
        });
        AdminServer {
            main: addrs.0,
            admin: addrs.1,
            key,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn admin_listener_takes_metrics_health_and_readiness_off_the_main_listener() {
    let s = AdminServer::start();
    for path in ["/metrics", "/healthz", "/readyz"] {
        let r = get(s.main, path, &[]);
        r.assert_error(404, "not_found");
        let r = get(s.admin, path, &[]);
        assert_eq!(r.status, 200, "{path} on admin: {}", r.text());
    }
    assert_eq!(
        get(s.admin, "/healthz", &[]).json(),
        json!({"status": "ok"})
    );
    assert_eq!(
        get(s.admin, "/readyz", &[]).json(),
        json!({"status": "ready"})
    );
    // Nothing else is on the admin listener, key or not.
    let auth = format!("Bearer {}", s.key);
    for path in ["/push/sessions?userId=u", "/console", "/push/stream", "/"] {
        get(s.admin, path, &[("Authorization", &auth)]).assert_error(404, "not_found");
    }
    // The admin listener reports what happens on the main one.
    let mut sock = TcpStream::connect(s.main).unwrap();
    sock.set_read_timeout(Some(WAIT)).ok();
    let body = r#"{"channels":["orders"]}"#;
    write_request(
        &mut sock,
        "POST",
        "/push/tokens",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    let token = read_response(&mut sock, false).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = TcpStream::connect(s.main).unwrap();
    stream.set_read_timeout(Some(WAIT)).ok();
    write_request(
        &mut stream,
        "GET",
        &format!("/push/stream?token={}", url_encode(&token)),
        &[],
        b"",
    );
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("event: connected") {
        let mut buf = [0u8; 4096];
        let n = stream.read(&mut buf).expect("stream bytes");
        assert!(n > 0, "stream closed");
        seen.extend_from_slice(&buf[..n]);
    }
    let m = scrape_at(s.admin);
    assert_eq!(val(&m, "castbrick_streams_open"), 1.0);
    assert_eq!(val(&m, "castbrick_tokens_issued_total"), 1.0);
}

#[test]
fn main_listener_serves_metrics_health_and_readiness_without_a_key() {
    let s = TestServer::default_config();
    for (path, body) in [
        ("/healthz", json!({"status": "ok"})),
        ("/readyz", json!({"status": "ready"})),
    ] {
        let r = s.request("GET", path, &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.json(), body);
    }
    let text = s.request("GET", "/metrics", &[], b"").text();
    assert!(text.contains("# TYPE castbrick_publish_duration_seconds histogram"));
    assert!(text.contains("# TYPE castbrick_streams_closed_total counter"));
    s.request("POST", "/metrics", &[], b"")
        .assert_error(405, "method_not_allowed");
}

/// Runs the real binary with JSON logs and checks the open/close lines: present, parseable,
/// carrying id, user, channel count, reason and duration, and free of any secret.
#[test]
fn stream_open_and_close_are_logged_once_each_without_secrets() {
    let dir = std::env::temp_dir().join(format!("cb-operator-logs-{}", std::process::id()));
    let key = format!("cb_test_{}", castbrick_push::config::random_hex(16));
    let secret = castbrick_push::config::random_hex(32);
    let child = Command::new(env!("CARGO_BIN_EXE_castbrick-push"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--shards",
            "1",
        ])
        .arg("--data-dir")
        .arg(&dir)
        .env("CASTBRICK_API_KEYS", &key)
        .env("CASTBRICK_SIGNING_SECRETS", &secret)
        .env("CASTBRICK_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start castbrick-push");
    let mut child = common::ChildGuard(child);
    let out = common::Lines::spawn(child.0.stdout.take().unwrap());
    let err = common::Lines::spawn(child.0.stderr.take().unwrap());
    let addr: SocketAddr = loop {
        let line = out.next_line(WAIT).expect("banner");
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.trim().parse().unwrap();
        }
    };

    let auth = format!("Bearer {key}");
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(WAIT)).ok();
    let body = r#"{"channels":["orders","news"],"userId":"user_42"}"#;
    write_request(
        &mut sock,
        "POST",
        "/push/tokens",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    let token = read_response(&mut sock, false).json()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).ok();
    write_request(
        &mut stream,
        "GET",
        &format!("/push/stream?token={}", url_encode(&token)),
        &[],
        b"",
    );
    let mut buf = [0u8; 4096];
    assert!(stream.read(&mut buf).unwrap() > 0);
    drop(stream);

    let mut lines = Vec::new();
    let closed = wait_for(WAIT, "a `stream closed` log line", || {
        while let Some(l) = err.next_line(Duration::from_millis(50)) {
            lines.push(l);
        }
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["fields"]["message"] == "stream closed")
    });
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let opened: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["fields"]["message"] == "stream opened")
        .collect();
    assert_eq!(opened.len(), 1, "{lines:#?}");
    let o = &opened[0]["fields"];
    assert_eq!(o["user_id"], "user_42");
    assert_eq!(o["channels"], 2);
    assert!(o["remote"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert_eq!(opened[0]["target"], "castbrick_push::stream");
    let c = &closed["fields"];
    assert_eq!(c["stream_id"], o["stream_id"]);
    assert_eq!(c["user_id"], "user_42");
    assert_eq!(c["channels"], 2);
    assert_eq!(c["reason"], "client_gone");
    assert!(c["duration_ms"].is_u64());

    let all = lines.join("\n");
    for secret_text in [token.as_str(), key.as_str(), secret.as_str(), "token="] {
        assert!(
            !all.contains(secret_text),
            "logs leak {secret_text:?}:\n{all}"
        );
    }
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
}
