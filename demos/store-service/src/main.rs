//! store-service: a CAPOSST1 key/value store served from userspace.
//!
//! It holds the disk as a Block capability (`disk`), runs the capos-storage
//! store engine over it in this process, and serves `Store` on the endpoint
//! it exports as `store`, through the typed server trait the kernel's store
//! uses. Read-only clients and the rest of the rules are the library's
//! (`lib.rs`, host-tested). Every put and delete is committed before it
//! returns.
//!
//! The disk is a CAPOSST1 store, or the co-located layout, whose store
//! half is served.
//!
//! If the disk does not mount, the service stays up and answers every call
//! with the reason. `--read-only` mounts the store read-only.
#![no_std]
#![no_main]

extern crate alloc;

use capos_demo_store_service::{answer_unavailable, StoreService};
use capos_rt::serve::{open_part, serve, storage_failure, DiskService};
use capos_rt::{println, StartInfo};
use capos_storage::colocated::store_part;
use capos_storage::store::Store;

capos_rt::entry!(main, heap = 8 << 20);

fn main(start: &StartInfo) -> i32 {
    let DiskService { disk, mut server, bulk, read_only } = match DiskService::from_start(start, "store") {
        Ok(s) => s,
        Err(status) => return status,
    };
    let mounted = open_part(disk, "CAPOSST1", store_part)
        .and_then(|(dev, part)| Store::mount(dev, read_only).map(|s| (s, part)).map_err(|e| storage_failure("CAPOSST1", &e)));
    let e = match mounted {
        Ok((store, part)) => {
            if part.colocated {
                println!("the disk holds the co-located layout: serving its store (blocks 0..{})", part.count);
            }
            if let Some(unfinished) = store.unfinished_commit() {
                println!("rolled back an unfinished commit, generation {} ({})", unfinished.generation, unfinished.why);
            }
            println!("CAPOSST1 mounted{}; serving 'store'", if read_only { " read-only" } else { "" });
            let mut svc = StoreService::new(store);
            serve(&mut server, bulk, &mut svc, |svc, call, r| svc.answer(call.badge, &call.message()?, r), |_, _| {})
        }
        Err(why) => {
            println!("cannot mount the disk: {:?}: {}; answering every call with it", why.code, why.message);
            serve(&mut server, bulk, &mut (), |_, call, r| answer_unavailable(&why, &call.message()?, r), |_, _| {})
        }
    };
    println!("the endpoint is gone: {e:?}");
    1
}
