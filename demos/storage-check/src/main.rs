//! storage-check: the guest side of the storage scenarios
//! (tools/runner/src/scenarios/storage/mod.rs). It exercises the kernel's Directory,
//! File and Store capabilities through capos-rt's typed clients and prints
//! one verdict line per check: `[PASS] NAME` or `[FAIL] NAME: reason`.
//! An error never panics it: it prints FAIL and goes on, and exits 1 if
//! any check failed.
//!
//! ```text
//! storage-check --mode MODE [--phase 1|2] [--max-steps N] [--wait-for PATH]
//!               [--churn-rounds R] [--churn-value BYTES]   (persist)
//! ```
//!
//! Grants it uses when present: `console`, `fs` (a root Directory), `store`,
//! `rofs` / `rostore` (the read-only wrappers). Every mode first prints a
//! walk of what it holds (see walk.rs), which the runner compares with the
//! host's `mkstore-image extract` of the same disk.
//!
//! Modes: `walk`, `readonly`, `writable` (phases 1 and 2), `persist`
//! (phases 1 and 2), `hostile`, `recovery` (runs until killed).
#![no_std]
#![no_main]

extern crate alloc;

mod bufs;
mod hostile;
mod ops;
mod persist;
mod plan;
mod readonly;
mod recovery;
mod report;
mod walk;
mod writable;

use alloc::string::String;
use capos_rt::{println, Directory, StartInfo, Store};
use report::Report;

capos_rt::entry!(main);

/// What the process was granted, by the names the manifest uses.
pub struct Grants {
    pub fs: Option<Directory>,
    pub store: Option<Store>,
    pub rofs: Option<Directory>,
    pub rostore: Option<Store>,
}

/// `--name VALUE` from the arguments.
pub fn arg<'a>(start: &'a StartInfo, name: &str) -> Option<&'a str> {
    let i = start.args.iter().position(|a| a == name)?;
    start.args.get(i + 1).map(|s| s.as_str())
}

fn main(start: &StartInfo) -> i32 {
    let mut r = Report::default();
    let Some(mut bufs) = bufs::take_all() else {
        println!("[FAIL] buffers: the bulk buffers were already taken");
        return 1;
    };
    let mode = arg(start, "--mode").unwrap_or("walk");
    let phase: u32 = arg(start, "--phase").and_then(|p| p.parse().ok()).unwrap_or(1);
    let g = Grants {
        fs: start.cap("fs").map(Directory::new),
        store: start.cap("store").map(Store::new),
        rofs: start.cap("rofs").map(Directory::new),
        rostore: start.cap("rostore").map(Store::new),
    };
    let held: alloc::vec::Vec<&str> = [("fs", g.fs.is_some()), ("store", g.store.is_some()), ("rofs", g.rofs.is_some()), ("rostore", g.rostore.is_some())]
        .iter()
        .filter(|(_, h)| *h)
        .map(|(n, _)| *n)
        .collect();
    println!("storage-check: mode {} phase {} holding {}", mode, phase, held.join(","));
    if held.is_empty() {
        r.fail("grants", "no fs, store, rofs or rostore capability was granted");
    }
    if let Some(path) = arg(start, "--wait-for") {
        walk::wait_for(&g, path, &mut r);
    }
    // The walk every mode starts with: the writable pair, then the
    // read-only wrappers (each its own labelled walk).
    let before = walk::walk("start", g.fs.as_ref(), g.store.as_ref(), bufs.read, &mut r);
    let before_ro = if g.rofs.is_some() || g.rostore.is_some() { Some(walk::walk("start-ro", g.rofs.as_ref(), g.rostore.as_ref(), bufs.read, &mut r)) } else { None };
    match mode {
        "walk" => {}
        "readonly" => readonly::run(&g, &before, before_ro.as_ref(), bufs.read, &mut r),
        "writable" => writable::run(&g, phase, &mut bufs, &mut r),
        "persist" => match persist::churn_args(arg(start, "--churn-rounds"), arg(start, "--churn-value")) {
            Ok(churn) => persist::run(&g, phase, churn, &mut bufs, &mut r),
            Err(e) => r.fail("st-churn-args", &e),
        },
        "hostile" => hostile::run(&g, &mut bufs, &mut r),
        "recovery" => {
            let max: u64 = arg(start, "--max-steps").and_then(|v| v.parse().ok()).unwrap_or(100_000);
            recovery::run(&g, max, &mut bufs, &mut r)
        }
        other => r.fail("mode", &alloc::format!("unknown mode '{}'", other)),
    }
    if mode != "walk" && mode != "recovery" {
        // What the disk holds now, for the runner's comparison after exit.
        walk::walk("end", g.fs.as_ref(), g.store.as_ref(), bufs.read, &mut r);
    }
    let verdict: String = alloc::format!("storage-check: {} passed, {} failed", r.passed, r.failed);
    println!("{}", verdict);
    if r.failed == 0 {
        0
    } else {
        1
    }
}
