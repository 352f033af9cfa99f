//! The call envelope: registers and the IPC area, not capnp.
//!
//! A capability call used to travel as one capnp `Call` message (interface,
//! method, caps and params together) that the kernel copied in, walked,
//! re-encoded for the server and copied out again. Now the envelope is
//! plain data the kernel reads without parsing anything:
//!
//! - scalars travel in registers: the handle, the interface id, and one
//!   packed word ([`CallWord`]: method ordinal, capability count, bulk
//!   flags, params length); the answer comes back the same way
//!   ([`ReplyWord`]);
//! - capabilities travel as handle arrays in the header page of the
//!   process's **IPC area** ([`CAPS_OUT_OFFSET`], [`CAPS_IN_OFFSET`]);
//! - capnp carries only a method's params or results, in the area's send
//!   and receive buffers, read in place ([`crate::message::read_flat`]);
//! - bulk data (file contents, store values, echo payloads) travels in one
//!   buffer of the caller's own memory, named by pointer and length, beside
//!   the message ([`BULK_READ`], [`BULK_WRITE`]).
//!
//! # The IPC area
//!
//! The kernel maps every process's IPC area at [`IPC_AREA_ADDR`] before it
//! starts. It is physically contiguous, so the kernel reaches any process's
//! area through the direct map without walking page tables:
//!
//! | offset | size | user access | what |
//! |---|---|---|---|
//! | [`CAPS_OUT_OFFSET`] | 16 × u64 | read/write | handles the process transfers with its next call or reply |
//! | [`CAPS_IN_OFFSET`] | 16 × u64 | read/write | handles the kernel just installed (a call's results, a received call) |
//! | [`BADGES_IN_OFFSET`] | 16 × u64 | read/write | for a received call, the badge of each installed handle that is a client of the receiving endpoint (0 for any other capability) |
//! | [`SEND_OFFSET`] | [`MAX_MESSAGE_BYTES`] | read/write | the capnp message the process sends (params of a call, results of a reply) |
//! | [`RECV_OFFSET`] | [`MAX_MESSAGE_BYTES`] | read only | the capnp message the kernel delivered (results of a call, params of a received call) |
//!
//! The receive buffer is read-only to the process so the kernel can keep
//! it zeroed past the last message and build kernel-object results in it
//! directly (capnp builders need zeroed memory).
//!
//! # Reply tokens
//!
//! A token names the client waiting for the answer and that client's call
//! sequence number ([`ReplyToken`]). The kernel accepts a reply only while
//! that client still waits on this server with that sequence number, so a
//! stale, replayed or forged token is refused, and no table of outstanding
//! calls is kept (nothing to allocate, nothing to leak).

use crate::limits::{MAX_CAPS_PER_MESSAGE, MAX_MESSAGE_BYTES};
use crate::SysError;

/// Where every process's IPC area is mapped.
pub const IPC_AREA_ADDR: u64 = 0x0000_7ffd_0000_0000;
/// Offset of the outgoing handle array (16 × u64).
pub const CAPS_OUT_OFFSET: usize = 0;
/// Offset of the incoming handle array (16 × u64).
pub const CAPS_IN_OFFSET: usize = 8 * MAX_CAPS_PER_MESSAGE;
/// Offset of the badges of a received call's handles (16 × u64): a server
/// recognises its own objects passed back to it without asking.
pub const BADGES_IN_OFFSET: usize = CAPS_IN_OFFSET + 8 * MAX_CAPS_PER_MESSAGE;
/// Bytes of the header page.
pub const HEADER_BYTES: usize = 4096;
/// Offset of the send buffer.
pub const SEND_OFFSET: usize = HEADER_BYTES;
/// Offset of the receive buffer.
pub const RECV_OFFSET: usize = SEND_OFFSET + MAX_MESSAGE_BYTES;
/// Size of the whole area.
pub const AREA_BYTES: usize = RECV_OFFSET + MAX_MESSAGE_BYTES;
/// Pages of the whole area.
pub const AREA_PAGES: usize = AREA_BYTES / 4096;

const _: () = assert!(BADGES_IN_OFFSET + 8 * MAX_CAPS_PER_MESSAGE <= HEADER_BYTES);
const _: () = assert!(AREA_BYTES.is_multiple_of(4096));

