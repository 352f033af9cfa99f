//! Typed encoders and decoders for the common params and results, so the
//! kernel, the runtime and tests do not hand-build messages.
//!
//! The call envelope (interface, method, capabilities) is not capnp (see
//! [`crate::ipc`]), so everything here is about one params or results
//! struct:
//!
//! - `fill_*` writes a result into a results builder (the object side; the
//!   builder comes from `message::build_flat` on the call path, or from
//!   `message::to_words` off it);
//! - `read_*` decodes a results reader into plain Rust values (the client
//!   side); a `CapResult`'s slot is resolved against the handles that came
//!   beside the message;
//! - `*_param(s)` read and check params (the object side).
//!
//! `encode_*` / `decode_*` wrap those into owned word buffers for tests and
//! tools. An `ErrorCode` this version does not know reads as `Unspecified`
//! (the message text is kept), so a newer server's new error code is still
//! an error to an older client; an unknown `NodeKind` or `TimeProvenance`
//! is a malformed message.

use crate::capos_capnp::{
    bool_result, cap_result, console, data_result, error, stat_result, text_result, u_int64_result, void_result, ErrorCode,
    NodeKind, TimeProvenance,
};
use crate::limits::{MAX_CONSOLE_LINE_BYTES, MAX_IO_CHUNK_BYTES};
use crate::message::{read_flat, to_words, word_bytes, MessageError};
use crate::Handle;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use capnp::traits::Owned;

/// A method-level failure: the `err` arm of a `*Result`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CapError {
    pub code: ErrorCode,
    pub message: String,
}

impl CapError {
    pub fn new(code: ErrorCode, message: &str) -> CapError {
        CapError { code, message: message.to_string() }
    }
}

/// A time and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamp {
    pub unix_nanos: i64,
    pub provenance: TimeProvenance,
}

impl Timestamp {
    pub const UNKNOWN: Timestamp = Timestamp { unix_nanos: 0, provenance: TimeProvenance::Unknown };
}

/// The answer of `File.stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    pub kind: NodeKind,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// Write an `Error`.
pub fn fill_error(mut b: error::Builder<'_>, e: &CapError) {
    b.set_code(e.code);
    b.set_message(e.message.as_str());
}

/// Read an `Error` (an unknown code reads as `unspecified`, its message kept).
pub fn read_error(r: error::Reader<'_>) -> Result<CapError, MessageError> {
    let code = r.get_code().unwrap_or(ErrorCode::Unspecified);
    let message = r.get_message()?.to_str().map_err(capnp::Error::from)?.to_string();
    Ok(CapError { code, message })
}

fn text<'a>(t: capnp::text::Reader<'a>) -> Result<&'a str, MessageError> {
    Ok(t.to_str().map_err(capnp::Error::from)?)
}

/// An unknown union arm or enum value of `field` as a [`MessageError`].
pub fn which_err(field: &'static str) -> impl Fn(capnp::NotInSchema) -> MessageError {
    move |e| MessageError::UnknownEnumValue { field, value: e.0 }
}

// --- Console -------------------------------------------------------------

/// Check a console line's length (client and kernel both do).
pub fn check_console_line(line: &str) -> Result<(), MessageError> {
    if line.len() > MAX_CONSOLE_LINE_BYTES {
        return Err(MessageError::FieldTooLarge { field: "console line", len: line.len(), max: MAX_CONSOLE_LINE_BYTES });
    }
    Ok(())
}

/// The line of a `Console.writeLine` call (kernel side), length-checked.
pub fn console_write_line_param<'a>(p: console::write_line_params::Reader<'a>) -> Result<&'a str, MessageError> {
    let line = text(p.get_line()?)?;
    check_console_line(line)?;
    Ok(line)
}

