//! Typed clients for the storage capabilities: `Directory`, `File`,
//! `Store` and `BlockDevice` (schema/capos.capnp), one method per schema
//! method; [`CapBlockDevice`] runs the capos-storage engines over a Block.
//!
//! Each client owns its handle: dropping it drops the capability
//! (`cap_drop`), so a walk over a large tree does not fill the process's
//! capability table. `into_handle` gives the handle up without dropping it.
//!
//! Bulk (docs: the kernel's bulk convention): `read_bulk`, `write_bulk`,
//! `put_bulk` and `get_bulk` move the bytes in a checked buffer beside the
//! call instead of inside the capnp message, so one call may carry up to
//! `capos_abi::ipc::MAX_BULK_BYTES`; the inline forms are limited to
//! `capos_abi::limits::MAX_IO_CHUNK_BYTES` by the message size.

use crate::client::{call, call_no_params, BulkArg, CallError, Results};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use capos_abi::capos_capnp::{
    bool_result, cap_result, data_result, directory, file, keys_result, list_result, stat_result, store, u_int64_result,
    void_result, NodeKind,
};
use capos_abi::helpers::{self, CapError};
use capos_abi::interfaces::{self, directory_method as dm, file_method as fm, store_method as sm};
use capos_abi::message::MessageError;
use capos_abi::Handle;

pub use capos_abi::helpers::{Stat, Timestamp};

/// One entry of `Directory.list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    pub name: String,
    pub kind: NodeKind,
    pub size: u64,
}

fn object<T>(r: Result<Result<T, CapError>, MessageError>) -> Result<T, CallError> {
    r?.map_err(CallError::Object)
}

use capos_abi::helpers::{read_error, which_err};

fn read_bool(r: bool_result::Reader<'_>) -> Result<Result<bool, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("BoolResult"))? {
        bool_result::Ok(v) => Ok(v),
        bool_result::Err(e) => Err(read_error(e?)?),
    })
}

fn read_list(r: list_result::Reader<'_>) -> Result<Result<Vec<DirEntry>, CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("ListResult"))? {
        list_result::Ok(entries) => {
            let entries = entries?;
            let mut out = Vec::with_capacity(entries.len() as usize);
            for e in entries {
                let name = e.get_name()?.to_str().map_err(capnp::Error::from)?.to_string();
                let kind = e.get_kind().map_err(which_err("DirEntry.kind"))?;
                out.push(DirEntry { name, kind, size: e.get_size() });
            }
            Ok(out)
        }
        list_result::Err(e) => Err(read_error(e?)?),
    })
}

fn read_keys(r: keys_result::Reader<'_>) -> Result<Result<(Vec<Vec<u8>>, bool), CapError>, MessageError> {
    Ok(match r.which().map_err(which_err("KeysResult"))? {
        keys_result::Ok(page) => {
            let page = page?;
            let mut keys = Vec::new();
            for k in page.get_keys()? {
                keys.push(k?.to_vec());
            }
            Ok((keys, page.get_more()))
        }
        keys_result::Err(e) => Err(read_error(e?)?),
    })
}

/// A `DataResult` answered through the bulk buffer: `ok` must be empty and
/// the count must fit the buffer we offered.
fn bulk_count(r: &Results, capacity: usize) -> Result<usize, CallError> {
    let inline = object(helpers::read_data(r.get::<data_result::Owned>()?))?;
    if !inline.is_empty() {
        return Err(CallError::Message(MessageError::FieldTooLarge { field: "inline data beside a bulk answer", len: inline.len(), max: 0 }));
    }
    if r.bulk > capacity as u64 {
        return Err(CallError::Message(MessageError::FieldTooLarge { field: "bulk count", len: r.bulk as usize, max: capacity }));
    }
    Ok(r.bulk as usize)
}

fn cap_of(r: &Results) -> Result<Handle, CallError> {
    object(helpers::read_cap(r.get::<cap_result::Owned>()?, r.caps()))
}

fn void_of(r: &Results) -> Result<(), CallError> {
    object(helpers::read_void(r.get::<void_result::Owned>()?))
}

mod block;
pub use block::{device_error, Block, BlockInfo, CapBlockDevice};

/// A `Directory` capability.
#[derive(Debug)]
pub struct Directory(Handle);
owned_handle!(Directory);

/// A `File` capability.
#[derive(Debug)]
pub struct File(Handle);
owned_handle!(File);

/// A `Store` capability.
#[derive(Debug)]
pub struct Store(Handle);
owned_handle!(Store);

