//! Boot volumes and disk images: what goes on the EFI system partition
//! (esp.rs), the volumes of a manifest and of the default system, the
//! disks a boot attaches (blk.rs: disks of known content; system.rs: the
//! default system's disks), storage image formats (formats.rs), and the
//! cloud disk (disk/).

pub mod blk;
pub mod disk;
pub mod elfgen;
pub mod esp;
pub mod formats;
pub mod system;
pub mod userspace;

use crate::build::Artifacts;
use crate::settings::Settings;
use blk::{BlkDisk, PreparedDisk};
use esp::{Content, Volume};
use std::path::Path;
use system::DefaultDisksUse;

/// What a boot puts on its boot volume.
pub enum BootVolume {
    /// A volume made from the kernel and the loader (a kernel command
    /// line, a limine.conf of its own, a volume the loader must refuse).
    Made(Box<dyn Fn(&Artifacts) -> Volume>),
    /// A manifest text file (relative to the workspace) and the kernel
    /// command line: every `binary: /boot/NAME` is built as the package
    /// `capos-demo-NAME`, the manifest compiled with mkmanifest, all of
    /// them on the volume as modules (userspace.rs).
    Manifest(&'static str, &'static str),
    /// Exactly what `make run` boots (limine.conf and its modules).
    DefaultSystem,
    /// Not capOS: the Linux benchmark guest (build/linux.rs), started
    /// with `-kernel` and `-initrd`; the volume is empty. The words its
    /// kernel command line gets after the common ones (which benchmark
    /// tools/bench-linux/init runs: `capos.bench=net` or none).
    Linux(&'static str),
}

impl BootVolume {
    /// The manifest whose processes this volume starts, if any (MANIFEST,
    /// or demos/default.manifest, for the default system).
    pub fn manifest(&self) -> Option<String> {
        match self {
            BootVolume::Manifest(m, _) => Some(m.to_string()),
            BootVolume::DefaultSystem => Some(system::manifest_env().ok().flatten().unwrap_or_else(|| "demos/default.manifest".into())),
            _ => None,
        }
    }

