//! `readonly`: every mutation on a read-only filesystem or store (a
//! read-only format, a read-only mount, or the read-only wrapper over a
//! writable one) is refused with `readOnly`, reads still work, and nothing
//! changed afterwards.

use crate::report::{ctx, describe, sha256_hex, Report};
use crate::walk::{dir_at, hash_file, Walked, READ_CHUNK};
use crate::Grants;
use alloc::format;
use alloc::string::String;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::{println, Directory, Store};

const RO: &[ErrorCode] = &[ErrorCode::ReadOnly];

pub fn run(g: &Grants, before: &Walked, before_ro: Option<&Walked>, buf: &mut [u8], r: &mut Report) {
    if let Some(fs) = &g.fs {
        check_fs("fs", fs, before, buf, r);
    }
    if let Some(st) = &g.store {
        check_store("store", st, before, buf, r);
    }
    if let Some(w) = before_ro {
        if let Some(fs) = &g.rofs {
            check_fs("rofs", fs, w, buf, r);
        }
        if let Some(st) = &g.rostore {
            check_store("rostore", st, w, buf, r);
        }
    }
}

fn names(d: &Directory) -> Result<alloc::vec::Vec<String>, String> {
    ctx("list", d.list()).map(|v| v.into_iter().map(|e| e.name).collect())
}

fn check_fs(label: &str, root: &Directory, walked: &Walked, buf: &mut [u8], r: &mut Report) {
    let n = |what: &str| format!("ro-{}-{}", label, what);
    let root_names = names(root);
    r.refused(&n("mkdir"), root.mkdir("ro-probe-dir"), RO);
    r.refused(&n("create"), root.create("ro-probe-file").map(|f| f.into_handle()), RO);
    match &walked.first_file {
        Some(file) => {
            let (parent, name) = file.parts.split_at(file.parts.len() - 1);
            let name = name[0].as_str();
            match dir_at(root, parent) {
                Ok(d) => {
                    let dir = d.as_ref().unwrap_or(root);
                    r.refused(&n("remove-file"), dir.remove(name), RO);
                    r.refused(&n("rename"), dir.rename(name, "ro-probe-renamed"), RO);
                    r.refused(&n("rename-across"), dir.rename_into(name, root, "ro-probe-moved"), RO);
                    match dir.open(name) {
                        Ok(f) => {
                            r.refused(&n("write-inline"), f.write(0, b"not allowed"), RO);
                            r.refused(&n("write-bulk"), f.write_bulk(0, &[7u8; 5000]), RO);
                            r.refused(&n("write-past-end"), f.write(file.size + 10, b"x"), RO);
                            r.refused(&n("truncate-down"), f.truncate(0), RO);
                            r.refused(&n("truncate-up"), f.truncate(file.size + 4096), RO);
                            r.refused(&n("sync"), f.sync(), RO);
                            let want = file.size.min(16) as usize;
                            r.check(&n("read-inline"), match f.read(0, 16) {
                                Ok(b) if b.len() == want => Ok(format!("{} bytes", b.len())),
                                Ok(b) => Err(format!("{} bytes, want {}", b.len(), want)),
                                Err(e) => Err(describe(&e)),
                            });
                            r.check(&n("stat"), match f.stat() {
                                Ok(s) if s.size == file.size => Ok(format!("size {} kind {:?} modified {:?}", s.size, s.kind, s.modified.provenance)),
                                Ok(s) => Err(format!("size {} but the walk read {}", s.size, file.size)),
                                Err(e) => Err(describe(&e)),
                            });
                            r.check(&n("file-unchanged"), match hash_file(&f, &mut buf[..READ_CHUNK]) {
                                Ok((size, sha)) if size == file.size && sha == file.sha256 => Ok(format!("{} still {} bytes sha256={}", file.path, size, &sha[..16])),
                                Ok((size, sha)) => Err(format!("{} is now {} bytes sha256={} (was {} {})", file.path, size, sha, file.size, file.sha256)),
                                Err(e) => Err(e),
                            });
                        }
                        Err(e) => r.fail(&n("open"), &format!("{}: {}", file.path, describe(&e))),
                    }
                }
                Err(e) => r.fail(&n("sub"), &format!("parent of {}: {}", file.path, describe(&e))),
            }
        }
        None => println!("note: {} holds no file; file mutations were not tried", label),
    }
    // A directory other than the root: removing it (from its parent) is refused.
    if let Some((path, parts)) = &walked.first_dir {
        let (parent, name) = parts.split_at(parts.len() - 1);
        match dir_at(root, parent) {
            Ok(d) => {
                let dir = d.as_ref().unwrap_or(root);
                r.refused(&n("remove-dir"), dir.remove(&name[0]), RO);
                r.refused(&n("mkdir-in-subdir"), dir.sub(&name[0]).and_then(|s| s.mkdir("x")), RO);
            }
            Err(e) => r.fail(&n("sub"), &format!("parent of {}: {}", path, describe(&e))),
        }
    }
    r.check(&n("listing-unchanged"), match (root_names, names(root)) {
        (Ok(a), Ok(b)) if a == b => Ok(format!("{} entries in the root", a.len())),
        (Ok(a), Ok(b)) => Err(format!("root had {:?}, now {:?}", a, b)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    });
}

fn check_store(label: &str, st: &Store, walked: &Walked, buf: &mut [u8], r: &mut Report) {
    let n = |what: &str| format!("ro-{}-{}", label, what);
    r.refused(&n("put-inline"), st.put(b"ro-probe", b"value"), RO);
    r.refused(&n("put-bulk"), st.put_bulk(b"ro-probe", &[1u8; 3000]), RO);
    r.check(&n("has-missing"), match st.has(b"ro-probe") {
        Ok(false) => Ok(String::from("a refused put left no key")),
        Ok(true) => Err(String::from("the refused put's key exists")),
        Err(e) => Err(describe(&e)),
    });
    match &walked.first_key {
        Some((key, size, sha)) => {
            r.refused(&n("delete"), st.delete(key), RO);
            r.refused(&n("overwrite"), st.put(key, b"changed"), RO);
            r.check(&n("has"), match st.has(key) {
                Ok(true) => Ok(String::new()),
                Ok(false) => Err(String::from("an existing key reads as absent")),
                Err(e) => Err(describe(&e)),
            });
            r.check(&n("value-unchanged"), match st.get_bulk(key, &mut buf[..READ_CHUNK]) {
                Ok(len) if len as u64 == *size && sha256_hex(&buf[..len]) == *sha => Ok(format!("{} bytes", len)),
                Ok(len) => Err(format!("now {} bytes sha256={} (was {} {})", len, sha256_hex(&buf[..len]), size, sha)),
                Err(e) => Err(describe(&e)),
            });
            if *size <= 60 * 1024 {
                r.check(&n("get-inline"), match st.get(key) {
                    Ok(v) if v.len() as u64 == *size => Ok(format!("{} bytes", v.len())),
                    Ok(v) => Err(format!("{} bytes, want {}", v.len(), size)),
                    Err(e) => Err(describe(&e)),
                });
            }
        }
        None => {
            r.refused(&n("delete"), st.delete(b"ro-probe"), RO);
            println!("note: {} holds no key; only refusals of new keys were tried", label);
        }
    }
}
