//! The HTTP layer: the API's routes, error mapping, request limits and the
//! accept loop.
//!
//! Route handlers are bound to the services they use (see [`handler`])
//! rather than reaching into one shared state type, so a module imports
//! only what it calls and the route table (in `app`) is the one place that
//! knows every route.
//!
//! Layout:
//! - [`error`]: [`ApiError`] and the mapping of feed errors to statuses;
//! - [`route`]: the [`Router`] routes are mounted on, which records each
//!   route's methods: `Allow` on 405s, `OPTIONS`, and CORS through
//! - [`cors`]: which origins may read responses, and what they are told;
//! - [`posts`]: `POST /posts`, `GET /posts`, `GET /posts/{id}`;
//! - [`ops`]: `/healthz`, `/readyz`, `/metrics`, `/openapi.json`, the demo;
//! - [`h1`]: the accept loop, answering requests that can't be parsed.

pub mod cors;
pub mod error;
pub mod h1;
pub mod ops;
pub mod posts;
pub mod route;

use crate::feed::access::{bearer, Grant};
use crate::feed::name::{self, FeedName};
use crate::feed::FeedError;
use async_std::io::ReadExt;
pub use error::ApiError;
use error::Detail;
pub use route::Router;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tide::{Request, Response, StatusCode};

/// The tide application livefeed serves: every route carries its own
/// services, so the app itself has no state.
pub type Server = tide::Server<()>;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;

/// A route handler bound to `service`: each request runs `f(service,
/// request)`.
pub fn handler<A, F, Fut>(service: A, f: F) -> impl tide::Endpoint<()>
where
    A: Clone + Send + Sync + 'static,
    F: Fn(A, Request<()>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    move |req: Request<()>| {
        let response = f(service.clone(), req);
        async move { Ok(response.await) }
    }
}

/// A JSON response.
pub fn json_response(status: StatusCode, body: impl Into<tide::Body>) -> Response {
    Response::builder(status)
        .content_type(tide::http::mime::JSON)
        .body(body)
        .build()
}

/// Carried by a response to the request log: the `sub` of the JWT the
/// request presented.
#[derive(Debug, Clone)]
pub struct Subject(pub String);

/// `res`, carrying the token's `sub` (if any) to the request log.
pub fn for_subject(mut res: Response, grant: &Grant) -> Response {
    if let Some(sub) = grant.subject() {
        res.insert_ext(Subject(sub.to_owned()));
    }
    res
}

/// Requests answered since start.
#[derive(Debug, Default)]
pub struct RequestCount(AtomicU64);

impl RequestCount {
    /// The count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One log line per request: method, path, status, duration, and the
/// internal cause of an error response.
#[derive(Debug, Default, Clone)]
pub struct RequestLog(pub Arc<RequestCount>);

#[tide::utils::async_trait]
impl tide::Middleware<()> for RequestLog {
    async fn handle(&self, req: Request<()>, next: tide::Next<'_, ()>) -> tide::Result {
        let started = Instant::now();
        let method = req.method().to_string();
        let path = req.url().path().to_owned();
        let res = next.run(req).await;
        self.0 .0.fetch_add(1, Ordering::Relaxed);
        let status = res.status() as u16;
        let micros = started.elapsed().as_micros() as u64;
        let sub = res.ext::<Subject>().map_or("", |s| s.0.as_str());
        match res.ext::<Detail>() {
            Some(Detail(detail)) => {
                log::warn!(method = method.as_str(), path = path.as_str(), status = status, micros = micros, sub = sub, error = detail.as_str(); "{method} {path} {status} {micros}us: {detail}")
            }
            None => {
                log::info!(method = method.as_str(), path = path.as_str(), status = status, micros = micros, sub = sub; "{method} {path} {status} {micros}us")
            }
        }
        Ok(res)
    }
}

/// Gives tide's own bodiless errors (unknown route, wrong method) the API's
/// error body. [`Router::finish`] adds it, inside the rules that give a 405
/// its `Allow`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ErrorBodies;

#[tide::utils::async_trait]
impl tide::Middleware<()> for ErrorBodies {
    async fn handle(&self, req: Request<()>, next: tide::Next<'_, ()>) -> tide::Result {
        let res = next.run(req).await;
        if res.len() != Some(0) {
            return Ok(res);
        }
        let error = match res.status() {
            StatusCode::NotFound => ApiError::not_found("no such route"),
            StatusCode::MethodNotAllowed => ApiError::new(
                StatusCode::MethodNotAllowed,
                "method_not_allowed",
                "this route does not accept that method",
            ),
            _ => return Ok(res),
        };
        Ok(error.into_response())
    }
}

/// Refuses a body that is not JSON (`application/json` or `*/*+json`).
pub fn require_json<S>(req: &Request<S>) -> Result<(), ApiError> {
    let is_json = req.content_type().is_some_and(|mime| {
        let essence = mime.essence();
        essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
    });
    if is_json {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UnsupportedMediaType,
            "unsupported_media_type",
            "the body must be JSON (Content-Type: application/json)",
        ))
    }
}

/// Reads at most [`MAX_BODY`] bytes: a larger declared or actual body is a
/// 413 and is not buffered.
pub async fn read_body<S>(req: &mut Request<S>) -> Result<Vec<u8>, ApiError> {
    let too_large = || {
        ApiError::new(
            StatusCode::PayloadTooLarge,
            "payload_too_large",
            format!("the body must be at most {MAX_BODY} bytes"),
        )
    };
    if req.len().is_some_and(|len| len > MAX_BODY) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    req.take_body()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .await
        .map_err(|_| ApiError::bad_request("bad_body", "the request body could not be read"))?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

/// What a push route's request subscribes to: the `feeds` query parameter
/// (comma-separated; the default feed without it), and the token it
/// presents (`?token=`, which browsers can set on a websocket or
/// `EventSource`, or else `Authorization: Bearer`).
pub fn subscription<S>(req: &Request<S>) -> Result<(Vec<FeedName>, Option<String>), ApiError> {
    let mut feeds = None;
    let mut token = None;
    for (key, value) in req.url().query_pairs() {
        match &*key {
            "feeds" => feeds = Some(value.into_owned()),
            "token" => token = Some(value.into_owned()),
            _ => {}
        }
    }
    let feeds = match feeds {
        Some(list) => name::subscription(list.split(',')).map_err(FeedError::from)?,
        None => vec![FeedName::main()],
    };
    let header = req
        .header(tide::http::headers::AUTHORIZATION)
        .map(|h| h.as_str());
    let token = token.or_else(|| bearer(header).map(str::to_owned));
    Ok((feeds, token))
}

/// The `since` query parameter of a push route: replay the changes after
/// that seq first.
pub fn since_param<S>(req: &Request<S>) -> Result<Option<u64>, ApiError> {
    req.url()
        .query_pairs()
        .find(|(k, _)| k == "since")
        .map(|(_, v)| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request("invalid_query", "since must be a seq (an unsigned integer)")
            })
        })
        .transpose()
}
