//! The host check of a cloud disk and its tarball: the rules
//! docs/cloud.md gives (a protective MBR and a sound GPT, an EFI System
//! Partition holding FAT32 with an x86-64 BOOTX64.EFI and every file its
//! limine.conf names, a capOS data partition with the co-located layout,
//! a sparse whole number of GiB; a tarball of exactly `disk.raw`), each
//! broken rule a finding that names it.

use super::*;

/// What the host check found: each rule it verified, each it found broken.
#[derive(Default, Debug)]
pub struct Findings {
    pub ok: Vec<String>,
    pub problems: Vec<String>,
}

impl Findings {
    fn good(&mut self, s: String) {
        self.ok.push(s);
    }
    fn bad(&mut self, s: String) {
        self.problems.push(s);
    }
}

#[derive(Debug)]
pub struct PartitionInfo {
    pub type_guid: String,
    pub first_lba: u64,
    pub last_lba: u64,
}

/// `sgdisk -i N`: the partition's type and extent, None when it does not exist.
pub fn partition_info(disk: &Path, n: u32) -> Result<Option<PartitionInfo>, String> {
    let out = run_output(Command::new("sgdisk").arg(format!("--info={}", n)).arg(disk))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("sgdisk --info={} failed: {}", n, text.trim()));
    }
    if text.contains("does not exist") {
        return Ok(None);
    }
    let field = |name: &str| text.lines().find_map(|l| l.trim().strip_prefix(name)).map(|v| v.trim().to_string());
    let type_guid = field("Partition GUID code:").and_then(|v| v.split_whitespace().next().map(str::to_string));
    let num = |name: &str| field(name).and_then(|v| v.split_whitespace().next().and_then(|x| x.parse::<u64>().ok()));
    match (type_guid, num("First sector:"), num("Last sector:")) {
        (Some(type_guid), Some(first_lba), Some(last_lba)) => Ok(Some(PartitionInfo { type_guid, first_lba, last_lba })),
        _ => Err(format!("cannot read partition {} from sgdisk: {}", n, text.trim())),
    }
}

/// Numbers of the partitions `sgdisk -p` lists.
pub(super) fn partition_numbers(disk: &Path) -> Result<Vec<u32>, String> {
    let text = run(Command::new("sgdisk").arg("--print").arg(disk))?;
    let mut in_table = false;
    let mut v = Vec::new();
    for l in text.lines() {
        if l.trim_start().starts_with("Number") {
            in_table = true;
            continue;
        }
        if in_table {
            if let Some(n) = l.split_whitespace().next().and_then(|n| n.parse::<u32>().ok()) {
                v.push(n);
            }
        }
    }
    Ok(v)
}

pub(super) fn read_at(f: &std::fs::File, offset: u64, len: usize) -> Result<Vec<u8>, String> {
    let mut b = vec![0u8; len];
    f.read_exact_at(&mut b, offset).map_err(|e| format!("reading {} bytes at {}: {}", len, offset, e))?;
    Ok(b)
}