/// The line as the kernel prints it: control characters other than tab
/// (and DEL) become `?`, so a process cannot forge log lines, move the
/// cursor or clear the operator's terminal.
pub fn sanitize_console_line(line: &str) -> String {
    line.chars().map(|c| if c.is_control() && c != '\t' { '?' } else { c }).collect()
}

// --- File ----------------------------------------------------------------

/// Check a `File.read` length against [`MAX_IO_CHUNK_BYTES`].
pub fn check_read_length(length: u32) -> Result<(), MessageError> {
    if length > MAX_IO_CHUNK_BYTES {
        return Err(MessageError::FieldTooLarge { field: "read length", len: length as usize, max: MAX_IO_CHUNK_BYTES as usize });
    }
    Ok(())
}

/// Write a `StatResult`.
pub fn fill_stat(r: stat_result::Builder<'_>, result: &Result<Stat, CapError>) {
    match result {
        Ok(stat) => {
            let mut s = r.init_ok();
            s.set_size(stat.size);
            s.set_kind(stat.kind);
            let mut t = s.reborrow().init_created();
            t.set_unix_nanos(stat.created.unix_nanos);
            t.set_provenance(stat.created.provenance);
            let mut t = s.init_modified();
            t.set_unix_nanos(stat.modified.unix_nanos);
            t.set_provenance(stat.modified.provenance);
        }
        Err(e) => fill_error(r.init_err(), e),
    }
}

fn read_timestamp(t: crate::capos_capnp::timestamp::Reader<'_>) -> Result<Timestamp, MessageError> {
    let provenance = t.get_provenance().map_err(which_err("Timestamp.provenance"))?;
    Ok(Timestamp { unix_nanos: t.get_unix_nanos(), provenance })
}

/// Read a `StatResult`.
pub fn read_stat(r: stat_result::Reader<'_>) -> Result<Result<Stat, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("StatResult"))? {
        stat_result::Ok(s) => {
            let s = s?;
            let kind = s.get_kind().map_err(which_err("Stat.kind"))?;
            Ok(Stat { size: s.get_size(), kind, created: read_timestamp(s.get_created()?)?, modified: read_timestamp(s.get_modified()?)? })
        }
        stat_result::Err(e) => Err(read_error(e?)?),
    })
}

// --- Generic results -----------------------------------------------------

pub fn fill_void(mut r: void_result::Builder<'_>, result: &Result<(), CapError>) {
    match result {
        Ok(()) => r.set_ok(()),
        Err(e) => fill_error(r.init_err(), e),
    }
}

pub fn read_void(r: void_result::Reader<'_>) -> Result<Result<(), CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("VoidResult"))? {
        void_result::Ok(()) => Ok(()),
        void_result::Err(e) => Err(read_error(e?)?),
    })
}

pub fn fill_u64(mut r: u_int64_result::Builder<'_>, result: &Result<u64, CapError>) {
    match result {
        Ok(v) => r.set_ok(*v),
        Err(e) => fill_error(r.init_err(), e),
    }
}

pub fn read_u64(r: u_int64_result::Reader<'_>) -> Result<Result<u64, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("UInt64Result"))? {
        u_int64_result::Ok(v) => Ok(v),
        u_int64_result::Err(e) => Err(read_error(e?)?),
    })
}

pub fn fill_bool(mut r: bool_result::Builder<'_>, result: &Result<bool, CapError>) {
    match result {
        Ok(v) => r.set_ok(*v),
        Err(e) => fill_error(r.init_err(), e),
    }
}

/// A `CapResult`: `Ok(slot)` indexes the capabilities sent beside the
/// results.
pub fn fill_cap(mut r: cap_result::Builder<'_>, result: &Result<u32, CapError>) {
    match result {
        Ok(slot) => r.set_ok(*slot),
        Err(e) => fill_error(r.init_err(), e),
    }
}

