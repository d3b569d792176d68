//! Client-facing listeners: the accept loop and connection life (`listener.rs`) and TLS with
//! SNI and certificate reload (`tls.rs`). Hands each request to the pipeline in `proxy/`.

pub mod listener;
pub mod tls;
