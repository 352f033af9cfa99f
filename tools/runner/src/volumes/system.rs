//! The default system's disks (demos/default-disks/README.md): what `make
//! run` attaches, created on the first run and used in place after that.
//!
//! - `data.img`: CAPOSWF1 (`mkstore-image --writable`, seeded from
//!   demos/default-disks/data), NVMe `nvme0n1`;
//! - `store.img`: an empty CAPOSST1 store, NVMe `nvme1n1`;
//! - `fat.img`: FAT32 from demos/default-disks/fat (tools/mkdefault-fat-image),
//!   virtio-blk `vblk0`.
//!
//! DATA_IMAGE=, STORE_IMAGE= and FAT_IMAGE= name the user's own disk for
//! each, used in place. Each must exist, be a regular file and hold the
//! format its service reads (checked by magic here, before QEMU starts):
//! a typo or a wrong file must fail naming the variable and the file, not
//! quietly boot a fresh disk or one that mounts as `unavailable`.
//!
//! The order of the `-device` arguments is what makes the names: QEMU puts
//! the devices on the PCI bus in that order, and the kernel numbers NVMe
//! controllers in bus order.

use crate::volumes::formats::Format;
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

/// The user's own disks, each used in place of the default one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserImages {
    pub data: Option<PathBuf>,
    pub store: Option<PathBuf>,
    pub fat: Option<PathBuf>,
}

impl UserImages {
    pub fn any(&self) -> bool {
        self.data.is_some() || self.store.is_some() || self.fat.is_some()
    }
}

/// The user image `var` at `p`, if it is a regular file holding one of
/// `formats` (`what` names them for the message).
fn user_image(var: &str, p: &Path, formats: &[Format], what: &str) -> Result<PathBuf, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(p).map_err(|e| format!("cannot read {} {}: {}", var, p.display(), e))?;
    let len = match f.metadata() {
        Ok(m) if m.is_file() => m.len(),
        Ok(_) => return Err(format!("cannot use {} {}: not a regular file", var, p.display())),
        Err(e) => return Err(format!("cannot read {} {}: {}", var, p.display(), e)),
    };
    let mut head = [0u8; 512];
    f.read_exact(&mut head).map_err(|e| format!("cannot use {} {}: {} bytes, not {}: {}", var, p.display(), len, what, e))?;
    match crate::volumes::formats::detect(&head, len) {
        Ok(found) if formats.contains(&found) => Ok(p.to_path_buf()),
        Ok(found) => Err(format!("cannot use {} {}: it is a {} image, not {}", var, p.display(), found.word(), what)),
        Err(e) => Err(format!("cannot use {} {}: not {}: {}", var, p.display(), what, e)),
    }
}

