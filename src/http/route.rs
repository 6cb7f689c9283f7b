//! The routes' methods: recorded as each route is mounted, so that every
//! `405` carries `Allow` (RFC 9110 §15.5.6), `OPTIONS` on any route
//! answers `204` with `Allow` (and a CORS preflight answer, see
//! [`cors`](super::cors)), and an unknown path stays a `404` whatever the
//! method.
//!
//! Modules mount their routes on a [`Router`] exactly as on tide's server
//! (`router.at("/posts").get(...).post(...)`); the router passes each
//! endpoint to tide and notes its method. [`Router::finish`] adds the
//! [`Rules`] middleware, which looks a request's path up in that table with
//! the same matcher tide routes with (`route-recognizer`), so the two agree
//! on which route a path is.

use super::cors::Cors;
use super::{ErrorBodies, Server};
use crate::net::origin::Origins;
use std::collections::BTreeMap;
use tide::http::{headers, Method};
use tide::{Endpoint, Request, Response, StatusCode};

/// The methods an `Allow` lists, in the order it lists them.
const ORDER: [Method; 7] = [
    Method::Get,
    Method::Head,
    Method::Post,
    Method::Put,
    Method::Patch,
    Method::Delete,
    Method::Options,
];

/// What the table knows of one route.
#[derive(Debug, Clone, Default)]
struct Entry {
    /// The methods it has endpoints for.
    methods: Vec<Method>,
    /// Its endpoint answers every method itself, `OPTIONS` and CORS
    /// included (Engine.IO): the rules only give its 405s and `OPTIONS`
    /// answers their `Allow`.
    own: bool,
}

impl Entry {
    /// The `Allow` value: its methods, `HEAD` wherever `GET` is (tide
    /// answers `HEAD` with the `GET` endpoint, without the body), and
    /// `OPTIONS` (answered by the rules unless the route answers it).
    fn allow(&self) -> String {
        let served = |m: &Method| {
            self.methods.contains(m)
                || (!self.own && *m == Method::Options)
                || (!self.own && *m == Method::Head && self.methods.contains(&Method::Get))
        };
        ORDER
            .iter()
            .filter(|m| served(m))
            .map(|m| m.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// The application being built: tide's server, and each route's methods.
pub struct Router {
    server: Server,
    routes: BTreeMap<String, Entry>,
}

/// A route being given endpoints, as tide's `Route`.
pub struct Route<'a> {
    route: tide::Route<'a, ()>,
    entry: &'a mut Entry,
}

impl Route<'_> {
    /// Serves `method` at this route with `endpoint`.
    pub fn method(&mut self, method: Method, endpoint: impl Endpoint<()>) -> &mut Self {
        self.route.method(method, endpoint);
        if !self.entry.methods.contains(&method) {
            self.entry.methods.push(method);
        }
        self
    }

    /// `GET` (and so `HEAD`).
    pub fn get(&mut self, endpoint: impl Endpoint<()>) -> &mut Self {
        self.method(Method::Get, endpoint)
    }

    /// `POST`.
    pub fn post(&mut self, endpoint: impl Endpoint<()>) -> &mut Self {
        self.method(Method::Post, endpoint)
    }

    /// `PATCH`.
    pub fn patch(&mut self, endpoint: impl Endpoint<()>) -> &mut Self {
        self.method(Method::Patch, endpoint)
    }

    /// `DELETE`.
    pub fn delete(&mut self, endpoint: impl Endpoint<()>) -> &mut Self {
        self.method(Method::Delete, endpoint)
    }
}

impl Router {
    /// A router adding routes to `server`.
    pub fn new(server: Server) -> Self {
        Self {
            server,
            routes: BTreeMap::new(),
        }
    }

    /// The route at `path` (tide's syntax: `:name` segments).
    pub fn at(&mut self, path: &str) -> Route<'_> {
        Route {
            route: self.server.at(path),
            entry: self.routes.entry(path.to_owned()).or_default(),
        }
    }

