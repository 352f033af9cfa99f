//! Per-CPU state, reached through the GS base.
//!
//! Every CPU owns one [`PerCpu`] block in a static array of [`MAX_CPUS`]
//! (cache-line aligned, so two CPUs never share a line of hot fields). In
//! kernel mode GS_BASE points at the running CPU's block, whose first word
//! points at itself, so `gs:[OFF_...]` reaches a field in one instruction
//! and [`current`] turns the block into a Rust reference.
//!
//! The swapgs rule: user mode can change its own GS base (loading a null
//! or user selector into GS resets it on Intel), so the kernel never trusts
//! the GS base it finds on entry from user mode. In kernel mode GS_BASE is
//! the block and KERNEL_GS_BASE holds the user's GS base; every entry from
//! user mode (`syscall_entry`, `isr_common` when the interrupted CS has
//! RPL 3) executes `swapgs` first and every return to user mode executes it
//! last. NMI, double fault and machine check (the IST vectors) can arrive
//! in kernel mode in the few instructions between the user-mode switch and
//! `swapgs`, so their entry (`isr_paranoid`) reads GS_BASE and swaps only
//! when it is not a kernel (higher-half) address, swapping back on exit.
//! User mode can never make GS_BASE a higher-half address: FSGSBASE is off,
//! and a selector load sets a 32-bit base at most.
//!
//! Indices are dense: 0 is the bootstrap CPU, the application processors
//! get 1, 2, ... in the order they come online (see `smp`); the APIC ids
//! behind them need not be contiguous.

use core::arch::asm;
use core::cell::UnsafeCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use x86_64::structures::gdt::GlobalDescriptorTable;
use x86_64::structures::tss::TaskStateSegment;
use x86_64::VirtAddr;

pub const MAX_CPUS: usize = capos_kcore::run_queues::MAX_CPUS;

/// One CPU's block. The first five fields sit at the offsets the assembly
/// uses (`OFF_*`); the rest is this CPU's GDT and TSS.
#[repr(C, align(64))]
pub struct PerCpu {
    /// The block's own address (`gs:[0]`), so Rust can name it.
    self_ptr: AtomicU64,
    /// Top of the kernel stack syscalls from user mode run on.
    kernel_rsp: AtomicU64,
    /// The user's rsp, parked here by `syscall_entry` for a few instructions.
    user_rsp: AtomicU64,
    /// Dense CPU index, 0 = the bootstrap CPU.
    index: AtomicU64,
    /// Local APIC id.
    apic_id: AtomicU32,
    _pad: u32,
    /// The scheduler's current process on this CPU (`proc::table`: a
    /// pointer to its record, and its pid), kept here so the call path
    /// reaches it with one load. Opaque to this module; written only by
    /// the process table, on this CPU, under its lock.
    sched_cur: AtomicU64,
    sched_pid: AtomicU64,
    /// The PML4 its current context runs on, loaded into CR3 by the
    /// switch once the table is unlocked (`proc::switch`). Written with
    /// the two above.
    sched_tables: AtomicU64,
    /// This CPU's TSS: rsp0 and the IST stacks. Written by its own CPU
    /// (rsp0 on every switch; the IST slots once, before the TSS is
    /// loaded) or by the bootstrap CPU before the owner starts.
    pub(super) tss: UnsafeCell<TaskStateSegment>,
    /// This CPU's GDT, built once (`gdt::init_on`) before it is loaded.
    pub(super) gdt: UnsafeCell<GlobalDescriptorTable>,
    /// Set by the one `gdt::init_on` call that may build `gdt`.
    pub(super) gdt_claimed: AtomicBool,
}

#[allow(dead_code, reason = "used by `current`, itself API for the scheduler")]
pub const OFF_SELF: usize = offset_of!(PerCpu, self_ptr);
pub const OFF_KERNEL_RSP: usize = offset_of!(PerCpu, kernel_rsp);
pub const OFF_USER_RSP: usize = offset_of!(PerCpu, user_rsp);
pub const OFF_INDEX: usize = offset_of!(PerCpu, index);
pub const OFF_APIC_ID: usize = offset_of!(PerCpu, apic_id);
const OFF_SCHED_CUR: usize = offset_of!(PerCpu, sched_cur);
const OFF_SCHED_PID: usize = offset_of!(PerCpu, sched_pid);
const OFF_SCHED_TABLES: usize = offset_of!(PerCpu, sched_tables);
/// This CPU's TSS rsp0 (`privilege_stack_table[0]`).
const OFF_RSP0: usize = offset_of!(PerCpu, tss) + offset_of!(TaskStateSegment, privilege_stack_table);

