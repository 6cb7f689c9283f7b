//! Who may read and write which feed: the one check of a presented
//! credential, whichever transport it came over.
//!
//! A client presents a token as `Authorization: Bearer <token>` over HTTP
//! ([`bearer`] reads it), `?token=` on `/ws` and `/events` (browsers can't
//! set headers there), or `auth: {token}` in a Socket.IO handshake.
//! [`Access::grant`] turns it into a [`Grant`]:
//!
//! - the publish token (`--publish-token`) is the operator's: it reads and
//!   writes every feed;
//! - with `--jwt-secret`, a JWT signed HS256 with that secret grants what
//!   its claims say: `subscribe` and `publish` list feed names, or
//!   prefixes ending in `*`; `exp` is required; `sub`, a user id, is kept
//!   for the log;
//! - anything else, or nothing, is anonymous.
//!
//! Public feeds are readable by anyone, and writable by anyone unless the
//! server has a publish token (then by the operator, or a JWT whose
//! `publish` covers the feed). A private feed (`private-…`) needs the
//! operator or a JWT that covers it; without `--jwt-secret` it is the
//! operator's alone.

use super::name::FeedName;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// The access policy.
#[derive(Clone, Default)]
pub struct Access {
    publish_token: Option<String>,
    jwt: Option<Jwt>,
}

#[derive(Clone)]
struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secrets themselves.
        f.debug_struct("Access")
            .field("publish_token", &self.publish_token.as_ref().map(|_| "***"))
            .field("jwt", &self.jwt.as_ref().map(|_| "HS256 ***"))
            .finish()
    }
}

/// What a token's claims grant.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// Feed names or prefixes (`team-*`) the holder may read.
    #[serde(default)]
    pub subscribe: Vec<String>,
    /// Feed names or prefixes the holder may write to.
    #[serde(default)]
    pub publish: Vec<String>,
    /// The holder's user id, for the log.
    #[serde(default)]
    pub sub: Option<String>,
}

/// Who a request is, as far as access goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// No credential (or none that livefeed knows).
    Anonymous,
    /// A token was presented but is not valid (bad signature, expired,
    /// malformed, or a wrong publish token): anonymous where nothing is
    /// needed, 401 where something is.
    Invalid(&'static str),
    /// The publish token.
    Operator,
    /// A valid JWT.
    Token(Claims),
}

impl Grant {
    /// The JWT's `sub`, for the log.
    pub fn subject(&self) -> Option<&str> {
        match self {
            Grant::Token(claims) => claims.sub.as_deref(),
            _ => None,
        }
    }
}

/// Why access was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    /// A credential is needed and none (valid) was presented: 401.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The credential does not cover it: 403.
    #[error("{0}")]
    Forbidden(&'static str),
}

impl Access {
    /// Anyone may publish without a publish token; private feeds need
    /// `jwt_secret` (or the publish token).
    pub fn new(publish_token: Option<String>, jwt_secret: Option<&str>) -> Self {
        let jwt = jwt_secret.map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_required_spec_claims(&["exp"]);
            // A token is expired once its `exp` is past.
            validation.leeway = 0;
            Jwt {
                key: DecodingKey::from_secret(secret.as_bytes()),
                validation,
            }
        });
        Self { publish_token, jwt }
    }

    /// What `presented` (surrounding white space ignored) grants.
    pub fn grant(&self, presented: Option<&str>) -> Grant {
        let Some(token) = presented.map(str::trim).filter(|t| !t.is_empty()) else {
            return Grant::Anonymous;
        };
        if let Some(publish) = &self.publish_token {
            if constant_time_eq(token.as_bytes(), publish.as_bytes()) {
                return Grant::Operator;
            }
        }
        match &self.jwt {
            Some(jwt) => match jsonwebtoken::decode::<Claims>(token, &jwt.key, &jwt.validation) {
                Ok(data) => Grant::Token(data.claims),
                Err(e) => Grant::Invalid(match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                    jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                        "the token's signature is not valid"
                    }
                    _ => "the token is not a valid JWT",
                }),
            },
            None if self.publish_token.is_some() => Grant::Invalid("the token is not valid"),
            None => Grant::Anonymous,
        }
    }

    /// Whether `grant` may read `feed`.
    pub fn may_read(&self, grant: &Grant, feed: &FeedName) -> Result<(), Denied> {
        if !feed.is_private() {
            return Ok(());
        }
        match grant {
            Grant::Operator => Ok(()),
            _ if self.jwt.is_none() => Err(Denied::Forbidden(
                "private feeds need a token; this server takes none but its publish token",
            )),
            Grant::Token(claims) if covers(&claims.subscribe, feed) => Ok(()),
            Grant::Token(_) => Err(Denied::Forbidden("the token does not cover this feed")),
            Grant::Invalid(why) => Err(Denied::Unauthorized(why)),
            Grant::Anonymous => Err(Denied::Unauthorized("this feed needs a token")),
        }
    }

    /// Whether `grant` may create, edit and delete posts of `feed`.
    pub fn may_publish(&self, grant: &Grant, feed: &FeedName) -> Result<(), Denied> {
        let open = !feed.is_private() && self.publish_token.is_none();
        match grant {
            Grant::Operator => Ok(()),
            _ if open => Ok(()),
            _ if feed.is_private() && self.jwt.is_none() => Err(Denied::Forbidden(
                "private feeds need a token; this server takes none but its publish token",
            )),
            Grant::Token(claims) if covers(&claims.publish, feed) => Ok(()),
            Grant::Token(_) => Err(Denied::Forbidden(
                "the token does not let its holder write to this feed",
            )),
            Grant::Invalid(why) => Err(Denied::Unauthorized(why)),
            Grant::Anonymous => Err(Denied::Unauthorized(
                "writing to this feed needs a token (the publish token, or a JWT)",
            )),
        }
    }
}

