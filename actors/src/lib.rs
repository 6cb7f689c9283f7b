//! livefeed's actors: one [`Hub`] and one [`Connection`] per connected client.
//!
//! The hub keeps the set of live connections and fans every change (a post
//! created, edited or deleted) out to them, in one order (`seq`), without
//! ever waiting on a client. A connection
//! actor owns the only writer of its client's transport, applies the
//! heartbeat policy and enforces the backlog bound that keeps a slow client
//! from costing the server unbounded memory.
//!
//! Nothing here knows about HTTP, websockets or storage: a connection writes
//! to an [`Outbound`] sink and replays missed changes from a [`History`], so
//! the crate's tests run hub and connections on in-memory sinks.
//!
//! Layout:
//! - [`delivery`]: a change ready to fan out, encoded once per wire format;
//! - [`hub`]: the hub actor and its messages;
//! - `fanout`: a commit round's changes grouped for the hub's one message
//!   per connection and round, shared between connections;
//! - [`connection`]: the connection actor, the sink trait and close reasons;
//! - [`replay`]: what a reconnecting client is sent (compaction), and an
//!   in-memory history;
//! - [`metrics`]: counters shared with the HTTP layer.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod connection;
pub mod delivery;
mod fanout;
pub mod hub;
pub mod metrics;
pub mod replay;

pub use connection::{
    write_within, Close, Connection, ConnectionConfig, ConnectionId, Control, Deliver, Inbound,
    Link, Outbound, Subscription,
};
pub use delivery::{Delivery, Format, Kind, MAX_FORMATS};
pub use hub::{
    Broadcast, CloseAll, Hub, HubConfig, HubStats, Join, Joined, Leave, Stats, Subscribers, Tick,
};
pub use metrics::{Histogram, HistogramSnapshot, Metrics, BUCKETS_US};
pub use replay::{replayed, Feeds, Head, History, MemoryHistory, Span};
