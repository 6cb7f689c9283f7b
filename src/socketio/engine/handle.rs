//! The handle of one Engine.IO session: the sans-IO [`Core`] in a mutex,
//! and the heartbeat task around it. The transports (polling requests, a
//! websocket) drive it through [`Session::with_core`]; no lock is held
//! across an await or across a call into the handler.

use super::packet::Frame;
use super::session::{CloseReason, Core, Pushed, Received};
use super::websocket::send_frame;
use super::{Engine, SessionHandler};
use crate::net::websocket::Outbox;
use async_std::task;
use livefeed_actors::write_within;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// How long a session the client closed over polling stays findable for a
/// poll that was already on its way (see [`Core::poll`]).
pub const CROSSED_POLL_GRACE: Duration = Duration::from_secs(2);

/// One Engine.IO session.
pub struct Session {
    pub(super) sid: Arc<str>,
    pub(super) core: Mutex<Core>,
    pub(super) handler: OnceLock<Arc<dyn SessionHandler>>,
    pub(super) engine: Weak<Engine>,
    pub(super) write_timeout: Duration,
    pub(super) write_spacing: Duration,
    /// The websocket carrying the session, once it is on one: bulk frames
    /// go straight to it when nothing is queued before them.
    pub(super) direct: OnceLock<Outbox>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("sid", &self.sid)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    pub(super) fn core(&self) -> MutexGuard<'_, Core> {
        // The core's methods do not panic halfway through an update.
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on the core; if that closed the session, unregisters it
    /// and tells the handler (after the lock is released).
    pub(super) fn with_core<R>(self: &Arc<Self>, f: impl FnOnce(&mut Core) -> R) -> R {
        let (result, closed) = {
            let mut core = self.core();
            let result = f(&mut core);
            (result, core.take_just_closed())
        };
        if let Some(reason) = closed {
            self.finish(reason);
        }
        result
    }

    fn finish(self: &Arc<Self>, reason: CloseReason) {
        log::debug!("engine.io session {} closed: {reason:?}", self.sid);
        if self.core().owes_noop() {
            // Still findable by the poll that crossed the client's close
            // (it gets its noop, then the session goes), for a while.
            let session = Arc::downgrade(self);
            task::spawn(async move {
                task::sleep(CROSSED_POLL_GRACE).await;
                if let Some(session) = session.upgrade() {
                    session.unregister();
                }
            });
        } else {
            self.unregister();
        }
        if let Some(handler) = self.handler.get() {
            handler.closed(self, reason);
        }
    }

    /// Takes the session out of its engine's registry.
    pub(super) fn unregister(&self) {
        if let Some(engine) = self.engine.upgrade() {
            engine.registry().remove(&self.sid);
        }
    }

    /// Whether the session has closed.
    pub fn is_closed(&self) -> bool {
        self.core().closed().is_some()
    }

    /// Queues control frames together (a packet and its attachments stay
    /// adjacent). False when the session is closed.
    pub fn send(self: &Arc<Self>, frames: impl IntoIterator<Item = Frame>) -> bool {
        self.with_core(|core| {
            frames
                .into_iter()
                .all(|frame| core.push(frame, false) == Pushed::Queued)
        })
    }

    /// Sends a bulk frame: on a websocket with nothing queued, written at
    /// once (held back with `more`, when more follow at once, to leave
    /// with them); otherwise queued, waiting while the outbox is full.
    /// Fails once the session is closed.
    ///
    /// Writing directly saves the writer task's wake-up per frame, which
    /// for a post pushed to thousands of clients is a wake-up per client.
    pub async fn push(self: &Arc<Self>, frame: Frame, more: bool) -> Result<(), CloseReason> {
        let direct = self.direct.get().filter(|_| self.write_spacing.is_zero());
        if let Some(outbox) = direct {
            if self.with_core(Core::begin_direct) {
                let sent = write_within(self.write_timeout, send_frame(outbox, &frame, more)).await;
                self.with_core(Core::end_direct);
                if sent.is_err() {
                    self.close(CloseReason::TransportClose);
                    return Err(CloseReason::TransportClose);
                }
                return Ok(());
            }
        }
        loop {
            let room = self.with_core(|core| match core.push(frame.clone(), true) {
                Pushed::Queued => Ok(None),
                Pushed::Full => Ok(Some(core.room())),
                Pushed::Closed => Err(core.closed().unwrap_or(CloseReason::TransportClose)),
            })?;
            match room {
                None => return Ok(()),
                // A dropped sender means the session closed; the next
                // push says so.
                Some(room) => room.await.ok().unwrap_or(()),
            }
        }
    }

    /// Closes the session.
    pub fn close(self: &Arc<Self>, reason: CloseReason) {
        self.with_core(|core| core.close(reason));
    }

    pub(super) fn dispatch(self: &Arc<Self>, received: Received) -> bool {
        match received {
            Received::Message(message) => {
                if let Some(handler) = self.handler.get() {
                    handler.message(self, message);
                }
                true
            }
            Received::Closed => false,
            _ => true,
        }
    }
}

/// Pings on schedule and closes the session when a ping goes unanswered.
/// Holds the session weakly, so a closed session is freed meanwhile.
pub(super) async fn heartbeat(session: Weak<Session>) {
    loop {
        let Some(strong) = session.upgrade() else {
            return;
        };
        let next = strong.with_core(|core| core.tick(Instant::now()));
        drop(strong);
        let Some(next) = next else { return };
        task::sleep(next.saturating_duration_since(Instant::now())).await;
    }
}
