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

pub mod address_space;
pub mod ipc;
pub mod loader;
pub mod supervisor;
pub mod syscall;
pub mod usermem;

use crate::arch::x86_64::{syscall::switch_context, trap};
use crate::cap::endpoint::Endpoint;
use crate::cap::{Cap, CapList};
use crate::mm::ipc_area::IpcArea;
use crate::mm::stacks::KernelStack;
use address_space::AddressSpace;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::ipc::{CallWord, Received, ReplyWord};
use capos_abi::SysError;
use capos_kcore::cap_table::CapTable;
use capos_kcore::endpoint::Waiting;
use capos_kcore::pid_table::PidTable;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use spin::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Running,
    /// Blocked in `cap_call` on an endpoint, waiting for the reply.
    AwaitingReply,
    /// Blocked in `endpoint_receive`.
    AwaitingCall,
    /// Blocked in `Console.readLine`, holding the console's input.
    AwaitingInput,
    Dead,
}

/// How a process ended.
#[derive(Clone, Debug)]
pub enum Exit {
    Status(u64),
    Killed(String),
}

pub struct Process {
    pub pid: u32,
    pub name: String,
    pub state: State,
    pub space: Option<AddressSpace>,
    pub caps: CapTable<Cap>,
    pub kstack: Option<KernelStack>,
    /// Saved kernel stack pointer while switched out.
    pub ksp: u64,
    /// The IPC area (None for the idle context).
    pub ipc: Option<IpcArea>,
    /// Bytes of the receive buffer that may be non-zero.
    pub recv_dirty: usize,
    /// Sequence number of this process's latest endpoint call.
    pub seq: u32,
    /// The reply this process waits for, while it waits for one.
    pub waiting: Option<Waiting>,
    /// The endpoint call it waits on (for the server to take).
    pub pending: PendingCall,
    /// What was handed to this process while it was blocked.
    pub delivery: Option<Result<Delivery, SysError>>,
    /// Where calls' bulk data lands when this process serves (addr, len).
    pub bulk_recv: Option<(u64, u64)>,
    /// Endpoints this process serves.
    pub serves: Vec<Arc<Endpoint>>,
    pub exit: Option<Exit>,
}

/// A client's endpoint call while it waits for the server to take it (its
/// params stay in its own send buffer until then).
#[derive(Default)]
pub struct PendingCall {
    pub iface: u64,
    pub word: CallWord,
    pub badge: u64,
    pub bulk_addr: u64,
    pub bulk_len: u64,
    pub caps: CapList,
}

/// What a blocked process is handed when it is woken.
pub enum Delivery {
    /// A client's reply: results in its receive buffer, handles in CAPS_IN.
    Reply { word: ReplyWord, bulk: u64 },
    /// A server's next call.
    Call(Received),
}

impl Process {
    /// A process record with nothing in it yet (the loader fills it).
    pub fn new(name: String, space: Option<AddressSpace>, caps: CapTable<Cap>, ipc: Option<IpcArea>) -> Process {
        Process {
            pid: 0,
            name,
            state: State::Ready,
            space,
            caps,
            kstack: None,
            ksp: 0,
            ipc,
            recv_dirty: 0,
            seq: 0,
            waiting: None,
            pending: PendingCall::default(),
            delivery: None,
            bulk_recv: None,
            serves: Vec::new(),
            exit: None,
        }
    }
}

pub struct Table {
    pub procs: PidTable<Box<Process>>,
    pub current: u32,
    run_queue: VecDeque<u32>,
}

pub static TABLE: Mutex<Option<Table>> = Mutex::new(None);

pub fn init() {
    let mut idle = Box::new(Process::new(String::from("idle"), None, CapTable::new(0), None));
    idle.state = State::Running;
    let mut procs = PidTable::new();
    let idle_pid = procs.insert_with(|_| idle);
    assert_eq!(idle_pid, Some(0), "idle is pid 0");
    *TABLE.lock() = Some(Table { procs, current: 0, run_queue: VecDeque::new() });
    crate::arch::x86_64::syscall::init();
    trap::PREEMPT_HOOK.call_once(|| preempt);
    trap::USER_FAULT_HOOK.call_once(|| kill_faulting);
}

