//! A worker process: holds up to a few thousand streams on one thread and reports what they saw.
//!
//! The coordinator re-executes this binary with `--worker` because one process may hold at most
//! 20,000 open files here. A worker runs a current-thread runtime: every stream is a local task
//! that owns its socket and parser and waits for readiness, then reads into one scratch buffer
//! shared by the whole thread, so a quiet stream holds no read buffer at all.
//!
//! Each stream connection lifetime is a [`Life`]: the set of sequence numbers it received and
//! the window it was owed. A life is owed every event whose publish *started* after the life saw
//! its subscription confirmed (castbrick's `connected` event; nchan's response head) and that was
//! acknowledged before it decided to leave (churn), or every event to the end (all others). A
//! resume keeps its life across reconnects, so a replay that misses or repeats an event shows
//! up as lost or duplicated.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{oneshot, watch};
use tokio::task::LocalSet;
use tokio::time::{sleep, sleep_until, Instant};

use crate::http::{self, err, parse_head, Body};
use crate::procstat::{self, now_ns};
use crate::proto::{
    bind_addr, source_addr, Channels, FromWorker, LogEntry, Plan, Progress, ToWorker, WorkerResult,
    WorkerSpec,
};
use crate::seqset::{Insert, SeqSet};
use crate::sse::{self, Parser};
use crate::target::{parse_data, Kind};

/// Bytes read per `read()`: a burst to one stream arrives in few reads.
const SCRATCH_BYTES: usize = 64 * 1024;
/// Connection attempts before a stream counts as failed.
const CONNECT_TRIES: u32 = 3;
/// Reconnects after the server closed a stream before the stream gives up.
const RECONNECT_TRIES: u32 = 5;
const PROGRESS_EVERY: Duration = Duration::from_millis(250);
const MAX_ERRORS: usize = 5;
const LOST_SAMPLE: usize = 10;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; SCRATCH_BYTES]);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    Ramp,
    Go,
    Published,
    Stop,
}

struct Ctx {
    spec: WorkerSpec,
    state: RefCell<State>,
    phase: watch::Sender<Phase>,
    shared_token: RefCell<Rc<str>>,
    next_stream: Cell<u64>,
    next_connect_at: Cell<Instant>,
}

struct Life {
    channel: u64,
    connected_ns: u64,
    /// Churn: how many events (a prefix of seqs) were acknowledged when the life chose to leave.
    hi_excl: Option<u64>,
    set: SeqSet,
}

struct State {
    lives: Vec<Life>,
    hist: Histogram<u64>,
    p: Progress,
    reconnects: u64,
    server_closes: u64,
    duplicated: u64,
    out_of_order: u64,
    misrouted: u64,
    unparsed: u64,
    first_recv_ns: u64,
    last_recv_ns: u64,
    /// The publish log as far as the coordinator has sent it, by seq.
    log: Vec<Option<LogEntry>>,
    acked_prefix: u64,
    /// The log's first `simple_upto` entries are present, acknowledged OK, and in publish-start
    /// order, so a life's owed events there are one range found by binary search. (True for
    /// one publisher without failures: every churn and resume run.)
    simple_upto: u64,
    /// An entry failed or started before its predecessor: windows are counted one by one.
    log_broken: bool,
}

impl State {
    fn new() -> Self {
        Self {
            lives: Vec::new(),
            hist: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            p: Progress::default(),
            reconnects: 0,
            server_closes: 0,
            duplicated: 0,
            out_of_order: 0,
            misrouted: 0,
            unparsed: 0,
            first_recv_ns: 0,
            last_recv_ns: 0,
            log: Vec::new(),
            acked_prefix: 0,
            simple_upto: 0,
            log_broken: false,
        }
    }

    fn error(&mut self, e: impl std::fmt::Display) {
        let msg = e.to_string();
        if self.p.errors.len() < MAX_ERRORS && !self.p.errors.contains(&msg) {
            self.p.errors.push(msg);
        }
    }

    fn new_life(&mut self, channel: u64, now: u64) -> usize {
        self.lives.push(Life {
            channel,
            connected_ns: now,
            hi_excl: None,
            set: SeqSet::default(),
        });
        self.lives.len() - 1
    }

