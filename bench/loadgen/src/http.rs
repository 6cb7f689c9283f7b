//! A minimal keep-alive HTTP/1.1 client over an async-std `TcpStream`.
//!
//! It sends one request at a time on one connection and parses only what the
//! benchmark needs: the status code and a body framed by `Content-Length` (or
//! chunked encoding). A `Connection: close` answer, or any I/O error, makes
//! the next request open a fresh connection.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use async_std::io::prelude::*;
use async_std::io::BufReader;
use async_std::net::TcpStream;

/// Longest response head we accept, in bytes.
const MAX_HEAD: usize = 64 * 1024;

/// One keep-alive connection to a server.
pub struct HttpConn {
    addr: SocketAddr,
    host: String,
    conn: Option<BufReader<TcpStream>>,
    timeout: Duration,
    /// Connections opened so far (1 for a healthy keep-alive run).
    pub connects: u64,
    /// Requests sent again after a kept-alive connection turned out closed.
    pub retries: u64,
    /// Some of the current response has been read.
    response_started: bool,
}

/// Errors that mean the server had closed a kept-alive connection.
fn is_stale_conn(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// A parsed response.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

impl HttpConn {
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        HttpConn {
            addr,
            host: addr.to_string(),
            conn: None,
            timeout,
            connects: 0,
            retries: 0,
            response_started: false,
        }
    }

    /// Sends one request and reads the whole response, with a timeout over both.
    pub async fn request(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<Response> {
        let reused = self.conn.is_some();
        let res = self.attempt(method, path, content_type, body).await;
        match res {
            // A kept-alive connection the server closed while idle (Node
            // closes them after its keepAliveTimeout) fails before any byte
            // of a response: the server never took the request, so send it
            // once more on a fresh connection, as browsers do. Should the
            // server have taken it after all, the subscribers would see the
            // post twice and report a duplicate.
            Err(ref e) if reused && !self.response_started && is_stale_conn(e) => {
                self.retries += 1;
                self.attempt(method, path, content_type, body).await
            }
            other => other,
        }
    }

    async fn attempt(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<Response> {
        self.response_started = false;
        let t = self.timeout;
        let res =
            async_std::future::timeout(t, self.request_inner(method, path, content_type, body))
                .await
                .unwrap_or_else(|_| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "http request timed out",
                    ))
                });
        if res.is_err() {
            self.conn = None;
        }
        res
    }

    async fn request_inner(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: &[u8],
    ) -> io::Result<Response> {
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.connects += 1;
            self.conn = Some(BufReader::with_capacity(16 * 1024, s));
        }
        let conn = self.conn.as_mut().expect("set just above");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n",
            self.host,
            body.len()
        );
        if let Some(ct) = content_type {
            head.push_str("Content-Type: ");
            head.push_str(ct);
            head.push_str("\r\n");
        }
        let mut req = Vec::with_capacity(head.len() + 2 + body.len());
        req.extend_from_slice(head.as_bytes());
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        conn.get_mut().write_all(&req).await?;

        // Status line and headers.
        let mut head_len = 0usize;
        let mut line = String::new();
        let mut status: Option<u16> = None;
        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        loop {
            line.clear();
            let n = conn.read_line(&mut line).await?;
            if n > 0 {
                self.response_started = true;
            }
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed in response head",
                ));
            }
            head_len += n;
            if head_len > MAX_HEAD {
                return Err(bad("response head too long"));
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if status.is_none() {
                // "HTTP/1.1 201 Created"
                let mut parts = l.splitn(3, ' ');
                let ver = parts.next().unwrap_or("");
                if !ver.starts_with("HTTP/1.") {
                    return Err(bad(format!("bad status line {l:?}")));
                }
                let code = parts
                    .next()
                    .and_then(|c| c.parse().ok())
                    .ok_or_else(|| bad(format!("bad status line {l:?}")))?;
                status = Some(code);
                continue;
            }
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = Some(value.parse().map_err(|_| bad("bad content-length"))?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.to_ascii_lowercase().contains("chunked");
                } else if name.eq_ignore_ascii_case("connection") {
                    close = value.eq_ignore_ascii_case("close");
                }
            }
        }
        let status = status.expect("loop sets it before the blank line");

        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line).await?;
                let size_hex = line.trim().split(';').next().unwrap_or("");
                let size =
                    usize::from_str_radix(size_hex, 16).map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers until a blank line.
                    loop {
                        line.clear();
                        let n = conn.read_line(&mut line).await?;
                        if n == 0 || line.trim().is_empty() {
                            break;
                        }
                    }
                    break;
                }
                let start = body.len();
                body.resize(start + size, 0);
                conn.read_exact(&mut body[start..]).await?;
                let mut crlf = [0u8; 2];
                conn.read_exact(&mut crlf).await?;
            }
        } else if let Some(len) = content_length {
            body.resize(len, 0);
            conn.read_exact(&mut body).await?;
        } else if status >= 200 && status != 204 && status != 304 {
            // No framing: body runs to end of connection.
            conn.read_to_end(&mut body).await?;
            close = true;
        }
        if close {
            self.conn = None;
        }
        Ok(Response { status, body })
    }

    /// `GET path`, returning status and body.
    pub async fn get(&mut self, path: &str) -> io::Result<Response> {
        self.request("GET", path, None, b"").await
    }
}
