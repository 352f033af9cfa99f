//! The adapter's tests, over a test host that keeps its objects the way
//! the kernel does (a capability is an index into a table of objects, a
//! closed or unknown one answers through the refusing object) and over
//! real engines: CAPOSWF1 read-write, CAPOSRO1 (read-only by format).

use super::*;
use crate::refuse::Refusal;
use crate::testing::{call, params, TestResponder};
use alloc::string::String;
use alloc::vec;
use capos_abi::capos_capnp::{data_result, directory, file, rename_params, stat_result, u_int64_result, void_result};
use capos_abi::helpers::{read_data, read_error, read_stat, read_void};
use capos_abi::interfaces::{directory_method as dm, file_method as fm};
use capos_storage::mem_device::MemBlockDevice as MemDevice;
use capos_storage::readonly_fs::{build_image, ReadOnlyFs, SourceNode};
use capos_storage::writable_fs::{format, MountOptions, WritableFs};
use capos_storage::{FixedClock, Timestamp};
use core::cell::{Cell, RefCell};

/// A test host: one filesystem, objects in a table (a capability is the
/// index), a closed object is `None`. `room` objects at most.
struct Host<F: FileSystem> {
    fs: RefCell<F>,
    objects: RefCell<Vec<Option<FsObject>>>,
    room: Cell<usize>,
    /// How many times the filesystem was reached.
    reached: Cell<u32>,
}

impl<F: FileSystem> Host<F> {
    fn new(fs: F) -> Host<F> {
        Host { fs: RefCell::new(fs), objects: RefCell::new(Vec::new()), room: Cell::new(usize::MAX), reached: Cell::new(0) }
    }

    /// The root as a capability, read-only or not.
    fn root(&self, read_only: bool) -> u32 {
        let root = self.fs.borrow().root();
        self.hand_out(FsObject::root(root, read_only)).unwrap()
    }

    fn live(&self) -> usize {
        self.objects.borrow().iter().flatten().count()
    }

    /// Answer a call on `cap` as a server would: resolve, then the adapter.
    fn answer(&self, cap: u32, call: &CallMessage, r: &mut TestResponder<u32>) -> Result<(), SysError> {
        let obj = self.objects.borrow().get(cap as usize).copied().flatten();
        match obj {
            Some(obj) => answer(self, obj, call, r),
            None => Refusal(closed()).answer(&[interfaces::DIRECTORY, interfaces::FILE], call, r),
        }
    }
}

impl<F: FileSystem> FsHost for Host<F> {
    type Cap = u32;
    type Fs = F;
    fn with_fs<T>(&self, op: impl FnOnce(&mut F) -> T) -> T {
        self.reached.set(self.reached.get() + 1);
        op(&mut self.fs.borrow_mut())
    }
    fn hand_out(&self, obj: FsObject) -> Result<u32, CapError> {
        if self.live() >= self.room.get() {
            return Err(CapError::new(ErrorCode::TooLarge, "no room"));
        }
        let mut t = self.objects.borrow_mut();
        t.push(Some(obj));
        Ok(t.len() as u32 - 1)
    }
    fn room(&self) -> Result<(), CapError> {
        if self.live() >= self.room.get() {
            return Err(CapError::new(ErrorCode::TooLarge, "no room"));
        }
        Ok(())
    }
    fn object_of(&self, cap: &u32) -> Result<FsObject, CapError> {
        self.objects.borrow().get(*cap as usize).copied().flatten().ok_or_else(|| CapError::new(ErrorCode::PermissionDenied, "not a live object of this host"))
    }
    fn close(&self, obj: &FsObject) {
        for o in self.objects.borrow_mut().iter_mut() {
            if o.as_ref() == Some(obj) {
                *o = None;
            }
        }
    }
}

type Wf = WritableFs<MemDevice, FixedClock>;

fn writable() -> Host<Wf> {
    let mut dev = MemDevice::new(2048);
    format(&mut dev, None, Timestamp::UNKNOWN).unwrap();
    Host::new(WritableFs::mount(dev, FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: false }).unwrap())
}

fn dir_call<F: FileSystem>(h: &Host<F>, cap: u32, method: u16, name: &str) -> TestResponder<u32> {
    let words = params::<directory::open_params::Owned>(|mut b| b.set_name(name));
    let mut r = TestResponder::empty();
    h.answer(cap, &call(interfaces::DIRECTORY, method, &words), &mut r).unwrap();
    r
}

