//! Safe retries of creates: the `Idempotency-Key` a client sends with a
//! create (`POST /posts`, `POST /feeds/{feed}/posts`, Socket.IO's
//! `createPost`), and what the publisher records with the post so that a
//! retry is recognised.
//!
//! A key is 1 to [`MAX_KEY`] visible ASCII characters (`!` to `~`). It is
//! scoped to who sends it ([`scope`]): the same string from another
//! credential is another key. What a retry must repeat is the route (and
//! so the feed) and the body's JSON value, compared as a SHA-256
//! fingerprint of a canonical form (object keys sorted, no white space), so
//! key order and spacing do not matter. The publisher records the key's
//! identity, that fingerprint and the post with the create, atomically;
//! a later create with the same identity and fingerprint stores nothing
//! and answers the recorded post, one with another fingerprint is refused.
//! Records are kept for the TTL (`--idempotency-ttl`).

use super::access::Grant;
use ring::digest::{Context, SHA256};
use serde_json::Value;
use std::fmt::Write;
use std::time::Duration;

/// Longest key, in characters (bytes: they are ASCII).
pub const MAX_KEY: usize = 255;
/// How long a key is remembered unless `--idempotency-ttl` says otherwise.
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// A valid idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key(String);

/// Why a key is refused: the message tells the client what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadKey(pub String);

