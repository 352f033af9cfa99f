//! Counted benchmark regions for userspace programs (the guest side of the
//! runner's instruction counter, `capos_abi::icount`).

use crate::println;
use crate::syscall::rdtsc;

/// Run `op` 16 times to warm up (first-touch page faults, caches), then
/// `n` times inside a counted region: the runner's plugin reports executed
/// instructions per op under `label`. `op` gets the iteration number
/// (0..16 warming up, then 0..n) and says whether it succeeded; a failure
/// ends the benchmark (false). The TSC line printed after it is
/// host-dependent under TCG and only a sanity figure. `only`: skip unless
/// `label` starts with it (`--only PREFIX`, for profiling one benchmark).
pub fn measure(label: &str, n: u64, only: Option<&str>, mut op: impl FnMut(u64) -> bool) -> bool {
    if only.is_some_and(|p| !label.starts_with(p)) {
        return true;
    }
    for i in 0..16 {
        if !op(i) {
            println!("bench: {} failed during warm-up", label);
            return false;
        }
    }
    println!("{}{} ops={}", capos_abi::icount::LINE_PREFIX, label, n);
    let t0 = rdtsc();
    capos_abi::icount::region_start();
    let mut ok = true;
    for i in 0..n {
        if !op(i) {
            ok = false;
            break;
        }
    }
    capos_abi::icount::region_stop();
    let cycles = rdtsc() - t0;
    if !ok {
        println!("bench: {} failed", label);
        return false;
    }
    println!("bench: {}: {} TSC cycles per op (host-dependent under TCG)", label, cycles / n.max(1));
    true
}
