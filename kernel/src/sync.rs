//! The kernel's locks: every lock is a [`Lock`] (or an [`RwLock`]) of a
//! named [`LockClass`], and every class is declared in [`classes`], with
//! its rank, in the one table of the kernel's lock order (`docs/locks.md`).
//!
//! Rules (the checker's are `capos_kcore::lock_order`'s):
//! 1. A CPU takes locks in strictly increasing rank; never one it holds.
//! 2. A class an interrupt handler takes (`irq: true`) is only ever taken
//!    with interrupts off (an [`RwLock`]'s readers excepted when handlers
//!    only read: readers do not exclude each other).
//! 3. No lock is held across a context switch (the checker's state is
//!    per CPU, not per process), and none across a wait for a device
//!    (`docs/locks.md` lists today's exceptions).
//!
//! In debug builds (`debug_assertions`: `KERNEL_PROFILE=dev`, what the
//! scenarios boot) every acquisition is checked against the locks this CPU
//! holds, and a violation panics naming both locks, the first time the
//! path runs, whatever the timing. A `try_lock` cannot deadlock, so it is
//! recorded (what it holds counts against later acquisitions) but not
//! checked. Release builds (the benchmarks' `bench-opt`) carry no checker:
//! a [`Lock`] is its spin lock.

pub mod classes;

pub use capos_kcore::lock_order::LockClass;
use core::ops::{Deref, DerefMut};

/// A spin lock of class `class`. Release builds keep no class: the lock
/// is its spin lock, byte for byte.
pub struct Lock<T: ?Sized> {
    #[cfg(debug_assertions)]
    class: &'static LockClass,
    inner: spin::Mutex<T>,
}

/// The lock is held while this lives; dropping it releases the lock.
pub struct LockGuard<'a, T: ?Sized + 'a> {
    guard: core::mem::ManuallyDrop<spin::MutexGuard<'a, T>>,
    #[cfg(debug_assertions)]
    class: &'static LockClass,
}

impl<T> Lock<T> {
    pub const fn new(class: &'static LockClass, value: T) -> Lock<T> {
        #[cfg(not(debug_assertions))]
        let _ = class;
        Lock {
            #[cfg(debug_assertions)]
            class,
            inner: spin::Mutex::new(value),
        }
    }
}

impl<T: ?Sized> Lock<T> {
    /// Take the lock (spinning). Debug builds check the order first, so an
    /// inversion or a self-deadlock panics instead of spinning.
    #[inline]
    pub fn lock(&self) -> LockGuard<'_, T> {
        #[cfg(debug_assertions)]
        check::acquire(self.class, check::Mode::Lock);
        LockGuard {
            guard: core::mem::ManuallyDrop::new(self.inner.lock()),
            #[cfg(debug_assertions)]
            class: self.class,
        }
    }

    /// Take the lock if it is free (never spins, so never deadlocks: the
    /// order is not checked, but while held it counts like any lock).
    #[inline]
    pub fn try_lock(&self) -> Option<LockGuard<'_, T>> {
        let guard = self.inner.try_lock()?;
        #[cfg(debug_assertions)]
        check::acquire(self.class, check::Mode::Try);
        Some(LockGuard {
            guard: core::mem::ManuallyDrop::new(guard),
            #[cfg(debug_assertions)]
            class: self.class,
        })
    }
}

impl<T: ?Sized> Deref for LockGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for LockGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for LockGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // Unlock first, then forget: an interrupt handler between the two
        // that wanted this lock is reported as a re-take, not missed.
        // SAFETY: the guard is dropped exactly once, here.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        #[cfg(debug_assertions)]
        check::release(self.class);
    }
}


/// A reader-writer spin lock of class `class`.
pub struct RwLock<T: ?Sized> {
    #[cfg(debug_assertions)]
    class: &'static LockClass,
    inner: spin::RwLock<T>,
}

pub struct ReadGuard<'a, T: ?Sized + 'a> {
    guard: core::mem::ManuallyDrop<spin::RwLockReadGuard<'a, T>>,
    #[cfg(debug_assertions)]
    class: &'static LockClass,
}

pub struct WriteGuard<'a, T: ?Sized + 'a> {
    guard: core::mem::ManuallyDrop<spin::RwLockWriteGuard<'a, T>>,
    #[cfg(debug_assertions)]
    class: &'static LockClass,
}

impl<T> RwLock<T> {
    pub const fn new(class: &'static LockClass, value: T) -> RwLock<T> {
        #[cfg(not(debug_assertions))]
        let _ = class;
        RwLock {
            #[cfg(debug_assertions)]
            class,
            inner: spin::RwLock::new(value),
        }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Shared access. Checked for order like [`Lock::lock`]; an `irq`
    /// class may be read with interrupts on (a handler that only reads
    /// does not wait for a reader).
    #[inline]
    pub fn read(&self) -> ReadGuard<'_, T> {
        #[cfg(debug_assertions)]
        check::acquire(self.class, check::Mode::Read);
        ReadGuard {
            guard: core::mem::ManuallyDrop::new(self.inner.read()),
            #[cfg(debug_assertions)]
            class: self.class,
        }
    }

