//! The state machine of one Engine.IO session, without I/O.
//!
//! [`Core`] decides everything about a session: which transport carries it,
//! what a poll gets, when to ping and when to give up, how far an upgrade
//! has gone, and how much may wait in the outbox. The caller (the session
//! wrapper in the parent module) does the I/O and passes the clock in, so
//! every rule here is tested with plain values.
//!
//! The outbox is the one queue of frames bound for the client, drained by
//! GET polls or by the websocket writer, whichever transport is current.
//! Frames from the feed are *bulk*: past the soft bound the pusher waits for
//! room (that is how a polling client exerts backpressure). Control frames
//! (pings, CONNECT replies, acks) may use twice the bound; past that the
//! client is not reading at all and the session is closed as a slow
//! consumer.

use super::packet::{Frame, Packet};

mod writer;
use futures::channel::oneshot;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Timings and bounds of one session.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time from the handshake (then from each pong) to the next ping.
    pub ping_interval: Duration,
    /// Time a client has to answer a ping.
    pub ping_timeout: Duration,
    /// Largest poll response, in bytes (one frame is always sent whole).
    pub max_payload: usize,
    /// Frames in the outbox past which bulk pushes wait for room.
    pub outbox_frames: usize,
    /// Bytes in the outbox past which bulk pushes wait for room.
    pub outbox_bytes: usize,
}

/// Which transport carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// HTTP long-polling.
    Polling,
    /// A websocket (from the start, or after an upgrade).
    WebSocket,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client sent a `1` packet.
    ClientClose,
    /// The websocket closed or failed.
    TransportClose,
    /// The client did not answer a ping within the ping timeout.
    PingTimeout,
    /// The client sent something the protocol does not allow.
    ProtocolError,
    /// Two concurrent GET polls, or two concurrent POSTs.
    DuplicateRequest,
    /// A POST body or websocket message over `maxPayload`.
    PayloadTooLarge,
    /// The outbox passed its hard bound, or the feed gave up on the client.
    SlowConsumer,
    /// No Socket.IO namespace was joined within the connect timeout.
    ConnectTimeout,
    /// The server is shutting down (the outbox is flushed first).
    ServerShutdown,
}

impl CloseReason {
    /// Whether frames already queued are still sent before closing.
    pub fn flushes(self) -> bool {
        self == CloseReason::ServerShutdown
    }

    /// The websocket close code and reason sent to the client.
    pub fn ws_close(self) -> (u16, &'static str) {
        match self {
            CloseReason::ServerShutdown => (1001, "server shutting down"),
            CloseReason::ProtocolError => (1002, "protocol error"),
            CloseReason::SlowConsumer => (1008, "slow consumer"),
            CloseReason::PayloadTooLarge => (1009, "message too big"),
            CloseReason::PingTimeout => (4408, "ping timeout"),
            _ => (1000, "closed"),
        }
    }

    /// The disconnect reason as Socket.IO names it.
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::ClientClose => "client namespace disconnect",
            CloseReason::TransportClose => "transport close",
            CloseReason::PingTimeout => "ping timeout",
            CloseReason::ProtocolError => "parse error",
            CloseReason::DuplicateRequest => "transport error",
            CloseReason::PayloadTooLarge => "transport error",
            CloseReason::SlowConsumer => "slow consumer",
            CloseReason::ConnectTimeout => "connect timeout",
            CloseReason::ServerShutdown => "server shutting down",
        }
    }
}

/// Which transport a received packet came over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A polling POST.
    Polling,
    /// The websocket with this generation number.
    WebSocket(u64),
}

/// An application message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Text (`4...`).
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

/// What a received packet asks of the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    /// Nothing more to do.
    Nothing,
    /// Hand this message to the application.
    Message(Message),
    /// Answer the probe on its websocket with `3probe`.
    ProbeReply,
    /// The probed websocket now carries the session: start its writer.
    Upgraded,
    /// The probe broke the protocol: close that websocket (the session
    /// goes on over polling).
    ProbeFailed,
    /// The session is closed.
    Closed,
}