pub(super) fn le16(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
pub(super) fn le32(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

/// Is `b` an x86_64 UEFI application (PE32+, machine 0x8664, subsystem 10)?
pub fn is_x64_efi_application(b: &[u8]) -> Result<(), String> {
    if b.len() < 0x40 || &b[..2] != b"MZ" {
        return Err("no MZ header".into());
    }
    let pe = le32(b, 0x3c) as usize;
    if pe.checked_add(24 + 70).map_or(true, |end| end > b.len()) || &b[pe..pe + 4] != b"PE\0\0" {
        return Err("no PE header".into());
    }
    let machine = le16(b, pe + 4);
    if machine != 0x8664 {
        return Err(format!("machine {:#06x}, not x86_64 (0x8664)", machine));
    }
    let opt = pe + 24;
    if le16(b, opt) != 0x20b {
        return Err("not PE32+".into());
    }
    let subsystem = le16(b, opt + 68);
    if subsystem != 10 {
        return Err(format!("subsystem {}, not an EFI application (10)", subsystem));
    }
    Ok(())
}

/// The file at `path` on the FAT volume at byte `offset` of `disk`.
pub(super) fn fat_read(disk: &Path, offset: u64, path: &str) -> Result<Option<Vec<u8>>, String> {
    let out = run_output(Command::new("mtype").arg("-i").arg(format!("{}@@{}", path_str(disk)?, offset)).arg(format!("::{}", path)))?;
    if out.status.success() {
        Ok(Some(out.stdout))
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("not found") {
            Ok(None)
        } else {
            Err(format!("mtype ::{} failed: {}", path, err.trim()))
        }
    }
}

/// Files a limine.conf names on the boot volume (`path:`, `module_path:`).
pub fn conf_files(conf: &str) -> Vec<String> {
    conf.lines()
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("path:").or_else(|| l.strip_prefix("module_path:")).or_else(|| l.strip_prefix("kernel_path:"))
        })
        .filter_map(|p| {
            let p = p.trim();
            p.strip_prefix("boot():").or_else(|| p.strip_prefix("boot://")).map(|f| f.to_string())
        })
        .collect()
}

pub(super) fn check_esp(disk: &Path, f: &std::fs::File, p: &PartitionInfo, r: &mut Findings) -> Result<(), String> {
    let offset = p.first_lba * SECTOR;
    let bs = read_at(f, offset, 512)?;
    if &bs[82..90] != b"FAT32   " || bs[510..512] != [0x55, 0xAA] || le16(&bs, 11) != 512 {
        r.bad("partition 1 does not hold a FAT32 file system with 512-byte sectors".into());
        return Ok(());
    }
    r.good(format!("partition 1 is FAT32, volume id {:08X}", le32(&bs, 67)));
    match fat_read(disk, offset, "/EFI/BOOT/BOOTX64.EFI")? {
        None => r.bad("the ESP has no /EFI/BOOT/BOOTX64.EFI".into()),
        Some(b) => match is_x64_efi_application(&b) {
            Ok(()) => r.good(format!("/EFI/BOOT/BOOTX64.EFI is an x86_64 EFI application ({} bytes)", b.len())),
            Err(e) => r.bad(format!("/EFI/BOOT/BOOTX64.EFI is not an x86_64 EFI application: {}", e)),
        },
    }
    match fat_read(disk, offset, "/limine.conf")? {
        None => r.bad("the ESP has no /limine.conf".into()),
        Some(b) => {
            let conf = String::from_utf8_lossy(&b);
            let files = conf_files(&conf);
            if !conf.lines().any(|l| l.trim().starts_with("path:")) {
                r.bad("/limine.conf names no kernel (no path: line)".into());
            }
            let mut missing = false;
            for file in &files {
                if fat_read(disk, offset, file)?.is_none() {
                    r.bad(format!("/limine.conf names {}, which the ESP lacks", file));
                    missing = true;
                }
            }
            if !missing {
                r.good(format!("/limine.conf and the {} files it names are on the ESP", files.len()));
            }
        }
    }
    Ok(())
}

