//! Every error status of the API, each with the one JSON error shape
//! `{"error":{"code":"…","message":"…"}}`, and none of them disturbing open streams.

mod common;

use common::TestServer;
use serde_json::json;

#[test]
fn malformed_json_and_non_object_bodies_get_400_invalid_json() {
    let s = TestServer::default_config();
    for path in ["/push/tokens", "/push/publish"] {
        for body in [
            "",
            "{",
            r#"{"channel":"#,
            "nope",
            "[1,2]",
            "\"str\"",
            "null",
            "{} x",
        ] {
            let r = s.post_json(path, Some(&s.api_key), body);
            r.assert_error(400, "invalid_json");
        }
    }
}

#[test]
fn publish_missing_or_mistyped_fields_get_400_naming_the_field() {
    let s = TestServer::default_config();
    for (body, code, field) in [
        (
            json!({"event": "e", "data": {}}),
            "invalid_channel",
            "channel",
        ),
        (
            json!({"channel": "orders", "data": {}}),
            "invalid_event",
            "event",
        ),
        (
            json!({"channel": "orders", "event": "e"}),
            "invalid_data",
            "data",
        ),
        (
            json!({"channel": 5, "event": "e", "data": {}}),
            "invalid_channel",
            "channel",
        ),
        (
            json!({"channel": null, "event": "e", "data": {}}),
            "invalid_channel",
            "channel",
        ),
        (
            json!({"channel": ["orders"], "event": "e", "data": {}}),
            "invalid_channel",
            "channel",
        ),
        (
            json!({"channel": "orders", "event": 1, "data": {}}),
            "invalid_event",
            "event",
        ),
        (
            json!({"channel": "orders", "event": {"a": 1}, "data": {}}),
            "invalid_event",
            "event",
        ),
        (
            json!({"channel": "a b", "event": "e", "data": {}}),
            "invalid_channel",
            "channel",
        ),
        (
            json!({"channel": "", "event": "e", "data": {}}),
            "invalid_channel",
            "channel",
        ),
        (
            json!({"channel": "orders", "event": "connected", "data": {}}),
            "invalid_event",
            "event",
        ),
        (
            json!({"channel": "orders", "event": "expired", "data": {}}),
            "invalid_event",
            "event",
        ),
    ] {
        let r = s.post_json("/push/publish", Some(&s.api_key), &body.to_string());
        let msg = r.assert_error(400, code);
        assert!(msg.contains(field), "{body}: message {msg:?} names {field}");
    }
}

#[test]
fn api_key_endpoints_answer_401_without_a_valid_key() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let wrong = format!("{}x", s.api_key);
    let body = json!({"channels": ["orders"]}).to_string();
    for path in ["/push/tokens", "/push/publish"] {
        for auth in [
            None,
            Some(String::new()),
            Some("Bearer".to_string()),
            Some(format!("Bearer {wrong}")),
            Some(format!("Basic {}", s.api_key)),
            Some(s.api_key.clone()),
            Some(format!("Bearer {token}")), // a client token is not an API key
        ] {
            let mut headers = vec![("Content-Type", "application/json")];
            if let Some(a) = &auth {
                headers.push(("Authorization", a));
            }
            let r = s.request("POST", path, &headers, body.as_bytes());
            r.assert_error(401, "invalid_api_key");
            assert_eq!(
                r.header("www-authenticate"),
                Some("Bearer"),
                "{path} {auth:?}"
            );
        }
        // The key is checked before the body is looked at.
        let r = s.post_json(path, Some(&wrong), "{not json");
        r.assert_error(401, "invalid_api_key");
    }
    // The scheme is case-insensitive.
    let r = s.request(
        "POST",
        "/push/tokens",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", &format!("bearer {}", s.api_key)),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn stream_answers_401_for_a_missing_token_or_an_api_key() {
    let s = TestServer::default_config();
    let key_auth = format!("Bearer {}", s.api_key);
    for (query, headers) in [
        ("".to_string(), vec![]),
        ("token=".to_string(), vec![]),
        (format!("token={}", s.api_key), vec![]),
        ("".to_string(), vec![("Authorization", key_auth.as_str())]),
    ] {
        let st = s.stream_with(&query, &headers);
        assert_eq!(st.status, 401, "{query} {headers:?}");
        let ct = st.header("content-type").unwrap_or("").to_string();
        assert!(ct.starts_with("application/json"), "{ct}");
        let v = st.error_body();
        assert_eq!(v["error"]["code"], "invalid_token", "{v}");
    }
}

