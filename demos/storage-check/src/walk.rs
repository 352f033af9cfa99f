//! The walk: every directory, file and store key the process holds, one
//! line each, between `walk begin LABEL` and `walk end LABEL dirs=D
//! files=F keys=K`:
//!
//! ```text
//! dir /a/b
//! file /a/b/c size=N sha256=HEX
//! key HEXKEY size=N sha256=HEX
//! ```
//!
//! Names are escaped (report::escape_name). Files are read with bulk reads
//! of 128 KiB and store keys listed in pages. Along the way the walk
//! checks what it can check alone: listings sorted by name bytes, a file's
//! bytes read equal to its listed and stat'ed size, every listed key
//! answering `get`.

use crate::report::{describe, escape_name, hex, join, Report};
use crate::Grants;
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use capos_abi::capos_capnp::NodeKind;
use capos_rt::{println, Directory, File, Store};
use sha2::{Digest, Sha256};

pub const READ_CHUNK: usize = 128 * 1024;
/// Keys per `Store.list` page during a walk (several pages on any real store).
pub const KEY_PAGE: u32 = 100;

pub struct FileSeen {
    /// Escaped path.
    pub path: String,
    /// Path components as they are (unescaped), for reopening.
    pub parts: Vec<String>,
    pub size: u64,
    pub sha256: String,
}

/// What a walk saw: counts, and the first of each kind for the checks
/// that need an existing node (the heap is small: not every line is kept).
#[derive(Default)]
pub struct Walked {
    pub dirs: u64,
    pub files: u64,
    pub keys: u64,
    /// The first directory below the root: (escaped path, components).
    pub first_dir: Option<(String, Vec<String>)>,
    pub first_file: Option<FileSeen>,
    /// (key, value size, sha256 hex).
    pub first_key: Option<(Vec<u8>, u64, String)>,
    pub errors: u32,
}

/// Read a whole file with bulk reads; (bytes read, sha256 hex).
pub fn hash_file(f: &File, buf: &mut [u8]) -> Result<(u64, String), String> {
    let mut h = Sha256::new();
    let mut at = 0u64;
    loop {
        let n = f.read_bulk(at, buf).map_err(|e| format!("read at {}: {}", at, describe(&e)))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        at += n as u64;
    }
    Ok((at, hex(&h.finalize())))
}

