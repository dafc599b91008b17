//! The stream writer for HTTP/1 connections this server owns end to end.
//!
//! Why not hyper here: a hyper HTTP/1 connection parked on a streaming response keeps its read
//! and write buffers and dispatcher state, measured at ~19 KB of RSS per idle stream; this writer
//! keeps only the socket, the subscriber handle and an empty `Vec`, so an idle stream costs what
//! its task and socket registration cost (figures in docs/PERFORMANCE.md).
//!
//! Everything queued for the stream is written with one `writev` of up to `MAX_BATCH` frames, so
//! a burst costs one syscall per stream instead of one per frame. While idle the task waits on
//! two things only: the subscriber's waker and the socket's read readiness (so a client that
//! goes away is noticed at once, not at the next heartbeat).

use std::future::poll_fn;
use std::io::IoSlice;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::hub::subscriber::Subscriber;
use crate::hub::{CloseReason, Hub};

/// Frames written per `writev`.
pub const MAX_BATCH: usize = 64;
/// How long a closing stream may take to flush its last frames.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes a client may send after its request before it is treated as misbehaving.
const MAX_INBOUND_BYTES: usize = 64 << 10;

enum Step {
    Done(CloseReason),
    /// The stream was closed with frames still to flush and the socket is not writable.
    Draining,
}

/// Writes `batch` (response head and preamble), then live frames, until the stream ends.
pub async fn serve(mut socket: TcpStream, hub: Hub, sub: Arc<Subscriber>, mut batch: Vec<Bytes>) {
    let reason = match drive(&mut socket, &hub, &sub, &mut batch).await {
        Step::Done(r) => r,
        Step::Draining => match tokio::time::timeout(
            FLUSH_TIMEOUT,
            drive_to_end(&mut socket, &hub, &sub, &mut batch),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => sub.closed().unwrap_or(CloseReason::ClientGone),
        },
    };
    hub.unsubscribe(&sub, reason);
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.shutdown()).await;
}

async fn drive_to_end(
    socket: &mut TcpStream,
    hub: &Hub,
    sub: &Subscriber,
    batch: &mut Vec<Bytes>,
) -> CloseReason {
    loop {
        if let Step::Done(r) = drive(socket, hub, sub, batch).await {
            return r;
        }
        // Draining: wait for the socket to accept more, then continue the flush.
        if socket.writable().await.is_err() {
            return CloseReason::ClientGone;
        }
    }
}

async fn drive(
    socket: &mut TcpStream,
    hub: &Hub,
    sub: &Subscriber,
    batch: &mut Vec<Bytes>,
) -> Step {
    let mut inbound = 0usize;
    poll_fn(|cx| loop {
        if sub.aborted() {
            return Poll::Ready(Step::Done(sub.closed().unwrap_or(CloseReason::ClientGone)));
        }
        // Client gone? Anything it sends after the request is read and discarded.
        match socket.poll_read_ready(cx) {
            Poll::Ready(Ok(())) => {
                let mut junk = [0u8; 512];
                match socket.try_read(&mut junk) {
                    Ok(0) => return Poll::Ready(Step::Done(CloseReason::ClientGone)),
                    Ok(n) => {
                        inbound += n;
                        if inbound > MAX_INBOUND_BYTES {
                            return Poll::Ready(Step::Done(CloseReason::ClientGone));
                        }
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Poll::Ready(Step::Done(CloseReason::ClientGone)),
                }
            }
            Poll::Ready(Err(_)) => return Poll::Ready(Step::Done(CloseReason::ClientGone)),
            Poll::Pending => {}
        }
        if batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match sub.poll_take(cx, batch, room) {
                Poll::Ready(_) | Poll::Pending if !batch.is_empty() => {}
                Poll::Ready(_) => {
                    return Poll::Ready(Step::Done(sub.closed().unwrap_or(CloseReason::ClientGone)))
                }
                Poll::Pending => {
                    if batch.capacity() > MAX_BATCH {
                        *batch = Vec::new();
                    }
                    return Poll::Pending;
                }
            }
        }
        let mut slices = [IoSlice::new(&[]); MAX_BATCH];
        let n = batch.len().min(MAX_BATCH);
        for (s, f) in slices.iter_mut().zip(batch.iter()) {
            *s = IoSlice::new(f);
        }
        match Pin::new(&mut *socket).poll_write_vectored(cx, &slices[..n]) {
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => {
                return Poll::Ready(Step::Done(CloseReason::ClientGone))
            }
            Poll::Ready(Ok(written)) => {
                hub.metrics()
                    .bytes_written
                    .fetch_add(written as u64, Ordering::Relaxed);
                advance(batch, written);
            }
            Poll::Pending => {
                // Also wake for a slow-consumer cut while the client is not reading.
                sub.register(cx.waker());
                if sub.closed().is_some() {
                    return Poll::Ready(Step::Draining);
                }
                return Poll::Pending;
            }
        }
    })
    .await
}

/// Drops the first `n` written bytes from the front of `batch`.
fn advance(batch: &mut Vec<Bytes>, mut n: usize) {
    let mut whole = 0;
    for f in batch.iter_mut() {
        if n >= f.len() {
            n -= f.len();
            whole += 1;
        } else {
            f.advance(n);
            break;
        }
    }
    batch.drain(..whole);
}

#[cfg(test)]
mod tests {
    use super::advance;
    use bytes::Bytes;

    #[test]
    fn advance_handles_partial_frames() {
        let mut b = vec![
            Bytes::from_static(b"abc"),
            Bytes::from_static(b"def"),
            Bytes::from_static(b"g"),
        ];
        advance(&mut b, 4);
        assert_eq!(b, vec![Bytes::from_static(b"ef"), Bytes::from_static(b"g")]);
        advance(&mut b, 3);
        assert!(b.is_empty());
    }
}
