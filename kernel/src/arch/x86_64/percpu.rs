//! STAND-IN (branch `locks`): the per-CPU module is being written with the
//! SMP bring-up; this minimal version only gives `sync`'s lock checker a
//! CPU index (always 0 while one CPU runs) and is replaced at merge.
// Only debug builds' lock checker uses it so far.
#![allow(dead_code)]

/// Most CPUs the kernel runs on.
pub const MAX_CPUS: usize = 64;

/// This CPU's index, `0..MAX_CPUS` (stand-in: the boot CPU only).
#[inline(always)]
pub fn index() -> usize {
    0
}
