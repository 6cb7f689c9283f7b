//! Reading `GET /events` asynchronously: the bytes come through the HTTP
//! client's body decoder, the lines go through the project's own sans-IO
//! parser ([`livefeed::client::sse::Parser`]).

use super::http::{Body, ClientError};
use super::within;
use async_std::net::TcpStream;
use futures::io::BufReader;
use livefeed::client::sse::{Parser, SseEvent, SseItem};
use serde_json::Value;

/// Longest single line of an event stream.
const MAX_LINE: usize = 1 << 20;

/// An open event stream, from [`Api::events`](super::http::Api::events).
pub struct EventStream {
    headers: Vec<(String, String)>,
    body: Body<BufReader<TcpStream>>,
    /// Decoded bytes not yet split into lines.
    buf: Vec<u8>,
    parser: Parser,
}

impl EventStream {
    pub(super) fn new(headers: Vec<(String, String)>, body: Body<BufReader<TcpStream>>) -> Self {
        Self {
            headers,
            body,
            buf: Vec::new(),
            parser: Parser::default(),
        }
    }

    /// The response headers, names lower-cased.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The next line, without its `\n`; `None` at the end of the stream (a
    /// last line without a line break is dropped, as browsers do).
    async fn line(&mut self) -> Result<Option<String>, ClientError> {
        let mut searched = 0;
        loop {
            if let Some(i) = self.buf[searched..].iter().position(|&b| b == b'\n') {
                let end = searched + i;
                let line = String::from_utf8_lossy(&self.buf[..end]).into_owned();
                self.buf.drain(..=end);
                return Ok(Some(line));
            }
            searched = self.buf.len();
            if searched > MAX_LINE {
                return Err(ClientError::Protocol("event stream line too long".into()));
            }
            if !self.body.read_some(&mut self.buf).await? {
                return Ok(None);
            }
        }
    }

    /// The next comment or block; `None` when the server ended the stream.
    ///
    /// Not cancel-safe: after a timeout around it, drop the stream.
    pub async fn next(&mut self) -> Result<Option<SseItem>, ClientError> {
        loop {
            let Some(line) = self.line().await? else {
                return Ok(None);
            };
            if let Some(item) = self.parser.line(&line) {
                return Ok(Some(item));
            }
        }
    }
}

/// The next SSE block with fields (skipping comments), within
/// [`WAIT`](super::WAIT).
pub async fn next_event(stream: &mut EventStream) -> SseEvent {
    loop {
        match within(stream.next()).await.expect("stream readable") {
            Some(SseItem::Event(event)) => return event,
            Some(SseItem::Comment(_)) => continue,
            None => panic!("stream ended"),
        }
    }
}

/// Post ids of the next `n` `newPost` events, checking each event's shape:
/// the `id:` field equals the post's id.
pub async fn post_ids(stream: &mut EventStream, n: usize) -> Vec<u64> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let event = next_event(stream).await;
        if event.data.is_none() {
            continue; // the connect block
        }
        assert_eq!(event.event.as_deref(), Some("newPost"), "{event:?}");
        let data: Value =
            serde_json::from_str(event.data.as_deref().unwrap()).expect("data is JSON");
        let id = data["post"]["id"].as_u64().expect("post id");
        assert_eq!(event.id.as_deref(), Some(id.to_string().as_str()));
        ids.push(id);
    }
    ids
}

/// The next change event (skipping the connect block and comments),
/// checking that its `id:` is its seq.
pub async fn next_change(stream: &mut EventStream) -> super::view::Change {
    loop {
        let event = next_event(stream).await;
        let Some(data) = event.data.as_deref() else {
            continue; // the connect block
        };
        let change = super::view::Change {
            event: event.event.clone().expect("an event name"),
            data: serde_json::from_str(data).expect("data is JSON"),
        };
        assert_eq!(event.id, Some(change.seq().to_string()), "{event:?}");
        return change;
    }
}
