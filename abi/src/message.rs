//! Reading and writing the call envelopes with the ABI's limits.
//!
//! Every message that crosses the syscall boundary goes through
//! [`read_message`]: its framing (segment table) is checked against its
//! length before capnp sees it, it is decoded with [`reader_options`], and
//! it is then walked completely once, so a truncated message, a pointer out
//! of bounds, nesting past [`NESTING_LIMIT`] or a traversal past
//! [`TRAVERSAL_LIMIT_WORDS`] are rejected up front rather than in the middle
//! of a handler. capnp capability pointers are refused: capabilities travel
//! as `CapSlot` indexes into the envelope's `caps` list (see the schema).
//!
//! [`NESTING_LIMIT`]: crate::limits::NESTING_LIMIT
//! [`TRAVERSAL_LIMIT_WORDS`]: crate::limits::TRAVERSAL_LIMIT_WORDS

use crate::capos_capnp::{call, incoming_call, return_};
use crate::limits::{reader_options, MAX_CAPS_PER_MESSAGE, MAX_MESSAGE_BYTES};
use crate::{Handle, SysError};
use alloc::vec::Vec;
use capnp::message::{Builder, HeapAllocator, Reader};
use capnp::serialize::OwnedSegments;
use capnp::traits::Owned;
use core::fmt;

/// Most segments a message may have. The capnp builder writes one segment
/// for anything up to its first-segment size and few more beyond; many tiny
/// segments only cost the reader.
pub const MAX_SEGMENTS: usize = 32;

/// A message decoded and validated by [`read_message`].
pub type MessageReader = Reader<OwnedSegments>;

/// Why a message was refused.
#[derive(Debug, Clone)]
pub enum MessageError {
    /// Longer than [`MAX_MESSAGE_BYTES`].
    TooLarge { len: usize, max: usize },
    /// Empty, not a whole number of words, or the segment table disagrees
    /// with the length (truncated or padded).
    BadFraming(&'static str),
    /// capnp rejected the content (out-of-bounds pointer, nesting or
    /// traversal limit, wrong pointer kind, bad UTF-8, ...).
    Malformed(capnp::Error),
    /// The message holds a capnp capability pointer (not used by capOS).
    CapabilityPointer,
    /// The envelope's `caps` list is longer than [`MAX_CAPS_PER_MESSAGE`].
    TooManyCaps { count: usize, max: usize },
    /// A `CapSlot` field indexes past the envelope's `caps` list.
    BadCapSlot { slot: u32, caps: usize },
    /// A field is longer than its limit (e.g. a Console line).
    FieldTooLarge { field: &'static str, len: usize, max: usize },
    /// An enum value this ABI version does not know.
    UnknownEnumValue { field: &'static str, value: u16 },
}

impl MessageError {
    /// The syscall status the kernel reports for this refusal.
    pub fn sys_error(&self) -> SysError {
        match self {
            MessageError::TooLarge { .. } => SysError::MessageTooLarge,
            MessageError::TooManyCaps { .. } => SysError::TooManyCaps,
            _ => SysError::MalformedMessage,
        }
    }
}

impl From<capnp::Error> for MessageError {
    fn from(e: capnp::Error) -> Self {
        MessageError::Malformed(e)
    }
}

impl From<capnp::NotInSchema> for MessageError {
    fn from(e: capnp::NotInSchema) -> Self {
        MessageError::UnknownEnumValue { field: "enum", value: e.0 }
    }
}

impl fmt::Display for MessageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageError::TooLarge { len, max } => write!(f, "message of {len} bytes exceeds the limit of {max}"),
            MessageError::BadFraming(why) => write!(f, "bad message framing: {why}"),
            MessageError::Malformed(e) => write!(f, "malformed message: {e}"),
            MessageError::CapabilityPointer => write!(f, "message contains a capnp capability pointer"),
            MessageError::TooManyCaps { count, max } => write!(f, "message carries {count} capabilities, more than {max}"),
            MessageError::BadCapSlot { slot, caps } => write!(f, "capability slot {slot} is outside the {caps} transferred"),
            MessageError::FieldTooLarge { field, len, max } => write!(f, "{field} of {len} bytes exceeds the limit of {max}"),
            MessageError::UnknownEnumValue { field, value } => write!(f, "unknown value {value} for {field}"),
        }
    }
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Check the segment table against the length: the message must be exactly
/// the segment table plus the segments it declares.
fn check_framing(bytes: &[u8]) -> Result<(), MessageError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    if bytes.len() < 8 {
        return Err(MessageError::BadFraming("shorter than one word"));
    }
    if !bytes.len().is_multiple_of(8) {
        return Err(MessageError::BadFraming("not a whole number of 8-byte words"));
    }
    let segments = le32(bytes, 0) as usize + 1;
    if segments > MAX_SEGMENTS || segments == 0 {
        return Err(MessageError::BadFraming("too many segments"));
    }
    // 4 bytes of count + 4 per segment, padded to a word.
    let table = (4 + 4 * segments).div_ceil(8) * 8;
    if table > bytes.len() {
        return Err(MessageError::BadFraming("segment table is truncated"));
    }
    let mut words: usize = 0;
    for i in 0..segments {
        words += le32(bytes, 4 + 4 * i) as usize;
    }
    match words.checked_mul(8).and_then(|b| b.checked_add(table)) {
        Some(total) if total == bytes.len() => Ok(()),
        Some(total) if total > bytes.len() => Err(MessageError::BadFraming("message is truncated")),
        _ => Err(MessageError::BadFraming("bytes after the last segment")),
    }
}