/// What a GET poll gets.
#[derive(Debug)]
pub enum Poll {
    /// Frames to send now.
    Ready(Vec<Frame>),
    /// Nothing yet: the frames arrive on this channel.
    Wait(oneshot::Receiver<Vec<Frame>>),
}

/// Why a request was refused (an HTTP 400 either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The session is closed.
    Closed,
    /// The request does not fit the session's state.
    BadRequest,
}

/// The result of a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued (or handed to a waiting poll).
    Queued,
    /// The outbox is at its soft bound: wait for room and push again.
    Full,
    /// The session is closed; nothing was queued.
    Closed,
}

/// What the websocket writer should do next.
#[derive(Debug)]
pub enum Take {
    /// Write these frames.
    Frames(Vec<Frame>),
    /// Nothing to write: wait for the bell.
    Idle,
    /// Close the websocket for this reason.
    Close(CloseReason),
}

/// One session's state.
#[derive(Debug)]
pub struct Core {
    limits: Limits,
    transport: Transport,
    /// The current websocket, when `transport` is `WebSocket`.
    ws: u64,
    /// The websocket being probed for an upgrade.
    probe: Option<u64>,
    outbox: VecDeque<Frame>,
    outbox_bytes: usize,
    poll: Option<oneshot::Sender<Vec<Frame>>>,
    posting: bool,
    next_ping: Instant,
    pong_deadline: Option<Instant>,
    closed: Option<CloseReason>,
    /// Set by the operation that closed the session, taken by the caller.
    just_closed: Option<CloseReason>,
    room: Vec<oneshot::Sender<()>>,
    bell: Option<async_channel::Sender<()>>,
    /// The client closed this polling session with no poll waiting: the
    /// poll it may have had in flight, crossing the close on the wire, is
    /// still answered with the noop it would have got (once).
    noop_owed: bool,
    /// A writer is writing to the websocket: the writer task with frames
    /// it took, or a pusher writing its frame directly. One at a time, so
    /// frames leave in the order they were pushed.
    writing: bool,
}

impl Core {
    /// A session opened at `now` over `transport`; websocket `0` when it
    /// starts on a websocket.
    pub fn new(transport: Transport, now: Instant, limits: Limits) -> Self {
        Self {
            next_ping: now + limits.ping_interval,
            limits,
            transport,
            ws: 0,
            probe: None,
            outbox: VecDeque::new(),
            outbox_bytes: 0,
            poll: None,
            posting: false,
            pong_deadline: None,
            closed: None,
            just_closed: None,
            room: Vec::new(),
            bell: None,
            noop_owed: false,
            writing: false,
        }
    }

    /// The current transport.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// Why the session closed, once it has.
    pub fn closed(&self) -> Option<CloseReason> {
        self.closed
    }

    /// The close caused by the last operations, once: the caller then
    /// unregisters the session and tells the application.
    pub fn take_just_closed(&mut self) -> Option<CloseReason> {
        self.just_closed.take()
    }

    /// Whether a poll may still come for the noop of a client close (see
    /// [`Core::poll`]): the session stays findable meanwhile.
    pub fn owes_noop(&self) -> bool {
        self.noop_owed
    }

    /// Frames waiting in the outbox.
    pub fn queued(&self) -> usize {
        self.outbox.len()
    }

    /// The bell the websocket writer waits on; rung whenever there is
    /// something to write or the session closes.
    pub fn set_bell(&mut self, bell: async_channel::Sender<()>) {
        self.bell = Some(bell);
        self.ring();
    }

    fn ring(&self) {
        if let Some(bell) = &self.bell {
            // A full bell is already rung.
            bell.try_send(()).ok();
        }
    }

    // ---- polling ----