/// Read a `CapResult`, resolving its slot against `caps` (the handles the
/// kernel installed with the results); a slot that indexes nothing is
/// malformed.
pub fn read_cap(r: cap_result::Reader<'_>, caps: &[Handle]) -> Result<Result<Handle, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("CapResult"))? {
        cap_result::Ok(slot) => Ok(*caps.get(slot as usize).ok_or(MessageError::BadCapSlot { slot, caps: caps.len() })?),
        cap_result::Err(e) => Err(read_error(e?)?),
    })
}

pub fn fill_data(mut r: data_result::Builder<'_>, result: &Result<&[u8], CapError>) {
    match result {
        Ok(d) => r.set_ok(d),
        Err(e) => fill_error(r.init_err(), e),
    }
}

pub fn read_data(r: data_result::Reader<'_>) -> Result<Result<Vec<u8>, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("DataResult"))? {
        data_result::Ok(d) => Ok(d?.to_vec()),
        data_result::Err(e) => Err(read_error(e?)?),
    })
}

/// A `TextResult` (`Console.readLine`).
pub fn fill_text(mut r: text_result::Builder<'_>, result: &Result<&str, CapError>) {
    match result {
        Ok(t) => r.set_ok(*t),
        Err(e) => fill_error(r.init_err(), e),
    }
}

/// Read a `TextResult`; text that is not UTF-8 or longer than
/// `MAX_CONSOLE_LINE_BYTES` is malformed.
pub fn read_text(r: text_result::Reader<'_>) -> Result<Result<String, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("TextResult"))? {
        text_result::Ok(t) => {
            let t = t?;
            if t.len() as usize > MAX_CONSOLE_LINE_BYTES {
                return Err(MessageError::FieldTooLarge { field: "TextResult.ok", len: t.len() as usize, max: MAX_CONSOLE_LINE_BYTES });
            }
            Ok(t.to_str().map_err(capnp::Error::from)?.to_string())
        }
        text_result::Err(e) => Err(read_error(e?)?),
    })
}

// --- Owned messages (tests, tools, calls off the hot path) ---------------

