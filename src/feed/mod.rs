//! The feed core: posts, their validation, the frames that carry them, and
//! the use cases every transport shares. It knows neither tide nor sled:
//! storage and the cluster log plug in through the traits in [`publish`],
//! transports through [`service`] and the actors' `Outbound`.
//!
//! Layout:
//! - [`post`]: the post, and the validation of a new post and of an edit;
//! - [`change`]: changes (create, edit, delete) and their one order;
//! - [`wire`]: every frame of every transport;
//! - [`publish`]: the publish seam (local store or cluster log), reads,
//!   health and metrics as data;
//! - [`name`]: feed names and subscriptions;
//! - [`idempotency`]: `Idempotency-Key`: keys, their scope, the
//!   fingerprint a retry must repeat;
//! - [`access`]: who may read and write which feed (publish token, JWTs);
//! - [`service`]: [`Feed`]: create, edit, delete, read, list feeds, admit
//!   push clients;
//! - [`admission`]: the connection limit's permits, attaching a client's
//!   connection actor; `metrics`: the feed's metrics as data.

pub mod access;
pub mod admission;
pub mod change;
pub mod idempotency;
pub mod metrics;
pub mod name;
pub mod post;
pub mod publish;
pub mod service;
pub mod wire;

pub use admission::{Liveness, Ticket};
pub use change::{Change, Logged, Stored};
pub use name::{FeedName, DEFAULT_FEED};
pub use post::{NewPost, Patch, Post};
pub use service::{Feed, FeedError, FeedInfo};
