//! The process table and every process's state: the one place that says
//! what a process is doing and the only code that changes it.
//!
//! A process is [`State::Ready`], [`State::Running`], [`State::Blocked`]
//! for one of the reasons in [`Wait`], or [`State::Dead`] until reaped.
//! Rules:
//! 1. Only the functions of this module change a process's state; the
//!    fields of [`Process`] are private to it.
//! 2. A blocked process leaves [`State::Blocked`] only by being handed
//!    what it waited for (or why not) as its [`Delivery`], in the same
//!    step: [`Table::resume`]. What it is handed is read back once, by the
//!    process itself, after it runs again ([`Table::take_delivery`]).
//! 3. A process in a call ([`Wait::Reply`]) names the server and its
//!    call's sequence number; the call's envelope waits in
//!    [`Process::call`] until the server takes it ([`Table::mark_received`]),
//!    and a reply is accepted only as `capos_kcore::endpoint` rule 5 says.
//! 4. A process is put on the run queue only by [`Table::add`],
//!    [`Table::wake`] or the scheduler; [`Table::resume`] alone makes it
//!    ready for a direct switch (`switch_to`), which runs it next.
//! 5. A dead process is never resumed, scheduled or switched to; it stays
//!    in the table until `reap` frees it from another stack.
//! 6. Each CPU has its current process (its idle context when nothing
//!    else runs) and its run queue, all under the table's one lock. A
//!    process's saved kernel stack pointer is 0 while a CPU runs on that
//!    stack: the CPU leaving it stores it as the last thing it does there
//!    (`switch_context`, after the table is unlocked), and a CPU entering
//!    it takes it, waiting the few instructions until it is stored. So a
//!    process made ready on one CPU may be entered by another at once, and
//!    a dead one is freed only once its stack is saved.
//! 7. A process running on another CPU is ended by that CPU, never from
//!    here: [`Table::kill`] refuses it, and the caller asks that CPU to
//!    do it (`proc::terminate`).
//! 8. Placement is `capos_kcore::run_queues`: a new process goes to the
//!    online CPUs in turn, a woken one to the CPU it last ran on, a CPU
//!    with nothing of its own takes from the longest other queue, and a
//!    wake-up queued where a CPU idles wakes it (a reschedule interrupt,
//!    sent at once: it waits for nothing, so under the table lock). A call
//!    or reply switched to directly runs on the caller's CPU.

use crate::cap::{Cap, CapList};
use crate::cap::endpoint::Endpoint;
use crate::mm::address_space::AddressSpace;
use crate::mm::ipc_area::{IpcArea, IpcView};
use crate::mm::stacks::KernelStack;
use alloc::boxed::Box;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, Ordering};
use crate::arch::x86_64::percpu;
use capos_kcore::run_queues::MAX_CPUS;
use capos_abi::ipc::{CallWord, Received, ReplyWord};
use capos_abi::{Handle, SysError};
use capos_kcore::cap_table::CapTable;
use capos_kcore::endpoint::{next_seq, Waiting};
use capos_kcore::pid_table::{slot_of, PidTable};
use capos_kcore::run_queues::RunQueues;

/// Why a blocked process waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// In a call on an endpoint, for the reply of `server` to call `seq`;
    /// `received` once the server has taken the call (before that it is
    /// queued on the endpoint).
    Reply { server: u32, seq: u32, received: bool },
    /// In receive on an endpoint, for a call or a notification.
    Call,
    /// In a kernel object's call that answers later (`Console.readLine`).
    Object,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Ready,
    Running,
    Blocked(Wait),
    Dead,
}

/// How a process ended.
#[derive(Clone, Debug)]
pub enum Exit {
    Status(u64),
    Killed(String),
}

/// What a blocked process is handed when it runs again.
pub enum Delivery {
    /// A call's answer: results in its receive buffer, handles in CAPS_IN,
    /// `bulk` bytes written into its bulk buffer.
    Reply { word: ReplyWord, bulk: u64 },
    /// A server's next call (or notification).
    Call(Received),
    /// A server woken to receive again (a notification arrived).
    Retry,
}

