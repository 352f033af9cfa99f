//! The cloud disk: a GPT disk whose EFI System Partition holds exactly what
//! `make run` boots and whose second partition is capOS data; the Compute
//! Engine tarball and the provenance record beside it; the host check that
//! refuses a disk or tarball breaking the rules (check.rs). Booting it
//! under OVMF (`make run-disk`, the `cloud-disk` scenario) is
//! crate::scenarios::cloud_disk.
//!
//! Layout (docs/cloud.md):
//!
//! ```text
//! LBA 0              protective MBR
//! LBA 1..33          primary GPT header and entries
//! LBA 2048           partition 1: EFI System Partition, FAT32, 128 MiB
//! after it           partition 2: capOS data (kcore::gpt::CAPOS_DATA_PARTITION),
//!                    64 MiB, the co-located CAPOSST1 + CAPOSWF1 layout
//! rest               unallocated (sparse)
//! last 33 LBAs       backup GPT
//! ```
//!
//! Reproducible: every GUID, the FAT volume id and every timestamp is fixed
//! (timestamps come from SOURCE_DATE_EPOCH), so the same inputs give the
//! same bytes. The external tools used are the Debian ones tools/setup.sh
//! installs: mkfs.fat (dosfstools), mtools, sgdisk (gdisk), tar, gzip.

mod check;

pub use check::*;
use super::esp::{Content, Volume};
use crate::settings::Settings;
use capos_kcore::gpt::{CAPOS_DATA_PARTITION, EFI_SYSTEM_PARTITION};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const GIB: u64 = 1 << 30;
pub const MIB: u64 = 1 << 20;
pub const SECTOR: u64 = 512;
/// Partition 1 starts at 1 MiB, the usual alignment.
const ESP_FIRST_LBA: u64 = 2048;
const ESP_MIB: u64 = 128;
/// The data partition's size. The co-located image is built in memory by
/// mkstore-image, so it is kept small; the rest of the disk stays free.
const DATA_MIB: u64 = 64;
pub const DEFAULT_DISK_GIB: u64 = 10;

/// Fixed identities, so two builds give the same bytes. Every capOS cloud
/// disk carries the same ones (Compute Engine clones one image anyway).
const DISK_GUID: &str = "820265F8-1063-46EC-9E28-6BC81BA19D33";
const ESP_PARTITION_GUID: &str = "5D6CF361-C330-4A6C-B37B-912D9FAD7577";
const DATA_PARTITION_GUID: &str = "63A8CF54-D5F2-4053-BB6C-7B488F238082";
const ESP_VOLUME_ID: &str = "CA905E51";
const ESP_LABEL: &str = "CAPOSESP";

pub const TARBALL_MEMBER: &str = "disk.raw";

/// Where the partitions of a disk of `gib` GiB go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub disk_bytes: u64,
    pub esp_first_lba: u64,
    pub esp_sectors: u64,
    pub data_first_lba: u64,
    pub data_sectors: u64,
}

pub fn layout(gib: u64) -> Result<Layout, String> {
    if gib == 0 || gib > 64 * 1024 {
        return Err(format!("CLOUD_DISK_GIB={} is out of range (1..65536)", gib));
    }
    let esp_sectors = ESP_MIB * MIB / SECTOR;
    let data_first_lba = ESP_FIRST_LBA + esp_sectors;
    Ok(Layout { disk_bytes: gib * GIB, esp_first_lba: ESP_FIRST_LBA, esp_sectors, data_first_lba, data_sectors: DATA_MIB * MIB / SECTOR })
}

fn run_output(cmd: &mut Command) -> Result<std::process::Output, String> {
    cmd.env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("cannot run {:?}: {} (run tools/setup.sh)", cmd.get_program(), e))
}

