//! The default system's disks (demos/default-disks/README.md): what `make
//! run` attaches, created on the first run and used in place after that.
//!
//! - `data.img`: CAPOSWF1 (`mkstore-image --writable`, seeded from
//!   demos/default-disks/data), NVMe `nvme0n1`; DATA_IMAGE= names another
//!   image, used in place (it must exist: a typo must not quietly boot a
//!   fresh, empty disk);
//! - `store.img`: an empty CAPOSST1 store, NVMe `nvme1n1`;
//! - `fat.img`: FAT32 from demos/default-disks/fat (tools/mkdefault-fat-image),
//!   virtio-blk `vblk0`.
//!
//! The order of the `-device` arguments is what makes the names: QEMU puts
//! the devices on the PCI bus in that order, and the kernel numbers NVMe
//! controllers in bus order.

use std::path::{Path, PathBuf};

/// 64 MiB of 512-byte blocks.
pub const DATA_BLOCKS: u64 = 131_072;
/// 8 MiB.
pub const STORE_BLOCKS: u64 = 16_384;

pub struct DefaultDisks {
    pub data: PathBuf,
    pub store: PathBuf,
    pub fat: PathBuf,
}

/// The disks in `dir`, each made if it does not exist (`data` replaced by
/// `data_image` when given). Returns what was made, for the log.
pub fn ensure(root: &Path, dir: &Path, data_image: Option<&Path>) -> Result<(DefaultDisks, Vec<String>), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
    let mut made = Vec::new();
    let data = match data_image {
        Some(p) => match std::fs::File::open(p).and_then(|f| f.metadata()) {
            Ok(m) if m.is_file() => p.to_path_buf(),
            Ok(_) => return Err(format!("cannot use DATA_IMAGE {}: not a regular file", p.display())),
            Err(e) => return Err(format!("cannot read DATA_IMAGE {}: {}", p.display(), e)),
        },
        None => dir.join("data.img"),
    };
    if !data.exists() {
        let seed = root.join("demos/default-disks/data");
        mkstore(root, &["--writable", "--seed", &seed.display().to_string(), "--blocks", &DATA_BLOCKS.to_string()], &data)?;
        made.push(format!("{} (CAPOSWF1, {} MiB, from {})", data.display(), DATA_BLOCKS / 2048, seed.display()));
    }
    let store = dir.join("store.img");
    if !store.exists() {
        mkstore(root, &["--store", "--blocks", &STORE_BLOCKS.to_string()], &store)?;
        made.push(format!("{} (CAPOSST1, {} MiB, empty)", store.display(), STORE_BLOCKS / 2048));
    }
    let fat = dir.join("fat.img");
    if !fat.exists() {
        let tool = root.join("tools/mkdefault-fat-image");
        let out = std::process::Command::new(&tool).arg(&fat).output().map_err(|e| format!("{}: {}", tool.display(), e))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&fat);
            return Err(format!("{} {}: {}", tool.display(), fat.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
        made.push(format!("{} (FAT32, from demos/default-disks/fat)", fat.display()));
    }
    Ok((DefaultDisks { data, store, fat }, made))
}

fn mkstore(root: &Path, args: &[&str], out: &Path) -> Result<(), String> {
    let tool = crate::build::build_mkstore_image(root)?;
    let o = std::process::Command::new(&tool).args(args).arg("-o").arg(out).output().map_err(|e| format!("mkstore-image: {}", e))?;
    if !o.status.success() {
        let _ = std::fs::remove_file(out);
        return Err(format!("mkstore-image {} -o {}: {}", args.join(" "), out.display(), String::from_utf8_lossy(&o.stderr).trim()));
    }
    Ok(())
}

/// QEMU arguments attaching `d` (NVMe data, NVMe store, virtio FAT).
pub fn qemu_args(d: &DefaultDisks) -> Vec<String> {
    let drive = |id: &str, p: &Path| format!("file={},if=none,id={},format=raw", p.display(), id);
    vec![
        "-drive".into(),
        drive("data", &d.data),
        "-device".into(),
        "nvme,serial=capos-data,drive=data".into(),
        "-drive".into(),
        drive("store", &d.store),
        "-device".into(),
        "nvme,serial=capos-store,drive=store".into(),
        "-drive".into(),
        drive("fat", &d.fat),
        "-device".into(),
        "virtio-blk-pci,drive=fat".into(),
    ]
}

/// The manifest the default system boots.
pub const DEFAULT_MANIFEST: &str = "demos/default.manifest";

/// Whether MANIFEST (`manifest`) names the default system: unset, empty,
/// or demos/default.manifest (the Makefile's default), however spelled.
pub fn is_default_manifest(manifest: Option<&str>) -> bool {
    match manifest.map(str::trim).filter(|m| !m.is_empty()) {
        None => true,
        Some(m) => Path::new(m).components().eq(Path::new(DEFAULT_MANIFEST).components()) || m.trim_start_matches("./") == DEFAULT_MANIFEST,
    }
}

/// DATA_IMAGE, if set (a path that is not UTF-8 is still a path).
pub fn data_image_env() -> Option<PathBuf> {
    crate::settings::input_path("DATA_IMAGE")
}

/// MANIFEST, if set and not blank; an error (never "unset") when it is not
/// UTF-8, since the manifest path is used as text.
pub fn manifest_env() -> Result<Option<String>, String> {
    match std::env::var("MANIFEST") {
        Ok(m) if m.trim().is_empty() => Ok(None),
        Ok(m) => Ok(Some(m.trim().to_string())),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!("MANIFEST={}: the path is not UTF-8; rename the file", v.to_string_lossy())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_default_manifest_gets_the_default_disks() {
        for m in [None, Some(""), Some(" "), Some("demos/default.manifest"), Some("./demos/default.manifest")] {
            assert!(is_default_manifest(m), "{m:?}");
        }
        for m in ["demos/disk.manifest", "my.manifest", "demos/default.manifest.bak"] {
            assert!(!is_default_manifest(Some(m)), "{m}");
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultDisksUse {
    Fresh,
    Reuse,
}
