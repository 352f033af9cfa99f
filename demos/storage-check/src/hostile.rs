//! `hostile`: requests no well-behaved client makes are refused with the
//! documented error, and the filesystem, the store and the kernel are
//! still fine afterwards: bad names, offsets near u64::MAX, lengths over
//! the limits, inline and bulk data together, a full filesystem, a File
//! whose node was removed, a closed File, a directory moved into its own
//! subtree, a rename into a read-only wrapper or through a capability that
//! is no Directory. At the end it creates `/h/done` (a second process in
//! the scenario waits for it, then walks the same filesystem).

use crate::bufs::Bufs;
use crate::ops::{remove_tree, verify, write_stream, Via, INLINE};
use crate::plan;
use crate::report::{ctx, describe, Report};
use crate::Grants;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::{CallError, Directory, Store};

const MIB: usize = 1 << 20;
const BAD_NAME: &[ErrorCode] = &[ErrorCode::InvalidArgument];
const LONG_NAME: &[ErrorCode] = &[ErrorCode::InvalidArgument, ErrorCode::TooLarge];
/// A lookup of a malformed name: refused as malformed, or simply absent.
const BAD_LOOKUP: &[ErrorCode] = &[ErrorCode::InvalidArgument, ErrorCode::NotFound];
const LONG_LOOKUP: &[ErrorCode] = &[ErrorCode::InvalidArgument, ErrorCode::TooLarge, ErrorCode::NotFound];
const HUGE_OFFSET: &[ErrorCode] = &[ErrorCode::InvalidArgument, ErrorCode::TooLarge, ErrorCode::NoSpace];

/// The call must fail: with one of `want` from the object, or (when
/// `sys_ok`) refused by the kernel at the syscall level.
fn any_refusal<T: core::fmt::Debug>(r: &mut Report, name: &str, res: Result<T, CallError>, want: &[ErrorCode], sys_ok: bool) {
    match res {
        Err(CallError::Sys(f)) if sys_ok => r.pass(name, &format!("refused by the kernel: {:?}", f)),
        other => {
            r.refused(name, other, want);
        }
    }
}

pub fn run(g: &Grants, bufs: &mut Bufs, r: &mut Report) {
    let Some(root) = g.fs.as_ref() else {
        r.fail("hostile-grants", "hostile mode needs a filesystem granted as 'fs'");
        return;
    };
    if root.sub("h").is_ok() {
        r.check("hostile-clean-start", remove_tree(root, "h", 0).map(|_| String::from("removed /h left by an earlier run")));
    }
    let h = match ctx("mkdir h", root.mkdir("h")).and_then(|_| ctx("sub h", root.sub("h"))) {
        Ok(h) => h,
        Err(e) => return r.fail("hostile-setup", &e),
    };
    names(&h, r);
    offsets(&h, bufs, r);
    lengths(&h, bufs, r);
    if let Some(st) = g.store.as_ref() {
        store(st, bufs, r);
    }
    renames(&h, g, r);
    stale_and_closed(&h, r);
    fill(&h, bufs, r);
    // Still a working filesystem.
    let res = ctx("create final", h.create("final")).and_then(|f| {
        write_stream(&f, 0, 70_000, 7, Via::Bulk(MIB), bufs.data)?;
        verify(&f, 70_000, Via::Inline, bufs.read, bufs.data, &|o, b| plan::fill(7, o, b))?;
        ctx("sync", f.sync())
    });
    r.check("hostile-fs-still-works", res.map(|_| String::from("create, 70000-byte bulk write, inline read back, sync")));
    let res = ctx("create done", h.create("done")).and_then(|f| ctx("sync", f.sync()));
    r.check("hostile-done-marker", res.map(|_| String::from("/h/done for the second client")));
}

