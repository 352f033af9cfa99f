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
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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

/// Run `f` on the process table (it must not be held across a switch).
/// On several CPUs it is contended: docs/smp.md measures how much.
#[inline(always)]
pub fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    f(&mut TABLE.lock())
}

/// The earliest deadline (uptime ns) of a process blocked in
/// `endpoint_receive_timeout`; u64::MAX when none. Kept by
/// [`Table::expire`] and lowered by every timed `block_receive`, both
/// under the table lock.
pub(crate) static NEXT_DEADLINE: AtomicU64 = AtomicU64::new(u64::MAX);

/// Wake every process whose receive deadline has passed (`TimedOut`).
/// Called where a CPU looks for work: at each timer tick that interrupts
/// user mode, and in the idle loops, which the timer wakes at every tick;
/// so a deadline is kept within a tick. One load and a compare when none
/// is due.
#[inline(always)]
fn expire_deadlines() {
    if NEXT_DEADLINE.load(Ordering::Relaxed) != u64::MAX && crate::time::uptime_ns() >= NEXT_DEADLINE.load(Ordering::Relaxed) {
        expire_now();
    }
}

#[inline(never)]
fn expire_now() {
    let now = crate::time::uptime_ns();
    with(|t| t.expire(now, &NEXT_DEADLINE));
}

/// Send a reschedule interrupt to each CPU in `cpus` (bit per index).
#[cold]
#[inline(never)]
pub(crate) fn kick(cpus: u64) {
    // The set bits only: a cross-CPU call kicks one CPU, and walking all
    // 64 was a tenth of its round trip.
    for cpu in capos_kcore::run_queues::cpus(cpus) {
        if let Some(apic) = crate::arch::x86_64::percpu::apic_id_of(cpu) {
            crate::irq::lapic::send_ipi(apic, crate::irq::VECTOR_RESCHEDULE);
        }
    }
}

/// Give the CPU to the next ready process, if any. Returns when this
/// context is scheduled again (immediately if nothing else is ready and it
/// can still run).
pub fn schedule() {
    if let Some(s) = with(|t| {
        let next = t.pick_next()?;
        t.prepare_switch(next)
    }) {
        switch(s);
    }
}

/// Carry out a switch prepared under the table lock (the call path
/// prepares it in the same lock section as the call); without one, run
/// the scheduler.
pub fn run_switch(s: Option<table::Switch>) {
    match s {
        Some(s) => switch(s),
        None => schedule(),
    }
}

#[inline(always)]
fn switch(s: table::Switch) {
    // Debug kernels: no lock is carried from one context into another.
    crate::sync::assert_none_held("a context switch");
    let tables = crate::arch::x86_64::percpu::sched_tables();
    // 0 would be a switch prepared without a current (CR3 = 0 is no
    // page table): debug kernels stop here instead of at a triple fault.
    debug_assert!(tables != 0, "a switch with no tables recorded for this CPU's current");
    // SAFETY: the entered context's PML4, alive while this CPU's current
    // is that context (`table::Switch`); every PML4 maps the kernel half.
    unsafe { crate::mm::paging::load_tables(tables) };
    // The leaving context's tables stay loaded until here: its address
    // space is freed only once `switch_context` has saved its stack
    // pointer (table rule 6), after this.
    // SAFETY: `to` is the entered process's saved-stack slot: its record
    // is not freed while this CPU is its current one (table rule 6), and
    // `from` the leaving one's (not freed until its stack is saved, which
    // `switch_context` does).
    let to = enter_stack(unsafe { s.to.as_ref() });
    // SAFETY: `to` was saved by switch_context or prepared by the loader,
    // and no other CPU runs on it (rule 6: we took it).
    unsafe { switch_context(s.from, to) };
    reap();
}

