//! The fast path for tiny messages: a root struct with a few data words
//! and null pointers, in the one canonical layout capnp's own builder
//! writes for it.
//!
//! A null call carries four capnp messages (params out, params in, results
//! out, results in). Through capnp-rust's general reader and builder each
//! costs a few hundred instructions (arena set-up, bounds and traversal
//! accounting on every access), several times the whole kernel entry and
//! exit. For a struct of data words only, the encoding is fixed: a segment
//! table word, a struct pointer at offset 0, the data words, the (null)
//! pointer words. [`write`] produces exactly those bytes and [`read`]
//! recognises exactly that shape, bounds-checked against the buffer; any
//! other encoding (a valid message from another writer, a far pointer, a
//! non-null pointer, bytes a hostile process made up) is `None`, and the
//! caller takes the general capnp path, which applies every limit. The
//! tests below pin that these bytes are what capnp writes and that capnp
//! reads them back, for the structs the fast paths use.
//!
//! Nothing here follows a pointer, so no traversal or nesting limit can be
//! crossed; reading is O(1) in the message.

use crate::message::MAX_SEGMENTS;

#[inline(always)]
fn le32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(w)
}

#[inline(always)]
fn le64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Bytes [`write`] needs for `data` words and `ptrs` pointers.
pub const fn size(data: usize, ptrs: usize) -> usize {
    (2 + data + ptrs) * 8
}

/// Write a message whose root struct holds `data` and `ptrs` null
/// pointers. Every byte of the message is written (the buffer need not be
/// zeroed). Returns its length, or `None` if `buf` is too small.
#[inline]
pub fn write(buf: &mut [u8], data: &[u64], ptrs: u16) -> Option<usize> {
    let words = 1 + data.len() + ptrs as usize;
    let len = (1 + words) * 8;
    if buf.len() < len || data.len() > u16::MAX as usize {
        return None;
    }
    buf[0..4].copy_from_slice(&0u32.to_le_bytes());
    buf[4..8].copy_from_slice(&(words as u32).to_le_bytes());
    let root = (data.len() as u64) << 32 | (ptrs as u64) << 48;
    buf[8..16].copy_from_slice(&root.to_le_bytes());
    for (i, w) in data.iter().enumerate() {
        buf[16 + i * 8..24 + i * 8].copy_from_slice(&w.to_le_bytes());
    }
    let mut at = 16 + data.len() * 8;
    while at < len {
        buf[at..at + 8].copy_from_slice(&0u64.to_le_bytes());
        at += 8;
    }
    Some(len)
}

/// A recognised tiny struct: its data words (words past the data section
/// read as 0, capnp's rule for a smaller struct).
#[derive(Clone, Copy, Debug)]
pub struct SmallStruct<'a> {
    data: &'a [u8],
}

impl SmallStruct<'_> {
    #[inline]
    pub fn word(&self, i: usize) -> u64 {
        if (i + 1) * 8 <= self.data.len() {
            le64(self.data, i * 8)
        } else {
            0
        }
    }

    pub fn data_words(&self) -> usize {
        self.data.len() / 8
    }
}

/// Recognise the canonical tiny-struct message (see the module docs):
/// one segment filling the buffer exactly, a struct root pointer at
/// offset 0, and every pointer of the struct null.
#[inline]
pub fn read(bytes: &[u8]) -> Option<SmallStruct<'_>> {
    const _: () = assert!(MAX_SEGMENTS > 1);
    if bytes.len() < 16 || bytes.len() % 8 != 0 || le32(bytes, 0) != 0 || le32(bytes, 4) as usize * 8 != bytes.len() - 8 {
        return None;
    }
    let root = le64(bytes, 8);
    if root & 0xffff_ffff != 0 {
        return None; // not a struct pointer at offset 0
    }
    let (dw, pc) = ((root >> 32) as u16 as usize, (root >> 48) as usize);
    if 16 + (dw + pc) * 8 != bytes.len() {
        return None;
    }
    let mut at = 16 + dw * 8;
    while at < bytes.len() {
        if le64(bytes, at) != 0 {
            return None;
        }
        at += 8;
    }
    Some(SmallStruct { data: &bytes[16..16 + dw * 8] })
}

/// [`read`] for a reader that knows the shape it expects: `DW` data words
/// and `PC` pointers, the shape [`write`] gives `DW` words and `PC`
/// pointers. That exact message is recognised by its length and two
/// header words compared with constants (and its pointer words with 0);
/// anything else goes to [`read`], so the answer is always `read`'s.
#[inline(always)]
pub fn read_as<const DW: usize, const PC: usize>(bytes: &[u8]) -> Option<SmallStruct<'_>> {
    const { assert!(DW <= u16::MAX as usize && PC <= u16::MAX as usize) };
    if bytes.len() == size(DW, PC)
        && le64(bytes, 0) == ((1 + DW + PC) as u64) << 32
        && le64(bytes, 8) == ((DW as u64) << 32 | (PC as u64) << 48)
        && (0..PC).all(|i| le64(bytes, 16 + (DW + i) * 8) == 0)
    {
        return Some(SmallStruct { data: &bytes[16..16 + DW * 8] });
    }
    read(bytes)
}

/// `UInt64Result` as a tiny struct: `ok` in data word 0, the union's
/// discriminant (0 = ok) in the low 16 bits of data word 1, `err` the one
/// pointer (pinned by the tests below).
pub mod u64_result {
    pub const DATA_WORDS: usize = 2;
    pub const PTRS: u16 = 1;

    /// The data words of `ok(value)`.
    pub fn ok(value: u64) -> [u64; 2] {
        [value, 0]
    }

