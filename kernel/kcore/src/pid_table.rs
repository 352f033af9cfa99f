//! The process table's ids: a slot index plus the slot's generation.
//!
//! Dead processes leave the table, and their slots are reused, but a pid
//! is never reused while anything might still hold it: a pid is
//! `generation << SLOT_BITS | slot`, and emptying a slot bumps its
//! generation. Pids are kept by things that outlive the process they name:
//! an endpoint's server, a client's reply token (`ReplyToken.client`), a
//! queued call, a log line. With a plain index, a reply token kept for a
//! dead client could reach a new process in its slot that happens to wait
//! on the same server with the same sequence number, and it would take a
//! reply meant for somebody else; with generations, the stale pid simply
//! names no process ([`PidTable::get`] is `None`) and the token is refused.
//!
//! Rules:
//! 1. The first occupant of a slot has generation 0, so pids of a system
//!    whose processes never die are the slot indexes (0 = idle, 1, 2, ...).
//! 2. [`remove`](PidTable::remove) empties the slot and bumps its
//!    generation; a pid issued before never names the next occupant.
//! 3. A slot whose generation would wrap is retired for good (never
//!    reissued), like `cap_table`'s slots.
//! 4. At most [`MAX_SLOTS`] processes live at once.

use alloc::vec::Vec;

/// Bits of a pid that index the slot.
pub const SLOT_BITS: u32 = 16;
/// Most processes alive at once (idle included).
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;
const MAX_GENERATION: u32 = u32::MAX >> SLOT_BITS;

/// The pid of `slot` at `generation`.
pub fn pid_of(slot: usize, generation: u32) -> u32 {
    (generation << SLOT_BITS) | slot as u32
}

/// The slot a pid names (whatever its generation).
pub fn slot_of(pid: u32) -> usize {
    (pid & (MAX_SLOTS as u32 - 1)) as usize
}

fn generation_of(pid: u32) -> u32 {
    pid >> SLOT_BITS
}

struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Processes by pid.
pub struct PidTable<T> {
    slots: Vec<Slot<T>>,
    /// Empty, non-retired slots (reused lowest first).
    free: Vec<usize>,
}

impl<T> Default for PidTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> PidTable<T> {
    pub const fn new() -> PidTable<T> {
        PidTable { slots: Vec::new(), free: Vec::new() }
    }

    /// The slot the next insert takes (the lowest free one, else a new one).
    fn next_slot(&self) -> Option<usize> {
        match self.free.iter().min() {
            Some(s) => Some(*s),
            None if self.slots.len() < MAX_SLOTS => Some(self.slots.len()),
            None => None,
        }
    }

    /// The pid the next [`insert_with`](Self::insert_with) will return.
    pub fn next_pid(&self) -> Option<u32> {
        let slot = self.next_slot()?;
        Some(pid_of(slot, self.slots.get(slot).map_or(0, |s| s.generation)))
    }

    /// The pids the next `n` inserts will return, in order (when nothing
    /// is removed in between); fewer when the table would be full.
    pub fn next_pids(&self, n: usize) -> Vec<u32> {
        let mut free = self.free.clone();
        free.sort_unstable();
        let reused = free.into_iter().map(|s| pid_of(s, self.slots[s].generation));
        let fresh = (self.slots.len()..MAX_SLOTS).map(|s| pid_of(s, 0));
        reused.chain(fresh).take(n).collect()
    }

    /// Put `value` in a free slot; its pid, or `None` when the table is
    /// full (rule 4). `make` gets the pid before the value is stored.
    pub fn insert_with(&mut self, make: impl FnOnce(u32) -> T) -> Option<u32> {
        let slot = self.next_slot()?;
        if slot == self.slots.len() {
            self.slots.push(Slot { generation: 0, value: None });
        } else {
            self.free.retain(|s| *s != slot);
        }
        let pid = pid_of(slot, self.slots[slot].generation);
        self.slots[slot].value = Some(make(pid));
        Some(pid)
    }

    pub fn get(&self, pid: u32) -> Option<&T> {
        let s = self.slots.get(slot_of(pid))?;
        if s.generation != generation_of(pid) {
            return None;
        }
        s.value.as_ref()
    }

    pub fn get_mut(&mut self, pid: u32) -> Option<&mut T> {
        let s = self.slots.get_mut(slot_of(pid))?;
        if s.generation != generation_of(pid) {
            return None;
        }
        s.value.as_mut()
    }

    /// Two different live processes at once.
    pub fn two_mut(&mut self, a: u32, b: u32) -> Option<(&mut T, &mut T)> {
        let (sa, sb) = (slot_of(a), slot_of(b));
        if sa == sb || sa.max(sb) >= self.slots.len() {
            return None;
        }
        let (lo, hi) = self.slots.split_at_mut(sa.max(sb));
        let (x, y) = (&mut lo[sa.min(sb)], &mut hi[0]);
        let (x, y) = if sa < sb { (x, y) } else { (y, x) };
        if x.generation != generation_of(a) || y.generation != generation_of(b) {
            return None;
        }
        Some((x.value.as_mut()?, y.value.as_mut()?))
    }

    /// Rules 2 and 3: take the process out; `pid` names nothing afterwards.
    pub fn remove(&mut self, pid: u32) -> Option<T> {
        let slot = slot_of(pid);
        let s = self.slots.get_mut(slot)?;
        if s.generation != generation_of(pid) {
            return None;
        }
        let value = s.value.take()?;
        // A slot at its last generation is retired: it never goes back on
        // the free list.
        if s.generation != MAX_GENERATION {
            s.generation += 1;
            self.free.push(slot);
        }
        Some(value)
    }

