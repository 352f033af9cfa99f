//! Userspace boot volumes: the demos a manifest names, built for
//! x86_64-unknown-none, the manifest compiled by mkmanifest, all of them
//! as boot modules.

use crate::build::Artifacts;
use crate::esp::{Content, Volume};
use crate::Settings;

/// `binary: /boot/NAME` lines of a manifest text.
pub fn binaries(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("binary:"))
        .filter_map(|p| p.trim().strip_prefix("/boot/").map(|n| n.to_string()))
        .collect()
}

/// Build demo `name` (package `capos-demo-NAME`) and return its stripped binary.
pub fn build_demo(s: &Settings, name: &str) -> Result<std::path::PathBuf, String> {
    let package = format!("capos-demo-{}", name);
    let status = crate::build::target_cargo(s, &package, "x86_64-unknown-none")?
        .status()
        .map_err(|e| format!("cannot run cargo: {}", e))?;
    if !status.success() {
        return Err(format!("building {} failed", package));
    }
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
    v.add("/limine.conf", Content::Bytes(crate::esp::limine_conf(cmdline, &mods).into_bytes()));
    Ok(v)
}
