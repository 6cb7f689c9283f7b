//! The websocket side of a session's core: who writes next. One writer at
//! a time, the writer task with the frames it took or a pusher writing its
//! own frame directly when nothing is queued before it, so frames leave in
//! the order they were pushed.

use super::{Core, Take, Transport};

impl Core {
    /// What the websocket writer does next.
    pub fn take(&mut self) -> Take {
        self.take_at_most(usize::MAX)
    }

    /// [`Core::take`], with at most `frames` frames. Frames taken make the
    /// writer busy until [`Core::wrote`]; while a pusher writes directly
    /// ([`Core::begin_direct`]) the writer has nothing to do.
    pub fn take_at_most(&mut self, frames: usize) -> Take {
        if self.writing {
            return Take::Idle;
        }
        if !self.outbox.is_empty() {
            self.writing = true;
            return Take::Frames(self.take_up_to(frames));
        }
        match self.closed {
            Some(reason) => Take::Close(reason),
            None => Take::Idle,
        }
    }

    /// The websocket writer wrote the frames it took.
    pub fn wrote(&mut self) {
        self.writing = false;
    }

    /// Whether a pusher may write its frame to the websocket itself, now,
    /// instead of queueing it for the writer task: the session is open on
    /// a websocket with a writer, nothing is queued and nobody is writing.
    /// If so, the pusher is the writer until [`Core::end_direct`].
    pub fn begin_direct(&mut self) -> bool {
        let free = self.transport == Transport::WebSocket
            && self.closed.is_none()
            && self.bell.is_some()
            && self.outbox.is_empty()
            && !self.writing;
        self.writing |= free;
        free
    }

    /// The pusher wrote its frame; the writer task takes what was queued
    /// (or the close) meanwhile.
    pub fn end_direct(&mut self) {
        self.writing = false;
        if !self.outbox.is_empty() || self.closed.is_some() {
            self.ring();
        }
    }
}