    /// Write the volume to `image`.
    pub fn write(&self, s: &Settings, art: &Artifacts, image: &Path) -> Result<(), String> {
        match self {
            BootVolume::DefaultSystem => default_volume(s, art)?.write(image),
            BootVolume::Manifest(manifest, cmdline) => userspace::volume(s, art, manifest, cmdline)?.write(image),
            BootVolume::Made(make) => make(art).write(image),
            BootVolume::Linux(_) => Volume::new().write(image),
        }
    }
}

/// The disks a boot attaches besides its boot volume, made afresh for each
/// run unless said otherwise.
#[derive(Default)]
pub struct Disks {
    /// Zero-filled raw images (name, bytes); `{disk:NAME}` in the
    /// machine's arguments is replaced by the path of the image NAME.
    pub scratch: Vec<(&'static str, u64)>,
    /// Storage images (name, mkstore-image arguments before `-o FILE`);
    /// `{disk:NAME}` names them like scratch disks.
    pub store_images: Vec<(&'static str, Vec<String>)>,
    /// Images made by a script of the repository (name, script, its
    /// environment), run as `SCRIPT FILE`; `{disk:NAME}` names them too.
    pub script_images: Vec<(&'static str, &'static str, Vec<(&'static str, &'static str)>)>,
    /// Disks of known content the guest hashes and writes (blk.rs).
    pub blk: Vec<BlkDisk>,
    /// Bytes of each of them the guest hashes (0 = all).
    pub blk_read_bytes: u64,
    /// Attach the default system's disks (system.rs) from the boot's
    /// `disks/` directory: made afresh (`Fresh`, every earlier copy
    /// removed first) or as the previous boot left them (`Reuse`).
    /// DATA_IMAGE, when set, is the data disk, in place.
    pub default_disks: Option<DefaultDisksUse>,
}

/// The disks of a boot, made.
pub struct Attached {
    /// (`{disk:NAME}`, path) for the machine's arguments.
    pub names: Vec<(String, String)>,
    /// QEMU arguments attaching the default disks and the blk disks.
    pub args: Vec<String>,
    /// What the guest must report of each blk disk.
    pub blk: Vec<PreparedDisk>,
}

impl Disks {
    /// No disk besides the boot volume.
    pub fn is_empty(&self) -> bool {
        self.scratch.is_empty() && self.store_images.is_empty() && self.script_images.is_empty() && self.blk.is_empty() && self.default_disks.is_none()
    }

    /// Make the disks of boot `boot` in `dir`.
    pub fn make(&self, s: &Settings, dir: &Path, boot: &str) -> Result<Attached, String> {
        let mut extra = Vec::new();
        for (name, size) in &self.scratch {
            let path = dir.join(format!("{}-{}.raw", boot, name));
            let f = std::fs::File::create(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
            f.set_len(*size).map_err(|e| e.to_string())?;
            extra.push((format!("{{disk:{}}}", name), path.display().to_string()));
        }
        for (name, args) in &self.store_images {
            let path = dir.join(format!("{}-{}.img", boot, name));
            let _ = std::fs::remove_file(&path);
            let tool = crate::build::build_mkstore_image(&s.root)?;
            let out = std::process::Command::new(&tool).args(args).arg("-o").arg(&path).output().map_err(|e| format!("mkstore-image: {}", e))?;
            if !out.status.success() {
                return Err(format!("mkstore-image {} -o {}: {}", args.join(" "), path.display(), String::from_utf8_lossy(&out.stderr).trim()));
            }
            extra.push((format!("{{disk:{}}}", name), path.display().to_string()));
        }
        for (name, script, env) in &self.script_images {
            let path = dir.join(format!("{}-{}.img", boot, name));
            let _ = std::fs::remove_file(&path);
            let out = std::process::Command::new(s.root.join(script)).arg(&path).envs(env.iter().copied()).output().map_err(|e| format!("{}: {}", script, e))?;
            if !out.status.success() {
                return Err(format!("{} {}: {}", script, path.display(), String::from_utf8_lossy(&out.stderr).trim()));
            }
            extra.push((format!("{{disk:{}}}", name), path.display().to_string()));
        }
        let mut disk_args: Vec<String> = Vec::new();
        if let Some(usage) = self.default_disks {
            let ddir = dir.join("disks");
            if usage == DefaultDisksUse::Fresh {
                let _ = std::fs::remove_dir_all(&ddir);
            }
            let (d, made) = system::ensure(&s.root, &ddir, &system::boot_images(&extra))?;
            for m in made {
                println!("== {}: made {}", boot, m);
            }
            disk_args.extend(system::qemu_args(&d));
            // Named for the host side too (a boot's own image of that
            // name is the same file).
            for (name, path) in [("data", &d.data), ("store", &d.store), ("fat", &d.fat)] {
                let key = format!("{{disk:{}}}", name);
                if !extra.iter().any(|(k, _)| *k == key) {
                    extra.push((key, path.display().to_string()));
                }
            }
        }
        let prepared = blk::make(dir, boot, &self.blk, self.blk_read_bytes, &mut disk_args)?;
        Ok(Attached { names: extra, args: disk_args, blk: prepared })
    }
}

/// The standard volume: loader, kernel, a generated limine.conf.
pub fn standard_volume(art: &Artifacts, cmdline: &str) -> Volume {
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    v.add("/boot/capos-kernel", Content::File(art.kernel.clone()));
    v.add("/limine.conf", Content::Bytes(esp::limine_conf(cmdline, &[]).into_bytes()));
    v
}

/// A boot volume for `manifest` and every binary it names, with the kernel
/// command line of limine.conf (or CMDLINE).
pub fn manifest_volume(s: &Settings, art: &Artifacts, manifest: &str) -> Result<Volume, String> {
    let conf_path = s.root.join("limine.conf");
    let conf = std::fs::read_to_string(&conf_path).map_err(|e| format!("{}: {}", conf_path.display(), e))?;
    let conf_cmdline = conf.lines().find_map(|l| l.trim().strip_prefix("cmdline:")).unwrap_or("").trim().to_string();
    let cmdline = std::env::var("CMDLINE").ok().filter(|c| !c.is_empty()).unwrap_or(conf_cmdline);
    userspace::volume(s, art, manifest, &cmdline)
}

/// The volume `make run` boots: the repository's limine.conf (its cmdline
/// replaced by CMDLINE if set) and the modules it names; or, when MANIFEST
/// names a manifest, that manifest and every binary it names (so a user's
/// own manifest boots without editing limine.conf).
pub fn default_volume(s: &Settings, art: &Artifacts) -> Result<Volume, String> {
    let conf_path = s.root.join("limine.conf");
    let mut conf = std::fs::read_to_string(&conf_path).map_err(|e| format!("{}: {}", conf_path.display(), e))?;
    if let Some(manifest) = system::manifest_env()? {
        return manifest_volume(s, art, &manifest).map_err(|e| format!("MANIFEST={}: {}", manifest, e));
    }
    if let Ok(cmdline) = std::env::var("CMDLINE") {
        if !cmdline.is_empty() {
            conf = conf
                .lines()
                .map(|l| if l.trim_start().starts_with("cmdline:") { format!("    cmdline: {}", cmdline) } else { l.to_string() })
                .collect::<Vec<_>>()
                .join("\n");
            conf.push('\n');
        }
    }
    let mut v = Volume::new();
    v.add("/EFI/BOOT/BOOTX64.EFI", Content::File(art.loader.clone()));
    v.add("/boot/capos-kernel", Content::File(art.kernel.clone()));
    // Modules limine.conf names: /boot/manifest is compiled from MANIFEST
    // (default demos/default.manifest), /boot/NAME is the demo NAME.
    for line in conf.lines() {
        let Some(path) = line.trim().strip_prefix("module_path:").map(|p| p.trim()) else { continue };
        let Some(file) = path.strip_prefix("boot():").or_else(|| path.strip_prefix("boot://")) else { continue };
        if file == "/boot/manifest" {
            let manifest = system::manifest_env()?.unwrap_or_else(|| "demos/default.manifest".into());
            v.add(file, Content::Bytes(userspace::compile_manifest(s, &manifest)?));
        } else if let Some(name) = file.strip_prefix("/boot/") {
            v.add(file, Content::File(userspace::build_demo(s, name)?));
        }
    }
    v.add("/limine.conf", Content::Bytes(conf.into_bytes()));
    Ok(v)
}
