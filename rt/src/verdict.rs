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

/// A test program's tally: one verdict line per check, counted, so the
/// program can exit non-zero when any failed.
#[derive(Default)]
pub struct Report {
    pub passed: u32,
    pub failed: u32,
}

impl Report {
    /// `Ok(what)` is a pass, `Err(why)` a failure.
    pub fn check(&mut self, name: &str, result: Result<alloc::string::String, alloc::string::String>) {
        match result {
            Ok(what) => {
                self.passed += 1;
                pass(name, &what);
            }
            Err(why) => {
                self.failed += 1;
                fail(name, &why);
            }
        }
    }

    /// The call must fail with the object's error `want` (its message is
    /// printed with the pass).
    pub fn refused<T: core::fmt::Debug>(&mut self, name: &str, r: Result<T, crate::CallError>, want: capos_abi::capos_capnp::ErrorCode) {
        use alloc::format;
        self.check(
            name,
            match r {
                Err(crate::CallError::Object(e)) if e.code == want => Ok(format!("refused with {:?}: {}", want, e.message)),
                Err(e) => Err(format!("refused with {:?}, want {:?}", e, want)),
                Ok(v) => Err(format!("accepted ({:?}), want {:?}", v, want)),
            },
        );
    }
}
