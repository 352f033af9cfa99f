//! STAND-IN until the per-CPU block (GS) lands: one CPU.
pub use capos_kcore::run_queues::MAX_CPUS;

#[inline(always)]
pub fn index() -> usize {
    0
}

/// STAND-IN: send CPU `index` a reschedule interrupt.
pub fn reschedule(_index: usize) {}
