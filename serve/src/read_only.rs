//! What a read-only capability may do, and the typed read-only wrapper.
//!
//! Attenuation in capOS is structural: a read-only `Directory`, `File`,
//! `Store` or `BlockDevice` is a wrapper in front of the real server, not
//! a rights bit the real server checks. Reads pass through; mutations are
//! answered by the wrapper itself with a `readOnly` error of the method's
//! result shape, without reaching the server.
//!
//! Two forms, one rule:
//! - [`ReadOnly`], the typed wrapper: a `DirectoryServer`, `FileServer` or
//!   `StoreServer` in front of another (as [`ReadOnlyBlock`] is for
//!   blocks). Its mutations return [`refusal`]. It does not wrap the
//!   capabilities a read hands out: the inner server must make those
//!   read-only too (the filesystem adapter does, [`crate::fs`]: an object
//!   opened from a read-only one inherits the flag).
//! - [`read_only`], the method table, for a server that holds an object it
//!   cannot name by type (the kernel's wrapper around any kernel object,
//!   a `Store` served by a process): which methods are reads, which are
//!   mutations and in what result shape they are refused. Interfaces and
//!   methods the table does not know are refused whole (fail closed).
//!
//! The host tests check the two agree: every mutation of the table is
//! refused by the typed wrapper with the same error, and every read passes.
//!
//! [`ReadOnlyBlock`]: crate::block::ReadOnlyBlock

use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::helpers::Stat;
use capos_abi::interfaces::{self, directory_method as dm, file_method as fm, store_method as sm};
use crate::directory::DirectoryServer;
use crate::file::FileServer;
use crate::store::StoreServer;
use alloc::vec::Vec;
use capos_storage::DirEntry;

/// The result struct a method answers with, and the one encoder of an
/// error in that shape (shared with every other refusing object).
pub use crate::refuse::{refuse, ResultKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Pass the call through; wrap returned capabilities read-only too.
    Read,
    /// Refuse with `readOnly`, encoded as this result kind.
    Mutation(ResultKind),
    /// The interface or method is not one the wrapper knows: refuse.
    Unknown,
}

/// How a read-only capability treats method `method` of `interface_id`.
pub fn read_only(interface_id: u64, method: u16) -> Access {
    use Access::*;
    use ResultKind::*;
    match (interface_id, method) {
        (interfaces::DIRECTORY, dm::OPEN | dm::LIST | dm::SUB) => Read,
        (interfaces::DIRECTORY, dm::MKDIR | dm::REMOVE | dm::RENAME) => Mutation(Void),
        (interfaces::DIRECTORY, dm::CREATE) => Mutation(Cap),
        (interfaces::FILE, fm::READ | fm::STAT | fm::CLOSE) => Read,
        (interfaces::FILE, fm::WRITE) => Mutation(UInt64),
        (interfaces::FILE, fm::TRUNCATE | fm::SYNC) => Mutation(Void),
        (interfaces::STORE, sm::GET | sm::HAS | sm::LIST) => Read,
        (interfaces::STORE, sm::PUT) => Mutation(Void),
        (interfaces::STORE, sm::DELETE) => Mutation(Bool),
        _ => Unknown,
    }
}

/// The `readOnly` error a wrapper answers a mutation with.
pub fn refusal(interface_id: u64, method: u16) -> CapError {
    CapError::new(
        ErrorCode::ReadOnly,
        &alloc::format!(
            "read-only capability: {}.{} refused",
            interfaces::name_of(interface_id).unwrap_or("?"),
            interfaces::method_name(interface_id, method).unwrap_or("?")
        ),
    )
}

/// `S` behind the read-only wrapper: reads pass through, every mutation
/// is refused with [`refusal`] before it reaches `S`.
pub struct ReadOnly<S>(pub S);

fn refused<T>(interface_id: u64, method: u16) -> Result<T, CapError> {
    Err(refusal(interface_id, method))
}

