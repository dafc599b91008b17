//! End to end with real clients: the spec's JavaScript fetch reader under Node, and `curl -N`,
//! against a real server; the assertions are on what they print.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{have_tool, url_encode, ChildGuard, Lines, TestServer, WAIT};

const SPEC_CLIENT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/e2e/spec_client.mjs");

/// Runs the spec's client; returns the process and its stdout lines.
fn spec_client(s: &TestServer, token: &str, last_id: Option<&str>) -> (ChildGuard, Lines) {
    let mut cmd = Command::new("node");
    cmd.arg(SPEC_CLIENT).arg(&s.base).arg(token);
    if let Some(id) = last_id {
        cmd.arg(id);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start node");
    let lines = Lines::spawn(child.stdout.take().unwrap());
    (ChildGuard(child), lines)
}

fn next(lines: &Lines, what: &str) -> String {
    lines
        .next_line(WAIT)
        .unwrap_or_else(|| panic!("no output line for {what}"))
}

/// One `console.log(eventName, data)` record: Node breaks long objects over several lines
/// (`name {` … `}`); they are joined back with single spaces.
fn record(lines: &Lines, what: &str) -> String {
    let first = next(lines, what);
    if !first.ends_with('{') {
        return first;
    }
    let mut out = first;
    loop {
        let line = next(lines, what);
        out.push(' ');
        out.push_str(line.trim());
        if line == "}" {
            return out;
        }
    }
}

#[test]
fn spec_fetch_reader_under_node_prints_connected_and_published_events() {
    if !have_tool(
        "node",
        "--version",
        "spec_fetch_reader_under_node_prints_connected_and_published_events",
    ) {
        return;
    }
    let s = TestServer::default_config();
    let token = s.token(&["orders", "notifications"]);
    let (node, out) = spec_client(&s, &token, None);
    assert_eq!(
        record(&out, "connected"),
        "connected { channels: [ 'orders', 'notifications' ] }"
    );
    let p = s.publish(
        "orders",
        "order.created",
        r#"{"orderId":"abc123","total":4999,"currency":"AOA"}"#,
    );
    assert_eq!(p.delivered, 1);
    assert_eq!(
        record(&out, "order.created"),
        "order.created { orderId: 'abc123', total: 4999, currency: 'AOA' }"
    );
    let seen = s.publish(
        "notifications",
        "notification",
        r#"{"type":"info","message":"Your export is ready"}"#,
    );
    assert_eq!(seen.delivered, 1);
    assert_eq!(
        record(&out, "notification"),
        "notification { type: 'info', message: 'Your export is ready' }"
    );

    // The client goes away; an event is published meanwhile; the spec's reconnection snippet
    // (same token, Last-Event-ID) catches up.
    drop(node);
    let mut probes = 0;
    common::wait_for(
        Duration::from_secs(2),
        "the node client to stop counting",
        || {
            probes += 1;
            (s.publish("notifications", "probe", "null").delivered == 0).then_some(())
        },
    );
    s.publish(
        "orders",
        "status.changed",
        r#"{"status":"shipped","trackingUrl":"https://example.test/t/1"}"#,
    );
    let (_node, out) = spec_client(&s, &token, Some(&seen.id));
    assert_eq!(
        record(&out, "connected after resume"),
        format!(
            "connected {{ channels: [ 'orders', 'notifications' ], replayed: {}, complete: true }}",
            probes + 1
        )
    );
    // The probes went to `notifications` after the last event seen: they replay first.
    for _ in 0..probes {
        assert_eq!(record(&out, "replayed probe"), "probe null");
    }
    assert_eq!(
        record(&out, "replayed event"),
        "status.changed { status: 'shipped', trackingUrl: 'https://example.test/t/1' }"
    );
}

#[test]
fn curl_no_buffer_prints_the_raw_frames() {
    if !have_tool("curl", "--version", "curl_no_buffer_prints_the_raw_frames") {
        return;
    }
    let s = TestServer::default_config();
    let token = s.token(&["orders"]);
    let mut child = Command::new("curl")
        .arg("-sN")
        .arg(format!(
            "{}/push/stream?token={}",
            s.base,
            url_encode(&token)
        ))
        .stdout(Stdio::piped())
        .spawn()
        .expect("start curl");
    let out = Lines::spawn(child.stdout.take().unwrap());
    let _curl = ChildGuard(child);
    let read = |n: usize| -> Vec<String> { (0..n).map(|_| next(&out, "curl output")).collect() };
    assert_eq!(
        read(3),
        ["event: connected", "data: {\"channels\":[\"orders\"]}", ""]
    );
    let p = s.publish(
        "orders",
        "order.created",
        "{\n  \"orderId\": \"abc123\",\n  \"total\": 4999,\n  \"currency\": \"AOA\"\n}",
    );
    assert_eq!(p.delivered, 1);
    assert_eq!(
        read(4),
        [
            format!("id: {}", p.id).as_str(),
            "event: order.created",
            r#"data: {"orderId":"abc123","total":4999,"currency":"AOA"}"#,
            ""
        ]
    );
}
