//! Typed server traits: one capnp dispatcher per storage interface, shared
//! by the kernel's storage objects and the userspace storage services.
//!
//! Why here: a `Directory` served by the kernel and one served by a
//! process must read params, apply limits, move bulk data and encode
//! results the same way, byte for byte. So the capnp side is written once:
//! [`directory::dispatch`], [`file::dispatch`] and [`store::dispatch`]
//! (and [`block::dispatch`] for `BlockDevice`, [`nic::dispatch`] for `Nic`)
//! read a call's params, call a plain-Rust trait method
//! ([`directory::DirectoryServer`], ...) and build the results through a
//! [`Responder`], which the kernel implements over its in-place `Reply`
//! and the runtime over its answer buffer. An implementation only says
//! what an operation means for its backer; it never sees capnp.
//!
//! Beside the dispatchers, what both servers share above them:
//! - [`fs`]: the one adapter from the storage crate's `FileSystem` to
//!   `DirectoryServer` and `FileServer`, for the kernel's filesystem
//!   objects and storage-fs-service alike (each side supplies an
//!   [`fs::FsHost`]: locking, handing out and finding capabilities).
//! - [`read_only`]: attenuation, the typed read-only wrapper and the
//!   method table of what a read-only capability may do.
//! - [`refuse`]: answering any method in its own result shape, and
//!   [`refuse::Refusal`], the object that refuses every call with a reason.
//! - [`errors`], [`file::stat_of`], [`directory::node_kind`]: the storage
//!   crate's types as the contract's (this crate, not `capos-abi`, depends
//!   on the storage engines).
//!
//! Rules every dispatcher keeps:
//! - Params are read with the call's limits (`CallMessage`); an unreadable
//!   message is a call-level error ([`SysError`]), never a method error.
//! - Method-level failures are [`CapError`]s in the method's result shape;
//!   a [`StorageError`](capos_storage::StorageError) becomes one through the single table in
//!   [`errors`].
//! - Bulk data ([`capos_abi::ipc`]): a `Data` param left empty while the call
//!   carries a readable bulk buffer means "the bytes are in the bulk
//!   buffer"; a read-type result goes to a writable bulk buffer, with the
//!   `Data` result left empty and the byte count in the reply word. Both
//!   at once (a non-empty `Data` and a readable bulk buffer) is refused
//!   with `invalidArgument`: there is one source of truth per call.

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod block;
pub mod directory;
pub mod errors;
pub mod file;
pub mod fs;
pub mod net;
pub mod nic;
pub mod read_only;
pub mod refuse;
pub mod store;

use capos_abi::helpers::CapError;
use capos_abi::message::MessageError;
use capos_abi::SysError;
use alloc::vec::Vec;
use capnp::traits::Owned;

pub use errors::{error_code, storage_error};