fn cap_of(r: &TestResponder<u32>) -> Result<u32, ErrorCode> {
    r.cap_result()
}

fn void_of(r: &TestResponder<u32>) -> Result<(), ErrorCode> {
    r.void_result()
}

fn names<F: FileSystem>(h: &Host<F>, cap: u32) -> Vec<String> {
    let mut r = TestResponder::empty();
    h.answer(cap, &call(interfaces::DIRECTORY, dm::LIST, &[]), &mut r).unwrap();
    r.list_names().expect("list")
}

fn write<F: FileSystem>(h: &Host<F>, cap: u32, data: &[u8]) -> Result<u64, ErrorCode> {
    let words = params::<file::write_params::Owned>(|mut b| b.set_data(data));
    let mut r = TestResponder::empty();
    h.answer(cap, &call(interfaces::FILE, fm::WRITE, &words), &mut r).unwrap();
    r.get::<u_int64_result::Owned, _>(|res| match res.which().unwrap() {
        u_int64_result::Ok(n) => Ok(n),
        u_int64_result::Err(e) => Err(read_error(e.unwrap()).unwrap().code),
    })
}

fn file_void<F: FileSystem>(h: &Host<F>, cap: u32, method: u16) -> Result<(), ErrorCode> {
    let words = params::<file::truncate_params::Owned>(|mut b| b.set_size(0));
    let mut r = TestResponder::empty();
    h.answer(cap, &call(interfaces::FILE, method, &words), &mut r).unwrap();
    void_of(&r)
}

fn read<F: FileSystem>(h: &Host<F>, cap: u32) -> Result<Vec<u8>, ErrorCode> {
    let words = params::<file::read_params::Owned>(|mut b| b.set_length(4096));
    let mut r = TestResponder::empty();
    h.answer(cap, &call(interfaces::FILE, fm::READ, &words), &mut r).unwrap();
    r.get::<data_result::Owned, _>(|res| read_data(res).unwrap().map_err(|e| e.code))
}

fn rename_into<F: FileSystem>(h: &Host<F>, cap: u32, target: Option<u32>, from: &str, to: &str) -> Result<(), ErrorCode> {
    let words = params::<rename_params::Owned>(|mut b| {
        b.set_from(from);
        b.set_to(to);
        match target {
            Some(_) => b.init_target().set_directory(0),
            None => b.init_target().set_same_directory(()),
        }
    });
    let mut r = TestResponder::empty();
    r.transferred.extend(target);
    h.answer(cap, &call(interfaces::DIRECTORY, dm::RENAME, &words), &mut r).unwrap();
    void_of(&r)
}

#[test]
fn a_tree_is_written_and_read_back() {
    let h = writable();
    let root = h.root(false);
    assert_eq!(void_of(&dir_call(&h, root, dm::MKDIR, "docs")), Ok(()));
    let docs = cap_of(&dir_call(&h, root, dm::SUB, "docs")).unwrap();
    let f = cap_of(&dir_call(&h, docs, dm::CREATE, "a.txt")).unwrap();
    assert_eq!(write(&h, f, b"hello\n"), Ok(6));
    assert_eq!(read(&h, f), Ok(b"hello\n".to_vec()));
    let again = cap_of(&dir_call(&h, docs, dm::OPEN, "a.txt")).unwrap();
    assert_eq!(read(&h, again), Ok(b"hello\n".to_vec()));
    let mut r = TestResponder::empty();
    h.answer(again, &call(interfaces::FILE, fm::STAT, &[]), &mut r).unwrap();
    let st = r.get::<stat_result::Owned, _>(|res| read_stat(res).unwrap()).unwrap();
    assert_eq!((st.size, st.kind), (6, capos_abi::capos_capnp::NodeKind::File));
    assert_eq!(names(&h, root), ["docs"]);
    assert_eq!(names(&h, docs), ["a.txt"]);
    assert_eq!(file_void(&h, f, fm::SYNC), Ok(()));
    assert_eq!(file_void(&h, f, fm::TRUNCATE), Ok(()));
    assert_eq!(read(&h, again), Ok(Vec::new()));
}

