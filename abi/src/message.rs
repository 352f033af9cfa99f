//! Reading and writing capnp messages with the ABI's limits.
//!
//! The call envelope is not capnp any more (see [`crate::ipc`]): a message
//! here is a method's params or results and nothing else. Two ways in:
//!
//! - [`read_flat`] reads a message **in place** from a borrowed buffer (the
//!   IPC area) without copying or allocating. Its framing (segment table)
//!   is checked against its length before capnp sees it; the traversal and
//!   nesting limits of [`reader_options`] are enforced lazily, on the
//!   access that crosses them. This is the call path.
//! - [`read_message`] copies and walks the whole message once up front, so
//!   a truncated message, a pointer out of bounds, nesting past
//!   [`NESTING_LIMIT`] or a traversal past [`TRAVERSAL_LIMIT_WORDS`] is
//!   rejected before any field is read. Boot-time structures (the manifest,
//!   `StartInfo`) use it.
//!
//! And one way out on the call path: [`build_flat`] builds a message in
//! place in a zeroed buffer (the IPC area's send buffer, or the caller's
//! receive buffer for a kernel object's results) without allocating.
//!
//! capnp capability pointers are never used: capabilities travel as
//! handles beside the message, and `CapSlot` fields index them.
//!
//! [`NESTING_LIMIT`]: crate::limits::NESTING_LIMIT
//! [`TRAVERSAL_LIMIT_WORDS`]: crate::limits::TRAVERSAL_LIMIT_WORDS

use crate::limits::{reader_options, MAX_MESSAGE_BYTES};
use crate::SysError;
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

/// A message read in place from a borrowed buffer: no copy, no allocation.
pub type FlatReader<'a> = Reader<FlatSegments<'a>>;

/// The segments of a message read in place. Our builders always write one
/// segment, and that case is a plain slice (capnp's general no-alloc
/// segment table re-parses and re-checks on every segment lookup, which
/// was a tenth of a null call); anything else goes through capnp's own.
pub enum FlatSegments<'a> {
    One(&'a [u8]),
    Many(capnp::serialize::NoAllocSliceSegments<'a>),
}

impl capnp::message::ReaderSegments for FlatSegments<'_> {
    #[inline]
    fn get_segment(&self, idx: u32) -> Option<&[u8]> {
        match self {
            FlatSegments::One(s) => (idx == 0).then_some(*s),
            FlatSegments::Many(m) => m.get_segment(idx),
        }
    }

    #[inline]
    fn len(&self) -> usize {
        match self {
            FlatSegments::One(_) => 1,
            FlatSegments::Many(m) => m.len(),
        }
    }
}


/// Read a message in place, lazily: the framing is checked here against
/// the buffer's length (before capnp sees a byte), and the traversal and
/// nesting limits of [`reader_options`] are enforced as fields are read,
/// so a hostile message fails on the access that crosses a limit instead
/// of being walked whole up front. An empty buffer reads as a message whose
/// root is null (every field its default): calls without params send
/// nothing. `bytes` must be 8-byte aligned (the IPC area is); an unaligned
/// buffer fails on its first read, it is never misread.
pub fn read_flat(bytes: &[u8]) -> Result<FlatReader<'_>, MessageError> {
    let mut slice: &[u8] = if bytes.is_empty() { aligned_empty() } else { bytes };
    // One segment, exactly framed (checked here before capnp sees it):
    // the segment is the rest of the buffer.
    if slice.len() >= 8 && slice.len() <= MAX_MESSAGE_BYTES && slice.len().is_multiple_of(8) && le32(slice, 0) == 0 && le32(slice, 4) as usize * 8 == slice.len() - 8 {
        return Ok(Reader::new(FlatSegments::One(&slice[8..]), reader_options()));
    }
    check_framing(slice)?;
    Ok(Reader::new(FlatSegments::Many(capnp::serialize::NoAllocSliceSegments::from_slice(&mut slice, reader_options())?), reader_options()))
}