    fn on_data(&mut self, life: Option<usize>, now: u64, data: &[u8]) {
        self.p.received += 1;
        if self.first_recv_ns == 0 {
            self.first_recv_ns = now;
        }
        self.last_recv_ns = now;
        let (Some((t, seq, c)), Some(li)) = (parse_data(data), life) else {
            self.unparsed += 1;
            return;
        };
        let l = &mut self.lives[li];
        if c != l.channel {
            self.misrouted += 1;
            return;
        }
        match l.set.insert(seq) {
            Insert::Duplicate => {
                self.duplicated += 1;
                return;
            }
            Insert::Late => self.out_of_order += 1,
            Insert::InOrder => {}
        }
        self.hist
            .saturating_record((now.saturating_sub(t) / 1_000).max(1));
    }

    fn add_log(&mut self, entries: &[LogEntry]) {
        for e in entries {
            let seq = e[0] as usize;
            if self.log.len() <= seq {
                self.log.resize(seq + 1, None);
            }
            self.log[seq] = Some(*e);
        }
        while (self.acked_prefix as usize) < self.log.len()
            && self.log[self.acked_prefix as usize].is_some()
        {
            self.acked_prefix += 1;
        }
        while !self.log_broken && self.simple_upto < self.acked_prefix {
            let i = self.simple_upto as usize;
            let e = self.log[i].expect("below acked_prefix");
            let prev_start = if i == 0 {
                0
            } else {
                self.log[i - 1].expect("ditto")[1]
            };
            if e[3] != 1 || e[1] < prev_start {
                self.log_broken = true;
            } else {
                self.simple_upto += 1;
            }
        }
    }

    /// What a shared-channel life connected at `connected_ns` is owed among the first `hi_excl`
    /// seqs, what it got of that, and the first owed seq it lacks.
    fn owed(&self, life: &Life, hi_excl: u64) -> (u64, u64, Option<u64>) {
        if hi_excl == 0 {
            return (0, 0, None);
        }
        if !self.log_broken && hi_excl <= self.simple_upto {
            let lo = self.log[..hi_excl as usize]
                .partition_point(|e| e.map_or(0, |e| e[1]) < life.connected_ns)
                as u64;
            if lo >= hi_excl {
                return (0, 0, None);
            }
            let got = life.set.count_in(lo, hi_excl - 1);
            let missing = (got < hi_excl - lo)
                .then(|| life.set.missing_in(lo, hi_excl - 1).next())
                .flatten();
            return (hi_excl - lo, got, missing);
        }
        let (mut owed, mut got, mut missing) = (0, 0, None);
        for s in 0..hi_excl {
            if let Some([_, start, _, ok]) = self.log.get(s as usize).copied().flatten() {
                if ok == 1 && start >= life.connected_ns {
                    owed += 1;
                    if life.set.count_in(s, s) == 1 {
                        got += 1;
                    } else if missing.is_none() {
                        missing = Some(s);
                    }
                }
            }
        }
        (owed, got, missing)
    }

    /// Whether life `li` holds every event it is owed among the first `hi_excl` seqs, by the log
    /// as known now.
    fn owed_all(&self, li: usize, hi_excl: u64) -> bool {
        let (owed, got, _) = self.owed(&self.lives[li], hi_excl);
        owed == got
    }
}

/// The final tally of what every life was owed and got.
struct Tally {
    expected: u64,
    delivered: u64,
    lost: u64,
    extra: u64,
    lost_sample: Vec<(u64, u64)>,
}

fn tally(state: &State, per_stream: bool, events: u64, failed_channels: &HashSet<u64>) -> Tally {
    let mut t = Tally {
        expected: 0,
        delivered: 0,
        lost: 0,
        extra: 0,
        lost_sample: Vec::new(),
    };
    for life in &state.lives {
        let hi_excl = life.hi_excl.unwrap_or(events).min(events);
        let (owed, got, missing) = if per_stream {
            // Channel-per-stream lives all connect before publishing starts: owed seq 0.
            if failed_channels.contains(&life.channel) || hi_excl == 0 {
                (0, 0, None)
            } else {
                let got = life.set.count_in(0, hi_excl - 1);
                (hi_excl, got, life.set.missing_in(0, hi_excl - 1).next())
            }
        } else {
            state.owed(life, hi_excl)
        };
        t.expected += owed;
        t.delivered += got;
        t.lost += owed - got;
        t.extra += life.set.len() - got;
        if let (Some(seq), true) = (missing, t.lost_sample.len() < LOST_SAMPLE) {
            t.lost_sample.push((life.channel, seq));
        }
    }
    t
}

