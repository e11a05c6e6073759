//! A small JSON reader and string writer for the protocol's own JSON: hub protocol records,
//! the handshake, the negotiate response, and JSON arguments turned into MessagePack.
//!
//! Why not `serde_json` here: these texts are read field by field, with their values kept as
//! byte spans (a hub message's arguments stay raw), which needs no data model; and in the
//! browser package `serde_json`'s deserializer, its error texts and its float formatting were
//! about a tenth of the wasm module. `serde_json` stays for typed values
//! ([`RawValue::encode`](crate::protocol::RawValue::encode) / `decode`), so a Rust app that
//! never asks for typed values does not link it.
//!
//! The grammar is RFC 8259's, as strictly as `serde_json` reads it: the text must be UTF-8,
//! no trailing commas, no control characters in strings, `\u` escapes must pair their
//! surrogates when a string is decoded, and nesting is limited to [`MAX_DEPTH`]. Tests check
//! it against `serde_json` on generated and hand-picked texts.

use std::borrow::Cow;

/// The deepest nesting of arrays and objects accepted (`serde_json`'s limit too).
pub(crate) const MAX_DEPTH: usize = 128;

/// Why a text is not the JSON expected, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsonError {
    /// What is wrong.
    pub(crate) what: &'static str,
    /// The byte offset at which it was found.
    pub(crate) offset: usize,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.what, self.offset)
    }
}

impl std::error::Error for JsonError {}

/// A result of reading JSON.
pub(crate) type Result<T> = std::result::Result<T, JsonError>;

/// A parsed JSON value that borrows from its text: numbers stay text, strings are unescaped
/// only when they hold escapes, object members keep their order (a repeated key: the last wins
/// in [`Json::get`], as in `serde_json`).
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Json<'a> {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string, unescaped.
    String(Cow<'a, str>),
    /// An array.
    Array(Vec<Json<'a>>),
    /// An object's members in order.
    Object(Vec<(Cow<'a, str>, Json<'a>)>),
}

impl<'a> Json<'a> {
    /// Parses one complete JSON text (surrounding whitespace allowed).
    pub(crate) fn parse(text: &'a [u8]) -> Result<Self> {
        let mut reader = Reader::new(text)?;
        let value = reader.value()?;
        reader.finish()?;
        Ok(value)
    }

    /// An object's member (the last one, if the key repeats); `None` for other values.
    pub(crate) fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(members) => members.iter().rev().find(|(k, _)| k == key).map(|m| &m.1),
            _ => None,
        }
    }

    /// The value as a non-negative integer, if it is one written without a fraction or exponent.
    pub(crate) fn as_u64(&self) -> Option<u64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }

    /// JavaScript's truthiness of the value.
    pub(crate) fn is_truthy(&self) -> bool {
        match self {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::Number(n) => n.parse::<f64>().is_ok_and(|f| f != 0.0),
            Json::String(s) => !s.is_empty(),
            Json::Array(_) | Json::Object(_) => true,
        }
    }
}