    /// `Some(value)` if the struct is an `ok` (an `err` has a pointer, so
    /// it never reads as a tiny struct at all).
    pub fn read_ok(s: &super::SmallStruct) -> Option<u64> {
        (s.word(1) & 0xffff == 0).then(|| s.word(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capos_capnp::{ping, u_int64_result};
    use crate::helpers::{decode, encode, fill_u64, read_u64, CapError};
    use crate::message::word_bytes;

    #[test]
    fn ping_params_bytes_are_what_capnp_writes_and_reads() {
        for v in [0u64, 1, 0xdead_beef, u64::MAX] {
            let capnp_words = encode::<ping::ping_params::Owned>(|mut p| p.set_value(v)).unwrap();
            let mut buf = [0xffu8; 64];
            let n = write(&mut buf, &[v], 0).unwrap();
            assert_eq!(&buf[..n], word_bytes(&capnp_words), "value {v}");
            let s = read(&buf[..n]).unwrap();
            assert_eq!(s.word(0), v);
            assert_eq!(s.word(5), 0, "past the data section reads as 0");
            let back = decode::<ping::ping_params::Owned, _>(word_bytes(&crate::message::words_of(&buf[..n])), |p| Ok(p.get_value())).unwrap();
            assert_eq!(back, v);
        }
    }

    #[test]
    fn u64_result_layout_is_pinned_against_capnp() {
        for v in [0u64, 42, u64::MAX] {
            let capnp_words = encode::<u_int64_result::Owned>(|r| fill_u64(r, &Ok(v))).unwrap();
            let mut buf = [0u8; 64];
            let n = write(&mut buf, &u64_result::ok(v), u64_result::PTRS).unwrap();
            assert_eq!(&buf[..n], word_bytes(&capnp_words));
            assert_eq!(u64_result::read_ok(&read(&buf[..n]).unwrap()), Some(v));
            let w = crate::message::words_of(&buf[..n]);
            assert_eq!(decode::<u_int64_result::Owned, _>(word_bytes(&w), read_u64).unwrap(), Ok(v));
        }
        // An err result is not a tiny struct (its Error pointer is set): the
        // fast path declines and the general reader gets it.
        let e = encode::<u_int64_result::Owned>(|r| fill_u64(r, &Err(CapError::new(crate::capos_capnp::ErrorCode::Io, "x")))).unwrap();
        assert!(read(word_bytes(&e)).is_none());
    }

    #[test]
    fn read_as_answers_what_read_answers() {
        let mut buf = [0u8; 64];
        let n = write(&mut buf, &u64_result::ok(9), u64_result::PTRS).unwrap();
        let fast = read_as::<2, 1>(&buf[..n]).unwrap();
        assert_eq!((fast.word(0), fast.word(1), fast.data_words()), (9, 0, 2));
        // Another shape than the expected one still reads as `read` reads it.
        let n1 = write(&mut buf, &[5], 0).unwrap();
        let other = read_as::<2, 1>(&buf[..n1]).unwrap();
        assert_eq!((other.word(0), other.word(1), other.data_words()), (5, 0, 1));
        assert!(read_as::<1, 0>(&buf[..n1 - 8]).is_none());
        // Random bytes: same answer as `read`, never a panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = [0u8; 40];
            for (i, c) in b.iter_mut().enumerate() {
                *c = if (x >> (i % 64)) & 1 == 0 { 0 } else { (x >> (i % 8 * 8)) as u8 };
            }
            b[0..4].copy_from_slice(&0u32.to_le_bytes());
            b[4..8].copy_from_slice(&((x & 7) as u32).to_le_bytes());
            for len in [16usize, 24, 32, 40] {
                let a = read_as::<2, 1>(&b[..len]).map(|s| (s.data_words(), s.word(0), s.word(1)));
                let r = read(&b[..len]).map(|s| (s.data_words(), s.word(0), s.word(1)));
                assert_eq!(a, r);
                let a = read_as::<1, 0>(&b[..len]).map(|s| (s.data_words(), s.word(0)));
                let r = read(&b[..len]).map(|s| (s.data_words(), s.word(0)));
                assert_eq!(a, r);
            }
        }
    }

    #[test]
    fn anything_else_is_declined_never_misread() {
        let mut buf = [0u8; 64];
        let n = write(&mut buf, &[7, 0], 1).unwrap();
        assert!(read(&buf[..n]).is_some());
        for cut in 0..n {
            assert!(read(&buf[..cut]).is_none(), "truncated to {cut}");
        }
        let mut two_segments = buf;
        two_segments[0] = 1;
        assert!(read(&two_segments[..n]).is_none());
        let mut offset = buf;
        offset[8] = 4; // struct pointer with offset 1
        assert!(read(&offset[..n]).is_none());
        let mut far = buf;
        far[8] = 2; // far pointer
        assert!(read(&far[..n]).is_none());
        let mut pointer_set = buf;
        pointer_set[n - 1] = 1;
        assert!(read(&pointer_set[..n]).is_none());
        let mut longer = [0u8; 72];
        longer[..n].copy_from_slice(&buf[..n]);
        assert!(read(&longer).is_none(), "bytes after the message");
        assert!(write(&mut [0u8; 16], &[1], 0).is_none(), "too small a buffer is refused");
        // Random bytes never panic.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = [0u8; 40];
            for (i, c) in b.iter_mut().enumerate() {
                *c = (x >> (i % 8 * 8)) as u8 ^ i as u8;
            }
            b[0..4].copy_from_slice(&0u32.to_le_bytes());
            b[4..8].copy_from_slice(&4u32.to_le_bytes());
            if let Some(s) = read(&b) {
                let _ = s.word(3);
            }
        }
    }
}
