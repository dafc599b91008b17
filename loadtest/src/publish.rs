//! Publishers: P keep-alive connections publishing timestamped events, each request answered
//! before the next goes out on that connection. Every publish is logged with its start and
//! acknowledgement times, which is what the workers judge each stream's window by.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::http::Client;
use crate::procstat::now_ns;
use crate::proto::{Channels, LogEntry};
use crate::target::{event_data, Target};

pub struct Plan {
    pub target: Target,
    pub api_key: Option<String>,
    pub channels: Channels,
    /// Shared channel: events in all. Per-stream channels: channels, one event each.
    pub total: u64,
    /// Events per second in all; `None` publishes as fast as the answers come back.
    pub rate: Option<f64>,
    pub publishers: usize,
    pub payload_bytes: usize,
    /// Receives every log entry as soon as it is acknowledged (churn needs them live).
    pub live: Option<mpsc::UnboundedSender<LogEntry>>,
    /// Stop starting publishes after this instant (the hard timeout's margin).
    pub stop_at: Instant,
}

#[derive(Debug)]
pub struct Outcome {
    /// Shared channel: one entry per seq, in seq order.
    pub log: Vec<LogEntry>,
    /// Per-stream channels whose publish failed.
    pub failed_channels: Vec<u64>,
    pub attempted: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub first_start_ns: u64,
    pub last_ack_ns: u64,
    /// Request round trip in microseconds.
    pub request_us: Histogram<u64>,
    /// Publish responses' `delivered` fields summed (castbrick only).
    pub delivered_reported: u64,
}

struct Shared {
    next: AtomicU64,
    log: Mutex<Vec<LogEntry>>,
    failed_channels: Mutex<Vec<u64>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    request_us: Mutex<Histogram<u64>>,
    delivered_reported: AtomicU64,
}

pub async fn run(plan: Plan) -> Outcome {
    let plan = Arc::new(plan);
    let shared = Arc::new(Shared {
        next: AtomicU64::new(0),
        log: Mutex::new(Vec::with_capacity(plan.total.min(1 << 20) as usize)),
        failed_channels: Mutex::new(Vec::new()),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        request_us: Mutex::new(Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds")),
        delivered_reported: AtomicU64::new(0),
    });
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..plan.publishers.max(1) {
        tasks.push(tokio::spawn(publisher(plan.clone(), shared.clone(), start)));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut log = std::mem::take(&mut *shared.log.lock().expect("lock"));
    log.sort_unstable_by_key(|e| e[0]);
    let attempted = shared.next.load(Ordering::Relaxed).min(plan.total);
    let first_start_ns = log.iter().map(|e| e[1]).min().unwrap_or(0);
    let last_ack_ns = log.iter().map(|e| e[2]).max().unwrap_or(0);
    let request_us = shared.request_us.lock().expect("lock").clone();
    let failed_channels = std::mem::take(&mut *shared.failed_channels.lock().expect("lock"));
    let first_error = shared.first_error.lock().expect("lock").take();
    Outcome {
        log,
        failed_channels,
        attempted,
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        first_start_ns,
        last_ack_ns,
        request_us,
        delivered_reported: shared.delivered_reported.load(Ordering::Relaxed),
    }
}

async fn publisher(plan: Arc<Plan>, shared: Arc<Shared>, start: Instant) {
    let mut client = Client::new(plan.target.addr, &plan.target.host);
    let per_stream = matches!(plan.channels, Channels::PerStream { .. });
    loop {
        let n = shared.next.fetch_add(1, Ordering::Relaxed);
        if n >= plan.total {
            return;
        }
        if let Some(rate) = plan.rate {
            tokio::time::sleep_until(start + Duration::from_secs_f64(n as f64 / rate)).await;
        }
        if Instant::now() >= plan.stop_at {
            shared.next.store(plan.total, Ordering::Relaxed);
            return;
        }
        let (seq, channel_index) = if per_stream { (0, n) } else { (n, 0) };
        let (channel, _) = plan.channels.for_stream(channel_index);
        let t = now_ns();
        let data = event_data(t, seq, channel_index, plan.payload_bytes);
        let (path, headers, body) =
            plan.target
                .publish_request(&channel, &data, plan.api_key.as_deref());
        let result = client
            .request("POST", &path, &headers, body.as_bytes(), false)
            .await;
        let ack = now_ns();
        let ok = match result {
            Ok(r) if (200..300).contains(&r.status) => {
                if let Some(d) = delivered_field(&r.body) {
                    shared.delivered_reported.fetch_add(d, Ordering::Relaxed);
                }
                true
            }
            Ok(r) => {
                note_error(
                    &shared,
                    format!(
                        "POST {path}: HTTP {}: {}",
                        r.status,
                        String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
                    ),
                );
                false
            }
            Err(e) => {
                note_error(&shared, format!("POST {path}: {e}"));
                false
            }
        };
        let _ = shared
            .request_us
            .lock()
            .expect("lock")
            .record(((ack - t) / 1_000).max(1));
        let entry = [n, t, ack, u64::from(ok)];
        if per_stream {
            if !ok {
                shared.failed_channels.lock().expect("lock").push(n);
            }
            let mut log = shared.log.lock().expect("lock");
            // Per-stream runs only need the time span; keep the extremes, not 100k entries.
            if log.len() < 2 {
                log.push(entry);
            } else {
                if t < log[0][1] {
                    log[0] = entry;
                }
                if ack > log[1][2] {
                    log[1] = entry;
                }
            }
        } else {
            shared.log.lock().expect("lock").push(entry);
        }
        if let Some(live) = &plan.live {
            let _ = live.send(entry);
        }
    }
}

fn note_error(shared: &Shared, msg: String) {
    shared.errors.fetch_add(1, Ordering::Relaxed);
    let mut first = shared.first_error.lock().expect("lock");
    if first.is_none() {
        *first = Some(msg);
    }
}

fn delivered_field(body: &[u8]) -> Option<u64> {
    #[derive(serde::Deserialize)]
    struct Published {
        delivered: u64,
    }
    serde_json::from_slice::<Published>(body)
        .ok()
        .map(|p| p.delivered)
}
