//! `POST /push/publish`: response shape, UUIDv7 ids, `delivered`, and the order each stream sees.

mod common;

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use common::TestServer;
use serde_json::json;

fn uuid(text: &str) -> uuid::Uuid {
    uuid::Uuid::parse_str(text).unwrap_or_else(|e| panic!("{text:?} is not a UUID: {e}"))
}

#[test]
fn publish_response_has_the_spec_shape() {
    let s = TestServer::default_config();
    let r = s.publish_raw(
        "orders",
        "order.created",
        r#"{"orderId":"abc123","total":4999,"currency":"AOA"}"#,
    );
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json();
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["creditsUsed", "delivered", "messageId"]);
    assert_eq!(v["creditsUsed"], 0);
    assert_eq!(v["delivered"], 0);
    let id = uuid(v["messageId"].as_str().unwrap());
    assert_eq!(id.get_version_num(), 7, "messageId is a UUIDv7");
    assert_eq!(id.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(
        v["messageId"].as_str().unwrap(),
        id.hyphenated().to_string(),
        "canonical lowercase form"
    );
}

#[test]
fn message_ids_strictly_increase_across_channels_and_concurrent_publishers() {
    let s = TestServer::default_config();
    // Sequential: each id is greater than the previous one, whatever the channel.
    let mut last = 0u128;
    for i in 0..60 {
        let p = s.publish(&format!("ch{}", i % 3), "tick", &i.to_string());
        let id = uuid(&p.id).as_u128();
        assert!(id > last, "publish {i}: {} not above the previous id", p.id);
        last = id;
    }
    // Concurrent: all ids distinct, and each publisher's own sequence increases.
    let ids: Vec<Vec<u128>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = &s;
                scope.spawn(move || {
                    (0..40)
                        .map(|i| {
                            uuid(&s.publish(&format!("p{t}"), "e", &i.to_string()).id).as_u128()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all: Vec<u128> = ids.iter().flatten().copied().collect();
    for seq in &ids {
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "per-publisher order");
        assert!(seq[0] > last);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 160, "ids are unique");
}

#[test]
fn delivered_counts_each_stream_once_across_multi_channel_tokens() {
    let s = TestServer::default_config();
    let (mut a, _) = s.subscribe(&s.token(&["a"]));
    let (mut ab, _) = s.subscribe(&s.token(&["a", "b"]));
    let (mut b, _) = s.subscribe(&s.token(&["b"]));
    let (mut c, _) = s.subscribe(&s.token(&["c"]));
    let (mut a2, _) = s.subscribe(&s.token(&["a", "c", "b"]));

    assert_eq!(s.publish("a", "e", r#"{"to":"a"}"#).delivered, 3);
    assert_eq!(s.publish("b", "e", r#"{"to":"b"}"#).delivered, 3);
    assert_eq!(s.publish("c", "e", r#"{"to":"c"}"#).delivered, 2);
    assert_eq!(s.publish("nobody", "e", r#"{"to":"nobody"}"#).delivered, 0);

    let got = |st: &mut common::SseStream, n: usize| -> Vec<String> {
        (0..n)
            .map(|_| st.event().json()["to"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(got(&mut a, 1), ["a"]);
    assert_eq!(got(&mut ab, 2), ["a", "b"]);
    assert_eq!(got(&mut b, 1), ["b"]);
    assert_eq!(got(&mut c, 1), ["c"]);
    assert_eq!(got(&mut a2, 3), ["a", "b", "c"]);
    for st in [&mut a, &mut ab, &mut b, &mut c, &mut a2] {
        st.assert_no_event(Duration::from_millis(200));
    }
}

/// Closes `sock` with an RST instead of a FIN (SO_LINGER with a zero timeout).
fn reset(sock: &std::net::TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt reads `linger` for the given size; the fd is open for the call.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "SO_LINGER");
}

#[test]
fn closed_clients_stop_counting_within_two_seconds_after_fin_or_rst() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let (keep, _) = s.subscribe(&token);
    let (fin, _) = s.subscribe(&token);
    let (rst, _) = s.subscribe(&token);
    assert_eq!(s.publish("orders", "e", "1").delivered, 3);

    let expect_within_two_seconds = |want: u64, what: &str| {
        let start = Instant::now();
        loop {
            let d = s.publish("orders", "e", "0").delivered;
            if d == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(2),
                "{what}: delivered still {d} after 2 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    drop(fin); // FIN
    expect_within_two_seconds(2, "after FIN");
    reset(rst.socket());
    drop(rst); // RST
    expect_within_two_seconds(1, "after RST");
    drop(keep);
}

#[test]
fn each_stream_gets_strictly_increasing_ids_under_concurrent_publishes_to_its_channels() {
    const CHANNELS: usize = 4;
    const PER_CHANNEL: usize = 150;
    let s = TestServer::default_config();
    let names: Vec<String> = (0..CHANNELS).map(|i| format!("race{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let token = s.token(&refs);
    let mut streams: Vec<_> = (0..3).map(|_| s.subscribe(&token).0).collect();

    let (published, received) = std::thread::scope(|scope| {
        let readers: Vec<_> = streams
            .iter_mut()
            .map(|st| {
                scope.spawn(move || {
                    (0..CHANNELS * PER_CHANNEL)
                        .map(|_| st.event())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let publishers: Vec<_> = names
            .iter()
            .map(|ch| {
                let s = &s;
                scope.spawn(move || {
                    (0..PER_CHANNEL)
                        .map(|n| {
                            let p = s.publish(ch, "e", &json!({ "ch": ch, "n": n }).to_string());
                            assert_eq!(p.delivered, 3);
                            p.id
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let published: Vec<Vec<String>> =
            publishers.into_iter().map(|h| h.join().unwrap()).collect();
        let received: Vec<Vec<common::Frame>> =
            readers.into_iter().map(|h| h.join().unwrap()).collect();
        (published, received)
    });

    let mut id_of: HashMap<(String, u64), String> = HashMap::new();
    for (ch, ids) in names.iter().zip(&published) {
        for (n, id) in ids.iter().enumerate() {
            id_of.insert((ch.clone(), n as u64), id.clone());
        }
    }
    for (i, frames) in received.iter().enumerate() {
        let ids: Vec<u128> = frames
            .iter()
            .map(|f| uuid(f.id.as_deref().expect("event has an id")).as_u128())
            .collect();
        for (k, w) in ids.windows(2).enumerate() {
            assert!(
                w[0] < w[1],
                "stream {i}: frame {} has id {:032x} after {:032x}",
                k + 1,
                w[1],
                w[0]
            );
        }
        let mut next = [0u64; CHANNELS];
        for f in frames {
            let v = f.json();
            let ch = v["ch"].as_str().unwrap();
            let n = v["n"].as_u64().unwrap();
            let c = names.iter().position(|x| x == ch).unwrap();
            assert_eq!(n, next[c], "stream {i}: channel {ch} out of order");
            next[c] += 1;
            assert_eq!(
                f.id.as_deref(),
                Some(id_of[&(ch.to_string(), n)].as_str()),
                "the stream id is the publish's messageId"
            );
        }
    }
    for st in &mut streams {
        st.assert_no_event(Duration::from_millis(200));
    }
}