pub fn run(cmd: &mut Command) -> Result<String, String> {
    let out = run_output(cmd)?;
    if !out.status.success() {
        return Err(format!(
            "{} failed ({}): {}{}",
            describe(cmd),
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program()).chain(cmd.get_args()).map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("{}: path is not UTF-8", p.display()))
}

// ---------------------------------------------------------------- hashing

pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex(&Sha256::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

/// sha256 of a file, reading only its data extents (SEEK_DATA/SEEK_HOLE)
/// and hashing holes from a zero buffer: a 10 GiB sparse disk holds a few
/// MiB of data, and reading its holes through the kernel costs more than
/// hashing zeros.
pub fn sha256_file(path: &Path) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::io::AsRawFd;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut h = Sha256::new();
    let zeros = vec![0u8; 1 << 20];
    let mut buf = vec![0u8; 1 << 20];
    let fd = f.as_raw_fd();
    let mut pos: u64 = 0;
    while pos < len {
        // SAFETY: lseek on a file descriptor we own; no memory is passed.
        let data = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_DATA) };
        let data = if data >= 0 {
            (data as u64).min(len)
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENXIO) {
            len // only a hole from here to the end
        } else {
            pos // SEEK_DATA unsupported: read everything
        };
        // Hole from pos to data.
        let mut hole = data - pos;
        while hole > 0 {
            let n = hole.min(zeros.len() as u64) as usize;
            h.update(&zeros[..n]);
            hole -= n as u64;
        }
        pos = data;
        if pos >= len {
            break;
        }
        // SAFETY: as above.
        let end = unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_HOLE) };
        let end = if end < 0 { len } else { (end as u64).min(len) };
        f.seek(SeekFrom::Start(pos)).map_err(|e| e.to_string())?;
        let mut left = end - pos;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.read_exact(&mut buf[..n]).map_err(|e| format!("{}: {}", path.display(), e))?;
            h.update(&buf[..n]);
            left -= n as u64;
        }
        pos = end;
    }
    Ok(hex(&h.finalize()))
}

// ---------------------------------------------------------------- building

/// SOURCE_DATE_EPOCH from the environment, else the commit time of HEAD.
pub fn source_date_epoch(root: &Path) -> Result<(u64, &'static str), String> {
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        if !v.trim().is_empty() {
            let n = v.trim().parse::<u64>().map_err(|_| format!("SOURCE_DATE_EPOCH={} is not a number of seconds", v))?;
            return Ok((n, "environment"));
        }
    }
    let out = run(Command::new("git").current_dir(root).args(["log", "-1", "--format=%ct", "HEAD"]))
        .map_err(|e| format!("no SOURCE_DATE_EPOCH and no commit time: {}", e))?;
    let n = out.trim().parse::<u64>().map_err(|_| format!("git log gave '{}' as the commit time", out.trim()))?;
    Ok((n, "commit time of HEAD"))
}

/// Write every file of `volume` under `dir` (emptied first); return
/// (volume path, host path) sorted by volume path.
pub fn write_tree(volume: &Volume, dir: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
    let mut files = Vec::new();
    for (path, content) in &volume.files {
        let rel = path.trim_start_matches('/');
        if rel.is_empty() || rel.split('/').any(|p| p.is_empty() || p == "." || p == "..") {
            return Err(format!("boot volume path '{}' is not a plain relative path", path));
        }
        let host = dir.join(rel);
        std::fs::create_dir_all(host.parent().unwrap()).map_err(|e| e.to_string())?;
        match content {
            Content::File(src) => {
                std::fs::copy(src, &host).map_err(|e| format!("{} -> {}: {}", src.display(), host.display(), e))?;
            }
            Content::Bytes(b) => std::fs::write(&host, b).map_err(|e| format!("{}: {}", host.display(), e))?,
        }
        files.push((format!("/{}", rel), host));
    }
    files.sort();
    if files.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err("the boot volume names one path twice".into());
    }
    Ok(files)
}

