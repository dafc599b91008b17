//! The set of event sequence numbers one stream received, as sorted inclusive ranges.
//!
//! In-order delivery keeps it at one range (16 bytes), whatever the event count; a gap or a
//! late event adds a range. Every insert says whether the number was new, late or a duplicate,
//! which is how the generator counts duplicates exactly rather than by totals.

#[derive(Debug, Default, Clone)]
pub struct SeqSet {
    ranges: Vec<(u64, u64)>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Insert {
    /// Newer than everything seen so far.
    InOrder,
    /// New, but older than something already seen.
    Late,
    Duplicate,
}

impl SeqSet {
    pub fn insert(&mut self, seq: u64) -> Insert {
        // Fast path: the next number after the newest range.
        if let Some(last) = self.ranges.last_mut() {
            if seq == last.1.wrapping_add(1) {
                last.1 = seq;
                return Insert::InOrder;
            }
            if seq > last.1 {
                self.ranges.push((seq, seq));
                return Insert::InOrder;
            }
        } else {
            self.ranges.push((seq, seq));
            return Insert::InOrder;
        }
        // `idx`: the first range starting after `seq`.
        let idx = self.ranges.partition_point(|&(lo, _)| lo <= seq);
        if idx > 0 && self.ranges[idx - 1].1 >= seq {
            return Insert::Duplicate;
        }
        let joins_prev = idx > 0 && self.ranges[idx - 1].1 + 1 == seq;
        let joins_next = idx < self.ranges.len() && self.ranges[idx].0 == seq + 1;
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[idx - 1].1 = self.ranges[idx].1;
                self.ranges.remove(idx);
            }
            (true, false) => self.ranges[idx - 1].1 = seq,
            (false, true) => self.ranges[idx].0 = seq,
            (false, false) => self.ranges.insert(idx, (seq, seq)),
        }
        Insert::Late
    }

    /// How many numbers in `lo..=hi` the set holds.
    pub fn count_in(&self, lo: u64, hi: u64) -> u64 {
        if lo > hi {
            return 0;
        }
        self.ranges
            .iter()
            .filter(|&&(a, b)| b >= lo && a <= hi)
            .map(|&(a, b)| b.min(hi) - a.max(lo) + 1)
            .sum()
    }

    /// The numbers in `lo..=hi` that the set lacks, in order.
    pub fn missing_in(&self, lo: u64, hi: u64) -> impl Iterator<Item = u64> + '_ {
        let mut next = lo;
        let mut ranges = self
            .ranges
            .iter()
            .filter(move |&&(_, b)| b >= lo)
            .peekable();
        std::iter::from_fn(move || {
            while next <= hi {
                match ranges.peek() {
                    Some(&&(a, b)) if a <= next => {
                        next = b.saturating_add(1);
                        ranges.next();
                    }
                    _ => {
                        let n = next;
                        next += 1;
                        return Some(n);
                    }
                }
            }
            None
        })
    }

    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| b - a + 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_stays_one_range() {
        let mut s = SeqSet::default();
        for n in 0..1000 {
            assert_eq!(s.insert(n), Insert::InOrder);
        }
        assert_eq!(s.ranges, vec![(0, 999)]);
        assert_eq!(s.len(), 1000);
    }

    #[test]
    fn duplicates_and_late_arrivals_are_told_apart() {
        let mut s = SeqSet::default();
        assert_eq!(s.insert(5), Insert::InOrder);
        assert_eq!(s.insert(8), Insert::InOrder);
        assert_eq!(s.insert(5), Insert::Duplicate);
        assert_eq!(s.insert(7), Insert::Late);
        assert_eq!(s.insert(6), Insert::Late);
        assert_eq!(s.ranges, vec![(5, 8)]);
        assert_eq!(s.insert(2), Insert::Late);
        assert_eq!(s.insert(8), Insert::Duplicate);
        assert_eq!(s.insert(3), Insert::Late);
        assert_eq!(s.ranges, vec![(2, 3), (5, 8)]);
    }

    #[test]
    fn counts_and_missing_within_a_window() {
        let mut s = SeqSet::default();
        for n in [0, 1, 2, 5, 6, 9] {
            s.insert(n);
        }
        assert_eq!(s.count_in(0, 9), 6);
        assert_eq!(s.count_in(2, 5), 2);
        assert_eq!(s.count_in(3, 4), 0);
        assert_eq!(s.count_in(4, 3), 0);
        assert_eq!(
            s.missing_in(0, 10).collect::<Vec<_>>(),
            vec![3, 4, 7, 8, 10]
        );
        assert_eq!(s.missing_in(5, 6).count(), 0);
        assert_eq!(
            SeqSet::default().missing_in(1, 3).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
    }
}
