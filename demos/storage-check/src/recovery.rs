//! `recovery`: a write workload that runs until the machine is killed.
//!
//! Step k (plan::action) replaces, overwrites, deletes or moves
//! `/r/f<k % 8>` with content k (1 byte to 300 KiB, plan::fill), sometimes
//! appends a record to `/r/log`, records k in `/r/step`, syncs, and then
//! prints one `synced k PATH size=N sha256=HEX` (or `synced k PATH
//! absent`) line per path whose new state is now durable. Lines:
//!
//! ```text
//! recovery: resume after step R
//! step k begin
//! step k sync
//! synced k /r/f3 size=1234 sha256=...
//! ```
//!
//! With a store granted as well (`store`: the services' power cuts,
//! `make run-storage-services-recovery`), each step then puts one key,
//! `r/k<k % 8>`, with value k (1 to 4000 bytes, [`store_value`]):
//!
//! ```text
//! storing k KEYHEX size=N sha256=HEX
//! stored k KEYHEX
//! ```
//!
//! `storing` is printed before the step begins (so any line the runner
//! cuts after was preceded by it), `stored` once the put returned. A put
//! is durable when it returns; the runner holds the store to the last
//! `stored` value of each key (or the one being stored at the cut).
//!
//! Each step is written so that a later boot can simply do it again: a
//! cut can leave the step half done only through its namespace
//! operations (create, remove, rename commit at once), never as a file
//! with some of its bytes. On start (after the walk the runner compares)
//! it reads `/r/step` and goes on with the step after it.

use crate::bufs::Bufs;
use crate::ops::{write_stream, Via};
use crate::plan::{self, action, appends_log, content_seed, content_size, log_record_seed, log_record_size, Action};
use crate::report::{ctx, describe, hex, Report};
use crate::Grants;
use alloc::format;
use alloc::string::String;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::{println, Directory, Store};
use sha2::{Digest, Sha256};

fn slot_name(slot: u64) -> String {
    format!("f{}", slot)
}

fn move_name(to: u64) -> String {
    format!("g{}", to)
}

fn exists(d: &Directory, name: &str) -> Result<bool, String> {
    match d.open(name) {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(false),
        Err(e) => Err(format!("open {}: {}", name, describe(&e))),
    }
}

fn remove_if_exists(d: &Directory, name: &str) -> Result<(), String> {
    match d.remove(name) {
        Ok(()) => Ok(()),
        Err(e) if e.code() == Some(ErrorCode::NotFound) => Ok(()),
        Err(e) => Err(format!("remove {}: {}", name, describe(&e))),
    }
}

/// The sha256 of content k (computed the way it is written).
fn content_sha(k: u64, data: &mut [u8]) -> String {
    let size = content_size(k);
    let mut h = Sha256::new();
    let mut at = 0u64;
    while at < size {
        let n = ((size - at) as usize).min(data.len());
        plan::fill(content_seed(k), at, &mut data[..n]);
        h.update(&data[..n]);
        at += n as u64;
    }
    hex(&h.finalize())
}

/// (size, sha256) of `/r/log` after step k: every record of the steps
/// 1..=k that append, in order.
fn log_after(k: u64, data: &mut [u8]) -> (u64, String) {
    let mut h = Sha256::new();
    let mut size = 0;
    for j in 1..=k {
        if appends_log(j) {
            let n = log_record_size(j) as usize;
            plan::fill(log_record_seed(j), 0, &mut data[..n]);
            h.update(&data[..n]);
            size += n as u64;
        }
    }
    (size, hex(&h.finalize()))
}

/// How step k writes its content: alternately inline and in bulk calls of
/// varying size, so a cut lands inside either.
fn via(k: u64) -> Via {
    match k % 3 {
        0 => Via::Inline,
        1 => Via::Bulk(128 * 1024),
        _ => Via::Bulk(1 << 20),
    }
}

