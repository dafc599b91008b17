//! The publishing seam. HTTP hands every accepted publish to a `Broker`; the in-memory broker
//! gives it straight to this node's hub. A multi-node broker (Redis) implements the same trait:
//! it publishes to Redis and feeds what Redis delivers into the hub, without the HTTP layer or
//! the hub changing.

use std::future::Future;
use std::pin::Pin;

use crate::hub::{Hub, Published};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

pub trait Broker: Send + Sync + 'static {
    /// Publishes `data` (minified JSON) as `event` on `channel`; names are already validated.
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        event: &'a str,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<Published, BrokerError>>;
}

/// Single-node broker: publishes go straight to the local hub.
pub struct MemoryBroker {
    hub: Hub,
}

impl MemoryBroker {
    pub fn new(hub: Hub) -> Self {
        MemoryBroker { hub }
    }
}

impl Broker for MemoryBroker {
    fn publish<'a>(
        &'a self,
        channel: &'a str,
        event: &'a str,
        data: &'a [u8],
    ) -> BoxFuture<'a, Result<Published, BrokerError>> {
        Box::pin(async move { Ok(self.hub.publish(channel, event, data).await) })
    }
}
