//! What goes on the wire: event names that cannot inject fields (C10), the `data` contract
//! (C12), UTF-8 integrity (C13), large payloads (C14) and channel names (C18).

mod common;

use std::time::Duration;

use castbrick_push::names::{MAX_CHANNEL_BYTES, MAX_EVENT_BYTES};
use common::{SseStream, TestServer};
use serde_json::{json, Value};

/// Publishes a sentinel and asserts it is the next event: nothing else slipped in before it.
fn assert_only_sentinel_follows(s: &TestServer, streams: &mut [&mut SseStream]) {
    let p = s.publish("orders", "sentinel", r#"{"last":true}"#);
    assert_eq!(p.delivered as usize, streams.len());
    for st in streams.iter_mut() {
        let f = st.event();
        assert_eq!(
            f.event.as_deref(),
            Some("sentinel"),
            "unexpected frame {:?}",
            f.raw
        );
        assert_eq!(f.id.as_deref(), Some(p.id.as_str()));
    }
}

#[test]
fn c10_line_breaks_in_event_names_are_refused_not_stripped() {
    let s = TestServer::default_config();
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    for bad in [
        "order.created\ndata: {\"admin\":true}\n\nevent: pwn",
        "order.created\revent: pwn",
        "order.created\r\nid: 1",
        "",
        " x",
        "x ",
        "nul\0byte",
        "nel\u{85}line",
        &"e".repeat(MAX_EVENT_BYTES + 1),
    ] {
        let r = s.publish_raw("orders", bad, "{}");
        let msg = r.assert_error(400, "invalid_event");
        assert!(msg.contains("event"), "{bad:?}: {msg}");
    }
    assert_only_sentinel_follows(&s, &mut [&mut st]);
}

#[test]
fn c10_documented_event_names_are_delivered_exactly() {
    let s = TestServer::default_config();
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    for name in [
        "order.created",
        "status.changed",
        "a b",
        "pedido.criado:ção",
        "message",
        &"e".repeat(MAX_EVENT_BYTES),
    ] {
        let p = s.publish("orders", name, "{}");
        assert_eq!(p.delivered, 1);
        assert_eq!(
            st.event().raw,
            format!("id: {}\nevent: {name}\ndata: {{}}\n\n", p.id)
        );
    }
}

#[test]
fn c12_any_json_value_is_accepted_and_arrives_exactly_as_sent() {
    let s = TestServer::default_config();
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    for d in [
        r#""hello""#,
        r#""{\"x\":1}""#,
        "[1,2]",
        "42",
        "true",
        "null",
        "{}",
        r#"{"orderId":"abc123","total":4999,"currency":"AOA"}"#,
    ] {
        let p = s.publish("orders", "e", d);
        assert_eq!(p.delivered, 1, "{d}");
        let f = st.event();
        assert_eq!(
            f.data.as_deref(),
            Some(d),
            "data line is the published JSON"
        );
        let sent: Value = serde_json::from_str(d).unwrap();
        assert_eq!(f.json(), sent, "parses back to the published value");
    }
    // A JSON string that contains JSON stays a string.
    s.publish("orders", "e", r#""{\"x\":1}""#);
    assert_eq!(st.event().json(), Value::String(r#"{"x":1}"#.into()));
}

#[test]
fn c12_missing_data_gets_400_naming_data_and_nothing_is_delivered() {
    let s = TestServer::default_config();
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    let r = s.post_json(
        "/push/publish",
        Some(&s.api_key),
        r#"{"channel":"orders","event":"e"}"#,
    );
    let msg = r.assert_error(400, "invalid_data");
    assert!(msg.contains("data"), "{msg}");
    assert_only_sentinel_follows(&s, &mut [&mut st]);
}

#[test]
fn c12_data_is_minified_but_otherwise_byte_exact() {
    let s = TestServer::default_config();
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    for (sent, want) in [
        // Pretty-printed (LF, CRLF, tabs) becomes one line; whitespace inside strings stays.
        (
            "{\n  \"a\": [1, 2],\r\n\t\"s\": \"x  y\\n z\"\n}",
            r#"{"a":[1,2],"s":"x  y\n z"}"#,
        ),
        // Numbers keep their exact text.
        (
            r#"{"p": 1.10, "big": 12345678901234567890, "e": 1E+2, "neg": -0.0, "tiny": 5e-324}"#,
            r#"{"p":1.10,"big":12345678901234567890,"e":1E+2,"neg":-0.0,"tiny":5e-324}"#,
        ),
        ("1.10", "1.10"),
        ("12345678901234567890", "12345678901234567890"),
        // Key order, escapes and unicode are untouched.
        (
            r#"{"z":1,"a":2,"m":{"y":0,"b":1}}"#,
            r#"{"z":1,"a":2,"m":{"y":0,"b":1}}"#,
        ),
        (
            r#"{"esc":"\u00e9\/\"\\\t","raw":"é€😀","u":"\ud83d\ude00"}"#,
            r#"{"esc":"\u00e9\/\"\\\t","raw":"é€😀","u":"\ud83d\ude00"}"#,
        ),
        (" [ 1 , { } , \"\" ] ", r#"[1,{},""]"#),
    ] {
        assert_eq!(s.publish("orders", "e", sent).delivered, 1);
        let f = st.event();
        assert_eq!(f.data.as_deref(), Some(want), "sent {sent:?}");
        assert_eq!(
            f.raw.matches('\n').count(),
            4,
            "id, event, one data line, blank"
        );
    }
}

#[test]
fn c13_multibyte_utf8_emoji_and_bom_survive_intact() {
    let s = TestServer::start(|c| c.max_body_bytes = 1 << 20);
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    let big = "你好🌍𝄞".repeat(20_000);
    // The BOM as a raw character and as a JSON escape; RTL text.
    let data = format!(
        "{{\"t\":\"{big}\",\"bom\":\"\u{feff}head\",\"bomEsc\":\"\\ufeffhead\",\"rtl\":\"مرحبا\"}}"
    );
    assert!(
        data.len() + 100 < s.config.max_body_bytes,
        "fits the configured limit"
    );
    assert_eq!(s.publish("orders", "e", &data).delivered, 1);
    let f = st.event();
    assert_eq!(f.data.as_deref(), Some(data.as_str()), "byte-exact");
    let v = f.json();
    assert_eq!(v["t"].as_str().unwrap(), big);
    assert_eq!(v["bom"].as_str().unwrap(), "\u{feff}head");
    assert_eq!(v["bomEsc"].as_str().unwrap(), "\u{feff}head");
    assert_eq!(v["rtl"], "مرحبا");

    let all = String::from_utf8(st.received.clone()).expect("the stream is valid UTF-8");
    assert!(!all.contains('\u{fffd}'), "no replacement characters");
    assert!(
        all.starts_with("event: connected\n"),
        "no BOM before the first frame"
    );
    if let Some(cs) = st.header("content-type").unwrap().split("charset=").nth(1) {
        assert_eq!(cs.trim().to_ascii_lowercase(), "utf-8");
    }
}

/// C14 against the configured limit: two subscribers, payloads below and above it.
fn large_payloads_are_delivered_whole_or_refused_cleanly(s: &TestServer) {
    let limit = s.config.max_body_bytes;
    let token = s.token(&["orders"]);
    let (mut a, _) = s.subscribe(&token);
    let (mut b, _) = s.subscribe(&token);
    let body = |n: usize| {
        format!(
            r#"{{"channel":"orders","event":"big","data":{{"s":"{}"}}}}"#,
            "x".repeat(n)
        )
    };
    let envelope = body(0).len();
    let mut sizes = vec![5000, 70_000, 1_048_576, 10_485_760];
    sizes.extend([limit - envelope, limit - envelope + 1]); // the exact boundary
    for n in sizes {
        let r = s.post_json("/push/publish", Some(&s.api_key), &body(n));
        if envelope + n <= limit {
            assert_eq!(r.status, 200, "n={n}: {}", r.text());
            assert_eq!(r.json()["delivered"], 2, "n={n}");
            for st in [&mut a, &mut b] {
                let f = st.event();
                assert_eq!(f.event.as_deref(), Some("big"));
                let v = f.json();
                assert_eq!(v["s"].as_str().unwrap().len(), n, "whole payload");
            }
        } else {
            let msg = r.assert_error(413, "payload_too_large");
            assert!(msg.contains(&limit.to_string()), "names the limit: {msg}");
            assert!(r.json().get("delivered").is_none());
        }
    }
    assert_only_sentinel_follows(s, &mut [&mut a, &mut b]);
}

#[test]
fn c14_large_payloads_with_the_default_limit() {
    large_payloads_are_delivered_whole_or_refused_cleanly(&TestServer::default_config());
}

#[test]
fn c14_large_payloads_with_a_raised_limit() {
    let s = TestServer::start(|c| {
        c.max_body_bytes = 2 << 20;
        c.max_queue_bytes = 8 << 20;
    });
    large_payloads_are_delivered_whole_or_refused_cleanly(&s);
}

#[test]
fn c18_channel_names_are_echoed_and_routed_byte_for_byte() {
    let s = TestServer::default_config();
    let names = ["user:123", "org/1/orders", "price#eur", "café"];
    let (mut st, connected) = s.subscribe(&s.token(&names));
    assert_eq!(
        connected.raw,
        "event: connected\ndata: {\"channels\":[\"user:123\",\"org/1/orders\",\"price#eur\",\"café\"]}\n\n"
    );
    for c in names {
        assert_eq!(
            s.publish(c, "e", &json!({ "c": c }).to_string()).delivered,
            1,
            "{c}"
        );
    }
    // Percent-encoded forms are different channels.
    for c in [
        "user%3A123",
        "org%2F1%2Forders",
        "caf%C3%A9",
        "Café",
        "cafe\u{301}",
    ] {
        assert_eq!(
            s.publish(c, "e", &json!({ "c": c }).to_string()).delivered,
            0,
            "{c}"
        );
    }
    for c in names {
        assert_eq!(st.event().json(), json!({ "c": c }));
    }
    st.assert_no_event(Duration::from_millis(300));
}

#[test]
fn c18_one_channel_name_rule_at_both_endpoints() {
    let s = TestServer::default_config();
    let longest = "x".repeat(MAX_CHANNEL_BYTES);
    let too_long = "x".repeat(MAX_CHANNEL_BYTES + 1);
    let valid = [
        "orders",
        "user:user_123",
        "order:abc123",
        "session:9f8e",
        "announcements",
        "org/1/orders",
        "price#eur",
        "café",
        "user%3A123",
        longest.as_str(),
    ];
    let invalid = [
        "",
        "a b",
        "bad\nname",
        "tab\there",
        "cr\rhere",
        "nul\0",
        "bell\u{7}",
        "nbsp\u{a0}x",
        " lead",
        "trail ",
        too_long.as_str(),
    ];
    for c in valid {
        let r = s.post_json(
            "/push/tokens",
            Some(&s.api_key),
            &json!({ "channels": [c] }).to_string(),
        );
        assert_eq!(r.status, 200, "token {c:?}: {}", r.text());
        assert_eq!(s.publish_raw(c, "e", "{}").status, 200, "publish {c:?}");
    }
    for c in invalid {
        let r = s.post_json(
            "/push/tokens",
            Some(&s.api_key),
            &json!({ "channels": [c] }).to_string(),
        );
        r.assert_error(400, "invalid_channel");
        s.publish_raw(c, "e", "{}")
            .assert_error(400, "invalid_channel");
    }
}
