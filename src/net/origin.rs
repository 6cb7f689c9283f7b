//! Which browser origins may talk to livefeed: one policy for `/ws` and
//! Engine.IO, from `--allowed-origin`.
//!
//! Browsers send `Origin` with websocket upgrades and cross-origin
//! requests; a page on another site must not be able to subscribe or post
//! on a visitor's behalf. Without an allow-list only the server's own host
//! is accepted; requests without `Origin` (non-browser clients) always are.
//!
//! The same policy says which origins may read responses across origins
//! (CORS: the HTTP API and `/events` in `http::cors`, Engine.IO polling in
//! `socketio::engine::config`), and [`Origins::allow_origin`] is the one
//! rule for what such a response says.

/// The CORS response header naming who may read the response.
pub const ALLOW_ORIGIN: &str = "Access-Control-Allow-Origin";
/// The CORS response header allowing credentialed requests.
pub const ALLOW_CREDENTIALS: &str = "Access-Control-Allow-Credentials";

/// The origin policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Any origin.
    Any,
    /// Only pages served by this host (the `Host` the request names).
    SameHost,
    /// These origins, compared case-insensitively without a trailing
    /// slash.
    List(Vec<String>),
}

impl Origins {
    /// The policy of `--allowed-origin`: same host when empty, any when it
    /// lists `*`.
    pub fn from_flags(allowed: &[String]) -> Self {
        if allowed.is_empty() {
            Origins::SameHost
        } else if allowed.iter().any(|a| a.trim() == "*") {
            Origins::Any
        } else {
            Origins::List(
                allowed
                    .iter()
                    .map(|a| a.trim().trim_end_matches('/').to_owned())
                    .collect(),
            )
        }
    }

    /// Whether a request from `origin` to `host` (its `Host` header) is
    /// allowed.
    pub fn allows(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = origin.trim();
        match self {
            Origins::Any => true,
            Origins::SameHost => {
                let origin_host = origin
                    .split_once("://")
                    .map(|(_, rest)| rest.trim_end_matches('/'));
                let host = host.map(str::trim);
                host.is_some() && origin_host == host
            }
            Origins::List(list) => list.iter().any(|a| a.eq_ignore_ascii_case(origin)),
        }
    }

    /// Marks `res` as readable by `origin`, which this policy allows: with
    /// `*` (any origin), `Access-Control-Allow-Origin: *` and never
    /// credentials, so no page on any site can make the browser send
    /// cookies along; otherwise the origin itself, with
    /// `Access-Control-Allow-Credentials: true` (a listed origin is
    /// trusted). livefeed's own credentials are bearer tokens in a header or
    /// `?token=`, which need no credentials mode; it is for deployments that
    /// put cookie authentication in front.
    pub fn allow_origin(&self, res: &mut tide::Response, origin: &str) {
        match self {
            Origins::Any => res.insert_header(ALLOW_ORIGIN, "*"),
            Origins::SameHost | Origins::List(_) => {
                res.insert_header(ALLOW_ORIGIN, origin.trim());
                res.insert_header(ALLOW_CREDENTIALS, "true");
            }
        }
    }

    /// Checks a request's `Origin` and `Host` headers; `Err` carries the
    /// refused origin.
    pub fn check<S>(&self, req: &tide::Request<S>) -> Result<(), String> {
        use tide::http::headers::{HOST, ORIGIN};
        let Some(origin) = req.header(ORIGIN).map(|h| h.as_str()) else {
            return Ok(());
        };
        let host = req.header(HOST).map(|h| h.as_str());
        if self.allows(origin, host) {
            Ok(())
        } else {
            Err(origin.trim().to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_rules() {
        assert!(Origins::Any.allows("http://evil.example", Some("a:1")));
        let same = Origins::from_flags(&[]);
        assert!(same.allows("http://a:1", Some("a:1")));
        assert!(!same.allows("http://b:1", Some("a:1")));
        assert!(!same.allows("http://a:1", None));
        let list = Origins::from_flags(&["https://x.example/".into()]);
        assert!(list.allows("https://x.example", Some("a")));
        assert!(list.allows("HTTPS://X.example", Some("a")));
        assert!(!list.allows("https://y.example", Some("a")));
        assert_eq!(Origins::from_flags(&["*".into()]), Origins::Any);
    }

    #[test]
    fn any_origin_never_comes_with_credentials() {
        let header =
            |res: &tide::Response, name: &str| res.header(name).map(|h| h.as_str().to_owned());
        let mut res = tide::Response::new(200);
        Origins::Any.allow_origin(&mut res, "http://a.example");
        assert_eq!(header(&res, ALLOW_ORIGIN).as_deref(), Some("*"));
        assert_eq!(header(&res, ALLOW_CREDENTIALS), None);
        let mut res = tide::Response::new(200);
        let list = Origins::from_flags(&["http://a.example".into()]);
        list.allow_origin(&mut res, "http://a.example");
        assert_eq!(
            header(&res, ALLOW_ORIGIN).as_deref(),
            Some("http://a.example")
        );
        assert_eq!(header(&res, ALLOW_CREDENTIALS).as_deref(), Some("true"));
    }
}