/// Decode and fully validate one serialized message (see the module docs).
pub fn read_message(bytes: &[u8]) -> Result<MessageReader, MessageError> {
    check_framing(bytes)?;
    let mut slice = bytes;
    let reader = capnp::serialize::read_message(&mut slice, reader_options())?;
    let size = reader.get_root::<capnp::any_pointer::Reader>()?.target_size()?;
    if size.cap_count != 0 {
        return Err(MessageError::CapabilityPointer);
    }
    Ok(reader)
}

/// Serialize `builder`, refusing a result longer than [`MAX_MESSAGE_BYTES`].
pub fn write_message(builder: &Builder<HeapAllocator>) -> Result<Vec<u8>, MessageError> {
    let bytes = capnp::serialize::write_message_to_words(builder);
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(MessageError::TooLarge { len: bytes.len(), max: MAX_MESSAGE_BYTES });
    }
    Ok(bytes)
}

fn read_caps(list: capnp::primitive_list::Reader<'_, u64>) -> Result<Vec<Handle>, MessageError> {
    let count = list.len() as usize;
    if count > MAX_CAPS_PER_MESSAGE {
        return Err(MessageError::TooManyCaps { count, max: MAX_CAPS_PER_MESSAGE });
    }
    Ok(list.iter().map(Handle::from_raw).collect())
}

fn check_caps_len(caps: &[Handle]) -> Result<u32, MessageError> {
    if caps.len() > MAX_CAPS_PER_MESSAGE {
        return Err(MessageError::TooManyCaps { count: caps.len(), max: MAX_CAPS_PER_MESSAGE });
    }
    Ok(caps.len() as u32)
}

fn set_caps(mut list: capnp::primitive_list::Builder<'_, u64>, caps: &[Handle]) {
    for (i, h) in caps.iter().enumerate() {
        list.set(i as u32, h.raw());
    }
}

fn slot(caps: &[Handle], slot: u32) -> Result<Handle, MessageError> {
    caps.get(slot as usize).copied().ok_or(MessageError::BadCapSlot { slot, caps: caps.len() })
}

/// A validated `Call` envelope.
pub struct CallMessage {
    reader: MessageReader,
    interface_id: u64,
    method_id: u16,
    caps: Vec<Handle>,
}

impl CallMessage {
    /// Read a `Call` (what a client passes to `cap_call`).
    pub fn read(bytes: &[u8]) -> Result<CallMessage, MessageError> {
        let reader = read_message(bytes)?;
        let root = reader.get_root::<call::Reader>()?;
        let (interface_id, method_id) = (root.get_interface_id(), root.get_method_id());
        let caps = read_caps(root.get_caps()?)?;
        Ok(CallMessage { reader, interface_id, method_id, caps })
    }
    pub fn interface_id(&self) -> u64 {
        self.interface_id
    }
    pub fn method_id(&self) -> u16 {
        self.method_id
    }
    /// Handles the caller transfers, in `caps` order.
    pub fn caps(&self) -> &[Handle] {
        &self.caps
    }
    /// The handle a `CapSlot` field of the params names.
    pub fn cap(&self, slot: u32) -> Result<Handle, MessageError> {
        self::slot(&self.caps, slot)
    }
    /// The params, typed.
    pub fn params<T: Owned>(&self) -> Result<T::Reader<'_>, MessageError> {
        Ok(self.params_any()?.get_as::<T::Reader<'_>>()?)
    }
    /// The params, untyped (to forward them to a server).
    pub fn params_any(&self) -> Result<capnp::any_pointer::Reader<'_>, MessageError> {
        Ok(self.reader.get_root::<call::Reader>()?.get_params())
    }
}

