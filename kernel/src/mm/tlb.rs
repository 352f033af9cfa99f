//! TLB shootdown: after the kernel unmaps pages of its own half, no CPU
//! may still translate them through an entry it cached before.
//!
//! Which unmaps need it: kernel-half mappings are global (the same on
//! every CPU, surviving CR3 loads), so any CPU may have cached one: a
//! freed kernel stack (a process that ran on one CPU is reaped on
//! another): `mm::stacks::free_all`, through [`super::paging::unmap`]. User mappings do not: a process runs on one CPU at a time, its
//! pages are unmapped only when it is dead (its CPU has loaded another
//! CR3 since, which drops its non-global entries), and the kernel never
//! unmaps pages of a live process.
//!
//! How: the initiator flushes its own entries (`invlpg`), then publishes
//! the ranges and the set of CPUs that must flush, sends each a
//! shootdown interrupt and waits until all have acknowledged; only then
//! may the frames behind the ranges be reused (the caller frees them
//! after [`flush_kernel`] returns). One request is in flight at a time;
//! a CPU waiting to make its own serves the one in flight meanwhile, and
//! so does the initiator while it waits, so two CPUs shooting down at
//! once never wait on each other. Several ranges go in one request (a
//! reap that frees several stacks sends one round of interrupts).
//!
//! The rule that keeps it from deadlocking: the initiator holds no lock
//! while it waits (debug kernels check), so a CPU spinning on a lock
//! with interrupts off is spinning on one whose holder will release it
//! without waiting for us; it takes our interrupt once it has the lock
//! and leaves the kernel or halts.

use crate::arch::x86_64::percpu;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Most ranges in one request; a longer batch is split.
pub const MAX_RANGES: usize = 16;

/// The request in flight: its ranges (start, pages) and the CPUs that
/// have not flushed them yet (a bit per CPU index).
static BUSY: AtomicBool = AtomicBool::new(false);
static STARTS: [AtomicU64; MAX_RANGES] = [const { AtomicU64::new(0) }; MAX_RANGES];
static PAGES: [AtomicU64; MAX_RANGES] = [const { AtomicU64::new(0) }; MAX_RANGES];
static RANGES: AtomicUsize = AtomicUsize::new(0);
static PENDING: AtomicU64 = AtomicU64::new(0);
/// Requests made and interrupts sent, for the `cpu` command and tests.
static REQUESTS: AtomicU64 = AtomicU64::new(0);
static SKIP_ONCE: AtomicBool = AtomicBool::new(false);

fn invlpg(va: u64) {
    x86_64::instructions::tlb::flush(x86_64::VirtAddr::new(va));
}

fn flush_local(start: u64, pages: u64) {
    for i in 0..pages {
        invlpg(start + i * super::PAGE_SIZE);
    }
}

/// Flush the request in flight on this CPU if it is one of those asked;
/// the shootdown interrupt's handler, and what waiting CPUs do.
pub fn serve() {
    let me = 1u64 << percpu::index();
    if PENDING.load(Ordering::Acquire) & me == 0 {
        return;
    }
    for r in 0..RANGES.load(Ordering::Acquire) {
        flush_local(STARTS[r].load(Ordering::Acquire), PAGES[r].load(Ordering::Acquire));
    }
    PENDING.fetch_and(!me, Ordering::AcqRel);
}

/// The shootdown interrupt (`irq::VECTOR_TLB_SHOOTDOWN`).
pub fn on_interrupt(_vector: u8) {
    serve();
}

/// Self-tests: the next request flushes only this CPU (so a test can see
/// that it then reads a stale translation on another CPU).
pub fn skip_once_for_test() {
    SKIP_ONCE.store(true, Ordering::Release);
}

/// Make every CPU forget its translations of `ranges` (kernel-half
/// start address, pages); returns once all have. Call with no lock held,
/// before the frames behind the ranges are freed.
pub fn flush_kernel(ranges: &[(u64, u64)]) {
    for &(start, pages) in ranges {
        flush_local(start, pages);
    }
    let online = percpu::online();
    if online <= 1 || ranges.is_empty() {
        return;
    }
    if SKIP_ONCE.swap(false, Ordering::AcqRel) {
        log::warn!("tlb: shootdown skipped once (self-test)");
        return;
    }
    crate::sync::assert_none_held("a TLB shootdown wait");
    for batch in ranges.chunks(MAX_RANGES) {
        shoot(batch, online);
    }
}

fn shoot(batch: &[(u64, u64)], online: usize) {
    let me = percpu::index();
    while BUSY.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
        serve();
        core::hint::spin_loop();
    }
    for (r, &(start, pages)) in batch.iter().enumerate() {
        STARTS[r].store(start, Ordering::Relaxed);
        PAGES[r].store(pages, Ordering::Relaxed);
    }
    RANGES.store(batch.len(), Ordering::Release);
    let all = if online >= 64 { u64::MAX } else { (1u64 << online) - 1 };
    let others = all & !(1 << me);
    PENDING.store(others, Ordering::Release);
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    for cpu in 0..online {
        if others & (1 << cpu) != 0 {
            if let Some(apic) = percpu::apic_id_of(cpu) {
                crate::irq::lapic::send_ipi(apic, crate::irq::VECTOR_TLB_SHOOTDOWN);
            }
        }
    }
    // Interrupts stay as they are: the others answer from their handler
    // (or from their own wait here); this CPU answers nothing meanwhile,
    // having no request to serve but its own.
    while PENDING.load(Ordering::Acquire) != 0 {
        core::hint::spin_loop();
    }
    BUSY.store(false, Ordering::Release);
}

/// Shootdown requests made since boot.
pub fn requests() -> u64 {
    REQUESTS.load(Ordering::Relaxed)
}