/// A FAT32 image of `bytes` holding `files`, with a fixed volume id and
/// every timestamp at `sde`.
pub fn make_fat32(files: &[(String, PathBuf)], image: &Path, bytes: u64, sde: u64) -> Result<(), String> {
    let _ = std::fs::remove_file(image);
    let f = std::fs::File::create(image).map_err(|e| format!("{}: {}", image.display(), e))?;
    f.set_len(bytes).map_err(|e| e.to_string())?;
    drop(f);
    let img = path_str(image)?;
    // --invariant first: it would otherwise replace the -i volume id.
    run(Command::new("mkfs.fat").args(["-F", "32", "--invariant", "-i", ESP_VOLUME_ID, "-n", ESP_LABEL, img]))?;
    let sde = sde.to_string();
    let mut made: Vec<String> = Vec::new();
    for (path, host) in files {
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        for depth in 1..parts.len() {
            let dir = format!("::/{}", parts[..depth].join("/"));
            if !made.contains(&dir) {
                run(Command::new("mmd").env("SOURCE_DATE_EPOCH", &sde).args(["-i", img, &dir]))?;
                made.push(dir);
            }
        }
        run(Command::new("mcopy").env("SOURCE_DATE_EPOCH", &sde).args(["-i", img, path_str(host)?, &format!("::{}", path)]))?;
    }
    Ok(())
}

/// Copy `src` into `dst` at byte `offset`, skipping all-zero 4 KiB blocks
/// so they stay holes in `dst`.
fn copy_sparse(src: &Path, dst: &std::fs::File, offset: u64, max: u64) -> Result<(), String> {
    let mut f = std::fs::File::open(src).map_err(|e| format!("{}: {}", src.display(), e))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    if len > max {
        return Err(format!("{} is {} bytes; its partition holds {}", src.display(), len, max));
    }
    let mut buf = vec![0u8; 1 << 20];
    // Compared as slices (a memcmp), not byte by byte: a 1 GiB disk's
    // 192 MiB of partition images took 1.6 s to scan in a debug build.
    let zeros = [0u8; 4096];
    let mut pos = 0u64;
    while pos < len {
        let n = ((len - pos) as usize).min(buf.len());
        f.read_exact(&mut buf[..n]).map_err(|e| e.to_string())?;
        for (i, block) in buf[..n].chunks(4096).enumerate() {
            if block != &zeros[..block.len()] {
                dst.write_all_at(block, offset + pos + (i * 4096) as u64).map_err(|e| e.to_string())?;
            }
        }
        pos += n as u64;
    }
    Ok(())
}

/// The GPT disk: a sparse file of `gib` GiB, the partition table written by
/// sgdisk with fixed GUIDs, the ESP and data images copied in.
pub fn assemble(out: &Path, gib: u64, esp_image: &Path, data_image: &Path) -> Result<Layout, String> {
    let l = layout(gib)?;
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let f = std::fs::File::create(&tmp).map_err(|e| format!("{}: {}", tmp.display(), e))?;
    f.set_len(l.disk_bytes).map_err(|e| e.to_string())?;
    let esp_last = l.esp_first_lba + l.esp_sectors - 1;
    let data_last = l.data_first_lba + l.data_sectors - 1;
    run(Command::new("sgdisk").args([
        "--clear".to_string(),
        format!("--disk-guid={}", DISK_GUID),
        format!("--new=1:{}:{}", l.esp_first_lba, esp_last),
        format!("--typecode=1:{}", EFI_SYSTEM_PARTITION),
        "--change-name=1:EFI System".to_string(),
        format!("--partition-guid=1:{}", ESP_PARTITION_GUID),
        format!("--new=2:{}:{}", l.data_first_lba, data_last),
        format!("--typecode=2:{}", CAPOS_DATA_PARTITION),
        "--change-name=2:capOS data".to_string(),
        format!("--partition-guid=2:{}", DATA_PARTITION_GUID),
        path_str(&tmp)?.to_string(),
    ]))?;
    copy_sparse(esp_image, &f, l.esp_first_lba * SECTOR, l.esp_sectors * SECTOR)?;
    copy_sparse(data_image, &f, l.data_first_lba * SECTOR, l.data_sectors * SECTOR)?;
    f.sync_all().map_err(|e| e.to_string())?;
    drop(f);
    std::fs::rename(&tmp, out).map_err(|e| format!("{}: {}", out.display(), e))?;
    Ok(l)
}