fn names(h: &Directory, r: &mut Report) {
    let _ = h.create("victim");
    let long81 = "x".repeat(81);
    let long10k = "y".repeat(10 * 1024);
    let cases: [(&str, &str, bool); 7] = [
        ("slash", "a/b", false),
        ("dot", ".", false),
        ("dotdot", "..", false),
        ("empty", "", false),
        ("nul", "a\0b", false),
        ("long-81", long81.as_str(), true),
        ("long-10k", long10k.as_str(), true),
    ];
    for (label, name, long) in cases {
        let (make, look) = if long { (LONG_NAME, LONG_LOOKUP) } else { (BAD_NAME, BAD_LOOKUP) };
        r.refused(&format!("hostile-name-{}-mkdir", label), h.mkdir(name), make);
        r.refused(&format!("hostile-name-{}-create", label), h.create(name).map(|f| f.into_handle()), make);
        r.refused(&format!("hostile-name-{}-rename-to", label), h.rename("victim", name), make);
        r.refused(&format!("hostile-name-{}-open", label), h.open(name).map(|f| f.into_handle()), look);
        r.refused(&format!("hostile-name-{}-sub", label), h.sub(name).map(|d| d.into_handle()), look);
        r.refused(&format!("hostile-name-{}-remove", label), h.remove(name), look);
    }
    r.check("hostile-names-left-nothing", match crate::ops::names(h) {
        Ok(n) if n == ["victim"] => Ok(String::from("/h lists only 'victim'")),
        Ok(n) => Err(format!("/h lists {:?}", n)),
        Err(e) => Err(e),
    });
    let _ = h.remove("victim");
}

fn offsets(h: &Directory, bufs: &mut Bufs, r: &mut Report) {
    let f = match ctx("create off", h.create("off")).and_then(|f| write_stream(&f, 0, 100, 3, Via::Inline, bufs.data).map(|_| f)) {
        Ok(f) => f,
        Err(e) => return r.fail("hostile-offsets", &e),
    };
    r.refused("hostile-write-at-max-minus-3", f.write(u64::MAX - 3, &[1u8; 8]), HUGE_OFFSET);
    r.refused("hostile-write-at-max", f.write(u64::MAX, b"x"), HUGE_OFFSET);
    r.refused("hostile-bulk-write-near-max", f.write_bulk(u64::MAX - 100, &bufs.data[..4096]), HUGE_OFFSET);
    r.refused("hostile-write-at-1-tib", f.write(1 << 40, b"far away"), HUGE_OFFSET);
    r.refused("hostile-truncate-to-max", f.truncate(u64::MAX), HUGE_OFFSET);
    r.refused("hostile-truncate-to-1-tib", f.truncate(1 << 40), HUGE_OFFSET);
    r.check("hostile-read-near-max", match f.read(u64::MAX - 3, 16) {
        Ok(v) if v.is_empty() => Ok(String::from("empty (past the end)")),
        Ok(v) => Err(format!("{} bytes", v.len())),
        Err(e) if e.code() == Some(ErrorCode::InvalidArgument) => Ok(String::from("refused with InvalidArgument")),
        Err(e) => Err(describe(&e)),
    });
    r.check("hostile-bulk-read-at-max", match f.read_bulk(u64::MAX, &mut bufs.read[..4096]) {
        Ok(0) => Ok(String::from("0 bytes (past the end)")),
        Ok(n) => Err(format!("{} bytes", n)),
        Err(e) if e.code() == Some(ErrorCode::InvalidArgument) => Ok(String::from("refused with InvalidArgument")),
        Err(e) => Err(describe(&e)),
    });
    r.check("hostile-offsets-left-file-alone", ctx("stat", f.stat()).and_then(|s| if s.size == 100 { Ok(String::from("still 100 bytes")) } else { Err(format!("now {} bytes", s.size)) }));
}

