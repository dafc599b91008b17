//! `GET|HEAD|OPTIONS /push/stream`: token check, CORS, and the hand-over to the hub.
//!
//! `open` is shared by both transports: the raw HTTP/1 path in `server` (which then writes with
//! `sse::writer`) and hyper (HTTP/2, keep-alive connections), which wraps the same subscription
//! in `sse::body::SseBody`.

use std::net::SocketAddr;

use bytes::{BufMut, Bytes, BytesMut};
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;

use super::{header_str, AppState, Body};
use crate::auth::{bearer, TokenError};
use crate::error::ApiError;
use crate::hub::{SubscribeRequest, Subscription};
use crate::sse::{self, body::SseBody};

/// The parts of a stream request that matter, whichever parser read it.
#[derive(Debug, Default)]
pub struct StreamHead<'a> {
    pub query: Option<&'a str>,
    pub authorization: Option<&'a str>,
    pub last_event_id: Option<&'a str>,
    pub origin: Option<&'a str>,
}

/// A stream that passed every check.
pub struct Opened {
    /// `None` for HEAD: headers only, no subscriber.
    pub subscription: Option<Subscription>,
    /// Value for `Access-Control-Allow-Origin`, when the request came from a browser origin.
    pub allow_origin: Option<String>,
}

/// Checks origin and token and, unless `head_only`, registers the stream with the hub.
pub fn open(
    state: &AppState,
    req: &StreamHead,
    remote: Option<SocketAddr>,
    head_only: bool,
) -> Result<Opened, ApiError> {
    let allow_origin = cors_origin(state, req.origin)?;
    if state.is_draining() {
        return Err(ApiError::ShuttingDown);
    }
    let (query_token, query_last) = sse::query_params(req.query);
    let token = query_token
        .filter(|t| !t.is_empty())
        .or_else(|| req.authorization.and_then(bearer).map(str::to_string))
        .ok_or(ApiError::InvalidToken(TokenError::Missing))?;
    let now = crate::id::unix_ms() / 1000;
    let claims = state.signer.verify(&token, now)?;
    if head_only {
        return Ok(Opened {
            subscription: None,
            allow_origin,
        });
    }
    let resume = sse::resume_from(req.last_event_id, query_last.as_deref());
    // `/push/tokens` never issues duplicates, but a token signed elsewhere with the same secret
    // may carry them, and the hub counts (and delivers to) a stream once per listed channel.
    let mut channels = claims.channels;
    let mut seen = std::collections::HashSet::with_capacity(channels.len());
    channels.retain(|c| seen.insert(c.clone()));
    let subscription = state.hub.subscribe(SubscribeRequest {
        channels,
        user_id: claims.sub,
        expires_at_secs: claims.exp,
        resume,
        remote,
    });
    Ok(Opened {
        subscription: Some(subscription),
        allow_origin,
    })
}

/// `Some(value)` for `Access-Control-Allow-Origin`, `None` without an `Origin`, or an error
/// for an origin that is not allowed.
fn cors_origin(state: &AppState, origin: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(origin) = origin else {
        return Ok(None);
    };
    if !state.config.origin_allowed(origin) {
        return Err(ApiError::OriginNotAllowed(origin.to_string()));
    }
    Ok(Some(
        if state.config.cors_allowed_origins.iter().any(|o| o == "*") {
            "*".to_string()
        } else {
            origin.to_string()
        },
    ))
}

const SSE_HEADERS: [(&str, &str); 3] = [
    ("content-type", "text/event-stream"),
    ("cache-control", "no-cache, no-transform"),
    ("x-accel-buffering", "no"),
];

/// The HTTP/1.1 response head written by the raw path. The body is delimited by the server
/// closing the connection, which every HTTP/1.x client and proxy understands.
pub fn raw_head(allow_origin: Option<&str>) -> Bytes {
    let mut b = BytesMut::with_capacity(192);
    b.put_slice(b"HTTP/1.1 200 OK\r\n");
    for (k, v) in SSE_HEADERS {
        b.put_slice(k.as_bytes());
        b.put_slice(b": ");
        b.put_slice(v.as_bytes());
        b.put_slice(b"\r\n");
    }
    if let Some(o) = allow_origin {
        b.put_slice(b"access-control-allow-origin: ");
        b.put_slice(o.as_bytes());
        b.put_slice(b"\r\nvary: origin\r\n");
    }
    b.put_slice(b"connection: close\r\n\r\n");
    b.freeze()
}

/// GET/HEAD through hyper.
pub fn get<B>(
    state: &AppState,
    req: Request<B>,
    remote: Option<SocketAddr>,
) -> Result<Response<Body>, ApiError> {
    let head = StreamHead {
        query: req.uri().query(),
        authorization: header_str(&req, header::AUTHORIZATION),
        last_event_id: header_str(&req, header::HeaderName::from_static("last-event-id")),
        origin: header_str(&req, header::ORIGIN),
    };
    let head_only = req.method() == http::Method::HEAD;
    let opened = match open(state, &head, remote, head_only) {
        Ok(o) => o,
        // Errors still carry CORS headers so browser code can read the JSON error.
        Err(e) => {
            // Counted here, not in `open`: a raw-path request that fails is answered by this
            // function after `open` already ran once for it.
            if let ApiError::InvalidToken(t) = &e {
                state.metrics.token_rejected(*t);
            }
            let mut resp = super::error_response(&e);
            allow_origin(&mut resp, cors_origin(state, head.origin).ok().flatten());
            return Ok(resp);
        }
    };
    let body: Body = match opened.subscription {
        Some(s) => SseBody::new(state.hub.clone(), s.subscriber, s.preamble).boxed(),
        None => super::full(Bytes::new()),
    };
    let mut resp = Response::new(body);
    for (k, v) in SSE_HEADERS {
        resp.headers_mut().insert(k, HeaderValue::from_static(v));
    }
    allow_origin(&mut resp, opened.allow_origin);
    Ok(resp)
}

/// Adds `Access-Control-Allow-Origin` (and `Vary: origin`) when the request came from an
/// allowed browser origin.
fn allow_origin(resp: &mut Response<Body>, origin: Option<String>) {
    if let Some(v) = origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        resp.headers_mut()
            .insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        resp.headers_mut()
            .insert(header::VARY, HeaderValue::from_static("origin"));
    }
}

/// CORS preflight. Never needs credentials (browsers send none on a preflight).
pub fn preflight<B>(state: &AppState, req: &Request<B>) -> Result<Response<Body>, ApiError> {
    let allow = cors_origin(state, header_str(req, header::ORIGIN))?;
    let mut resp = Response::new(super::full(Bytes::new()));
    *resp.status_mut() = StatusCode::NO_CONTENT;
    allow_origin(&mut resp, allow);
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("last-event-id, authorization, cache-control, accept"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    h.insert(
        header::ALLOW,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    Ok(resp)
}
