//! The browser demo, embedded in the binary so it runs from any directory.

use crate::error::ApiError;
use crate::http::State;
use rust_embed::RustEmbed;
use tide::http::{headers, Mime};
use tide::{Request, Response, StatusCode};

#[derive(RustEmbed)]
#[folder = "public/"]
struct Public;

/// The demo's content security policy: scripts, styles and connections
/// from this origin only, so injected markup could not run anything.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; \
                   base-uri 'none'; form-action 'self'";

/// Serves `/` and the files of `public/`.
pub async fn serve(req: Request<State>) -> tide::Result {
    let path = match req.url().path().trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let Some(file) = Public::get(path) else {
        return Ok(ApiError::not_found(format!("no file at /{path}")).into_response());
    };
    let mime = path
        .rsplit_once('.')
        .and_then(|(_, ext)| Mime::from_extension(ext))
        .unwrap_or(tide::http::mime::BYTE_STREAM);
    Ok(Response::builder(StatusCode::Ok)
        .content_type(mime)
        .header(headers::CACHE_CONTROL, "no-cache")
        .header("X-Content-Type-Options", "nosniff")
        .header("Content-Security-Policy", CSP)
        .header("Referrer-Policy", "no-referrer")
        .body(file.data.into_owned())
        .build())
}
