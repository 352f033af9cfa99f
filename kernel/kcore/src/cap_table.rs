//! Per-process capability table with generational handles.
//!
//! A process names its capabilities by [`Handle`]: a slot index plus the
//! slot's generation when the capability was installed (encoding in
//! `capos_abi::handle`). Every time a slot is emptied its generation is
//! bumped, so a handle kept after a drop, copied from another process, or
//! made up fails with an error instead of reaching whatever the slot holds
//! now. That is the whole safety argument, so the rules are strict:
//!
//! - a handle with generation 0, an index past the table, or a generation
//!   the slot has not issued yet is [`CapTableError::InvalidHandle`];
//! - a generation the slot issued before (the capability was removed) is
//!   [`CapTableError::StaleHandle`];
//! - a slot whose generation would wrap around is retired for good rather
//!   than reissuing a generation an old handle might still carry.
//!
//! The table is generic over the object type so the kernel decides what a
//! capability is (an `Arc` to a kernel object, an endpoint reference, ...)
//! and this logic is tested on the host. Capacity is bounded: a process
//! cannot grow kernel memory without limit by minting capabilities.

use alloc::vec::Vec;
use capos_abi::{Handle, SysError};
use core::fmt;

/// Why a handle lookup or an insert failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapTableError {
    /// The handle was never issued by this table.
    InvalidHandle,
    /// The handle was issued, but its capability has been removed since.
    StaleHandle,
    /// Every slot is in use (or retired).
    TableFull,
}

impl CapTableError {
    /// The syscall status for this error.
    pub fn sys_error(self) -> SysError {
        match self {
            CapTableError::InvalidHandle => SysError::InvalidHandle,
            CapTableError::StaleHandle => SysError::StaleHandle,
            CapTableError::TableFull => SysError::CapTableFull,
        }
    }
}

impl fmt::Display for CapTableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CapTableError::InvalidHandle => f.write_str("invalid handle"),
            CapTableError::StaleHandle => f.write_str("stale handle (capability dropped)"),
            CapTableError::TableFull => f.write_str("capability table full"),
        }
    }
}

struct Slot<T> {
    /// The generation the current occupant was issued with, or (when empty)
    /// the generation the next occupant will get. Never 0.
    generation: u32,
    /// Set once `generation` would wrap: the slot is never used again.
    retired: bool,
    object: Option<T>,
}

/// A bounded table of capabilities of type `T`.
pub struct CapTable<T> {
    slots: Vec<Slot<T>>,
    /// Indexes of empty, non-retired slots (reused last-freed first).
    free: Vec<u32>,
    capacity: usize,
    live: usize,
}

impl<T> CapTable<T> {
    /// An empty table that will hold at most `capacity` capabilities
    /// (clamped to what a handle index can address).
    pub fn new(capacity: usize) -> CapTable<T> {
        CapTable { slots: Vec::new(), free: Vec::new(), capacity: capacity.min(u32::MAX as usize), live: 0 }
    }

    /// An empty table of `capos_abi::limits::MAX_CAPS_PER_PROCESS` slots.
    pub fn with_default_capacity() -> CapTable<T> {
        CapTable::new(capos_abi::limits::MAX_CAPS_PER_PROCESS)
    }

    /// The most capabilities the table can hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Live capabilities.
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// How many more inserts will succeed (check before installing several
    /// capabilities that must arrive together).
    pub fn free_slots(&self) -> usize {
        self.free.len() + (self.capacity - self.slots.len())
    }

    /// Install `object`; returns its handle.
    pub fn insert(&mut self, object: T) -> Result<Handle, CapTableError> {
        let index = match self.free.pop() {
            Some(index) => index,
            None if self.slots.len() < self.capacity => {
                self.slots.push(Slot { generation: Handle::FIRST_GENERATION, retired: false, object: None });
                (self.slots.len() - 1) as u32
            }
            None => return Err(CapTableError::TableFull),
        };
        let slot = &mut self.slots[index as usize];
        debug_assert!(slot.object.is_none() && !slot.retired);
        slot.object = Some(object);
        self.live += 1;
        Ok(Handle::new(index, slot.generation))
    }

    /// Check `handle` and return its slot index.
    fn locate(&self, handle: Handle) -> Result<usize, CapTableError> {
        if !handle.is_well_formed() {
            return Err(CapTableError::InvalidHandle);
        }
        let index = handle.index() as usize;
        let slot = self.slots.get(index).ok_or(CapTableError::InvalidHandle)?;
        let g = handle.generation();
        if slot.retired {
            // Every generation of a retired slot was issued and is gone.
            return Err(CapTableError::StaleHandle);
        }
        match (&slot.object, g.cmp(&slot.generation)) {
            (Some(_), core::cmp::Ordering::Equal) => Ok(index),
            (_, core::cmp::Ordering::Less) => Err(CapTableError::StaleHandle),
            // Empty slot at its next generation, or a generation from the future.
            _ => Err(CapTableError::InvalidHandle),
        }
    }