/// The message a zero-length buffer stands for: one segment holding a null
/// root pointer, so every field reads as its default (word aligned, as the
/// reader requires).
fn aligned_empty() -> &'static [u8] {
    #[repr(align(8))]
    struct Aligned([u8; 16]);
    static EMPTY: Aligned = Aligned([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    &EMPTY.0
}

/// Build a message of root type `T` in place in `buf`: the segment table
/// goes in the first word and the one segment fills the rest. `buf` must be
/// zeroed (capnp builders rely on it), 8-byte aligned and a whole number of
/// words; after use, [`clear`] the bytes this returned to keep it zeroed.
/// Nothing is allocated unless the message does not fit, in which case it
/// is refused as [`MessageError::TooLarge`] (and `buf` is cleared).
/// Returns the message length and what `fill` returned.
pub fn build_flat<T: Owned, R>(
    buf: &mut [u8],
    fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<R>,
) -> Result<(usize, R), MessageError> {
    if buf.len() < 16 || !buf.len().is_multiple_of(8) || !(buf.as_ptr() as usize).is_multiple_of(8) {
        return Err(MessageError::BadFraming("build buffer is not whole aligned words"));
    }
    let capacity = buf.len();
    let segment = &mut buf[8..];
    let mut alloc = crate::flat_alloc::FlatAllocator::new(segment);
    let built = {
        let mut message = Builder::new(&mut alloc);
        let r = fill(message.init_root::<T::Builder<'_>>());
        let segments = message.get_segments_for_output();
        let words = if segments.len() == 1 { Some(segments[0].len() / 8) } else { None };
        r.map(|r| (words, r))
    };
    let overflowed = alloc.overflowed();
    drop(alloc);
    let (words, r) = match built {
        Ok(v) => v,
        Err(e) => {
            buf.fill(0);
            return Err(MessageError::Malformed(e));
        }
    };
    match words {
        Some(words) if !overflowed => {
            let head = &mut buf[..8];
            head[..4].copy_from_slice(&0u32.to_le_bytes());
            head[4..].copy_from_slice(&(words as u32).to_le_bytes());
            Ok((8 + words * 8, r))
        }
        _ => {
            buf.fill(0);
            Err(MessageError::TooLarge { len: capacity + 8, max: capacity })
        }
    }
}

/// A call as an object sees it: the interface and method (from the
/// registers) and the params, read in place.
pub struct CallMessage<'a> {
    interface_id: u64,
    method_id: u16,
    bytes: &'a [u8],
    /// Made on the first `params` call: an object that reads its params
    /// through `small_struct` (or has none) never pays for a capnp reader.
    params: core::cell::OnceCell<Result<FlatReader<'a>, MessageError>>,
}

impl<'a> CallMessage<'a> {
    /// Wrap `params` (empty = no params). Its framing is checked when the
    /// params are first read, before capnp sees a byte; a length that is
    /// not whole words is refused here.
    pub fn new(interface_id: u64, method_id: u16, params: &'a [u8]) -> Result<CallMessage<'a>, MessageError> {
        if !params.len().is_multiple_of(8) {
            return Err(MessageError::BadFraming("not a whole number of 8-byte words"));
        }
        Ok(CallMessage { interface_id, method_id, bytes: params, params: core::cell::OnceCell::new() })
    }
    pub fn interface_id(&self) -> u64 {
        self.interface_id
    }
    pub fn method_id(&self) -> u16 {
        self.method_id
    }
    /// The params' bytes (for `small_struct::read`, the tiny-message fast path).
    pub fn raw(&self) -> &'a [u8] {
        self.bytes
    }
    /// The params, typed (framing checked on first use; limits enforced
    /// as fields are read).
    pub fn params<T: Owned>(&self) -> Result<T::Reader<'_>, MessageError> {
        match self.params.get_or_init(|| read_flat(self.bytes)) {
            Ok(reader) => Ok(reader.get_root::<T::Reader<'_>>()?),
            Err(e) => Err(e.clone()),
        }
    }
}

/// Zero the first `len` bytes of a build buffer again (after the message
/// in it was sent), so the next [`build_flat`] starts from zeroes.
pub fn clear(buf: &mut [u8], len: usize) {
    let n = len.min(buf.len());
    buf[..n].fill(0);
}

/// A message of root type `T` as an owned, word-aligned buffer (for tools,
/// tests and calls off the hot path).
pub fn to_words<T: Owned>(fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<Vec<u64>, MessageError> {
    let mut message = Builder::new_default();
    fill(message.init_root::<T::Builder<'_>>())?;
    let bytes = write_message(&message)?;
    Ok(words_of(&bytes))
}

/// Copy bytes into an 8-byte aligned word buffer (zero-padded).
pub fn words_of(bytes: &[u8]) -> Vec<u64> {
    bytes.chunks(8).map(|c| {
        let mut w = [0u8; 8];
        w[..c.len()].copy_from_slice(c);
        u64::from_le_bytes(w)
    }).collect()
}

/// View a word buffer as bytes.
pub fn word_bytes(words: &[u64]) -> &[u8] {
    crate::flat_alloc::as_bytes(words)
}

/// View a mutable word buffer as bytes (a zeroed `Vec<u64>` is a valid
/// [`build_flat`] buffer).
pub fn word_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    crate::flat_alloc::as_bytes_mut(words)
}


#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::capos_capnp::{console, file, ping};
    use crate::limits::{MAX_MESSAGE_BYTES, NESTING_LIMIT};

    pub fn console_params(line: &str) -> Vec<u64> {
        to_words::<console::write_line_params::Owned>(|mut p| {
            p.set_line(line);
            Ok(())
        })
        .unwrap()
    }

    fn bytes_of(words: &[u64]) -> &[u8] {
        word_bytes(words)
    }

    #[test]
    fn flat_build_and_read_round_trip_in_place() {
        let mut area = vec![0u64; 64];
        let buf: &mut [u8] = crate::flat_alloc::as_bytes_mut(&mut area);
        let (n, ()) = build_flat::<file::read_params::Owned, _>(buf, |mut p| {
            p.set_offset(4096);
            p.set_length(100);
            Ok(())
        })
        .unwrap();
        assert_eq!(n % 8, 0);
        let reader = read_flat(&buf[..n]).unwrap();
        let p = reader.get_root::<file::read_params::Reader>().unwrap();
        assert_eq!((p.get_offset(), p.get_length()), (4096, 100));
        drop(reader);
        clear(buf, n);
        assert!(buf.iter().all(|b| *b == 0), "clear leaves the buffer as it found it");
        // Building again in the cleared buffer gives the same bytes as a fresh one.
        let (n2, ()) = build_flat::<ping::ping_params::Owned, _>(buf, |mut p| {
            p.set_value(7);
            Ok(())
        })
        .unwrap();
        let fresh = to_words::<ping::ping_params::Owned>(|mut p| {
            p.set_value(7);
            Ok(())
        })
        .unwrap();
        assert_eq!(&buf[..n2], bytes_of(&fresh));
    }

    #[test]
    fn a_message_that_outgrows_the_buffer_is_refused_and_the_buffer_cleared() {
        let mut area = vec![0u64; 16];
        let buf: &mut [u8] = crate::flat_alloc::as_bytes_mut(&mut area);
        let r = build_flat::<console::write_line_params::Owned, _>(buf, |mut p| {
            p.set_line("a line much longer than the one hundred and twenty bytes this buffer holds, so it cannot fit in place at all");
            Ok(())
        });
        assert!(matches!(r, Err(MessageError::TooLarge { .. })));
        assert!(buf.iter().all(|b| *b == 0));
        // Unaligned or tiny buffers are refused, not misused.
        let mut small = [0u8; 8];
        assert!(build_flat::<ping::ping_params::Owned, _>(&mut small, |_| Ok(())).is_err());
    }

    #[test]
    fn an_empty_message_is_the_default_struct() {
        let r = read_flat(&[]).unwrap();
        let p = r.get_root::<ping::ping_params::Reader>().unwrap();
        assert_eq!(p.get_value(), 0);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let w = console_params("a line that makes the message a few words long");
        let bytes = bytes_of(&w);
        assert!(read_message(bytes).is_ok());
        for n in 1..bytes.len() {
            assert!(read_message(&bytes[..n]).is_err(), "truncated to {n} bytes must be rejected");
            // In place: the framing check refuses it before capnp reads a byte.
            if let Ok(r) = read_flat(&bytes[..n]) {
                panic!("read_flat accepted {n} bytes: {:?}", r.get_root::<console::write_line_params::Reader>().map(|p| p.has_line()));
            }
        }
        let mut padded = w.clone();
        padded.push(0);
        assert!(matches!(read_message(bytes_of(&padded)), Err(MessageError::BadFraming(_))), "trailing words");
        assert!(matches!(read_flat(bytes_of(&padded)), Err(MessageError::BadFraming(_))), "trailing words");
    }

    #[test]
    fn a_segment_table_that_lies_is_rejected() {
        let w = console_params("x");
        let mut bytes = bytes_of(&w).to_vec();
        // Claim one more word than present.
        let words = le32(&bytes, 4) + 1;
        bytes[4..8].copy_from_slice(&words.to_le_bytes());
        let lying = words_of(&bytes);
        assert!(matches!(read_message(bytes_of(&lying)), Err(MessageError::BadFraming("message is truncated"))));
        assert!(matches!(read_flat(bytes_of(&lying)), Err(MessageError::BadFraming("message is truncated"))));
        let mut bytes = bytes_of(&w).to_vec();
        bytes[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_flat(bytes_of(&words_of(&bytes))), Err(MessageError::BadFraming(_))));
        let mut bytes = bytes_of(&w).to_vec();
        bytes[0..4].copy_from_slice(&(MAX_SEGMENTS as u32).to_le_bytes());
        assert!(matches!(read_flat(bytes_of(&words_of(&bytes))), Err(MessageError::BadFraming(_))));
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
        // In place the limit bites lazily, on the access that crosses it.
        let deep = words_of(&nested_chain(NESTING_LIMIT as usize + 4));
        let r = read_flat(bytes_of(&deep)).unwrap();
        let size = r.get_root::<capnp::any_pointer::Reader>().unwrap().target_size();
        assert_eq!(size.unwrap_err().kind, capnp::ErrorKind::MessageIsTooDeeplyNested);
    }

    #[test]
    fn oversize_messages_are_rejected() {
        let line = "x".repeat(MAX_MESSAGE_BYTES);
        let e = to_words::<console::write_line_params::Owned>(|mut p| {
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
        assert!(matches!(read_flat(bytes_of(&words_of(&b))), Err(MessageError::TooLarge { .. })));
        // Exactly at the limit is fine (framing and capnp both accept it).
        b.truncate(MAX_MESSAGE_BYTES);
        b[4..8].copy_from_slice(&((words - 1) as u32).to_le_bytes());
        assert!(read_message(&b).is_ok());
        assert!(read_flat(bytes_of(&words_of(&b))).is_ok());
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
        // In place: reading every text once crosses the limit part way.
        let w = words_of(&b);
        let r = read_flat(bytes_of(&w)).unwrap();
        let list = r.get_root::<capnp::data_list::Reader>().unwrap();
        let mut failed = false;
        for i in 0..list.len() {
            if list.get(i).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "the traversal limit must stop an amplified read");
    }

    #[test]
    fn capability_pointers_are_rejected() {
        // Root pointer = capability pointer (kind 3), index 0.
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&3u64.to_le_bytes());
        assert!(matches!(read_message(&b), Err(MessageError::CapabilityPointer)));
        let w = words_of(&b);
        let r = read_flat(bytes_of(&w)).unwrap();
        assert!(r.get_root::<ping::ping_params::Reader>().is_err(), "a capability pointer is not a struct");
    }

    #[test]
    fn no_panic_on_bit_flips() {
        let w = console_params("bit flips must never panic the reader");
        let bytes = bytes_of(&w).to_vec();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                let w = words_of(&b);
                if let Ok(r) = read_flat(bytes_of(&w)) {
                    let _ = r.get_root::<console::write_line_params::Reader>().map(|p| p.get_line().map(|l| l.to_str().map(|s| s.len())));
                }
            }
        }
    }

    #[test]
    fn random_params_never_panic_the_in_place_reader() {
        // xorshift: deterministic, no dependency.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let words = 1 + (next() % 12) as usize;
            let mut w: Vec<u64> = (0..words).map(|_| next()).collect();
            // Half the time, a valid single-segment table so capnp gets to parse.
            if next() % 2 == 0 {
                w[0] = ((words as u64 - 1) << 32) & 0xffff_ffff_0000_0000;
            }
            if let Ok(r) = read_flat(bytes_of(&w)) {
                let _ = r.get_root::<console::write_line_params::Reader>().map(|p| p.get_line().map(|l| l.to_str().map(|s| s.len())));
                let _ = r.get_root::<file::read_params::Reader>().map(|p| (p.get_offset(), p.get_length()));
                let _ = r.get_root::<capnp::any_pointer::Reader>().map(|p| p.target_size());
            }
        }
    }
}