/// `tar --format=oldgnu -Sczf TARBALL disk.raw`, with the member's owner,
/// group and time fixed so the tarball repeats too.
pub fn make_tarball(disk: &Path, tarball: &Path, sde: u64) -> Result<(), String> {
    if disk.file_name().and_then(|n| n.to_str()) != Some(TARBALL_MEMBER) {
        return Err(format!("the tarball member must be named {}; got {}", TARBALL_MEMBER, disk.display()));
    }
    let dir = disk.parent().unwrap_or(Path::new("."));
    let _ = std::fs::remove_file(tarball);
    run(Command::new("tar")
        .env("GZIP", "-n")
        .arg("--format=oldgnu")
        .arg("-Sczf")
        .arg(tarball)
        .args(["--owner=0", "--group=0", "--numeric-owner", &format!("--mtime=@{}", sde), "-C"])
        .arg(dir)
        .arg(TARBALL_MEMBER))?;
    Ok(())
}

/// The co-located store + filesystem filling the data partition.
fn make_data_image(root: &Path, image: &Path, sde: u64) -> Result<(), String> {
    let tool = crate::build::build_mkstore_image(root)?;
    let blocks = (DATA_MIB * MIB / SECTOR).to_string();
    run(Command::new(&tool).env("SOURCE_DATE_EPOCH", sde.to_string()).args(["--colocated", "--blocks", &blocks, "-o", path_str(image)?]))?;
    Ok(())
}

pub struct Built {
    pub disk: PathBuf,
    pub layout: Layout,
    pub esp_files: Vec<(String, PathBuf)>,
    pub data_image: PathBuf,
    pub sde: u64,
    pub sde_from: &'static str,
}

pub fn disk_gib() -> Result<u64, String> {
    let v = crate::settings::env_or("CLOUD_DISK_GIB", &DEFAULT_DISK_GIB.to_string());
    v.parse::<u64>().map_err(|_| format!("CLOUD_DISK_GIB={} is not a whole number of GiB", v))
}

/// The manifest on the cloud disk's ESP: DISK_MANIFEST, by default
/// demos/disk.manifest (the IPC demos, the data partition, bootcount and
/// the shell).
pub fn disk_manifest() -> String {
    std::env::var("DISK_MANIFEST").ok().filter(|m| !m.is_empty()).unwrap_or_else(|| "demos/disk.manifest".into())
}

/// Build the cloud disk's boot volume (its manifest: [`disk_manifest`])
/// and write the disk to `out`.
/// Intermediate files go to `work`.
pub fn build_disk(s: &Settings, out: &Path, work: &Path) -> Result<Built, String> {
    let gib = disk_gib()?;
    let (sde, sde_from) = source_date_epoch(&s.root)?;
    let art = crate::build::build_all(s)?;
    let volume = crate::volumes::manifest_volume(s, &art, &disk_manifest())?;
    std::fs::create_dir_all(work).map_err(|e| format!("{}: {}", work.display(), e))?;
    let esp_files = write_tree(&volume, &work.join("esp"))?;
    let esp_image = work.join("esp.fat32");
    make_fat32(&esp_files, &esp_image, ESP_MIB * MIB, sde)?;
    let data_image = work.join("data.colocated");
    make_data_image(&s.root, &data_image, sde)?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let layout = assemble(out, gib, &esp_image, &data_image)?;
    Ok(Built { disk: out.to_path_buf(), layout, esp_files, data_image, sde, sde_from })
}

// ---------------------------------------------------------------- provenance

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn first_line(cmd: &mut Command) -> String {
    match run_output(cmd) {
        Ok(o) if o.status.success() => {
            let text = if o.stdout.is_empty() { o.stderr } else { o.stdout };
            String::from_utf8_lossy(&text).lines().next().unwrap_or("").trim().to_string()
        }
        _ => "unknown".into(),
    }
}

