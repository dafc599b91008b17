//! The coordinator: splits the streams over worker processes, ramps them up, runs the scenario's
//! publishing, collects and merges the workers' results, and samples the server's /proc.
//!
//! Phases: spawn -> ramp (every worker says Ready) -> Go -> publish (or hold, for idle) ->
//! Published (or Finish) -> every worker reports its Result. The whole run sits under one hard
//! timeout; workers are spawned with kill-on-drop and also exit on their own deadline or when
//! their stdin closes, so nothing outlives the run.

use std::io::IsTerminal;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

use crate::cli::Common;
use crate::procstat::{self, now_ns, Sample};
use crate::proto::{
    Channels, FromWorker, LogEntry, Plan, Progress, ToWorker, WorkerResult, WorkerSpec,
};
use crate::publish;
use crate::report::{Generator, Latency, Report, Server};
use crate::target::Target;

#[derive(Debug, Clone)]
pub enum Scenario {
    Idle,
    Broadcast {
        events: u64,
        rate: Option<f64>,
        publishers: usize,
    },
    Fanout {
        publishers: usize,
    },
    Churn {
        churn_rate: f64,
        rate: f64,
    },
    Resume {
        resumers: u64,
        drop_every: f64,
        offline_ms: u64,
        rate: f64,
    },
}

impl Scenario {
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Broadcast { .. } => "broadcast",
            Scenario::Fanout { .. } => "fanout",
            Scenario::Churn { .. } => "churn",
            Scenario::Resume { .. } => "resume",
        }
    }
}

struct Workers {
    children: Vec<Child>,
    stdins: Arc<Mutex<Vec<ChildStdin>>>,
    rx: mpsc::UnboundedReceiver<(usize, FromWorker)>,
}

impl Workers {
    async fn send_all(&self, msg: &ToWorker) {
        send_all(&self.stdins, msg).await;
    }
}

async fn send_all(stdins: &Mutex<Vec<ChildStdin>>, msg: &ToWorker) {
    let mut line = serde_json::to_string(msg).expect("serialisable");
    line.push('\n');
    let mut stdins = stdins.lock().await;
    for s in stdins.iter_mut() {
        // A worker that died shows up as a missing result, reported below.
        let _ = s.write_all(line.as_bytes()).await;
        let _ = s.flush().await;
    }
}

/// Runs the scenario under the hard timeout. `Err` is a run that could not be carried out.
pub async fn run(common: Common, scenario: Scenario) -> Result<Report, String> {
    let hard = Duration::from_secs(common.timeout);
    match tokio::time::timeout(hard, coordinate(&common, &scenario)).await {
        Ok(r) => r,
        // Dropping `coordinate` dropped the workers' `Child` handles: kill-on-drop ended them.
        Err(_) => Err(format!(
            "hard timeout: the run did not finish within --timeout {} s; workers were killed",
            common.timeout
        )),
    }
}

fn spawn_workers(specs: &[WorkerSpec]) -> Result<Workers, String> {
    let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut children = Vec::new();
    let mut stdins = Vec::new();
    for spec in specs {
        let mut child = Command::new(&exe)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("spawning worker {}: {e}", spec.index))?;
        let stdout = child.stdout.take().expect("piped");
        let stdin = child.stdin.take().expect("piped");
        let tx = tx.clone();
        let index = spec.index;
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<FromWorker>(&line) {
                    Ok(msg) => {
                        if tx.send((index, msg)).is_err() {
                            return;
                        }
                    }
                    Err(e) => eprintln!("castbrick-load: worker {index} said something odd: {e}"),
                }
            }
            let _ = tx.send((index, FromWorker::Exited));
        });
        children.push(child);
        stdins.push(stdin);
    }
    Ok(Workers {
        children,
        stdins: Arc::new(Mutex::new(stdins)),
        rx,
    })
}

