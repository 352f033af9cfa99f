//! `Store`: the trait a key/value object implements, and the capnp
//! dispatcher in front of it.

use super::{bad_params, void_reply, with_data, Responder};
use capos_abi::capos_capnp::{bool_result, data_result, keys_result, store};
use capos_abi::helpers::{fill_bool, fill_data, fill_error, CapError};
use capos_abi::interfaces::store_method as m;
use capos_abi::message::CallMessage;
use capos_abi::SysError;
use alloc::vec::Vec;

/// Most keys one `Store.list` page holds (a `limit` of 0 or more means
/// this). 256 keys of the longest CAPOSST1 key (255 bytes) fit a reply.
pub const MAX_LIST_KEYS: u32 = 256;

/// Each `Store` method on a CAPOSST1 store (`capos_storage::store::Store`):
/// the one meaning the kernel's store object and store-service share (a
/// missing key is `notFound`; an empty `after` lists from the first key).
pub mod on_caposst1 {
    use super::super::storage_error;
    use capos_abi::capos_capnp::ErrorCode;
    use capos_abi::helpers::CapError;
    use alloc::vec::Vec;
    use capos_storage::store::Store;
    use capos_storage::BlockDevice;

    pub fn put<D: BlockDevice>(s: &mut Store<D>, key: &[u8], value: &[u8]) -> Result<(), CapError> {
        s.put(key, value).map_err(|e| storage_error(&e))
    }

    pub fn get<D: BlockDevice>(s: &mut Store<D>, key: &[u8]) -> Result<Vec<u8>, CapError> {
        match s.get(key) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(CapError::new(ErrorCode::NotFound, "no value under that key")),
            Err(e) => Err(storage_error(&e)),
        }
    }

    pub fn has<D: BlockDevice>(s: &Store<D>, key: &[u8]) -> Result<bool, CapError> {
        s.has(key).map_err(|e| storage_error(&e))
    }

    pub fn delete<D: BlockDevice>(s: &mut Store<D>, key: &[u8]) -> Result<bool, CapError> {
        s.delete(key).map_err(|e| storage_error(&e))
    }

    pub fn list<D: BlockDevice>(s: &Store<D>, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        let after = if after.is_empty() { None } else { Some(after) };
        s.keys_after(after, limit).map_err(|e| storage_error(&e))
    }
}

/// What a `Store` does, in plain Rust.
pub trait StoreServer {
    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), CapError>;
    /// The value; `notFound` when the key is absent.
    fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError>;
    fn has(&self, key: &[u8]) -> Result<bool, CapError>;
    /// Whether the key existed.
    fn delete(&self, key: &[u8]) -> Result<bool, CapError>;
    /// Up to `limit` keys in byte order strictly after `after` (from the
    /// first key when `after` is empty), and whether more follow.
    fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError>;
}

/// A `delete`'s (or `has`'s) answer, in `dispatch`'s result shape: for a
/// server that runs deletes apart from `dispatch` (store-service's group
/// commit). A put's is [`crate::void_reply`].
pub fn bool_reply<R: Responder>(r: &mut R, result: Result<bool, CapError>) -> Result<(), SysError> {
    r.results::<bool_result::Owned>(|b| {
        fill_bool(b, &result);
        Ok(())
    })
}

