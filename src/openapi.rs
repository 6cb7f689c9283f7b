//! `GET /openapi.json`: the API's OpenAPI 3.1 description.
//!
//! The document is one hand-kept file, `src/openapi.json`, embedded in the
//! binary. It cannot drift from the code unnoticed: `tests/openapi.rs`
//! validates real responses of a running server against its schemas and
//! checks that every route the app registers is described, and the fuzz run
//! (`tests/fuzz/run.sh`) holds every operation to it.

use crate::http::State;
use tide::{Request, Response, StatusCode};

/// The document, as served.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// Serves [`DOCUMENT`].
pub async fn serve(_req: Request<State>) -> tide::Result {
    Ok(Response::builder(StatusCode::Ok)
        .content_type(tide::http::mime::JSON)
        .body(DOCUMENT)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("valid JSON");
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        assert!(doc["paths"].as_object().unwrap().contains_key("/events"));
    }
}