/// The provenance record of a cloud disk build (JSON).
pub fn provenance(s: &Settings, b: &Built, tarball: &Path, disk_sha256: &str) -> Result<String, String> {
    let commit = run(Command::new("git").current_dir(&s.root).args(["rev-parse", "HEAD"]))?.trim().to_string();
    let dirty = !run(Command::new("git").current_dir(&s.root).args(["status", "--porcelain", "--untracked-files=normal"]))?.trim().is_empty();
    let commit_time = run(Command::new("git").current_dir(&s.root).args(["log", "-1", "--format=%ct", "HEAD"]))?.trim().to_string();
    let rustc = first_line(Command::new("rustc").current_dir(&s.root).arg("--version"));
    let cargo = first_line(Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())).current_dir(&s.root).arg("--version"));
    let lock = std::fs::read(s.root.join("Cargo.lock")).map_err(|e| format!("Cargo.lock: {}", e))?;
    let fw = crate::machine::find_firmware()?;
    let fw_entry = |p: &Path| -> Result<String, String> { Ok(format!("{{\"path\": {}, \"sha256\": {}}}", json_str(&p.display().to_string()), json_str(&sha256_file(p)?))) };
    let vars = match &fw.vars {
        Some(v) => fw_entry(v)?,
        None => "null".into(),
    };
    let mut esp = Vec::new();
    for (path, host) in &b.esp_files {
        let bytes = std::fs::metadata(host).map_err(|e| e.to_string())?.len();
        esp.push(format!("    {{\"path\": {}, \"bytes\": {}, \"sha256\": {}}}", json_str(path), bytes, json_str(&sha256_file(host)?)));
    }
    let tools = [
        ("mkfs.fat", first_line(Command::new("mkfs.fat").arg("--help")).split_whitespace().nth(1).unwrap_or("unknown").to_string()),
        ("mtools", first_line(Command::new("mtools").arg("--version"))),
        ("sgdisk", first_line(Command::new("sgdisk").arg("--version"))),
        ("tar", first_line(Command::new("tar").arg("--version"))),
        ("gzip", first_line(Command::new("gzip").arg("--version"))),
        ("qemu", first_line(Command::new("qemu-system-x86_64").arg("--version"))),
    ];
    let l = &b.layout;
    let mut j = String::from("{\n");
    j.push_str("  \"record\": \"capos-cloud-disk-provenance/1\",\n");
    j.push_str(&format!("  \"source\": {{\"commit\": {}, \"dirty\": {}, \"commit_time\": {}}},\n", json_str(&commit), dirty, commit_time));
    j.push_str(&format!("  \"source_date_epoch\": {},\n  \"source_date_epoch_from\": {},\n", b.sde, json_str(b.sde_from)));
    j.push_str(&format!("  \"rustc\": {},\n  \"cargo\": {},\n", json_str(&rustc), json_str(&cargo)));
    j.push_str(&format!("  \"cargo_lock_sha256\": {},\n", json_str(&sha256_hex(&lock))));
    j.push_str(&format!("  \"kernel_profile\": {},\n", json_str(&s.profile)));
    j.push_str(&format!(
        "  \"disk\": {{\"file\": {}, \"bytes\": {}, \"sha256\": {}}},\n",
        json_str(TARBALL_MEMBER),
        l.disk_bytes,
        json_str(disk_sha256)
    ));
    j.push_str(&format!(
        "  \"partitions\": [\n    {{\"number\": 1, \"type_guid\": {}, \"guid\": {}, \"first_lba\": {}, \"sectors\": {}, \"filesystem\": \"FAT32\", \"volume_id\": {}}},\n    {{\"number\": 2, \"type_guid\": {}, \"guid\": {}, \"first_lba\": {}, \"sectors\": {}, \"layout\": \"CAPOSST1+CAPOSWF1 co-located\", \"sha256\": {}}}\n  ],\n",
        json_str(&EFI_SYSTEM_PARTITION.to_string()),
        json_str(ESP_PARTITION_GUID),
        l.esp_first_lba,
        l.esp_sectors,
        json_str(ESP_VOLUME_ID),
        json_str(&CAPOS_DATA_PARTITION.to_string()),
        json_str(DATA_PARTITION_GUID),
        l.data_first_lba,
        l.data_sectors,
        json_str(&sha256_file(&b.data_image)?)
    ));
    j.push_str(&format!("  \"disk_guid\": {},\n", json_str(DISK_GUID)));
    j.push_str(&format!("  \"esp_files\": [\n{}\n  ],\n", esp.join(",\n")));
    j.push_str(&format!(
        "  \"tarball\": {{\"file\": {}, \"format\": \"tar --format=oldgnu -Sczf\", \"sha256\": {}}},\n",
        json_str(&tarball.file_name().unwrap_or_default().to_string_lossy()),
        json_str(&sha256_file(tarball)?)
    ));
    j.push_str(&format!("  \"ovmf\": {{\"code\": {}, \"vars\": {}}},\n", fw_entry(&fw.code)?, vars));
    let tools: Vec<String> = tools.iter().map(|(k, v)| format!("{}: {}", json_str(k), json_str(v))).collect();
    j.push_str(&format!("  \"host_tools\": {{{}}}\n", tools.join(", ")));
    j.push_str("}\n");
    Ok(j)
}

