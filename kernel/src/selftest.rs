//! In-kernel self-tests, selected with `test=name,name` on the command line
//! (see `make run-smoke`, `make run-fault`). Each prints `[PASS] name` or
//! `[FAIL] name: reason`; the scenario runner judges by those lines and by
//! the exit code. A fault test fails when no fault happens.

use crate::arch::x86_64::qemu;
use crate::arch::x86_64::trap::{self, FaultReport};
use crate::mm::{frames, phys_to_virt, stacks};
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::arch::asm;
use core::sync::atomic::{AtomicU32, Ordering};

static PASSED: AtomicU32 = AtomicU32::new(0);
static FAILED: AtomicU32 = AtomicU32::new(0);

pub const TESTS: &[&str] = &[
    "smoke", "page-fault", "invalid-opcode", "divide-error", "stack-overflow", "panic", "msix", "timer", "blk", "readonly", "bulk",
    "nvme-irqs-off", "nvme-timeout", "lockorder", "tlb", "tlb-skip", "scsi-overlap", "scsi-timeout",
];

fn report(name: &str, result: Result<String, String>) {
    match result {
        Ok(detail) => {
            PASSED.fetch_add(1, Ordering::SeqCst);
            log::info!("[PASS] {}: {}", name, detail);
        }
        Err(reason) => {
            FAILED.fetch_add(1, Ordering::SeqCst);
            log::error!("[FAIL] {}: {}", name, reason);
        }
    }
}

pub fn run(name: &str) {
    match name {
        "smoke" => smoke(),
        "page-fault" => page_faults(),
        "invalid-opcode" => report("invalid-opcode", check_fault(6, None, None, invalid_opcode)),
        "divide-error" => report("divide-error", check_fault(0, None, None, divide_error)),
        "stack-overflow" => stack_overflow(),
        "panic" => panic!("deliberate panic requested by test=panic"),
        "msix" => report("msix-nvme-admin-completion", match crate::drivers::nvme::controllers().first() {
            Some(c) => c.lock().prove_msix(),
            None => Err(String::from("no NVMe controller bound (add one with QEMU_EXTRA)")),
        }),
        "timer" => timer(),
        "blk" => blk(),
        "readonly" => read_only_wrapper(),
        "bulk" => report("bulk-in-place", bulk_in_place()),
        "nvme-irqs-off" => report("nvme-irqs-off", nvme_irqs_off()),
        "nvme-timeout" => report("nvme-timeout-reset", nvme_timeout()),
        "lockorder" => lock_order(),
        "tlb" => report("tlb-shootdown", tlb_shootdown(false)),
        "tlb-skip" => report("tlb-shootdown", tlb_shootdown(true)),
        "scsi-overlap" => scsi_overlap(),
        "scsi-timeout" => report("scsi-timeout-reset", scsi_timeout()),
        other => report(
            "unknown-test",
            Err(format!("no self-test named '{}' (known: {})", other, TESTS.join(", "))),
        ),
    }
}

/// The lock-order checker (`sync`, debug builds): the table of classes is
/// in rank order, two test locks taken in order pass and are counted, then
/// taken the other way round the checker must panic naming both
/// (`fault` scenario, boot `lock-order`). Nothing after that runs.
fn lock_order() {
    use crate::sync::{classes, held_count, Lock};
    static OUTER: Lock<u32> = Lock::new(&classes::SELFTEST_OUTER, 0);
    static INNER: Lock<u32> = Lock::new(&classes::SELFTEST_INNER, 0);
    if let Some(w) = classes::ALL.windows(2).find(|w| w[0].rank >= w[1].rank) {
        return report("lock-order-table", Err(format!("'{}' (rank {}) is listed before '{}' (rank {})", w[0].name, w[0].rank, w[1].name, w[1].rank)));
    }
    report("lock-order-table", Ok(format!("{} classes, ranks strictly increasing", classes::ALL.len())));
    if !cfg!(debug_assertions) {
        return report("lock-order", Err(String::from("the checker is built in debug builds only (KERNEL_PROFILE=dev)")));
    }
    // With interrupts off: the test classes rank above the interrupt
    // handler table (they are only ever taken here), so a timer tick that
    // came while they are held would itself be an inversion.
    crate::arch::x86_64::trap::set_interrupts(false);
    let before = held_count();
    let nested = {
        let mut o = OUTER.lock();
        let mut i = INNER.lock();
        *o += 1;
        *i += 1;
        held_count() - before
    };
    if nested != 2 || held_count() != before {
        return report("lock-order-in-order", Err(format!("{} locks counted while both were held, {} after", nested, held_count() - before)));
    }
    report("lock-order-in-order", Ok(String::from("'selftest.outer' then 'selftest.inner' taken and released")));
    log::info!("lock-order: now 'selftest.inner' then 'selftest.outer'; the checker must panic");
    let _inner = INNER.lock();
    let _outer = OUTER.lock();
    report("lock-order", Err(String::from("the checker let 'selftest.outer' be taken while holding 'selftest.inner'")));
}

/// Print the totals and end the run.
pub fn finish() -> ! {
    let (p, f) = (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst));
    log::info!("selftest: {} passed, {} failed", p, f);
    qemu::exit(if f == 0 && p > 0 { qemu::EXIT_SUCCESS } else { qemu::EXIT_FAILURE })
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = core::fmt::Write::write_fmt(&mut s, format_args!("{:02x}", b));
    }
    s
}

