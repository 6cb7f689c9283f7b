//! The websocket upgrade, done once for `/ws` and Engine.IO alike: the
//! handshake checks, the accept key, the `101`, and the upgraded stream
//! with livefeed's own limits and write coalescing.
//!
//! tide-websockets' own upgrade uses tungstenite's 64 MiB message limit;
//! here the stream is upgraded with the caller's limit and handed to
//! tide-websockets as a `WebSocketConnection`.

use super::cork::{self, Corked};
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use async_tungstenite::WebSocketStream;
use sha1::{Digest, Sha1};
use std::future::Future;
use tide::http::headers;
use tide::{Request, Response, StatusCode};
use tide_websockets::WebSocketConnection;

/// RFC 6455's magic string for `Sec-WebSocket-Accept`.
const WEBSOCKET_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a request's websocket handshake is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// An HTTP/1.0 request: the upgrade needs HTTP/1.1 (RFC 6455 §4.1),
    /// and HTTP/1.0 has no `Upgrade` (RFC 9110 §7.8).
    #[error("websocket upgrades need HTTP/1.1; this request is HTTP/1.0")]
    Http10,
    /// No `Upgrade: websocket` with `Connection: upgrade`.
    #[error("send an Upgrade: websocket request")]
    NotUpgrade,
    /// No `Sec-WebSocket-Key`.
    #[error("missing Sec-WebSocket-Key")]
    MissingKey,
    /// A `Sec-WebSocket-Version` other than 13.
    #[error("Sec-WebSocket-Version must be 13")]
    BadVersion,
}

/// Checks that `req` asks for a websocket upgrade, over HTTP/1.1.
pub fn check_upgrade<S>(req: &Request<S>) -> Result<(), HandshakeError> {
    if req.version() == Some(tide::http::Version::Http1_0) {
        Err(HandshakeError::Http10)
    } else if header_has(req, headers::UPGRADE.as_str(), "websocket")
        && header_has(req, headers::CONNECTION.as_str(), "upgrade")
    {
        Ok(())
    } else {
        Err(HandshakeError::NotUpgrade)
    }
}

/// The handshake's `Sec-WebSocket-Key`, once its version is checked.
pub fn handshake_key<S>(req: &Request<S>) -> Result<String, HandshakeError> {
    let key = req
        .header("Sec-WebSocket-Key")
        .map(|h| h.as_str().trim().to_owned())
        .ok_or(HandshakeError::MissingKey)?;
    if req
        .header("Sec-WebSocket-Version")
        .map(|h| h.as_str().trim())
        != Some("13")
    {
        return Err(HandshakeError::BadVersion);
    }
    Ok(key)
}

/// Whether a (comma-separated) header of `req` lists `token`.
fn header_has<S>(req: &Request<S>, name: &str, token: &str) -> bool {
    req.header(name).is_some_and(|values| {
        values
            .iter()
            .flat_map(|v| v.as_str().split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(token))
    })
}

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`.
pub fn accept_key(key: &str) -> String {
    use base64::Engine;
    let digest = Sha1::new()
        .chain_update(key.as_bytes())
        .chain_update(WEBSOCKET_GUID.as_bytes())
        .finalize();
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Writes whole server frames to an upgraded websocket.
pub type Outbox = cork::Outbox<tide::http::upgrade::Connection>;

/// An upgraded websocket: tide-websockets' connection, and the outbox that
/// writes frames formatted once for many clients to the same stream.
pub struct Upgraded {
    /// The connection: it reads, and writes control frames; one task
    /// writes to it.
    pub conn: WebSocketConnection,
    /// Writes data frames (see [`FrameHeader`]), in order with the
    /// connection's own.
    pub outbox: Outbox,
}

/// The header of a whole (FIN), unmasked frame a server sends: the bytes
/// that go before a payload of a given length (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy)]
pub struct FrameHeader {
    bytes: [u8; 10],
    len: u8,
}

impl FrameHeader {
    /// A text frame of `len` payload bytes.
    pub fn text(len: usize) -> Self {
        Self::new(0x1, len)
    }

    /// A binary frame of `len` payload bytes.
    pub fn binary(len: usize) -> Self {
        Self::new(0x2, len)
    }

    fn new(opcode: u8, len: usize) -> Self {
        let mut bytes = [0u8; 10];
        bytes[0] = 0x80 | opcode;
        let used = match len {
            0..=125 => {
                bytes[1] = len as u8;
                2
            }
            126..=0xffff => {
                bytes[1] = 126;
                bytes[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = 127;
                bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                10
            }
        };
        Self { bytes, len: used }
    }

    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The `101 Switching Protocols` answer to a handshake with `key`, and the
/// websocket it becomes once that answer is written (`None` if the client
/// went away first). Inbound messages and frames over `max_message` bytes
/// fail the read with a capacity error.
pub async fn switch(
    key: &str,
    max_message: usize,
) -> (Response, impl Future<Output = Option<Upgraded>> + Send) {
    let mut res = Response::new(StatusCode::SwitchingProtocols);
    res.insert_header(headers::UPGRADE, "websocket");
    res.insert_header(headers::CONNECTION, "Upgrade");
    res.insert_header("Sec-WebSocket-Accept", accept_key(key));
    let upgraded = AsMut::<tide::http::Response>::as_mut(&mut res)
        .recv_upgrade()
        .await;
    let websocket = async move {
        let stream = upgraded.await?;
        let (corked, outbox) = Corked::new(stream);
        let stream = tide::http::upgrade::Connection::new(corked);
        let limits = WebSocketConfig {
            max_send_queue: None,
            max_message_size: Some(max_message),
            max_frame_size: Some(max_message),
            accept_unmasked_frames: false,
        };
        let ws = WebSocketStream::from_raw_socket(stream, Role::Server, Some(limits)).await;
        Some(Upgraded {
            conn: WebSocketConnection::from(ws),
            outbox,
        })
    };
    (res, websocket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_of_every_length_form() {
        assert_eq!(FrameHeader::text(5).as_bytes(), [0x81, 5]);
        assert_eq!(FrameHeader::binary(125).as_bytes(), [0x82, 125]);
        assert_eq!(FrameHeader::text(126).as_bytes(), [0x81, 126, 0, 126]);
        assert_eq!(
            FrameHeader::text(65_535).as_bytes(),
            [0x81, 126, 0xff, 0xff]
        );
        assert_eq!(
            FrameHeader::text(65_536).as_bytes(),
            [0x81, 127, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn accept_key_of_rfc_6455() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