    /// Live processes with their pids, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (u32, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.value.as_ref().map(|v| (pid_of(i, s.generation), v)))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (u32, &mut T)> + '_ {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            let g = s.generation;
            s.value.as_mut().map(|v| (pid_of(i, g), v))
        })
    }

    /// Live processes.
    pub fn len(&self) -> usize {
        self.slots.iter().filter(|s| s.value.is_some()).count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Slots ever used (live, free or retired): what the table's memory
    /// grows with.
    pub fn slots_used(&self) -> usize {
        self.slots.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_occupants_have_index_pids() {
        let mut t = PidTable::new();
        for want in 0..4 {
            assert_eq!(t.insert_with(|pid| pid), Some(want));
        }
        assert_eq!(t.get(3), Some(&3));
    }

    #[test]
    fn a_reused_slot_never_answers_to_the_old_pid() {
        let mut t = PidTable::new();
        let idle = t.insert_with(|_| "idle").unwrap();
        let old = t.insert_with(|_| "old").unwrap();
        assert_eq!(t.remove(old), Some("old"));
        assert_eq!(t.get(old), None);
        let predicted = t.next_pid().unwrap();
        let new = t.insert_with(|_| "new").unwrap();
        assert_eq!(new, predicted, "next_pid says what insert gives");
        t.remove(new);
        let plan = t.next_pids(3);
        let got: Vec<u32> = (0..3).map(|_| t.insert_with(|_| "x").unwrap()).collect();
        assert_eq!(plan, got, "next_pids says what the next inserts give");
        for pid in got {
            t.remove(pid);
        }
        let new = t.insert_with(|_| "new").unwrap();
        assert_eq!(slot_of(new), slot_of(old), "the slot is reused");
        assert_ne!(new, old);
        assert_eq!(t.get(old), None, "a stale pid (a kept reply token's client) reaches nobody");
        assert_eq!(t.get_mut(old), None);
        assert_eq!(t.remove(old), None, "removing by a stale pid removes nothing");
        assert_eq!(t.get(new), Some(&"new"));
        assert!(t.two_mut(idle, old).is_none());
        assert_eq!(t.slots_used(), 4, "the table grows only to the most processes alive at once");
    }

    #[test]
    fn many_generations_never_repeat_a_pid_and_the_table_stays_small() {
        let mut t = PidTable::new();
        t.insert_with(|_| 0u32).unwrap();
        let mut seen = std::collections::HashSet::new();
        for i in 0..5000u32 {
            let pid = t.insert_with(|_| i).unwrap();
            assert!(seen.insert(pid), "pid {pid} issued twice");
            assert_eq!(t.remove(pid), Some(i));
        }
        assert_eq!(t.slots_used(), 2);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn a_reply_token_kept_for_a_dead_client_never_reaches_the_slots_next_process() {
        use crate::endpoint::{reply_target, Waiting};
        use capos_abi::ipc::ReplyToken;
        use capos_abi::SysError;
        let mut t: PidTable<Option<Waiting>> = PidTable::new();
        t.insert_with(|_| None).unwrap(); // idle
        let server = t.insert_with(|_| None).unwrap();
        let old = t.insert_with(|_| Some(Waiting { server, seq: 1, received: true })).unwrap();
        let stale = ReplyToken { client: old, seq: 1 }.pack();
        t.remove(old);
        // The next process takes the slot and waits on the same server
        // with the same sequence number, its call received.
        let new = t.insert_with(|_| Some(Waiting { server, seq: 1, received: true })).unwrap();
        assert_eq!(slot_of(new), slot_of(old));
        let waits = |pid: u32| t.get(pid).copied().flatten();
        assert_eq!(reply_target(stale, server, waits), Err(SysError::InvalidReplyToken), "the stale token reaches nobody");
        assert_eq!(reply_target(ReplyToken { client: new, seq: 1 }.pack(), server, waits), Ok(new));
    }

    #[test]
    fn a_slot_at_its_last_generation_is_retired() {
        let mut t: PidTable<u8> = PidTable::new();
        t.insert_with(|_| 0).unwrap();
        t.slots[0].generation = MAX_GENERATION;
        let last = pid_of(0, MAX_GENERATION);
        assert_eq!(t.remove(last), Some(0));
        let next = t.insert_with(|_| 1).unwrap();
        assert_eq!(slot_of(next), 1, "the wrapped slot is not reused");
        assert_eq!(t.get(pid_of(0, 0)), None);
    }

    #[test]
    fn two_mut_gives_both_in_order_and_refuses_one_twice() {
        let mut t = PidTable::new();
        for v in 0..3 {
            t.insert_with(|_| v).unwrap();
        }
        let (a, b) = t.two_mut(2, 1).unwrap();
        assert_eq!((*a, *b), (2, 1));
        *a = 20;
        assert_eq!(t.get(2), Some(&20));
        assert!(t.two_mut(1, 1).is_none());
        assert!(t.two_mut(1, 9).is_none());
    }

    #[test]
    fn iter_lists_live_pids() {
        let mut t = PidTable::new();
        for v in 0..3 {
            t.insert_with(|_| v).unwrap();
        }
        t.remove(1);
        let again = t.insert_with(|_| 7).unwrap();
        let pids: Vec<u32> = t.iter().map(|(p, _)| p).collect();
        assert_eq!(pids, [0, again, 2]);
        assert_eq!(again, pid_of(1, 1));
    }
}
