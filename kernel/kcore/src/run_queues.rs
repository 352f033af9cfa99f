//! Where ready processes wait to run, one queue per CPU, and which CPU to
//! wake when one is queued.
//!
//! The kernel keeps these inside its process table, under the table's
//! lock; this module only decides. It knows pids, CPU indexes (0 is the
//! boot CPU, dense up to [`MAX_CPUS`]), which CPUs are online and which
//! of them idle; whether a queued pid is still ready is the table's to
//! say (the `ready` argument), since a queue may hold stale entries.
//!
//! Rules:
//! 1. A pid is queued on one CPU's queue: a new process on the online
//!    CPUs in turn ([`place`](RunQueues::place)), a woken one on the CPU
//!    it last ran on.
//! 2. A CPU runs its own queue first, in order; with nothing of its own
//!    ready it takes the first ready pid of the longest other queue
//!    ([`next`](RunQueues::next)). Entries that are no longer ready are
//!    dropped as they are met; nothing ready is ever dropped.
//! 3. Queuing on an idle CPU other than the one queuing wakes it (a bit
//!    in the returned mask: the caller sends it a reschedule interrupt).
//!    Queuing on a busy CPU wakes one idle CPU, if any, to take it
//!    (rule 2); queuing on the queuing CPU itself while it idles wakes
//!    nobody (it is about to look).
//! 4. An offline CPU is never chosen, woken or stolen from (it has no
//!    queue entries: rule 1).
//! 5. A *pinned* entry (a process with a CPU affinity) is never taken by
//!    another CPU: rule 2 passes over it, leaving it queued, and queuing
//!    it wakes its own CPU only (never a helper that could not take it),
//!    busy or idle: only that CPU can run it, so a busy one is asked to
//!    reschedule (the kernel then preempts the process it runs in user
//!    mode, which goes to the back of its queue). Where it is queued is
//!    the caller's choice (its CPU).
//!
//! Cost: every question here is asked on the call path (a cross-CPU
//! call queues its server, each CPU that blocks asks what runs next and
//! its idle loop whether anything could), so none of them walks the
//! [`MAX_CPUS`] queues. Two masks, kept by the only code that adds or
//! takes entries ([`push`](RunQueues::push), [`take`](RunQueues::take)),
//! say which queues hold anything and which hold an entry another CPU may
//! take; the answers follow from them and the queues they name.

use alloc::collections::VecDeque;

/// Most CPUs the kernel runs on (one bit each in a `u64` mask).
pub const MAX_CPUS: usize = 64;

/// A set of CPUs, a bit per index.
pub type CpuMask = u64;

/// The CPUs in `mask`, lowest first (its set bits only).
pub fn cpus(mask: CpuMask) -> impl Iterator<Item = usize> {
    let mut left = mask;
    core::iter::from_fn(move || {
        (left != 0).then(|| {
            let c = left.trailing_zeros() as usize;
            left &= left - 1;
            c
        })
    })
}

/// A queued pid, and whether only its own CPU may run it (rule 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    pid: u32,
    pinned: bool,
}

pub struct RunQueues {
    queues: [VecDeque<Entry>; MAX_CPUS],
    /// Unpinned entries on each queue (stale ones included).
    unpinned: [u32; MAX_CPUS],
    /// Queues holding any entry.
    nonempty: CpuMask,
    /// Queues holding an unpinned entry: what another CPU may take.
    stealable: CpuMask,
    online: CpuMask,
    idle: CpuMask,
    /// Rule 1's cursor.
    next_cpu: usize,
}

impl Default for RunQueues {
    fn default() -> Self {
        Self::new()
    }
}

impl RunQueues {
    pub const fn new() -> RunQueues {
        RunQueues { queues: [const { VecDeque::new() }; MAX_CPUS], unpinned: [0; MAX_CPUS], nonempty: 0, stealable: 0, online: 0, idle: 0, next_cpu: 0 }
    }

    /// Add `e` at the back of `cpu`'s queue, keeping the masks.
    #[inline]
    fn push(&mut self, cpu: usize, e: Entry) {
        self.queues[cpu].push_back(e);
        self.nonempty |= 1 << cpu;
        if !e.pinned {
            self.unpinned[cpu] += 1;
            self.stealable |= 1 << cpu;
        }
    }