#[test]
fn a_read_only_object_reads_and_refuses_every_mutation_before_the_filesystem() {
    let h = writable();
    let root = h.root(false);
    dir_call(&h, root, dm::MKDIR, "d");
    let f = cap_of(&dir_call(&h, root, dm::CREATE, "f")).unwrap();
    write(&h, f, b"x").unwrap();
    let ro = h.root(true);
    let reached = h.reached.get();
    assert_eq!(void_of(&dir_call(&h, ro, dm::MKDIR, "e")), Err(ErrorCode::ReadOnly));
    assert_eq!(void_of(&dir_call(&h, ro, dm::REMOVE, "f")), Err(ErrorCode::ReadOnly));
    assert_eq!(cap_of(&dir_call(&h, ro, dm::CREATE, "g")), Err(ErrorCode::ReadOnly));
    assert_eq!(rename_into(&h, ro, None, "f", "g"), Err(ErrorCode::ReadOnly));
    assert_eq!(h.reached.get(), reached, "no refused mutation reached the filesystem");
    // What it opens is read-only too, and so is a subdirectory.
    let ro_f = cap_of(&dir_call(&h, ro, dm::OPEN, "f")).unwrap();
    assert_eq!(read(&h, ro_f), Ok(b"x".to_vec()));
    let reached = h.reached.get();
    assert_eq!(write(&h, ro_f, b"y"), Err(ErrorCode::ReadOnly));
    assert_eq!(file_void(&h, ro_f, fm::TRUNCATE), Err(ErrorCode::ReadOnly));
    assert_eq!(file_void(&h, ro_f, fm::SYNC), Err(ErrorCode::ReadOnly));
    assert_eq!(h.reached.get(), reached);
    let ro_d = cap_of(&dir_call(&h, ro, dm::SUB, "d")).unwrap();
    assert_eq!(void_of(&dir_call(&h, ro_d, dm::MKDIR, "x")), Err(ErrorCode::ReadOnly));
    let ro_dd = cap_of(&dir_call(&h, ro, dm::SUB, "d")).unwrap();
    assert_eq!(cap_of(&dir_call(&h, ro_dd, dm::CREATE, "y")), Err(ErrorCode::ReadOnly), "read-only all the way down");
    // Nothing changed.
    assert_eq!(read(&h, f), Ok(b"x".to_vec()));
    assert_eq!(names(&h, root), ["d", "f"]);
    assert_eq!(names(&h, ro_d), Vec::<String>::new());
    // The message says what was refused.
    let mut r = TestResponder::empty();
    h.answer(ro, &call(interfaces::DIRECTORY, dm::MKDIR, &params::<directory::mkdir_params::Owned>(|mut b| b.set_name("z"))), &mut r).unwrap();
    let e = r.get::<void_result::Owned, _>(|res| read_void(res).unwrap()).unwrap_err();
    assert_eq!(e.message, "read-only capability: Directory.mkdir refused");
}

#[test]
fn a_subtree_cannot_be_left() {
    let h = writable();
    let root = h.root(false);
    dir_call(&h, root, dm::MKDIR, "jail");
    dir_call(&h, root, dm::MKDIR, "secret");
    let jail = cap_of(&dir_call(&h, root, dm::SUB, "jail")).unwrap();
    for bad in ["..", ".", "", "../secret", "/secret", "a/../../secret", "secret", "jail/..", "\0", "a\0b"] {
        assert!(cap_of(&dir_call(&h, jail, dm::SUB, bad)).is_err(), "sub({bad:?}) escaped");
        assert!(cap_of(&dir_call(&h, jail, dm::OPEN, bad)).is_err(), "open({bad:?}) escaped");
        assert!(void_of(&dir_call(&h, jail, dm::REMOVE, bad)).is_err(), "remove({bad:?}) escaped");
        if bad != "secret" {
            assert!(cap_of(&dir_call(&h, jail, dm::CREATE, bad)).is_err(), "create({bad:?}) escaped");
            assert!(void_of(&dir_call(&h, jail, dm::MKDIR, bad)).is_err(), "mkdir({bad:?}) escaped");
        }
    }
    assert_eq!(names(&h, jail), Vec::<String>::new());
    cap_of(&dir_call(&h, jail, dm::CREATE, "f")).unwrap();
    for to in ["../f", "/f", "..", "."] {
        assert!(rename_into(&h, jail, None, "f", to).is_err(), "rename to {to:?} escaped");
    }
    for from in ["../secret", "..", "/secret"] {
        assert!(rename_into(&h, jail, None, from, "s").is_err(), "rename from {from:?} escaped");
    }
    assert_eq!(names(&h, root), ["jail", "secret"]);
    assert_eq!(names(&h, jail), ["f"]);
}

