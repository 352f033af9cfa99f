//! Application processor start-up: the kernel's own INIT-SIPI-SIPI
//! trampoline (docs/smp.md).
//!
//! Why our own trampoline rather than the Limine MP request: it works under
//! any Limine-protocol loader, ours included, without asking the loader for
//! anything; the kernel owns each CPU's start-up deadline and the log
//! lines about it; and there is one code path on every machine.
//!
//! How: early in boot ([`reserve_low_memory`], before the page tables take
//! the low frames) five contiguous frames below 1 MiB are set aside: the
//! trampoline page and a temporary PML4/PDPT/PD/PT. The PML4 copies the
//! kernel's upper half and identity-maps the trampoline page, and lies below
//! 4 GiB, as the 32-bit `mov cr3` needs. For each AP in turn the bootstrap
//! CPU fills in the trampoline's data (stack, entry, CPU index), sends INIT,
//! waits 10 ms, sends a SIPI, waits 200 µs, sends a second SIPI if the AP
//! has not checked in, and waits until [`DEADLINE_NS`] after the first SIPI.
//! The AP goes real mode → protected mode → long mode on the temporary
//! tables, onto its own kernel stack, into [`ap_entry`], which switches to
//! the kernel's tables, checks in, sets up its GDT/TSS (own IST stacks),
//! IDT, protections, SYSCALL MSRs and LAPIC (timer at the bootstrap CPU's
//! rate), reports ready, and parks in `proc::ap_main`. An AP that misses
//! its deadline is logged, sent INIT again (back to waiting for a SIPI) and
//! left out; the others still start.

use super::{cpu, gdt, idt, percpu, syscall};
use crate::irq::lapic;
use crate::mm::{frames, paging, phys_to_virt, stacks, PAGE_SIZE};
use alloc::vec::Vec;
use capos_kcore::acpi::Madt;
use core::arch::{asm, global_asm};
use core::fmt::Write as _;
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// How long an AP has to check in after its first SIPI. Generous for real
/// hardware (microseconds); QEMU under TCG on a busy host may take a while
/// to schedule a new vCPU thread.
pub const DEADLINE_NS: u64 = 500_000_000;
/// How long a checked-in AP has to finish its set-up.
const READY_NS: u64 = 2_000_000_000;
const AP_STACK_PAGES: u64 = 16; // 64 KiB, the AP's idle / scheduler stack
const IST_STACK_PAGES: u64 = 4; // 16 KiB

// Real mode at CS:0 = P:0 (P = the trampoline page), then protected mode
// on the trampoline's own GDT, then long mode on the temporary PML4, then a
// call to the Rust entry with the index in rdi on the AP's own stack. Every
// address the code needs at run time is an offset from P (ebx), or a field
// the bootstrap CPU fills in (`tr_*`).
global_asm!(
    r#"
    .pushsection .rodata.ap_trampoline, "a"
    .balign 16
    .global ap_trampoline_start
ap_trampoline_start:
    .code16
    cli
    cld
    xorl %ebx, %ebx
    movw %cs, %bx
    movw %bx, %ds
    shll $4, %ebx
    lgdtl (tr_gdtr - ap_trampoline_start)
    movl %cr0, %eax
    orl $1, %eax
    movl %eax, %cr0
    ljmpl *(tr_far32 - ap_trampoline_start)
    .code32
tr_protected:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    movl %cr4, %eax
    orl $0x20, %eax
    movl %eax, %cr4
    movl (tr_cr3 - ap_trampoline_start)(%ebx), %eax
    movl %eax, %cr3
    movl $0xc0000080, %ecx
    rdmsr
    orl $0x900, %eax
    wrmsr
    movl %cr0, %eax
    orl $0x80000001, %eax
    movl %eax, %cr0
    ljmpl *(tr_far64 - ap_trampoline_start)(%ebx)
    .code64
tr_long:
    movl %ebx, %ebx
    movq (tr_stack - ap_trampoline_start)(%rbx), %rsp
    movq (tr_arg - ap_trampoline_start)(%rbx), %rdi
    movq (tr_entry - ap_trampoline_start)(%rbx), %rax
    xorl %ebp, %ebp
    callq *%rax
    ud2
    .balign 8
tr_gdt:
    .quad 0
    .quad 0x00cf9a000000ffff
    .quad 0x00cf92000000ffff
    .quad 0x00af9a000000ffff
tr_gdt_end:
    .global tr_gdtr
tr_gdtr:
    .word tr_gdt_end - tr_gdt - 1
    .long 0
    .global tr_far32
tr_far32:
    .long 0
    .word 0x08
    .global tr_far64
tr_far64:
    .long 0
    .word 0x18
    .balign 8
    .global tr_cr3
tr_cr3:
    .quad 0
    .global tr_stack
tr_stack:
    .quad 0
    .global tr_entry
tr_entry:
    .quad 0
    .global tr_arg
tr_arg:
    .quad 0
    .global ap_trampoline_end
ap_trampoline_end:
    .global tr_offsets
    .balign 8
tr_offsets:
    .quad tr_gdt - ap_trampoline_start
    .quad tr_protected - ap_trampoline_start
    .quad tr_long - ap_trampoline_start
    .popsection
"#,
    options(att_syntax)
);

