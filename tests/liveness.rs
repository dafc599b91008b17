//! Streams over time: heartbeats (C08), token expiry mid-stream and on reconnect (C16), and the
//! slow consumer that is cut without touching anyone else.

mod common;

use std::time::{Duration, Instant};

use common::{mint_token, unix_now, url_encode, End, TestServer, WAIT};
use serde_json::json;

#[test]
fn c08_heartbeats_keep_gaps_within_the_interval_and_carry_no_id() {
    assert!(
        castbrick_push::Config::default().heartbeat_interval_secs <= 30,
        "documented default interval is at most 30 s"
    );
    let s = TestServer::start(|c| c.heartbeat_interval_secs = 2);
    let interval = Duration::from_secs(s.config.heartbeat_interval_secs);
    let token = s.token(&["orders"]);
    let (mut st, connected) = s.subscribe(&token);
    let watch = Duration::from_secs(7);
    let start = Instant::now();
    let mut last = connected.at;
    let mut beats = 0;
    let mut published = None;
    while start.elapsed() < watch {
        if published.is_none() && start.elapsed() > Duration::from_secs(3) {
            published = Some(s.publish("orders", "e", "1").id); // activity in the middle
        }
        match st.try_frame(Duration::from_millis(100)) {
            Ok(f) => {
                let gap = f.at - last;
                assert!(
                    gap <= interval,
                    "{gap:?} of silence (interval {interval:?})"
                );
                last = f.at;
                if f.is_comment() {
                    assert!(
                        f.raw.starts_with(':'),
                        "heartbeat is a comment: {:?}",
                        f.raw
                    );
                    assert!(!f.raw.contains("\nid:") && !f.raw.starts_with("id:"));
                    beats += 1;
                } else {
                    assert_eq!(f.data.as_deref(), Some("1"));
                }
            }
            Err(End::Timeout) => {
                let quiet = last.elapsed();
                assert!(
                    quiet <= interval,
                    "{quiet:?} of silence (interval {interval:?})"
                );
            }
            Err(End::Closed) => panic!("idle stream was closed"),
        }
    }
    assert!(beats >= 2, "only {beats} heartbeats in {watch:?}");
    // Still open, and the resume point is still the last real event.
    assert_eq!(s.publish("orders", "e", "2").delivered, 1);
    assert_eq!(st.event().data.as_deref(), Some("2"));
    let id = published.unwrap();
    let mut again = s.stream_with(
        &format!("token={}", url_encode(&token)),
        &[("Last-Event-ID", &id)],
    );
    assert_eq!(
        again.frame().json(),
        json!({"channels": ["orders"], "replayed": 1, "complete": true})
    );
    assert_eq!(again.frame().data.as_deref(), Some("2"));
}

#[test]
fn c16_stream_ends_with_an_expired_frame_at_token_expiry() {
    let s = TestServer::default_config();
    let v = s.token_response(json!({"channels": ["orders"], "ttlSeconds": 3}));
    let token = v["token"].as_str().unwrap().to_string();
    let exp = common::jwt_part(&token, 1)["exp"].as_u64().unwrap() as f64;
    let (mut st, _) = s.subscribe(&token);
    let first = s.publish("orders", "e", r#"{"n":1}"#);
    assert_eq!(first.delivered, 1);
    assert_eq!(st.event().json(), json!({"n": 1}));

    let frames = st.wait_closed(Duration::from_secs(10));
    let closed_at = unix_now();
    let events: Vec<_> = frames.iter().filter(|f| !f.is_comment()).collect();
    assert_eq!(events.len(), 1, "{frames:?}");
    assert_eq!(
        events[0].raw,
        "event: expired\ndata: {\"reason\":\"token_expired\"}\n\n"
    );
    assert!(
        closed_at >= exp - 0.1,
        "closed {:.2} s before expiry",
        exp - closed_at
    );
    assert!(
        closed_at <= exp + 1.0,
        "closed {:.2} s after expiry",
        closed_at - exp
    );

    let second = s.publish("orders", "e", r#"{"n":2}"#);
    assert_eq!(second.delivered, 0, "the expired stream no longer counts");

    // Reconnecting with the expired token: a JSON 401, not a stream, so EventSource gives up.
    let again = s.stream(&token);
    assert_eq!(again.status, 401);
    let ct = again.header("content-type").unwrap_or("").to_string();
    assert!(
        !ct.contains("text/event-stream") && ct.starts_with("application/json"),
        "{ct}"
    );
    assert_eq!(again.error_body()["error"]["code"], "token_expired");

    // A fresh token and the last id seen: nothing is lost.
    let fresh = s.token(&["orders"]);
    let mut resumed = s.stream_with(
        &format!("token={}", url_encode(&fresh)),
        &[("Last-Event-ID", &first.id)],
    );
    assert_eq!(
        resumed.frame().json(),
        json!({"channels": ["orders"], "replayed": 1, "complete": true})
    );
    assert_eq!(resumed.frame().json(), json!({"n": 2}));
}

#[test]
fn c16_expired_malformed_and_forged_tokens_get_401_json_not_a_stream() {
    let s = TestServer::default_config();
    let now = unix_now() as u64;
    let claims =
        |exp: u64| json!({"channels": ["orders"], "iat": now - 10, "exp": exp}).to_string();
    let good = s.mint_token(&claims(now + 600));
    let parts: Vec<&str> = good.split('.').collect();
    let hs256 = r#"{"alg":"HS256","typ":"JWT"}"#;
    let other_secret = "another-secret-another-secret-another-secret";
    use base64::Engine;
    let b64 = |t: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
    let cases = [
        ("expired", s.mint_token(&claims(now - 1)), "token_expired"),
        ("malformed", "not.a.jwt".to_string(), "invalid_token"),
        (
            "two parts",
            format!("{}.{}", parts[0], parts[1]),
            "invalid_token",
        ),
        (
            "wrong signature",
            mint_token(other_secret.as_bytes(), hs256, &claims(now + 600)),
            "invalid_token",
        ),
        (
            "alg none",
            format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]),
            "invalid_token",
        ),
        (
            "alg HS512",
            mint_token(
                s.config.signing_secrets[0].as_bytes(),
                r#"{"alg":"HS512","typ":"JWT"}"#,
                &claims(now + 600),
            ),
            "invalid_token",
        ),
        (
            "claims swapped under the signature",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&json!({"channels": ["admin"], "iat": now, "exp": now + 600}).to_string()),
                parts[2]
            ),
            "invalid_token",
        ),
        (
            "longer than max_token_bytes",
            format!("{good}{}", "A".repeat(s.config.max_token_bytes)),
            "invalid_token",
        ),
        (
            "signed claims with an invalid channel name",
            s.mint_token(&json!({"channels": ["a b"], "iat": now, "exp": now + 600}).to_string()),
            "invalid_token",
        ),
        (
            "signed claims without channels",
            s.mint_token(&json!({"channels": [], "iat": now, "exp": now + 600}).to_string()),
            "invalid_token",
        ),
    ];
    for (what, token, code) in cases {
        let st = s.stream(&token);
        assert_eq!(st.status, 401, "{what}");
        let ct = st.header("content-type").unwrap_or("").to_string();
        assert!(ct.starts_with("application/json"), "{what}: {ct}");
        assert_eq!(st.error_body()["error"]["code"], code, "{what}");
    }
    // The correctly signed one works.
    assert_eq!(s.stream(&good).status, 200);
}

