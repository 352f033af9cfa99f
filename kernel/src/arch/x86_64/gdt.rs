//! Our GDTs and TSSs, one of each per CPU (in the CPU's `percpu` block).
//! The loader's GDT lives in bootloader-reclaimable memory, so the kernel
//! installs its own before reclaiming that memory.
//!
//! Layout (the order SYSCALL/SYSRET needs later), the same on every CPU:
//! null, kernel code 0x08, kernel data 0x10, user data 0x18, user code 0x20,
//! TSS 0x28. Each CPU's TSS carries its own interrupt stacks (IST) for
//! double fault, NMI and machine check, so those handlers run on a
//! known-good stack even when the current one overflowed, and two CPUs
//! never share one.

use super::percpu;
use core::sync::atomic::Ordering;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::VirtAddr;

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub tss: SegmentSelector,
}

static SELECTORS: Once<Selectors> = Once::new();

/// The bootstrap CPU's GDT and TSS (block 0).
pub fn init() {
    init_on(0);
}

/// An application processor's GDT and TSS, in block `index`, which the
/// bootstrap CPU prepared (`percpu::prepare`, [`set_interrupt_stack_of`]).
/// Runs on that AP.
pub fn init_ap(index: usize) {
    init_on(index);
}

fn init_on(index: usize) {
    let b = percpu::block(index);
    // One build per block, ever: a second call (or a second CPU given the
    // same index) would alias the GDT the first one loaded.
    assert!(!b.gdt_claimed.swap(true, Ordering::AcqRel), "the GDT of cpu {} is already built", index);
    // SAFETY: the claim above makes this the only reference ever taken to
    // this block's GDT as `&mut`, and it ends before the shared one below.
    let gdt = unsafe { &mut *b.gdt.get() };
    *gdt = GlobalDescriptorTable::new();
    let kernel_code = gdt.append(Descriptor::kernel_code_segment());
    let kernel_data = gdt.append(Descriptor::kernel_data_segment());
    // User data then user code, in the order SYSRET expects (STAR);
    // their selectors are the constants the syscall and trap paths push.
    gdt.append(Descriptor::user_data_segment());
    gdt.append(Descriptor::user_code_segment());
    // SAFETY: the TSS lives in a static block; only rsp0 and the IST slots
    // are written later, in place (see `percpu`).
    let tss = gdt.append(Descriptor::tss_segment(unsafe { &*b.tss.get() }));
    let sel = SELECTORS.call_once(|| Selectors { kernel_code, kernel_data, tss });
    // SAFETY: built above; from here on only read (by the CPU).
    let gdt: &'static GlobalDescriptorTable = unsafe { &*b.gdt.get() };
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded (every CPU's GDT has
    // the same layout, so the first CPU's selectors fit all).
    unsafe {
        CS::set_reg(sel.kernel_code);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        SS::set_reg(sel.kernel_data);
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(sel.tss);
    }
    // A null GS load may have cleared the GS base: point it at this CPU's
    // block again.
    percpu::install(index);
}

pub fn selectors() -> &'static Selectors {
    SELECTORS.get().expect("gdt::init not called")
}

/// Point IST slot `ist` (1..=7) of this CPU's TSS at `stack_top`.
pub fn set_interrupt_stack(ist: u8, stack_top: u64) {
    set_interrupt_stack_of(percpu::index(), ist, stack_top);
}

/// Point IST slot `ist` (1..=7) of CPU `index`'s TSS at `stack_top`: the
/// bootstrap CPU's own during boot, or an AP's before it starts.
pub fn set_interrupt_stack_of(index: usize, ist: u8, stack_top: u64) {
    assert!((1..=7).contains(&ist));
    let b = percpu::block(index);
    // SAFETY: called during single-threaded boot for the bootstrap CPU, or
    // for an AP that is not running yet (`smp` prepares it first); the CPU
    // reads the IST only when an exception using it is delivered, and a
    // 64-bit store is atomic.
    unsafe { (*b.tss.get()).interrupt_stack_table[(ist - 1) as usize] = VirtAddr::new(stack_top) };
}
