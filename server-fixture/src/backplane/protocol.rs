//! The envelopes of ASP.NET Core's Redis backplane, encoded and decoded without any IO.
//!
//! The layouts are those of `RedisProtocol` in dotnet/aspnetcore
//! (`src/SignalR/server/StackExchangeRedis/src/Internal/RedisProtocol.cs`); each payload is one
//! MessagePack value, and what kind of payload it is follows from the channel it was published on
//! (see [`super::channels`]):
//!
//! | payload | channels | MessagePack layout |
//! |---|---|---|
//! | [`Invocation`] | `:all`, `:group:{g}`, `:connection:{id}`, `:user:{u}` | `[excluded ids: [str...], {protocol name: bin}]`, or 4 elements `[excluded, map, invocation id, return channel]` when the sender waits for a client result |
//! | [`GroupCommand`] | `:internal:groups` | `[id: int, server name: str, action: 1 add / 2 remove, group: str, connection id: str]` |
//! | ack | `:internal:ack:{server}` | `[id: int]` |
//! | [`CompletionEnvelope`] | `:internal:return:{server}` | `[protocol name: str, completion message: bin]` |
//!
//! One payload is ours, not the reference's (ASP.NET Core's backplane has no message for
//! user-level groups, which only the Azure SignalR Service REST API has):
//!
//! | payload | channel | MessagePack layout |
//! |---|---|---|
//! | [`UserGroupCommand`] | `:talkback:user-groups` | `[server name: str, action: 1 add / 2 remove, group: str or nil (every group), user: str, ttl in ms: int or nil]` |
//!
//! The map of an Invocation holds the same hub message serialized once per hub protocol, framing
//! included (the JSON record separator, the MessagePack length prefix), so a receiving node writes
//! the bytes of its connection's protocol as they are. Readers accept an array longer than they
//! need and ignore the extra items, as the reference does; integers in any MessagePack width
//! that fits, and a `bin` written as a `str` (the old MessagePack spec).
//!
//! Anything published to Redis is untrusted input: every decoder returns an [`EnvelopeError`]
//! for a malformed payload and never panics; counts are checked against the bytes that remain
//! before anything is allocated, and a payload larger than [`MAX_ENVELOPE_BYTES`] is refused.

use rmp::Marker;

/// The largest payload the decoders accept, in bytes (4 MiB).
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// Why a payload is not a valid envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The payload ended in the middle of a value.
    #[error("the payload ends too early")]
    Truncated,
    /// The payload is larger than [`MAX_ENVELOPE_BYTES`].
    #[error("the payload has {0} bytes, more than the {MAX_ENVELOPE_BYTES} accepted")]
    TooLarge(usize),
    /// A value of another MessagePack type stands where `expected` must.
    #[error("expected {expected}, found the MessagePack marker 0x{found:02x}")]
    UnexpectedType {
        /// What the layout needs here.
        expected: &'static str,
        /// The marker byte found instead.
        found: u8,
    },
    /// The outer array has fewer items than the layout needs.
    #[error("insufficient items in {kind} array: {found}, at least {needed} needed")]
    TooFewItems {
        /// The kind of envelope.
        kind: &'static str,
        /// How many items it needs.
        needed: u32,
        /// How many it has.
        found: u32,
    },
    /// An integer does not fit the field (an id beyond 32 bits, an action beyond a byte).
    #[error("the integer {0} is out of range for its field")]
    OutOfRange(i128),
    /// A string is not UTF-8.
    #[error("a string is not valid UTF-8")]
    InvalidUtf8,
    /// A 4-item invocation whose invocation id or return channel is nil or empty.
    #[error("a client-result invocation needs an invocation id and a return channel")]
    MissingReturnFields,
}

/// A hub message published to the `:all`, `:group:`, `:connection:` or `:user:` channel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// Connection ids that must not receive the message (`AllExcept`, `OthersInGroup`).
    pub excluded: Vec<String>,
    /// The serialized hub message by protocol name (`"json"`, `"messagepack"`), framing
    /// included, in the order written.
    pub messages: Vec<(String, Vec<u8>)>,
    /// For a client result: the invocation id and the channel the caller's node waits on.
    pub return_to: Option<ReturnAddress>,
}

