//! `BlockDevice`: the trait a block server implements, the capnp
//! dispatcher in front of it, and the read-only wrapper.
//!
//! Rules the dispatcher keeps, so a server only ever sees requests that
//! fit its range:
//! - Data moves through the bulk buffer only: `read` needs a writable bulk
//!   buffer, `write` a readable one; the wrong direction (or none) is
//!   `invalidArgument` and never reaches the server.
//! - A request is whole blocks inside the range: no blocks, a length that
//!   is not a multiple of the block size, or blocks at or past
//!   `blockCount` are `invalidArgument`; more than the caller's buffer or
//!   [`MAX_BULK_BYTES`] is `tooLarge`.
//! - LBAs are relative to what the capability reaches (a partition's
//!   first block is 0); the server adds its own offset.
//! - Read-only is a wrapper ([`ReadOnlyBlock`]), not a flag each server
//!   checks: it reports `readOnly` in `info` and refuses write and flush
//!   with `readOnly` without reaching the device.
//! - Every check comes before the bulk buffer is copied in (a write the
//!   geometry refuses, read-only included, costs no copy).

use super::{bad_params, void_reply, Responder};
use capos_abi::capos_capnp::{block_device, block_info_result, data_result, ErrorCode};
use capos_abi::helpers::{fill_data, CapError};
use capos_abi::interfaces::block_method as m;
use capos_abi::ipc::MAX_BULK_BYTES;
use capos_abi::message::CallMessage;
use capos_abi::SysError;
use alloc::format;
use capos_storage::BlockError;

/// What `BlockDevice.info` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub block_size: u32,
    pub block_count: u64,
    pub read_only: bool,
}

/// What a block server does, in plain Rust. The dispatcher has checked
/// every request against [`geometry`](Self::geometry) before calling
/// `read` or `write`: `buf` and `data` are non-empty whole blocks within
/// the range.
pub trait BlockServer {
    fn geometry(&self) -> BlockInfo;
    /// Fill `buf` from `lba`.
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), CapError>;
    /// Write `data` at `lba`; durable after a later `flush`.
    fn write(&self, lba: u64, data: &[u8]) -> Result<(), CapError>;
    fn flush(&self) -> Result<(), CapError>;
}

/// `server` behind the read-only wrapper: reads pass, write and flush are
/// `readOnly`.
pub struct ReadOnlyBlock<S>(pub S);

impl<S: BlockServer> BlockServer for ReadOnlyBlock<S> {
    fn geometry(&self) -> BlockInfo {
        BlockInfo { read_only: true, ..self.0.geometry() }
    }
    fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), CapError> {
        self.0.read(lba, buf)
    }
    fn write(&self, _lba: u64, _data: &[u8]) -> Result<(), CapError> {
        Err(CapError::new(ErrorCode::ReadOnly, "read-only capability: BlockDevice.write refused"))
    }
    fn flush(&self) -> Result<(), CapError> {
        Err(CapError::new(ErrorCode::ReadOnly, "read-only capability: BlockDevice.flush refused"))
    }
}

/// A device's [`BlockError`] as the error a client sees.
pub fn block_error(e: &BlockError) -> CapError {
    let code = match e {
        BlockError::OutOfRange | BlockError::BadLength => ErrorCode::InvalidArgument,
        BlockError::ReadOnly => ErrorCode::ReadOnly,
        BlockError::Device { .. } | BlockError::Timeout => ErrorCode::Io,
    };
    CapError { code, message: alloc::string::ToString::to_string(e) }
}

fn invalid(message: &str) -> CapError {
    CapError::new(ErrorCode::InvalidArgument, message)
}

/// `blocks` blocks from `lba` against `g`: the byte length, or why not.
/// `room` is the most bytes the call may move.
fn check(g: &BlockInfo, lba: u64, blocks: u64, room: usize) -> Result<usize, CapError> {
    if blocks == 0 {
        return Err(invalid("a request of no blocks"));
    }
    let bytes = blocks.saturating_mul(g.block_size as u64);
    if bytes > room as u64 {
        return Err(CapError::new(ErrorCode::TooLarge, &format!("{blocks} blocks of {} bytes are more than the {room} bytes this call may move", g.block_size)));
    }
    match lba.checked_add(blocks) {
        Some(end) if end <= g.block_count => Ok(bytes as usize),
        _ => Err(invalid(&format!("blocks {lba}..{lba}+{blocks} are past the end of the range ({} blocks)", g.block_count))),
    }
}

