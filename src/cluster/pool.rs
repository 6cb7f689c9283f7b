//! Redis connections for creates: idle ones kept for reuse, and a bound on
//! how many are open at once.

use super::progress::lock;
use super::resp::{Conn, RedisError, RedisUrl};
use super::{COMMAND_TIMEOUT, CONNECT_TIMEOUT, MAX_PUBLISH_CONNECTIONS};
use std::sync::Mutex;

/// Idle connections for creates, and a bound on how many are open.
pub(crate) struct Pool {
    url: RedisUrl,
    idle: Mutex<Vec<Conn>>,
    /// A counting semaphore: sending takes one of the
    /// [`MAX_PUBLISH_CONNECTIONS`] slots, receiving gives one back.
    permits: async_channel::Sender<()>,
    returned: async_channel::Receiver<()>,
}

/// A permit to use one publish connection; released on drop.
pub(crate) struct Permit<'a>(&'a Pool);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.0.returned.try_recv().ok();
    }
}

impl Pool {
    pub(crate) fn new(url: RedisUrl) -> Self {
        let (permits, returned) = async_channel::bounded(MAX_PUBLISH_CONNECTIONS);
        Self {
            url,
            idle: Mutex::new(Vec::new()),
            permits,
            returned,
        }
    }

    /// Waits (at most [`COMMAND_TIMEOUT`]) for a free connection slot: when
    /// Redis hangs, creates fail after a bounded time instead of queueing.
    pub(crate) async fn permit(&self) -> Result<Permit<'_>, RedisError> {
        match async_std::future::timeout(COMMAND_TIMEOUT, self.permits.send(())).await {
            // The channel never closes: both ends live in `self`.
            Ok(_) => Ok(Permit(self)),
            Err(_) => Err(RedisError::Timeout(COMMAND_TIMEOUT)),
        }
    }

    pub(crate) async fn get(&self) -> Result<Conn, RedisError> {
        let idle = lock(&self.idle).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => Conn::connect(&self.url, CONNECT_TIMEOUT).await,
        }
    }

    pub(crate) fn put(&self, conn: Conn) {
        if !conn.is_broken() {
            lock(&self.idle).push(conn);
        }
    }

    /// Drops every idle connection: after a failure they are most likely
    /// all dead (Redis restarted), and a create should not find out by
    /// failing.
    pub(crate) fn clear(&self) {
        lock(&self.idle).clear();
    }
}
