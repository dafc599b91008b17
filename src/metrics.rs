//! Counters the server keeps about itself, rendered in Prometheus text format for `/metrics`.
//!
//! Hot-path counters are plain relaxed atomics bumped once per publish, once per shard batch or
//! once per write, never once per delivered frame on a shared cache line. Nothing is registered
//! with `prometheus-client` on the hot path: at scrape time a `Collector` reads the atomics, the
//! per-shard gauges (`hub::shard::ShardStats`) and the retained totals (`Hub::retained`) and hands
//! them to the crate's encoder, so the wire format (names, `_total`, escaping, `le` buckets) is the
//! crate's and the cost between scrapes is ours.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::auth::TokenError;
use crate::hub::{CloseReason, Hub};

/// `Content-Type` of `/metrics` (Prometheus text format 0.0.4).
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Why a stream token was refused, as the `reason` label of `castbrick_tokens_rejected_total`.
pub const TOKEN_REJECT_REASONS: [&str; 7] = [
    "missing",
    "malformed",
    "too_long",
    "unsupported_algorithm",
    "bad_signature",
    "expired",
    "invalid_claims",
];

fn token_reason_index(e: TokenError) -> usize {
    match e {
        TokenError::Missing => 0,
        TokenError::Malformed => 1,
        TokenError::TooLong => 2,
        TokenError::UnsupportedAlgorithm => 3,
        TokenError::BadSignature => 4,
        TokenError::Expired => 5,
        TokenError::InvalidClaims => 6,
    }
}

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
    /// Indexed like `TOKEN_REJECT_REASONS`; bump through `token_rejected`.
    pub tokens_rejected: [AtomicU64; 7],
    /// Requests to an API-key endpoint without a valid key.
    pub api_key_rejected: AtomicU64,
    /// Time `/push/publish` spends in the broker (sequencing plus fan-out to the shards).
    pub publish_latency: LatencyHistogram,
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

    pub fn token_rejected(&self, e: TokenError) {
        self.tokens_rejected[token_reason_index(e)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejected(&self, e: TokenError) -> u64 {
        self.tokens_rejected[token_reason_index(e)].load(Ordering::Relaxed)
    }

    /// Everything, in Prometheus text format.
    pub fn render(&self, hub: &Hub) -> String {
        let mut registry = Registry::with_prefix("castbrick");
        registry.register_collector(Box::new(Scrape::take(self, hub)));
        let mut out = String::with_capacity(4096);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Upper bounds of the publish latency buckets, in microseconds: 50 µs to 2.5 s, roughly
/// 1-2.5-5 per decade. An in-memory publish to a few thousand subscribers takes tens of
/// microseconds; the upper buckets are for a loaded box or a future remote broker.
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000,
];

/// A fixed-bucket histogram of relaxed atomics: an observation is three uncontended adds, no
/// lock (`prometheus_client`'s own histogram takes a mutex per observation).
#[derive(Default)]
pub struct LatencyHistogram {
    /// Non-cumulative counts; the last slot is `+Inf`.
    buckets: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl LatencyHistogram {
    pub fn observe(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        let i = LATENCY_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns
            .fetch_add(d.as_nanos().min(u64::MAX as u128) as u64, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// (sum in seconds, count, [(upper bound in seconds, non-cumulative count)]).
    fn snapshot(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_US
            .iter()
            .zip(self.buckets.iter())
            .map(|(b, c)| (*b as f64 / 1e6, c.load(Ordering::Relaxed)))
            .collect();
        buckets.push((
            f64::INFINITY,
            self.buckets[LATENCY_BUCKETS_US.len()].load(Ordering::Relaxed),
        ));
        // Read separately from the buckets, so `count` is their sum only between observations;
        // Prometheus tolerates that skew, and the `+Inf` bucket is written from the same sum.
        let count = buckets.iter().map(|(_, c)| c).sum();
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, count, buckets)
    }
}

/// One scrape's worth of values, read once so the encoder works on a consistent copy.
#[derive(Debug)]
struct Scrape {
    counters: Vec<(&'static str, &'static str, u64)>,
    closed: Vec<(&'static str, u64)>,
    rejected: Vec<(&'static str, u64)>,
    open: u64,
    shards: Vec<(u64, u64)>,
    retained: (usize, usize),
    latency: (f64, u64, Vec<(f64, u64)>),
}

impl Scrape {
    fn take(m: &Metrics, hub: &Hub) -> Scrape {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Scrape {
            counters: vec![
                ("streams_opened", "Streams opened.", load(&m.streams_opened)),
                (
                    "events_published",
                    "Events accepted by /push/publish.",
                    load(&m.published),
                ),
                (
                    "deliveries",
                    "Events queued to streams (one per stream per event).",
                    load(&m.deliveries),
                ),
                (
                    "stream_bytes_written",
                    "Bytes written to streams, response heads included.",
                    load(&m.bytes_written),
                ),
                (
                    "replay_requests",
                    "Streams opened with a Last-Event-ID.",
                    load(&m.replay_requests),
                ),
                (
                    "events_replayed",
                    "Events written from the replay rings on resume.",
                    load(&m.events_replayed),
                ),
                (
                    "replays_incomplete",
                    "Resumes that could not be served exactly (complete: false).",
                    load(&m.replays_incomplete),
                ),
                (
                    "tokens_issued",
                    "Tokens issued by /push/tokens.",
                    load(&m.tokens_issued),
                ),
                (
                    "api_key_rejected",
                    "Requests refused for a missing or invalid API key.",
                    load(&m.api_key_rejected),
                ),
            ],
            closed: CloseReason::ALL
                .iter()
                .map(|r| (r.as_str(), m.closed(*r)))
                .collect(),
            rejected: TOKEN_REJECT_REASONS
                .iter()
                .zip(m.tokens_rejected.iter())
                .map(|(r, c)| (*r, load(c)))
                .collect(),
            open: m.open_streams(),
            shards: hub
                .shard_stats()
                .iter()
                .map(|s| (load(&s.streams), load(&s.channels)))
                .collect(),
            retained: hub.retained(),
            latency: m.publish_latency.snapshot(),
        }
    }
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        gauge(&mut enc, "streams_open", "Streams open now.", self.open)?;
        for (name, help, v) in &self.counters {
            enc.encode_descriptor(name, help, None, MetricType::Counter)?
                .encode_counter::<NoLabelSet, u64, u64>(v, None)?;
        }
        let mut m = enc.encode_descriptor(
            "streams_closed",
            "Streams closed, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, v) in &self.closed {
            m.encode_family(&[("reason", *reason)])?
                .encode_counter::<NoLabelSet, u64, u64>(v, None)?;
        }
        let mut m = enc.encode_descriptor(
            "tokens_rejected",
            "Stream tokens refused, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, v) in &self.rejected {
            m.encode_family(&[("reason", *reason)])?
                .encode_counter::<NoLabelSet, u64, u64>(v, None)?;
        }
        let (sum, count, buckets) = &self.latency;
        enc.encode_descriptor(
            "publish_duration_seconds",
            "Time /push/publish spends handing an event to the hub, fan-out to the shards included.",
            None,
            MetricType::Histogram,
        )?
        .encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        let mut m = enc.encode_descriptor(
            "shard_streams",
            "Streams owned by each hub shard.",
            None,
            MetricType::Gauge,
        )?;
        for (i, (streams, _)) in self.shards.iter().enumerate() {
            m.encode_family(&[("shard", i.to_string())])?
                .encode_gauge(&(*streams as i64))?;
        }
        let mut m = enc.encode_descriptor(
            "shard_channels",
            "Channels with at least one stream on each hub shard.",
            None,
            MetricType::Gauge,
        )?;
        for (i, (_, channels)) in self.shards.iter().enumerate() {
            m.encode_family(&[("shard", i.to_string())])?
                .encode_gauge(&(*channels as i64))?;
        }
        gauge(
            &mut enc,
            "retained_events",
            "Events held in the replay rings.",
            self.retained.0 as u64,
        )?;
        gauge(
            &mut enc,
            "retained_bytes",
            "Memory charged to the replay rings (frames plus bookkeeping).",
            self.retained.1 as u64,
        )?;
        Ok(())
    }
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&(v as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_buckets_are_upper_bounds_and_inf_catches_the_rest() {
        let h = LatencyHistogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(10));
        let (sum, count, buckets) = h.snapshot();
        assert_eq!(count, 3);
        assert_eq!(buckets[0], (50e-6, 1));
        assert_eq!(buckets[1], (100e-6, 1));
        assert_eq!(buckets.last(), Some(&(f64::INFINITY, 1)));
        assert!((sum - 10.000101).abs() < 1e-9);
    }

    #[test]
    fn token_reasons_cover_every_error() {
        let m = Metrics::default();
        m.token_rejected(TokenError::Expired);
        assert_eq!(m.rejected(TokenError::Expired), 1);
        assert_eq!(
            TOKEN_REJECT_REASONS[token_reason_index(TokenError::InvalidClaims)],
            "invalid_claims"
        );
    }
}