extern "C" {
    static ap_trampoline_start: u8;
    static ap_trampoline_end: u8;
    static tr_gdtr: u8;
    static tr_far32: u8;
    static tr_far64: u8;
    static tr_cr3: u8;
    static tr_stack: u8;
    static tr_entry: u8;
    static tr_arg: u8;
    /// Offsets of tr_gdt, tr_protected and tr_long in the trampoline.
    static tr_offsets: [u64; 3];
}

/// Frames below 1 MiB: the trampoline page, PML4, PDPT, PD, PT.
const LOW_PAGES: u64 = 5;
static LOW_BASE: AtomicU64 = AtomicU64::new(0);

/// Set aside the trampoline's frames below 1 MiB. Call right after
/// `frames::init`, before anything else allocates (page tables take the
/// lowest free frames). Without them the kernel runs on one CPU.
pub fn reserve_low_memory() {
    match frames::alloc_contiguous(LOW_PAGES, 1) {
        Some(base) if base + LOW_PAGES * PAGE_SIZE <= 0x10_0000 => LOW_BASE.store(base, Ordering::Relaxed),
        Some(base) => {
            for i in 0..LOW_PAGES {
                let _ = frames::free(base + i * PAGE_SIZE);
            }
        }
        None => {}
    }
}

// The start-up handshake for the AP being started (one at a time).
const WAITING: u32 = 1;
const CLAIMED: u32 = 2;
const READY: u32 = 3;
const ABANDONED: u32 = 4;
static STATE: AtomicU32 = AtomicU32::new(0);
static EXPECTED_APIC: AtomicU32 = AtomicU32::new(u32::MAX);
/// The bootstrap CPU's CR0 and CR4, which every AP copies (less bits the
/// kernel never wants, see `ap_entry`).
static BSP_CR0: AtomicU64 = AtomicU64::new(0);
static BSP_CR4: AtomicU64 = AtomicU64::new(0);

/// Usable processors the MADT lists (the bootstrap CPU included), and
/// how many of them are marked present (Enabled, not only Online Capable).
static LISTED: AtomicU64 = AtomicU64::new(1);
static PRESENT: AtomicU64 = AtomicU64::new(1);

/// How many processors the MADT lists as usable (enabled or
/// online-capable, the bootstrap CPU included; 1 without a MADT).
pub fn listed() -> usize {
    LISTED.load(Ordering::Relaxed) as usize
}

