//! The Engine.IO v4 packet codec.
//!
//! A text packet is its type digit followed by its data (`4hello`, `2probe`);
//! a binary packet is the raw bytes of a `message` (websocket) or `b` plus
//! their base64 (inside a polling payload). A polling payload is packets
//! joined by the record separator `\x1e`.

use base64::Engine as _;
use std::fmt;
use std::sync::Arc;

/// Separates packets in a polling payload.
pub const SEPARATOR: char = '\x1e';

/// A packet received from a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `0`: only servers send it; received, it is a protocol error.
    Open(String),
    /// `1`: the client closes the session.
    Close,
    /// `2`: `2probe` starts a websocket upgrade; a plain ping from a v4
    /// client is a protocol error (the server pings).
    Ping(String),
    /// `3`: the answer to the server's ping.
    Pong(String),
    /// `4`: an application message in text.
    Message(String),
    /// An application message in binary.
    Binary(Vec<u8>),
    /// `5`: the client switches to the probed websocket.
    Upgrade,
    /// `6`: nothing.
    Noop,
}

/// Why a packet or payload could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Empty packet.
    #[error("empty packet")]
    Empty,
    /// The first character is not a packet type.
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    /// A `b` packet whose data is not base64.
    #[error("invalid base64 in a binary packet")]
    Base64,
    /// A polling payload that is not UTF-8.
    #[error("payload is not UTF-8")]
    Utf8,
}

impl Packet {
    /// Decodes one text packet (a websocket text frame, or one part of a
    /// polling payload without the `b` prefix).
    pub fn decode(text: &str) -> Result<Packet, DecodeError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(DecodeError::Empty)?;
        let data = chars.as_str();
        Ok(match kind {
            '0' => Packet::Open(data.to_owned()),
            '1' => Packet::Close,
            '2' => Packet::Ping(data.to_owned()),
            '3' => Packet::Pong(data.to_owned()),
            '4' => Packet::Message(data.to_owned()),
            '5' => Packet::Upgrade,
            '6' => Packet::Noop,
            other => return Err(DecodeError::UnknownType(other)),
        })
    }

    /// Decodes a polling request body: packets separated by `\x1e`, binary
    /// ones as `b<base64>`.
    pub fn decode_payload(body: &[u8]) -> Result<Vec<Packet>, DecodeError> {
        let text = std::str::from_utf8(body).map_err(|_| DecodeError::Utf8)?;
        text.split(SEPARATOR)
            .map(|part| match part.strip_prefix('b') {
                Some(b64) => base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map(Packet::Binary)
                    .map_err(|_| DecodeError::Base64),
                None => Packet::decode(part),
            })
            .collect()
    }
}

/// A packet on its way to a client, already encoded; cheap to clone, so a
/// post's frame is shared by every session that carries it.
#[derive(Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text packet, type digit included (`42[...]`, `2`, `6`).
    Text(Arc<str>),
    /// A binary message.
    Binary(Arc<[u8]>),
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Frame::Text(t) => write!(f, "Text({t:?})"),
            Frame::Binary(b) => write!(f, "Binary({} bytes)", b.len()),
        }
    }
}

impl Frame {
    /// The open packet, `0` + the handshake JSON.
    pub fn open(handshake: &str) -> Frame {
        Frame::Text(format!("0{handshake}").into())
    }

    /// `1`.
    pub fn close() -> Frame {
        Frame::Text("1".into())
    }

    /// `2`.
    pub fn ping() -> Frame {
        Frame::Text("2".into())
    }

    /// `3probe`, the answer to a websocket probe.
    pub fn pong_probe() -> Frame {
        Frame::Text("3probe".into())
    }

    /// `6`.
    pub fn noop() -> Frame {
        Frame::Text("6".into())
    }