#[test]
fn slow_consumer_is_cut_and_other_streams_are_unaffected() {
    let s = TestServer::start(|c| {
        c.max_body_bytes = 64 << 10;
        c.max_queue_bytes = 2 * c.max_body_bytes;
    });
    let token = s.token(&["orders"]);
    let (slow, _) = s.subscribe(&token); // never reads until the end
    let (mut healthy, _) = s.subscribe(&token);
    let pad = "x".repeat(16 << 10);

    let (published, (mut healthy, healthy_got)) = std::thread::scope(|scope| {
        let (done_tx, done_rx) = std::sync::mpsc::channel::<usize>();
        let reader = scope.spawn(move || {
            let mut got = Vec::new();
            let mut want: Option<usize> = None;
            loop {
                if want.is_none() {
                    want = done_rx.try_recv().ok();
                }
                if want.is_some_and(|w| got.len() >= w) {
                    return (healthy, got);
                }
                match healthy.try_frame(Duration::from_millis(200)) {
                    Ok(f) if f.is_comment() => {}
                    Ok(f) => got.push(f.json()["n"].as_u64().unwrap()),
                    Err(End::Timeout) => {}
                    Err(End::Closed) => panic!("the healthy stream was cut"),
                }
            }
        });
        let start = Instant::now();
        let mut n = 0u64;
        loop {
            let p = s.publish("orders", "fill", &json!({ "n": n, "pad": pad }).to_string());
            n += 1;
            if p.delivered == 1 {
                break;
            }
            assert_eq!(p.delivered, 2);
            assert!(
                start.elapsed() < Duration::from_secs(60) && n < 5000,
                "the stalled stream was never cut ({n} events)"
            );
        }
        done_tx.send(n as usize).unwrap();
        (n, reader.join().unwrap())
    });
    assert_eq!(
        healthy_got,
        (0..published).collect::<Vec<_>>(),
        "the healthy stream got every event, in order"
    );
    assert_eq!(s.publish("orders", "after", r#"{"n":-1}"#).delivered, 1);
    assert_eq!(healthy.event().json()["n"], -1);

    // The slow stream: what reached it is a gap-free prefix, then the connection ends.
    let mut slow = slow;
    let frames = slow.wait_closed(WAIT);
    let events: Vec<_> = frames.iter().filter(|f| !f.is_comment()).collect();
    for (i, f) in events.iter().enumerate() {
        assert_eq!(f.json()["n"], i as u64, "prefix without gaps");
    }
    assert!(
        (events.len() as u64) < published,
        "it was cut before the end"
    );
    // It resumes with its last id and catches up exactly.
    let last = events
        .last()
        .expect("socket buffers held some events")
        .id
        .clone()
        .unwrap();
    let mut resumed = s.stream_with(
        &format!("token={}", url_encode(&token)),
        &[("Last-Event-ID", &last)],
    );
    let missed = published - events.len() as u64;
    assert_eq!(
        resumed.frame().json(),
        json!({"channels": ["orders"], "replayed": missed + 1, "complete": true})
    );
    for n in events.len() as u64..published {
        assert_eq!(resumed.event().json()["n"], n);
    }
    assert_eq!(resumed.event().json()["n"], -1);
}
