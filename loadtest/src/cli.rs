//! Command line: one subcommand per scenario, sharing the target, stream and safety options.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::target::Kind;

/// Bounds that no flag can lift: every run is finite in count and time.
pub const MAX_STREAMS: u64 = 500_000;
pub const MAX_EVENTS: u64 = 10_000_000;
pub const MAX_DURATION_SECS: f64 = 3_600.0;
pub const MAX_TIMEOUT_SECS: u64 = 7_200;
pub const MAX_PAYLOAD_BYTES: usize = 256 * 1024;

#[derive(Debug, Parser)]
#[command(
    name = "castbrick-load",
    version,
    about = "Load generator for CastBrick Push and nchan: SSE streams, publishing, loss and latency",
    long_about = "Opens N Server-Sent Events streams on a loopback server, publishes timestamped \
events, and reports delivered / lost / duplicated / out-of-order events, publish-to-receive \
latency, and the server's and its own CPU and memory. Streams are sharded over worker \
processes (the per-process open-file cap) and client sockets over source addresses \
127.0.0.2, 127.0.0.3, ... Prints a table and one line `RESULT {json}`; exits 1 on any loss, \
duplicate, misrouted event, failed publish or stream that never connected."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Hold N streams for --duration seconds; report streams established and server RSS/CPU per stream.
    Idle(Idle),
    /// N streams on one channel; publish --events events at --rate per second, or as a burst.
    Broadcast(Broadcast),
    /// N streams each on its own channel; one event per channel from --publishers in parallel.
    Fanout(Fanout),
    /// Streams leave and fresh ones join at --churn-rate per second while events flow.
    Churn(Churn),
    /// --resumers streams drop and come back with Last-Event-ID while events flow; every event
    /// must arrive exactly once.
    Resume(Resume),
    /// Reads RESULT lines from files (compare.sh's output) and prints one side-by-side table.
    CompareTable(CompareTable),
}

#[derive(Debug, Clone, Args)]
pub struct Common {
    /// What is under test.
    #[arg(long, value_enum, default_value = "castbrick")]
    pub target: Kind,
    /// Server root, loopback only [default: http://127.0.0.1:8080, nchan: http://127.0.0.1:8090].
    #[arg(long)]
    pub url: Option<String>,
    /// castbrick API key for POST /push/tokens and /push/publish.
    #[arg(long, env = "CASTBRICK_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Server process ids to read RSS and CPU from (children included: give nginx's master).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Streams to open.
    #[arg(short = 'n', long, default_value_t = 1_000)]
    pub streams: u64,
    /// New connections per second, all workers together.
    #[arg(long, default_value_t = 2_000.0)]
    pub connect_rate: f64,
    /// Connections being opened at once, all workers together.
    #[arg(long, default_value_t = 128)]
    pub connect_concurrency: usize,
    /// Streams per worker process (each process may hold 20,000 open files here).
    #[arg(long, default_value_t = 9_000)]
    pub streams_per_worker: u64,
    /// Client sockets per source address before moving to the next (127.0.0.2, .3, ...).
    #[arg(long, default_value_t = 10_000)]
    pub streams_per_source: u64,
    /// First source address.
    #[arg(long, default_value = "127.0.0.2")]
    pub source_base: Ipv4Addr,
    /// Let the kernel pick the source address (127.0.0.1) instead of spreading.
    #[arg(long)]
    pub no_source_spread: bool,
    /// Size of each event's JSON data in bytes (padded).
    #[arg(long, default_value_t = 100)]
    pub payload_bytes: usize,
    /// Seconds to hold (idle) or to publish for (churn, resume).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds to wait for late events after the last publish before counting them lost.
    #[arg(long, default_value_t = 10)]
    pub drain_timeout: u64,
    /// Seconds one stream may take to connect and be confirmed.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// Hard limit on the whole run in seconds; past it the workers are killed and the run fails.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// No progress bars.
    #[arg(long, short)]
    pub quiet: bool,
    /// A label copied into the RESULT line.
    #[arg(long)]
    pub label: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct Idle {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Clone, Args)]
pub struct Broadcast {
    #[command(flatten)]
    pub common: Common,
    /// Events to publish.
    #[arg(short = 'm', long, default_value_t = 200)]
    pub events: u64,
    /// Events per second; without it the events go out as a burst, back to back.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Parallel publishers (keep-alive connections). Above 1, events may arrive out of order.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct Fanout {
    #[command(flatten)]
    pub common: Common,
    /// Parallel publishers (keep-alive connections).
    #[arg(short = 'p', long, default_value_t = 8)]
    pub publishers: usize,
}

