//! A generic Socket.IO v4 server: Engine.IO protocol 4 and Socket.IO
//! protocol 5, so the stock `socket.io-client` works unmodified (see
//! `docs/socketio.md`). It knows nothing of posts: livefeed's namespace is
//! in `transport::socketio`, and the protocol test server
//! (`examples/socketio_conformance.rs`) uses the same code with echo
//! namespaces. It uses only the shared network pieces of `net`.
//!
//! Layout:
//! - [`engine`]: the Engine.IO server (polling, websocket, upgrade,
//!   heartbeat), with its packet codec ([`engine::packet`]) and the
//!   sans-IO session state machine ([`engine::session`]);
//! - [`packet`]: the Socket.IO packet codec;
//! - [`socket`]: namespaces, events, acks and binary attachments.

pub mod engine;
pub mod packet;
pub mod socket;
