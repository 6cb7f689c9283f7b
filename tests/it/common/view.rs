//! A client's view of the feed, built from the change frames it receives
//! on any transport, and the server's state to compare it with.

use super::http::request;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// One change as a transport delivered it: its event name and `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub event: String,
    pub data: Value,
}

impl Change {
    pub fn seq(&self) -> u64 {
        self.data["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("no seq: {self:?}"))
    }

    /// The post id it changed.
    pub fn post_id(&self) -> u64 {
        match self.event.as_str() {
            "postDeleted" => self.data["id"].as_u64(),
            _ => self.data["post"]["id"].as_u64(),
        }
        .unwrap_or_else(|| panic!("no post id: {self:?}"))
    }
}

/// Posts by id, as a client that applies every change it gets sees them:
/// `newPost` and `postUpdated` set the post, `postDeleted` removes it.
/// Seqs must arrive strictly ascending.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub posts: BTreeMap<u64, Value>,
    /// The last seq applied.
    pub seq: u64,
}

impl View {
    pub fn apply(&mut self, change: &Change) {
        let seq = change.seq();
        assert!(seq > self.seq, "seq {seq} after {}: {change:?}", self.seq);
        self.seq = seq;
        match change.event.as_str() {
            "newPost" | "postUpdated" => {
                let post = change.data["post"].clone();
                self.posts.insert(change.post_id(), post);
            }
            "postDeleted" => {
                self.posts.remove(&change.post_id());
            }
            other => panic!("not a change event: {other}"),
        }
    }
}

/// Every live post the server lists, by id (all pages of `GET /posts`).
pub async fn server_state(addr: SocketAddr) -> BTreeMap<u64, Value> {
    let mut posts = BTreeMap::new();
    let mut before: Option<u64> = None;
    loop {
        let target = match before {
            Some(b) => format!("/posts?limit=100&before={b}"),
            None => "/posts?limit=100".to_owned(),
        };
        let page = request(addr, "GET", &target, &[], b"").await;
        assert_eq!(page.status, 200, "{}", page.text());
        let page = page.json();
        for post in page["posts"].as_array().unwrap() {
            posts.insert(post["id"].as_u64().unwrap(), post.clone());
        }
        match page["next"].as_u64() {
            Some(next) => before = Some(next),
            None => return posts,
        }
    }
}
