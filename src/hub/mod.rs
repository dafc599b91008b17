//! The hub: channels, streams and fan-out. Nothing here knows about HTTP.
//!
//! # One publish
//! 1. `Hub::publish` encodes the frame once (`sse::frame`), id left blank.
//! 2. It locks the channel's table part (`table`), then the sequencer: takes the next id, writes
//!    it into the frame, freezes the frame into one `Bytes` and pushes a clone into the queue of
//!    each hub shard that has subscribers on the channel. Sequencer released.
//! 3. Still under the table part, the frame is appended to the channel's replay ring. Released.
//! 4. Each shard (`shard`) offers the frame to its streams with a non-blocking push and reports
//!    how many took it; `publish` returns the sum as `delivered`.
//!
//! # Ordering
//! The sequencer is the only step all publishes share, and it covers only "next id + enqueue to
//! a few shard queues" (tens of nanoseconds), never the fan-out. Because ids are assigned and
//! shard queues filled in the same critical section, every shard queue is in id order, so every
//! stream receives its events in strictly increasing id order, also across its channels. Because
//! the ring append happens under the same table-part lock, each ring is in id order too.
//!
//! # One subscribe
//! `Hub::subscribe` locks the table parts of all the stream's channels (ascending index, so no
//! deadlock), counts the stream in, snapshots the rings for a resume, and enqueues `Add` to its
//! shard — all before unlocking. Every event of those channels is therefore either in the
//! snapshot (published before) or queued behind the `Add` (published after): no gap, no
//! duplicate at the switch from replay to live.
//!
//! Bench: one event to 10k subscribers, all drained: 0.16–0.26 µs per delivery (broadcast: 0.7 µs).

pub mod shard;
pub mod subscriber;
pub mod table;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::config::Config;
use crate::id::{unix_ms, EventId, IdGenerator};
use crate::metrics::Metrics;
use crate::replay::Retained;
use crate::sse::frame;
use shard::{Ack, ChannelUsers, Shard, ShardMsg, ShardStats};
use subscriber::{StreamInfo, Subscriber};
use table::{table_of, ChannelId, Retention, TablePart, TABLE_SHARDS};

pub use subscriber::CloseReason;

/// Which hub shard owns stream `stream_id`.
pub fn shard_of(stream_id: u64, shards: usize) -> usize {
    (stream_id % shards as u64) as usize
}

/// State shared by the hub handle and its shard tasks.
pub struct Shared {
    pub tables: Box<[Mutex<TablePart>]>,
    pub max_queue_bytes: usize,
    pub heartbeat_ms: u64,
    pub metrics: Arc<Metrics>,
    pub shard_stats: Box<[ShardStats]>,
    /// Bytes charged for retained events across all table parts (the `replay_max_bytes` cap).
    pub retained_bytes: std::sync::atomic::AtomicUsize,
}

/// The sequencer: global publish order.
struct Sequencer {
    ids: IdGenerator,
    last: EventId,
}

/// Cheap-clone handle to the hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    sequencer: Mutex<Sequencer>,
    shards: Box<[mpsc::UnboundedSender<ShardMsg>]>,
    retention: Retention,
    next_stream: AtomicU64,
    next_channel: AtomicU64,
    started_ms: u64,
}

/// Result of a publish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// Streams that had the event queued at publish time.
    pub delivered: u32,
}

/// Where a reconnecting client wants to resume from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// No Last-Event-ID: live events only.
    Fresh,
    /// Replay everything retained after this id.
    After(EventId),
    /// A Last-Event-ID that is not one of our ids: nothing can be replayed exactly.
    Malformed,
}

/// What a new stream needs to know.
pub struct SubscribeRequest {
    /// Validated, de-duplicated channel names, in token order.
    pub channels: Vec<String>,
    pub user_id: Option<String>,
    pub expires_at_secs: u64,
    pub resume: Resume,
    pub remote: Option<SocketAddr>,
}

/// A registered stream: the subscriber to drain, and what to write before live events.
pub struct Subscription {
    pub subscriber: Arc<Subscriber>,
    /// `connected` followed by the replayed frames, in id order.
    pub preamble: Vec<Bytes>,
    pub report: Option<frame::ResumeReport>,
}

