//! The channel table: for each channel, its replay ring and which hub shards have subscribers.
//!
//! Split into `TABLE_SHARDS` independently locked parts chosen by `table_of` (the one place the
//! channel → table mapping is made). A publish holds its channel's part for the whole of "take an
//! id, hand the frame to the interested shards, append to the ring", and a subscribe holds the
//! parts of all its channels while it registers and snapshots the rings. That is what makes a
//! resume exact: every event of those channels is either in the snapshot or queued behind the
//! subscription, never both and never neither.
//!
//! Retention by age and by total memory is a FIFO per part, in publish order: the oldest entries
//! are evicted first. The memory figure is conservative (a frame already dropped from a full ring
//! is still counted until its FIFO entry leaves), so the cap is an upper bound on what rings hold.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::id::EventId;
use crate::replay::{Retained, Ring};

/// Number of independently locked table parts.
pub const TABLE_SHARDS: usize = 64;

/// Bookkeeping bytes charged per retained event on top of its frame (ring slot, FIFO entry,
/// allocation headers), so `replay_max_bytes` bounds real memory, not just payloads.
pub const RETAINED_OVERHEAD_BYTES: usize = 128;

/// Which table part holds `channel`.
pub fn table_of(channel: &str) -> usize {
    // FNV-1a: stable, fast for short names, no per-process seed needed (parts are not exposed).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in channel.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % TABLE_SHARDS as u64) as usize
}

/// Identifies a channel entry for its whole life; never reused.
pub type ChannelId = u64;

pub struct Channel {
    pub id: ChannelId,
    pub name: Arc<str>,
    pub ring: Ring,
    /// (hub shard, number of its streams on this channel), only shards with at least one.
    pub subs: Vec<(u16, u32)>,
}

struct Fifo {
    channel: Arc<str>,
    id: EventId,
    at_ms: u64,
    cost: usize,
}

pub struct TablePart {
    pub channels: HashMap<Arc<str>, Channel>,
    fifo: VecDeque<Fifo>,
    bytes: usize,
    /// Newest id dropped from any channel entry that was removed; new entries start from it so
    /// a resume across a removed-and-recreated channel is reported incomplete.
    watermark: EventId,
}

/// Retention limits for one part.
#[derive(Clone, Copy, Debug)]
pub struct Retention {
    pub capacity: usize,
    pub max_age_ms: u64,
    pub max_bytes: usize,
}

impl Default for TablePart {
    fn default() -> Self {
        TablePart {
            channels: HashMap::new(),
            fifo: VecDeque::new(),
            bytes: 0,
            watermark: EventId::ZERO,
        }
    }
}

impl TablePart {
    /// The entry for `name`, created (with an empty ring) if missing.
    pub fn entry(
        &mut self,
        name: &str,
        capacity: usize,
        next_id: impl FnOnce() -> ChannelId,
    ) -> &mut Channel {
        if !self.channels.contains_key(name) {
            let name: Arc<str> = Arc::from(name);
            let ch = Channel {
                id: next_id(),
                name: name.clone(),
                ring: Ring::new(capacity, self.watermark),
                subs: Vec::new(),
            };
            self.channels.insert(name, ch);
        }
        self.channels.get_mut(name).expect("just inserted")
    }

    /// Appends a published event to `name`'s ring and charges it to this part and to `total`
    /// (all parts together).
    pub fn retain(&mut self, name: &Arc<str>, ev: Retained, total: &AtomicUsize) {
        let cost = ev.frame.len() + RETAINED_OVERHEAD_BYTES;
        let (id, at_ms) = (ev.id, ev.at_ms);
        if let Some(ch) = self.channels.get_mut(name) {
            ch.ring.push(ev);
            self.fifo.push_back(Fifo {
                channel: name.clone(),
                id,
                at_ms,
                cost,
            });
            self.bytes += cost;
            total.fetch_add(cost, Ordering::Relaxed);
        }
    }

