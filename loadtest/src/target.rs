//! What is under test: castbrick-push or nginx+nchan, its loopback address, and the exact bytes
//! each profile sends to subscribe and to publish.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::ValueEnum;
use serde::{Deserialize, Serialize};

use crate::http::{encode_query, err};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// castbrick-push: tokens from POST /push/tokens, GET /push/stream, POST /push/publish.
    Castbrick,
    /// nginx + nchan: GET /sub/<channel> (EventSource), POST /pub/<channel>; no tokens.
    Nchan,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Castbrick => "castbrick",
            Kind::Nchan => "nchan",
        }
    }

    pub fn default_url(self) -> &'static str {
        match self {
            Kind::Castbrick => "http://127.0.0.1:8080",
            Kind::Nchan => "http://127.0.0.1:8090",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Target {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// The Host header value.
    pub host: String,
}

/// The event name castbrick streams carry for generator events.
pub const EVENT_NAME: &str = "lt";

impl Target {
    /// Parses `http://host:port[/]` and refuses anything that is not loopback: this tool only
    /// ever loads a server on the machine it runs on.
    pub fn parse(kind: Kind, url: &str) -> io::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| err(format!("{url}: only http:// URLs are supported")))?;
        let authority = rest.trim_end_matches('/');
        if authority.contains('/') {
            return Err(err(format!(
                "{url}: give the server root (http://host:port), not a path"
            )));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (h, p) = v6
                .split_once("]:")
                .ok_or_else(|| err(format!("{url}: expected [::1]:port")))?;
            (h, p)
        } else {
            authority
                .rsplit_once(':')
                .ok_or_else(|| err(format!("{url}: a port is required")))?
        };
        let port: u16 = port.parse().map_err(|_| err(format!("{url}: bad port")))?;
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            host.parse().map_err(|_| {
                err(format!(
                    "{url}: give an IP address or localhost, not {host:?}"
                ))
            })?
        };
        if !ip.is_loopback() {
            return Err(err(format!(
                "{url}: refusing a non-loopback target; castbrick-load only loads 127.0.0.0/8 or ::1"
            )));
        }
        Ok(Self {
            kind,
            addr: SocketAddr::new(ip, port),
            host: authority.to_owned(),
        })
    }

    /// The request that opens one stream on `channel`.
    pub fn subscribe_request(&self, channel: &str, token: &str, last_id: Option<&[u8]>) -> Vec<u8> {
        let mut req = Vec::with_capacity(256 + token.len());
        match self.kind {
            Kind::Castbrick => {
                req.extend_from_slice(b"GET /push/stream?token=");
                req.extend_from_slice(encode_query(token).as_bytes());
            }
            Kind::Nchan => {
                req.extend_from_slice(b"GET /sub/");
                req.extend_from_slice(encode_query(channel).as_bytes());
            }
        }
        req.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        req.extend_from_slice(self.host.as_bytes());
        req.extend_from_slice(b"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n");
        if let Some(id) = last_id {
            req.extend_from_slice(b"Last-Event-ID: ");
            req.extend_from_slice(id);
            req.extend_from_slice(b"\r\n");
        }
        req.extend_from_slice(b"\r\n");
        req
    }

    /// Path, extra headers and body of the request that publishes `data` (a JSON object) to
    /// `channel`. Both profiles carry the same `data` bytes.
    pub fn publish_request(
        &self,
        channel: &str,
        data: &str,
        api_key: Option<&str>,
    ) -> (String, String, String) {
        match self.kind {
            Kind::Castbrick => {
                let body = format!(
                    "{{\"channel\":{},\"event\":\"{EVENT_NAME}\",\"data\":{data}}}",
                    serde_json::Value::from(channel)
                );
                (
                    "/push/publish".to_owned(),
                    format!(
                        "Authorization: Bearer {}\r\nContent-Type: application/json\r\n",
                        api_key.unwrap_or("")
                    ),
                    body,
                )
            }
            Kind::Nchan => (
                format!("/pub/{}", encode_query(channel)),
                "Content-Type: application/json\r\n".to_owned(),
                data.to_owned(),
            ),
        }
    }

    /// Whether streams wait for a `connected` event (castbrick) or count as subscribed once the
    /// response head arrives (nchan registers the subscriber before it answers).
    pub fn has_connected_event(&self) -> bool {
        self.kind == Kind::Castbrick
    }
}

