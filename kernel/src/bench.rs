//! `bench=blk`: executed instructions per block read, for every NVMe and
//! virtio-blk device, through the `BlockDevice` trait (what every storage
//! backer uses) and, for NVMe, through the raw driver path as well.
//!
//! Each measurement is a counted region (abi::icount): the line
//! `icount: <label> ops=<n>` then START, `n` requests, STOP. The QEMU
//! plugin tools/icount counts what the CPU executes in between, in every
//! mode, and nothing while it halts waiting for the device, so the figures
//! repeat where guest time does not (make bench-blk; docs/benchmarks.md).
//! The runner gives the disks as QEMU `null-co` drives with a fixed
//! `latency-ns`, so every request waits the same way.
//!
//! Labels: `<disk> <path> read <size> qd<depth> <irq|polled>`. Polled
//! waits spin for as long as the host takes, which does not repeat, so a
//! polled region is followed by `<label> spin`: the same number of turns of
//! the same poll loop with nothing outstanding. The runner prints the
//! difference as `<label> excluding spin`.
//!
//! The timer interrupt is masked while a region counts: how many ticks
//! land in a region follows host time (under `-icount` a halted CPU is
//! charged host real time), and each tick's handler would be counted, so
//! before this the irq figures moved by up to 0.4% between runs. Nothing
//! in a region needs the timer; the device's own interrupt still wakes
//! the halted CPU.
//!
//! Guest-time MiB/s are printed too, labelled host-dependent.

use crate::drivers::{block, dma::DmaBuffer, nvme};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec;
use capos_abi::icount::{region_start, region_stop};
use crate::sync::Lock;

/// Requests per region, and warm-up requests before each.
const OPS_4K: usize = 1000;
const OPS_128K: usize = 250;
const WARM_UP: usize = 8;

fn ops_for(size: usize) -> usize {
    if size <= 4096 {
        OPS_4K
    } else {
        OPS_128K
    }
}

fn kib(size: usize) -> String {
    format!("{} KiB", size / 1024)
}

/// Guest-time throughput, host-dependent: see the module comment.
fn host_dependent_rate(label: &str, bytes: u64, ns: u64) {
    let mib_s_x100 = bytes as u128 * 100 * 1_000_000_000 / (ns.max(1) as u128 * (1 << 20));
    log::info!(
        "bench: {}: {}.{:02} MiB/s guest time (host-dependent)",
        label, mib_s_x100 / 100, mib_s_x100 % 100
    );
}

/// Open a counted region with this CPU's timer masked (see the module
/// comment); returns the guest time it opened at, for `close`.
fn open() -> u64 {
    crate::irq::lapic::set_timer_masked(true);
    let t0 = crate::time::uptime_ns();
    region_start();
    t0
}

/// Close the region `open` began and unmask the timer; returns the guest
/// time the region took. (A pair of calls rather than one taking a
/// closure: the loop inside a region stays the code it was, so the
/// figures measured before the timer was masked stay comparable.)
fn close(t0: u64) -> u64 {
    region_stop();
    let ns = crate::time::uptime_ns() - t0;
    crate::irq::lapic::set_timer_masked(false);
    ns
}

/// Measure `op` (`n` times) as one counted region, after a warm-up;
/// `warmed` runs between the two.
fn region(label: &str, n: usize, mut op: impl FnMut(usize) -> bool, warmed: impl FnOnce()) -> Option<u64> {
    for i in 0..WARM_UP {
        if !op(i) {
            log::error!("bench: {}: warm-up request failed", label);
            return None;
        }
    }
    warmed();
    log::info!("icount: {} ops={}", label, n);
    let t0 = open();
    let mut ok = true;
    for i in 0..n {
        if !op(i) {
            ok = false;
            break;
        }
    }
    let ns = close(t0);
    if !ok {
        log::error!("bench: {}: a request failed; the figure above is not valid", label);
        return None;
    }
    Some(ns)
}

/// The polled-loop replay that follows a polled region.
fn spin_region(label: &str, n: usize, ctrl: &Lock<nvme::Controller>, polls: u64) {
    log::info!("bench: {}: {} poll turns in {} requests", label, polls, n);
    log::info!("icount: {} spin ops={}", label, n);
    let mut c = ctrl.lock();
    let t0 = open();
    let ok = c.replay_polls(polls);
    close(t0);
    if !ok {
        log::error!("bench: {} spin: a completion appeared while replaying polls", label);
    }
}

