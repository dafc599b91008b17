//! Event ids: UUIDv7 values that are strictly increasing across the whole server.
//!
//! One id orders every channel, so a single `Last-Event-ID` resumes all channels of a
//! multi-channel stream. The generator is not thread-safe on purpose: it lives inside the hub's
//! sequencer lock (see `hub`), which is what makes "id order" and "queue order" the same thing.
//!
//! Layout (RFC 9562, method 2 "monotonic random"): 48-bit Unix milliseconds, version 7, then a
//! 74-bit counter spread over `rand_a` and `rand_b`. A new millisecond reseeds the counter with a
//! random 62-bit value (leaving headroom); the same millisecond, or a clock that stepped back,
//! increments it, so ids never repeat or go backwards.

use std::fmt;

/// A UUIDv7 event id; ordering is the server's global publish order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId(pub u128);

/// Length of the hyphenated text form.
pub const ID_TEXT_LEN: usize = 36;

impl EventId {
    pub const ZERO: EventId = EventId(0);

    /// Parses the hyphenated (or simple) text form; `None` for anything else.
    pub fn parse(text: &str) -> Option<EventId> {
        let u = uuid::Uuid::try_parse(text.trim()).ok()?;
        Some(EventId(u.as_u128()))
    }

    /// Unix milliseconds carried in the id.
    pub fn timestamp_ms(self) -> u64 {
        (self.0 >> 80) as u64
    }

    /// Writes the lowercase hyphenated form into `out`.
    pub fn write_text(self, out: &mut [u8; ID_TEXT_LEN]) {
        uuid::Uuid::from_u128(self.0).hyphenated().encode_lower(out);
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; ID_TEXT_LEN];
        self.write_text(&mut buf);
        f.write_str(std::str::from_utf8(&buf).expect("uuid text is ascii"))
    }
}

/// Monotonic UUIDv7 source. Not `Sync`: callers serialise access (the hub's sequencer).
pub struct IdGenerator {
    last_ms: u64,
    counter: u128,
    rng: u64,
}

const COUNTER_BITS: u32 = 74;
const COUNTER_MAX: u128 = (1 << COUNTER_BITS) - 1;

impl IdGenerator {
    pub fn new(seed: u64) -> Self {
        IdGenerator {
            last_ms: 0,
            counter: 0,
            rng: seed | 1,
        }
    }

    /// The next id, strictly greater than every id this generator returned before.
    pub fn next(&mut self, now_ms: u64) -> EventId {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.counter = (self.random() >> 2) as u128;
        } else if self.counter == COUNTER_MAX {
            // 2^74 ids in one millisecond cannot happen; borrow the next millisecond anyway.
            self.last_ms += 1;
            self.counter = 0;
        } else {
            self.counter += 1;
        }
        let ms = (self.last_ms as u128 & 0xFFFF_FFFF_FFFF) << 80;
        let rand_a = (self.counter >> 62) & 0xFFF; // top 12 counter bits
        let rand_b = self.counter & ((1 << 62) - 1); // low 62 counter bits
        EventId(ms | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b)
    }

    fn random(&mut self) -> u64 {
        // xorshift64*: cheap, seeded from the OS at start-up; ids need uniqueness, not secrecy.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Milliseconds since the Unix epoch from the system clock.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_v7_and_strictly_increasing_even_when_the_clock_steps_back() {
        let mut g = IdGenerator::new(42);
        let mut prev = EventId::ZERO;
        for now in [1000u64, 1000, 1000, 999, 500, 1001, 1001, 2000, 10] {
            let id = g.next(now);
            assert!(id > prev, "{id} after {prev}");
            let u = uuid::Uuid::from_u128(id.0);
            assert_eq!(u.get_version_num(), 7);
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122);
            prev = id;
        }
        assert_eq!(prev.timestamp_ms(), 2000);
    }

    #[test]
    fn text_round_trip_and_text_order_matches_id_order() {
        let mut g = IdGenerator::new(7);
        let a = g.next(1_700_000_000_000);
        let b = g.next(1_700_000_000_000);
        assert_eq!(EventId::parse(&a.to_string()), Some(a));
        assert!(a.to_string() < b.to_string());
        assert_eq!(EventId::parse("not-an-id"), None);
    }
}