fn setup(root: &Directory) -> Result<(), String> {
    if root.sub(plan::ROOT).is_ok() {
        crate::ops::remove_tree(root, plan::ROOT, 0)?;
    }
    ctx("mkdir /r", root.mkdir(plan::ROOT))?;
    let r = ctx("sub /r", root.sub(plan::ROOT))?;
    ctx("mkdir /r/d", r.mkdir("d"))?;
    ctx("create /r/log", r.create("log"))?;
    let step = ctx("create /r/step", r.create("step"))?;
    let mut rec = [0u8; 24];
    let n = plan::step_record(0, &mut rec);
    ctx("write /r/step", step.write(0, &rec[..n]))?;
    ctx("sync", step.sync())
}

fn read_step(r: &Directory) -> Result<Option<u64>, String> {
    let f = match r.open("step") {
        Ok(f) => f,
        Err(e) if e.code() == Some(ErrorCode::NotFound) => return Ok(None),
        Err(e) => return Err(format!("open /r/step: {}", describe(&e))),
    };
    let bytes = ctx("read /r/step", f.read(0, 64))?;
    plan::parse_step(&bytes).map(Some).ok_or_else(|| format!("/r/step holds {:?}", String::from_utf8_lossy(&bytes)))
}

pub fn run(g: &Grants, max_steps: u64, bufs: &mut Bufs, r: &mut Report) {
    let Some(root) = g.fs.as_ref() else {
        r.fail("recovery-grants", "recovery mode needs a filesystem granted as 'fs'");
        return;
    };
    // Where the previous boot left off.
    let last = match root.sub(plan::ROOT).map_err(|e| describe(&e)).and_then(|d| read_step(&d)) {
        Ok(Some(k)) => k,
        Ok(None) | Err(_) => {
            println!("recovery: no /r/step: setting up /r");
            if !r.check("recovery-setup", setup(root).map(|_| String::from("/r, /r/d, /r/log, /r/step = 0"))) {
                return;
            }
            0
        }
    };
    println!("recovery: resume after step {}", last);
    r.pass("recovery-resume", &format!("the last durable step is {}", last));
    let (rdir, ddir) = match (root.sub(plan::ROOT), root.sub(plan::ROOT).and_then(|x| x.sub("d"))) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return r.fail("recovery-open", "cannot open /r and /r/d"),
    };
    for k in last + 1..=last.saturating_add(max_steps) {
        if g.store.is_some() {
            announce_store_step(k, bufs);
        }
        if let Err(e) = step(&rdir, &ddir, k, bufs).and_then(|()| g.store.as_ref().map_or(Ok(()), |s| store_step(s, k, bufs))) {
            r.fail(&format!("recovery-step-{}", k), &e);
            return;
        }
    }
    if max_steps > 0 {
        r.pass("recovery-steps", &format!("steps {}..={} done", last + 1, last + max_steps));
    }
}

/// Step k's key and value in the store.
fn store_value(k: u64, data: &mut [u8]) -> (String, usize) {
    let n = 1 + (k.wrapping_mul(2_654_435_761) % 4000) as usize;
    plan::fill(content_seed(k) ^ 0x5354, 0, &mut data[..n]);
    (format!("r/k{}", k % 8), n)
}

/// Say which value step k will put (`storing`), before the step begins:
/// the runner cuts power a set time after a `step k ...` line, and a line
/// still in QEMU's serial buffer when it is killed never reaches it. Said
/// after the step's sync, as it once was, the announcement of a put that
/// then completed before the cut could be lost, and the runner took the
/// put's durable value for a value that should not be there (a clean-clone
/// run: `r/k5` held step 53's 3,334 bytes, announced nowhere).
fn announce_store_step(k: u64, bufs: &mut Bufs) {
    let (key, n) = store_value(k, bufs.data);
    println!("storing {} {} size={} sha256={}", k, hex(key.as_bytes()), n, crate::report::sha256_hex(&bufs.data[..n]));
}

/// Put step k's key (announced by [`announce_store_step`]); `stored` once
/// the put returned (durable).
fn store_step(store: &Store, k: u64, bufs: &mut Bufs) -> Result<(), String> {
    let (key, n) = store_value(k, bufs.data);
    let value = &bufs.data[..n];
    ctx(&format!("put {}", key), store.put(key.as_bytes(), value))?;
    println!("stored {} {}", k, hex(key.as_bytes()));
    Ok(())
}

