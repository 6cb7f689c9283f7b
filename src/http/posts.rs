//! The posts routes: `POST /posts`, `GET /posts`, `GET /posts/{id}`.

use super::{handler, json_response, read_body, require_json, ApiError, Server};
use crate::feed::access::bearer;
use crate::feed::Feed;
use std::sync::Arc;
use tide::http::headers;
use tide::{Request, Response, StatusCode};

/// Posts per page when `limit` is not given.
pub const DEFAULT_PAGE: usize = 20;
/// Largest `limit`.
pub const MAX_PAGE: usize = 100;

/// Adds the posts routes to `app`.
pub fn mount(app: &mut Server, feed: Arc<Feed>) {
    app.at("/posts")
        .post(handler(feed.clone(), create))
        .get(handler(feed.clone(), list));
    app.at("/posts/:id").get(handler(feed, get));
}

async fn create(feed: Arc<Feed>, mut req: Request<()>) -> Response {
    let checked = async {
        require_json(&req)?;
        read_body(&mut req).await
    }
    .await;
    let body = match checked {
        Ok(body) => body,
        Err(e) => {
            feed.reject();
            return e.into_response();
        }
    };
    let credential = bearer(req.header(headers::AUTHORIZATION).map(|h| h.as_str()));
    match feed.create(credential, &body).await {
        Ok(stored) => Response::builder(StatusCode::Created)
            .content_type(tide::http::mime::JSON)
            .header(headers::LOCATION, format!("/posts/{}", stored.post.id))
            .body(&*stored.json)
            .build(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn list(feed: Arc<Feed>, req: Request<()>) -> Response {
    page(&feed, &req).unwrap_or_else(ApiError::into_response)
}

fn page(feed: &Feed, req: &Request<()>) -> Result<Response, ApiError> {
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
    let page = feed.page(before, limit)?;
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
    let found = (|| {
        let raw = req.param("id").unwrap_or("");
        let id: u64 = raw.parse().map_err(|_| {
            ApiError::bad_request("invalid_id", format!("`{raw}` is not a post id"))
        })?;
        let post = feed
            .get(id)?
            .ok_or_else(|| ApiError::not_found(format!("no post with id {id}")))?;
        Ok(json_response(StatusCode::Ok, post))
    })();
    found.unwrap_or_else(ApiError::into_response)
}
