//! `writable`: a CAPOSWF1 filesystem (or a co-located one's) does what the
//! File and Directory contracts say, and keeps it across a reboot.
//!
//! Phase 1 makes `/w` (removing an old one first) with the files of
//! plan::WRITABLE_FILES, written inline and through bulk buffers (up to
//! 3 MiB, more than one bulk call), and checks reads, stat, truncate down
//! and up, a gap, renames within and across directories, removes, the
//! error codes of impossible requests, sorted listings and sync; it records
//! every file's times in `/wmeta`. Phase 2 (after a reboot) finds the same
//! tree with the same bytes and times, then changes a few things and syncs
//! (the runner compares the final walk with the host's extract).

use crate::bufs::Bufs;
use crate::ops::{check_stat, names, remove_tree, verify, write_stream, Via, INLINE};
use crate::plan::{self, WRITABLE_DIRS, WRITABLE_FILES};
use crate::report::{ctx, describe, Report};
use crate::walk::dir_at;
use crate::Grants;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::{Directory, File};

const MIB: usize = 1 << 20;

/// The expected bytes of WRITABLE_FILES entry `name` at `offset`.
fn expect_fn(name: &'static str, seed: u64, zero_from: u64) -> impl Fn(u64, &mut [u8]) {
    move |offset: u64, buf: &mut [u8]| {
        plan::fill(seed, offset, buf);
        for (i, b) in buf.iter_mut().enumerate() {
            let at = offset + i as u64;
            let stream = at < zero_from || (name == "gap" && (10_000..10_100).contains(&at));
            if !stream {
                *b = 0;
            }
        }
    }
}

fn entry(path: &str) -> (&'static str, u64, u64, u64) {
    *WRITABLE_FILES.iter().find(|e| e.0 == path).expect("a WRITABLE_FILES path")
}

/// Split `a/b/c` into its directory components and its name.
fn split(path: &str) -> (Vec<&str>, &str) {
    let mut parts: Vec<&str> = path.split('/').collect();
    let name = parts.pop().unwrap_or("");
    (parts, name)
}

fn open_path(w: &Directory, path: &str) -> Result<File, String> {
    let (dirs, name) = split(path);
    let d = dir_at(w, &dirs).map_err(|e| format!("{}: {}", path, describe(&e)))?;
    d.as_ref().unwrap_or(w).open(name).map_err(|e| format!("open {}: {}", path, describe(&e)))
}

pub fn run(g: &Grants, phase: u32, bufs: &mut Bufs, r: &mut Report) {
    let Some(root) = g.fs.as_ref() else {
        r.fail("wf-grants", "writable mode needs a filesystem granted as 'fs'");
        return;
    };
    match phase {
        1 => phase1(root, bufs, r),
        2 => phase2(root, bufs, r),
        p => r.fail("wf-phase", &format!("unknown phase {}", p)),
    }
}

/// Create `name` in `dir`, write its WRITABLE_FILES content `via`, read it
/// back `back` and stat it.
fn make_file(dir: &Directory, label: &str, path: &'static str, via: Via, back: Via, bufs: &mut Bufs, r: &mut Report) -> Option<File> {
    let (name, size, seed, zero_from) = entry(path);
    let (_, leaf) = split(name);
    let f = match dir.create(leaf) {
        Ok(f) => f,
        Err(e) => {
            r.fail(&format!("wf-create-{}", label), &describe(&e));
            return None;
        }
    };
    let wrote = write_stream(&f, 0, zero_from.min(size), seed, via, bufs.data);
    let n = format!("wf-write-{}", label);
    if !r.check(&n, wrote.map(|_| format!("{} bytes {:?}", size, via))) {
        return Some(f);
    }
    let expect = expect_fn(name, seed, zero_from);
    r.check(&format!("wf-read-{}", label), verify(&f, size, back, bufs.read, bufs.data, &expect).map(|sha| format!("{} bytes read back {:?}, sha256 {}", size, back, &sha[..16])));
    r.check(&format!("wf-stat-{}", label), ctx("stat", f.stat()).and_then(|s| check_stat(&s, size)));
    Some(f)
}