impl<S: DirectoryServer> DirectoryServer for ReadOnly<S> {
    type Cap = S::Cap;
    fn open(&self, name: &str) -> Result<S::Cap, CapError> {
        self.0.open(name)
    }
    fn list(&self) -> Result<Vec<DirEntry>, CapError> {
        self.0.list()
    }
    fn mkdir(&self, _: &str) -> Result<(), CapError> {
        refused(interfaces::DIRECTORY, dm::MKDIR)
    }
    fn remove(&self, _: &str) -> Result<(), CapError> {
        refused(interfaces::DIRECTORY, dm::REMOVE)
    }
    fn sub(&self, name: &str) -> Result<S::Cap, CapError> {
        self.0.sub(name)
    }
    fn create(&self, _: &str) -> Result<S::Cap, CapError> {
        refused(interfaces::DIRECTORY, dm::CREATE)
    }
    fn rename(&self, _: &str, _: &str, _: Option<&S::Cap>) -> Result<(), CapError> {
        refused(interfaces::DIRECTORY, dm::RENAME)
    }
}

impl<S: FileServer> FileServer for ReadOnly<S> {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CapError> {
        self.0.read(offset, buf)
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<u64, CapError> {
        refused(interfaces::FILE, fm::WRITE)
    }
    fn stat(&self) -> Result<Stat, CapError> {
        self.0.stat()
    }
    fn truncate(&self, _: u64) -> Result<(), CapError> {
        refused(interfaces::FILE, fm::TRUNCATE)
    }
    fn sync(&self) -> Result<(), CapError> {
        refused(interfaces::FILE, fm::SYNC)
    }
    fn close(&self) -> Result<(), CapError> {
        self.0.close()
    }
}

impl<S: StoreServer> StoreServer for ReadOnly<S> {
    fn put(&self, _: &[u8], _: &[u8]) -> Result<(), CapError> {
        refused(interfaces::STORE, sm::PUT)
    }
    fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError> {
        self.0.get(key)
    }
    fn has(&self, key: &[u8]) -> Result<bool, CapError> {
        self.0.has(key)
    }
    fn delete(&self, _: &[u8]) -> Result<bool, CapError> {
        refused(interfaces::STORE, sm::DELETE)
    }
    fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        self.0.list(after, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_method_is_classified() {
        let reads = [
            (interfaces::DIRECTORY, dm::OPEN), (interfaces::DIRECTORY, dm::LIST), (interfaces::DIRECTORY, dm::SUB),
            (interfaces::FILE, fm::READ), (interfaces::FILE, fm::STAT), (interfaces::FILE, fm::CLOSE),
            (interfaces::STORE, sm::GET), (interfaces::STORE, sm::HAS), (interfaces::STORE, sm::LIST),
        ];
        for (i, m) in reads {
            assert_eq!(read_only(i, m), Access::Read, "{:#x}/{}", i, m);
        }
        let writes = [
            (interfaces::DIRECTORY, dm::MKDIR, ResultKind::Void), (interfaces::DIRECTORY, dm::REMOVE, ResultKind::Void),
            (interfaces::DIRECTORY, dm::CREATE, ResultKind::Cap), (interfaces::DIRECTORY, dm::RENAME, ResultKind::Void),
            (interfaces::FILE, fm::WRITE, ResultKind::UInt64), (interfaces::FILE, fm::TRUNCATE, ResultKind::Void),
            (interfaces::FILE, fm::SYNC, ResultKind::Void),
            (interfaces::STORE, sm::PUT, ResultKind::Void), (interfaces::STORE, sm::DELETE, ResultKind::Bool),
        ];
        for (i, m, k) in writes {
            assert_eq!(read_only(i, m), Access::Mutation(k), "{:#x}/{}", i, m);
        }
    }

    #[test]
    fn mutations_are_refused_in_their_schema_result_shape() {
        for (name, id, methods) in interfaces::ALL {
            for m in 0..methods.len() as u16 {
                if let Access::Mutation(kind) = read_only(*id, m) {
                    assert_eq!(Some(kind), crate::refuse::result_kind(*id, m), "{name}.{}", methods[m as usize]);
                }
            }
        }
    }

    #[test]
    fn unknown_interfaces_and_methods_fail_closed() {
        assert_eq!(read_only(interfaces::FILE, 99), Access::Unknown);
        assert_eq!(read_only(interfaces::CONSOLE, 0), Access::Unknown);
        assert_eq!(read_only(0x1234, 0), Access::Unknown);
    }

    /// An inner server whose every method answers `notFound("inner")`, so
    /// a test sees whether a call reached it.
    struct Inner;
    fn inner<T>() -> Result<T, CapError> {
        Err(CapError::new(ErrorCode::NotFound, "inner"))
    }
    impl DirectoryServer for Inner {
        type Cap = u32;
        fn open(&self, _: &str) -> Result<u32, CapError> { inner() }
        fn list(&self) -> Result<Vec<DirEntry>, CapError> { inner() }
        fn mkdir(&self, _: &str) -> Result<(), CapError> { inner() }
        fn remove(&self, _: &str) -> Result<(), CapError> { inner() }
        fn sub(&self, _: &str) -> Result<u32, CapError> { inner() }
        fn create(&self, _: &str) -> Result<u32, CapError> { inner() }
        fn rename(&self, _: &str, _: &str, _: Option<&u32>) -> Result<(), CapError> { inner() }
    }
    impl FileServer for Inner {
        fn read(&self, _: u64, _: &mut [u8]) -> Result<usize, CapError> { inner() }
        fn write(&self, _: u64, _: &[u8]) -> Result<u64, CapError> { inner() }
        fn stat(&self) -> Result<Stat, CapError> { inner() }
        fn truncate(&self, _: u64) -> Result<(), CapError> { inner() }
        fn sync(&self) -> Result<(), CapError> { inner() }
        fn close(&self) -> Result<(), CapError> { inner() }
    }
    impl StoreServer for Inner {
        fn put(&self, _: &[u8], _: &[u8]) -> Result<(), CapError> { inner() }
        fn get(&self, _: &[u8]) -> Result<Vec<u8>, CapError> { inner() }
        fn has(&self, _: &[u8]) -> Result<bool, CapError> { inner() }
        fn delete(&self, _: &[u8]) -> Result<bool, CapError> { inner() }
        fn list(&self, _: &[u8], _: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> { inner() }
    }

    /// What the typed wrapper answers method `m` of `interface` with: the
    /// error, as (code, message).
    fn typed(interface: u64, m: u16) -> (ErrorCode, alloc::string::String) {
        let w = ReadOnly(Inner);
        let e = match (interface, m) {
            (interfaces::DIRECTORY, dm::OPEN) => w.open("x").err(),
            (interfaces::DIRECTORY, dm::LIST) => DirectoryServer::list(&w).err(),
            (interfaces::DIRECTORY, dm::MKDIR) => w.mkdir("x").err(),
            (interfaces::DIRECTORY, dm::REMOVE) => w.remove("x").err(),
            (interfaces::DIRECTORY, dm::SUB) => w.sub("x").err(),
            (interfaces::DIRECTORY, dm::CREATE) => w.create("x").err(),
            (interfaces::DIRECTORY, dm::RENAME) => DirectoryServer::rename(&w, "a", "b", None).err(),
            (interfaces::FILE, fm::READ) => w.read(0, &mut [0; 4]).err(),
            (interfaces::FILE, fm::WRITE) => w.write(0, b"x").err(),
            (interfaces::FILE, fm::STAT) => w.stat().err(),
            (interfaces::FILE, fm::TRUNCATE) => w.truncate(0).err(),
            (interfaces::FILE, fm::SYNC) => w.sync().err(),
            (interfaces::FILE, fm::CLOSE) => w.close().err(),
            (interfaces::STORE, sm::PUT) => w.put(b"k", b"v").err(),
            (interfaces::STORE, sm::GET) => w.get(b"k").err(),
            (interfaces::STORE, sm::HAS) => w.has(b"k").err(),
            (interfaces::STORE, sm::DELETE) => w.delete(b"k").err(),
            (interfaces::STORE, sm::LIST) => StoreServer::list(&w, b"", 1).err(),
            _ => panic!("{interface:#x}.{m}: a method the typed wrapper does not know"),
        };
        let e = e.expect("Inner answers every method with an error");
        (e.code, e.message)
    }

    #[test]
    fn the_typed_wrapper_and_the_table_agree_on_every_storage_method() {
        for iface in [interfaces::DIRECTORY, interfaces::FILE, interfaces::STORE] {
            let (name, _, methods) = interfaces::ALL.iter().find(|(_, id, _)| *id == iface).unwrap();
            for m in 0..methods.len() as u16 {
                let got = typed(iface, m);
                match read_only(iface, m) {
                    Access::Read => assert_eq!(got, (ErrorCode::NotFound, "inner".into()), "{name}.{}: a read reaches the server", methods[m as usize]),
                    Access::Mutation(_) => {
                        let want = refusal(iface, m);
                        assert_eq!(got, (want.code, want.message), "{name}.{}: refused by the wrapper", methods[m as usize]);
                    }
                    Access::Unknown => panic!("{name}.{} is unclassified", methods[m as usize]),
                }
            }
        }
    }
}