#[test]
fn stream_accepts_the_token_in_an_authorization_header() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let auth = format!("Bearer {token}");
    let mut st = s.stream_with("", &[("Authorization", &auth)]);
    assert_eq!(st.status, 200);
    assert_eq!(st.frame().json(), json!({"channels": ["orders"]}));
    assert_eq!(s.publish("orders", "e", "1").delivered, 1);
    assert_eq!(st.event().data.as_deref(), Some("1"));
}

#[test]
fn unknown_paths_get_404_json() {
    let s = TestServer::default_config();
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("POST", "/push"),
        ("POST", "/push/publish/"),
        ("GET", "/push/streams"),
        ("POST", "/PUSH/PUBLISH"),
    ] {
        let r = s.request(method, path, &[], b"");
        r.assert_error(404, "not_found");
    }
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let s = TestServer::default_config();
    for (method, path, allow) in [
        ("GET", "/push/publish", "POST"),
        ("PUT", "/push/publish", "POST"),
        ("GET", "/push/tokens", "POST"),
        ("DELETE", "/push/tokens", "POST"),
        ("POST", "/push/stream", "GET, HEAD, OPTIONS"),
        ("DELETE", "/push/stream", "GET, HEAD, OPTIONS"),
    ] {
        let r = s.request(method, path, &[], b"");
        r.assert_error(405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn bodies_over_max_body_bytes_get_413_naming_the_limit() {
    let s = TestServer::default_config();
    let limit = s.config.max_body_bytes;
    let big = format!(
        r#"{{"channel":"orders","event":"e","data":"{}"}}"#,
        "x".repeat(limit)
    );
    for path in ["/push/publish", "/push/tokens"] {
        // Declared with Content-Length.
        let r = s.post_json(path, Some(&s.api_key), &big);
        let msg = r.assert_error(413, "payload_too_large");
        assert!(msg.contains(&limit.to_string()), "{msg}");
        // Chunked, so the size is only known while reading.
        let mut chunked = format!("{:x}\r\n", big.len()).into_bytes();
        chunked.extend_from_slice(big.as_bytes());
        chunked.extend_from_slice(b"\r\n0\r\n\r\n");
        let auth = format!("Bearer {}", s.api_key);
        let r = s.request(
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &auth),
                ("Transfer-Encoding", "chunked"),
            ],
            &chunked,
        );
        r.assert_error(413, "payload_too_large");
    }
}

#[test]
fn non_json_content_types_get_415() {
    let s = TestServer::default_config();
    let auth = format!("Bearer {}", s.api_key);
    let body = r#"{"channel":"orders","event":"e","data":{}}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        for path in ["/push/publish", "/push/tokens"] {
            let r = s.request(
                "POST",
                path,
                &[("Content-Type", ct), ("Authorization", &auth)],
                body.as_bytes(),
            );
            r.assert_error(415, "unsupported_media_type");
        }
    }
    for ct in ["application/json; charset=utf-8", "Application/JSON"] {
        let r = s.request(
            "POST",
            "/push/publish",
            &[("Content-Type", ct), ("Authorization", &auth)],
            body.as_bytes(),
        );
        assert_eq!(r.status, 200, "{ct}: {}", r.text());
    }
}

#[test]
fn failed_requests_do_not_disturb_open_streams() {
    let s = TestServer::default_config();
    let (mut st, _) = s.subscribe(&s.token(&["orders"]));
    s.post_json("/push/publish", Some(&s.api_key), "{")
        .assert_error(400, "invalid_json");
    s.post_json("/push/publish", None, "{}")
        .assert_error(401, "invalid_api_key");
    s.request("GET", "/push/publish", &[], b"")
        .assert_error(405, "method_not_allowed");
    let big = "x".repeat(s.config.max_body_bytes + 1);
    s.post_json("/push/publish", Some(&s.api_key), &big)
        .assert_error(413, "payload_too_large");
    assert_eq!(s.stream("garbage").status, 401);
    assert_eq!(s.publish("orders", "after", r#"{"ok":true}"#).delivered, 1);
    let f = st.event();
    assert_eq!(f.event.as_deref(), Some("after"));
    assert_eq!(f.data.as_deref(), Some(r#"{"ok":true}"#));
}
