//! The Socket.IO v5 server on top of Engine.IO: namespaces, events, acks
//! in both directions, binary attachments.
//!
//! [`SocketIo`] is the engine's [`Handler`]: each engine session gets a
//! client that decodes packets, reassembles binary ones, and routes them to
//! the [`Namespace`] the client joined. A [`Socket`] is one client in one
//! namespace: the handle an application emits and acks through.
//!
//! As in the reference server, a packet that does not parse, a packet for a
//! namespace the client has not joined, or a second CONNECT to the same
//! namespace closes the whole connection.

use super::engine::packet::Frame;
use super::engine::{random_id, CloseReason, Handler, Message, Session, SessionHandler};
use super::packet::{join_array, json_string, split_array, Packet, PacketType};
use futures::channel::oneshot;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// Most acks a socket may be waiting for; older ones are forgotten first.
const MAX_PENDING_ACKS: usize = 1024;

/// What a namespace does with its clients.
pub trait Namespace: Send + Sync + 'static {
    /// A client asks to join with `auth` (the CONNECT payload as JSON text,
    /// `{}` when it sent none). `Ok` means the namespace accepts it: it
    /// must call [`Socket::accept`], now or later, before emitting. `Err`
    /// refuses it with a CONNECT_ERROR.
    fn connect(&self, socket: &Socket, auth: &str) -> Result<(), ConnectError>;

    /// The client emitted an event.
    fn event(&self, socket: &Socket, event: Event) {
        let _ = (socket, event);
    }

    /// The client left (or its connection ended) for `reason`.
    fn disconnect(&self, socket: &Socket, reason: &str) {
        let _ = (socket, reason);
    }
}

/// A refused CONNECT: the CONNECT_ERROR's `message`, and its `data` (what
/// a client gets as `err.data`), if any.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectError {
    /// Why, for people.
    pub message: String,
    /// Details for programs.
    pub data: Option<serde_json::Value>,
}

impl From<String> for ConnectError {
    fn from(message: String) -> Self {
        Self {
            message,
            data: None,
        }
    }
}

/// An event from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event name.
    pub name: String,
    /// The arguments after the name, each as JSON text (binary ones as
    /// placeholders into `attachments`).
    pub args: Vec<String>,
    /// Binary attachments.
    pub attachments: Vec<Vec<u8>>,
    /// Present when the client waits for an ack.
    pub ack: Option<u64>,
}

/// An ack from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The arguments, each as JSON text.
    pub args: Vec<String>,
    /// Binary attachments.
    pub attachments: Vec<Vec<u8>>,
}

type AckCallback = Box<dyn FnOnce(&Socket, Ack) + Send>;

/// A packet and its binary attachments.
type Complete = (Packet, Vec<Vec<u8>>);

