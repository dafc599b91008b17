//! Encode once: a published event is one `Bytes` allocation, and every subscriber queue and the
//! replay ring hold clones of it (STYLE point 4). Checked at the hub, where frames are handed
//! out, through its public API; no HTTP involved.

use std::future::poll_fn;
use std::sync::Arc;

use bytes::Bytes;
use castbrick_push::hub::{Hub, Resume, SubscribeRequest, Subscription};
use castbrick_push::metrics::Metrics;
use castbrick_push::Config;

fn subscribe(hub: &Hub, resume: Resume) -> Subscription {
    hub.subscribe(SubscribeRequest {
        channels: vec!["orders".into()],
        user_id: None,
        expires_at_secs: u64::MAX / 2,
        resume,
        remote: None,
    })
}

/// Waits for the subscriber's queue and takes `n` frames.
async fn take(s: &Subscription, n: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    while out.len() < n {
        let room = n - out.len();
        poll_fn(|cx| s.subscriber.poll_take(cx, &mut out, room)).await;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publish_is_one_allocation_shared_by_subscribers_and_the_ring() {
    let config = Config {
        shards: 2,
        ..Config::default()
    };
    let hub = Hub::new(&config, Arc::new(Metrics::default()));
    // Consecutive streams land on different shards: the frame crosses shard boundaries too.
    let a = subscribe(&hub, Resume::Fresh);
    let b = subscribe(&hub, Resume::Fresh);
    assert_ne!(a.subscriber.shard, b.subscriber.shard);

    let first = hub.publish("orders", "e", br#"{"n":1}"#).await;
    let second = hub.publish("orders", "e", br#"{"n":2}"#).await;
    assert_eq!((first.delivered, second.delivered), (2, 2));

    let fa = take(&a, 2).await;
    let fb = take(&b, 2).await;
    // A resume reads the second event back from the replay ring.
    let c = subscribe(&hub, Resume::After(first.id));
    assert_eq!(c.preamble.len(), 2, "connected + one replayed frame");
    let from_ring = &c.preamble[1];

    for (i, (x, y)) in fa.iter().zip(&fb).enumerate() {
        assert_eq!(x, y);
        assert_eq!(
            x.as_ptr(),
            y.as_ptr(),
            "event {i}: both subscribers share one allocation"
        );
    }
    assert_eq!(fa[1], *from_ring);
    assert_eq!(
        fa[1].as_ptr(),
        from_ring.as_ptr(),
        "the replay ring holds the same allocation"
    );
    assert!(fa[1].starts_with(format!("id: {}\n", second.id).as_bytes()));
    hub.shutdown();
}
