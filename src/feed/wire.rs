//! Every frame livefeed pushes, for every transport, in one place.
//!
//! A change's `data` is serialised once when it is stored
//! ([`post_data`], [`deleted_data`]); each transport's envelope around it is
//! built once per change and shared by every client of that transport (see
//! [`Delivery::frame`]). [`Wire`] is the key of that cache: one variant per
//! format, so two formats can never share an entry.
//!
//! | transport | frame of a change |
//! | --- | --- |
//! | `/ws` | `{"event":"<event>","data":<data>}` |
//! | `/events` | `id: <seq>` `event: <event>` `data: <data>` |
//! | Socket.IO, recovery on | `42["<event>",<data>,"<seq>"]` |
//! | Socket.IO, recovery off | `42["<event>",<data>]` |
//!
//! where `<event>` is `newPost`, `postUpdated` or `postDeleted`, and
//! `<data>` is `{"post":{…},"seq":N}` or, for a delete, `{"id":ID,"seq":N}`.

use livefeed_actors::{ConnectionId, Delivery, Format, Head, Kind, MAX_FORMATS};

/// The reconnection delay suggested to Server-Sent Events clients
/// (`retry:`), in milliseconds.
pub const SSE_RETRY_MS: u64 = 3000;

/// The Server-Sent Events keep-alive: a comment line, ignored by every SSE
/// parser.
pub const SSE_PING: &str = ": ping\n\n";

/// The event every transport names a change with.
pub fn event(kind: Kind) -> &'static str {
    match kind {
        Kind::Created => "newPost",
        Kind::Updated => "postUpdated",
        Kind::Deleted => "postDeleted",
    }
}

/// The `data` of a created or edited post: `{"post":…,"seq":N}`.
pub fn post_data(post_json: &str, seq: u64) -> String {
    format!(r#"{{"post":{post_json},"seq":{seq}}}"#)
}

/// The `data` of a deleted post: `{"id":ID,"seq":N}`.
pub fn deleted_data(id: u64, seq: u64) -> String {
    format!(r#"{{"id":{id},"seq":{seq}}}"#)
}

/// A change's wire formats: the keys of [`Delivery`]'s frame cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// `/ws`.
    Ws,
    /// Socket.IO with connection state recovery: the event carries its
    /// offset.
    SocketIo,
    /// `/events`.
    Sse,
    /// Socket.IO without recovery.
    SocketIoPlain,
}

impl Wire {
    /// How many formats there are.
    pub const COUNT: usize = 4;
}

// Every format has its own cache entry.
const _: () = assert!(Wire::COUNT <= MAX_FORMATS);

impl Format for Wire {
    fn slot(self) -> usize {
        self as usize
    }

    fn encode(self, d: &Delivery) -> String {
        let (event, data, seq) = (event(d.kind), &*d.data, d.seq);
        match self {
            Wire::Ws => format!(r#"{{"event":"{event}","data":{data}}}"#),
            // serde_json escapes line breaks inside strings: the data is one
            // line.
            Wire::Sse => format!("id: {seq}\nevent: {event}\ndata: {data}\n\n"),
            Wire::SocketIo => format!(r#"42["{event}",{data},"{seq}"]"#),
            Wire::SocketIoPlain => format!(r#"42["{event}",{data}]"#),
        }
    }
}

/// The `/ws` welcome: the connection's id, and where the feed stood when
/// it joined: the newest post's id and the newest change's seq (`null` on
/// an empty feed).
pub fn ws_welcome(id: ConnectionId, joined: Head) -> String {
    format!(
        r#"{{"event":"welcome","data":{{"connectionId":"c{id}","lastPostId":{},"lastSeq":{}}}}}"#,
        json_u64(joined.post_id),
        json_u64(joined.seq),
    )
}

/// The first block of an event stream. A live-only subscriber is told
/// where live starts with a bare `id:` field (the newest seq): no event is
/// dispatched, but `EventSource` records it and sends it back as
/// `Last-Event-ID` if it has to reconnect before the first change, so that
/// gap is replayed too. A subscriber that asked for a replay already knows
/// its position.
pub fn sse_hello(replaying: bool, joined: Head) -> String {
    if replaying {
        format!("retry: {SSE_RETRY_MS}\n\n")
    } else {
        let last = joined.seq.unwrap_or(0);
        format!("retry: {SSE_RETRY_MS}\nid: {last}\n\n")
    }
}

/// The comment an event stream ends with when the server closes it.
pub fn sse_closed(reason: &str, code: u16) -> String {
    format!(": closed: {reason} ({code})\n\n")
}

/// The success payload of a Socket.IO `createPost` or `updatePost` ack:
/// `{"post":…}`.
pub fn post_ack(post_json: &str) -> String {
    format!(r#"{{"post":{post_json}}}"#)
}

/// The success payload of a Socket.IO `deletePost` ack: `{"id":ID}`.
pub fn deleted_ack(id: u64) -> String {
    format!(r#"{{"id":{id}}}"#)
}

fn json_u64(n: Option<u64>) -> String {
    n.map_or_else(|| "null".to_owned(), |n| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_in_every_format() {
        let post = r#"{"id":7,"title":"a\nb"}"#;
        let d = Delivery::new(9, 7, "main".into(), Kind::Updated, post_data(post, 9));
        assert_eq!(
            &**d.frame(Wire::Ws),
            r#"{"event":"postUpdated","data":{"post":{"id":7,"title":"a\nb"},"seq":9}}"#
        );
        assert_eq!(
            &**d.frame(Wire::Sse),
            "id: 9\nevent: postUpdated\ndata: {\"post\":{\"id\":7,\"title\":\"a\\nb\"},\"seq\":9}\n\n"
        );
        assert_eq!(
            &**d.frame(Wire::SocketIo),
            r#"42["postUpdated",{"post":{"id":7,"title":"a\nb"},"seq":9},"9"]"#
        );
        assert_eq!(
            &**d.frame(Wire::SocketIoPlain),
            r#"42["postUpdated",{"post":{"id":7,"title":"a\nb"},"seq":9}]"#
        );
        let gone = Delivery::new(10, 7, "main".into(), Kind::Deleted, deleted_data(7, 10));
        assert_eq!(
            &**gone.frame(Wire::Ws),
            r#"{"event":"postDeleted","data":{"id":7,"seq":10}}"#
        );
        let new = Delivery::new(11, 11, "main".into(), Kind::Created, post_data("{}", 11));
        assert_eq!(
            &**new.frame(Wire::SocketIo),
            r#"42["newPost",{"post":{},"seq":11},"11"]"#
        );
    }

    #[test]
    fn welcome_and_stream_openings() {
        let empty = Head::default();
        let welcome: serde_json::Value = serde_json::from_str(&ws_welcome(3, empty)).unwrap();
        assert_eq!(
            welcome,
            serde_json::json!({"event": "welcome", "data": {
                "connectionId": "c3", "lastPostId": null, "lastSeq": null}})
        );
        let head = Head {
            seq: Some(44),
            post_id: Some(41),
        };
        assert!(ws_welcome(3, head).contains(r#""lastPostId":41,"lastSeq":44"#));
        assert_eq!(sse_hello(true, head), "retry: 3000\n\n");
        assert_eq!(sse_hello(false, head), "retry: 3000\nid: 44\n\n");
        assert_eq!(sse_hello(false, empty), "retry: 3000\nid: 0\n\n");
    }
}