/// A cursor over a JSON text for reading it piece by piece.
pub(crate) struct Reader<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `text`, which must be UTF-8.
    pub(crate) fn new(text: &'a [u8]) -> Result<Self> {
        let text = std::str::from_utf8(text).map_err(|e| JsonError {
            what: "invalid UTF-8",
            offset: e.valid_up_to(),
        })?;
        Ok(Reader {
            text,
            pos: 0,
            depth: 0,
        })
    }

    fn error<T>(&self, what: &'static str) -> Result<T> {
        Err(JsonError {
            what,
            offset: self.pos,
        })
    }

    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips whitespace and returns the next byte, `None` at the end.
    pub(crate) fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.bytes().get(self.pos) {
            if !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(b);
            }
            self.pos += 1;
        }
        None
    }

    fn expect(&mut self, byte: u8, what: &'static str) -> Result<()> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            self.error(what)
        }
    }

    /// Checks that only whitespace is left.
    pub(crate) fn finish(mut self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(_) => self.error("trailing characters"),
        }
    }

    /// Consumes `null` if it comes next.
    pub(crate) fn null(&mut self) -> Result<bool> {
        if self.peek() == Some(b'n') {
            self.literal("null")?;
            return Ok(true);
        }
        Ok(false)
    }

    fn literal(&mut self, word: &'static str) -> Result<()> {
        if self.text[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            self.error("expected a value")
        }
    }

    /// Reads a `true` or `false`.
    pub(crate) fn bool(&mut self) -> Result<bool> {
        match self.peek() {
            Some(b't') => self.literal("true").map(|()| true),
            Some(b'f') => self.literal("false").map(|()| false),
            _ => self.error("expected a boolean"),
        }
    }

    /// Reads a number and returns it as written.
    pub(crate) fn number(&mut self) -> Result<&'a str> {
        if self.peek().is_none() {
            return self.error("expected a number");
        }
        let start = self.pos;
        let b = self.bytes();
        let digits = |pos: &mut usize| {
            let from = *pos;
            while b.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos - from
        };
        let mut pos = start;
        if b.get(pos) == Some(&b'-') {
            pos += 1;
        }
        match b.get(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => {
                digits(&mut pos);
            }
            _ => {
                self.pos = pos;
                return self.error("expected a number");
            }
        }
        if b.get(pos) == Some(&b'.') {
            pos += 1;
            if digits(&mut pos) == 0 {
                self.pos = pos;
                return self.error("expected a digit after the decimal point");
            }
        }
        if matches!(b.get(pos), Some(b'e' | b'E')) {
            pos += 1;
            if matches!(b.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            if digits(&mut pos) == 0 {
                self.pos = pos;
                return self.error("expected a digit in the exponent");
            }
        }
        self.pos = pos;
        Ok(&self.text[start..pos])
    }

    /// Reads a non-negative integer that fits in a `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let start = self.pos;
        let n = self.number()?;
        n.parse().or_else(|_| {
            self.pos = start;
            self.error("expected a non-negative integer")
        })
    }

    /// Reads a string, unescaped (borrowed when it holds no escapes).
    pub(crate) fn string(&mut self) -> Result<Cow<'a, str>> {
        let (raw, escaped) = self.string_span()?;
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        let mut out = String::with_capacity(raw.len());
        let mut chars = raw.char_indices();
        while let Some((i, c)) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            // The span was checked: an escape is complete and well-formed.
            let (_, e) = chars.next().unwrap_or((i, 'x'));
            match e {
                '"' | '\\' | '/' => out.push(e),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'n' => out.push('\n'),
                'r' => out.push('\r'),
                't' => out.push('\t'),
                _ => {
                    let hex = |at: usize| u32::from_str_radix(&raw[at..at + 4], 16).unwrap_or(0);
                    let unit = hex(i + 2);
                    chars.nth(3);
                    let code = match unit {
                        0xD800..=0xDBFF if raw[i + 6..].starts_with("\\u") => {
                            let low = hex(i + 8);
                            if !(0xDC00..=0xDFFF).contains(&low) {
                                return self.error("unpaired surrogate in a \\u escape");
                            }
                            chars.nth(5);
                            0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                        }
                        0xD800..=0xDFFF => return self.error("unpaired surrogate in a \\u escape"),
                        unit => unit,
                    };
                    match char::from_u32(code) {
                        Some(c) => out.push(c),
                        None => return self.error("invalid \\u escape"),
                    }
                }
            }
        }
        Ok(Cow::Owned(out))
    }

    /// Checks a string's syntax and returns its raw contents (between the quotes) and whether
    /// it holds escapes.
    fn string_span(&mut self) -> Result<(&'a str, bool)> {
        self.expect(b'"', "expected a string")?;
        let start = self.pos;
        let b = self.bytes();
        let mut escaped = false;
        loop {
            self.pos += plain_run(&b[self.pos..]);
            match b.get(self.pos) {
                None => return self.error("unterminated string"),
                Some(b'"') => break,
                Some(b'\\') => {
                    escaped = true;
                    match b.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 2
                        }
                        Some(b'u') => {
                            let hex = b.get(self.pos + 2..self.pos + 6);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return self.error("invalid \\u escape");
                            }
                            self.pos += 6;
                        }
                        _ => return self.error("invalid escape"),
                    }
                }
                Some(0..=0x1f) => return self.error("control character in a string"),
                Some(_) => self.pos += 1,
            }
        }
        self.pos += 1;
        Ok((&self.text[start..self.pos - 1], escaped))
    }

    fn enter(&mut self) -> Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return self.error("nested too deeply");
        }
        Ok(())
    }

    /// Reads an object, calling `member` for each key with the reader at its value, which
    /// `member` must consume (with [`Reader::skip`] when it is not wanted).
    pub(crate) fn object(
        &mut self,
        mut member: impl FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        self.object_dyn(&mut member)
    }

    // One body for every caller's closure: less code in the browser build, and an indirect
    // call per member costs nothing next to reading it.
    fn object_dyn(
        &mut self,
        member: &mut dyn FnMut(&mut Self, Cow<'a, str>) -> Result<()>,
    ) -> Result<()> {
        self.expect(b'{', "expected an object")?;
        self.enter()?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                return self.error("expected a key");
            }
            let key = self.string()?;
            self.expect(b':', "expected ':'")?;
            member(self, key)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.error("expected ',' or '}'"),
            }
        }
    }

    /// Reads an array, calling `item` with the reader at each element, which `item` must consume.
    pub(crate) fn array(&mut self, mut item: impl FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.array_dyn(&mut item)
    }

    fn array_dyn(&mut self, item: &mut dyn FnMut(&mut Self) -> Result<()>) -> Result<()> {
        self.expect(b'[', "expected an array")?;
        self.enter()?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(());
        }
        loop {
            item(self)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    self.depth -= 1;
                    return Ok(());
                }
                _ => return self.error("expected ',' or ']'"),
            }
        }
    }

    /// Checks one value's syntax and returns its text.
    pub(crate) fn skip(&mut self) -> Result<&'a str> {
        let start = match self.peek() {
            Some(_) => self.pos,
            None => return self.error("expected a value"),
        };
        match self.bytes()[start] {
            b'{' => self.object(|r, _| r.skip().map(drop))?,
            b'[' => self.array(|r| r.skip().map(drop))?,
            b'"' => {
                self.string_span()?;
            }
            b't' | b'f' => {
                self.bool()?;
            }
            b'n' => {
                self.literal("null")?;
            }
            b'-' | b'0'..=b'9' => {
                self.number()?;
            }
            _ => return self.error("expected a value"),
        }
        Ok(&self.text[start..self.pos])
    }

    /// Reads one value into a tree.
    pub(crate) fn value(&mut self) -> Result<Json<'a>> {
        Ok(match self.peek() {
            Some(b'{') => {
                let mut members = Vec::new();
                self.object(|r, key| {
                    members.push((key, r.value()?));
                    Ok(())
                })?;
                Json::Object(members)
            }
            Some(b'[') => {
                let mut items = Vec::new();
                self.array(|r| {
                    items.push(r.value()?);
                    Ok(())
                })?;
                Json::Array(items)
            }
            Some(b'"') => Json::String(self.string()?),
            Some(b't' | b'f') => Json::Bool(self.bool()?),
            Some(b'n') => {
                self.literal("null")?;
                Json::Null
            }
            Some(b'-' | b'0'..=b'9') => Json::Number(self.number()?),
            _ => return self.error("expected a value"),
        })
    }
}