impl Directory {
    fn named<R>(&self, method: u16, name: &str, read: impl FnOnce(&Results) -> Result<R, CallError>) -> Result<R, CallError> {
        // open, mkdir, remove, sub and create all take `(name :Text)`, so
        // their params have the same layout; open's builder writes them.
        call::<directory::open_params::Owned, R>(
            self.0,
            interfaces::DIRECTORY,
            method,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_name(name);
                Ok(())
            },
            read,
        )
    }

    /// The file `name`.
    pub fn open(&self, name: &str) -> Result<File, CallError> {
        self.named(dm::OPEN, name, cap_of).map(File)
    }

    /// Every entry, sorted by name bytes.
    pub fn list(&self) -> Result<Vec<DirEntry>, CallError> {
        call_no_params(self.0, interfaces::DIRECTORY, dm::LIST, &[], BulkArg::NONE, |r| object(read_list(r.get::<list_result::Owned>()?)))
    }

    pub fn mkdir(&self, name: &str) -> Result<(), CallError> {
        self.named(dm::MKDIR, name, void_of)
    }

    /// Remove a file or an empty directory.
    pub fn remove(&self, name: &str) -> Result<(), CallError> {
        self.named(dm::REMOVE, name, void_of)
    }

    /// The subdirectory `name`.
    pub fn sub(&self, name: &str) -> Result<Directory, CallError> {
        self.named(dm::SUB, name, cap_of).map(Directory)
    }

    /// A new empty file `name` (alreadyExists if it exists).
    pub fn create(&self, name: &str) -> Result<File, CallError> {
        self.named(dm::CREATE, name, cap_of).map(File)
    }

    /// Rename `from` to `to` within this directory.
    pub fn rename(&self, from: &str, to: &str) -> Result<(), CallError> {
        call::<capos_abi::capos_capnp::rename_params::Owned, _>(
            self.0,
            interfaces::DIRECTORY,
            dm::RENAME,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_from(from);
                p.set_to(to);
                p.init_target().set_same_directory(());
                Ok(())
            },
            void_of,
        )
    }

    /// Move `from` (an entry of this directory) to `target/to`; the target
    /// Directory capability travels with the call (a copy: we keep ours).
    pub fn rename_into(&self, from: &str, target: &Directory, to: &str) -> Result<(), CallError> {
        call::<capos_abi::capos_capnp::rename_params::Owned, _>(
            self.0,
            interfaces::DIRECTORY,
            dm::RENAME,
            &[target.0],
            BulkArg::NONE,
            |mut p| {
                p.set_from(from);
                p.set_to(to);
                p.init_target().set_directory(0);
                Ok(())
            },
            void_of,
        )
    }
}

impl File {
    /// Up to `length` bytes at `offset`, inline in the results (`length` at
    /// most MAX_IO_CHUNK_BYTES, else `tooLarge`).
    pub fn read(&self, offset: u64, length: u32) -> Result<Vec<u8>, CallError> {
        call::<file::read_params::Owned, _>(
            self.0,
            interfaces::FILE,
            fm::READ,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_offset(offset);
                p.set_length(length);
                Ok(())
            },
            |r| object(helpers::read_data(r.get::<data_result::Owned>()?)),
        )
    }

    /// Up to `buf.len()` bytes at `offset` into `buf` through the bulk
    /// buffer; returns the count (fewer at the end of the file).
    pub fn read_bulk(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CallError> {
        let length = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        self.read_bulk_len(offset, length, buf)
    }

    /// `read_bulk` asking for `length` bytes while offering `buf` (for
    /// tests of the kernel's checks: a buffer smaller than `length`).
    pub fn read_bulk_len(&self, offset: u64, length: u32, buf: &mut [u8]) -> Result<usize, CallError> {
        let capacity = buf.len();
        call::<file::read_params::Owned, _>(
            self.0,
            interfaces::FILE,
            fm::READ,
            &[],
            BulkArg::into(buf),
            |mut p| {
                p.set_offset(offset);
                p.set_length(length);
                Ok(())
            },
            |r| bulk_count(r, capacity),
        )
    }

    fn write_with(&self, offset: u64, inline: &[u8], bulk: BulkArg) -> Result<u64, CallError> {
        call::<file::write_params::Owned, _>(
            self.0,
            interfaces::FILE,
            fm::WRITE,
            &[],
            bulk,
            |mut p| {
                p.set_offset(offset);
                if !inline.is_empty() {
                    p.set_data(inline);
                }
                Ok(())
            },
            |r| object(helpers::read_u64(r.get::<u_int64_result::Owned>()?)),
        )
    }

    /// Write `data` (inline, at most MAX_IO_CHUNK_BYTES) at `offset`;
    /// returns the count written.
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<u64, CallError> {
        self.write_with(offset, data, BulkArg::NONE)
    }

    /// Write `data` through the bulk buffer (up to MAX_BULK_BYTES).
    pub fn write_bulk(&self, offset: u64, data: &[u8]) -> Result<u64, CallError> {
        self.write_with(offset, &[], BulkArg::out(data))
    }

    /// Inline data and a bulk buffer in one call (the kernel must refuse it).
    pub fn write_both(&self, offset: u64, inline: &[u8], bulk: &[u8]) -> Result<u64, CallError> {
        self.write_with(offset, inline, BulkArg::out(bulk))
    }

    pub fn stat(&self) -> Result<Stat, CallError> {
        call_no_params(self.0, interfaces::FILE, fm::STAT, &[], BulkArg::NONE, |r| object(helpers::read_stat(r.get::<stat_result::Owned>()?)))
    }

    /// Set the size; growing zero-fills.
    pub fn truncate(&self, size: u64) -> Result<(), CallError> {
        call::<file::truncate_params::Owned, _>(
            self.0,
            interfaces::FILE,
            fm::TRUNCATE,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_size(size);
                Ok(())
            },
            void_of,
        )
    }

    /// Make everything written so far durable.
    pub fn sync(&self) -> Result<(), CallError> {
        call_no_params(self.0, interfaces::FILE, fm::SYNC, &[], BulkArg::NONE, void_of)
    }

    /// Release the file: later calls fail with `closed` (the handle stays
    /// until this client is dropped).
    pub fn close(&self) -> Result<(), CallError> {
        call_no_params(self.0, interfaces::FILE, fm::CLOSE, &[], BulkArg::NONE, void_of)
    }
}