/// A client's endpoint call while it waits for the server to take it (its
/// params stay in its own send buffer until then).
#[derive(Default)]
pub struct PendingCall {
    pub handle: u64,
    pub iface: u64,
    pub word: CallWord,
    pub badge: u64,
    pub bulk_addr: u64,
    pub bulk_len: u64,
    pub caps: CapList,
}

pub struct Process {
    pid: u32,
    name: Arc<str>,
    state: State,
    /// Shared with a kernel-object call that runs with the table unlocked
    /// (`ipc::call_unlocked`); never changed once the process exists.
    space: Option<Arc<AddressSpace>>,
    caps: CapTable<Cap>,
    kstack: Option<KernelStack>,
    /// Saved kernel stack pointer while switched out; 0 while a CPU runs
    /// on that stack (rule 6): written by `switch_context` as the CPU
    /// leaves it, taken (swapped with 0) by the CPU that enters it.
    ksp: AtomicU64,
    /// The CPU it last ran on, or was queued to run on (its run queue).
    cpu: usize,
    /// The manifest's `cpu: N`: it runs on that CPU only (run_queues rule
    /// 5; a call or a reply to it from another CPU queues it there instead
    /// of switching to it: [`Process::pinned_away`]).
    affinity: Option<usize>,
    /// The IPC area (None for the idle context; owned here, freed with the
    /// process), and the kernel's view of it (computed once: the call path
    /// reads it on every call).
    _ipc: Option<IpcArea>,
    view: Option<IpcView>,
    /// Bytes of the receive buffer that may be non-zero.
    recv_dirty: usize,
    /// Sequence number of this process's latest endpoint call.
    seq: u32,
    /// The endpoint call it is in (meaningful while `Blocked(Reply)`), and
    /// otherwise a scratch list where a running process's replies gather
    /// capabilities.
    call: PendingCall,
    /// What it was handed while blocked (rule 2).
    delivery: Option<Result<Delivery, SysError>>,
    /// Where calls' bulk data lands when this process serves (addr, len).
    bulk_recv: Option<(u64, u64)>,
    /// Endpoints this process serves.
    serves: Vec<Arc<Endpoint>>,
    exit: Option<Exit>,
}

/// The parts of a running process a call works on at once.
pub struct Parts<'a> {
    pub pid: u32,
    pub name: &'a str,
    pub caps: &'a mut CapTable<Cap>,
    pub space: Option<&'a AddressSpace>,
    pub view: Option<IpcView>,
    pub recv_dirty: &'a mut usize,
    pub scratch: &'a mut CapList,
}

impl Process {
    /// A process record (the loader fills it); the idle context has no
    /// space, IPC area or stack.
    pub fn new(name: String, space: Option<AddressSpace>, caps: CapTable<Cap>, ipc: Option<IpcArea>) -> Process {
        let view = ipc.as_ref().map(|a| a.view());
        Process {
            view,
            pid: 0,
            name: Arc::from(name),
            state: State::Ready,
            space: space.map(Arc::new),
            caps,
            kstack: None,
            ksp: AtomicU64::new(0),
            cpu: 0,
            affinity: None,
            _ipc: ipc,
            recv_dirty: 0,
            seq: 0,
            call: PendingCall::default(),
            delivery: None,
            bulk_recv: None,
            serves: Vec::new(),
            exit: None,
        }
    }

    /// Whether it is pinned to a CPU other than this one: a call or a
    /// reply that resumes it queues it there ([`Table::queue`]) instead of
    /// switching to it here (run_queues rule 5).
    #[inline(always)]
    pub fn pinned_away(&self) -> bool {
        self.affinity.is_some_and(|c| c != percpu::index())
    }

    /// Pinned to `cpu` (the manifest's `cpu: N`), or not.
    pub fn with_affinity(mut self, cpu: Option<usize>) -> Process {
        self.affinity = cpu;
        self
    }

