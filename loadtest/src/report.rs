//! The run's result: merged from the workers, printed as a table and as one `RESULT {json}`
//! line, and the side-by-side table compare.sh prints from several such lines.

use std::fmt::Write as _;
use std::path::PathBuf;

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Default, Serialize)]
pub struct Latency {
    pub samples: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    pub fn from_us(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1_000.0;
        Self {
            samples: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1_000.0,
        }
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Server {
    pub pids: Vec<u32>,
    pub processes: u32,
    pub rss_before_bytes: u64,
    pub rss_bytes: u64,
    /// (RSS with the streams open - RSS before) / streams established.
    pub rss_per_stream_bytes: f64,
    /// Server CPU spent while the streams connected, per stream.
    pub connect_cpu_us_per_stream: f64,
    /// Server CPU over the measured phase (idle: the hold; others: first publish to last delivery).
    pub cpu_secs: f64,
    pub cpu_cores: f64,
    pub cpu_us_per_delivery: Option<f64>,
    pub cpu_secs_per_million_deliveries: Option<f64>,
    /// Idle: server CPU per stream per second of holding (heartbeats and timers).
    pub idle_cpu_us_per_stream_sec: Option<f64>,
}

#[derive(Debug, Default, Serialize)]
pub struct Generator {
    pub workers: usize,
    /// Generator CPU (coordinator and workers) over the same phase as the server's.
    pub cpu_secs: f64,
    pub cpu_cores: f64,
    pub worker_max_rss_kb: u64,
    /// Logical CPUs on this machine, server and generator together.
    pub machine_cpus: usize,
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub label: Option<String>,
    pub scenario: String,
    pub target: String,
    pub url: String,
    pub streams_requested: u64,
    pub streams_established: u64,
    pub streams_failed: u64,
    pub payload_bytes: usize,
    pub publishers: usize,
    pub events_published: u64,
    pub publish_errors: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub misrouted: u64,
    pub unparsed: u64,
    pub extra: u64,
    pub lives: u64,
    pub reconnects: u64,
    pub server_closes: u64,
    /// castbrick's publish answers' `delivered` summed: a cross-check of the count above.
    pub delivered_reported_by_server: Option<u64>,
    pub ramp_secs: f64,
    pub publish_secs: f64,
    pub publishes_per_sec: f64,
    /// First publish start to last delivery.
    pub delivery_secs: f64,
    pub deliveries_per_sec: f64,
    pub latency: Latency,
    pub publish_request: Latency,
    pub server: Option<Server>,
    pub generator: Generator,
    /// Which side used more CPU over the measured phase: the likelier limit.
    pub busier: String,
    pub wall_secs: f64,
    pub ok: bool,
    pub failures: Vec<String>,
    pub errors: Vec<String>,
    pub lost_sample: Vec<(u64, u64)>,
}

impl Report {
    /// Fills `ok` and `failures` from the counts.
    pub fn judge(&mut self) {
        let mut f = Vec::new();
        if self.streams_failed > 0 || self.streams_established < self.streams_requested {
            f.push(format!(
                "{} of {} streams never connected (or their worker exited)",
                self.streams_requested - self.streams_established.min(self.streams_requested),
                self.streams_requested
            ));
        }
        if self.lost > 0 {
            f.push(format!("{} events lost", self.lost));
        }
        if self.duplicated > 0 {
            f.push(format!("{} events duplicated", self.duplicated));
        }
        if self.misrouted > 0 {
            f.push(format!("{} events on the wrong stream", self.misrouted));
        }
        if self.unparsed > 0 {
            f.push(format!(
                "{} events without the generator's data",
                self.unparsed
            ));
        }
        if self.publish_errors > 0 {
            f.push(format!("{} publishes failed", self.publish_errors));
        }
        self.ok = f.is_empty();
        self.failures = f;
    }

    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "  {k:<34} {v}");
        };
        row(
            "scenario / target",
            format!("{} / {} ({})", self.scenario, self.target, self.url),
        );
        row(
            "streams established",
            format!(
                "{} of {} ({} failed) in {:.1} s",
                self.streams_established,
                self.streams_requested,
                self.streams_failed,
                self.ramp_secs
            ),
        );
        if self.scenario != "idle" {
            row(
                "events published",
                format!(
                    "{} ({} failed) by {} publisher(s), {} B data, in {:.3} s = {:.0}/s",
                    self.events_published,
                    self.publish_errors,
                    self.publishers,
                    self.payload_bytes,
                    self.publish_secs,
                    self.publishes_per_sec
                ),
            );
            row(
                "delivered / expected",
                format!("{} / {}", self.delivered, self.expected),
            );
            row(
                "lost / duplicated / out of order",
                format!(
                    "{} / {} / {}",
                    self.lost, self.duplicated, self.out_of_order
                ),
            );
            if self.misrouted + self.unparsed + self.extra > 0 {
                row(
                    "misrouted / unparsed / outside window",
                    format!("{} / {} / {}", self.misrouted, self.unparsed, self.extra),
                );
            }
            row(
                "deliveries/s",
                format!(
                    "{:.0} over {:.3} s",
                    self.deliveries_per_sec, self.delivery_secs
                ),
            );
            let l = &self.latency;
            row(
                "latency p50 / p99 / p99.9 / max",
                format!(
                    "{:.2} / {:.2} / {:.2} / {:.2} ms ({} samples)",
                    l.p50_ms, l.p99_ms, l.p999_ms, l.max_ms, l.samples
                ),
            );
            let p = &self.publish_request;
            row(
                "publish request p50 / p99 / max",
                format!("{:.2} / {:.2} / {:.2} ms", p.p50_ms, p.p99_ms, p.max_ms),
            );
        }
        if self.lives > self.streams_established || self.reconnects > 0 || self.server_closes > 0 {
            row(
                "lives / resumes / server closes",
                format!(
                    "{} / {} / {}",
                    self.lives, self.reconnects, self.server_closes
                ),
            );
        }
        if let Some(s) = &self.server {
            row(
                "server RSS",
                format!(
                    "{:.1} MiB -> {:.1} MiB = {:.0} B per stream ({} processes)",
                    s.rss_before_bytes as f64 / 1048576.0,
                    s.rss_bytes as f64 / 1048576.0,
                    s.rss_per_stream_bytes,
                    s.processes
                ),
            );
            row(
                "server CPU to connect",
                format!("{:.1} us per stream", s.connect_cpu_us_per_stream),
            );
            let per = match (s.cpu_us_per_delivery, s.cpu_secs_per_million_deliveries) {
                (Some(us), Some(m)) => format!(", {us:.2} us per delivery = {m:.2} s per million"),
                _ => String::new(),
            };
            row(
                "server CPU (measured phase)",
                format!("{:.3} s = {:.2} cores{per}", s.cpu_secs, s.cpu_cores),
            );
            if let Some(idle) = s.idle_cpu_us_per_stream_sec {
                row(
                    "server CPU idle",
                    format!("{idle:.2} us per stream per second"),
                );
            }
        }
        let g = &self.generator;
        row(
            "generator CPU (measured phase)",
            format!(
                "{:.3} s = {:.2} cores, {} worker(s), {} CPUs on the box; busier: {}",
                g.cpu_secs, g.cpu_cores, g.workers, g.machine_cpus, self.busier
            ),
        );
        if !self.errors.is_empty() {
            row("first errors", self.errors.join(" | "));
        }
        if !self.lost_sample.is_empty() {
            row(
                "lost (channel, seq) sample",
                format!("{:?}", &self.lost_sample[..self.lost_sample.len().min(5)]),
            );
        }
        row(
            "verdict",
            if self.ok {
                "OK".to_owned()
            } else {
                format!("FAIL: {}", self.failures.join("; "))
            },
        );
        t
    }
}

