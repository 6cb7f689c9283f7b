//! Every frame livefeed pushes, for every transport, in one place.
//!
//! A post's frames are built from its JSON, which is serialised once when
//! the post is stored; each transport's envelope around it is built once
//! per post and shared by every client of that transport (see
//! [`Delivery::frame`]). [`Wire`] is the key of that cache: one variant per
//! format, so two formats can never share an entry.
//!
//! | transport | frame of a post |
//! | --- | --- |
//! | `/ws` | `{"event":"newPost","data":{"post":…}}` |
//! | `/events` | `id: <id>` `event: newPost` `data: {"post":…}` |
//! | Socket.IO, recovery on | `42["newPost",{"post":…},"<id>"]` |
//! | Socket.IO, recovery off | `42["newPost",{"post":…}]` |

use livefeed_actors::{ConnectionId, Delivery, Format, MAX_FORMATS};

/// The reconnection delay suggested to Server-Sent Events clients
/// (`retry:`), in milliseconds.
pub const SSE_RETRY_MS: u64 = 3000;

/// The Server-Sent Events keep-alive: a comment line, ignored by every SSE
/// parser.
pub const SSE_PING: &str = ": ping\n\n";

/// A post's wire formats: the keys of [`Delivery`]'s frame cache.
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

    fn encode(self, delivery: &Delivery) -> String {
        let post = &*delivery.post;
        let id = delivery.id;
        match self {
            Wire::Ws => {
                let mut frame = String::with_capacity(post.len() + 36);
                frame.push_str(r#"{"event":"newPost","data":{"post":"#);
                frame.push_str(post);
                frame.push_str("}}");
                frame
            }
            Wire::Sse => {
                let mut frame = String::with_capacity(post.len() + 48);
                frame.push_str("id: ");
                frame.push_str(&id.to_string());
                frame.push_str("\nevent: newPost\ndata: {\"post\":");
                // serde_json escapes line breaks inside strings: the post is
                // one line.
                frame.push_str(post);
                frame.push_str("}\n\n");
                frame
            }
            Wire::SocketIo => format!("42[\"newPost\",{{\"post\":{post}}},\"{id}\"]"),
            Wire::SocketIoPlain => format!("42[\"newPost\",{{\"post\":{post}}}]"),
        }
    }
}

/// The `/ws` welcome: the connection's id and the newest post id when it
/// joined (`null` on an empty feed).
pub fn ws_welcome(id: ConnectionId, last_post_id: Option<u64>) -> String {
    format!(
        r#"{{"event":"welcome","data":{{"connectionId":"c{id}","lastPostId":{}}}}}"#,
        json_id(last_post_id)
    )
}

/// The first block of an event stream. A live-only subscriber is told
/// where live starts with a bare `id:` field: no event is dispatched, but
/// `EventSource` records it and sends it back as `Last-Event-ID` if it has
/// to reconnect before the first post, so that gap is replayed too. A
/// subscriber that asked for a replay already knows its position.
pub fn sse_hello(replaying: bool, last_post_id: Option<u64>) -> String {
    if replaying {
        format!("retry: {SSE_RETRY_MS}\n\n")
    } else {
        let last = last_post_id.unwrap_or(0);
        format!("retry: {SSE_RETRY_MS}\nid: {last}\n\n")
    }
}

/// The comment an event stream ends with when the server closes it.
pub fn sse_closed(reason: &str, code: u16) -> String {
    format!(": closed: {reason} ({code})\n\n")
}

/// The success payload of a Socket.IO `createPost` ack: `{"post":…}`.
pub fn created_ack(post_json: &str) -> String {
    format!(r#"{{"post":{post_json}}}"#)
}

fn json_id(id: Option<u64>) -> String {
    id.map_or_else(|| "null".to_owned(), |id| id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_in_every_format() {
        let d = Delivery::new(7, r#"{"id":7,"title":"a\nb"}"#);
        assert_eq!(
            &**d.frame(Wire::Ws),
            r#"{"event":"newPost","data":{"post":{"id":7,"title":"a\nb"}}}"#
        );
        assert_eq!(
            &**d.frame(Wire::Sse),
            "id: 7\nevent: newPost\ndata: {\"post\":{\"id\":7,\"title\":\"a\\nb\"}}\n\n"
        );
        assert_eq!(
            &**d.frame(Wire::SocketIo),
            r#"42["newPost",{"post":{"id":7,"title":"a\nb"}},"7"]"#
        );
        assert_eq!(
            &**d.frame(Wire::SocketIoPlain),
            r#"42["newPost",{"post":{"id":7,"title":"a\nb"}}]"#
        );
    }

    #[test]
    fn welcome_and_stream_openings() {
        let welcome: serde_json::Value = serde_json::from_str(&ws_welcome(3, None)).unwrap();
        assert_eq!(
            welcome,
            serde_json::json!({"event": "welcome", "data": {"connectionId": "c3", "lastPostId": null}})
        );
        assert!(ws_welcome(3, Some(41)).contains(r#""lastPostId":41"#));
        assert_eq!(sse_hello(true, Some(4)), "retry: 3000\n\n");
        assert_eq!(sse_hello(false, None), "retry: 3000\nid: 0\n\n");
    }
}