/// Encode a message of root `T` into an owned word buffer.
pub fn encode<T: Owned>(fill: impl FnOnce(T::Builder<'_>)) -> Result<Vec<u64>, MessageError> {
    to_words::<T>(|b| {
        fill(b);
        Ok(())
    })
}

/// Read a message of root `T` from bytes and hand its root to `f`.
pub fn decode<T: Owned, R>(
    bytes: &[u8],
    f: impl FnOnce(T::Reader<'_>) -> Result<R, MessageError>,
) -> Result<R, MessageError> {
    let reader = read_flat(bytes)?;
    let r = f(reader.get_root::<T::Reader<'_>>()?);
    r
}

/// A results message as bytes (for tests).
pub fn bytes(words: &[u64]) -> &[u8] {
    word_bytes(words)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capos_capnp::console as console_if;
    use crate::limits::MAX_MESSAGE_BYTES;

    fn sample_stat() -> Stat {
        Stat {
            size: 12345,
            kind: NodeKind::File,
            created: Timestamp { unix_nanos: 1_700_000_000_000_000_000, provenance: TimeProvenance::WallClock },
            modified: Timestamp { unix_nanos: 1_700_000_002_000_000_000, provenance: TimeProvenance::FatDirectoryEntry },
        }
    }

    fn stat_bytes(r: &Result<Stat, CapError>) -> Vec<u64> {
        encode::<stat_result::Owned>(|b| fill_stat(b, r)).unwrap()
    }

    fn stat_back(words: &[u64]) -> Result<Result<Stat, CapError>, MessageError> {
        decode::<stat_result::Owned, _>(bytes(words), read_stat)
    }

    #[test]
    fn text_round_trips_ok_and_err() {
        let ok = encode::<text_result::Owned>(|b| fill_text(b, &Ok("ls /data"))).unwrap();
        assert_eq!(decode::<text_result::Owned, _>(bytes(&ok), read_text).unwrap(), Ok(String::from("ls /data")));
        let busy = Err(CapError::new(ErrorCode::Busy, "another process is reading the console"));
        let words = encode::<text_result::Owned>(|b| fill_text(b, &busy.clone().map(|_: String| ""))).unwrap();
        assert_eq!(decode::<text_result::Owned, _>(bytes(&words), read_text).unwrap(), busy);
        let long = "x".repeat(MAX_CONSOLE_LINE_BYTES + 1);
        let words = encode::<text_result::Owned>(|b| fill_text(b, &Ok(long.as_str()))).unwrap();
        assert!(matches!(decode::<text_result::Owned, _>(bytes(&words), read_text), Err(MessageError::FieldTooLarge { .. })));
    }

    #[test]
    fn stat_round_trips_ok_and_err() {
        let ok = Ok(sample_stat());
        assert_eq!(stat_back(&stat_bytes(&ok)).unwrap(), ok);
        let unknown = Ok(Stat { size: 0, kind: NodeKind::Directory, created: Timestamp::UNKNOWN, modified: Timestamp::UNKNOWN });
        assert_eq!(stat_back(&stat_bytes(&unknown)).unwrap(), unknown);
        let err = Err(CapError::new(ErrorCode::StaleHandle, "the node was removed"));
        assert_eq!(stat_back(&stat_bytes(&err)).unwrap(), err);
    }

    #[test]
    fn an_unknown_provenance_is_malformed_and_an_unknown_error_code_is_unspecified() {
        let mut words = stat_bytes(&Ok(sample_stat()));
        let mut b = bytes(&words).to_vec();
        // Timestamp's provenance is the u16 right after its unixNanos.
        let nanos = 1_700_000_000_000_000_000i64.to_le_bytes();
        let at = b.windows(8).position(|w| w == nanos).unwrap() + 8;
        assert_eq!(&b[at..at + 2], &(TimeProvenance::WallClock as u16).to_le_bytes());
        b[at..at + 2].copy_from_slice(&99u16.to_le_bytes());
        words = crate::message::words_of(&b);
        assert!(matches!(stat_back(&words), Err(MessageError::UnknownEnumValue { field: "Timestamp.provenance", value: 99 })));

        let words = encode::<void_result::Owned>(|r| fill_void(r, &Err(CapError::new(ErrorCode::Busy, "later")))).unwrap();
        let mut b = bytes(&words).to_vec();
        let at = b.windows(2).rposition(|w| w == (ErrorCode::Busy as u16).to_le_bytes()).unwrap();
        b[at..at + 2].copy_from_slice(&500u16.to_le_bytes());
        let words = crate::message::words_of(&b);
        assert_eq!(decode::<void_result::Owned, _>(bytes(&words), read_void).unwrap(), Err(CapError::new(ErrorCode::Unspecified, "later")));
    }

    #[test]
    fn console_lines_are_checked_on_the_kernel_side_too() {
        let line = |l: &str| encode::<console_if::write_line_params::Owned>(|mut p| p.set_line(l)).unwrap();
        let w = line("hello from a demo");
        assert_eq!(decode::<console_if::write_line_params::Owned, _>(bytes(&w), |p| console_write_line_param(p).map(String::from)).unwrap(), "hello from a demo");
        let long = "y".repeat(MAX_CONSOLE_LINE_BYTES + 1);
        assert!(matches!(check_console_line(&long), Err(MessageError::FieldTooLarge { .. })));
        // A hostile client bypassing the check is still refused by the kernel side.
        let w = line(&long);
        assert!(matches!(decode::<console_if::write_line_params::Owned, _>(bytes(&w), |p| console_write_line_param(p).map(String::from)), Err(MessageError::FieldTooLarge { .. })));
        // Invalid UTF-8 in a line is refused, not passed on.
        let mut b = bytes(&line("abc")).to_vec();
        let at = b.windows(3).position(|w| w == b"abc").unwrap();
        b[at] = 0xff;
        let w = crate::message::words_of(&b);
        assert!(decode::<console_if::write_line_params::Owned, _>(bytes(&w), |p| console_write_line_param(p).map(String::from)).is_err());
    }

    #[test]
    fn console_lines_are_sanitized() {
        assert_eq!(sanitize_console_line("plain text\twith tab"), "plain text\twith tab");
        assert_eq!(sanitize_console_line("fake\n[PASS] forged"), "fake?[PASS] forged");
        assert_eq!(sanitize_console_line("\x1b[2Jclear\r\x7f\u{85}"), "?[2Jclear???");
        assert_eq!(sanitize_console_line("üñí ✓"), "üñí ✓");
    }

    #[test]
    fn cap_void_u64_data_round_trip() {
        let caps = [Handle::new(4, 9)];
        let w = encode::<cap_result::Owned>(|r| fill_cap(r, &Ok(0))).unwrap();
        assert_eq!(decode::<cap_result::Owned, _>(bytes(&w), |r| read_cap(r, &caps)).unwrap(), Ok(caps[0]));
        let e = CapError::new(ErrorCode::NotFound, "no such file");
        let w = encode::<cap_result::Owned>(|r| fill_cap(r, &Err(e.clone()))).unwrap();
        assert_eq!(decode::<cap_result::Owned, _>(bytes(&w), |r| read_cap(r, &[])).unwrap(), Err(e));
        // A slot that indexes nothing is malformed.
        let w = encode::<cap_result::Owned>(|r| fill_cap(r, &Ok(3))).unwrap();
        assert!(matches!(decode::<cap_result::Owned, _>(bytes(&w), |r| read_cap(r, &caps)), Err(MessageError::BadCapSlot { slot: 3, caps: 1 })));

        let w = encode::<void_result::Owned>(|r| fill_void(r, &Ok(()))).unwrap();
        assert_eq!(decode::<void_result::Owned, _>(bytes(&w), read_void).unwrap(), Ok(()));
        let ro = Err(CapError::new(ErrorCode::ReadOnly, "read-only backer"));
        let w = encode::<void_result::Owned>(|r| fill_void(r, &ro)).unwrap();
        assert_eq!(decode::<void_result::Owned, _>(bytes(&w), read_void).unwrap(), ro);
        let w = encode::<u_int64_result::Owned>(|r| fill_u64(r, &Ok(u64::MAX))).unwrap();
        assert_eq!(decode::<u_int64_result::Owned, _>(bytes(&w), read_u64).unwrap(), Ok(u64::MAX));
        let data = vec![7u8; 64 * 1024];
        let w = encode::<data_result::Owned>(|r| fill_data(r, &Ok(&data))).unwrap();
        assert_eq!(decode::<data_result::Owned, _>(bytes(&w), read_data).unwrap(), Ok(data.clone()));
        let too_big = vec![0u8; MAX_MESSAGE_BYTES];
        assert!(matches!(encode::<data_result::Owned>(|r| fill_data(r, &Ok(&too_big))), Err(MessageError::TooLarge { .. })));
        // Decoding results as the wrong type must not panic.
        let w = encode::<data_result::Owned>(|r| fill_data(r, &Ok(&data[..10]))).unwrap();
        let _ = decode::<stat_result::Owned, _>(bytes(&w), read_stat);
        // An empty message reads as the default struct (the `ok` arm of a union with a void default).
        assert_eq!(decode::<void_result::Owned, _>(&[], read_void).unwrap(), Ok(()));
        assert_eq!(decode::<u_int64_result::Owned, _>(&[], read_u64).unwrap(), Ok(0));
    }

    #[test]
    fn read_lengths_are_capped() {
        assert!(check_read_length(MAX_IO_CHUNK_BYTES).is_ok());
        assert!(check_read_length(MAX_IO_CHUNK_BYTES + 1).is_err());
    }
}
