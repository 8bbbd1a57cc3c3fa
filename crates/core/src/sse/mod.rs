//! Server-Sent Events: the `text/event-stream` parser of the WHATWG HTML standard (section
//! 9.2.6) and an [`EventStream`] that connects with the client, reconnects after the server's
//! `retry` delay and resumes with `Last-Event-ID`.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::{BodyReader, Client, ClientRequest};
use crate::error::{Error, Result};

/// What an [`EventStream`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SseItem {
    /// A connection was (re)established.
    Open,
    /// One event.
    Event {
        /// The event type (`message` when the stream gave none).
        event: String,
        /// The data lines joined with `\n`.
        data: String,
        /// The last event ID in force.
        id: String,
    },
    /// The connection was lost; a reconnection follows after `retry`.
    Reconnecting {
        /// Why it was lost.
        reason: String,
    },
}

/// Default largest line, and largest event (its type and data together), of a stream.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 4 << 20;

/// A streaming `text/event-stream` parser. It holds at most `max` bytes of an unfinished line
/// and of an unfinished event: past either, [`Parser::push`] fails, before copying the excess.
#[derive(Debug)]
pub struct Parser {
    max: usize,
    too_large: bool,
    partial: Vec<u8>,
    started: bool,
    last_cr: bool,
    event: String,
    data: String,
    has_data: bool,
    /// The last event ID buffer: set by `id:` fields, committed when an event is dispatched.
    id_buffer: String,
    last_id: String,
    /// The reconnection time set by a `retry` field, if any.
    pub retry: Option<u64>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::with_limit("", DEFAULT_MAX_EVENT_SIZE)
    }
}

impl Parser {
    /// A parser whose last event ID starts at `last_id` (kept across reconnections).
    pub fn new(last_id: &str) -> Parser {
        Parser::with_limit(last_id, DEFAULT_MAX_EVENT_SIZE)
    }

    /// [`Parser::new`] with `max` bytes per line and per event.
    pub fn with_limit(last_id: &str, max: usize) -> Parser {
        Parser {
            max,
            too_large: false,
            partial: Vec::new(),
            started: false,
            last_cr: false,
            event: String::new(),
            data: String::new(),
            has_data: false,
            id_buffer: last_id.to_string(),
            last_id: last_id.to_string(),
            retry: None,
        }
    }

    fn add_partial(&mut self, piece: &[u8]) -> Result<()> {
        if self.partial.len() + piece.len() > self.max {
            self.too_large = true;
            return Err(Error::EventTooLarge { limit: self.max });
        }
        self.partial.extend_from_slice(piece);
        Ok(())
    }

    /// The last event ID: the one in force when the last event was dispatched (an `id:` of an
    /// event not yet ended by a blank line does not count, as WHATWG says).
    pub fn last_id(&self) -> &str {
        &self.last_id
    }

    /// Feeds bytes; returns the events they complete, or fails once a line or an event passes
    /// the limit (the parser stays failed).
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<SseItem>> {
        let mut out = Vec::new();
        self.push_into(bytes, &mut out)?;
        Ok(out)
    }

