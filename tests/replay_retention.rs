//! Regression: `replay_max_bytes` is one cap for all retained events, not the cap divided by
//! the channel table's parts. Before the fix each of the 64 parts had 1/64 of the cap, so a busy
//! channel kept only ~4 MiB of its history by default (a slow consumer cut at 4 MiB could never
//! resume completely) and its neighbours in the same part lost their events.

use std::sync::Arc;

use castbrick_push::hub::{Hub, Resume, SubscribeRequest};
use castbrick_push::metrics::Metrics;
use castbrick_push::Config;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_busy_channel_may_use_the_whole_cap_without_evicting_quiet_ones() {
    let config = Config {
        replay_max_bytes: 4 << 20,
        replay_capacity: 1000,
        ..Config::default()
    };
    let hub = Hub::new(&config, Arc::new(Metrics::default()));
    for i in 0..200 {
        hub.publish(&format!("quiet{i}"), "e", b"1").await;
    }
    let payload = format!("\"{}\"", "x".repeat(8 << 10));
    let first = hub.publish("loud", "e", payload.as_bytes()).await;
    for _ in 1..100 {
        hub.publish("loud", "e", payload.as_bytes()).await;
    }
    // ~820 KiB of history: far under the 4 MiB cap, far over 4 MiB / 64.
    let resumed = hub.subscribe(SubscribeRequest {
        channels: vec!["loud".into()],
        user_id: None,
        expires_at_secs: u64::MAX / 2,
        resume: Resume::After(first.id),
        remote: None,
    });
    let report = resumed.report.expect("a resume reports");
    assert_eq!((report.replayed, report.complete), (99, true));
    for i in 0..200 {
        let state = hub
            .channel_state(&format!("quiet{i}"))
            .expect("quiet channel kept");
        assert_eq!(state.retained, 1, "quiet{i} lost its event");
    }
    let (_, bytes) = hub.retained();
    assert!(bytes <= 4 << 20, "retained {bytes} bytes over the cap");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cap_still_holds_for_all_channels_together() {
    let config = Config {
        replay_max_bytes: 1 << 20,
        replay_capacity: 1000,
        ..Config::default()
    };
    let hub = Hub::new(&config, Arc::new(Metrics::default()));
    let payload = format!("\"{}\"", "y".repeat(16 << 10));
    for i in 0..300 {
        hub.publish(&format!("c{}", i % 7), "e", payload.as_bytes())
            .await;
    }
    let (events, bytes) = hub.retained();
    assert!(
        bytes <= 1 << 20,
        "retained {bytes} bytes over the 1 MiB cap"
    );
    assert!(
        events >= 40,
        "the cap is used, not starved: {events} events kept"
    );
}
