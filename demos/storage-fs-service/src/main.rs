//! storage-fs-service: a filesystem served from userspace.
//!
//! It holds the disk as a Block capability (`disk`, e.g. `kernel:block:data`
//! for a `raw` mount), runs the capos-storage engine over it in this
//! process, and serves `Directory`/`File` on the endpoint it exports as
//! `files`, through the same typed server traits the kernel's objects use
//! (`capos_serve`). Sessions, objects, read-only clients and subtree
//! confinement are the library's (`lib.rs`, host-tested).
//!
//! The disk is a CAPOSWF1 volume, or the co-located layout (a CAPOSST1
//! store followed by a filesystem), whose filesystem half is served. With
//! `--format caposro1` or `--format fat` it is a CAPOSRO1 image or a FAT
//! volume (a whole-disk FAT or the first FAT partition of an MBR disk),
//! served read-only by format: the same library (`FsService`, over the one
//! filesystem adapter `capos_serve::fs`) serves whatever the storage crate
//! opens.
//!
//! If the disk does not mount, the service stays up and answers every call
//! with the reason (`corrupted: CAPOSWF1: bad magic ...`), so a client
//! sees what is wrong rather than a dead endpoint; restarting would not
//! help. `--read-only` mounts the filesystem read-only. With a `clock`
//! grant (`kernel:clock`) files get wall-clock times; without, `unknown`.
#![no_std]
#![no_main]

extern crate alloc;

use capos_abi::helpers::CapError;
use capos_demo_storage_fs_service::{answer_unavailable, FsService};
use capos_rt::serve::{open_part, serve, storage_failure, DiskService};
use capos_rt::{println, CallError, CapBlockDevice, Server, StartInfo};
use capos_storage::colocated::{filesystem_part, Part};
use capos_storage::fat::{FatFs, FatPartition, MountOptions as FatOptions};
use capos_storage::readonly_fs::ReadOnlyFs;
use capos_storage::writable_fs::{MountOptions, WritableFs};
use capos_storage::{BlockDevice, Clock, FileSystem, Provenance, Timestamp};

// The engine's metadata and a full bulk buffer (1 MiB) live on the heap.
capos_rt::entry!(main, heap = 8 << 20);

/// File times from the kernel's wall clock (a `clock` grant); `unknown`
/// without one, or when the kernel has none.
struct WallClock(Option<capos_rt::Clock>);

impl Clock for WallClock {
    fn now(&mut self) -> Timestamp {
        match self.0.as_ref().map(|c| c.now()) {
            Some(Ok(ns)) => Timestamp::new(ns as i64, Provenance::WallClock),
            _ => Timestamp::UNKNOWN,
        }
    }
}

fn main(start: &StartInfo) -> i32 {
    let DiskService { disk, mut server, bulk, read_only } = match DiskService::from_start(start, "files") {
        Ok(s) => s,
        Err(status) => return status,
    };
    let format = start.args.iter().position(|a| a == "--format").and_then(|i| start.args.get(i + 1)).map_or("caposwf1", |f| f.as_str());
    let e = match format {
        "caposwf1" => {
            let clock = WallClock(start.cap("clock").map(capos_rt::Clock));
            let mounted = open_part(disk, "CAPOSWF1", filesystem_part).and_then(|(dev, part)| {
                WritableFs::mount(dev, clock, MountOptions { read_only }).map(|fs| (fs, part)).map_err(|e| storage_failure("CAPOSWF1", &e))
            });
            match mounted {
                Ok((fs, part)) => {
                    if part.colocated {
                        println!("the disk holds the co-located layout: serving its filesystem (blocks {}..{})", part.start, part.start + part.count);
                    }
                    println!(
                        "CAPOSWF1 generation {}, {}, {}{}; serving 'files'",
                        fs.generation(),
                        capos_text::count::count(fs.live_nodes(), "node", "nodes"),
                        capos_text::count::count(fs.free_blocks(), "free block", "free blocks"),
                        if fs.is_read_only() { ", read-only" } else { "" }
                    );
                    if let Some(skipped) = fs.skipped_commit() {
                        println!("the newest commit is damaged ({skipped}); mounted the one before it");
                    }
                    serve_fs(&mut server, bulk, fs)
                }
                Err(why) => unavailable(&mut server, bulk, why),
            }
        }
        "caposro1" => match open_part(disk, "CAPOSRO1", whole_disk).and_then(|(dev, _)| ReadOnlyFs::mount(dev).map_err(|e| storage_failure("CAPOSRO1", &e))) {
            Ok(fs) => {
                println!("CAPOSRO1, {}, read-only by format; serving 'files'", capos_text::count::count(fs.node_count(), "node", "nodes"));
                serve_fs(&mut server, bulk, fs)
            }
            Err(why) => unavailable(&mut server, bulk, why),
        },
        "fat" => match open_part(disk, "FAT", whole_disk)
            .and_then(|(dev, _)| FatFs::mount(dev, FatOptions { partition: FatPartition::Auto }).map_err(|e| storage_failure("FAT", &e)))
        {
            Ok(fs) => {
                println!("{}, {}, read-only by format; serving 'files'", fs.fat_type().label(), capos_text::count::count(fs.node_count(), "node", "nodes"));
                serve_fs(&mut server, bulk, fs)
            }
            Err(why) => unavailable(&mut server, bulk, why),
        },
        other => {
            println!("unknown --format '{}' (caposwf1, caposro1 or fat)", capos_text::escape::escape_control(other, false));
            return 2;
        }
    };
    println!("the endpoint is gone: {e:?}");
    1
}

/// The whole disk (formats that are never co-located).
fn whole_disk(dev: &mut CapBlockDevice) -> Result<Part, capos_storage::StorageError> {
    Ok(Part { start: 0, count: dev.block_count(), colocated: false })
}

/// Serve `fs` until the endpoint is gone.
fn serve_fs<F: FileSystem>(server: &mut Server, bulk: &'static mut [u8], fs: F) -> CallError {
    let mut svc = FsService::new(fs, capos_rt::syscall::rdtsc());
    let mut released = 0u64;
    serve(server, bulk, &mut svc, |svc, call, r| svc.answer(call.badge, &call.message()?, r), |svc, badge| {
        if svc.released(badge) {
            released += 1;
            let live = svc.live_objects();
            if live == 0 || released.is_multiple_of(1000) {
                println!("live objects: {live}, released {released}");
            }
        }
    })
}

/// The disk did not mount: stay up and answer every call with why.
fn unavailable(server: &mut Server, bulk: &'static mut [u8], why: CapError) -> CallError {
    println!("cannot mount the disk: {:?}: {}; answering every call with it", why.code, why.message);
    serve(server, bulk, &mut (), |_, call, r| answer_unavailable(&why, &call.message()?, r), |_, _| {})
}