fn lengths(h: &Directory, bufs: &mut Bufs, r: &mut Report) {
    let Ok(f) = h.open("off") else {
        return r.fail("hostile-lengths", "cannot open /h/off");
    };
    r.refused("hostile-inline-read-over-chunk", f.read(0, INLINE as u32 + 1), &[ErrorCode::TooLarge]);
    r.refused("hostile-inline-read-u32-max", f.read(0, u32::MAX), &[ErrorCode::TooLarge]);
    any_refusal(r, "hostile-bulk-read-longer-than-buffer", f.read_bulk_len(0, 4096, &mut bufs.read[..16]), &[ErrorCode::InvalidArgument, ErrorCode::TooLarge], true);
    any_refusal(r, "hostile-bulk-read-over-max-bulk", f.read_bulk_len(0, MIB as u32 + 1, &mut bufs.read[..MIB]), &[ErrorCode::InvalidArgument, ErrorCode::TooLarge], true);
    r.refused("hostile-write-inline-and-bulk", f.write_both(0, b"inline", b"and bulk"), &[ErrorCode::InvalidArgument]);
    // A large inline write: accepted whole, or refused as too large.
    plan::fill(5, 0, &mut bufs.data[..100_000]);
    r.check("hostile-inline-write-100k", match f.write(0, &bufs.data[..100_000]) {
        Ok(100_000) => verify(&f, 100_000, Via::Bulk(MIB), bufs.read, bufs.data, &|o, b| plan::fill(5, o, b)).map(|_| String::from("accepted whole and read back")),
        Ok(n) => Err(format!("reported {} of 100000 bytes", n)),
        Err(e) if e.code() == Some(ErrorCode::TooLarge) => Ok(String::from("refused with TooLarge")),
        Err(e) => Err(describe(&e)),
    });
    let _ = f.truncate(100);
}

fn store(st: &Store, bufs: &mut Bufs, r: &mut Report) {
    r.refused("hostile-store-empty-key", st.put(b"", b"v"), &[ErrorCode::InvalidArgument]);
    r.refused("hostile-store-key-256", st.put(&[b'k'; 256], b"v"), &[ErrorCode::TooLarge, ErrorCode::InvalidArgument]);
    r.refused("hostile-store-key-10k-get", st.get(&[b'k'; 10 * 1024]), &[ErrorCode::TooLarge, ErrorCode::InvalidArgument, ErrorCode::NotFound]);
    r.refused("hostile-store-value-64k-plus-1", st.put_bulk(b"h/big", &bufs.data[..64 * 1024 + 1]), &[ErrorCode::TooLarge]);
    r.refused("hostile-store-value-1m", st.put_bulk(b"h/big", &bufs.data[..MIB]), &[ErrorCode::TooLarge]);
    r.check("hostile-store-oversize-left-nothing", match st.has(b"h/big") {
        Ok(false) => Ok(String::new()),
        Ok(true) => Err(String::from("h/big exists")),
        Err(e) => Err(describe(&e)),
    });
    plan::fill(9, 0, &mut bufs.data[..1000]);
    let _ = st.put(b"h/value", &bufs.data[..1000]);
    any_refusal(r, "hostile-store-get-into-small-buffer", st.get_bulk(b"h/value", &mut bufs.read[..16]), &[ErrorCode::TooLarge, ErrorCode::InvalidArgument], true);
    r.check("hostile-store-list-after-long-key", match st.list(&[0x7f; 300], 0) {
        Ok((k, _)) => Ok(format!("answered {} keys", k.len())),
        Err(e) if matches!(e.code(), Some(ErrorCode::InvalidArgument) | Some(ErrorCode::TooLarge)) => Ok(format!("refused with {:?}", e.code())),
        Err(e) => Err(describe(&e)),
    });
    r.check("hostile-store-delete-missing", match st.delete(b"h/missing") {
        Ok(false) => Ok(String::from("false")),
        other => Err(format!("{:?}", other.map_err(|e| describe(&e)))),
    });
    let _ = st.delete(b"h/value");
}

