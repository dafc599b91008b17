//! Per-channel replay rings for `Last-Event-ID`.
//!
//! A ring holds the newest `capacity` frames of one channel in id order (ids are assigned and
//! frames appended inside the same critical section, see `hub`), so a resume is a binary search
//! and a copy of `Bytes` handles — no re-encoding, the replayed frame is byte-identical to the
//! live one. Each ring remembers the newest id it ever dropped (`evicted_upto`): a resume from an
//! id older than that is reported as incomplete, never silently partial.
//!
//! A ring has no lock of its own: it lives inside its channel's entry in the hub's channel table
//! and is only touched under that table shard's lock, by publishes to that channel and by
//! subscribes that include it. Age and total-memory limits are enforced by the table shard's
//! eviction queue (`hub::table`).

use std::collections::VecDeque;

use bytes::Bytes;

use crate::id::EventId;

/// One retained event: its id, its complete SSE frame, and when it was published.
#[derive(Clone, Debug)]
pub struct Retained {
    pub id: EventId,
    pub frame: Bytes,
    pub at_ms: u64,
}

/// Outcome of a lookup, merged across the channels of a stream.
#[derive(Debug, Default)]
pub struct ReplayPart {
    pub frames: Vec<(EventId, Bytes)>,
    /// False if some event newer than the resume id was already dropped.
    pub complete: bool,
}

#[derive(Debug)]
pub struct Ring {
    events: VecDeque<Retained>,
    capacity: usize,
    evicted_upto: EventId,
}

impl Ring {
    /// `evicted_upto` seeds what the ring must admit it no longer has (a channel entry recreated
    /// after its history was dropped starts from the table's watermark).
    pub fn new(capacity: usize, evicted_upto: EventId) -> Self {
        Ring {
            events: VecDeque::new(),
            capacity,
            evicted_upto,
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    pub fn evicted_upto(&self) -> EventId {
        self.evicted_upto
    }

    pub fn oldest(&self) -> Option<&Retained> {
        self.events.front()
    }

    pub fn newest(&self) -> Option<&Retained> {
        self.events.back()
    }

    /// Appends an event with an id greater than every id already in the ring, dropping the
    /// oldest when full.
    pub fn push(&mut self, ev: Retained) {
        debug_assert!(
            self.events.back().is_none_or(|b| b.id < ev.id),
            "ring order"
        );
        if self.capacity == 0 {
            self.evicted_upto = self.evicted_upto.max(ev.id);
            return;
        }
        if self.events.len() == self.capacity {
            self.evict_front();
        }
        self.events.push_back(ev);
    }

    /// Drops the oldest event if it is `id` (age or memory eviction). True if it was dropped.
    pub fn evict_if_oldest(&mut self, id: EventId) -> bool {
        if self.events.front().is_some_and(|f| f.id == id) {
            self.evict_front();
            true
        } else {
            false
        }
    }

    fn evict_front(&mut self) {
        if let Some(old) = self.events.pop_front() {
            self.evicted_upto = self.evicted_upto.max(old.id);
        }
        if self.events.is_empty() && self.events.capacity() > 16 {
            self.events = VecDeque::new();
        }
    }

    /// Appends every retained frame newer than `after` to `out`; returns whether that is every
    /// event of this channel newer than `after` (nothing newer was dropped).
    pub fn since(&self, after: EventId, out: &mut Vec<(EventId, Bytes)>) -> bool {
        let start = self.events.partition_point(|e| e.id <= after);
        out.extend(self.events.range(start..).map(|e| (e.id, e.frame.clone())));
        self.evicted_upto <= after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(n: u128) -> Retained {
        Retained {
            id: EventId(n),
            frame: Bytes::from(format!("f{n}")),
            at_ms: 0,
        }
    }

    #[test]
    fn since_returns_newer_events_and_reports_gaps() {
        let mut r = Ring::new(3, EventId::ZERO);
        for n in 1..=5 {
            r.push(ev(n * 10));
        }
        // Holds 30, 40, 50; 10 and 20 were dropped.
        let mut out = Vec::new();
        assert!(r.since(EventId(20), &mut out));
        assert_eq!(
            out.iter().map(|e| e.0 .0).collect::<Vec<_>>(),
            vec![30, 40, 50]
        );
        out.clear();
        assert!(!r.since(EventId(15), &mut out), "20 is gone: incomplete");
        assert_eq!(out.len(), 3);
        out.clear();
        assert!(r.since(EventId(50), &mut out));
        assert!(out.is_empty());
        // An id that falls between retained ids (another channel's id) works the same.
        out.clear();
        assert!(r.since(EventId(35), &mut out));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn age_eviction_only_drops_the_named_oldest() {
        let mut r = Ring::new(10, EventId::ZERO);
        r.push(ev(1));
        r.push(ev(2));
        assert!(!r.evict_if_oldest(EventId(2)));
        assert!(r.evict_if_oldest(EventId(1)));
        assert_eq!(r.evicted_upto(), EventId(1));
        assert_eq!(r.len(), 1);
    }
}
