//! Client-facing listeners: the accept loop and connection life (`listener.rs`) and TLS with
//! SNI and certificate reload (`tls.rs`); small vectored writes on plain TCP are sent as one
//! buffer (`gather.rs`). Hands each request to the pipeline in `proxy/`.

mod gather;
pub mod listener;
pub mod tls;
