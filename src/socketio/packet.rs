//! The Socket.IO v5 packet codec (the default parser's text format).
//!
//! `<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]`, carried
//! in an Engine.IO message (so `42[...]` on the wire). Binary attachments
//! follow a `BINARY_*` packet as separate binary messages and are referred
//! to in the payload by `{"_placeholder":true,"num":N}`.
//!
//! Payloads are kept as the client's JSON text: what is echoed or acked
//! goes back byte for byte (key order included), and nothing is re-encoded.

use serde_json::Value;
use std::fmt::Write;

/// Most attachments one packet may announce.
pub const MAX_ATTACHMENTS: usize = 64;

/// Event names Socket.IO reserves; a client may not emit them.
const RESERVED_EVENTS: [&str; 6] = [
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// The seven packet types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: join a namespace / the server's acceptance.
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event.
    Event,
    /// `3`: the answer to an event that carried an ack id.
    Ack,
    /// `4`: the server refused the CONNECT.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketType {
    fn from_digit(c: u8) -> Option<Self> {
        Some(match c {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            PacketType::Connect => '0',
            PacketType::Disconnect => '1',
            PacketType::Event => '2',
            PacketType::Ack => '3',
            PacketType::ConnectError => '4',
            PacketType::BinaryEvent => '5',
            PacketType::BinaryAck => '6',
        }
    }

    /// Whether attachments follow.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }
}

/// Why a packet was rejected; the connection is then closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Empty packet.
    #[error("empty packet")]
    Empty,
    /// Not a packet type digit.
    #[error("unknown packet type")]
    UnknownType,
    /// A binary packet without a valid `<n>-` prefix, or too many.
    #[error("invalid attachment count")]
    Attachments,
    /// An ack id that is not a number that fits.
    #[error("invalid ack id")]
    AckId,
    /// Not JSON.
    #[error("payload is not JSON")]
    Json,
    /// JSON of the wrong shape for the packet type.
    #[error("invalid payload for the packet type")]
    Payload,
    /// A placeholder that refers to no attachment.
    #[error("invalid binary placeholder")]
    Placeholder,
}

/// A Socket.IO packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The type.
    pub kind: PacketType,
    /// The namespace, `/` by default.
    pub nsp: String,
    /// The ack id, for events that want an answer and for acks.
    pub id: Option<u64>,
    /// Binary attachments that follow (binary types only).
    pub attachments: usize,
    /// The payload, as JSON text.
    pub data: Option<String>,
}

impl Packet {
    /// A packet of `kind` in `nsp` with `data`.
    pub fn new(kind: PacketType, nsp: &str, data: Option<String>) -> Self {
        Self {
            kind,
            nsp: nsp.to_owned(),
            id: None,
            attachments: 0,
            data,
        }
    }

    /// Parses and validates one packet.
    pub fn decode(text: &str) -> Result<Packet, ParseError> {
        let bytes = text.as_bytes();
        let kind = PacketType::from_digit(*bytes.first().ok_or(ParseError::Empty)?)
            .ok_or(ParseError::UnknownType)?;
        let mut i = 1;
        let mut attachments = 0;
        if kind.is_binary() {
            let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || bytes.get(i + digits) != Some(&b'-') {
                return Err(ParseError::Attachments);
            }
            attachments = text[i..i + digits]
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_ATTACHMENTS)
                .ok_or(ParseError::Attachments)?;
            i += digits + 1;
        }
        let mut nsp = "/";
        if bytes.get(i) == Some(&b'/') {
            let end = text[i..].find(',').map_or(text.len(), |n| i + n);
            nsp = &text[i..end];
            i = (end + 1).min(text.len());
        }
        let digits = bytes[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        let id = if digits > 0 {
            let id = text[i..i + digits]
                .parse::<u64>()
                .map_err(|_| ParseError::AckId)?;
            i += digits;
            Some(id)
        } else {
            None
        };
        let rest = &text[i..];
        let data = if rest.is_empty() {
            None
        } else {
            let value: Value = serde_json::from_str(rest).map_err(|_| ParseError::Json)?;
            check_payload(kind, &value)?;
            if kind.is_binary() {
                check_placeholders(&value, attachments)?;
            }
            Some(rest.to_owned())
        };
        if data.is_none()
            && matches!(
                kind,
                PacketType::Event
                    | PacketType::BinaryEvent
                    | PacketType::Ack
                    | PacketType::BinaryAck
            )
        {
            return Err(ParseError::Payload);
        }
        Ok(Packet {
            kind,
            nsp: nsp.to_owned(),
            id,
            attachments,
            data,
        })
    }

    /// The packet as text (without the Engine.IO `4`).
    pub fn encode(&self) -> String {
        let data = self.data.as_deref().unwrap_or("");
        let mut out = String::with_capacity(self.nsp.len() + data.len() + 24);
        out.push(self.kind.digit());
        if self.kind.is_binary() {
            // Writing to a String cannot fail.
            let _ = write!(out, "{}-", self.attachments);
        }
        if self.nsp != "/" {
            out.push_str(&self.nsp);
            out.push(',');
        }
        if let Some(id) = self.id {
            let _ = write!(out, "{id}");
        }
        out.push_str(data);
        out
    }
}

