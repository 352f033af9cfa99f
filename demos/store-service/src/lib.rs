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
//! - **Group commit.** Puts and deletes that arrive together (the kernel
//!   says more calls wait behind the one delivered) are gathered
//!   ([`StoreService::hold`]) and made durable in one commit, one flush
//!   for the lot ([`StoreService::commit`]); then each caller is answered
//!   in arrival order ([`StoreService::answer_held`]) with what it would
//!   have got alone: a delete says whether the key was there after the
//!   ops before it. Each op is checked alone before it joins, so one
//!   caller's bad key fails only that caller; a group the store cannot take
//!   whole (`storeFull`) is applied op by op instead. A group holds at
//!   most [`MAX_GROUP_OPS`] ops and [`MAX_GROUP_BYTES`] of keys and values.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::{BTreeMap, VecDeque};
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
use capos_storage::store::{Store, StoreOp};
use capos_storage::BlockDevice;
use core::cell::RefCell;

/// At most this many puts and deletes in one group commit.
pub const MAX_GROUP_OPS: usize = 64;
/// At most this many bytes of keys and values held for one group commit
/// (each op's are copied: the bulk buffer is reused by the next receive).
pub const MAX_GROUP_BYTES: usize = 1 << 20;

/// A put or delete held for the group commit.
enum Held {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// What a held op answers once its group is committed.
enum Outcome {
    Put(Result<(), CapError>),
    Delete(Result<bool, CapError>),
}

#[derive(Default)]
struct Group {
    held: Vec<Held>,
    bytes: usize,
    answers: VecDeque<Outcome>,
}

/// How many commits made how many ops durable (group commit's effect).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Groups committed (a group of one is an op held and then alone).
    pub groups: u64,
    /// Ops those groups held.
    pub ops: u64,
    /// The largest group.
    pub largest: u64,
}

pub struct StoreService<D: BlockDevice> {
    store: RefCell<Store<D>>,
    group: RefCell<Group>,
    stats: core::cell::Cell<GroupStats>,
}

impl<D: BlockDevice> StoreService<D> {
    pub fn new(store: Store<D>) -> StoreService<D> {
        StoreService { store: RefCell::new(store), group: RefCell::new(Group::default()), stats: Default::default() }
    }

    pub fn group_stats(&self) -> GroupStats {
        self.stats.get()
    }

    /// Take a call into the group being gathered: true when it is a put
    /// or delete of a writable session whose key and value the store
    /// would take and that fits the group (its key and value copied now;
    /// `bulk_in` is the call's bulk bytes). False: answer it with
    /// [`answer`](Self::answer) as usual (after committing the group).
    pub fn hold(&self, badge: u64, call: &CallMessage, bulk_in: Option<&[u8]>) -> bool {
        use capos_abi::capos_capnp::store as st;
        use capos_abi::interfaces::store_method as sm;
        if call.interface_id() != interfaces::STORE || badge == 0 || badge & (SERVER_MINTED | MANIFEST_READ_ONLY) != 0 {
            return false;
        }
        if self.store.borrow().is_read_only() {
            return false;
        }
        let op = match call.method_id() {
            sm::PUT => {
                let Ok(p) = call.params::<st::put_params::Owned>() else { return false };
                let (Ok(key), Ok(inline)) = (p.get_key(), p.get_value()) else { return false };
                // The dispatcher's rule: the value inline or in the bulk
                // buffer, not both.
                let value = match bulk_in {
                    Some(bulk) if inline.is_empty() => bulk,
                    Some(_) => return false,
                    None => inline,
                };
                if StoreOp::Put(key, value).check().is_err() {
                    return false;
                }
                Held::Put(key.to_vec(), value.to_vec())
            }
            sm::DELETE => {
                let Ok(key) = call.params::<st::delete_params::Owned>().and_then(|p| Ok(p.get_key()?)) else { return false };
                if StoreOp::Delete(key).check().is_err() {
                    return false;
                }
                Held::Delete(key.to_vec())
            }
            _ => return false,
        };
        let size = match &op {
            Held::Put(k, v) => k.len() + v.len(),
            Held::Delete(k) => k.len(),
        };
        let mut g = self.group.borrow_mut();
        if g.held.len() >= MAX_GROUP_OPS || g.bytes + size > MAX_GROUP_BYTES || !g.answers.is_empty() {
            return false;
        }
        g.bytes += size;
        g.held.push(op);
        true
    }

