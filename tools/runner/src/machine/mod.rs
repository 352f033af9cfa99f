//! The machine: QEMU's command line for a boot (machine type, memory,
//! CPUs, the firmware, the boot volume, the devices), the exit codes the
//! guest reports through isa-debug-exit, the buses disks are attached on
//! (bus.rs), the serial stream (serial.rs) and the software TPM of the
//! benchmark boots (tpm.rs).

pub mod bus;
pub mod serial;
pub mod tpm;

use crate::settings::Settings;
use std::path::{Path, PathBuf};
use std::process::Command;

/// QEMU's exit status for a value written to isa-debug-exit: (v << 1) | 1.
pub const EXIT_KERNEL_SUCCESS: i32 = 33;
pub const EXIT_KERNEL_FAILURE: i32 = 35;
pub const EXIT_LOADER_ERROR: i32 = 37;

pub fn describe_exit(code: Option<i32>) -> String {
    match code {
        Some(EXIT_KERNEL_SUCCESS) => "33 (kernel success)".into(),
        Some(EXIT_KERNEL_FAILURE) => "35 (kernel failure)".into(),
        Some(EXIT_LOADER_ERROR) => "37 (loader error)".into(),
        Some(0) => "0 (guest powered off or reset without reporting)".into(),
        Some(c) => format!("{} (QEMU error or unknown)", c),
        None => "killed by a signal".into(),
    }
}

/// The guest's serial port on QEMU's standard input and output, with no
/// monitor there: what the runner reads and types into. signal=off:
/// scripted input may contain Ctrl-C bytes meant for the guest.
pub fn serial_on_stdio(cmd: &mut Command) {
    cmd.args(["-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0", "-monitor", "none"]);
}

pub struct Firmware {
    pub code: PathBuf,
    pub vars: Option<PathBuf>,
}

pub fn find_firmware() -> Result<Firmware, String> {
    if let Ok(code) = std::env::var("OVMF_CODE") {
        if !code.is_empty() {
            let vars = std::env::var("OVMF_VARS").ok().filter(|v| !v.is_empty()).map(PathBuf::from);
            return Ok(Firmware { code: code.into(), vars });
        }
    }
    // Debian's 2 MiB build first: it boots capOS as the 4 MiB one does
    // (every scenario passes on either) and costs about 30% less host CPU
    // under TCG, most of a boot being firmware (storage-writable-recovery,
    // loader-errors and fault, 33 boots: 103 s of CPU instead of 147 s;
    // the 4 MiB build carries drivers capOS never uses, such as its
    // network boot stack). docs/testing.md.
    let pairs = [
        ("/usr/share/OVMF/OVMF_CODE.fd", Some("/usr/share/OVMF/OVMF_VARS.fd")),
        ("/usr/share/OVMF/OVMF_CODE_4M.fd", Some("/usr/share/OVMF/OVMF_VARS_4M.fd")),
        ("/usr/share/ovmf/OVMF.fd", None),
        ("/usr/share/qemu/OVMF.fd", None),
    ];
    for (code, vars) in pairs {
        if Path::new(code).is_file() && vars.map_or(true, |v| Path::new(v).is_file()) {
            return Ok(Firmware { code: code.into(), vars: vars.map(PathBuf::from) });
        }
    }
    Err("no OVMF firmware found (install the Debian package ovmf via tools/setup.sh, or set OVMF_CODE/OVMF_VARS)".into())
}

/// The machine a boot runs on: what replaces QEMU_MACHINE / QEMU_MEM /
/// QEMU_SMP (`None`: the setting's), and the devices and drives it adds.
#[derive(Default)]
pub struct Machine {
    pub kind: Option<&'static str>,
    pub mem: Option<&'static str>,
    pub smp: Option<&'static str>,
    /// Extra QEMU arguments; `{disk:NAME}` is replaced by the path of the
    /// disk image NAME (crate::volumes::Disks).
    pub args: Vec<String>,
}

/// QEMU booting `image` (a boot volume) on machine `o`; see [`qemu_booting`].
pub fn qemu_command(s: &Settings, o: &Machine, fw: &Firmware, image: &Path, vars_copy: &Path, extra: &[String]) -> Result<Command, String> {
    let boot = ["-drive".to_string(), format!("format=raw,file={}", image.display())];
    qemu_booting(s, o, fw, vars_copy, &boot, extra)
}

/// QEMU on machine `o` under firmware `fw` (its variables copied to
/// `vars_copy`), booting what the arguments `boot` attach; no network, no
/// display, no reboot, isa-debug-exit; then `extra` and QEMU_EXTRA.
pub fn qemu_booting(s: &Settings, o: &Machine, fw: &Firmware, vars_copy: &Path, boot: &[String], extra: &[String]) -> Result<Command, String> {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-machine",
        o.kind.unwrap_or(&s.machine),
        "-cpu",
        &s.cpu,
        "-m",
        o.mem.unwrap_or(&s.mem),
        "-smp",
        o.smp.unwrap_or(&s.smp),
    ]);
    match &fw.vars {
        Some(vars) => {
            std::fs::copy(vars, vars_copy).map_err(|e| format!("copying {}: {}", vars.display(), e))?;
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=0,readonly=on,file={}", fw.code.display()));
            cmd.arg("-drive").arg(format!("if=pflash,format=raw,unit=1,file={}", vars_copy.display()));
        }
        None => {
            cmd.arg("-bios").arg(&fw.code);
        }
    }
    cmd.args(boot);
    cmd.args(["-nic", "none", "-display", "none", "-no-reboot"]);
    cmd.args(["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
    cmd.args(extra);
    cmd.args(&s.extra);
    Ok(cmd)
}

/// The MAC every scenario's card has (net-check and net-echo expect it).
pub const NIC_MAC: &str = "52:54:00:12:34:56";

/// QEMU arguments of one virtio-net card on QEMU's user network with
/// `restrict=on` (the guest reaches nothing outside this host), its
/// `forwards` (`,hostfwd=tcp:127.0.0.1:PORT-:GUEST` each: loopback only)
/// and `device` properties added (`,disable-legacy=on`).
pub fn user_nic(forwards: &str, device: &str) -> Vec<String> {
    vec!["-netdev".into(), format!("user,id=n0,restrict=on{forwards}"), "-device".into(), format!("virtio-net-pci,netdev=n0,mac={NIC_MAC}{device}")]
}