/// One row of the side-by-side table: a JSON pointer into the RESULT, and whether more is better.
struct Metric {
    name: &'static str,
    pointer: &'static str,
    higher_is_better: bool,
    scenarios: &'static [&'static str],
}

const METRICS: &[Metric] = &[
    Metric {
        name: "streams established",
        pointer: "/streams_established",
        higher_is_better: true,
        scenarios: &["idle", "broadcast", "fanout"],
    },
    Metric {
        name: "server RSS per stream (B)",
        pointer: "/server/rss_per_stream_bytes",
        higher_is_better: false,
        scenarios: &["idle"],
    },
    Metric {
        name: "server CPU per connect (us)",
        pointer: "/server/connect_cpu_us_per_stream",
        higher_is_better: false,
        scenarios: &["idle"],
    },
    Metric {
        name: "server idle CPU (us/stream/s)",
        pointer: "/server/idle_cpu_us_per_stream_sec",
        higher_is_better: false,
        scenarios: &["idle"],
    },
    Metric {
        name: "lost + duplicated",
        pointer: "/failures_count",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "publishes/s",
        pointer: "/publishes_per_sec",
        higher_is_better: true,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "deliveries/s",
        pointer: "/deliveries_per_sec",
        higher_is_better: true,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "latency p50 (ms)",
        pointer: "/latency/p50_ms",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "latency p99 (ms)",
        pointer: "/latency/p99_ms",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "latency p99.9 (ms)",
        pointer: "/latency/p999_ms",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "latency max (ms)",
        pointer: "/latency/max_ms",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "server CPU per delivery (us)",
        pointer: "/server/cpu_us_per_delivery",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "server CPU (cores)",
        pointer: "/server/cpu_cores",
        higher_is_better: false,
        scenarios: &["broadcast", "fanout"],
    },
    Metric {
        name: "generator CPU (cores)",
        pointer: "/generator/cpu_cores",
        higher_is_better: false,
        scenarios: &["idle", "broadcast", "fanout"],
    },
];

