//! Counts the boots of the disk it was granted: reads `/boots` from its
//! `fs` capability (absent on a fresh disk), writes the count plus one
//! back, syncs, and prints `boot N of this disk`. It also keeps the same
//! count under the key `boots` of its `store` capability when granted.
//!
//! The cloud disk's manifest (demos/disk.manifest) runs it, so two boots of
//! one disk prove that what a boot wrote and synced is there the next
//! time (`make run-cloud-disk` boots the same copy twice). Any error is a
//! `[FAIL]` line and a non-zero exit, never a panic.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use capos_rt::{println, CallError, Directory, StartInfo, Store};

capos_rt::entry!(main);

const FILE: &str = "boots";

fn parse(bytes: &[u8]) -> Option<u64> {
    core::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// The count `/boots` holds (0 when it does not exist).
fn read_count(fs: &Directory) -> Result<u64, String> {
    let f = match fs.open(FILE) {
        Ok(f) => f,
        Err(CallError::Object(e)) if e.code == capos_abi::capos_capnp::ErrorCode::NotFound => return Ok(0),
        Err(e) => return Err(format!("open /{FILE}: {e:?}")),
    };
    let bytes = f.read(0, 64).map_err(|e| format!("read /{FILE}: {e:?}"))?;
    parse(&bytes).ok_or_else(|| format!("/{FILE} holds {:?}, not a count", String::from_utf8_lossy(&bytes)))
}

fn write_count(fs: &Directory, n: u64) -> Result<(), String> {
    let f = match fs.open(FILE) {
        Ok(f) => f,
        Err(_) => fs.create(FILE).map_err(|e| format!("create /{FILE}: {e:?}"))?,
    };
    let text = format!("{n}\n");
    f.truncate(0).map_err(|e| format!("truncate /{FILE}: {e:?}"))?;
    f.write(0, text.as_bytes()).map_err(|e| format!("write /{FILE}: {e:?}"))?;
    f.sync().map_err(|e| format!("sync: {e:?}"))?;
    let back = read_count(fs)?;
    if back != n {
        return Err(format!("/{FILE} reads back {back}, wrote {n}"));
    }
    Ok(())
}

fn store_count(store: &Store, n: u64) -> Result<u64, String> {
    let before = match store.get(b"boots") {
        Ok(v) => parse(&v).ok_or("key boots holds no count")?,
        Err(CallError::Object(e)) if e.code == capos_abi::capos_capnp::ErrorCode::NotFound => 0,
        Err(e) => return Err(format!("get boots: {e:?}")),
    };
    store.put(b"boots", format!("{n}").as_bytes()).map_err(|e| format!("put boots: {e:?}"))?;
    Ok(before)
}

fn run(start: &StartInfo) -> Result<(), String> {
    let fs = Directory::new(start.cap("fs").ok_or("no capability 'fs' granted")?);
    let before = read_count(&fs)?;
    let n = before + 1;
    write_count(&fs, n)?;
    println!("boot {} of this disk (/{} held {})", n, FILE, before);
    if let Some(h) = start.cap("store") {
        let kept = store_count(&Store::new(h), n)?;
        if kept != before {
            return Err(format!("the store counted {kept} boots, the file {before}"));
        }
        println!("the store agrees: key boots was {}, now {}", kept, n);
    }
    Ok(())
}

fn main(start: &StartInfo) -> i32 {
    match run(start) {
        Ok(()) => {
            println!("[PASS] bootcount: counted and synced");
            0
        }
        Err(e) => {
            println!("[FAIL] bootcount: {}", e);
            1
        }
    }
}
