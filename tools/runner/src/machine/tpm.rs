//! A software TPM (swtpm) beside a benchmark boot, so OVMF does not spend
//! a minute looking for a TPM that is not there.
//!
//! Why: Debian's OVMF probes for a TPM 2.0 and then a TPM 1.2 at the TIS
//! address 0xFED40000 in PEI. With no device there QEMU reads zeros, which
//! the probe takes for a TPM that is slow to answer, and it waits for each
//! locality request to time out (750 ms), polling the ACPI PM timer every
//! 30 us: about 1.5 s of guest time, seen with gdb (the loop reads port
//! 0x608, the stack holds 0xFED40000). Under `-icount shift=0` every
//! PM-timer read ends a translation block, so those 1.5 s cost about 55 s
//! of host time per benchmark boot (a boot to the loader: 64 s without a
//! TPM, 18.6 s with one). No QEMU or OVMF setting skips the probe; a TPM
//! that answers does. Only `-icount shift=0` boots get one: elsewhere the
//! probe costs its 1.5 s of real time and a TPM would cost more (OVMF then
//! measures every image it loads: 9.5 s to the prompt instead of 5.3 s).
//!
//! The guest kernel never talks to the TPM; it sees one more ACPI table
//! (TPM2), which it does not use. Without swtpm installed the boot goes on
//! without one, slower, and says so once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Whether QEMU arguments `args` run the guest under `-icount shift=0`,
/// the one setting that makes OVMF's TPM probe expensive.
pub fn wanted(args: &[String]) -> bool {
    args.windows(2).any(|w| w[0] == "-icount" && w[1].split(',').next() == Some("shift=0"))
}

/// A running swtpm; stopped and its state removed when dropped.
pub struct SoftwareTpm {
    child: Child,
    dir: PathBuf,
}

static NEXT: AtomicU32 = AtomicU32::new(0);
static TOLD_MISSING: AtomicBool = AtomicBool::new(false);

impl SoftwareTpm {
    /// Start one for a boot: `Ok(None)` when swtpm is not installed.
    /// Its socket lives in a short directory under the system's temporary
    /// directory (a Unix socket path has at most 107 bytes, and the
    /// workspace path is the user's).
    pub fn start() -> Result<Option<SoftwareTpm>, String> {
        let dir = std::env::temp_dir().join(format!("capos-tpm-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
        let sock = dir.join("sock");
        let spawned = Command::new("swtpm")
            .args(["socket", "--tpm2", "--terminate"])
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir_all(&dir);
                if !TOLD_MISSING.swap(true, Ordering::Relaxed) {
                    println!("== no swtpm: OVMF's TPM probe will spin for about a minute of host time per -icount boot (tools/setup.sh installs swtpm; machine/tpm.rs says why)");
                }
                return Ok(None);
            }
            Err(e) => return Err(format!("cannot start swtpm: {}", e)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if let Ok(Some(status)) = child.try_wait() {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("swtpm exited ({}) before creating its socket {}", status, sock.display()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("swtpm did not create its socket {} within 10 s", sock.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(SoftwareTpm { child, dir }))
    }

    /// QEMU's arguments for a TIS TPM backed by this swtpm.
    pub fn qemu_args(&self) -> Vec<String> {
        vec![
            "-chardev".into(),
            format!("socket,id=chrtpm,path={}", self.dir.join("sock").display()),
            "-tpmdev".into(),
            "emulator,id=tpm0,chardev=chrtpm".into(),
            "-device".into(),
            "tpm-tis,tpmdev=tpm0".into(),
        ]
    }
}

impl Drop for SoftwareTpm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn only_shift_zero_wants_a_tpm() {
        assert!(wanted(&v(&["-m", "256M", "-icount", "shift=0"])));
        assert!(wanted(&v(&["-icount", "shift=0,sleep=off"])));
        assert!(!wanted(&v(&["-icount", "shift=5"])));
        assert!(!wanted(&v(&["-icount", "shift=05"])));
        assert!(!wanted(&v(&["-m", "256M"])));
        assert!(!wanted(&v(&["shift=0", "-icount"])));
    }

    /// With swtpm installed (tools/setup.sh), a started TPM has its socket
    /// and dropping it removes its directory; without swtpm, `None`.
    #[test]
    fn starts_and_cleans_up() {
        match SoftwareTpm::start().unwrap() {
            Some(t) => {
                let dir = t.dir.clone();
                assert!(dir.join("sock").exists());
                assert!(t.qemu_args().iter().any(|a| a.contains(&dir.join("sock").display().to_string())));
                drop(t);
                assert!(!dir.exists(), "{} left behind", dir.display());
            }
            None => eprintln!("swtpm is not installed; nothing to start"),
        }
    }
}
