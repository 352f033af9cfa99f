//! Our GDT and TSS. The loader's GDT lives in bootloader-reclaimable memory,
//! so the kernel installs its own before reclaiming that memory.
//!
//! Layout (the order SYSCALL/SYSRET needs later): null, kernel code 0x08,
//! kernel data 0x10, user data 0x18, user code 0x20, TSS 0x28.
//! The TSS carries the interrupt stacks (IST) for double fault, NMI and
//! machine check, so those handlers run on a known-good stack even when the
//! current one overflowed.

use core::cell::UnsafeCell;
use spin::Once;
use x86_64::instructions::segmentation::{Segment, CS, DS, ES, FS, GS, SS};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

/// IST slots (1-based in the IDT, 0-based in the TSS array).
pub const IST_DOUBLE_FAULT: u8 = 1;
pub const IST_NMI: u8 = 2;
pub const IST_MACHINE_CHECK: u8 = 3;

struct TssCell(UnsafeCell<TaskStateSegment>);
// SAFETY: the TSS is written only during single-threaded boot
// (`set_interrupt_stack`) and otherwise read by the CPU.
unsafe impl Sync for TssCell {}

static TSS: TssCell = TssCell(UnsafeCell::new(TaskStateSegment::new()));

pub struct Selectors {
    pub kernel_code: SegmentSelector,
    pub kernel_data: SegmentSelector,
    pub tss: SegmentSelector,
}

static GDT: Once<(GlobalDescriptorTable, Selectors)> = Once::new();

pub fn init() {
    let (gdt, sel) = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kernel_code = gdt.append(Descriptor::kernel_code_segment());
        let kernel_data = gdt.append(Descriptor::kernel_data_segment());
        // User data then user code, in the order SYSRET expects (STAR);
        // their selectors are the constants the syscall and trap paths push.
        gdt.append(Descriptor::user_data_segment());
        gdt.append(Descriptor::user_code_segment());
        // SAFETY: TSS is a static that lives forever; see TssCell.
        let tss = gdt.append(Descriptor::tss_segment(unsafe { &*TSS.0.get() }));
        (gdt, Selectors { kernel_code, kernel_data, tss })
    });
    gdt.load();
    // SAFETY: the selectors index the GDT just loaded.
    unsafe {
        CS::set_reg(sel.kernel_code);
        DS::set_reg(sel.kernel_data);
        ES::set_reg(sel.kernel_data);
        SS::set_reg(sel.kernel_data);
        FS::set_reg(SegmentSelector(0));
        GS::set_reg(SegmentSelector(0));
        load_tss(sel.tss);
    }
}

pub fn selectors() -> &'static Selectors {
    &GDT.get().expect("gdt::init not called").1
}

/// The stack the CPU switches to when an interrupt arrives in user mode.
pub fn set_privilege_stack(stack_top: u64) {
    // Every switch sets it; the tops are kernel stack addresses (canonical
    // by construction, `mm::stacks`), so VirtAddr::new's check is only
    // repeated in debug builds.
    debug_assert!(VirtAddr::try_new(stack_top).is_ok());
    // SAFETY: as set_interrupt_stack; updated only with interrupts off.
    // new_unsafe: canonical, as above.
    unsafe { (*TSS.0.get()).privilege_stack_table[0] = VirtAddr::new_unsafe(stack_top) };
}

/// Point IST slot `ist` (1..=7) at `stack_top`.
pub fn set_interrupt_stack(ist: u8, stack_top: u64) {
    assert!((1..=7).contains(&ist));
    // SAFETY: single-threaded boot; the CPU reads the IST only when an
    // exception using it is delivered, and a 64-bit store is atomic.
    unsafe { (*TSS.0.get()).interrupt_stack_table[(ist - 1) as usize] = VirtAddr::new(stack_top) };
}