    /// A GET poll arrived.
    pub fn poll(&mut self) -> Result<Poll, Refused> {
        if self.closed.is_some() {
            return match std::mem::take(&mut self.noop_owed) {
                true => Ok(Poll::Ready(vec![Frame::noop()])),
                false => Err(Refused::Closed),
            };
        }
        if self.transport != Transport::Polling {
            return Err(Refused::BadRequest);
        }
        if self.poll.as_ref().is_some_and(|p| !p.is_canceled()) {
            // Two polls at once: the client is confused or hostile.
            self.close(CloseReason::DuplicateRequest);
            return Err(Refused::BadRequest);
        }
        self.poll = None;
        if !self.outbox.is_empty() {
            return Ok(Poll::Ready(self.take_batch()));
        }
        if self.probe.is_some() {
            // Let the client finish polling so it can complete the upgrade.
            return Ok(Poll::Ready(vec![Frame::noop()]));
        }
        let (tx, rx) = oneshot::channel();
        self.poll = Some(tx);
        Ok(Poll::Wait(rx))
    }

    /// A POST arrived; [`Core::post_end`] must follow.
    pub fn post_begin(&mut self) -> Result<(), Refused> {
        if self.closed.is_some() {
            return Err(Refused::Closed);
        }
        if self.transport != Transport::Polling {
            return Err(Refused::BadRequest);
        }
        if self.posting {
            self.close(CloseReason::DuplicateRequest);
            return Err(Refused::BadRequest);
        }
        self.posting = true;
        Ok(())
    }

    /// The POST is done.
    pub fn post_end(&mut self) {
        self.posting = false;
    }

    // ---- upgrade ----

    /// A websocket with this session's id opened: it may become the
    /// transport once probed.
    pub fn probe_begin(&mut self, ws: u64) -> Result<(), Refused> {
        if self.closed.is_some() {
            return Err(Refused::Closed);
        }
        if self.transport != Transport::Polling || self.probe.is_some() {
            return Err(Refused::BadRequest);
        }
        self.probe = Some(ws);
        Ok(())
    }

    /// The probing websocket closed or timed out before the upgrade.
    pub fn probe_end(&mut self, ws: u64) {
        if self.probe == Some(ws) {
            self.probe = None;
        }
    }

    // ---- inbound ----

    /// A packet from the client, received at `now` over `via`.
    pub fn receive(&mut self, packet: Packet, now: Instant, via: Via) -> Received {
        if self.closed.is_some() {
            return Received::Closed;
        }
        if let Via::WebSocket(ws) = via {
            if self.probe == Some(ws) {
                return self.receive_probe(packet, ws);
            }
            if self.transport != Transport::WebSocket || self.ws != ws {
                return Received::ProbeFailed; // a stale websocket
            }
        } else if self.transport != Transport::Polling {
            return Received::Nothing; // a late POST after the upgrade
        }
        match packet {
            Packet::Pong(_) => {
                self.pong_deadline = None;
                self.next_ping = now + self.limits.ping_interval;
                Received::Nothing
            }
            Packet::Message(text) => Received::Message(Message::Text(text)),
            Packet::Binary(bytes) => Received::Message(Message::Binary(bytes)),
            Packet::Noop => Received::Nothing,
            Packet::Close => {
                self.close(CloseReason::ClientClose);
                Received::Closed
            }
            // v4 clients do not ping; open and upgrade are out of place.
            Packet::Ping(_) | Packet::Open(_) | Packet::Upgrade => {
                self.close(CloseReason::ProtocolError);
                Received::Closed
            }
        }
    }

    fn receive_probe(&mut self, packet: Packet, ws: u64) -> Received {
        match packet {
            Packet::Ping(data) if data == "probe" => {
                self.answer_poll_with_noop();
                Received::ProbeReply
            }
            Packet::Upgrade => {
                self.probe = None;
                self.answer_poll_with_noop();
                self.transport = Transport::WebSocket;
                self.ws = ws;
                Received::Upgraded
            }
            _ => {
                self.probe = None;
                Received::ProbeFailed
            }
        }
    }

    /// The generation of the current websocket.
    pub fn websocket(&self) -> u64 {
        self.ws
    }

    fn answer_poll_with_noop(&mut self) {
        if let Some(poll) = self.poll.take() {
            poll.send(vec![Frame::noop()]).ok();
        }
    }

    // ---- outbound ----