    /// Take entry `i` of `cpu`'s queue out, keeping the masks.
    #[inline]
    fn take(&mut self, cpu: usize, i: usize) -> Option<Entry> {
        let e = self.queues[cpu].remove(i)?;
        if !e.pinned {
            self.unpinned[cpu] -= 1;
            if self.unpinned[cpu] == 0 {
                self.stealable &= !(1 << cpu);
            }
        }
        if self.queues[cpu].is_empty() {
            self.nonempty &= !(1 << cpu);
        }
        Some(e)
    }

    /// `cpu` takes part from now on (it starts idle).
    pub fn set_online(&mut self, cpu: usize) {
        self.online |= 1 << cpu;
        self.idle |= 1 << cpu;
    }

    pub fn online(&self) -> CpuMask {
        self.online
    }

    /// Record whether `cpu` runs its idle context now.
    #[inline]
    pub fn set_idle(&mut self, cpu: usize, idle: bool) {
        if idle {
            self.idle |= 1 << cpu;
        } else {
            self.idle &= !(1 << cpu);
        }
    }

    pub fn is_idle(&self, cpu: usize) -> bool {
        self.idle & (1 << cpu) != 0
    }

    /// Online CPUs running something other than their idle context.
    pub fn busy(&self) -> CpuMask {
        self.online & !self.idle
    }

    /// Rule 1: the CPU a new process starts on (0 when none is online yet).
    pub fn place(&mut self) -> usize {
        for _ in 0..MAX_CPUS {
            let c = self.next_cpu;
            self.next_cpu = (c + 1) % MAX_CPUS;
            if self.online & (1 << c) != 0 {
                return c;
            }
        }
        0
    }

    /// Queue `pid` on `cpu` (rule 1), queued by CPU `me`; the CPUs to wake
    /// (rule 3). `pinned`: only `cpu` may run it (rule 5).
    pub fn enqueue(&mut self, pid: u32, cpu: usize, me: usize, pinned: bool) -> CpuMask {
        self.push(cpu, Entry { pid, pinned });
        let idle_others = self.idle & self.online & !(1 << me);
        if cpu != me && idle_others & (1 << cpu) != 0 {
            return 1 << cpu;
        }
        if cpu == me && (self.is_idle(me) || pinned) {
            return 0;
        }
        if pinned {
            // Rule 5: its CPU is busy and nobody else may take it.
            return 1 << cpu;
        }
        // Its CPU is busy: the lowest idle one may take it.
        let helpers = idle_others & !(1 << cpu);
        if helpers == 0 {
            0
        } else {
            1 << helpers.trailing_zeros()
        }
    }

    /// Put `pid`, preempted on `cpu`, at the back of that CPU's queue
    /// (wakes nobody: `cpu` is about to run something else).
    pub fn requeue(&mut self, pid: u32, cpu: usize, pinned: bool) {
        self.push(cpu, Entry { pid, pinned });
    }

    /// Rule 2: what CPU `me` runs next, if anything is ready.
    pub fn next(&mut self, me: usize, ready: impl Fn(u32) -> bool) -> Option<u32> {
        while let Some(e) = self.take(me, 0) {
            if ready(e.pid) {
                return Some(e.pid);
            }
        }
        // Each other queue holding an entry this CPU may take, once,
        // longest first (ties: lowest index); a queue of pinned entries
        // only is never tried (rule 5).
        let mut left: CpuMask = self.stealable & !(1 << me);
        loop {
            let from = cpus(left).max_by_key(|&c| (self.queues[c].len(), usize::MAX - c))?;
            left &= !(1 << from);
            if let Some(p) = self.steal_ready(from, &ready) {
                return Some(p);
            }
        }
    }

    /// The first ready entry of `cpu`'s queue another CPU may run; stale
    /// entries met on the way are dropped, pinned ones stay where they are
    /// (rule 5).
    fn steal_ready(&mut self, cpu: usize, ready: &impl Fn(u32) -> bool) -> Option<u32> {
        let mut i = 0;
        while let Some(&e) = self.queues[cpu].get(i) {
            if !ready(e.pid) {
                self.take(cpu, i);
            } else if e.pinned {
                i += 1;
            } else {
                self.take(cpu, i);
                return Some(e.pid);
            }
        }
        None
    }

    /// Whether any queue holds an entry (perhaps stale).
    pub fn any(&self) -> bool {
        self.nonempty != 0
    }

    /// Whether CPU `me` may find something to run: an entry of its own, or
    /// one another CPU holds that is not pinned there (perhaps stale). An
    /// idle CPU that asked [`any`](Self::any) instead would spin while a
    /// pinned process waits for its own busy CPU (rule 5).
    pub fn any_for(&self, me: usize) -> bool {
        (self.nonempty & (1 << me)) != 0 || (self.stealable & !(1 << me)) != 0
    }