/// Entry point of `castbrick-load --worker`.
pub fn main() -> ! {
    procstat::raise_nofile();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("castbrick-load worker: runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = LocalSet::new().block_on(&rt, run());
    std::process::exit(code)
}

fn send(msg: &FromWorker) {
    let line = serde_json::to_string(msg).expect("serialisable");
    let mut out = io::stdout().lock();
    // A closed stdout means the coordinator is gone; the stdin watcher ends this process.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

async fn run() -> i32 {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let spec: WorkerSpec = match lines.next_line().await {
        Ok(Some(l)) => match serde_json::from_str(&l) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("castbrick-load worker: bad spec: {e}");
                return 2;
            }
        },
        _ => {
            eprintln!("castbrick-load worker: no spec on stdin (this mode is for the coordinator)");
            return 2;
        }
    };
    let deadline_in =
        Duration::from_millis(spec.deadline_unix_ms.saturating_sub(now_ns() / 1_000_000));
    let (phase, _) = watch::channel(Phase::Ramp);
    let ctx = Rc::new(Ctx {
        next_stream: Cell::new(spec.first_stream),
        next_connect_at: Cell::new(Instant::now()),
        spec,
        state: RefCell::new(State::new()),
        phase,
        shared_token: RefCell::new(Rc::from("")),
    });

    if let Err(e) = fetch_shared_token(&ctx).await {
        let mut st = ctx.state.borrow_mut();
        st.error(format!("token: {e}"));
        st.p.failed = ctx.spec.streams;
        let p = st.p.clone();
        drop(st);
        send(&FromWorker::Ready(p));
    } else {
        tokio::task::spawn_local(ramp(ctx.clone()));
    }
    tokio::task::spawn_local(report_progress(ctx.clone()));

    let end = tokio::time::sleep(deadline_in);
    tokio::pin!(end);
    let mut published: Option<(u64, HashSet<u64>, Instant)> = None;
    let mut cpu_at_go = 0;
    let mut last_received = u64::MAX;
    let mut checks: u64 = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            line = lines.next_line() => {
                let line = match line {
                    Ok(Some(l)) => l,
                    // The coordinator is gone: nobody wants the result.
                    _ => return 4,
                };
                match serde_json::from_str::<ToWorker>(&line) {
                    Ok(ToWorker::Go) => {
                        cpu_at_go = procstat::self_cpu_ns();
                        ctx.phase.send_replace(Phase::Go);
                    }
                    Ok(ToWorker::Acks { entries }) => ctx.state.borrow_mut().add_log(&entries),
                    Ok(ToWorker::Published { events, log, failed_channels }) => {
                        ctx.state.borrow_mut().add_log(&log);
                        ctx.phase.send_replace(Phase::Published);
                        let drain = Instant::now() + Duration::from_millis(ctx.spec.drain_timeout_ms);
                        published = Some((events, failed_channels.into_iter().collect(), drain));
                    }
                    Ok(ToWorker::Finish) => break,
                    Err(e) => eprintln!("castbrick-load worker: bad control line: {e}"),
                }
            }
            _ = tick.tick(), if published.is_some() => {
                let (events, failed, drain) = published.as_ref().expect("checked");
                let st = ctx.state.borrow();
                // Re-count only when events arrived since the last count (or every 200 ms).
                checks += 1;
                if st.p.received == last_received && checks % 10 != 0 && Instant::now() < *drain {
                    continue;
                }
                last_received = st.p.received;
                let t = tally(&st, matches!(ctx.spec.channels, Channels::PerStream { .. }), *events, failed);
                if t.lost == 0 || Instant::now() >= *drain {
                    break;
                }
            }
            _ = &mut end => {
                eprintln!("castbrick-load worker {}: deadline reached, reporting what it has", ctx.spec.index);
                break;
            }
        }
    }
    ctx.phase.send_replace(Phase::Stop);
    let st = ctx.state.borrow();
    let (events, failed) = match &published {
        Some((e, f, _)) => (*e, f.clone()),
        None => (0, HashSet::new()),
    };
    let t = tally(
        &st,
        matches!(ctx.spec.channels, Channels::PerStream { .. }),
        events,
        &failed,
    );
    let (cpu_ns, max_rss_kb) = procstat::rusage_cpu_ns(libc::RUSAGE_SELF);
    let result = WorkerResult {
        progress: st.p.clone(),
        lives: st.lives.len() as u64,
        reconnects: st.reconnects,
        server_closes: st.server_closes,
        expected: t.expected,
        delivered: t.delivered,
        lost: t.lost,
        duplicated: st.duplicated,
        out_of_order: st.out_of_order,
        misrouted: st.misrouted,
        unparsed: st.unparsed,
        extra: t.extra,
        latency_us: st
            .hist
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
        first_recv_ns: st.first_recv_ns,
        last_recv_ns: st.last_recv_ns,
        cpu_at_go_ns: cpu_at_go,
        cpu_ns,
        max_rss_kb,
        lost_sample: t.lost_sample,
    };
    send(&FromWorker::Result(Box::new(result)));
    0
}

