//! Feed names and subscriptions.
//!
//! A post belongs to one feed. A name is 1 to 64 characters of `a-z`,
//! `0-9`, `-` and `_`, starting with a letter or a digit; one that starts
//! with `private-` is a private feed (see [`access`](super::access)). The
//! default feed, where `POST /posts` writes and what a subscription without
//! feeds follows, is [`DEFAULT_FEED`].

use std::fmt;
use std::sync::Arc;

/// The feed of `POST /posts`, `GET /posts` and subscriptions that name none.
pub const DEFAULT_FEED: &str = "main";
/// Feeds whose name starts with this are private.
pub const PRIVATE_PREFIX: &str = "private-";
/// The longest feed name.
pub const MAX_NAME: usize = 64;
/// Most feeds one subscription may follow.
pub const MAX_SUBSCRIBED: usize = 100;

/// A valid feed name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedName(Arc<str>);

/// Why a feed name, or a list of them, is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadFeed(pub String);

impl FeedName {
    /// Checks `name`.
    pub fn parse(name: &str) -> Result<Self, BadFeed> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name
                .bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if valid {
            Ok(Self(name.into()))
        } else {
            let shown: String = name.chars().take(MAX_NAME + 1).collect();
            Err(BadFeed(format!(
                "`{shown}` is not a feed name: 1 to {MAX_NAME} characters of a-z, 0-9, - and _, \
                 starting with a letter or a digit"
            )))
        }
    }

    /// The default feed.
    pub fn main() -> Self {
        Self(DEFAULT_FEED.into())
    }

    /// Whether the feed is private (its name starts with `private-`).
    pub fn is_private(&self) -> bool {
        self.0.starts_with(PRIVATE_PREFIX)
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name, shared (as the hub keys its index).
    pub fn shared(&self) -> Arc<str> {
        self.0.clone()
    }
}

impl fmt::Display for FeedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for FeedName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FeedName({})", self.0)
    }
}

/// The feeds a subscription follows: each named once, in the order given,
/// at least one and at most [`MAX_SUBSCRIBED`].
pub fn subscription<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<FeedName>, BadFeed> {
    let mut feeds: Vec<FeedName> = Vec::new();
    for name in names {
        let feed = FeedName::parse(name)?;
        if !feeds.contains(&feed) {
            feeds.push(feed);
        }
        if feeds.len() > MAX_SUBSCRIBED {
            return Err(BadFeed(format!(
                "a subscription follows at most {MAX_SUBSCRIBED} feeds"
            )));
        }
    }
    if feeds.is_empty() {
        return Err(BadFeed("name at least one feed".into()));
    }
    Ok(feeds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["main", "a", "0", "team-7_x", "private-ops", &"a".repeat(64)] {
            assert!(FeedName::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "_a",
            "Main",
            "a b",
            "a/b",
            "é",
            &"a".repeat(65),
            "a.b",
        ] {
            assert!(FeedName::parse(bad).is_err(), "{bad}");
        }
        assert!(FeedName::parse("private-x").unwrap().is_private());
        assert!(!FeedName::parse("privatex").unwrap().is_private());
    }

    #[test]
    fn subscriptions() {
        let feeds = subscription("a,b,a".split(',')).unwrap();
        assert_eq!(
            feeds,
            vec![FeedName::parse("a").unwrap(), FeedName::parse("b").unwrap()]
        );
        let hundred: Vec<String> = (0..100).map(|i| format!("f{i}")).collect();
        assert_eq!(
            subscription(hundred.iter().map(String::as_str))
                .unwrap()
                .len(),
            100
        );
        let more: Vec<String> = (0..101).map(|i| format!("f{i}")).collect();
        assert!(subscription(more.iter().map(String::as_str)).is_err());
        // A name is taken as sent: white space is not trimmed away.
        assert!(subscription("a, b".split(',')).is_err());
        assert!(subscription(std::iter::empty()).is_err());
        assert!(subscription(["ok", "NO"]).is_err());
    }
}
