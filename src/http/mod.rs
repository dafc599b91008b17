//! HTTP: routing and handlers only. Handlers validate and translate; the work happens in the
//! hub (through the broker for publishes). Every error leaves through `error_response`, so the
//! JSON error shape and status mapping live in one place (`error::ApiError`).

pub mod admin;
pub mod audit;
pub mod console;
pub mod push;
pub mod stream;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::Incoming;

use crate::auth::{ApiKeys, TokenSigner};
use crate::broker::Broker;
use crate::config::Config;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::metrics::Metrics;

pub type Body = BoxBody<Bytes, Infallible>;

/// Everything a request handler can reach.
pub struct AppState {
    pub config: Config,
    pub hub: Hub,
    pub broker: Arc<dyn Broker>,
    pub keys: ApiKeys,
    pub signer: TokenSigner,
    pub metrics: Arc<Metrics>,
    /// Set when shutdown starts: new streams are refused, `/readyz` turns 503.
    pub draining: AtomicBool,
}

impl AppState {
    pub fn new(config: Config, hub: Hub, broker: Arc<dyn Broker>, metrics: Arc<Metrics>) -> Self {
        AppState {
            keys: ApiKeys::new(&config.api_keys),
            signer: TokenSigner::new(
                &config.signing_secrets,
                config.max_token_bytes,
                config.max_channels_per_token,
            ),
            config,
            hub,
            broker,
            metrics,
            draining: AtomicBool::new(false),
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// Routes one request.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
    remote: Option<SocketAddr>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    // `/metrics`, `/healthz`, `/readyz` move to the admin listener when there is one.
    if state.config.admin_listen.is_none() {
        if let Some(r) = admin::route(&state, &path, &method) {
            return r.unwrap_or_else(|e| error_response(&e));
        }
    }
    let result = match path.as_str() {
        "/push/tokens" => match method {
            Method::POST => push::tokens(&state, req).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        "/push/publish" => match method {
            Method::POST => push::publish(&state, req).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "POST" }),
        },
        "/push/stream" => match method {
            Method::GET | Method::HEAD => stream::get(&state, req, remote),
            Method::OPTIONS => stream::preflight(&state, &req),
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, HEAD, OPTIONS",
            }),
        },
        "/push/sessions" => match method {
            Method::GET => audit::list_sessions(&state, &req).await,
            Method::DELETE => audit::close_sessions(&state, &req).await,
            _ => Err(ApiError::MethodNotAllowed {
                allow: "GET, DELETE",
            }),
        },
        p if p.starts_with(audit::CHANNELS_PREFIX) => match method {
            Method::GET => audit::channel(&state, &req).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "GET" }),
        },
        p if state.config.console_enabled && (p == "/console" || p.starts_with("/console/")) => {
            match (method, console::asset(p)) {
                (Method::GET | Method::HEAD, Some((content_type, bytes))) => {
                    Ok(asset_response(content_type, bytes))
                }
                (Method::GET | Method::HEAD, None) => Err(ApiError::NotFound(path.clone())),
                _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
            }
        }
        _ => Err(ApiError::NotFound(path.clone())),
    };
    match result {
        Ok(resp) => resp,
        Err(e) => error_response(&e),
    }
}

/// Routes one request on the admin listener: only the operator paths exist there.
pub async fn handle_admin<B>(state: Arc<AppState>, req: Request<B>) -> Response<Body> {
    let path = req.uri().path();
    admin::route(&state, path, req.method())
        .unwrap_or_else(|| Err(ApiError::NotFound(path.to_string())))
        .unwrap_or_else(|e| error_response(&e))
}

/// Checks `Authorization: Bearer <api key>`, counting refusals.
pub fn require_api_key<B>(state: &AppState, req: &Request<B>) -> Result<(), ApiError> {
    if state
        .keys
        .verify_header(header_str(req, header::AUTHORIZATION))
    {
        Ok(())
    } else {
        state
            .metrics
            .api_key_rejected
            .fetch_add(1, Ordering::Relaxed);
        Err(ApiError::InvalidApiKey)
    }
}

/// The one place an `ApiError` becomes a response.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut resp = json_response(e.status(), e.body());
    if let ApiError::MethodNotAllowed { allow } = e {
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if matches!(e, ApiError::InvalidApiKey | ApiError::InvalidToken(_)) {
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    resp
}

pub fn json_response(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// An embedded Console asset. The page is served with a strict CSP: it may talk only to this
/// server, load nothing from elsewhere, and cannot be framed.
fn asset_response(content_type: &'static str, bytes: &'static [u8]) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::from_static(bytes)));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"),
    );
    resp
}

pub fn full(b: Bytes) -> Body {
    Full::new(b).map_err(|never| match never {}).boxed()
}

/// A header as `&str`, if present and valid UTF-8.
pub fn header_str<B>(req: &Request<B>, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}