/// Whether a claim's list names `feed`, or a prefix of it (`team-*`).
fn covers(patterns: &[String], feed: &FeedName) -> bool {
    patterns.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => feed.as_str().starts_with(prefix),
        None => p == feed.as_str(),
    })
}

/// The token of an `Authorization: Bearer <token>` header value (the
/// scheme is case-insensitive, RFC 6750).
pub fn bearer(authorization: Option<&str>) -> Option<&str> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without an early exit, so the time taken says nothing about
/// how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn feed(name: &str) -> FeedName {
        FeedName::parse(name).unwrap()
    }

    fn jwt(secret: &str, claims: serde_json::Value) -> String {
        let key = EncodingKey::from_secret(secret.as_bytes());
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    }

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn the_publish_token_is_the_operators() {
        let open = Access::new(None, None);
        assert_eq!(open.grant(None), Grant::Anonymous);
        assert_eq!(open.may_publish(&Grant::Anonymous, &feed("main")), Ok(()));
        assert!(matches!(
            open.may_read(&Grant::Anonymous, &feed("private-x")),
            Err(Denied::Forbidden(_))
        ));
        let guarded = Access::new(Some("s3cret".into()), None);
        assert_eq!(guarded.grant(Some(" s3cret ")), Grant::Operator);
        assert!(matches!(guarded.grant(Some("s3cre")), Grant::Invalid(_)));
        assert_eq!(
            guarded.may_publish(&Grant::Operator, &feed("private-x")),
            Ok(())
        );
        assert_eq!(
            guarded.may_read(&Grant::Operator, &feed("private-x")),
            Ok(())
        );
        assert!(matches!(
            guarded.may_publish(&Grant::Anonymous, &feed("main")),
            Err(Denied::Unauthorized(_))
        ));
        assert_eq!(
            guarded.may_read(&guarded.grant(Some("wrong")), &feed("main")),
            Ok(())
        );
        assert!(!format!("{guarded:?}").contains("s3cret"));
    }

    #[test]
    fn jwts_grant_what_their_claims_say() {
        let access = Access::new(None, Some("k"));
        let token = jwt(
            "k",
            json!({"exp": now() + 60, "sub": "ada",
            "subscribe": ["private-team-*", "private-a"], "publish": ["private-a"]}),
        );
        let grant = access.grant(Some(&token));
        assert_eq!(grant.subject(), Some("ada"));
        assert_eq!(access.may_read(&grant, &feed("private-team-7")), Ok(()));
        assert_eq!(access.may_read(&grant, &feed("private-a")), Ok(()));
        assert_eq!(access.may_publish(&grant, &feed("private-a")), Ok(()));
        assert!(matches!(
            access.may_publish(&grant, &feed("private-team-7")),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            access.may_read(&grant, &feed("private-b")),
            Err(Denied::Forbidden(_))
        ));
        assert_eq!(
            access.may_publish(&grant, &feed("main")),
            Ok(()),
            "no publish token: open"
        );
        for bad in [
            jwt("other", json!({"exp": now() + 60, "subscribe": ["*"]})),
            jwt("k", json!({"exp": now() - 5, "subscribe": ["*"]})),
            jwt("k", json!({"subscribe": ["*"]})),
            "not.a.jwt".to_owned(),
        ] {
            let grant = access.grant(Some(&bad));
            assert!(matches!(grant, Grant::Invalid(_)), "{bad}: {grant:?}");
            assert!(matches!(
                access.may_read(&grant, &feed("private-a")),
                Err(Denied::Unauthorized(_))
            ));
            assert_eq!(access.may_read(&grant, &feed("main")), Ok(()));
        }
        assert!(matches!(
            access.may_read(&Grant::Anonymous, &feed("private-a")),
            Err(Denied::Unauthorized(_))
        ));
    }

    #[test]
    fn with_a_publish_token_public_writes_need_it_or_a_jwt() {
        let access = Access::new(Some("op".into()), Some("k"));
        let writer = access.grant(Some(&jwt(
            "k",
            json!({"exp": now() + 60, "publish": ["main"]}),
        )));
        let reader = access.grant(Some(&jwt(
            "k",
            json!({"exp": now() + 60, "subscribe": ["*"]}),
        )));
        assert_eq!(access.may_publish(&writer, &feed("main")), Ok(()));
        assert!(matches!(
            access.may_publish(&reader, &feed("main")),
            Err(Denied::Forbidden(_))
        ));
        assert!(matches!(
            access.may_publish(&Grant::Anonymous, &feed("main")),
            Err(Denied::Unauthorized(_))
        ));
        assert_eq!(access.may_read(&reader, &feed("private-anything")), Ok(()));
    }

    #[test]
    fn bearer_headers() {
        assert_eq!(bearer(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer(Some("Basic abc")), None);
        assert_eq!(bearer(Some("Bearer")), None);
        assert_eq!(bearer(None), None);
    }
}
