//! Scratch directories for the runner's host tests: one place that names
//! them and removes them.
//!
//! Rules:
//! 1. A scratch directory is fresh when made (a leftover of a crashed run
//!    with the same name is removed first) and is removed when dropped,
//!    also when the test panics, so a failing run leaves nothing behind.
//!    Before this, every run of the persist tests left a 65 MiB store in
//!    the temporary directory.
//! 2. Tests that need much real disk space at once (the cloud disk tests
//!    make 1 GiB disks and one of them allocates all of it) take
//!    [`big`] first, so at most one of them holds its space at a time
//!    whatever the number of test threads.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

pub struct Scratch(PathBuf);

impl Scratch {
    /// `<temp>/capos-<room>-<name>-<pid>`, empty.
    pub fn new(room: &str, name: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("capos-{}-{}-{}", room, name, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("making {}: {}", d.display(), e));
        Scratch(d)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join<P: AsRef<Path>>(&self, rest: P) -> PathBuf {
        self.0.join(rest)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Held while a test uses much disk space (rule 2). A test that panicked
/// holding it does not stop the others: the lock's poison is ignored.
pub fn big() -> MutexGuard<'static, ()> {
    static BIG: Mutex<()> = Mutex::new(());
    BIG.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_is_fresh_and_goes_away_even_after_a_panic() {
        let kept = Scratch::new("scratch-test", "fresh");
        std::fs::write(kept.join("left"), b"x").unwrap();
        let path = kept.path().to_path_buf();
        std::mem::forget(kept);
        let again = Scratch::new("scratch-test", "fresh");
        assert!(!again.join("left").exists(), "a leftover of an earlier run is removed");
        drop(again);
        assert!(!path.exists());
        let r = std::panic::catch_unwind(|| {
            let s = Scratch::new("scratch-test", "panic");
            std::fs::write(s.join("f"), b"x").unwrap();
            panic!("a failing test");
        });
        assert!(r.is_err());
        assert!(!std::env::temp_dir().join(format!("capos-scratch-test-panic-{}", std::process::id())).exists());
    }
}
