//! The audit endpoints, for the spec's "issue tokens with userId set — this lets you audit which
//! sessions are active later". All take the API key.
//!
//! - `GET /push/sessions?userId=…[&limit=…][&cursor=…]`: that user's open streams, in stream-id
//!   order. `nextCursor` is the last id of the page (opaque to callers); pass it back as `cursor`.
//! - `DELETE /push/sessions?userId=…`: closes them (log-out, revocation). Each gets a final
//!   `event: expired` frame with `{"reason":"revoked"}`, so a client knows not to retry with the
//!   same token.
//! - `GET /push/channels/{channel}` (percent-encoded): subscriber count, the first
//!   `CHANNEL_USER_IDS` distinct user ids, and the channel's replay retention.
//!
//! The listings are scans inside the hub shards (`hub::Hub::list_user`, `channel_users`): cheap
//! enough for an operator's request, not something to poll per client.

use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use serde_json::{json, Value};

use super::{json_response, require_api_key, AppState, Body};
use crate::error::ApiError;
use crate::id::EventId;
use crate::names;

/// Page size when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;
/// Largest `limit` accepted.
pub const MAX_PAGE: usize = 1000;
/// Distinct user ids listed per channel.
pub const CHANNEL_USER_IDS: usize = 100;
/// Path prefix of the channel audit.
pub const CHANNELS_PREFIX: &str = "/push/channels/";

/// The query parameters of `/push/sessions`.
struct SessionsQuery {
    user_id: String,
    limit: usize,
    after: u64,
}

fn sessions_query<B>(req: &Request<B>) -> Result<SessionsQuery, ApiError> {
    let (mut user_id, mut limit, mut cursor) = (None, None, None);
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "userId" => user_id = Some(v.into_owned()),
            "limit" => limit = Some(v.into_owned()),
            "cursor" => cursor = Some(v.into_owned()),
            _ => {}
        }
    }
    let user_id = user_id.ok_or_else(|| {
        ApiError::invalid("invalid_user_id", "the userId query parameter is required")
    })?;
    names::check_user_id(&user_id).map_err(|m| ApiError::invalid("invalid_user_id", m))?;
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::invalid(
                    "invalid_limit",
                    format!("limit must be an integer from 1 to {MAX_PAGE}"),
                )
            })?,
    };
    let after = match cursor.as_deref() {
        None | Some("") => 0,
        Some(c) => c.parse::<u64>().map_err(|_| {
            ApiError::invalid(
                "invalid_cursor",
                "cursor must be a nextCursor value from a previous page",
            )
        })?,
    };
    Ok(SessionsQuery {
        user_id,
        limit,
        after,
    })
}

fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// `GET /push/sessions`.
pub async fn list_sessions<B>(
    state: &AppState,
    req: &Request<B>,
) -> Result<Response<Body>, ApiError> {
    require_api_key(state, req)?;
    let q = sessions_query(req)?;
    let (subs, more) = state.hub.list_user(&q.user_id, q.after, q.limit).await;
    let next_cursor = match (more, subs.last()) {
        (true, Some(last)) => Value::String(last.info.id.to_string()),
        _ => Value::Null,
    };
    let sessions: Vec<Value> = subs
        .iter()
        .map(|s| {
            let i = &s.info;
            json!({
                "streamId": i.id.to_string(),
                "userId": i.user_id.as_deref(),
                "channels": i.channels.iter().map(|c| &**c).collect::<Vec<&str>>(),
                "connectedAt": rfc3339_ms(i.connected_at_ms),
                "remoteAddr": i.remote.map(|a| a.to_string()),
            })
        })
        .collect();
    let body = json!({ "userId": q.user_id, "sessions": sessions, "nextCursor": next_cursor });
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// `DELETE /push/sessions`.
pub async fn close_sessions<B>(
    state: &AppState,
    req: &Request<B>,
) -> Result<Response<Body>, ApiError> {
    require_api_key(state, req)?;
    let q = sessions_query(req)?;
    let closed = state.hub.close_user(&q.user_id).await;
    tracing::info!(
        user_id = q.user_id.as_str(),
        closed,
        "operator closed the user's streams"
    );
    let body = json!({ "userId": q.user_id, "closed": closed });
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}

/// `GET /push/channels/{channel}`.
pub async fn channel<B>(state: &AppState, req: &Request<B>) -> Result<Response<Body>, ApiError> {
    require_api_key(state, req)?;
    let raw = req
        .uri()
        .path()
        .strip_prefix(CHANNELS_PREFIX)
        .unwrap_or_default();
    let name = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| {
            ApiError::invalid(
                "invalid_channel",
                "the channel in the path is not UTF-8 once percent-decoded",
            )
        })?;
    names::check_channel(&name).map_err(|m| ApiError::invalid("invalid_channel", m))?;
    let (ch, users) = state.hub.channel_users(&name, CHANNEL_USER_IDS).await;
    let id = |e: Option<EventId>| e.map(|e| e.to_string());
    let retention = match &ch {
        Some(c) => json!({
            "capacity": state.config.replay_capacity,
            "maxAgeSecs": state.config.replay_max_age_secs,
            "retainedEvents": c.retained,
            "oldestId": id(c.oldest),
            "newestId": id(c.newest),
            "evictedUpTo": id((c.evicted_upto != EventId::ZERO).then_some(c.evicted_upto)),
        }),
        None => json!({
            "capacity": state.config.replay_capacity,
            "maxAgeSecs": state.config.replay_max_age_secs,
            "retainedEvents": 0,
            "oldestId": null,
            "newestId": null,
            "evictedUpTo": null,
        }),
    };
    let body = json!({
        "channel": &*name,
        "subscribers": ch.as_ref().map_or(0, |c| c.subscribers),
        "userIds": users.user_ids.iter().map(|u| &**u).collect::<Vec<&str>>(),
        "userIdsTruncated": users.truncated,
        "anonymousSubscribers": users.anonymous,
        "retention": retention,
    });
    Ok(json_response(StatusCode::OK, Bytes::from(body.to_string())))
}