    /// Queues a frame. Bulk frames stop at the soft bound; control frames
    /// close the session at twice the bound.
    pub fn push(&mut self, frame: Frame, bulk: bool) -> Pushed {
        if self.closed.is_some() {
            return Pushed::Closed;
        }
        let cost = frame.cost();
        let factor = if bulk { 1 } else { 2 };
        let over = self.outbox.len() >= self.limits.outbox_frames * factor
            || self.outbox_bytes + cost > self.limits.outbox_bytes * factor;
        if over && !self.outbox.is_empty() {
            if bulk {
                return Pushed::Full;
            }
            self.close(CloseReason::SlowConsumer);
            return Pushed::Closed;
        }
        self.outbox_bytes += cost;
        self.outbox.push_back(frame);
        self.flush_to_poll();
        self.ring();
        Pushed::Queued
    }

    /// Completes once the outbox has room again (or the session closed).
    pub fn room(&mut self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        if self.closed.is_none() {
            self.room.push(tx);
        }
        rx
    }

    /// Hands queued frames to a waiting poll, if there is one.
    fn flush_to_poll(&mut self) {
        let Some(poll) = self.poll.take() else { return };
        if poll.is_canceled() {
            return;
        }
        let batch = self.take_batch();
        if let Err(batch) = poll.send(batch) {
            // The poll went away meanwhile: keep the frames for the next.
            for frame in batch.into_iter().rev() {
                self.outbox_bytes += frame.cost();
                self.outbox.push_front(frame);
            }
        }
    }

    /// Up to `max_payload` bytes of frames (at least one), oldest first.
    fn take_batch(&mut self) -> Vec<Frame> {
        self.take_up_to(usize::MAX)
    }

