//! The integration tests: one binary, built and linked once, with one set
//! of helpers ([`common`]). Each module drives real servers (in-process,
//! or the built `livefeed` binary) on ephemeral ports with temp data dirs.

mod common;

mod churn;
mod cli;
mod cluster;
mod cluster_feeds;
mod cluster_idempotency;
mod cluster_lifecycle;
mod disk;
mod feeds;
mod fuzz_regressions;
mod http1;
mod http_api;
mod idempotency;
mod lifecycle;
mod openapi;
mod process;
mod socketio;
mod sse;
mod websocket;
