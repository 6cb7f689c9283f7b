//! livefeed: a realtime post feed server.
//!
//! An HTTP client creates a post; livefeed stores it durably in sled and
//! pushes it at once to every connected client. Each push connection is an
//! actor registered with one hub actor (crate `livefeed-actors`); the
//! `POST /posts` route stores the post, and the store's writer sends the
//! hub a broadcast once it is on disk.
//!
//! Layout, from the core outwards (a module imports only modules listed
//! above it, so there are no import cycles):
//! - [`feed`]: the core: posts and their validation, every frame format,
//!   the publish seam, and the service every transport shares (create,
//!   admit, attach). It knows neither tide nor sled;
//! - [`store`]: sled storage with a group-commit writer: the local
//!   publisher, the posts every mode reads, the history replay reads;
//! - [`net`]: the websocket upgrade, the origin policy, write coalescing
//!   and backoff, shared by every transport;
//! - [`cluster`]: cluster mode (`--redis-url`), the publisher that appends
//!   to a Redis stream shared by several nodes, and its tailer;
//! - [`config`]: flags, environment variables and their defaults;
//! - [`http`]: the API's routes, the mapping of errors to statuses, the
//!   accept loop;
//! - [`socketio`]: a generic Engine.IO 4 / Socket.IO 5 server;
//! - [`transport`]: the push transports (`/ws`, `/events`, Socket.IO), each
//!   a route handler and a sink over the feed;
//! - [`app`]: [`run`] and [`Handle`]: builds everything once, holds the
//!   route table, shuts down in order;
//! - [`client`], [`cli`]: the terminal client (`post`, `tail`) and the
//!   command line; [`logging`]: log output.
//!
//! The suggested split of the HTTP layer was `http/` holding the route
//! table; it lives in `app/routes.rs` instead, because the table mounts
//! the transports, and the transports use `http`'s error mapping: with the
//! table in `http`, the two would import each other.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod app;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod feed;
pub mod http;
pub mod logging;
pub mod net;
pub mod socketio;
pub mod store;
pub mod transport;

pub use app::{run, Handle, ServerError};
pub use config::Config;