/// Every block device: hash the first `blk.read_mib` MiB (0 = all), write a
/// pattern to the last `blk.scratch_blocks` blocks, flush, read it back,
/// and check that bad requests are refused.
fn blk() {
    use capos_storage::BlockError;
    use sha2::{Digest, Sha256};
    let cmd = capos_kcore::cmdline::Cmdline::new(crate::boot_info::cmdline());
    let read_mib: u64 = cmd.get("blk.read_mib").and_then(|v| v.parse().ok()).unwrap_or(0);
    let scratch: u64 = cmd.get("blk.scratch_blocks").and_then(|v| v.parse().ok()).unwrap_or(64);
    let devices = crate::drivers::block::all();
    if devices.is_empty() {
        report("blk", Err(String::from("no block devices found")));
        return;
    }
    for (name, driver, dev) in devices {
        let d = &*dev;
        let bs = d.block_size();
        let size = d.block_count() * bs as u64;
        let want = if read_mib == 0 { size } else { (read_mib << 20).min(size) };
        report(&format!("blk-{}-read", name), (|| {
            let mut hasher = Sha256::new();
            let mut buf = alloc::vec![0u8; 128 * 1024];
            let mut done = 0u64;
            let start = crate::time::uptime_ns();
            while done < want {
                let n = (buf.len() as u64).min(want - done) as usize;
                d.read_blocks(done / bs as u64, &mut buf[..n]).map_err(|e| format!("read at byte {}: {}", done, e))?;
                hasher.update(&buf[..n]);
                done += n as u64;
            }
            let ms = (crate::time::uptime_ns() - start) / 1_000_000;
            let digest = hasher.finalize();
            log::info!("blk: {} read {} bytes sha256={}", name, done, hex(&digest));
            Ok(format!("{} ({}) {} bytes in {} ms", name, driver, done, ms))
        })());
        report(&format!("blk-{}-write-flush-readback", name), (|| {
            let blocks = scratch.min(d.block_count());
            let first = d.block_count() - blocks;
            let mut pattern = alloc::vec![0u8; (blocks as usize) * bs];
            for (i, b) in pattern.iter_mut().enumerate() {
                *b = capos_kcore::blk_test_pattern(first + (i / bs) as u64, i % bs);
            }
            d.write_blocks(first, &pattern).map_err(|e| format!("write: {}", e))?;
            d.flush().map_err(|e| format!("flush: {}", e))?;
            let mut back = alloc::vec![0u8; pattern.len()];
            d.read_blocks(first, &mut back).map_err(|e| format!("read back: {}", e))?;
            if back != pattern {
                return Err(String::from("read-back differs from what was written"));
            }
            log::info!("blk: {} wrote pattern at LBA {}..{} and flushed", name, first, first + blocks);
            Ok(format!("{} blocks at LBA {}", blocks, first))
        })());
        report(&format!("blk-{}-unaligned-buffer", name), (|| {
            let mut a = alloc::vec![0u8; 4096 + 8];
            let mut b = alloc::vec![0u8; 4096];
            d.read_blocks(0, &mut a[1..4097]).map_err(|e| format!("unaligned read: {}", e))?;
            d.read_blocks(0, &mut b).map_err(|e| format!("aligned read: {}", e))?;
            if a[1..4097] != b[..] {
                return Err(String::from("a read into an odd address differs from an aligned read"));
            }
            Ok(String::from("odd-address buffer reads the same bytes"))
        })());
        report(&format!("blk-{}-bad-requests", name), (|| {
            let count = d.block_count();
            let mut one = alloc::vec![0u8; bs];
            let checks: [(&str, Result<(), BlockError>, BlockError); 5] = [
                ("read past the end", d.read_blocks(count, &mut one), BlockError::OutOfRange),
                ("read straddling the end", { let mut two = alloc::vec![0u8; 2 * bs]; d.read_blocks(count - 1, &mut two) }, BlockError::OutOfRange),
                ("zero-length read", d.read_blocks(0, &mut []), BlockError::BadLength),
                ("partial-block read", d.read_blocks(0, &mut one[..bs - 1]), BlockError::BadLength),
                ("huge LBA write", d.write_blocks(u64::MAX, &one), BlockError::OutOfRange),
            ];
            for (what, got, want) in checks {
                if got != Err(want) {
                    return Err(format!("{}: got {:?}, expected {:?}", what, got, want));
                }
            }
            Ok(String::from("past-end, straddling, zero-length, partial-block and huge-LBA requests refused"))
        })());
    }
}

/// Every virtio-scsi disk: one 1 MiB read (split into commands that the
/// driver keeps in the device together) must return what 4 KiB reads one
/// at a time do, and the driver must have had more than one command in
/// the device at once.
fn scsi_overlap() {
    let disks: Vec<_> = crate::drivers::block::all().into_iter().filter(|(_, driver, _)| *driver == "virtio-scsi").collect();
    if disks.is_empty() {
        report("scsi-overlap", Err(String::from("no virtio-scsi disk bound")));
        return;
    }
    for (name, _, dev) in disks {
        report(&format!("scsi-overlap-{}", name), (|| {
            let d = &*dev;
            let bs = d.block_size();
            let len = (1usize << 20).min(d.block_count() as usize * bs);
            crate::drivers::virtio_scsi::take_peak_in_flight();
            let mut big = alloc::vec![0u8; len];
            d.read_blocks(0, &mut big).map_err(|e| format!("{} byte read: {}", len, e))?;
            let peak = crate::drivers::virtio_scsi::take_peak_in_flight();
            let mut small = alloc::vec![0u8; len];
            let step = 4096usize.max(bs);
            for (i, chunk) in small.chunks_mut(step).enumerate() {
                d.read_blocks((i * step / bs) as u64, chunk).map_err(|e| format!("read at byte {}: {}", i * step, e))?;
            }
            if big != small {
                return Err(format!("the {} byte read differs from {} byte reads of the same blocks", len, step));
            }
            if peak < 2 {
                return Err(format!("at most {} command in the device at once during the {} byte read", peak, len));
            }
            Ok(format!("{} bytes in one read with up to {} commands in the device at once match {} byte reads", len, peak, step))
        })());
    }
}

/// A virtio-scsi command that misses its deadline (a throttled disk, the
/// deadline cut to TEST_TIMEOUT_NS) must come back as `Timeout`, reset the
/// device so the abandoned read never lands in its buffer, and leave the
/// controller failing every later request at once, named as such.
fn scsi_timeout() -> Result<String, String> {
    use capos_storage::BlockError;
    use crate::drivers::virtio_scsi;
    let (name, _, dev) = crate::drivers::block::all().into_iter().find(|(_, driver, _)| *driver == "virtio-scsi").ok_or("no virtio-scsi disk bound")?;
    let d = &*dev;
    // A first read passes the throttle's budget; the next waits in QEMU.
    let mut warm = alloc::vec![0u8; 4096];
    d.read_blocks(0, &mut warm).map_err(|e| format!("{}: first read: {}", name, e))?;
    // Page-aligned DMA memory, so the read targets this buffer itself.
    let mut buf = crate::drivers::dma::DmaBuffer::new(1).ok_or("out of memory")?;
    buf.as_mut_slice().fill(0);
    virtio_scsi::set_test_timeout_ticks(crate::time::tsc_ticks(TEST_TIMEOUT_NS));
    let r = d.read_blocks(8, &mut buf.as_mut_slice()[..4096]);
    virtio_scsi::set_test_timeout_ticks(0);
    if r != Err(BlockError::Timeout) {
        return Err(format!("{}: a read allowed {} ms returned {:?} (this test needs a throttled disk; blk-scsi's timeout boot gives it one)", name, TEST_TIMEOUT_NS / 1_000_000, r));
    }
    buf.as_mut_slice().fill(0x5a);
    crate::time::spin_ns(LATE_DMA_WATCH_NS);
    if let Some(i) = buf.as_slice()[..4096].iter().position(|b| *b != 0x5a) {
        return Err(format!("{}: the timed-out read's buffer changed at byte {} after the reset (late DMA)", name, i));
    }
    let start = crate::time::uptime_ns();
    let after = d.read_blocks(0, &mut warm);
    let ms = (crate::time::uptime_ns() - start) / 1_000_000;
    if after != Err(BlockError::Device { status: virtio_scsi::STATUS_CONTROLLER_FAILED }) || ms > 10 {
        return Err(format!("{}: a read after the timeout returned {:?} in {} ms, want the controller-failed error at once", name, after, ms));
    }
    Ok(format!("{}: timed out after {} ms, no late DMA within {} ms, later requests fail at once", name, TEST_TIMEOUT_NS / 1_000_000, LATE_DMA_WATCH_NS / 1_000_000))
}

/// The first NVMe controller and its first namespace's block device.
fn first_nvme() -> Result<(alloc::sync::Arc<crate::sync::Lock<crate::drivers::nvme::Controller>>, crate::drivers::block::SharedDevice), String> {
    let ctrl = crate::drivers::nvme::controllers().first().cloned().ok_or("no NVMe controller bound")?;
    let nsid = ctrl.lock().namespaces.first().map(|n| n.nsid).ok_or("the NVMe controller has no namespace")?;
    let dev = crate::drivers::block::find(&format!("nvme0n{}", nsid)).ok_or("nvme0's first namespace is not a block device")?;
    Ok((ctrl, dev))
}

