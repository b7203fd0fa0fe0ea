//! [`reserve_listeners`]: a starting daemon binds the load balancer ports
//! its stacks serve on before anything slow (connecting to the engine,
//! recovery), so that clients of those load balancers wait in the sockets'
//! backlogs instead of being refused while it starts.
//!
//! Design note: the reservation reads the store only. It binds exactly the
//! addresses recovery brings back (the load balancers and listeners that
//! exist and serve, as [`StackService::open`](crate::StackService::open)
//! adopts them), and [`StackService::open_with_listeners`](crate::StackService::open_with_listeners)
//! hands each socket to its load balancer or listener, which starts serving
//! on it (connections already queued included) once the adopted targets
//! are in. Nothing is accepted before that, so a queued connection is never
//! answered 503 for want of targets. An address that cannot be bound
//! (another process took the port while no daemon ran) is left to recovery,
//! which reports it and keeps trying.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use autopatch_loadbalancer::LoadBalancer;
use autopatch_store::{Store, StoreError};

use crate::operation;
use crate::resources::recorded_address;

/// Listening sockets bound for the load balancers and listeners of the
/// store's live stacks, to hand to [`crate::StackService::open_with_listeners`].
/// Dropped, they close (connections waiting in them are reset).
#[derive(Default)]
pub struct ReservedListeners {
    pub(crate) sockets: BTreeMap<SocketAddr, std::net::TcpListener>,
}

impl std::fmt::Debug for ReservedListeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReservedListeners").field("addresses", &self.addresses()).finish()
    }
}

impl ReservedListeners {
    /// The addresses bound, in order.
    pub fn addresses(&self) -> Vec<SocketAddr> {
        self.sockets.keys().copied().collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sockets.is_empty()
    }
}

/// Binds (listening, nothing accepted yet) every loopback address a load
/// balancer or listener of a live stack in `store` serves on, as recovery
/// will re-adopt it. Addresses that cannot be bound are left out. Must be
/// called inside a tokio runtime.
pub fn reserve_listeners(store: &Store) -> Result<ReservedListeners, StoreError> {
    let mut reserved = ReservedListeners::default();
    for stack in store.stacks(false)? {
        for row in store.stack_resources(&stack.stack_id)? {
            if !operation::current_exists(&row) {
                continue;
            }
            let attributes: serde_json::Value =
                serde_json::from_str(&row.attributes).unwrap_or_default();
            let Some(address) = recorded_address(&row.resource_type, &attributes) else {
                continue;
            };
            if reserved.sockets.contains_key(&address) {
                continue;
            }
            if let Ok(socket) = LoadBalancer::reserve_listener(address) {
                reserved.sockets.insert(address, socket);
            }
        }
    }
    Ok(reserved)
}
