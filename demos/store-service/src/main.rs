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

use alloc::format;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::serve::storage_error;
use capos_demo_store_service::{answer_unavailable, StoreService};
use capos_rt::serve::{serve, DiskService};
use capos_rt::storage::{Block, CapBlockDevice};
use capos_rt::{println, StartInfo};
use capos_storage::colocated::store_part;
use capos_storage::partition::Partition;
use capos_storage::store::Store;
use capos_storage::StorageError;

capos_rt::entry!(main, heap = 8 << 20);

fn main(start: &StartInfo) -> i32 {
    let DiskService { disk, mut server, bulk, read_only } = match DiskService::from_start(start, "store") {
        Ok(s) => s,
        Err(status) => return status,
    };
    let mounted = CapBlockDevice::new(Block::new(disk))
        .map_err(|e| CapError::new(ErrorCode::Io, &format!("the disk does not answer: {e:?}")))
        .and_then(|mut dev| {
            let bad = |e: StorageError| CapError::new(storage_error(&e).code, &format!("CAPOSST1: {e}"));
            let part = store_part(&mut dev).map_err(bad)?;
            let dev = Partition::new(dev, part.start, part.count).map_err(|e| bad(StorageError::Device(e)))?;
            Store::mount(dev, read_only).map(|s| (s, part)).map_err(bad)
        });
    let e = match mounted {
        Ok((store, part)) => {
            if part.colocated {
                println!("the disk holds the co-located layout: serving its store (blocks 0..{})", part.count);
            }
            println!("CAPOSST1 mounted{}; serving 'store'", if read_only { " read-only" } else { "" });
            let mut svc = StoreService::new(store);
            serve(&mut server, bulk, &mut svc, |svc, call, r| svc.answer(call.badge, &call.message()?, r))
        }
        Err(why) => {
            println!("cannot mount the disk: {:?}: {}; answering every call with it", why.code, why.message);
            serve(&mut server, bulk, &mut (), |_, call, r| answer_unavailable(&why, &call.message()?, r))
        }
    };
    println!("the endpoint is gone: {e:?}");
    1
}