/// Take the saved stack pointer of the context this CPU enters (table
/// rule 6): when another CPU is still leaving that stack, wait the few
/// instructions until it has stored it.
#[inline(always)]
fn enter_stack(slot: &AtomicU64) -> u64 {
    loop {
        let v = slot.swap(0, Ordering::Acquire);
        if v != 0 {
            return v;
        }
        core::hint::spin_loop();
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
    // Not while a process is being started (`loader::SPAWN`): it was
    // given the next free pid, which freeing a slot would change. Its
    // starter reaps afterwards, or the next switch does.
    let Some(spawning) = loader::SPAWN.try_lock() else { return };
    let dead: Vec<Box<Process>> = with(|t| t.take_dead());
    drop(spawning);
    UNREAPED.fetch_sub(dead.len(), Ordering::Relaxed);
    let mut kstacks = Vec::new();
    for mut p in dead {
        kstacks.extend(p.take_kstack());
        // Address space (user and table frames), IPC area, capability
        // table and the record itself.
        drop(p);
    }
    // Nothing runs on a dead process's stack: we are on another one. One
    // TLB shootdown for them all.
    if !kstacks.is_empty() {
        crate::mm::stacks::free_all(kstacks);
    }
}

/// Free every dead process now, waiting (briefly, with interrupts let
/// in) for a CPU still leaving one's stack, so a count of free frames
/// taken next is the same whichever CPU the dead ran on and however far
/// it has got (`ProcessControl.status`).
fn reap_all() {
    for _ in 0..1_000_000 {
        reap();
        if UNREAPED.load(Ordering::Acquire) == 0 {
            return;
        }
        let was = trap::interrupts_enabled();
        trap::set_interrupts(true);
        core::hint::spin_loop();
        trap::set_interrupts(was);
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
        await_kills();
    }

    fn status(&self, name: &str) -> Option<ProcessStatus> {
        reap_all();
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
    settle_work(true);
}

/// [`settle_now`]; `own`: this CPU's own process may be ended here (not
/// inside a kernel object's call, which must return first). Returns
/// whether a kill of this CPU's own process was left for later.
fn settle_work(own: bool) -> bool {
    let mut own_left = false;
    // Kills of processes that run on another CPU, for whoever settles
    // next (that CPU was asked to reschedule, and settles then).
    let mut elsewhere = Vec::new();
    while UNSETTLED.swap(false, Ordering::Relaxed) {
        let work = {
            let mut d = DEFERRED.lock();
            KILLS_IN_FLIGHT.fetch_add(d.kills.len(), Ordering::Relaxed);
            core::mem::take(&mut *d)
        };
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
            if !own && pid == with(|t| t.current_pid()) {
                own_left = true;
                elsewhere.push((pid, reason));
            } else if let Err(Elsewhere) = terminate(pid, Exit::Killed(reason.clone())) {
                elsewhere.push((pid, reason));
            } else {
                KILLS_IN_FLIGHT.fetch_sub(1, Ordering::Release);
            }
        }
    }
    if !elsewhere.is_empty() {
        let n = elsewhere.len();
        defer(|d| {
            d.kills.extend(elsewhere);
            KILLS_IN_FLIGHT.fetch_sub(n, Ordering::Release);
        });
    }
    own_left
}

/// Wait until every kill asked for has happened (`Waiters::kill`: a
/// `ProcessControl.kill` that returned has ended its process, and the
/// caller may call the restarted instance next). A kill of a process
/// running on another CPU is done there (table rule 7) once that CPU
/// enters the kernel, which the kill's reschedule interrupt makes it do.
/// Interrupts are let in while waiting, so this CPU still answers what
/// other CPUs wait for (a TLB shootdown). A kill of this CPU's own
/// process (two processes killing each other) ends the wait: it is
/// carried out before the caller returns to user mode.
fn await_kills() {
    loop {
        if settle_work(false) {
            return;
        }
        if DEFERRED.lock().kills.is_empty() && KILLS_IN_FLIGHT.load(Ordering::Acquire) == 0 {
            return;
        }
        let was = trap::interrupts_enabled();
        trap::set_interrupts(true);
        for _ in 0..64 {
            core::hint::spin_loop();
        }
        trap::set_interrupts(was);
        UNSETTLED.store(true, Ordering::Relaxed);
    }
}

/// Kills taken out of [`DEFERRED`] and not yet carried out (a CPU is
/// ending the process and starting its successor): counted under the
/// deferred lock as they are taken, so a waiting killer never sees a kill
/// in neither place.
static KILLS_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// [`settle`] on the way back to user mode: if this CPU's own process
/// was among the kills, it never returns there.
#[inline(always)]
pub fn settle_before_user() {
    if UNSETTLED.load(Ordering::Relaxed) {
        settle_own();
    }
}

#[inline(never)]
fn settle_own() {
    settle_now();
    if with(|t| t.current().state() == State::Dead) {
        schedule();
        unreachable!("a dead process was scheduled again");
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

/// Timer preemption (or a reschedule interrupt) from user mode; a kill
/// asked for by another CPU is carried out here first.
fn preempt() {
    settle_before_user();
    expire_deadlines();
    schedule();
}

/// [`terminate`] could not end a process: it runs on another CPU, which
/// was asked to reschedule (and ends it when it settles).
pub struct Elsewhere;

/// End `pid`: drop its capabilities, fail every call waiting on it and on
/// the endpoints it served, take its own queued call off its endpoint, and
/// never run it again.
pub fn terminate(pid: u32, how: Exit) -> Result<(), Elsewhere> {
    let ended = with(|t| {
        if let Some(cpu) = t.running_elsewhere(pid) {
            // Table rule 7: that CPU ends it.
            t.kick(cpu);
            return Err(Elsewhere);
        }
        let Some(ended) = t.kill(pid, how.clone()) else { return Ok(None) };
        UNREAPED.fetch_add(1, Ordering::Relaxed);
        // Its endpoints close in the same step (no CPU can find one open
        // with a dead server); their queued callers fail once settled.
        for ep in &ended.serves {
            ep.close_for(pid);
        }
        Ok(Some((ended, t.clients_of(pid))))
    })?;
    let Some((ended, clients)) = ended else { return Ok(()) };
    if let Some(ep) = &ended.queued_on {
        // Endpoint rule 4: a dead client is never delivered.
        ep.core.lock().cancel(pid);
    }
    let table::Ended { caps, call_caps, serves, name, queued_on } = ended;
    // Its receive handles close their endpoints as they drop; its client
    // capabilities tell their servers; death closes the endpoints it
    // created too, even if a copy of a handle lives on.
    drop((caps, call_caps, queued_on, serves));
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
    // Only now, with its successor (if any) serving its endpoints, do the
    // calls it had taken and not answered, or that waited in its queues,
    // fail: a client that calls again at once (on another CPU) reaches
    // the new instance, as it would have on one CPU.
    with(|t| {
        for client in clients {
            // Only one still in its call to the dead server: another may
            // have been failed meanwhile (its queued call orphaned) and be
            // in a new call already, whose capabilities are not ours to drop.
            match t.get(client) {
                Some(c) if c.waiting().is_some_and(|w| w.server == pid) => c.call_caps_mut().clear(),
                _ => continue,
            }
            t.wake(client, Some(Wait::Reply { server: pid, seq: 0, received: false }), Err(SysError::PeerGone));
        }
    });
    settle();
    Ok(())
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
    let _ = terminate(pid, Exit::Killed(reason));
    schedule();
    unreachable!("a dead process was scheduled again")
}

/// Idle loop: run processes until none is left that could run, then return
/// a summary (exited, killed, still waiting for calls).
///
/// `timers_idle`: a process waiting in receive with a deadline (a
/// network service's timers) counts as idle too. The prompt boots want
/// that: once the shell hands the console back, the prompt takes it
/// while such services run on (on the other CPUs: this one then runs the
/// prompt). A boot that ends when idle (`exit_when_idle`) does not: a
/// service with timers is still at work.
pub fn run_until_idle(timers_idle: bool) -> (usize, usize, usize) {
    if !SCHEDULING.swap(true, Ordering::AcqRel) {
        // The other CPUs were parked until now: processes start once the
        // boot CPU has started them all.
        let others = with(|t| t.online_mask()) & !1;
        kick(others);
    }
    loop {
        trap::set_interrupts(false);
        expire_deadlines();
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
        // Another CPU at work (a process, or a restart in progress) may
        // yet wake somebody: not idle until every CPU is.
        let done = with(|t| {
            // Cheapest first: while another CPU works (the other side of
            // a cross-CPU call), nothing here is idle.
            if t.others_busy() {
                return false;
            }
            let live = t.live();
            // One waiting with a deadline runs again by itself: not idle.
            let blocked = t.users().filter(|p| matches!(p.state(), State::Blocked(Wait::Call | Wait::Reply { .. })) && (timers_idle || !t.timed(p))).count();
            live == 0 || blocked == live
        });
        if done {
            break;
        }
        crate::arch::x86_64::cpu::wait_for_interrupt();
    }
    trap::set_interrupts(true);
    let waiting = with(|t| t.live());
    (EXITED.load(Ordering::Relaxed), KILLED.load(Ordering::Relaxed), waiting)
}

/// Set once the boot CPU first runs processes; the other CPUs idle until
/// then.
static SCHEDULING: AtomicBool = AtomicBool::new(false);

/// A CPU other than the boot CPU, once started: its idle loop. It runs
/// whatever is ready (its own queue, or taken from another CPU's), and
/// halts when nothing is; a reschedule interrupt or its timer wakes it.
pub fn ap_main(_cpu: usize) -> ! {
    trap::set_interrupts(false);
    with(|t| t.install_idle());
    loop {
        trap::set_interrupts(false);
        if SCHEDULING.load(Ordering::Acquire) {
            settle();
            expire_deadlines();
            if with(|t| t.any_ready()) {
                schedule();
                continue;
            }
        }
        crate::arch::x86_64::cpu::wait_for_interrupt();
    }
}
