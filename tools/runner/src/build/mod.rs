//! Building what the boots need: the kernel and the loader with cargo,
//! mkstore-image, and the Linux benchmark guest (linux.rs). A child run
//! of a parallel one ([`PREBUILT_ENV`]) builds nothing and only checks
//! that the files are there.

pub mod linux;

use crate::settings::Settings;
use std::path::{Path, PathBuf};
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
    if prebuilt() {
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

/// Where the build's own paths appear in the image instead of the real ones
/// (`--remap-path-prefix`): the checkout, rustup's toolchain and cargo's
/// home. Panic locations in a binary name their source file, and the
/// debug info that LLVM hashes into the `.llvm.<hash>` suffixes of local
/// symbols names the directory rustc ran in: without this, the same
/// commit built in two directories gives different binaries (docs/cloud.md,
/// "Reproducibility").
pub const REMAP_ROOT: &str = "/capos";
pub const REMAP_SYSROOT: &str = "/rust-sysroot";
pub const REMAP_CARGO_HOME: &str = "/cargo-home";

/// `(real path, replacement)` pairs, in the order rustc should see them:
/// rustc applies the last prefix that matches, so a longer path (a cargo
/// home inside the checkout) comes after the directory holding it. A path
/// reached through a symlink is listed as given and as resolved.
pub fn remaps(s: &Settings) -> Vec<(PathBuf, &'static str)> {
    let mut v: Vec<(PathBuf, &'static str)> = Vec::new();
    let mut add = |p: PathBuf, to: &'static str| {
        if p.as_os_str().is_empty() {
            return;
        }
        if let Ok(c) = p.canonicalize() {
            if c != p {
                v.push((c, to));
            }
        }
        v.push((p, to));
    };
    add(s.root.clone(), REMAP_ROOT);
    let sysroot = Command::new("rustc").current_dir(&s.root).args(["--print", "sysroot"]).output();
    if let Some(o) = sysroot.ok().filter(|o| o.status.success()) {
        add(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()), REMAP_SYSROOT);
    }
    let cargo_home = match std::env::var_os("CARGO_HOME").filter(|h| !h.is_empty()) {
        Some(h) => Some(s.root.join(h)),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")),
    };
    if let Some(h) = cargo_home {
        add(h, REMAP_CARGO_HOME);
    }
    v.sort_by_key(|(p, _)| p.as_os_str().len());
    v
}

fn toml_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// `cargo build` for `target` (image binaries: the kernel, the loader,
/// userspace programs; the caller adds `-p PACKAGE` for each), with the remaps of [`remaps`] added to
/// the target's rustflags from .cargo/config.toml (cargo joins `--config`
/// arrays onto the file's). Only target builds get them, so host builds
/// keep their cache. RUSTFLAGS in the environment would replace every
/// configured rustflag, the remaps included: refused.
pub fn target_cargo(s: &Settings, target: &str) -> Result<Command, String> {
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"] {
        if std::env::var_os(var).is_some_and(|v| !v.is_empty()) {
            return Err(format!(
                "{} is set: cargo would then drop the target rustflags of .cargo/config.toml and the runner's --remap-path-prefix flags, and the image would carry this machine's paths; unset it",
                var
            ));
        }
    }
    let flags: Vec<String> = remaps(s)
        .iter()
        .map(|(from, to)| {
            let from = from.to_str().ok_or_else(|| format!("{} is not UTF-8: cannot pass it to --remap-path-prefix", from.display()))?;
            Ok(toml_str(&format!("--remap-path-prefix={}={}", from, to)))
        })
        .collect::<Result<_, String>>()?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&s.root)
        .arg("--config")
        .arg(format!("target.{}.rustflags=[{}]", target, flags.join(", ")))
        .args(["build", "--quiet", "--target", target, "--profile", &s.profile]);
    Ok(cmd)
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
    if prebuilt() {
        return prebuilt_file(out);
    }
    let status = target_cargo(s, target)?
        .args(["-p", package])
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

/// Set (to 1) in the environment of a child run: everything is built; a
/// cargo build it would start is an error instead (build/mod.rs).
pub const PREBUILT_ENV: &str = "CAPOS_RUN_PREBUILT";

/// Whether this process is a child run whose artifacts were built for it.
pub fn prebuilt() -> bool {
    std::env::var(PREBUILT_ENV).map_or(false, |v| v == "1")
}

pub fn build_mkstore_image(root: &Path) -> Result<PathBuf, String> {
    if prebuilt() {
        return prebuilt_file(root.join("target/debug/mkstore-image"));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(root)
        .args(["build", "--quiet", "-p", "mkstore-image"])
        .status()
        .map_err(|e| format!("cannot run cargo: {}", e))?;
    if !status.success() {
        return Err("building mkstore-image failed".into());
    }
    Ok(root.join("target/debug/mkstore-image"))
}
