//! The longest stretch any CPU ran with interrupts off, and what it was
//! doing (debug builds: `KERNEL_PROFILE=dev`, what the scenarios boot).
//!
//! Why: a CPU with interrupts off delays its timer, device completions and
//! other CPUs' IPIs (a TLB shootdown waits for every CPU to answer). The
//! kernel enters with interrupts off (SYSCALL's SFMASK clears IF, interrupt
//! gates clear it), so the question is how long it keeps them off before
//! it returns to user mode or turns them on.
//!
//! What is measured, in TSC ticks, per CPU:
//! - a span starts when a system call or an interrupt enters the kernel
//!   ([`syscall_entry`], [`irq_entry`]) and when the kernel turns
//!   interrupts off ([`resumed`], from `trap::set_interrupts(false)`);
//! - it ends when the system call or interrupt returns ([`syscall_exit`],
//!   [`irq_exit`]) and when the kernel turns interrupts on ([`paused`],
//!   from `set_interrupts(true)` and `cpu::wait_for_interrupt`).
//!
//! A system call that blocks switches to another process with interrupts
//! still off, so its span runs on until that process returns to user mode
//! or something turns interrupts on: that is the time this CPU could not
//! take an interrupt, which is the figure wanted. Exceptions are not
//! measured (a fault in user mode ends its process; one in kernel mode is
//! a bug or a self-test). Release builds (`bench-opt`) carry none of this:
//! the benchmarks' instruction counts stay the call path's own.
//!
//! Each span also keeps where it began and ended in the kernel's source
//! (`#[track_caller]` through `trap::set_interrupts`): a system call's or
//! interrupt's entry and return, or the line that turned interrupts off
//! or on. So the log says which stretch of code a long span was, not
//! only which call it was in.
//!
//! Two CPUs that set a new longest span at once may leave the figure of
//! one with the description of the other; the figure itself is exact
//! (`fetch_max`).

use super::cpu::rdtsc;
use super::percpu::{index_early, MAX_CPUS};
use core::panic::Location;
use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering::Relaxed};

/// What a CPU was doing when its interrupts went off (`what`): a system
/// call by number, a capability call by interface and method, or an
/// interrupt by vector.
const KIND_SHIFT: u32 = 56;
const KIND_SYSCALL: u64 = 1;
const KIND_CAP_CALL: u64 = 2;
const KIND_IRQ: u64 = 3;
const KIND_FAULT: u64 = 4;

struct Cpu {
    /// TSC when this CPU's current span began; 0 while interrupts are on.
    since: AtomicU64,
    /// (kind << 56) | number or method; and the interface of a cap call.
    what: AtomicU64,
    iface: AtomicU64,
    /// Where the span began: null for a system call's or interrupt's
    /// entry, else the line that turned interrupts off.
    from: AtomicPtr<Location<'static>>,
}

static CPUS: [Cpu; MAX_CPUS] = [const { Cpu { since: AtomicU64::new(0), what: AtomicU64::new(0), iface: AtomicU64::new(0), from: AtomicPtr::new(core::ptr::null_mut()) } }; MAX_CPUS];

/// The longest span of each kind (indexed by kind; 0 unused).
struct Longest {
    ticks: AtomicU64,
    what: AtomicU64,
    iface: AtomicU64,
    cpu: AtomicU64,
    /// Where it began and ended (null: entry, return).
    from: AtomicPtr<Location<'static>>,
    to: AtomicPtr<Location<'static>>,
}

static LONGEST: [Longest; 5] = [const {
    Longest {
        ticks: AtomicU64::new(0),
        what: AtomicU64::new(0),
        iface: AtomicU64::new(0),
        cpu: AtomicU64::new(0),
        from: AtomicPtr::new(core::ptr::null_mut()),
        to: AtomicPtr::new(core::ptr::null_mut()),
    }
}; 5];

fn ptr(at: &'static Location<'static>) -> *mut Location<'static> {
    at as *const Location<'static> as *mut Location<'static>
}

fn cpu() -> &'static Cpu {
    &CPUS[index_early()]
}

fn begin(c: &Cpu, what: u64, iface: u64) {
    c.what.store(what, Relaxed);
    c.iface.store(iface, Relaxed);
    c.from.store(core::ptr::null_mut(), Relaxed);
    c.since.store(rdtsc(), Relaxed);
}

/// Close `c`'s span, if one is open, and keep it if it is the longest;
/// `to` is where it ended (null: the return to user mode or to the
/// interrupted code).
fn close(c: &Cpu, to: *mut Location<'static>) {
    let since = c.since.swap(0, Relaxed);
    if since == 0 {
        return;
    }
    let ticks = rdtsc().saturating_sub(since);
    let what = c.what.load(Relaxed);
    let Some(l) = LONGEST.get((what >> KIND_SHIFT) as usize) else { return };
    if l.ticks.fetch_max(ticks, Relaxed) < ticks {
        l.what.store(what, Relaxed);
        l.iface.store(c.iface.load(Relaxed), Relaxed);
        l.cpu.store(index_early() as u64, Relaxed);
        l.from.store(c.from.load(Relaxed), Relaxed);
        l.to.store(to, Relaxed);
    }
}

/// A system call entered: `nr`, and for a capability call its interface
/// and method.
pub fn syscall_entry(nr: u64, cap_call: Option<(u64, u16)>) {
    match cap_call {
        Some((iface, method)) => begin(cpu(), KIND_CAP_CALL << KIND_SHIFT | method as u64, iface),
        None => begin(cpu(), KIND_SYSCALL << KIND_SHIFT | (nr & 0xffff), 0),
    }
}

