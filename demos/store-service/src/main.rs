//! store-service: a CAPOSST1 key/value store served from userspace.
//!
//! It holds the disk as a Block capability (`disk`), runs the capos-storage
//! store engine over it in this process, and serves `Store` on the endpoint
//! it exports as `store`, through the typed server trait the kernel's store
//! uses. Read-only clients and the rest of the rules are the library's
//! (`lib.rs`, host-tested). Every put and delete is committed before it
//! returns; puts and deletes that arrive together share one commit.
//!
//! The disk is a CAPOSST1 store, or the co-located layout, whose store
//! half is served.
//!
//! If the disk does not mount, the service stays up and answers every call
//! with the reason. `--read-only` mounts the store read-only.
#![no_std]
#![no_main]

extern crate alloc;

use capos_abi::SysError;
use capos_demo_store_service::{answer_unavailable, StoreService};
use capos_rt::serve::{open_part, serve, serve_grouped, storage_failure, Call, DiskService, Group, ServeResponder};
use capos_rt::{println, StartInfo};
use capos_storage::colocated::store_part;
use capos_storage::store::Store;
use capos_storage::BlockDevice;

/// The service as the serve loop's [`Group`]: puts and deletes that
/// arrive together are committed with one flush (`lib.rs`, group commit).
struct Grouped<D: BlockDevice> {
    svc: StoreService<D>,
    told: bool,
}

impl<D: BlockDevice> Group for Grouped<D> {
    fn hold(&mut self, call: &Call, bulk_in: Option<&[u8]>) -> bool {
        call.message().is_ok_and(|m| self.svc.hold(call.badge, &m, bulk_in))
    }

    fn commit(&mut self) {
        self.svc.commit();
        let stats = self.svc.group_stats();
        if stats.largest > 1 && !self.told {
            // Once, so the log shows group commit at work without a line
            // per commit.
            self.told = true;
            println!("group commit: {} puts and deletes arrived together and were made durable with one commit", stats.largest);
        }
    }

    fn answer_held(&mut self, _: &Call, r: &mut ServeResponder) -> Result<(), SysError> {
        self.svc.answer_held(r)
    }
}

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
            let mut svc = Grouped { svc: StoreService::new(store), told: false };
            let e = serve_grouped(&mut server, bulk, &mut svc, |g, call, r| g.svc.answer(call.badge, &call.message()?, r), |_, _| {});
            let stats = svc.svc.group_stats();
            println!("group commit: {} puts and deletes in {} groups, the largest {}", stats.ops, stats.groups, stats.largest);
            e
        }
        Err(why) => {
            println!("cannot mount the disk: {:?}: {}; answering every call with it", why.code, why.message);
            serve(&mut server, bulk, &mut (), |_, call, r| answer_unavailable(&why, &call.message()?, r), |_, _| {})
        }
    };
    println!("the endpoint is gone: {e:?}");
    1
}
