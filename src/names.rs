//! The naming rules for channels, event names and user ids, applied identically at
//! `/push/tokens`, `/push/publish` and when a token is read back on `/push/stream`.
//!
//! Channel names are opaque byte strings to the hub: no escaping, no normalising, so
//! `user:123`, `org/1/orders`, `price#eur` and `café` are all distinct, valid names and are
//! echoed byte-for-byte. What is refused is what cannot survive a trip through a URL, a header or
//! a log line unchanged: whitespace and control characters. Event names go on an SSE `event:` line,
//! so line breaks there would forge fields; they are refused, never stripped.

/// Longest channel name, in bytes of UTF-8.
pub const MAX_CHANNEL_BYTES: usize = 200;
/// Longest event name, in bytes of UTF-8.
pub const MAX_EVENT_BYTES: usize = 128;
/// Longest `userId`, in bytes of UTF-8.
pub const MAX_USER_ID_BYTES: usize = 200;
/// Event names the server itself sends on every stream.
pub const RESERVED_EVENTS: [&str; 2] = ["connected", "expired"];

/// `Ok(())` or why the channel name is refused.
pub fn check_channel(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("channel names must not be empty".into());
    }
    if name.len() > MAX_CHANNEL_BYTES {
        return Err(format!(
            "channel names are at most {MAX_CHANNEL_BYTES} bytes"
        ));
    }
    if let Some(c) = name.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "channel name {name:?} contains {c:?}; whitespace and control characters are not allowed"
        ));
    }
    Ok(())
}

/// `Ok(())` or why the event name is refused.
pub fn check_event(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("event must not be empty".into());
    }
    if name.len() > MAX_EVENT_BYTES {
        return Err(format!("event names are at most {MAX_EVENT_BYTES} bytes"));
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Err(format!("event name contains the control character {c:?}"));
    }
    if name.starts_with(char::is_whitespace) || name.ends_with(char::is_whitespace) {
        return Err("event names must not start or end with whitespace".into());
    }
    if RESERVED_EVENTS.contains(&name) {
        return Err(format!("event name {name:?} is reserved for the server"));
    }
    Ok(())
}

/// `Ok(())` or why the user id is refused.
pub fn check_user_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > MAX_USER_ID_BYTES {
        return Err(format!("userId must be 1 to {MAX_USER_ID_BYTES} bytes"));
    }
    if id.chars().any(|c| c.is_control()) {
        return Err("userId must not contain control characters".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_patterns_are_valid_channels() {
        for c in [
            "orders",
            "user:user_123",
            "order:abc123",
            "session:9f",
            "announcements",
            "org/1/orders",
            "price#eur",
            "café",
            "user%3A123",
        ] {
            assert_eq!(check_channel(c), Ok(()), "{c}");
        }
    }

    #[test]
    fn whitespace_control_and_length_are_refused() {
        for c in ["", "a b", "bad\nname", "tab\there", "nul\0", "nbsp\u{a0}x"] {
            assert!(check_channel(c).is_err(), "{c:?}");
        }
        assert!(check_channel(&"x".repeat(MAX_CHANNEL_BYTES)).is_ok());
        assert!(check_channel(&"x".repeat(MAX_CHANNEL_BYTES + 1)).is_err());
    }

    #[test]
    fn event_names_cannot_inject_fields() {
        for e in [
            "order.created\ndata: {}",
            "a\revent: pwn",
            "",
            " x",
            "x ",
            "connected",
            "expired",
            "a\0",
        ] {
            assert!(check_event(e).is_err(), "{e:?}");
        }
        for e in [
            "order.created",
            "status.changed",
            "notification",
            "a b",
            "message",
        ] {
            assert_eq!(check_event(e), Ok(()), "{e}");
        }
    }
}