/// The Socket.IO server: namespaces by name.
pub struct SocketIo {
    namespaces: HashMap<String, Arc<dyn Namespace>>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for SocketIo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SocketIo")
            .field("namespaces", &self.namespaces.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SocketIo {
    /// A server that closes connections which join no namespace within
    /// `connect_timeout`.
    pub fn new(connect_timeout: Duration) -> Self {
        Self {
            namespaces: HashMap::new(),
            connect_timeout,
        }
    }

    /// Adds a namespace (`/` is the main one).
    pub fn namespace(mut self, name: &str, namespace: Arc<dyn Namespace>) -> Self {
        self.namespaces.insert(name.to_owned(), namespace);
        self
    }
}

impl Handler for SocketIo {
    fn open(&self, session: &Arc<Session>) -> Arc<dyn SessionHandler> {
        let client = Arc::new(Client {
            namespaces: self.namespaces.clone(),
            state: Mutex::new(ClientState::default()),
        });
        let (session_ref, client_ref) = (Arc::downgrade(session), Arc::downgrade(&client));
        let timeout = self.connect_timeout;
        async_std::task::spawn(async move {
            async_std::task::sleep(timeout).await;
            if let (Some(session), Some(client)) = (session_ref.upgrade(), client_ref.upgrade()) {
                if client.state().sockets.is_empty() {
                    session.close(CloseReason::ConnectTimeout);
                }
            }
        });
        client
    }
}

#[derive(Default)]
struct ClientState {
    sockets: HashMap<String, Socket>,
    /// A binary packet waiting for its attachments.
    partial: Option<Complete>,
}

/// One engine session's Socket.IO side.
struct Client {
    namespaces: HashMap<String, Arc<dyn Namespace>>,
    state: Mutex<ClientState>,
}

impl Client {
    fn state(&self) -> MutexGuard<'_, ClientState> {
        // No update here can be left half done by a panic.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next complete packet, if `message` completes one.
    fn assemble(&self, message: Message) -> Result<Option<Complete>, ()> {
        let mut state = self.state();
        match message {
            Message::Text(text) => {
                if state.partial.is_some() {
                    return Err(()); // text while attachments are due
                }
                let packet = Packet::decode(&text).map_err(|_| ())?;
                if packet.kind.is_binary() && packet.attachments > 0 {
                    state.partial = Some((packet, Vec::new()));
                    return Ok(None);
                }
                Ok(Some((packet, Vec::new())))
            }
            Message::Binary(bytes) => {
                let (packet, mut attachments) = state.partial.take().ok_or(())?;
                attachments.push(bytes);
                if attachments.len() < packet.attachments {
                    state.partial = Some((packet, attachments));
                    return Ok(None);
                }
                Ok(Some((packet, attachments)))
            }
        }
    }

    /// Handles one packet; `Err` closes the connection.
    fn dispatch(
        &self,
        session: &Arc<Session>,
        packet: Packet,
        attachments: Vec<Vec<u8>>,
    ) -> Result<(), ()> {
        let socket = self.state().sockets.get(&packet.nsp).cloned();
        match (packet.kind, socket) {
            (PacketType::Connect, None) => {
                self.connect(session, packet);
                Ok(())
            }
            (PacketType::Disconnect, Some(socket)) => {
                self.state().sockets.remove(&packet.nsp);
                socket.gone("client namespace disconnect");
                Ok(())
            }
            (PacketType::Event | PacketType::BinaryEvent, Some(socket)) => {
                let data = packet.data.unwrap_or_default();
                let mut items = split_array(&data).into_iter();
                let first = items.next().ok_or(())?;
                let name =
                    serde_json::from_str::<String>(first).unwrap_or_else(|_| first.to_owned());
                let event = Event {
                    name,
                    args: items.map(str::to_owned).collect(),
                    attachments,
                    ack: packet.id,
                };
                socket.inner.namespace.event(&socket, event);
                Ok(())
            }
            (PacketType::Ack | PacketType::BinaryAck, Some(socket)) => {
                let callback = packet.id.and_then(|id| socket.state().acks.remove(&id));
                if let Some(callback) = callback {
                    let data = packet.data.unwrap_or_default();
                    let args = split_array(&data).into_iter().map(str::to_owned).collect();
                    callback(&socket, Ack { args, attachments });
                }
                Ok(())
            }
            // CONNECT twice, anything for a namespace not joined, and
            // CONNECT_ERROR (which only servers send).
            _ => Err(()),
        }
    }

    fn connect(&self, session: &Arc<Session>, packet: Packet) {
        let nsp = packet.nsp;
        let Some(namespace) = self.namespaces.get(&nsp).cloned() else {
            let error = Packet::new(
                PacketType::ConnectError,
                &nsp,
                Some(r#"{"message":"Invalid namespace"}"#.into()),
            );
            session.send([Frame::message(&error.encode())]);
            return;
        };
        let auth = packet.data.unwrap_or_else(|| "{}".to_owned());
        let socket = Socket {
            inner: Arc::new(SocketInner {
                sid: random_id(),
                nsp: nsp.clone(),
                auth,
                session: Arc::downgrade(session),
                namespace: namespace.clone(),
                state: Mutex::new(SocketState {
                    next_ack: 1,
                    ..SocketState::default()
                }),
            }),
        };
        self.state().sockets.insert(nsp.clone(), socket.clone());
        if let Err(refused) = namespace.connect(&socket, &socket.inner.auth) {
            self.state().sockets.remove(&nsp);
            socket.state().gone = true;
            let mut data = serde_json::json!({ "message": refused.message });
            if let Some(details) = refused.data {
                data["data"] = details;
            }
            let data = data.to_string();
            let error = Packet::new(PacketType::ConnectError, &nsp, Some(data));
            session.send([Frame::message(&error.encode())]);
        }
    }
}

impl SessionHandler for Client {
    fn message(&self, session: &Arc<Session>, message: Message) {
        let outcome = match self.assemble(message) {
            Ok(Some((packet, attachments))) => self.dispatch(session, packet, attachments),
            Ok(None) => Ok(()),
            Err(()) => Err(()),
        };
        if outcome.is_err() {
            session.close(CloseReason::ProtocolError);
        }
    }

    fn closed(&self, _session: &Arc<Session>, reason: CloseReason) {
        let sockets: Vec<Socket> = self.state().sockets.drain().map(|(_, s)| s).collect();
        for socket in sockets {
            socket.gone(reason.as_str());
        }
    }
}

#[derive(Default)]
struct SocketState {
    accepted: bool,
    gone: bool,
    next_ack: u64,
    acks: HashMap<u64, AckCallback>,
    watchers: Vec<oneshot::Sender<()>>,
}

struct SocketInner {
    sid: String,
    nsp: String,
    auth: String,
    session: Weak<Session>,
    namespace: Arc<dyn Namespace>,
    state: Mutex<SocketState>,
}

/// One client in one namespace. Cheap to clone.
#[derive(Clone)]
pub struct Socket {
    inner: Arc<SocketInner>,
}

impl std::fmt::Debug for Socket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Socket")
            .field("sid", &self.inner.sid)
            .field("nsp", &self.inner.nsp)
            .finish_non_exhaustive()
    }
}

impl Socket {
    fn state(&self) -> MutexGuard<'_, SocketState> {
        // No update here can be left half done by a panic.
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The socket id sent in the CONNECT reply.
    pub fn id(&self) -> &str {
        &self.inner.sid
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.inner.nsp
    }

