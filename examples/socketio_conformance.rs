//! The Socket.IO protocol layer alone, set up the way Socket.IO's reference
//! test server is, so protocol test suites run against it unmodified.
//!
//! ```text
//! cargo run --release --example socketio_conformance [-- --port 3000]
//! ```
//!
//! - listens on 127.0.0.1:3000 through livefeed's own accept loop and
//!   HTTP/1 layer (`livefeed::http::h1`), as the server does;
//! - pingInterval 300 ms, pingTimeout 200 ms (`--ping-interval`,
//!   `--ping-timeout` change them, for tests whose steps must not race a
//!   ping), maxPayload 1000000, connectTimeout 1000 ms, recovery off, any
//!   origin;
//! - `/engine.io/`: raw Engine.IO, every message echoed back (text and
//!   binary);
//! - `/socket.io/`: namespaces `/` and `/custom`; on connection emit
//!   `auth` with the handshake auth; `message` is re-emitted as
//!   `message-back`, `message-with-ack` is acked with its arguments, and
//!   `emit-with-ack` is emitted back with an ack whose arguments are then
//!   emitted as `emit-with-ack`.

use clap::Parser;
use livefeed::http::h1;
use livefeed::net::origin::Origins;
use livefeed::socketio::engine::packet::Frame;
use livefeed::socketio::engine::{
    CloseReason, Engine, EngineConfig, Handler, Message, Session, SessionHandler,
};
use livefeed::socketio::socket::{ConnectError, Event, Namespace, Socket, SocketIo};
use std::sync::Arc;
use std::time::Duration;

/// Reference test-server timings.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const MAX_PAYLOAD: usize = 1_000_000;

/// Socket.IO protocol conformance server.
#[derive(Debug, Parser)]
struct Args {
    /// Port on 127.0.0.1.
    #[arg(long, default_value_t = 3000)]
    port: u16,
    /// pingInterval (the reference test server's: 300ms).
    #[arg(long, default_value = "300ms", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// pingTimeout (the reference test server's: 200ms).
    #[arg(long, default_value = "200ms", value_parser = humantime::parse_duration)]
    ping_timeout: Duration,
    /// Least time between two websocket writes, one frame each (see
    /// `EngineConfig::write_spacing`): long enough for a test client on a
    /// loaded machine to read each message before the next arrives, short
    /// enough for a CONNECT, its event and an echo to fit in a ping
    /// timeout.
    #[arg(long, default_value = "25ms", value_parser = humantime::parse_duration)]
    write_spacing: Duration,
}

/// Raw Engine.IO: echoes every message.
struct Echo;

impl Handler for Echo {
    fn open(&self, _session: &Arc<Session>) -> Arc<dyn SessionHandler> {
        Arc::new(Echo)
    }
}

impl SessionHandler for Echo {
    fn message(&self, session: &Arc<Session>, message: Message) {
        let frame = match message {
            Message::Text(text) => Frame::message(&text),
            Message::Binary(bytes) => Frame::binary(bytes),
        };
        session.send([frame]);
    }

    fn closed(&self, _session: &Arc<Session>, _reason: CloseReason) {}
}

/// The reference server's namespace behaviour.
struct EchoNamespace;

impl Namespace for EchoNamespace {
    fn connect(&self, socket: &Socket, auth: &str) -> Result<(), ConnectError> {
        socket.accept(None);
        socket.emit("auth", &[auth], &[]);
        Ok(())
    }

    fn event(&self, socket: &Socket, event: Event) {
        let args: Vec<&str> = event.args.iter().map(String::as_str).collect();
        match event.name.as_str() {
            "message" => {
                socket.emit("message-back", &args, &event.attachments);
            }
            "message-with-ack" => {
                if let Some(id) = event.ack {
                    socket.ack(id, &args, &event.attachments);
                }
            }
            "emit-with-ack" => {
                socket.emit_with_ack("emit-with-ack", &args, &event.attachments, |socket, ack| {
                    let args: Vec<&str> = ack.args.iter().map(String::as_str).collect();
                    socket.emit("emit-with-ack", &args, &ack.attachments);
                });
            }
            _ => {}
        }
    }
}

fn config(args: &Args) -> EngineConfig {
    EngineConfig {
        ping_interval: args.ping_interval,
        ping_timeout: args.ping_timeout,
        max_payload: MAX_PAYLOAD,
        origins: Origins::Any,
        write_spacing: args.write_spacing,
        ..EngineConfig::default()
    }
}

#[async_std::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let mut app = tide::new();
    Engine::new(config(&args), Arc::new(Echo)).mount(&mut app, "/engine.io/");
    let io = SocketIo::new(CONNECT_TIMEOUT)
        .namespace("/", Arc::new(EchoNamespace))
        .namespace("/custom", Arc::new(EchoNamespace));
    Engine::new(config(&args), Arc::new(io)).mount(&mut app, "/socket.io/");
    let listener = async_std::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    eprintln!(
        "socketio_conformance listening on http://{}",
        listener.local_addr()?
    );
    // Runs until the process is killed: nothing here needs a clean stop.
    let (connections, _shutdown) = h1::connections();
    h1::accept_loop(app, listener, connections).await;
    Ok(())
}