async fn report_progress(ctx: Rc<Ctx>) {
    loop {
        sleep(PROGRESS_EVERY).await;
        let p = ctx.state.borrow().p.clone();
        send(&FromWorker::Progress(p));
    }
}

async fn fetch_shared_token(ctx: &Ctx) -> io::Result<()> {
    if let (Kind::Castbrick, Channels::Shared { name }) = (ctx.spec.target.kind, &ctx.spec.channels)
    {
        let mut client = http::Client::new(ctx.spec.target.addr, &ctx.spec.target.host);
        let token = fetch_token(ctx, &mut client, name).await?;
        *ctx.shared_token.borrow_mut() = Rc::from(token);
    }
    Ok(())
}

async fn fetch_token(ctx: &Ctx, client: &mut http::Client, channel: &str) -> io::Result<String> {
    #[derive(serde::Deserialize)]
    struct TokenResponse {
        token: String,
    }
    let body = serde_json::json!({
        "channels": [channel],
        "userId": format!("castbrick-load-{}", ctx.spec.index),
        "ttlSeconds": ctx.spec.token_ttl_secs,
    })
    .to_string();
    let headers = format!(
        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
        ctx.spec.api_key.as_deref().unwrap_or("")
    );
    let r = client
        .request("POST", "/push/tokens", &headers, body.as_bytes(), true)
        .await?;
    if r.status != 200 {
        return Err(err(format!(
            "POST /push/tokens: HTTP {}: {}",
            r.status,
            String::from_utf8_lossy(&r.body[..r.body.len().min(200)])
        )));
    }
    let t: TokenResponse = serde_json::from_slice(&r.body)
        .map_err(|e| err(format!("POST /push/tokens: unexpected body: {e}")))?;
    Ok(t.token)
}

/// Opens this worker's streams: `concurrency` slots, each connecting one stream at a time, all
/// paced together to `connect_rate` per second.
async fn ramp(ctx: Rc<Ctx>) {
    let slots = ctx
        .spec
        .concurrency
        .clamp(1, ctx.spec.streams.max(1) as usize);
    let mut handles = Vec::with_capacity(slots);
    for _ in 0..slots {
        handles.push(tokio::task::spawn_local(slot(ctx.clone())));
    }
    for h in handles {
        let _ = h.await;
    }
    let p = ctx.state.borrow().p.clone();
    send(&FromWorker::Ready(p));
}

