//! Last-Event-ID replay: fresh connections (C01), resume without gap or duplicate (C02), the
//! `lastEventId` query parameter (C05), races with publishes, multi-channel merges, and the
//! `complete` flag that never lets a partial replay pass as whole.

mod common;

use std::time::Duration;

use common::{url_encode, Frame, SseStream, TestServer};
use serde_json::{json, Value};

const LEI: &str = "Last-Event-ID";

fn order(s: &TestServer, n: u64) -> common::Published {
    s.publish("orders", "order.created", &json!({ "n": n }).to_string())
}

/// Opens a stream resuming from `id` through the header.
fn resume(s: &TestServer, token: &str, id: &str) -> (SseStream, Frame) {
    let mut st = s.stream_with(&format!("token={}", url_encode(token)), &[(LEI, id)]);
    assert_eq!(st.status, 200);
    let c = st.frame();
    assert_eq!(c.event.as_deref(), Some("connected"), "{c:?}");
    (st, c)
}

/// Reads `n` events and returns their `n` fields.
fn ns(st: &mut SseStream, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| st.event().json()["n"].as_u64().unwrap())
        .collect()
}

/// C02's setup: a stream sees n=1,2 and goes away; n=3,4,5 are published with nobody
/// listening (`delivered:0`). Returns the token and the ids of n=1..=5 (index 0 is n=1).
fn missed_three(s: &TestServer) -> (String, Vec<String>) {
    let token = s.token(&["orders"]);
    // The first stream also carries a probe channel so the test can tell when the server has
    // seen it go (the spec's guarantee: within 2 s), without publishing to `orders`.
    let (mut a, _) = s.subscribe(&s.token(&["orders", "probe"]));
    let mut ids = Vec::new();
    for n in 1..=2 {
        assert_eq!(order(s, n).delivered, 1);
        let f = a.event();
        assert_eq!(f.json(), json!({ "n": n }));
        ids.push(f.id.expect("live events carry an id"));
    }
    drop(a);
    common::wait_for(
        Duration::from_secs(2),
        "the closed stream to stop counting",
        || (s.publish("probe", "p", "0").delivered == 0).then_some(()),
    );
    for n in 3..=5 {
        let p = order(s, n);
        assert_eq!(p.delivered, 0, "n={n}: nobody is listening");
        ids.push(p.id);
    }
    (token, ids)
}

/// The replay a C02-style resume must produce: `connected` with the report, then n=3,4,5 exactly
/// as they would have been sent live, then the live n=6.
fn assert_replays_three_then_live(
    s: &TestServer,
    st: &mut SseStream,
    connected: &Frame,
    ids: &[String],
) {
    assert_eq!(
        connected.json(),
        json!({"channels": ["orders"], "replayed": 3, "complete": true})
    );
    for (i, n) in (3..=5).enumerate() {
        let f = st.frame();
        assert_eq!(
            f.raw,
            format!(
                "id: {}\nevent: order.created\ndata: {{\"n\":{n}}}\n\n",
                ids[2 + i]
            ),
            "replayed n={n} carries the id and name it was published with"
        );
    }
    assert_eq!(order(s, 6).delivered, 1);
    assert_eq!(ns(st, 1), [6]);
    st.assert_no_event(Duration::from_millis(300));
}

#[test]
fn c01_fresh_connection_does_not_replay_history() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    assert_eq!(order(&s, 1).delivered, 0);
    assert_eq!(order(&s, 2).delivered, 0);
    let mut st = s.stream(&token);
    assert_eq!(st.status, 200);
    assert_eq!(
        st.frame().raw,
        "event: connected\ndata: {\"channels\":[\"orders\"]}\n\n",
        "no resume id: no replayed/complete fields"
    );
    let p = order(&s, 3);
    assert_eq!(p.delivered, 1);
    let f = st.event();
    assert_eq!(f.event.as_deref(), Some("order.created"));
    assert_eq!(f.json(), json!({"n": 3}), "n=1 and n=2 are never sent");
    assert_eq!(f.id.as_deref(), Some(p.id.as_str()));
    st.assert_no_event(Duration::from_millis(300));
}

#[test]
fn c02_resume_with_last_event_id_replays_the_missed_events_once_then_live() {
    let s = TestServer::default_config();
    let (token, ids) = missed_three(&s);
    let (mut st, connected) = resume(&s, &token, &ids[1]);
    assert_replays_three_then_live(&s, &mut st, &connected, &ids);
}

#[test]
fn c02_resume_from_the_newest_id_replays_nothing() {
    let s = TestServer::default_config();
    let (token, ids) = missed_three(&s);
    let (mut st, connected) = resume(&s, &token, &ids[4]);
    assert_eq!(
        connected.json(),
        json!({"channels": ["orders"], "replayed": 0, "complete": true})
    );
    st.assert_no_event(Duration::from_millis(300));
    assert_eq!(order(&s, 6).delivered, 1);
    assert_eq!(ns(&mut st, 1), [6]);
}