/// The event data the generator publishes: publish time, sequence number, channel index and
/// padding to the requested payload size. The receiver reads them back with [`parse_data`].
pub fn event_data(t_ns: u64, seq: u64, channel: u64, payload_bytes: usize) -> String {
    let mut s = format!("{{\"t\":{t_ns},\"seq\":{seq},\"c\":{channel},\"pad\":\"");
    let pad = payload_bytes.saturating_sub(s.len() + 2);
    s.push_str(&"x".repeat(pad));
    s.push_str("\"}");
    s
}

/// Reads `t`, `seq` and `c` back out of event data without a JSON parser: the generator wrote
/// it, and this runs once per delivery.
pub fn parse_data(data: &[u8]) -> Option<(u64, u64, u64)> {
    Some((
        number_after(data, b"\"t\":")?,
        number_after(data, b"\"seq\":")?,
        number_after(data, b"\"c\":")?,
    ))
}

fn number_after(data: &[u8], key: &[u8]) -> Option<u64> {
    let at = data.windows(key.len()).position(|w| w == key)? + key.len();
    let digits = data[at..]
        .iter()
        .skip_while(|b| **b == b' ')
        .take_while(|b| b.is_ascii_digit());
    let mut n: u64 = 0;
    let mut any = false;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        any = true;
    }
    any.then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(Target::parse(Kind::Castbrick, "http://127.0.0.1:8080").is_ok());
        assert!(Target::parse(Kind::Castbrick, "http://127.9.8.7:80/").is_ok());
        assert!(Target::parse(Kind::Nchan, "http://localhost:8090").is_ok());
        assert!(Target::parse(Kind::Nchan, "http://[::1]:8090").is_ok());
        for bad in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2:80",
            "http://8.8.8.8:80",
            "http://[::2]:80",
            "http://example.com:80",
            "https://127.0.0.1:8080",
            "http://127.0.0.1",
            "http://127.0.0.1:8080/push",
        ] {
            assert!(
                Target::parse(Kind::Castbrick, bad).is_err(),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn event_data_round_trips_and_has_the_requested_size() {
        let d = event_data(1_700_000_000_123_456_789, 42, 7, 100);
        assert_eq!(d.len(), 100);
        assert_eq!(
            parse_data(d.as_bytes()),
            Some((1_700_000_000_123_456_789, 42, 7))
        );
        let small = event_data(1, 2, 3, 0);
        assert_eq!(parse_data(small.as_bytes()), Some((1, 2, 3)));
        assert!(serde_json::from_str::<serde_json::Value>(&small).is_ok());
        assert_eq!(parse_data(b"{\"x\":1}"), None);
    }

    #[test]
    fn subscribe_requests_per_profile() {
        let t = Target::parse(Kind::Castbrick, "http://127.0.0.1:8080").unwrap();
        let r = String::from_utf8(t.subscribe_request("ch", "a.b+c", Some(b"id-1"))).unwrap();
        assert!(
            r.starts_with("GET /push/stream?token=a.b%2Bc HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
        );
        assert!(r.contains("\r\nLast-Event-ID: id-1\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        let n = Target::parse(Kind::Nchan, "http://127.0.0.1:8090").unwrap();
        let r = String::from_utf8(n.subscribe_request("lt-1-2", "", None)).unwrap();
        assert!(r.starts_with("GET /sub/lt-1-2 HTTP/1.1\r\n"));
        assert!(!r.contains("Last-Event-ID"));
    }
}