fn data_reply<R: Responder>(r: &mut R, result: Result<(), CapError>) -> Result<(), SysError> {
    r.results::<data_result::Owned>(|b| {
        fill_data(b, &result.map(|()| &[][..]));
        Ok(())
    })
}

/// Answer one `BlockDevice` call.
pub fn dispatch<S: BlockServer + ?Sized, R: Responder>(server: &S, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    match call.method_id() {
        m::INFO => {
            let g = server.geometry();
            r.results::<block_info_result::Owned>(|b| {
                let mut ok = b.init_ok();
                ok.set_block_size(g.block_size);
                ok.set_block_count(g.block_count);
                ok.set_read_only(g.read_only);
                Ok(())
            })
        }
        m::READ => {
            let p = call.params::<block_device::read_params::Owned>().map_err(bad_params)?;
            let (lba, blocks) = (p.get_lba(), p.get_blocks() as u64);
            let Some(room) = r.bulk_out_capacity() else {
                return data_reply(r, Err(invalid("BlockDevice.read answers through a writable bulk buffer; the call has none")));
            };
            let g = server.geometry();
            let len = match check(&g, lba, blocks, room.min(MAX_BULK_BYTES as usize)) {
                Ok(len) => len,
                Err(e) => return data_reply(r, Err(e)),
            };
            // Read where the answer goes: the caller's pages (the kernel's
            // responder, when they are contiguous) or a service's buffer.
            let result = r.bulk_out_with(len, |buf| server.read(lba, buf).map(|()| len))?;
            data_reply(r, result.map(|_| ()))
        }
        m::WRITE => {
            let lba = call.params::<block_device::write_params::Owned>().map_err(bad_params)?.get_lba();
            let Some(len) = r.bulk_in_len() else {
                return void_reply(r, Err(invalid("BlockDevice.write takes its data from a readable bulk buffer; the call has none")));
            };
            // Every check before the copy: a refused write costs no copy.
            let g = server.geometry();
            if g.read_only {
                return void_reply(r, Err(CapError::new(ErrorCode::ReadOnly, "BlockDevice.write refused: the device is read-only")));
            }
            if g.block_size == 0 || len % g.block_size as usize != 0 {
                return void_reply(r, Err(invalid(&format!("{} bytes are not whole {}-byte blocks", len, g.block_size))));
            }
            if let Err(e) = check(&g, lba, (len / g.block_size as usize) as u64, MAX_BULK_BYTES as usize) {
                return void_reply(r, Err(e));
            }
            let result = r.bulk_in_with(|data| server.write(lba, data))?;
            void_reply(r, result)
        }
        m::FLUSH => {
            let result = server.flush();
            void_reply(r, result)
        }
        _ => Err(SysError::UnknownMethod),
    }
}