/// Run `f` on the process table (interrupts are off in the kernel, so the
/// lock is never contended; it must not be held across a switch).
pub fn with<R>(f: impl FnOnce(&mut Table) -> R) -> R {
    let mut guard = TABLE.lock();
    f(guard.as_mut().expect("process table not initialised"))
}

impl Table {
    pub fn get(&mut self, pid: u32) -> Option<&mut Process> {
        self.procs.get_mut(pid).map(|b| &mut **b)
    }

    /// Two different processes at once (a call's client and server).
    pub fn two(&mut self, a: u32, b: u32) -> Option<(&mut Process, &mut Process)> {
        self.procs.two_mut(a, b).map(|(x, y)| (&mut **x, &mut **y))
    }

    pub fn current(&mut self) -> &mut Process {
        let c = self.current;
        self.get(c).expect("the current process is in the table")
    }

    /// The pid [`add`](Self::add) will give the next process (the
    /// supervisor binds endpoints to it before the process exists).
    pub fn next_pid(&self) -> Option<u32> {
        self.procs.next_pid()
    }

    /// Make a blocked process runnable again.
    pub fn wake(&mut self, pid: u32) {
        if let Some(p) = self.get(pid) {
            if matches!(p.state, State::AwaitingReply | State::AwaitingCall | State::AwaitingInput) {
                p.state = State::Ready;
                self.run_queue.push_back(pid);
            }
        }
    }

    /// Queue a new process; its pid, or `None` when the table is full.
    pub fn add(&mut self, mut p: Box<Process>) -> Option<u32> {
        let pid = self.procs.insert_with(|pid| {
            p.pid = pid;
            p.state = State::Ready;
            p
        })?;
        self.run_queue.push_back(pid);
        Some(pid)
    }

    pub fn any_ready(&self) -> bool {
        !self.run_queue.is_empty()
    }

    /// User processes (not idle), live or dead-but-unreaped.
    fn users(&self) -> impl Iterator<Item = &Process> + '_ {
        self.procs.iter().filter(|(pid, _)| *pid != 0).map(|(_, p)| &**p)
    }

    pub fn live(&self) -> usize {
        self.users().filter(|p| p.state != State::Dead).count()
    }
}