/// Where the completion of a client result invoked across nodes is published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReturnAddress {
    /// The invocation id the caller's node chose.
    pub invocation_id: String,
    /// The caller node's return channel (`{prefix}{Hub}:internal:return:{server}`).
    pub channel: String,
}

impl Invocation {
    /// The serialized message for `protocol` (by its name), if the sender included it.
    pub fn message(&self, protocol: &str) -> Option<&[u8]> {
        self.messages
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, bytes)| bytes.as_slice())
    }
}

/// Group membership change, as `GroupAction` numbers it (0 is never used).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupAction {
    /// `1`: add the connection to the group.
    Add,
    /// `2`: remove it.
    Remove,
    /// Any other byte: the reference acknowledges it and does nothing; so do we.
    Other(u8),
}

impl GroupAction {
    fn to_byte(self) -> u8 {
        match self {
            GroupAction::Add => 1,
            GroupAction::Remove => 2,
            GroupAction::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            1 => GroupAction::Add,
            2 => GroupAction::Remove,
            b => GroupAction::Other(b),
        }
    }
}

/// A request to the node that holds `connection_id` to change its groups, published to
/// `:internal:groups`; that node answers with an ack carrying `id` on `:internal:ack:{server}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCommand {
    /// The id the sender waits for in the ack (unique per sending node).
    pub id: i32,
    /// The sending node's server name (where the ack goes).
    pub server: String,
    /// Add or remove.
    pub action: GroupAction,
    /// The group's name.
    pub group: String,
    /// The connection to add or remove.
    pub connection_id: String,
}

/// **Our extension** (ASP.NET Core's backplane has none): a user-level group change of the Azure
/// REST API (`PUT /groups/{g}/users/{u}?ttl=`, `DELETE ...`), published on
/// `:talkback:user-groups` and applied by every node to its own connections of that user,
/// present and future. No ack: every node applies it, none answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGroupCommand {
    /// The sending node's server name (a node ignores its own commands).
    pub server: String,
    /// Add or remove.
    pub action: GroupAction,
    /// The group; `None` (nil) removes the user from every group.
    pub group: Option<String>,
    /// The user id.
    pub user: String,
    /// How long the membership lasts from when the command was sent, in milliseconds (`None`:
    /// no expiry). Relative, so that nodes whose clocks differ expire it together.
    pub ttl_ms: Option<u64>,
}

/// The completion of a client result, published to the caller node's return channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionEnvelope {
    /// The hub protocol the completion is serialized in.
    pub protocol: String,
    /// The serialized Completion message, framing included.
    pub completion: Vec<u8>,
}

// ------------------------------------------------------------------------------------ writers

fn array_len(n: u32, out: &mut Vec<u8>) {
    // Writing to a Vec cannot fail.
    let _ = rmp::encode::write_array_len(out, n);
}

fn string(s: &str, out: &mut Vec<u8>) {
    let _ = rmp::encode::write_str(out, s);
}

fn binary(b: &[u8], out: &mut Vec<u8>) {
    let _ = rmp::encode::write_bin(out, b);
}

fn int(i: i64, out: &mut Vec<u8>) {
    // The most compact form, unsigned markers for non-negative values: as `MessagePackWriter`.
    let _ = rmp::encode::write_sint(out, i);
}

/// The payload of an invocation (`WriteInvocation`): 2 items, or 4 with a return address.
pub fn encode_invocation(invocation: &Invocation) -> Vec<u8> {
    let size: usize = invocation
        .messages
        .iter()
        .map(|(n, m)| n.len() + m.len() + 10)
        .sum();
    let mut out = Vec::with_capacity(size + 16);
    array_len(if invocation.return_to.is_some() { 4 } else { 2 }, &mut out);
    array_len(invocation.excluded.len() as u32, &mut out);
    for id in &invocation.excluded {
        string(id, &mut out);
    }
    let _ = rmp::encode::write_map_len(&mut out, invocation.messages.len() as u32);
    for (protocol, message) in &invocation.messages {
        string(protocol, &mut out);
        binary(message, &mut out);
    }
    if let Some(address) = &invocation.return_to {
        string(&address.invocation_id, &mut out);
        string(&address.channel, &mut out);
    }
    out
}

