//! storage-fs-service's core: the Directory and File objects of one
//! filesystem, handed to clients as badged capabilities of the service's
//! one endpoint. Plain `no_std` code over any [`FileSystem`], host-tested
//! here; `main.rs` wires it to a Block capability and the endpoint.
//!
//! Rules:
//! - **Sessions.** A badge the manifest chose (no [`SERVER_MINTED`] bit)
//!   is a client's session, and names that session's root: the root
//!   directory, read-only when the badge has the manifest's read-only bit.
//!   Clients are told apart by badge and nothing else.
//! - **Objects.** Everything else a client holds was minted by this
//!   instance: `SERVER_MINTED | instance tag | object id`. Ids are never
//!   reused within an instance, and the instance tag (chosen at start)
//!   makes a capability from an earlier instance of the service, after a
//!   restart, answer `staleHandle` instead of reaching another object.
//!   Asking for the same node again in one session returns the same
//!   object, so walking paths does not grow the table; a session holds at
//!   most [`MAX_OBJECTS_PER_SESSION`]. An object is forgotten when the
//!   last capability to it is gone ([`FsService::released`], from the
//!   kernel's no-senders notification: dropped, or its holder died), and
//!   a file also on `File.close`.
//! - **Meaning.** What a call on an object does is `capos_serve::fs`, the
//!   one adapter from [`FileSystem`] to Directory and File that the
//!   kernel's objects use too: an object of a read-only session is
//!   read-only, and so is everything opened from it (the typed read-only
//!   wrapper); an object reaches only its node and what lies below it;
//!   a rename's target must be a writable directory object of this
//!   instance that the caller passed in. This file is the service's side
//!   of that adapter ([`capos_serve::fs::FsHost`]): badges, the object
//!   table, sessions.
//! - **Any format.** [`FsService`] serves any [`FileSystem`] the storage
//!   crate opens (CAPOSWF1, CAPOSRO1, FAT, or `dyn FileSystem`); a format
//!   that is read-only itself refuses mutations with `readOnly` in its
//!   engine. Which one `main.rs` mounts is its choice.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::format;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::interfaces;
use capos_abi::message::CallMessage;
use capos_abi::SysError;
use capos_serve::fs::{self, FsHost, FsObject};
use capos_serve::refuse::Refusal;
use capos_serve::Responder;
use capos_storage::FileSystem;
use core::cell::RefCell;

pub use capos_abi::badge::{MANIFEST_READ_ONLY, SERVER_MINTED};

/// Most live objects one session may hold.
pub const MAX_OBJECTS_PER_SESSION: usize = 4096;

/// Bits of a minted badge that carry the instance tag, and the object id.
const TAG_SHIFT: u32 = 32;
/// 30 bits: below both flag bits of `capos_abi::badge`.
const TAG_MASK: u64 = (1 << 30) - 1;
const ID_MASK: u64 = (1 << TAG_SHIFT) - 1;

/// What one badge stands for: a session's object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Object {
    session: u64,
    fs: FsObject,
}

/// The key that makes asking twice return the same object.
type Same = (u64, FsObject);

#[derive(Default)]
struct Objects {
    by_id: BTreeMap<u32, Object>,
    by_node: BTreeMap<Same, u32>,
    per_session: BTreeMap<u64, usize>,
    next: u32,
}

pub struct FsService<F: FileSystem> {
    fs: RefCell<F>,
    objects: RefCell<Objects>,
    tag: u64,
    limit: usize,
}

impl<F: FileSystem> FsService<F> {
    /// Serve `fs`. `tag` tells this instance's capabilities from an earlier
    /// one's (a restarted service picks a new one, e.g. from the TSC).
    pub fn new(fs: F, tag: u64) -> FsService<F> {
        let tag = (tag & TAG_MASK).max(1);
        FsService { fs: RefCell::new(fs), objects: RefCell::new(Objects { next: 1, ..Objects::default() }), tag, limit: MAX_OBJECTS_PER_SESSION }
    }

    /// The same, with at most `limit` objects per session.
    pub fn with_object_limit(self, limit: usize) -> FsService<F> {
        FsService { limit: limit.min(MAX_OBJECTS_PER_SESSION), ..self }
    }

