//! CORS for the HTTP API, `/events` and the other routes livefeed answers
//! itself, so that a page on another origin (a front end on
//! `http://localhost:3000`, the API on `:8080`) can create posts with
//! `fetch` and follow them with an `EventSource`.
//!
//! Which origins may: the server's one [`Origins`] policy
//! (`--allowed-origin`), the same as for websockets and Engine.IO polling
//! (which keeps its own CORS). To an allowed origin every response says so
//! (errors included), and a preflight gets the route's methods and the
//! request headers the API reads; to any other origin nothing is said, so
//! the browser keeps the page from reading the response (and from sending
//! a request that needs a preflight at all). The routes' methods and the
//! `OPTIONS` answer are in [`route`](super::route).

use crate::net::origin::Origins;
use tide::http::headers;
use tide::{Request, Response};

/// The request headers a preflight allows: those the API reads.
pub const ALLOW_HEADERS: &str =
    "Content-Type, Authorization, Idempotency-Key, If-Match, Last-Event-ID";
/// The response headers a page may read besides the CORS-safelisted ones.
pub const EXPOSE_HEADERS: &str = "Location, ETag";
/// How long (seconds) a browser may cache a preflight's answer. Chromium
/// caps it at two hours, which this is.
pub const MAX_AGE_SECS: u32 = 7200;

/// The preflight request header naming the method the page wants to use.
const REQUEST_METHOD: &str = "Access-Control-Request-Method";

/// The CORS rules, over the server's origin policy.
#[derive(Debug, Clone)]
pub struct Cors {
    origins: Origins,
}

impl Cors {
    /// CORS for the origins `origins` allows.
    pub fn new(origins: Origins) -> Self {
        Self { origins }
    }

    /// The request's `Origin`, when it is one the policy allows.
    pub fn allowed_origin<S>(&self, req: &Request<S>) -> Option<String> {
        let origin = req.header(headers::ORIGIN)?.as_str();
        let host = req.header(headers::HOST).map(|h| h.as_str());
        self.origins
            .allows(origin, host)
            .then(|| origin.trim().to_owned())
    }

    /// Whether `req` is a CORS preflight (an `OPTIONS` naming the method to
    /// come; the caller checks the method).
    pub fn is_preflight<S>(req: &Request<S>) -> bool {
        req.header(headers::ORIGIN).is_some() && req.header(REQUEST_METHOD).is_some()
    }

    /// Adds the preflight answer for a route serving `methods` (an `Allow`
    /// value) to `res`, for an allowed origin; [`Cors::respond`] adds the
    /// rest.
    pub fn preflight(res: &mut Response, methods: &str) {
        res.insert_header("Access-Control-Allow-Methods", methods);
        res.insert_header("Access-Control-Allow-Headers", ALLOW_HEADERS);
        res.insert_header("Access-Control-Max-Age", MAX_AGE_SECS.to_string());
    }

    /// Adds to `res` what every response says about CORS: `Vary: Origin`
    /// (what it says depends on the request's `Origin`, which caches must
    /// know), and, to an allowed `origin`, that it may read the response
    /// and its `Location` and `ETag`.
    pub fn respond(&self, res: &mut Response, origin: Option<&str>) {
        res.append_header(headers::VARY, "Origin");
        if let Some(origin) = origin {
            self.origins.allow_origin(res, origin);
            res.insert_header("Access-Control-Expose-Headers", EXPOSE_HEADERS);
        }
    }
}
