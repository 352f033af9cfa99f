//! The trap entry path: generated stubs push the vector (and a zero error
//! code where the CPU pushes none), `isr_common` saves every general
//! purpose register into a [`TrapFrame`] and calls [`trap_dispatch`].
//!
//! GS (the `percpu` swapgs rule): `isr_common` executes `swapgs` on entry
//! and again just before `iretq` when the interrupted CS has RPL 3 (two
//! instructions, `test` and a branch, when it came from the kernel). The
//! IST vectors (NMI, double fault, machine check) may interrupt the kernel
//! between a user-mode switch and its `swapgs`, so their stubs enter
//! `isr_paranoid` instead, which reads GS_BASE and swaps only when it is
//! not a kernel address, and swaps back on the way out.
//!
//! Exceptions in the kernel are reported with vector, error code, RIP, CR2
//! and all registers, then end the run (a self-test may arm a one-shot
//! recovery first, see `expect_fault`). Interrupt vectors (32..255) go to a
//! registered handler table that the platform layer fills.

use super::cpu::read_cr2;
use super::serial::RawSerial;
use core::arch::{asm, global_asm};
use core::fmt::Write;
use core::sync::atomic::{AtomicU64, Ordering};

global_asm!(include_str!(concat!(env!("OUT_DIR"), "/isr_stubs.s")));

global_asm!(
    r#"
.section .text.isr, "ax"
.global isr_common
isr_common:
    test byte ptr [rsp + 24], 3
    jz 5f
    swapgs
5:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    cld
    mov rdi, rsp
    call {dispatch}
.global isr_return
isr_return:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    test byte ptr [rsp + 8], 3
    jz 2f
    swapgs
2:
    iretq

.global isr_paranoid
isr_paranoid:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    push rbx
    push rbp
    push r12
    push r13
    push r14
    push r15
    cld
    xor ebx, ebx
    mov ecx, 0xc0000101
    rdmsr
    test edx, edx
    js 3f
    swapgs
    mov ebx, 1
3:
    mov rdi, rsp
    call {dispatch}
    test ebx, ebx
    jz 4f
    swapgs
4:
    pop r15
    pop r14
    pop r13
    pop r12
    pop rbp
    pop rbx
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16
    iretq
"#,
    dispatch = sym trap_dispatch,
);

/// Registers as saved by `isr_common`, lowest address first.
#[repr(C)]
#[derive(Debug)]
pub struct TrapFrame {
    // The callee-saved registers first (lowest addresses): a syscall
    // frame leaves these six slots unwritten (`syscall_entry`).
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

pub const EXCEPTION_NAMES: [&str; 32] = [
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range exceeded",
    "invalid opcode", "device not available", "double fault", "coprocessor segment overrun",
    "invalid TSS", "segment not present", "stack-segment fault", "general protection fault",
    "page fault", "reserved", "x87 floating point", "alignment check", "machine check",
    "SIMD floating point", "virtualization", "control protection", "reserved", "reserved",
    "reserved", "reserved", "reserved", "reserved", "hypervisor injection", "VMM communication",
    "security", "reserved",
];

/// What an exception looked like, for self-tests to check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FaultReport {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cr2: u64,
}

// One-shot recovery armed by a self-test: the vector it expects (or
// u64::MAX) and where to resume.
static EXPECT_VECTOR: AtomicU64 = AtomicU64::new(u64::MAX);
static RECOVER_RIP: AtomicU64 = AtomicU64::new(0);
static LAST_FAULT: crate::sync::Lock<Option<FaultReport>> = crate::sync::Lock::new(&crate::sync::classes::TRAP_LAST_FAULT, None);

/// Arm a one-shot recovery: the next exception `vector` resumes at the
/// address the test stores into [`recovery_slot`] just before faulting.
pub fn expect_fault(vector: u64) {
    *LAST_FAULT.lock() = None;
    RECOVER_RIP.store(0, Ordering::SeqCst);
    EXPECT_VECTOR.store(vector, Ordering::SeqCst);
}

/// Where a self-test's assembly stores its resume address.
pub fn recovery_slot() -> *mut u64 {
    RECOVER_RIP.as_ptr()
}