    /// The filesystem, for the service's own use (sync at exit, figures).
    pub fn fs(&self) -> core::cell::RefMut<'_, F> {
        self.fs.borrow_mut()
    }

    /// How many objects are live (all sessions).
    pub fn live_objects(&self) -> usize {
        self.objects.borrow().by_id.len()
    }

    /// The last capability with `badge` is gone: forget its object (files
    /// and directories alike). False when `badge` names no live object of
    /// this instance (a session, a closed file, another instance's).
    pub fn released(&self, badge: u64) -> bool {
        if badge & SERVER_MINTED == 0 || (badge >> TAG_SHIFT) & TAG_MASK != self.tag {
            return false;
        }
        let obj = self.objects.borrow().by_id.get(&((badge & ID_MASK) as u32)).copied();
        match obj {
            Some(o) => {
                self.forget(&o);
                true
            }
            None => false,
        }
    }

    /// Answer one call made on the capability with `badge`.
    pub fn answer<R: Responder<Cap = u64>>(&self, badge: u64, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
        match self.resolve(badge) {
            Ok(obj) => fs::answer(&Session { svc: self, session: obj.session }, obj.fs, call, r),
            Err(e) => Refusal(e).answer(&SERVED, call, r),
        }
    }

    /// The object `badge` names, or why it names none.
    fn resolve(&self, badge: u64) -> Result<Object, CapError> {
        if badge == 0 {
            // No manifest grant and no minted object has badge 0: it is
            // what a capability that is not ours resolves to.
            return Err(CapError::new(ErrorCode::PermissionDenied, "not a capability of this service"));
        }
        if badge & SERVER_MINTED == 0 {
            let root = self.fs.borrow().root();
            return Ok(Object { session: badge, fs: FsObject::root(root, badge & MANIFEST_READ_ONLY != 0) });
        }
        let (tag, id) = ((badge >> TAG_SHIFT) & TAG_MASK, badge & ID_MASK);
        if tag != self.tag {
            return Err(CapError::new(
                ErrorCode::StaleHandle,
                "this capability is from an earlier instance of the service (it restarted); open it again from the root",
            ));
        }
        match self.objects.borrow().by_id.get(&(id as u32)) {
            Some(o) => Ok(*o),
            None => Err(CapError::new(ErrorCode::Closed, "this object was closed")),
        }
    }

    /// Whether `session` may hold one more object.
    fn room(&self, session: u64) -> Result<(), CapError> {
        match self.objects.borrow().per_session.get(&session) {
            Some(n) if *n >= self.limit => Err(CapError::new(
                ErrorCode::TooLarge,
                &format!("this session holds {} objects, the most it may; close files", self.limit),
            )),
            _ => Ok(()),
        }
    }

    /// The badge of `obj`: the existing one, or a new object.
    fn hand_out(&self, obj: Object) -> Result<u64, CapError> {
        let same = (obj.session, obj.fs);
        let known = self.objects.borrow().by_node.get(&same).copied();
        let id = match known {
            Some(id) => id,
            None => {
                self.room(obj.session)?;
                let mut t = self.objects.borrow_mut();
                if t.next == u32::MAX {
                    return Err(CapError::new(ErrorCode::TooLarge, "object ids of this instance are used up"));
                }
                let id = t.next;
                t.next += 1;
                t.by_id.insert(id, obj);
                t.by_node.insert(same, id);
                *t.per_session.entry(obj.session).or_insert(0) += 1;
                id
            }
        };
        Ok(SERVER_MINTED | self.tag << TAG_SHIFT | id as u64)
    }

    fn forget(&self, obj: &Object) {
        let mut t = self.objects.borrow_mut();
        if let Some(id) = t.by_node.remove(&(obj.session, obj.fs)) {
            t.by_id.remove(&id);
            if let Some(n) = t.per_session.get_mut(&obj.session) {
                *n -= 1;
            }
        }
    }
}

/// The interfaces this service's objects answer.
const SERVED: [u64; 2] = [interfaces::DIRECTORY, interfaces::FILE];

/// One session's side of the adapter: the filesystem is the service's,
/// capabilities are badges of this session's objects.
struct Session<'a, F: FileSystem> {
    svc: &'a FsService<F>,
    session: u64,
}

