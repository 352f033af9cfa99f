//! Typed encoders and decoders for the common calls and results, so the
//! kernel, the runtime and tests do not hand-build envelopes.
//!
//! Client side: `*_call` builds the `Call` bytes for `cap_call`; `read_*`
//! decodes the `Return` bytes it wrote back into plain Rust values.
//! Object side: `encode_*_return` builds the `Return` bytes from a result.
//!
//! Every decoder runs the full validation of [`crate::message`]. An
//! `ErrorCode` this version does not know reads as `Unspecified` (the
//! message text is kept), so a newer server's new error code is still an
//! error to an older client; an unknown `NodeKind` or `TimeProvenance` is a
//! malformed message.

use crate::capos_capnp::{
    cap_result, console, data_result, directory, error, file, ping, stat_result, u_int64_result,
    void_result, ErrorCode, NodeKind, TimeProvenance,
};
use crate::interfaces::{self, console_method, directory_method, file_method, ping_method};
use crate::limits::{MAX_CONSOLE_LINE_BYTES, MAX_IO_CHUNK_BYTES};
use crate::message::{encode_call, encode_return, CallMessage, MessageError, ReturnMessage};
use crate::Handle;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

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

fn write_error(mut b: error::Builder<'_>, e: &CapError) {
    b.set_code(e.code);
    b.set_message(e.message.as_str());
}

fn read_error(r: error::Reader<'_>) -> Result<CapError, MessageError> {
    let code = r.get_code().unwrap_or(ErrorCode::Unspecified);
    let message = r.get_message()?.to_str().map_err(capnp::Error::from)?.to_string();
    Ok(CapError { code, message })
}

fn text<'a>(t: capnp::text::Reader<'a>) -> Result<&'a str, MessageError> {
    Ok(t.to_str().map_err(capnp::Error::from)?)
}

// --- Console -------------------------------------------------------------

/// `Console.writeLine(line)`.
pub fn console_write_line_call(line: &str) -> Result<Vec<u8>, MessageError> {
    if line.len() > MAX_CONSOLE_LINE_BYTES {
        return Err(MessageError::FieldTooLarge { field: "console line", len: line.len(), max: MAX_CONSOLE_LINE_BYTES });
    }
    encode_call::<console::write_line_params::Owned>(interfaces::CONSOLE, console_method::WRITE_LINE, &[], |mut p| {
        p.set_line(line);
        Ok(())
    })
}

/// The line of a `Console.writeLine` call (kernel side), length-checked.
pub fn console_write_line_param(call: &CallMessage) -> Result<&str, MessageError> {
    let line = text(call.params::<console::write_line_params::Owned>()?.get_line()?)?;
    if line.len() > MAX_CONSOLE_LINE_BYTES {
        return Err(MessageError::FieldTooLarge { field: "console line", len: line.len(), max: MAX_CONSOLE_LINE_BYTES });
    }
    Ok(line)
}

/// The line as the kernel prints it: control characters other than tab
/// (and DEL) become `?`, so a process cannot forge log lines, move the
/// cursor or clear the operator's terminal.
pub fn sanitize_console_line(line: &str) -> String {
    line.chars().map(|c| if c.is_control() && c != '\t' { '?' } else { c }).collect()
}

// --- Directory / File ----------------------------------------------------

/// `Directory.open(name)`.
pub fn directory_open_call(name: &str) -> Result<Vec<u8>, MessageError> {
    encode_call::<directory::open_params::Owned>(interfaces::DIRECTORY, directory_method::OPEN, &[], |mut p| {
        p.set_name(name);
        Ok(())
    })
}

/// `File.read(offset, length)`; `length` is capped by [`MAX_IO_CHUNK_BYTES`].
pub fn file_read_call(offset: u64, length: u32) -> Result<Vec<u8>, MessageError> {
    if length > MAX_IO_CHUNK_BYTES {
        return Err(MessageError::FieldTooLarge { field: "read length", len: length as usize, max: MAX_IO_CHUNK_BYTES as usize });
    }
    encode_call::<file::read_params::Owned>(interfaces::FILE, file_method::READ, &[], |mut p| {
        p.set_offset(offset);
        p.set_length(length);
        Ok(())
    })
}