    /// Make the held ops durable: one commit for the lot when the store
    /// takes them whole, else op by op; their answers wait for
    /// [`answer_held`](Self::answer_held).
    pub fn commit(&self) {
        let mut g = self.group.borrow_mut();
        if g.held.is_empty() {
            return;
        }
        let held = core::mem::take(&mut g.held);
        g.bytes = 0;
        let mut store = self.store.borrow_mut();
        // What each delete answers: whether its key is there after the
        // ops before it in the group.
        let mut present: BTreeMap<&[u8], bool> = BTreeMap::new();
        let mut existed = Vec::new();
        for op in &held {
            match op {
                Held::Put(k, _) => {
                    present.insert(k, true);
                }
                Held::Delete(k) => {
                    let there = match present.get(k.as_slice()) {
                        Some(&p) => Ok(p),
                        None => on_caposst1::has(&store, k),
                    };
                    existed.push(there);
                    present.insert(k, false);
                }
            }
        }
        let ops: Vec<StoreOp> = held
            .iter()
            .map(|op| match op {
                Held::Put(k, v) => StoreOp::Put(k, v),
                Held::Delete(k) => StoreOp::Delete(k),
            })
            .collect();
        match store.apply(&ops) {
            Ok(()) => {
                let mut existed = existed.into_iter();
                for op in &held {
                    g.answers.push_back(match op {
                        Held::Put(..) => Outcome::Put(Ok(())),
                        Held::Delete(_) => Outcome::Delete(existed.next().unwrap_or(Ok(false))),
                    });
                }
            }
            // Not taken whole (nothing changed): each op alone, as if
            // they had not arrived together.
            Err(_) => {
                for op in &held {
                    g.answers.push_back(match op {
                        Held::Put(k, v) => Outcome::Put(on_caposst1::put(&mut store, k, v)),
                        Held::Delete(k) => Outcome::Delete(on_caposst1::delete(&mut store, k)),
                    });
                }
            }
        }
        let mut stats = self.stats.get();
        stats.groups += 1;
        stats.ops += held.len() as u64;
        stats.largest = stats.largest.max(held.len() as u64);
        self.stats.set(stats);
    }

