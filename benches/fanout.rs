//! Fan-out of one event to 1, 100, 10k and 100k in-process subscribers through the real hub.
//!
//! Each subscriber is drained by its own tokio task, the way a stream's writer drains it in the
//! server (`Subscriber::poll_take` woken by the subscriber's waker), and the clock stops only
//! when every consumer has taken the event — not when `publish` returns, which already waits
//! for the shards to queue it. A measured iteration is therefore: encode + id + ring append
//! (`Hub::publish`), a push into every subscriber queue on the shard tasks, one wake-up and
//! `poll_take` per subscriber, and dropping the taken `Bytes` handle. The only extra work over
//! the server is one shared atomic decrement per delivery to detect the end.
//!
//! Baseline: `tokio::sync::broadcast` with one receiver task per subscriber and the same framing
//! per event — what a server built on broadcast would do (one shared ring, no per-stream queue
//! limit, laggards skip events instead of being disconnected).
//!
//! Runs on a multi-thread runtime with one worker per core and the hub's default shard count
//! (one per core); the publishing future runs on the bench thread via `block_on`.

use std::future::poll_fn;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use castbrick_push::hub::subscriber::Subscriber;
use castbrick_push::hub::{Hub, Resume, SubscribeRequest};
use castbrick_push::id::{unix_ms, IdGenerator};
use castbrick_push::metrics::Metrics;
use castbrick_push::sse::frame::{event_frame, fill_id};
use castbrick_push::Config;
use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use tokio::runtime::Runtime;
use tokio::sync::{broadcast, Notify};

/// The server's allocator (`main.rs`), so allocation costs match production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SIZES: [usize; 4] = [1, 100, 10_000, 100_000];
const CHANNEL: &str = "bench";
const EVENT: &str = "tick";
const DATA: &[u8] =
    br#"{"order":"ord_8f3a2c91","status":"paid","amount":19.90,"currency":"EUR","items":3}"#;

/// Counts deliveries still outstanding for the event in flight; the consumer that takes the
/// last one wakes the publisher.
struct Drained {
    remaining: AtomicUsize,
    done: Notify,
}

impl Drained {
    fn new() -> Arc<Drained> {
        Arc::new(Drained {
            remaining: AtomicUsize::new(0),
            done: Notify::new(),
        })
    }

    fn took(&self, n: usize) {
        if n > 0 && self.remaining.fetch_sub(n, Ordering::AcqRel) == n {
            // `notify_one` stores a permit if the publisher is not waiting yet.
            self.done.notify_one();
        }
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn consume(sub: Arc<Subscriber>, drained: Arc<Drained>) {
    let mut batch = Vec::with_capacity(64);
    while poll_fn(|cx| sub.poll_take(cx, &mut batch, 64)).await {
        // Count event frames only, should a heartbeat ever slip in.
        let events = batch.drain(..).filter(|f| f.starts_with(b"id: ")).count();
        drained.took(events);
    }
}

fn hub_with(n: usize, drained: &Arc<Drained>) -> Hub {
    let config = Config {
        // No heartbeats during a run: every queued frame is an event.
        heartbeat_interval_secs: 24 * 3600,
        ..Config::default()
    };
    let hub = Hub::new(&config, Arc::new(Metrics::default()));
    for _ in 0..n {
        let s = hub.subscribe(SubscribeRequest {
            channels: vec![CHANNEL.to_string()],
            user_id: None,
            expires_at_secs: u64::MAX,
            resume: Resume::Fresh,
            remote: None,
        });
        tokio::spawn(consume(s.subscriber, drained.clone()));
    }
    hub
}

async fn publish_and_drain(hub: &Hub, drained: &Drained, n: usize, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        drained.remaining.store(n, Ordering::Release);
        let p = hub.publish(CHANNEL, EVENT, DATA).await;
        debug_assert_eq!(p.delivered as usize, n);
        drained.done.notified().await;
    }
    start.elapsed()
}

async fn broadcast_and_drain(
    tx: &broadcast::Sender<Bytes>,
    drained: &Drained,
    n: usize,
    iters: u64,
) -> Duration {
    let mut ids = IdGenerator::new(iters);
    let start = Instant::now();
    for _ in 0..iters {
        drained.remaining.store(n, Ordering::Release);
        let mut f = event_frame(EVENT, DATA);
        fill_id(&mut f, ids.next(unix_ms()));
        let sent = tx.send(f.freeze()).expect("receivers");
        debug_assert_eq!(sent, n);
        drained.done.notified().await;
    }
    start.elapsed()
}

fn fanout(c: &mut Criterion) {
    let mut g = c.benchmark_group("fanout");
    g.sample_size(10);
    g.sampling_mode(SamplingMode::Flat);
    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));

        let rt = runtime();
        let drained = Drained::new();
        let hub = rt.block_on(async { hub_with(n, &drained) });
        // First publish registers every stream on its shard; check all of them get it.
        rt.block_on(async {
            drained.remaining.store(n, Ordering::Release);
            assert_eq!(
                hub.publish(CHANNEL, EVENT, DATA).await.delivered as usize,
                n
            );
            drained.done.notified().await;
        });
        g.bench_with_input(BenchmarkId::new("hub", n), &n, |b, &n| {
            b.to_async(&rt)
                .iter_custom(|iters| publish_and_drain(&hub, &drained, n, iters))
        });
        hub.shutdown();
        drop(hub);
        drop(rt);

        let rt = runtime();
        let drained = Drained::new();
        let (tx, _) = broadcast::channel::<Bytes>(16);
        rt.block_on(async {
            for _ in 0..n {
                let mut rx = tx.subscribe();
                let drained = drained.clone();
                tokio::spawn(async move {
                    loop {
                        match rx.recv().await {
                            Ok(_) => drained.took(1),
                            Err(broadcast::error::RecvError::Lagged(_)) => {
                                panic!("one event in flight at a time cannot lag")
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
            }
        });
        g.bench_with_input(BenchmarkId::new("baseline_broadcast", n), &n, |b, &n| {
            b.to_async(&rt)
                .iter_custom(|iters| broadcast_and_drain(&tx, &drained, n, iters))
        });
        drop(tx);
        drop(rt);
    }
    g.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