#[test]
fn rename_targets_must_be_live_writable_directories_of_this_filesystem() {
    let h = writable();
    let root = h.root(false);
    dir_call(&h, root, dm::MKDIR, "d");
    let d = cap_of(&dir_call(&h, root, dm::SUB, "d")).unwrap();
    let f = cap_of(&dir_call(&h, root, dm::CREATE, "f")).unwrap();
    let ro = h.root(true);
    let ro_d = cap_of(&dir_call(&h, ro, dm::SUB, "d")).unwrap();
    assert_eq!(rename_into(&h, root, Some(ro_d), "f", "g"), Err(ErrorCode::PermissionDenied), "a read-only directory");
    assert_eq!(rename_into(&h, root, Some(f), "f", "g"), Err(ErrorCode::PermissionDenied), "a file is no target");
    assert_eq!(rename_into(&h, root, Some(9999), "f", "g"), Err(ErrorCode::PermissionDenied), "not an object of this host");
    // A closed object is no target either.
    let d2 = cap_of(&dir_call(&h, root, dm::SUB, "d")).unwrap();
    h.close(&h.object_of(&d2).unwrap());
    assert_eq!(rename_into(&h, root, Some(d2), "f", "g"), Err(ErrorCode::PermissionDenied), "a closed directory");
    // No target transferred where the params name one: a call-level error.
    let words = params::<rename_params::Owned>(|mut b| {
        b.set_from("f");
        b.set_to("g");
        b.init_target().set_directory(0);
    });
    let mut r = TestResponder::empty();
    assert!(h.answer(root, &call(interfaces::DIRECTORY, dm::RENAME, &words), &mut r).is_err() || void_of(&r).is_err());
    assert_eq!(names(&h, root), ["d", "f"], "nothing moved");
    let d = cap_of(&dir_call(&h, root, dm::SUB, "d")).unwrap_or(d);
    assert_eq!(rename_into(&h, root, Some(d), "f", "g"), Ok(()));
    assert_eq!(names(&h, d), ["g"]);
    assert_eq!(names(&h, root), ["d"]);
}

#[test]
fn a_closed_file_answers_closed_and_opening_again_works() {
    let h = writable();
    let root = h.root(false);
    let f = cap_of(&dir_call(&h, root, dm::CREATE, "f")).unwrap();
    write(&h, f, b"data").unwrap();
    assert_eq!(file_void(&h, f, fm::CLOSE), Ok(()));
    assert_eq!(read(&h, f), Err(ErrorCode::Closed));
    assert_eq!(write(&h, f, b"more"), Err(ErrorCode::Closed));
    assert_eq!(file_void(&h, f, fm::CLOSE), Err(ErrorCode::Closed), "closing twice");
    let f2 = cap_of(&dir_call(&h, root, dm::OPEN, "f")).unwrap();
    assert_ne!(f2, f);
    assert_eq!(read(&h, f2), Ok(b"data".to_vec()));
    // A stale or unknown capability answers through the refusing object,
    // in every method's shape, and never reaches another object.
    assert_eq!(cap_of(&dir_call(&h, 4242, dm::SUB, "x")), Err(ErrorCode::Closed));
    assert_eq!(void_of(&dir_call(&h, 4242, dm::MKDIR, "x")), Err(ErrorCode::Closed));
    assert_eq!(names(&h, root), ["f"]);
}

#[test]
fn an_object_answers_its_own_interface_only() {
    let h = writable();
    let root = h.root(false);
    let f = cap_of(&dir_call(&h, root, dm::CREATE, "f")).unwrap();
    let words = params::<directory::open_params::Owned>(|mut b| b.set_name("x"));
    let mut r = TestResponder::empty();
    assert_eq!(h.answer(f, &call(interfaces::DIRECTORY, dm::OPEN, &words), &mut r), Err(SysError::UnknownInterface));
    assert_eq!(h.answer(root, &call(interfaces::FILE, fm::READ, &words), &mut r), Err(SysError::UnknownInterface));
    assert_eq!(h.answer(root, &call(interfaces::STORE, 0, &words), &mut r), Err(SysError::UnknownInterface));
    assert_eq!(h.answer(root, &call(interfaces::DIRECTORY, 99, &words), &mut r), Err(SysError::UnknownMethod));
    let ro = h.root(true);
    assert_eq!(h.answer(ro, &call(interfaces::DIRECTORY, 99, &words), &mut r), Err(SysError::UnknownMethod));
}