async fn slot(ctx: Rc<Ctx>) {
    let end = ctx.spec.first_stream + ctx.spec.streams;
    let interval = Duration::from_secs_f64(1.0 / ctx.spec.connect_rate.max(0.001));
    let per_stream_tokens = ctx.spec.target.kind == Kind::Castbrick
        && matches!(ctx.spec.channels, Channels::PerStream { .. });
    let mut client = http::Client::new(ctx.spec.target.addr, &ctx.spec.target.host);
    let resumers = match ctx.spec.plan {
        Plan::Resume { resumers, .. } => resumers,
        _ => 0,
    };
    loop {
        let g = ctx.next_stream.get();
        if g >= end || *ctx.phase.borrow() == Phase::Stop {
            return;
        }
        ctx.next_stream.set(g + 1);
        let at = ctx.next_connect_at.get().max(Instant::now());
        ctx.next_connect_at.set(at + interval);
        sleep_until(at).await;
        let token = if per_stream_tokens {
            let (channel, _) = ctx.spec.channels.for_stream(g);
            match fetch_token(&ctx, &mut client, &channel).await {
                Ok(t) => Rc::from(t),
                Err(e) => {
                    let mut st = ctx.state.borrow_mut();
                    st.error(e);
                    st.p.failed += 1;
                    continue;
                }
            }
        } else {
            ctx.shared_token.borrow().clone()
        };
        let (tx, rx) = oneshot::channel();
        let resumer = g - ctx.spec.first_stream < resumers;
        tokio::task::spawn_local(stream_task(ctx.clone(), g, resumer, token, tx));
        let _ = rx.await;
    }
}

/// One stream's state that outlives its connections.
struct Stream {
    g: u64,
    channel: String,
    channel_index: u64,
    life: Option<usize>,
    last_id: Vec<u8>,
    connected: bool,
    expired: bool,
    rng: u64,
}

struct Conn {
    sock: TcpStream,
    body: Body,
    sse: Parser,
}

enum Wake {
    /// The phase changed; `false` when the sender is gone.
    Phase(bool),
    Readable(io::Result<()>),
    Timer,
}

fn dec_open(ctx: &Ctx) {
    let mut st = ctx.state.borrow_mut();
    st.p.open = st.p.open.saturating_sub(1);
}

enum Pumped {
    Open,
    Closed,
}