/// Reads through the `BlockDevice` trait, queue depth 1, from LBA 0 up,
/// into a page-aligned buffer (as the raw path and Linux's O_DIRECT
/// reads use) and into a heap `Vec` (what a storage backer may pass:
/// unaligned, in the heap's own mapping, so each page is translated by a
/// page-table walk).
fn trait_reads(name: &str, dev: &block::SharedDevice, mode: &str, ctrl: Option<&Arc<Lock<nvme::Controller>>>) {
    for (size, heap) in [(4096usize, false), (4096, true), (128 * 1024, false), (128 * 1024, true)] {
        let d = &**dev;
        let bs = d.block_size();
        let n = ops_for(size).min(d.block_count() as usize * bs / size);
        if n == 0 {
            continue;
        }
        let mut dma = if heap { None } else { DmaBuffer::new(size as u64 / 4096) };
        let mut vec_buf = if heap { vec![0u8; size] } else { vec![] };
        let buf: &mut [u8] = match dma.as_mut() {
            Some(b) => &mut b.as_mut_slice()[..size],
            None if heap => &mut vec_buf[..],
            None => {
                log::error!("bench: out of memory for a {} buffer", kib(size));
                continue;
            }
        };
        let label = format!("{} trait read {} qd1 {}{}", name, kib(size), mode, if heap { " heap-buffer" } else { "" });
        let mut polls0 = 0;
        let r = region(&label, n, |i| d.read_blocks(((i * size) / bs) as u64, buf).is_ok(), || {
            polls0 = ctrl.map(|c| c.lock().polls()).unwrap_or(0)
        });
        if let Some(ns) = r {
            host_dependent_rate(&label, (n * size) as u64, ns);
            if let (Some(c), "polled") = (ctrl, mode) {
                let polls = c.lock().polls() - polls0;
                spin_region(&label, n, c, polls);
            }
        }
    }
}

/// NVMe without the trait: `nvme::stream` at queue depth 1 and 32.
fn raw_reads(name: &str, ctrl: &Arc<Lock<nvme::Controller>>, ns: &nvme::Namespace, mode: &str) {
    for size in [4096usize, 128 * 1024] {
        for qd in [1usize, 32] {
            let n = ops_for(size).min((ns.info.blocks as usize * ns.info.block_size as usize) / size);
            let Some(buf) = DmaBuffer::new((size * qd) as u64 / 4096) else {
                log::error!("bench: out of memory for a {} x {} buffer", qd, kib(size));
                continue;
            };
            let label = format!("{} raw read {} qd{} {}", name, kib(size), qd, mode);
            // Warm-up, then the region: one stream of n requests.
            if let Err(e) = nvme::stream(ctrl, ns, false, 0, WARM_UP * size, size, qd, &buf) {
                log::error!("bench: {}: warm-up failed: {}", label, e);
                continue;
            }
            let polls0 = ctrl.lock().polls();
            log::info!("icount: {} ops={}", label, n);
            let t0 = open();
            let r = nvme::stream(ctrl, ns, false, 0, n * size, size, qd, &buf);
            let t = close(t0);
            match r {
                Ok(_) => {
                    host_dependent_rate(&label, (n * size) as u64, t);
                    if mode == "polled" {
                        let polls = ctrl.lock().polls() - polls0;
                        spin_region(&label, n, ctrl, polls);
                    }
                }
                Err(e) => log::error!("bench: {}: failed: {}; the figure above is not valid", label, e),
            }
        }
    }
}

pub fn blk() {
    log::info!("bench: executed instructions per read (make bench-blk); guest time is host-dependent");
    let devices = block::all();
    // NVMe: interrupt-driven, then polled, through the trait and raw.
    for (i, ctrl) in nvme::controllers().iter().enumerate() {
        let Some(ns) = ctrl.lock().namespaces.first().copied() else { continue };
        let name = format!("nvme{}n{}", i, ns.nsid);
        let dev = devices.iter().find(|(n, _, _)| *n == name).map(|(_, _, d)| d.clone());
        for polled in [false, true] {
            let mode = if polled { "polled" } else { "irq" };
            if !ctrl.lock().set_polled(polled) {
                log::info!("bench: {}: {} mode unavailable (no MSI-X); skipped", name, mode);
                continue;
            }
            if let Some(d) = &dev {
                trait_reads(&name, d, mode, Some(ctrl));
            }
            raw_reads(&name, ctrl, &ns, mode);
        }
        ctrl.lock().set_polled(false);
    }
    // virtio-blk: the virtio-drivers crate's blocking requests spin on the
    // used ring (no interrupts, one request at a time), so this is polled
    // QD1 only, and its spin is not separable: host-dependent.
    for (name, driver, dev) in &devices {
        if *driver == "virtio-blk" {
            log::info!("bench: {}: virtio-blk is polled, queue depth 1 only (the driver spins in virtio-drivers; no irq path, no queueing)", name);
            trait_reads(name, dev, "polled", None);
        }
    }
    // virtio-scsi: polled (see drivers/virtio_scsi.rs for why); a 128 KiB
    // read is one command, so this is queue depth 1 as well.
    for (name, driver, dev) in &devices {
        if *driver == "virtio-scsi" {
            trait_reads(name, dev, "polled", None);
        }
    }
    log::info!("bench: done");
}