/// Bulk flag: the object may read the caller's bulk buffer (data going out,
/// e.g. `File.write`).
pub const BULK_READ: u8 = 1;
/// Bulk flag: the object may write the caller's bulk buffer (data coming
/// back, e.g. `File.read`); the count written comes back in `rsi`.
pub const BULK_WRITE: u8 = 2;
const BULK_FLAGS: u8 = BULK_READ | BULK_WRITE;

/// Largest bulk buffer a call may name, and the largest a server may
/// register for receiving. Two 64 KiB storage chunks fit.
pub const MAX_BULK_BYTES: u64 = 1024 * 1024;

/// Capability counts below 2^CAPS_OK_BITS and lengths below 2^LEN_OK_BITS
/// are within the limits, so a word whose higher bits of those fields are
/// clear needs no further check.
const CAPS_OK_BITS: u32 = (MAX_CAPS_PER_MESSAGE as u32 + 1).ilog2();
const LEN_OK_BITS: u32 = (MAX_MESSAGE_BYTES as u32 + 1).ilog2();
const _: () = assert!((1 << CAPS_OK_BITS) - 1 <= MAX_CAPS_PER_MESSAGE && (1 << LEN_OK_BITS) - 1 <= MAX_MESSAGE_BYTES);
/// CallWord bits that send a word through the full check: caps above the
/// fast range (bits 16+CAPS_OK_BITS..24), unknown bulk flags (26..32),
/// len above the fast range (32+LEN_OK_BITS..64).
const CALL_WORD_SLOW_BITS: u64 = (0xff << 16 & !(((1 << CAPS_OK_BITS) - 1) << 16)) | (0xff << 24 & !((BULK_FLAGS as u64) << 24)) | (u64::MAX << (32 + LEN_OK_BITS));
/// ReplyWord bits that do: len above the fast range (LEN_OK_BITS..32),
/// caps above it (32+CAPS_OK_BITS..40), the reserved bits (41..64); the
/// move bit (40) does not.
const REPLY_WORD_SLOW_BITS: u64 = (0xffff_ffff & !((1u64 << LEN_OK_BITS) - 1)) | (u64::MAX << (32 + CAPS_OK_BITS) & !(1 << 40));

/// The packed word of a call (`rdx` of `cap_call`, and of what
/// `endpoint_receive` hands a server):
///
/// | bits | field |
/// |---|---|
/// | 0..16 | method ordinal |
/// | 16..24 | capabilities transferred (in `CAPS_OUT`, or for a server in `CAPS_IN`) |
/// | 24..32 | bulk flags ([`BULK_READ`], [`BULK_WRITE`]) |
/// | 32..64 | params length in bytes (0 = no params: the default struct) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallWord {
    pub method: u16,
    pub caps: u8,
    pub bulk: u8,
    pub len: u32,
}

impl CallWord {
    pub const fn pack(self) -> u64 {
        self.method as u64 | (self.caps as u64) << 16 | (self.bulk as u64) << 24 | (self.len as u64) << 32
    }

    /// Decode and check every field: more than
    /// [`MAX_CAPS_PER_MESSAGE`] capabilities is `TooManyCaps`, an unknown
    /// bulk flag is `InvalidArgument`, a length over [`MAX_MESSAGE_BYTES`]
    /// is `MessageTooLarge`.
    #[inline]
    pub fn unpack(word: u64) -> Result<CallWord, SysError> {
        let w = CallWord { method: word as u16, caps: (word >> 16) as u8, bulk: (word >> 24) as u8, len: (word >> 32) as u32 };
        // One test for the common case: a word with none of these bits set
        // passes every check below (caps < 2^CAPS_OK_BITS, bulk a subset of
        // BULK_FLAGS, len < 2^LEN_OK_BITS).
        if word & CALL_WORD_SLOW_BITS == 0 {
            return Ok(w);
        }
        if w.caps as usize > MAX_CAPS_PER_MESSAGE {
            return Err(SysError::TooManyCaps);
        }
        if w.bulk & !BULK_FLAGS != 0 {
            return Err(SysError::InvalidArgument);
        }
        if w.len as usize > MAX_MESSAGE_BYTES {
            return Err(SysError::MessageTooLarge);
        }
        Ok(w)
    }
}