impl Hub {
    /// Creates the hub and spawns its shard tasks on the current tokio runtime.
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> Hub {
        let n = config.shard_count().clamp(1, u16::MAX as usize);
        let shared = Arc::new(Shared {
            tables: (0..TABLE_SHARDS)
                .map(|_| Mutex::new(TablePart::default()))
                .collect(),
            max_queue_bytes: config.max_queue_bytes,
            heartbeat_ms: config.heartbeat_interval_secs * 1000,
            metrics,
            shard_stats: (0..n).map(|_| ShardStats::default()).collect(),
            retained_bytes: std::sync::atomic::AtomicUsize::new(0),
        });
        let mut senders = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            tokio::spawn(Shard::new(i as u16, shared.clone()).run(rx));
        }
        let seed = u64::from_str_radix(&crate::config::random_hex(8), 16).unwrap_or(0x9E37_79B9);
        Hub {
            inner: Arc::new(Inner {
                shared,
                sequencer: Mutex::new(Sequencer {
                    ids: IdGenerator::new(seed),
                    last: EventId::ZERO,
                }),
                shards: senders.into_boxed_slice(),
                retention: Retention {
                    capacity: config.replay_capacity,
                    max_age_ms: config.replay_max_age_secs * 1000,
                    max_bytes: config.replay_max_bytes,
                },
                next_stream: AtomicU64::new(1),
                next_channel: AtomicU64::new(1),
                started_ms: unix_ms(),
            }),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.shared.metrics
    }

    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    pub fn shard_stats(&self) -> &[ShardStats] {
        &self.inner.shared.shard_stats
    }

    /// Publishes `data` (minified JSON) as `event` on `channel`; both names already validated.
    pub async fn publish(&self, channel: &str, event: &str, data: &[u8]) -> Published {
        let inner = &*self.inner;
        let mut buf = frame::event_frame(event, data);
        let now_ms = unix_ms();
        let retain = inner.retention.capacity > 0;
        let (id, ack) = {
            let mut part = inner.shared.tables[table_of(channel)].lock();
            let entry = if retain {
                Some(part.entry(channel, inner.retention.capacity, || {
                    inner.next_channel.fetch_add(1, Ordering::Relaxed)
                }))
            } else {
                part.channels.get_mut(channel)
            };
            let (targets, channel_id, name) = match entry {
                Some(e) => (e.subs.as_slice(), e.id, Some(e.name.clone())),
                None => (&[][..], 0, None),
            };
            let ack = (!targets.is_empty()).then(|| Ack::new(targets.len()));
            let (id, frame) = {
                let mut seq = inner.sequencer.lock();
                let id = seq.ids.next(now_ms);
                seq.last = id;
                frame::fill_id(&mut buf, id);
                let frame = buf.freeze();
                if let Some((ack, _)) = &ack {
                    for &(shard, _) in targets {
                        let msg = ShardMsg::Deliver {
                            channel: channel_id,
                            frame: frame.clone(),
                            ack: ack.clone(),
                        };
                        let _ = inner.shards[shard as usize].send(msg);
                    }
                }
                (id, frame)
            };
            if let (true, Some(name)) = (retain, name) {
                part.retain(
                    &name,
                    Retained {
                        id,
                        frame,
                        at_ms: now_ms,
                    },
                    &inner.shared.retained_bytes,
                );
                part.evict(now_ms, inner.retention, &inner.shared.retained_bytes);
            }
            (id, ack.map(|(_, rx)| rx))
        };
        inner
            .shared
            .metrics
            .published
            .fetch_add(1, Ordering::Relaxed);
        let delivered = match ack {
            Some(rx) => rx.await.unwrap_or(0),
            None => 0,
        };
        Published { id, delivered }
    }