pub(super) fn check_data(f: &std::fs::File, p: &PartitionInfo, r: &mut Findings) -> Result<(), String> {
    use capos_storage::mem_device::MemBlockDevice;
    use capos_storage::partition::Partition;
    let sectors = p.last_lba + 1 - p.first_lba;
    if sectors > 1 << 21 {
        r.bad(format!("partition 2 is {} sectors; this check reads at most 1 GiB", sectors));
        return Ok(());
    }
    let bytes = read_at(f, p.first_lba * SECTOR, (sectors * SECTOR) as usize)?;
    let mut dev = MemBlockDevice::from_bytes(bytes);
    match capos_storage::colocated::locate(&mut dev) {
        Err(e) => r.bad(format!("partition 2 does not hold the co-located CAPOSST1 + CAPOSWF1 layout: {}", e)),
        Ok(l) => {
            let store = Partition::new(&mut dev, 0, l.store_blocks).map_err(|e| format!("{:?}", e))
                .and_then(|d| capos_storage::store::Store::mount(d, true).map(|_| ()).map_err(|e| e.to_string()));
            let fs = Partition::new(&mut dev, l.fs_start, l.fs_blocks).map_err(|e| format!("{:?}", e)).and_then(|d| {
                capos_storage::writable_fs::WritableFs::mount(
                    d,
                    capos_storage::FixedClock(capos_storage::Timestamp::UNKNOWN),
                    capos_storage::writable_fs::MountOptions { read_only: true },
                )
                .map(|_| ())
                .map_err(|e| e.to_string())
            });
            match (store, fs) {
                (Ok(()), Ok(())) => r.good(format!(
                    "partition 2: CAPOSST1 store of {} blocks and CAPOSWF1 of {} blocks, both mount read-only",
                    l.store_blocks, l.fs_blocks
                )),
                (s, f) => r.bad(format!("partition 2 does not mount: store {:?}, filesystem {:?}", s.err(), f.err())),
            }
        }
    }
    Ok(())
}