    /// `4` + `text`.
    pub fn message(text: &str) -> Frame {
        let mut s = String::with_capacity(text.len() + 1);
        s.push('4');
        s.push_str(text);
        Frame::Text(s.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Arc<[u8]>>) -> Frame {
        Frame::Binary(bytes.into())
    }

    /// Bytes this frame costs an outbox.
    pub fn cost(&self) -> usize {
        match self {
            Frame::Text(t) => t.len(),
            // base64 over polling: 4/3 of the size plus the `b`.
            Frame::Binary(b) => b.len() / 3 * 4 + 5,
        }
    }
}

/// Encodes frames as one polling response body.
pub fn encode_payload(frames: &[Frame]) -> String {
    let mut out = String::with_capacity(frames.iter().map(|f| f.cost() + 1).sum());
    for (i, frame) in frames.iter().enumerate() {
        if i > 0 {
            out.push(SEPARATOR);
        }
        match frame {
            Frame::Text(t) => out.push_str(t),
            Frame::Binary(b) => {
                out.push('b');
                base64::engine::general_purpose::STANDARD.encode_string(b, &mut out);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_packet_type() {
        assert_eq!(Packet::decode("0{}").unwrap(), Packet::Open("{}".into()));
        assert_eq!(Packet::decode("1").unwrap(), Packet::Close);
        assert_eq!(Packet::decode("2").unwrap(), Packet::Ping(String::new()));
        assert_eq!(
            Packet::decode("2probe").unwrap(),
            Packet::Ping("probe".into())
        );
        assert_eq!(Packet::decode("3").unwrap(), Packet::Pong(String::new()));
        assert_eq!(
            Packet::decode("3probe").unwrap(),
            Packet::Pong("probe".into())
        );
        assert_eq!(
            Packet::decode("4hello").unwrap(),
            Packet::Message("hello".into())
        );
        assert_eq!(Packet::decode("4").unwrap(), Packet::Message(String::new()));
        assert_eq!(Packet::decode("5").unwrap(), Packet::Upgrade);
        assert_eq!(Packet::decode("6").unwrap(), Packet::Noop);
        assert_eq!(Packet::decode("4€€").unwrap(), Packet::Message("€€".into()));
    }

    #[test]
    fn rejects_malformed_packets() {
        assert_eq!(Packet::decode(""), Err(DecodeError::Empty));
        assert_eq!(Packet::decode("abc"), Err(DecodeError::UnknownType('a')));
        assert_eq!(Packet::decode("7"), Err(DecodeError::UnknownType('7')));
        assert_eq!(
            Packet::decode_payload(b"bnot*base64"),
            Err(DecodeError::Base64)
        );
        assert_eq!(Packet::decode_payload(b"4a\x1e"), Err(DecodeError::Empty));
        assert_eq!(
            Packet::decode_payload(&[0x34, 0xff]),
            Err(DecodeError::Utf8)
        );
    }

    #[test]
    fn decodes_payloads_with_text_and_binary() {
        assert_eq!(
            Packet::decode_payload(b"4hello\x1ebAQIDBA==\x1e3").unwrap(),
            vec![
                Packet::Message("hello".into()),
                Packet::Binary(vec![1, 2, 3, 4]),
                Packet::Pong(String::new()),
            ]
        );
        assert_eq!(
            Packet::decode_payload("4test1\x1e4test2".as_bytes())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn encodes_payloads() {
        let frames = [
            Frame::message("hello"),
            Frame::binary(vec![1u8, 2, 3, 4]),
            Frame::ping(),
        ];
        assert_eq!(encode_payload(&frames), "4hello\x1ebAQIDBA==\x1e2");
        assert_eq!(encode_payload(&[Frame::noop()]), "6");
        assert_eq!(encode_payload(&[]), "");
        assert_eq!(
            Frame::open(r#"{"sid":"x"}"#),
            Frame::Text(r#"0{"sid":"x"}"#.into())
        );
    }

    #[test]
    fn payload_round_trips() {
        let frames = [Frame::message("a€"), Frame::binary(vec![0u8, 255])];
        let decoded = Packet::decode_payload(encode_payload(&frames).as_bytes()).unwrap();
        assert_eq!(
            decoded,
            vec![Packet::Message("a€".into()), Packet::Binary(vec![0, 255])]
        );
    }
}