    /// Registers a stream and prepares its preamble (`connected` plus any replay).
    pub fn subscribe(&self, req: SubscribeRequest) -> Subscription {
        let inner = &*self.inner;
        let stream_id = inner.next_stream.fetch_add(1, Ordering::Relaxed);
        let shard = shard_of(stream_id, inner.shards.len());
        let now_ms = unix_ms();

        let mut order: Vec<(usize, usize)> = req
            .channels
            .iter()
            .enumerate()
            .map(|(i, c)| (table_of(c), i))
            .collect();
        order.sort_unstable();
        let mut guards = Vec::with_capacity(order.len());
        let mut locked: Vec<usize> = Vec::with_capacity(order.len());
        for &(t, _) in &order {
            if locked.last() != Some(&t) {
                locked.push(t);
                guards.push(inner.shared.tables[t].lock());
            }
        }

        let mut names: Vec<Arc<str>> = vec![Arc::from(""); req.channels.len()];
        let mut ids: Vec<ChannelId> = vec![0; req.channels.len()];
        let mut replay: Vec<(EventId, Bytes)> = Vec::new();
        let mut complete = true;
        for &(t, i) in &order {
            let g = &mut guards[locked.binary_search(&t).expect("locked")];
            let ch = g.entry(&req.channels[i], inner.retention.capacity, || {
                inner.next_channel.fetch_add(1, Ordering::Relaxed)
            });
            names[i] = ch.name.clone();
            ids[i] = ch.id;
            if let Resume::After(after) = req.resume {
                complete &= ch.ring.since(after, &mut replay);
            }
            g.count_sub(&req.channels[i], shard as u16, 1);
        }

        let info = StreamInfo {
            id: stream_id,
            user_id: req.user_id.map(String::into_boxed_str),
            channels: names.into_boxed_slice(),
            connected_at_ms: now_ms,
            remote: req.remote,
        };
        let sub = Arc::new(Subscriber::new(info, shard as u16));
        let _ = inner.shards[shard].send(ShardMsg::Add {
            sub: sub.clone(),
            channels: ids.into_boxed_slice(),
            expires_at_secs: req.expires_at_secs,
            now_ms,
        });
        let last_issued = inner.sequencer.lock().last;
        drop(guards);

        let report = match req.resume {
            Resume::Fresh => None,
            Resume::Malformed => {
                replay.clear();
                Some(frame::ResumeReport {
                    replayed: 0,
                    complete: false,
                })
            }
            Resume::After(after) => {
                // Ids from before this (memory-only) process started, or never issued by it,
                // cannot be vouched for.
                let known = after.timestamp_ms() >= inner.started_ms && after <= last_issued;
                // With replay off nothing records which channels had events, so only a resume
                // from the newest id issued is known to have missed nothing.
                let recorded = inner.retention.capacity > 0 || after == last_issued;
                Some(frame::ResumeReport {
                    replayed: replay.len(),
                    complete: complete && known && recorded,
                })
            }
        };
        replay.sort_unstable_by_key(|(id, _)| *id);
        let mut preamble = Vec::with_capacity(1 + replay.len());
        preamble.push(frame::connected_frame(&sub.info.channels, report));
        preamble.extend(replay.into_iter().map(|(_, f)| f));

        let m = &inner.shared.metrics;
        m.streams_opened.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = report {
            m.replay_requests.fetch_add(1, Ordering::Relaxed);
            m.events_replayed
                .fetch_add(r.replayed as u64, Ordering::Relaxed);
            if !r.complete {
                m.replays_incomplete.fetch_add(1, Ordering::Relaxed);
            }
        }
        tracing::info!(
            target: STREAM_LOG,
            stream_id,
            user_id = sub.info.user_id.as_deref().unwrap_or(""),
            channels = sub.info.channels.len(),
            remote = %DisplayOpt(sub.info.remote),
            replayed = report.map_or(0, |r| r.replayed),
            resume_complete = report.map(|r| r.complete),
            "stream opened"
        );
        Subscription {
            subscriber: sub,
            preamble,
            report,
        }
    }

    /// Called by a stream's writer when it ends on its own (client gone, write error).
    ///
    /// Every stream's writer calls this exactly once, when it is done (the raw writer at its end,
    /// the hyper body when dropped), so this is the one place a stream's close is logged, with
    /// the reason it was first closed for (a shard-initiated close wins over the writer's own).
    /// The line is written on the stream's task, never on a shard's fan-out loop.
    pub fn unsubscribe(&self, sub: &Arc<Subscriber>, reason: CloseReason) {
        if sub.close(reason) {
            self.inner.shared.metrics.stream_closed(reason);
        }
        tracing::info!(
            target: STREAM_LOG,
            stream_id = sub.info.id,
            user_id = sub.info.user_id.as_deref().unwrap_or(""),
            channels = sub.info.channels.len(),
            reason = sub.closed().unwrap_or(reason).as_str(),
            duration_ms = unix_ms().saturating_sub(sub.info.connected_at_ms),
            "stream closed"
        );
        let _ = self.inner.shards[sub.shard as usize].send(ShardMsg::Remove(sub.clone()));
    }

