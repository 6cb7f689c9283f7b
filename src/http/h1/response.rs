//! Writing a response: its head, with the framing and `Connection` header
//! its request's version calls for, then its body.
//!
//! - A body of known length gets `Content-Length`; a streamed one (such as
//!   `/events`) is chunked to HTTP/1.1 clients and, since HTTP/1.0 has no
//!   chunked coding, sent raw to HTTP/1.0 clients and ended by closing the
//!   connection.
//! - Whenever the connection is closed after the response (the client
//!   asked, the server decided, or the version requires it), the response
//!   says `Connection: close` (RFC 9112 §9.6), so a client's keep-alive
//!   pool never reuses a connection the server is closing. An HTTP/1.0
//!   client that asked for keep-alive and gets it sees `Connection:
//!   keep-alive` echoed.

use super::request::Exchange;
use async_std::net::TcpStream;
use futures::io::{AsyncReadExt, AsyncWriteExt};
use std::io;
use std::time::{SystemTime, UNIX_EPOCH};
use tide::http::headers::{CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use tide::http::{upgrade, Method, Response, StatusCode, Version};

/// Bodies up to this size leave in the same write as the head.
const INLINE_BODY: usize = 16 * 1024;
/// Most bytes one read of a streamed body takes (one chunk at most).
const CHUNK: usize = 16 * 1024;

/// What becomes of the connection after a response.
pub(super) enum After {
    /// It may carry another request.
    KeepAlive,
    /// It closes.
    Close,
    /// It switched protocols: hand it over through this sender.
    Upgrade(upgrade::Sender),
}

/// How a response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body at all (`HEAD`, 1xx, 204, 304).
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked` (HTTP/1.1 only).
    Chunked,
    /// The body runs until the connection closes (HTTP/1.0 streams).
    UntilClose,
}

/// Writes `res` to its request `exchange`; `may_keep` is false when the
/// server closes the connection anyway (an unread request body, shutdown).
pub(super) async fn write(
    stream: &mut TcpStream,
    mut res: Response,
    exchange: &Exchange,
    may_keep: bool,
) -> io::Result<After> {
    let status = res.status();
    let upgrading = status == StatusCode::SwitchingProtocols
        && res.has_upgrade()
        && exchange.upgrade
        && exchange.version == Version::Http1_1;
    if status == StatusCode::SwitchingProtocols && !upgrading {
        // The upgrade checks refuse such requests before this point; a
        // 101 without a protocol to switch to would leave the client stuck.
        log::error!("a 101 answer to a request that cannot upgrade; sending 500");
        res = Response::new(StatusCode::InternalServerError);
    }
    let status = res.status();
    let bodiless = exchange.method == Method::Head
        || status.is_informational()
        || matches!(status, StatusCode::NoContent | StatusCode::NotModified);
    let framing = match res.len() {
        _ if bodiless => Framing::None,
        Some(len) => Framing::Length(len as u64),
        None if exchange.version == Version::Http1_1 => Framing::Chunked,
        None => Framing::UntilClose,
    };
    let keep = may_keep
        && !upgrading
        && !exchange.close
        && (exchange.version == Version::Http1_1 || exchange.keep_alive)
        && !lists_close(&res)
        && framing != Framing::UntilClose;

    res.remove_header(CONTENT_LENGTH);
    res.remove_header(TRANSFER_ENCODING);
    if !upgrading {
        res.remove_header(CONNECTION);
        if !keep {
            res.insert_header(CONNECTION, "close");
        } else if exchange.version == Version::Http1_0 {
            res.insert_header(CONNECTION, "keep-alive");
        }
    }
    match framing {
        Framing::Length(len) => {
            res.insert_header(CONTENT_LENGTH, len.to_string());
        }
        Framing::Chunked => {
            res.insert_header(TRANSFER_ENCODING, "chunked");
        }
        // A HEAD answer says how long the GET's body would be.
        Framing::None if exchange.method == Method::Head => {
            if let Some(len) = res.len().filter(|_| !status.is_informational()) {
                res.insert_header(CONTENT_LENGTH, len.to_string());
            }
        }
        Framing::None | Framing::UntilClose => {}
    }
    if res.header(DATE).is_none() {
        res.insert_header(DATE, http_date(SystemTime::now()));
    }
    let upgrade = upgrading.then(|| res.send_upgrade());

    let mut out = head(&res);
    let mut body = res.take_body();
    match framing {
        Framing::None => stream.write_all(&out).await?,
        Framing::Length(len) if len as usize <= INLINE_BODY => {
            let start = out.len();
            (&mut body).take(len).read_to_end(&mut out).await?;
            if (out.len() - start) as u64 != len {
                return Err(short_body());
            }
            stream.write_all(&out).await?;
        }
        Framing::Length(len) => {
            stream.write_all(&out).await?;
            let copied = futures::io::copy((&mut body).take(len), stream).await?;
            if copied != len {
                return Err(short_body());
            }
        }
        Framing::Chunked | Framing::UntilClose => {
            // The head goes out at once: a stream's first bytes may be a
            // while coming.
            stream.write_all(&out).await?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = body.read(&mut buf).await?;
                if framing == Framing::UntilClose {
                    if n == 0 {
                        break;
                    }
                    stream.write_all(&buf[..n]).await?;
                    continue;
                }
                out.clear();
                if n == 0 {
                    out.extend_from_slice(b"0\r\n\r\n");
                } else {
                    out.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                    out.extend_from_slice(&buf[..n]);
                    out.extend_from_slice(b"\r\n");
                }
                stream.write_all(&out).await?;
                if n == 0 {
                    break;
                }
            }
        }
    }
    stream.flush().await?;
    Ok(match upgrade {
        Some(sender) => After::Upgrade(sender),
        None if keep => After::KeepAlive,
        None => After::Close,
    })
}

fn short_body() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "a response body shorter than its length",
    )
}

/// Whether the app's own `Connection` header says `close`.
fn lists_close(res: &Response) -> bool {
    res.header(CONNECTION).is_some_and(|values| {
        values
            .iter()
            .flat_map(|v| v.as_str().split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("close"))
    })
}

/// The status line and header fields, in a stable (sorted) order. A value
/// that would break the head (a line break in it) is left out.
fn head(res: &Response) -> Vec<u8> {
    let status = res.status();
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\n",
            status as u16,
            status.canonical_reason()
        )
        .as_bytes(),
    );
    let mut fields: Vec<_> = res.iter().collect();
    fields.sort_unstable_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    for (name, values) in fields {
        for value in values.iter() {
            if value.as_str().contains(['\r', '\n']) {
                log::error!("header {name} has a line break in its value; left out");
                continue;
            }
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `t` as an HTTP date (IMF-fixdate, RFC 9110 §5.6.7), such as
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(t: SystemTime) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{}, {day:02} {} {year} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        MONTHS[(month - 1) as usize],
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn http_dates_are_imf_fixdates() {
        let at = |secs| http_date(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }
}