    /// A process ready to start on `kstack` at `ksp`, serving `serves`.
    pub fn with_stack(mut self, kstack: KernelStack, ksp: u64, serves: Vec<Arc<Endpoint>>) -> Process {
        self.kstack = Some(kstack);
        self.ksp = AtomicU64::new(ksp);
        self.serves = serves;
        self
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
    pub fn state(&self) -> State {
        self.state
    }
    pub fn caps(&self) -> &CapTable<Cap> {
        &self.caps
    }
    pub fn caps_mut(&mut self) -> &mut CapTable<Cap> {
        &mut self.caps
    }
    pub fn space(&self) -> Option<&AddressSpace> {
        self.space.as_deref()
    }
    /// Its address space and name, for a call that runs with the table
    /// unlocked.
    pub fn shared(&self) -> (Option<Arc<AddressSpace>>, Arc<str>) {
        (self.space.clone(), self.name.clone())
    }
    pub fn view(&self) -> Option<IpcView> {
        self.view
    }
    pub fn recv_dirty_mut(&mut self) -> &mut usize {
        &mut self.recv_dirty
    }
    pub fn bulk_recv(&self) -> Option<(u64, u64)> {
        self.bulk_recv
    }
    pub fn set_bulk_recv(&mut self, b: Option<(u64, u64)>) {
        self.bulk_recv = b;
    }
    pub fn serve(&mut self, ep: Arc<Endpoint>) {
        self.serves.push(ep);
    }
    /// The call this process is in (its envelope and capabilities).
    pub fn call(&self) -> &PendingCall {
        &self.call
    }
    pub fn call_caps_mut(&mut self) -> &mut CapList {
        &mut self.call.caps
    }
    pub fn seq(&self) -> u32 {
        self.seq
    }
    /// What it waits for, if it is in a call (kcore's view, for reply tokens).
    pub fn waiting(&self) -> Option<Waiting> {
        match self.state {
            State::Blocked(Wait::Reply { server, seq, received }) => Some(Waiting { server, seq, received }),
            _ => None,
        }
    }

    /// Everything a call on this process works on, borrowed apart.
    pub fn parts(&mut self) -> Parts<'_> {
        Parts {
            pid: self.pid,
            name: &self.name,
            caps: &mut self.caps,
            space: self.space.as_deref(),
            view: self.view,
            recv_dirty: &mut self.recv_dirty,
            scratch: &mut self.call.caps,
        }
    }

    /// This process starts an endpoint call to `server` and blocks until
    /// its reply (rule 3); its capabilities to transfer are already in its
    /// call list.
    /// `received`: the server takes it at once (it was waiting).
    #[allow(clippy::too_many_arguments)]
    pub fn begin_call(&mut self, server: u32, handle: u64, iface: u64, word: CallWord, badge: u64, bulk: (u64, u64), received: bool) {
        self.seq = next_seq(self.seq);
        let c = &mut self.call;
        (c.handle, c.iface, c.word, c.badge, c.bulk_addr, c.bulk_len) = (handle, iface, word, badge, bulk.0, bulk.1);
        self.delivery = None;
        self.state = State::Blocked(Wait::Reply { server, seq: self.seq, received });
    }

    /// This process's call could not be delivered after all: it runs on
    /// (and gets the error), its transferred capabilities dropped.
    pub fn abandon_call(&mut self) {
        self.call.caps.clear();
        self.state = State::Running;
    }

    /// This process waits in receive (until its deadline, if it set one:
    /// [`Table::block_receive_until`]).
    pub fn block_receive(&mut self) {
        self.delivery = None;
        self.state = State::Blocked(Wait::Call);
    }

    /// The server took this process's call (rule 3).
    pub fn mark_received(&mut self) {
        if let State::Blocked(Wait::Reply { server, seq, .. }) = self.state {
            self.state = State::Blocked(Wait::Reply { server, seq, received: true });
        }
    }

    /// Rule 2 for a server blocked in receive: hand it call `r`.
    #[inline]
    pub fn hand_call(&mut self, r: Received) -> bool {
        if self.state != State::Blocked(Wait::Call) {
            return false;
        }
        self.delivery = Some(Ok(Delivery::Call(r)));
        self.state = State::Ready;
        true
    }

    /// Rule 2 for a client whose reply token was just accepted (so it is
    /// blocked in that call: `reply_target` checked): hand it its reply.
    #[inline]
    pub fn hand_reply(&mut self, word: ReplyWord, bulk: u64) {
        debug_assert!(matches!(self.state, State::Blocked(Wait::Reply { received: true, .. })));
        self.delivery = Some(Ok(Delivery::Reply { word, bulk }));
        self.state = State::Ready;
    }

