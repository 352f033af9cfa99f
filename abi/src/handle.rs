//! Capability handles.
//!
//! A handle is a `u64` a process uses to name one of its capabilities:
//!
//! ```text
//!  63                              32 31                               0
//! +----------------------------------+----------------------------------+
//! |            generation            |              index               |
//! +----------------------------------+----------------------------------+
//! ```
//!
//! `index` selects a slot of the process's capability table; `generation` is
//! the slot's generation when the capability was installed. The kernel bumps
//! a slot's generation every time the slot is freed, so a handle kept after
//! `cap_drop` (or guessed, or copied from another process) fails with
//! `StaleHandle`/`InvalidHandle` instead of reaching whatever object the slot
//! holds now. Generation 0 is never issued: the zero handle (and any zeroed
//! memory read as a handle) is always invalid.

use core::fmt;

/// A capability handle: slot index plus generation, packed in a `u64`.
/// `repr(transparent)`: an array of handles is an array of `u64`, as the
/// IPC area's `CAPS_IN` / `CAPS_OUT` arrays are.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(transparent)]
pub struct Handle(u64);

impl Handle {
    /// Never a valid handle (generation 0).
    pub const NULL: Handle = Handle(0);
    /// The first generation a slot issues.
    pub const FIRST_GENERATION: u32 = 1;

    /// Pack `index` and `generation`.
    pub const fn new(index: u32, generation: u32) -> Handle {
        Handle(((generation as u64) << 32) | index as u64)
    }

    /// Reinterpret a raw register/message value. Any `u64` is accepted here;
    /// whether it names a capability is for the capability table to decide.
    pub const fn from_raw(raw: u64) -> Handle {
        Handle(raw)
    }

    /// The value passed in registers and in `caps` lists.
    pub const fn raw(self) -> u64 {
        self.0
    }

    /// The table slot.
    pub const fn index(self) -> u32 {
        self.0 as u32
    }

    /// The slot generation this handle was issued with.
    pub const fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// Whether the value could have been issued at all (generation != 0).
    /// Says nothing about whether it is live.
    pub const fn is_well_formed(self) -> bool {
        self.generation() != 0
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Handle({}#{})", self.index(), self.generation())
    }
}

impl fmt::Display for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.index(), self.generation())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packs_and_unpacks() {
        for (index, generation) in [(0, 1), (1, 1), (7, 3), (u32::MAX, 1), (0, u32::MAX), (u32::MAX, u32::MAX)] {
            let h = Handle::new(index, generation);
            assert_eq!(h.index(), index);
            assert_eq!(h.generation(), generation);
            assert_eq!(Handle::from_raw(h.raw()), h);
            assert!(h.is_well_formed());
        }
        assert_eq!(Handle::new(5, 2).raw(), 0x0000_0002_0000_0005, "layout is part of the ABI");
    }

    #[test]
    fn zero_generation_is_never_well_formed() {
        assert!(!Handle::NULL.is_well_formed());
        assert!(!Handle::new(9, 0).is_well_formed());
        assert!(!Handle::from_raw(0xffff_ffff).is_well_formed());
        assert_ne!(Handle::new(1, 1), Handle::new(1, 2));
        assert_eq!(format!("{:?}", Handle::new(3, 4)), "Handle(3#4)");
    }
}
