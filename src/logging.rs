//! Log output: femme's ndjson for machines, one readable line for people.
//!
//! femme picks its format from the build profile (ndjson in release builds,
//! its pretty printer in debug builds). livefeed lets the operator choose:
//! `json` hands the logger to femme, `pretty` uses the short line format
//! below, and `auto` picks pretty when standard error is a terminal.

use crate::config::LogFormat;
use log::{kv, LevelFilter, Log, Metadata, Record};
use std::io::{IsTerminal, Write};
use std::time::SystemTime;

/// Installs the process logger. Call once. Answers whether log lines go to
/// standard error (pretty) rather than standard output (ndjson).
pub fn init(format: LogFormat, level: LevelFilter) -> bool {
    let pretty = match format {
        LogFormat::Pretty => true,
        LogFormat::Json => false,
        LogFormat::Auto => std::io::stderr().is_terminal(),
    };
    if pretty {
        if log::set_boxed_logger(Box::new(Pretty)).is_ok() {
            log::set_max_level(level);
        }
    } else {
        femme::with_level(level);
    }
    pretty
}

/// `2026-11-25T21:40:00.123Z INFO  livefeed::http GET /posts 200 81us k=v`
struct Pretty;

impl Log for Pretty {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
            && (metadata.target().starts_with("livefeed") || metadata.level() <= log::Level::Warn)
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let now = humantime::format_rfc3339_millis(SystemTime::now());
        let mut line = format!(
            "{now} {:<5} {}: {}",
            record.level(),
            record.target(),
            record.args()
        );
        let mut fields = Fields(&mut line);
        // Visiting key-values of a record cannot fail with this visitor.
        let _ = record.key_values().visit(&mut fields);
        line.push('\n');
        // A closed stderr is not worth crashing over.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

struct Fields<'a>(&'a mut String);

impl<'kvs> kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(&mut self, key: kv::Key<'kvs>, value: kv::Value<'kvs>) -> Result<(), kv::Error> {
        // The request line already carries method, path, status and time;
        // an empty field (no `sub`) says nothing.
        let empty = value.to_borrowed_str() == Some("");
        if !empty && !matches!(key.as_str(), "method" | "path" | "status" | "micros") {
            self.0.push_str(&format!(" {key}={value}"));
        }
        Ok(())
    }
}
