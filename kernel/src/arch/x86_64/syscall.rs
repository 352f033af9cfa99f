//! The SYSCALL entry path.
//!
//! `syscall` lands in `syscall_entry` with the user's `rsp` still loaded
//! and the user's GS base, so the stub first executes `swapgs` (GS now
//! reaches this CPU's `percpu` block, see the swapgs rule there), parks the
//! user `rsp` in `gs:[user_rsp]` and switches to `gs:[kernel_rsp]`, the
//! current process's kernel stack on this CPU. Against the single-CPU
//! version (two statics) that costs two instructions per syscall: the
//! `swapgs` on entry and the one before `iretq`. The stub then builds the
//! [`TrapFrame`](super::trap::TrapFrame) layout an interrupt from user mode
//! would, calls the dispatcher, and leaves with `iretq` like the interrupt
//! exit, which also sidesteps SYSRET's non-canonical-RIP pitfall.
//!
//! Two things it leaves out, since a syscall is a call: the six
//! callee-saved registers (rbx, rbp, r12-r15) are not stored in the frame
//! nor reloaded from it (their slots are skipped with `sub rsp`): the
//! dispatcher preserves them as the SysV ABI requires, and
//! `switch_context` saves them per context, so each process gets its own
//! back; nothing reads or writes those slots of a syscall frame (the
//! register dump is for exceptions, which enter through `isr_common`).
//! And no `cld`: SFMASK clears DF on entry (`init`).

use super::trap::TrapFrame;
use super::percpu::{OFF_KERNEL_RSP, OFF_USER_RSP};
use core::arch::{asm, global_asm};

/// The "vector" recorded in a syscall's trap frame.
const SYSCALL_VECTOR: u64 = 0x100;

global_asm!(
    r#"
.section .text.syscall, "ax"
.global syscall_entry
syscall_entry:
    swapgs
    mov gs:[{user_rsp}], rsp
    mov rsp, gs:[{kernel_rsp}]
    push 0x1b
    push qword ptr gs:[{user_rsp}]
    push r11
    push 0x23
    push rcx
    push 0
    push {vector}
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    sub rsp, 48
    mov rdi, rsp
    call {dispatch}
    add rsp, 48
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
    swapgs
    iretq
"#,
    dispatch = sym syscall_trampoline,
    vector = const SYSCALL_VECTOR,
    user_rsp = const OFF_USER_RSP,
    kernel_rsp = const OFF_KERNEL_RSP,
);

extern "C" fn syscall_trampoline(frame: &mut TrapFrame) {
    #[cfg(debug_assertions)]
    {
        let cap_call = (frame.rax == capos_abi::syscall::CAP_CALL).then(|| (frame.rsi, frame.rdx as u16));
        super::irq_off::syscall_entry(frame.rax, cap_call);
    }
    crate::proc::syscall::dispatch(frame);
    #[cfg(debug_assertions)]
    super::irq_off::syscall_exit();
}

extern "C" {
    fn syscall_entry();
}

const MSR_EFER: u32 = 0xc000_0080;
const MSR_STAR: u32 = 0xc000_0081;
const MSR_LSTAR: u32 = 0xc000_0082;
const MSR_FMASK: u32 = 0xc000_0084;

fn wrmsr(msr: u32, v: u64) {
    // SAFETY: the MSRs written here configure SYSCALL only.
    unsafe { asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack)) }
}

/// Enable SYSCALL: kernel CS 0x08 / SS 0x10 on entry; IF, DF, TF and AC
/// cleared on entry so the kernel runs with interrupts off.
pub fn init() {
    wrmsr(MSR_EFER, super::cpu::read_efer() | 1);
    wrmsr(MSR_STAR, (0x10u64 << 48) | (0x08u64 << 32));
    wrmsr(MSR_LSTAR, syscall_entry as *const () as usize as u64);
    wrmsr(MSR_FMASK, (1 << 9) | (1 << 10) | (1 << 8) | (1 << 18));
}

/// The kernel stack syscalls and user-mode interrupts of the current
/// process run on, on this CPU (kept for its callers; the state is per CPU,
/// see [`percpu::set_kernel_stack`](super::percpu::set_kernel_stack)).
#[inline(always)]
pub fn set_kernel_stack(top: u64) {
    super::percpu::set_kernel_stack(top);
}

extern "C" {
    fn isr_return();
}

/// Where a new process's first context switch "returns" to: the common
/// interrupt exit, which pops the prepared frame and `iretq`s to user mode.
pub fn user_entry_trampoline() -> u64 {
    user_first_entry as *const () as usize as u64
}

/// A milestone marker (`capos_abi::icount::MILESTONE_MARKER`, a no-op),
/// then the common interrupt exit. The instruction-counting plugin
/// reports only the marker's first execution: the first process's first
/// entry to user mode, a boot figure of make bench-boot.
// SAFETY: never called; only `switch_context`'s `ret` reaches it, on a stack
// the loader prepared for `isr_return`, which it leaves untouched.
#[unsafe(naked)]
extern "C" fn user_first_entry() {
    core::arch::naked_asm!(
        ".byte 0x0f, 0x1f, 0x80, 0x4d, 0x50, 0x41, 0x43",
        "jmp {exit}",
        exit = sym isr_return,
    )
}

/// Switch kernel stacks: save the callee-saved registers on the current
/// stack, store its pointer in `*from`, load `to` and pop the next
/// context's registers. Returns when something switches back to `*from`.
///
/// # Safety
/// `to` must be a stack pointer saved by `switch_context` or prepared as a
/// new context (six zero words and a return address).
#[unsafe(naked)]
pub unsafe extern "C" fn switch_context(from: *mut u64, to: u64) {
    core::arch::naked_asm!(
        "push rbx",
        "push rbp",
        "push r12",
        "push r13",
        "push r14",
        "push r15",
        "mov [rdi], rsp",
        "mov rsp, rsi",
        "pop r15",
        "pop r14",
        "pop r13",
        "pop r12",
        "pop rbp",
        "pop rbx",
        "ret",
    )
}
