//! store-service's core: one CAPOSST1 store served to every client of the
//! service's endpoint. Plain `no_std` code, host-tested here; `main.rs`
//! wires it to a Block capability and the endpoint.
//!
//! Rules:
//! - A badge the manifest chose is a client's session; the store is
//!   shared, sessions differ only in what they may do: a badge with the
//!   manifest's read-only bit gets `get`/`has`/`list`, and `put`/`delete`
//!   refused by the same table and encoder as the kernel's read-only
//!   wrapper (`capos_serve::read_only`).
//! - The service hands out no objects, so a server-minted badge (which
//!   only an earlier design or a forged mint could produce) names nothing
//!   and is answered `staleHandle`.
//! - Every `put` and `delete` is durable when it returns (the engine
//!   commits it), so a service killed mid-workload loses nothing a client
//!   was told succeeded.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use capos_abi::badge::{MANIFEST_READ_ONLY, SERVER_MINTED};
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::interfaces;
use capos_abi::message::CallMessage;
use capos_serve::store::{self, on_caposst1, StoreServer};
use capos_serve::Responder;
use capos_abi::SysError;
use capos_serve::read_only::{read_only, refusal, refuse, Access};
use capos_storage::store::Store;
use capos_storage::BlockDevice;
use core::cell::RefCell;

pub struct StoreService<D: BlockDevice> {
    store: RefCell<Store<D>>,
}

impl<D: BlockDevice> StoreService<D> {
    pub fn new(store: Store<D>) -> StoreService<D> {
        StoreService { store: RefCell::new(store) }
    }

    pub fn store(&self) -> core::cell::RefMut<'_, Store<D>> {
        self.store.borrow_mut()
    }

    /// Answer one call made on the capability with `badge`.
    pub fn answer<R: Responder>(&self, badge: u64, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
        if call.interface_id() != interfaces::STORE {
            return Err(SysError::UnknownInterface);
        }
        if badge == 0 || badge & SERVER_MINTED != 0 {
            let e = CapError::new(ErrorCode::StaleHandle, "this service hands out no objects: the capability names nothing");
            return store::dispatch(&Refused(e), call, r);
        }
        if badge & MANIFEST_READ_ONLY != 0 {
            if let Access::Mutation(kind) = read_only(call.interface_id(), call.method_id()) {
                return refuse(r, kind, refusal(call.interface_id(), call.method_id()));
            }
        }
        store::dispatch(self, call, r)
    }
}

impl<D: BlockDevice> StoreServer for StoreService<D> {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), CapError> {
        on_caposst1::put(&mut self.store.borrow_mut(), key, value)
    }

    fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError> {
        on_caposst1::get(&mut self.store.borrow_mut(), key)
    }

    fn has(&self, key: &[u8]) -> Result<bool, CapError> {
        on_caposst1::has(&self.store.borrow(), key)
    }

    fn delete(&self, key: &[u8]) -> Result<bool, CapError> {
        on_caposst1::delete(&mut self.store.borrow_mut(), key)
    }

    fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        on_caposst1::list(&self.store.borrow(), after, limit)
    }
}

/// Answer a call when there is no store to serve (the mount failed): every
/// method fails with `e`, in its own result shape.
pub fn answer_unavailable<R: Responder>(e: &CapError, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    if call.interface_id() != interfaces::STORE {
        return Err(SysError::UnknownInterface);
    }
    store::dispatch(&Refused(e.clone()), call, r)
}

/// Every method refused with one error.
struct Refused(CapError);