    /// Exclusive access; an `irq` class only with interrupts off.
    #[inline]
    pub fn write(&self) -> WriteGuard<'_, T> {
        #[cfg(debug_assertions)]
        check::acquire(self.class, check::Mode::Lock);
        WriteGuard {
            guard: core::mem::ManuallyDrop::new(self.inner.write()),
            #[cfg(debug_assertions)]
            class: self.class,
        }
    }
}

impl<T: ?Sized> Deref for ReadGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> Drop for ReadGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        #[cfg(debug_assertions)]
        check::release(self.class);
    }
}

impl<T: ?Sized> Deref for WriteGuard<'_, T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for WriteGuard<'_, T> {
    #[inline(always)]
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

impl<T: ?Sized> Drop for WriteGuard<'_, T> {
    #[inline(always)]
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.guard) };
        #[cfg(debug_assertions)]
        check::release(self.class);
    }
}

/// Debug builds: panic if this CPU holds any lock (`what` names the place,
/// e.g. a context switch, where none may be held). Release: nothing.
/// Not called yet: for the SMP scheduler, before `switch_context`.
#[allow(dead_code)]
#[inline(always)]
pub fn assert_none_held(what: &str) {
    #[cfg(debug_assertions)]
    check::none_held(what);
    #[cfg(not(debug_assertions))]
    let _ = what;
}

/// How many locks this CPU holds (always 0 in release builds, which do not
/// track them).
pub fn held_count() -> usize {
    #[cfg(debug_assertions)]
    return check::depth();
    #[cfg(not(debug_assertions))]
    0
}

/// The checker: one [`Held`](capos_kcore::lock_order::Held) stack per CPU.
#[cfg(debug_assertions)]
mod check {
    use super::LockClass;
    use crate::arch::x86_64::percpu::{self, MAX_CPUS};
    use crate::arch::x86_64::serial::RawSerial;
    use crate::arch::x86_64::trap;
    use capos_kcore::lock_order::{Held, OrderViolation};
    use core::cell::UnsafeCell;
    use core::fmt::Write;

    struct PerCpu(UnsafeCell<Held>);

    // SAFETY: entry `i` is only touched by CPU `i` (`percpu::index()`),
    // and only inside `with_held`, which runs with interrupts off; so no
    // two accesses to one entry ever overlap, not even an interrupt
    // handler's on the same CPU.
    unsafe impl Sync for PerCpu {}

    static HELD: [PerCpu; MAX_CPUS] = [const { PerCpu(UnsafeCell::new(Held::new())) }; MAX_CPUS];

    fn with_held<R>(f: impl FnOnce(&mut Held) -> R) -> R {
        trap::without_interrupts(|| {
            let cpu = percpu::index_early();
            // SAFETY: see `PerCpu`: this CPU's entry, interrupts off, and
            // `f` does not reach `with_held` again.
            f(unsafe { &mut *HELD[cpu].0.get() })
        })
    }

    #[cold]
    #[inline(never)]
    fn violation(v: OrderViolation) -> ! {
        // The panic handler takes no lock; say what else was held first.
        let mut w = RawSerial;
        let _ = write!(w, "lock order: cpu {} holds:", percpu::index_early());
        with_held(|h| {
            for c in h.iter() {
                let _ = write!(w, " '{}' (rank {})", c.name, c.rank);
            }
        });
        let _ = writeln!(w);
        panic!("{}", v)
    }

    /// How a lock is being taken.
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub enum Mode {
        /// Spinning, exclusive: checked for order, and an `irq` class for
        /// interrupts off.
        Lock,
        /// Spinning, shared: checked for order.
        Read,
        /// A successful `try_lock`: recorded, not checked.
        Try,
    }

    /// Record taking `class` (before spinning for it, so an inversion
    /// panics rather than hangs).
    #[inline(never)]
    pub fn acquire(class: &'static LockClass, mode: Mode) {
        if mode == Mode::Lock && class.irq && trap::interrupts_enabled() {
            panic!("lock order: '{}' (rank {}) is taken by interrupt handlers, but was taken with interrupts on", class.name, class.rank);
        }
        let r = with_held(|h| if mode == Mode::Try { h.acquire_unordered(class) } else { h.acquire(class) });
        if let Err(v) = r {
            violation(v);
        }
    }

    #[inline(never)]
    pub fn release(class: &'static LockClass) {
        if let Err(v) = with_held(|h| h.release(class)) {
            violation(v);
        }
    }

    pub fn depth() -> usize {
        with_held(|h| h.depth())
    }

    #[allow(dead_code)]
    pub fn none_held(what: &str) {
        if depth() != 0 {
            let mut w = RawSerial;
            let _ = write!(w, "lock order: cpu {} holds:", percpu::index_early());
            with_held(|h| {
                for c in h.iter() {
                    let _ = write!(w, " '{}' (rank {})", c.name, c.rank);
                }
            });
            let _ = writeln!(w);
            panic!("lock order: locks held across {}", what);
        }
    }
}
