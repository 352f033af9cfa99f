//! `make bench-storage`'s guest: executed instructions per `File.read` and
//! `File.write` of 4 KiB and 128 KiB on a CAPOSWF1 filesystem, and per
//! `Store.put` / `Store.get`, each call through a kernel capability with
//! the data in the bulk buffer; optionally the same through the services.
//!
//! Grants: `fs` (a writable Directory), `store` (a Store), `console`;
//! optional `fat` (FAT File.read), `svcfs` (the file figures again,
//! labelled `fs-service ...`, through storage-fs-service) and `svcstore`
//! (the store figures again, labelled `store-service ...`).
//! Every figure is one counted region (`capos_rt::bench::measure`); the
//! runner turns them into instructions per op and per MiB. What each
//! region repeats:
//! - `File.write N`: overwrite N bytes at the next offset of a file that
//!   was written in full (and synced) before, wrapping at its end;
//! - `File.read N`: read N bytes at the next offset of that file;
//! - `Store.put 100 B`: a durable put of a new 18-byte key (the engine
//!   flushes before it returns);
//! - `Store.get 100 B`: a get of one of those keys.
//! After the regions it checks what it wrote (so a benchmark that went
//! wrong does not print figures for nothing) and prints `[PASS]`/`[FAIL]`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use capos_rt::bench::measure;
use capos_rt::{println, Directory, StartInfo, Store};

capos_rt::entry!(main);

/// The bench file's size: 4 MiB, so every region wraps over data that
/// exists and the engine never allocates beyond it.
const FILE_BYTES: u64 = 4 << 20;

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

fn key(i: u64) -> Vec<u8> {
    format!("bench/key/{i:08}").into_bytes()
}

fn verdict(name: &str, ok: bool, detail: &str) -> bool {
    if ok {
        println!("[PASS] {}: {}", name, detail);
    } else {
        println!("[FAIL] {}: {}", name, detail);
    }
    ok
}

/// `prefix` names the backer in the labels ("" for the kernel's).
fn file_bench(fs: &Directory, only: Option<&str>, prefix: &str) -> bool {
    let f = match fs.create("bench.bin").or_else(|_| fs.open("bench.bin")) {
        Ok(f) => f,
        Err(e) => return verdict("bench-file", false, &format!("create bench.bin: {e:?}")),
    };
    // Write the whole file once and make it durable, so the regions
    // overwrite data that exists.
    // Two 128 KiB buffers serve every size.
    const MAX: usize = 128 << 10;
    let data = pattern(MAX, 2);
    for off in (0..FILE_BYTES).step_by(MAX) {
        if f.write_bulk(off, &data).ok() != Some(MAX as u64) {
            return verdict("bench-file", false, &format!("initial write at {off} failed"));
        }
    }
    if f.sync().is_err() {
        return verdict("bench-file", false, "sync failed");
    }
    let mut ok = true;
    let mut buf = vec![0u8; MAX];
    for (size, n) in [(4096usize, 256u64), (MAX, 32)] {
        let label = if size == 4096 { "4 KiB" } else { "128 KiB" };
        let (data, buf) = (&data[..size], &mut buf[..size]);
        let slots = FILE_BYTES / size as u64;
        ok &= measure(&format!("{prefix}File.write {label}"), n, only, |i| f.write_bulk((i % slots) * size as u64, data).ok() == Some(size as u64));
        ok &= measure(&format!("{prefix}File.read {label}"), n, only, |i| f.read_bulk((i % slots) * size as u64, buf).ok() == Some(size));
        // The last read saw what the writes left there.
        ok &= verdict(&format!("bench-{prefix}file-{size}-intact").replace(' ', ""), buf == data, &format!("{size} bytes read back as written"));
    }
    ok &= verdict(&format!("bench-{prefix}file-sync").replace(' ', ""), f.sync().is_ok(), "sync after the file benchmarks");
    ok
}