#[derive(Debug, Clone, Args)]
pub struct Churn {
    #[command(flatten)]
    pub common: Common,
    /// Streams leaving (and as many joining) per second, all workers together.
    #[arg(long, default_value_t = 100.0)]
    pub churn_rate: f64,
    /// Events per second on the shared channel while streams churn.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
}

#[derive(Debug, Clone, Args)]
pub struct Resume {
    #[command(flatten)]
    pub common: Common,
    /// Streams that drop and resume (the others stay connected).
    #[arg(short = 'k', long, default_value_t = 100)]
    pub resumers: u64,
    /// Mean seconds between a resumer's drops.
    #[arg(long, default_value_t = 2.0)]
    pub drop_every: f64,
    /// Milliseconds a resumer stays away before reconnecting.
    #[arg(long, default_value_t = 200)]
    pub offline_ms: u64,
    /// Events per second on the shared channel.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
}

#[derive(Debug, Clone, Args)]
pub struct CompareTable {
    /// Files holding RESULT lines (other lines are ignored).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

impl Common {
    /// Checks the bounds every run must stay within.
    pub fn validate(&self) -> Result<(), String> {
        if self.streams == 0 || self.streams > MAX_STREAMS {
            return Err(format!("--streams must be 1..={MAX_STREAMS}"));
        }
        if !(self.duration > 0.0 && self.duration <= MAX_DURATION_SECS) {
            return Err(format!(
                "--duration must be in (0, {MAX_DURATION_SECS}] seconds"
            ));
        }
        if self.timeout == 0 || self.timeout > MAX_TIMEOUT_SECS {
            return Err(format!("--timeout must be 1..={MAX_TIMEOUT_SECS} seconds"));
        }
        if self.payload_bytes > MAX_PAYLOAD_BYTES {
            return Err(format!(
                "--payload-bytes must be at most {MAX_PAYLOAD_BYTES}"
            ));
        }
        if self.connect_rate.is_nan() || self.connect_rate <= 0.0 || self.connect_concurrency == 0 {
            return Err("--connect-rate and --connect-concurrency must be positive".into());
        }
        if self.streams_per_worker == 0 || self.streams_per_worker > 19_000 {
            return Err(
                "--streams-per-worker must be 1..=19000 (20,000 open files per process)".into(),
            );
        }
        if self.streams_per_source == 0 || self.streams_per_source > 28_000 {
            return Err("--streams-per-source must be 1..=28000 (the ephemeral port range)".into());
        }
        if !self.no_source_spread && !self.source_base.is_loopback() {
            return Err("--source-base must be in 127.0.0.0/8".into());
        }
        let last =
            crate::proto::source_addr(self.source_base, self.streams_per_source, self.streams - 1);
        if !self.no_source_spread && !last.is_loopback() {
            return Err(format!(
                "streams would need source address {last}, outside 127.0.0.0/8"
            ));
        }
        crate::target::Target::parse(self.target, &self.url()).map_err(|e| e.to_string())?;
        if self.target == Kind::Castbrick && self.api_key.as_deref().unwrap_or("").is_empty() {
            return Err("castbrick needs an API key: --api-key or CASTBRICK_API_KEY".into());
        }
        Ok(())
    }

    pub fn url(&self) -> String {
        self.url
            .clone()
            .unwrap_or_else(|| self.target.default_url().to_owned())
    }
}

pub fn check_events(events: u64) -> Result<(), String> {
    if events == 0 || events > MAX_EVENTS {
        return Err(format!("--events must be 1..={MAX_EVENTS}"));
    }
    Ok(())
}

pub fn check_rate(rate: f64, name: &str) -> Result<(), String> {
    if !(rate > 0.0 && rate <= 1_000_000.0) {
        return Err(format!("{name} must be in (0, 1000000] per second"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bounds_are_enforced() {
        let cli = Cli::try_parse_from([
            "castbrick-load",
            "idle",
            "--target",
            "nchan",
            "-n",
            "10",
            "--duration",
            "1",
        ])
        .unwrap();
        let Command::Idle(idle) = cli.command else {
            panic!("idle")
        };
        assert!(idle.common.validate().is_ok());
        let mut c = idle.common.clone();
        c.streams = MAX_STREAMS + 1;
        assert!(c.validate().is_err());
        let mut c = idle.common.clone();
        c.target = Kind::Castbrick;
        c.api_key = None;
        assert!(c.validate().is_err());
        let mut c = idle.common.clone();
        c.source_base = Ipv4Addr::new(127, 255, 255, 250);
        c.streams = 100;
        c.streams_per_source = 10;
        assert!(
            c.validate().is_err(),
            "ten source addresses run past 127.255.255.255"
        );
    }
}
