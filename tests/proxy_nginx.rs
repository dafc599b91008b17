//! C07 behind a stock nginx: `proxy_buffering` stays at its default (on), and the stream's
//! `X-Accel-Buffering: no` must still get each event through at once.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{have_tool, url_encode, wait_for, ChildGuard, SseStream, TestServer, WAIT};
use serde_json::json;

/// A stock nginx in a temporary prefix, proxying everything to `upstream`. Runs in the
/// foreground as a single process, so dropping the guard (kill by PID) stops all of it.
fn start_nginx(upstream: SocketAddr) -> (ChildGuard, SocketAddr, std::path::PathBuf) {
    let prefix = common::temp_dir("nginx");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let p = prefix.display();
    let conf = format!(
        "daemon off;
master_process off;
pid {p}/nginx.pid;
error_log {p}/error.log warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {p}/body;
    proxy_temp_path {p}/proxy;
    fastcgi_temp_path {p}/fastcgi;
    uwsgi_temp_path {p}/uwsgi;
    scgi_temp_path {p}/scgi;
    server {{
        listen {listen};
        location / {{
            proxy_pass http://{upstream};
            proxy_http_version 1.1;
        }}
    }}
}}
"
    );
    let conf_path = prefix.join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(&prefix)
        .arg("-c")
        .arg(&conf_path)
        .arg("-e")
        .arg(prefix.join("error.log"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let mut guard = ChildGuard(child);
    wait_for(WAIT, "nginx to listen", || {
        if let Ok(Some(status)) = guard.0.try_wait() {
            let log = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
            panic!("nginx exited ({status}): {log}");
        }
        TcpStream::connect(listen).ok().map(|_| ())
    });
    (guard, listen, prefix)
}

#[test]
fn c07_events_pass_a_stock_nginx_within_one_second() {
    if !have_tool(
        "nginx",
        "-v",
        "c07_events_pass_a_stock_nginx_within_one_second",
    ) {
        return;
    }
    let s = TestServer::default_config();
    let (nginx, proxy, prefix) = start_nginx(s.addr);
    let token = s.token(&["orders"]);
    let mut st = SseStream::open(
        proxy,
        &format!("/push/stream?token={}", url_encode(&token)),
        &[],
    );
    assert_eq!(st.status, 200, "through nginx");
    let ct = st.header("content-type").unwrap_or("");
    assert!(ct.starts_with("text/event-stream"), "{ct}");
    assert_eq!(
        st.frame().raw,
        "event: connected\ndata: {\"channels\":[\"orders\"]}\n\n"
    );
    std::thread::sleep(Duration::from_secs(1));
    for n in 1..=3 {
        let start = Instant::now();
        let p = s.publish("orders", "e", &json!({ "n": n }).to_string());
        assert_eq!(p.delivered, 1);
        let f = st.event();
        let took = start.elapsed();
        assert_eq!(f.json(), json!({ "n": n }));
        assert!(
            took < Duration::from_secs(1),
            "event {n} took {took:?} through nginx"
        );
    }
    drop(st);
    drop(nginx);
    let _ = std::fs::remove_dir_all(prefix);
}
