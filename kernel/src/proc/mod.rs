//! Processes and the scheduler.
//!
//! One thread per process, one CPU. Each process has its own address space
//! and kernel stack; switching processes means switching kernel stacks
//! (`switch_context`), the CR3 and the stack the CPU enters the kernel on.
//! The kernel runs with interrupts off (SYSCALL clears IF, interrupt gates
//! clear it), so kernel code is never preempted: a process is preempted only
//! when the LAPIC timer interrupts it in user mode, and otherwise gives up
//! the CPU when it blocks (IPC), yields or exits. The idle context is the
//! boot thread (pid 0): it runs when no process is ready.
//!
//! A fault in user mode ends only that process, with a logged reason.
//!
//! Lifetime: a process that ends ([`terminate`]) gives back everything it
//! held. At once: its capabilities (so its receive handles close their
//! endpoints), the calls waiting on it (they fail with `PeerGone`), the
//! console's input. Once the CPU has left it ([`reap`], after the next
//! switch): its address space with every user and page-table frame, its
//! IPC area, its kernel stack and stack slot, and its entry in the process
//! table. Pids are generational (`capos_kcore::pid_table`): a reused table
//! slot gets a new pid, so a reply token, an endpoint binding or a queued
//! call that names a dead process reaches nobody, never its successor.
//! A supervised process is then started again (`supervisor`).

pub mod ipc;
pub mod loader;
pub mod supervisor;
pub mod syscall;
pub mod table;

use crate::arch::x86_64::{syscall::switch_context, trap};
use crate::cap::waiters::{Answer, ProcessStatus, Waiters};
use crate::cap::Reply;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::ipc::ReplyWord;
use capos_abi::SysError;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use crate::sync::{classes, Lock};
pub use table::{Delivery, Exit, Process, State, Table, Wait};

/// The process table: empty until [`init`] puts the idle context in it.
pub static TABLE: Lock<Table> = Lock::new(&classes::PROC_TABLE, Table::empty());

/// The process layer as kernel objects see it (`cap::waiters`).
struct ProcWaiters;
static WAITERS: ProcWaiters = ProcWaiters;

pub fn init() {
    TABLE.lock().install_idle();
    crate::cap::waiters::install(&WAITERS);
    crate::arch::x86_64::syscall::init();
    trap::PREEMPT_HOOK.call_once(|| preempt);
    trap::USER_FAULT_HOOK.call_once(|| kill_faulting);
}

/// Run `f` on the process table (interrupts are off in the kernel, so the
/// lock is never contended; it must not be held across a switch).
pub fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    f(&mut TABLE.lock())
}

/// Give the CPU to the next ready process, if any. Returns when this
/// context is scheduled again (immediately if nothing else is ready and it
/// can still run).
pub fn schedule() {
    let switch = with(|t| {
        let next = t.pick_next()?;
        let (from, n) = t.enter(next);
        match (n.space(), n.stack_top()) {
            (Some(space), Some(top)) => {
                space.activate();
                crate::arch::x86_64::syscall::set_kernel_stack(top);
            }
            _ => {
                // The idle context runs on the kernel's own tables.
                crate::mm::paging::activate_kernel_tables();
            }
        }
        Some((from, n.ksp()))
    });
    if let Some((from, to)) = switch {
        // SAFETY: `from` points into a boxed Process that is never freed
        // while it may be switched back to (a dead one is reaped only once
        // another context runs); `to` was saved by switch_context or
        // prepared by the loader.
        unsafe { switch_context(from, to) };
        reap();
    }
}

/// Carry out a switch prepared under the table lock (the call path
/// prepares it in the same lock section as the call); without one, run
/// the scheduler.
pub fn run_switch(switch: Option<table::Switch>) {
    match switch {
        Some(s) => {
            // SAFETY: as in `schedule`: `from` is the leaving process's
            // saved-stack slot (its record is not freed while it may be
            // switched back to), `to` the entered one's saved stack.
            unsafe { switch_context(s.from, s.to) };
            reap();
        }
        None => schedule(),
    }
}

/// Dead processes still in the table (so the switch path skips `reap`
/// when there are none).
static UNREAPED: AtomicUsize = AtomicUsize::new(0);

/// Take dead processes out of the table and free everything they held
/// (never the active one: its stack and address space are in use).
#[inline(always)]
fn reap() {
    if UNREAPED.load(Ordering::Relaxed) != 0 {
        reap_dead();
    }
}