/// The packed word of a reply (`rdx` of `endpoint_reply`, and of what
/// `cap_call` returns): results length in bits 0..32, capabilities in
/// bits 32..40, and bit 40 ([`ReplyWord::moves`]): the server's handles
/// in CAPS_OUT *move* to the client (they leave the server's table as
/// they enter the client's) instead of being copied. Bits 41..64 must be
/// zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyWord {
    pub len: u32,
    pub caps: u8,
    pub moves: bool,
}

impl ReplyWord {
    /// A reply of `len` bytes copying `caps` handles.
    pub const fn new(len: u32, caps: u8) -> ReplyWord {
        ReplyWord { len, caps, moves: false }
    }

    pub const fn pack(self) -> u64 {
        self.len as u64 | (self.caps as u64) << 32 | (self.moves as u64) << 40
    }

    #[inline]
    pub fn unpack(word: u64) -> Result<ReplyWord, SysError> {
        // As CallWord::unpack: one test for the common case.
        if word & REPLY_WORD_SLOW_BITS == 0 {
            return Ok(ReplyWord { len: word as u32, caps: (word >> 32) as u8, moves: word >> 40 & 1 != 0 });
        }
        if word >> 41 != 0 {
            return Err(SysError::InvalidArgument);
        }
        let w = ReplyWord { len: word as u32, caps: (word >> 32) as u8, moves: word >> 40 & 1 != 0 };
        if w.caps as usize > MAX_CAPS_PER_MESSAGE {
            return Err(SysError::TooManyCaps);
        }
        if w.len as usize > MAX_MESSAGE_BYTES {
            return Err(SysError::MessageTooLarge);
        }
        Ok(w)
    }
}

/// A reply token: the waiting client's pid and its call sequence number
/// (never 0, so the token 0 is never valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyToken {
    pub client: u32,
    pub seq: u32,
}

impl ReplyToken {
    pub const fn pack(self) -> u64 {
        (self.client as u64) << 32 | self.seq as u64
    }
    pub const fn unpack(token: u64) -> ReplyToken {
        ReplyToken { client: (token >> 32) as u32, seq: token as u32 }
    }
}

/// What `endpoint_receive` (and `endpoint_reply_receive`) put in the
/// server's registers.
///
/// A **notification** arrives the same way: interface id
/// [`crate::interfaces::ENDPOINT`], method [`NO_SENDERS`], token 0 (there
/// is nobody to answer), no params, no capabilities, and the badge whose
/// last client capability is gone ([`Received::is_no_senders`]).
///
/// | register | value |
/// |---|---|
/// | `rdx` | [`CallWord`] of the call (caps are in `CAPS_IN`, params in the receive buffer; [`MORE_WAITING`] in its bulk byte) |
/// | `rsi` | interface id |
/// | `rdi` | reply token |
/// | `r10` | badge of the client capability used |
/// | `r8`  | bulk bytes the client sent, now in the server's registered bulk buffer |
/// | `r9`  | bulk bytes the client accepts back (0 unless it set [`BULK_WRITE`]) |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Received {
    pub word: CallWord,
    pub interface_id: u64,
    pub token: u64,
    pub badge: u64,
    pub bulk_in: u64,
    pub bulk_out_capacity: u64,
}

/// In the bulk-flags byte of a *received* call word (bit 31 of `rdx` on a
/// receive), never in a call's: more calls were queued on the endpoint
/// behind this one when it was delivered ([`Received::more_waiting`]). A
/// hint (a queued caller may die before it is received) that lets a
/// server gather calls that arrived together, e.g. to commit several
/// writes with one flush; never set on a call handed straight to a waiting
/// server or on a notification. No caller can send it:
/// [`CallWord::unpack`] refuses stray bulk bits.
pub const MORE_WAITING: u8 = 0x80;

impl Received {
    /// Whether the kernel said more calls wait behind this one.
    #[inline]
    pub fn more_waiting(&self) -> bool {
        self.word.bulk & MORE_WAITING != 0
    }