/// Read a `BlockInfoResult` (the client side).
pub fn read_info(r: block_info_result::Reader<'_>) -> Result<Result<BlockInfo, CapError>, capos_abi::message::MessageError> {
    use capos_abi::helpers::{read_error, which_err};
    Ok(match r.which().map_err(which_err("BlockInfoResult"))? {
        block_info_result::Ok(i) => {
            let i = i?;
            Ok(BlockInfo { block_size: i.get_block_size(), block_count: i.get_block_count(), read_only: i.get_read_only() })
        }
        block_info_result::Err(e) => Err(read_error(e?)?),
    })
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use capos_abi::capos_capnp::void_result;
    use capos_abi::helpers::{read_data, read_void};
    use capos_abi::interfaces::BLOCK_DEVICE;
    use alloc::vec;
    use alloc::vec::Vec;
    use core::cell::{Cell, RefCell};

    /// 64 blocks of 512 bytes in memory; counts the calls that reach it.
    struct Mem {
        bytes: RefCell<Vec<u8>>,
        calls: Cell<u32>,
        flushed: Cell<u32>,
    }

    impl Mem {
        fn new() -> Mem {
            Mem { bytes: RefCell::new(vec![0; 64 * 512]), calls: Cell::new(0), flushed: Cell::new(0) }
        }
    }

    impl BlockServer for Mem {
        fn geometry(&self) -> BlockInfo {
            BlockInfo { block_size: 512, block_count: 64, read_only: false }
        }
        fn read(&self, lba: u64, buf: &mut [u8]) -> Result<(), CapError> {
            self.calls.set(self.calls.get() + 1);
            let at = lba as usize * 512;
            buf.copy_from_slice(&self.bytes.borrow()[at..at + buf.len()]);
            Ok(())
        }
        fn write(&self, lba: u64, data: &[u8]) -> Result<(), CapError> {
            self.calls.set(self.calls.get() + 1);
            let at = lba as usize * 512;
            self.bytes.borrow_mut()[at..at + data.len()].copy_from_slice(data);
            Ok(())
        }
        fn flush(&self) -> Result<(), CapError> {
            self.flushed.set(self.flushed.get() + 1);
            Ok(())
        }
    }

    fn read<S: BlockServer>(s: &S, lba: u64, blocks: u32, r: &mut TestResponder) -> Result<Vec<u8>, CapError> {
        let words = params::<block_device::read_params::Owned>(|mut b| {
            b.set_lba(lba);
            b.set_blocks(blocks);
        });
        dispatch(s, &call(BLOCK_DEVICE, m::READ, &words), r).unwrap();
        r.get::<data_result::Owned, _>(|res| read_data(res).unwrap())
    }

    fn read_bulk<S: BlockServer>(s: &S, lba: u64, blocks: u32, room: usize) -> Result<Vec<u8>, CapError> {
        let mut r = TestResponder::new();
        r.bulk_cap = Some(room);
        let inline = read(s, lba, blocks, &mut r)?;
        assert!(inline.is_empty(), "data never travels inline");
        Ok(r.bulk_out.unwrap_or_default())
    }

    fn write<S: BlockServer>(s: &S, lba: u64, bulk: Option<Vec<u8>>) -> Result<(), CapError> {
        let words = params::<block_device::write_params::Owned>(|mut b| b.set_lba(lba));
        let mut r = TestResponder::new();
        r.bulk_in = bulk;
        dispatch(s, &call(BLOCK_DEVICE, m::WRITE, &words), &mut r).unwrap();
        let result = r.get::<void_result::Owned, _>(|res| read_void(res).unwrap());
        // Checked before any byte is copied: a refused write copies nothing.
        if result.is_err() {
            assert_eq!(r.bulk_copies.get(), 0, "a refused write copied its bulk buffer");
        }
        result
    }

    fn flush<S: BlockServer>(s: &S) -> Result<(), CapError> {
        let mut r = TestResponder::new();
        dispatch(s, &call(BLOCK_DEVICE, m::FLUSH, &[]), &mut r).unwrap();
        r.get::<void_result::Owned, _>(|res| read_void(res).unwrap())
    }

    fn info<S: BlockServer>(s: &S) -> BlockInfo {
        let mut r = TestResponder::new();
        dispatch(s, &call(BLOCK_DEVICE, m::INFO, &[]), &mut r).unwrap();
        r.get::<block_info_result::Owned, _>(|res| read_info(res).unwrap()).unwrap()
    }

    fn pattern(blocks: usize, seed: u8) -> Vec<u8> {
        (0..blocks * 512).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
    }

    #[test]
    fn write_read_flush_through_the_bulk_buffer() {
        let d = Mem::new();
        assert_eq!(info(&d), BlockInfo { block_size: 512, block_count: 64, read_only: false });
        let p = pattern(3, 7);
        write(&d, 10, Some(p.clone())).unwrap();
        assert_eq!(&d.bytes.borrow()[10 * 512..13 * 512], &p[..]);
        assert_eq!(read_bulk(&d, 10, 3, 4096).unwrap(), p);
        // The last block of the range is reachable.
        write(&d, 63, Some(pattern(1, 1))).unwrap();
        assert_eq!(read_bulk(&d, 63, 1, 512).unwrap(), pattern(1, 1));
        flush(&d).unwrap();
        assert_eq!(d.flushed.get(), 1);
    }

    #[test]
    fn out_of_range_and_bad_lengths_never_reach_the_server() {
        let d = Mem::new();
        let code = |r: Result<Vec<u8>, CapError>| r.unwrap_err().code;
        assert_eq!(code(read_bulk(&d, 64, 1, 512)), ErrorCode::InvalidArgument, "first block past the end");
        assert_eq!(code(read_bulk(&d, 63, 2, 1024)), ErrorCode::InvalidArgument, "straddles the end");
        assert_eq!(code(read_bulk(&d, u64::MAX, 1, 512)), ErrorCode::InvalidArgument, "lba + blocks overflows");
        assert_eq!(code(read_bulk(&d, 0, 0, 512)), ErrorCode::InvalidArgument, "no blocks");
        assert_eq!(write(&d, 64, Some(pattern(1, 0))).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(write(&d, u64::MAX, Some(pattern(1, 0))).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(write(&d, 0, Some(vec![1; 100])).unwrap_err().code, ErrorCode::InvalidArgument, "not whole blocks");
        assert_eq!(write(&d, 0, Some(Vec::new())).unwrap_err().code, ErrorCode::InvalidArgument, "no bytes");
        assert_eq!(d.calls.get(), 0);
        assert!(d.bytes.borrow().iter().all(|b| *b == 0));
    }

    #[test]
    fn requests_larger_than_the_buffer_or_the_bulk_limit_are_too_large() {
        let d = Mem::new();
        assert_eq!(read_bulk(&d, 0, 2, 1023).unwrap_err().code, ErrorCode::TooLarge, "more than the caller's buffer");
        assert_eq!(read_bulk(&d, 0, u32::MAX, usize::MAX).unwrap_err().code, ErrorCode::TooLarge, "more than MAX_BULK_BYTES");
        let limit_blocks = (MAX_BULK_BYTES / 512) as u32;
        assert_eq!(read_bulk(&d, 0, limit_blocks + 1, 4 << 20).unwrap_err().code, ErrorCode::TooLarge);
        assert_eq!(d.calls.get(), 0);
        // Exactly the buffer is fine.
        assert_eq!(read_bulk(&d, 0, 2, 1024).unwrap().len(), 1024);
    }

    #[test]
    fn the_wrong_bulk_direction_is_refused() {
        let d = Mem::new();
        // A read with no writable buffer (none, or only a readable one).
        let mut r = TestResponder::new();
        assert_eq!(read(&d, 0, 1, &mut r).unwrap_err().code, ErrorCode::InvalidArgument);
        let mut r = TestResponder::new();
        r.bulk_in = Some(pattern(1, 0));
        assert_eq!(read(&d, 0, 1, &mut r).unwrap_err().code, ErrorCode::InvalidArgument);
        // A write with no readable buffer.
        assert_eq!(write(&d, 0, None).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(d.calls.get(), 0);
    }

    #[test]
    fn malformed_params_and_unknown_methods_are_call_errors() {
        let d = Mem::new();
        let garbage = [0xffff_ffff_ffff_ffffu64; 2];
        assert!(dispatch(&d, &call(BLOCK_DEVICE, m::READ, &garbage), &mut TestResponder::new()).is_err());
        assert!(dispatch(&d, &call(BLOCK_DEVICE, m::WRITE, &garbage), &mut TestResponder::new()).is_err());
        assert_eq!(dispatch(&d, &call(BLOCK_DEVICE, 4, &[]), &mut TestResponder::new()), Err(SysError::UnknownMethod));
        assert_eq!(d.calls.get(), 0);
    }

    #[test]
    fn the_read_only_wrapper_reads_and_refuses_write_and_flush() {
        let d = ReadOnlyBlock(Mem::new());
        d.0.bytes.borrow_mut()[512..1024].copy_from_slice(&pattern(1, 9));
        assert!(info(&d).read_only);
        assert_eq!(read_bulk(&d, 1, 1, 512).unwrap(), pattern(1, 9));
        assert_eq!(write(&d, 0, Some(pattern(1, 3))).unwrap_err().code, ErrorCode::ReadOnly);
        assert_eq!(flush(&d).unwrap_err().code, ErrorCode::ReadOnly);
        assert_eq!(d.0.flushed.get(), 0);
        assert!(d.0.bytes.borrow()[..512].iter().all(|b| *b == 0), "the refused write changed nothing");
    }

    #[test]
    fn device_errors_have_codes() {
        assert_eq!(block_error(&BlockError::Timeout).code, ErrorCode::Io);
        assert_eq!(block_error(&BlockError::Device { status: 2 }).code, ErrorCode::Io);
        assert_eq!(block_error(&BlockError::ReadOnly).code, ErrorCode::ReadOnly);
        assert_eq!(block_error(&BlockError::OutOfRange).code, ErrorCode::InvalidArgument);
    }
}