/// The disks in `dir`, each made if it does not exist, or the user's
/// own (`user`, checked first). Returns what was made, for the log.
pub fn ensure(root: &Path, dir: &Path, user: &UserImages) -> Result<(DefaultDisks, Vec<String>), String> {
    let given = |var, p: &Option<PathBuf>, formats, what| p.as_deref().map(|p| user_image(var, p, formats, what)).transpose();
    let user_data = given("DATA_IMAGE", &user.data, &[Format::Wf, Format::Colocated], "CAPOSWF1 or co-located (mkstore-image --writable)")?;
    let user_store = given("STORE_IMAGE", &user.store, &[Format::St, Format::Colocated], "a CAPOSST1 store or co-located (mkstore-image --store)")?;
    let user_fat = given("FAT_IMAGE", &user.fat, &[Format::Fat], "a FAT disk (mkfs.fat, whole disk or MBR)")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
    let mut made = Vec::new();
    let data = user_data.unwrap_or_else(|| dir.join("data.img"));
    if !data.exists() {
        let seed = root.join("demos/default-disks/data");
        mkstore(root, &["--writable", "--seed", &seed.display().to_string(), "--blocks", &DATA_BLOCKS.to_string()], &data)?;
        made.push(format!("{} (CAPOSWF1, {} MiB, from {})", data.display(), DATA_BLOCKS / 2048, seed.display()));
    }
    let store = user_store.unwrap_or_else(|| dir.join("store.img"));
    if !store.exists() {
        mkstore(root, &["--store", "--blocks", &STORE_BLOCKS.to_string()], &store)?;
        made.push(format!("{} (CAPOSST1, {} MiB, empty)", store.display(), STORE_BLOCKS / 2048));
    }
    let fat = user_fat.unwrap_or_else(|| dir.join("fat.img"));
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

/// DATA_IMAGE, STORE_IMAGE and FAT_IMAGE, those set (a path that is not
/// UTF-8 is still a path).
pub fn user_images_env() -> UserImages {
    let var = crate::settings::input_path;
    UserImages { data: var("DATA_IMAGE"), store: var("STORE_IMAGE"), fat: var("FAT_IMAGE") }
}

/// The user images a scenario boot of the default system uses: the ones
/// the boot builds itself under the names `data`, `store` and `fat`
/// (`built`: its `{disk:NAME}`s and their files), which is how the shell
/// scenario tests these variables; without any, the variables'.
pub fn boot_images(built: &[(String, String)]) -> UserImages {
    let find = |name: &str| built.iter().find(|(k, _)| *k == format!("{{disk:{}}}", name)).map(|(_, p)| PathBuf::from(p));
    let own = UserImages { data: find("data"), store: find("store"), fat: find("fat") };
    if own.any() {
        own
    } else {
        user_images_env()
    }
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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultDisksUse {
    Fresh,
    Reuse,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file under the temporary directory holding `head` then zeroes,
    /// `len` bytes in all.
    fn image(name: &str, head: &[u8], len: u64) -> PathBuf {
        let p = std::env::temp_dir().join(format!("capos-run-system-{}-{}", std::process::id(), name));
        let mut bytes = head.to_vec();
        bytes.resize(len as usize, 0);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn a_user_image_that_is_not_its_format_fails_naming_the_variable_and_the_file() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let dir = std::env::temp_dir().join(format!("capos-run-system-{}-disks", std::process::id()));
        let mut store = b"CAPOSST1".to_vec();
        store.resize(56, 0);
        store[48..56].copy_from_slice(&2048u64.to_le_bytes());
        let store = image("store.img", &store, 2048 * 512);
        let mut fat_head = vec![0u8; 512];
        fat_head[510..].copy_from_slice(&[0x55, 0xAA]);
        let fat = image("fat.img", &fat_head, 1 << 20);
        let wf = image("wf.img", b"CAPOSWF1", 1 << 20);
        let junk = image("junk.img", b"not a disk", 1 << 20);
        let tiny = image("tiny.img", b"CAPOSST1", 100);
        let fails = |u: UserImages| ensure(&root, &dir, &u).err().expect("refused");
        let show = |p: &PathBuf| p.display().to_string();

        let e = fails(UserImages { fat: Some(wf.clone()), ..Default::default() });
        assert_eq!(e, format!("cannot use FAT_IMAGE {}: it is a caposwf1 image, not a FAT disk (mkfs.fat, whole disk or MBR)", show(&wf)));
        let e = fails(UserImages { store: Some(fat.clone()), ..Default::default() });
        assert!(e.starts_with(&format!("cannot use STORE_IMAGE {}: it is a fat image, not a CAPOSST1 store", show(&fat))), "{e}");
        let e = fails(UserImages { store: Some(junk.clone()), ..Default::default() });
        assert!(e.starts_with(&format!("cannot use STORE_IMAGE {}: not a CAPOSST1 store or co-located (mkstore-image --store): unknown magic", show(&junk))), "{e}");
        let e = fails(UserImages { data: Some(store.clone()), ..Default::default() });
        assert!(e.starts_with(&format!("cannot use DATA_IMAGE {}: it is a caposst1 image", show(&store))), "{e}");
        let e = fails(UserImages { store: Some(tiny.clone()), ..Default::default() });
        assert!(e.starts_with(&format!("cannot use STORE_IMAGE {}: 100 bytes, not a CAPOSST1 store", show(&tiny))), "{e}");
        let e = fails(UserImages { fat: Some(std::env::temp_dir()), ..Default::default() });
        assert_eq!(e, format!("cannot use FAT_IMAGE {}: not a regular file", std::env::temp_dir().display()));
        let e = fails(UserImages { store: Some("/nonexistent/store.img".into()), ..Default::default() });
        assert!(e.starts_with("cannot read STORE_IMAGE /nonexistent/store.img: No such file"), "{e}");
        // A bad one fails before any default disk is made or any image used.
        let e = fails(UserImages { data: Some(wf.clone()), store: Some(store.clone()), fat: Some(junk.clone()) });
        assert!(e.starts_with("cannot use FAT_IMAGE "), "{e}");
        assert!(!dir.exists(), "nothing made when an image is refused");

        // Good ones are taken as they are, in place.
        for (p, format) in [(&wf, Format::Wf), (&store, Format::St), (&fat, Format::Fat)] {
            assert_eq!(user_image("X_IMAGE", p, &[format], "x"), Ok(p.clone()));
        }
        for p in [store, fat, wf, junk, tiny] {
            std::fs::remove_file(p).unwrap();
        }
    }

    #[test]
    fn a_boot_that_builds_its_own_images_uses_them_in_place_of_the_variables() {
        let built = vec![("{disk:store}".to_string(), "/t/s.img".to_string()), ("{disk:fat}".to_string(), "/t/f.img".to_string()), ("{disk:other}".to_string(), "/t/o.img".to_string())];
        assert_eq!(boot_images(&built), UserImages { data: None, store: Some("/t/s.img".into()), fat: Some("/t/f.img".into()) });
    }

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