/// Build a `Call`: `fill` writes the params struct `T`.
pub fn encode_call<T: Owned>(
    interface_id: u64,
    method_id: u16,
    caps: &[Handle],
    fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>,
) -> Result<Vec<u8>, MessageError> {
    let n = check_caps_len(caps)?;
    let mut message = Builder::new_default();
    let mut root = message.init_root::<call::Builder>();
    root.set_interface_id(interface_id);
    root.set_method_id(method_id);
    set_caps(root.reborrow().init_caps(n), caps);
    fill(root.init_params().init_as::<T::Builder<'_>>())?;
    write_message(&message)
}

/// A validated `Return` envelope.
pub struct ReturnMessage {
    reader: MessageReader,
    caps: Vec<Handle>,
}

impl ReturnMessage {
    /// Read a `Return` (what `cap_call` writes back, what a server replies).
    pub fn read(bytes: &[u8]) -> Result<ReturnMessage, MessageError> {
        let reader = read_message(bytes)?;
        let caps = read_caps(reader.get_root::<return_::Reader>()?.get_caps()?)?;
        Ok(ReturnMessage { reader, caps })
    }
    pub fn caps(&self) -> &[Handle] {
        &self.caps
    }
    /// The handle a `CapSlot` field of the results names.
    pub fn cap(&self, slot: u32) -> Result<Handle, MessageError> {
        self::slot(&self.caps, slot)
    }
    pub fn results<T: Owned>(&self) -> Result<T::Reader<'_>, MessageError> {
        Ok(self.results_any()?.get_as::<T::Reader<'_>>()?)
    }
    pub fn results_any(&self) -> Result<capnp::any_pointer::Reader<'_>, MessageError> {
        Ok(self.reader.get_root::<return_::Reader>()?.get_results())
    }
}