impl Store {
    fn put_with(&self, key: &[u8], inline: &[u8], bulk: BulkArg) -> Result<(), CallError> {
        call::<store::put_params::Owned, _>(
            self.0,
            interfaces::STORE,
            sm::PUT,
            &[],
            bulk,
            |mut p| {
                p.set_key(key);
                if !inline.is_empty() {
                    p.set_value(inline);
                }
                Ok(())
            },
            void_of,
        )
    }

    /// Insert or replace (the value inline in the message).
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), CallError> {
        self.put_with(key, value, BulkArg::NONE)
    }

    /// Insert or replace, the value in the bulk buffer.
    pub fn put_bulk(&self, key: &[u8], value: &[u8]) -> Result<(), CallError> {
        self.put_with(key, &[], BulkArg::out(value))
    }

    fn key_call<R>(&self, method: u16, key: &[u8], bulk: BulkArg, read: impl FnOnce(&Results) -> Result<R, CallError>) -> Result<R, CallError> {
        // get, has and delete all take `(key :Data)`.
        call::<store::get_params::Owned, R>(
            self.0,
            interfaces::STORE,
            method,
            &[],
            bulk,
            |mut p| {
                p.set_key(key);
                Ok(())
            },
            read,
        )
    }

    /// The value (inline), or `notFound`.
    pub fn get(&self, key: &[u8]) -> Result<Vec<u8>, CallError> {
        self.key_call(sm::GET, key, BulkArg::NONE, |r| object(helpers::read_data(r.get::<data_result::Owned>()?)))
    }

    /// The value into `buf` through the bulk buffer; returns its length.
    pub fn get_bulk(&self, key: &[u8], buf: &mut [u8]) -> Result<usize, CallError> {
        let capacity = buf.len();
        self.key_call(sm::GET, key, BulkArg::into(buf), |r| bulk_count(r, capacity))
    }

    pub fn has(&self, key: &[u8]) -> Result<bool, CallError> {
        self.key_call(sm::HAS, key, BulkArg::NONE, |r| object(read_bool(r.get::<bool_result::Owned>()?)))
    }

    /// Whether the key existed.
    pub fn delete(&self, key: &[u8]) -> Result<bool, CallError> {
        self.key_call(sm::DELETE, key, BulkArg::NONE, |r| object(read_bool(r.get::<bool_result::Owned>()?)))
    }

    /// Keys strictly after `after` (empty: from the first), at most
    /// `limit` (0: the server's maximum); `.1` says more remain.
    pub fn list(&self, after: &[u8], limit: u32) -> Result<(Vec<Vec<u8>>, bool), CallError> {
        call::<store::list_params::Owned, _>(
            self.0,
            interfaces::STORE,
            sm::LIST,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_after(after);
                p.set_limit(limit);
                Ok(())
            },
            |r| object(read_keys(r.get::<keys_result::Owned>()?)),
        )
    }
}