/// Appends `n` in decimal, without the allocation of `n.to_string()`.
pub(crate) fn write_u64(n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// How many bytes at the start of `bytes` need no attention inside a string: everything up to
/// the first `"`, `\` or control character. Eight bytes at a time while none of them is one
/// (the string scan is most of the work of reading a hub message with text in it).
fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::from_ne_bytes([1; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut run = 0;
    while let Some(Ok(chunk)) = bytes.get(run..run + 8).map(<[u8; 8]>::try_from) {
        let v = u64::from_ne_bytes(chunk);
        let quote = v ^ (ONES * u64::from(b'"'));
        let backslash = v ^ (ONES * u64::from(b'\\'));
        // A byte's high bit is set where it is zero (after the xor) or below 0x20; a hit may
        // also flag bytes after it, which the exact scan below sorts out.
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (v.wrapping_sub(ONES * 0x20) & !v);
        if hits & HIGH != 0 {
            break;
        }
        run += 8;
    }
    run + bytes[run..]
        .iter()
        .position(|&c| c == b'"' || c == b'\\' || c < 0x20)
        .unwrap_or(bytes.len() - run)
}

/// Appends `text` as a JSON string, escaping as `serde_json` does: `"` and `\`, and control
/// characters (`\n`, `\r`, `\t`, `\b`, `\f`, else `\u00XX`); everything else as is.
pub(crate) fn write_string(text: &str, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(text.len() + 2);
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ],
            _ => continue,
        };
        out.extend_from_slice(&bytes[from..i]);
        out.extend_from_slice(escape);
        from = i + 1;
    }
    out.extend_from_slice(&bytes[from..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn accepts(text: &str) -> bool {
        Json::parse(text.as_bytes()).is_ok()
    }

    #[test]
    fn numbers_are_written_in_decimal_as_to_string_writes_them() {
        for n in [0, 7, 10, 99, 100, 12_345, u64::MAX] {
            let mut out = b"x".to_vec();
            write_u64(n, &mut out);
            assert_eq!(out, format!("x{n}").into_bytes());
        }
    }

    #[test]
    fn well_formed_texts_are_read_as_serde_json_reads_them() {
        for text in [
            "null",
            " true ",
            "false",
            "0",
            "-0",
            "-12.5e+3",
            "1E5",
            "\"\"",
            "\"a\\u00e9\\ud83d\\ude00\\n\\/\"",
            "[]",
            "{}",
            "[1,[2,{\"a\":[]}],\"x\"]",
            "{\"a\":1,\"a\":2}",
            "\"é\"",
        ] {
            let ours = Json::parse(text.as_bytes()).unwrap();
            let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(to_serde(&ours), theirs, "{text}");
        }
    }

    #[test]
    fn malformed_texts_are_refused_with_their_offset() {
        for text in [
            "",
            " ",
            "nul",
            "tru",
            "01",
            "1.",
            ".5",
            "1e",
            "-",
            "+1",
            "[1,]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "[1 2]",
            "\"abc",
            "\"a\\x\"",
            "\"\\u12g4\"",
            "\"\t\"",
            "\"\\ud800\"",
            "\"\\udc00x\"",
            "\"\\ud800\\u0041\"",
            "1 2",
            "[",
            "{",
            "NaN",
        ] {
            assert!(!accepts(text), "{text:?} was accepted");
            assert!(
                serde_json::from_str::<serde_json::Value>(text).is_err(),
                "{text:?}"
            );
        }
        let err = Json::parse(b"[1,]").unwrap_err();
        assert_eq!(err.offset, 3);
        assert_eq!(err.to_string(), "expected a value at byte 3");
    }

    #[test]
    fn invalid_utf8_is_refused() {
        let err = Json::parse(b"\"a\xff\"").unwrap_err();
        assert_eq!((err.what, err.offset), ("invalid UTF-8", 2));
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_without_overflowing_the_stack() {
        let deep = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(accepts(&deep(MAX_DEPTH)));
        assert!(!accepts(&deep(MAX_DEPTH + 1)));
        assert!(!accepts(&"[".repeat(100_000)));
        let text = deep(MAX_DEPTH + 1);
        let mut reader = Reader::new(text.as_bytes()).unwrap();
        assert_eq!(reader.skip().unwrap_err().what, "nested too deeply");
    }

    #[test]
    fn skip_returns_the_span_of_one_value() {
        let text = br#"{"a": [1, {"b": "c\"]"}], "d": null}"#;
        let mut reader = Reader::new(text).unwrap();
        let mut spans = Vec::new();
        reader
            .object(|r, key| {
                spans.push((key.into_owned(), r.skip()?.to_owned()));
                Ok(())
            })
            .unwrap();
        reader.finish().unwrap();
        assert_eq!(
            spans,
            [
                ("a".to_owned(), r#"[1, {"b": "c\"]"}]"#.to_owned()),
                ("d".to_owned(), "null".to_owned())
            ]
        );
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for text in [
            "",
            "plain",
            "q\"b\\s/",
            "\u{0}\u{1f}\n\r\t\u{8}\u{c}\u{7f}",
            "é😀",
        ] {
            let mut ours = Vec::new();
            write_string(text, &mut ours);
            assert_eq!(ours, serde_json::to_vec(text).unwrap(), "{text:?}");
        }
    }

    fn to_serde(value: &Json<'_>) -> serde_json::Value {
        match value {
            Json::Null => serde_json::Value::Null,
            Json::Bool(b) => (*b).into(),
            Json::Number(n) => serde_json::from_str(n).unwrap(),
            Json::String(s) => s.as_ref().into(),
            Json::Array(items) => items.iter().map(to_serde).collect(),
            Json::Object(members) => {
                let mut map = serde_json::Map::new();
                for (k, v) in members {
                    map.insert(k.to_string(), to_serde(v));
                }
                map.into()
            }
        }
    }

    /// Texts near JSON: JSON's own tokens and a few that break it, in any order.
    fn near_json() -> impl Strategy<Value = String> {
        let token = prop_oneof![
            Just("{"),
            Just("}"),
            Just("["),
            Just("]"),
            Just(","),
            Just(":"),
            Just(" "),
            Just("\"k\""),
            Just("\"\\u00e9\""),
            Just("\"\\ud83d\\ude00\""),
            Just("\"\\ud83d\""),
            Just("\"\\q\""),
            Just("\"\u{1}\""),
            Just("0"),
            Just("-1.5e3"),
            Just("01"),
            Just("1."),
            Just("true"),
            Just("nul"),
            Just("null"),
            Just("\""),
            Just("é"),
        ];
        proptest::collection::vec(token, 0..24).prop_map(|t| t.concat())
    }

    proptest! {
        #[test]
        fn any_text_is_accepted_exactly_when_serde_json_accepts_it(text in near_json()) {
            let theirs = serde_json::from_str::<serde_json::Value>(&text);
            let ours = Json::parse(text.as_bytes());
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}: {:?}", text, ours);
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                prop_assert_eq!(to_serde(&ours), theirs);
            }
        }

        #[test]
        fn skip_accepts_exactly_what_parse_accepts(text in near_json()) {
            let skipped = Reader::new(text.as_bytes()).and_then(|mut r| { r.skip()?; r.finish() });
            let parsed = Json::parse(text.as_bytes());
            // `skip` checks escapes' syntax but not surrogate pairing, as serde_json's RawValue.
            if !text.contains("\\ud83d\"") {
                prop_assert_eq!(skipped.is_ok(), parsed.is_ok(), "{:?}", text);
            }
        }

        #[test]
        fn the_fast_string_scan_stops_where_a_byte_by_byte_scan_stops(
            bytes in proptest::collection::vec(prop_oneof![Just(b'"'), Just(b'\\'), Just(0x1f_u8), Just(0x20_u8), Just(0x21_u8), any::<u8>(), Just(b'a')], 0..40)
        ) {
            let naive = bytes.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).unwrap_or(bytes.len());
            prop_assert_eq!(plain_run(&bytes), naive);
        }

        #[test]
        fn any_string_round_trips_through_write_and_read(text in any::<String>()) {
            let mut out = Vec::new();
            write_string(&text, &mut out);
            let mut reader = Reader::new(&out).unwrap();
            prop_assert_eq!(reader.string().unwrap(), text.as_str());
        }
    }
}