/// How a dispatcher answers a call.
pub trait Responder {
    /// A capability the server hands back or receives (the kernel's `Cap`,
    /// a handle in userspace).
    type Cap;
    /// Build the results struct `T`.
    fn results<T: Owned>(&mut self, fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<(), SysError>;
    /// Hand a capability back; its slot for a `CapSlot` field.
    fn add_cap(&mut self, cap: Self::Cap) -> Result<u32, SysError>;
    /// The capability the call transferred in `slot`.
    fn transferred(&self, slot: u32) -> Option<&Self::Cap>;
    /// The bytes of the caller's bulk buffer, if the call carries one the
    /// server may read.
    fn bulk_in(&self) -> Result<Option<Vec<u8>>, SysError>;
    /// Run `f` over the caller's bulk bytes (an empty slice when the call
    /// carries no buffer the server may read) and hand back its result:
    /// where they lie when the responder can reach them in place (a
    /// service's registered buffer; the caller's own pages for the
    /// kernel's, when contiguous), else over a copy
    /// ([`bulk_in`](Self::bulk_in), the default).
    fn bulk_in_with<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Result<T, SysError> {
        Ok(f(&self.bulk_in()?.unwrap_or_default()))
    }
    /// How many bytes [`bulk_in`](Self::bulk_in) would copy, without
    /// copying: a dispatcher checks the request against this first, so a
    /// request it refuses costs no copy.
    fn bulk_in_len(&self) -> Option<usize>;
    /// The size of the caller's bulk buffer, if the server may write it.
    fn bulk_out_capacity(&self) -> Option<usize>;
    /// Write `data` at the start of the caller's bulk buffer and report its
    /// length as the call's bulk result.
    fn bulk_out(&mut self, data: &[u8]) -> Result<(), SysError>;
    /// Produce the bulk result in place: `fill` writes into the first
    /// `len` bytes of the bulk buffer (`len` at most
    /// [`bulk_out_capacity`](Self::bulk_out_capacity)) and says how many it
    /// produced, which become the bulk result; its error is handed back
    /// and nothing is sent. The buffer is not cleared first: `fill` must
    /// write every byte it reports. The default fills a zeroed staging
    /// buffer and copies it with [`bulk_out`](Self::bulk_out)
    /// ([`staged_bulk_out_with`]). A service's responder overrides it to
    /// hand out its registered buffer; the kernel's hands out the caller's
    /// own pages when they are physically contiguous (bytes past what
    /// `fill` reports, and the whole buffer on an error, are then zeroed,
    /// so the caller never sees what an engine left in scratch space).
    fn bulk_out_with<E>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Result<Result<usize, E>, SysError> {
        staged_bulk_out_with(self, len, fill)
    }
    /// A point between two chunks of a long copy or clear that the
    /// dispatcher itself does (the staging buffer). The kernel's lets
    /// pending interrupts in (it runs the call with them off:
    /// docs/interrupts-off.md); nothing to do elsewhere.
    fn pause(&mut self) {}
}

/// The most bytes a dispatcher clears or copies between two
/// [`Responder::pause`]s.
pub const PAUSE_BYTES: usize = 16 * 1024;

/// [`Responder::bulk_out_with`] through a staging buffer: `fill` writes a
/// zeroed `Vec`, whose first `n` bytes go out with
/// [`bulk_out`](Responder::bulk_out). The default, and the fallback of a
/// responder that fills in place only when it can (the kernel's, when the
/// caller's pages are not physically contiguous).
pub fn staged_bulk_out_with<R: Responder + ?Sized, E>(r: &mut R, len: usize, fill: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Result<Result<usize, E>, SysError> {
    if r.bulk_out_capacity().is_none_or(|room| len > room) {
        return Err(SysError::InvalidArgument);
    }
    // Zeroed a chunk at a time, with a pause between (a 1 MiB buffer is
    // about a hundred thousand instructions of clearing).
    let mut buf = Vec::with_capacity(len);
    while buf.len() < len {
        buf.resize(buf.len() + (len - buf.len()).min(PAUSE_BYTES), 0);
        r.pause();
    }
    match fill(&mut buf) {
        Ok(n) => {
            let n = n.min(len);
            r.bulk_out(&buf[..n])?;
            Ok(Ok(n))
        }
        Err(e) => Ok(Err(e)),
    }
}

/// Answer with a `VoidResult`.
pub fn void_reply<R: Responder>(r: &mut R, result: Result<(), CapError>) -> Result<(), SysError> {
    r.results::<capos_abi::capos_capnp::void_result::Owned>(|b| {
        capos_abi::helpers::fill_void(b, &result);
        Ok(())
    })
}

/// Answer with a `CapResult`: the capability handed back, or the error.
pub fn cap_reply<R: Responder>(r: &mut R, result: Result<R::Cap, CapError>) -> Result<(), SysError> {
    let result = match result {
        Ok(cap) => Ok(r.add_cap(cap)?),
        Err(e) => Err(e),
    };
    r.results::<capos_abi::capos_capnp::cap_result::Owned>(|b| {
        capos_abi::helpers::fill_cap(b, &result);
        Ok(())
    })
}

/// Answer with a `UInt64Result`.
pub fn u64_reply<R: Responder>(r: &mut R, result: Result<u64, CapError>) -> Result<(), SysError> {
    r.results::<capos_abi::capos_capnp::u_int64_result::Owned>(|b| {
        capos_abi::helpers::fill_u64(b, &result);
        Ok(())
    })
}

/// A params-reading failure as the call-level error it is.
pub(crate) fn bad_params(e: impl Into<MessageError>) -> SysError {
    e.into().sys_error()
}

/// Run `f` over the bytes a `Data` param stands for: itself, or the bulk
/// buffer (in place where the responder can) when the param is empty and
/// a readable bulk buffer came with the call. `admit` sees the length
/// first and may refuse before anything is copied or `f` runs.
pub(crate) fn with_data<R: Responder, T>(
    inline: &[u8],
    r: &R,
    admit: impl FnOnce(usize) -> Result<(), CapError>,
    f: impl FnOnce(&[u8]) -> Result<T, CapError>,
) -> Result<Result<T, CapError>, SysError> {
    match r.bulk_in_len() {
        None => Ok(admit(inline.len()).and_then(|()| f(inline))),
        Some(_) if !inline.is_empty() => Ok(Err(CapError::new(
            capos_abi::capos_capnp::ErrorCode::InvalidArgument,
            "data given twice: both inline and in the bulk buffer",
        ))),
        Some(len) => match admit(len) {
            Err(e) => Ok(Err(e)),
            Ok(()) => r.bulk_in_with(f),
        },
    }
}

#[cfg(any(test, feature = "testing"))]
pub mod testing {
    //! A responder over owned buffers, for the dispatcher tests (and, with
    //! the `testing` feature, the userspace services' host tests).
    use super::*;
    use capos_abi::capos_capnp::{cap_result, list_result, void_result, ErrorCode};
    use capos_abi::helpers::{read_error, read_void};
    use capos_abi::message::{read_flat, to_words, word_bytes, CallMessage};

    pub struct TestResponder<C = u32> {
        pub results: Vec<u64>,
        pub caps: Vec<C>,
        pub transferred: Vec<C>,
        pub bulk_in: Option<Vec<u8>>,
        pub bulk_cap: Option<usize>,
        pub bulk_out: Option<Vec<u8>>,
        /// How many times the dispatcher copied the bulk buffer in.
        pub bulk_copies: core::cell::Cell<u32>,
        /// How many times the dispatcher paused (`Responder::pause`).
        pub pauses: usize,
    }

    impl TestResponder<u32> {
        pub fn new() -> TestResponder<u32> {
            TestResponder::empty()
        }
    }

    impl<C> TestResponder<C> {
        /// A responder whose capabilities are `C`s.
        pub fn empty() -> TestResponder<C> {
            TestResponder { results: Vec::new(), caps: Vec::new(), transferred: Vec::new(), bulk_in: None, bulk_cap: None, bulk_out: None, bulk_copies: core::cell::Cell::new(0), pauses: 0 }
        }
        pub fn get<T: Owned, R>(&self, f: impl FnOnce(T::Reader<'_>) -> R) -> R {
            let reader = read_flat(word_bytes(&self.results)).unwrap();
            f(reader.get_root::<T::Reader<'_>>().unwrap())
        }
    }

    impl<C: Clone> TestResponder<C> {
        /// The capability a `CapResult` answer handed out, or its error code.
        pub fn cap_result(&self) -> Result<C, ErrorCode> {
            self.get::<cap_result::Owned, _>(|res| match res.which().unwrap() {
                cap_result::Ok(slot) => Ok(self.caps[slot as usize].clone()),
                cap_result::Err(e) => Err(read_error(e.unwrap()).unwrap().code),
            })
        }

        /// A `VoidResult` answer, as its error code.
        pub fn void_result(&self) -> Result<(), ErrorCode> {
            self.get::<void_result::Owned, _>(|res| read_void(res).unwrap().map_err(|e| e.code))
        }

        /// A `ListResult` answer, as the names it lists.
        pub fn list_names(&self) -> Result<Vec<alloc::string::String>, ErrorCode> {
            self.get::<list_result::Owned, _>(|res| match res.which().unwrap() {
                list_result::Ok(l) => Ok(l.unwrap().iter().map(|e| alloc::string::ToString::to_string(e.get_name().unwrap().to_str().unwrap())).collect()),
                list_result::Err(e) => Err(read_error(e.unwrap()).unwrap().code),
            })
        }
    }

    impl<C> Responder for TestResponder<C> {
        type Cap = C;
        fn results<T: Owned>(&mut self, fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<(), SysError> {
            self.results = to_words::<T>(fill).map_err(|e| e.sys_error())?;
            Ok(())
        }
        fn add_cap(&mut self, cap: C) -> Result<u32, SysError> {
            self.caps.push(cap);
            Ok(self.caps.len() as u32 - 1)
        }
        fn transferred(&self, slot: u32) -> Option<&C> {
            self.transferred.get(slot as usize)
        }
        fn bulk_in(&self) -> Result<Option<Vec<u8>>, SysError> {
            self.bulk_copies.set(self.bulk_copies.get() + 1);
            Ok(self.bulk_in.clone())
        }
        fn bulk_in_len(&self) -> Option<usize> {
            self.bulk_in.as_ref().map(Vec::len)
        }
        fn bulk_out_capacity(&self) -> Option<usize> {
            self.bulk_cap
        }
        fn bulk_out(&mut self, data: &[u8]) -> Result<(), SysError> {
            match self.bulk_cap {
                Some(c) if data.len() <= c => {
                    self.bulk_out = Some(data.to_vec());
                    Ok(())
                }
                _ => Err(SysError::InvalidArgument),
            }
        }
        fn pause(&mut self) {
            self.pauses += 1;
        }
    }

    /// Params of type `T` as a call of `method` on `interface`.
    pub fn params<T: Owned>(fill: impl FnOnce(T::Builder<'_>)) -> Vec<u64> {
        to_words::<T>(|b| {
            fill(b);
            Ok(())
        })
        .unwrap()
    }

    pub fn call(interface: u64, method: u16, words: &[u64]) -> CallMessage<'_> {
        CallMessage::new(interface, method, word_bytes(words)).unwrap()
    }
}