impl PerCpu {
    const fn new() -> PerCpu {
        PerCpu {
            self_ptr: AtomicU64::new(0),
            kernel_rsp: AtomicU64::new(0),
            user_rsp: AtomicU64::new(0),
            index: AtomicU64::new(0),
            apic_id: AtomicU32::new(0),
            _pad: 0,
            sched_cur: AtomicU64::new(0),
            sched_pid: AtomicU64::new(0),
            sched_tables: AtomicU64::new(0),
            tss: UnsafeCell::new(TaskStateSegment::new()),
            gdt: UnsafeCell::new(GlobalDescriptorTable::new()),
            gdt_claimed: AtomicBool::new(false),
        }
    }
}

struct Blocks([PerCpu; MAX_CPUS]);
// SAFETY: the atomics are shared freely; the TSS and GDT cells are written
// only by the CPU that owns the block, or by the bootstrap CPU before that
// CPU is started (the start-up handshake orders the two), see the fields.
unsafe impl Sync for Blocks {}

static BLOCKS: Blocks = Blocks([const { PerCpu::new() }; MAX_CPUS]);
/// CPUs online; indices `0..ONLINE` are in use.
static ONLINE: AtomicUsize = AtomicUsize::new(0);

const MSR_GS_BASE: u32 = 0xc000_0101;
const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

pub(super) fn block(index: usize) -> &'static PerCpu {
    &BLOCKS.0[index]
}

fn wrmsr(msr: u32, v: u64) {
    // SAFETY: only the GS base MSRs are written here; what they point at
    // (a static block, or the user's base of zero) is what every entry
    // path expects (module docs).
    unsafe { asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags)) }
}

/// This CPU's initial APIC id (CPUID leaf 1), readable before the local
/// APIC is mapped.
fn cpuid_apic_id() -> u32 {
    super::cpu::cpuid(1, 0).1 >> 24
}

/// The bootstrap CPU's block: index 0, online. Call first thing in boot,
/// before anything uses [`index`]; `gdt::init` installs it again after it
/// reloads the segment registers.
pub fn init_bsp() {
    let b = block(0);
    b.self_ptr.store(b as *const PerCpu as u64, Ordering::Relaxed);
    b.index.store(0, Ordering::Relaxed);
    b.apic_id.store(cpuid_apic_id(), Ordering::Relaxed);
    install(0);
    ONLINE.store(1, Ordering::Release);
}

/// This CPU's index, or 0 before the boot CPU's block is installed (for
/// code that may run before [`init_bsp`]: the debug lock checker, taken
/// by the serial port's first lines). Costs a load more than [`index`].
pub fn index_early() -> usize {
    if ONLINE.load(Ordering::Acquire) == 0 {
        0
    } else {
        index()
    }
}

/// Fill in block `index` for the AP with `apic_id` before starting it.
pub(crate) fn prepare(index: usize, apic_id: u32) {
    let b = block(index);
    b.self_ptr.store(b as *const PerCpu as u64, Ordering::Relaxed);
    b.index.store(index as u64, Ordering::Relaxed);
    b.apic_id.store(apic_id, Ordering::Relaxed);
    b.kernel_rsp.store(0, Ordering::Relaxed);
}

/// Point this CPU's GS base at block `index` (kernel mode) and its
/// swapped-out base at zero (the user's).
pub(crate) fn install(index: usize) {
    wrmsr(MSR_GS_BASE, block(index) as *const PerCpu as u64);
    wrmsr(MSR_KERNEL_GS_BASE, 0);
}

/// Count CPU `index` as online (the bootstrap CPU, after the AP reported
/// ready; CPUs come online one at a time, in index order).
pub(crate) fn set_online(count: usize) {
    ONLINE.store(count, Ordering::Release);
}

/// The running CPU's block.
#[allow(dead_code, reason = "per-CPU API for the scheduler; the kernel's own uses read single fields through GS")]
#[inline(always)]
pub fn current() -> &'static PerCpu {
    let p: u64;
    // SAFETY: in kernel mode GS_BASE is this CPU's block (module docs),
    // whose first word is its own address; reading it has no side effects.
    unsafe { asm!("mov {}, gs:[{off}]", out(reg) p, off = const OFF_SELF, options(nostack, readonly, preserves_flags)) };
    // SAFETY: `p` is the address of an element of the static BLOCKS.
    unsafe { &*(p as *const PerCpu) }
}