#[test]
fn a_create_without_room_makes_no_file() {
    let h = writable();
    let root = h.root(false);
    h.room.set(h.live() + 1);
    cap_of(&dir_call(&h, root, dm::CREATE, "a")).unwrap();
    assert_eq!(cap_of(&dir_call(&h, root, dm::CREATE, "b")), Err(ErrorCode::TooLarge));
    assert_eq!(names(&h, root), ["a"], "the refused create made no file");
    assert_eq!(cap_of(&dir_call(&h, root, dm::OPEN, "a")), Err(ErrorCode::TooLarge), "open asks for room too");
}

#[test]
fn a_read_only_format_is_served_the_same_way() {
    // CAPOSRO1: read-only by format. Served writable, its engine refuses
    // mutations with readOnly; served read-only, the wrapper does first.
    let tree = SourceNode::Directory {
        entries: vec![
            (String::from("docs"), SourceNode::Directory { entries: vec![(String::from("hello.txt"), SourceNode::File { data: b"hi\n".to_vec(), mtime: None })], mtime: None }),
            (String::from("top.txt"), SourceNode::File { data: b"top".to_vec(), mtime: None }),
        ],
        mtime: None,
    };
    let image = build_image(&tree, Timestamp::UNKNOWN).unwrap();
    let h = Host::new(ReadOnlyFs::mount(MemDevice::from_bytes(image)).unwrap());
    for read_only in [false, true] {
        let root = h.root(read_only);
        assert_eq!(names(&h, root), ["docs", "top.txt"]);
        let docs = cap_of(&dir_call(&h, root, dm::SUB, "docs")).unwrap();
        let f = cap_of(&dir_call(&h, docs, dm::OPEN, "hello.txt")).unwrap();
        assert_eq!(read(&h, f), Ok(b"hi\n".to_vec()));
        assert_eq!(write(&h, f, b"x"), Err(ErrorCode::ReadOnly));
        assert_eq!(void_of(&dir_call(&h, root, dm::MKDIR, "new")), Err(ErrorCode::ReadOnly));
        assert_eq!(cap_of(&dir_call(&h, root, dm::CREATE, "new")), Err(ErrorCode::ReadOnly));
        assert_eq!(void_of(&dir_call(&h, docs, dm::REMOVE, "hello.txt")), Err(ErrorCode::ReadOnly));
        assert_eq!(rename_into(&h, root, None, "top.txt", "t"), Err(ErrorCode::ReadOnly));
        assert!(cap_of(&dir_call(&h, docs, dm::SUB, "..")).is_err());
    }
}

#[test]
fn a_dyn_filesystem_is_served_too() {
    // The kernel serves `dyn FileSystem + Send` from one object type.
    struct DynHost(RefCell<Box<dyn FileSystem>>, RefCell<Vec<FsObject>>);
    impl FsHost for DynHost {
        type Cap = u32;
        type Fs = dyn FileSystem;
        fn with_fs<T>(&self, op: impl FnOnce(&mut Self::Fs) -> T) -> T {
            op(&mut **self.0.borrow_mut())
        }
        fn hand_out(&self, obj: FsObject) -> Result<u32, CapError> {
            self.1.borrow_mut().push(obj);
            Ok(self.1.borrow().len() as u32 - 1)
        }
        fn object_of(&self, cap: &u32) -> Result<FsObject, CapError> {
            self.1.borrow().get(*cap as usize).copied().ok_or_else(|| CapError::new(ErrorCode::PermissionDenied, "no"))
        }
        fn close(&self, _: &FsObject) {}
    }
    let h = DynHost(RefCell::new(Box::new(writable().fs.into_inner())), RefCell::new(Vec::new()));
    let root = FsObject::root(h.0.borrow().root(), false);
    let mut r = TestResponder::empty();
    answer(&h, root, &call(interfaces::DIRECTORY, dm::CREATE, &params::<directory::open_params::Owned>(|mut b| b.set_name("f"))), &mut r).unwrap();
    let f = cap_of(&r).unwrap();
    assert_eq!(h.1.borrow()[f as usize].kind, Kind::File);
    assert!(!h.1.borrow()[f as usize].read_only);
}