    /// Drops events older than the age limit and, oldest first, this part's events while all
    /// parts together (`total`) exceed the byte cap. The cap is global, so one busy channel may
    /// use all of it while the others are quiet; the part that is being written to is the one
    /// that gives memory back.
    pub fn evict(&mut self, now_ms: u64, r: Retention, total: &AtomicUsize) {
        while let Some(front) = self.fifo.front() {
            let too_old = front.at_ms + r.max_age_ms <= now_ms;
            if !too_old && total.load(Ordering::Relaxed) <= r.max_bytes {
                break;
            }
            let f = self.fifo.pop_front().expect("front exists");
            self.bytes -= f.cost;
            total.fetch_sub(f.cost, Ordering::Relaxed);
            if let Some(ch) = self.channels.get_mut(&f.channel) {
                ch.ring.evict_if_oldest(f.id);
                if ch.ring.is_empty() && ch.subs.is_empty() {
                    self.remove(&f.channel);
                }
            }
        }
    }

    /// Adds (`+1`) or removes (`-1`) one stream of `shard` on `name`; drops the entry when it has
    /// neither subscribers nor history.
    pub fn count_sub(&mut self, name: &str, shard: u16, delta: i32) {
        let Some(ch) = self.channels.get_mut(name) else {
            return;
        };
        match ch.subs.iter().position(|(s, _)| *s == shard) {
            Some(i) => {
                let n = ch.subs[i].1 as i64 + delta as i64;
                if n <= 0 {
                    ch.subs.swap_remove(i);
                } else {
                    ch.subs[i].1 = n as u32;
                }
            }
            None if delta > 0 => ch.subs.push((shard, delta as u32)),
            None => {}
        }
        if ch.subs.is_empty() && ch.ring.is_empty() {
            self.remove(name);
        }
    }

    fn remove(&mut self, name: &str) {
        if let Some(ch) = self.channels.remove(name) {
            self.watermark = self.watermark.max(ch.ring.evicted_upto());
        }
    }

    pub fn retained_bytes(&self) -> usize {
        self.bytes
    }

    pub fn retained_events(&self) -> usize {
        self.fifo.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn ev(id: u128, at_ms: u64) -> Retained {
        Retained {
            id: EventId(id),
            frame: Bytes::from_static(b"0123456789"),
            at_ms,
        }
    }

    #[test]
    fn age_eviction_removes_idle_channels_and_raises_the_watermark() {
        let mut t = TablePart::default();
        let total = AtomicUsize::new(0);
        let r = Retention {
            capacity: 10,
            max_age_ms: 1000,
            max_bytes: 1 << 20,
        };
        let name: Arc<str> = t.entry("a", 10, || 1).name.clone();
        t.retain(&name, ev(5, 0), &total);
        t.evict(999, r, &total);
        assert_eq!(t.retained_events(), 1);
        t.evict(1000, r, &total);
        assert!(t.channels.is_empty());
        // Recreated entry knows id 5 was dropped.
        let ch = t.entry("a", 10, || 2);
        assert_eq!(ch.ring.evicted_upto(), EventId(5));
    }

    #[test]
    fn byte_cap_evicts_oldest_first_and_keeps_subscribed_channels() {
        let mut t = TablePart::default();
        let total = AtomicUsize::new(0);
        let r = Retention {
            capacity: 10,
            max_age_ms: u64::MAX / 2,
            max_bytes: 2 * (10 + RETAINED_OVERHEAD_BYTES),
        };
        let a: Arc<str> = t.entry("a", 10, || 1).name.clone();
        t.count_sub("a", 0, 1);
        for i in 1..=3 {
            t.retain(&a, ev(i, 0), &total);
        }
        t.evict(0, r, &total);
        assert_eq!(t.retained_events(), 2);
        assert_eq!(t.channels["a"].ring.oldest().unwrap().id, EventId(2));
        t.count_sub("a", 0, -1);
        assert!(t.channels.contains_key("a"), "history keeps the entry");
    }
}