impl Key {
    /// Checks a key as sent: 1 to [`MAX_KEY`] characters, each visible
    /// ASCII (no spaces, no control characters, nothing beyond ASCII).
    pub fn parse(raw: &str) -> Result<Self, BadKey> {
        let rule = format!("must be 1 to {MAX_KEY} visible ASCII characters (`!` to `~`)");
        if raw.is_empty() {
            return Err(BadKey(format!("the idempotency key is empty; it {rule}")));
        }
        if raw.len() > MAX_KEY {
            return Err(BadKey(format!(
                "the idempotency key is {} bytes long; it {rule}",
                raw.len()
            )));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BadKey(format!(
                "the idempotency key has a character outside `!` to `~`; it {rule}"
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A create's key and the route it came on, as a transport gives them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keyed {
    /// The client's key.
    pub key: Key,
    /// Where the create came in, such as `/posts`, `/feeds/team-a/posts` or
    /// `createPost main`: a retry must use the same.
    pub route: String,
}

/// The scope of a key: who sent it. The publish token is one sender, a JWT
/// is its `sub` (JWTs without one share a scope), and everyone without a
/// credential shares one.
pub fn scope(grant: &Grant) -> String {
    match grant {
        Grant::Operator => "operator".to_owned(),
        Grant::Token(claims) => match &claims.sub {
            Some(sub) => format!("sub:{sub}"),
            None => "token".to_owned(),
        },
        Grant::Anonymous | Grant::Invalid(_) => "anonymous".to_owned(),
    }
}

/// What a publisher records with a keyed create, and looks up first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    /// The key in its scope.
    pub identity: Digest,
    /// The route and the body's JSON value.
    pub fingerprint: Digest,
    /// How long the record is kept.
    pub ttl: Duration,
}

impl Idempotency {
    /// The record of `keyed`, sent by `grant` with `body` (a JSON value),
    /// kept for `ttl`.
    pub fn new(grant: &Grant, keyed: &Keyed, body: &Value, ttl: Duration) -> Self {
        let mut identity = Context::new(&SHA256);
        identity.update(b"livefeed idempotency key\0");
        framed(&mut identity, scope(grant).as_bytes());
        identity.update(keyed.key.as_str().as_bytes());
        let mut fingerprint = Context::new(&SHA256);
        framed(&mut fingerprint, keyed.route.as_bytes());
        let mut canonical = Vec::new();
        canonical_json(body, &mut canonical);
        fingerprint.update(&canonical);
        Self {
            identity: digest(identity),
            fingerprint: digest(fingerprint),
            ttl,
        }
    }

    /// [`identity`](Self::identity) in lower-case hex.
    pub fn identity_hex(&self) -> String {
        hex(&self.identity)
    }

    /// [`fingerprint`](Self::fingerprint) in lower-case hex.
    pub fn fingerprint_hex(&self) -> String {
        hex(&self.fingerprint)
    }
}

/// `bytes` with its length first, so that two fields cannot run into each
/// other.
fn framed(context: &mut Context, bytes: &[u8]) {
    context.update(&(bytes.len() as u64).to_be_bytes());
    context.update(bytes);
}

fn digest(context: Context) -> Digest {
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

/// `value` as compact JSON with every object's keys in sorted order (by
/// their UTF-8 bytes): equal JSON values give equal bytes whatever the key
/// order and white space they were written with. (Numbers keep the form
/// serde_json gives them; no valid post carries one.)
pub fn canonical_json(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Object(fields) => {
            let mut names: Vec<&String> = fields.keys().collect();
            names.sort();
            out.push(b'{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(name, out);
                out.push(b':');
                canonical_json(&fields[name], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                canonical_json(item, out);
            }
            out.push(b']');
        }
        Value::String(s) => string(s, out),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn string(s: &str, out: &mut Vec<u8>) {
    // Writing a string into a Vec cannot fail.
    serde_json::to_writer(&mut *out, s).expect("a string serialises");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::access::Claims;

    fn keyed(key: &str, route: &str) -> Keyed {
        Keyed {
            key: Key::parse(key).unwrap(),
            route: route.into(),
        }
    }

    fn record(grant: &Grant, keyed: &Keyed, body: &str) -> Idempotency {
        let body: Value = serde_json::from_str(body).unwrap();
        Idempotency::new(grant, keyed, &body, DEFAULT_TTL)
    }

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(Key::parse("a").is_ok());
        assert!(Key::parse(&"k".repeat(MAX_KEY)).is_ok());
        assert!(Key::parse("0f3c-uuid_~!").is_ok());
        for bad in ["", " ", "a b", "tab\there", "clé", "nul\0", "\u{7f}"] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Key::parse(&"k".repeat(MAX_KEY + 1)).is_err());
    }

    #[test]
    fn equal_json_values_have_one_fingerprint() {
        let anyone = Grant::Anonymous;
        let k = keyed("k1", "/posts");
        let a = record(&anyone, &k, r#"{"title":"t","content":"c","author":null}"#);
        let b = record(
            &anyone,
            &k,
            "{ \"author\" : null,\n \"content\":\"c\", \"title\":\"\\u0074\" }",
        );
        assert_eq!(a, b);
        let other_body = record(&anyone, &k, r#"{"title":"t","content":"d"}"#);
        assert_eq!(a.identity, other_body.identity);
        assert_ne!(a.fingerprint, other_body.fingerprint);
        let other_route = record(
            &anyone,
            &keyed("k1", "/feeds/main/posts"),
            r#"{"title":"t","content":"c","author":null}"#,
        );
        assert_ne!(a.fingerprint, other_route.fingerprint);
        let mut out = Vec::new();
        canonical_json(
            &serde_json::json!({"b": [1, {"y": true, "x": "é\n"}], "a": null}),
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"a":null,"b":[1,{"x":"é\n","y":true}]}"#
        );
    }

    #[test]
    fn a_key_belongs_to_its_sender() {
        let k = keyed("k1", "/posts");
        let body = r#"{"title":"t","content":"c"}"#;
        let token = |sub: Option<&str>| {
            Grant::Token(Claims {
                sub: sub.map(str::to_owned),
                ..Claims::default()
            })
        };
        let identities: Vec<Digest> = [
            Grant::Anonymous,
            Grant::Operator,
            token(Some("ada")),
            token(Some("bob")),
            token(None),
        ]
        .iter()
        .map(|grant| record(grant, &k, body).identity)
        .collect();
        for (i, a) in identities.iter().enumerate() {
            for b in &identities[i + 1..] {
                assert_ne!(a, b);
            }
        }
        // A bad token on an open server writes as anyone.
        assert_eq!(
            record(&Grant::Invalid("x"), &k, body).identity,
            identities[0]
        );
        assert_eq!(
            record(&token(Some("ada")), &k, body).identity,
            identities[2]
        );
        assert_ne!(
            record(&Grant::Anonymous, &keyed("k2", "/posts"), body).identity,
            identities[0]
        );
        assert_eq!(record(&Grant::Anonymous, &k, body).identity_hex().len(), 64);
    }
}
