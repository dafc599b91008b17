//! castbrick-load run against a small fake push server that can misbehave on purpose: the
//! generator must count exactly the events it was denied or given twice, and exit non-zero.
//!
//! The fake speaks the castbrick wire contract (tokens, chunked SSE with a `connected` event,
//! publish) and splits every frame over two chunks, so the generator's chunk and SSE parsers
//! meet frames cut mid-line.

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

#[derive(Default)]
struct Hub {
    subs: Mutex<HashMap<String, Vec<mpsc::UnboundedSender<Vec<u8>>>>>,
    next_id: AtomicU64,
    /// Subscriber 0 of a channel never gets seq 3; subscriber 1 gets seq 5 twice.
    faulty: bool,
}

async fn serve(faulty: bool) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hub = Arc::new(Hub {
        faulty,
        ..Default::default()
    });
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(handle(conn, hub.clone()));
        }
    });
    port
}

async fn respond(conn: &mut TcpStream, status: u16, body: Value) -> std::io::Result<()> {
    let body = body.to_string();
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await?;
    conn.write_all(body.as_bytes()).await
}

async fn handle(mut conn: TcpStream, hub: Arc<Hub>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut words = head.split_whitespace();
        let (method, path) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let len: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_owned())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            let n = conn.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: Value =
            serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(Value::Null);
        buf.drain(..head_end + len);
        if method == "POST" && path == "/push/tokens" {
            let ch = body["channels"][0].clone();
            respond(
                &mut conn,
                200,
                json!({"token": ch, "channels": [ch], "expiresAt": "x"}),
            )
            .await?;
        } else if method == "POST" && path == "/push/publish" {
            let channel = body["channel"].as_str().unwrap_or("").to_owned();
            let data = body["data"].to_string();
            let seq = body["data"]["seq"].as_u64().unwrap_or(0);
            let id = hub.next_id.fetch_add(1, Ordering::Relaxed);
            let frame = format!("id: {id}\nevent: lt\ndata: {data}\n\n").into_bytes();
            let subs = hub
                .subs
                .lock()
                .unwrap()
                .get(&channel)
                .cloned()
                .unwrap_or_default();
            for (i, s) in subs.iter().enumerate() {
                if hub.faulty && i == 0 && seq == 3 {
                    continue;
                }
                let _ = s.send(frame.clone());
                if hub.faulty && i == 1 && seq == 5 {
                    let _ = s.send(frame.clone());
                }
            }
            respond(
                &mut conn,
                200,
                json!({"messageId": id.to_string(), "delivered": subs.len(), "creditsUsed": 0}),
            )
            .await?;
        } else if let (true, Some(token)) =
            (method == "GET", path.strip_prefix("/push/stream?token="))
        {
            let (tx, mut rx) = mpsc::unbounded_channel();
            conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                .await?;
            write_chunk(&mut conn, b"event: connected\ndata: {\"channels\":[]}\n\n").await?;
            hub.subs
                .lock()
                .unwrap()
                .entry(token.to_owned())
                .or_default()
                .push(tx);
            while let Some(frame) = rx.recv().await {
                let (a, b) = frame.split_at(frame.len() / 2);
                write_chunk(&mut conn, a).await?;
                write_chunk(&mut conn, b).await?;
            }
            return Ok(());
        } else {
            respond(&mut conn, 404, json!({"error": {"code": "not_found"}})).await?;
        }
    }
}

async fn write_chunk(conn: &mut TcpStream, bytes: &[u8]) -> std::io::Result<()> {
    conn.write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
        .await?;
    conn.write_all(bytes).await?;
    conn.write_all(b"\r\n").await
}

/// Runs castbrick-load with `args` against the fake on `port`: (exit code, RESULT json).
fn load(port: u16, args: &[&str]) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_castbrick-load"))
        .args(args)
        .args([
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--api-key",
            "k",
            "--quiet",
        ])
        .args(["--timeout", "60", "--drain-timeout", "2"])
        .output()
        .expect("castbrick-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let result = stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| {
            panic!(
                "no RESULT line; stdout {stdout}; stderr {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    (
        out.status.code().unwrap_or(-1),
        serde_json::from_str(result).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_broadcast_is_counted_exactly_and_passes() {
    let port = serve(false).await;
    let (code, r) =
        tokio::task::spawn_blocking(move || load(port, &["broadcast", "-n", "6", "-m", "10"]))
            .await
            .unwrap();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["expected"], 60);
    assert_eq!(r["delivered"], 60);
    assert_eq!(r["lost"], 0);
    assert_eq!(r["duplicated"], 0);
    assert_eq!(r["delivered_reported_by_server"], 60);
    assert_eq!(r["latency"]["samples"], 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_and_a_duplicated_event_fail_the_run() {
    let port = serve(true).await;
    let (code, r) =
        tokio::task::spawn_blocking(move || load(port, &["broadcast", "-n", "4", "-m", "8"]))
            .await
            .unwrap();
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["expected"], 32);
    assert_eq!(r["delivered"], 31);
    assert_eq!(r["lost"], 1);
    assert_eq!(r["duplicated"], 1);
    assert_eq!(r["ok"], false);
    assert_eq!(r["lost_sample"][0][1], 3, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_two_workers_gets_one_event_per_channel() {
    let port = serve(false).await;
    let (code, r) = tokio::task::spawn_blocking(move || {
        load(
            port,
            &[
                "fanout",
                "-n",
                "30",
                "-p",
                "3",
                "--streams-per-worker",
                "16",
                "--streams-per-source",
                "7",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["generator"]["workers"], 2);
    assert_eq!(r["streams_established"], 30);
    assert_eq!(r["expected"], 30);
    assert_eq!(r["delivered"], 30);
    assert_eq!(r["misrouted"], 0);
}

#[test]
fn non_loopback_targets_are_refused_before_any_traffic() {
    let out = Command::new(env!("CARGO_BIN_EXE_castbrick-load"))
        .args([
            "idle",
            "--target",
            "nchan",
            "--url",
            "http://192.168.1.1:8090",
            "-n",
            "1",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("non-loopback"));
}