#[inline(never)]
fn reap_dead() {
    let dead: Vec<Box<Process>> = with(|t| t.take_dead());
    UNREAPED.fetch_sub(dead.len(), Ordering::Relaxed);
    for mut p in dead {
        let kstack = p.take_kstack();
        // Address space (user and table frames), IPC area, capability
        // table and the record itself.
        drop(p);
        // Nothing runs on a dead process's stack: we are on another one.
        if let Some(k) = kstack {
            crate::mm::stacks::free(k);
        }
    }
}

/// Lifetime work found where the process table may be locked (a
/// capability can drop anywhere), done before the kernel returns to user
/// mode ([`settle`]).
static UNSETTLED: AtomicBool = AtomicBool::new(false);

#[derive(Default)]
struct Deferred {
    /// Clients whose queued call died with its endpoint: (server, client).
    orphans: Vec<(u32, u32)>,
    /// Servers waiting in receive with a notification to take.
    kicks: Vec<u32>,
    /// Processes to kill (`ProcessControl.kill`): (pid, reason).
    kills: Vec<(u32, String)>,
}

static DEFERRED: Lock<Deferred> = Lock::new(&classes::PROC_DEFERRED, Deferred { orphans: Vec::new(), kicks: Vec::new(), kills: Vec::new() });

fn defer(f: impl FnOnce(&mut Deferred)) {
    f(&mut DEFERRED.lock());
    UNSETTLED.store(true, Ordering::Relaxed);
}

impl Waiters for ProcWaiters {
    fn complete_parked(&self, pid: u32, answer: Answer) -> bool {
        with(|t| {
            let Some(p) = t.get(pid) else { return false };
            if p.state() != State::Blocked(Wait::Object) {
                return false;
            }
            let parts = p.parts();
            let Some(view) = parts.view else { return false };
            let mut reply = Reply::new(view, parts.recv_dirty, parts.scratch, None);
            let d = answer(&mut reply).map(|()| Delivery::Reply { word: ReplyWord::new(reply.finish().0 as u32, 0), bulk: 0 });
            t.wake(pid, Some(Wait::Object), d)
        })
    }

    fn orphaned(&self, server: u32, clients: &mut dyn Iterator<Item = u32>) {
        let v: Vec<(u32, u32)> = clients.map(|c| (server, c)).collect();
        if !v.is_empty() {
            defer(|d| d.orphans.extend(v));
        }
    }

    fn kick_receiver(&self, server: u32) {
        defer(|d| d.kicks.push(server));
    }

    fn kill(&self, pid: u32, reason: String) {
        defer(|d| d.kills.push((pid, reason)));
    }

    fn status(&self, name: &str) -> Option<ProcessStatus> {
        supervisor::status(name)
    }
}

/// Do the deferred lifetime work: fail orphaned calls, wake servers with
/// notifications, carry out kills. Must be called with the process table
/// unlocked.
#[inline(always)]
pub fn settle() {
    if UNSETTLED.load(Ordering::Relaxed) {
        settle_now();
    }
}

#[inline(never)]
fn settle_now() {
    while UNSETTLED.swap(false, Ordering::Relaxed) {
        let work = core::mem::take(&mut *DEFERRED.lock());
        with(|t| {
            for (server, client) in work.orphans {
                // Only a call still queued for that server (not received:
                // the server may still answer those).
                if t.peek(client).and_then(|c| c.waiting()).is_some_and(|w| w.server == server && !w.received) {
                    if let Some(c) = t.get(client) {
                        c.call_caps_mut().clear();
                    }
                    t.wake(client, Some(Wait::Reply { server, seq: 0, received: false }), Err(SysError::PeerGone));
                }
            }
            for server in work.kicks {
                t.wake(server, Some(Wait::Call), Ok(Delivery::Retry));
            }
        });
        for (pid, reason) in work.kills {
            terminate(pid, Exit::Killed(reason));
        }
    }
}

/// Processes ended since boot, by how (for the idle summary: dead entries
/// leave the table).
static EXITED: AtomicUsize = AtomicUsize::new(0);
static KILLED: AtomicUsize = AtomicUsize::new(0);

/// Process-table slots ever used (live, free or retired): what the table
/// grows with; it stays at the most processes alive at once.
pub fn table_slots() -> usize {
    with(|t| t.slots_used())
}