/// Check `disk` (and the tarball made from it) against the cloud disk
/// rules; host errors (a tool missing) are Err, broken rules are problems.
pub fn check_disk(disk: &Path, tarball: Option<&Path>) -> Result<Findings, String> {
    let mut r = Findings::default();
    let f = std::fs::File::open(disk).map_err(|e| format!("{}: {}", disk.display(), e))?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    let size = meta.len();
    if size == 0 || size % GIB != 0 {
        r.bad(format!("size {} bytes is not a non-zero multiple of 1 GiB", size));
    } else {
        r.good(format!("size {} GiB", size / GIB));
    }
    let allocated = meta.blocks() * 512;
    if allocated >= size {
        r.bad(format!("not sparse: {} bytes allocated for {} bytes", allocated, size));
    } else {
        r.good(format!("sparse: {} bytes allocated", allocated));
    }
    if size < 64 * 1024 {
        r.bad("too small to hold a GPT".into());
        return Ok(r);
    }
    let mbr = read_at(&f, 0, 512)?;
    let sectors = size / SECTOR;
    let want_len = (sectors - 1).min(0xFFFF_FFFF) as u32;
    let pe = &mbr[446..510];
    if mbr[510..512] != [0x55, 0xAA] || pe[4] != 0xEE || le32(pe, 8) != 1 || le32(pe, 12) != want_len || pe[16..].iter().any(|b| *b != 0) {
        r.bad("no protective MBR (one 0xEE entry from LBA 1 covering the disk, the others empty, signature 55AA)".into());
    } else {
        r.good("protective MBR".into());
    }
    let v = run_output(Command::new("sgdisk").arg("--verify").arg(disk))?;
    let vtext = format!("{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
    // sgdisk -v says "No problems found" even when it had to fall back to
    // the backup header (or regenerate it): its cautions count too.
    let warned = ["Caution", "Warning", "ERROR", "corrupt", "Invalid", "invalid"].iter().any(|w| vtext.contains(w));
    if v.status.success() && vtext.contains("No problems found") && !warned {
        r.good(format!("sgdisk -v: {}", vtext.lines().find(|l| l.contains("No problems found")).unwrap_or("").trim()));
    } else {
        r.bad(format!("sgdisk -v finds problems: {}", vtext.trim().replace('\n', " | ")));
    }
    let numbers = partition_numbers(disk).unwrap_or_default();
    if numbers != [1, 2] {
        r.bad(format!("partitions {:?}; the rules want exactly 1 (ESP) and 2 (capOS data)", numbers));
    }
    match partition_info(disk, 1)? {
        None => r.bad("no partition 1 (the EFI System Partition)".into()),
        Some(p) if p.type_guid != EFI_SYSTEM_PARTITION.to_string() => r.bad(format!("partition 1 has type {}, not the EFI System Partition {}", p.type_guid, EFI_SYSTEM_PARTITION)),
        Some(p) => {
            r.good(format!("partition 1: EFI System Partition, LBA {}..={}", p.first_lba, p.last_lba));
            check_esp(disk, &f, &p, &mut r)?;
        }
    }
    match partition_info(disk, 2)? {
        None => r.bad("no partition 2 (capOS data)".into()),
        Some(p) if p.type_guid != CAPOS_DATA_PARTITION.to_string() => r.bad(format!("partition 2 has type {}, not capOS data {}", p.type_guid, CAPOS_DATA_PARTITION)),
        Some(p) => {
            r.good(format!("partition 2: capOS data, LBA {}..={}", p.first_lba, p.last_lba));
            check_data(&f, &p, &mut r)?;
        }
    }
    if let Some(t) = tarball {
        check_tarball(t, Some(size), &mut r)?;
    }
    Ok(r)
}

/// The tarball Compute Engine imports: gzip, old GNU tar format, one member
/// `disk.raw` (of the disk's size, when known).
pub fn check_tarball(t: &Path, disk_size: Option<u64>, r: &mut Findings) -> Result<(), String> {
    if !t.to_string_lossy().ends_with(".tar.gz") {
        r.bad(format!("{}: Compute Engine wants a name ending in .tar.gz", t.display()));
    }
    let mut magic = [0u8; 2];
    let mut file = std::fs::File::open(t).map_err(|e| format!("{}: {}", t.display(), e))?;
    if file.read_exact(&mut magic).is_err() || magic != [0x1f, 0x8b] {
        r.bad(format!("{} is not gzip-compressed", t.display()));
        return Ok(());
    }
    // The first header block, decompressed.
    let mut child = Command::new("gzip")
        .args(["-dc"])
        .arg(t)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run gzip: {}", e))?;
    let mut header = vec![0u8; 512];
    let got = child.stdout.take().unwrap().read_exact(&mut header);
    let _ = child.kill();
    let _ = child.wait();
    if got.is_err() {
        r.bad("the tarball is shorter than one tar header".into());
        return Ok(());
    }
    if &header[257..265] != b"ustar  \0" {
        r.bad(format!("the tar header magic is {:?}, not old GNU (\"ustar  \\0\"); make it with tar --format=oldgnu", String::from_utf8_lossy(&header[257..265])));
    } else {
        r.good("tar format: old GNU".into());
    }
    let out = run_output(Command::new("tar").arg("-tvzf").arg(t))?;
    if !out.status.success() {
        r.bad(format!("tar cannot list the tarball: {}", String::from_utf8_lossy(&out.stderr).trim()));
        return Ok(());
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    let members: Vec<(&str, Option<u64>)> = listing
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.last().copied().unwrap_or(""), w.get(2).and_then(|s| s.parse::<u64>().ok()))
        })
        .collect();
    let names: Vec<&str> = members.iter().map(|m| m.0).collect();
    if names != [TARBALL_MEMBER] {
        r.bad(format!("the tarball holds {:?}; it must hold {} alone", names, TARBALL_MEMBER));
    } else {
        r.good(format!("the tarball holds {} alone", TARBALL_MEMBER));
        if let (Some(want), Some(got)) = (disk_size, members[0].1) {
            if want != got {
                r.bad(format!("the tarball's {} is {} bytes, the disk {}", TARBALL_MEMBER, got, want));
            }
        }
    }
    Ok(())
}

pub fn print_findings(r: &Findings) {
    for s in &r.ok {
        println!("[PASS] {}", s);
    }
    for s in &r.problems {
        println!("[FAIL] {}", s);
    }
    println!("{} passed, {} failed", r.ok.len(), r.problems.len());
}
