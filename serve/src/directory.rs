//! `Directory`: the trait a directory object implements, and the capnp
//! dispatcher in front of it.

use super::{cap_reply, bad_params, void_reply, Responder};
use capos_abi::capos_capnp::{directory, list_result, rename_params, ErrorCode, NodeKind};
use capos_abi::helpers::{fill_error, CapError};
use capos_abi::interfaces::directory_method as m;
use capos_abi::message::{CallMessage, MessageError};
use capos_abi::SysError;
use alloc::format;
use alloc::vec::Vec;
use capos_storage::DirEntry;

/// What a `Directory` does, in plain Rust. `Cap` is what `open`, `sub` and
/// `create` hand out and what `rename` receives as its target.
pub trait DirectoryServer {
    type Cap;
    fn open(&self, name: &str) -> Result<Self::Cap, CapError>;
    /// Sorted by name bytes.
    fn list(&self) -> Result<Vec<DirEntry>, CapError>;
    fn mkdir(&self, name: &str) -> Result<(), CapError>;
    fn remove(&self, name: &str) -> Result<(), CapError>;
    fn sub(&self, name: &str) -> Result<Self::Cap, CapError>;
    fn create(&self, name: &str) -> Result<Self::Cap, CapError>;
    /// Move `from` to `to` in this directory (`target` None) or in the
    /// directory `target` (which the implementation must check is of the
    /// same backer, failing closed).
    fn rename(&self, from: &str, to: &str, target: Option<&Self::Cap>) -> Result<(), CapError>;
}

pub fn node_kind(kind: capos_storage::NodeKind) -> NodeKind {
    match kind {
        capos_storage::NodeKind::File => NodeKind::File,
        capos_storage::NodeKind::Directory => NodeKind::Directory,
    }
}

/// A name param: text that is not UTF-8 is an invalid name (a method
/// error), not a malformed message.
fn name(t: capnp::Result<capnp::text::Reader<'_>>) -> Result<Result<&str, CapError>, SysError> {
    let t = t.map_err(bad_params)?;
    Ok(t.to_str().map_err(|_| CapError::new(ErrorCode::InvalidArgument, "invalid name: not UTF-8")))
}