/// A system call runs with interrupts off: NVMe reads and flushes made
/// with interrupts off must complete (by polling, even with MSI-X) and
/// return with interrupts still off. Reads are repeated until one has had
/// to wait (the poll counter moved), so the waiting loop itself ran with
/// interrupts off, not only the look that found a completion.
fn nvme_irqs_off() -> Result<String, String> {
    use crate::arch::x86_64::trap::{interrupts_enabled, set_interrupts};
    let (ctrl, dev) = first_nvme()?;
    let mode = if ctrl.lock().msix { "MSI-X" } else { "polled" };
    let d = &*dev;
    let size = 8192usize.min(d.block_count() as usize * d.block_size());
    let mut want = alloc::vec![0u8; size];
    d.read_blocks(0, &mut want).map_err(|e| format!("read with interrupts on: {}", e))?;
    let mut got = alloc::vec![0u8; size];
    let polls0 = ctrl.lock().polls();
    // The read above halted for its interrupt; let any straggler of it in
    // before counting (QEMU posts the completion just before the MSI).
    for _ in 0..10_000 {
        core::hint::spin_loop();
    }
    let (irqs0, polled_queue) = {
        let c = ctrl.lock();
        (c.interrupts(), c.has_polled_queue())
    };
    let mut reads = 0;
    set_interrupts(false);
    let mut read = Ok(());
    let mut off_after_read = true;
    // Whether a read finds its completion already posted depends on the
    // host; up to 1024 tries make one that waits all but certain.
    while reads < 1024 && ctrl.lock().polls() == polls0 {
        reads += 1;
        read = d.read_blocks(0, &mut got);
        off_after_read &= !interrupts_enabled();
        if read.is_err() || got != want {
            break;
        }
    }
    let flush = d.flush();
    let off_after_flush = !interrupts_enabled();
    // Taken with interrupts still off: a completion interrupt of the
    // reads above would be pending, not counted, if none was let in.
    let irqs = ctrl.lock().interrupts() - irqs0;
    set_interrupts(true);
    let polls = ctrl.lock().polls() - polls0;
    read.map_err(|e| format!("read with interrupts off: {}", e))?;
    flush.map_err(|e| format!("flush with interrupts off: {}", e))?;
    if !off_after_read || !off_after_flush {
        return Err(format!("the driver turned interrupts on (after a read: {}, after flush: {})", !off_after_read, !off_after_flush));
    }
    if got != want {
        return Err(String::from("a read with interrupts off returned other bytes than one with them on"));
    }
    if polls == 0 {
        return Err(format!("none of {} reads had to wait, so the wait loop never ran with interrupts off", reads));
    }
    // A spinning waiter's commands go to the polled queue: nothing of
    // theirs interrupts (the wait opens interrupt windows, so one would
    // have been counted).
    if polled_queue && irqs > 0 {
        return Err(format!("{} interrupt(s) arrived for {} read(s) and a flush made with interrupts off, which the polled queue should have served", irqs, reads));
    }
    let queue = if polled_queue { ", on the polled queue, 0 interrupts" } else { "" };
    Ok(format!("{} read(s) ({} poll turns) and a flush completed with interrupts off ({} controller{}) and left them off", reads, polls, mode, queue))
}

/// How long `nvme-timeout` lets a read take: far less than the device's
/// latency in the scenario (blk-nvme's timeout boots give the controller a
/// disk QEMU throttles to 5 reads a second, so a read that follows another
/// is held about 200 ms before its data moves), so the read is still in
/// the device when the driver gives up on it.
const TEST_TIMEOUT_NS: u64 = 20_000_000;
/// How long to watch the abandoned read's buffer: longer than that latency.
const LATE_DMA_WATCH_NS: u64 = 400_000_000;

/// A read that times out while the device still has it must reset the
/// controller and return Timeout; afterwards its buffer must stay untouched
/// (no late DMA) and the next reads must complete as themselves (the queue
/// is not one completion behind). Once with interrupts on, once off.
fn nvme_timeout() -> Result<String, String> {
    use crate::arch::x86_64::trap::{interrupts_enabled, set_interrupts};
    use capos_storage::BlockError;
    let (ctrl, dev) = first_nvme()?;
    let d = &*dev;
    let bs = d.block_size();
    let far = (65536 / bs as u64).min(d.block_count().saturating_sub(1));
    let (mut want0, mut want_far) = (alloc::vec![0u8; 4096], alloc::vec![0u8; 4096]);
    d.read_blocks(0, &mut want0).map_err(|e| format!("reference read: {}", e))?;
    d.read_blocks(far, &mut want_far).map_err(|e| format!("reference read: {}", e))?;
    if want0.iter().all(|b| *b == 0x5a) {
        return Err(String::from("the disk's first block is the test's marker byte; use another disk"));
    }
    // Page-aligned, so the read's DMA targets this buffer itself (no bounce).
    let mut buf = crate::drivers::dma::DmaBuffer::new(1).ok_or("out of memory")?;
    let mut details = Vec::new();
    for irqs in [true, false] {
        let mode = if irqs { "interrupts on" } else { "interrupts off" };
        let (resets0, saved) = {
            let c = ctrl.lock();
            (c.resets(), c.io_timeout_ticks())
        };
        ctrl.lock().set_io_timeout_ticks(crate::time::tsc_ticks(TEST_TIMEOUT_NS));
        buf.as_mut_slice().fill(0);
        set_interrupts(irqs);
        let r = d.read_blocks(0, &mut buf.as_mut_slice()[..4096]);
        let irqs_kept = interrupts_enabled() == irqs;
        set_interrupts(true);
        ctrl.lock().set_io_timeout_ticks(saved);
        if !irqs_kept {
            return Err(format!("{}: the read changed the interrupt flag", mode));
        }
        if r != Err(BlockError::Timeout) {
            return Err(format!(
                "{}: a read allowed {} ms returned {:?} (this test needs a device slower than that; blk-nvme's timeout boots give it one)",
                mode, TEST_TIMEOUT_NS / 1_000_000, r
            ));
        }
        let (resets, failed) = {
            let c = ctrl.lock();
            (c.resets(), c.failed())
        };
        if resets != resets0 + 1 || failed {
            return Err(format!("{}: after the timeout: {} reset(s), failed={}", mode, resets - resets0, failed));
        }
        // The abandoned read must never land: mark its buffer and wait
        // past the device's latency.
        buf.as_mut_slice().fill(0x5a);
        crate::time::spin_ns(LATE_DMA_WATCH_NS);
        if let Some(i) = buf.as_slice()[..4096].iter().position(|b| *b != 0x5a) {
            return Err(format!("{}: the timed-out read's buffer changed at byte {} after the reset (late DMA)", mode, i));
        }
        // In step: each read gets its own completion and its own data (and,
        // with MSI-X, its interrupt: the reset re-created the vectors' use).
        let irqs0 = ctrl.lock().interrupts();
        let mut got = alloc::vec![0u8; 4096];
        d.read_blocks(far, &mut got).map_err(|e| format!("{}: read after the reset: {}", mode, e))?;
        d.read_blocks(0, &mut buf.as_mut_slice()[..4096]).map_err(|e| format!("{}: second read after the reset: {}", mode, e))?;
        if got != want_far || buf.as_slice()[..4096] != want0[..] {
            return Err(format!("{}: reads after the reset returned other data", mode));
        }
        if ctrl.lock().resets() != resets {
            return Err(format!("{}: reads after the reset needed another reset", mode));
        }
        let (msix, irqs) = {
            let c = ctrl.lock();
            (c.msix, c.interrupts())
        };
        if msix && irqs == irqs0 {
            return Err(format!("{}: reads after the reset raised no MSI-X interrupt", mode));
        }
        details.push(format!("{}: timed out, reset, no late DMA, next reads in step", mode));
    }
    Ok(details.join("; "))
}