/// FAT File.read: sequential reads of `/big.bin` (4 MiB of `i mod 253`,
/// tools/mkstorage-fat-read-image with FAT_BIG_MIB=4) on a read-only FAT
/// mount, the same sizes as CAPOSWF1's.
fn fat_bench(fat: &Directory, only: Option<&str>) -> bool {
    let f = match fat.open("big.bin") {
        Ok(f) => f,
        Err(e) => return verdict("bench-fat", false, &format!("open /big.bin: {e:?}")),
    };
    let mut ok = true;
    const MAX: usize = 128 << 10;
    let mut buf = vec![0u8; MAX];
    for (size, n) in [(4096usize, 256u64), (MAX, 32)] {
        let label = if size == 4096 { "4 KiB" } else { "128 KiB" };
        let buf = &mut buf[..size];
        let slots = FILE_BYTES / size as u64;
        ok &= measure(&format!("FAT File.read {label}"), n, only, |i| f.read_bulk((i % slots) * size as u64, buf).ok() == Some(size));
        // The last read: offset ((n - 1) % slots) * size holds i mod 253.
        let off = ((n - 1) % slots) * size as u64;
        let intact = buf.iter().enumerate().all(|(j, b)| *b as u64 == (off + j as u64) % 253);
        ok &= verdict(&format!("bench-fat-{size}-intact"), intact, &format!("{size} bytes at {off} as the image script wrote them"));
    }
    ok
}

fn store_bench(store: &Store, only: Option<&str>, label: &str) -> bool {
    let value = pattern(100, 3);
    let mut next = 0u64;
    let mut ok = measure(&format!("{label}Store.put 100 B"), 200, only, |_| {
        next += 1;
        store.put(&key(next), &value).is_ok()
    });
    let written = next;
    ok &= measure(&format!("{label}Store.get 100 B"), 200, only, |i| matches!(store.get(&key(i % written.max(1) + 1)), Ok(v) if v == value));
    if written > 0 {
        ok &= verdict(
            &format!("bench-{}store-intact", label.replace(' ', "-")),
            store.get(&key(written)).ok().as_deref() == Some(&value[..]),
            &format!("{written} keys, the last one reads back"),
        );
    }
    ok
}

fn main(start: &StartInfo) -> i32 {
    let only = start.args.iter().position(|a| a == "--only").and_then(|i| start.args.get(i + 1)).map(|s| s.as_str());
    let mut ok = true;
    // storage-fs-service mounts its disk when it starts: wait for it to
    // answer, so its start-up is not counted in the kernel's regions
    // (icount counts every instruction the guest runs between markers).
    let svcfs = start.cap("svcfs").map(Directory::new);
    if let Some(d) = &svcfs {
        ok &= verdict("bench-service-up", d.list().is_ok(), "storage-fs-service answers before any region");
    }
    let svcstore = start.cap("svcstore").map(Store::new);
    if let Some(s) = &svcstore {
        ok &= verdict("bench-store-service-up", s.has(b"bench/none").is_ok(), "store-service answers before any region");
    }
    match start.cap("fs") {
        Some(h) => ok &= file_bench(&Directory::new(h), only, ""),
        None => ok &= verdict("bench-setup", false, "no capability 'fs' granted"),
    }
    match start.cap("store") {
        Some(h) => ok &= store_bench(&Store::new(h), only, ""),
        None => ok &= verdict("bench-setup", false, "no capability 'store' granted"),
    }
    // The same file benchmark through storage-fs-service (CAPOSWF1 in a
    // process over a Block capability) instead of the kernel's backer.
    if let Some(d) = &svcfs {
        ok &= file_bench(d, only, "fs-service ");
    }
    // The same store benchmark through store-service (CAPOSST1 in a
    // process over a Block capability).
    if let Some(s) = &svcstore {
        ok &= store_bench(s, only, "store-service ");
    }
    if let Some(h) = start.cap("fat") {
        ok &= fat_bench(&Directory::new(h), only);
    }
    println!("bench: done");
    if ok {
        0
    } else {
        1
    }
}
