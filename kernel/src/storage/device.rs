//! From a mount's device text to the block range it claims: the registered
//! device, and for a partition, the GPT entry (parsed by `kcore::gpt`).

use crate::arch::x86_64::trap::interrupt_window;
use crate::drivers::block::{self as blockdev, SharedDevice};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::manifest::{MountFormat, MountSpec, PartitionSelect, ANY_DEVICE};
use capos_kcore::gpt::{self, Guid};
use capos_storage::{BlockDevice, BlockError};

/// A registered device as a [`BlockDevice`], for a storage engine. No lock
/// of its own: the driver decides what two requests share (NVMe: the
/// controller's lock while submitting and looking for completions, not
/// while the device works; virtio: one request at a time), so mounts on
/// two partitions of one disk or two namespaces of one controller are
/// not serialised here (drivers::block::SharedBlock).
///
/// Every request, and every `pause` of the engine above, is an interrupt
/// window (`trap::interrupt_window`): a capability call runs its engine's
/// work with interrupts off, and a request the device finishes before the
/// driver's first look (QEMU's virtio-blk answers on the notify) opens no
/// window of its own (docs/interrupts-off.md).
pub struct DevHandle(pub SharedDevice);

impl BlockDevice for DevHandle {
    fn block_size(&self) -> usize {
        self.0.block_size()
    }
    fn block_count(&self) -> u64 {
        self.0.block_count()
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        interrupt_window();
        self.0.read_blocks(lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        interrupt_window();
        self.0.write_blocks(lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        interrupt_window();
        self.0.flush()
    }
    fn pause(&mut self) {
        interrupt_window();
    }
}

/// Blocks `start .. start + count` of `device`.
pub struct Range {
    pub device: String,
    pub shared: SharedDevice,
    pub start: u64,
    pub count: u64,
    /// A FAT mount of `partition N` on a disk without a GPT: the whole
    /// disk, and the FAT backer reads MBR partition N itself.
    pub mbr_partition: Option<u8>,
}

impl Range {
    pub fn end(&self) -> u64 {
        self.start + self.count
    }
}

/// The range `spec` names, or why there is none.
pub fn resolve(spec: &MountSpec) -> Result<Range, String> {
    if spec.device == ANY_DEVICE {
        return resolve_any(spec);
    }
    let Some(shared) = blockdev::find(&spec.device) else {
        return Err(format!("no block device {} (found: {})", spec.device, super::device_names()));
    };
    resolve_on(spec, &spec.device, shared)
}

/// `on any partition type GUID`: the one partition of that type on any
/// device. Devices without a readable GPT are skipped (the log says why);
/// none or several matches refuse the mount.
fn resolve_any(spec: &MountSpec) -> Result<Range, String> {
    let PartitionSelect::Type(text) = &spec.partition else {
        return Err("device 'any' needs 'partition type GUID'".into());
    };
    let guid = Guid::parse(text).ok_or_else(|| format!("'{text}' is not a GUID"))?;
    let mut found: Vec<(String, SharedDevice, u32)> = Vec::new();
    let mut searched: Vec<String> = Vec::new();
    for (name, _, shared) in blockdev::all() {
        searched.push(name.clone());
        let (block_size, blocks) = (shared.block_size(), shared.block_count());
        if block_size != gpt::SECTOR {
            continue;
        }
        let table = gpt::parse(blocks, |lba, buf| shared.read_blocks(lba, buf));
        match table {
            Ok(t) => {
                for p in t.by_type(&guid) {
                    found.push((name.clone(), shared.clone(), p.number));
                }
            }
            Err(e) => log::info!("storage: {} skipped while looking for partition type {}: {}", name, guid, e),
        }
    }
    match found.as_slice() {
        [(name, shared, number)] => {
            let one = MountSpec { device: name.clone(), partition: PartitionSelect::Number(*number), ..spec.clone() };
            log::info!("storage: mount {}: partition type {} is {} partition {}", spec.name, guid, name, number);
            resolve_on(&one, name, shared.clone())
        }
        [] => Err(format!(
            "no device has a GPT partition of type {guid} (searched: {})",
            if searched.is_empty() { "no block devices".into() } else { searched.join(", ") }
        )),
        many => {
            let list: Vec<String> = many.iter().map(|(n, _, p)| format!("{n} partition {p}")).collect();
            Err(format!("several partitions of type {guid} ({}); name the device", list.join(", ")))
        }
    }
}

fn resolve_on(spec: &MountSpec, device: &str, shared: SharedDevice) -> Result<Range, String> {
    let (block_size, blocks) = (shared.block_size(), shared.block_count());
    let whole = Range { device: device.into(), shared: shared.clone(), start: 0, count: blocks, mbr_partition: None };
    if spec.partition == PartitionSelect::Whole {
        return Ok(whole);
    }
    if block_size != gpt::SECTOR {
        return Err(format!("{} has {block_size}-byte blocks; GPT partitions are read on 512-byte devices only", spec.device));
    }
    let table = gpt::parse(blocks, |lba, buf| shared.read_blocks(lba, buf));
    let table = match (table, &spec.partition) {
        (Ok(t), _) => t,
        // FAT disks are often MBR-partitioned: without a GPT, `partition N`
        // (1 to 4) of a fat mount is MBR partition N, read by the backer.
        (Err(e), PartitionSelect::Number(n)) if spec.format == MountFormat::Fat && (1..=4).contains(n) => {
            log::info!("storage: {}: no GPT ({}); fat mount {} uses MBR partition {}", device, e, spec.name, n);
            return Ok(Range { mbr_partition: Some(*n as u8), ..whole });
        }
        (Err(e), _) => return Err(format!("{}: GPT: {e}", spec.device)),
    };
    if let Some(problem) = &table.primary_problem {
        log::warn!("storage: {}: primary GPT unusable ({}); using the backup table", spec.device, problem);
    }
    let part = match &spec.partition {
        PartitionSelect::Whole => unreachable!("handled above"),
        PartitionSelect::Number(n) => table
            .by_number(*n)
            .ok_or_else(|| format!("{} has no GPT partition {n} ({} in use)", spec.device, numbers(&table)))?,
        PartitionSelect::Type(text) => {
            let guid = Guid::parse(text).ok_or_else(|| format!("'{text}' is not a GUID"))?;
            let found: Vec<&gpt::GptPartition> = table.by_type(&guid).collect();
            match found.as_slice() {
                [one] => *one,
                [] => return Err(format!("{} has no GPT partition of type {guid}", spec.device)),
                many => {
                    let list: Vec<String> = many.iter().map(|p| format!("{}", p.number)).collect();
                    return Err(format!("{} has {} partitions of type {guid} (numbers {}); name one by number", spec.device, many.len(), list.join(", ")));
                }
            }
        }
    };
    log::info!(
        "storage: {}: GPT partition {} '{}' type {} at blocks {}..={}",
        spec.device,
        part.number,
        capos_abi::manifest::escape_control(&part.name),
        part.type_guid,
        part.first_lba,
        part.last_lba
    );
    Ok(Range { start: part.first_lba, count: part.blocks(), ..whole })
}

fn numbers(table: &gpt::GptTable) -> String {
    let n: Vec<String> = table.partitions.iter().map(|p| format!("{}", p.number)).collect();
    if n.is_empty() {
        "none".into()
    } else {
        n.join(", ")
    }
}