    /// Closes every open stream of `user_id`; returns how many.
    pub async fn close_user(&self, user_id: &str) -> usize {
        let mut total = 0;
        for tx in self.inner.shards.iter() {
            let (reply, rx) = oneshot::channel();
            if tx
                .send(ShardMsg::CloseUser {
                    user_id: user_id.to_string(),
                    reply,
                })
                .is_ok()
            {
                total += rx.await.unwrap_or(0);
            }
        }
        total
    }

    /// Open streams of `user_id` with stream ids above `after`, in id order: at most `limit`, and
    /// whether there are more.
    pub async fn list_user(
        &self,
        user_id: &str,
        after: u64,
        limit: usize,
    ) -> (Vec<Arc<Subscriber>>, bool) {
        let mut all = Vec::new();
        for tx in self.inner.shards.iter() {
            let (reply, rx) = oneshot::channel();
            let msg = ShardMsg::ListUser {
                user_id: user_id.to_string(),
                after,
                limit: limit + 1,
                reply,
            };
            if tx.send(msg).is_ok() {
                all.extend(rx.await.unwrap_or_default());
            }
        }
        all.sort_unstable_by_key(|s| s.info.id);
        let more = all.len() > limit;
        all.truncate(limit);
        (all, more)
    }

    /// Who is on `name`: the `limit` smallest distinct user ids (and whether there are more),
    /// streams without a user id, and the channel's retention state (`None`: no entry, i.e. no
    /// stream and no retained event).
    pub async fn channel_users(
        &self,
        name: &str,
        limit: usize,
    ) -> (Option<ChannelState>, ChannelUsers) {
        let state = self.channel_state(name);
        let target = {
            let part = self.inner.shared.tables[table_of(name)].lock();
            part.channels
                .get(name)
                .map(|ch| (ch.id, ch.subs.iter().map(|(s, _)| *s).collect::<Vec<_>>()))
        };
        let mut users = ChannelUsers::default();
        if let Some((channel, shards)) = target {
            for shard in shards {
                let (reply, rx) = oneshot::channel();
                let msg = ShardMsg::ListChannel {
                    channel,
                    limit,
                    reply,
                };
                if self.inner.shards[shard as usize].send(msg).is_ok() {
                    users.merge(rx.await.unwrap_or_default(), limit);
                }
            }
        }
        (state, users)
    }

    /// Ends every stream (flushing what is queued) and stops the shard tasks.
    pub fn shutdown(&self) {
        for tx in self.inner.shards.iter() {
            let _ = tx.send(ShardMsg::Shutdown);
        }
    }

    /// Drops retained events past their age; run periodically so quiet channels expire too.
    pub fn evict_expired(&self) {
        let now = unix_ms();
        for part in self.inner.shared.tables.iter() {
            part.lock()
                .evict(now, self.inner.retention, &self.inner.shared.retained_bytes);
        }
    }

    /// (retained events, retained bytes) across all channels.
    pub fn retained(&self) -> (usize, usize) {
        self.inner.shared.tables.iter().fold((0, 0), |(e, b), p| {
            let p = p.lock();
            (e + p.retained_events(), b + p.retained_bytes())
        })
    }

    /// Subscriber count and retention state of one channel, for operators.
    pub fn channel_state(&self, name: &str) -> Option<ChannelState> {
        let part = self.inner.shared.tables[table_of(name)].lock();
        let ch = part.channels.get(name)?;
        Some(ChannelState {
            subscribers: ch.subs.iter().map(|(_, n)| *n as u64).sum(),
            retained: ch.ring.len(),
            oldest: ch.ring.oldest().map(|r| r.id),
            newest: ch.ring.newest().map(|r| r.id),
            evicted_upto: ch.ring.evicted_upto(),
        })
    }
}

/// Snapshot of one channel for operators.
#[derive(Debug, Clone)]
pub struct ChannelState {
    pub subscribers: u64,
    pub retained: usize,
    pub oldest: Option<EventId>,
    pub newest: Option<EventId>,
    pub evicted_upto: EventId,
}

/// `tracing` target of the one-line-per-stream open and close logs, so they can be filtered
/// on their own (`CASTBRICK_LOG=info,castbrick_push::stream=warn`).
pub const STREAM_LOG: &str = "castbrick_push::stream";

/// Displays `Some(x)` as `x` and `None` as nothing.
struct DisplayOpt<T>(Option<T>);

impl<T: std::fmt::Display> std::fmt::Display for DisplayOpt<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => Ok(()),
        }
    }
}
