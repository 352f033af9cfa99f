//! A minimal NVMe bring-up used to prove MSI-X delivery end to end: reset
//! the controller, create the admin queue pair, route the admin completion
//! queue's interrupt through MSI-X entry 0 to a pool vector, issue one
//! Identify Controller command and wait for the *interrupt* (the completion
//! queue is only read after the handler ran). The full driver with I/O
//! queues is a separate piece of work.

use crate::mm::{frames, phys_to_virt};
use crate::pci::{self, msix::Msix, Device};
use alloc::format;
use alloc::string::String;
use core::sync::atomic::{AtomicU64, AtomicU8, Ordering};

static INTERRUPTS: AtomicU64 = AtomicU64::new(0);
static VECTOR: AtomicU8 = AtomicU8::new(0);

fn on_admin_interrupt(_v: u8) {
    INTERRUPTS.fetch_add(1, Ordering::SeqCst);
}

struct Regs(u64);

impl Regs {
    fn r32(&self, off: u64) -> u32 {
        // SAFETY: `self.0` maps BAR0's register page(s) uncached.
        unsafe { core::ptr::read_volatile((self.0 + off) as *const u32) }
    }
    fn w32(&self, off: u64, v: u32) {
        // SAFETY: as r32.
        unsafe { core::ptr::write_volatile((self.0 + off) as *mut u32, v) }
    }
    fn r64(&self, off: u64) -> u64 {
        self.r32(off) as u64 | (self.r32(off + 4) as u64) << 32
    }
    fn w64(&self, off: u64, v: u64) {
        self.w32(off, v as u32);
        self.w32(off + 4, (v >> 32) as u32);
    }
}

const CAP: u64 = 0x00;
const CC: u64 = 0x14;
const CSTS: u64 = 0x1c;
const AQA: u64 = 0x24;
const ASQ: u64 = 0x28;
const ACQ: u64 = 0x30;

fn wait_ready(regs: &Regs, ready: bool, timeout_ms: u64) -> Result<(), String> {
    let start = crate::time::uptime_ns();
    loop {
        let csts = regs.r32(CSTS);
        if csts & 2 != 0 {
            return Err(format!("controller fatal status (CSTS={:#x})", csts));
        }
        if (csts & 1 != 0) == ready {
            return Ok(());
        }
        if crate::time::uptime_ns() - start > timeout_ms * 1_000_000 {
            return Err(format!("CSTS.RDY did not become {} within {} ms", ready as u8, timeout_ms));
        }
        core::hint::spin_loop();
    }
}

pub fn find() -> Option<&'static Device> {
    pci::get()?.devices.iter().find(|d| d.class == 0x01 && d.subclass == 0x08 && d.prog_if == 0x02)
}

/// Run the probe; returns a description of what happened on success.
pub fn msix_identify(dev: &Device) -> Result<String, String> {
    let bar = dev.bar(0).ok_or("NVMe controller has no BAR0")?;
    let regs = Regs(pci::map_bar_region(dev, 0, 0, bar.size.min(0x4000)).map_err(|e| format!("mapping BAR0: {:?}", e))?);
    pci::enable_bus_master(dev);
    let cap = regs.r64(CAP);
    let timeout_ms = ((cap >> 24) & 0xff).max(1) * 500;
    let dstrd = (cap >> 32) & 0xf;
    if regs.r32(CC) & 1 != 0 {
        regs.w32(CC, 0);
    }
    wait_ready(&regs, false, timeout_ms)?;

    let asq = frames::alloc_zeroed().ok_or("out of memory")?;
    let acq = frames::alloc_zeroed().ok_or("out of memory")?;
    let ident = frames::alloc_zeroed().ok_or("out of memory")?;
    regs.w32(AQA, (15 << 16) | 15);
    regs.w64(ASQ, asq);
    regs.w64(ACQ, acq);

    let msix = Msix::new(dev).map_err(|e| format!("MSI-X: {:?}", e))?;
    let vector = crate::irq::alloc_vector().map_err(|e| format!("no vector: {:?}", e))?;
    VECTOR.store(vector, Ordering::SeqCst);
    crate::arch::x86_64::trap::set_irq_handler(vector, Some(on_admin_interrupt));
    msix.program(0, crate::irq::lapic::id(), vector).map_err(|e| format!("MSI-X: {:?}", e))?;
    msix.set_function_mask(dev, false);

    // 64-byte submission entries, 16-byte completions, 4 KiB pages, enable.
    regs.w32(CC, (4 << 20) | (6 << 16) | 1);
    wait_ready(&regs, true, timeout_ms)?;

    // Identify Controller: opcode 0x06, command id 0x42, CNS = 1.
    let sqe = phys_to_virt(asq) as *mut u32;
    // SAFETY: `asq` is our zeroed 4 KiB submission queue; entry 0 is 16 dwords.
    unsafe {
        sqe.write_volatile(0x06 | (0x42 << 16));
        sqe.add(6).write_volatile(ident as u32);
        sqe.add(7).write_volatile((ident >> 32) as u32);
        sqe.add(10).write_volatile(1);
    }
    let before = INTERRUPTS.load(Ordering::SeqCst);
    regs.w32(0x1000, 1); // admin SQ tail doorbell
    let start = crate::time::uptime_ns();
    crate::arch::x86_64::trap::set_interrupts(true);
    while INTERRUPTS.load(Ordering::SeqCst) == before {
        if crate::time::uptime_ns() - start > 2_000_000_000 {
            return Err(format!("no MSI-X interrupt on vector {:#x} within 2 s of ringing the doorbell", vector));
        }
        core::hint::spin_loop();
    }
    let waited_us = (crate::time::uptime_ns() - start) / 1000;
    // Only now look at the completion queue.
    let cqe = phys_to_virt(acq) as *const u32;
    // SAFETY: `acq` is our completion queue page; entry 0 is 4 dwords.
    let (dw2, dw3) = unsafe { (cqe.add(2).read_volatile(), cqe.add(3).read_volatile()) };
    let cid = dw3 & 0xffff;
    let phase = (dw3 >> 16) & 1;
    let status = (dw3 >> 17) & 0x7fff;
    regs.w32(0x1000 + (4 << dstrd), 1); // admin CQ head doorbell
    if phase != 1 || cid != 0x42 {
        return Err(format!("completion entry not posted (phase {}, cid {:#x}, sq head {})", phase, cid, dw2 & 0xffff));
    }
    if status != 0 {
        return Err(format!("Identify failed with status {:#x}", status));
    }
    // SAFETY: the identify page was written by the device (DMA) and is ours.
    let id = unsafe { core::slice::from_raw_parts(phys_to_virt(ident) as *const u8, 4096) };
    let text = |r: core::ops::Range<usize>| String::from_utf8_lossy(&id[r]).trim().replace('\0', "");
    let detail = format!(
        "MSI-X entry 0 -> vector {:#x} delivered {} interrupt(s) {} us after the doorbell; Identify ok: model '{}', serial '{}', firmware '{}'",
        vector,
        INTERRUPTS.load(Ordering::SeqCst) - before,
        waited_us,
        text(24..64),
        text(4..24),
        text(64..72)
    );
    crate::drivers::register(format!("nvme-probe@{}", dev.address()), "nvme MSI-X probe", format!("model '{}'", text(24..64)));
    // Leave the controller disabled; the real driver re-initialises it.
    regs.w32(CC, 0);
    msix.set_masked(0, true).ok();
    Ok(detail)
}

pub fn interrupts() -> u64 {
    INTERRUPTS.load(Ordering::SeqCst)
}
