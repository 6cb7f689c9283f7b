//! The HTTP API: routes, request limits and the mapping of errors to
//! responses.

use crate::assets;
use crate::cluster::Cluster;
use crate::error::ApiError;
use crate::metrics;
use crate::openapi;
use crate::post::NewPost;
use crate::sse;
use crate::store::{Store, StoredPost};
use crate::ws;
use crate::Config;
use async_std::io::ReadExt;
use livefeed_actors::{Broadcast, ConnectionConfig, Delivery, Hub, Metrics};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tide::http::headers;
use tide::{Request, Response, StatusCode};
use xactor::Addr;

/// Largest accepted request body.
pub const MAX_BODY: usize = 64 * 1024;
/// Posts per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 20;
/// Largest `limit`.
pub const MAX_PAGE: usize = 100;

/// Everything a request handler needs.
pub struct AppState {
    /// Post storage.
    pub store: Arc<Store>,
    /// The hub every push connection registers with.
    pub hub: Addr<Hub>,
    /// Counters shared with the actors.
    pub metrics: Arc<Metrics>,
    /// Counters of the HTTP layer.
    pub http: HttpCounters,
    /// The configuration the server started with.
    pub config: Config,
    /// Cluster mode (`--redis-url`): the shared log creates go to.
    pub cluster: Option<Arc<Cluster>>,
    next_connection: AtomicU64,
}

/// Counters of the HTTP layer.
#[derive(Debug, Default)]
pub struct HttpCounters {
    /// Posts created.
    pub posts_created: AtomicU64,
    /// Create requests refused (any 4xx or 5xx).
    pub posts_rejected: AtomicU64,
    /// HTTP requests answered.
    pub requests: AtomicU64,
}

impl AppState {
    /// State over a started store and hub.
    pub fn new(store: Arc<Store>, hub: Addr<Hub>, metrics: Arc<Metrics>, config: Config) -> Self {
        Self {
            store,
            hub,
            metrics,
            http: HttpCounters::default(),
            config,
            cluster: None,
            next_connection: AtomicU64::new(1),
        }
    }

    /// A fresh connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Creates a validated post, whichever transport asked: stores it and
    /// broadcasts it, or in cluster mode appends it to the shared log (the
    /// tailer then stores and broadcasts it, on this node as on the others).
    pub async fn create_post(&self, post: NewPost) -> Result<StoredPost, ApiError> {
        let stored = match &self.cluster {
            Some(cluster) => cluster.publish(post).await?,
            None => {
                let stored = self.store.create(post).await?;
                // The post is durable; a hub that is gone only means nobody
                // is listening, so the create still succeeded.
                let delivery = Delivery::new(stored.post.id, stored.json.clone());
                self.hub.send(Broadcast(delivery)).ok();
                stored
            }
        };
        self.http.posts_created.fetch_add(1, Ordering::Relaxed);
        Ok(stored)
    }

    /// Limits of each push connection.
    pub fn connection_config(&self) -> ConnectionConfig {
        connection_config(&self.config)
    }
}

/// Limits of each push connection, from the configuration.
pub fn connection_config(config: &Config) -> ConnectionConfig {
    ConnectionConfig {
        idle_timeout: config.heartbeat_interval + config.heartbeat_timeout,
        write_timeout: config.heartbeat_timeout,
        max_backlog_frames: config.max_backlog_frames,
        max_backlog_bytes: config.max_backlog_bytes,
    }
}

/// Shared state as tide sees it.
pub type State = Arc<AppState>;

/// The tide application with every route.
pub fn app(state: State) -> tide::Server<State> {
    let mut app = tide::with_state(state);
    app.with(RequestLog);
    app.with(ErrorBodies);
    app.at("/posts").post(create_post).get(list_posts);
    app.at("/posts/:id").get(get_post);
    app.at("/ws").get(ws::upgrade);
    crate::socketio::mount(&mut app);
    app.at("/events").get(sse::subscribe);
    app.at("/openapi.json").get(openapi::serve);
    app.at("/healthz").get(healthz);
    app.at("/readyz").get(readyz);
    app.at("/metrics").get(metrics::render);
    app.at("/").get(assets::serve);
    app.at("/*path").get(assets::serve);
    app
}

async fn create_post(mut req: Request<State>) -> tide::Result {
    let state = req.state().clone();
    let result = create(&mut req, &state).await;
    if result.is_err() {
        state.http.posts_rejected.fetch_add(1, Ordering::Relaxed);
    }
    Ok(result.unwrap_or_else(ApiError::into_response))
}

async fn create(req: &mut Request<State>, state: &AppState) -> Result<Response, ApiError> {
    authorize(req, state)?;
    require_json(req)?;
    let body = read_body(req).await?;
    let post = NewPost::from_json(&body)?;
    let stored = state.create_post(post).await?;
    let id = stored.post.id;
    Ok(Response::builder(StatusCode::Created)
        .content_type(tide::http::mime::JSON)
        .header(headers::LOCATION, format!("/posts/{id}"))
        .body(&*stored.json)
        .build())
}