/// How many of [`listed`] the MADT marks Enabled (present now): each of
/// those must come online; an Online Capable one may be an empty hot-plug
/// slot (it is tried, and misses its deadline).
pub fn present() -> usize {
    PRESENT.load(Ordering::Relaxed) as usize
}

fn sym<T>(s: &T) -> u64 {
    s as *const T as u64
}

/// Offset of trampoline symbol `s` from its start.
fn off<T>(s: &T) -> u64 {
    // SAFETY: only the linker symbols' addresses are used.
    sym(s) - sym(unsafe { &ap_trampoline_start })
}

/// Write `v` at offset `at` of the trampoline page (direct-mapped).
fn poke<T: Copy>(page: u64, at: u64, v: T) {
    // SAFETY: `at` is the offset of a field of the trampoline, which lies
    // inside the reserved page (checked in `copy_trampoline`); the page is
    // ours, and no AP runs the trampoline while the bootstrap CPU writes.
    unsafe { core::ptr::write_unaligned(phys_to_virt(page + at) as *mut T, v) }
}

/// Copy the trampoline into its page and build the temporary tables.
fn copy_trampoline(base: u64) -> Result<(), &'static str> {
    // SAFETY: linker symbols; only their addresses are taken.
    let (start, end) = unsafe { (sym(&ap_trampoline_start), sym(&ap_trampoline_end)) };
    let len = end - start;
    if len > PAGE_SIZE {
        return Err("the trampoline is larger than a page");
    }
    // SAFETY: the five frames are reserved for us (reserve_low_memory) and
    // direct-mapped; the source is the trampoline's bytes in .rodata.
    unsafe {
        core::ptr::write_bytes(phys_to_virt(base) as *mut u8, 0, (LOW_PAGES * PAGE_SIZE) as usize);
        core::ptr::copy_nonoverlapping(start as *const u8, phys_to_virt(base) as *mut u8, len as usize);
    }
    // SAFETY: a static table of three offsets emitted by the assembler.
    let [gdt, prot, long] = unsafe { tr_offsets };
    // SAFETY (all `off` calls): addresses of the trampoline's labels.
    unsafe {
        poke(base, off(&tr_gdtr) + 2, (base + gdt) as u32);
        poke(base, off(&tr_far32), (base + prot) as u32);
        poke(base, off(&tr_far64), (base + long) as u32);
        poke(base, off(&tr_cr3), base + PAGE_SIZE);
    }
    let (pml4, pdpt, pd, pt) = (base + PAGE_SIZE, base + 2 * PAGE_SIZE, base + 3 * PAGE_SIZE, base + 4 * PAGE_SIZE);
    let table = |pa: u64| phys_to_virt(pa) as *mut u64;
    const PRESENT_WRITABLE: u64 = 0b11;
    // SAFETY: the four table frames are ours and zeroed (above); the kernel
    // PML4 is direct-mapped and its upper half is fixed after paging::init
    // (every slot has its table), so copying the entries shares every
    // kernel mapping made later too.
    unsafe {
        let kernel = table(paging::kernel_pml4());
        for i in 256..512 {
            *table(pml4).add(i) = *kernel.add(i);
        }
        *table(pml4) = pdpt | PRESENT_WRITABLE;
        *table(pdpt) = pd | PRESENT_WRITABLE;
        *table(pd) = pt | PRESENT_WRITABLE;
        // The trampoline page at its own address, executable.
        *table(pt).add((base >> 12) as usize & 511) = base | PRESENT_WRITABLE;
    }
    Ok(())
}

/// The processors the MADT says may be started: enabled or online-capable,
/// deduplicated by APIC id (a machine may list one in both LAPIC forms).
fn candidates(madt: &Madt) -> Vec<u32> {
    let mut ids: Vec<u32> = Vec::new();
    for l in madt.local_apics.iter().filter(|l| l.enabled) {
        if !ids.contains(&l.apic_id) {
            ids.push(l.apic_id);
        }
    }
    ids
}