async fn stream_task(
    ctx: Rc<Ctx>,
    g: u64,
    resumer: bool,
    token: Rc<str>,
    ready: oneshot::Sender<()>,
) {
    let (channel, channel_index) = ctx.spec.channels.for_stream(g);
    let mut s = Stream {
        g,
        channel,
        channel_index,
        life: None,
        last_id: Vec::new(),
        connected: false,
        expired: false,
        rng: (now_ns() ^ g.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1,
    };
    let mut phase_rx = ctx.phase.subscribe();
    let timeout = Duration::from_millis(ctx.spec.connect_timeout_ms);

    let mut conn = {
        let mut tries = 0;
        loop {
            match tokio::time::timeout(timeout, open(&ctx, &mut s, &token, false)).await {
                Ok(Ok(c)) => break c,
                Ok(Err(e)) => ctx.state.borrow_mut().error(e),
                Err(_) => ctx.state.borrow_mut().error("stream open timed out"),
            }
            tries += 1;
            if tries >= CONNECT_TRIES || *phase_rx.borrow() == Phase::Stop {
                ctx.state.borrow_mut().p.failed += 1;
                let _ = ready.send(());
                return;
            }
            sleep(Duration::from_millis(200)).await;
        }
    };
    ctx.state.borrow_mut().p.established += 1;
    let _ = ready.send(());

    let (mean_life, drop_every, offline) = match ctx.spec.plan {
        Plan::Churn { mean_lifetime_ms } => (Some(mean_lifetime_ms), None, 0),
        Plan::Resume {
            drop_every_ms,
            offline_ms,
            ..
        } if resumer => (None, Some(drop_every_ms), offline_ms),
        _ => (None, None, 0),
    };
    // Leave (churn) or drop (resume) at this time, once the run is in the Go phase.
    let mut timer: Option<Instant> = None;
    // Churn: leaving, owed this many acknowledged events, closing at the latest at this time.
    let mut leaving: Option<(u64, Instant)> = None;

    loop {
        let phase = *phase_rx.borrow();
        if phase == Phase::Go && timer.is_none() && leaving.is_none() {
            if let Some(mean) = mean_life.or(drop_every) {
                timer = Some(Instant::now() + exp_duration(&mut s.rng, mean));
            }
        }
        if phase >= Phase::Published {
            timer = None;
        }
        let wake = leaving.map(|(_, d)| d).or(timer);
        let woke = tokio::select! {
            biased;
            changed = phase_rx.changed() => Wake::Phase(changed.is_ok()),
            r = conn.sock.readable() => Wake::Readable(r),
            _ = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => Wake::Timer,
        };
        let mut closed = false;
        match woke {
            Wake::Phase(alive) => {
                if !alive || *phase_rx.borrow() == Phase::Stop {
                    return;
                }
                continue;
            }
            Wake::Readable(r) => match r.and_then(|_| pump(&ctx, &mut s, &mut conn)) {
                Ok(Pumped::Open) if !s.expired => {}
                Ok(_) => closed = true,
                Err(e) => {
                    ctx.state.borrow_mut().error(format!("stream read: {e}"));
                    closed = true;
                }
            },
            Wake::Timer => {
                if let Some((_, deadline)) = leaving {
                    if Instant::now() >= deadline {
                        // Gave up waiting: whatever is missing counts as lost.
                        conn = match leave_and_rejoin(&ctx, &mut s, &token, &mut leaving, &phase_rx)
                            .await
                        {
                            Some(c) => c,
                            None => return,
                        };
                    }
                    continue;
                }
                timer = None;
                if mean_life.is_some() {
                    // The window closes now: owed what was acknowledged so far, nothing after.
                    let hi_excl = {
                        let mut st = ctx.state.borrow_mut();
                        let hi = st.acked_prefix;
                        if let Some(li) = s.life {
                            st.lives[li].hi_excl = Some(hi);
                        }
                        hi
                    };
                    let deadline =
                        Instant::now() + Duration::from_millis(ctx.spec.drain_timeout_ms);
                    leaving = Some((hi_excl, deadline));
                } else if !s.last_id.is_empty() {
                    // Resume: drop without a goodbye, stay away, come back with Last-Event-ID.
                    drop(conn);
                    dec_open(&ctx);
                    sleep(Duration::from_millis(offline)).await;
                    ctx.state.borrow_mut().reconnects += 1;
                    conn = match reconnect(&ctx, &mut s, &token, &phase_rx).await {
                        Some(c) => c,
                        None => return,
                    };
                    continue;
                }
            }
        }
        if closed {
            ctx.state.borrow_mut().server_closes += 1;
            dec_open(&ctx);
            if *phase_rx.borrow() == Phase::Stop {
                return;
            }
            sleep(Duration::from_millis(100)).await;
            conn = match reconnect(&ctx, &mut s, &token, &phase_rx).await {
                Some(c) => c,
                None => return,
            };
            continue;
        }
        if let (Some((hi_excl, _)), Some(li)) = (leaving, s.life) {
            if ctx.state.borrow().owed_all(li, hi_excl) {
                conn = match leave_and_rejoin(&ctx, &mut s, &token, &mut leaving, &phase_rx).await {
                    Some(c) => c,
                    None => return,
                };
            }
        }
    }
}

/// Churn: closes this life (its window was fixed when it chose to leave) and opens a fresh one,
/// unless publishing is over.
async fn leave_and_rejoin(
    ctx: &Ctx,
    s: &mut Stream,
    token: &str,
    leaving: &mut Option<(u64, Instant)>,
    phase_rx: &watch::Receiver<Phase>,
) -> Option<Conn> {
    leaving.take()?;
    s.life = None;
    dec_open(ctx);
    s.last_id.clear();
    if *phase_rx.borrow() >= Phase::Published {
        return None;
    }
    reconnect(ctx, s, token, phase_rx).await
}

/// Opens the stream again, resuming with Last-Event-ID when it has one.
async fn reconnect(
    ctx: &Ctx,
    s: &mut Stream,
    token: &str,
    phase_rx: &watch::Receiver<Phase>,
) -> Option<Conn> {
    let timeout = Duration::from_millis(ctx.spec.connect_timeout_ms);
    for attempt in 0..RECONNECT_TRIES {
        if *phase_rx.borrow() == Phase::Stop {
            return None;
        }
        let resume = !s.last_id.is_empty();
        match tokio::time::timeout(timeout, open(ctx, s, token, resume)).await {
            Ok(Ok(c)) => return Some(c),
            Ok(Err(e)) => ctx.state.borrow_mut().error(format!("reconnect: {e}")),
            Err(_) => ctx.state.borrow_mut().error("reconnect timed out"),
        }
        sleep(Duration::from_millis(200 << attempt)).await;
    }
    None
}

/// Connects (bound to this stream's source address), sends the subscribe request, and reads
/// until the subscription is confirmed. Events that arrive with the confirmation are counted.
async fn open(ctx: &Ctx, s: &mut Stream, token: &str, resume: bool) -> io::Result<Conn> {
    let target = &ctx.spec.target;
    let sock = if target.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let (Some(base), true) = (ctx.spec.source_base, target.addr.is_ipv4()) {
        // Let connect() pick the port per destination, so one source address serves as many
        // streams as the ephemeral range holds, instead of bind() reserving a port outright.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a c_int option value of the right size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                &one as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        let ip = source_addr(base, ctx.spec.streams_per_source, s.g);
        sock.bind(bind_addr(ip))
            .map_err(|e| err(format!("bind {ip}: {e}")))?;
    }
    let mut stream = sock.connect(target.addr).await?;
    let last_id = resume.then_some(&s.last_id[..]);
    let req = target.subscribe_request(&s.channel, token, last_id);
    stream.write_all(&req).await?;

    let mut head = Vec::with_capacity(512);
    let (h, head_len) = loop {
        stream.readable().await?;
        match stream.try_read_buf(&mut head) {
            Ok(0) => return Err(err("connection closed before the response head")),
            Ok(_) => {
                if let Some(h) = parse_head(&head)? {
                    break h;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    };
    if h.status != 200 {
        let body =
            String::from_utf8_lossy(&head[head_len..head.len().min(head_len + 200)]).into_owned();
        return Err(err(format!("subscribe: HTTP {}: {body}", h.status)));
    }
    if !h.content_type.starts_with("text/event-stream") {
        return Err(err(format!("subscribe: content-type {:?}", h.content_type)));
    }
    let mut conn = Conn {
        sock: stream,
        body: h.body,
        sse: Parser::new(),
    };
    s.connected = !target.has_connected_event();
    s.expired = false;
    if s.connected && s.life.is_none() {
        s.life = Some(ctx.state.borrow_mut().new_life(s.channel_index, now_ns()));
    }
    process(ctx, s, &mut conn, &head[head_len..], now_ns())?;
    drop(head);
    while !s.connected {
        conn.sock.readable().await?;
        if let Pumped::Closed = pump(ctx, s, &mut conn)? {
            return Err(err("stream closed before the connected event"));
        }
    }
    ctx.state.borrow_mut().p.open += 1;
    Ok(conn)
}

/// Reads everything the socket has now and handles it.
fn pump(ctx: &Ctx, s: &mut Stream, conn: &mut Conn) -> io::Result<Pumped> {
    SCRATCH.with(|scratch| {
        let mut buf = scratch.borrow_mut();
        loop {
            match conn.sock.try_read(&mut buf) {
                Ok(0) => return Ok(Pumped::Closed),
                Ok(n) => {
                    process(ctx, s, conn, &buf[..n], now_ns())?;
                    if conn.body.is_done() {
                        return Ok(Pumped::Closed);
                    }
                    if n < buf.len() {
                        return Ok(Pumped::Open);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Pumped::Open),
                Err(e) => return Err(e),
            }
        }
    })
}

fn process(ctx: &Ctx, s: &mut Stream, conn: &mut Conn, bytes: &[u8], now: u64) -> io::Result<()> {
    let Conn { body, sse, .. } = conn;
    let mut st = ctx.state.borrow_mut();
    let st = &mut *st;
    body.decode(bytes, &mut |chunk| {
        sse.feed(chunk, &mut |ev: sse::Event<'_>| match ev.event {
            b"connected" => {
                s.connected = true;
                if s.life.is_none() {
                    s.life = Some(st.new_life(s.channel_index, now));
                }
            }
            b"expired" => s.expired = true,
            _ => {
                if let Some(id) = ev.id {
                    s.last_id.clear();
                    s.last_id.extend_from_slice(id);
                }
                st.on_data(s.life, now, ev.data);
            }
        })
    })?;
    Ok(())
}

/// An exponentially distributed duration with the given mean (ms), from a xorshift generator:
/// churn and drops should be spread out, not synchronised.
fn exp_duration(rng: &mut u64, mean_ms: u64) -> Duration {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    let u = ((*rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    Duration::from_secs_f64(-u.ln() * mean_ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(state: &mut State, connected_ns: u64, seqs: &[u64]) -> usize {
        let li = state.new_life(0, connected_ns);
        for &s in seqs {
            state.lives[li].set.insert(s);
        }
        li
    }

    #[test]
    fn windows_follow_connect_time_and_leave_point() {
        let mut st = State::new();
        // Four publishes started at 100, 200, 300, 400; seq 2 failed.
        st.add_log(&[[0, 100, 150, 1], [1, 200, 250, 1], [3, 400, 450, 1]]);
        assert_eq!(st.acked_prefix, 2);
        st.add_log(&[[2, 300, 350, 0]]);
        assert_eq!(st.acked_prefix, 4);
        let early = life(&mut st, 50, &[0, 1, 3]);
        let late = life(&mut st, 250, &[1, 3]); // seq 1 started before it connected: extra
        let leaver = life(&mut st, 50, &[0]);
        st.lives[leaver].hi_excl = Some(2); // owed 0 and 1, got only 0
        assert!(st.owed_all(early, 4));
        assert!(!st.owed_all(leaver, 2));
        let t = tally(&st, false, 4, &HashSet::new());
        assert_eq!(t.expected, 3 + 1 + 2);
        assert_eq!(t.delivered, 3 + 1 + 1);
        assert_eq!(t.lost, 1);
        assert_eq!(t.extra, 1);
        assert_eq!(t.lost_sample, vec![(0, 1)]);
        let _ = late;
    }

    #[test]
    fn a_simple_log_finds_windows_by_binary_search() {
        let mut st = State::new();
        st.add_log(&[[1, 200, 210, 1], [0, 100, 110, 1]]);
        st.add_log(&[[2, 300, 310, 1], [3, 400, 410, 1]]);
        assert_eq!((st.simple_upto, st.log_broken), (4, false));
        let li = life(&mut st, 250, &[2, 0]);
        assert_eq!(st.owed(&st.lives[li], 4), (2, 1, Some(3)));
        assert_eq!(st.owed(&st.lives[li], 3), (1, 1, None));
        assert_eq!(st.owed(&st.lives[li], 2), (0, 0, None));
        let t = tally(&st, false, 4, &HashSet::new());
        assert_eq!((t.expected, t.delivered, t.lost, t.extra), (2, 1, 1, 1));
        // A publish starting before its predecessor sends every later count the slow way.
        st.add_log(&[[4, 350, 420, 1]]);
        assert!(st.log_broken);
        assert_eq!(st.owed(&st.lives[li], 5), (3, 1, Some(3)));
    }

    #[test]
    fn per_stream_channels_owe_one_event_unless_the_publish_failed() {
        let mut st = State::new();
        let a = st.new_life(7, 10);
        st.lives[a].set.insert(0);
        st.new_life(8, 10);
        st.new_life(9, 10);
        let failed: HashSet<u64> = [9].into_iter().collect();
        let t = tally(&st, true, 1, &failed);
        assert_eq!((t.expected, t.delivered, t.lost), (2, 1, 1));
    }

    #[test]
    fn data_events_count_duplicates_and_late_arrivals() {
        let mut st = State::new();
        let li = st.new_life(3, 0);
        let d = |seq: u64, c: u64| crate::target::event_data(1_000, seq, c, 0);
        st.on_data(Some(li), 5_000_000, d(1, 3).as_bytes());
        st.on_data(Some(li), 5_000_000, d(0, 3).as_bytes());
        st.on_data(Some(li), 5_000_000, d(1, 3).as_bytes());
        st.on_data(Some(li), 5_000_000, d(2, 4).as_bytes());
        st.on_data(Some(li), 5_000_000, b"not json");
        assert_eq!(st.p.received, 5);
        assert_eq!(st.duplicated, 1);
        assert_eq!(st.out_of_order, 1);
        assert_eq!(st.misrouted, 1);
        assert_eq!(st.unparsed, 1);
        assert_eq!(st.hist.len(), 2);
        assert!((4_990..=5_010).contains(&st.hist.max()));
    }

    #[test]
    fn exponential_durations_have_roughly_the_mean() {
        let mut rng = 12345;
        let n = 20_000;
        let total: f64 = (0..n)
            .map(|_| exp_duration(&mut rng, 1000).as_secs_f64())
            .sum();
        let mean = total / n as f64;
        assert!((0.9..1.1).contains(&mean), "mean {mean}");
    }
}
