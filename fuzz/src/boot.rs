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
pub fn acpi(data: &[u8]) {
    let mem = InputMemory(data);
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

/// The GPT of a disk (same input encoding as the image targets). Every
/// partition the parser accepts must lie inside the disk's usable blocks.
pub fn gpt(data: &[u8]) {
    let Some(disk) = disk_from_input(data) else { return };
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
