//! Splitting a byte stream into records: `0x1E` for text, VarInt length prefixes for binary.
//!
//! Both framers accept bytes cut anywhere (one WebSocket frame, an SSE event, a long-poll body
//! with many messages) and never rescan bytes they already looked at.

use super::ProtocolError;
use bytes::{Buf, Bytes, BytesMut};

/// The JSON record separator.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The default bound on one record (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// The largest length a VarInt prefix may announce (docs/protocol/hub-protocol.md,
/// "Length-prefix framing").
const MAX_VARINT_LENGTH: u64 = 0x7fff_ffff;

/// Splits `0x1E`-terminated records out of arbitrarily cut text input.
#[derive(Debug)]
pub struct TextFramer {
    max: usize,
    buf: BytesMut,
    /// Bytes of `buf` already known to hold no separator.
    scanned: usize,
}

/// Splits VarInt-length-prefixed records out of arbitrarily cut binary input.
#[derive(Debug)]
pub struct BinaryFramer {
    max: usize,
    buf: BytesMut,
}

/// Either framer, as chosen by [`super::Protocol::framer`].
#[derive(Debug)]
pub enum Framer {
    /// `0x1E` records.
    Text(TextFramer),
    /// Length-prefixed records.
    Binary(BinaryFramer),
}

impl TextFramer {
    /// A framer refusing records over `max` bytes.
    pub fn new(max: usize) -> Self {
        TextFramer {
            max,
            buf: BytesMut::new(),
            scanned: 0,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete record without its separator, `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        match self.buf[self.scanned..]
            .iter()
            .position(|&b| b == RECORD_SEPARATOR)
        {
            Some(offset) => {
                let end = self.scanned + offset;
                self.scanned = 0;
                if end > self.max {
                    return Err(ProtocolError::MessageTooLarge {
                        size: end,
                        max: self.max,
                    });
                }
                let record = self.buf.split_to(end).freeze();
                self.buf.advance(1);
                Ok(Some(record))
            }
            None => {
                self.scanned = self.buf.len();
                if self.buf.len() > self.max {
                    return Err(ProtocolError::MessageTooLarge {
                        size: self.buf.len(),
                        max: self.max,
                    });
                }
                Ok(None)
            }
        }
    }

    /// Takes the bytes buffered after the last complete record (the start of the hub messages
    /// that followed a handshake response).
    pub fn take_remaining(&mut self) -> Bytes {
        self.scanned = 0;
        self.buf.split().freeze()
    }

    /// How many bytes are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// Reads a VarInt length prefix: `Ok(None)` if incomplete, else `(length, prefix bytes)`.
fn read_length_prefix(buf: &[u8]) -> Result<Option<(u64, usize)>, ProtocolError> {
    let mut length: u64 = 0;
    for (i, &byte) in buf.iter().take(5).enumerate() {
        if i == 4 && byte > 7 {
            return Err(ProtocolError::LengthPrefixTooLarge);
        }
        length |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if length > MAX_VARINT_LENGTH {
                return Err(ProtocolError::LengthPrefixTooLarge);
            }
            return Ok(Some((length, i + 1)));
        }
    }
    Ok(None)
}

/// Appends the VarInt length prefix of `length` to `out`.
pub(super) fn write_length_prefix(mut length: usize, out: &mut Vec<u8>) {
    loop {
        let byte = (length & 0x7f) as u8;
        length >>= 7;
        if length == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

impl BinaryFramer {
    /// A framer refusing records over `max` bytes.
    pub fn new(max: usize) -> Self {
        BinaryFramer {
            max,
            buf: BytesMut::new(),
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete record without its prefix, `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let Some((length, prefix)) = read_length_prefix(&self.buf)? else {
            return Ok(None);
        };
        let length = usize::try_from(length).map_err(|_| ProtocolError::LengthPrefixTooLarge)?;
        if length > self.max {
            return Err(ProtocolError::MessageTooLarge {
                size: length,
                max: self.max,
            });
        }
        if self.buf.len() - prefix < length {
            return Ok(None);
        }
        self.buf.advance(prefix);
        Ok(Some(self.buf.split_to(length).freeze()))
    }

    /// How many bytes are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }
}

impl Framer {
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        match self {
            Framer::Text(f) => f.push(bytes),
            Framer::Binary(f) => f.push(bytes),
        }
    }

    /// The next complete record, `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        match self {
            Framer::Text(f) => f.next_record(),
            Framer::Binary(f) => f.next_record(),
        }
    }

    /// How many bytes are buffered.
    pub fn buffered(&self) -> usize {
        match self {
            Framer::Text(f) => f.buffered(),
            Framer::Binary(f) => f.buffered(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn length_prefixes_round_trip() {
        for n in [0usize, 1, 11, 127, 128, 5248, 16_383, 16_384, 0x7fff_ffff] {
            let mut out = Vec::new();
            write_length_prefix(n, &mut out);
            assert_eq!(
                read_length_prefix(&out).unwrap(),
                Some((n as u64, out.len()))
            );
        }
    }

    #[test]
    fn text_records_split_across_pushes_are_joined() {
        let mut f = TextFramer::new(100);
        f.push(b"ab");
        assert_eq!(f.next_record().unwrap(), None);
        f.push(b"c\x1ede\x1e");
        assert_eq!(f.next_record().unwrap().unwrap(), &b"abc"[..]);
        assert_eq!(f.next_record().unwrap().unwrap(), &b"de"[..]);
        assert_eq!(f.next_record().unwrap(), None);
    }
}
