//! The kernel's lock order: every lock belongs to a [`LockClass`] with a
//! rank, and a CPU takes locks in strictly increasing rank.
//!
//! With more than one CPU, two paths that take the same two locks in
//! opposite orders deadlock the day they run at once, and the test suite
//! will rarely show it. So the order is written down once (the kernel's
//! `sync::classes`, tabled in `docs/locks.md`) and checked on every
//! acquisition in debug builds: each CPU keeps a [`Held`] stack of the
//! classes it holds, and an acquisition that could be half of an inversion
//! is refused with a message naming both locks, the first time the path
//! runs, on one CPU, whatever the timing.
//!
//! Rules:
//! 1. A CPU may take a lock only if its class's rank is strictly greater
//!    than the rank of every class it holds. Equal ranks are a violation
//!    too: two classes of one rank have no order between them.
//! 2. Taking a class the CPU already holds is a violation (the same lock
//!    deadlocks on itself; two locks of one class, e.g. two endpoints'
//!    cores, have no order between them).
//! 3. Guards may drop in any order: [`Held::release`] removes the most
//!    recent entry of that class wherever it sits. Releasing a class that
//!    is not held is reported.
//! 4. An interrupt handler's acquisitions nest on the stack of the CPU it
//!    interrupted (they are LIFO with respect to the interrupted code), so a
//!    handler taking a lock the interrupted code holds is rule 2, and one
//!    taking a lock ranked below a held one is rule 1. Classes that a
//!    handler takes are marked [`LockClass::irq`] and must only be taken
//!    with interrupts off (the kernel checks that; this module only
//!    carries the bit).
//! 5. A `try_lock` cannot deadlock: [`Held::acquire_unordered`] records it
//!    without checking rules 1 and 2; while held it counts like any lock.
//! 6. The stack holds at most [`MAX_HELD`] entries, no allocation; a deeper
//!    nesting is reported ([`OrderViolation::Overflow`]), never undefined.
//!    A refused acquisition leaves the stack unchanged.

use core::fmt;

/// Most locks one CPU holds at once.
pub const MAX_HELD: usize = 16;

/// A kind of lock: every lock of the kernel names one, and the order is
/// between classes.
#[derive(Debug)]
pub struct LockClass {
    /// What the lock is called in reports and in `docs/locks.md`.
    pub name: &'static str,
    /// Locks are taken in strictly increasing rank.
    pub rank: u16,
    /// An interrupt handler may take it: only ever taken with interrupts
    /// off, or the handler could spin on a lock its own CPU holds.
    pub irq: bool,
}

impl LockClass {
    fn is(&self, other: &LockClass) -> bool {
        core::ptr::eq(self, other)
    }
}

/// An acquisition or release the order forbids.
#[derive(Clone, Copy, Debug)]
pub enum OrderViolation {
    /// `taking` does not rank above `holding` (rule 1).
    Order { taking: &'static LockClass, holding: &'static LockClass },
    /// `class` is already held by this CPU (rule 2).
    Retake { class: &'static LockClass },
    /// More than [`MAX_HELD`] locks at once (rule 5).
    Overflow { taking: &'static LockClass },
    /// A release of a class this CPU does not hold (rule 3).
    NotHeld { class: &'static LockClass },
}

impl PartialEq for OrderViolation {
    fn eq(&self, other: &Self) -> bool {
        use OrderViolation::*;
        match (self, other) {
            (Order { taking: a, holding: b }, Order { taking: c, holding: d }) => a.is(c) && b.is(d),
            (Retake { class: a }, Retake { class: b }) => a.is(b),
            (Overflow { taking: a }, Overflow { taking: b }) => a.is(b),
            (NotHeld { class: a }, NotHeld { class: b }) => a.is(b),
            _ => false,
        }
    }
}

impl fmt::Display for OrderViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderViolation::Order { taking, holding } => write!(
                f,
                "lock order: taking '{}' (rank {}) while holding '{}' (rank {})",
                taking.name, taking.rank, holding.name, holding.rank
            ),
            OrderViolation::Retake { class } => {
                write!(f, "lock order: taking '{}' (rank {}) while holding '{}' already (self-deadlock)", class.name, class.rank, class.name)
            }
            OrderViolation::Overflow { taking } => {
                write!(f, "lock order: taking '{}' (rank {}) with {} locks held already (tracker full)", taking.name, taking.rank, MAX_HELD)
            }
            OrderViolation::NotHeld { class } => write!(f, "lock order: releasing '{}' (rank {}), which is not held", class.name, class.rank),
        }
    }
}

/// The classes one CPU holds, in the order taken.
pub struct Held {
    stack: [Option<&'static LockClass>; MAX_HELD],
    len: usize,
}

impl Default for Held {
    fn default() -> Self {
        Self::new()
    }
}

impl Held {
    pub const fn new() -> Held {
        Held { stack: [None; MAX_HELD], len: 0 }
    }

