//! Replay lookup in a full ring (`replay::Ring::since`), rings of 1000 (the default
//! `replay_capacity`) and 10k events, ~150 B frames.
//!
//! The head is the newest end, where publishes append; the tail is the oldest end.
//! - `near_head`: the client missed the last 10 events — a binary search plus 10 `Bytes` clones.
//! - `near_tail`: the client resumes from the 10th-oldest retained event — the search plus a clone
//!   of nearly the whole ring; this is the copy cost of a long resume.
//! - `at_head`: resume from the newest id — the search alone, nothing to copy.
//!
//! Each iteration also drops the cloned handles, as a stream does once it has written them.
//!
//! Baseline: a front-to-back scan of the same `VecDeque` filtering `id > after`, the obvious
//! implementation without the id-order invariant.

use std::collections::VecDeque;

use bytes::Bytes;
use castbrick_push::id::{EventId, IdGenerator};
use castbrick_push::replay::{Retained, Ring};
use castbrick_push::sse::frame::{event_frame, fill_id};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};

/// The server's allocator (`main.rs`), so allocation costs match production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DATA: &[u8] =
    br#"{"order":"ord_8f3a2c91","status":"paid","amount":19.90,"currency":"EUR","items":3}"#;

/// A ring filled past capacity (so it has evicted, as a live ring has), plus the same retained
/// events in a plain deque for the baseline.
fn full_ring(capacity: usize) -> (Ring, VecDeque<Retained>) {
    let mut ring = Ring::new(capacity, EventId::ZERO);
    let mut plain = VecDeque::with_capacity(capacity);
    let mut ids = IdGenerator::new(0x5eed);
    let t0 = 1_700_000_000_000u64;
    for i in 0..capacity + capacity / 4 {
        let at_ms = t0 + i as u64 / 8;
        let id = ids.next(at_ms);
        let mut f = event_frame("order.updated", DATA);
        fill_id(&mut f, id);
        let ev = Retained {
            id,
            frame: f.freeze(),
            at_ms,
        };
        ring.push(ev.clone());
        if plain.len() == capacity {
            plain.pop_front();
        }
        plain.push_back(ev);
    }
    assert_eq!(ring.len(), capacity);
    (ring, plain)
}

fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay");
    for capacity in [1000usize, 10_000] {
        let (ring, plain) = full_ring(capacity);
        let cases = [
            ("at_head", plain[capacity - 1].id, 0),
            ("near_head", plain[capacity - 11].id, 10),
            ("near_tail", plain[9].id, capacity - 10),
        ];
        for (name, after, expect) in cases {
            let mut out: Vec<(EventId, Bytes)> = Vec::with_capacity(capacity);
            assert!(ring.since(after, &mut out));
            assert_eq!(out.len(), expect, "{name}");
            let label = format!("{name}/{capacity}");
            g.bench_function(BenchmarkId::new("ring_since", &label), |b| {
                b.iter(|| {
                    out.clear();
                    black_box(ring.since(black_box(after), &mut out))
                })
            });
            g.bench_function(BenchmarkId::new("baseline_linear_scan", &label), |b| {
                b.iter(|| {
                    out.clear();
                    let after = black_box(after);
                    out.extend(
                        plain
                            .iter()
                            .filter(|e| e.id > after)
                            .map(|e| (e.id, e.frame.clone())),
                    );
                    black_box(out.len())
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, replay);
criterion_main!(benches);
