//! Writing a FAT boot volume (the EFI system partition) with mtools.
//!
//! The volume is a partitionless FAT32 image ("superfloppy"), which UEFI
//! firmware boots like a removable disk: /EFI/BOOT/BOOTX64.EFI.

use std::path::{Path, PathBuf};
use std::process::Command;

pub enum Content {
    File(PathBuf),
    Bytes(Vec<u8>),
}

pub struct Volume {
    pub files: Vec<(String, Content)>,
}

const IMAGE_MIB: u64 = 64;

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd.output().map_err(|e| format!("cannot run {:?}: {} (is mtools installed? run tools/setup.sh)", cmd.get_program(), e))?;
    if !out.status.success() {
        return Err(format!("{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

impl Volume {
    pub fn new() -> Volume {
        Volume { files: Vec::new() }
    }

    pub fn add(&mut self, path: &str, content: Content) {
        self.files.push((path.to_string(), content));
    }

    /// Write the image to `image`, replacing it.
    pub fn write(&self, image: &Path) -> Result<(), String> {
        if let Some(dir) = image.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        let _ = std::fs::remove_file(image);
        let f = std::fs::File::create(image).map_err(|e| format!("{}: {}", image.display(), e))?;
        f.set_len(IMAGE_MIB << 20).map_err(|e| e.to_string())?;
        drop(f);
        let img = image.to_str().ok_or("image path is not UTF-8")?;
        run(Command::new("mformat").args(["-i", img, "-F", "-v", "CAPOSESP", "::"]))?;
        let staging = image.with_extension("files");
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir_all(&staging).map_err(|e| e.to_string())?;
        let mut made_dirs: Vec<String> = Vec::new();
        for (i, (path, content)) in self.files.iter().enumerate() {
            // Parent directories first.
            let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            for depth in 1..parts.len() {
                let dir = format!("::/{}", parts[..depth].join("/"));
                if !made_dirs.contains(&dir) {
                    run(Command::new("mmd").args(["-i", img, &dir]))?;
                    made_dirs.push(dir);
                }
            }
            let src = match content {
                Content::File(p) => p.clone(),
                Content::Bytes(b) => {
                    let p = staging.join(format!("file{}", i));
                    std::fs::write(&p, b).map_err(|e| e.to_string())?;
                    p
                }
            };
            let src = src.to_str().ok_or("source path is not UTF-8")?.to_string();
            run(Command::new("mcopy").args(["-i", img, &src, &format!("::/{}", parts.join("/"))]))?;
        }
        let _ = std::fs::remove_dir_all(&staging);
        Ok(())
    }
}

/// A `limine.conf` with one entry booting `/boot/capos-kernel`.
pub fn limine_conf(cmdline: &str, modules: &[(&str, &str)]) -> String {
    let mut s = String::from("timeout: 0\n\n/capOS\n    protocol: limine\n    path: boot():/boot/capos-kernel\n");
    s.push_str(&format!("    cmdline: {}\n", cmdline));
    for (path, cmd) in modules {
        s.push_str(&format!("    module_path: boot():{}\n", path));
        if !cmd.is_empty() {
            s.push_str(&format!("    module_cmdline: {}\n", cmd));
        }
    }
    s
}