    /// [`Core::take_batch`], at most `frames` of them.
    fn take_up_to(&mut self, frames: usize) -> Vec<Frame> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(frame) = self.outbox.front() {
            let cost = frame.cost();
            if batch.len() == frames
                || (!batch.is_empty() && bytes + cost > self.limits.max_payload)
            {
                break;
            }
            bytes += cost;
            self.outbox_bytes -= cost;
            // `front` just returned it.
            batch.extend(self.outbox.pop_front());
        }
        for waiter in self.room.drain(..) {
            waiter.send(()).ok();
        }
        batch
    }

    // ---- the websocket writer: see `writer` ----

    // ---- time ----

    /// Runs the heartbeat at `now`: pings when due, closes when a ping went
    /// unanswered. Returns when to call again (`None` once closed).
    pub fn tick(&mut self, now: Instant) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        match self.pong_deadline {
            Some(deadline) if now >= deadline => {
                self.close(CloseReason::PingTimeout);
                return None;
            }
            None if now >= self.next_ping => {
                self.pong_deadline = Some(now + self.limits.ping_timeout);
                if self.push(Frame::ping(), false) == Pushed::Closed {
                    return None;
                }
            }
            _ => {}
        }
        Some(self.pong_deadline.unwrap_or(self.next_ping))
    }

    // ---- closing ----

    /// Closes the session (once). A waiting poll gets `1` (or `6` when the
    /// client itself closed); a flushing close also hands it what is
    /// queued, and lets the websocket writer drain the outbox first.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closed.is_some() {
            return;
        }
        self.closed = Some(reason);
        self.just_closed = Some(reason);
        if let Some(poll) = self.poll.take() {
            let mut last = if reason.flushes() {
                self.take_batch()
            } else {
                Vec::new()
            };
            last.push(if reason == CloseReason::ClientClose {
                Frame::noop()
            } else {
                Frame::close()
            });
            self.noop_owed = poll.send(last).is_err() && reason == CloseReason::ClientClose;
        } else {
            self.noop_owed =
                reason == CloseReason::ClientClose && self.transport == Transport::Polling;
        }
        if !(reason.flushes() && self.transport == Transport::WebSocket) {
            self.outbox.clear();
            self.outbox_bytes = 0;
        }
        // Dropping the senders wakes every pusher waiting for room.
        self.room.clear();
        self.ring();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn limits() -> Limits {
        Limits {
            ping_interval: Duration::from_millis(300),
            ping_timeout: Duration::from_millis(200),
            max_payload: 100,
            outbox_frames: 3,
            outbox_bytes: 1000,
        }
    }

    fn polling(now: Instant) -> Core {
        Core::new(Transport::Polling, now, limits())
    }

    fn text(frames: &[Frame]) -> Vec<String> {
        frames
            .iter()
            .map(|f| match f {
                Frame::Text(t) => t.to_string(),
                Frame::Binary(b) => format!("<{} bytes>", b.len()),
            })
            .collect()
    }

    fn ready(poll: Result<Poll, Refused>) -> Vec<String> {
        match poll {
            Ok(Poll::Ready(frames)) => text(&frames),
            other => panic!("expected a ready poll, got {other:?}"),
        }
    }

    fn waiting(poll: Result<Poll, Refused>) -> oneshot::Receiver<Vec<Frame>> {
        match poll {
            Ok(Poll::Wait(rx)) => rx,
            other => panic!("expected a waiting poll, got {other:?}"),
        }
    }

    fn answered(rx: &mut oneshot::Receiver<Vec<Frame>>) -> Vec<String> {
        text(&rx.try_recv().unwrap().expect("the poll is answered"))
    }

    #[test]
    fn poll_waits_then_gets_pushed_frames() {
        let now = Instant::now();
        let mut core = polling(now);
        let mut rx = waiting(core.poll());
        assert!(rx.try_recv().unwrap().is_none());
        assert_eq!(core.push(Frame::message("2[\"a\"]"), true), Pushed::Queued);
        assert_eq!(answered(&mut rx), ["42[\"a\"]"]);
        // Later pushes wait for the next poll and go out together.
        core.push(Frame::message("x"), true);
        core.push(Frame::binary(vec![1u8, 2]), true);
        assert_eq!(ready(core.poll()), ["4x", "<2 bytes>"]);
    }

    #[test]
    fn poll_responses_are_bounded_by_max_payload() {
        let mut core = polling(Instant::now());
        let big = "x".repeat(60);
        core.push(Frame::message(&big), true);
        core.push(Frame::message(&big), true);
        assert_eq!(ready(core.poll()).len(), 1);
        assert_eq!(ready(core.poll()).len(), 1);
    }

    #[test]
    fn duplicate_poll_closes_the_session() {
        let mut core = polling(Instant::now());
        let mut first = waiting(core.poll());
        assert_eq!(core.poll().unwrap_err(), Refused::BadRequest);
        assert_eq!(answered(&mut first), ["1"]);
        assert_eq!(core.take_just_closed(), Some(CloseReason::DuplicateRequest));
        assert_eq!(core.poll().unwrap_err(), Refused::Closed);
    }

    #[test]
    fn a_poll_whose_request_went_away_is_not_a_duplicate() {
        let mut core = polling(Instant::now());
        drop(waiting(core.poll()));
        let _second = waiting(core.poll());
        assert_eq!(core.closed(), None);
    }

    #[test]
    fn frames_pushed_to_a_vanished_poll_are_kept() {
        let mut core = polling(Instant::now());
        let rx = waiting(core.poll());
        drop(rx);
        core.push(Frame::message("a"), true);
        assert_eq!(ready(core.poll()), ["4a"]);
    }

    #[test]
    fn duplicate_post_closes_the_session() {
        let mut core = polling(Instant::now());
        core.post_begin().unwrap();
        assert_eq!(core.post_begin(), Err(Refused::BadRequest));
        assert_eq!(core.closed(), Some(CloseReason::DuplicateRequest));
        let mut core = polling(Instant::now());
        core.post_begin().unwrap();
        core.post_end();
        core.post_begin().unwrap();
    }

    #[test]
    fn heartbeat_pings_after_the_interval_and_closes_without_pong() {
        let t0 = Instant::now();
        let mut core = polling(t0);
        let ms = Duration::from_millis;
        assert_eq!(core.tick(t0), Some(t0 + ms(300)));
        assert_eq!(core.queued(), 0);
        // Ping due: queued, pong expected within the timeout.
        assert_eq!(core.tick(t0 + ms(300)), Some(t0 + ms(500)));
        assert_eq!(ready(core.poll()), ["2"]);
        // Pong: the next ping is an interval after it.
        let pong = t0 + ms(350);
        assert_eq!(
            core.receive(Packet::Pong(String::new()), pong, Via::Polling),
            Received::Nothing
        );
        assert_eq!(core.tick(pong), Some(pong + ms(300)));
        core.tick(pong + ms(300));
        assert_eq!(ready(core.poll()), ["2"]);
        // No pong this time.
        assert_eq!(core.tick(pong + ms(499)), Some(pong + ms(500)));
        assert_eq!(core.tick(pong + ms(500)), None);
        assert_eq!(core.take_just_closed(), Some(CloseReason::PingTimeout));
        assert_eq!(core.poll().unwrap_err(), Refused::Closed);
    }

    #[test]
    fn ping_timeout_answers_a_waiting_poll_with_close() {
        let t0 = Instant::now();
        let mut core = polling(t0);
        core.tick(t0 + limits().ping_interval);
        assert_eq!(ready(core.poll()), ["2"]);
        let mut rx = waiting(core.poll());
        core.tick(t0 + SECOND);
        assert_eq!(answered(&mut rx), ["1"]);
    }

    #[test]
    fn client_close_answers_a_waiting_poll_with_noop() {
        let now = Instant::now();
        let mut core = polling(now);
        let mut rx = waiting(core.poll());
        core.post_begin().unwrap();
        assert_eq!(
            core.receive(Packet::Close, now, Via::Polling),
            Received::Closed
        );
        assert_eq!(answered(&mut rx), ["6"]);
        assert_eq!(core.take_just_closed(), Some(CloseReason::ClientClose));
        // That poll had the noop: the next one finds the session gone.
        assert!(!core.owes_noop());
        assert_eq!(core.poll().unwrap_err(), Refused::Closed);
    }

    #[test]
    fn a_poll_crossing_the_client_close_gets_noop_once() {
        let now = Instant::now();
        let mut core = polling(now);
        core.post_begin().unwrap();
        // The close is handled before the poll the client sent with it.
        assert_eq!(
            core.receive(Packet::Close, now, Via::Polling),
            Received::Closed
        );
        assert!(core.owes_noop());
        assert_eq!(ready(core.poll()), ["6"]);
        assert!(!core.owes_noop());
        assert_eq!(core.poll().unwrap_err(), Refused::Closed);
        // Other closes owe nothing.
        let mut core = polling(now);
        core.close(CloseReason::PingTimeout);
        assert!(!core.owes_noop());
        assert_eq!(core.poll().unwrap_err(), Refused::Closed);
    }

    #[test]
    fn client_pings_and_stray_packets_are_protocol_errors() {
        let now = Instant::now();
        for packet in [
            Packet::Ping(String::new()),
            Packet::Open("{}".into()),
            Packet::Upgrade,
        ] {
            let mut core = polling(now);
            assert_eq!(core.receive(packet, now, Via::Polling), Received::Closed);
            assert_eq!(core.closed(), Some(CloseReason::ProtocolError));
        }
        let mut core = polling(now);
        assert_eq!(
            core.receive(Packet::Message("x".into()), now, Via::Polling),
            Received::Message(Message::Text("x".into()))
        );
        assert_eq!(
            core.receive(Packet::Noop, now, Via::Polling),
            Received::Nothing
        );
    }

    #[test]
    fn upgrade_probe_noop_and_switch() {
        let now = Instant::now();
        let mut core = polling(now);
        let mut pending = waiting(core.poll());
        core.probe_begin(7).unwrap();
        // A second websocket during the probe is refused.
        assert_eq!(core.probe_begin(8), Err(Refused::BadRequest));
        assert_eq!(
            core.receive(Packet::Ping("probe".into()), now, Via::WebSocket(7)),
            Received::ProbeReply
        );
        // The waiting poll is released with a noop, and so is the next one.
        assert_eq!(answered(&mut pending), ["6"]);
        assert_eq!(ready(core.poll()), ["6"]);
        // Frames queued meanwhile wait for the new transport.
        core.push(Frame::message("late"), true);
        assert_eq!(
            core.receive(Packet::Upgrade, now, Via::WebSocket(7)),
            Received::Upgraded
        );
        assert_eq!(core.transport(), Transport::WebSocket);
        match core.take() {
            Take::Frames(frames) => assert_eq!(text(&frames), ["4late"]),
            other => panic!("{other:?}"),
        }
        assert!(matches!(core.take(), Take::Idle));
        // Polling is over for this session; so is probing.
        assert_eq!(core.poll().unwrap_err(), Refused::BadRequest);
        assert_eq!(core.post_begin(), Err(Refused::BadRequest));
        assert_eq!(core.probe_begin(9), Err(Refused::BadRequest));
        assert_eq!(core.closed(), None);
        // Packets over the new websocket reach the application.
        assert_eq!(
            core.receive(Packet::Message("hi".into()), now, Via::WebSocket(7)),
            Received::Message(Message::Text("hi".into()))
        );
    }

    #[test]
    fn a_failed_probe_leaves_polling_in_place() {
        let now = Instant::now();
        let mut core = polling(now);
        core.probe_begin(1).unwrap();
        assert_eq!(
            core.receive(Packet::Message("x".into()), now, Via::WebSocket(1)),
            Received::ProbeFailed
        );
        assert_eq!(core.transport(), Transport::Polling);
        drop(waiting(core.poll()));
        core.probe_begin(2).unwrap();
        core.probe_end(2);
        core.probe_begin(3).unwrap();
    }

    #[test]
    fn bulk_pushes_wait_for_room_and_control_frames_have_headroom() {
        let mut core = polling(Instant::now());
        for i in 0..3 {
            assert_eq!(
                core.push(Frame::message(&i.to_string()), true),
                Pushed::Queued
            );
        }
        assert_eq!(core.push(Frame::message("3"), true), Pushed::Full);
        let mut room = core.room();
        assert!(room.try_recv().unwrap().is_none());
        // Control frames still fit, up to twice the bound.
        for _ in 0..3 {
            assert_eq!(core.push(Frame::ping(), false), Pushed::Queued);
        }
        assert_eq!(core.poll().map(|_| ()), Ok(()));
        assert_eq!(room.try_recv(), Ok(Some(())));
        assert_eq!(core.push(Frame::message("3"), true), Pushed::Queued);
    }

    #[test]
    fn a_client_that_never_reads_is_closed_as_slow() {
        let mut core = polling(Instant::now());
        let mut room = core.room();
        for _ in 0..6 {
            assert_eq!(core.push(Frame::ping(), false), Pushed::Queued);
        }
        assert_eq!(core.push(Frame::ping(), false), Pushed::Closed);
        assert_eq!(core.take_just_closed(), Some(CloseReason::SlowConsumer));
        // Waiters learn that no room will come.
        assert!(room.try_recv().is_err());
        assert_eq!(core.push(Frame::ping(), true), Pushed::Closed);
    }

    #[test]
    fn shutdown_flushes_websocket_outbox_before_closing() {
        let mut core = Core::new(Transport::WebSocket, Instant::now(), limits());
        core.push(Frame::message("a"), true);
        core.close(CloseReason::ServerShutdown);
        match core.take() {
            Take::Frames(frames) => assert_eq!(text(&frames), ["4a"]),
            other => panic!("{other:?}"),
        }
        core.wrote();
        assert!(matches!(
            core.take(),
            Take::Close(CloseReason::ServerShutdown)
        ));
        // Any other close drops what is queued.
        let mut core = Core::new(Transport::WebSocket, Instant::now(), limits());
        core.push(Frame::message("a"), true);
        core.close(CloseReason::ProtocolError);
        assert!(matches!(
            core.take(),
            Take::Close(CloseReason::ProtocolError)
        ));
    }

    #[test]
    fn shutdown_hands_a_waiting_poll_the_outbox_and_close() {
        let mut core = polling(Instant::now());
        let mut rx = waiting(core.poll());
        // Simulate frames queued while the poll's answer was in flight.
        core.poll = None;
        core.push(Frame::message("a"), true);
        let (tx, mut rx2) = oneshot::channel();
        core.poll = Some(tx);
        core.close(CloseReason::ServerShutdown);
        assert!(rx.try_recv().is_err());
        assert_eq!(answered(&mut rx2), ["4a", "1"]);
    }

    #[test]
    fn the_writer_may_take_frames_one_at_a_time() {
        let mut core = Core::new(Transport::WebSocket, Instant::now(), limits());
        core.push(Frame::message("0"), false);
        core.push(Frame::message("2[\"auth\"]"), false);
        match core.take_at_most(1) {
            Take::Frames(frames) => assert_eq!(text(&frames), ["40"]),
            other => panic!("{other:?}"),
        }
        // Busy until it wrote them.
        assert!(matches!(core.take(), Take::Idle));
        core.wrote();
        match core.take() {
            Take::Frames(frames) => assert_eq!(text(&frames), ["42[\"auth\"]"]),
            other => panic!("{other:?}"),
        }
        core.wrote();
        assert!(matches!(core.take_at_most(1), Take::Idle));
    }

    #[test]
    fn a_pusher_writes_directly_only_when_nothing_is_queued_or_being_written() {
        let mut core = Core::new(Transport::WebSocket, Instant::now(), limits());
        // No writer task yet: queue.
        assert!(!core.begin_direct());
        let (tx, rx) = async_channel::bounded(1);
        core.set_bell(tx);
        rx.try_recv().ok();
        assert!(core.begin_direct());
        // While it writes, nobody else does: others queue, the writer
        // task waits.
        assert!(!core.begin_direct());
        core.push(Frame::ping(), false);
        rx.try_recv().ok();
        assert!(matches!(core.take(), Take::Idle));
        // Done: the writer task is told of what was queued meanwhile.
        core.end_direct();
        assert!(rx.try_recv().is_ok());
        assert!(!core.begin_direct(), "a frame is queued before it");
        match core.take() {
            Take::Frames(frames) => assert_eq!(text(&frames), ["2"]),
            other => panic!("{other:?}"),
        }
        assert!(!core.begin_direct(), "the writer task is writing");
        core.wrote();
        assert!(core.begin_direct());
        core.close(CloseReason::ServerShutdown);
        rx.try_recv().ok();
        assert!(matches!(core.take(), Take::Idle));
        core.end_direct();
        assert!(
            rx.try_recv().is_ok(),
            "the writer task is told of the close"
        );
        assert!(matches!(
            core.take(),
            Take::Close(CloseReason::ServerShutdown)
        ));
        assert!(!core.begin_direct());
        // Never over polling.
        let mut core = polling(Instant::now());
        let (tx, _rx) = async_channel::bounded(1);
        core.set_bell(tx);
        assert!(!core.begin_direct());
    }

    #[test]
    fn the_bell_rings_for_frames_and_for_close() {
        let mut core = Core::new(Transport::WebSocket, Instant::now(), limits());
        let (tx, rx) = async_channel::bounded(1);
        core.set_bell(tx);
        assert!(rx.try_recv().is_ok());
        core.push(Frame::message("a"), true);
        assert!(rx.try_recv().is_ok());
        core.close(CloseReason::TransportClose);
        assert!(rx.try_recv().is_ok());
    }

    #[test]
    fn stale_websockets_are_not_the_transport() {
        let now = Instant::now();
        let mut core = Core::new(Transport::WebSocket, now, limits());
        assert_eq!(
            core.receive(Packet::Message("x".into()), now, Via::WebSocket(5)),
            Received::ProbeFailed
        );
        assert_eq!(
            core.receive(Packet::Message("x".into()), now, Via::WebSocket(0)),
            Received::Message(Message::Text("x".into()))
        );
    }
}