#[cfg(test)]
mod tests {
    //! The host check against images that break each rule. They use the
    //! same tools the build does (mkfs.fat, mtools, sgdisk, tar, gzip,
    //! fallocate); tools/setup.sh installs them.
    use super::*;
    use crate::scratch::Scratch;

    const SDE: u64 = 1_700_000_000;

    fn tmpdir(name: &str) -> Scratch {
        Scratch::new("disk-test", name)
    }

    /// The smallest PE32+ header the check accepts, for `machine`.
    fn fake_efi(machine: u16) -> Vec<u8> {
        let mut b = vec![0u8; 1024];
        b[0..2].copy_from_slice(b"MZ");
        b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
        b[0x80..0x84].copy_from_slice(b"PE\0\0");
        b[0x84..0x86].copy_from_slice(&machine.to_le_bytes());
        b[0x98..0x9a].copy_from_slice(&0x20bu16.to_le_bytes());
        b[0x98 + 68..0x98 + 70].copy_from_slice(&10u16.to_le_bytes());
        b
    }

    const CONF: &str = "timeout: 0\n\n/capOS\n    protocol: limine\n    path: boot():/boot/capos-kernel\n    module_path: boot():/boot/manifest\n";

    /// A 1 GiB sparse disk that follows every rule, and its tarball.
    fn good(name: &str) -> (Scratch, PathBuf, PathBuf) {
        let (dir, disk) = good_disk(name);
        let tar = dir.join("capos-disk.tar.gz");
        make_tarball(&disk, &tar, SDE).unwrap();
        (dir, disk, tar)
    }

    /// The disk alone (the tarball is most of a good disk's cost).
    fn good_disk(name: &str) -> (Scratch, PathBuf) {
        let dir = tmpdir(name);
        let mut v = Volume::new();
        v.add("/EFI/BOOT/BOOTX64.EFI", Content::Bytes(fake_efi(0x8664)));
        v.add("/boot/capos-kernel", Content::Bytes(b"\x7fELF kernel".to_vec()));
        v.add("/boot/manifest", Content::Bytes(b"manifest".to_vec()));
        v.add("/limine.conf", Content::Bytes(CONF.as_bytes().to_vec()));
        let files = write_tree(&v, &dir.join("esp")).unwrap();
        make_fat32(&files, &dir.join("esp.fat32"), ESP_MIB * MIB, SDE).unwrap();
        let mut dev = capos_storage::mem_device::MemBlockDevice::new(DATA_MIB * MIB / SECTOR);
        capos_storage::colocated::format(&mut dev, 2048, capos_storage::Timestamp::UNKNOWN).unwrap();
        std::fs::write(dir.join("data"), dev.into_bytes()).unwrap();
        let disk = dir.join(TARBALL_MEMBER);
        assemble(&disk, 1, &dir.join("esp.fat32"), &dir.join("data")).unwrap();
        (dir, disk)
    }

    fn problems(disk: &Path, tar: Option<&Path>) -> Vec<String> {
        check_disk(disk, tar).unwrap().problems
    }

    #[track_caller]
    fn refused(p: &[String], needle: &str) {
        assert!(p.iter().any(|x| x.contains(needle)), "expected a problem containing '{}', got {:?}", needle, p);
    }

    fn sh(cmd: &mut Command) {
        run(cmd).unwrap();
    }

    fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
        let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        f.write_all_at(bytes, offset).unwrap();
    }

    fn esp_arg(disk: &Path) -> String {
        format!("{}@@{}", disk.display(), ESP_FIRST_LBA * SECTOR)
    }

    #[test]
    fn a_disk_that_follows_the_rules_passes() {
        let (_dir, disk, tar) = good("good");
        let r = check_disk(&disk, Some(&tar)).unwrap();
        assert!(r.problems.is_empty(), "{:?}", r.problems);
        assert!(r.ok.len() >= 12, "{:?}", r.ok);
        // The layout the docs state.
        let p1 = partition_info(&disk, 1).unwrap().unwrap();
        assert_eq!((p1.first_lba, p1.last_lba), (2048, 2048 + 262144 - 1));
        let p2 = partition_info(&disk, 2).unwrap().unwrap();
        assert_eq!((p2.first_lba, p2.last_lba), (264192, 264192 + 131072 - 1));
        assert_eq!(p2.type_guid, "A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890");
    }

    #[test]
    fn the_same_inputs_give_the_same_bytes() {
        let (_d1, disk1, tar1) = good("same1");
        let (_d2, disk2, tar2) = good("same2");
        assert_eq!(sha256_file(&disk1).unwrap(), sha256_file(&disk2).unwrap());
        assert_eq!(sha256_file(&tar1).unwrap(), sha256_file(&tar2).unwrap());
    }

    #[test]
    fn a_size_that_is_not_whole_gib_is_refused() {
        let (_dir, disk) = good_disk("size");
        std::fs::OpenOptions::new().write(true).open(&disk).unwrap().set_len(GIB + MIB).unwrap();
        refused(&problems(&disk, None), "not a non-zero multiple of 1 GiB");
    }

    #[test]
    fn a_disk_that_is_not_sparse_is_refused() {
        let (_dir, disk) = good_disk("sparse");
        sh(Command::new("fallocate").args(["-o", "0", "-l", &GIB.to_string()]).arg(&disk));
        refused(&problems(&disk, None), "not sparse");
    }

    #[test]
    fn a_missing_or_mistyped_esp_is_refused() {
        let (_dir, disk) = good_disk("esp");
        sh(Command::new("sgdisk").arg("--typecode=1:8300").arg(&disk));
        refused(&problems(&disk, None), "not the EFI System Partition");
        sh(Command::new("sgdisk").arg("--delete=1").arg(&disk));
        let p = problems(&disk, None);
        refused(&p, "no partition 1");
        refused(&p, "exactly 1 (ESP) and 2");
    }

    #[test]
    fn an_esp_that_is_not_fat32_is_refused() {
        let (_dir, disk) = good_disk("fat");
        write_at(&disk, ESP_FIRST_LBA * SECTOR, &[0u8; 512]);
        refused(&problems(&disk, None), "does not hold a FAT32 file system");
    }

    #[test]
    fn a_missing_or_foreign_bootx64_is_refused() {
        let (dir, disk) = good_disk("bootx64");
        sh(Command::new("mdel").args(["-i", &esp_arg(&disk), "::/EFI/BOOT/BOOTX64.EFI"]));
        refused(&problems(&disk, None), "no /EFI/BOOT/BOOTX64.EFI");
        let arm = dir.join("arm.efi");
        std::fs::write(&arm, fake_efi(0xaa64)).unwrap();
        sh(Command::new("mcopy").args(["-i", &esp_arg(&disk)]).arg(&arm).arg("::/EFI/BOOT/BOOTX64.EFI"));
        refused(&problems(&disk, None), "machine 0xaa64, not x86_64");
    }

    #[test]
    fn a_file_limine_conf_names_must_be_on_the_esp() {
        let (_dir, disk) = good_disk("conf");
        sh(Command::new("mdel").args(["-i", &esp_arg(&disk), "::/boot/manifest"]));
        refused(&problems(&disk, None), "names /boot/manifest, which the ESP lacks");
        sh(Command::new("mdel").args(["-i", &esp_arg(&disk), "::/limine.conf"]));
        refused(&problems(&disk, None), "no /limine.conf");
    }

    #[test]
    fn a_missing_protective_mbr_is_refused() {
        let (_dir, disk) = good_disk("mbr");
        write_at(&disk, 446, &[0u8; 66]);
        refused(&problems(&disk, None), "no protective MBR");
    }

    #[test]
    fn a_damaged_gpt_header_is_refused() {
        let (_dir, disk) = good_disk("gpt");
        // A byte of the primary header's disk GUID: its CRC no longer matches.
        write_at(&disk, SECTOR + 0x38, &[0x5a]);
        refused(&problems(&disk, None), "sgdisk -v finds problems");
        // The same in the backup header (the disk's last sector).
        let (_dir2, disk2) = good_disk("gpt-backup");
        write_at(&disk2, GIB - SECTOR + 0x38, &[0x5a]);
        refused(&problems(&disk2, None), "sgdisk -v finds problems");
    }

    #[test]
    fn the_data_partition_must_be_capos_data_with_the_colocated_layout() {
        let (_dir, disk) = good_disk("data");
        write_at(&disk, 264192 * SECTOR, &[0u8; 512]);
        refused(&problems(&disk, None), "does not hold the co-located CAPOSST1 + CAPOSWF1 layout");
        sh(Command::new("sgdisk").arg("--typecode=2:8300").arg(&disk));
        refused(&problems(&disk, None), "not capOS data");
        sh(Command::new("sgdisk").arg("--delete=2").arg(&disk));
        refused(&problems(&disk, None), "no partition 2");
    }

    #[test]
    fn tarballs_in_another_format_or_with_other_members_are_refused() {
        let (dir, disk) = good_disk("tar");
        let tar = |name: &str, args: &[&str], members: &[&str]| -> PathBuf {
            let t = dir.join(name);
            sh(Command::new("tar").args(args).arg(&t).arg("-C").arg(dir.path()).args(members));
            t
        };
        let posix = tar("posix.tar.gz", &["--format=posix", "-Sczf"], &["disk.raw"]);
        refused(&problems(&disk, Some(&posix)), "not old GNU");
        std::fs::write(dir.join("extra"), b"x").unwrap();
        let extra = tar("extra.tar.gz", &["--format=oldgnu", "-Sczf"], &["disk.raw", "extra"]);
        refused(&problems(&disk, Some(&extra)), "it must hold disk.raw alone");
        let other = tar("other.tar.gz", &["--format=oldgnu", "-Sczf"], &["extra"]);
        refused(&problems(&disk, Some(&other)), "it must hold disk.raw alone");
        let plain = tar("plain.tar.gz", &["--format=oldgnu", "-Scf"], &["disk.raw"]);
        refused(&problems(&disk, Some(&plain)), "not gzip-compressed");
        let named = tar("disk.tgz", &["--format=oldgnu", "-Sczf"], &["disk.raw"]);
        refused(&problems(&disk, Some(&named)), "ending in .tar.gz");
    }

    #[test]
    fn sparse_hashing_matches_hashing_every_byte() {
        let dir = tmpdir("hash");
        let p = dir.join("f");
        let f = std::fs::File::create(&p).unwrap();
        f.set_len(9 * MIB + 123).unwrap();
        f.write_all_at(b"start", 0).unwrap();
        f.write_all_at(&[7u8; 5000], 4 * MIB + 17).unwrap();
        f.write_all_at(b"end", 9 * MIB + 120).unwrap();
        drop(f);
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(&std::fs::read(&p).unwrap()));
        std::fs::write(&p, b"").unwrap();
        assert_eq!(sha256_file(&p).unwrap(), sha256_hex(b""));
    }

    #[test]
    fn efi_and_conf_parsing() {
        assert!(is_x64_efi_application(&fake_efi(0x8664)).is_ok());
        assert!(is_x64_efi_application(&fake_efi(0x014c)).is_err());
        assert!(is_x64_efi_application(b"MZ").is_err());
        let mut truncated = fake_efi(0x8664);
        truncated.truncate(0x90);
        assert!(is_x64_efi_application(&truncated).is_err());
        assert_eq!(conf_files(CONF), vec!["/boot/capos-kernel".to_string(), "/boot/manifest".to_string()]);
    }
}