    /// tide's server, to mount `paths` on directly: routes whose endpoint
    /// answers every method itself (`OPTIONS` and CORS included) and of
    /// which `methods` are the ones it serves.
    pub fn own(&mut self, paths: &[&str], methods: &[Method]) -> &mut Server {
        for path in paths {
            let entry = Entry {
                methods: methods.to_vec(),
                own: true,
            };
            self.routes.insert((*path).to_owned(), entry);
        }
        &mut self.server
    }

    /// The server, with the [`Rules`] over these routes and CORS for the
    /// origins `origins` allows (and, inside them, the API's error bodies
    /// for tide's own 404s and 405s).
    pub fn finish(self, origins: Origins) -> Server {
        let Self { mut server, routes } = self;
        let mut recognizer = route_recognizer::Router::new();
        let mut entries = Vec::with_capacity(routes.len());
        for (path, entry) in routes {
            recognizer.add(&path, entries.len());
            let allow = entry.allow();
            entries.push(Known {
                allow,
                own: entry.own,
            });
        }
        server.with(Rules {
            recognizer,
            entries,
            cors: Cors::new(origins),
        });
        server.with(ErrorBodies);
        server
    }
}

/// A route as the rules see it.
#[derive(Debug)]
struct Known {
    /// Its `Allow` value.
    allow: String,
    /// Whether its endpoint answers `OPTIONS` and CORS itself.
    own: bool,
}

/// The middleware: `Allow` on 405s, the `OPTIONS` answer, CORS.
pub struct Rules {
    recognizer: route_recognizer::Router<usize>,
    entries: Vec<Known>,
    cors: Cors,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules")
            .field("entries", &self.entries)
            .finish_non_exhaustive()
    }
}

impl Rules {
    /// The route `path` is, if any.
    fn find(&self, path: &str) -> Option<&Known> {
        let found = self.recognizer.recognize(path).ok()?;
        self.entries.get(*found.handler)
    }
}

#[tide::utils::async_trait]
impl tide::Middleware<()> for Rules {
    async fn handle(&self, req: Request<()>, next: tide::Next<'_, ()>) -> tide::Result {
        // An unknown path: tide's 404, whatever the method.
        let Some(route) = self.find(req.url().path()) else {
            return Ok(next.run(req).await);
        };
        let method = req.method();
        if route.own {
            let mut res = next.run(req).await;
            let answered_options = method == Method::Options && res.status().is_success();
            if res.status() == StatusCode::MethodNotAllowed || answered_options {
                res.insert_header(headers::ALLOW, route.allow.as_str());
            }
            return Ok(res);
        }
        let origin = self.cors.allowed_origin(&req);
        let mut res = if method == Method::Options {
            let mut res = Response::new(StatusCode::NoContent);
            if origin.is_some() && Cors::is_preflight(&req) {
                Cors::preflight(&mut res, &route.allow);
            }
            res
        } else {
            next.run(req).await
        };
        if method == Method::Options || res.status() == StatusCode::MethodNotAllowed {
            res.insert_header(headers::ALLOW, route.allow.as_str());
        }
        self.cors.respond(&mut res, origin.as_deref());
        Ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_head_with_get_and_options_unless_the_route_answers_it() {
        let entry = |methods: &[Method], own| Entry {
            methods: methods.to_vec(),
            own,
        };
        let posts = entry(&[Method::Post, Method::Get], false);
        assert_eq!(posts.allow(), "GET, HEAD, POST, OPTIONS");
        let post = entry(&[Method::Delete, Method::Patch, Method::Get], false);
        assert_eq!(post.allow(), "GET, HEAD, PATCH, DELETE, OPTIONS");
        let engine = entry(&[Method::Get, Method::Post, Method::Options], true);
        assert_eq!(engine.allow(), "GET, POST, OPTIONS");
    }
}