    /// Rule 2 for a process already in hand: see [`Table::resume`].
    pub fn resume(&mut self, why: Option<Wait>, d: Result<Delivery, SysError>) -> bool {
        let State::Blocked(w) = self.state else { return false };
        let matches = match (why, w) {
            (None, _) => true,
            // A reply, or the failure of a call, is for a call to that
            // server only (whatever its sequence number): a client that
            // moved on to another server is not failed by the first.
            (Some(Wait::Reply { server: a, .. }), Wait::Reply { server: b, .. }) => a == b,
            (Some(a), b) => a == b,
        };
        if !matches {
            return false;
        }
        self.delivery = Some(d);
        self.state = State::Ready;
        true
    }

    /// The kernel stack switched to, and where its pointer is saved.
    pub(super) fn ksp_slot(&self) -> *mut u64 {
        self.ksp.as_ptr()
    }
    /// Whether its kernel stack is saved (no CPU runs on it: rule 6).
    fn off_cpu(&self) -> bool {
        self.ksp.load(Ordering::Acquire) != 0
    }
    /// The PML4 it runs on and the top of its kernel stack: its address
    /// space's and its own; for an idle context the kernel's tables and 0
    /// (it never enters user mode, so nothing uses the top, and a
    /// previous process's stack, which may be freed meanwhile, is no
    /// longer named).
    fn runs_on(&self) -> (u64, u64) {
        match (self.space(), &self.kstack) {
            (Some(space), Some(k)) => (space.pml4, k.top),
            _ => (crate::mm::paging::kernel_pml4(), 0),
        }
    }
    pub(super) fn take_kstack(&mut self) -> Option<KernelStack> {
        self.kstack.take()
    }
}

/// One CPU's part of the table: its idle context. (Its current process
/// is kept in its per-CPU block, `percpu::sched_current`, for the call
/// path's sake; the table alone writes it, see [`Table::current`].)
struct Cpu {
    /// Its idle context (the boot CPU's is pid 0 in `procs`).
    idle: Option<Box<Process>>,
}

impl Cpu {
    const OFFLINE: Cpu = Cpu { idle: None };
}

pub struct Table {
    procs: PidTable<Box<Process>>,
    /// (pid, uptime ns, endpoint) of each process in
    /// `endpoint_receive_timeout`, from before it blocks until the syscall
    /// returns (an entry of a process that died in its wait goes at the
    /// next expiry). Beside the processes rather than in them: only a few
    /// wait so, the plain receive on the call path never touches it, and
    /// expiry walks these alone. The endpoint it waits on comes with it:
    /// expiry tells the endpoint its server no longer waits (a call must
    /// then queue, not be handed to a process that is not in receive).
    deadlines: Vec<(u32, u64, Arc<Endpoint>)>,
    cpus: [Cpu; MAX_CPUS],
    /// Ready processes by CPU (`capos_kcore::run_queues` decides).
    queues: RunQueues,
}

// SAFETY: `cur` points into a record the table owns (see the field), and
// the table is only used under its lock.
unsafe impl Send for Table {}

impl Table {
    /// An empty table (a `static` can hold it without an `Option`, so
    /// the call path never checks for one); [`install_idle`](Self::install_idle)
    /// makes it usable.
    pub const fn empty() -> Table {
        Table { procs: PidTable::new(), deadlines: Vec::new(), cpus: [const { Cpu::OFFLINE }; MAX_CPUS], queues: RunQueues::new() }
    }

    /// Put this CPU's idle context in, running: on the boot CPU as pid 0
    /// (the first call), on the others in their own slot.
    pub fn install_idle(&mut self) {
        let me = percpu::index();
        let mut idle = Box::new(Process::new(String::from("idle"), None, CapTable::new(0), None));
        idle.state = State::Running;
        idle.cpu = me;
        if me == 0 {
            let idle_pid = self.procs.insert_with(|_| idle);
            assert_eq!(idle_pid, Some(0), "idle is pid 0");
        } else {
            self.cpus[me].idle = Some(idle);
        }
        self.queues.set_online(me);
        self.set_current(0);
    }

