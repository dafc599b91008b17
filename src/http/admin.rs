//! `GET /metrics`, `GET /healthz`, `GET /readyz`: what monitoring and orchestrators poll.
//!
//! Served on the main listener, or only on the admin listener when `admin_listen` is set
//! (`server` runs that listener; `http::handle_admin` routes it). None of them takes the API key:
//! scrapers and probes rarely carry secrets, and what they reveal is counts and states, never a
//! channel name, user id or key. Operators who do not want traffic figures public set
//! `admin_listen` to a private address (docs/OPERATIONS.md).

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

use super::{full, json_response, AppState, Body};
use crate::error::ApiError;

/// The response for an operator path, or `None` if `path` is not one.
pub fn route(
    state: &AppState,
    path: &str,
    method: &Method,
) -> Option<Result<Response<Body>, ApiError>> {
    let respond: fn(&AppState) -> Response<Body> = match path {
        "/healthz" => healthz,
        "/readyz" => readyz,
        "/metrics" => metrics,
        _ => return None,
    };
    Some(match *method {
        Method::GET | Method::HEAD => Ok(respond(state)),
        _ => Err(ApiError::MethodNotAllowed { allow: "GET, HEAD" }),
    })
}

/// Alive: the process answers HTTP.
fn healthz(_: &AppState) -> Response<Body> {
    json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ok"}"#))
}

/// Ready for new streams: 503 from the moment shutdown starts, so load balancers stop sending
/// clients here while open streams drain.
fn readyz(state: &AppState) -> Response<Body> {
    if state.is_draining() {
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(br#"{"status":"draining"}"#),
        )
    } else {
        json_response(StatusCode::OK, Bytes::from_static(br#"{"status":"ready"}"#))
    }
}

fn metrics(state: &AppState) -> Response<Body> {
    let text = state.metrics.render(&state.hub);
    let mut resp = Response::new(full(Bytes::from(text)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::metrics::CONTENT_TYPE),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