fn phase1(root: &Directory, bufs: &mut Bufs, r: &mut Report) {
    if root.sub("w").is_ok() {
        r.check("wf-clean-start", remove_tree(root, "w", 0).map(|_| "removed /w left by an earlier run".to_string()));
    }
    let _ = root.remove("wmeta");
    if !r.check("wf-mkdir", ctx("mkdir w", root.mkdir("w")).map(|_| String::new())) {
        return;
    }
    let w = match ctx("sub w", root.sub("w")) {
        Ok(w) => w,
        Err(e) => return r.fail("wf-sub", &e),
    };
    r.check("wf-mkdir-nested", ctx("mkdir a", w.mkdir("a")).and_then(|_| ctx("mkdir b", w.mkdir("b"))).map(|_| String::from("/w/a /w/b")));
    let (a, b) = match (w.sub("a"), w.sub("b")) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return r.fail("wf-sub", "cannot open /w/a and /w/b"),
    };

    // Plain files: inline ones read back through bulk reads and the other
    // way round, so each path is checked against the other.
    let plain: &[(&'static str, Via, Via)] = &[
        ("empty", Via::Inline, Via::Inline),
        ("one", Via::Inline, Via::Bulk(128 * 1024)),
        ("odd", Via::Inline, Via::Bulk(128 * 1024)),
        ("block", Via::Bulk(MIB), Via::Inline),
        ("inline-4097", Via::Inline, Via::Bulk(128 * 1024)),
        ("inline-64k", Via::Inline, Via::Bulk(MIB)),
        ("inline-200k", Via::Inline, Via::Bulk(128 * 1024)),
        ("bulk-200k", Via::Bulk(MIB), Via::Inline),
        ("bulk-1m-plus", Via::Bulk(MIB), Via::Bulk(MIB)),
        ("bulk-3m", Via::Bulk(MIB), Via::Bulk(128 * 1024)),
    ];
    for (name, via, back) in plain {
        make_file(&w, name, name, *via, *back, bufs, r);
    }

    // Truncate down, then up: the regrown part reads as zeros.
    if let Ok(f) = ctx("create trunc", w.create("trunc")) {
        let (_, _, seed, _) = entry("trunc");
        let res = write_stream(&f, 0, 200_000, seed, Via::Bulk(MIB), bufs.data)
            .and_then(|_| ctx("truncate 1000", f.truncate(1000)))
            .and_then(|_| ctx("stat", f.stat()))
            .and_then(|s| if s.size == 1000 { Ok(()) } else { Err(format!("size {} after truncate to 1000", s.size)) })
            .and_then(|_| verify(&f, 1000, Via::Inline, bufs.read, bufs.data, &|o, b| plan::fill(seed, o, b)));
        r.check("wf-truncate-down", res.map(|_| String::from("200000 -> 1000 bytes, the first 1000 intact")));
        let res = ctx("truncate 5000", f.truncate(5000)).and_then(|_| verify(&f, 5000, Via::Bulk(128 * 1024), bufs.read, bufs.data, &expect_fn("trunc", seed, 1000)));
        r.check("wf-truncate-up-zero-fill", res.map(|_| String::from("1000 -> 5000 bytes, 1000..5000 read as zeros")));
        r.check("wf-stat-trunc", ctx("stat", f.stat()).and_then(|s| check_stat(&s, 5000)));
    } else {
        r.fail("wf-truncate-down", "cannot create /w/trunc");
    }

    // A write past the end leaves a zero-filled gap.
    if let Ok(f) = ctx("create gap", w.create("gap")) {
        let (_, size, seed, _) = entry("gap");
        let res = write_stream(&f, 0, 3000, seed, Via::Inline, bufs.data)
            .and_then(|_| write_stream(&f, 10_000, 100, seed, Via::Inline, bufs.data))
            .and_then(|_| verify(&f, size, Via::Inline, bufs.read, bufs.data, &expect_fn("gap", seed, 3000)));
        r.check("wf-write-gap-zero-fill", res.map(|_| String::from("3000..10000 read as zeros")));
        r.check("wf-read-past-end", match f.read(size + 100, 10) {
            Ok(v) if v.is_empty() => Ok(String::from("empty")),
            Ok(v) => Err(format!("{} bytes", v.len())),
            Err(e) => Err(describe(&e)),
        });
        let mut small = [0u8; 16];
        r.check("wf-bulk-read-at-end", match f.read_bulk(size, &mut small) {
            Ok(0) => Ok(String::from("0 bytes")),
            Ok(n) => Err(format!("{} bytes", n)),
            Err(e) => Err(describe(&e)),
        });
    }

    // Modified moves forward on a write; created stays.
    if let Ok(f) = ctx("open one", w.open("one")) {
        let res = ctx("stat", f.stat()).and_then(|s0| {
            let (_, _, seed, _) = entry("one");
            write_stream(&f, 0, 1, seed, Via::Inline, bufs.data)?;
            let s1 = ctx("stat", f.stat())?;
            if s1.created != s0.created {
                return Err(format!("created changed {:?} -> {:?}", s0.created, s1.created));
            }
            if s1.modified.unix_nanos < s0.modified.unix_nanos {
                return Err(format!("modified went back {} -> {}", s0.modified.unix_nanos, s1.modified.unix_nanos));
            }
            Ok(format!("modified {} -> {}", s0.modified.unix_nanos, s1.modified.unix_nanos))
        });
        r.check("wf-modified-advances", res);
    }

    // Rename within a directory.
    if make_file(&a, "orig", "a/renamed", Via::Inline, Via::Inline, bufs, r).is_some() {
        // make_file created it as "renamed"; rename it away and back so the
        // rename is what leaves it there.
        let res = ctx("rename renamed -> orig", a.rename("renamed", "orig"))
            .and_then(|_| ctx("rename orig -> renamed", a.rename("orig", "renamed")))
            .and_then(|_| names(&a))
            .and_then(|n| if n == ["renamed"] { Ok(()) } else { Err(format!("/w/a lists {:?}", n)) })
            .and_then(|_| open_path(&w, "a/renamed"))
            .and_then(|f| {
                let (name, size, seed, z) = entry("a/renamed");
                verify(&f, size, Via::Bulk(128 * 1024), bufs.read, bufs.data, &expect_fn(name, seed, z))
            });
        r.check("wf-rename-within", res.map(|_| String::from("/w/a/orig -> /w/a/renamed, content intact")));
    }
    let _ = a.create("other");
    r.refused("wf-rename-onto-existing", a.rename("other", "renamed"), &[ErrorCode::AlreadyExists]);
    r.refused("wf-rename-missing", a.rename("no-such-entry", "x"), &[ErrorCode::NotFound]);
    r.check("wf-remove-file", ctx("remove other", a.remove("other")).and_then(|_| names(&a)).and_then(|n| if n == ["renamed"] { Ok(String::from("/w/a/other gone")) } else { Err(format!("/w/a lists {:?}", n)) }));
    r.refused("wf-open-removed", a.open("other").map(|f| f.into_handle()), &[ErrorCode::NotFound]);

    // Rename across directories: the target Directory travels in the call.
    if let Ok(f) = ctx("create tomove", a.create("tomove")) {
        let (name, size, seed, z) = entry("b/moved");
        let res = write_stream(&f, 0, size, seed, Via::Bulk(MIB), bufs.data)
            .and_then(|_| ctx("rename_into", a.rename_into("tomove", &b, "moved")))
            .and_then(|_| names(&a))
            .and_then(|n| if n.iter().any(|x| x == "tomove") { Err(format!("/w/a still lists tomove: {:?}", n)) } else { Ok(()) })
            .and_then(|_| open_path(&w, "b/moved"))
            .and_then(|g| verify(&g, size, Via::Inline, bufs.read, bufs.data, &expect_fn(name, seed, z)))
            .and_then(|_| verify(&f, size, Via::Inline, bufs.read, bufs.data, &expect_fn(name, seed, z)).map_err(|e| format!("the File opened before the move: {}", e)));
        r.check("wf-rename-across", res.map(|_| String::from("/w/a/tomove -> /w/b/moved; the old File still reads it")));
    }

    // A directory with a file in it, moved across.
    let res = ctx("mkdir a/sub", a.mkdir("sub")).and_then(|_| ctx("sub a/sub", a.sub("sub"))).and_then(|s| {
        let (name, size, seed, z) = entry("b/sub/deep");
        let f = ctx("create deep", s.create("deep"))?;
        write_stream(&f, 0, size, seed, Via::Inline, bufs.data)?;
        ctx("rename_into sub", a.rename_into("sub", &b, "sub"))?;
        let n = names(&s).map_err(|e| format!("the moved directory's old capability: {}", e))?;
        if n != ["deep"] {
            return Err(format!("the moved directory lists {:?}", n));
        }
        let f = open_path(&w, "b/sub/deep")?;
        verify(&f, size, Via::Inline, bufs.read, bufs.data, &expect_fn(name, seed, z))?;
        Ok(String::from("/w/a/sub -> /w/b/sub with its file; the old Directory still lists it"))
    });
    r.check("wf-rename-dir-across", res);

    r.check("wf-remove-empty-dir", ctx("mkdir", a.mkdir("emptydir")).and_then(|_| ctx("remove", a.remove("emptydir"))).map(|_| String::new()));
    r.refused("wf-remove-non-empty-dir", b.remove("sub"), &[ErrorCode::NotEmpty]);
    r.refused("wf-open-directory", w.open("a").map(|f| f.into_handle()), &[ErrorCode::IsADirectory]);
    r.refused("wf-sub-file", w.sub("one").map(|d| d.into_handle()), &[ErrorCode::NotADirectory]);
    r.refused("wf-open-missing", w.open("nope").map(|f| f.into_handle()), &[ErrorCode::NotFound]);
    r.refused("wf-sub-missing", w.sub("nope").map(|d| d.into_handle()), &[ErrorCode::NotFound]);
    r.refused("wf-remove-missing", w.remove("nope"), &[ErrorCode::NotFound]);
    r.refused("wf-create-existing", w.create("one").map(|f| f.into_handle()), &[ErrorCode::AlreadyExists]);
    r.refused("wf-mkdir-existing", w.mkdir("a"), &[ErrorCode::AlreadyExists]);

    check_listings(&w, r);

    // Sync through any File, then record every file's times.
    let res = ctx("open one", w.open("one")).and_then(|f| ctx("sync", f.sync()));
    r.check("wf-sync", res.map(|_| String::new()));
    let mut meta = String::new();
    for (path, ..) in WRITABLE_FILES {
        match open_path(&w, path).and_then(|f| ctx("stat", f.stat())) {
            Ok(s) => meta.push_str(&format!("{} {} {}\n", path, s.created.unix_nanos, s.modified.unix_nanos)),
            Err(e) => r.fail("wf-meta", &e),
        }
    }
    let res = ctx("create wmeta", root.create("wmeta")).and_then(|f| {
        ctx("write", f.write(0, meta.as_bytes()))?;
        ctx("sync", f.sync())
    });
    r.check("wf-meta", res.map(|_| format!("/wmeta records the times of {} files", WRITABLE_FILES.len())));
}