/// The system call returns to user mode.
pub fn syscall_exit() {
    close(cpu(), core::ptr::null_mut());
}

/// What was open on this CPU when an interrupt came (nothing, when the
/// interrupted code had interrupts on), for [`irq_exit`] to put back.
pub struct Interrupted {
    since: u64,
    what: u64,
    iface: u64,
    from: *mut Location<'static>,
}

/// An interrupt entered on `vector`. From user mode nothing was open
/// (user mode runs with interrupts on): a span left open by a process
/// that entered user mode without a system call's return (its first
/// entry) is dropped, not counted.
pub fn irq_entry(vector: u64, from_user: bool) -> Interrupted {
    let c = cpu();
    let saved = if from_user {
        Interrupted { since: 0, what: 0, iface: 0, from: core::ptr::null_mut() }
    } else {
        Interrupted { since: c.since.load(Relaxed), what: c.what.load(Relaxed), iface: c.iface.load(Relaxed), from: c.from.load(Relaxed) }
    };
    begin(c, KIND_IRQ << KIND_SHIFT | (vector & 0xff), 0);
    saved
}

/// User mode raised exception `vector`: the kernel runs from here with
/// interrupts off until it ends the process and runs another.
pub fn fault_entry(vector: u64) {
    begin(cpu(), KIND_FAULT << KIND_SHIFT | (vector & 0xff), 0);
}

/// The handler is done: its span ends, and the interrupted code's
/// description comes back (its span stays closed: it had interrupts on).
pub fn irq_exit(saved: Interrupted) {
    let c = cpu();
    close(c, core::ptr::null_mut());
    c.what.store(saved.what, Relaxed);
    c.iface.store(saved.iface, Relaxed);
    c.from.store(saved.from, Relaxed);
    c.since.store(saved.since, Relaxed);
}

/// Interrupts are about to go on, at `at`.
pub fn paused(at: &'static Location<'static>) {
    close(cpu(), ptr(at));
}

/// Interrupts just went off again at `at`, in the same system call or
/// handler.
pub fn resumed(at: &'static Location<'static>) {
    let c = cpu();
    if c.since.load(Relaxed) == 0 {
        c.from.store(ptr(at), Relaxed);
        c.since.store(rdtsc(), Relaxed);
    }
}

/// `file:line` of a kept location, or `none` (entry or return).
fn place(p: *mut Location<'static>, none: &'static str) -> alloc::string::String {
    // SAFETY: every non-null pointer stored here came from a
    // `&'static Location` (`ptr`), never written through.
    match unsafe { p.as_ref() } {
        Some(l) => alloc::format!("{}:{}", l.file(), l.line()),
        None => alloc::string::String::from(none),
    }
}

/// The longest span of `kind`: (TSC ticks, CPU, what it was doing).
fn longest(kind: u64) -> Option<(u64, u64, alloc::string::String)> {
    let l = &LONGEST[kind as usize];
    let ticks = l.ticks.load(Relaxed);
    if ticks == 0 {
        return None;
    }
    let what = l.what.load(Relaxed);
    let number = what & ((1 << KIND_SHIFT) - 1);
    let text = match kind {
        KIND_CAP_CALL => {
            let iface = l.iface.load(Relaxed);
            match capos_abi::interfaces::name_of(iface) {
                Some(name) => alloc::format!("a capability call, {} method {}", name, number),
                None => alloc::format!("a capability call, interface {:#x} method {}", iface, number),
            }
        }
        KIND_SYSCALL => match capos_abi::syscall::Syscall::try_from(number) {
            Ok(s) => alloc::format!("system call {}", s.name()),
            Err(_) => alloc::format!("system call {}", number),
        },
        KIND_IRQ => alloc::format!("the handler of interrupt vector {:#x}", number),
        _ => alloc::format!("ending a process after exception {} in user mode", number),
    };
    let text = alloc::format!("{}, from {} to {}", text, place(l.from.load(Relaxed), "entry"), place(l.to.load(Relaxed), "return"));
    Some((ticks, l.cpu.load(Relaxed), text))
}

/// The figures as lines for the log and the prompt: the longest span of
/// each kind (capability calls, other system calls, interrupt handlers,
/// user faults), as TSC ticks and microseconds.
pub fn summary() -> alloc::vec::Vec<alloc::string::String> {
    use alloc::string::String;
    if !cfg!(debug_assertions) {
        return alloc::vec![String::from("interrupts off: not measured in release builds")];
    }
    let hz = crate::time::tsc_hz();
    let mut lines = alloc::vec::Vec::new();
    for (kind, label) in [(KIND_CAP_CALL, "capability calls"), (KIND_SYSCALL, "other system calls"), (KIND_IRQ, "interrupt handlers"), (KIND_FAULT, "user faults")] {
        match longest(kind) {
            None => lines.push(alloc::format!("interrupts off, {}: no span measured", label)),
            Some((ticks, cpu, what)) => {
                let micros = if hz == 0 { 0 } else { ticks as u128 * 1_000_000 / hz as u128 };
                lines.push(alloc::format!("interrupts off, {}: longest span {} TSC ticks ({} us) on cpu {}, in {}", label, ticks, micros, cpu, what));
            }
        }
    }
    lines
}