fn renames(h: &Directory, g: &Grants, r: &mut Report) {
    let res = ctx("mkdir p", h.mkdir("p")).and_then(|_| ctx("sub p", h.sub("p"))).and_then(|p| {
        ctx("mkdir q", p.mkdir("q"))?;
        let q = ctx("sub q", p.sub("q"))?;
        Ok((p, q))
    });
    match res {
        Ok((p, q)) => {
            r.refused("hostile-rename-dir-into-own-subdir", h.rename_into("p", &q, "p2"), &[ErrorCode::InvalidArgument]);
            r.refused("hostile-rename-dir-into-itself", h.rename_into("p", &p, "self"), &[ErrorCode::InvalidArgument]);
            r.check("hostile-rename-cycle-left-tree", match (crate::ops::names(h), crate::ops::names(&q)) {
                (Ok(a), Ok(b)) if a.iter().any(|n| n == "p") && !a.iter().any(|n| n == "p2" || n == "self") && b.is_empty() => Ok(String::from("/h/p still there, /h/p/q still empty")),
                (a, b) => Err(format!("/h lists {:?}, /h/p/q lists {:?}", a, b)),
            });
        }
        Err(e) => r.fail("hostile-rename-dir-into-own-subdir", &e),
    }
    let _ = h.create("mover");
    if let Some(ro) = g.rofs.as_ref() {
        r.refused("hostile-rename-into-read-only-wrapper", h.rename_into("mover", ro, "x"), &[ErrorCode::PermissionDenied]);
    }
    // The console capability where a Directory must travel.
    if let Some(console) = capos_rt::console() {
        let fake = Directory::new(console.0);
        let res = h.rename_into("mover", &fake, "x");
        let _ = fake.into_handle();
        r.refused("hostile-rename-target-not-a-directory", res, &[ErrorCode::PermissionDenied]);
    }
    r.check("hostile-mover-still-there", h.open("mover").map(|_| String::new()).map_err(|e| describe(&e)));
    let _ = h.remove("mover");
    let _ = remove_tree(h, "p", 0);
}

fn stale_and_closed(h: &Directory, r: &mut Report) {
    let stale = ctx("create stale", h.create("stale")).and_then(|f| {
        ctx("write", f.write(0, b"soon gone"))?;
        ctx("remove", h.remove("stale"))?;
        Ok(f)
    });
    match stale {
        Ok(f) => {
            r.refused("hostile-stale-read", f.read(0, 10), &[ErrorCode::StaleHandle]);
            r.refused("hostile-stale-write", f.write(0, b"x"), &[ErrorCode::StaleHandle]);
            r.refused("hostile-stale-stat", f.stat(), &[ErrorCode::StaleHandle]);
            r.refused("hostile-stale-truncate", f.truncate(0), &[ErrorCode::StaleHandle]);
            // The freed node is reused by the next create: still stale.
            let _ = h.create("reuse");
            r.refused("hostile-stale-after-reuse", f.read(0, 10), &[ErrorCode::StaleHandle]);
            let _ = h.remove("reuse");
        }
        Err(e) => r.fail("hostile-stale-read", &e),
    }
    let dir = ctx("mkdir sd", h.mkdir("sd")).and_then(|_| ctx("sub sd", h.sub("sd"))).and_then(|d| ctx("remove sd", h.remove("sd")).map(|_| d));
    match dir {
        Ok(d) => {
            r.refused("hostile-stale-dir-list", d.list(), &[ErrorCode::StaleHandle]);
            r.refused("hostile-stale-dir-create", d.create("x").map(|f| f.into_handle()), &[ErrorCode::StaleHandle]);
        }
        Err(e) => r.fail("hostile-stale-dir-list", &e),
    }
    match ctx("create closed", h.create("closed")) {
        Ok(f) => {
            r.check("hostile-close", f.close().map(|_| String::new()).map_err(|e| describe(&e)));
            r.refused("hostile-closed-read", f.read(0, 1), &[ErrorCode::Closed]);
            r.refused("hostile-closed-write", f.write(0, b"x"), &[ErrorCode::Closed]);
            r.refused("hostile-closed-stat", f.stat(), &[ErrorCode::Closed]);
            r.refused("hostile-closed-sync", f.sync(), &[ErrorCode::Closed]);
            r.refused("hostile-closed-close-again", f.close(), &[ErrorCode::Closed]);
            r.check("hostile-closed-file-removable", h.remove("closed").map(|_| String::new()).map_err(|e| describe(&e)));
        }
        Err(e) => r.fail("hostile-close", &e),
    }
}