/// The payload of a group command (`WriteGroupCommand`).
pub fn encode_group_command(command: &GroupCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        16 + command.server.len() + command.group.len() + command.connection_id.len(),
    );
    array_len(5, &mut out);
    int(command.id.into(), &mut out);
    string(&command.server, &mut out);
    int(command.action.to_byte().into(), &mut out);
    string(&command.group, &mut out);
    string(&command.connection_id, &mut out);
    out
}

/// The payload of an ack (`WriteAck`).
pub fn encode_ack(id: i32) -> Vec<u8> {
    let mut out = Vec::with_capacity(6);
    array_len(1, &mut out);
    int(id.into(), &mut out);
    out
}

/// The payload of a client result's completion (`WriteCompletionMessage`).
pub fn encode_completion(completion: &CompletionEnvelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(completion.completion.len() + completion.protocol.len() + 8);
    array_len(2, &mut out);
    string(&completion.protocol, &mut out);
    binary(&completion.completion, &mut out);
    out
}

/// The payload of a user-level group change (our extension, see [`UserGroupCommand`]).
pub fn encode_user_group_command(command: &UserGroupCommand) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        24 + command.server.len()
            + command.group.as_ref().map_or(0, String::len)
            + command.user.len(),
    );
    array_len(5, &mut out);
    string(&command.server, &mut out);
    int(command.action.to_byte().into(), &mut out);
    match &command.group {
        Some(group) => string(group, &mut out),
        None => out.push(0xc0),
    }
    string(&command.user, &mut out);
    match command.ttl_ms {
        // Beyond i64 would be 292 million years: clamp.
        Some(ms) => int(i64::try_from(ms).unwrap_or(i64::MAX), &mut out),
        None => out.push(0xc0),
    }
    out
}

// ------------------------------------------------------------------------------------ readers