/// /w and its subdirectories list exactly the expected names, sorted.
fn check_listings(w: &Directory, r: &mut Report) {
    let mut dirs: Vec<(&str, Vec<String>)> = Vec::new();
    let want_for = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> = Vec::new();
        for (p, ..) in WRITABLE_FILES {
            let (parts, name) = split(p);
            if parts.join("/") == dir {
                v.push(name.to_string());
            }
        }
        for d in WRITABLE_DIRS {
            let (parts, name) = split(d);
            if parts.join("/") == dir {
                v.push(name.to_string());
            }
        }
        v.sort_by(|x, y| x.as_bytes().cmp(y.as_bytes()));
        v
    };
    dirs.push(("", want_for("")));
    for d in WRITABLE_DIRS {
        dirs.push((d, want_for(d)));
    }
    let mut ok = true;
    for (d, want) in &dirs {
        let parts: Vec<&str> = if d.is_empty() { Vec::new() } else { d.split('/').collect() };
        let got = dir_at(w, &parts).map_err(|e| describe(&e)).and_then(|x| names(x.as_ref().unwrap_or(w)));
        match got {
            Ok(g) if &g == want => {}
            Ok(g) => {
                ok = false;
                r.fail("wf-list-sorted", &format!("/w/{} lists {:?}, want {:?}", d, g, want));
            }
            Err(e) => {
                ok = false;
                r.fail("wf-list-sorted", &format!("/w/{}: {}", d, e));
            }
        }
    }
    if ok {
        r.pass("wf-list-sorted", &format!("{} directories list exactly the expected names in byte order", dirs.len()));
    }
}