fn check_payload(kind: PacketType, value: &Value) -> Result<(), ParseError> {
    let ok = match kind {
        PacketType::Connect => value.is_object(),
        PacketType::Disconnect => false,
        PacketType::ConnectError => value.is_object() || value.is_string(),
        PacketType::Event | PacketType::BinaryEvent => {
            match value.as_array().and_then(|a| a.first()) {
                Some(Value::String(name)) => !RESERVED_EVENTS.contains(&name.as_str()),
                Some(Value::Number(_)) => true,
                _ => false,
            }
        }
        PacketType::Ack | PacketType::BinaryAck => value.is_array(),
    };
    if ok {
        Ok(())
    } else {
        Err(ParseError::Payload)
    }
}

fn check_placeholders(value: &Value, attachments: usize) -> Result<(), ParseError> {
    match value {
        Value::Object(map) if map.get("_placeholder") == Some(&Value::Bool(true)) => {
            match map.get("num").and_then(Value::as_u64) {
                Some(n) if (n as usize) < attachments => Ok(()),
                _ => Err(ParseError::Placeholder),
            }
        }
        Value::Object(map) => map
            .values()
            .try_for_each(|v| check_placeholders(v, attachments)),
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_placeholders(v, attachments)),
        _ => Ok(()),
    }
}