/// A bounds-checked MessagePack reader over one payload.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(payload: &'a [u8]) -> Result<Self, EnvelopeError> {
        if payload.len() > MAX_ENVELOPE_BYTES {
            return Err(EnvelopeError::TooLarge(payload.len()));
        }
        Ok(Reader { rest: payload })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], EnvelopeError> {
        if self.rest.len() < n {
            return Err(EnvelopeError::Truncated);
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, EnvelopeError> {
        Ok(self.take(1)?[0])
    }

    fn be(&mut self, n: usize) -> Result<u64, EnvelopeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    /// A count of items that each take at least one byte: never more than the bytes left.
    fn count(&mut self, n: u64) -> Result<u32, EnvelopeError> {
        if n > self.rest.len() as u64 {
            return Err(EnvelopeError::Truncated);
        }
        Ok(n as u32)
    }

    fn array_len(&mut self) -> Result<u32, EnvelopeError> {
        let b = self.byte()?;
        let n = match Marker::from_u8(b) {
            Marker::FixArray(n) => u64::from(n),
            Marker::Array16 => self.be(2)?,
            Marker::Array32 => self.be(4)?,
            _ => {
                return Err(EnvelopeError::UnexpectedType {
                    expected: "an array",
                    found: b,
                })
            }
        };
        self.count(n)
    }

    fn map_len(&mut self) -> Result<u32, EnvelopeError> {
        let b = self.byte()?;
        let n = match Marker::from_u8(b) {
            Marker::FixMap(n) => u64::from(n),
            Marker::Map16 => self.be(2)?,
            Marker::Map32 => self.be(4)?,
            _ => {
                return Err(EnvelopeError::UnexpectedType {
                    expected: "a map",
                    found: b,
                })
            }
        };
        // Each entry is a key and a value: at least two bytes.
        if n.saturating_mul(2) > self.rest.len() as u64 {
            return Err(EnvelopeError::Truncated);
        }
        Ok(n as u32)
    }

    fn int(&mut self) -> Result<i128, EnvelopeError> {
        let b = self.byte()?;
        Ok(match Marker::from_u8(b) {
            Marker::FixPos(n) => n.into(),
            Marker::FixNeg(n) => n.into(),
            Marker::U8 => self.be(1)?.into(),
            Marker::U16 => self.be(2)?.into(),
            Marker::U32 => self.be(4)?.into(),
            Marker::U64 => self.be(8)?.into(),
            Marker::I8 => (self.be(1)? as u8 as i8).into(),
            Marker::I16 => (self.be(2)? as u16 as i16).into(),
            Marker::I32 => (self.be(4)? as u32 as i32).into(),
            Marker::I64 => (self.be(8)? as i64).into(),
            _ => {
                return Err(EnvelopeError::UnexpectedType {
                    expected: "an integer",
                    found: b,
                })
            }
        })
    }

    fn i32(&mut self) -> Result<i32, EnvelopeError> {
        let n = self.int()?;
        i32::try_from(n).map_err(|_| EnvelopeError::OutOfRange(n))
    }

    fn u8(&mut self) -> Result<u8, EnvelopeError> {
        let n = self.int()?;
        u8::try_from(n).map_err(|_| EnvelopeError::OutOfRange(n))
    }

    /// The bytes of a `str` or `bin` (either is accepted for both), or `None` for nil.
    fn raw_or_nil(&mut self, expected: &'static str) -> Result<Option<&'a [u8]>, EnvelopeError> {
        let b = self.byte()?;
        let n = match Marker::from_u8(b) {
            Marker::Null => return Ok(None),
            Marker::FixStr(n) => u64::from(n),
            Marker::Str8 | Marker::Bin8 => self.be(1)?,
            Marker::Str16 | Marker::Bin16 => self.be(2)?,
            Marker::Str32 | Marker::Bin32 => self.be(4)?,
            _ => return Err(EnvelopeError::UnexpectedType { expected, found: b }),
        };
        if n > self.rest.len() as u64 {
            return Err(EnvelopeError::Truncated);
        }
        self.take(n as usize).map(Some)
    }

    /// Whether the next value is nil (then it is consumed).
    fn nil(&mut self) -> bool {
        if self.rest.first() == Some(&0xc0) {
            self.rest = &self.rest[1..];
            true
        } else {
            false
        }
    }

    /// A string, or `None` for nil.
    fn optional_string(&mut self) -> Result<Option<String>, EnvelopeError> {
        match self.raw_or_nil("a string or nil")? {
            None => Ok(None),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| EnvelopeError::InvalidUtf8),
        }
    }

    /// A string; nil reads as empty (the reference reads nil as a null string).
    fn string(&mut self) -> Result<String, EnvelopeError> {
        match self.raw_or_nil("a string")? {
            None => Ok(String::new()),
            Some(bytes) => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| EnvelopeError::InvalidUtf8),
        }
    }

    /// Binary data; nil reads as empty (as the reference's `ReadBytes() ?? empty`).
    fn binary(&mut self) -> Result<Vec<u8>, EnvelopeError> {
        Ok(self
            .raw_or_nil("binary data")?
            .map(<[u8]>::to_vec)
            .unwrap_or_default())
    }

    /// The outer array's length, at least `needed` (`ValidateArraySize`).
    fn outer(&mut self, kind: &'static str, needed: u32) -> Result<u32, EnvelopeError> {
        let found = self.array_len()?;
        if found < needed {
            return Err(EnvelopeError::TooFewItems {
                kind,
                needed,
                found,
            });
        }
        Ok(found)
    }
}