pub fn walk(label: &str, fs: Option<&Directory>, store: Option<&Store>, big: &mut [u8], r: &mut Report) -> Walked {
    let mut w = Walked::default();
    println!("walk begin {}", label);
    let buf = &mut big[..READ_CHUNK];
    let fail = |w: &mut Walked, what: String| {
        w.errors += 1;
        println!("walk error {}: {}", label, what);
    };
    if let Some(root) = fs {
        // Depth first; a directory's lines come before its children's.
        // The root capability is borrowed, the others are owned here.
        let mut stack: Vec<(String, Vec<String>, Option<Directory>)> = vec![(String::from("/"), Vec::new(), None)];
        while let Some((path, parts, owned)) = stack.pop() {
            let dir = owned.as_ref().unwrap_or(root);
            println!("dir {}", path);
            w.dirs += 1;
            if w.first_dir.is_none() && !parts.is_empty() {
                w.first_dir = Some((path.clone(), parts.clone()));
            }
            let entries = match dir.list() {
                Ok(e) => e,
                Err(e) => {
                    fail(&mut w, format!("list {}: {}", path, describe(&e)));
                    continue;
                }
            };
            if entries.windows(2).any(|p| p[0].name.as_bytes() >= p[1].name.as_bytes()) {
                fail(&mut w, format!("list {}: entries not strictly sorted by name bytes", path));
            }
            let mut subdirs = Vec::new();
            for e in &entries {
                let child = join(&path, &escape_name(&e.name));
                let mut child_parts = parts.clone();
                child_parts.push(e.name.clone());
                match e.kind {
                    NodeKind::Directory => match dir.sub(&e.name) {
                        Ok(d) => subdirs.push((child, child_parts, Some(d))),
                        Err(err) => fail(&mut w, format!("sub {}: {}", child, describe(&err))),
                    },
                    NodeKind::File => {
                        let f = match dir.open(&e.name) {
                            Ok(f) => f,
                            Err(err) => {
                                fail(&mut w, format!("open {}: {}", child, describe(&err)));
                                continue;
                            }
                        };
                        match hash_file(&f, buf) {
                            Ok((size, sha)) => {
                                println!("file {} size={} sha256={}", child, size, sha);
                                if size != e.size {
                                    fail(&mut w, format!("{}: read {} bytes but the listing says {}", child, size, e.size));
                                }
                                match f.stat() {
                                    Ok(st) if st.size == size && st.kind == NodeKind::File => {
                                        // FAT keeps real directory-entry times: the runner
                                        // compares them with the host's view (mtools).
                                        if st.modified.provenance == capos_abi::capos_capnp::TimeProvenance::FatDirectoryEntry {
                                            println!("time {} modified={}", child, st.modified.unix_nanos.div_euclid(1_000_000_000));
                                        }
                                    }
                                    Ok(st) => fail(&mut w, format!("{}: stat says {} bytes, kind {:?}; read {}", child, st.size, st.kind, size)),
                                    Err(err) => fail(&mut w, format!("stat {}: {}", child, describe(&err))),
                                }
                                w.files += 1;
                                if w.first_file.is_none() {
                                    w.first_file = Some(FileSeen { path: child, parts: child_parts, size, sha256: sha });
                                }
                            }
                            Err(err) => fail(&mut w, format!("{}: {}", child, err)),
                        }
                    }
                }
            }
            // Pushed in reverse so they pop in name order.
            while let Some(s) = subdirs.pop() {
                stack.push(s);
            }
        }
    }
    if let Some(st) = store {
        let mut after: Vec<u8> = Vec::new();
        let mut pages = 0u32;
        loop {
            let (keys, more) = match st.list(&after, KEY_PAGE) {
                Ok(p) => p,
                Err(e) => {
                    fail(&mut w, format!("list after {}: {}", hex(&after), describe(&e)));
                    break;
                }
            };
            pages += 1;
            if keys.len() > KEY_PAGE as usize {
                fail(&mut w, format!("list gave {} keys for a limit of {}", keys.len(), KEY_PAGE));
            }
            let mut prev = after.clone();
            for (i, k) in keys.iter().enumerate() {
                if (i > 0 || !after.is_empty()) && k.as_slice() <= prev.as_slice() {
                    fail(&mut w, format!("list: key {} not after {}", hex(k), hex(&prev)));
                }
                prev = k.clone();
                match st.get_bulk(k, buf) {
                    Ok(n) => {
                        let sha = hex(&Sha256::digest(&buf[..n]));
                        println!("key {} size={} sha256={}", hex(k), n, sha);
                        w.keys += 1;
                        if w.first_key.is_none() {
                            w.first_key = Some((k.clone(), n as u64, sha));
                        }
                    }
                    Err(e) => fail(&mut w, format!("get {}: {}", hex(k), describe(&e))),
                }
            }
            match keys.last() {
                Some(last) if more => after = last.clone(),
                _ => {
                    if more {
                        fail(&mut w, String::from("list: an empty page says more keys remain"));
                    }
                    break;
                }
            }
            if pages > 100_000 {
                fail(&mut w, String::from("list: more than 100000 pages; giving up"));
                break;
            }
        }
    }
    println!("walk end {} dirs={} files={} keys={}", label, w.dirs, w.files, w.keys);
    let name = format!("walk-{}", label);
    if w.errors == 0 {
        r.pass(&name, &format!("{} dirs, {} files, {} keys", w.dirs, w.files, w.keys));
    } else {
        r.fail(&name, &format!("{} errors (the 'walk error' lines above)", w.errors));
    }
    w
}

/// The directory at `parts` below `root`: `None` is the root itself
/// (use `.as_ref().unwrap_or(root)`), `Some` a new capability.
pub fn dir_at<S: AsRef<str>>(root: &Directory, parts: &[S]) -> Result<Option<Directory>, capos_rt::CallError> {
    let mut cur: Option<Directory> = None;
    for p in parts {
        let next = match &cur {
            None => root.sub(p.as_ref())?,
            Some(c) => c.sub(p.as_ref())?,
        };
        cur = Some(next);
    }
    Ok(cur)
}

/// Wait (yielding) until the file at `path` (`/a/b`) exists in `fs`.
pub fn wait_for(g: &Grants, path: &str, r: &mut Report) {
    let Some(root) = g.fs.as_ref().or(g.rofs.as_ref()) else {
        r.fail("wait-for", "no fs to wait in");
        return;
    };
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let Some((name, dirs)) = parts.split_last() else {
        r.fail("wait-for", "empty path");
        return;
    };
    for round in 0..2_000_000u64 {
        let found = match dir_at(root, dirs) {
            Ok(cur) => cur.as_ref().unwrap_or(root).open(name).is_ok(),
            Err(_) => false,
        };
        if found {
            r.pass("wait-for", &format!("{} appeared after {} polls", path, round));
            return;
        }
        capos_rt::syscall::yield_now();
    }
    r.fail("wait-for", &format!("{} never appeared", path));
}
