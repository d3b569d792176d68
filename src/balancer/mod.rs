//! Load balancing: pools of backends and how one is picked for a request.
//!
//! Owns the immutable [`BackendPool`] built from config and the live [`BackendState`] of each
//! backend (atomics that survive reloads). It knows nothing of sockets or HTTP clients: the
//! pipeline asks for a backend and reports back when the request is done.

pub mod pool;

pub use pool::{Backend, BackendPool, BackendState, InFlight};
