//! The baseline for the publish-API load test: a plain hyper 1 HTTP/1 server on the same
//! runtime and allocator as castbrick-push that reads the request body and answers a fixed
//! publish-shaped JSON. Whatever castbrick-push costs above this is its own work.
//!
//! `hyper-baseline [addr]` (default 127.0.0.1:18600); stop it with Ctrl-C or kill.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BODY: &[u8] =
    br#"{"messageId":"01a23d2b-10e6-7000-910b-be407817a53a","delivered":0,"creditsUsed":0}"#;

async fn answer(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let _ = req.into_body().collect().await;
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut()
        .insert("content-type", "application/json".parse().expect("static"));
    Ok(resp)
}

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18600".into());
    let listener = tokio::net::TcpListener::bind(&addr).await.expect("bind");
    println!("hyper-baseline listening on http://{addr}");
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        let _ = socket.set_nodelay(true);
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service_fn(answer))
                .await;
        });
    }
}
