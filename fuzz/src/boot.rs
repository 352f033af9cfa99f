//! Boot-time parsers: the boot manifest (and `StartInfo`), the ACPI
//! tables, the GPT of a disk, and the ELF checks of a userspace binary.

use crate::images::disk_from_input;
use capos_abi::manifest::Manifest;
use capos_abi::start::StartInfo;
use capos_kcore::acpi::{self, PhysMemory};
use capos_kcore::gpt::{self, SECTOR};
use capos_kcore::user_elf::{self, USER_END, USER_MIN_VADDR};

/// `Manifest::decode` (which validates) on the bytes as a capnp message;
/// a manifest that decodes must encode and decode again to itself. The
/// same bytes as a `StartInfo` (what a process receives at start).
pub fn manifest(data: &[u8]) {
    let _ = StartInfo::decode(data);
    let Ok(m) = Manifest::decode(data) else { return };
    let bytes = m.encode().unwrap_or_else(|e| panic!("a manifest that decoded does not encode: {e}"));
    let again = Manifest::decode(&bytes).unwrap_or_else(|e| panic!("a re-encoded manifest does not decode: {e}"));
    assert_eq!(again, m, "a manifest changes through encode and decode");
}

/// Where the input sits in physical memory for the ACPI target; the RSDP
/// is its first byte, so table addresses in seeds point into the input.
pub const ACPI_BASE: u64 = 0x000E_0000;

struct InputMemory<'a>(&'a [u8]);

impl PhysMemory for InputMemory<'_> {
    fn read(&self, addr: u64, buf: &mut [u8]) -> bool {
        let Some(offset) = addr.checked_sub(ACPI_BASE) else { return false };
        let Ok(offset) = usize::try_from(offset) else { return false };
        match offset.checked_add(buf.len()).and_then(|end| self.0.get(offset..end)) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                true
            }
            None => false,
        }
    }
}

/// ACPI discovery from an RSDP at [`ACPI_BASE`], then every table parser
/// the kernel runs (MADT with the ISA routes, MCFG, HPET, FADT).
///
/// Input: one mode byte, then the memory at [`ACPI_BASE`]. Mode bit 0 first
/// makes every checksum on the path discovery follows right ([`reseal_acpi`]),
/// so AFL's mutations of table contents reach the table parsers instead of
/// stopping at a checksum.
pub fn acpi(data: &[u8]) {
    let Some((&mode, memory)) = data.split_first() else { return };
    let mut memory = memory.to_vec();
    if mode & 1 != 0 {
        reseal_acpi(&mut memory);
    }
    let mem = InputMemory(&memory);
    let Ok(found) = acpi::discover(&mem, ACPI_BASE) else { return };
    let madt = found.find(b"APIC").and_then(|t| acpi::parse_madt(t).ok());
    for irq in 0..16 {
        let _ = acpi::isa_route(madt.as_ref(), irq);
    }
    if let Some(t) = found.find(b"MCFG") {
        let _ = acpi::parse_mcfg(t);
    }
    if let Some(t) = found.find(b"HPET") {
        let _ = acpi::parse_hpet(t);
    }
    if let Some(t) = found.find(b"FACP") {
        let _ = acpi::parse_fadt(t);
    }
    for info in &found.listing {
        let _ = format!("{:?}", info);
    }
}

fn le32(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 4).map_or(0, |x| u64::from(u32::from_le_bytes(x.try_into().unwrap())))
}
fn le64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).map_or(0, |x| u64::from_le_bytes(x.try_into().unwrap()))
}

