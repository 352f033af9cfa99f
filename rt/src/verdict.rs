//! Verdict lines for test programs: `[PASS] name: what` and
//! `[FAIL] name: why`, the lines the runner judges a guest by.

/// Print a pass; true, so checks can be folded with `&=`.
pub fn pass(name: &str, what: &str) -> bool {
    crate::println!("[PASS] {name}: {what}");
    true
}

/// Print a failure with its reason; false.
pub fn fail(name: &str, why: &str) -> bool {
    crate::println!("[FAIL] {name}: {why}");
    false
}