/// `File.stat()`.
pub fn file_stat_call() -> Result<Vec<u8>, MessageError> {
    encode_call::<file::stat_params::Owned>(interfaces::FILE, file_method::STAT, &[], |_| Ok(()))
}

/// The `Return` of `File.stat`.
pub fn encode_stat_return(result: &Result<Stat, CapError>) -> Result<Vec<u8>, MessageError> {
    encode_return::<stat_result::Owned>(&[], |r| {
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
            Err(e) => write_error(r.init_err(), e),
        }
        Ok(())
    })
}

fn read_timestamp(t: crate::capos_capnp::timestamp::Reader<'_>) -> Result<Timestamp, MessageError> {
    let provenance = t
        .get_provenance()
        .map_err(|e| MessageError::UnknownEnumValue { field: "Timestamp.provenance", value: e.0 })?;
    Ok(Timestamp { unix_nanos: t.get_unix_nanos(), provenance })
}

/// Decode the `Return` of `File.stat`.
pub fn read_stat_return(bytes: &[u8]) -> Result<Result<Stat, CapError>, MessageError> {
    let ret = ReturnMessage::read(bytes)?;
    let r = ret.results::<stat_result::Owned>()?;
    Ok(match r.which().map_err(|e| MessageError::UnknownEnumValue { field: "StatResult", value: e.0 })? {
        stat_result::Ok(s) => {
            let s = s?;
            let kind = s.get_kind().map_err(|e| MessageError::UnknownEnumValue { field: "Stat.kind", value: e.0 })?;
            Ok(Stat { size: s.get_size(), kind, created: read_timestamp(s.get_created()?)?, modified: read_timestamp(s.get_modified()?)? })
        }
        stat_result::Err(e) => Err(read_error(e?)?),
    })
}

// --- Generic results -----------------------------------------------------

/// A `VoidResult` return.
pub fn encode_void_return(result: &Result<(), CapError>) -> Result<Vec<u8>, MessageError> {
    encode_return::<void_result::Owned>(&[], |mut r| {
        match result {
            Ok(()) => r.set_ok(()),
            Err(e) => write_error(r.init_err(), e),
        }
        Ok(())
    })
}

pub fn read_void_return(bytes: &[u8]) -> Result<Result<(), CapError>, MessageError> {
    let ret = ReturnMessage::read(bytes)?;
    let r = ret.results::<void_result::Owned>()?;
    Ok(match r.which().map_err(|e| MessageError::UnknownEnumValue { field: "VoidResult", value: e.0 })? {
        void_result::Ok(()) => Ok(()),
        void_result::Err(e) => Err(read_error(e?)?),
    })
}

/// A `CapResult` return: the capability travels in `Return.caps[0]`.
pub fn encode_cap_return(result: &Result<Handle, CapError>) -> Result<Vec<u8>, MessageError> {
    let caps: Vec<Handle> = result.iter().copied().collect();
    encode_return::<cap_result::Owned>(&caps, |mut r| {
        match result {
            Ok(_) => r.set_ok(0),
            Err(e) => write_error(r.init_err(), e),
        }
        Ok(())
    })
}

/// Decode a `CapResult` return; the slot is resolved against `Return.caps`.
pub fn read_cap_return(bytes: &[u8]) -> Result<Result<Handle, CapError>, MessageError> {
    let ret = ReturnMessage::read(bytes)?;
    let r = ret.results::<cap_result::Owned>()?;
    Ok(match r.which().map_err(|e| MessageError::UnknownEnumValue { field: "CapResult", value: e.0 })? {
        cap_result::Ok(slot) => Ok(ret.cap(slot)?),
        cap_result::Err(e) => Err(read_error(e?)?),
    })
}

pub fn encode_u64_return(result: &Result<u64, CapError>) -> Result<Vec<u8>, MessageError> {
    encode_return::<u_int64_result::Owned>(&[], |mut r| {
        match result {
            Ok(v) => r.set_ok(*v),
            Err(e) => write_error(r.init_err(), e),
        }
        Ok(())
    })
}