    /// The CONNECT payload (`{}` when the client sent none).
    pub fn auth(&self) -> &str {
        &self.inner.auth
    }

    /// The engine session id.
    pub fn session_id(&self) -> Option<String> {
        self.inner.session.upgrade().map(|s| s.sid().to_owned())
    }

    /// Whether the socket left or its connection ended.
    pub fn is_gone(&self) -> bool {
        self.state().gone
    }

    fn send(&self, packet: Packet, attachments: &[Vec<u8>]) -> bool {
        let Some(session) = self.inner.session.upgrade() else {
            return false;
        };
        if self.is_gone() {
            return false;
        }
        let text = Frame::message(&packet.encode());
        let binaries = attachments.iter().map(|a| Frame::binary(a.clone()));
        session.send(std::iter::once(text).chain(binaries))
    }

    fn packet(&self, kind: PacketType, data: String) -> Packet {
        Packet::new(kind, &self.inner.nsp, Some(data))
    }

    /// Sends the CONNECT reply, `{"sid"}` plus `pid` when given (the
    /// recovery id). Once only.
    pub fn accept(&self, pid: Option<&str>) -> bool {
        {
            let mut state = self.state();
            if state.accepted || state.gone {
                return false;
            }
            state.accepted = true;
        }
        let data = match pid {
            Some(pid) => format!(
                r#"{{"sid":{},"pid":{}}}"#,
                json_string(&self.inner.sid),
                json_string(pid)
            ),
            None => format!(r#"{{"sid":{}}}"#, json_string(&self.inner.sid)),
        };
        self.send(self.packet(PacketType::Connect, data), &[])
    }

    fn event_packet(&self, event: &str, args: &[&str], attachments: &[Vec<u8>]) -> Packet {
        let name = json_string(event);
        let data = join_array(std::iter::once(name.as_str()).chain(args.iter().copied()));
        let kind = if attachments.is_empty() {
            PacketType::Event
        } else {
            PacketType::BinaryEvent
        };
        let mut packet = self.packet(kind, data);
        packet.attachments = attachments.len();
        packet
    }

    /// Emits `event` with arguments given as JSON text (binary ones as
    /// placeholders into `attachments`). False once the socket is gone.
    pub fn emit(&self, event: &str, args: &[&str], attachments: &[Vec<u8>]) -> bool {
        self.send(self.event_packet(event, args, attachments), attachments)
    }

    /// Emits `event` and calls `callback` with the client's ack.
    pub fn emit_with_ack(
        &self,
        event: &str,
        args: &[&str],
        attachments: &[Vec<u8>],
        callback: impl FnOnce(&Socket, Ack) + Send + 'static,
    ) -> bool {
        let id = {
            let mut state = self.state();
            let id = state.next_ack;
            state.next_ack += 1;
            if state.acks.len() >= MAX_PENDING_ACKS {
                let oldest = state.acks.keys().min().copied();
                if let Some(oldest) = oldest {
                    state.acks.remove(&oldest);
                }
            }
            state.acks.insert(id, Box::new(callback));
            id
        };
        let mut packet = self.event_packet(event, args, attachments);
        packet.id = Some(id);
        self.send(packet, attachments)
    }

    /// Answers the client's event `id` with arguments given as JSON text.
    pub fn ack(&self, id: u64, args: &[&str], attachments: &[Vec<u8>]) -> bool {
        let kind = if attachments.is_empty() {
            PacketType::Ack
        } else {
            PacketType::BinaryAck
        };
        let mut packet = self.packet(kind, join_array(args.iter().copied()));
        packet.id = Some(id);
        packet.attachments = attachments.len();
        self.send(packet, attachments)
    }

    /// Sends a frame that is already encoded (a post shared by every
    /// client), waiting while the client's outbox is full; with `more`,
    /// more follow at once (see the engine session's `push`).
    pub async fn push(&self, frame: Frame, more: bool) -> Result<(), CloseReason> {
        let session = self
            .inner
            .session
            .upgrade()
            .ok_or(CloseReason::TransportClose)?;
        if self.is_gone() {
            return Err(CloseReason::TransportClose);
        }
        session.push(frame, more).await
    }

    /// Closes the whole connection (every namespace of this client).
    pub fn close_connection(&self, reason: CloseReason) {
        if let Some(session) = self.inner.session.upgrade() {
            session.close(reason);
        }
    }

    /// Completes when the socket leaves or its connection ends.
    pub fn closed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        {
            let mut state = self.state();
            if !state.gone {
                state.watchers.push(tx);
            }
        }
        async move {
            rx.await.ok();
        }
    }

    /// Marks the socket gone, wakes its watchers and tells its namespace.
    fn gone(&self, reason: &str) {
        let watchers = {
            let mut state = self.state();
            if state.gone {
                return;
            }
            state.gone = true;
            state.acks.clear();
            std::mem::take(&mut state.watchers)
        };
        drop(watchers);
        self.inner.namespace.disconnect(self, reason);
    }
}
