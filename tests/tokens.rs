//! `POST /push/tokens`: shape, expiry, de-duplication, caps, ttl and userId validation.

mod common;

use common::{jwt_part, unix_now, TestServer};
use serde_json::json;

fn expires_at_secs(v: &serde_json::Value) -> f64 {
    let text = v["expiresAt"].as_str().expect("expiresAt string");
    assert!(text.ends_with('Z'), "expiresAt is UTC: {text}");
    humantime::parse_rfc3339(text)
        .unwrap_or_else(|e| panic!("expiresAt {text:?} is not RFC 3339: {e}"))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
fn token_response_has_the_spec_shape_and_an_hs256_jwt() {
    let s = TestServer::default_config();
    let before = unix_now();
    let v = s.token_response(
        json!({"channels": ["orders", "notifications"], "userId": "user_123", "ttlSeconds": 600}),
    );
    let obj = v.as_object().unwrap();
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["channels", "expiresAt", "token"]);
    assert_eq!(v["channels"], json!(["orders", "notifications"]));

    let token = v["token"].as_str().unwrap();
    assert_eq!(token.split('.').count(), 3, "compact JWT");
    assert!(token.starts_with("eyJ"), "spec example shape");
    assert_eq!(jwt_part(token, 0)["alg"], "HS256");
    let claims = jwt_part(token, 1);
    assert_eq!(claims["channels"], json!(["orders", "notifications"]));
    assert_eq!(claims["sub"], "user_123");
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 600);
    assert!((iat as f64 - before).abs() <= 2.0, "iat is now");
    assert_eq!(
        expires_at_secs(&v) as u64,
        exp,
        "expiresAt is the token's exp"
    );
}

#[test]
fn expires_at_is_issue_time_plus_ttl_within_one_second() {
    let s = TestServer::default_config();
    for (ttl, body) in [
        (3600.0, json!({"channels": ["orders"]})),
        (5.0, json!({"channels": ["orders"], "ttlSeconds": 5})),
        (
            s.config.max_token_ttl_secs as f64,
            json!({"channels": ["orders"], "ttlSeconds": s.config.max_token_ttl_secs}),
        ),
    ] {
        let now = unix_now();
        let v = s.token_response(body);
        let diff = expires_at_secs(&v) - (now + ttl);
        assert!(diff.abs() <= 1.0, "ttl {ttl}: expiresAt off by {diff} s");
    }
}

#[test]
fn duplicate_channels_collapse_keeping_first_occurrence_order() {
    let s = TestServer::default_config();
    let v = s.token_response(json!({"channels": ["b", "a", "b", "c", "a"]}));
    assert_eq!(v["channels"], json!(["b", "a", "c"]));
    assert_eq!(
        jwt_part(v["token"].as_str().unwrap(), 1)["channels"],
        json!(["b", "a", "c"])
    );
    let (_, connected) = s.subscribe(v["token"].as_str().unwrap());
    assert_eq!(connected.json(), json!({"channels": ["b", "a", "c"]}));
}

#[test]
fn token_signed_elsewhere_with_duplicate_channels_gets_each_event_once() {
    // Regression: such a stream was counted and sent every event once per listing.
    let s = TestServer::default_config();
    let now = common::unix_now() as u64;
    let token = s.mint_token(
        &json!({"channels": ["a", "b", "a"], "iat": now, "exp": now + 600}).to_string(),
    );
    let (mut st, connected) = s.subscribe(&token);
    assert_eq!(connected.json(), json!({"channels": ["a", "b"]}));
    let p = s.publish("a", "e", "1");
    assert_eq!(p.delivered, 1);
    assert_eq!(st.event().id.as_deref(), Some(p.id.as_str()));
    st.assert_no_event(std::time::Duration::from_millis(300));
}

#[test]
fn ttl_zero_negative_non_integer_and_too_large_are_refused() {
    let s = TestServer::default_config();
    let max = s.config.max_token_ttl_secs;
    for ttl in [
        json!(0),
        json!(-1),
        json!("abc"),
        json!(315_360_000),
        json!(max + 1),
        json!(1.5),
        json!(true),
    ] {
        let r = s.post_json(
            "/push/tokens",
            Some(&s.api_key),
            &json!({"channels": ["orders"], "ttlSeconds": ttl}).to_string(),
        );
        let msg = r.assert_error(400, "invalid_ttl");
        assert!(msg.contains("ttlSeconds"), "{ttl}: {msg}");
        assert!(
            msg.contains(&max.to_string()),
            "names the documented max: {msg}"
        );
    }
    // The bounds themselves are fine.
    for ttl in [1, max] {
        s.token_response(json!({"channels": ["orders"], "ttlSeconds": ttl}));
    }
}