/// The read-only wrapper in front of an in-memory Directory/File pair (test
/// doubles: the storage backers are not capabilities yet): reads pass,
/// mutations are refused without reaching the object, and a File opened
/// through a read-only Directory is read-only too.
fn read_only_wrapper() {
    use crate::cap::read_only::ReadOnly;
    use crate::cap::{CallMessage, Cap, CapList, Caller, KernelObject, Reply};
    use crate::mm::ipc_area::IpcArea;
    use alloc::sync::Arc;
    use capos_abi::capos_capnp::{cap_result, console, data_result, directory, file, u_int64_result};
    use capos_abi::helpers::{decode, fill_cap, fill_data, fill_u64, read_cap, read_data, read_u64};
    use capos_abi::message::{to_words, word_bytes};
    use capos_abi::{interfaces, Handle, SysError};
    use crate::sync::{classes, Lock};

    struct MemFile(Lock<Vec<u8>>);
    impl KernelObject for MemFile {
        fn interface_id(&self) -> u64 { interfaces::FILE }
        fn kind(&self) -> &'static str { "test file" }
        fn call(&self, _c: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
            match call.method_id() {
                0 => {
                    let d = self.0.lock().clone();
                    reply.results::<data_result::Owned, _>(|r| Ok(fill_data(r, &Ok(&d))))
                }
                1 => {
                    let data = call.params::<file::write_params::Owned>().and_then(|p| Ok(p.get_data()?.to_vec())).map_err(|e| e.sys_error())?;
                    self.0.lock().extend_from_slice(&data);
                    reply.results::<u_int64_result::Owned, _>(|r| Ok(fill_u64(r, &Ok(data.len() as u64))))
                }
                _ => Err(SysError::UnknownMethod),
            }
        }
    }
    struct MemDir(Arc<MemFile>);
    impl KernelObject for MemDir {
        fn interface_id(&self) -> u64 { interfaces::DIRECTORY }
        fn kind(&self) -> &'static str { "test directory" }
        fn call(&self, _c: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
            match call.method_id() {
                0 => {
                    let slot = reply.add_cap(Cap::kernel(self.0.clone()))?;
                    reply.results::<cap_result::Owned, _>(|r| Ok(fill_cap(r, &Ok(slot))))
                }
                _ => Err(SysError::UnknownMethod),
            }
        }
    }

    report("read-only-wrapper", (|| {
        let no_caps = CapList::new();
        let caller = Caller { pid: 0, name: "selftest", caps: &no_caps };
        let area = IpcArea::new().ok_or(String::from("no memory for a test IPC area"))?;
        let mut dirty = 0usize;
        let file = Arc::new(MemFile(Lock::new(&classes::SELFTEST_MEMFILE, b"capOS".to_vec())));
        let dir: Arc<dyn KernelObject> = Arc::new(MemDir(file.clone()));
        let ro_dir = ReadOnly(dir);
        // Run one call; returns the capabilities handed back and a copy of the results.
        let mut run = |obj: &dyn KernelObject, iface: u64, method: u16, params: Vec<u64>| -> Result<(Vec<Cap>, Vec<u64>), String> {
            let call = CallMessage::new(iface, method, word_bytes(&params)).map_err(|e| format!("{}", e))?;
            let mut returned = CapList::new();
            let mut reply = Reply::new(area.view(), &mut dirty, &mut returned, None);
            obj.call(&caller, &call, &mut reply).map_err(|e| format!("{:?}", e))?;
            let (len, _) = reply.finish();
            let caps: Vec<Cap> = returned.drain().collect();
            let out = capos_abi::message::words_of(&area.view().recv_mut()[..len]);
            Ok((caps, out))
        };
        let s = |e: capos_abi::message::MessageError| format!("{}", e);
        // open through the read-only directory: the File comes back wrapped.
        let open = to_words::<directory::open_params::Owned>(|mut p| { p.set_name("f"); Ok(()) }).map_err(s)?;
        let (caps, out) = run(&ro_dir, interfaces::DIRECTORY, 0, open)?;
        decode::<cap_result::Owned, _>(word_bytes(&out), |r| read_cap(r, &[Handle::new(1, 1)])).map_err(s)?.map_err(|e| format!("open refused: {:?}", e))?;
        let Some(Cap::Kernel(opened)) = caps.into_iter().next() else { return Err(String::from("open returned no capability")) };
        if opened.kind() != "read-only wrapper" {
            return Err(format!("open through a read-only directory returned a '{}', not a read-only wrapper", opened.kind()));
        }
        let read = to_words::<file::read_params::Owned>(|mut p| { p.set_offset(0); p.set_length(16); Ok(()) }).map_err(s)?;
        let (_, out) = run(&*opened, interfaces::FILE, 0, read)?;
        let data = decode::<data_result::Owned, _>(word_bytes(&out), read_data).map_err(s)?.map_err(|e| format!("read refused: {:?}", e))?;
        if data != b"capOS" {
            return Err(String::from("read through the wrapper returned the wrong bytes"));
        }
        let write = to_words::<file::write_params::Owned>(|mut p| { p.set_offset(5); p.set_data(b"!!"); Ok(()) }).map_err(s)?;
        let (_, out) = run(&*opened, interfaces::FILE, 1, write.clone())?;
        match decode::<u_int64_result::Owned, _>(word_bytes(&out), read_u64).map_err(s)? {
            Err(e) if e.code == capos_abi::capos_capnp::ErrorCode::ReadOnly => {}
            other => return Err(format!("write through the wrapper answered {:?}", other)),
        }
        if file.0.lock().as_slice() != b"capOS" {
            return Err(String::from("the refused write reached the file"));
        }
        // The same write on the unwrapped file does land (the test can fail).
        let (_, out) = run(&*file, interfaces::FILE, 1, write)?;
        if decode::<u_int64_result::Owned, _>(word_bytes(&out), read_u64).map_err(s)? != Ok(2) || file.0.lock().as_slice() != b"capOS!!" {
            return Err(String::from("the unwrapped file did not take the write"));
        }
        let console_call = to_words::<console::write_line_params::Owned>(|mut p| { p.set_line("x"); Ok(()) }).map_err(s)?;
        let call = CallMessage::new(interfaces::CONSOLE, 0, word_bytes(&console_call)).map_err(s)?;
        let mut returned = CapList::new();
        let mut reply = Reply::new(area.view(), &mut dirty, &mut returned, None);
        if !matches!(ReadOnly(file.clone()).call(&caller, &call, &mut reply), Err(SysError::UnknownInterface)) {
            return Err(String::from("an interface the wrapper does not know was not refused"));
        }
        Ok(String::from("reads pass, a returned File is wrapped, write refused with readOnly without reaching the file, unknown interfaces refused"))
    })());
}

