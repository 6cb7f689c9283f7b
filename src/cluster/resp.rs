//! A minimal Redis client: RESP2 over an async-std TCP stream.
//!
//! livefeed needs a handful of commands (`EVALSHA`/`EVAL`, `XREAD BLOCK`,
//! `XRANGE`, `XREVRANGE`, `PING`, `AUTH`, `SELECT`), one at a time per
//! connection, each with a deadline. That is a small amount of protocol,
//! and owning it keeps tokio out of the server entirely and makes every
//! timeout and reconnect explicit; `docs/cluster.md` has the comparison
//! with the `redis` crate.
//!
//! A connection whose command failed on I/O, timed out or read a reply it
//! could not parse is *broken*: its next reply could belong to the failed
//! command, so the caller drops it and connects again. An error *reply*
//! (`-ERR ...`) leaves the connection usable.

use async_std::io::{BufReader, ReadExt, WriteExt};
use async_std::net::TcpStream;
use futures::future::BoxFuture;
use futures::{AsyncBufRead, AsyncBufReadExt, AsyncRead, FutureExt};
use std::fmt;
use std::io;
use std::time::Duration;

/// Largest bulk string accepted from the server. Posts are at most 64 KiB;
/// anything near this is a protocol error, not data.
const MAX_BULK: usize = 64 << 20;
/// Largest array accepted from the server (an `XREAD` batch is far below).
const MAX_ARRAY: usize = 1 << 20;
/// Longest status, error or length line.
const MAX_LINE: usize = 64 * 1024;

/// Why a Redis command failed.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    /// The URL is not `redis://[[user]:password@]host[:port][/db]`.
    #[error("invalid Redis URL: {0}")]
    Url(String),
    /// The TCP connection could not be made.
    #[error("cannot connect to Redis at {addr}: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// Reading or writing the connection failed.
    #[error("Redis connection failed: {0}")]
    Io(#[from] io::Error),
    /// No answer in time.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// The server sent something that is not RESP2.
    #[error("Redis protocol error: {0}")]
    Protocol(String),
    /// The server answered with an error reply.
    #[error("Redis error: {0}")]
    Reply(String),
}

impl RedisError {
    /// Whether the server answered (with an error): the command was
    /// refused, the connection is still in step.
    pub fn is_reply(&self) -> bool {
        matches!(self, RedisError::Reply(_))
    }
}

/// A parsed `redis://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl {
    /// Host name or address.
    pub host: String,
    /// TCP port (default 6379).
    pub port: u16,
    /// ACL user name, if any.
    pub username: Option<String>,
    /// Password, if any.
    pub password: Option<String>,
    /// Database number (default 0).
    pub db: u32,
}

impl RedisUrl {
    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    pub fn parse(text: &str) -> Result<Self, RedisError> {
        let url = url::Url::parse(text).map_err(|e| RedisError::Url(format!("{text:?}: {e}")))?;
        if url.scheme() != "redis" {
            return Err(RedisError::Url(format!(
                "scheme must be redis:// (TLS and unix sockets are not supported), not {}://",
                url.scheme()
            )));
        }
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| RedisError::Url(format!("{text:?} has no host")))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode =
            |s: &str| percent_decode(s).map_err(|_| RedisError::Url("bad percent-encoding".into()));
        let username = Some(url.username())
            .filter(|u| !u.is_empty())
            .map(decode)
            .transpose()?;
        let password = url.password().map(decode).transpose()?;
        let db = match url.path().trim_start_matches('/') {
            "" => 0,
            db => db
                .parse()
                .map_err(|_| RedisError::Url(format!("database must be a number, not {db:?}")))?,
        };
        Ok(Self {
            host,
            port: url.port().unwrap_or(6379),
            username,
            password,
            db,
        })
    }

    fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// For clap: `--redis-url` is checked when the flags are parsed.
impl std::str::FromStr for RedisUrl {
    type Err = RedisError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Shown in logs and `--help`: never the password.
impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "redis://")?;
        if self.username.is_some() || self.password.is_some() {
            write!(f, "{}:***@", self.username.as_deref().unwrap_or(""))?;
        }
        write!(f, "{}/{}", self.addr(), self.db)
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(())?;
            let hex = std::str::from_utf8(hex).map_err(drop)?;
            out.push(u8::from_str_radix(hex, 16).map_err(drop)?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(drop)
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A null bulk string or null array.
    Nil,
    /// `:n`.
    Int(i64),
    /// `+text`.
    Status(String),
    /// `$n` bytes.
    Bulk(Vec<u8>),
    /// `*n` values.
    Array(Vec<Value>),
    /// An error reply nested in an array (a top-level one is
    /// [`RedisError::Reply`]).
    Error(String),
}