fn authorize(req: &Request<State>, state: &AppState) -> Result<(), ApiError> {
    let Some(token) = &state.config.publish_token else {
        return Ok(());
    };
    let given = req
        .header(headers::AUTHORIZATION)
        .and_then(|h| h.as_str().strip_prefix("Bearer "))
        .unwrap_or("");
    if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::Unauthorized,
            "unauthorized",
            "creating posts needs `Authorization: Bearer <publish token>`",
        ))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn require_json(req: &Request<State>) -> Result<(), ApiError> {
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
async fn read_body(req: &mut Request<State>) -> Result<Vec<u8>, ApiError> {
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
        .map_err(|e| ApiError::bad_request("bad_body", format!("could not read the body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(too_large());
    }
    Ok(body)
}

async fn list_posts(req: Request<State>) -> tide::Result {
    Ok(list(&req).unwrap_or_else(ApiError::into_response))
}

fn list(req: &Request<State>) -> Result<Response, ApiError> {
    let mut limit = DEFAULT_PAGE;
    let mut before = None;
    for (key, value) in req.url().query_pairs() {
        match &*key {
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            format!("limit must be an integer from 1 to {MAX_PAGE}"),
                        )
                    })?;
            }
            "before" => {
                before = Some(value.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "invalid_query",
                        "before must be a post id (an unsigned integer)",
                    )
                })?);
            }
            _ => {}
        }
    }
    let page = req.state().store.page(before, limit)?;
    let mut body =
        String::with_capacity(64 + page.posts.iter().map(|p| p.len() + 1).sum::<usize>());
    body.push_str("{\"posts\":[");
    for (i, post) in page.posts.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(
            std::str::from_utf8(post)
                .map_err(|_| ApiError::unavailable("a stored post is corrupt"))?,
        );
    }
    body.push_str("],\"next\":");
    match page.next {
        Some(next) => body.push_str(&next.to_string()),
        None => body.push_str("null"),
    }
    body.push('}');
    Ok(json_response(StatusCode::Ok, body))
}

async fn get_post(req: Request<State>) -> tide::Result {
    let found = (|| {
        let raw = req.param("id").unwrap_or("");
        let id: u64 = raw.parse().map_err(|_| {
            ApiError::bad_request("invalid_id", format!("`{raw}` is not a post id"))
        })?;
        let post = req
            .state()
            .store
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("no post with id {id}")))?;
        let text = String::from_utf8(post.to_vec())
            .map_err(|_| ApiError::unavailable("the stored post is corrupt"))?;
        Ok(json_response(StatusCode::Ok, text))
    })();
    Ok(found.unwrap_or_else(ApiError::into_response))
}

/// Liveness: 200 while the process serves; says the mode and, in cluster
/// mode, the replica's state.
async fn healthz(req: Request<State>) -> tide::Result {
    let body = match &req.state().cluster {
        None => serde_json::json!({"status": "ok", "mode": "single"}),
        Some(cluster) => {
            let mut body = cluster.health();
            body["status"] = "ok".into();
            body
        }
    };
    Ok(json_response(StatusCode::Ok, body.to_string()))
}

/// Readiness, for load balancers: 503 while a cluster node catches up with
/// the stream (or refuses a diverged replica); a single node is always
/// ready.
async fn readyz(req: Request<State>) -> tide::Result {
    let ready = req.state().cluster.as_ref().is_none_or(|c| c.is_ready());
    let (status, body) = if ready {
        (StatusCode::Ok, r#"{"ready":true}"#)
    } else {
        (StatusCode::ServiceUnavailable, r#"{"ready":false}"#)
    };
    Ok(json_response(status, body.into()))
}

fn json_response(status: StatusCode, body: String) -> Response {
    Response::builder(status)
        .content_type(tide::http::mime::JSON)
        .body(body)
        .build()
}

/// One log line per request: method, path, status, duration.
struct RequestLog;

#[tide::utils::async_trait]
impl tide::Middleware<State> for RequestLog {
    async fn handle(&self, req: Request<State>, next: tide::Next<'_, State>) -> tide::Result {
        let started = Instant::now();
        let method = req.method().to_string();
        let path = req.url().path().to_owned();
        let state = req.state().clone();
        let res = next.run(req).await;
        state.http.requests.fetch_add(1, Ordering::Relaxed);
        let status = res.status() as u16;
        let micros = started.elapsed().as_micros() as u64;
        log::info!(method = method.as_str(), path = path.as_str(), status = status, micros = micros; "{method} {path} {status} {micros}us");
        Ok(res)
    }
}

/// Gives tide's own bodiless errors (unknown route, wrong method) the API's
/// error body.
struct ErrorBodies;

#[tide::utils::async_trait]
impl tide::Middleware<State> for ErrorBodies {
    async fn handle(&self, req: Request<State>, next: tide::Next<'_, State>) -> tide::Result {
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
