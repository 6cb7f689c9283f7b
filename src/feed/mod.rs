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
//! - [`access`]: the publish-token check;
//! - [`service`]: [`Feed`]: create, read, admit and attach push clients.

pub mod access;
pub mod change;
pub mod post;
pub mod publish;
pub mod service;
pub mod wire;

pub use change::{Change, Logged, Stored};
pub use post::{NewPost, Patch, Post};
pub use service::{Feed, FeedError, Liveness, Ticket};