/// Disarm and return the fault that was recovered from, if any.
pub fn take_fault() -> Option<FaultReport> {
    EXPECT_VECTOR.store(u64::MAX, Ordering::SeqCst);
    LAST_FAULT.lock().take()
}

/// A hook a self-test may set to claim a double fault (the stack-overflow
/// test); it gets the report and must not return.
pub static DOUBLE_FAULT_HOOK: spin::Once<fn(&FaultReport) -> !> = spin::Once::new();

/// Interrupt handlers for vectors 32..=255, set by the platform layer.
pub type IrqHandler = fn(vector: u8);
static IRQ_HANDLERS: crate::sync::RwLock<[Option<IrqHandler>; 256]> = crate::sync::RwLock::new(&crate::sync::classes::TRAP_IRQ_HANDLERS, [None; 256]);
static IRQ_COUNTS: [AtomicU64; 256] = [const { AtomicU64::new(0) }; 256];

/// Install (or remove) the handler of `vector`. The table's write lock is
/// taken with interrupts off: an interrupt arriving while it is held would
/// spin forever on the read lock in `trap_dispatch` (one CPU), which hung
/// boots now and then when COM1's or an MSI-X handler was installed after
/// interrupts were on.
pub fn set_irq_handler(vector: u8, handler: Option<IrqHandler>) {
    without_interrupts(|| IRQ_HANDLERS.write()[vector as usize] = handler);
}

/// Run `f` with interrupts off, then restore the flag found.
pub fn without_interrupts<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    if was {
        set_interrupts(false);
    }
    let r = f();
    if was {
        set_interrupts(true);
    }
    r
}

/// Run `f` with interrupts on, then restore the flag found: for a wait
/// that spins inside a library's own loop, where no [`interrupt_window`]
/// can be opened at each turn (virtio-drivers' blocking virtio-blk flush,
/// which waits on the host's disk). Safe wherever a window is
/// ([`interrupt_window`]'s rule): interrupts on throughout is a window at
/// every instruction.
#[cfg_attr(debug_assertions, track_caller)]
pub fn with_interrupts_on<R>(f: impl FnOnce() -> R) -> R {
    let was = interrupts_enabled();
    if !was {
        set_interrupts(true);
    }
    let r = f();
    if !was {
        set_interrupts(false);
    }
    r
}

pub fn irq_count(vector: u8) -> u64 {
    IRQ_COUNTS[vector as usize].load(Ordering::Relaxed)
}

/// Called (with the frame) when the timer interrupts user mode: the
/// scheduler's preemption point.
pub static PREEMPT_HOOK: spin::Once<fn()> = spin::Once::new();
/// Called when user mode raises an exception: ends that process and never
/// returns to the faulting context.
pub static USER_FAULT_HOOK: spin::Once<fn(&TrapFrame, &FaultReport) -> !> = spin::Once::new();

pub fn from_user(frame: &TrapFrame) -> bool {
    frame.cs & 3 == 3
}

