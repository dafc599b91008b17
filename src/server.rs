//! The accept loop and the per-connection protocol choice.
//!
//! Each connection's first bytes decide its path:
//! - `GET /push/stream` on HTTP/1.x that passes every check is served by this module directly:
//!   the response head and frames go out through `sse::writer`, and the request buffer is freed
//!   before the stream settles into waiting. This is the path that keeps an idle stream small.
//! - Everything else (other endpoints, HTTP/2 prior knowledge, and stream requests that fail a
//!   check, so the error comes from the one error path) is handed to hyper with the bytes
//!   already read put back in front of the socket.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};

use crate::broker::MemoryBroker;
use crate::config::{Config, ConfigError};
use crate::http::{self, stream::StreamHead, AppState};
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::sse::writer;

/// Longest request head read before the protocol is chosen.
pub const MAX_HEAD_BYTES: usize = 16 << 10;
/// Time a client gets to send its request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest wait for open connections to finish after shutdown starts.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Listen backlog asked for by `bind` (the kernel caps it at `net.core.somaxconn`). tokio's own
/// `TcpListener::bind` asks for 128, which a reconnect storm (every client of a restarted
/// server coming back within a second) overflows: dropped SYNs cost clients a 1 s retransmit.
pub const LISTEN_BACKLOG: u32 = 4096;

const STREAM_PREFIX: &[u8] = b"GET /push/stream";

/// Binds `addr` with `LISTEN_BACKLOG` and `SO_REUSEADDR` (restart without waiting out
/// TIME_WAIT). Must run inside the tokio runtime.
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("listener: {0}")]
    Io(#[from] io::Error),
}

/// Runs the whole server on `listener` until `shutdown` resolves, then drains: new streams are
/// refused, every stream is closed after flushing what is queued, and hyper connections finish
/// their requests (bounded by `DRAIN_TIMEOUT`). With `config.admin_listen` set, that address is
/// bound too and serves `/metrics`, `/healthz` and `/readyz` (which then leave the main listener).
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    let admin = match config.admin_listen {
        Some(addr) => Some(bind(addr)?),
        None => None,
    };
    run_with_admin(listener, admin, config, shutdown).await
}

/// `run` with the admin listener already bound (tests bind `127.0.0.1:0` for both). Passing one
/// moves the operator paths to it, whatever `config.admin_listen` says.
///
/// The admin listener keeps answering while the main one drains, so `/readyz` is seen turning
/// 503 by probes that open new connections; it closes when `run_with_admin` returns.
pub async fn run_with_admin(
    listener: TcpListener,
    admin: Option<TcpListener>,
    mut config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    config.validate()?;
    if let Some(a) = &admin {
        config.admin_listen = Some(a.local_addr()?);
        tracing::info!(addr = %a.local_addr()?, "admin listener: /metrics, /healthz, /readyz");
    }
    let metrics = Arc::new(Metrics::default());
    let hub = Hub::new(&config, metrics.clone());
    let broker = Arc::new(MemoryBroker::new(hub.clone()));
    let state = Arc::new(AppState::new(config, hub.clone(), broker, metrics));
    let (stop_tx, stop_rx) = watch::channel(false);
    let conns = Arc::new(ConnCount::default());
    let (admin_stop_tx, admin_stop_rx) = watch::channel(false);
    let admin_task = admin.map(|l| tokio::spawn(admin_loop(l, state.clone(), admin_stop_rx)));
    let writers = writer_runtime()?;

    let evictor = {
        let hub = hub.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => hub.evict_expired(),
                    _ = stop.changed() => break,
                }
            }
        })
    };

    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let guard = conns.enter();
                    let state = state.clone();
                    let stop = stop_rx.clone();
                    let writers = writers.handle().clone();
                    tokio::spawn(connection(state, socket, peer, stop, writers, guard));
                }
                Err(e) => {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }

    tracing::info!("shutting down: draining streams");
    drop(listener);
    state.draining.store(true, Ordering::Relaxed);
    hub.shutdown();
    let _ = stop_tx.send(true);
    evictor.abort();
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, conns.idle()).await;
    let _ = admin_stop_tx.send(true);
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    writers.shutdown_background();
    Ok(())
}

/// The runtime that runs raw-path stream writers, one thread per core.
///
/// Kept apart from the runtime that accepts connections and answers API requests so that a
/// publish never waits in a run queue behind the thousands of writers the previous publish
/// woke: with one shared runtime, a 10,000-stream burst measured ~80 ms per publish round trip,
/// all of it queueing (docs/PERFORMANCE.md). The operating system shares the cores between the
/// two; the writers just cannot starve the API.
fn writer_runtime() -> io::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("cb-writer")
        .enable_all()
        .build()
}

/// Accepts on the admin listener until `stop`; each connection is plain hyper, routed by
/// `http::handle_admin`, and is told to finish when `stop` fires.
async fn admin_loop(listener: TcpListener, state: Arc<AppState>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let io = Rewind::new(Bytes::new(), socket);
                    tokio::spawn(serve_hyper(state.clone(), io, peer, stop.clone(), Role::Admin));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// Which routes a hyper connection serves.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Main,
    Admin,
}

#[derive(Default)]
struct ConnCount {
    open: AtomicUsize,
    notify: Notify,
}

struct ConnGuard(Arc<ConnCount>);

impl ConnCount {
    fn enter(self: &Arc<Self>) -> ConnGuard {
        self.open.fetch_add(1, Ordering::Relaxed);
        ConnGuard(self.clone())
    }

    async fn idle(&self) {
        loop {
            let n = self.notify.notified();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            n.await;
        }
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.notify.notify_waiters();
        }
    }
}