/// `KernelResponder::bulk_out_with` in a space of its own: into a bulk
/// buffer on physically contiguous pages, the fill runs on the caller's
/// own frames (bytes past what it reports zeroed, all of them on an
/// error); on scattered pages it runs on a staging buffer whose bytes are
/// then copied; a range on the IPC area is never handed out in place.
fn bulk_in_place() -> Result<String, String> {
    use crate::cap::{Bulk, CapList, Caller, KernelResponder, Reply};
    use crate::mm::address_space::AddressSpace;
    use crate::mm::ipc_area::IpcArea;
    use crate::mm::usermem::UserSlice;
    use capos_abi::ipc::{BULK_READ, BULK_WRITE, IPC_AREA_ADDR};
    use capos_serve::Responder;

    const RUN: u64 = 0x40_0000; // four contiguous pages
    const SCATTERED: u64 = 0x50_0000; // four pages, a frame held between each
    let mut space = AddressSpace::new().map_err(|e| format!("no space: {e:?}"))?;
    let run = space.map_new(RUN, 4, true, false).map_err(|e| format!("map: {e:?}"))?;
    if run.windows(2).any(|w| w[1] != w[0] + 4096) {
        return Err(String::from("setup: no contiguous run of 4 frames free"));
    }
    let mut gaps = Vec::new();
    for i in 0..4 {
        space.map_new(SCATTERED + i * 4096, 1, true, false).map_err(|e| format!("map: {e:?}"))?;
        gaps.push(frames::alloc_zeroed().ok_or("no frame")?);
    }
    let scattered: Vec<u64> = (0..4).map(|i| space.translate_user(SCATTERED + i * 4096).map(|(pa, _)| pa)).collect::<Option<_>>().ok_or("unmapped")?;
    let result = (|| {
        if scattered.windows(2).all(|w| w[1] == w[0] + 4096) {
            return Err(String::from("setup: the scattered pages came out contiguous"));
        }
        let area = IpcArea::new().ok_or("no IPC area")?;
        space.map_frames(IPC_AREA_ADDR, area.phys(), 2, true).map_err(|e| format!("map the IPC area: {e:?}"))?;
        let no_caps = CapList::new();
        let caller = Caller { pid: 0, name: "selftest", caps: &no_caps };
        let user = |va: u64, n: usize| -> Vec<u8> {
            (0..n as u64).map(|i| {
                let (pa, _) = space.translate_user(va + i).expect("mapped");
                // SAFETY: a frame of the test space, direct-mapped.
                unsafe { (phys_to_virt(pa) as *const u8).read() }
            }).collect()
        };
        // One bulk_out_with into `va`: (the buffer fill saw, bulk bytes out, result).
        let mut dirty = 0usize;
        let mut call = |va: u64, len: usize, fail: bool| -> Result<(u64, u64, Result<usize, ()>), String> {
            let slice = UserSlice::new(va, 4 * 4096).map_err(|e| format!("{e:?}"))?;
            let mut returned = CapList::new();
            let mut reply = Reply::new(area.view(), &mut dirty, &mut returned, Some(Bulk::new(&space, slice, BULK_WRITE)));
            let mut seen = 0u64;
            let r = KernelResponder::new(&caller, &mut reply).bulk_out_with(len, |buf| {
                seen = buf.as_ptr() as u64;
                buf.fill(0xee); // scratch past what is reported
                for (i, b) in buf[..100].iter_mut().enumerate() {
                    *b = i as u8 + 1;
                }
                if fail { Err(()) } else { Ok(100) }
            }).map_err(|e| format!("{e:?}"))?;
            Ok((seen, reply.finish().1, r))
        };
        let want: Vec<u8> = (1..=100).collect();
        // Contiguous: in place, the rest zeroed.
        let (seen, out, r) = call(RUN, 8192, false)?;
        if seen != phys_to_virt(run[0]) {
            return Err(format!("contiguous pages: the fill ran on {seen:#x}, not on the caller's frames"));
        }
        let got = user(RUN, 8192 + 16);
        if r != Ok(100) || out != 100 || got[..100] != want[..] || got[100..8192].iter().any(|&b| b != 0) {
            return Err(format!("contiguous pages: result {r:?}, bulk out {out}, bytes past the answer not zeroed or the answer wrong"));
        }
        if got[8192..] != [0u8; 16] {
            return Err(String::from("contiguous pages: bytes past the asked length were written"));
        }
        // An error leaves nothing of the fill behind.
        let (_, out, r) = call(RUN, 8192, true)?;
        if r != Err(()) || out != 0 || user(RUN, 8192).iter().any(|&b| b != 0) {
            return Err(String::from("contiguous pages: a failed fill left bytes behind (or reported a bulk result)"));
        }
        // Scattered: staged and copied, only what the fill reported.
        let (seen, out, r) = call(SCATTERED + 4000, 8192, false)?;
        if scattered.iter().any(|&pa| seen >= phys_to_virt(pa) && seen < phys_to_virt(pa) + 4096) {
            return Err(String::from("scattered pages: the fill ran in place"));
        }
        let got = user(SCATTERED + 4000, 200);
        if r != Ok(100) || out != 100 || got[..100] != want[..] || got[100..].iter().any(|&b| b != 0) {
            return Err(format!("scattered pages: result {r:?}, bulk out {out}, or the bytes across the page boundary wrong"));
        }
        // Reading the caller's bytes (a write's data): in place on the
        // run, a copy across the scattered pages; the same bytes either way.
        let mut read = |va: u64| -> Result<(u64, Vec<u8>), String> {
            let slice = UserSlice::new(va, 200).map_err(|e| format!("{e:?}"))?;
            let mut returned = CapList::new();
            let mut reply = Reply::new(area.view(), &mut dirty, &mut returned, Some(Bulk::new(&space, slice, BULK_READ)));
            KernelResponder::new(&caller, &mut reply).bulk_in_with(|data| (data.as_ptr() as u64, data.to_vec())).map_err(|e| format!("{e:?}"))
        };
        let (seen, got) = read(RUN)?;
        if seen != phys_to_virt(run[0]) || got != user(RUN, 200) {
            return Err(String::from("contiguous pages: a write's data was not read in place, or read wrong"));
        }
        let (seen, got) = read(SCATTERED + 4000)?;
        if scattered.iter().any(|&pa| seen >= phys_to_virt(pa) && seen < phys_to_virt(pa) + 4096) || got != user(SCATTERED + 4000, 200) || got[..100] != want[..] {
            return Err(String::from("scattered pages: a write's data was read in place, or its copy is wrong"));
        }
        // The IPC area is never handed out in place.
        // (Its two pages are mapped writable and contiguous here.)
        let on_area = UserSlice::new(IPC_AREA_ADDR, 8192).map_err(|e| format!("{e:?}"))?;
        if !matches!(on_area.with_contiguous_mut(&space, 8192, |_| ()), Ok(None)) {
            return Err(String::from("a range on the IPC area was handed out in place"));
        }
        Ok(String::from("reads and writes in place on contiguous frames (rest and failures zeroed), staged across scattered frames, never on the IPC area"))
    })();
    for pa in gaps {
        let _ = frames::free(pa);
    }
    result
}

