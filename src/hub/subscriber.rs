//! One open stream as the hub sees it: a bounded queue of shared frames and a waker.
//!
//! The shard that owns the stream pushes frames; the stream's writer (the raw HTTP/1 writer or
//! the hyper body, see `sse`) drains them. A push never waits: past `max_queue_bytes` the stream
//! is closed with `CloseReason::SlowConsumer` and the client resumes with Last-Event-ID. Frames
//! are `Bytes` clones of the one allocation made at publish, so a queued frame costs 32 bytes.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use parking_lot::Mutex;

/// Why a stream ended; stable names used in logs and metrics.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The client closed the connection (FIN/RST) or a write failed.
    ClientGone,
    /// The token reached `exp`; an `expired` frame was sent first.
    Expired,
    /// The queue went over `max_queue_bytes`.
    SlowConsumer,
    /// The server is shutting down.
    Shutdown,
    /// An operator closed the user's sessions.
    Revoked,
}

impl CloseReason {
    pub const ALL: [CloseReason; 5] = [
        CloseReason::ClientGone,
        CloseReason::Expired,
        CloseReason::SlowConsumer,
        CloseReason::Shutdown,
        CloseReason::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientGone => "client_gone",
            CloseReason::Expired => "expired",
            CloseReason::SlowConsumer => "slow_consumer",
            CloseReason::Shutdown => "shutdown",
            CloseReason::Revoked => "revoked",
        }
    }

    /// Whether frames still queued are written before the connection closes.
    pub fn flushes(self) -> bool {
        matches!(
            self,
            CloseReason::Expired | CloseReason::Shutdown | CloseReason::Revoked
        )
    }
}

/// Result of offering a frame to a stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Push {
    Queued,
    /// The stream was over its limit and is now closed as a slow consumer.
    Full,
    /// The stream had already closed.
    Closed,
}

/// Descriptive data for audit and logs; never on the hot path.
#[derive(Debug)]
pub struct StreamInfo {
    pub id: u64,
    pub user_id: Option<Box<str>>,
    pub channels: Box<[Arc<str>]>,
    pub connected_at_ms: u64,
    pub remote: Option<SocketAddr>,
}

pub struct Subscriber {
    pub info: StreamInfo,
    /// Shard that owns this stream.
    pub shard: u16,
    /// Slot in the shard's table, set by the shard when it adds the stream.
    pub(crate) slot: AtomicU32,
    queue: Mutex<Queue>,
    waker: AtomicWaker,
}

#[derive(Default)]
struct Queue {
    frames: VecDeque<Bytes>,
    bytes: usize,
    closed: Option<CloseReason>,
}

impl Subscriber {
    pub fn new(info: StreamInfo, shard: u16) -> Self {
        Subscriber {
            info,
            shard,
            slot: AtomicU32::new(u32::MAX),
            queue: Mutex::new(Queue::default()),
            waker: AtomicWaker::new(),
        }
    }

    /// Queues `frame` unless that would exceed `limit` bytes; never blocks on the reader.
    pub fn push(&self, frame: Bytes, limit: usize) -> Push {
        let mut q = self.queue.lock();
        if q.closed.is_some() {
            return Push::Closed;
        }
        if q.bytes + frame.len() > limit && !q.frames.is_empty() {
            q.closed = Some(CloseReason::SlowConsumer);
            q.frames = VecDeque::new();
            q.bytes = 0;
            drop(q);
            self.waker.wake();
            return Push::Full;
        }
        q.bytes += frame.len();
        q.frames.push_back(frame);
        drop(q);
        self.waker.wake();
        Push::Queued
    }

    /// Queues a final frame (ignoring the limit) and closes with `reason`. Returns false if the
    /// stream was already closed.
    pub fn close_with(&self, last: Option<Bytes>, reason: CloseReason) -> bool {
        let mut q = self.queue.lock();
        if q.closed.is_some() {
            return false;
        }
        if !reason.flushes() {
            q.frames = VecDeque::new();
            q.bytes = 0;
        }
        if let Some(f) = last {
            q.bytes += f.len();
            q.frames.push_back(f);
        }
        q.closed = Some(reason);
        drop(q);
        self.waker.wake();
        true
    }

    /// Marks the stream closed by its writer (client gone). Returns false if already closed.
    pub fn close(&self, reason: CloseReason) -> bool {
        self.close_with(None, reason)
    }

    pub fn closed(&self) -> Option<CloseReason> {
        self.queue.lock().closed
    }

    /// Moves up to `max` queued frames into `out`. `Ready(true)` if frames were taken,
    /// `Ready(false)` if the queue is empty and the stream closed, `Pending` (waker registered)
    /// if there is nothing yet.
    pub fn poll_take(&self, cx: &mut Context<'_>, out: &mut Vec<Bytes>, max: usize) -> Poll<bool> {
        if self.take(out, max) {
            return Poll::Ready(true);
        }
        self.waker.register(cx.waker());
        // Re-check after registering so a push that raced the registration is not missed.
        if self.take(out, max) {
            return Poll::Ready(true);
        }
        if self.queue.lock().closed.is_some() {
            Poll::Ready(false)
        } else {
            Poll::Pending
        }
    }

    /// Registers the writer's waker without taking anything (used while a write is pending).
    pub fn register(&self, waker: &std::task::Waker) {
        self.waker.register(waker);
    }

    fn take(&self, out: &mut Vec<Bytes>, max: usize) -> bool {
        let mut q = self.queue.lock();
        if q.frames.is_empty() {
            return false;
        }
        let n = q.frames.len().min(max);
        let q = &mut *q;
        for f in q.frames.drain(..n) {
            q.bytes -= f.len();
            out.push(f);
        }
        if q.frames.is_empty() && q.frames.capacity() > 64 {
            // A burst grew the ring; give the memory back once drained (idle streams stay small).
            q.frames = VecDeque::new();
        }
        true
    }

    /// True when the stream closed for a reason that discards what is still queued.
    pub fn aborted(&self) -> bool {
        matches!(self.queue.lock().closed, Some(r) if !r.flushes())
    }

    pub(crate) fn slot(&self) -> u32 {
        self.slot.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub() -> Subscriber {
        let info = StreamInfo {
            id: 1,
            user_id: None,
            channels: Box::new([]),
            connected_at_ms: 0,
            remote: None,
        };
        Subscriber::new(info, 0)
    }

    #[test]
    fn over_limit_closes_as_slow_consumer_and_drops_the_backlog() {
        let s = sub();
        assert_eq!(s.push(Bytes::from_static(b"aaaa"), 6), Push::Queued);
        assert_eq!(s.push(Bytes::from_static(b"bbbb"), 6), Push::Full);
        assert_eq!(s.closed(), Some(CloseReason::SlowConsumer));
        assert_eq!(s.push(Bytes::from_static(b"c"), 6), Push::Closed);
        assert!(s.aborted());
    }

    #[test]
    fn expiry_keeps_the_backlog_and_appends_the_last_frame() {
        let s = sub();
        s.push(Bytes::from_static(b"one"), 100);
        assert!(s.close_with(Some(Bytes::from_static(b"bye")), CloseReason::Expired));
        let mut out = Vec::new();
        assert!(s.take(&mut out, 10));
        assert_eq!(
            out,
            vec![Bytes::from_static(b"one"), Bytes::from_static(b"bye")]
        );
        assert!(!s.close(CloseReason::ClientGone));
    }
}
