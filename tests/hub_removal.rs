//! Regression: closing streams in any order keeps every shard's per-channel lists exact.
//!
//! Removal used to scan a channel's whole subscriber list (O(n) per close, O(n²) to empty a big
//! channel); it now swaps the last entry into the freed place and tells that stream its new
//! position. These checks make sure the bookkeeping never loses or double-counts a stream,
//! including streams on several channels. Checked at the hub, through its public API.

use std::sync::Arc;
use std::time::Duration;

use castbrick_push::hub::{CloseReason, Hub, Resume, SubscribeRequest, Subscription};
use castbrick_push::metrics::Metrics;
use castbrick_push::Config;

fn subscribe(hub: &Hub, channels: &[&str]) -> Subscription {
    hub.subscribe(SubscribeRequest {
        channels: channels.iter().map(|c| c.to_string()).collect(),
        user_id: None,
        expires_at_secs: u64::MAX / 2,
        resume: Resume::Fresh,
        remote: None,
    })
}

/// Publishes until `delivered` equals `want` (closes are processed asynchronously by the
/// shards), failing after a generous deadline.
async fn expect_delivered(hub: &Hub, channel: &str, want: u32) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = hub.publish(channel, "e", b"1").await.delivered;
        if got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{channel}: delivered {got}, want {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_streams_in_any_order_keeps_channel_lists_exact() {
    let config = Config {
        shards: 2,
        max_queue_bytes: 64 << 20,
        ..Config::default()
    };
    let hub = Hub::new(&config, Arc::new(Metrics::default()));
    let mut subs: Vec<Subscription> = (0..300)
        .map(|i| {
            if i % 3 == 0 {
                subscribe(&hub, &["a", "b"])
            } else {
                subscribe(&hub, &["a"])
            }
        })
        .collect();
    expect_delivered(&hub, "a", 300).await;
    expect_delivered(&hub, "b", 100).await;

    // Close from the middle, the front and the back, on both shards.
    let mut closed_b = 0;
    for idx in [150usize, 0, 299, 151, 1, 298, 75, 76, 77, 200] {
        if idx % 3 == 0 {
            closed_b += 1;
        }
        hub.unsubscribe(&subs[idx].subscriber, CloseReason::ClientGone);
    }
    expect_delivered(&hub, "a", 290).await;
    expect_delivered(&hub, "b", 100 - closed_b).await;

    // Every stream that is still open receives, every closed one does not.
    let open: Vec<usize> = (0..300)
        .filter(|i| ![150, 0, 299, 151, 1, 298, 75, 76, 77, 200].contains(i))
        .collect();
    for s in &subs {
        let mut drained = Vec::new();
        let _ = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(s.subscriber.poll_take(cx, &mut drained, usize::MAX))
        })
        .await;
    }
    hub.publish("a", "e", b"2").await;
    for (i, s) in subs.iter().enumerate() {
        let mut got = Vec::new();
        let ready = std::future::poll_fn(|cx| {
            std::task::Poll::Ready(s.subscriber.poll_take(cx, &mut got, usize::MAX))
        })
        .await;
        let has = matches!(ready, std::task::Poll::Ready(true));
        assert_eq!(has, open.contains(&i), "stream {i}");
    }

    // Empty the channel completely, in reverse order.
    for s in subs.drain(..).rev() {
        hub.unsubscribe(&s.subscriber, CloseReason::ClientGone);
    }
    expect_delivered(&hub, "a", 0).await;
    expect_delivered(&hub, "b", 0).await;
}