/// The LAPIC timer must tick at about 100 Hz against the TSC.
fn timer() {
    report("lapic-timer-ticks", (|| {
        let t0 = crate::time::ticks();
        let start = crate::time::uptime_ns();
        while crate::time::uptime_ns() - start < 200_000_000 {
            crate::arch::x86_64::cpu::wait_for_interrupt();
        }
        let n = crate::time::ticks() - t0;
        // 200 ms at 100 Hz is 20 ticks; allow emulation jitter.
        if (10..=40).contains(&n) {
            Ok(format!("{} ticks in 200 ms", n))
        } else {
            Err(format!("{} ticks in 200 ms, expected about 20", n))
        }
    })());
}

/// Run out of frames part way through a kernel stack's and a heap
/// growth's mapping (`paging::Partial`): each fails, and once the frames
/// are back each succeeds and the frames all come back. Before, the
/// pages mapped before the failure stayed mapped and unused, and every
/// later stack in that slot, or growth of the heap, failed at its first
/// page ("AlreadyMapped").
fn out_of_frames() -> Result<String, String> {
    const STACK_PAGES: u64 = 8;
    let in_use = crate::mm::stacks::in_use();
    // One stack made and freed first, so the slot's page tables exist and
    // do not count below.
    let s = crate::mm::stacks::alloc("selftest", STACK_PAGES).map_err(|e| format!("first stack: {:?}", e))?;
    crate::mm::stacks::free(s);
    // Room for every frame, taken before the frames run out; and the
    // heap's room now, so the vector below must grow it.
    let mut hoard: Vec<u64> = Vec::with_capacity(frames::stats().free as usize);
    let room = (crate::mm::heap::size() - crate::mm::heap::used()) as usize;
    let before = frames::stats().free;
    // Hold every frame but a few: fewer than the stack's pages, fewer than
    // a heap growth's chunk of 16.
    let left = 4;
    for _ in left..before {
        match frames::alloc_unzeroed() {
            Some(pa) => hoard.push(pa),
            None => break,
        }
    }
    let stack = crate::mm::stacks::alloc("selftest", STACK_PAGES);
    let mut grown: Vec<u8> = Vec::new();
    let heap = grown.try_reserve_exact(room + 256 * 1024);
    let free_then = frames::stats().free;
    for pa in hoard.drain(..) {
        let _ = frames::free(pa);
    }
    if let Ok(s) = stack {
        crate::mm::stacks::free(s);
        return Err(format!("a {}-page stack was made with {} frames free", STACK_PAGES, left));
    }
    if heap.is_ok() {
        return Err(format!("the heap grew by {} KiB with {} frames free", (room + 256 * 1024) / 1024, left));
    }
    // What the stack mapped went back; what the growth mapped is the heap's.
    let s = crate::mm::stacks::alloc("selftest", STACK_PAGES).map_err(|e| format!("a stack once the frames were back: {:?}", e))?;
    crate::mm::stacks::free(s);
    grown.try_reserve_exact(room + 256 * 1024).map_err(|_| String::from("the heap did not grow once the frames were back"))?;
    drop(grown);
    if crate::mm::stacks::in_use() != in_use {
        return Err(format!("stacks in use {} -> {}", in_use, crate::mm::stacks::in_use()));
    }
    Ok(format!(
        "with {} of {} frames free a {}-page stack and a heap growth failed ({} frames free after); both succeeded once the frames were back",
        left, before, STACK_PAGES, free_then
    ))
}

