//! `POST /push/tokens` and `POST /push/publish`: the API-key endpoints.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{header_str, json_response, AppState, Body};
use crate::auth::Claims;
use crate::config::DEFAULT_TOKEN_TTL_SECS;
use crate::error::ApiError;
use crate::{json, names};

/// Longest time a request body may take to arrive once its head is in.
pub const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Checks the API key, the content type and the size, and returns the body.
async fn authorized_json_body(state: &AppState, req: Request<Incoming>) -> Result<Bytes, ApiError> {
    super::require_api_key(state, &req)?;
    if let Some(ct) = header_str(&req, header::CONTENT_TYPE) {
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let limit = state.config.max_body_bytes;
    let declared = header_str(&req, header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(req.into_body(), limit).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::BodyTimeout {
            secs: BODY_TIMEOUT.as_secs(),
        });
    };
    match read {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::PayloadTooLarge { limit })
        }
        Err(e) => Err(ApiError::invalid(
            "invalid_body",
            format!("could not read the request body: {e}"),
        )),
    }
}

fn malformed(e: serde_json::Error) -> ApiError {
    ApiError::invalid(
        "invalid_json",
        format!("request body is not valid JSON: {e}"),
    )
}

pub async fn tokens(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body = authorized_json_body(state, req).await?;
    let obj: Map<String, Value> = match serde_json::from_slice::<Value>(&body).map_err(malformed)? {
        Value::Object(m) => m,
        _ => {
            return Err(ApiError::invalid(
                "invalid_json",
                "request body must be a JSON object",
            ))
        }
    };
    let channels = match obj.get("channels") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "invalid_channels",
                "channels must not be empty",
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "invalid_channels",
                "channels is required: an array of channel names",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_channels",
                "channels must be an array of strings",
            ))
        }
    };
    let mut list: Vec<String> = Vec::with_capacity(channels.len());
    for c in channels {
        let Value::String(c) = c else {
            return Err(ApiError::invalid(
                "invalid_channels",
                "channels must be an array of strings",
            ));
        };
        names::check_channel(c).map_err(|m| ApiError::invalid("invalid_channel", m))?;
        if !list.contains(c) {
            list.push(c.clone());
        }
    }
    let max = state.config.max_channels_per_token;
    if list.len() > max {
        return Err(ApiError::invalid(
            "too_many_channels",
            format!("a token carries at most {max} channels"),
        ));
    }
    let user_id = match obj.get("userId") {
        None | Some(Value::Null) => None,
        Some(Value::String(u)) => {
            names::check_user_id(u).map_err(|m| ApiError::invalid("invalid_user_id", m))?;
            Some(u.clone())
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "invalid_user_id",
                "userId must be a string",
            ))
        }
    };
    let max_ttl = state.config.max_token_ttl_secs;
    let ttl = match obj.get("ttlSeconds") {
        None | Some(Value::Null) => DEFAULT_TOKEN_TTL_SECS.min(max_ttl),
        Some(v) => match v.as_u64() {
            Some(t) if (1..=max_ttl).contains(&t) => t,
            _ => {
                return Err(ApiError::invalid(
                    "invalid_ttl",
                    format!("ttlSeconds must be an integer from 1 to {max_ttl}"),
                ))
            }
        },
    };
    let iat = crate::id::unix_ms() / 1000;
    let claims = Claims {
        channels: list,
        sub: user_id,
        iat,
        exp: iat + ttl,
    };
    let token = state.signer.sign(&claims);
    if token.len() > state.signer.max_token_bytes() {
        return Err(ApiError::invalid(
            "token_too_large",
            format!(
                "the token would exceed {} bytes; use fewer or shorter channel names",
                state.signer.max_token_bytes()
            ),
        ));
    }
    state
        .metrics
        .tokens_issued
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let expires_at =
        humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(claims.exp)).to_string();
    let out =
        serde_json::json!({ "token": token, "expiresAt": expires_at, "channels": claims.channels });
    Ok(json_response(StatusCode::OK, Bytes::from(out.to_string())))
}

/// The publish body with each field kept raw, so that type errors can name the field and
/// `data` is forwarded exactly as sent.
#[derive(Deserialize)]
struct PublishBody<'a> {
    #[serde(borrow, default)]
    channel: Option<&'a RawValue>,
    #[serde(borrow, default)]
    event: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    data: Option<&'a RawValue>,
}

/// Keeps `"data": null` distinct from a missing `data`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue as Deserialize>::deserialize(d).map(Some)
}

fn string_field(
    raw: Option<&RawValue>,
    field: &str,
    code: &'static str,
) -> Result<String, ApiError> {
    let raw = raw.ok_or_else(|| ApiError::invalid(code, format!("{field} is required")))?;
    serde_json::from_str::<String>(raw.get())
        .map_err(|_| ApiError::invalid(code, format!("{field} must be a string")))
}

pub async fn publish(state: &AppState, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body = authorized_json_body(state, req).await?;
    let trimmed = body.trim_ascii_start();
    if !trimmed.starts_with(b"{") {
        return Err(ApiError::invalid(
            "invalid_json",
            "request body must be a JSON object",
        ));
    }
    let parsed: PublishBody = serde_json::from_slice(&body).map_err(malformed)?;
    let channel = string_field(parsed.channel, "channel", "invalid_channel")?;
    names::check_channel(&channel).map_err(|m| ApiError::invalid("invalid_channel", m))?;
    let event = string_field(parsed.event, "event", "invalid_event")?;
    names::check_event(&event).map_err(|m| ApiError::invalid("invalid_event", m))?;
    let data = parsed
        .data
        .ok_or_else(|| ApiError::invalid("invalid_data", "data is required (any JSON value)"))?;
    let data = json::minify(data.get().as_bytes());

    let started = std::time::Instant::now();
    let published = state
        .broker
        .publish(&channel, &event, &data)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    state.metrics.publish_latency.observe(started.elapsed());
    let out = format!(
        r#"{{"messageId":"{}","delivered":{},"creditsUsed":0}}"#,
        published.id, published.delivered
    );
    Ok(json_response(StatusCode::OK, Bytes::from(out)))
}