/// Reads an invocation payload (`ReadInvocation`).
pub fn decode_invocation(payload: &[u8]) -> Result<Invocation, EnvelopeError> {
    let mut r = Reader::new(payload)?;
    let len = r.outer("Invocation", 2)?;
    let ids = r.array_len()?;
    let mut excluded = Vec::with_capacity(ids as usize);
    for _ in 0..ids {
        excluded.push(r.string()?);
    }
    let count = r.map_len()?;
    let mut messages = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let protocol = r.string()?;
        let message = r.binary()?;
        messages.push((protocol, message));
    }
    let return_to = if len > 3 {
        let invocation_id = r.string()?;
        let channel = r.string()?;
        if invocation_id.is_empty() || channel.is_empty() {
            return Err(EnvelopeError::MissingReturnFields);
        }
        Some(ReturnAddress {
            invocation_id,
            channel,
        })
    } else {
        None
    };
    Ok(Invocation {
        excluded,
        messages,
        return_to,
    })
}

/// Reads a group command payload (`ReadGroupCommand`).
pub fn decode_group_command(payload: &[u8]) -> Result<GroupCommand, EnvelopeError> {
    let mut r = Reader::new(payload)?;
    r.outer("GroupCommand", 5)?;
    Ok(GroupCommand {
        id: r.i32()?,
        server: r.string()?,
        action: GroupAction::from_byte(r.u8()?),
        group: r.string()?,
        connection_id: r.string()?,
    })
}

/// Reads an ack payload (`ReadAck`): the id of the acknowledged group command.
pub fn decode_ack(payload: &[u8]) -> Result<i32, EnvelopeError> {
    let mut r = Reader::new(payload)?;
    r.outer("Ack", 1)?;
    r.i32()
}

/// Reads a user-level group change (our extension, see [`UserGroupCommand`]).
pub fn decode_user_group_command(payload: &[u8]) -> Result<UserGroupCommand, EnvelopeError> {
    let mut r = Reader::new(payload)?;
    r.outer("UserGroupCommand", 5)?;
    let server = r.string()?;
    let action = GroupAction::from_byte(r.u8()?);
    let group = r.optional_string()?;
    let user = r.string()?;
    let ttl_ms = if r.nil() {
        None
    } else {
        let n = r.int()?;
        Some(u64::try_from(n).map_err(|_| EnvelopeError::OutOfRange(n))?)
    };
    Ok(UserGroupCommand {
        server,
        action,
        group,
        user,
        ttl_ms,
    })
}

