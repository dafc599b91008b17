//! A stream served through hyper (HTTP/2, or an HTTP/1.1 keep-alive connection whose first
//! request was something else): an `http_body::Body` that yields the preamble, then the
//! subscriber's queued frames. Dropping the body (client gone, h2 reset) unsubscribes.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

use crate::hub::subscriber::Subscriber;
use crate::hub::{CloseReason, Hub};

pub struct SseBody {
    hub: Hub,
    sub: Arc<Subscriber>,
    pending: std::collections::VecDeque<Bytes>,
    batch: Vec<Bytes>,
    done: bool,
}

impl SseBody {
    pub fn new(hub: Hub, sub: Arc<Subscriber>, preamble: Vec<Bytes>) -> Self {
        SseBody {
            hub,
            sub,
            pending: preamble.into(),
            batch: Vec::new(),
            done: false,
        }
    }
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        if this.sub.aborted() {
            this.done = true;
            return Poll::Ready(None);
        }
        if this.pending.is_empty() {
            match this.sub.poll_take(cx, &mut this.batch, 64) {
                Poll::Ready(true) => this.pending.extend(this.batch.drain(..)),
                Poll::Ready(false) => {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        let frame = this.pending.pop_front().expect("non-empty");
        this.hub
            .metrics()
            .bytes_written
            .fetch_add(frame.len() as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(frame))))
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SseBody {
    fn drop(&mut self) {
        self.hub.unsubscribe(&self.sub, CloseReason::ClientGone);
    }
}
