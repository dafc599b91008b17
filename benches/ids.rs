//! Event id generation (`id::IdGenerator::next`): alone, and shared through a
//! `parking_lot::Mutex` by 1, 2 and 4 threads, which is how the hub's sequencer uses it (the
//! clock is read outside the lock, the id taken inside it), plus the same without the clock read
//! to show the lock's own contention.
//!
//! Baseline: `uuid::Uuid::now_v7()`, also monotonic within a process (uuid keeps its v7 counter
//! in a global `std::sync::Mutex`) and reading the clock and OS randomness itself, called from the
//! same thread counts.
//!
//! Contended variants measure wall time per id for all threads together: every id the system
//! issues counts as one iteration, split evenly across the threads.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use castbrick_push::id::{unix_ms, IdGenerator};
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use parking_lot::Mutex;

/// The server's allocator (`main.rs`), so allocation costs match production.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Runs `op` `iters` times in total across `threads` threads started together; returns the
/// wall time from the common start to the last thread's end.
fn on_threads(threads: usize, iters: u64, op: impl Fn() + Sync) -> Duration {
    let per = iters.div_ceil(threads as u64).max(1);
    let start_line = Barrier::new(threads + 1);
    let mut start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                start_line.wait();
                for _ in 0..per {
                    op();
                }
            });
        }
        start_line.wait();
        start = Instant::now();
    });
    let elapsed = start.elapsed();
    // Scale to exactly `iters` ids when the split rounded up.
    elapsed.mul_f64(iters as f64 / (per * threads as u64) as f64)
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("ids");
    g.bench_function("next_same_ms", |b| {
        let mut ids = IdGenerator::new(0x5eed);
        b.iter(|| ids.next(black_box(1_700_000_000_000)))
    });
    g.bench_function("next_with_clock", |b| {
        let mut ids = IdGenerator::new(0x5eed);
        b.iter(|| ids.next(unix_ms()))
    });
    g.bench_function("baseline_uuid_now_v7", |b| b.iter(uuid::Uuid::now_v7));
    g.finish();
}

fn contended(c: &mut Criterion) {
    let mut g = c.benchmark_group("ids_contended");
    for threads in [1usize, 2, 4] {
        let seq = Mutex::new(IdGenerator::new(0x5eed));
        g.bench_with_input(
            BenchmarkId::new("mutex_next", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    on_threads(t, iters, || {
                        let now = unix_ms();
                        black_box(seq.lock().next(now));
                    })
                })
            },
        );
        // The lock and the generator alone, no clock read between ids: the worst contention.
        g.bench_with_input(
            BenchmarkId::new("mutex_next_same_ms", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    on_threads(t, iters, || {
                        black_box(seq.lock().next(black_box(1_700_000_000_000)));
                    })
                })
            },
        );
        g.bench_with_input(
            BenchmarkId::new("baseline_uuid_now_v7", threads),
            &threads,
            |b, &t| {
                b.iter_custom(|iters| {
                    on_threads(t, iters, || {
                        black_box(uuid::Uuid::now_v7());
                    })
                })
            },
        );
    }
    g.finish();
}

criterion_group!(benches, single, contended);
criterion_main!(benches);
