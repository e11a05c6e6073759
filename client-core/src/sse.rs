//! A Server-Sent Events (`text/event-stream`) parser (docs/protocol/transport.md, "Server-Sent
//! Events"), incremental and bounded.

use bytes::Bytes;

/// The default largest event (sum of its `data` lines) and the largest line.
pub const DEFAULT_MAX_EVENT_SIZE: usize = 1024 * 1024;

/// One dispatched event: its `data` lines joined with `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SseEvent {
    /// The event data.
    pub data: Bytes,
}

/// The stream broke a limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event or a single line was larger than the limit.
    #[error("Server-Sent Event larger than {limit} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
}

/// An incremental `text/event-stream` parser: [`push`](SseParser::push) bytes as they arrive,
/// then call [`next_event`](SseParser::next_event) until it returns `Ok(None)`.
///
/// Handles `\r\n`, `\n` and `\r` line ends (also split across pushes), comments, `data:` with or
/// without one space, multiple `data` lines, a leading BOM; ignores other fields. Memory is
/// bounded by the max event size (plus one push), and work is linear in the input.
#[derive(Debug)]
pub struct SseParser {
    buf: Vec<u8>,
    /// Where the current line starts in `buf`.
    pos: usize,
    /// How many bytes after `pos` were already searched for a line end (keeps work linear when a
    /// long line arrives in small pieces).
    scanned: usize,
    /// The data of the event being built.
    data: Vec<u8>,
    has_data: bool,
    /// The previous line ended with `\r`: a `\n` at the start of input belongs to it.
    after_cr: bool,
    /// Whether the start of the stream (BOM check) was passed.
    started: bool,
    max_event_size: usize,
    failed: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::new()
    }
}

impl SseParser {
    /// A parser with [`DEFAULT_MAX_EVENT_SIZE`].
    pub fn new() -> Self {
        Self::with_max_event_size(DEFAULT_MAX_EVENT_SIZE)
    }

    /// A parser refusing events (and lines) larger than `max_event_size` bytes.
    pub fn with_max_event_size(max_event_size: usize) -> Self {
        SseParser {
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            data: Vec::new(),
            has_data: false,
            after_cr: false,
            started: false,
            max_event_size,
            failed: false,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete event, `Ok(None)` when more input is needed. After an error the parser
    /// keeps returning it.
    pub fn next_event(&mut self) -> Result<Option<SseEvent>, SseError> {
        let too_large = SseError::TooLarge {
            limit: self.max_event_size,
        };
        if self.failed {
            return Err(too_large);
        }
        loop {
            if !self.started {
                let rest = &self.buf[self.pos..];
                let bom = b"\xEF\xBB\xBF";
                if rest.len() < bom.len() && bom.starts_with(rest) {
                    return Ok(None);
                }
                if rest.starts_with(bom) {
                    self.pos += bom.len();
                }
                self.started = true;
            }
            if self.after_cr && self.pos < self.buf.len() {
                if self.buf[self.pos] == b'\n' {
                    self.pos += 1;
                }
                self.after_cr = false;
            }
            let rest = &self.buf[self.pos..];
            let found = rest[self.scanned..]
                .iter()
                .position(|&b| b == b'\n' || b == b'\r');
            let Some(end) = found.map(|i| i + self.scanned) else {
                self.scanned = rest.len();
                if rest.len() > self.max_event_size {
                    self.failed = true;
                    return Err(too_large);
                }
                return Ok(None);
            };
            let line_start = self.pos;
            let line_end = line_start + end;
            self.after_cr = self.buf[line_end] == b'\r';
            self.pos = line_end + 1;
            self.scanned = 0;
            if line_end == line_start {
                // Blank line: dispatch.
                if self.has_data {
                    self.has_data = false;
                    let data = Bytes::from(std::mem::take(&mut self.data));
                    return Ok(Some(SseEvent { data }));
                }
                continue;
            }
            let line = &self.buf[line_start..line_end];
            if line[0] == b':' {
                continue;
            }
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => {
                    let value = &line[colon + 1..];
                    (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
                }
                None => (line, &[][..]),
            };
            if field == b"data" {
                let extra = value.len() + usize::from(self.has_data);
                if self.data.len() + extra > self.max_event_size {
                    self.failed = true;
                    return Err(too_large);
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
        }
    }
}

/// Appends `payload` as one event as the server writes it: `data: <line>\r\n` per line (the
/// payload split on `\r\n` or `\n`), then `\r\n`.
pub fn format_event(payload: &[u8], out: &mut Vec<u8>) {
    let mut rest = payload;
    loop {
        let (line, next) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(line);
        out.extend_from_slice(b"\r\n");
        match next {
            Some(n) => rest = n,
            None => break,
        }
    }
    out.extend_from_slice(b"\r\n");
}