/// The running CPU's dense index (0 = the bootstrap CPU).
#[inline(always)]
pub fn index() -> usize {
    let i: u64;
    // SAFETY: as `current`: one load from this CPU's block.
    unsafe { asm!("mov {}, gs:[{off}]", out(reg) i, off = const OFF_INDEX, options(nostack, readonly, preserves_flags)) };
    i as usize
}

/// The scheduler's current process on this CPU, as the process table
/// stored it ([`set_sched_current`]): one load each.
#[inline(always)]
pub fn sched_current() -> u64 {
    let v: u64;
    // SAFETY: as `current`: one load from this CPU's block.
    unsafe { asm!("mov {}, gs:[{off}]", out(reg) v, off = const OFF_SCHED_CUR, options(nostack, readonly, preserves_flags)) };
    v
}

#[inline(always)]
pub fn sched_pid() -> u32 {
    let v: u64;
    // SAFETY: as `current`: one load from this CPU's block.
    unsafe { asm!("mov {}, gs:[{off}]", out(reg) v, off = const OFF_SCHED_PID, options(nostack, readonly, preserves_flags)) };
    v as u32
}

/// Record this CPU's current process (the process table, under its
/// lock) and the PML4 it runs on ([`sched_tables`]).
#[inline(always)]
pub fn set_sched_current(record: u64, pid: u32, tables: u64) {
    // SAFETY: three stores into this CPU's own block through GS; only
    // this CPU writes these fields.
    unsafe {
        asm!(
            "mov gs:[{c}], {r}",
            "mov gs:[{p}], {i}",
            "mov gs:[{t}], {pml4}",
            r = in(reg) record,
            i = in(reg) pid as u64,
            pml4 = in(reg) tables,
            c = const OFF_SCHED_CUR,
            p = const OFF_SCHED_PID,
            t = const OFF_SCHED_TABLES,
            options(nostack, preserves_flags)
        )
    };
}

/// The PML4 of this CPU's current context, as the process table stored
/// it: one load.
#[inline(always)]
pub fn sched_tables() -> u64 {
    let v: u64;
    // SAFETY: as `current`: one load from this CPU's block.
    unsafe { asm!("mov {}, gs:[{off}]", out(reg) v, off = const OFF_SCHED_TABLES, options(nostack, readonly, preserves_flags)) };
    v
}

/// The running CPU's local APIC id.
pub fn apic_id() -> u32 {
    let id: u32;
    // SAFETY: as `current`: one load from this CPU's block.
    unsafe { asm!("mov {:e}, gs:[{off}]", out(reg) id, off = const OFF_APIC_ID, options(nostack, readonly, preserves_flags)) };
    id
}

/// How many CPUs are online (indices `0..online()`).
pub fn online() -> usize {
    ONLINE.load(Ordering::Acquire)
}

/// The APIC id of CPU `index`, if it is online.
pub fn apic_id_of(index: usize) -> Option<u32> {
    (index < online()).then(|| block(index).apic_id.load(Ordering::Relaxed))
}

/// The kernel stack this CPU's syscalls and user-mode interrupts run on:
/// the syscall entry's `gs:[kernel_rsp]` and the TSS's rsp0.
pub fn set_kernel_stack(top: u64) {
    // Every switch sets it; the tops are kernel stack addresses (canonical
    // by construction, `mm::stacks`), so VirtAddr::new's check is only
    // repeated in debug builds.
    debug_assert!(VirtAddr::try_new(top).is_ok());
    // Two stores through GS. SAFETY: in kernel mode GS_BASE is this CPU's
    // block; only this CPU writes its kernel_rsp and its loaded TSS's rsp0,
    // with interrupts off (the scheduler switches with them off), and the
    // CPU reads rsp0 on the next user-mode interrupt. Writing the TSS
    // through GS is the same store `(*tss).privilege_stack_table[0] = top`
    // would make.
    unsafe {
        asm!(
            "mov gs:[{k}], {t}",
            "mov gs:[{r}], {t}",
            t = in(reg) top,
            k = const OFF_KERNEL_RSP,
            r = const OFF_RSP0,
            options(nostack, preserves_flags)
        )
    };
}
