//! CastBrick Push: backends publish JSON events to named channels; browsers and apps receive
//! them over Server-Sent Events.
//!
//! # Layout
//! - `config`   — the one `Config`: flags, environment, TOML file, defaults, validation.
//! - `server`   — accept loop; picks the raw SSE path or hyper for each connection; shutdown.
//! - `http`     — routing and handlers only (`push`: tokens and publish; `stream`: the SSE endpoint;
//!   `audit`: sessions and channels for operators; `admin`: `/metrics`, `/healthz`, `/readyz`).
//! - `auth`     — API keys (hashed, constant-time) and HS256 tokens (ring).
//! - `names`    — the channel / event / user-id rules, shared by every endpoint.
//! - `json`     — whitespace removal that keeps published `data` byte-exact.
//! - `broker`   — the publishing seam (in-memory now; Redis for several nodes).
//! - `hub`      — channel table, sequencer, shards, subscribers, fan-out. Knows nothing of HTTP.
//! - `replay`   — per-channel rings for Last-Event-ID.
//! - `sse`      — frame encoding, the raw stream writer, the hyper body, resume-id parsing.
//! - `id`       — strictly increasing UUIDv7 event ids.
//! - `metrics`  — counters, rendered for `/metrics`.
//! - `error`    — `ApiError`, the single mapping to status + JSON error body.
//!
//! # One publish
//! `http::push::publish` checks the key, the names and the JSON, minifies `data` (`json`) and
//! calls the `broker`, which calls `Hub::publish`: the frame is encoded once into one `Bytes`,
//! gets its id from the sequencer, is queued to each hub shard with subscribers on the channel
//! and appended to the channel's ring; each shard pushes a clone of that same `Bytes` into its
//! streams' queues and the sum comes back as `delivered`.
//!
//! # One subscribe
//! `server` reads the request head; for `GET /push/stream`, `http::stream::open` checks the
//! token and calls `Hub::subscribe`, which registers the stream on its shard and snapshots the
//! rings if a Last-Event-ID was sent. `sse::writer` then writes the response head, `connected`,
//! the replay, and from then on whatever the shard queues, several frames per `writev`.

pub mod auth;
pub mod broker;
pub mod config;
pub mod error;
pub mod http;
pub mod hub;
pub mod id;
pub mod json;
pub mod metrics;
pub mod names;
pub mod replay;
pub mod server;
pub mod shutdown;
pub mod sse;

pub use config::Config;
pub use server::run;