extern "C" fn trap_dispatch(frame: &mut TrapFrame) {
    let vector = frame.vector;
    if vector >= 32 {
        #[cfg(debug_assertions)]
        let interrupted = super::irq_off::irq_entry(vector, from_user(frame));
        IRQ_COUNTS[vector as usize].fetch_add(1, Ordering::Relaxed);
        // Acknowledge first: a handler may switch to another process and
        // only come back much later. Everything is edge-triggered (MSI-X,
        // the LAPIC timer, COM1 on an edge route), and interrupts stay off
        // until iretq, so nothing nests. The spurious vector is never
        // acknowledged.
        if vector != crate::irq::VECTOR_SPURIOUS as u64 {
            crate::irq::lapic::eoi();
        }
        let handler = IRQ_HANDLERS.read()[vector as usize];
        match handler {
            Some(h) => h(vector as u8),
            None => log::warn!("interrupt on vector {} with no handler", vector),
        }
        // The timer and a reschedule interrupt (another CPU queued work
        // here, or asks this one to end its process) preempt user mode.
        if (vector == crate::irq::VECTOR_LAPIC_TIMER as u64 || vector == crate::irq::VECTOR_RESCHEDULE as u64) && from_user(frame) {
            if let Some(preempt) = PREEMPT_HOOK.get() {
                preempt();
            }
        }
        #[cfg(debug_assertions)]
        super::irq_off::irq_exit(interrupted);
        return;
    }
    if from_user(frame) && vector != 2 && vector != 18 {
        #[cfg(debug_assertions)]
        super::irq_off::fault_entry(vector);
        let report = FaultReport { vector, error_code: frame.error_code, rip: frame.rip, cr2: read_cr2() };
        print_report(frame, &report, "in user mode");
        if let Some(kill) = USER_FAULT_HOOK.get() {
            kill(frame, &report);
        }
    }
    let report = FaultReport { vector, error_code: frame.error_code, rip: frame.rip, cr2: read_cr2() };
    if vector == 2 {
        log::warn!("NMI received at rip={:#x}", frame.rip);
        return;
    }
    if EXPECT_VECTOR.load(Ordering::SeqCst) == vector && RECOVER_RIP.load(Ordering::SeqCst) != 0 {
        EXPECT_VECTOR.store(u64::MAX, Ordering::SeqCst);
        print_report(frame, &report, "expected");
        *LAST_FAULT.lock() = Some(report);
        frame.rip = RECOVER_RIP.load(Ordering::SeqCst);
        return;
    }
    let claimed = vector == 8 && DOUBLE_FAULT_HOOK.get().is_some();
    print_report(frame, &report, if claimed { "claimed by a self-test" } else { "unexpected" });
    if vector == 8 {
        if let Some(hook) = DOUBLE_FAULT_HOOK.get() {
            hook(&report);
        }
    }
    let _ = writeln!(RawSerial, "[FAIL] kernel: unexpected {} exception; stopping", name(vector));
    super::qemu::exit(super::qemu::EXIT_FAILURE);
}

fn name(vector: u64) -> &'static str {
    EXCEPTION_NAMES.get(vector as usize).copied().unwrap_or("unknown")
}

fn describe_page_fault(err: u64) -> (&'static str, &'static str, &'static str, &'static str) {
    (
        if err & 1 != 0 { "protection violation" } else { "not present" },
        if err & 0x10 != 0 { "instruction fetch" } else if err & 2 != 0 { "write" } else { "read" },
        if err & 4 != 0 { "user" } else { "kernel" },
        if err & 8 != 0 { " reserved-bit" } else { "" },
    )
}

/// Print an exception report without taking any lock or allocating.
fn print_report(f: &TrapFrame, r: &FaultReport, how: &str) {
    super::serial::exclusive(|| write_report(f, r, how));
}

fn write_report(f: &TrapFrame, r: &FaultReport, how: &str) {
    let mut w = RawSerial;
    let _ = writeln!(
        w,
        "EXCEPTION ({}): vector {} ({}) error={:#x} rip={:#x} cr2={:#x}",
        how, r.vector, name(r.vector), r.error_code, r.rip, r.cr2
    );
    if r.vector == 14 {
        let (p, a, m, rsv) = describe_page_fault(r.error_code);
        let _ = writeln!(w, "  page fault: {} on {} from {} mode{} at {:#x}", p, a, m, rsv, r.cr2);
    }
    if r.vector == 8 {
        if let Some(stack) = crate::mm::stacks::guard_page_owner(r.cr2) {
            let _ = writeln!(w, "  kernel stack overflow: guard page of stack '{}' hit at {:#x}", stack, r.cr2);
        }
    }
    let _ = writeln!(w, "  rax={:#018x} rbx={:#018x} rcx={:#018x} rdx={:#018x}", f.rax, f.rbx, f.rcx, f.rdx);
    let _ = writeln!(w, "  rsi={:#018x} rdi={:#018x} rbp={:#018x} rsp={:#018x}", f.rsi, f.rdi, f.rbp, f.rsp);
    let _ = writeln!(w, "  r8 ={:#018x} r9 ={:#018x} r10={:#018x} r11={:#018x}", f.r8, f.r9, f.r10, f.r11);
    let _ = writeln!(w, "  r12={:#018x} r13={:#018x} r14={:#018x} r15={:#018x}", f.r12, f.r13, f.r14, f.r15);
    let _ = writeln!(w, "  cs={:#x} ss={:#x} rflags={:#x}", f.cs, f.ss, f.rflags);
}

