//! `mkmanifest --check IN.manifest --disk DEVICE=IMAGE ...`: the mounts
//! checked against the disks they will find.
//!
//! From the text alone, `partition 2` and `partition type GUID` on one
//! device may or may not be the same partition: the manifest does not say
//! which type entry 2 has, and only the disk does. The kernel resolves
//! both once it has read the GPT and refuses overlapping block ranges at
//! mount time (kernel/src/storage/mod.rs `mount_all`). Given the images of
//! the devices, `--check` resolves every mount the same way, with the
//! kernel's own GPT parser (`capos_kcore::gpt`), and refuses the same
//! things before a boot: a partition the disk does not have, a type that
//! matches no partition or several, and two mounts whose blocks overlap.
//! Mounts on devices no `--disk` names are left to the kernel (and `on any
//! partition type GUID` is resolved only when exactly one given disk holds
//! that type: another device may hold it at boot).

use capos_abi::manifest::{Manifest, MountFormat, PartitionSelect, ANY_DEVICE};
use capos_kcore::gpt::{self, GptTable, Guid};
use std::io::{Read, Seek, SeekFrom};

/// A disk image standing for device `name`.
pub struct Disk {
    pub name: String,
    pub path: String,
    pub blocks: u64,
    /// Its GPT, or why it has none usable.
    pub table: Result<GptTable, String>,
}

/// `DEVICE=IMAGE`: the image read (512-byte blocks) and its GPT parsed.
pub fn load(spec: &str) -> Result<Disk, String> {
    let Some((name, path)) = spec.split_once('=').filter(|(n, p)| !n.is_empty() && !p.is_empty()) else {
        return Err(format!("--disk '{spec}': expected --disk DEVICE=IMAGE (e.g. --disk nvme0n1=disk.raw)"));
    };
    let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: cannot read: {e}"))?;
    let len = f.metadata().map_err(|e| format!("{path}: cannot read: {e}"))?.len();
    let blocks = len / gpt::SECTOR as u64;
    let table = gpt::parse(blocks, |lba, buf| f.seek(SeekFrom::Start(lba * gpt::SECTOR as u64)).and_then(|_| f.read_exact(buf)))
        .map_err(|e| e.to_string());
    Ok(Disk { name: name.to_string(), path: path.to_string(), blocks, table })
}

/// Where mount `i` lands: (disk index, first block, block count).
type Claim = (usize, u64, u64);

/// Resolve every mount on a given disk as the kernel will and refuse
/// overlaps. `Err((mount index, message))`.
pub fn check(manifest: &Manifest, disks: &[Disk]) -> Result<(), (usize, String)> {
    let mut claims: Vec<(usize, Claim)> = Vec::new();
    for (i, m) in manifest.mounts.iter().enumerate() {
        let err = |msg: String| (i, format!("mount '{}' ({}): {msg}", m.name, m.target()));
        let claim = if m.device == ANY_DEVICE {
            let PartitionSelect::Type(text) = &m.partition else { continue };
            let Some(guid) = Guid::parse(text) else { continue };
            let found: Vec<(usize, u64, u64, u32)> = disks
                .iter()
                .enumerate()
                .filter_map(|(d, disk)| disk.table.as_ref().ok().map(|t| (d, t)))
                .flat_map(|(d, t)| t.by_type(&guid).map(move |p| (d, p.first_lba, p.blocks(), p.number)).collect::<Vec<_>>())
                .collect();
            match found.as_slice() {
                [(d, start, count, _)] => (*d, *start, *count),
                [] => continue,
                many => {
                    let list: Vec<String> = many.iter().map(|(d, _, _, n)| format!("{} partition {n}", disks[*d].name)).collect();
                    return Err(err(format!("several partitions of type {guid} ({}); name the device", list.join(", "))));
                }
            }
        } else {
            let Some(d) = disks.iter().position(|disk| disk.name == m.device) else { continue };
            let disk = &disks[d];
            match &m.partition {
                PartitionSelect::Whole => (d, 0, disk.blocks),
                sel => {
                    let table = match (&disk.table, sel) {
                        (Ok(t), _) => t,
                        // A fat mount's `partition N` on a disk without a
                        // GPT is an MBR partition the backer reads itself.
                        (Err(_), PartitionSelect::Number(n)) if m.format == MountFormat::Fat && (1..=4).contains(n) => continue,
                        (Err(e), _) => return Err(err(format!("{} ({}): GPT: {e}", disk.name, disk.path))),
                    };
                    let p = match sel {
                        PartitionSelect::Number(n) => table.by_number(*n).ok_or_else(|| err(format!("{} ({}) has no GPT partition {n}", disk.name, disk.path)))?,
                        PartitionSelect::Type(text) => {
                            let guid = Guid::parse(text).ok_or_else(|| err(format!("'{text}' is not a GUID")))?;
                            let found: Vec<&gpt::GptPartition> = table.by_type(&guid).collect();
                            match found.as_slice() {
                                [one] => *one,
                                [] => return Err(err(format!("{} ({}) has no GPT partition of type {guid}", disk.name, disk.path))),
                                many => {
                                    let list: Vec<String> = many.iter().map(|p| p.number.to_string()).collect();
                                    return Err(err(format!("{} ({}) has {} partitions of type {guid} (numbers {}); name one by number", disk.name, disk.path, many.len(), list.join(", "))));
                                }
                            }
                        }
                        PartitionSelect::Whole => continue,
                    };
                    (d, p.first_lba, p.blocks())
                }
            }
        };
        let (d, start, count) = claim;
        if let Some((j, _)) = claims.iter().find(|(_, (e, s, c))| *e == d && *s < start + count && start < s + c) {
            let other = &manifest.mounts[*j];
            return Err((
                i,
                format!(
                    "mount '{}' ({}) is blocks {start}..{} of {} ({}), already claimed by mount '{}' ({}): a device serves one mount",
                    m.name,
                    m.target(),
                    start + count,
                    disks[d].name,
                    disks[d].path,
                    other.name,
                    other.target()
                ),
            ));
        }
        claims.push((i, claim));
    }
    Ok(())
}
