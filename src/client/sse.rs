//! Reading Server-Sent Events: a line-by-line parser with no I/O of its
//! own, so the terminal client (blocking) and the tests (async) read
//! `GET /events` with the same rules.

/// One item of an event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A comment line (`: ping`), without the colon and leading space.
    Comment(String),
    /// A block of fields ended by a blank line. A block with `id` but no
    /// `data` dispatches no event in a browser but still moves its
    /// Last-Event-ID.
    Event(SseEvent),
}

/// The fields of one block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`, if the block had one.
    pub id: Option<String>,
    /// `event:`, if the block had one.
    pub event: Option<String>,
    /// `data:` lines joined with `\n`, if the block had any.
    pub data: Option<String>,
    /// `retry:` in milliseconds, if the block had a valid one.
    pub retry: Option<u64>,
}

/// Turns lines (without their line breaks) into items.
#[derive(Debug, Default)]
pub struct Parser {
    event: SseEvent,
    fields: bool,
}

impl Parser {
    /// Takes the next line; answers an item when the line completes one.
    /// A comment inside a block is skipped.
    pub fn line(&mut self, line: &str) -> Option<SseItem> {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if !self.fields {
                return None;
            }
            self.fields = false;
            return Some(SseItem::Event(std::mem::take(&mut self.event)));
        }
        if let Some(comment) = line.strip_prefix(':') {
            if self.fields {
                return None;
            }
            let comment = comment.strip_prefix(' ').unwrap_or(comment);
            return Some(SseItem::Comment(comment.to_owned()));
        }
        let (name, value) = match line.split_once(':') {
            Some((name, value)) => (name, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        self.fields = true;
        let event = &mut self.event;
        match name {
            "id" => event.id = Some(value.to_owned()),
            "event" => event.event = Some(value.to_owned()),
            "data" => match &mut event.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => event.data = Some(value.to_owned()),
            },
            "retry" => event.retry = value.parse().ok(),
            _ => {}
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Vec<SseItem> {
        let mut parser = Parser::default();
        text.split('\n').filter_map(|l| parser.line(l)).collect()
    }

    #[test]
    fn blocks_comments_and_multi_line_data() {
        let got = items("retry: 3000\r\nid: 4\n\n: ping\n\nid: 5\nevent: newPost\ndata: a\n: inside\ndata: b\n\n");
        assert_eq!(
            got,
            vec![
                SseItem::Event(SseEvent {
                    id: Some("4".into()),
                    retry: Some(3000),
                    ..SseEvent::default()
                }),
                SseItem::Comment("ping".into()),
                SseItem::Event(SseEvent {
                    id: Some("5".into()),
                    event: Some("newPost".into()),
                    data: Some("a\nb".into()),
                    retry: None,
                }),
            ]
        );
    }
}