/// Reads a client result's completion payload (`ReadCompletion`).
pub fn decode_completion(payload: &[u8]) -> Result<CompletionEnvelope, EnvelopeError> {
    let mut r = Reader::new(payload)?;
    r.outer("CompletionMessage", 2)?;
    Ok(CompletionEnvelope {
        protocol: r.string()?,
        completion: r.binary()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A JSON Invocation `Send("hi")` as the server frames it, and its MessagePack twin.
    const JSON_MSG: &[u8] = b"{\"type\":1,\"target\":\"Send\",\"arguments\":[\"hi\"]}\x1e";
    const MSGPACK_MSG: &[u8] = &[
        0x0e, 0x96, 0x01, 0x80, 0xc0, 0xa4, b'S', b'e', b'n', b'd', 0x91, 0xa2, b'h', b'i', 0x90,
    ];

    fn invocation(excluded: &[&str]) -> Invocation {
        Invocation {
            excluded: excluded.iter().map(|s| s.to_string()).collect(),
            messages: vec![
                ("json".into(), JSON_MSG.to_vec()),
                ("messagepack".into(), MSGPACK_MSG.to_vec()),
            ],
            return_to: None,
        }
    }

    fn golden_invocation(excluded: &[u8]) -> Vec<u8> {
        let mut g = vec![0x92]; // fixarray(2)
        g.extend_from_slice(excluded);
        g.push(0x82); // fixmap(2)
        g.extend_from_slice(b"\xa4json");
        g.extend_from_slice(&[0xc4, JSON_MSG.len() as u8]); // bin8
        g.extend_from_slice(JSON_MSG);
        g.extend_from_slice(b"\xabmessagepack");
        g.extend_from_slice(&[0xc4, MSGPACK_MSG.len() as u8]);
        g.extend_from_slice(MSGPACK_MSG);
        g
    }

    #[test]
    fn an_invocation_without_excluded_ids_is_an_empty_array_then_the_protocol_map() {
        let bytes = encode_invocation(&invocation(&[]));
        assert_eq!(bytes, golden_invocation(&[0x90]));
        assert_eq!(decode_invocation(&bytes).unwrap(), invocation(&[]));
    }

    #[test]
    fn an_invocation_lists_its_excluded_connection_ids_as_strings() {
        let bytes = encode_invocation(&invocation(&["a", "bc"]));
        assert_eq!(bytes, golden_invocation(b"\x92\xa1a\xa2bc"));
        let back = decode_invocation(&bytes).unwrap();
        assert_eq!(back.excluded, ["a", "bc"]);
        assert_eq!(back.message("messagepack"), Some(MSGPACK_MSG));
        assert_eq!(back.message("xml"), None);
    }

    #[test]
    fn a_client_result_invocation_has_four_items_ending_with_id_and_return_channel() {
        let mut inv = invocation(&[]);
        inv.return_to = Some(ReturnAddress {
            invocation_id: "7".into(),
            channel: "H:internal:return:s".into(),
        });
        let bytes = encode_invocation(&inv);
        let mut golden = golden_invocation(&[0x90]);
        golden[0] = 0x94;
        golden.extend_from_slice(b"\xa17\xb3H:internal:return:s");
        assert_eq!(bytes, golden);
        assert_eq!(decode_invocation(&bytes).unwrap(), inv);
    }

    #[test]
    fn a_group_command_is_id_server_action_group_connection() {
        let command = GroupCommand {
            id: 300,
            server: "node_1".into(),
            action: GroupAction::Add,
            group: "g".into(),
            connection_id: "c1".into(),
        };
        let bytes = encode_group_command(&command);
        // 300 is a uint16 (0xcd 0x01 0x2c), as MessagePackWriter.Write(int) writes it.
        assert_eq!(bytes, b"\x95\xcd\x01\x2c\xa6node_1\x01\xa1g\xa2c1".to_vec());
        assert_eq!(decode_group_command(&bytes).unwrap(), command);
        let remove = GroupCommand {
            id: 1,
            action: GroupAction::Remove,
            ..command
        };
        let bytes = encode_group_command(&remove);
        assert_eq!(bytes, b"\x95\x01\xa6node_1\x02\xa1g\xa2c1".to_vec());
        assert_eq!(decode_group_command(&bytes).unwrap(), remove);
    }

    #[test]
    fn an_ack_is_a_one_item_array_with_the_command_id() {
        assert_eq!(encode_ack(5), [0x91, 0x05]);
        assert_eq!(encode_ack(200), [0x91, 0xcc, 200]);
        assert_eq!(encode_ack(-1), [0x91, 0xff]);
        assert_eq!(encode_ack(70_000), [0x91, 0xce, 0, 1, 0x11, 0x70]);
        for id in [0, 5, 200, -1, -200, 70_000, i32::MAX, i32::MIN] {
            assert_eq!(decode_ack(&encode_ack(id)), Ok(id));
        }
    }

    #[test]
    fn a_completion_is_the_protocol_name_then_the_serialized_message() {
        let envelope = CompletionEnvelope {
            protocol: "json".into(),
            completion: b"{\"type\":3,\"invocationId\":\"1\",\"result\":2}\x1e".to_vec(),
        };
        let bytes = encode_completion(&envelope);
        let mut golden = b"\x92\xa4json\xc4".to_vec();
        golden.push(envelope.completion.len() as u8);
        golden.extend_from_slice(&envelope.completion);
        assert_eq!(bytes, golden);
        assert_eq!(decode_completion(&bytes).unwrap(), envelope);
    }

    #[test]
    fn a_user_group_command_is_server_action_group_user_ttl_with_nil_for_none() {
        let add = UserGroupCommand {
            server: "n".into(),
            action: GroupAction::Add,
            group: Some("g".into()),
            user: "ann".into(),
            ttl_ms: Some(1500),
        };
        let bytes = encode_user_group_command(&add);
        assert_eq!(bytes, b"\x95\xa1n\x01\xa1g\xa3ann\xcd\x05\xdc".to_vec());
        assert_eq!(decode_user_group_command(&bytes).unwrap(), add);
        let remove_all = UserGroupCommand {
            action: GroupAction::Remove,
            group: None,
            ttl_ms: None,
            ..add
        };
        let bytes = encode_user_group_command(&remove_all);
        assert_eq!(bytes, b"\x95\xa1n\x02\xc0\xa3ann\xc0".to_vec());
        assert_eq!(decode_user_group_command(&bytes).unwrap(), remove_all);
        // A negative ttl, a missing item, a non-string group: errors.
        assert_eq!(
            decode_user_group_command(b"\x95\xa1n\x01\xa1g\xa1u\xff"),
            Err(EnvelopeError::OutOfRange(-1))
        );
        assert!(decode_user_group_command(b"\x94\xa1n\x01\xa1g\xa1u").is_err());
        assert!(decode_user_group_command(b"\x95\xa1n\x01\x05\xa1u\xc0").is_err());
    }

    #[test]
    fn readers_ignore_extra_items_and_accept_wide_integers_and_str_for_bin() {
        // An ack with an extra item and its id as an int64.
        let ack = b"\x92\xd3\x00\x00\x00\x00\x00\x00\x00\x09\xc0";
        assert_eq!(decode_ack(ack), Ok(9));
        // A 3-item invocation (the third item is discarded), blob written as str8, nil id.
        let payload = b"\x93\x91\xc0\x81\xa4json\xd9\x02{}\xc3";
        let inv = decode_invocation(payload).unwrap();
        assert_eq!(inv.excluded, [""]);
        assert_eq!(inv.message("json"), Some(&b"{}"[..]));
        assert_eq!(inv.return_to, None);
        // A group command with an unknown action byte.
        let command = decode_group_command(b"\x95\x01\xa1s\x09\xa1g\xa1c").unwrap();
        assert_eq!(command.action, GroupAction::Other(9));
    }

    #[test]
    fn malformed_payloads_are_errors_never_panics() {
        let cases: &[(&[u8], EnvelopeError)] = &[
            (b"", EnvelopeError::Truncated),
            (
                b"\x91\x90",
                EnvelopeError::TooFewItems {
                    kind: "Invocation",
                    needed: 2,
                    found: 1,
                },
            ),
            (
                b"\x92\xa1x\x80",
                EnvelopeError::UnexpectedType {
                    expected: "an array",
                    found: 0xa1,
                },
            ),
            // An array of 2^32-1 ids in a few bytes: refused before allocating.
            (b"\x92\xdd\xff\xff\xff\xff", EnvelopeError::Truncated),
            (b"\x92\x90\xdf\xff\xff\xff\xff", EnvelopeError::Truncated),
            (
                b"\x92\x90\x81\xa4json\xc6\xff\xff\xff\xff",
                EnvelopeError::Truncated,
            ),
            (b"\x92\x91\xa2\xff\xfe\x80", EnvelopeError::InvalidUtf8),
            (b"\x94\x90\x80\xc0\xa1c", EnvelopeError::MissingReturnFields),
        ];
        for (payload, error) in cases {
            assert_eq!(
                decode_invocation(payload).as_ref(),
                Err(error),
                "{payload:x?}"
            );
        }
        assert_eq!(
            decode_group_command(b"\x95\xcf\xff\xff\xff\xff\xff\xff\xff\xff\xa1s\x01\xa1g\xa1c"),
            Err(EnvelopeError::OutOfRange(u64::MAX.into()))
        );
        assert_eq!(
            decode_group_command(b"\x95\x01\xa1s\xcd\x01\x00\xa1g\xa1c"),
            Err(EnvelopeError::OutOfRange(256))
        );
        assert_eq!(
            decode_invocation(&vec![0x90; MAX_ENVELOPE_BYTES + 1]),
            Err(EnvelopeError::TooLarge(MAX_ENVELOPE_BYTES + 1))
        );
        // Every prefix of a valid payload fails cleanly.
        let full = encode_invocation(&invocation(&["a"]));
        for end in 0..full.len() {
            assert!(decode_invocation(&full[..end]).is_err());
        }
    }
}