    /// The record `cpu` runs as `pid`: its idle context for 0.
    fn record<'a>(procs: &'a mut PidTable<Box<Process>>, idle: &'a mut Option<Box<Process>>, me: usize, pid: u32) -> Option<&'a mut Process> {
        if pid == 0 && me != 0 {
            idle.as_deref_mut()
        } else {
            procs.get_mut(pid).map(|b| &mut **b)
        }
    }

    /// This CPU's current process (0: its idle context).
    #[inline]
    pub fn current_pid(&self) -> u32 {
        percpu::sched_pid()
    }

    pub fn get(&mut self, pid: u32) -> Option<&mut Process> {
        self.procs.get_mut(pid).map(|b| &mut **b)
    }

    pub fn peek(&self, pid: u32) -> Option<&Process> {
        self.procs.get(pid).map(|b| &**b)
    }

    /// The current process and another one at once (a call's client and
    /// server); only the other's generation needs checking.
    pub fn current_and(&mut self, other: u32) -> Option<(&mut Process, &mut Process)> {
        if slot_of(other) == slot_of(percpu::sched_pid()) || other == 0 {
            return None;
        }
        let cur = Self::cur();
        let o = &mut **self.procs.get_mut(other)?;
        // SAFETY: `cur` is the live record of this CPU's current process
        // (see [`cur`](Self::cur); an idle context is never `other`, pid 0 being
        // refused above), and `o` is another slot's record, so the two do
        // not alias; both borrows are tied to `&mut self`.
        Some((unsafe { &mut *cur.as_ptr() }, o))
    }

    /// Make `pid` this CPU's current process; its record. `None` when it
    /// is not in the table.
    fn set_current(&mut self, pid: u32) -> Option<&mut Process> {
        let me = percpu::index();
        let c = &mut self.cpus[me];
        let p = Self::record(&mut self.procs, &mut c.idle, me, pid)?;
        p.cpu = me;
        percpu::set_sched_current(NonNull::from(&mut *p).as_ptr() as u64, pid, p.runs_on().0);
        self.queues.set_idle(me, pid == 0);
        Some(p)
    }

    /// The record of this CPU's current process, as the per-CPU block
    /// holds it: valid while that process is current here. A record
    /// leaves the table only through [`Table::take_dead`], which never
    /// takes one a CPU runs on (rule 6), a boxed record never moves, and
    /// only this table (under its lock) sets it: [`set_current`](Self::set_current),
    /// [`prepare_switch`](Self::prepare_switch).
    #[inline(always)]
    fn cur() -> NonNull<Process> {
        let p = percpu::sched_current() as *mut Process;
        debug_assert!(!p.is_null(), "process table not initialised on this CPU");
        // SAFETY: set from a `NonNull` by the table (above).
        unsafe { NonNull::new_unchecked(p) }
    }

    #[inline]
    pub fn current(&mut self) -> &mut Process {
        // SAFETY: `cur` is the live record of this CPU's current process
        // (see [`cur`](Self::cur)); `&mut self` makes this the only
        // reference into the table.
        unsafe { &mut *Self::cur().as_ptr() }
    }

    /// The pids the next `n` [`add`](Self::add)s will give.
    pub fn next_pids(&self, n: usize) -> Vec<u32> {
        self.procs.next_pids(n)
    }

    /// The pid [`add`](Self::add) will give the next process (the
    /// supervisor binds endpoints to it before the process exists).
    pub fn next_pid(&self) -> Option<u32> {
        self.procs.next_pid()
    }

    /// Queue a new process on the next online CPU in turn; its pid, or
    /// `None` when the table is full.
    pub fn add(&mut self, mut p: Box<Process>) -> Option<u32> {
        if let Some(c) = p.affinity.filter(|&c| c >= MAX_CPUS || self.queues.online() & (1 << c) == 0) {
            log::warn!("process {}: cpu {} is not online; it runs on any CPU", p.name, c);
            p.affinity = None;
        }
        let cpu = match p.affinity {
            Some(c) => c,
            None => self.queues.place(),
        };
        let pinned = p.affinity.is_some();
        let pid = self.procs.insert_with(|pid| {
            p.pid = pid;
            p.state = State::Ready;
            p.cpu = cpu;
            p
        })?;
        self.enqueue(pid, cpu, pinned);
        Some(pid)
    }

