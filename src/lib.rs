//! livefeed: a realtime post feed server.
//!
//! An HTTP client creates a post; livefeed stores it durably in sled and
//! pushes it at once to every connected client. Each push connection is an
//! actor registered with one hub actor (crate `livefeed-actors`); the
//! `POST /posts` route stores the post and sends the hub a broadcast.
//!
//! Layout:
//! - [`config`]: flags and environment variables;
//! - [`server`]: binding, running and graceful shutdown;
//! - [`http`]: the routes and request limits;
//! - [`h1`]: the accept loop, answering requests that can't be parsed;
//! - [`post`]: the post wire format and validation;
//! - [`store`]: sled storage with a group-commit writer;
//! - [`cluster`]: cluster mode (`--redis-url`), several nodes sharing one
//!   post log in a Redis stream;
//! - [`ws`]: the `/ws` websocket transport, [`cork`]: its write coalescing;
//! - [`socketio`]: Socket.IO clients at `/socket.io/`;
//! - [`sse`]: the `/events` Server-Sent Events transport;
//! - [`openapi`]: `/openapi.json`, the API's description;
//! - [`client`], [`cli`]: an HTTP client of the API and the `post` and
//!   `tail` subcommands built on it;
//! - [`error`]: API errors and their status codes;
//! - [`metrics`], [`assets`], [`logging`]: `/metrics`, the embedded demo,
//!   log output.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod assets;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod cork;
pub mod error;
pub mod h1;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod post;
pub mod server;
pub mod socketio;
pub mod sse;
pub mod store;
pub mod ws;

pub use config::Config;
pub use server::{run, Handle, ServerError};
