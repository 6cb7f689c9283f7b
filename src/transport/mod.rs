//! The push transports, each an adapter between its wire protocol and the
//! feed: a route handler that parses the request and attaches a client to
//! the [`Feed`](crate::feed::Feed), and the `Outbound` sink its connection
//! actor writes through. Frames come from [`wire`](crate::feed::wire).
//!
//! - [`ws`]: `GET /ws`, plain websocket;
//! - [`sse`]: `GET /events`, Server-Sent Events;
//! - [`socketio`]: `/socket.io/`, the feed as a Socket.IO namespace.

pub mod socketio;
pub mod sse;
pub mod ws;