/// The elements of a JSON array, each as its own JSON text. `json` must be
/// a valid array (as every decoded event and ack payload is).
pub fn split_array(json: &str) -> Vec<&str> {
    let trimmed = json.trim();
    let inner = trimmed
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or("");
    let mut items = Vec::new();
    let (mut depth, mut in_string, mut escaped, mut start) = (0usize, false, false, 0);
    for (i, c) in inner.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '[' | '{' => depth += 1,
            ']' | '}' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(inner[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    let last = inner[start..].trim();
    if !last.is_empty() || !items.is_empty() {
        items.push(last);
    }
    items
}

/// A JSON array built from elements that are already JSON text.
pub fn join_array<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("[");
    for (i, item) in items.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
    out
}

/// `s` as a JSON string literal.
pub fn json_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Packet {
        Packet::decode(s).unwrap_or_else(|e| panic!("{s:?}: {e}"))
    }

    #[test]
    fn connect_packets() {
        let p = decode("0");
        assert_eq!(
            (p.kind, p.nsp.as_str(), p.data),
            (PacketType::Connect, "/", None)
        );
        let p = decode(r#"0{"token":"123"}"#);
        assert_eq!(p.data.as_deref(), Some(r#"{"token":"123"}"#));
        for s in ["0/custom,", "0/custom"] {
            let p = decode(s);
            assert_eq!((p.nsp.as_str(), p.data), ("/custom", None), "{s}");
        }
        let p = decode(r#"0/custom,{"token":"abc"}"#);
        assert_eq!(p.nsp, "/custom");
        assert_eq!(p.data.as_deref(), Some(r#"{"token":"abc"}"#));
        // The payload must be an object.
        assert_eq!(Packet::decode("0[]"), Err(ParseError::Payload));
        assert_eq!(Packet::decode("0null"), Err(ParseError::Payload));
        assert_eq!(Packet::decode(r#"0"x""#), Err(ParseError::Payload));
    }

    #[test]
    fn disconnect_and_connect_error() {
        assert_eq!(decode("1").kind, PacketType::Disconnect);
        assert_eq!(decode("1/admin,").nsp, "/admin");
        assert_eq!(Packet::decode("1{}"), Err(ParseError::Payload));
        let p = decode(r#"4{"message":"Not authorized"}"#);
        assert_eq!(p.kind, PacketType::ConnectError);
        assert_eq!(decode(r#"4"nope""#).data.as_deref(), Some(r#""nope""#));
        assert_eq!(Packet::decode("4[]"), Err(ParseError::Payload));
    }

    #[test]
    fn events_and_acks() {
        let p = decode(r#"2["message",1,"2",{"3":[true]}]"#);
        assert_eq!((p.kind, p.id), (PacketType::Event, None));
        let p = decode(r#"2456["message-with-ack",1]"#);
        assert_eq!(p.id, Some(456));
        let p = decode(r#"2/admin,13["foo"]"#);
        assert_eq!((p.nsp.as_str(), p.id), ("/admin", Some(13)));
        let p = decode("312[]");
        assert_eq!(
            (p.kind, p.id, p.data.as_deref()),
            (PacketType::Ack, Some(12), Some("[]"))
        );
        assert_eq!(decode(r#"3/admin,13["bar"]"#).nsp, "/admin");
        // Numeric event names are allowed by the reference parser.
        assert_eq!(decode("2[1]").kind, PacketType::Event);
    }

    #[test]
    fn malformed_events() {
        for (s, e) in [
            ("", ParseError::Empty),
            ("abc", ParseError::UnknownType),
            ("7", ParseError::UnknownType),
            ("2{}", ParseError::Payload),
            ("2[]", ParseError::Payload),
            ("2", ParseError::Payload),
            ("2[{}]", ParseError::Payload),
            (r#"2["connect"]"#, ParseError::Payload),
            (r#"2["disconnect",1]"#, ParseError::Payload),
            (r#"2abc["message-with-ack",1]"#, ParseError::Json),
            (r#"2["a""#, ParseError::Json),
            ("3{}", ParseError::Payload),
            ("3", ParseError::Payload),
            ("299999999999999999999999[\"a\"]", ParseError::AckId),
        ] {
            assert_eq!(Packet::decode(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn binary_packets() {
        let p =
            decode(r#"52-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
        assert_eq!(
            (p.kind, p.attachments, p.id),
            (PacketType::BinaryEvent, 2, None)
        );
        let p = decode(r#"51-/admin,14["foo",{"_placeholder":true,"num":0}]"#);
        assert_eq!(
            (p.nsp.as_str(), p.id, p.attachments),
            ("/admin", Some(14), 1)
        );
        let p = decode(r#"62-789[1,{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
        assert_eq!((p.kind, p.id), (PacketType::BinaryAck, Some(789)));
        assert_eq!(decode(r#"50-["x"]"#).attachments, 0);
        for (s, e) in [
            (r#"5["x"]"#, ParseError::Attachments),
            (r#"5-["x"]"#, ParseError::Attachments),
            (r#"52["x"]"#, ParseError::Attachments),
            (r#"565-["x"]"#, ParseError::Attachments),
            (
                r#"51-["x",{"_placeholder":true,"num":1}]"#,
                ParseError::Placeholder,
            ),
            (r#"51-["x",{"_placeholder":true}]"#, ParseError::Placeholder),
        ] {
            assert_eq!(Packet::decode(s), Err(e), "{s:?}");
        }
    }

    #[test]
    fn encodes_every_type() {
        let mut p = Packet::new(PacketType::Connect, "/", Some(r#"{"sid":"x"}"#.into()));
        assert_eq!(p.encode(), r#"0{"sid":"x"}"#);
        p.nsp = "/admin".into();
        assert_eq!(p.encode(), r#"0/admin,{"sid":"x"}"#);
        assert_eq!(Packet::new(PacketType::Disconnect, "/", None).encode(), "1");
        assert_eq!(
            Packet::new(PacketType::Disconnect, "/admin", None).encode(),
            "1/admin,"
        );
        let mut e = Packet::new(PacketType::Event, "/", Some(r#"["foo"]"#.into()));
        e.id = Some(12);
        assert_eq!(e.encode(), r#"212["foo"]"#);
        let mut a = Packet::new(PacketType::Ack, "/admin", Some(r#"["bar"]"#.into()));
        a.id = Some(13);
        assert_eq!(a.encode(), r#"3/admin,13["bar"]"#);
        let err = Packet::new(
            PacketType::ConnectError,
            "/random",
            Some(r#"{"message":"Invalid namespace"}"#.into()),
        );
        assert_eq!(err.encode(), r#"4/random,{"message":"Invalid namespace"}"#);
        let mut b = Packet::new(
            PacketType::BinaryEvent,
            "/admin",
            Some(r#"["baz",{"_placeholder":true,"num":0}]"#.into()),
        );
        b.attachments = 1;
        assert_eq!(
            b.encode(),
            r#"51-/admin,["baz",{"_placeholder":true,"num":0}]"#
        );
        let mut ba = Packet::new(PacketType::BinaryAck, "/", Some("[]".into()));
        ba.attachments = 2;
        ba.id = Some(1);
        assert_eq!(ba.encode(), "62-1[]");
    }

    #[test]
    fn decode_encode_round_trip() {
        for s in [
            "0",
            "0/custom,",
            r#"0/custom,{"token":"abc"}"#,
            r#"2["message",1,"2",{"3":[true]}]"#,
            r#"2/a,7["x"]"#,
            r#"52-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
            "312[]",
        ] {
            assert_eq!(decode(s).encode(), s);
        }
    }

    #[test]
    fn splits_and_joins_arrays() {
        assert_eq!(
            split_array(r#"["message",1,"2,]",{"3":[true,{"a":"}"}]},[1,2],"\"q\\"]"#),
            vec![
                r#""message""#,
                "1",
                r#""2,]""#,
                r#"{"3":[true,{"a":"}"}]}"#,
                "[1,2]",
                r#""\"q\\""#
            ]
        );
        assert_eq!(split_array("[]"), Vec::<&str>::new());
        assert_eq!(split_array(" [ 1 , 2 ] "), vec!["1", "2"]);
        assert_eq!(join_array(["\"a\"", "1"]), r#"["a",1]"#);
        assert_eq!(join_array([]), "[]");
        assert_eq!(json_string("a\"b"), r#""a\"b""#);
    }
}
