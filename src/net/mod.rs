//! Network pieces shared by every transport: the websocket upgrade, the
//! origin policy, write coalescing and reconnect backoff.
//!
//! Layout:
//! - [`websocket`]: handshake checks, accept key, `101`, limits;
//! - [`origin`]: the `--allowed-origin` policy;
//! - [`cork`]: holding writes back while more frames follow, and the outbox
//!   that writes a change's shared frame to each client without copying it;
//! - [`backoff`]: capped, jittered exponential backoff.

pub mod backoff;
pub mod cork;
pub mod origin;
pub mod websocket;