pub fn read_u64_return(bytes: &[u8]) -> Result<Result<u64, CapError>, MessageError> {
    let ret = ReturnMessage::read(bytes)?;
    let r = ret.results::<u_int64_result::Owned>()?;
    Ok(match r.which().map_err(|e| MessageError::UnknownEnumValue { field: "UInt64Result", value: e.0 })? {
        u_int64_result::Ok(v) => Ok(v),
        u_int64_result::Err(e) => Err(read_error(e?)?),
    })
}

pub fn encode_data_return(result: &Result<&[u8], CapError>) -> Result<Vec<u8>, MessageError> {
    encode_return::<data_result::Owned>(&[], |mut r| {
        match result {
            Ok(d) => r.set_ok(d),
            Err(e) => write_error(r.init_err(), e),
        }
        Ok(())
    })
}

pub fn read_data_return(bytes: &[u8]) -> Result<Result<Vec<u8>, CapError>, MessageError> {
    let ret = ReturnMessage::read(bytes)?;
    let r = ret.results::<data_result::Owned>()?;
    Ok(match r.which().map_err(|e| MessageError::UnknownEnumValue { field: "DataResult", value: e.0 })? {
        data_result::Ok(d) => Ok(d?.to_vec()),
        data_result::Err(e) => Err(read_error(e?)?),
    })
}

// --- Ping ----------------------------------------------------------------

/// `Ping.ping(value)`, the null call.
pub fn ping_call(value: u64) -> Result<Vec<u8>, MessageError> {
    encode_call::<ping::ping_params::Owned>(interfaces::PING, ping_method::PING, &[], |mut p| {
        p.set_value(value);
        Ok(())
    })
}

