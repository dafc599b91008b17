//! Regressions from a newcomer's break-it pass: HTTP/1 requests that are legal but unusual must
//! still be answered.

mod common;

use std::io::{Read, Write};
use std::net::Shutdown;

use common::{SseStream, TestServer};

/// A stream request with bare-LF line ends used to wait for a CRLF head end that never came
/// and was dropped after 10 s with no response.
#[test]
fn stream_request_with_bare_lf_line_ends_is_served() {
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let mut sock = s.connect();
    write!(sock, "GET /push/stream?token={token} HTTP/1.1\nHost: x\n\n").unwrap();
    let mut stream = SseStream::read_head(sock);
    assert_eq!(stream.status, 200);
    let connected = stream.frame();
    assert_eq!(connected.event.as_deref(), Some("connected"));
    assert_eq!(s.publish("orders", "e", "1").delivered, 1);
    assert_eq!(stream.event().data.as_deref(), Some("1"));
}

/// `printf 'GET … HTTP/1.0\r\n\r\n' | nc -N` half-closes right after the request; hyper's
/// default then dropped the connection without answering most of the time.
#[test]
fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let s = TestServer::default_config();
    for _ in 0..20 {
        let mut sock = s.connect();
        sock.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
        sock.shutdown(Shutdown::Write).unwrap();
        let mut out = String::new();
        sock.read_to_string(&mut out).unwrap();
        assert!(
            out.starts_with("HTTP/1.0 200") || out.starts_with("HTTP/1.1 200"),
            "{out:?}"
        );
        assert!(out.ends_with(r#"{"status":"ok"}"#), "{out:?}");
    }
}