/// Reads RESULT lines and prints, per scenario, castbrick beside nchan with the ratio. When a
/// file holds several runs of the same scenario and target, the last one counts.
pub fn compare_table(files: &[PathBuf]) -> Result<String, String> {
    let mut results: Vec<Value> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f).map_err(|e| format!("{}: {e}", f.display()))?;
        for line in text.lines() {
            if let Some(json) = line.strip_prefix("RESULT ") {
                let mut v: Value =
                    serde_json::from_str(json).map_err(|e| format!("{}: {e}", f.display()))?;
                let bad = v["lost"].as_u64().unwrap_or(0) + v["duplicated"].as_u64().unwrap_or(0);
                v["failures_count"] = Value::from(bad);
                results.push(v);
            }
        }
    }
    if results.is_empty() {
        return Err("no RESULT lines in the given files".into());
    }
    // A run is named by its label (compare.sh labels each step) or else its scenario.
    let key = |v: &Value| {
        v["label"]
            .as_str()
            .or(v["scenario"].as_str())
            .unwrap_or("?")
            .to_owned()
    };
    let mut keys: Vec<String> = Vec::new();
    for v in &results {
        let k = key(v);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let find = |k: &str, target: &str| {
        results
            .iter()
            .rev()
            .find(|v| key(v) == k && v["target"] == target)
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<34} {:>14} {:>14}  castbrick vs nchan",
        "run / metric", "castbrick", "nchan"
    );
    for k in &keys {
        let (Some(a), Some(b)) = (find(k, "castbrick"), find(k, "nchan")) else {
            continue;
        };
        let scenario = a["scenario"].as_str().unwrap_or("?");
        let shape = format!(
            "{} streams{}",
            a["streams_requested"],
            if scenario == "idle" {
                String::new()
            } else {
                format!(", {} events published", a["events_published"])
            }
        );
        let _ = writeln!(out, "{k} ({scenario}, {shape})");
        for m in METRICS.iter().filter(|m| m.scenarios.contains(&scenario)) {
            let va = a.pointer(m.pointer).and_then(Value::as_f64);
            let vb = b.pointer(m.pointer).and_then(Value::as_f64);
            let ratio = match (va, vb) {
                _ if m.name.starts_with("generator") => "(the same generator)".to_owned(),
                (Some(x), Some(y)) if x == y => "same".to_owned(),
                (Some(x), Some(y)) if x > 0.0 && y > 0.0 => {
                    let better = if m.higher_is_better { x / y } else { y / x };
                    if better >= 1.0 {
                        format!("{better:.2}x better")
                    } else {
                        format!("{:.2}x worse", 1.0 / better)
                    }
                }
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "  {:<32} {:>14} {:>14}  {}",
                m.name,
                fmt_num(va),
                fmt_num(vb),
                ratio
            );
        }
        let verdict = |v: &Value| if v["ok"] == true { "OK" } else { "FAIL" };
        let _ = writeln!(
            out,
            "  {:<32} {:>14} {:>14}",
            "verdict",
            verdict(a),
            verdict(b)
        );
    }
    Ok(out)
}

fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".to_owned(),
        Some(x) if x.abs() >= 100.0 => format!("{x:.0}"),
        Some(x) => format!("{x:.2}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_fails_on_loss_and_duplicates_only_when_present() {
        let mut r = Report {
            streams_requested: 10,
            streams_established: 10,
            ..Default::default()
        };
        r.judge();
        assert!(r.ok);
        r.duplicated = 1;
        r.judge();
        assert!(!r.ok);
        assert_eq!(r.failures, vec!["1 events duplicated".to_owned()]);
    }

    #[test]
    fn compare_table_puts_targets_side_by_side() {
        let dir = std::env::temp_dir().join(format!("cbload-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("results.txt");
        let line = |target: &str, dps: f64, rss: f64| {
            format!(
                "RESULT {{\"scenario\":\"broadcast\",\"target\":\"{target}\",\"streams_requested\":100,\
\"events_published\":5,\"deliveries_per_sec\":{dps},\"ok\":true,\"lost\":0,\"duplicated\":0,\
\"server\":{{\"rss_per_stream_bytes\":{rss}}}}}"
            )
        };
        std::fs::write(
            &f,
            format!(
                "noise\n{}\n{}\n",
                line("castbrick", 200.0, 1.0),
                line("nchan", 100.0, 2.0)
            ),
        )
        .unwrap();
        let t = compare_table(&[f]).unwrap();
        assert!(t.contains("deliveries/s"), "{t}");
        assert!(t.contains("2.00x better"), "{t}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