/// Make the checksums right along the way `acpi::discover` walks: the
/// RSDP (both sums), the root table, every table it lists, and the DSDT a
/// FADT names. Anything out of the input is left alone.
pub fn reseal_acpi(memory: &mut [u8]) {
    let table = |memory: &mut [u8], addr: u64| -> Option<std::ops::Range<usize>> {
        let at = usize::try_from(addr.checked_sub(ACPI_BASE)?).ok()?;
        let len = usize::try_from(le32(memory, at.checked_add(4)?)).ok()?;
        let range = at..at.checked_add(len)?;
        (len >= 36 && range.end <= memory.len()).then(|| {
            acpi::fix_checksum(&mut memory[range.clone()], 9);
            range
        })
    };
    if memory.len() < 20 {
        return;
    }
    let revision = memory[15];
    acpi::fix_checksum(&mut memory[..20], 8);
    let (root, entry) = if revision >= 2 && memory.len() >= 36 {
        let len = (le32(memory, 20) as usize).clamp(36, memory.len());
        acpi::fix_checksum(&mut memory[..len], 32);
        match le64(memory, 24) {
            0 => (le32(memory, 16), 4),
            x => (x, 8),
        }
    } else {
        (le32(memory, 16), 4)
    };
    let Some(root) = table(memory, root) else { return };
    let entries: Vec<u64> = memory[root.start + 36..root.end]
        .chunks_exact(entry)
        .take(acpi::MAX_ROOT_ENTRIES)
        .map(|c| if entry == 8 { le64(c, 0) } else { le32(c, 0) })
        .collect();
    for addr in entries {
        if let Some(t) = table(memory, addr) {
            if &memory[t.start..t.start + 4] == b"FACP" {
                let dsdt = if t.len() >= 148 { le64(&memory[t.clone()], 140) } else { 0 };
                let dsdt = if dsdt != 0 { dsdt } else { le32(&memory[t.clone()], 40) };
                table(memory, dsdt);
            }
        }
    }
}

/// The GPT of a disk. Every partition the parser accepts must lie inside
/// the disk's usable blocks.
///
/// Input: one mode byte, then a disk as the image targets read it. Mode
/// bit 0 first makes both headers' CRCs (of the entry array and of the
/// header) right ([`reseal_gpt`]), so mutated entries and header fields
/// reach the checks behind the CRCs.
pub fn gpt(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else { return };
    let Some(mut disk) = disk_from_input(rest) else { return };
    if mode & 1 != 0 {
        reseal_gpt(&mut disk);
    }
    let blocks = (disk.len() / SECTOR) as u64;
    let read = |lba: u64, block: &mut [u8; SECTOR]| -> Result<(), ()> {
        let start = usize::try_from(lba).map_err(|_| ())?.checked_mul(SECTOR).ok_or(())?;
        block.copy_from_slice(disk.get(start..start + SECTOR).ok_or(())?);
        Ok(())
    };
    let Ok(table) = gpt::parse(blocks, read) else { return };
    for p in &table.partitions {
        assert!(
            table.first_usable <= p.first_lba && p.first_lba <= p.last_lba && p.last_lba <= table.last_usable && table.last_usable < blocks,
            "accepted partition {} at {}..={} outside usable {}..={} of a {blocks}-block disk",
            p.number,
            p.first_lba,
            p.last_lba,
            table.first_usable,
            table.last_usable
        );
        assert_eq!(table.by_number(p.number).map(|q| q.first_lba), Some(p.first_lba));
        let _ = table.by_type(&p.type_guid).count();
    }
}

/// Recompute the entry-array CRC and the header CRC of the headers at
/// LBA 1 and at the last LBA (where each says its array is, if that is
/// inside the disk).
pub fn reseal_gpt(disk: &mut [u8]) {
    let blocks = disk.len() / SECTOR;
    if blocks < 2 {
        return;
    }
    for lba in [1, blocks - 1] {
        let at = lba * SECTOR;
        if &disk[at..at + 8] != b"EFI PART" {
            continue;
        }
        let h = &disk[at..at + SECTOR];
        let (entry_lba, count, size) = (le64(h, 72), le32(h, 80), le32(h, 84));
        let array = (entry_lba as u128 * SECTOR as u128)..(entry_lba as u128 * SECTOR as u128 + count as u128 * size as u128);
        if array.end <= disk.len() as u128 && array.end - array.start <= 1 << 20 {
            let crc = gpt::crc32(&disk[array.start as usize..array.end as usize]);
            disk[at + 88..at + 92].copy_from_slice(&crc.to_le_bytes());
        }
        let header_size = (le32(&disk[at..at + SECTOR], 12) as usize).clamp(92, SECTOR);
        disk[at + 16..at + 20].fill(0);
        let crc = gpt::crc32(&disk[at..at + header_size]);
        disk[at + 16..at + 20].copy_from_slice(&crc.to_le_bytes());
    }
}

/// The loader's checks of a userspace ELF. A plan they accept must only
/// name file bytes that exist and user addresses.
pub fn elf(data: &[u8]) {
    let Ok(plan) = user_elf::validate(data) else { return };
    for s in &plan.segments {
        let _ = s.file_bytes(data);
        assert!(
            s.vaddr >= USER_MIN_VADDR && s.first_page() < s.end_page() && s.end_page() <= USER_END,
            "accepted segment {s:?} outside user space"
        );
    }
    let _ = plan.image_end();
}