#[test]
fn channel_count_is_capped_at_the_configured_maximum() {
    let s = TestServer::start(|c| c.max_channels_per_token = 8);
    let max = s.config.max_channels_per_token;
    let names: Vec<String> = (0..=max).map(|i| format!("c{i}")).collect();
    let ok = s.token_response(json!({ "channels": &names[..max] }));
    assert_eq!(ok["channels"].as_array().unwrap().len(), max);
    let r = s.post_json(
        "/push/tokens",
        Some(&s.api_key),
        &json!({ "channels": names }).to_string(),
    );
    let msg = r.assert_error(400, "too_many_channels");
    assert!(msg.contains(&max.to_string()), "{msg}");
    // Duplicates do not count against the cap.
    let mut dup: Vec<String> = names[..max].to_vec();
    dup.extend(names[..max].iter().cloned());
    s.token_response(json!({ "channels": dup }));
}

#[test]
fn every_issued_token_opens_a_stream_and_oversized_ones_are_refused() {
    let s = TestServer::default_config();
    let max_channels = s.config.max_channels_per_token;
    let max_bytes = s.config.max_token_bytes;
    // Grow channel names until the token would pass the byte cap: the last accepted token must
    // still work on the stream endpoint, the first refused one gets 400.
    let mut largest = None;
    for len in 1..=castbrick_push::names::MAX_CHANNEL_BYTES {
        let names: Vec<String> = (0..max_channels)
            .map(|i| format!("{i:03}{}", "x".repeat(len)))
            .collect();
        let r = s.post_json(
            "/push/tokens",
            Some(&s.api_key),
            &json!({ "channels": names, "userId": "u" }).to_string(),
        );
        if r.status == 200 {
            let token = r.json()["token"].as_str().unwrap().to_string();
            assert!(token.len() <= max_bytes, "issued token over the cap");
            largest = Some(token);
        } else {
            let msg = r.assert_error(400, "token_too_large");
            assert!(msg.contains(&max_bytes.to_string()), "{msg}");
            break;
        }
    }
    let token = largest.expect("some token fits");
    assert!(token.len() > max_bytes - 300, "reached the cap region");
    let (_, connected) = s.subscribe(&token);
    assert_eq!(
        connected.json()["channels"].as_array().unwrap().len(),
        max_channels
    );
}

#[test]
fn user_id_is_carried_as_sub_and_validated() {
    let s = TestServer::default_config();
    let v = s.token_response(json!({"channels": ["user:user_123"], "userId": "user_123"}));
    assert_eq!(jwt_part(v["token"].as_str().unwrap(), 1)["sub"], "user_123");
    let v = s.token_response(json!({"channels": ["orders"]}));
    assert!(jwt_part(v["token"].as_str().unwrap(), 1)
        .get("sub")
        .is_none());
    for bad in [json!(""), json!(42), json!(["u"]), json!("a\nb")] {
        let r = s.post_json(
            "/push/tokens",
            Some(&s.api_key),
            &json!({"channels": ["orders"], "userId": bad}).to_string(),
        );
        let msg = r.assert_error(400, "invalid_user_id");
        assert!(msg.contains("userId"), "{msg}");
    }
}

#[test]
fn channels_missing_empty_or_mistyped_are_refused() {
    let s = TestServer::default_config();
    for (body, code) in [
        (json!({}), "invalid_channels"),
        (json!({"channels": []}), "invalid_channels"),
        (json!({"channels": "orders"}), "invalid_channels"),
        (json!({"channels": [1]}), "invalid_channels"),
        (json!({"channels": [null]}), "invalid_channels"),
        (json!({"channels": [""]}), "invalid_channel"),
        (json!({"channels": ["a b"]}), "invalid_channel"),
        (json!({"channels": ["ok", "bad\nname"]}), "invalid_channel"),
    ] {
        let r = s.post_json("/push/tokens", Some(&s.api_key), &body.to_string());
        let msg = r.assert_error(400, code);
        assert!(msg.contains("channel"), "{body}: {msg}");
    }
}