enum Sniffed {
    /// A complete HTTP/1 head for `GET /push/stream`; its length.
    StreamHead(usize),
    /// Anything else: let hyper read it.
    Other,
    Closed,
}

async fn connection(
    state: Arc<AppState>,
    mut socket: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
    writers: tokio::runtime::Handle,
    guard: ConnGuard,
) {
    let _ = socket.set_nodelay(true);
    let mut buf = BytesMut::with_capacity(1024);
    let sniffed = match tokio::time::timeout(HEAD_TIMEOUT, sniff(&mut socket, &mut buf)).await {
        Ok(Ok(s)) => s,
        _ => return,
    };
    if let Sniffed::Closed = sniffed {
        return;
    }
    if let Sniffed::StreamHead(len) = sniffed {
        if let Some((sub, batch)) = raw_stream(&state, &buf[..len], peer) {
            let hub = state.hub.clone();
            // Move the socket to the writer runtime's reactor; this task ends here.
            match socket.into_std() {
                Ok(std_socket) => {
                    writers.spawn(async move {
                        match TcpStream::from_std(std_socket) {
                            Ok(socket) => writer::serve(socket, hub, sub, batch).await,
                            Err(_) => hub.unsubscribe(&sub, crate::hub::CloseReason::ClientGone),
                        }
                        drop(guard);
                    });
                }
                Err(_) => hub.unsubscribe(&sub, crate::hub::CloseReason::ClientGone),
            }
            return;
        }
    }
    // Everything else, including stream requests that failed a check (hyper answers the error).
    let io = Rewind::new(buf.freeze(), socket);
    Box::pin(serve_hyper(state, io, peer, stop, Role::Main)).await;
}

/// Reads just enough to choose a path.
async fn sniff(socket: &mut TcpStream, buf: &mut BytesMut) -> io::Result<Sniffed> {
    loop {
        if socket.read_buf(buf).await? == 0 {
            return Ok(if buf.is_empty() {
                Sniffed::Closed
            } else {
                Sniffed::Other
            });
        }
        let n = buf.len().min(STREAM_PREFIX.len());
        if buf[..n] != STREAM_PREFIX[..n] {
            return Ok(Sniffed::Other); // includes the HTTP/2 preface, detected by hyper
        }
        if n == STREAM_PREFIX.len() {
            if let Some(end) = find_head_end(buf) {
                return Ok(Sniffed::StreamHead(end));
            }
            if buf.len() > MAX_HEAD_BYTES {
                return Ok(Sniffed::Other);
            }
        }
    }
}

fn find_head_end(b: &[u8]) -> Option<usize> {
    // CRLF per the RFC; bare LF line ends are accepted too, as httparse and hyper accept them.
    let crlf = b.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
    let lf = b.windows(2).position(|w| w == b"\n\n").map(|p| p + 2);
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Parses and checks a raw stream request; `Some((subscriber, head + preamble))` if it can be
/// served on the raw path, `None` to let hyper answer it (errors, odd requests).
fn raw_stream(
    state: &AppState,
    head: &[u8],
    peer: SocketAddr,
) -> Option<(Arc<crate::hub::subscriber::Subscriber>, Vec<Bytes>)> {
    let mut headers = [httparse::EMPTY_HEADER; 48];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    let path = req.path?;
    let (route, query) = match path.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (path, None),
    };
    if route != "/push/stream" {
        return None;
    }
    let mut sh = StreamHead {
        query,
        ..StreamHead::default()
    };
    for h in req.headers.iter() {
        let value = std::str::from_utf8(h.value).ok();
        if h.name.eq_ignore_ascii_case("authorization") {
            sh.authorization = value;
        } else if h.name.eq_ignore_ascii_case("last-event-id") {
            sh.last_event_id = value;
        } else if h.name.eq_ignore_ascii_case("origin") {
            sh.origin = value;
        } else if h.name.eq_ignore_ascii_case("upgrade")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
            || (h.name.eq_ignore_ascii_case("content-length") && h.value != b"0")
        {
            return None; // unusual for a stream request: hyper handles it properly
        }
    }
    let opened = http::stream::open(state, &sh, Some(peer), false).ok()?;
    let sub = opened.subscription?;
    let mut batch = Vec::with_capacity(1 + sub.preamble.len());
    batch.push(http::stream::raw_head(opened.allow_origin.as_deref()));
    batch.extend(sub.preamble);
    Some((sub.subscriber, batch))
}

async fn serve_hyper(
    state: Arc<AppState>,
    io: Rewind,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    role: Role,
) {
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move {
            Ok::<_, std::convert::Infallible>(match role {
                Role::Main => http::handle(state, req, Some(peer)).await,
                Role::Admin => http::handle_admin(state, req).await,
            })
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        // A client that half-closes after its request (`printf … | nc -N`) still gets an answer.
        .half_close(true)
        .keep_alive(true);
    builder.http2().timer(TokioTimer::new());
    let conn = builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
}

/// A socket with bytes already read put back in front of it.
struct Rewind {
    pre: Bytes,
    inner: TcpStream,
}

impl Rewind {
    fn new(pre: Bytes, inner: TcpStream) -> Self {
        Rewind { pre, inner }
    }
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.pre.is_empty() {
            let n = self.pre.len().min(out.remaining());
            out.put_slice(&self.pre[..n]);
            self.pre.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, b)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        b: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, b)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Raises the soft open-files limit to the hard limit (each stream is one descriptor).
pub fn raise_nofile_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 {
            if r.rlim_cur < r.rlim_max {
                r.rlim_cur = r.rlim_max;
                libc::setrlimit(libc::RLIMIT_NOFILE, &r);
            }
            return r.rlim_cur;
        }
    }
    0
}
