//! A hub shard: one task that owns a slice of the open streams and fans events out to them.
//!
//! Streams are assigned to shards by `shard_of` (in `hub`); a shard sees its messages in one
//! FIFO queue, in exactly the order the sequencer emitted them, so every stream receives its
//! events in strictly increasing id order even when publishes to its different channels race.
//!
//! Fan-out policy: a frame is offered to each subscriber with a non-blocking push; a subscriber
//! whose queue is over `max_queue_bytes` is disconnected (`slow_consumer`) and resumes with
//! Last-Event-ID. The shard never waits on a client. Heartbeats and token expiry are one sweep
//! per shard every `SWEEP_INTERVAL`, not a timer per connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use slab::Slab;
use tokio::sync::{mpsc, oneshot};

use super::subscriber::{CloseReason, Push, Subscriber};
use super::table::{table_of, ChannelId};
use super::Shared;
use crate::sse::frame::{EXPIRED, HEARTBEAT, REVOKED};

/// How often a shard checks heartbeats and expiries.
pub const SWEEP_INTERVAL: Duration = Duration::from_millis(250);

/// Counts the streams that took one publish, across every shard it was sent to.
pub struct Ack {
    remaining: AtomicU32,
    delivered: AtomicU32,
    done: Mutex<Option<oneshot::Sender<u32>>>,
}

impl Ack {
    pub fn new(shards: usize) -> (Arc<Ack>, oneshot::Receiver<u32>) {
        let (tx, rx) = oneshot::channel();
        let ack = Ack {
            remaining: AtomicU32::new(shards as u32),
            delivered: AtomicU32::new(0),
            done: Mutex::new(Some(tx)),
        };
        (Arc::new(ack), rx)
    }

    fn finish(&self, delivered: u32) {
        self.delivered.fetch_add(delivered, Ordering::AcqRel);
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(tx) = self.done.lock().take() {
                let _ = tx.send(self.delivered.load(Ordering::Acquire));
            }
        }
    }
}

pub enum ShardMsg {
    Deliver {
        channel: ChannelId,
        frame: Bytes,
        ack: Arc<Ack>,
    },
    Add {
        sub: Arc<Subscriber>,
        channels: Box<[ChannelId]>,
        expires_at_secs: u64,
        now_ms: u64,
    },
    Remove(Arc<Subscriber>),
    /// Close every stream of `user_id` (operator revocation); replies with how many.
    CloseUser {
        user_id: String,
        reply: oneshot::Sender<usize>,
    },
    Shutdown,
    /// Open streams of `user_id` with ids above `after`, in id order, at most `limit`.
    ListUser {
        user_id: String,
        after: u64,
        limit: usize,
        reply: oneshot::Sender<Vec<Arc<Subscriber>>>,
    },
    /// The user ids on `channel`'s streams of this shard: the `limit` smallest distinct ones.
    ListChannel {
        channel: ChannelId,
        limit: usize,
        reply: oneshot::Sender<ChannelUsers>,
    },
}

/// Who is on one channel, from one shard or merged across shards.
#[derive(Debug, Default)]
pub struct ChannelUsers {
    /// Smallest distinct user ids, sorted, at most the requested limit (`truncated` when more).
    pub user_ids: std::collections::BTreeSet<Box<str>>,
    pub truncated: bool,
    /// Streams whose token carried no `userId`.
    pub anonymous: u64,
}

impl ChannelUsers {
    /// Adds `other` and keeps the `limit` smallest ids.
    pub fn merge(&mut self, other: ChannelUsers, limit: usize) {
        self.user_ids.extend(other.user_ids);
        self.truncated |= other.truncated;
        self.anonymous += other.anonymous;
        while self.user_ids.len() > limit {
            self.user_ids.pop_last();
            self.truncated = true;
        }
    }
}

struct Local {
    sub: Arc<Subscriber>,
    channels: Box<[ChannelId]>,
    /// Index of this stream in `by_channel[channels[i]]`, kept current on every removal so a
    /// close is O(channels), not a scan of a channel's whole subscriber list.
    positions: Box<[u32]>,
    expires_at_secs: u64,
    last_ms: u64,
}