#[test]
fn c05_last_event_id_query_parameter_replays_like_the_header() {
    let s = TestServer::default_config();
    let (token, ids) = missed_three(&s);
    // Plain, and with every character percent-encoded (as `jq @uri` or a polyfill may send it).
    let fully_encoded: String = ids[1].bytes().map(|b| format!("%{b:02X}")).collect();
    for value in [ids[1].clone(), fully_encoded] {
        let mut st = s.stream_with(
            &format!("token={}&lastEventId={value}", url_encode(&token)),
            &[],
        );
        assert_eq!(st.status, 200);
        let c = st.frame();
        assert_eq!(
            c.json(),
            json!({"channels": ["orders"], "replayed": 3, "complete": true})
        );
        assert_eq!(ns(&mut st, 3), [3, 4, 5]);
        st.assert_no_event(Duration::from_millis(200));
    }
}

#[test]
fn c05_repeated_last_event_id_parameter_gets_200_and_uses_the_last_value() {
    let s = TestServer::default_config();
    let (token, ids) = missed_three(&s);
    let q = format!(
        "token={}&lastEventId={}&lastEventId={}",
        url_encode(&token),
        ids[0],
        ids[1]
    );
    let mut st = s.stream_with(&q, &[]);
    assert_eq!(st.status, 200, "a repeated parameter is not an error");
    let c = st.frame();
    assert_replays_three_then_live(&s, &mut st, &c, &ids);
}

#[test]
fn c05_header_wins_over_the_query_parameter() {
    let s = TestServer::default_config();
    let (token, ids) = missed_three(&s);
    let q = format!("token={}&lastEventId={}", url_encode(&token), ids[0]);
    let mut st = s.stream_with(&q, &[(LEI, &ids[1])]);
    assert_eq!(st.status, 200);
    let c = st.frame();
    assert_replays_three_then_live(&s, &mut st, &c, &ids);
}