/// Answer one `Directory` call.
pub fn dispatch<S, R>(server: &S, call: &CallMessage, r: &mut R) -> Result<(), SysError>
where
    S: DirectoryServer + ?Sized,
    R: Responder<Cap = S::Cap>,
{
    match call.method_id() {
        m::OPEN | m::SUB | m::CREATE => {
            let (method, p) = (call.method_id(), call.params::<directory::open_params::Owned>().map_err(bad_params)?);
            // open, sub and create share the params shape `(name :Text)`.
            let result = match name(p.get_name())? {
                Err(e) => Err(e),
                Ok(n) if method == m::OPEN => server.open(n),
                Ok(n) if method == m::SUB => server.sub(n),
                Ok(n) => server.create(n),
            };
            cap_reply(r, result)
        }
        m::LIST => {
            let result = server.list();
            let answer = r.results::<list_result::Owned>(|b| {
                fill_list(b, &result);
                Ok(())
            });
            match answer {
                // A listing larger than a reply is an error the caller can read.
                Err(SysError::MessageTooLarge) => r.results::<list_result::Owned>(|b| {
                    fill_error(
                        b.init_err(),
                        &CapError::new(ErrorCode::TooLarge, &format!("the listing of {} entries does not fit a reply", result.map(|l| l.len()).unwrap_or(0))),
                    );
                    Ok(())
                }),
                other => other,
            }
        }
        m::MKDIR | m::REMOVE => {
            let (method, p) = (call.method_id(), call.params::<directory::mkdir_params::Owned>().map_err(bad_params)?);
            let result = match name(p.get_name())? {
                Err(e) => Err(e),
                Ok(n) if method == m::MKDIR => server.mkdir(n),
                Ok(n) => server.remove(n),
            };
            void_reply(r, result)
        }
        m::RENAME => {
            let p = call.params::<rename_params::Owned>().map_err(bad_params)?;
            let from = name(p.get_from())?;
            let to = name(p.get_to())?;
            let target = match p.get_target().which().map_err(|e| MessageError::UnknownEnumValue { field: "RenameParams.target", value: e.0 }.sys_error())? {
                rename_params::target::SameDirectory(()) => Ok(None),
                rename_params::target::Directory(slot) => match r.transferred(slot) {
                    Some(cap) => Ok(Some(cap)),
                    None => Err(CapError::new(ErrorCode::InvalidArgument, &format!("rename target: the call carries no capability in slot {slot}"))),
                },
            };
            let result = match (from, to, target) {
                (Ok(from), Ok(to), Ok(target)) => server.rename(from, to, target),
                (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => Err(e),
            };
            void_reply(r, result)
        }
        _ => Err(SysError::UnknownMethod),
    }
}

fn fill_list(b: list_result::Builder<'_>, result: &Result<Vec<DirEntry>, CapError>) {
    match result {
        Ok(entries) => {
            let mut list = b.init_ok(entries.len() as u32);
            for (i, e) in entries.iter().enumerate() {
                let mut d = list.reborrow().get(i as u32);
                d.set_name(e.name.as_str());
                d.set_kind(node_kind(e.kind));
                d.set_size(e.size);
            }
        }
        Err(e) => fill_error(b.init_err(), e),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use super::*;
    use capos_abi::capos_capnp::{cap_result, void_result};
    use capos_abi::helpers::read_void;
    use capos_abi::interfaces::DIRECTORY;
    use alloc::string::{String, ToString};
    use core::cell::RefCell;

    /// A directory that records what it was asked.
    #[derive(Default)]
    struct Log(RefCell<Vec<String>>);

    impl DirectoryServer for Log {
        type Cap = u32;
        fn open(&self, name: &str) -> Result<u32, CapError> {
            self.0.borrow_mut().push(format!("open {name}"));
            if name == "missing" {
                return Err(CapError::new(ErrorCode::NotFound, "no such file"));
            }
            Ok(7)
        }
        fn list(&self) -> Result<Vec<DirEntry>, CapError> {
            Ok((0..3).map(|i| DirEntry { name: format!("n{i}"), kind: capos_storage::NodeKind::File, size: i }).collect())
        }
        fn mkdir(&self, name: &str) -> Result<(), CapError> {
            self.0.borrow_mut().push(format!("mkdir {name}"));
            Ok(())
        }
        fn remove(&self, name: &str) -> Result<(), CapError> {
            self.0.borrow_mut().push(format!("remove {name}"));
            Ok(())
        }
        fn sub(&self, name: &str) -> Result<u32, CapError> {
            self.0.borrow_mut().push(format!("sub {name}"));
            Ok(8)
        }
        fn create(&self, name: &str) -> Result<u32, CapError> {
            self.0.borrow_mut().push(format!("create {name}"));
            Ok(9)
        }
        fn rename(&self, from: &str, to: &str, target: Option<&u32>) -> Result<(), CapError> {
            self.0.borrow_mut().push(format!("rename {from} {to} {target:?}"));
            Ok(())
        }
    }

    fn name_call(method: u16, n: &str) -> (Log, TestResponder) {
        let words = params::<directory::open_params::Owned>(|mut b| b.set_name(n));
        let (log, mut r) = (Log::default(), TestResponder::new());
        dispatch(&log, &call(DIRECTORY, method, &words), &mut r).unwrap();
        (log, r)
    }

    #[test]
    fn open_sub_create_reach_their_method_and_return_a_slot() {
        for (method, want, cap) in [(m::OPEN, "open a", 7), (m::SUB, "sub a", 8), (m::CREATE, "create a", 9)] {
            let (log, r) = name_call(method, "a");
            assert_eq!(log.0.borrow().as_slice(), [want.to_string()]);
            assert_eq!(r.caps, [cap]);
            let slot = r.get::<cap_result::Owned, _>(|res| match res.which().unwrap() {
                cap_result::Ok(s) => s,
                cap_result::Err(_) => panic!("error"),
            });
            assert_eq!(slot, 0);
        }
    }

    #[test]
    fn a_method_error_is_an_err_result_and_hands_out_nothing() {
        let (_, r) = name_call(m::OPEN, "missing");
        assert!(r.caps.is_empty());
        let code = r.get::<cap_result::Owned, _>(|res| match res.which().unwrap() {
            cap_result::Err(e) => e.unwrap().get_code().unwrap(),
            cap_result::Ok(_) => panic!("ok"),
        });
        assert_eq!(code, ErrorCode::NotFound);
    }

    #[test]
    fn mkdir_remove_and_list() {
        let (log, r) = name_call(m::MKDIR, "d");
        assert_eq!(log.0.borrow().as_slice(), ["mkdir d".to_string()]);
        assert_eq!(r.get::<void_result::Owned, _>(|res| read_void(res).unwrap()), Ok(()));
        let (log, _) = name_call(m::REMOVE, "d");
        assert_eq!(log.0.borrow().as_slice(), ["remove d".to_string()]);
        let (log, mut r) = (Log::default(), TestResponder::new());
        dispatch(&log, &call(DIRECTORY, m::LIST, &[]), &mut r).unwrap();
        let names: Vec<String> = r.get::<list_result::Owned, _>(|res| match res.which().unwrap() {
            list_result::Ok(l) => l.unwrap().iter().map(|e| e.get_name().unwrap().to_string().unwrap()).collect(),
            list_result::Err(_) => panic!(),
        });
        assert_eq!(names, ["n0", "n1", "n2"]);
    }

    #[test]
    fn rename_resolves_its_target_slot_or_refuses() {
        let words = params::<rename_params::Owned>(|mut b| {
            b.set_from("a");
            b.set_to("b");
            b.init_target().set_directory(1);
        });
        let (log, mut r) = (Log::default(), TestResponder::new());
        r.transferred = alloc::vec![40, 41];
        dispatch(&log, &call(DIRECTORY, m::RENAME, &words), &mut r).unwrap();
        assert_eq!(log.0.borrow().as_slice(), ["rename a b Some(41)".to_string()]);
        // A slot past the transferred capabilities never reaches the server.
        let (log, mut r) = (Log::default(), TestResponder::new());
        r.transferred = alloc::vec![40];
        dispatch(&log, &call(DIRECTORY, m::RENAME, &words), &mut r).unwrap();
        assert!(log.0.borrow().is_empty());
        let e = r.get::<void_result::Owned, _>(|res| read_void(res).unwrap()).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidArgument);
        // Same directory.
        let words = params::<rename_params::Owned>(|mut b| {
            b.set_from("a");
            b.set_to("c");
            b.init_target().set_same_directory(());
        });
        let (log, mut r) = (Log::default(), TestResponder::new());
        dispatch(&log, &call(DIRECTORY, m::RENAME, &words), &mut r).unwrap();
        assert_eq!(log.0.borrow().as_slice(), ["rename a c None".to_string()]);
    }

    #[test]
    fn non_utf8_names_are_invalid_arguments_not_crashes() {
        // Text "a\xffb": patch the bytes of a valid name.
        let mut words = params::<directory::open_params::Owned>(|mut b| b.set_name("aXb"));
        let bytes = capos_abi::message::word_bytes_mut(&mut words);
        let at = bytes.windows(3).position(|w| w == b"aXb").unwrap();
        bytes[at + 1] = 0xff;
        let (log, mut r) = (Log::default(), TestResponder::new());
        dispatch(&log, &call(DIRECTORY, m::OPEN, &words), &mut r).unwrap();
        assert!(log.0.borrow().is_empty());
        let code = r.get::<cap_result::Owned, _>(|res| match res.which().unwrap() {
            cap_result::Err(e) => e.unwrap().get_code().unwrap(),
            _ => panic!(),
        });
        assert_eq!(code, ErrorCode::InvalidArgument);
    }

    #[test]
    fn unknown_methods_and_bad_params_are_call_errors() {
        let (log, mut r) = (Log::default(), TestResponder::new());
        assert_eq!(dispatch(&log, &call(DIRECTORY, 7, &[]), &mut r), Err(SysError::UnknownMethod));
        // A params pointer that points out of the message.
        let words = [0u64, 0x0000_0001_0000_0000 | (100 << 2)];
        assert!(dispatch(&log, &call(DIRECTORY, m::OPEN, &words), &mut r).is_err());
        assert!(log.0.borrow().is_empty());
    }
}