/// Shard-local counters, read by metrics without locking the shard.
#[derive(Default)]
pub struct ShardStats {
    pub streams: AtomicU64,
    pub channels: AtomicU64,
}

pub struct Shard {
    index: u16,
    shared: Arc<Shared>,
    streams: Slab<Local>,
    by_channel: HashMap<ChannelId, Vec<u32>>,
    now_ms: u64,
}

impl Shard {
    pub fn new(index: u16, shared: Arc<Shared>) -> Self {
        Shard {
            index,
            shared,
            streams: Slab::new(),
            by_channel: HashMap::new(),
            now_ms: crate::id::unix_ms(),
        }
    }

    /// Runs until `Shutdown`, then closes every stream it owns.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ShardMsg>) {
        let mut sweep = tokio::time::interval(SWEEP_INTERVAL);
        sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch = Vec::with_capacity(256);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        break;
                    }
                    self.now_ms = crate::id::unix_ms();
                    for msg in batch.drain(..) {
                        if !self.handle(msg) {
                            self.close_all(CloseReason::Shutdown);
                            return;
                        }
                    }
                }
                _ = sweep.tick() => self.sweep(),
            }
        }
        self.close_all(CloseReason::Shutdown);
    }

    fn handle(&mut self, msg: ShardMsg) -> bool {
        match msg {
            ShardMsg::Deliver {
                channel,
                frame,
                ack,
            } => {
                let n = self.deliver(channel, frame);
                ack.finish(n);
            }
            ShardMsg::Add {
                sub,
                channels,
                expires_at_secs,
                now_ms,
            } => {
                let slot = self.streams.vacant_key() as u32;
                let positions = channels
                    .iter()
                    .map(|ch| {
                        let list = self.by_channel.entry(*ch).or_default();
                        list.push(slot);
                        (list.len() - 1) as u32
                    })
                    .collect();
                let inserted = self.streams.insert(Local {
                    sub: sub.clone(),
                    channels,
                    positions,
                    expires_at_secs,
                    last_ms: now_ms,
                });
                debug_assert_eq!(inserted as u32, slot);
                sub.slot.store(slot, Ordering::Release);
                self.publish_stats();
            }
            ShardMsg::Remove(sub) => {
                let slot = sub.slot();
                if self
                    .streams
                    .get(slot as usize)
                    .is_some_and(|l| Arc::ptr_eq(&l.sub, &sub))
                {
                    self.remove(slot);
                }
            }
            ShardMsg::CloseUser { user_id, reply } => {
                let slots: Vec<u32> = self
                    .streams
                    .iter()
                    .filter(|(_, l)| l.sub.info.user_id.as_deref() == Some(user_id.as_str()))
                    .map(|(k, _)| k as u32)
                    .collect();
                let mut n = 0;
                for slot in slots {
                    if self.streams[slot as usize]
                        .sub
                        .close_with(Some(REVOKED.clone()), CloseReason::Revoked)
                    {
                        self.shared.metrics.stream_closed(CloseReason::Revoked);
                        n += 1;
                    }
                    self.remove(slot);
                }
                let _ = reply.send(n);
            }
            ShardMsg::Shutdown => return false,
            ShardMsg::ListUser {
                user_id,
                after,
                limit,
                reply,
            } => {
                // A scan, not an index: audits are rare, and an index would cost every stream
                // memory. A scan of 50k streams is well under a millisecond of this shard's time.
                let mut found: Vec<Arc<Subscriber>> = self
                    .streams
                    .iter()
                    .map(|(_, l)| &l.sub)
                    .filter(|s| {
                        s.info.id > after
                            && s.info.user_id.as_deref() == Some(user_id.as_str())
                            && s.closed().is_none()
                    })
                    .cloned()
                    .collect();
                found.sort_unstable_by_key(|s| s.info.id);
                found.truncate(limit);
                let _ = reply.send(found);
            }
            ShardMsg::ListChannel {
                channel,
                limit,
                reply,
            } => {
                let mut users = ChannelUsers::default();
                for &slot in self.by_channel.get(&channel).into_iter().flatten() {
                    match &self.streams[slot as usize].sub.info.user_id {
                        Some(u) => {
                            if !users.user_ids.contains(u) {
                                users.user_ids.insert(u.clone());
                                if users.user_ids.len() > limit {
                                    users.user_ids.pop_last();
                                    users.truncated = true;
                                }
                            }
                        }
                        None => users.anonymous += 1,
                    }
                }
                let _ = reply.send(users);
            }
        }
        true
    }

    /// Offers `frame` to every stream of this shard on `channel`; returns how many queued it.
    fn deliver(&mut self, channel: ChannelId, frame: Bytes) -> u32 {
        let Some(slots) = self.by_channel.get(&channel) else {
            return 0;
        };
        let limit = self.shared.max_queue_bytes;
        let mut delivered = 0;
        let mut slow = Vec::new();
        for &slot in slots {
            let local = &mut self.streams[slot as usize];
            match local.sub.push(frame.clone(), limit) {
                Push::Queued => {
                    delivered += 1;
                    local.last_ms = self.now_ms;
                }
                Push::Full => slow.push(slot),
                Push::Closed => {}
            }
        }
        for slot in slow {
            self.shared.metrics.stream_closed(CloseReason::SlowConsumer);
            self.remove(slot);
        }
        self.shared
            .metrics
            .deliveries
            .fetch_add(delivered as u64, Ordering::Relaxed);
        delivered
    }

    /// Heartbeats for streams quiet for (almost) the heartbeat interval; closes expired ones.
    fn sweep(&mut self) {
        self.now_ms = crate::id::unix_ms();
        let now_secs = self.now_ms / 1000;
        // Send a little early so that, with the sweep's own granularity, no gap exceeds the interval.
        let quiet_ms = self
            .shared
            .heartbeat_ms
            .saturating_sub(2 * SWEEP_INTERVAL.as_millis() as u64)
            .max(1);
        let mut gone = Vec::new();
        for (slot, local) in self.streams.iter_mut() {
            if local.expires_at_secs <= now_secs {
                if local
                    .sub
                    .close_with(Some(EXPIRED.clone()), CloseReason::Expired)
                {
                    self.shared.metrics.stream_closed(CloseReason::Expired);
                }
                gone.push(slot as u32);
            } else if self.now_ms.saturating_sub(local.last_ms) >= quiet_ms {
                local.last_ms = self.now_ms;
                if local
                    .sub
                    .push(HEARTBEAT.clone(), self.shared.max_queue_bytes)
                    == Push::Full
                {
                    self.shared.metrics.stream_closed(CloseReason::SlowConsumer);
                    gone.push(slot as u32);
                }
            }
        }
        for slot in gone {
            self.remove(slot);
        }
    }

    /// Drops a stream from this shard's tables and from the channel table's counts.
    fn remove(&mut self, slot: u32) {
        let local = self.streams.remove(slot as usize);
        for (ch, &pos) in local.channels.iter().zip(local.positions.iter()) {
            let Some(list) = self.by_channel.get_mut(ch) else {
                continue;
            };
            debug_assert_eq!(list[pos as usize], slot);
            list.swap_remove(pos as usize);
            if let Some(&moved) = list.get(pos as usize) {
                // The last entry moved into `pos`: tell its stream where it now is.
                let m = &mut self.streams[moved as usize];
                if let Some(j) = m.channels.iter().position(|c| c == ch) {
                    m.positions[j] = pos;
                }
            }
            if list.is_empty() {
                self.by_channel.remove(ch);
            }
        }
        for name in local.sub.info.channels.iter() {
            self.shared.tables[table_of(name)]
                .lock()
                .count_sub(name, self.index, -1);
        }
        self.publish_stats();
    }

    fn close_all(&mut self, reason: CloseReason) {
        let slots: Vec<u32> = self.streams.iter().map(|(k, _)| k as u32).collect();
        for slot in slots {
            if self.streams[slot as usize].sub.close(reason) {
                self.shared.metrics.stream_closed(reason);
            }
            self.remove(slot);
        }
    }

    fn publish_stats(&self) {
        let stats = &self.shared.shard_stats[self.index as usize];
        stats
            .streams
            .store(self.streams.len() as u64, Ordering::Relaxed);
        stats
            .channels
            .store(self.by_channel.len() as u64, Ordering::Relaxed);
    }
}