/// Build a `Return`: `fill` writes the results struct `T`.
pub fn encode_return<T: Owned>(
    caps: &[Handle],
    fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>,
) -> Result<Vec<u8>, MessageError> {
    let n = check_caps_len(caps)?;
    let mut message = Builder::new_default();
    let mut root = message.init_root::<return_::Builder>();
    set_caps(root.reborrow().init_caps(n), caps);
    fill(root.init_results().init_as::<T::Builder<'_>>())?;
    write_message(&message)
}

/// Rebuild a `Return` with the same results and new `caps` (the kernel
/// replaces a server's handles with the handles it installed in the caller).
pub fn reencode_return(ret: &ReturnMessage, caps: &[Handle]) -> Result<Vec<u8>, MessageError> {
    let n = check_caps_len(caps)?;
    let mut message = Builder::new_default();
    let mut root = message.init_root::<return_::Builder>();
    set_caps(root.reborrow().init_caps(n), caps);
    root.init_results().set_as(ret.results_any()?)?;
    write_message(&message)
}

/// A validated `IncomingCall` envelope (what a server receives). The scalar
/// fields are read once in [`IncomingCallMessage::read`]: every access to a
/// capnp reader counts against the traversal limit, so accessors that
/// re-read the message could eventually fail.
pub struct IncomingCallMessage {
    reader: MessageReader,
    reply_token: u64,
    badge: u64,
    interface_id: u64,
    method_id: u16,
    caps: Vec<Handle>,
}

impl IncomingCallMessage {
    pub fn read(bytes: &[u8]) -> Result<IncomingCallMessage, MessageError> {
        let reader = read_message(bytes)?;
        let root = reader.get_root::<incoming_call::Reader>()?;
        let (reply_token, badge) = (root.get_reply_token(), root.get_badge());
        let (interface_id, method_id) = (root.get_interface_id(), root.get_method_id());
        let caps = read_caps(root.get_caps()?)?;
        Ok(IncomingCallMessage { reader, reply_token, badge, interface_id, method_id, caps })
    }
    pub fn reply_token(&self) -> u64 {
        self.reply_token
    }
    pub fn badge(&self) -> u64 {
        self.badge
    }
    pub fn interface_id(&self) -> u64 {
        self.interface_id
    }
    pub fn method_id(&self) -> u16 {
        self.method_id
    }
    pub fn caps(&self) -> &[Handle] {
        &self.caps
    }
    pub fn cap(&self, slot: u32) -> Result<Handle, MessageError> {
        self::slot(&self.caps, slot)
    }
    pub fn params<T: Owned>(&self) -> Result<T::Reader<'_>, MessageError> {
        Ok(self.reader.get_root::<incoming_call::Reader>()?.get_params().get_as::<T::Reader<'_>>()?)
    }
}

/// Build the `IncomingCall` the kernel delivers to a server for `call`, with
/// the caller's capabilities already installed in the server as `caps`.
/// The envelope is two words larger than the `Call`'s, so a call within a
/// few bytes of [`MAX_MESSAGE_BYTES`] cannot be forwarded
/// ([`MessageError::TooLarge`], which the kernel reports to the caller).
pub fn encode_incoming_call(
    reply_token: u64,
    badge: u64,
    call: &CallMessage,
    caps: &[Handle],
) -> Result<Vec<u8>, MessageError> {
    let n = check_caps_len(caps)?;
    let mut message = Builder::new_default();
    let mut root = message.init_root::<incoming_call::Builder>();
    root.set_reply_token(reply_token);
    root.set_badge(badge);
    root.set_interface_id(call.interface_id());
    root.set_method_id(call.method_id());
    set_caps(root.reborrow().init_caps(n), caps);
    root.init_params().set_as(call.params_any()?)?;
    write_message(&message)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::capos_capnp::{console, file, stat_result};
    use crate::interfaces;
    use crate::limits::{MAX_MESSAGE_BYTES, NESTING_LIMIT};

    pub fn console_call(line: &str) -> Vec<u8> {
        encode_call::<console::write_line_params::Owned>(interfaces::CONSOLE, 0, &[], |mut p| {
            p.set_line(line);
            Ok(())
        })
        .unwrap()
    }

    #[test]
    fn call_round_trips() {
        let caps = [Handle::new(3, 1), Handle::new(9, 7)];
        let bytes = encode_call::<file::read_params::Owned>(interfaces::FILE, 0, &caps, |mut p| {
            p.set_offset(4096);
            p.set_length(100);
            Ok(())
        })
        .unwrap();
        let call = CallMessage::read(&bytes).unwrap();
        assert_eq!(call.interface_id(), interfaces::FILE);
        assert_eq!(call.method_id(), 0);
        assert_eq!(call.caps(), &caps);
        assert_eq!(call.cap(1).unwrap(), Handle::new(9, 7));
        assert!(matches!(call.cap(2), Err(MessageError::BadCapSlot { slot: 2, caps: 2 })));
        let p = call.params::<file::read_params::Owned>().unwrap();
        assert_eq!((p.get_offset(), p.get_length()), (4096, 100));
    }

    #[test]
    fn return_and_incoming_call_round_trip() {
        let bytes = encode_return::<stat_result::Owned>(&[Handle::new(1, 1)], |r| {
            let mut s = r.init_ok();
            s.set_size(77);
            Ok(())
        })
        .unwrap();
        let ret = ReturnMessage::read(&bytes).unwrap();
        assert_eq!(ret.caps(), &[Handle::new(1, 1)]);
        match ret.results::<stat_result::Owned>().unwrap().which().unwrap() {
            stat_result::Ok(s) => assert_eq!(s.unwrap().get_size(), 77),
            stat_result::Err(_) => panic!("expected ok"),
        }
        let swapped = reencode_return(&ret, &[Handle::new(5, 2)]).unwrap();
        let ret2 = ReturnMessage::read(&swapped).unwrap();
        assert_eq!(ret2.caps(), &[Handle::new(5, 2)]);
        match ret2.results::<stat_result::Owned>().unwrap().which().unwrap() {
            stat_result::Ok(s) => assert_eq!(s.unwrap().get_size(), 77),
            stat_result::Err(_) => panic!("expected ok"),
        }

        let call = CallMessage::read(&console_call("hello")).unwrap();
        let inc = encode_incoming_call(0xabc, 42, &call, &[Handle::new(2, 3)]).unwrap();
        let inc = IncomingCallMessage::read(&inc).unwrap();
        assert_eq!((inc.reply_token(), inc.badge()), (0xabc, 42));
        assert_eq!((inc.interface_id(), inc.method_id()), (interfaces::CONSOLE, 0));
        assert_eq!(inc.caps(), &[Handle::new(2, 3)]);
        assert_eq!(inc.params::<console::write_line_params::Owned>().unwrap().get_line().unwrap(), "hello");
        // Scalar accessors never touch the reader, so they cannot exhaust the
        // traversal limit however often a server calls them.
        for _ in 0..(crate::limits::TRAVERSAL_LIMIT_WORDS + 1) {
            assert_eq!((inc.reply_token(), inc.badge(), inc.method_id()), (0xabc, 42, 0));
        }
        assert!(inc.params::<console::write_line_params::Owned>().is_ok());
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = console_call("a line that makes the message a few words long");
        assert!(CallMessage::read(&bytes).is_ok());
        for n in 0..bytes.len() {
            assert!(CallMessage::read(&bytes[..n]).is_err(), "truncated to {n} bytes must be rejected");
        }
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 8]);
        assert!(matches!(read_message(&padded), Err(MessageError::BadFraming(_))), "trailing words");
    }

    #[test]
    fn a_segment_table_that_lies_is_rejected() {
        let mut bytes = console_call("x");
        // Claim one more word than present.
        let words = le32(&bytes, 4) + 1;
        bytes[4..8].copy_from_slice(&words.to_le_bytes());
        assert!(matches!(read_message(&bytes), Err(MessageError::BadFraming("message is truncated"))));
        let mut bytes = console_call("x");
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_message(&bytes), Err(MessageError::BadFraming(_))));
        let mut bytes = console_call("x");
        bytes[0..4].copy_from_slice(&(MAX_SEGMENTS as u32).to_le_bytes());
        assert!(matches!(read_message(&bytes), Err(MessageError::BadFraming(_))));
    }

    /// A message whose root is a chain of `depth` structs, each holding one
    /// pointer to the next (built word by word).
    pub fn nested_chain(depth: usize) -> Vec<u8> {
        let words = depth + 1;
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_le_bytes()); // one segment
        b.extend_from_slice(&(words as u32).to_le_bytes());
        for _ in 0..depth {
            // struct pointer, offset 0, 0 data words, 1 pointer
            b.extend_from_slice(&(1u64 << 48).to_le_bytes());
        }
        b.extend_from_slice(&0u64.to_le_bytes());
        b
    }

    #[test]
    fn nesting_past_the_limit_is_rejected() {
        assert!(read_message(&nested_chain(NESTING_LIMIT as usize)).is_ok());
        let Err(e) = read_message(&nested_chain(NESTING_LIMIT as usize + 1)) else { panic!("accepted") };
        match e {
            MessageError::Malformed(e) => assert_eq!(e.kind, capnp::ErrorKind::MessageIsTooDeeplyNested),
            other => panic!("expected nesting error, got {other:?}"),
        }
        // The same chain smuggled inside a Call's params (built with a
        // permissive reader, as a hostile client could) is refused too.
        let deep = nested_chain(NESTING_LIMIT as usize + 4);
        let mut permissive = capnp::message::ReaderOptions::new();
        permissive.nesting_limit(1000);
        let source = capnp::serialize::read_message(&mut &deep[..], permissive).unwrap();
        let mut message = Builder::new_default();
        let mut root = message.init_root::<call::Builder>();
        root.set_interface_id(interfaces::CONSOLE);
        root.init_params().set_as(source.get_root::<capnp::any_pointer::Reader>().unwrap()).unwrap();
        let bytes = write_message(&message).unwrap();
        assert!(matches!(CallMessage::read(&bytes), Err(MessageError::Malformed(_))));
    }

    #[test]
    fn oversize_messages_are_rejected_both_ways() {
        let line = "x".repeat(MAX_MESSAGE_BYTES);
        let e = encode_call::<console::write_line_params::Owned>(interfaces::CONSOLE, 0, &[], |mut p| {
            p.set_line(line.as_str());
            Ok(())
        })
        .unwrap_err();
        assert!(matches!(e, MessageError::TooLarge { .. }));
        assert_eq!(e.sys_error(), SysError::MessageTooLarge);
        // A well-framed message one word over the limit.
        let words = MAX_MESSAGE_BYTES / 8;
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(words as u32).to_le_bytes());
        b.resize(8 + words * 8, 0);
        assert!(matches!(read_message(&b), Err(MessageError::TooLarge { .. })));
        // Exactly at the limit is fine (framing and capnp both accept it).
        b.truncate(MAX_MESSAGE_BYTES);
        b[4..8].copy_from_slice(&((words - 1) as u32).to_le_bytes());
        assert!(read_message(&b).is_ok());
    }

    #[test]
    fn a_maximal_call_cannot_be_forwarded() {
        // The largest Console call that fits...
        let fits = |n: usize| {
            encode_call::<console::write_line_params::Owned>(interfaces::CONSOLE, 0, &[], |mut p| {
                p.set_line("z".repeat(n).as_str());
                Ok(())
            })
        };
        let mut n = MAX_MESSAGE_BYTES - 4096;
        assert!(fits(n).is_ok());
        while fits(n + 8).is_ok() {
            n += 8;
        }
        let call = CallMessage::read(&fits(n).unwrap()).unwrap();
        // ...is two words too big once wrapped as an IncomingCall.
        let e = encode_incoming_call(1, 0, &call, &[]).unwrap_err();
        assert!(matches!(e, MessageError::TooLarge { .. }));
        assert_eq!(e.sys_error(), SysError::MessageTooLarge);
        // A call 16 bytes shorter is forwarded.
        let call = CallMessage::read(&fits(n - 16).unwrap()).unwrap();
        assert!(encode_incoming_call(1, 0, &call, &[]).is_ok());
    }

    #[test]
    fn traversal_amplification_is_bounded() {
        // A list of 8191 pointers all aimed at one big text: tiny on the wire,
        // huge to traverse.
        let text_words = 1000usize;
        let ptrs = 8191usize;
        let mut words: Vec<u64> = Vec::new();
        // root: list pointer, offset 0, element size 6 (pointer), count ptrs
        words.push(0b01 | (6u64 << 32) | ((ptrs as u64) << 35));
        let text_at = 1 + ptrs; // word index of the text
        for i in 0..ptrs {
            let here = 1 + i; // pointer's own word
            let offset = (text_at - (here + 1)) as u64; // words from after the pointer
            // list pointer to bytes (element size 2), count = text bytes
            words.push(0b01 | (offset << 2) | (2u64 << 32) | (((text_words * 8) as u64) << 35));
        }
        words.extend(std::iter::repeat_n(0x4141_4141_4141_4141, text_words));
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&(words.len() as u32).to_le_bytes());
        for w in &words {
            b.extend_from_slice(&w.to_le_bytes());
        }
        assert!(b.len() <= MAX_MESSAGE_BYTES);
        match read_message(&b) {
            Err(MessageError::Malformed(e)) => assert_eq!(e.kind, capnp::ErrorKind::ReadLimitExceeded),
            other => panic!("expected the traversal limit, got {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn capability_pointers_and_too_many_caps_are_rejected() {
        // Root pointer = capability pointer (kind 3), index 0.
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        assert!(matches!(read_message(&b), Err(MessageError::CapabilityPointer)));

        let many: Vec<Handle> = (0..=MAX_CAPS_PER_MESSAGE as u32).map(|i| Handle::new(i, 1)).collect();
        let e = encode_call::<console::write_line_params::Owned>(interfaces::CONSOLE, 0, &many, |_| Ok(())).unwrap_err();
        assert!(matches!(e, MessageError::TooManyCaps { .. }));
        assert_eq!(e.sys_error(), SysError::TooManyCaps);
        // Hand-built: a Call with too many caps is refused on read.
        let mut message = Builder::new_default();
        let root = message.init_root::<call::Builder>();
        let mut list = root.init_caps(MAX_CAPS_PER_MESSAGE as u32 + 1);
        for i in 0..=MAX_CAPS_PER_MESSAGE as u32 {
            list.set(i, Handle::new(i, 1).raw());
        }
        let bytes = write_message(&message).unwrap();
        assert!(matches!(CallMessage::read(&bytes), Err(MessageError::TooManyCaps { .. })));
    }

    #[test]
    fn no_panic_on_bit_flips() {
        let bytes = console_call("bit flips must never panic the reader");
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                if let Ok(call) = CallMessage::read(&b) {
                    let _ = call.params::<console::write_line_params::Owned>().map(|p| p.get_line().map(|l| l.to_str().map(|s| s.len())));
                }
            }
        }
    }
}