/// The value of a `Ping.ping` call (server side).
pub fn ping_param(call: &CallMessage) -> Result<u64, MessageError> {
    Ok(call.params::<ping::ping_params::Owned>()?.get_value())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_MESSAGE_BYTES;

    fn sample_stat() -> Stat {
        Stat {
            size: 12345,
            kind: NodeKind::File,
            created: Timestamp { unix_nanos: 1_700_000_000_000_000_000, provenance: TimeProvenance::WallClock },
            modified: Timestamp { unix_nanos: 1_700_000_002_000_000_000, provenance: TimeProvenance::FatDirectoryEntry },
        }
    }

    #[test]
    fn stat_round_trips_ok_and_err() {
        let ok = Ok(sample_stat());
        assert_eq!(read_stat_return(&encode_stat_return(&ok).unwrap()).unwrap(), ok);
        let unknown = Ok(Stat { size: 0, kind: NodeKind::Directory, created: Timestamp::UNKNOWN, modified: Timestamp::UNKNOWN });
        assert_eq!(read_stat_return(&encode_stat_return(&unknown).unwrap()).unwrap(), unknown);
        let err = Err(CapError::new(ErrorCode::StaleHandle, "the node was removed"));
        assert_eq!(read_stat_return(&encode_stat_return(&err).unwrap()).unwrap(), err);
    }

    #[test]
    fn an_unknown_provenance_is_malformed_and_an_unknown_error_code_is_unspecified() {
        let mut bytes = encode_stat_return(&Ok(sample_stat())).unwrap();
        // Timestamp's provenance is the u16 right after its unixNanos.
        let nanos = 1_700_000_000_000_000_000i64.to_le_bytes();
        let at = bytes.windows(8).position(|w| w == nanos).unwrap() + 8;
        assert_eq!(&bytes[at..at + 2], &(TimeProvenance::WallClock as u16).to_le_bytes());
        bytes[at..at + 2].copy_from_slice(&99u16.to_le_bytes());
        assert!(matches!(read_stat_return(&bytes), Err(MessageError::UnknownEnumValue { field: "Timestamp.provenance", value: 99 })));

        let mut bytes = encode_void_return(&Err(CapError::new(ErrorCode::Busy, "later"))).unwrap();
        let at = bytes.windows(2).rposition(|w| w == (ErrorCode::Busy as u16).to_le_bytes()).unwrap();
        bytes[at..at + 2].copy_from_slice(&500u16.to_le_bytes());
        assert_eq!(read_void_return(&bytes).unwrap(), Err(CapError::new(ErrorCode::Unspecified, "later")));
    }

    #[test]
    fn console_calls_check_the_line_length_on_both_sides() {
        let bytes = console_write_line_call("hello from a demo").unwrap();
        let call = CallMessage::read(&bytes).unwrap();
        assert_eq!((call.interface_id(), call.method_id()), (interfaces::CONSOLE, console_method::WRITE_LINE));
        assert_eq!(console_write_line_param(&call).unwrap(), "hello from a demo");

        let long = "y".repeat(MAX_CONSOLE_LINE_BYTES + 1);
        assert!(matches!(console_write_line_call(&long), Err(MessageError::FieldTooLarge { .. })));
        // A hostile client bypassing the helper is still refused by the kernel side.
        let bytes = encode_call::<console::write_line_params::Owned>(interfaces::CONSOLE, 0, &[], |mut p| {
            p.set_line(long.as_str());
            Ok(())
        })
        .unwrap();
        let call = CallMessage::read(&bytes).unwrap();
        assert!(matches!(console_write_line_param(&call), Err(MessageError::FieldTooLarge { .. })));
        // Invalid UTF-8 in a line is refused, not passed on.
        let mut bytes = console_write_line_call("abc").unwrap();
        let at = bytes.windows(3).position(|w| w == b"abc").unwrap();
        bytes[at] = 0xff;
        let call = CallMessage::read(&bytes).unwrap();
        assert!(console_write_line_param(&call).is_err());
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
        let h = Handle::new(4, 9);
        let bytes = encode_cap_return(&Ok(h)).unwrap();
        assert_eq!(read_cap_return(&bytes).unwrap(), Ok(h));
        let e = CapError::new(ErrorCode::NotFound, "no such file");
        assert_eq!(read_cap_return(&encode_cap_return(&Err(e.clone())).unwrap()).unwrap(), Err(e.clone()));
        assert_eq!(ReturnMessage::read(&encode_cap_return(&Err(e.clone())).unwrap()).unwrap().caps(), &[]);
        // A slot that indexes nothing is malformed.
        let bad = encode_return::<cap_result::Owned>(&[], |mut r| {
            r.set_ok(3);
            Ok(())
        })
        .unwrap();
        assert!(matches!(read_cap_return(&bad), Err(MessageError::BadCapSlot { slot: 3, caps: 0 })));

        assert_eq!(read_void_return(&encode_void_return(&Ok(())).unwrap()).unwrap(), Ok(()));
        let ro = Err(CapError::new(ErrorCode::ReadOnly, "read-only backer"));
        assert_eq!(read_void_return(&encode_void_return(&ro).unwrap()).unwrap(), ro);
        assert_eq!(read_u64_return(&encode_u64_return(&Ok(u64::MAX)).unwrap()).unwrap(), Ok(u64::MAX));
        let data = vec![7u8; 64 * 1024];
        assert_eq!(read_data_return(&encode_data_return(&Ok(&data)).unwrap()).unwrap(), Ok(data.clone()));
        let too_big = vec![0u8; MAX_MESSAGE_BYTES];
        assert!(matches!(encode_data_return(&Ok(&too_big)), Err(MessageError::TooLarge { .. })));
        // Decoding a Return as the wrong result type must not panic.
        let _ = read_stat_return(&encode_data_return(&Ok(&data[..10])).unwrap());
    }

    #[test]
    fn call_builders() {
        let c = CallMessage::read(&ping_call(77).unwrap()).unwrap();
        assert_eq!((c.interface_id(), c.method_id()), (interfaces::PING, ping_method::PING));
        assert_eq!(ping_param(&c).unwrap(), 77);
        let c = CallMessage::read(&file_read_call(10, MAX_IO_CHUNK_BYTES).unwrap()).unwrap();
        assert_eq!((c.interface_id(), c.method_id()), (interfaces::FILE, file_method::READ));
        assert!(file_read_call(0, MAX_IO_CHUNK_BYTES + 1).is_err());
        let c = CallMessage::read(&file_stat_call().unwrap()).unwrap();
        assert_eq!(c.method_id(), file_method::STAT);
        let c = CallMessage::read(&directory_open_call("readme.txt").unwrap()).unwrap();
        assert_eq!((c.interface_id(), c.method_id()), (interfaces::DIRECTORY, directory_method::OPEN));
        assert_eq!(c.params::<directory::open_params::Owned>().unwrap().get_name().unwrap(), "readme.txt");
    }
}