    /// Put ready `pid` on `cpu`'s run queue, `pinned` there or not (the
    /// caller holds its record); the CPU to wake for it is sent a
    /// reschedule interrupt (run_queues rule 3).
    fn enqueue(&mut self, pid: u32, cpu: usize, pinned: bool) {
        let wake = self.queues.enqueue(pid, cpu, percpu::index(), pinned);
        if wake != 0 {
            super::kick(wake);
        }
    }

    /// Whether this CPU has something to run (its own queue, or another
    /// CPU's it may take).
    pub fn any_ready(&self) -> bool {
        self.queues.any_for(percpu::index())
    }

    /// User processes (not idle), live or dead-but-unreaped.
    pub fn users(&self) -> impl Iterator<Item = &Process> + '_ {
        self.procs.iter().filter(|(pid, _)| *pid != 0).map(|(_, p)| &**p)
    }

    pub fn live(&self) -> usize {
        self.users().filter(|p| p.state != State::Dead).count()
    }

    pub fn slots_used(&self) -> usize {
        self.procs.slots_used()
    }

    /// CPUs with an idle context installed (online in the scheduler),
    /// a bit per index.
    pub fn online_mask(&self) -> u64 {
        self.queues.online()
    }

    /// Whether `pid` runs on a CPU other than this one now (its record
    /// belongs to that CPU: it cannot be ended from here, rule 7).
    pub fn running_elsewhere(&self, pid: u32) -> Option<usize> {
        let me = percpu::index();
        let p = self.peek(pid)?;
        (p.state == State::Running && p.cpu != me).then_some(p.cpu)
    }

    /// Whether a CPU other than this one runs something (a process, or
    /// the kernel on a process's behalf: ending one, starting its
    /// successor).
    pub fn others_busy(&self) -> bool {
        self.queues.busy() & !(1 << percpu::index()) != 0
    }

    /// Ask `cpu` to reschedule (a reschedule interrupt, sent now: it
    /// waits for nothing but the local APIC, so the table may be held).
    pub fn kick(&mut self, cpu: usize) {
        super::kick(1 << cpu);
    }

    // ---- Transitions (rule 1). ----

    /// The current process waits in receive.
    pub fn block_receive(&mut self) {
        self.current().block_receive();
    }

    /// The current process waits in receive until `deadline` (uptime ns,
    /// not 0); `next` (the earliest deadline of any process, which
    /// [`Table::expire`] keeps) is lowered to it.
    pub fn block_receive_until(&mut self, deadline: u64, ep: &Arc<Endpoint>, next: &AtomicU64) {
        let pid = self.current_pid();
        match self.deadlines.iter_mut().find(|(p, ..)| *p == pid) {
            Some(d) => (d.1, d.2) = (deadline, ep.clone()),
            None => self.deadlines.push((pid, deadline, ep.clone())),
        }
        self.current().block_receive();
        next.fetch_min(deadline, Ordering::Relaxed);
    }

    /// The current process's timed receive is over, however it ended.
    pub fn clear_deadline(&mut self) {
        let pid = self.current_pid();
        self.deadlines.retain(|(p, ..)| *p != pid);
    }

    /// Whether `p` waits in receive with a deadline (so it runs again
    /// whatever happens: not idle).
    pub fn timed(&self, p: &Process) -> bool {
        p.state == State::Blocked(Wait::Call) && self.deadlines.iter().any(|(pid, ..)| *pid == p.pid)
    }

    /// Every process blocked in receive whose deadline is `now` or
    /// earlier is woken with `TimedOut`; `next` becomes the earliest
    /// deadline left (u64::MAX: none). Under the table lock, as every
    /// `block_receive`, so no deadline is missed between the two.
    pub fn expire(&mut self, now: u64, next: &AtomicU64) {
        // A process that ended in its wait leaves its entry behind.
        let procs = &self.procs;
        self.deadlines.retain(|(pid, ..)| procs.get(*pid).is_some_and(|p| p.state != State::Dead));
        let mut due = Vec::new();
        let mut earliest = u64::MAX;
        for (pid, deadline, ep) in &self.deadlines {
            if *deadline <= now {
                due.push((*pid, ep.clone()));
            } else {
                earliest = earliest.min(*deadline);
            }
        }
        next.store(earliest, Ordering::Relaxed);
        // One woken to look again (a notification) and not yet blocked
        // again is not in receive: `wake` leaves it be, and its deadline
        // counts when it blocks again (at once: it is due). One woken here
        // is no longer the endpoint's waiting server: a call made before
        // it receives again must queue (under this same lock, so no call
        // sees it in between).
        for (pid, ep) in due {
            if self.wake(pid, Some(Wait::Call), Err(SysError::TimedOut)) {
                ep.core.lock().stop_waiting();
            } else {
                next.fetch_min(now, Ordering::Relaxed);
            }
        }
    }

    /// The current process waits for a kernel object to complete its call.
    pub fn park(&mut self) {
        let p = self.current();
        p.delivery = None;
        p.state = State::Blocked(Wait::Object);
    }

    /// Hand blocked `pid` what it waits for (rule 2) and make it ready for
    /// a direct switch; false (nothing changed) unless it was blocked for
    /// `why` (any wait when `why` is `None`).
    pub fn resume(&mut self, pid: u32, why: Option<Wait>, d: Result<Delivery, SysError>) -> bool {
        self.get(pid).is_some_and(|p| p.resume(why, d))
    }

    /// [`resume`](Self::resume) and queue it to run.
    pub fn wake(&mut self, pid: u32, why: Option<Wait>, d: Result<Delivery, SysError>) -> bool {
        let woke = self.resume(pid, why, d);
        if woke {
            self.queue(pid);
        }
        woke
    }

    /// What the current process was handed while it was blocked.
    pub fn take_delivery(&mut self) -> Option<Result<Delivery, SysError>> {
        self.current().delivery.take()
    }

    /// Put resumed `pid` on its CPU's run queue (it was handed its
    /// delivery but is not switched to directly).
    pub fn queue(&mut self, pid: u32) {
        let Some(p) = self.peek(pid) else { return };
        if p.state == State::Ready {
            let (cpu, pinned) = (p.cpu, p.affinity.is_some());
            self.enqueue(pid, cpu, pinned);
        }
    }

    /// End `pid`: it never runs again (rule 5). Returns what it held that
    /// must be released outside the table: its capabilities, the endpoints
    /// it served, its name, and the call it was in (handle of the
    /// endpoint it was queued on), or `None` if it was not alive or runs
    /// on another CPU (rule 7: see [`running_elsewhere`](Self::running_elsewhere)).
    pub fn kill(&mut self, pid: u32, how: Exit) -> Option<Ended> {
        if pid == 0 || self.running_elsewhere(pid).is_some() {
            return None;
        }
        let p = self.get(pid)?;
        if p.state == State::Dead {
            return None;
        }
        let queued_on = match p.state {
            State::Blocked(Wait::Reply { received: false, .. }) => p.caps.get(Handle::from_raw(p.call.handle)).ok().and_then(|c| match c {
                Cap::EndpointClient(c) => Some(c.endpoint().clone()),
                _ => None,
            }),
            _ => None,
        };
        p.state = State::Dead;
        p.exit = Some(how);
        let caps = p.caps.drain();
        let call_caps = core::mem::take(&mut p.call.caps);
        let serves = core::mem::take(&mut p.serves);
        let name = String::from(&*p.name);
        Some(Ended { caps, call_caps, serves, name, queued_on })
    }

    /// Clients in a call to `server` (received or not).
    pub fn clients_of(&self, server: u32) -> Vec<u32> {
        self.users().filter(|c| matches!(c.state, State::Blocked(Wait::Reply { server: s, .. }) if s == server)).map(|c| c.pid).collect()
    }

    /// Dead processes no CPU runs on (rule 6), out of the table.
    pub fn take_dead(&mut self) -> Vec<Box<Process>> {
        let pids: Vec<u32> = self.procs.iter().filter(|(pid, p)| *pid != 0 && p.state == State::Dead && p.off_cpu()).map(|(pid, _)| pid).collect();
        pids.into_iter().filter_map(|pid| self.procs.remove(pid)).collect()
    }

    // ---- The scheduler's transitions. ----

    /// Pick who runs next on this CPU, or `None` to keep running the
    /// current process (run_queues rule 2: its own queue, then the
    /// longest other). The current process, if still runnable, goes to
    /// the back of this CPU's queue; idle (0) runs when nothing else can.
    pub(super) fn pick_next(&mut self) -> Option<u32> {
        let me = percpu::index();
        let cur = percpu::sched_pid();
        let procs = &self.procs;
        let next = self.queues.next(me, |pid| procs.get(pid).is_some_and(|p| p.state == State::Ready));
        // The current process may already be another CPU's: blocked
        // here, it was handed its delivery and switched to there, and
        // that CPU waits for this one to leave its stack (rule 6). Then
        // it is not ours to keep running or to queue.
        let cur_runnable = {
            let c = self.current();
            c.state == State::Running && c.cpu == me
        };
        let next = match next {
            Some(n) => n,
            None if cur_runnable => return None,
            None => 0,
        };
        if next == cur {
            self.current().state = State::Running;
            return None;
        }
        if cur_runnable && cur != 0 {
            let c = self.current();
            c.state = State::Ready;
            let pinned = c.affinity.is_some();
            self.queues.requeue(cur, me, pinned);
        }
        Some(next)
    }

    /// Make `next` (resumed, or ready) the running process on this CPU
    /// now, with its address space and kernel stack loaded; the switch to
    /// carry out once the table is unlocked, or `None` when `next` cannot
    /// run (dead, or already current).
    #[inline(always)]
    pub fn prepare_switch(&mut self, next: u32) -> Option<Switch> {
        if next == self.current_pid() {
            return None;
        }
        let from = self.current().ksp_slot();
        let me = percpu::index();
        let c = &mut self.cpus[me];
        let n = Self::record(&mut self.procs, &mut c.idle, me, next)?;
        if n.state == State::Dead {
            return None;
        }
        n.state = State::Running;
        // Debug kernels (every scenario): a pinned process never runs
        // anywhere else (run_queues rule 5, `Process::pinned_away`).
        #[cfg(debug_assertions)]
        if let Some(c) = n.affinity.filter(|&c| c != me) {
            log::error!("process {} pinned to cpu {} ran on cpu {}", n.name, c, me);
        }
        n.cpu = me;
        // The idle bit changes only between a process and idle (not on a
        // call's or a reply's direct switch).
        let was_idle = percpu::sched_pid() == 0;
        let (tables, stack_top) = n.runs_on();
        // Its tables are loaded once the table is unlocked (`Switch`);
        // the kernel stack is this CPU's to set now.
        percpu::set_sched_current(NonNull::from(&mut *n).as_ptr() as u64, next, tables);
        crate::arch::x86_64::syscall::set_kernel_stack(stack_top);
        if was_idle != (next == 0) {
            self.queues.set_idle(me, next == 0);
        }
        Some(Switch { from, to: NonNull::from(&n.ksp) })
    }
}