    /// Entries on `cpu`'s queue (stale ones included).
    pub fn len(&self, cpu: usize) -> usize {
        self.queues[cpu].len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn rq(cpus: usize) -> RunQueues {
        let mut r = RunQueues::new();
        for c in 0..cpus {
            r.set_online(c);
        }
        r
    }

    /// `cpus` online CPUs, every one running something.
    fn all_busy(cpus: usize) -> RunQueues {
        let mut r = rq(cpus);
        for c in 0..cpus {
            r.set_idle(c, false);
        }
        r
    }

    #[test]
    fn placement_goes_round_the_online_cpus_only() {
        let mut r = RunQueues::new();
        for c in [0, 2, 5] {
            r.set_online(c);
        }
        let got: Vec<usize> = (0..7).map(|_| r.place()).collect();
        assert_eq!(got, [0, 2, 5, 0, 2, 5, 0]);
        assert_eq!(RunQueues::new().place(), 0, "nothing online: the boot CPU");
    }

    #[test]
    fn own_queue_first_in_order_then_the_longest_other() {
        let mut r = all_busy(3);
        r.enqueue(10, 1, 1, false);
        r.enqueue(11, 1, 1, false);
        r.enqueue(20, 2, 2, false);
        r.enqueue(1, 0, 0, false);
        assert_eq!(r.next(0, |_| true), Some(1));
        // Nothing of its own: CPU 1's queue is the longest.
        assert_eq!(r.next(0, |_| true), Some(10));
        // Ties go to the lowest index.
        assert_eq!(r.next(0, |_| true), Some(11));
        assert_eq!(r.next(0, |_| true), Some(20));
        assert_eq!(r.next(0, |_| true), None);
    }

    #[test]
    fn stale_entries_are_dropped_and_nothing_ready_is_lost() {
        let mut r = all_busy(2);
        let ready: HashSet<u32> = [3, 7].into_iter().collect();
        for pid in 1..=8 {
            r.enqueue(pid, (pid % 2) as usize, 0, false);
        }
        let mut got = Vec::new();
        while let Some(p) = r.next(1, |p| ready.contains(&p)) {
            got.push(p);
        }
        got.sort();
        assert_eq!(got, [3, 7]);
        assert!(!r.any(), "every stale entry met was dropped");
    }

    #[test]
    fn wakes_follow_rule_3() {
        let mut r = rq(4);
        // CPU 0 busy, 1..3 idle.
        r.set_idle(0, false);
        assert_eq!(r.enqueue(5, 2, 0, false), 1 << 2, "an idle target is woken");
        assert_eq!(r.enqueue(6, 0, 0, false), 1 << 1, "own queue while busy: the lowest idle helper");
        r.set_idle(2, false);
        assert_eq!(r.enqueue(7, 2, 0, false), 1 << 1, "a busy target: an idle helper, never the target");
        r.set_idle(1, false);
        r.set_idle(3, false);
        assert_eq!(r.enqueue(8, 2, 0, false), 0, "nobody idles: nobody to wake");
        let mut r = rq(2);
        assert_eq!(r.enqueue(9, 0, 0, false), 0, "queued on itself while idle: it is about to look");
        r.set_idle(0, false);
        assert_eq!(r.enqueue(9, 1, 0, false), 1 << 1);
    }

    #[test]
    fn pinned_entries_are_never_taken_by_another_cpu() {
        let mut r = all_busy(3);
        r.enqueue(10, 1, 1, true);
        r.enqueue(11, 1, 1, false);
        r.enqueue(12, 1, 1, true);
        r.enqueue(20, 2, 2, true);
        let gone: HashSet<u32> = [12].into_iter().collect();
        // CPU 0 has nothing: it may take only 11 (10 and 20 are pinned,
        // 12 is stale and dropped on the way).
        assert_eq!(r.next(0, |p| !gone.contains(&p)), Some(11));
        assert_eq!(r.next(0, |p| !gone.contains(&p)), None, "only pinned entries are left: nothing to take, and no endless loop");
        assert_eq!(r.len(1), 2, "the pinned entry stays queued, and the stale one behind it: no other CPU walks a queue it could take nothing from");
        assert_eq!(r.next(1, |p| !gone.contains(&p)), Some(10), "its own CPU runs it");
        assert_eq!(r.next(2, |p| !gone.contains(&p)), Some(20));
        // An idle CPU is not told there is work when all there is is pinned
        // elsewhere (it would spin instead of halting).
        r.enqueue(40, 1, 1, true);
        assert!(r.any() && !r.any_for(0) && r.any_for(1));
        r.enqueue(41, 1, 1, false);
        assert!(r.any_for(0), "an unpinned entry is work for anyone");
        assert_eq!(r.next(0, |p| !gone.contains(&p)), Some(41));
        assert_eq!(r.next(1, |p| !gone.contains(&p)), Some(40));
        // Waking: a pinned entry on a busy CPU wakes that CPU, never a helper.
        r.set_idle(0, true);
        assert_eq!(r.enqueue(30, 2, 1, true), 1 << 2, "busy target, pinned: only it can run it, so it is asked to reschedule");
        assert_eq!(r.enqueue(33, 1, 1, true), 0, "pinned to the queuing CPU itself: it is about to look");
        assert_eq!(r.enqueue(31, 2, 1, false), 1 << 0, "the same unpinned: the idle helper");
        r.set_idle(2, true);
        assert_eq!(r.enqueue(32, 2, 1, true), 1 << 2, "an idle target is woken, pinned or not");
    }

    #[test]
    fn offline_cpus_are_never_woken() {
        let mut r = RunQueues::new();
        r.set_online(0);
        r.set_online(3);
        r.set_idle(0, false);
        // 1 and 2 are offline (their idle bits are clear, and not online).
        r.set_idle(1, true);
        assert_eq!(r.enqueue(4, 0, 0, false), 1 << 3);
    }

    /// The masks say what walking the queues would.
    fn masks_agree(r: &RunQueues) {
        for c in 0..MAX_CPUS {
            let q = &r.queues[c];
            let unpinned = q.iter().filter(|e| !e.pinned).count();
            assert_eq!(r.unpinned[c] as usize, unpinned, "cpu {c}: unpinned count");
            assert_eq!(r.nonempty & (1 << c) != 0, !q.is_empty(), "cpu {c}: nonempty bit");
            assert_eq!(r.stealable & (1 << c) != 0, unpinned > 0, "cpu {c}: stealable bit");
        }
    }

    #[test]
    fn cpus_are_the_set_bits_lowest_first() {
        assert_eq!(cpus(0).count(), 0);
        assert_eq!(cpus(0b1010_0001).collect::<Vec<_>>(), [0, 5, 7]);
        assert_eq!(cpus(1 << 63).collect::<Vec<_>>(), [63]);
        assert_eq!(cpus(u64::MAX).count(), 64);
    }

    #[test]
    fn a_random_interleaving_loses_nothing() {
        // Many CPUs queue and take; every pid queued while ready comes out
        // exactly once (ready = not yet taken), whoever takes it.
        let mut r = rq(8);
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut queued = HashSet::new();
        let mut taken = HashSet::new();
        let mut pins = std::collections::HashMap::new();
        let mut next_pid = 1;
        for _ in 0..20_000 {
            let cpu = (rand() % 8) as usize;
            r.set_idle(cpu, rand() % 3 == 0);
            if rand() % 2 == 0 {
                let target = (rand() % 8) as usize;
                let pinned = rand() % 4 == 0;
                let kicks = r.enqueue(next_pid, target, cpu, pinned);
                assert_eq!(kicks & !r.online(), 0);
                assert!(kicks.count_ones() <= 1);
                queued.insert(next_pid);
                if pinned {
                    pins.insert(next_pid, target);
                }
                next_pid += 1;
            } else if let Some(p) = r.next(cpu, |p| !taken.contains(&p)) {
                assert!(queued.contains(&p));
                masks_agree(&r);
                assert!(pins.get(&p).is_none_or(|&c| c == cpu), "pid {p} pinned to {:?} ran on {cpu}", pins.get(&p));
                assert!(taken.insert(p), "pid {p} taken twice");
            }
        }
        for cpu in 0..8 {
            masks_agree(&r);
            while let Some(p) = r.next(cpu, |p| !taken.contains(&p)) {
                assert!(pins.get(&p).is_none_or(|&c| c == cpu));
                assert!(taken.insert(p));
            }
        }
        assert_eq!(queued, taken);
        masks_agree(&r);
        assert!(!r.any() && (0..8).all(|c| !r.any_for(c)), "all taken: nothing left to say there is work");
    }
}