impl<F: FileSystem> FsHost for Session<'_, F> {
    type Cap = u64;
    type Fs = F;

    fn with_fs<T>(&self, op: impl FnOnce(&mut F) -> T) -> T {
        op(&mut self.svc.fs.borrow_mut())
    }

    fn hand_out(&self, obj: FsObject) -> Result<u64, CapError> {
        self.svc.hand_out(Object { session: self.session, fs: obj })
    }

    fn room(&self) -> Result<(), CapError> {
        self.svc.room(self.session)
    }

    fn object_of(&self, badge: &u64) -> Result<FsObject, CapError> {
        // Whatever is wrong with it (another instance's, closed, not
        // ours), it is no target: one answer, permissionDenied.
        self.svc.resolve(*badge).map(|o| o.fs).map_err(|_| CapError::new(ErrorCode::PermissionDenied, "rename target is not a writable Directory of this service"))
    }

    fn close(&self, obj: &FsObject) {
        self.svc.forget(&Object { session: self.session, fs: *obj });
    }
}

/// Answer a call when there is no filesystem to serve (the mount failed):
/// every method fails with `e`, in its own result shape, so a client sees
/// why instead of a dead endpoint.
pub fn answer_unavailable<R: Responder<Cap = u64>>(e: &CapError, call: &CallMessage, r: &mut R) -> Result<(), SysError> {
    Refusal(e.clone()).answer(&SERVED, call, r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::capos_capnp::{data_result, directory, file, rename_params};
    use capos_abi::helpers::{read_data, read_error};
    use capos_abi::interfaces::{directory_method as dm, file_method as fm};
    use capos_serve::testing::{call, params, TestResponder};
    use capos_storage::mem_device::MemBlockDevice as MemDevice;
    use capos_storage::writable_fs::{format, MountOptions, WritableFs};
    use capos_storage::{FixedClock, Timestamp};

    type Fs = WritableFs<MemDevice, FixedClock>;
    const ALICE: u64 = 0x101;
    const BOB_RO: u64 = 0x102 | MANIFEST_READ_ONLY;

    fn service(tag: u64) -> FsService<Fs> {
        let mut dev = MemDevice::new(2048);
        format(&mut dev, None, Timestamp::UNKNOWN).unwrap();
        let fs = WritableFs::mount(dev, FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: false }).unwrap();
        FsService::new(fs, tag)
    }

    /// A Directory call taking a name; the responder afterwards.
    fn dir_call(svc: &FsService<Fs>, badge: u64, method: u16, name: &str) -> TestResponder<u64> {
        let words = params::<directory::open_params::Owned>(|mut b| b.set_name(name));
        let mut r = TestResponder::empty();
        svc.answer(badge, &call(interfaces::DIRECTORY, method, &words), &mut r).unwrap();
        r
    }

    /// The badge a cap-returning call handed out, or its error code.
    fn cap_of(r: &TestResponder<u64>) -> Result<u64, ErrorCode> {
        r.cap_result()
    }

    fn void_of(r: &TestResponder<u64>) -> Result<(), ErrorCode> {
        r.void_result()
    }

    fn names(svc: &FsService<Fs>, badge: u64) -> Vec<String> {
        let mut r = TestResponder::empty();
        svc.answer(badge, &call(interfaces::DIRECTORY, dm::LIST, &[]), &mut r).unwrap();
        r.list_names().expect("list")
    }

    fn write(svc: &FsService<Fs>, badge: u64, data: &[u8]) -> TestResponder<u64> {
        let words = params::<file::write_params::Owned>(|mut b| b.set_data(data));
        let mut r = TestResponder::empty();
        svc.answer(badge, &call(interfaces::FILE, fm::WRITE, &words), &mut r).unwrap();
        r
    }

    fn read(svc: &FsService<Fs>, badge: u64) -> Result<Vec<u8>, ErrorCode> {
        let words = params::<file::read_params::Owned>(|mut b| b.set_length(4096));
        let mut r = TestResponder::empty();
        svc.answer(badge, &call(interfaces::FILE, fm::READ, &words), &mut r).unwrap();
        r.get::<data_result::Owned, _>(|res| read_data(res).unwrap().map_err(|e| e.code))
    }

    #[test]
    fn a_session_writes_a_tree_and_reads_it_back() {
        let svc = service(7);
        assert_eq!(void_of(&dir_call(&svc, ALICE, dm::MKDIR, "docs")), Ok(()));
        let docs = cap_of(&dir_call(&svc, ALICE, dm::SUB, "docs")).unwrap();
        assert_ne!(docs & SERVER_MINTED, 0, "minted badges carry SERVER_MINTED");
        let f = cap_of(&dir_call(&svc, docs, dm::CREATE, "a.txt")).unwrap();
        write(&svc, f, b"hello\n");
        assert_eq!(read(&svc, f), Ok(b"hello\n".to_vec()));
        assert_eq!(names(&svc, ALICE), ["docs"]);
        assert_eq!(names(&svc, docs), ["a.txt"]);
        // Another session sees the same filesystem.
        let again = cap_of(&dir_call(&svc, BOB_RO, dm::SUB, "docs")).unwrap();
        let f2 = cap_of(&dir_call(&svc, again, dm::OPEN, "a.txt")).unwrap();
        assert_eq!(read(&svc, f2), Ok(b"hello\n".to_vec()));
    }

    #[test]
    fn asking_twice_returns_the_same_object() {
        let svc = service(7);
        dir_call(&svc, ALICE, dm::MKDIR, "d");
        let a = cap_of(&dir_call(&svc, ALICE, dm::SUB, "d")).unwrap();
        let live = svc.live_objects();
        for _ in 0..100 {
            assert_eq!(cap_of(&dir_call(&svc, ALICE, dm::SUB, "d")).unwrap(), a);
        }
        assert_eq!(svc.live_objects(), live);
        // Another session gets its own object for the same node.
        assert_ne!(cap_of(&dir_call(&svc, 0x105, dm::SUB, "d")).unwrap(), a);
    }

    #[test]
    fn a_read_only_session_reads_and_every_mutation_is_refused() {
        let svc = service(7);
        dir_call(&svc, ALICE, dm::MKDIR, "d");
        let f = cap_of(&dir_call(&svc, ALICE, dm::CREATE, "f")).unwrap();
        write(&svc, f, b"x");
        assert_eq!(void_of(&dir_call(&svc, BOB_RO, dm::MKDIR, "e")), Err(ErrorCode::ReadOnly));
        assert_eq!(void_of(&dir_call(&svc, BOB_RO, dm::REMOVE, "f")), Err(ErrorCode::ReadOnly));
        assert_eq!(cap_of(&dir_call(&svc, BOB_RO, dm::CREATE, "g")), Err(ErrorCode::ReadOnly));
        // What it opens is read-only too, and so is a subdirectory.
        let ro_f = cap_of(&dir_call(&svc, BOB_RO, dm::OPEN, "f")).unwrap();
        assert_ne!(ro_f, f);
        assert_eq!(read(&svc, ro_f), Ok(b"x".to_vec()));
        let w = write(&svc, ro_f, b"y");
        let code = w.get::<capos_abi::capos_capnp::u_int64_result::Owned, _>(|res| match res.which().unwrap() {
            capos_abi::capos_capnp::u_int64_result::Err(e) => read_error(e.unwrap()).unwrap().code,
            _ => panic!("a read-only file took a write"),
        });
        assert_eq!(code, ErrorCode::ReadOnly);
        let ro_d = cap_of(&dir_call(&svc, BOB_RO, dm::SUB, "d")).unwrap();
        assert_eq!(void_of(&dir_call(&svc, ro_d, dm::MKDIR, "x")), Err(ErrorCode::ReadOnly));
        assert_eq!(read(&svc, f), Ok(b"x".to_vec()), "nothing changed");
        assert_eq!(names(&svc, ALICE), ["d", "f"]);
    }

    #[test]
    fn a_subtree_cannot_be_left() {
        let svc = service(7);
        dir_call(&svc, ALICE, dm::MKDIR, "jail");
        dir_call(&svc, ALICE, dm::MKDIR, "secret");
        let jail = cap_of(&dir_call(&svc, ALICE, dm::SUB, "jail")).unwrap();
        for bad in ["..", ".", "", "../secret", "/secret", "a/../../secret", "secret"] {
            assert!(cap_of(&dir_call(&svc, jail, dm::SUB, bad)).is_err(), "sub({bad:?}) escaped");
            assert!(cap_of(&dir_call(&svc, jail, dm::OPEN, bad)).is_err(), "open({bad:?}) escaped");
            assert!(void_of(&dir_call(&svc, jail, dm::REMOVE, bad)).is_err(), "remove({bad:?}) escaped");
        }
        assert_eq!(names(&svc, jail), Vec::<String>::new());
        // A rename may not name a path out either.
        let create = cap_of(&dir_call(&svc, jail, dm::CREATE, "f")).unwrap();
        assert_ne!(create, 0);
        for to in ["../f", "/f", ".."] {
            let words = params::<rename_params::Owned>(|mut b| {
                b.set_from("f");
                b.set_to(to);
                b.init_target().set_same_directory(());
            });
            let mut r = TestResponder::empty();
            svc.answer(jail, &call(interfaces::DIRECTORY, dm::RENAME, &words), &mut r).unwrap();
            assert!(void_of(&r).is_err(), "rename to {to:?} escaped");
        }
        assert_eq!(names(&svc, ALICE), ["jail", "secret"]);
        assert_eq!(names(&svc, jail), ["f"]);
    }

    fn rename_into(svc: &FsService<Fs>, badge: u64, target: u64) -> Result<(), ErrorCode> {
        let words = params::<rename_params::Owned>(|mut b| {
            b.set_from("f");
            b.set_to("g");
            b.init_target().set_directory(0);
        });
        let mut r = TestResponder::empty();
        r.transferred.push(target);
        svc.answer(badge, &call(interfaces::DIRECTORY, dm::RENAME, &words), &mut r).unwrap();
        void_of(&r)
    }

    #[test]
    fn rename_targets_must_be_writable_directories_of_this_instance() {
        let svc = service(7);
        dir_call(&svc, ALICE, dm::MKDIR, "d");
        let d = cap_of(&dir_call(&svc, ALICE, dm::SUB, "d")).unwrap();
        let f = cap_of(&dir_call(&svc, ALICE, dm::CREATE, "f")).unwrap();
        let ro_d = cap_of(&dir_call(&svc, BOB_RO, dm::SUB, "d")).unwrap();
        assert_eq!(rename_into(&svc, ALICE, ro_d), Err(ErrorCode::PermissionDenied));
        assert_eq!(rename_into(&svc, ALICE, f), Err(ErrorCode::PermissionDenied), "a file is no target");
        assert_eq!(rename_into(&svc, ALICE, 0), Err(ErrorCode::PermissionDenied), "badge 0: not one of ours");
        let other = service(8);
        other.answer(ALICE, &call(interfaces::DIRECTORY, dm::MKDIR, &params::<directory::mkdir_params::Owned>(|mut b| b.set_name("d"))), &mut TestResponder::empty()).unwrap();
        let foreign = cap_of(&dir_call(&other, ALICE, dm::SUB, "d")).unwrap();
        assert_eq!(rename_into(&svc, ALICE, foreign), Err(ErrorCode::PermissionDenied), "another instance's directory");
        assert_eq!(names(&svc, ALICE), ["d", "f"]);
        assert_eq!(rename_into(&svc, ALICE, d), Ok(()));
        assert_eq!(names(&svc, d), ["g"]);
    }

    #[test]
    fn capabilities_of_an_earlier_instance_are_stale_and_closed_files_closed() {
        let old = service(1);
        dir_call(&old, ALICE, dm::MKDIR, "d");
        let d = cap_of(&dir_call(&old, ALICE, dm::SUB, "d")).unwrap();
        let f = cap_of(&dir_call(&old, ALICE, dm::CREATE, "f")).unwrap();
        let new = service(2);
        assert_eq!(cap_of(&dir_call(&new, d, dm::SUB, "x")), Err(ErrorCode::StaleHandle));
        assert_eq!(read(&new, f), Err(ErrorCode::StaleHandle));
        // Root sessions carry over: their badges are the manifest's.
        assert_eq!(void_of(&dir_call(&new, ALICE, dm::MKDIR, "e")), Ok(()));
        // close forgets the object; its badge then answers `closed`.
        let mut r = TestResponder::empty();
        old.answer(f, &call(interfaces::FILE, fm::CLOSE, &[]), &mut r).unwrap();
        assert_eq!(void_of(&r), Ok(()));
        assert_eq!(read(&old, f), Err(ErrorCode::Closed));
        // Opening again gives a new object.
        let f2 = cap_of(&dir_call(&old, ALICE, dm::OPEN, "f")).unwrap();
        assert_ne!(f2, f);
        assert_eq!(read(&old, f2), Ok(Vec::new()));
    }

    #[test]
    fn the_wrong_interface_for_an_object_is_refused() {
        let svc = service(7);
        let f = cap_of(&dir_call(&svc, ALICE, dm::CREATE, "f")).unwrap();
        let words = params::<directory::open_params::Owned>(|mut b| b.set_name("x"));
        let mut r = TestResponder::empty();
        assert_eq!(svc.answer(f, &call(interfaces::DIRECTORY, dm::OPEN, &words), &mut r), Err(SysError::UnknownInterface));
        assert_eq!(svc.answer(ALICE, &call(interfaces::FILE, fm::READ, &words), &mut r), Err(SysError::UnknownInterface));
        assert_eq!(svc.answer(ALICE, &call(interfaces::STORE, 0, &words), &mut r), Err(SysError::UnknownInterface));
    }

    #[test]
    fn a_session_holds_a_bounded_number_of_objects() {
        let svc = service(7).with_object_limit(20);
        let mut handed = 0;
        let mut refused = None;
        for i in 0..25 {
            match cap_of(&dir_call(&svc, ALICE, dm::CREATE, &format!("f{i}"))) {
                Ok(_) => handed += 1,
                Err(e) => {
                    refused = Some(e);
                    break;
                }
            }
        }
        assert_eq!((handed, refused), (20, Some(ErrorCode::TooLarge)));
        // Closing one makes room for one.
        let f0 = cap_of(&dir_call(&svc, ALICE, dm::OPEN, "f0")).unwrap();
        svc.answer(f0, &call(interfaces::FILE, fm::CLOSE, &[]), &mut TestResponder::empty()).unwrap();
        assert_eq!(names(&svc, ALICE).len(), 20, "the refused create made no file");
        assert!(cap_of(&dir_call(&svc, ALICE, dm::CREATE, "extra")).is_ok());
        assert_eq!(cap_of(&dir_call(&svc, ALICE, dm::OPEN, "f0")), Err(ErrorCode::TooLarge));
        // Another session is not affected.
        assert!(cap_of(&dir_call(&svc, 0x109, dm::OPEN, "f0")).is_ok());
    }

    #[test]
    fn released_objects_are_forgotten_and_make_room() {
        let svc = service(7).with_object_limit(20);
        // Many more create-and-release cycles than the limit: never full.
        for i in 0..200 {
            let f = cap_of(&dir_call(&svc, ALICE, dm::CREATE, &format!("f{i}"))).unwrap();
            assert!(svc.released(f), "cycle {i}: the file was live");
            assert!(!svc.released(f), "a second release finds nothing");
            assert_eq!(void_of(&dir_call(&svc, ALICE, dm::REMOVE, &format!("f{i}"))), Ok(()));
        }
        assert_eq!(svc.live_objects(), 0);
        // Directories too; a released badge answers `closed`.
        dir_call(&svc, ALICE, dm::MKDIR, "d");
        let d = cap_of(&dir_call(&svc, ALICE, dm::SUB, "d")).unwrap();
        assert_eq!(svc.live_objects(), 1);
        assert!(svc.released(d));
        assert_eq!(cap_of(&dir_call(&svc, d, dm::SUB, "x")), Err(ErrorCode::Closed));
        // Sessions, other instances' badges and 0 are not objects.
        assert!(!svc.released(ALICE));
        assert!(!svc.released(0));
        let other = service(8);
        dir_call(&other, ALICE, dm::MKDIR, "d");
        let foreign = cap_of(&dir_call(&other, ALICE, dm::SUB, "d")).unwrap();
        assert!(!svc.released(foreign));
        assert_eq!(other.live_objects(), 1);
        // A closed file's later release is harmless.
        let f = cap_of(&dir_call(&svc, ALICE, dm::CREATE, "g")).unwrap();
        svc.answer(f, &call(interfaces::FILE, fm::CLOSE, &[]), &mut TestResponder::empty()).unwrap();
        assert!(!svc.released(f));
        assert_eq!(svc.live_objects(), 0);
    }
}
