//! What the coordinator and its worker processes say to each other: one JSON object per line,
//! the spec and control messages on the worker's stdin, progress and the result on its stdout.

use std::net::{Ipv4Addr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::target::Target;

/// Everything a worker needs, sent as the first line of its stdin (so the API key never shows
/// in a process listing).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerSpec {
    pub index: usize,
    pub target: Target,
    pub api_key: Option<String>,
    pub plan: Plan,
    pub channels: Channels,
    /// Global index of this worker's first stream, and how many it opens.
    pub first_stream: u64,
    pub streams: u64,
    /// Client sockets bind to `source_base + global_index / streams_per_source`; `None` binds
    /// nothing (an IPv6 target).
    pub source_base: Option<Ipv4Addr>,
    pub streams_per_source: u64,
    /// Connects per second and connects in flight, for this worker alone.
    pub connect_rate: f64,
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    pub token_ttl_secs: u64,
    /// Unix milliseconds after which the worker exits whatever it is doing.
    pub deadline_unix_ms: u64,
    pub drain_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Plan {
    Idle,
    Broadcast,
    Fanout,
    /// Each stream leaves after an exponentially distributed lifetime (mean
    /// `mean_lifetime_ms`) and a fresh one takes its place.
    Churn {
        mean_lifetime_ms: u64,
    },
    /// The worker's first `resumers` streams drop every `drop_every_ms` on average, stay away
    /// `offline_ms`, and come back with Last-Event-ID.
    Resume {
        resumers: u64,
        drop_every_ms: u64,
        offline_ms: u64,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Channels {
    /// Every stream on one channel.
    Shared { name: String },
    /// Stream `g` on channel `<prefix><g>` (channel index `g`).
    PerStream { prefix: String },
}

impl Channels {
    pub fn for_stream(&self, g: u64) -> (String, u64) {
        match self {
            Channels::Shared { name } => (name.clone(), 0),
            Channels::PerStream { prefix } => (format!("{prefix}{g}"), g),
        }
    }
}

/// One publish as the coordinator saw it: `[seq, start unix ns, ack unix ns, ok 0|1]`.
/// `start` is also the `t` inside the event data.
pub type LogEntry = [u64; 4];

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ToWorker {
    /// Streams are all up: start leaving / dropping on schedule.
    Go,
    /// Publishes acknowledged since the last message (churn: leaving streams wait for these).
    Acks { entries: Vec<LogEntry> },
    /// Publishing is over. `events` per channel; `log` for a shared channel; `failed_channels`
    /// for per-stream channels whose publish failed.
    Published {
        events: u64,
        log: Vec<LogEntry>,
        failed_channels: Vec<u64>,
    },
    /// Report now (idle).
    Finish,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// Streams that connected at least once.
    pub established: u64,
    /// Streams that never managed to connect.
    pub failed: u64,
    /// Connections open right now.
    pub open: u64,
    /// Events received, duplicates included.
    pub received: u64,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum FromWorker {
    Progress(Progress),
    /// Every stream of this worker was tried once.
    Ready(Progress),
    Result(Box<WorkerResult>),
    /// Not sent by workers: the coordinator's note that a worker's stdout closed.
    #[serde(skip)]
    Exited,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct WorkerResult {
    pub progress: Progress,
    /// Stream lifetimes (more than streams under churn).
    pub lives: u64,
    /// Planned Last-Event-ID reconnects (resume).
    pub reconnects: u64,
    /// Streams the server ended (EOF, reset, `expired`), each followed by a resume.
    pub server_closes: u64,
    pub expected: u64,
    /// Distinct expected events that arrived.
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    /// Events on a stream for another channel.
    pub misrouted: u64,
    /// Event data without `t`/`seq`/`c`.
    pub unparsed: u64,
    /// Distinct events outside a stream's window (published while it was connecting or leaving).
    pub extra: u64,
    /// Publish-to-receive latency in microseconds, as (value, count) pairs of an HdrHistogram.
    pub latency_us: Vec<(u64, u64)>,
    pub first_recv_ns: u64,
    pub last_recv_ns: u64,
    /// The worker's CPU time when Go arrived, and at the end.
    pub cpu_at_go_ns: u64,
    pub cpu_ns: u64,
    pub max_rss_kb: u64,
    /// A few (stream, seq) pairs that were lost, to start a diagnosis from.
    pub lost_sample: Vec<(u64, u64)>,
}

/// Source address for global stream index `g`.
pub fn source_addr(base: Ipv4Addr, per_source: u64, g: u64) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add((g / per_source.max(1)) as u32))
}

/// `SocketAddr` with port 0 for binding.
pub fn bind_addr(ip: Ipv4Addr) -> SocketAddr {
    SocketAddr::from((ip, 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_addresses_advance_every_per_source_streams() {
        let base = Ipv4Addr::new(127, 0, 0, 2);
        assert_eq!(source_addr(base, 10_000, 0), base);
        assert_eq!(source_addr(base, 10_000, 9_999), base);
        assert_eq!(
            source_addr(base, 10_000, 10_000),
            Ipv4Addr::new(127, 0, 0, 3)
        );
        assert_eq!(source_addr(base, 100, 25_400), Ipv4Addr::new(127, 0, 1, 0));
    }

    #[test]
    fn messages_are_single_json_lines() {
        let line = serde_json::to_string(&ToWorker::Published {
            events: 3,
            log: vec![[0, 1, 2, 1]],
            failed_channels: vec![],
        })
        .unwrap();
        assert!(!line.contains('\n'));
        assert!(matches!(
            serde_json::from_str::<ToWorker>(&line).unwrap(),
            ToWorker::Published { events: 3, .. }
        ));
    }
}
