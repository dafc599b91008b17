//! Counters the server keeps about itself, rendered in Prometheus text format by `http`.
//!
//! Hot-path counters are plain relaxed atomics bumped once per publish or once per shard batch,
//! never once per delivered frame on a shared cache line.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::hub::CloseReason;

#[derive(Default)]
pub struct Metrics {
    pub streams_opened: AtomicU64,
    pub streams_closed: [AtomicU64; 5],
    pub published: AtomicU64,
    pub deliveries: AtomicU64,
    pub bytes_written: AtomicU64,
    pub replay_requests: AtomicU64,
    pub events_replayed: AtomicU64,
    pub replays_incomplete: AtomicU64,
    pub tokens_issued: AtomicU64,
    pub tokens_rejected: AtomicU64,
}

impl Metrics {
    pub fn stream_closed(&self, reason: CloseReason) {
        let i = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.streams_closed[i].fetch_add(1, Ordering::Relaxed);
    }

    pub fn closed(&self, reason: CloseReason) -> u64 {
        let i = CloseReason::ALL
            .iter()
            .position(|r| *r == reason)
            .expect("listed");
        self.streams_closed[i].load(Ordering::Relaxed)
    }

    pub fn open_streams(&self) -> u64 {
        let closed: u64 = self
            .streams_closed
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        self.streams_opened
            .load(Ordering::Relaxed)
            .saturating_sub(closed)
    }
}