/// Give the CPU to the next ready process, if any. Returns when this
/// context is scheduled again (immediately if nothing else is ready and it
/// can still run).
pub fn schedule() {
    let switch = with(|t| {
        let cur = t.current;
        let next = loop {
            match t.run_queue.pop_front() {
                Some(pid) if t.get(pid).is_some_and(|p| p.state == State::Ready) => break Some(pid),
                Some(_) => continue,
                None => break None,
            }
        };
        let cur_runnable = t.current().state == State::Running;
        let next = match next {
            Some(n) => n,
            None if cur_runnable => return None,
            None => 0, // idle
        };
        if next == cur {
            t.current().state = State::Running;
            return None;
        }
        if cur_runnable && cur != 0 {
            t.current().state = State::Ready;
            t.run_queue.push_back(cur);
        }
        let from = &mut t.current().ksp as *mut u64;
        t.current = next;
        let n = t.current();
        n.state = State::Running;
        match (&n.space, &n.kstack) {
            (Some(space), Some(stack)) => {
                space.activate();
                crate::arch::x86_64::syscall::set_kernel_stack(stack.top);
            }
            _ => {
                // The idle context runs on the kernel's own tables.
                crate::mm::paging::activate_kernel_tables();
            }
        }
        Some((from, n.ksp))
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

/// Switch straight to `next`, a process blocked in IPC that the caller
/// just handed a call or a reply, without a pass through the run queue.
/// The current process's state was already set (it is blocked now).
pub fn switch_to(next: u32) {
    let switch = with(|t| {
        let cur = t.current;
        if next == cur || t.get(next).is_none_or(|p| p.state == State::Dead) {
            return None;
        }
        let from = &mut t.current().ksp as *mut u64;
        t.current = next;
        let n = t.current();
        n.state = State::Running;
        if let (Some(space), Some(stack)) = (&n.space, &n.kstack) {
            space.activate();
            crate::arch::x86_64::syscall::set_kernel_stack(stack.top);
        }
        Some((from, n.ksp))
    });
    match switch {
        Some((from, to)) => {
            // SAFETY: as in `schedule`.
            unsafe { switch_context(from, to) };
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
    let dead: Vec<Box<Process>> = with(|t| {
        let cur = t.current;
        let pids: Vec<u32> = t.procs.iter().filter(|(pid, p)| p.state == State::Dead && *pid != cur).map(|(pid, _)| pid).collect();
        pids.into_iter().filter_map(|pid| t.procs.remove(pid)).collect()
    });
    UNREAPED.fetch_sub(dead.len(), Ordering::Relaxed);
    for mut p in dead {
        let kstack = p.kstack.take();
        // Address space (user and table frames), IPC area, capability
        // table and the record itself.
        drop(p);
        // Nothing runs on a dead process's stack: we are on another one.
        if let Some(k) = kstack {
            crate::mm::stacks::free(k);
        }
    }
}

/// Lifetime work the call path found but could not do where it stood
/// (the process table may be locked where a capability is dropped).
static UNSETTLED: AtomicBool = AtomicBool::new(false);
/// Clients whose queued call died with its endpoint: (server, client).
static ORPHANS: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
/// Processes to kill (`ProcessControl.kill`): (pid, reason).
static KILLS: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// `server`'s endpoint closed with these clients' calls queued: they fail
/// with `PeerGone` at the next [`settle`].
pub fn orphan(server: u32, clients: impl Iterator<Item = u32>) {
    let mut o = ORPHANS.lock();
    let before = o.len();
    o.extend(clients.map(|c| (server, c)));
    if o.len() != before {
        UNSETTLED.store(true, Ordering::Relaxed);
    }
}

/// Kill `pid` at the next [`settle`] (before the caller returns to user
/// mode), as if it faulted.
pub fn request_kill(pid: u32, reason: String) {
    KILLS.lock().push((pid, reason));
    UNSETTLED.store(true, Ordering::Relaxed);
}

/// Do the deferred lifetime work: fail orphaned calls, carry out kills.
/// Must be called with the process table unlocked.
#[inline(always)]
pub fn settle() {
    if UNSETTLED.load(Ordering::Relaxed) {
        settle_now();
    }
}

#[inline(never)]
fn settle_now() {
    while UNSETTLED.swap(false, Ordering::Relaxed) {
        let orphans = core::mem::take(&mut *ORPHANS.lock());
        with(|t| {
            for (server, client) in orphans {
                // Only a call still queued for that server (not received:
                // the server may still answer those).
                if t.get(client).is_some_and(|c| c.state == State::AwaitingReply && c.waiting.is_some_and(|w| w.server == server && !w.received)) {
                    if let Some(c) = t.get(client) {
                        let _ = core::mem::take(&mut c.pending.caps);
                    }
                    ipc::fail_client(t, client, SysError::PeerGone);
                }
            }
        });
        let kills = core::mem::take(&mut *KILLS.lock());
        for (pid, reason) in kills {
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
    with(|t| t.procs.slots_used())
}

/// Timer preemption from user mode.
fn preempt() {
    schedule();
}

/// End `pid`: drop its capabilities, fail every call waiting on the
/// endpoints it served, and never run it again.
pub fn terminate(pid: u32, how: Exit) {
    let ended = with(|t| {
        let p = match t.get(pid) {
            Some(p) if p.state != State::Dead && pid != 0 => p,
            _ => return None,
        };
        p.state = State::Dead;
        p.exit = Some(how.clone());
        UNREAPED.fetch_add(1, Ordering::Relaxed);
        let drained = p.caps.drain();
        let served = core::mem::take(&mut p.serves);
        let _ = core::mem::take(&mut p.pending.caps);
        let name = p.name.clone();
        // Calls it had taken and not answered fail.
        let waiting: Vec<u32> = t
            .users()
            .filter(|c| c.state == State::AwaitingReply && c.waiting.is_some_and(|w| w.server == pid))
            .map(|c| c.pid)
            .collect();
        for client in waiting {
            if let Some(c) = t.get(client) {
                c.delivery = Some(Err(SysError::PeerGone));
                c.waiting = None;
                t.wake(client);
            }
        }
        Some((name, served, drained))
    });
    let Some((name, served, drained)) = ended else { return };
    // Its receive handles close their endpoints as they drop; death
    // closes the ones it created too, even if a copy of a handle lives on.
    drop(drained);
    for ep in served {
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
    let pid = with(|t| t.current);
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
            let blocked = t.users().filter(|p| matches!(p.state, State::AwaitingCall | State::AwaitingReply)).count();
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
