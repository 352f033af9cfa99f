//! `bench=blk`: sequential throughput of every block device, measured in
//! guest time. Run under `-icount shift=0` (make bench-blk) the guest clock
//! counts instructions, so figures repeat from run to run. Prints figures;
//! judges nothing.

use crate::drivers::{block, dma::DmaBuffer, nvme};
use alloc::format;
use alloc::string::String;
use alloc::vec;

fn rate(bytes: u64, ns: u64) -> String {
    let mib_s_x100 = bytes as u128 * 100 * 1_000_000_000 / (ns.max(1) as u128 * (1 << 20));
    format!("{:>6}.{:02} MiB/s", mib_s_x100 / 100, mib_s_x100 % 100)
}

fn line(dev: &str, path: &str, op: &str, size: usize, qd: usize, bytes: u64, ns: u64) {
    log::info!(
        "bench: {:8} {:14} {:5} {:>4} KiB qd{:<2} {} ({} ops, {} us)",
        dev, path, op, size / 1024, qd, rate(bytes, ns), bytes / size as u64, ns / 1000
    );
}

pub fn blk() {
    let now = crate::time::uptime_ns;
    log::info!("bench: TSC {} Hz ({}); sequential transfers", crate::time::tsc_hz(), crate::time::tsc_source().map(|s| s.name()).unwrap_or("?"));
    for (name, driver, dev) in block::all() {
        let mut d = dev.lock();
        let bs = d.block_size();
        for (size, total) in [(4096usize, 2usize << 20), (128 * 1024, 8 << 20)] {
            let total = total.min((d.block_count() as usize * bs) / 2 / size * size);
            let mut buf = vec![0u8; size];
            for write in [false, true] {
                let t0 = now();
                let mut ok = true;
                for i in 0..total / size {
                    let lba = (i * size / bs) as u64;
                    let r = if write { d.write_blocks(lba, &buf) } else { d.read_blocks(lba, &mut buf) };
                    if let Err(e) = r {
                        log::error!("bench: {} {} failed: {}", name, if write { "write" } else { "read" }, e);
                        ok = false;
                        break;
                    }
                }
                if write && d.flush().is_err() {
                    ok = false;
                }
                if ok {
                    line(&name, &format!("{} trait", driver), if write { "write" } else { "read" }, size, 1, total as u64, now() - t0);
                }
            }
        }
    }
    // NVMe without the trait in between, at queue depth 1 and 32.
    for (i, ctrl) in nvme::controllers().iter().enumerate() {
        let Some(ns) = ctrl.lock().namespaces.first().copied() else { continue };
        let name = format!("nvme{}n{}", i, ns.nsid);
        for (size, total) in [(4096usize, 2usize << 20), (128 * 1024, 8 << 20)] {
            let total = total.min((ns.info.blocks as usize * ns.info.block_size as usize) / 2 / size * size);
            for qd in [1usize, 32] {
                let Some(buf) = DmaBuffer::new((size * qd) as u64 / 4096) else { continue };
                for write in [false, true] {
                    let t0 = now();
                    match nvme::stream(ctrl, &ns, write, 0, total, size, qd, &buf) {
                        Ok(_) => line(&name, "nvme raw", if write { "write" } else { "read" }, size, qd, total as u64, now() - t0),
                        Err(e) => log::error!("bench: {} raw stream failed: {}", name, e),
                    }
                }
            }
        }
    }
    log::info!("bench: done");
}