fn smoke() {
    report("smoke-heap", (|| {
        let before = crate::mm::heap::size();
        // 2 MiB: more than the initial heap, so the heap must grow.
        let mut v: Vec<u64> = Vec::with_capacity(256 * 1024);
        for i in 0..256 * 1024u64 {
            v.push(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        }
        let ok = v.iter().enumerate().all(|(i, x)| *x == (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let b = Box::new([7u8; 1000]);
        let after = crate::mm::heap::size();
        if !ok || b.iter().any(|&x| x != 7) {
            return Err(String::from("heap contents did not read back"));
        }
        if after <= before {
            return Err(format!("heap did not grow ({} -> {} bytes)", before, after));
        }
        Ok(format!("2 MiB vector verified, heap grew {} -> {} KiB", before / 1024, after / 1024))
    })());

    report("smoke-kernel-stacks", (|| {
        // More stacks than there are slots, one at a time: each freed stack
        // must give back its slot and its frames.
        let in_use = crate::mm::stacks::in_use();
        let first = crate::mm::stacks::alloc("selftest", 4).map_err(|e| format!("first stack: {:?}", e))?;
        crate::mm::stacks::free(first);
        let before = frames::stats().free;
        for i in 0..300 {
            let s = crate::mm::stacks::alloc("selftest", 4).map_err(|e| format!("stack {}: {:?}", i, e))?;
            // SAFETY: the stack was just mapped writable for us.
            unsafe { ((s.top - 8) as *mut u64).write_volatile(i) };
            crate::mm::stacks::free(s);
        }
        let after = frames::stats().free;
        if after != before || crate::mm::stacks::in_use() != in_use {
            return Err(format!("free frames {} -> {}, stacks in use {} -> {}", before, after, in_use, crate::mm::stacks::in_use()));
        }
        Ok(format!("300 stacks made and freed; free frames back at {}, {} slots in use", after, in_use))
    })());
    // Holding every frame is a loop over them all: on a large machine
    // (the smoke matrix boots 6 GiB) seconds under TCG for no more proof.
    const MAX_HELD: u64 = 1 << 18;
    match frames::stats().free {
        free if free <= MAX_HELD => report("smoke-out-of-frames", out_of_frames()),
        free => log::info!("smoke-out-of-frames: not run: {} frames free, more than the {} it would hold (1 GiB)", free, MAX_HELD),
    }
    report("smoke-frames", (|| {
        let before = frames::stats().free;
        let a = frames::alloc_zeroed().ok_or("no frame")?;
        let b = frames::alloc_zeroed().ok_or("no frame")?;
        if a == b || a == 0 {
            return Err(format!("bad frames {:#x} {:#x}", a, b));
        }
        if frames::stats().free != before - 2 {
            return Err(String::from("free count did not drop by 2"));
        }
        frames::free(a).map_err(|e| format!("free failed: {:?}", e))?;
        frames::free(b).map_err(|e| format!("free failed: {:?}", e))?;
        if frames::free(a).is_ok() {
            return Err(String::from("double free was not detected"));
        }
        if frames::stats().free != before {
            return Err(String::from("free count not restored"));
        }
        Ok(format!("alloc/free/double-free ok, {} frames free", before))
    })());

    // Memory above 4 GiB, when the machine has it, must be usable.
    let has_high = crate::boot_info::memory_map()
        .iter()
        .any(|r| r.kind == crate::boot_info::RegionKind::Usable && r.base + r.length > (4 << 30));
    if has_high {
        report("smoke-high-memory", (|| {
            let pa = frames::alloc_at_or_above(4 << 30).ok_or("no free frame above 4 GiB")?;
            let va = phys_to_virt(pa) as *mut u64;
            // SAFETY: the frame was just allocated to us and is direct-mapped.
            let ok = unsafe {
                va.write_volatile(0x1234_5678_9abc_def0);
                va.add(511).write_volatile(!0x1234_5678_9abc_def0);
                va.read_volatile() == 0x1234_5678_9abc_def0 && va.add(511).read_volatile() == !0x1234_5678_9abc_def0
            };
            frames::free(pa).map_err(|e| format!("{:?}", e))?;
            if ok { Ok(format!("frame {:#x} written and read back", pa)) } else { Err(format!("frame {:#x} did not read back", pa)) }
        })());
    }
    report("smp-online", smp_online());
}

/// Every processor the MADT marks present came online (up to MAX_CPUS;
/// Online Capable ones may, hot-plug slots need not),
/// and each AP answers an IPI: a reschedule IPI to each is counted by its
/// handler (the vector's count is shared by all CPUs). Each AP first gets
/// an NMI (its IST stack, `isr_paranoid` with the kernel's GS base, and
/// back), so an AP the NMI path broke does not answer the IPI.
fn smp_online() -> Result<String, String> {
    use crate::arch::x86_64::{percpu, smp};
    let (online, listed, present) = (percpu::online(), smp::listed(), smp::present());
    if online < present.min(percpu::MAX_CPUS) || online > listed.min(percpu::MAX_CPUS) {
        return Err(format!("{} of {} CPUs online ({} marked present)", online, listed, present));
    }
    for i in 1..online {
        let id = percpu::apic_id_of(i).ok_or("an online CPU has no APIC id")?;
        if !crate::irq::lapic::send_nmi(id) {
            return Err(format!("NMI to APIC id {} not accepted", id));
        }
    }
    crate::time::spin_ns(10_000_000);
    let v = crate::irq::VECTOR_RESCHEDULE;
    let before = trap::irq_count(v);
    for i in 1..online {
        let id = percpu::apic_id_of(i).ok_or("an online CPU has no APIC id")?;
        if !crate::irq::lapic::send_ipi(id, v) {
            return Err(format!("IPI to APIC id {} not accepted", id));
        }
    }
    let start = crate::time::uptime_ns();
    while trap::irq_count(v) - before < (online - 1) as u64 && crate::time::uptime_ns().saturating_sub(start) < 1_000_000_000 {
        core::hint::spin_loop();
    }
    let answered = trap::irq_count(v) - before;
    if answered != (online - 1) as u64 {
        return Err(format!("{} of {} APs answered a reschedule IPI", answered, online - 1));
    }
    Ok(format!("{} of {} CPUs online, {} APs answered an NMI and an IPI", online, listed, answered))
}

/// Arm recovery for `vector`, run `trigger` (which returns the RIP where it
/// expects the fault), and check what the handler saw.
fn check_fault(
    vector: u64,
    error_code: Option<u64>,
    cr2: Option<u64>,
    trigger: fn() -> u64,
) -> Result<String, String> {
    trap::expect_fault(vector);
    let expected_rip = trigger();
    let seen: Option<FaultReport> = trap::take_fault();
    let r = seen.ok_or_else(|| format!("no exception was raised (expected vector {})", vector))?;
    if r.vector != vector {
        return Err(format!("vector {} instead of {}", r.vector, vector));
    }
    if r.rip != expected_rip {
        return Err(format!("rip {:#x} instead of {:#x}", r.rip, expected_rip));
    }
    if let Some(e) = error_code {
        if r.error_code != e {
            return Err(format!("error code {:#x} instead of {:#x}", r.error_code, e));
        }
    }
    if let Some(c) = cr2 {
        if r.cr2 != c {
            return Err(format!("cr2 {:#x} instead of {:#x}", r.cr2, c));
        }
    }
    Ok(format!("vector {} error={:#x} rip={:#x} cr2={:#x}", r.vector, r.error_code, r.rip, r.cr2))
}

const UNMAPPED: u64 = 0x0000_0000_dead_b000;
static READ_ONLY: u64 = 0x5eed;
static mut NOT_EXECUTABLE: [u8; 16] = [0xc3; 16]; // `ret`s, never to be run

fn unmapped_read() -> u64 {
    let at: u64;
    // SAFETY: deliberately faults; the armed handler resumes at label 3 with
    // all registers restored.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 3f]",
            "mov [{slot}], {tmp}",
            "lea {at}, [rip + 2f]",
            "2:",
            "mov {tmp}, [{addr}]",
            "3:",
            slot = in(reg) trap::recovery_slot(),
            addr = in(reg) UNMAPPED,
            tmp = out(reg) _,
            at = out(reg) at,
        )
    }
    at
}

fn read_only_write() -> u64 {
    let at: u64;
    // SAFETY: as unmapped_read; the write to rodata must fault (WP + R--).
    unsafe {
        asm!(
            "lea {tmp}, [rip + 3f]",
            "mov [{slot}], {tmp}",
            "lea {at}, [rip + 2f]",
            "2:",
            "mov qword ptr [{addr}], 1",
            "3:",
            slot = in(reg) trap::recovery_slot(),
            addr = in(reg) core::ptr::addr_of!(READ_ONLY),
            tmp = out(reg) _,
            at = out(reg) at,
        )
    }
    at
}

fn nx_address() -> u64 {
    core::ptr::addr_of!(NOT_EXECUTABLE) as u64
}

fn nx_execute() -> u64 {
    // SAFETY: jumps into a no-execute data page; the fetch faults and the
    // handler resumes at label 3. A `jmp` (not `call`) keeps the stack as is.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 3f]",
            "mov [{slot}], {tmp}",
            "jmp {addr}",
            "3:",
            slot = in(reg) trap::recovery_slot(),
            addr = in(reg) nx_address(),
            tmp = out(reg) _,
        )
    }
    nx_address()
}

fn invalid_opcode() -> u64 {
    let at: u64;
    // SAFETY: as unmapped_read.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 3f]",
            "mov [{slot}], {tmp}",
            "lea {at}, [rip + 2f]",
            "2:",
            "ud2",
            "3:",
            slot = in(reg) trap::recovery_slot(),
            tmp = out(reg) _,
            at = out(reg) at,
        )
    }
    at
}

fn divide_error() -> u64 {
    let at: u64;
    // SAFETY: as unmapped_read; divides by zero.
    unsafe {
        asm!(
            "lea {tmp}, [rip + 3f]",
            "mov [{slot}], {tmp}",
            "lea {at}, [rip + 2f]",
            "xor edx, edx",
            "mov eax, 1",
            "xor ecx, ecx",
            "2:",
            "div ecx",
            "3:",
            slot = in(reg) trap::recovery_slot(),
            tmp = out(reg) _,
            at = out(reg) at,
            out("eax") _,
            out("ecx") _,
            out("edx") _,
        )
    }
    at
}

fn page_faults() {
    // error code bits: 1 present, 2 write, 4 user, 0x10 instruction fetch
    report("page-fault-unmapped-read", check_fault(14, Some(0x0), Some(UNMAPPED), unmapped_read));
    report(
        "page-fault-rodata-write",
        check_fault(14, Some(0x3), Some(core::ptr::addr_of!(READ_ONLY) as u64), read_only_write),
    );
    report("page-fault-nx-execute", check_fault(14, Some(0x11), Some(nx_address()), nx_execute));
}