/// Timer preemption from user mode.
fn preempt() {
    schedule();
}

/// End `pid`: drop its capabilities, fail every call waiting on it and on
/// the endpoints it served, take its own queued call off its endpoint, and
/// never run it again.
pub fn terminate(pid: u32, how: Exit) {
    let ended = with(|t| {
        let ended = t.kill(pid, how.clone())?;
        UNREAPED.fetch_add(1, Ordering::Relaxed);
        // Calls it had taken and not answered, or that wait in its
        // queues, fail.
        for client in t.clients_of(pid) {
            if let Some(c) = t.get(client) {
                c.call_caps_mut().clear();
            }
            t.wake(client, Some(Wait::Reply { server: pid, seq: 0, received: false }), Err(SysError::PeerGone));
        }
        Some(ended)
    });
    let Some(ended) = ended else { return };
    if let Some(ep) = &ended.queued_on {
        // Endpoint rule 4: a dead client is never delivered.
        ep.core.lock().cancel(pid);
    }
    let table::Ended { caps, call_caps, serves, name, queued_on } = ended;
    // Its receive handles close their endpoints as they drop; its client
    // capabilities tell their servers; death closes the endpoints it
    // created too, even if a copy of a handle lives on.
    drop((caps, call_caps, queued_on));
    for ep in serves {
        ep.close_for(pid);
    }
    settle();
    crate::cap::console::release(pid);
    let what = match &how {
        Exit::Status(s) => {
            EXITED.fetch_add(1, Ordering::Relaxed);
            alloc::format!("exited with status {}", *s as i64)
        }
        Exit::Killed(reason) => {
            KILLED.fetch_add(1, Ordering::Relaxed);
            alloc::format!("killed: {}", reason)
        }
    };
    match supervisor::ended(pid, &how) {
        None if matches!(how, Exit::Status(_)) => log::info!("process {} (pid {}) {}", name, pid, what),
        None => log::warn!("process {} (pid {}) {}", name, pid, what),
        Some(outcome) => log::warn!("proc: {} (pid {}) {}; {}", name, pid, what, outcome),
    }
}

/// A user-mode exception: end that process and run something else.
fn kill_faulting(frame: &trap::TrapFrame, r: &trap::FaultReport) -> ! {
    let pid = with(|t| t.current_pid());
    let what = trap::EXCEPTION_NAMES.get(r.vector as usize).copied().unwrap_or("exception");
    let reason = if r.vector == 14 {
        alloc::format!("{} at {:#x} (error {:#x}) rip={:#x}", what, r.cr2, r.error_code, frame.rip)
    } else {
        alloc::format!("{} (error {:#x}) rip={:#x}", what, r.error_code, frame.rip)
    };
    if pid == 0 {
        panic!("user-mode fault with no current process: {}", reason);
    }
    terminate(pid, Exit::Killed(reason));
    schedule();
    unreachable!("a dead process was scheduled again")
}

/// Idle loop: run processes until none is left that could run, then return
/// a summary (exited, killed, still waiting for calls).
pub fn run_until_idle() -> (usize, usize, usize) {
    loop {
        trap::set_interrupts(false);
        if with(|t| t.any_ready()) {
            schedule();
            continue;
        }
        // Nothing to run. The first time is the end of boot (make
        // bench-boot: the default system's services serving, the shell at
        // its prompt); a no-op unless the instruction-counting QEMU plugin
        // is loaded.
        capos_abi::icount::milestone();
        // A process reading the console: hand it a completed line.
        if crate::cap::console::service_input() {
            continue;
        }
        // Nothing ready: servers may be blocked waiting for calls forever.
        // A process waiting for console input is not idle: we wait with it
        // (the serial interrupt wakes us), and the prompt does not run.
        let (live, blocked_all) = with(|t| {
            let live = t.live();
            let blocked = t.users().filter(|p| matches!(p.state(), State::Blocked(Wait::Call | Wait::Reply { .. }))).count();
            (live, blocked == live)
        });
        if live == 0 || blocked_all {
            break;
        }
        crate::arch::x86_64::cpu::wait_for_interrupt();
    }
    trap::set_interrupts(true);
    let waiting = with(|t| t.live());
    (EXITED.load(Ordering::Relaxed), KILLED.load(Ordering::Relaxed), waiting)
}
