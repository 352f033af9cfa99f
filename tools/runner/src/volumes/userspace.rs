//! Userspace boot volumes: the demos a manifest names, built for
//! x86_64-unknown-none, the manifest compiled by mkmanifest, all of them
//! as boot modules.

use crate::build::Artifacts;
use super::esp::{Content, Volume};
use crate::settings::Settings;

/// `binary: /boot/NAME` lines of a manifest text.
pub fn binaries(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("binary:"))
        .filter_map(|p| p.trim().strip_prefix("/boot/").map(|n| n.to_string()))
        .collect()
}

/// Build demo `name` (package `capos-demo-NAME`) and return its stripped binary.
/// (A child run of a parallel one, crate::parallel, only checks that it
/// was built.)
pub fn build_demo(s: &Settings, name: &str) -> Result<std::path::PathBuf, String> {
    if !crate::build::prebuilt() {
        cargo_demos(s, &[name.to_string()])?;
    }
    strip_demo(s, name)
}

/// `cargo build` the demos `names` (packages `capos-demo-NAME`) at once.
fn cargo_demos(s: &Settings, names: &[String]) -> Result<(), String> {
    let mut cmd = crate::build::target_cargo(s, "x86_64-unknown-none")?;
    for n in names {
        cmd.args(["-p", &format!("capos-demo-{}", n)]);
    }
    let status = cmd
        .status()
        .map_err(|e| format!("cannot run cargo: {}", e))?;
    if !status.success() {
        return Err(format!("building {} failed", names.iter().map(|n| format!("capos-demo-{}", n)).collect::<Vec<_>>().join(", ")));
    }
    Ok(())
}

/// Every demo of demos/ (a directory with a Cargo.toml), by name.
pub fn all_demos(s: &Settings) -> Result<Vec<String>, String> {
    let dir = s.root.join("demos");
    let mut v: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("{}: {}", dir.display(), e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().to_str().map(String::from))
        .collect();
    v.sort();
    Ok(v)
}

/// Build and strip every demo (crate::parallel's prebuild), in one cargo call.
pub fn build_all_demos(s: &Settings) -> Result<(), String> {
    let names = all_demos(s)?;
    cargo_demos(s, &names)?;
    for n in &names {
        strip_demo(s, n)?;
    }
    Ok(())
}

fn strip_demo(s: &Settings, name: &str) -> Result<std::path::PathBuf, String> {
    let dir = if s.profile == "dev" { "debug" } else { s.profile.as_str() };
    let bin = s.root.join("target/x86_64-unknown-none").join(dir).join(name);
    crate::build::strip_to(&bin, &s.root.join("target/scenarios").join(format!("{}.{}.boot.elf", name, s.profile)))
}

/// Compile a manifest text file (relative to the workspace) with mkmanifest.
pub fn compile_manifest(s: &Settings, manifest: &str) -> Result<Vec<u8>, String> {
    let path = s.root.join(manifest);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
    mkmanifest::compile(&text).map_err(|e| e.render(&path.display().to_string()))
}

pub fn volume(s: &Settings, art: &Artifacts, manifest: &str, cmdline: &str) -> Result<Volume, String> {
    let path = s.root.join(manifest);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let bytes = mkmanifest::compile(&text).map_err(|e| e.render(&path.display().to_string()))?;
    let mut names = binaries(&text);
    names.sort();
    names.dedup();
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    v.add("/boot/capos-kernel", Content::File(art.kernel.clone()));
    v.add("/boot/manifest", Content::Bytes(bytes));
    let mut modules = vec![("/boot/manifest".to_string(), "manifest".to_string())];
    for n in &names {
        let stripped = build_demo(s, n)?;
        v.add(&format!("/boot/{}", n), Content::File(stripped));
        modules.push((format!("/boot/{}", n), n.clone()));
    }
    let mods: Vec<(&str, &str)> = modules.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
    v.add("/limine.conf", Content::Bytes(super::esp::limine_conf(cmdline, &mods).into_bytes()));
    Ok(v)
}
