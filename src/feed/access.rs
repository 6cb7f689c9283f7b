//! Who may publish: the one check of a presented credential, whichever
//! transport it came over.
//!
//! An HTTP client presents `Authorization: Bearer <token>`
//! ([`bearer`] reads it); a Socket.IO client presents `auth: {token}` in
//! its handshake. Both reach [`Access::may_publish`].

/// The publish policy.
#[derive(Clone, Default)]
pub struct Access {
    publish_token: Option<String>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Access")
            .field("publish_token", &self.publish_token.as_ref().map(|_| "***"))
            .finish()
    }
}

/// A credential was needed and not given, or wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("creating posts needs the publish token")]
pub struct Denied;

impl Access {
    /// Anyone may publish without a token; with one, only its holders.
    pub fn new(publish_token: Option<String>) -> Self {
        Self { publish_token }
    }

    /// Checks `presented` (surrounding white space ignored) against the
    /// publish token, in constant time.
    pub fn may_publish(&self, presented: Option<&str>) -> Result<(), Denied> {
        let Some(token) = &self.publish_token else {
            return Ok(());
        };
        let given = presented.unwrap_or("").trim();
        if constant_time_eq(given.as_bytes(), token.as_bytes()) {
            Ok(())
        } else {
            Err(Denied)
        }
    }
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

    #[test]
    fn tokens_are_checked_exactly() {
        let open = Access::new(None);
        assert_eq!(open.may_publish(None), Ok(()));
        let guarded = Access::new(Some("s3cret".into()));
        assert_eq!(guarded.may_publish(Some("s3cret")), Ok(()));
        assert_eq!(guarded.may_publish(Some(" s3cret ")), Ok(()));
        assert_eq!(guarded.may_publish(Some("s3cre")), Err(Denied));
        assert_eq!(guarded.may_publish(None), Err(Denied));
        assert!(!format!("{guarded:?}").contains("s3cret"));
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