    /// Answer the oldest held call of the committed group, in its
    /// method's result shape. A call-level error if nothing is held
    /// (the serve loop answers exactly the calls it held, in order).
    pub fn answer_held<R: Responder>(&self, r: &mut R) -> Result<(), SysError> {
        let outcome = self.group.borrow_mut().answers.pop_front();
        match outcome {
            Some(Outcome::Put(result)) => capos_serve::void_reply(r, result),
            Some(Outcome::Delete(result)) => store::bool_reply(r, result),
            None => Err(SysError::InvalidArgument),
        }
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

    fn put_call(k: &[u8], v: &[u8]) -> Vec<u64> {
        params::<st::put_params::Owned>(|mut b| {
            b.set_key(k);
            b.set_value(v);
        })
    }

    fn delete_call(k: &[u8]) -> Vec<u64> {
        params::<st::delete_params::Owned>(|mut b| b.set_key(k))
    }

    /// Commit what is held and read every answer back, in order.
    fn commit_and_answer(svc: &StoreService<MemBlockDevice>, methods: &[u16]) -> Vec<Result<Option<bool>, ErrorCode>> {
        svc.commit();
        methods
            .iter()
            .map(|&m| {
                let mut r = TestResponder::new();
                svc.answer_held(&mut r).unwrap();
                if m == sm::PUT {
                    r.get::<void_result::Owned, _>(|res| read_void(res).unwrap().map(|()| None).map_err(|e| e.code))
                } else {
                    r.get::<bool_result::Owned, _>(|res| match res.which().unwrap() {
                        bool_result::Ok(b) => Ok(Some(b)),
                        bool_result::Err(e) => Err(read_error(e.unwrap()).unwrap().code),
                    })
                }
            })
            .collect()
    }

    #[test]
    fn puts_and_deletes_that_arrive_together_are_one_commit_with_one_flush() {
        let svc = service();
        put(&svc, RW, b"old", b"x").unwrap();
        svc.store().device().reset_counters();
        let calls = [
            (sm::PUT, put_call(b"a", b"1")),
            (sm::DELETE, delete_call(b"old")),
            (sm::PUT, put_call(b"b", b"2")),
            (sm::DELETE, delete_call(b"a")),
            (sm::DELETE, delete_call(b"a")),
            (sm::DELETE, delete_call(b"never")),
            (sm::PUT, put_call(b"b", b"3")),
        ];
        for (m, words) in &calls {
            assert!(svc.hold(RW, &call(interfaces::STORE, *m, words), None), "method {m} not held");
        }
        let methods: Vec<u16> = calls.iter().map(|(m, _)| *m).collect();
        let answers = commit_and_answer(&svc, &methods);
        // Each delete says whether its key was there after the ops before it.
        assert_eq!(answers, [Ok(None), Ok(Some(true)), Ok(None), Ok(Some(true)), Ok(Some(false)), Ok(Some(false)), Ok(None)]);
        assert_eq!(svc.store().device().flushes, 1, "one flush for the group");
        assert_eq!(svc.group_stats(), GroupStats { groups: 1, ops: 7, largest: 7 });
        assert_eq!(get(&svc, RW, b"b"), Ok(b"3".to_vec()), "the later put wins");
        assert_eq!(get(&svc, RW, b"a"), Err(ErrorCode::NotFound));
        assert_eq!(get(&svc, RW, b"old"), Err(ErrorCode::NotFound));
        // And it is durable: a fresh mount sees the same.
        let dev = svc.store.into_inner().into_device();
        let again = StoreService::new(Store::mount(dev, false).unwrap());
        assert_eq!(get(&again, RW, b"b"), Ok(b"3".to_vec()));
        assert_eq!(get(&again, RW, b"old"), Err(ErrorCode::NotFound));
    }

    #[test]
    fn what_cannot_join_a_group_is_answered_alone() {
        let svc = service();
        let long = [7u8; 300];
        let no = |badge: u64, m: u16, words: &[u64], bulk: Option<&[u8]>| assert!(!svc.hold(badge, &call(interfaces::STORE, m, words), bulk));
        no(RW, sm::PUT, &put_call(b"", b"v"), None); // empty key
        no(RW, sm::PUT, &put_call(&long, b"v"), None); // key too long
        no(RW, sm::PUT, &put_call(b"k", &[0u8; 64 * 1024 + 1]), None); // value too large
        no(RW, sm::PUT, &put_call(b"k", b"inline"), Some(b"bulk")); // both
        no(RW, sm::DELETE, &delete_call(b""), None);
        no(RO, sm::PUT, &put_call(b"k", b"v"), None); // read-only session
        no(SERVER_MINTED | 5, sm::PUT, &put_call(b"k", b"v"), None);
        no(0, sm::DELETE, &delete_call(b"k"), None);
        no(RW, sm::GET, &params::<st::get_params::Owned>(|mut b| b.set_key(b"k")), None);
        assert_eq!(svc.group_stats(), GroupStats::default());
        // A value in the bulk buffer joins, and is what is stored.
        assert!(svc.hold(RW, &call(interfaces::STORE, sm::PUT, &put_call(b"k", b"")), Some(b"from bulk")));
        assert_eq!(commit_and_answer(&svc, &[sm::PUT]), [Ok(None)]);
        assert_eq!(get(&svc, RW, b"k"), Ok(b"from bulk".to_vec()));
        // The group's limit.
        for i in 0..MAX_GROUP_OPS {
            assert!(svc.hold(RW, &call(interfaces::STORE, sm::DELETE, &delete_call(&[i as u8 + 1])), None));
        }
        assert!(!svc.hold(RW, &call(interfaces::STORE, sm::DELETE, &delete_call(b"k")), None), "a full group takes no more");
        svc.commit();
        for _ in 0..MAX_GROUP_OPS {
            svc.answer_held(&mut TestResponder::new()).unwrap();
        }
        assert_eq!(svc.answer_held(&mut TestResponder::new()), Err(SysError::InvalidArgument), "nothing more is held");
    }

    #[test]
    fn a_group_the_store_cannot_take_whole_is_applied_op_by_op() {
        // Two services on twin stores: one gets the ops as a group, the
        // other one at a time; every answer and the end state agree.
        let grouped = service();
        let alone = service();
        let value = [0x5au8; 60 * 1024];
        let mut methods = Vec::new();
        let mut expected = Vec::new();
        for i in 0..12u8 {
            let key = [b'k', i];
            assert!(grouped.hold(RW, &call(interfaces::STORE, sm::PUT, &put_call(&key, &value)), None));
            methods.push(sm::PUT);
            expected.push(put(&alone, RW, &key, &value).map(|()| None));
        }
        assert!(expected.iter().any(|r| r.is_ok()) && expected.iter().any(|r| *r == Err(ErrorCode::NoSpace)), "the test needs some puts to fit and some not: {expected:?}");
        assert_eq!(commit_and_answer(&grouped, &methods), expected);
        for i in 0..12u8 {
            assert_eq!(get(&grouped, RW, &[b'k', i]), get(&alone, RW, &[b'k', i]));
        }
    }

    #[test]
    fn other_interfaces_are_refused() {
        let svc = service();
        let mut r = TestResponder::new();
        assert_eq!(svc.answer(RW, &call(interfaces::DIRECTORY, 0, &[]), &mut r), Err(SysError::UnknownInterface));
    }
}