/// Answer one `Store` call.
pub fn dispatch<S: StoreServer + ?Sized, R: Responder>(server: &S, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    match call.method_id() {
        m::PUT => {
            let p = call.params::<store::put_params::Owned>().map_err(bad_params)?;
            let key = p.get_key().map_err(bad_params)?;
            let inline = p.get_value().map_err(bad_params)?;
            let result = with_data(inline, r, |_| Ok(()), |value| server.put(key, value))?;
            void_reply(r, result)
        }
        m::GET => {
            let key = call.params::<store::get_params::Owned>().map_err(bad_params)?.get_key().map_err(bad_params)?;
            let result = server.get(key);
            match (&result, r.bulk_out_capacity()) {
                (Ok(value), Some(room)) if value.len() <= room => {
                    r.bulk_out(value)?;
                    r.results::<data_result::Owned>(|b| {
                        fill_data(b, &Ok(&[]));
                        Ok(())
                    })
                }
                (Ok(value), Some(room)) => r.results::<data_result::Owned>(|b| {
                    let e = CapError::new(
                        capos_abi::capos_capnp::ErrorCode::TooLarge,
                        &alloc::format!("the value is {} bytes, the bulk buffer {room}", value.len()),
                    );
                    fill_data(b, &Err(e));
                    Ok(())
                }),
                _ => r.results::<data_result::Owned>(|b| {
                    match &result {
                        Ok(v) => fill_data(b, &Ok(v.as_slice())),
                        Err(e) => fill_error(b.init_err(), e),
                    }
                    Ok(())
                }),
            }
        }
        m::HAS => {
            let key = call.params::<store::has_params::Owned>().map_err(bad_params)?.get_key().map_err(bad_params)?;
            let result = server.has(key);
            bool_reply(r, result)
        }
        m::DELETE => {
            let key = call.params::<store::delete_params::Owned>().map_err(bad_params)?.get_key().map_err(bad_params)?;
            let result = server.delete(key);
            bool_reply(r, result)
        }
        m::LIST => {
            let p = call.params::<store::list_params::Owned>().map_err(bad_params)?;
            let after = p.get_after().map_err(bad_params)?;
            let limit = match p.get_limit() {
                0 => MAX_LIST_KEYS,
                n => n.min(MAX_LIST_KEYS),
            };
            let result = server.list(after, limit as usize);
            r.results::<keys_result::Owned>(|b| {
                match &result {
                    Ok((keys, more)) => {
                        let mut page = b.init_ok();
                        page.set_more(*more);
                        let mut list = page.init_keys(keys.len() as u32);
                        for (i, k) in keys.iter().enumerate() {
                            list.set(i as u32, k);
                        }
                    }
                    Err(e) => fill_error(b.init_err(), e),
                }
                Ok(())
            })
        }
        _ => Err(SysError::UnknownMethod),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use capos_abi::capos_capnp::{void_result, ErrorCode};
    use capos_abi::helpers::{read_data, read_void};
    use capos_abi::interfaces::STORE;
    use alloc::collections::BTreeMap;
    use core::cell::RefCell;

    #[derive(Default)]
    struct Map(RefCell<BTreeMap<Vec<u8>, Vec<u8>>>);

    impl StoreServer for Map {
        fn put(&self, key: &[u8], value: &[u8]) -> Result<(), CapError> {
            self.0.borrow_mut().insert(key.to_vec(), value.to_vec());
            Ok(())
        }
        fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError> {
            self.0.borrow().get(key).cloned().ok_or(CapError::new(ErrorCode::NotFound, "no value"))
        }
        fn has(&self, key: &[u8]) -> Result<bool, CapError> {
            Ok(self.0.borrow().contains_key(key))
        }
        fn delete(&self, key: &[u8]) -> Result<bool, CapError> {
            Ok(self.0.borrow_mut().remove(key).is_some())
        }
        fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
            let keys: Vec<Vec<u8>> = self.0.borrow().keys().filter(|k| after.is_empty() || k.as_slice() > after).cloned().collect();
            let more = keys.len() > limit;
            Ok((keys.into_iter().take(limit).collect(), more))
        }
    }

    fn put(s: &Map, key: &[u8], value: &[u8], bulk: Option<Vec<u8>>) -> Result<(), CapError> {
        let words = params::<store::put_params::Owned>(|mut b| {
            b.set_key(key);
            b.set_value(value);
        });
        let mut r = TestResponder::new();
        r.bulk_in = bulk;
        dispatch(s, &call(STORE, m::PUT, &words), &mut r).unwrap();
        r.get::<void_result::Owned, _>(|res| read_void(res).unwrap())
    }

    fn get(s: &Map, key: &[u8], bulk_cap: Option<usize>) -> (Result<Vec<u8>, CapError>, Option<Vec<u8>>) {
        let words = params::<store::get_params::Owned>(|mut b| b.set_key(key));
        let mut r = TestResponder::new();
        r.bulk_cap = bulk_cap;
        dispatch(s, &call(STORE, m::GET, &words), &mut r).unwrap();
        (r.get::<data_result::Owned, _>(|res| read_data(res).unwrap()), r.bulk_out.clone())
    }

    #[test]
    fn put_get_inline_and_bulk() {
        let s = Map::default();
        put(&s, b"k", b"v", None).unwrap();
        assert_eq!(get(&s, b"k", None).0, Ok(b"v".to_vec()));
        put(&s, b"big", b"", Some(alloc::vec![5u8; 60_000])).unwrap();
        let (inline, bulk) = get(&s, b"big", Some(65_536));
        assert_eq!((inline, bulk.map(|b| b.len())), (Ok(Vec::new()), Some(60_000)));
        assert_eq!(get(&s, b"big", Some(10)).0.unwrap_err().code, ErrorCode::TooLarge);
        assert_eq!(get(&s, b"nope", None).0.unwrap_err().code, ErrorCode::NotFound);
        assert_eq!(put(&s, b"k", b"x", Some(alloc::vec![1])).unwrap_err().code, ErrorCode::InvalidArgument);
        assert_eq!(get(&s, b"k", None).0, Ok(b"v".to_vec()), "a refused put changed nothing");
    }

    fn list(s: &Map, after: &[u8], limit: u32) -> (Vec<Vec<u8>>, bool) {
        let words = params::<store::list_params::Owned>(|mut b| {
            b.set_after(after);
            b.set_limit(limit);
        });
        let mut r = TestResponder::new();
        dispatch(s, &call(STORE, m::LIST, &words), &mut r).unwrap();
        r.get::<keys_result::Owned, _>(|res| match res.which().unwrap() {
            keys_result::Ok(p) => {
                let p = p.unwrap();
                (p.get_keys().unwrap().iter().map(|k| k.unwrap().to_vec()).collect(), p.get_more())
            }
            keys_result::Err(_) => panic!("error"),
        })
    }

    #[test]
    fn list_pages_are_bounded() {
        let s = Map::default();
        for i in 0..600u32 {
            put(&s, &i.to_be_bytes(), b"", None).unwrap();
        }
        let (page, more) = list(&s, b"", 0);
        assert_eq!((page.len(), more), (MAX_LIST_KEYS as usize, true), "0 means the maximum");
        let (page, more) = list(&s, b"", 100_000);
        assert_eq!((page.len(), more), (MAX_LIST_KEYS as usize, true), "more than the maximum is the maximum");
        let (page, more) = list(&s, &598u32.to_be_bytes(), 10);
        assert_eq!((page, more), (alloc::vec![599u32.to_be_bytes().to_vec()], false));
    }

    #[test]
    fn has_delete() {
        let s = Map::default();
        put(&s, b"a", b"1", None).unwrap();
        for (method, want) in [(m::HAS, true), (m::DELETE, true), (m::HAS, false), (m::DELETE, false)] {
            let words = params::<store::has_params::Owned>(|mut b| b.set_key(b"a"));
            let mut r = TestResponder::new();
            dispatch(&s, &call(STORE, method, &words), &mut r).unwrap();
            let got = r.get::<bool_result::Owned, _>(|res| match res.which().unwrap() {
                bool_result::Ok(v) => v,
                bool_result::Err(_) => panic!(),
            });
            assert_eq!(got, want, "method {method}");
        }
        assert_eq!(dispatch(&s, &call(STORE, 5, &[]), &mut TestResponder::new()), Err(SysError::UnknownMethod));
    }
}
