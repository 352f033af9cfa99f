//! A software TPM (swtpm) beside every capOS boot of the scenarios and
//! benchmarks, so OVMF does not spend seconds looking for a TPM that is
//! not there.
//!
//! Why: Debian's OVMF probes for a TPM at the TIS address 0xFED40000 in
//! PEI. With no device there QEMU reads zeros, which the probe takes for
//! a TPM that is slow to answer, and it waits for its locality requests
//! to time out, polling the ACPI PM timer every 30 us: about 1.5 s of
//! guest time, seen with gdb (the loop reads port 0x608, the stack holds
//! 0xFED40000). That is 1.3 s of host CPU of every boot (5.2 s to the end
//! of the smoke boot), and under `-icount shift=0`, where every PM-timer
//! read ends a translation block, about a minute (64 s). No QEMU or OVMF
//! setting skips the probe; a device that answers does.
//!
//! Which TPM: a TPM 1.2. With a TPM 2.0, OVMF measures what it loads and
//! the smoke boot took 9.5 s; with a TPM 1.2 this OVMF (whose TPM support
//! is for 2.0) is answered at once and goes on without measuring: 3.9 s,
//! and 11.5 s under `-icount shift=0` (measured 2026-12-06, quiet host).
//!
//! The guest kernel never talks to the TPM; it sees one more ACPI table
//! (TCPA), which it does not use. `CAPOS_SWTPM=off`, or swtpm not being
//! installed (tools/setup.sh installs it), boots without one, slower; the
//! latter is said once.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Start a TPM for the QEMU `cmd` and add its arguments; keep what this
/// returns until QEMU has exited (dropping it stops swtpm).
pub fn attach(cmd: &mut Command) -> Result<Option<SoftwareTpm>, String> {
    if std::env::var("CAPOS_SWTPM").is_ok_and(|v| v.trim() == "off") {
        return Ok(None);
    }
    let tpm = SoftwareTpm::start()?;
    if let Some(t) = &tpm {
        cmd.args(t.qemu_args());
    }
    Ok(tpm)
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
            .args(["socket", "--terminate"])
            .arg("--tpmstate")
            .arg(format!("dir={}", dir.display()))
            .arg("--ctrl")
            .arg(format!("type=unixio,path={}", sock.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = std::fs::remove_dir_all(&dir);
                if !TOLD_MISSING.swap(true, Ordering::Relaxed) {
                    println!("== no swtpm: every boot spends about 1.5 s more in OVMF's TPM probe, a minute under -icount (tools/setup.sh installs swtpm; tools/runner/src/machine/tpm.rs says why)");
                }
                return Ok(None);
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(format!("cannot start swtpm: {}", e));
            }
        };
        // From here a failure drops `tpm`, which stops swtpm and removes
        // its directory.
        let mut tpm = SoftwareTpm { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sock.exists() {
            if let Ok(Some(status)) = tpm.child.try_wait() {
                return Err(format!("swtpm exited ({}) before creating its socket {}", status, sock.display()));
            }
            if Instant::now() > deadline {
                return Err(format!("swtpm did not create its socket {} within 10 s", sock.display()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Some(tpm))
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