/// Fill the filesystem to `noSpace` (1 MiB writes, then 64 KiB, then
/// 512 bytes, each size until refused), then free it and write again.
fn fill(h: &Directory, bufs: &mut Bufs, r: &mut Report) {
    const LIMIT: u64 = 512 * MIB as u64;
    let mut written = 0u64;
    let mut files: Vec<String> = Vec::new();
    let mut outcome: Option<Result<String, String>> = None;
    plan::fill(42, 0, bufs.data);
    let mut steps = Vec::new();
    'sizes: for chunk in [MIB, 64 * 1024, 512] {
        // One file per size (a file never outgrows the volume), more
        // files while 1 MiB writes still fit.
        for i in 0..10_000 {
            let name = format!("fill{}-{}", chunk, i);
            let f = match h.create(&name) {
                Ok(f) => f,
                Err(e) => {
                    outcome = Some(match e.code() {
                        Some(ErrorCode::NoSpace) => Ok(format!("create refused with NoSpace after {} bytes", written)),
                        _ => Err(format!("create {}: {}", name, describe(&e))),
                    });
                    break 'sizes;
                }
            };
            files.push(name);
            let mut at = 0u64;
            loop {
                match f.write_bulk(at, &bufs.data[..chunk]) {
                    Ok(n) if n == chunk as u64 => {
                        written += n;
                        at += n;
                    }
                    Ok(n) => {
                        outcome = Some(Err(format!("a {}-byte write reported {}", chunk, n)));
                        break 'sizes;
                    }
                    Err(e) if e.code() == Some(ErrorCode::NoSpace) => {
                        steps.push(format!("{} B writes refused after {} KiB", chunk, written / 1024));
                        if chunk == 512 {
                            outcome = Some(Ok(format!("noSpace: {}", steps.join(", "))));
                            break 'sizes;
                        }
                        continue 'sizes;
                    }
                    Err(e) => {
                        outcome = Some(Err(format!("{}-byte write at {} of {} after {} bytes in all: {}", chunk, at, files.last().map(|s| s.as_str()).unwrap_or(""), written, describe(&e))));
                        break 'sizes;
                    }
                }
                if written >= LIMIT {
                    outcome = Some(Err(format!("wrote {} MiB without noSpace (use a smaller image for this scenario)", LIMIT >> 20)));
                    break 'sizes;
                }
                if chunk == MIB && at >= 2 * MIB as u64 {
                    // Next file: keep each under the volume's size.
                    break;
                }
            }
        }
    }
    let full = outcome.as_ref().is_some_and(|o| o.is_ok());
    r.check("hostile-fill-to-no-space", outcome.unwrap_or_else(|| Err(String::from("10000 files without noSpace"))));
    if full {
        // A small write now fails too, and sync of what fit works.
        if let Some(last) = files.last() {
            if let Ok(f) = h.open(last) {
                r.check("hostile-sync-when-full", f.sync().map(|_| String::new()).map_err(|e| describe(&e)));
            }
        }
    }
    let mut removed = 0;
    for n in &files {
        if h.remove(n).is_ok() {
            removed += 1;
        }
    }
    r.check("hostile-free-space", if removed == files.len() { Ok(format!("removed {} files", removed)) } else { Err(format!("removed {} of {} files", removed, files.len())) });
    let res = ctx("create again", h.create("again")).and_then(|f| {
        write_stream(&f, 0, MIB as u64, 43, Via::Bulk(MIB), bufs.data)?;
        verify(&f, MIB as u64, Via::Bulk(MIB), bufs.read, bufs.data, &|o, b| plan::fill(43, o, b))?;
        ctx("sync", f.sync())
    });
    r.check("hostile-write-after-freeing", res.map(|_| String::from("1 MiB written, read back and synced")));
    let _ = h.remove("again");
}