    /// [`Parser::push`] into `out`, which keeps the events completed before a failure.
    pub fn push_into(&mut self, bytes: &[u8], out: &mut Vec<SseItem>) -> Result<()> {
        if self.too_large {
            return Err(Error::EventTooLarge { limit: self.max });
        }
        let mut start = 0;
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if self.last_cr && b == b'\n' && i == start {
                // The LF of a CRLF split across chunks.
                self.last_cr = false;
                i += 1;
                start = i;
                continue;
            }
            self.last_cr = false;
            if b == b'\n' || b == b'\r' {
                self.add_partial(&bytes[start..i])?;
                let line = std::mem::take(&mut self.partial);
                self.line(&line, out);
                if self.too_large {
                    return Err(Error::EventTooLarge { limit: self.max });
                }
                if b == b'\r' {
                    if bytes.get(i + 1) == Some(&b'\n') {
                        i += 1;
                    } else if i + 1 == bytes.len() {
                        self.last_cr = true;
                    }
                }
                i += 1;
                start = i;
            } else {
                i += 1;
            }
        }
        self.add_partial(&bytes[start..])
    }

    fn line(&mut self, raw: &[u8], out: &mut Vec<SseItem>) {
        let mut raw = raw;
        if !self.started {
            self.started = true;
            raw = raw.strip_prefix("\u{feff}".as_bytes()).unwrap_or(raw);
        }
        let line = String::from_utf8_lossy(raw);
        if line.is_empty() {
            self.last_id.clone_from(&self.id_buffer);
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                if data.ends_with('\n') {
                    data.pop();
                }
                let event = std::mem::take(&mut self.event);
                out.push(SseItem::Event {
                    event: if event.is_empty() {
                        "message".into()
                    } else {
                        event
                    },
                    data,
                    id: self.last_id.clone(),
                });
            }
            self.event.clear();
            self.data.clear();
            self.has_data = false;
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.find(':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(' ').unwrap_or(v))
            }
            None => (&line[..], ""),
        };
        match field {
            "event" => {
                if self.data.len() + value.len() > self.max {
                    self.too_large = true;
                    return;
                }
                self.event = value.to_string();
            }
            "data" => {
                if self.data.len() + self.event.len() + value.len() + 1 > self.max {
                    self.too_large = true;
                    return;
                }
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id_buffer = value.to_string(),
            "retry" if !value.is_empty() && value.bytes().all(|c| c.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
    }
}

/// Options of [`EventStream::new`].
#[derive(Debug, Clone)]
pub struct EventStreamOptions {
    /// Extra request headers.
    pub headers: Vec<(String, String)>,
    /// Reconnection delay until the server sets one with `retry:`. Default 3 s.
    pub retry: Duration,
    /// Most reconnections in a row without receiving an event; `None`: unlimited.
    pub max_reconnects: Option<u32>,
    /// `Last-Event-ID` of the first connection.
    pub last_event_id: String,
    /// Largest line and largest event; past it the stream fails with `ERR_SSE_EVENT_TOO_LARGE`
    /// and does not reconnect. Default [`DEFAULT_MAX_EVENT_SIZE`].
    pub max_event_size: usize,
}

impl Default for EventStreamOptions {
    fn default() -> Self {
        EventStreamOptions {
            headers: Vec::new(),
            retry: Duration::from_secs(3),
            max_reconnects: None,
            last_event_id: String::new(),
            max_event_size: DEFAULT_MAX_EVENT_SIZE,
        }
    }
}

/// A Server-Sent Events connection that reconnects by itself.
pub struct EventStream {
    client: Client,
    url: String,
    opts: EventStreamOptions,
    parser: Parser,
    reader: Option<BodyReader>,
    retry: Duration,
    wait: bool,
    failures: u32,
    closed: bool,
    /// A failure found after some events of the same chunk: reported after them.
    failure: Option<Error>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

fn reconnectable(e: &Error) -> bool {
    matches!(
        e,
        Error::ConnectionRefused(_)
            | Error::ConnectionReset(_)
            | Error::Timeout(_)
            | Error::Dns(_)
            | Error::Io(_)
    )
}

impl EventStream {
    /// A stream of the events of `url`; nothing happens until [`EventStream::next`].
    pub fn new(client: Client, url: String, opts: EventStreamOptions) -> EventStream {
        EventStream {
            parser: Parser::with_limit(&opts.last_event_id, opts.max_event_size),
            retry: opts.retry,
            client,
            url,
            opts,
            reader: None,
            wait: false,
            failures: 0,
            closed: false,
            failure: None,
            cancel: CancellationToken::new(),
        }
    }

    /// A token that closes the stream when cancelled (also from another task).
    pub fn closer(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The reconnection delay in force.
    pub fn retry(&self) -> Duration {
        self.retry
    }

    /// The next items; `Ok(None)` once closed (by [`EventStream::closer`] or a 204). A response
    /// that is not a `200 text/event-stream` fails the stream (no reconnection), as in browsers.
    pub async fn next(&mut self) -> Result<Option<Vec<SseItem>>> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        loop {
            if self.closed || self.cancel.is_cancelled() {
                self.closed = true;
                return Ok(None);
            }
            if self.wait {
                self.wait = false;
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => continue,
                    _ = tokio::time::sleep(self.retry) => {}
                }
            }
            let Some(reader) = self.reader.as_mut() else {
                match self.connect().await {
                    Ok(true) => return Ok(Some(vec![SseItem::Open])),
                    Ok(false) => continue,
                    Err(e) if reconnectable(&e) => {
                        if let Some(item) = self.lost(e.to_string())? {
                            return Ok(Some(vec![item]));
                        }
                        continue;
                    }
                    Err(e) => {
                        self.closed = true;
                        return Err(e);
                    }
                }
            };
            match reader.next_chunk().await {
                Ok(Some(bytes)) => {
                    let mut items = Vec::new();
                    if let Err(e) = self.parser.push_into(&bytes, &mut items) {
                        self.closed = true;
                        self.reader = None;
                        if items.is_empty() {
                            return Err(e);
                        }
                        // The events before the failure are delivered first.
                        self.failure = Some(e);
                        return Ok(Some(items));
                    }
                    if let Some(ms) = self.parser.retry.take() {
                        self.retry = Duration::from_millis(ms);
                    }
                    if !items.is_empty() {
                        self.failures = 0;
                        return Ok(Some(items));
                    }
                }
                Ok(None) => {
                    if let Some(item) = self.lost("the server ended the stream".into())? {
                        return Ok(Some(vec![item]));
                    }
                }
                Err(Error::Aborted) => self.closed = true,
                Err(e) => {
                    if let Some(item) = self.lost(e.to_string())? {
                        return Ok(Some(vec![item]));
                    }
                }
            }
        }
    }

    fn lost(&mut self, reason: String) -> Result<Option<SseItem>> {
        self.reader = None;
        let last = self.parser.last_id().to_string();
        self.parser = Parser::with_limit(&last, self.opts.max_event_size);
        self.failures += 1;
        if self.opts.max_reconnects.is_some_and(|m| self.failures > m) {
            self.closed = true;
            return Err(Error::ConnectionReset(format!(
                "event stream lost {} times in a row: {reason}",
                self.failures
            )));
        }
        self.wait = true;
        Ok(Some(SseItem::Reconnecting { reason }))
    }

    /// Opens the connection: true when the stream is open, false when it was closed instead.
    async fn connect(&mut self) -> Result<bool> {
        let mut headers = self.opts.headers.clone();
        headers.push(("accept".into(), "text/event-stream".into()));
        headers.push(("cache-control".into(), "no-cache".into()));
        if !self.parser.last_id().is_empty() {
            headers.push(("last-event-id".into(), self.parser.last_id().to_string()));
        }
        let req = ClientRequest {
            method: "GET".into(),
            url: self.url.clone(),
            headers,
            cancel: Some(self.cancel.clone()),
            ..ClientRequest::default()
        };
        let (head, reader) = match self.client.send(req).await {
            Err(Error::Aborted) => {
                self.closed = true;
                return Ok(false);
            }
            other => other?,
        };
        if head.status == 204 {
            self.closed = true;
            return Ok(false);
        }
        let content_type = head
            .headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        if head.status != 200 || !content_type.starts_with("text/event-stream") {
            return Err(Error::Http(format!(
                "the event stream answered {} with content type {content_type:?} (expected 200 text/event-stream)",
                head.status
            )));
        }
        self.url = head.url;
        self.reader = Some(reader);
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(items: Vec<SseItem>) -> Vec<(String, String, String)> {
        items
            .into_iter()
            .filter_map(|i| match i {
                SseItem::Event { event, data, id } => Some((event, data, id)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn parses_fields_multiline_data_ids_and_comments() {
        let mut p = Parser::new("");
        let text = "\u{feff}: comment\nevent: add\ndata: line 1\ndata:line 2\nid: 7\n\ndata\n\nretry: 1500\nid\ndata: x\r\n\r\n";
        let got = events(p.push(text.as_bytes()).expect("parse"));
        assert_eq!(
            got,
            vec![
                ("add".into(), "line 1\nline 2".into(), "7".into()),
                ("message".into(), "".into(), "7".into()),
                ("message".into(), "x".into(), "".into()),
            ]
        );
        assert_eq!(p.retry, Some(1500));
    }

    #[test]
    fn handles_splits_anywhere_including_crlf() {
        let text = b"data: a\r\n\r\ndata: b\r\r";
        for split in 0..text.len() {
            let mut p = Parser::new("");
            let mut got = events(p.push(&text[..split]).expect("parse"));
            got.extend(events(p.push(&text[split..]).expect("parse")));
            let data: Vec<String> = got.into_iter().map(|e| e.1).collect();
            assert_eq!(
                data,
                vec!["a".to_string(), "b".to_string()],
                "split at {split}"
            );
        }
    }

    #[test]
    fn a_line_or_an_event_over_the_limit_fails_before_it_is_held() {
        // One long line fed in pieces: fails once the piece would pass the limit.
        let mut p = Parser::with_limit("", 1000);
        assert!(p.push(&[b'x'; 600]).expect("under").is_empty());
        let err = p.push(&[b'x'; 600]).expect_err("over");
        assert_eq!(err.code(), "ERR_SSE_EVENT_TOO_LARGE");
        assert!(p.partial.len() <= 1000);
        assert!(p.push(b"\n\n").is_err(), "stays failed");
        // Many short data lines of one event.
        let mut p = Parser::with_limit("", 1000);
        let line = format!("data: {}\n", "y".repeat(90));
        let mut failed = false;
        for _ in 0..20 {
            match p.push(line.as_bytes()) {
                Ok(items) => assert!(items.is_empty()),
                Err(e) => {
                    assert_eq!(e.code(), "ERR_SSE_EVENT_TOO_LARGE");
                    failed = true;
                    break;
                }
            }
            assert!(p.data.len() <= 1000);
        }
        assert!(failed);
        // The type counts too, wherever it comes.
        let mut p = Parser::with_limit("", 1000);
        let data = format!("data: {}\n", "d".repeat(900));
        let event = format!("event: {}\n", "e".repeat(900));
        assert!(p.push(data.as_bytes()).is_ok());
        assert!(p.push(event.as_bytes()).is_err());
        // Events under the limit pass, however many.
        let mut p = Parser::with_limit("", 1000);
        let mut n = 0;
        for _ in 0..100 {
            n += p.push(line.repeat(5).as_bytes()).expect("ok").len();
            n += p.push(b"\n").expect("ok").len();
        }
        assert_eq!(n, 100);
    }

    #[test]
    fn the_last_event_id_changes_only_when_an_event_is_dispatched() {
        let mut p = Parser::new("0");
        let got = events(p.push(b"id: 1\ndata: a\n\nid: 2\n").expect("parse"));
        assert_eq!(got, vec![("message".into(), "a".into(), "1".into())]);
        // `id: 2` belongs to an event not yet ended: a reconnection now resumes from 1.
        assert_eq!(p.last_id(), "1");
        // A blank line commits it even without data (no event is dispatched).
        assert!(p.push(b"\n").expect("parse").is_empty());
        assert_eq!(p.last_id(), "2");
        // An id with NUL is ignored; the buffer persists across events.
        let got = events(p.push(b"id: x\0y\ndata: b\n\ndata: c\n\n").expect("parse"));
        assert_eq!(got[0].2, "2");
        assert_eq!(got[1].2, "2");
    }

    #[test]
    fn events_before_a_line_over_the_limit_are_kept() {
        let mut p = Parser::with_limit("", 64);
        let mut out = Vec::new();
        let body = format!("data: ok\n\ndata: {}\n\n", "x".repeat(100));
        let err = p.push_into(body.as_bytes(), &mut out).expect_err("over");
        assert_eq!(err.code(), "ERR_SSE_EVENT_TOO_LARGE");
        assert_eq!(
            events(out),
            vec![("message".into(), "ok".into(), String::new())]
        );
    }
}
