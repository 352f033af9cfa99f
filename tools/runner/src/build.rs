//! Building the kernel and the loader with cargo.

use crate::Settings;
use std::path::PathBuf;
use std::process::Command;

#[derive(Clone)]
pub struct Artifacts {
    /// The kernel as put on the boot volume (debug info stripped).
    pub kernel: PathBuf,
    /// The kernel with its symbols, for gdb.
    pub kernel_symbols: PathBuf,
    pub loader: PathBuf,
}

/// Copy `kernel` without debug sections: a debug build is ~10 MiB of DWARF
/// that the loader would otherwise have to read into firmware memory (too
/// much for a 64 MiB machine). gdb uses the unstripped file.
fn strip(s: &Settings, kernel: &PathBuf) -> Result<PathBuf, String> {
    strip_to(kernel, &s.root.join("target").join("scenarios").join(format!("capos-kernel.{}.boot.elf", s.profile)))
}

/// `objcopy --strip-debug input output`.
/// In a child run of a parallel one (crate::parallel) the file was made
/// before it started and is only checked for.
pub fn strip_to(kernel: &PathBuf, out: &PathBuf) -> Result<PathBuf, String> {
    let out = out.clone();
    if crate::parallel::prebuilt() {
        return prebuilt_file(out);
    }
    std::fs::create_dir_all(out.parent().unwrap()).map_err(|e| e.to_string())?;
    let status = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(kernel)
        .arg(&out)
        .status()
        .map_err(|e| format!("cannot run objcopy (Debian package binutils; run tools/setup.sh): {}", e))?;
    if !status.success() {
        return Err(format!("objcopy --strip-debug {} failed", kernel.display()));
    }
    Ok(out)
}

/// `path`, which the parallel run built before this child run started.
pub fn prebuilt_file(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!("{} was not built before the parallel run started (parallel.rs prebuild misses it; JOBS=1 builds as it goes)", path.display()))
    }
}

/// The binary `package` built for `target` in `s.profile`; built by cargo
/// unless this is a child run of a parallel one (crate::parallel), which
/// runs no cargo.
fn cargo_build(s: &Settings, package: &str, target: &str) -> Result<PathBuf, String> {
    let dir = if s.profile == "dev" { "debug" } else { s.profile.as_str() };
    let ext = if target.ends_with("uefi") { ".efi" } else { "" };
    let out = s.root.join("target").join(target).join(dir).join(format!("{}{}", package, ext));
    if crate::parallel::prebuilt() {
        return prebuilt_file(out);
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&s.root)
        .args(["build", "--quiet", "-p", package, "--target", target, "--profile", &s.profile])
        .status()
        .map_err(|e| format!("cannot run cargo: {}", e))?;
    if !status.success() {
        return Err(format!("building {} for {} failed", package, target));
    }
    Ok(out)
}

pub fn build_all(s: &Settings) -> Result<Artifacts, String> {
    let kernel_symbols = cargo_build(s, "capos-kernel", "x86_64-unknown-none")?;
    let kernel = strip(s, &kernel_symbols)?;
    let loader = match &s.limine_dir {
        Some(dir) => {
            let p = dir.join("BOOTX64.EFI");
            if !p.is_file() {
                return Err(format!("LIMINE_DIR={} has no BOOTX64.EFI", dir.display()));
            }
            p
        }
        None => cargo_build(s, "capos-boot", "x86_64-unknown-uefi")?,
    };
    Ok(Artifacts { kernel, kernel_symbols, loader })
}