#[inline(never)]
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let pad = [depth; 64];
    // black_box keeps the frame from being optimised away.
    core::hint::black_box(&pad);
    recurse(depth + 1) + core::hint::black_box(pad[3])
}

fn overflow_hook(r: &FaultReport) -> ! {
    let owner = stacks::guard_page_owner(r.cr2);
    let mut w = crate::arch::x86_64::serial::RawSerial;
    use core::fmt::Write;
    if owner == Some("selftest-overflow") {
        let _ = writeln!(w, "[PASS] stack-overflow: double fault on the IST stack, guard page hit at {:#x}", r.cr2);
        PASSED.fetch_add(1, Ordering::SeqCst);
    } else {
        let _ = writeln!(w, "[FAIL] stack-overflow: double fault not caused by the test stack's guard page (cr2={:#x})", r.cr2);
        FAILED.fetch_add(1, Ordering::SeqCst);
    }
    let (p, f) = (PASSED.load(Ordering::SeqCst), FAILED.load(Ordering::SeqCst));
    let _ = writeln!(w, "selftest: {} passed, {} failed", p, f);
    qemu::exit(if f == 0 { qemu::EXIT_SUCCESS } else { qemu::EXIT_FAILURE })
}

extern "C" fn overflow_on_test_stack() -> ! {
    let n = recurse(0);
    log::error!("[FAIL] stack-overflow: recursion returned {} without faulting", n);
    FAILED.fetch_add(1, Ordering::SeqCst);
    finish()
}

/// Overflow a small dedicated stack; the guard page must turn that into a
/// double fault handled on the IST stack. Ends the run.
fn stack_overflow() {
    trap::DOUBLE_FAULT_HOOK.call_once(|| overflow_hook);
    let stack = match stacks::alloc("selftest-overflow", 4) {
        Ok(s) => s,
        Err(e) => return report("stack-overflow", Err(format!("cannot allocate the test stack: {:?}", e))),
    };
    log::info!("stack-overflow: recursing on a 16 KiB stack at {:#x}..{:#x}, guard page {:#x}", stack.bottom, stack.top, stack.guard);
    // SAFETY: a fresh, mapped, unused stack; the function never returns.
    unsafe { crate::arch::x86_64::cpu::switch_stack(stack.top, overflow_on_test_stack) }
}

/// Where an AP reads for [`tlb_shootdown`] (0: nothing asked), and what it
/// read there.
static PROBE_ADDR: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static PROBE_SEEN: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);
static PROBE_DONE: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);

fn probe_handler(_vector: u8) {
    let addr = PROBE_ADDR.swap(0, Ordering::AcqRel);
    if addr != 0 {
        // SAFETY: the test maps this kernel page (and keeps a frame behind
        // the address, old or new) for as long as a probe may run.
        PROBE_SEEN.store(unsafe { (addr as *const u64).read_volatile() }, Ordering::Release);
        PROBE_DONE.store(true, Ordering::Release);
    }
}

/// Have CPU `cpu` read the word at `addr` through its own TLB (an
/// interrupt handler on it); what it read.
fn probe_on(cpu: usize, vector: u8, addr: u64) -> Result<u64, String> {
    let id = crate::arch::x86_64::percpu::apic_id_of(cpu).ok_or("the CPU has no APIC id")?;
    PROBE_SEEN.store(0, Ordering::Release);
    PROBE_DONE.store(false, Ordering::Release);
    PROBE_ADDR.store(addr, Ordering::Release);
    if !crate::irq::lapic::send_ipi(id, vector) {
        return Err(String::from("probe IPI not accepted"));
    }
    let start = crate::time::uptime_ns();
    while !PROBE_DONE.load(Ordering::Acquire) {
        if crate::time::uptime_ns().saturating_sub(start) > 1_000_000_000 {
            return Err(String::from("the AP did not answer the probe within 1 s"));
        }
        core::hint::spin_loop();
    }
    Ok(PROBE_SEEN.load(Ordering::Acquire))
}

/// TLB shootdown (`mm::tlb`): CPU 1 reads a kernel page (caching its
/// translation); the page is unmapped the way a kernel stack is, its old
/// frame (kept) is given a stale marker, and the address is mapped again
/// to a new frame with a new value. CPU 1 must read the new value; it reads the stale marker when
/// its cached translation survived. `skip`: skip the shootdown once
/// (`test=tlb-skip`), which must fail (QEMU's TCG keeps each vCPU's TLB
/// until that vCPU flushes it), so the test shows it can see the bug.
fn tlb_shootdown(skip: bool) -> Result<String, String> {
    use crate::mm::{paging, phys_to_virt, stacks};
    if crate::arch::x86_64::percpu::online() < 2 {
        return Err(String::from("needs at least 2 CPUs (QEMU_SMP=2 or more)"));
    }
    const OLD: u64 = 0x0b0b_0b0b_0b0b_0b0b;
    const STALE: u64 = 0x5747_4c45_5747_4c45;
    const NEW: u64 = 0x4e45_5721_4e45_5721;
    let vector = crate::irq::alloc_vector().map_err(|e| format!("no vector: {:?}", e))?;
    trap::set_irq_handler(vector, Some(probe_handler));
    let result = (|| {
        let stack = stacks::alloc("tlb-test", 1).map_err(|e| format!("{:?}", e))?;
        let va = stack.bottom;
        let old_frame = paging::translate(va).ok_or("the test page is not mapped")?;
        // SAFETY: our freshly mapped kernel page.
        unsafe { (va as *mut u64).write_volatile(OLD) };
        let seen = probe_on(1, vector, va)?;
        if seen != OLD {
            return Err(format!("CPU 1 read {:#x} before the unmap, not {:#x}", seen, OLD));
        }
        if skip {
            crate::mm::tlb::skip_once_for_test();
        }
        let requests = crate::mm::tlb::requests();
        let old = paging::unmap(va, 1).map_err(|e| format!("{:?}", e))?;
        crate::mm::tlb::flush_kernel(&[(va, 1)]);
        // The old frame is kept (not yet freed, as if reused by anything
        // else) and given a marker that only a stale translation shows.
        // SAFETY: the frame is still ours (unmapped, not freed), direct-mapped.
        unsafe { (phys_to_virt(old_frame) as *mut u64).write_volatile(STALE) };
        paging::map_fresh(va, 1).map_err(|e| format!("{:?}", e))?;
        // SAFETY: mapped again just now.
        unsafe { (va as *mut u64).write_volatile(NEW) };
        let seen = probe_on(1, vector, va);
        let sent = crate::mm::tlb::requests() - requests;
        paging::free_all(&old);
        stacks::free(stack);
        match seen? {
            NEW => Ok(format!("CPU 1 read the new mapping after the unmap ({} shootdown request{})", sent, if sent == 1 { "" } else { "s" })),
            STALE => Err(String::from("CPU 1 read through its stale translation (the freed frame's new contents): no shootdown reached it")),
            v => Err(format!("CPU 1 read {:#x}", v)),
        }
    })();
    trap::set_irq_handler(vector, None);
    result
}
