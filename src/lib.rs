//! Sluice: an edge reverse proxy.
//!
//! The library holds everything; `main.rs` only parses the command line. See
//! `docs/ARCHITECTURE.md` for the layout and the path of one request.

pub mod admin;
pub mod app;
pub mod balancer;
pub mod cache;
pub mod certs;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod metrics;
pub mod proxy;
pub mod server;
pub mod shared;