    /// How many locks are held.
    pub fn depth(&self) -> usize {
        self.len
    }

    /// The held classes, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &'static LockClass> + '_ {
        self.stack[..self.len].iter().map(|c| c.expect("held entries below len are set"))
    }

    /// Record taking `class`, or say why it may not be taken (rules 1, 2,
    /// 5); a refusal changes nothing.
    pub fn acquire(&mut self, class: &'static LockClass) -> Result<(), OrderViolation> {
        if let Some(held) = self.iter().find(|h| h.is(class)) {
            return Err(OrderViolation::Retake { class: held });
        }
        // The highest held rank is the one to beat; report the first held
        // class of that rank (the one taken earliest).
        let mut top: Option<&'static LockClass> = None;
        for h in self.iter() {
            if top.map_or(true, |t| h.rank > t.rank) {
                top = Some(h);
            }
        }
        if let Some(holding) = top {
            if class.rank <= holding.rank {
                return Err(OrderViolation::Order { taking: class, holding });
            }
        }
        if self.len == MAX_HELD {
            return Err(OrderViolation::Overflow { taking: class });
        }
        self.stack[self.len] = Some(class);
        self.len += 1;
        Ok(())
    }

    /// Record taking `class` by a `try_lock`, which cannot deadlock: no
    /// order is checked (the lock is held all the same, so later
    /// acquisitions are checked against it). Only overflow is refused.
    pub fn acquire_unordered(&mut self, class: &'static LockClass) -> Result<(), OrderViolation> {
        if self.len == MAX_HELD {
            return Err(OrderViolation::Overflow { taking: class });
        }
        self.stack[self.len] = Some(class);
        self.len += 1;
        Ok(())
    }

    /// Record releasing `class`: its most recent entry goes, wherever it
    /// sits (rule 3).
    pub fn release(&mut self, class: &'static LockClass) -> Result<(), OrderViolation> {
        let at = (0..self.len).rev().find(|&i| self.stack[i].is_some_and(|h| h.is(class)));
        let Some(at) = at else {
            return Err(OrderViolation::NotHeld { class });
        };
        self.stack.copy_within(at + 1..self.len, at);
        self.len -= 1;
        self.stack[self.len] = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::string::ToString;

    static A: LockClass = LockClass { name: "a", rank: 10, irq: false };
    static B: LockClass = LockClass { name: "b", rank: 20, irq: false };
    static B2: LockClass = LockClass { name: "b2", rank: 20, irq: false };
    static C: LockClass = LockClass { name: "c", rank: 30, irq: true };

    fn names(h: &Held) -> std::vec::Vec<&'static str> {
        h.iter().map(|c| c.name).collect()
    }

    #[test]
    fn increasing_ranks_nest_three_deep_and_unwind() {
        let mut h = Held::new();
        h.acquire(&A).unwrap();
        h.acquire(&B).unwrap();
        h.acquire(&C).unwrap();
        assert_eq!(names(&h), ["a", "b", "c"]);
        h.release(&C).unwrap();
        h.release(&B).unwrap();
        h.release(&A).unwrap();
        assert_eq!(h.depth(), 0);
    }

    #[test]
    fn a_lower_rank_under_a_higher_one_names_both_locks() {
        let mut h = Held::new();
        h.acquire(&B).unwrap();
        let e = h.acquire(&A).unwrap_err();
        assert_eq!(e, OrderViolation::Order { taking: &A, holding: &B });
        assert_eq!(e.to_string(), "lock order: taking 'a' (rank 10) while holding 'b' (rank 20)");
        assert_eq!(names(&h), ["b"], "a refusal records nothing");
    }

    #[test]
    fn the_highest_held_rank_is_the_one_to_beat_not_the_last_taken() {
        let mut h = Held::new();
        h.acquire(&A).unwrap();
        h.acquire(&C).unwrap();
        // C dropped before A would be fine; here B comes while C is held,
        // although A (lower) was taken first.
        assert_eq!(h.acquire(&B), Err(OrderViolation::Order { taking: &B, holding: &C }));
        // Out-of-order release: drop A first; C still forbids B.
        h.release(&A).unwrap();
        assert_eq!(h.acquire(&B), Err(OrderViolation::Order { taking: &B, holding: &C }));
        h.release(&C).unwrap();
        h.acquire(&B).unwrap();
        assert_eq!(names(&h), ["b"]);
    }

    #[test]
    fn equal_ranks_have_no_order() {
        let mut h = Held::new();
        h.acquire(&B).unwrap();
        assert_eq!(h.acquire(&B2), Err(OrderViolation::Order { taking: &B2, holding: &B }));
        h.release(&B).unwrap();
        h.acquire(&B2).unwrap();
        assert_eq!(h.acquire(&B), Err(OrderViolation::Order { taking: &B, holding: &B2 }));
    }