    /// A receive's `rdx`: the call word, checked as a call's, with the
    /// [`MORE_WAITING`] hint kept in its bulk byte.
    #[inline]
    pub fn unpack_word(raw: u64) -> Result<CallWord, SysError> {
        let hint = (MORE_WAITING as u64) << 24;
        // The call word's one-test fast path, the hint bit left out of it.
        if raw & (CALL_WORD_SLOW_BITS & !hint) == 0 {
            return Ok(CallWord { method: raw as u16, caps: (raw >> 16) as u8, bulk: (raw >> 24) as u8, len: (raw >> 32) as u32 });
        }
        let mut word = CallWord::unpack(raw & !hint)?;
        word.bulk |= (raw >> 24) as u8 & MORE_WAITING;
        Ok(word)
    }
}

/// The method of a no-senders notification (not a method anyone can call:
/// a server's receive loop sees it with interface `ENDPOINT` and token 0).
pub const NO_SENDERS: u16 = u16::MAX;

impl Received {
    /// A no-senders notification for `badge`.
    pub const fn no_senders(badge: u64) -> Received {
        Received {
            word: CallWord { method: NO_SENDERS, caps: 0, bulk: 0, len: 0 },
            interface_id: crate::interfaces::ENDPOINT,
            token: 0,
            badge,
            bulk_in: 0,
            bulk_out_capacity: 0,
        }
    }

    /// Whether this is a no-senders notification (not a call).
    pub fn is_no_senders(&self) -> bool {
        self.token == 0 && self.interface_id == crate::interfaces::ENDPOINT && self.word.method == NO_SENDERS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_more_waiting_hint_rides_in_a_received_word_and_no_call_can_set_it() {
        let word = CallWord { method: 3, caps: 1, bulk: BULK_READ | BULK_WRITE, len: 40 };
        let hinted = CallWord { bulk: word.bulk | MORE_WAITING, ..word };
        let received = |w: CallWord| Received { word: w, interface_id: 1, token: 2, badge: 3, bulk_in: 4, bulk_out_capacity: 5 };
        assert_eq!(Received::unpack_word(word.pack()), Ok(word));
        assert_eq!(Received::unpack_word(hinted.pack()), Ok(hinted));
        assert!(received(hinted).more_waiting() && !received(word).more_waiting());
        assert_eq!(CallWord::unpack(hinted.pack()), Err(SysError::InvalidArgument), "a caller cannot send the hint");
        assert!(!Received::no_senders(7).more_waiting());
        // A bad word is refused with the hint beside it as without.
        assert_eq!(Received::unpack_word(CallWord { caps: 200, ..hinted }.pack()), Err(SysError::TooManyCaps));
        assert_eq!(Received::unpack_word(CallWord { bulk: MORE_WAITING | 0x10, ..word }.pack()), Err(SysError::InvalidArgument));
    }

    /// The full checks, as they were before the one-test fast path.
    fn call_checked(word: u64) -> Result<CallWord, SysError> {
        let w = CallWord { method: word as u16, caps: (word >> 16) as u8, bulk: (word >> 24) as u8, len: (word >> 32) as u32 };
        if w.caps as usize > MAX_CAPS_PER_MESSAGE {
            return Err(SysError::TooManyCaps);
        }
        if w.bulk & !BULK_FLAGS != 0 {
            return Err(SysError::InvalidArgument);
        }
        if w.len as usize > MAX_MESSAGE_BYTES {
            return Err(SysError::MessageTooLarge);
        }
        Ok(w)
    }

    fn reply_checked(word: u64) -> Result<ReplyWord, SysError> {
        if word >> 41 != 0 {
            return Err(SysError::InvalidArgument);
        }
        let w = ReplyWord { len: word as u32, caps: (word >> 32) as u8, moves: word >> 40 & 1 != 0 };
        if w.caps as usize > MAX_CAPS_PER_MESSAGE {
            return Err(SysError::TooManyCaps);
        }
        if w.len as usize > MAX_MESSAGE_BYTES {
            return Err(SysError::MessageTooLarge);
        }
        Ok(w)
    }

    #[test]
    fn the_fast_test_answers_what_the_full_checks_answer() {
        assert_eq!((CAPS_OK_BITS, LEN_OK_BITS), (4, 17));
        let mut words = alloc::vec::Vec::new();
        for caps in [0u64, 1, 15, 16, 17, 31, 32, 255] {
            for bulk in [0u64, 1, 2, 3, 4, 8, 0x80, 0xff] {
                for len in [0u64, 8, 0x1_fff8, 0x2_0000, 0x2_0001, 0x4_0000, u32::MAX as u64] {
                    words.push(7 | caps << 16 | bulk << 24 | len << 32);
                    words.push(len | caps << 32 | bulk << 40);
                }
            }
        }
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            words.push(x);
            words.push(x & 0x0000_00ff_0003_ffff);
            words.push(x & 0x0003_ffff_03ff_ffff);
        }
        for w in words {
            assert_eq!(CallWord::unpack(w), call_checked(w), "{w:#x}");
            assert_eq!(ReplyWord::unpack(w), reply_checked(w), "{w:#x}");
        }
    }
    #[test]
    fn layout_is_pinned() {
        assert_eq!((CAPS_OUT_OFFSET, CAPS_IN_OFFSET, BADGES_IN_OFFSET, SEND_OFFSET), (0, 128, 256, 4096));
        assert_eq!(RECV_OFFSET, 4096 + 128 * 1024);
        assert_eq!(AREA_PAGES, 65);
        assert_eq!(IPC_AREA_ADDR % 4096, 0);
    }