/// Start every other usable processor, one at a time, and log one summary
/// line. Needs the LAPIC (and its timer calibrated) and the kernel's page
/// tables; runs on the bootstrap CPU.
pub fn start_aps(madt: Option<&Madt>) {
    let Some(madt) = madt else {
        log::info!("smp: no MADT; 1 of 1 CPUs online");
        return;
    };
    let bsp = lapic::id() as u32;
    let ids = candidates(madt);
    let listed = ids.len().max(1);
    LISTED.store(listed as u64, Ordering::Relaxed);
    let mut present: Vec<u32> = madt.local_apics.iter().filter(|l| l.present).map(|l| l.apic_id).collect();
    present.sort_unstable();
    present.dedup();
    PRESENT.store(present.len().max(1) as u64, Ordering::Relaxed);
    let others: Vec<u32> = ids.iter().copied().filter(|&id| id != bsp).collect();
    let mut online_ids = alloc::vec![bsp];
    let base = LOW_BASE.load(Ordering::Relaxed);
    if !others.is_empty() && !lapic::is_enabled() {
        log::warn!("smp: no local APIC; running on one CPU");
    } else if !others.is_empty() && base == 0 {
        log::warn!("smp: no free 4 KiB page below 1 MiB for the start-up trampoline; running on one CPU");
    } else if !others.is_empty() {
        match copy_trampoline(base) {
            Ok(()) => bring_up(base, &others, &mut online_ids),
            Err(e) => log::warn!("smp: {}; running on one CPU", e),
        }
    }
    let mut line = alloc::string::String::new();
    for (i, id) in online_ids.iter().enumerate() {
        let _ = write!(line, "{}{}", if i > 0 { " " } else { "" }, id);
    }
    log::info!("smp: {} of {} CPUs online (APIC ids {})", online_ids.len(), listed, line);
}

fn bring_up(base: u64, others: &[u32], online_ids: &mut Vec<u32>) {
    BSP_CR0.store(cpu::read_cr0(), Ordering::Relaxed);
    BSP_CR4.store(cpu::read_cr4(), Ordering::Relaxed);
    let page = (base >> 12) as u8;
    for &apic_id in others {
        let index = online_ids.len();
        if index >= percpu::MAX_CPUS {
            log::warn!("smp: cpu with APIC id {} left out: at most {} CPUs", apic_id, percpu::MAX_CPUS);
            continue;
        }
        if apic_id > 254 {
            log::warn!("smp: cpu with APIC id {} left out: only xAPIC ids (0..=254) can be started", apic_id);
            continue;
        }
        let stack = stacks::alloc("ap-kernel", AP_STACK_PAGES);
        let mut ist = [0u64; 3];
        let mut ok = stack.is_ok();
        for (slot, name) in ist.iter_mut().zip(["ap-ist-double-fault", "ap-ist-nmi", "ap-ist-machine-check"]) {
            match stacks::alloc(name, IST_STACK_PAGES) {
                Ok(s) => *slot = s.top,
                Err(_) => ok = false,
            }
        }
        let Ok(stack) = stack.map_err(|_| ()).and_then(|s| if ok { Ok(s) } else { Err(()) }) else {
            log::warn!("smp: no kernel stacks for the cpu with APIC id {}; no more CPUs started", apic_id);
            return;
        };
        percpu::prepare(index, apic_id);
        gdt::set_interrupt_stack_of(index, gdt::IST_DOUBLE_FAULT, ist[0]);
        gdt::set_interrupt_stack_of(index, gdt::IST_NMI, ist[1]);
        gdt::set_interrupt_stack_of(index, gdt::IST_MACHINE_CHECK, ist[2]);
        // SAFETY (the `off` calls): addresses of the trampoline's labels.
        unsafe {
            poke(base, off(&tr_stack), stack.top);
            poke(base, off(&tr_entry), ap_entry as *const () as usize as u64);
            poke(base, off(&tr_arg), index as u64);
        }
        EXPECTED_APIC.store(apic_id, Ordering::SeqCst);
        STATE.store(WAITING, Ordering::SeqCst);

        // INIT, 10 ms, SIPI, 200 µs, a second SIPI if it has not checked in
        // (Intel SDM vol. 3, "MP initialization"), then the deadline.
        lapic::send_init(apic_id);
        crate::time::spin_ns(10_000_000);
        let first_sipi = crate::time::uptime_ns();
        lapic::send_startup(apic_id, page);
        crate::time::spin_ns(200_000);
        if STATE.load(Ordering::SeqCst) == WAITING {
            lapic::send_startup(apic_id, page);
        }
        while STATE.load(Ordering::SeqCst) == WAITING && crate::time::uptime_ns().saturating_sub(first_sipi) < DEADLINE_NS {
            core::hint::spin_loop();
        }
        if STATE.compare_exchange(WAITING, ABANDONED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
            log::warn!("smp: cpu with APIC id {} did not start within {} ms; left out", apic_id, DEADLINE_NS / 1_000_000);
            // Back to waiting for a SIPI, so it cannot run the trampoline
            // later with the next CPU's data. Its stacks stay allocated.
            lapic::send_init(apic_id);
            continue;
        }
        let claimed = crate::time::uptime_ns();
        while STATE.load(Ordering::SeqCst) != READY && crate::time::uptime_ns().saturating_sub(claimed) < READY_NS {
            core::hint::spin_loop();
        }
        if STATE.load(Ordering::SeqCst) != READY {
            log::warn!("smp: cpu with APIC id {} checked in but did not finish its set-up; no more CPUs started", apic_id);
            return;
        }
        online_ids.push(apic_id);
        percpu::set_online(index + 1);
    }
}

