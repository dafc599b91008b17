//! SSE frame encoding. Every event is encoded once into one buffer:
//!
//! ```text
//! id: <36-char UUIDv7>\nevent: <name>\ndata: <minified JSON>\n\n
//! ```
//!
//! The id is not known until the hub's sequencer assigns it, so `event_frame` reserves its 36
//! bytes and `fill_id` writes them in place inside the sequencer's critical section — the only
//! per-event work done under that lock is copying those 36 bytes.
//!
//! Bench: framing a 101 B event takes 80 ns, a 64 KiB one 2.1 µs (`frame`, docs/PERFORMANCE.md).

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::id::{EventId, ID_TEXT_LEN};

const ID_PREFIX: &[u8] = b"id: ";
/// Byte range of the id inside an event frame.
pub const ID_RANGE: std::ops::Range<usize> = ID_PREFIX.len()..ID_PREFIX.len() + ID_TEXT_LEN;

/// Comment heartbeat: ignored by every SSE parser, carries no id.
pub static HEARTBEAT: Bytes = Bytes::from_static(b": heartbeat\n\n");
/// Sent just before a stream is closed because its token expired.
pub static EXPIRED: Bytes =
    Bytes::from_static(b"event: expired\ndata: {\"reason\":\"token_expired\"}\n\n");
/// Sent just before an operator closes a user's streams.
pub static REVOKED: Bytes =
    Bytes::from_static(b"event: expired\ndata: {\"reason\":\"revoked\"}\n\n");

/// An event frame with a blank id, ready for `fill_id`. `data` must be minified JSON (no CR/LF)
/// and `event` a validated name (see `names`).
pub fn event_frame(event: &str, data: &[u8]) -> BytesMut {
    let mut b = BytesMut::with_capacity(ID_RANGE.end + 8 + event.len() + 7 + data.len() + 2);
    b.put_slice(ID_PREFIX);
    b.put_bytes(b'0', ID_TEXT_LEN);
    b.put_slice(b"\nevent: ");
    b.put_slice(event.as_bytes());
    b.put_slice(b"\ndata: ");
    b.put_slice(data);
    b.put_slice(b"\n\n");
    b
}

/// Writes `id` into a frame made by `event_frame`.
pub fn fill_id(frame: &mut BytesMut, id: EventId) {
    let slot: &mut [u8; ID_TEXT_LEN] = (&mut frame[ID_RANGE]).try_into().expect("id slot");
    id.write_text(slot);
}

/// What `connected` reports about a resume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResumeReport {
    pub replayed: usize,
    pub complete: bool,
}

/// `event: connected` with `{"channels":[…]}` (plus `replayed`/`complete` when resuming). Names
/// are JSON-escaped only where JSON requires it, so they are echoed byte-for-byte.
pub fn connected_frame(channels: &[Arc<str>], resume: Option<ResumeReport>) -> Bytes {
    let names: Vec<&str> = channels.iter().map(|c| &**c).collect();
    let mut data = serde_json::json!({ "channels": names });
    if let Some(r) = resume {
        data["replayed"] = r.replayed.into();
        data["complete"] = r.complete.into();
    }
    let mut b = BytesMut::with_capacity(64 + 24 * channels.len());
    b.put_slice(b"event: connected\ndata: ");
    b.put_slice(data.to_string().as_bytes());
    b.put_slice(b"\n\n");
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_layout_and_id_fill() {
        let mut f = event_frame("order.created", br#"{"n":1}"#);
        let id = EventId(0x0190_f5b2_7c1e_7a3b_8c4d_1234_5678_90ab);
        fill_id(&mut f, id);
        assert_eq!(
            &f[..],
            b"id: 0190f5b2-7c1e-7a3b-8c4d-1234567890ab\nevent: order.created\ndata: {\"n\":1}\n\n"
        );
    }

    #[test]
    fn connected_echoes_names_exactly() {
        let ch: Vec<Arc<str>> = vec!["café".into(), "org/1/orders".into()];
        assert_eq!(
            &connected_frame(&ch, None)[..],
            "event: connected\ndata: {\"channels\":[\"café\",\"org/1/orders\"]}\n\n".as_bytes()
        );
        let r = connected_frame(
            &ch[..1],
            Some(ResumeReport {
                replayed: 3,
                complete: false,
            }),
        );
        assert_eq!(&r[..], "event: connected\ndata: {\"channels\":[\"café\"],\"replayed\":3,\"complete\":false}\n\n".as_bytes());
    }
}
