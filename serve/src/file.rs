//! `File`: the trait a file object implements, and the capnp dispatcher in
//! front of it.
//!
//! `read`'s length limit depends on where the bytes go: inline in the
//! results, at most [`MAX_IO_CHUNK_BYTES`]; into the caller's writable bulk
//! buffer, at most [`MAX_BULK_BYTES`] and at most the buffer. A larger
//! length is `tooLarge` and never reaches the server.

use super::{bad_params, with_data, void_reply, Responder};
use capos_abi::capos_capnp::{data_result, file, stat_result, u_int64_result, ErrorCode, TimeProvenance};
use capos_abi::helpers::{fill_data, fill_stat, fill_u64, CapError, Stat, Timestamp};
use capos_abi::interfaces::file_method as m;
use capos_abi::ipc::MAX_BULK_BYTES;
use capos_abi::limits::MAX_IO_CHUNK_BYTES;
use capos_abi::message::CallMessage;
use capos_abi::SysError;
use alloc::format;
use alloc::vec;

/// What a `File` does, in plain Rust.
pub trait FileServer {
    /// Fill the start of `buf` from `offset`; the count (0 at or past the end).
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CapError>;
    /// Write all of `data` at `offset`; the count.
    fn write(&self, offset: u64, data: &[u8]) -> Result<u64, CapError>;
    fn stat(&self) -> Result<Stat, CapError>;
    fn truncate(&self, size: u64) -> Result<(), CapError>;
    fn sync(&self) -> Result<(), CapError>;
    fn close(&self) -> Result<(), CapError>;
}

pub fn provenance(p: capos_storage::Provenance) -> TimeProvenance {
    use capos_storage::Provenance as P;
    match p {
        P::Unknown => TimeProvenance::Unknown,
        P::WallClock => TimeProvenance::WallClock,
        P::Rtc => TimeProvenance::Rtc,
        P::SourceDateEpoch => TimeProvenance::FixedSourceDateEpoch,
        P::HostFileMtime => TimeProvenance::HostFileMtime,
        P::FatDirectoryEntry => TimeProvenance::FatDirectoryEntry,
    }
}

fn timestamp(t: capos_storage::Timestamp) -> Timestamp {
    Timestamp { unix_nanos: t.unix_nanos, provenance: provenance(t.provenance) }
}

/// A storage `Stat` as the schema's.
pub fn stat_of(s: &capos_storage::Stat) -> Stat {
    Stat { size: s.size, kind: super::directory::node_kind(s.kind), created: timestamp(s.created), modified: timestamp(s.modified) }
}

fn data_error<R: Responder>(r: &mut R, e: CapError) -> Result<(), SysError> {
    r.results::<data_result::Owned>(|b| {
        fill_data(b, &Err(e));
        Ok(())
    })
}