#[test]
fn resume_racing_publishes_has_no_gap_or_duplicate() {
    const PER_CHANNEL: u64 = 250;
    let s = TestServer::default_config();
    let token = s.token(&["race-a", "race-b"]);
    let (first, _) = s.subscribe(&token);

    let (published, received) = std::thread::scope(|scope| {
        let publishers: Vec<_> = ["race-a", "race-b"]
            .into_iter()
            .map(|ch| {
                let s = &s;
                scope.spawn(move || {
                    (0..PER_CHANNEL)
                        .map(|n| {
                            let id = s
                                .publish(ch, "tick", &json!({ "ch": ch, "n": n }).to_string())
                                .id;
                            std::thread::sleep(Duration::from_millis(1));
                            id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // Reconnect every few events while the publishers are running, each time resuming
        // from the last id seen.
        let mut received: Vec<Frame> = Vec::new();
        let mut st = first;
        let mut reconnects = 0;
        while received.len() < 2 * PER_CHANNEL as usize {
            let f = st.event();
            received.push(f);
            if reconnects < 12 && received.len() % 17 == 0 {
                drop(st);
                let last = received.last().unwrap().id.clone().unwrap();
                let (next, c) = resume(&s, &token, &last);
                let report = c.json();
                assert_eq!(report["complete"], true, "resume {reconnects}: {report}");
                st = next;
                reconnects += 1;
            }
        }
        st.assert_no_event(Duration::from_millis(300));
        let published: Vec<String> = publishers
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (published, received)
    });

    let got: Vec<u128> = received
        .iter()
        .map(|f| {
            uuid::Uuid::parse_str(f.id.as_deref().unwrap())
                .unwrap()
                .as_u128()
        })
        .collect();
    for w in got.windows(2) {
        assert!(
            w[0] < w[1],
            "duplicate or out-of-order id across a reconnect"
        );
    }
    let mut want: Vec<u128> = published
        .iter()
        .map(|id| uuid::Uuid::parse_str(id).unwrap().as_u128())
        .collect();
    want.sort_unstable();
    assert_eq!(got, want, "every published event arrives exactly once");
}

#[test]
fn multi_channel_resume_merges_channels_in_id_order_byte_identical_to_live() {
    let s = TestServer::default_config();
    let token = s.token(&["a", "b"]);
    let (mut live, _) = s.subscribe(&token);
    let mut frames = Vec::new();
    for (ch, n) in [("a", 1), ("b", 1), ("b", 2), ("a", 2), ("a", 3), ("b", 3)] {
        assert_eq!(
            s.publish(ch, "e", &json!({ "ch": ch, "n": n }).to_string())
                .delivered,
            1
        );
        frames.push(live.event());
    }
    let (mut st, c) = resume(&s, &token, frames[0].id.as_deref().unwrap());
    assert_eq!(
        c.json(),
        json!({"channels": ["a", "b"], "replayed": 5, "complete": true})
    );
    for want in &frames[1..] {
        assert_eq!(
            st.frame().raw,
            want.raw,
            "replay is the live frame, in id order"
        );
    }
    st.assert_no_event(Duration::from_millis(200));
    let (mut none, c) = resume(&s, &token, frames[5].id.as_deref().unwrap());
    assert_eq!(c.json()["replayed"], 0);
    assert_eq!(c.json()["complete"], true);
    none.assert_no_event(Duration::from_millis(200));
}

#[test]
fn resume_from_another_channels_id_replays_this_channels_newer_events() {
    let s = TestServer::default_config();
    let token = s.token(&["a"]);
    order(&s, 0); // some history elsewhere
    let a1 = s.publish("a", "e", r#"{"n":1}"#);
    let x1 = s.publish("x", "e", r#"{"n":"x"}"#);
    let a2 = s.publish("a", "e", r#"{"n":2}"#);
    let a3 = s.publish("a", "e", r#"{"n":3}"#);
    let _ = a1;
    let (mut st, c) = resume(&s, &token, &x1.id);
    assert_eq!(
        c.json(),
        json!({"channels": ["a"], "replayed": 2, "complete": true})
    );
    let f = st.frame();
    assert_eq!(f.id.as_deref(), Some(a2.id.as_str()));
    let f = st.frame();
    assert_eq!(f.id.as_deref(), Some(a3.id.as_str()));
    st.assert_no_event(Duration::from_millis(200));
}

fn report(c: &Frame) -> Value {
    let v = c.json();
    json!({"replayed": v["replayed"], "complete": v["complete"]})
}

#[test]
fn malformed_resume_id_reports_incomplete_and_still_streams_live() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    order(&s, 1);
    for bad in [
        "garbage",
        "123",
        "0190f5b2-7c1e-7a3b-8c4d",
        "not-a-uuid-at-all-not-a-uuid-at-all",
    ] {
        let (mut st, c) = resume(&s, &token, bad);
        assert_eq!(
            c.json(),
            json!({"channels": ["orders"], "replayed": 0, "complete": false}),
            "{bad:?}"
        );
        st.assert_no_event(Duration::from_millis(100));
        assert_eq!(order(&s, 2).delivered, 1);
        assert_eq!(ns(&mut st, 1), [2]);
    }
}

#[test]
fn resume_older_than_the_ring_reports_incomplete_with_what_is_left() {
    let s = TestServer::start(|c| c.replay_capacity = 3);
    let token = s.token(&["orders"]);
    let ids: Vec<String> = (1..=5).map(|n| order(&s, n).id).collect();
    // n=1 and n=2 fell out of the 3-event ring; resuming after n=1 misses n=2.
    let (mut st, c) = resume(&s, &token, &ids[0]);
    assert_eq!(report(&c), json!({"replayed": 3, "complete": false}));
    assert_eq!(ns(&mut st, 3), [3, 4, 5]);
    // Resuming after n=2 misses nothing: complete.
    let (mut st, c) = resume(&s, &token, &ids[1]);
    assert_eq!(report(&c), json!({"replayed": 3, "complete": true}));
    assert_eq!(ns(&mut st, 3), [3, 4, 5]);
}

#[test]
fn resume_after_age_eviction_reports_incomplete() {
    let s = TestServer::start(|c| c.replay_max_age_secs = 1);
    let token = s.token(&["orders"]);
    let first = order(&s, 1).id;
    order(&s, 2);
    let (_, c) = resume(&s, &token, &first);
    assert_eq!(report(&c), json!({"replayed": 1, "complete": true}));
    common::wait_for(
        Duration::from_secs(10),
        "n=2 to age out of the ring",
        || {
            let (_, c) = resume(&s, &token, &first);
            (report(&c) == json!({"replayed": 0, "complete": false})).then_some(())
        },
    );
}

#[test]
fn resume_with_replay_disabled_reports_incomplete() {
    let s = TestServer::start(|c| c.replay_capacity = 0);
    let token = s.token(&["orders"]);
    let (watcher, _) = s.subscribe(&token); // with a subscriber on the channel, too
    let first = order(&s, 1).id;
    let newest = order(&s, 2).id;
    // Regression: this used to claim `complete: true` although n=2 was never replayed.
    let (_, c) = resume(&s, &token, &first);
    assert_eq!(report(&c), json!({"replayed": 0, "complete": false}));
    // Nothing was published after the newest id, so nothing was missed.
    let (_, c) = resume(&s, &token, &newest);
    assert_eq!(report(&c), json!({"replayed": 0, "complete": true}));
    drop(watcher);
}

#[test]
fn resume_with_an_id_from_before_this_server_started_reports_incomplete() {
    // An id issued by an earlier run of a memory-only server cannot be vouched for.
    let earlier = TestServer::default_config();
    let old_id = order(&earlier, 1).id;
    drop(earlier);
    std::thread::sleep(Duration::from_millis(5));
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    order(&s, 2);
    let (mut st, c) = resume(&s, &token, &old_id);
    let v = c.json();
    assert_eq!(v["complete"], false, "{v}");
    let replayed = v["replayed"].as_u64().unwrap() as usize;
    assert_eq!(
        ns(&mut st, replayed),
        vec![2; replayed],
        "whatever is replayed is real"
    );
    // A 2022 UUIDv7, long before this server started.
    let (_, c) = resume(&s, &token, "01800000-0000-7000-8000-000000000000");
    assert_eq!(c.json()["complete"], false);
}
