//! The posts and feeds routes: `POST` and `GET /posts` (the default feed),
//! `POST` and `GET /feeds/{feed}/posts`, `GET /feeds`, and `GET`, `PATCH`
//! and `DELETE /posts/{id}` (a post of any feed the caller may read).
//!
//! A post's `ETag` is `"<seq>"`, the seq of its latest change; `PATCH` and
//! `DELETE` honour `If-Match` with it (or `*`). The create routes take an
//! `Idempotency-Key` ([`crate::feed::idempotency`]): a retry with it is
//! answered exactly as the first request was.

use super::{for_subject, handler, json_response, read_body, require_json, ApiError, Router};
use crate::feed::access::{bearer, Grant};
use crate::feed::idempotency::{BadKey, Key, Keyed};
use crate::feed::publish::Expect;
use crate::feed::{Feed, FeedName, Stored};
use std::sync::Arc;
use tide::http::headers;
use tide::{Request, Response, StatusCode};

/// Posts per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 20;
/// Largest `limit`.
pub const MAX_PAGE: usize = 100;

/// Adds the posts and feeds routes to `app`.
pub fn mount(app: &mut Router, feed: Arc<Feed>) {
    app.at("/posts")
        .post(handler(feed.clone(), create))
        .get(handler(feed.clone(), list));
    app.at("/feeds").get(handler(feed.clone(), feeds));
    app.at("/feeds/:feed/posts")
        .post(handler(feed.clone(), create))
        .get(handler(feed.clone(), list));
    app.at("/posts/:id")
        .get(handler(feed.clone(), get))
        .patch(handler(feed.clone(), update))
        .delete(handler(feed, delete));
}

/// What the request's `Authorization: Bearer` token grants.
fn grant(feed: &Feed, req: &Request<()>) -> Grant {
    feed.grant(bearer(
        req.header(headers::AUTHORIZATION).map(|h| h.as_str()),
    ))
}

/// The route's `{feed}` as sent; `None` on the `/posts` routes. (Asked of
/// tide only where the route has it: a missing parameter is an error value
/// that captures a backtrace, a cost on every create where backtraces are
/// on.)
fn feed_param(req: &Request<()>) -> Option<&str> {
    if req.url().path().starts_with("/feeds/") {
        req.param("feed").ok()
    } else {
        None
    }
}

/// The route's `{feed}`, or the default feed on the `/posts` routes.
fn route_feed(req: &Request<()>) -> Result<FeedName, ApiError> {
    match feed_param(req) {
        Some(name) => Ok(FeedName::parse(name).map_err(crate::feed::FeedError::from)?),
        None => Ok(FeedName::main()),
    }
}

/// The request header carrying a create's idempotency key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// The create's `Idempotency-Key`, if it sent one, with the route it came
/// on (`/posts`, or `/feeds/{feed}/posts` with its feed).
fn keyed(req: &Request<()>, target: &FeedName) -> Result<Option<Keyed>, ApiError> {
    let Some(values) = req.header(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let mut values = values.iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        let twice = BadKey("send one Idempotency-Key, not several".into());
        return Err(crate::feed::FeedError::from(twice).into());
    };
    let key = Key::parse(value.as_str()).map_err(crate::feed::FeedError::from)?;
    let route = match feed_param(req) {
        Some(_) => format!("/feeds/{target}/posts"),
        None => "/posts".to_owned(),
    };
    Ok(Some(Keyed { key, route }))
}

/// A JSON body of at most [`MAX_BODY`](super::MAX_BODY) bytes; a refusal
/// is counted as a rejected write.
async fn json_body(feed: &Feed, req: &mut Request<()>) -> Result<Vec<u8>, ApiError> {
    let checked = async {
        require_json(req)?;
        read_body(req).await
    }
    .await;
    checked.inspect_err(|_| feed.reject())
}

/// `"<seq>"`.
fn etag(seq: u64) -> String {
    format!("\"{seq}\"")
}

/// A post with its `ETag`.
fn post_response(status: StatusCode, stored: &Stored) -> Response {
    let mut res = json_response(status, &*stored.json);
    res.insert_header(headers::ETAG, etag(stored.seq));
    res
}

async fn create(feed: Arc<Feed>, mut req: Request<()>) -> Response {
    let started = std::time::Instant::now();
    let grant = grant(&feed, &req);
    let checked = async {
        let target = route_feed(&req).inspect_err(|_| feed.reject())?;
        // The credential first: a client that may not write here learns
        // that before anything about its body.
        feed.may_publish(&grant, &target)?;
        let keyed = keyed(&req, &target).inspect_err(|_| feed.reject())?;
        let body = json_body(&feed, &mut req).await?;
        // A replay is answered as the create it repeats was.
        let created = feed.create(&grant, target, &body, keyed.as_ref()).await?;
        if !created.replayed {
            feed.created_in(started.elapsed());
        }
        let stored = created.stored;
        let mut res = post_response(StatusCode::Created, &stored);
        res.insert_header(headers::LOCATION, format!("/posts/{}", stored.post.id));
        Ok::<_, ApiError>(res)
    };
    let res = checked.await.unwrap_or_else(ApiError::into_response);
    for_subject(res, &grant)
}