/// Whether maskable interrupts are enabled on this CPU (RFLAGS.IF), so
/// code that must halt or toggle IF can put back what it found.
#[inline(always)]
pub fn interrupts_enabled() -> bool {
    let flags: u64;
    // SAFETY: PUSHFQ; POP reads RFLAGS through the stack slot it pushes and
    // pops again (balanced, so no stack memory of ours is touched); it
    // changes no flags.
    unsafe { asm!("pushfq", "pop {}", out(reg) flags, options(nomem, preserves_flags)) };
    flags & (1 << 9) != 0
}

/// A point where kernel code running with interrupts off lets a pending
/// interrupt in: it turns them on for one instruction and off again, so a
/// long stretch of work is many short interrupts-off spans, not one
/// (docs/interrupts-off.md). Called at every turn of a driver's polling
/// loop, at the start of every block request a mount makes
/// (`storage::device::DevHandle`) and between the units of a storage
/// engine's own long loops (`BlockDevice::pause`). With interrupts on, a
/// spin hint.
///
/// Safe wherever kernel code holds no `trap.irq_handlers` lock: every
/// handler takes no lock but that one, which ranks above all others
/// (docs/locks.md), and preempts only user mode, so nothing the
/// interrupted code holds or is in the middle of is touched. A process
/// running a call here is not torn down under it: a kill is carried out
/// by the process itself on its way back to user mode
/// (`proc::settle_before_user`), so its pages stay its own until the call
/// is over. A reschedule interrupt taken here does nothing.
#[inline]
#[cfg_attr(debug_assertions, track_caller)]
pub fn interrupt_window() {
    if interrupts_enabled() {
        core::hint::spin_loop();
        return;
    }
    #[cfg(debug_assertions)]
    super::irq_off::paused(core::panic::Location::caller());
    // SAFETY: handlers are installed before anything can fire. STI holds
    // interrupts off for one more instruction, so a pending one is taken
    // after the NOP, before the CLI.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) };
    #[cfg(debug_assertions)]
    super::irq_off::resumed(core::panic::Location::caller());
}

/// [`interrupt_window`] for code that also runs before this CPU has its
/// IDT (the kernel heap's growth, which early boot uses too): no window
/// until the IDT is loaded.
#[inline]
#[cfg_attr(debug_assertions, track_caller)]
pub fn interrupt_window_once_ready() {
    if super::idt::loaded() {
        interrupt_window();
    }
}

/// `dst.copy_from_slice(src)` a chunk at a time, with an interrupt window
/// between: the kernel's copies of bulk data (a DMA bounce buffer, up to
/// 128 KiB) run inside calls made with interrupts off.
pub fn copy_with_windows(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.chunks_mut(capos_serve::PAUSE_BYTES).zip(src.chunks(capos_serve::PAUSE_BYTES)) {
        d.copy_from_slice(s);
        interrupt_window();
    }
}

/// `buf.fill(0)` a chunk at a time, with an interrupt window between.
pub fn zero_with_windows(buf: &mut [u8]) {
    for chunk in buf.chunks_mut(capos_serve::PAUSE_BYTES) {
        chunk.fill(0);
        interrupt_window();
    }
}

/// Enable or disable maskable interrupts on this CPU. Debug builds note
/// the caller's line as where an interrupts-off span ended or began
/// (`irq_off`).
#[cfg_attr(debug_assertions, track_caller)]
pub fn set_interrupts(enabled: bool) {
    // SAFETY: toggling IF; handlers are installed before anything can fire.
    // Not `nomem`: CLI/STI must also be compiler barriers, so no memory
    // access the interrupt flag protects moves across them.
    unsafe {
        if enabled {
            #[cfg(debug_assertions)]
            super::irq_off::paused(core::panic::Location::caller());
            asm!("sti", options(nostack));
        } else {
            asm!("cli", options(nostack));
            #[cfg(debug_assertions)]
            super::irq_off::resumed(core::panic::Location::caller());
        }
    }
}
