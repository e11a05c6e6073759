//! Splitting a byte stream into records: `0x1E` for text, VarInt length prefixes for binary.

use super::ProtocolError;
use bytes::Bytes;

/// The JSON record separator.
pub const RECORD_SEPARATOR: u8 = 0x1e;

/// The default bound on one record (1 MiB).
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 1024 * 1024;

/// Splits `0x1E`-terminated records out of arbitrarily cut text input.
#[derive(Debug)]
pub struct TextFramer {
    max: usize,
}

/// Splits VarInt-length-prefixed records out of arbitrarily cut binary input.
#[derive(Debug)]
pub struct BinaryFramer {
    max: usize,
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
        TextFramer { max }
    }
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!("codec")
    }
    /// The next complete record without its separator, `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let _ = self.max;
        todo!("codec")
    }
    /// Takes the bytes buffered after the last complete record (the start of the hub messages
    /// that followed a handshake response).
    pub fn take_remaining(&mut self) -> Bytes {
        todo!("codec")
    }
}

impl BinaryFramer {
    /// A framer refusing records over `max` bytes.
    pub fn new(max: usize) -> Self {
        BinaryFramer { max }
    }
    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        let _ = bytes;
        todo!("codec")
    }
    /// The next complete record without its prefix, `None` if more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Bytes>, ProtocolError> {
        let _ = self.max;
        todo!("codec")
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
}