fn step(rdir: &Directory, ddir: &Directory, k: u64, bufs: &mut Bufs) -> Result<(), String> {
    println!("step {} begin", k);
    let size = content_size(k);
    let seed = content_seed(k);
    // (path, Some(size, sha) | None = absent) made durable by this step.
    let mut durable: alloc::vec::Vec<(String, Option<(u64, String)>)> = alloc::vec::Vec::new();
    let replace = |slot: u64, bufs: &mut Bufs| -> Result<(), String> {
        remove_if_exists(rdir, "tmp")?;
        let f = ctx("create /r/tmp", rdir.create("tmp"))?;
        write_stream(&f, 0, size, seed, via(k), bufs.data)?;
        let name = slot_name(slot);
        remove_if_exists(rdir, &name)?;
        ctx("rename /r/tmp", rdir.rename("tmp", &name))
    };
    match action(k) {
        Action::Replace { slot } => {
            replace(slot, bufs)?;
            durable.push((format!("/r/{}", slot_name(slot)), Some((size, content_sha(k, bufs.data)))));
        }
        Action::Overwrite { slot } => {
            let name = slot_name(slot);
            match rdir.open(&name) {
                Ok(f) => {
                    let old = ctx("stat", f.stat())?.size;
                    write_stream(&f, 0, size, seed, via(k), bufs.data)?;
                    if old > size {
                        ctx("truncate", f.truncate(size))?;
                    }
                }
                Err(e) if e.code() == Some(ErrorCode::NotFound) => replace(slot, bufs)?,
                Err(e) => return Err(format!("open /r/{}: {}", name, describe(&e))),
            }
            durable.push((format!("/r/{}", name), Some((size, content_sha(k, bufs.data)))));
        }
        Action::Delete { slot } => {
            let name = slot_name(slot);
            remove_if_exists(rdir, &name)?;
            durable.push((format!("/r/{}", name), None));
        }
        Action::Move { slot, to } => {
            let name = slot_name(slot);
            let target = move_name(to);
            if exists(rdir, &name)? {
                remove_if_exists(ddir, &target)?;
                ctx("rename_into /r/d", rdir.rename_into(&name, ddir, &target))?;
            }
            // Both ends as they are now: a step redone after a cut may
            // find the move already made. The target's size and hash are
            // read back from it.
            durable.push((format!("/r/{}", name), None));
            let moved = match ddir.open(&target) {
                Ok(f) => Some(crate::walk::hash_file(&f, &mut bufs.read[..128 * 1024])?),
                Err(e) if e.code() == Some(ErrorCode::NotFound) => None,
                Err(e) => return Err(format!("open /r/d/{}: {}", target, describe(&e))),
            };
            durable.push((format!("/r/d/{}", target), moved));
        }
    }
    if appends_log(k) {
        let f = ctx("open /r/log", rdir.open("log"))?;
        let at = ctx("stat /r/log", f.stat())?.size;
        let n = log_record_size(k) as usize;
        plan::fill(log_record_seed(k), 0, &mut bufs.data[..n]);
        match f.write(at, &bufs.data[..n]) {
            Ok(c) if c == n as u64 => {}
            Ok(c) => return Err(format!("log append reported {} of {}", c, n)),
            Err(e) => return Err(format!("log append: {}", describe(&e))),
        }
        durable.push((String::from("/r/log"), Some(log_after(k, bufs.data))));
    }
    let step_file = ctx("open /r/step", rdir.open("step"))?;
    let mut rec = [0u8; 24];
    let n = plan::step_record(k, &mut rec);
    ctx("write /r/step", step_file.write(0, &rec[..n]))?;
    ctx("truncate /r/step", step_file.truncate(n as u64))?;
    println!("step {} sync", k);
    ctx("sync", step_file.sync())?;
    durable.push((String::from("/r/step"), Some((n as u64, crate::report::sha256_hex(&rec[..n])))));
    for (path, state) in durable {
        match state {
            Some((size, sha)) => println!("synced {} {} size={} sha256={}", k, path, size, sha),
            None => println!("synced {} {} absent", k, path),
        }
    }
    Ok(())
}