    #[test]
    fn call_words_round_trip_and_bad_fields_are_refused() {
        let w = CallWord { method: 0xbeef, caps: 16, bulk: BULK_READ | BULK_WRITE, len: MAX_MESSAGE_BYTES as u32 };
        assert_eq!(CallWord::unpack(w.pack()), Ok(w));
        assert_eq!(CallWord::unpack(CallWord { caps: 17, ..w }.pack()), Err(SysError::TooManyCaps));
        assert_eq!(CallWord::unpack(CallWord { bulk: 4, ..w }.pack()), Err(SysError::InvalidArgument));
        assert_eq!(CallWord::unpack(CallWord { len: MAX_MESSAGE_BYTES as u32 + 8, ..w }.pack()), Err(SysError::MessageTooLarge));
        assert_eq!(CallWord::unpack(u64::MAX), Err(SysError::TooManyCaps));
    }

    #[test]
    fn reply_words_round_trip_and_bad_fields_are_refused() {
        let w = ReplyWord::new(4096, 3);
        assert_eq!(ReplyWord::unpack(w.pack()), Ok(w));
        let m = ReplyWord { moves: true, ..w };
        assert_eq!(ReplyWord::unpack(m.pack()), Ok(m));
        assert_eq!(m.pack(), w.pack() | 1 << 40);
        assert_eq!(ReplyWord::unpack(w.pack() | 1 << 41), Err(SysError::InvalidArgument));
        assert_eq!(ReplyWord::unpack(ReplyWord::new(0, 17).pack()), Err(SysError::TooManyCaps));
        assert_eq!(ReplyWord::unpack(u32::MAX as u64), Err(SysError::MessageTooLarge));
    }

    #[test]
    fn random_and_mutated_envelopes_decode_or_refuse_never_panic() {
        // xorshift: deterministic, no dependency.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let good = CallWord { method: 3, caps: 2, bulk: BULK_READ, len: 64 }.pack();
        for i in 0..200_000 {
            // Half random words, half one-bit mutations of a valid word.
            let word = if i % 2 == 0 { next() } else { good ^ (1u64 << (next() % 64)) };
            if let Ok(w) = CallWord::unpack(word) {
                assert!(w.caps as usize <= MAX_CAPS_PER_MESSAGE);
                assert_eq!(w.bulk & !(BULK_READ | BULK_WRITE), 0);
                assert!(w.len as usize <= MAX_MESSAGE_BYTES);
                assert_eq!(w.pack(), word, "an accepted word means exactly what it says");
            }
            if let Ok(r) = ReplyWord::unpack(word) {
                assert!(r.caps as usize <= MAX_CAPS_PER_MESSAGE && r.len as usize <= MAX_MESSAGE_BYTES);
                assert_eq!(r.pack(), word);
            }
            let t = ReplyToken::unpack(word);
            assert_eq!(t.pack(), word);
        }
    }

    #[test]
    fn tokens_round_trip() {
        let t = ReplyToken { client: 7, seq: 0xffff_fffe };
        assert_eq!(ReplyToken::unpack(t.pack()), t);
        assert_eq!(ReplyToken::unpack(0), ReplyToken { client: 0, seq: 0 });
    }
}