impl Value {
    /// The bytes of a bulk or status reply.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bulk(b) => Some(b),
            Value::Status(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// The elements of an array reply (none for nil).
    pub fn into_array(self) -> Result<Vec<Value>, RedisError> {
        match self {
            Value::Array(items) => Ok(items),
            Value::Nil => Ok(Vec::new()),
            other => Err(RedisError::Protocol(format!(
                "expected an array, got {other:?}"
            ))),
        }
    }
}

/// A command and its arguments, each sent as a bulk string.
#[derive(Debug, Clone)]
pub struct Cmd(Vec<Vec<u8>>);

impl Cmd {
    /// A command named `name`.
    pub fn new(name: &str) -> Self {
        Self(vec![name.as_bytes().to_vec()])
    }

    /// Appends an argument.
    pub fn arg(mut self, arg: impl AsRef<[u8]>) -> Self {
        self.0.push(arg.as_ref().to_vec());
        self
    }

    fn encode(&self) -> Vec<u8> {
        let size = self.0.iter().map(|a| a.len() + 16).sum::<usize>() + 16;
        let mut out = Vec::with_capacity(size);
        out.extend_from_slice(format!("*{}\r\n", self.0.len()).as_bytes());
        for arg in &self.0 {
            out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
            out.extend_from_slice(arg);
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

/// One connection to Redis.
pub struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    broken: bool,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Conn")
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl Conn {
    /// Connects, authenticates and selects the URL's database, all within
    /// `timeout`.
    pub async fn connect(url: &RedisUrl, timeout: Duration) -> Result<Self, RedisError> {
        let addr = url.addr();
        let stream = async_std::future::timeout(timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| RedisError::Timeout(timeout))?
            .map_err(|source| RedisError::Connect {
                addr: addr.clone(),
                source,
            })?;
        stream.set_nodelay(true).ok();
        let mut conn = Self {
            reader: BufReader::new(stream.clone()),
            writer: stream,
            broken: false,
        };
        if let Some(password) = &url.password {
            let mut auth = Cmd::new("AUTH");
            if let Some(user) = &url.username {
                auth = auth.arg(user);
            }
            conn.call(&auth.arg(password), timeout).await?;
        }
        if url.db != 0 {
            conn.call(&Cmd::new("SELECT").arg(url.db.to_string()), timeout)
                .await?;
        }
        Ok(conn)
    }

    /// Whether an earlier command left the connection out of step; a
    /// broken connection must be dropped.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Sends `cmd` and reads its reply within `timeout`.
    pub async fn call(&mut self, cmd: &Cmd, timeout: Duration) -> Result<Value, RedisError> {
        if self.broken {
            return Err(RedisError::Protocol(
                "connection broken by an earlier error".into(),
            ));
        }
        let request = cmd.encode();
        let exchange = async {
            self.writer.write_all(&request).await?;
            read_value(&mut self.reader).await
        };
        let result = match async_std::future::timeout(timeout, exchange).await {
            Ok(result) => result,
            Err(_) => Err(RedisError::Timeout(timeout)),
        };
        match result {
            Ok(Value::Error(message)) => Err(RedisError::Reply(message)),
            Ok(value) => Ok(value),
            Err(e) => {
                self.broken = true;
                Err(e)
            }
        }
    }
}

async fn read_line<R: AsyncBufRead + Unpin>(reader: &mut R) -> Result<String, RedisError> {
    let mut line = Vec::new();
    let n = (&mut *reader)
        .take(MAX_LINE as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if n == 0 {
        return Err(RedisError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    if !line.ends_with(b"\r\n") {
        return Err(RedisError::Protocol("unterminated line".into()));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|_| RedisError::Protocol("line is not UTF-8".into()))
}

fn length(text: &str, max: usize) -> Result<Option<usize>, RedisError> {
    let n: i64 = text
        .parse()
        .map_err(|_| RedisError::Protocol(format!("bad length {text:?}")))?;
    match n {
        -1 => Ok(None),
        n if n >= 0 && (n as u64) <= max as u64 => Ok(Some(n as usize)),
        n => Err(RedisError::Protocol(format!("length {n} out of range"))),
    }
}

/// Reads one reply; error replies come back as [`Value::Error`].
pub fn read_value<R>(reader: &mut R) -> BoxFuture<'_, Result<Value, RedisError>>
where
    R: AsyncBufRead + AsyncRead + Unpin + Send,
{
    async move {
        let line = read_line(reader).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        match kind {
            "+" => Ok(Value::Status(rest.to_owned())),
            "-" => Ok(Value::Error(rest.to_owned())),
            ":" => rest
                .parse()
                .map(Value::Int)
                .map_err(|_| RedisError::Protocol(format!("bad integer {rest:?}"))),
            "$" => match length(rest, MAX_BULK)? {
                None => Ok(Value::Nil),
                Some(n) => {
                    let mut data = vec![0; n + 2];
                    reader.read_exact(&mut data).await?;
                    if !data.ends_with(b"\r\n") {
                        return Err(RedisError::Protocol("unterminated bulk string".into()));
                    }
                    data.truncate(n);
                    Ok(Value::Bulk(data))
                }
            },
            "*" => match length(rest, MAX_ARRAY)? {
                None => Ok(Value::Nil),
                Some(n) => {
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        items.push(read_value(reader).await?);
                    }
                    Ok(Value::Array(items))
                }
            },
            _ => Err(RedisError::Protocol(format!("unknown reply type {line:?}"))),
        }
    }
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Value, RedisError> {
        let mut reader = futures::io::Cursor::new(bytes.to_vec());
        read_value(&mut reader).await
    }

    #[async_std::test]
    async fn parses_every_reply_kind() {
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Value::Status("OK".into()));
        assert_eq!(parse(b":42\r\n").await.unwrap(), Value::Int(42));
        assert_eq!(parse(b"$-1\r\n").await.unwrap(), Value::Nil);
        assert_eq!(parse(b"*-1\r\n").await.unwrap(), Value::Nil);
        assert_eq!(
            parse(b"$5\r\na\r\nbc\r\n").await.unwrap(),
            Value::Bulk(b"a\r\nbc".to_vec())
        );
        assert_eq!(
            parse(b"-NOSCRIPT No matching script\r\n").await.unwrap(),
            Value::Error("NOSCRIPT No matching script".into())
        );
        assert_eq!(
            parse(b"*2\r\n*1\r\n$1\r\nx\r\n:7\r\n").await.unwrap(),
            Value::Array(vec![
                Value::Array(vec![Value::Bulk(b"x".to_vec())]),
                Value::Int(7)
            ])
        );
    }

    #[async_std::test]
    async fn rejects_broken_input() {
        assert!(matches!(parse(b"$3\r\nab").await, Err(RedisError::Io(_))));
        assert!(matches!(
            parse(b"?what\r\n").await,
            Err(RedisError::Protocol(_))
        ));
        assert!(matches!(
            parse(b"$99999999999\r\n").await,
            Err(RedisError::Protocol(_))
        ));
        assert!(matches!(parse(b"").await, Err(RedisError::Io(_))));
    }

    #[test]
    fn encodes_commands_as_bulk_arrays() {
        let cmd = Cmd::new("GET").arg("k").arg(b"\r\n".as_slice());
        assert_eq!(
            cmd.encode(),
            b"*3\r\n$3\r\nGET\r\n$1\r\nk\r\n$2\r\n\r\n\r\n"
        );
    }

    #[test]
    fn parses_urls_and_hides_passwords() {
        let url = RedisUrl::parse("redis://127.0.0.1:7000/2").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.db),
            ("127.0.0.1", 7000, 2)
        );
        assert_eq!(url.password, None);
        let url = RedisUrl::parse("redis://app:s%40cret@cache").unwrap();
        assert_eq!((url.port, url.db), (6379, 0));
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!(url.to_string(), "redis://app:***@cache:6379/0");
        let url = RedisUrl::parse("redis://:pw@[::1]:6380").unwrap();
        assert_eq!(url.to_string(), "redis://:***@[::1]:6380/0");
        assert!(RedisUrl::parse("rediss://host").is_err());
        assert!(RedisUrl::parse("redis://host/x").is_err());
        assert!(RedisUrl::parse("not a url").is_err());
    }
}