    pub fn get(&self, handle: Handle) -> Result<&T, CapTableError> {
        let index = self.locate(handle)?;
        Ok(self.slots[index].object.as_ref().expect("located slot is occupied"))
    }

    pub fn get_mut(&mut self, handle: Handle) -> Result<&mut T, CapTableError> {
        let index = self.locate(handle)?;
        Ok(self.slots[index].object.as_mut().expect("located slot is occupied"))
    }

    /// Whether `handle` names a live capability.
    pub fn contains(&self, handle: Handle) -> bool {
        self.locate(handle).is_ok()
    }

    /// Remove the capability; `handle` (and any copy of it) is stale from now on.
    pub fn remove(&mut self, handle: Handle) -> Result<T, CapTableError> {
        let index = self.locate(handle)?;
        Ok(self.vacate(index))
    }

    fn vacate(&mut self, index: usize) -> T {
        let slot = &mut self.slots[index];
        let object = slot.object.take().expect("vacated slot is occupied");
        self.live -= 1;
        match slot.generation.checked_add(1) {
            Some(next) => {
                slot.generation = next;
                self.free.push(index as u32);
            }
            None => slot.retired = true,
        }
        object
    }

    /// Live capabilities with their handles, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| s.object.as_ref().map(|o| (Handle::new(i as u32, s.generation), o)))
    }

    /// Remove every capability (process teardown), in slot order. Every
    /// handle issued so far is stale afterwards.
    pub fn drain(&mut self) -> Vec<(Handle, T)> {
        let mut out = Vec::with_capacity(self.live);
        for index in 0..self.slots.len() {
            if self.slots[index].object.is_some() {
                let handle = Handle::new(index as u32, self.slots[index].generation);
                out.push((handle, self.vacate(index)));
            }
        }
        out
    }

    /// Test hook: set a slot's generation (to exercise wrap-around without
    /// four billion inserts).
    #[cfg(test)]
    fn force_generation(&mut self, index: u32, generation: u32) {
        self.slots[index as usize].generation = generation;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn insert_get_remove() {
        let mut t = CapTable::new(8);
        let a = t.insert("console").unwrap();
        let b = t.insert("store").unwrap();
        assert_ne!(a, b);
        assert_eq!(t.len(), 2);
        assert_eq!(*t.get(a).unwrap(), "console");
        *t.get_mut(b).unwrap() = "store2";
        assert_eq!(*t.get(b).unwrap(), "store2");
        assert_eq!(t.remove(a).unwrap(), "console");
        assert_eq!(t.len(), 1);
        assert!(!t.contains(a));
        assert!(t.contains(b));
        assert_eq!(a.generation(), Handle::FIRST_GENERATION);
    }

    #[test]
    fn dropped_handles_are_stale_even_after_reuse() {
        let mut t = CapTable::new(4);
        let old = t.insert(1).unwrap();
        t.remove(old).unwrap();
        assert_eq!(t.get(old), Err(CapTableError::StaleHandle));
        assert_eq!(t.remove(old), Err(CapTableError::StaleHandle), "double drop");
        let new = t.insert(2).unwrap();
        assert_eq!(new.index(), old.index(), "the slot is reused");
        assert_eq!(new.generation(), old.generation() + 1, "with a bumped generation");
        assert_eq!(t.get(old), Err(CapTableError::StaleHandle), "the old handle never reaches the new object");
        assert_eq!(t.get_mut(old), Err(CapTableError::StaleHandle));
        assert_eq!(*t.get(new).unwrap(), 2);
    }

    #[test]
    fn forged_handles_are_invalid() {
        let mut t = CapTable::new(4);
        let h = t.insert('x').unwrap();
        assert_eq!(t.get(Handle::NULL), Err(CapTableError::InvalidHandle));
        assert_eq!(t.get(Handle::new(h.index(), 0)), Err(CapTableError::InvalidHandle));
        assert_eq!(t.get(Handle::new(h.index(), h.generation() + 1)), Err(CapTableError::InvalidHandle), "future generation");
        assert_eq!(t.get(Handle::new(1, 1)), Err(CapTableError::InvalidHandle), "slot never allocated");
        assert_eq!(t.get(Handle::new(u32::MAX, 1)), Err(CapTableError::InvalidHandle));
        t.remove(h).unwrap();
        // The empty slot's next generation has not been issued yet.
        assert_eq!(t.get(Handle::new(h.index(), h.generation() + 1)), Err(CapTableError::InvalidHandle));
        assert_eq!(CapTableError::InvalidHandle.sys_error(), SysError::InvalidHandle);
        assert_eq!(CapTableError::StaleHandle.sys_error(), SysError::StaleHandle);
    }

    #[test]
    fn another_tables_handle_never_reaches_this_tables_object_by_accident() {
        // Two processes each hold one capability at index 0 generation 1: the
        // numbers coincide, which is why a handle is only meaningful in the
        // table that issued it. The kernel always looks up in the caller's
        // own table, so process B presenting A's number gets B's own object
        // (or an error), never A's.
        let mut a = CapTable::new(4);
        let mut b = CapTable::new(4);
        let ha = a.insert("a-secret").unwrap();
        b.insert("b-own").unwrap();
        let hb_dropped = b.insert("b-dropped").unwrap();
        b.remove(hb_dropped).unwrap();
        assert_eq!(*b.get(ha).unwrap(), "b-own");
        // A's handle numbers B never issued fail.
        let ha2 = a.insert("a2").unwrap();
        let ha3 = a.insert("a3").unwrap();
        assert_eq!(b.get(ha2), Err(CapTableError::StaleHandle), "B's slot 1 held B's own dropped capability");
        assert_eq!(b.get(ha3), Err(CapTableError::InvalidHandle), "B has no slot 2");
    }

    #[test]
    fn capacity_is_bounded_with_a_clear_error() {
        let mut t = CapTable::new(3);
        let hs: Vec<_> = (0..3).map(|i| t.insert(i).unwrap()).collect();
        assert_eq!(t.free_slots(), 0);
        assert_eq!(t.insert(9), Err(CapTableError::TableFull));
        assert_eq!(CapTableError::TableFull.sys_error(), SysError::CapTableFull);
        t.remove(hs[1]).unwrap();
        assert_eq!(t.free_slots(), 1);
        let h = t.insert(10).unwrap();
        assert_eq!(h.index(), 1);
        assert_eq!(t.insert(11), Err(CapTableError::TableFull));
        assert_eq!(CapTable::<u8>::with_default_capacity().capacity(), capos_abi::limits::MAX_CAPS_PER_PROCESS);
        let mut zero = CapTable::new(0);
        assert_eq!(zero.insert(()), Err(CapTableError::TableFull));
    }

    #[test]
    fn a_slot_whose_generation_would_wrap_is_retired() {
        let mut t = CapTable::new(2);
        let h = t.insert(1).unwrap();
        t.force_generation(h.index(), u32::MAX);
        let last = Handle::new(h.index(), u32::MAX);
        assert_eq!(*t.get(last).unwrap(), 1);
        t.remove(last).unwrap();
        assert_eq!(t.get(last), Err(CapTableError::StaleHandle));
        for g in [1, 2, u32::MAX - 1] {
            assert_eq!(t.get(Handle::new(h.index(), g)), Err(CapTableError::StaleHandle));
        }
        // The retired slot is not reused; the next insert takes a new slot.
        let n = t.insert(2).unwrap();
        assert_ne!(n.index(), h.index());
        assert_eq!(t.insert(3), Err(CapTableError::TableFull), "a retired slot counts against capacity");
    }

    #[test]
    fn iteration_and_teardown() {
        let mut t = CapTable::new(8);
        let hs: Vec<_> = (0..5).map(|i| t.insert(i * 10).unwrap()).collect();
        t.remove(hs[2]).unwrap();
        let seen: Vec<_> = t.iter().map(|(h, v)| (h, *v)).collect();
        assert_eq!(seen, vec![(hs[0], 0), (hs[1], 10), (hs[3], 30), (hs[4], 40)]);
        let drained = t.drain();
        assert_eq!(drained, vec![(hs[0], 0), (hs[1], 10), (hs[3], 30), (hs[4], 40)]);
        assert!(t.is_empty());
        assert_eq!(t.iter().count(), 0);
        for h in hs {
            assert_eq!(t.get(h), Err(CapTableError::StaleHandle));
        }
    }

    /// Random operations against a model: a handle lookup succeeds exactly
    /// when the model says the handle is live, and then returns the model's
    /// object. Random (forged) handles never succeed unless they happen to
    /// equal a live handle.
    #[test]
    fn random_operations_match_a_model() {
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let mut t = CapTable::new(16);
        let mut live: HashMap<Handle, u64> = HashMap::new();
        let mut dead: Vec<Handle> = Vec::new();
        for step in 0..20_000u64 {
            match next() % 4 {
                0 | 1 => match t.insert(step) {
                    Ok(h) => assert!(live.insert(h, step).is_none(), "handle {h:?} issued twice"),
                    Err(e) => {
                        assert_eq!(e, CapTableError::TableFull);
                        assert_eq!(live.len(), 16);
                    }
                },
                2 if !live.is_empty() => {
                    let h = *live.keys().nth((next() % live.len() as u64) as usize).unwrap();
                    assert_eq!(t.remove(h), Ok(live.remove(&h).unwrap()));
                    dead.push(h);
                }
                _ => {
                    let h = if !dead.is_empty() && next() % 2 == 0 {
                        dead[(next() % dead.len() as u64) as usize]
                    } else {
                        Handle::new((next() % 20) as u32, (next() % 8) as u32)
                    };
                    match live.get(&h) {
                        Some(v) => assert_eq!(t.get(h), Ok(v)),
                        None => assert!(t.get(h).is_err(), "{h:?} is not live but was accepted"),
                    }
                    if dead.contains(&h) {
                        assert_eq!(t.get(h), Err(CapTableError::StaleHandle));
                    }
                }
            }
            assert_eq!(t.len(), live.len());
        }
    }
}