    #[test]
    fn retaking_a_held_class_is_a_self_deadlock() {
        let mut h = Held::new();
        h.acquire(&A).unwrap();
        h.acquire(&C).unwrap();
        let e = h.acquire(&A).unwrap_err();
        assert_eq!(e, OrderViolation::Retake { class: &A });
        assert!(e.to_string().contains("taking 'a'") && e.to_string().contains("self-deadlock"), "{e}");
        // The top class itself, the case rule 1 alone would also catch.
        assert_eq!(h.acquire(&C), Err(OrderViolation::Retake { class: &C }));
        assert_eq!(names(&h), ["a", "c"]);
    }

    #[test]
    fn out_of_order_release_removes_the_right_entry() {
        let mut h = Held::new();
        h.acquire(&A).unwrap();
        h.acquire(&B).unwrap();
        h.acquire(&C).unwrap();
        h.release(&B).unwrap();
        assert_eq!(names(&h), ["a", "c"]);
        h.release(&A).unwrap();
        assert_eq!(names(&h), ["c"]);
        assert_eq!(h.release(&A), Err(OrderViolation::NotHeld { class: &A }));
        h.release(&C).unwrap();
        assert_eq!(h.depth(), 0);
        assert_eq!(h.release(&C), Err(OrderViolation::NotHeld { class: &C }));
        // And what was released may be taken again.
        h.acquire(&A).unwrap();
        h.acquire(&B).unwrap();
        assert_eq!(names(&h), ["a", "b"]);
    }

    #[test]
    fn a_try_lock_is_not_checked_but_counts_while_held() {
        let mut h = Held::new();
        h.acquire(&C).unwrap();
        // A try of a lower rank, even of a held class, cannot deadlock.
        h.acquire_unordered(&A).unwrap();
        h.acquire_unordered(&C).unwrap();
        assert_eq!(names(&h), ["c", "a", "c"]);
        // What it holds still forbids what ranks below the highest held.
        assert_eq!(h.acquire(&B), Err(OrderViolation::Order { taking: &B, holding: &C }));
        // Releases take the most recent entry of the class.
        h.release(&C).unwrap();
        assert_eq!(names(&h), ["c", "a"]);
        h.release(&C).unwrap();
        assert_eq!(names(&h), ["a"]);
        h.acquire(&B).unwrap();
        h.release(&A).unwrap();
        assert_eq!(names(&h), ["b"]);
    }

    #[test]
    fn releasing_nothing_is_reported() {
        let mut h = Held::new();
        assert_eq!(h.release(&A), Err(OrderViolation::NotHeld { class: &A }));
        assert_eq!(h.depth(), 0);
    }

    #[test]
    fn overflow_is_reported_and_changes_nothing() {
        // MAX_HELD + 1 classes of increasing rank.
        let classes: std::vec::Vec<&'static LockClass> = (0..=MAX_HELD as u16)
            .map(|r| &*std::boxed::Box::leak(std::boxed::Box::new(LockClass { name: "deep", rank: r, irq: false })))
            .collect();
        let mut h = Held::new();
        for c in &classes[..MAX_HELD] {
            h.acquire(c).unwrap();
        }
        let last = classes[MAX_HELD];
        assert_eq!(h.acquire(last), Err(OrderViolation::Overflow { taking: last }));
        assert!(h.acquire(last).unwrap_err().to_string().contains("tracker full"));
        assert_eq!(h.depth(), MAX_HELD);
        // Releasing from the middle makes room again, and order still holds.
        h.release(classes[3]).unwrap();
        assert_eq!(h.acquire(classes[3]), Err(OrderViolation::Order { taking: classes[3], holding: classes[MAX_HELD - 1] }));
        h.acquire(last).unwrap();
        assert_eq!(h.depth(), MAX_HELD);
        for c in classes.iter().rev() {
            if !core::ptr::eq(*c, classes[3]) {
                h.release(c).unwrap();
            }
        }
        assert_eq!(h.depth(), 0);
    }

    #[test]
    fn classes_are_told_apart_by_identity_not_name_or_rank() {
        static A_TWIN: LockClass = LockClass { name: "a", rank: 10, irq: false };
        let mut h = Held::new();
        h.acquire(&A).unwrap();
        // Same name and rank, another class: rule 1 (equal rank), not a retake.
        assert_eq!(h.acquire(&A_TWIN), Err(OrderViolation::Order { taking: &A_TWIN, holding: &A }));
        assert_eq!(h.release(&A_TWIN), Err(OrderViolation::NotHeld { class: &A_TWIN }));
        h.release(&A).unwrap();
    }
}