async fn update(feed: Arc<Feed>, mut req: Request<()>) -> Response {
    let grant = grant(&feed, &req);
    let checked = async {
        let id = post_id(&req).inspect_err(|_| feed.reject())?;
        let expect = if_match(&req);
        let body = json_body(&feed, &mut req).await?;
        let stored = feed.update(&grant, id, &body, expect).await?;
        Ok::<_, ApiError>(post_response(StatusCode::Ok, &stored))
    };
    let res = checked.await.unwrap_or_else(ApiError::into_response);
    for_subject(res, &grant)
}

async fn delete(feed: Arc<Feed>, req: Request<()>) -> Response {
    let grant = grant(&feed, &req);
    let checked = async {
        let id = post_id(&req).inspect_err(|_| feed.reject())?;
        feed.delete(&grant, id, if_match(&req)).await?;
        Ok::<_, ApiError>(Response::new(StatusCode::NoContent))
    };
    let res = checked.await.unwrap_or_else(ApiError::into_response);
    for_subject(res, &grant)
}

async fn feeds(feed: Arc<Feed>, req: Request<()>) -> Response {
    let grant = grant(&feed, &req);
    let listed = async {
        #[derive(serde::Serialize)]
        struct Listing {
            feeds: Vec<crate::feed::FeedInfo>,
        }
        let body = serde_json::to_string(&Listing {
            feeds: feed.feeds(&grant).await?,
        })
        .expect("a feed list serialises");
        Ok::<_, ApiError>(json_response(StatusCode::Ok, body))
    };
    for_subject(listed.await.unwrap_or_else(ApiError::into_response), &grant)
}

/// The `{id}` of a `/posts/{id}` route.
fn post_id(req: &Request<()>) -> Result<u64, ApiError> {
    let raw = req.param("id").unwrap_or("");
    raw.parse()
        .map_err(|_| ApiError::bad_request("invalid_id", format!("`{raw}` is not a post id")))
}

/// What `If-Match` asks of the post: `*` or no header, any live post; else
/// one of the listed strong `ETag`s (a weak or malformed one matches
/// nothing).
fn if_match(req: &Request<()>) -> Expect {
    let Some(values) = req.header(headers::IF_MATCH) else {
        return Expect::Live;
    };
    let tags: Vec<&str> = values
        .iter()
        .flat_map(|v| v.as_str().split(','))
        .map(str::trim)
        .collect();
    if tags.contains(&"*") {
        return Expect::Live;
    }
    let seqs = tags
        .iter()
        .filter_map(|tag| tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok())
        .collect();
    Expect::Seqs(seqs)
}

async fn list(feed: Arc<Feed>, req: Request<()>) -> Response {
    let grant = grant(&feed, &req);
    let res = page(&feed, &grant, &req).unwrap_or_else(ApiError::into_response);
    for_subject(res, &grant)
}

fn page(feed: &Feed, grant: &Grant, req: &Request<()>) -> Result<Response, ApiError> {
    let target = route_feed(req)?;
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
    let page = feed.page(grant, &target, before, limit)?;
    let mut body = Vec::with_capacity(64 + page.posts.iter().map(|p| p.len() + 1).sum::<usize>());
    body.extend_from_slice(b"{\"posts\":[");
    for (i, post) in page.posts.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(post);
    }
    body.extend_from_slice(b"],\"next\":");
    match page.next {
        Some(next) => body.extend_from_slice(next.to_string().as_bytes()),
        None => body.extend_from_slice(b"null"),
    }
    body.push(b'}');
    Ok(json_response(StatusCode::Ok, body))
}

async fn get(feed: Arc<Feed>, req: Request<()>) -> Response {
    let grant = grant(&feed, &req);
    let found = (|| {
        let id = post_id(&req)?;
        let post = feed.get(&grant, id).map_err(|e| match e {
            crate::feed::FeedError::NotFound => {
                ApiError::not_found(format!("no post with id {id}"))
            }
            e => e.into(),
        })?;
        let mut res = json_response(StatusCode::Ok, post.json);
        res.insert_header(headers::ETAG, etag(post.seq));
        Ok(res)
    })();
    for_subject(found.unwrap_or_else(ApiError::into_response), &grant)
}