/// Answer one `File` call.
pub fn dispatch<S: FileServer + ?Sized, R: Responder>(server: &S, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    match call.method_id() {
        m::READ => {
            let p = call.params::<file::read_params::Owned>().map_err(bad_params)?;
            let (offset, length) = (p.get_offset(), p.get_length() as usize);
            let bulk = r.bulk_out_capacity();
            let limit = match bulk {
                Some(room) => room.min(MAX_BULK_BYTES as usize),
                None => MAX_IO_CHUNK_BYTES as usize,
            };
            if length > limit {
                let where_ = if bulk.is_some() { "the bulk buffer" } else { "an inline read" };
                return data_error(r, CapError::new(ErrorCode::TooLarge, &format!("read of {length} bytes is more than {where_} takes ({limit})")));
            }
            if bulk.is_some() {
                // Read where the answer goes (a service's bulk buffer).
                return match r.bulk_out_with(length, |buf| server.read(offset, buf))? {
                    Err(e) => data_error(r, e),
                    Ok(_) => r.results::<data_result::Owned>(|b| {
                        fill_data(b, &Ok(&[]));
                        Ok(())
                    }),
                };
            }
            let mut buf = vec![0u8; length];
            match server.read(offset, &mut buf) {
                Err(e) => data_error(r, e),
                Ok(n) => r.results::<data_result::Owned>(|b| {
                    fill_data(b, &Ok(&buf[..n.min(length)]));
                    Ok(())
                }),
            }
        }
        m::WRITE => {
            let p = call.params::<file::write_params::Owned>().map_err(bad_params)?;
            let offset = p.get_offset();
            let inline = p.get_data().map_err(bad_params)?;
            let past_end = |len: usize| match offset.checked_add(len as u64) {
                Some(_) => Ok(()),
                None => Err(CapError::new(ErrorCode::InvalidArgument, &format!("a write of {len} bytes at offset {offset} ends past the largest offset"))),
            };
            let result = with_data(inline, r, past_end, |data| server.write(offset, data))?;
            r.results::<u_int64_result::Owned>(|b| {
                fill_u64(b, &result);
                Ok(())
            })
        }
        m::STAT => {
            let result = server.stat();
            r.results::<stat_result::Owned>(|b| {
                fill_stat(b, &result);
                Ok(())
            })
        }
        m::TRUNCATE => {
            let size = call.params::<file::truncate_params::Owned>().map_err(bad_params)?.get_size();
            let result = server.truncate(size);
            void_reply(r, result)
        }
        m::SYNC => {
            let result = server.sync();
            void_reply(r, result)
        }
        m::CLOSE => {
            let result = server.close();
            void_reply(r, result)
        }
        _ => Err(SysError::UnknownMethod),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use capos_abi::capos_capnp::void_result;
    use capos_abi::helpers::{read_data, read_u64};
    use capos_abi::interfaces::FILE;
    use alloc::vec::Vec;
    use core::cell::RefCell;

    /// A file of bytes in memory.
    #[derive(Default)]
    struct Mem(RefCell<Vec<u8>>);

    impl FileServer for Mem {
        fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CapError> {
            let d = self.0.borrow();
            let start = (offset as usize).min(d.len());
            let n = buf.len().min(d.len() - start);
            buf[..n].copy_from_slice(&d[start..start + n]);
            Ok(n)
        }
        fn write(&self, offset: u64, data: &[u8]) -> Result<u64, CapError> {
            let mut d = self.0.borrow_mut();
            let end = offset as usize + data.len();
            if d.len() < end {
                d.resize(end, 0);
            }
            d[offset as usize..end].copy_from_slice(data);
            Ok(data.len() as u64)
        }
        fn stat(&self) -> Result<Stat, CapError> {
            Ok(Stat { size: self.0.borrow().len() as u64, kind: capos_abi::capos_capnp::NodeKind::File, created: Timestamp::UNKNOWN, modified: Timestamp::UNKNOWN })
        }
        fn truncate(&self, size: u64) -> Result<(), CapError> {
            self.0.borrow_mut().resize(size as usize, 0);
            Ok(())
        }
        fn sync(&self) -> Result<(), CapError> {
            Ok(())
        }
        fn close(&self) -> Result<(), CapError> {
            Err(CapError::new(ErrorCode::Closed, "closed"))
        }
    }

    fn read_call(f: &Mem, offset: u64, length: u32, r: &mut TestResponder) -> Result<Vec<u8>, CapError> {
        let words = params::<file::read_params::Owned>(|mut b| {
            b.set_offset(offset);
            b.set_length(length);
        });
        dispatch(f, &call(FILE, m::READ, &words), r).unwrap();
        r.get::<data_result::Owned, _>(|res| read_data(res).unwrap())
    }

    fn write_call(f: &Mem, offset: u64, data: &[u8], r: &mut TestResponder) -> Result<u64, CapError> {
        let words = params::<file::write_params::Owned>(|mut b| {
            b.set_offset(offset);
            b.set_data(data);
        });
        dispatch(f, &call(FILE, m::WRITE, &words), r).unwrap();
        r.get::<u_int64_result::Owned, _>(|res| read_u64(res).unwrap())
    }

    #[test]
    fn inline_write_then_read() {
        let f = Mem::default();
        assert_eq!(write_call(&f, 3, b"abc", &mut TestResponder::new()), Ok(3));
        assert_eq!(read_call(&f, 0, 100, &mut TestResponder::new()), Ok(b"\0\0\0abc".to_vec()));
        assert_eq!(read_call(&f, 100, 5, &mut TestResponder::new()), Ok(Vec::new()));
    }

    #[test]
    fn bulk_write_and_read_use_the_buffer_not_the_message() {
        let f = Mem::default();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7) as u8).collect();
        let mut r = TestResponder::new();
        r.bulk_in = Some(big.clone());
        assert_eq!(write_call(&f, 0, b"", &mut r), Ok(300_000));
        let mut r = TestResponder::new();
        r.bulk_cap = Some(400_000);
        assert_eq!(read_call(&f, 0, 300_000, &mut r), Ok(Vec::new()), "the Data result stays empty");
        assert_eq!(r.bulk_out.as_deref(), Some(&big[..]));
        // The staging buffer was cleared a chunk at a time, pausing between
        // (the kernel lets interrupts in there).
        assert!(r.pauses >= 300_000 / crate::PAUSE_BYTES, "{} pauses", r.pauses);
        // Data given twice is refused before it reaches the file.
        let mut r = TestResponder::new();
        r.bulk_in = Some(alloc::vec![1, 2]);
        assert_eq!(write_call(&f, 0, b"x", &mut r).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(f.0.borrow()[0], big[0]);
        assert_eq!(r.bulk_copies.get(), 0, "refused before the bulk buffer was copied");
        // So is a write that would end past the largest offset.
        let mut r = TestResponder::new();
        r.bulk_in = Some(alloc::vec![1; 4096]);
        assert_eq!(write_call(&f, u64::MAX - 100, b"", &mut r).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(r.bulk_copies.get(), 0, "refused before the bulk buffer was copied");
    }

    #[test]
    fn lengths_over_the_limit_are_too_large() {
        let f = Mem::default();
        let e = read_call(&f, 0, MAX_IO_CHUNK_BYTES + 1, &mut TestResponder::new()).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooLarge);
        read_call(&f, 0, MAX_IO_CHUNK_BYTES, &mut TestResponder::new()).unwrap();
        let mut r = TestResponder::new();
        r.bulk_cap = Some(1000);
        assert_eq!(read_call(&f, 0, 1001, &mut r).unwrap_err().code, ErrorCode::TooLarge, "more than the bulk buffer");
        let mut r = TestResponder::new();
        r.bulk_cap = Some(4 << 20);
        assert_eq!(read_call(&f, 0, MAX_BULK_BYTES as u32 + 1, &mut r).unwrap_err().code, ErrorCode::TooLarge);
        assert_eq!(read_call(&f, u64::MAX, 10, &mut TestResponder::new()), Ok(Vec::new()));
    }

    #[test]
    fn stat_truncate_close() {
        let f = Mem::default();
        let words = params::<file::truncate_params::Owned>(|mut b| b.set_size(9));
        dispatch(&f, &call(FILE, m::TRUNCATE, &words), &mut TestResponder::new()).unwrap();
        let mut r = TestResponder::new();
        dispatch(&f, &call(FILE, m::STAT, &[]), &mut r).unwrap();
        let st = r.get::<stat_result::Owned, _>(|res| capos_abi::helpers::read_stat(res).unwrap()).unwrap();
        assert_eq!(st.size, 9);
        let mut r = TestResponder::new();
        dispatch(&f, &call(FILE, m::CLOSE, &[]), &mut r).unwrap();
        let e = r.get::<void_result::Owned, _>(|res| capos_abi::helpers::read_void(res).unwrap()).unwrap_err();
        assert_eq!(e.code, ErrorCode::Closed);
        assert_eq!(dispatch(&f, &call(FILE, 6, &[]), &mut TestResponder::new()), Err(SysError::UnknownMethod));
    }

    #[test]
    fn storage_stat_converts_with_provenance() {
        use capos_storage::{NodeKind, Provenance, Stat as S, Timestamp as T};
        let s = S { kind: NodeKind::Directory, size: 0, created: T::new(5, Provenance::WallClock), modified: T::new(6, Provenance::HostFileMtime) };
        let c = stat_of(&s);
        assert_eq!(c.kind, capos_abi::capos_capnp::NodeKind::Directory);
        assert_eq!((c.created.unix_nanos, c.created.provenance), (5, TimeProvenance::WallClock));
        assert_eq!(c.modified.provenance, TimeProvenance::HostFileMtime);
    }
}