fn bar(quiet: bool, len: u64, template: &str) -> ProgressBar {
    let b = ProgressBar::with_draw_target(
        Some(len),
        if quiet || !std::io::stderr().is_terminal() {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    b.set_style(
        ProgressStyle::with_template(template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    b.enable_steady_tick(Duration::from_millis(200));
    b
}

fn sum_progress(p: &[Progress]) -> Progress {
    let mut t = Progress::default();
    for x in p {
        t.established += x.established;
        t.failed += x.failed;
        t.open += x.open;
        t.received += x.received;
        for e in &x.errors {
            if t.errors.len() < 5 && !t.errors.contains(e) {
                t.errors.push(e.clone());
            }
        }
    }
    t
}

async fn coordinate(common: &Common, scenario: &Scenario) -> Result<Report, String> {
    let wall = Instant::now();
    let target = Target::parse(common.target, &common.url()).map_err(|e| e.to_string())?;
    let run_id = format!("{:x}", now_ns() / 1_000 % 0xFFFF_FFFF);
    let channels = match scenario {
        Scenario::Fanout { .. } => Channels::PerStream {
            prefix: format!("lt-{run_id}-"),
        },
        _ => Channels::Shared {
            name: format!("lt-{run_id}-all"),
        },
    };
    for pid in &common.server_pid {
        if procstat::sample(&[*pid]).processes == 0 {
            return Err(format!("--server-pid {pid}: no such process"));
        }
    }

    // Split the streams evenly; rates, concurrency and resumers in proportion.
    let n = common.streams;
    let workers = n.div_ceil(common.streams_per_worker) as usize;
    let deadline_ms = now_ns() / 1_000_000 + common.timeout * 1_000;
    let mut specs = Vec::with_capacity(workers);
    let mut first = 0;
    for i in 0..workers {
        let share = n / workers as u64 + u64::from((i as u64) < n % workers as u64);
        let frac = share as f64 / n as f64;
        let plan = match scenario {
            Scenario::Idle => Plan::Idle,
            Scenario::Broadcast { .. } => Plan::Broadcast,
            Scenario::Fanout { .. } => Plan::Fanout,
            Scenario::Churn { churn_rate, .. } => Plan::Churn {
                // Each stream leaves at rate churn_rate / n, so its mean lifetime is n / churn_rate.
                mean_lifetime_ms: ((n as f64 / churn_rate) * 1_000.0).max(1.0) as u64,
            },
            Scenario::Resume {
                resumers,
                drop_every,
                offline_ms,
                ..
            } => {
                let before = (*resumers).min(n) * first / n;
                let upto = (*resumers).min(n) * (first + share) / n;
                Plan::Resume {
                    resumers: upto - before,
                    drop_every_ms: (drop_every * 1_000.0).max(1.0) as u64,
                    offline_ms: *offline_ms,
                }
            }
        };
        specs.push(WorkerSpec {
            index: i,
            target: target.clone(),
            api_key: common.api_key.clone(),
            plan,
            channels: channels.clone(),
            first_stream: first,
            streams: share,
            source_base: (!common.no_source_spread && target.addr.is_ipv4())
                .then_some(common.source_base),
            streams_per_source: common.streams_per_source,
            connect_rate: common.connect_rate * frac,
            concurrency: ((common.connect_concurrency as f64 * frac).ceil() as usize).max(1),
            connect_timeout_ms: common.connect_timeout * 1_000,
            token_ttl_secs: (common.timeout + 600).max(3_600),
            deadline_unix_ms: deadline_ms,
            drain_timeout_ms: common.drain_timeout * 1_000,
        });
        first += share;
    }

    let s_start = procstat::sample(&common.server_pid);
    let mut w = spawn_workers(&specs)?;
    {
        let mut stdins = w.stdins.lock().await;
        for (s, spec) in stdins.iter_mut().zip(&specs) {
            let mut line = serde_json::to_string(spec).expect("serialisable");
            line.push('\n');
            s.write_all(line.as_bytes())
                .await
                .map_err(|e| format!("writing worker spec: {e}"))?;
        }
    }

    // Ramp.
    let ramp_bar = bar(
        common.quiet,
        n,
        "connect {bar:40} {pos}/{len} streams {elapsed} {msg}",
    );
    let mut progress = vec![Progress::default(); workers];
    let mut ready = vec![false; workers];
    while !ready.iter().all(|r| *r) {
        let Some((i, msg)) = w.rx.recv().await else {
            return Err("every worker exited during the ramp (see its errors above)".into());
        };
        match msg {
            FromWorker::Progress(p) => progress[i] = p,
            FromWorker::Ready(p) => {
                progress[i] = p;
                ready[i] = true;
            }
            FromWorker::Result(_) | FromWorker::Exited => {
                // Its streams count as never connected; the run goes on with the others.
                progress[i].failed = specs[i].streams.saturating_sub(progress[i].established);
                progress[i]
                    .errors
                    .push(format!("worker {i} exited during the ramp"));
                ready[i] = true;
            }
        }
        let t = sum_progress(&progress);
        ramp_bar.set_position(t.established + t.failed);
        ramp_bar.set_message(if t.failed > 0 {
            format!("{} failed", t.failed)
        } else {
            String::new()
        });
    }
    ramp_bar.finish();
    let ramp_secs = wall.elapsed().as_secs_f64();
    let ramped = sum_progress(&progress);
    if ramped.established == 0 {
        return Err(format!(
            "no stream connected; first errors: {}",
            ramped.errors.join(" | ")
        ));
    }
    let s_ramp = procstat::sample(&common.server_pid);

    // Measured phase.
    let go_at = Instant::now();
    let coord_cpu_go = procstat::self_cpu_ns();
    w.send_all(&ToWorker::Go).await;
    let s_go = procstat::sample(&common.server_pid);
    let mut s_hold = None;
    let mut published = None;
    let stop_publishing_at = wall + Duration::from_secs(common.timeout)
        - Duration::from_secs(common.drain_timeout + 5)
            .min(Duration::from_secs(common.timeout / 2));
    let publishers;
    match scenario {
        Scenario::Idle => {
            publishers = 0;
            let hold = Duration::from_secs_f64(common.duration);
            let hold_bar = bar(
                common.quiet,
                hold.as_secs(),
                "hold    {bar:40} {pos}/{len} s {msg}",
            );
            let end = Instant::now() + hold;
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            while Instant::now() < end {
                tokio::select! {
                    _ = tick.tick() => {}
                    m = w.rx.recv() => match m {
                        Some((i, FromWorker::Progress(p))) => progress[i] = p,
                        Some(_) => {}
                        None => return Err("every worker exited during the hold".into()),
                    },
                }
                hold_bar.set_position(go_at.elapsed().as_secs().min(hold.as_secs()));
                hold_bar.set_message(format!("{} streams open", sum_progress(&progress).open));
            }
            hold_bar.finish();
            s_hold = Some(procstat::sample(&common.server_pid));
            w.send_all(&ToWorker::Finish).await;
        }
        _ => {
            let (total, rate, p) = match scenario {
                Scenario::Broadcast {
                    events,
                    rate,
                    publishers,
                } => (*events, *rate, *publishers),
                Scenario::Fanout { publishers } => (n, None, *publishers),
                Scenario::Churn { rate, .. } | Scenario::Resume { rate, .. } => (
                    ((rate * common.duration).round() as u64).max(1),
                    Some(*rate),
                    1,
                ),
                Scenario::Idle => unreachable!("handled above"),
            };
            publishers = p;
            let (live_tx, mut live_rx) = mpsc::unbounded_channel::<LogEntry>();
            let live = matches!(scenario, Scenario::Churn { .. }).then_some(live_tx);
            // Churn: forward acknowledgements to the workers every 10 ms.
            let stdins = w.stdins.clone();
            let forwarder = tokio::spawn(async move {
                let mut batch = Vec::new();
                loop {
                    let more = tokio::select! {
                        e = live_rx.recv() => match e { Some(e) => { batch.push(e); true } None => false },
                        _ = tokio::time::sleep(Duration::from_millis(10)), if !batch.is_empty() => true,
                    };
                    if !batch.is_empty() && (!more || batch.len() >= 256 || live_rx.is_empty()) {
                        send_all(
                            &stdins,
                            &ToWorker::Acks {
                                entries: std::mem::take(&mut batch),
                            },
                        )
                        .await;
                    }
                    if !more {
                        return;
                    }
                }
            });
            let plan = publish::Plan {
                target: target.clone(),
                api_key: common.api_key.clone(),
                channels: channels.clone(),
                total,
                rate,
                publishers: p,
                payload_bytes: common.payload_bytes,
                live,
                stop_at: stop_publishing_at,
            };
            let expected_guess = match scenario {
                Scenario::Fanout { .. } => ramped.established,
                _ => ramped.established * total,
            };
            let run_bar = bar(
                common.quiet,
                expected_guess,
                "deliver {bar:40} {pos}/{len} events {elapsed} {msg}",
            );
            let mut pub_task = tokio::spawn(publish::run(plan));
            let outcome = loop {
                tokio::select! {
                    r = &mut pub_task => break r.map_err(|e| format!("publisher task: {e}"))?,
                    m = w.rx.recv() => {
                        if let Some((i, FromWorker::Progress(p))) = m {
                            progress[i] = p;
                            run_bar.set_position(sum_progress(&progress).received);
                        }
                    }
                }
            };
            let _ = forwarder.await;
            run_bar.set_message("published; draining");
            let log = if matches!(channels, Channels::Shared { .. }) {
                outcome.log.clone()
            } else {
                Vec::new()
            };
            w.send_all(&ToWorker::Published {
                events: if matches!(channels, Channels::Shared { .. }) {
                    total
                } else {
                    1
                },
                log,
                failed_channels: outcome.failed_channels.clone(),
            })
            .await;
            published = Some((outcome, run_bar));
        }
    }

    // Results.
    let mut results: Vec<Option<WorkerResult>> = vec![None; workers];
    let mut exited = vec![false; workers];
    while (0..workers).any(|i| results[i].is_none() && !exited[i]) {
        let Some((i, msg)) = w.rx.recv().await else {
            break;
        };
        match msg {
            FromWorker::Progress(p) => {
                progress[i] = p;
                if let Some((_, b)) = &published {
                    b.set_position(sum_progress(&progress).received);
                }
            }
            FromWorker::Result(r) => results[i] = Some(*r),
            FromWorker::Exited => exited[i] = true,
            FromWorker::Ready(_) => {}
        }
    }
    let s_end = procstat::sample(&common.server_pid);
    let end_at = Instant::now();
    let coord_cpu_end = procstat::self_cpu_ns();
    if let Some((_, b)) = &published {
        b.finish_and_clear();
    }
    for c in w.children.iter_mut() {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
    }
    let missing: Vec<usize> = (0..workers).filter(|i| results[*i].is_none()).collect();
    let results: Vec<WorkerResult> = results.into_iter().flatten().collect();

    // Merge.
    let mut r = Report {
        label: common.label.clone(),
        scenario: scenario.name().to_owned(),
        target: target.kind.name().to_owned(),
        url: common.url(),
        streams_requested: n,
        payload_bytes: common.payload_bytes,
        publishers,
        ramp_secs,
        ..Default::default()
    };
    let mut hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3).expect("bounds");
    let mut last_recv_ns = 0;
    let mut worker_cpu_ns = 0;
    let mut errors = Vec::new();
    for x in &results {
        r.streams_established += x.progress.established;
        r.streams_failed += x.progress.failed;
        r.expected += x.expected;
        r.delivered += x.delivered;
        r.lost += x.lost;
        r.duplicated += x.duplicated;
        r.out_of_order += x.out_of_order;
        r.misrouted += x.misrouted;
        r.unparsed += x.unparsed;
        r.extra += x.extra;
        r.lives += x.lives;
        r.reconnects += x.reconnects;
        r.server_closes += x.server_closes;
        last_recv_ns = last_recv_ns.max(x.last_recv_ns);
        worker_cpu_ns += x.cpu_ns;
        r.generator.worker_max_rss_kb = r.generator.worker_max_rss_kb.max(x.max_rss_kb);
        for (v, c) in &x.latency_us {
            let _ = hist.record_n(*v, *c);
        }
        for e in &x.progress.errors {
            if errors.len() < 5 && !errors.contains(e) {
                errors.push(e.clone());
            }
        }
        for s in &x.lost_sample {
            if r.lost_sample.len() < 10 {
                r.lost_sample.push(*s);
            }
        }
    }
    for i in &missing {
        errors.push(format!("worker {i} sent no result"));
        r.streams_failed += specs[*i].streams;
    }
    r.latency = Latency::from_us(&hist);
    // Generator CPU over the measured phase: each worker reports its CPU at Go and at the end.
    let measured = end_at.duration_since(go_at).as_secs_f64().max(1e-9);
    let deliveries = r.delivered + r.extra;
    if let Some((outcome, _)) = &published {
        r.events_published = outcome.attempted;
        r.publish_errors = outcome.errors;
        if let Some(e) = &outcome.first_error {
            errors.insert(0, e.clone());
        }
        r.publish_secs = outcome.last_ack_ns.saturating_sub(outcome.first_start_ns) as f64 / 1e9;
        r.publishes_per_sec = outcome.attempted as f64 / r.publish_secs.max(1e-9);
        r.delivery_secs = last_recv_ns.saturating_sub(outcome.first_start_ns) as f64 / 1e9;
        r.deliveries_per_sec = deliveries as f64 / r.delivery_secs.max(1e-9);
        r.publish_request = Latency::from_us(&outcome.request_us);
        if target.kind == crate::target::Kind::Castbrick {
            r.delivered_reported_by_server = Some(outcome.delivered_reported);
        }
    }
    r.errors = errors;

    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let gen_cpu_s = (worker_cpu_ns.saturating_sub(sum_worker_cpu_at_go(&results))
        + coord_cpu_end.saturating_sub(coord_cpu_go)) as f64
        / 1e9;
    r.generator = Generator {
        workers,
        cpu_secs: gen_cpu_s,
        cpu_cores: gen_cpu_s / measured,
        worker_max_rss_kb: r.generator.worker_max_rss_kb,
        machine_cpus: cpus,
    };
    if !common.server_pid.is_empty() {
        r.server = Some(server_stats(
            common,
            &r,
            [s_start, s_ramp, s_go, s_hold.unwrap_or(s_end), s_end],
            measured,
            deliveries,
        ));
    }
    let server_cores = r.server.as_ref().map(|s| s.cpu_cores);
    r.busier = match server_cores {
        None => "unknown (no --server-pid)".to_owned(),
        Some(s) if s < 0.05 && r.generator.cpu_cores < 0.05 => "neither (both idle)".to_owned(),
        Some(s) if r.generator.cpu_cores > s => format!(
            "generator ({:.2} vs {:.2} cores): the generator may be the limit",
            r.generator.cpu_cores, s
        ),
        Some(s) => format!("server ({:.2} vs {:.2} cores)", s, r.generator.cpu_cores),
    };
    r.wall_secs = wall.elapsed().as_secs_f64();
    r.judge();
    Ok(r)
}

fn sum_worker_cpu_at_go(results: &[WorkerResult]) -> u64 {
    results.iter().map(|x| x.cpu_at_go_ns).sum()
}

fn server_stats(
    common: &Common,
    r: &Report,
    [start, ramp, go, hold, end]: [Sample; 5],
    measured_secs: f64,
    deliveries: u64,
) -> Server {
    let streams = r.streams_established.max(1) as f64;
    let idle = r.scenario == "idle";
    // RSS with every stream open: after the hold (idle) or right after the ramp.
    let rss_open = if idle { hold.rss_bytes } else { ramp.rss_bytes };
    let cpu_ns = end.cpu_ns.saturating_sub(go.cpu_ns);
    let cpu_secs = if idle {
        hold.cpu_ns.saturating_sub(go.cpu_ns) as f64 / 1e9
    } else {
        cpu_ns as f64 / 1e9
    };
    let per_delivery = (deliveries > 0 && !idle).then(|| cpu_ns as f64 / 1e3 / deliveries as f64);
    Server {
        pids: common.server_pid.clone(),
        processes: end.processes,
        rss_before_bytes: start.rss_bytes,
        rss_bytes: rss_open,
        rss_per_stream_bytes: rss_open.saturating_sub(start.rss_bytes) as f64 / streams,
        connect_cpu_us_per_stream: ramp.cpu_ns.saturating_sub(start.cpu_ns) as f64 / 1e3 / streams,
        cpu_secs,
        cpu_cores: cpu_secs / if idle { common.duration } else { measured_secs },
        cpu_us_per_delivery: per_delivery,
        cpu_secs_per_million_deliveries: per_delivery,
        idle_cpu_us_per_stream_sec: idle.then(|| {
            hold.cpu_ns.saturating_sub(go.cpu_ns) as f64 / 1e3 / streams / common.duration
        }),
    }
}
