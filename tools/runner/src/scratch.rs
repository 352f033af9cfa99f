//! Scratch directories for the runner's host tests: one place that names
//! them and removes them.
//!
//! Rules:
//! 1. A scratch directory is fresh when made (a leftover of a crashed run
//!    with the same name is removed first) and is removed when dropped,
//!    also when the test panics, so a failing run leaves nothing behind.
//!    Before this, every run of the persist tests left a 65 MiB store in
//!    the temporary directory.
//!
//! Not serialized: the cloud disk tests (about 70 MiB of real space each,
//! one allocating a whole 1 GiB disk) run side by side, as the test
//! threads allow. A lock that ran them one at a time cost about 15 s of
//! the suite, most of it `sgdisk` waiting a second after each disk it
//! writes; the room they need is in setup.sh's free-space warning.

use std::path::{Path, PathBuf};

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