/// Write CR0 and CR4 as the bootstrap CPU has them (paging, WP, SMEP,
/// SMAP, UMIP, PGE, ...), less FSGSBASE (the swapgs rule relies on user
/// mode not writing its GS base directly) and LA57 (4-level paging).
fn copy_control_registers() {
    const CR4_FSGSBASE: u64 = 1 << 16;
    const CR4_LA57: u64 = 1 << 12;
    let cr0 = BSP_CR0.load(Ordering::Relaxed);
    let cr4 = BSP_CR4.load(Ordering::Relaxed) & !(CR4_FSGSBASE | CR4_LA57);
    // SAFETY: the bootstrap CPU runs the same kernel with these values; the
    // AP is on the kernel's tables already, in long mode (PG, PE, PAE set
    // in both), and the kernel touches no user memory here.
    unsafe {
        asm!("mov cr0, {}", in(reg) cr0, options(nostack));
        asm!("mov cr4, {}", in(reg) cr4, options(nostack));
    }
}

/// Where an AP lands from the trampoline, on its own stack, with the
/// temporary tables and no GDT/IDT of ours.
extern "C" fn ap_entry(index: u64) -> ! {
    let index = index as usize;
    // GS first, so anything that asks for this CPU's index gets it.
    percpu::install(index);
    paging::activate_kernel_tables();
    // A CPU that is not the one being started (one that missed an earlier
    // deadline and woke late) must not touch anything: stop it here.
    if lapic::id() as u32 != EXPECTED_APIC.load(Ordering::SeqCst)
        || STATE.compare_exchange(WAITING, CLAIMED, Ordering::SeqCst, Ordering::SeqCst).is_err()
    {
        cpu::halt_forever();
    }
    copy_control_registers();
    gdt::init_ap(index);
    idt::load();
    let _ = cpu::enable_protections(&cpu::features());
    syscall::init();
    lapic::init_ap();
    lapic::start_periodic(lapic::timer_period_hz());
    STATE.store(READY, Ordering::SeqCst);
    crate::proc::ap_main(index)
}