/// A switch of kernel stacks prepared under the table lock
/// ([`Table::prepare_switch`]), carried out by `proc::run_switch` once
/// the table is unlocked.
///
/// The entered context's tables are loaded then too (from
/// `percpu::sched_tables`, which `prepare_switch` sets), not under the
/// lock: a CR3 write flushes the TLB, and under QEMU's TCG that is a
/// whole software TLB and its jump cache cleared. Measured in `make
/// bench-smp`'s pairs (TSC cycles under the lock, read around each
/// section), a call's and a reply's section took about 35,000 and 30,000
/// cycles with the write inside and 15,000 without, and two pairs on two
/// CPUs spent a third of their time spinning on each other's flushes.
/// The PML4 outlives the wait: the entered process is this CPU's current
/// from the moment the switch is prepared, only this CPU can end it
/// (rule 7), and the leaving one is freed only once this CPU has left
/// its stack (rule 6), after its tables are unloaded.
pub struct Switch {
    pub(super) from: *mut u64,
    /// (NonNull: an `Option<Switch>` needs no tag of its own.)
    pub(super) to: NonNull<AtomicU64>,
}

/// What a killed process held, released outside the table.
pub struct Ended {
    pub caps: Vec<(Handle, Cap)>,
    pub call_caps: CapList,
    pub serves: Vec<Arc<Endpoint>>,
    pub name: String,
    pub queued_on: Option<Arc<Endpoint>>,
}