impl StoreServer for Refused {
    fn put(&self, _: &[u8], _: &[u8]) -> Result<(), CapError> {
        Err(self.0.clone())
    }
    fn get(&self, _: &[u8]) -> Result<Vec<u8>, CapError> {
        Err(self.0.clone())
    }
    fn has(&self, _: &[u8]) -> Result<bool, CapError> {
        Err(self.0.clone())
    }
    fn delete(&self, _: &[u8]) -> Result<bool, CapError> {
        Err(self.0.clone())
    }
    fn list(&self, _: &[u8], _: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        Err(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::capos_capnp::{bool_result, data_result, store as st, void_result};
    use capos_abi::helpers::{read_data, read_error, read_void};
    use capos_abi::interfaces::store_method as sm;
    use capos_serve::testing::{call, params, TestResponder};
    use capos_storage::mem_device::MemBlockDevice;
    use capos_storage::store::format;

    const RW: u64 = 0x201;
    const RO: u64 = 0x202 | MANIFEST_READ_ONLY;

    fn service() -> StoreService<MemBlockDevice> {
        let mut dev = MemBlockDevice::new(1024);
        format(&mut dev, None).unwrap();
        StoreService::new(Store::mount(dev, false).unwrap())
    }

    fn put(svc: &StoreService<MemBlockDevice>, badge: u64, k: &[u8], v: &[u8]) -> Result<(), ErrorCode> {
        let words = params::<st::put_params::Owned>(|mut b| {
            b.set_key(k);
            b.set_value(v);
        });
        let mut r = TestResponder::new();
        svc.answer(badge, &call(interfaces::STORE, sm::PUT, &words), &mut r).unwrap();
        r.get::<void_result::Owned, _>(|res| read_void(res).unwrap().map_err(|e| e.code))
    }

    fn get(svc: &StoreService<MemBlockDevice>, badge: u64, k: &[u8]) -> Result<Vec<u8>, ErrorCode> {
        let words = params::<st::get_params::Owned>(|mut b| b.set_key(k));
        let mut r = TestResponder::new();
        svc.answer(badge, &call(interfaces::STORE, sm::GET, &words), &mut r).unwrap();
        r.get::<data_result::Owned, _>(|res| read_data(res).unwrap().map_err(|e| e.code))
    }

    fn delete(svc: &StoreService<MemBlockDevice>, badge: u64, k: &[u8]) -> Result<bool, ErrorCode> {
        let words = params::<st::delete_params::Owned>(|mut b| b.set_key(k));
        let mut r = TestResponder::new();
        svc.answer(badge, &call(interfaces::STORE, sm::DELETE, &words), &mut r).unwrap();
        r.get::<bool_result::Owned, _>(|res| match res.which().unwrap() {
            bool_result::Ok(b) => Ok(b),
            bool_result::Err(e) => Err(read_error(e.unwrap()).unwrap().code),
        })
    }

    #[test]
    fn sessions_share_the_store_and_read_only_ones_cannot_change_it() {
        let svc = service();
        assert_eq!(put(&svc, RW, b"k", b"v1"), Ok(()));
        assert_eq!(get(&svc, RO, b"k"), Ok(b"v1".to_vec()));
        assert_eq!(put(&svc, RO, b"k", b"v2"), Err(ErrorCode::ReadOnly));
        assert_eq!(delete(&svc, RO, b"k"), Err(ErrorCode::ReadOnly));
        assert_eq!(get(&svc, RW, b"k"), Ok(b"v1".to_vec()), "the refused put changed nothing");
        assert_eq!(delete(&svc, RW, b"k"), Ok(true));
        assert_eq!(get(&svc, RO, b"k"), Err(ErrorCode::NotFound));
    }

    #[test]
    fn minted_and_zero_badges_name_nothing() {
        let svc = service();
        put(&svc, RW, b"k", b"v").unwrap();
        assert_eq!(get(&svc, SERVER_MINTED | 5, b"k"), Err(ErrorCode::StaleHandle));
        assert_eq!(put(&svc, SERVER_MINTED | 5, b"k", b"w"), Err(ErrorCode::StaleHandle));
        assert_eq!(get(&svc, 0, b"k"), Err(ErrorCode::StaleHandle));
        assert_eq!(get(&svc, RW, b"k"), Ok(b"v".to_vec()));
    }

    #[test]
    fn other_interfaces_are_refused() {
        let svc = service();
        let mut r = TestResponder::new();
        assert_eq!(svc.answer(RW, &call(interfaces::DIRECTORY, 0, &[]), &mut r), Err(SysError::UnknownInterface));
    }
}