fn phase2(root: &Directory, bufs: &mut Bufs, r: &mut Report) {
    let w = match ctx("sub w", root.sub("w")) {
        Ok(w) => w,
        Err(e) => return r.fail("wf-persisted-tree", &format!("/w: {}", e)),
    };
    check_listings(&w, r);
    // The times phase 1 recorded.
    let meta: Vec<(String, i64, i64)> = match ctx("open wmeta", root.open("wmeta")).and_then(|f| ctx("read wmeta", f.read(0, INLINE as u32))) {
        Ok(bytes) => String::from_utf8_lossy(&bytes)
            .lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                Some((it.next()?.to_string(), it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
            .collect(),
        Err(e) => {
            r.fail("wf-meta-persisted", &e);
            Vec::new()
        }
    };
    for (path, size, seed, zero_from) in WRITABLE_FILES {
        let n = format!("wf-persisted-{}", path.replace('/', "-"));
        let f = match open_path(&w, path) {
            Ok(f) => f,
            Err(e) => {
                r.fail(&n, &e);
                continue;
            }
        };
        r.check(&n, verify(&f, *size, Via::Bulk(MIB), bufs.read, bufs.data, &expect_fn(path, *seed, *zero_from)).map(|sha| format!("{} bytes, sha256 {}", size, &sha[..16])));
        let t = format!("wf-times-persisted-{}", path.replace('/', "-"));
        let res = ctx("stat", f.stat()).and_then(|s| {
            check_stat(&s, *size)?;
            match meta.iter().find(|(p, ..)| p == path) {
                Some((_, c, m)) if *c == s.created.unix_nanos && *m == s.modified.unix_nanos => Ok(format!("created {} modified {} as recorded", c, m)),
                Some((_, c, m)) => Err(format!("created {} modified {}, phase 1 recorded {} {}", s.created.unix_nanos, s.modified.unix_nanos, c, m)),
                None => Err(String::from("not in /wmeta")),
            }
        });
        r.check(&t, res);
    }
    // Changes after the reboot, synced: the runner's final comparison sees them.
    let res = ctx("create phase2", w.create("phase2")).and_then(|f| {
        write_stream(&f, 0, 100_000, 99, Via::Bulk(MIB), bufs.data)?;
        verify(&f, 100_000, Via::Inline, bufs.read, bufs.data, &|o, b| plan::fill(99, o, b))
    });
    r.check("wf-phase2-write", res.map(|_| String::from("/w/phase2 100000 bytes")));
    let recorded = meta.iter().find(|(p, ..)| p == "bulk-3m").map(|m| m.2);
    let res = ctx("open bulk-3m", w.open("bulk-3m")).and_then(|f| {
        ctx("truncate", f.truncate(MIB as u64))?;
        let s = ctx("stat", f.stat())?;
        check_stat(&s, MIB as u64)?;
        let (name, _, seed, z) = entry("bulk-3m");
        verify(&f, MIB as u64, Via::Bulk(MIB), bufs.read, bufs.data, &expect_fn(name, seed, z))?;
        match recorded {
            Some(m) if s.modified.unix_nanos > m => Ok(format!("modified {} after phase 1's {}", s.modified.unix_nanos, m)),
            Some(m) => Err(format!("modified {} is not after phase 1's {} (the wall clock across a reboot)", s.modified.unix_nanos, m)),
            None => Err(String::from("no recorded time")),
        }
    });
    r.check("wf-phase2-truncate-modified-after-reboot", res);
    r.check("wf-phase2-remove", ctx("remove empty", w.remove("empty")).map(|_| String::new()));
    let res = ctx("open one", w.open("one")).and_then(|f| ctx("sync", f.sync()));
    r.check("wf-phase2-sync", res.map(|_| String::new()));
}
