//! Conversion of the UEFI memory map into the Limine memory map.
//!
//! Runs after ExitBootServices, so it allocates nothing: it fills a buffer
//! that the loader reserved beforehand. The result is sorted by base, has no
//! zero-length or overlapping entries, and merges neighbours of one type, as
//! the protocol promises.
//!
//! Type mapping: conventional and boot-services memory become usable (boot
//! services are gone after exit); the loader's own image and pool memory
//! become bootloader-reclaimable (the kernel may still be reading responses
//! from them); the loader marks what it allocates for the kernel with two
//! OS-defined UEFI types, [`UEFI_KERNEL_AND_MODULES`] and
//! [`UEFI_BOOTLOADER_RECLAIMABLE`]; ACPI memory keeps its kind; runtime
//! services, MMIO and everything unknown is reserved.

use crate::protocol::memtype;

/// UEFI memory types (UEFI spec, EFI_MEMORY_TYPE).
pub mod uefi_type {
    pub const RESERVED: u32 = 0;
    pub const LOADER_CODE: u32 = 1;
    pub const LOADER_DATA: u32 = 2;
    pub const BOOT_SERVICES_CODE: u32 = 3;
    pub const BOOT_SERVICES_DATA: u32 = 4;
    pub const RUNTIME_SERVICES_CODE: u32 = 5;
    pub const RUNTIME_SERVICES_DATA: u32 = 6;
    pub const CONVENTIONAL: u32 = 7;
    pub const UNUSABLE: u32 = 8;
    pub const ACPI_RECLAIM: u32 = 9;
    pub const ACPI_NVS: u32 = 10;
    pub const MMIO: u32 = 11;
    pub const MMIO_PORT_SPACE: u32 = 12;
    pub const PAL_CODE: u32 = 13;
    pub const PERSISTENT: u32 = 14;
}

/// OS-defined UEFI memory type the loader uses for the kernel and modules.
pub const UEFI_KERNEL_AND_MODULES: u32 = 0x8000_0001;
/// OS-defined UEFI memory type for responses, page tables, stack, GDT.
pub const UEFI_BOOTLOADER_RECLAIMABLE: u32 = 0x8000_0002;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Entry {
    pub base: u64,
    pub length: u64,
    pub typ: u64,
}

pub fn limine_type(uefi: u32) -> u64 {
    use uefi_type::*;
    match uefi {
        CONVENTIONAL | BOOT_SERVICES_CODE | BOOT_SERVICES_DATA => memtype::USABLE,
        LOADER_CODE | LOADER_DATA | UEFI_BOOTLOADER_RECLAIMABLE => memtype::BOOTLOADER_RECLAIMABLE,
        UEFI_KERNEL_AND_MODULES => memtype::EXECUTABLE_AND_MODULES,
        ACPI_RECLAIM => memtype::ACPI_RECLAIMABLE,
        ACPI_NVS => memtype::ACPI_NVS,
        UNUSABLE => memtype::BAD_MEMORY,
        _ => memtype::RESERVED,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemmapError {
    /// More entries than the reserved buffer holds.
    TooManyEntries,
    /// Two firmware entries cover the same memory.
    Overlap { base: u64 },
    /// An entry's end does not fit in 64 bits.
    Overflow { base: u64 },
}

/// Convert `(uefi type, physical start, 4 KiB page count)` descriptors into
/// `out`; returns how many entries were written.
pub fn convert(
    descriptors: impl Iterator<Item = (u32, u64, u64)>,
    out: &mut [Entry],
) -> Result<usize, MemmapError> {
    let mut n = 0;
    for (typ, base, pages) in descriptors {
        if pages == 0 {
            continue;
        }
        let length = pages.checked_mul(4096).ok_or(MemmapError::Overflow { base })?;
        base.checked_add(length).ok_or(MemmapError::Overflow { base })?;
        let slot = out.get_mut(n).ok_or(MemmapError::TooManyEntries)?;
        *slot = Entry { base, length, typ: limine_type(typ) };
        n += 1;
    }
    let entries = &mut out[..n];
    entries.sort_unstable_by_key(|e| e.base);
    for i in 1..n {
        if entries[i - 1].base + entries[i - 1].length > entries[i].base {
            return Err(MemmapError::Overlap { base: entries[i].base });
        }
    }
    // Merge neighbours of the same type in place.
    let mut w = 0;
    for r in 0..n {
        let e = out[r];
        if w > 0 && out[w - 1].typ == e.typ && out[w - 1].base + out[w - 1].length == e.base {
            out[w - 1].length += e.length;
        } else {
            out[w] = e;
            w += 1;
        }
    }
    Ok(w)
}

/// Bytes of each type, for the boot log.
pub fn total_of(entries: &[Entry], typ: u64) -> u64 {
    entries.iter().filter(|e| e.typ == typ).map(|e| e.length).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use uefi_type::*;

    #[test]
    fn converts_sorts_and_merges() {
        let uefi = [
            (CONVENTIONAL, 0x100000, 0x100),
            (BOOT_SERVICES_DATA, 0x200000, 0x10), // adjacent usable: merged
            (UEFI_KERNEL_AND_MODULES, 0x300000, 4),
            (CONVENTIONAL, 0x0, 0xa0),
            (ACPI_RECLAIM, 0x7fe0_0000, 2),
            (LOADER_DATA, 0x210000, 1),
            (UEFI_BOOTLOADER_RECLAIMABLE, 0x211000, 3), // adjacent reclaimable: merged
            (MMIO, 0xffc0_0000, 0x400),
            (ACPI_NVS, 0x8000_0000, 0),                 // empty: dropped
            (CONVENTIONAL, 0x1_0000_0000, 0x40000),      // above 4 GiB
        ];
        let mut out = [Entry::default(); 16];
        let n = convert(uefi.iter().copied(), &mut out).unwrap();
        let got: Vec<(u64, u64, u64)> = out[..n].iter().map(|e| (e.base, e.length, e.typ)).collect();
        assert_eq!(
            got,
            vec![
                (0x0, 0xa0000, memtype::USABLE),
                (0x100000, 0x110000, memtype::USABLE),
                (0x210000, 0x4000, memtype::BOOTLOADER_RECLAIMABLE),
                (0x300000, 0x4000, memtype::EXECUTABLE_AND_MODULES),
                (0x7fe0_0000, 0x2000, memtype::ACPI_RECLAIMABLE),
                (0xffc0_0000, 0x40_0000, memtype::RESERVED),
                (0x1_0000_0000, 0x4000_0000, memtype::USABLE),
            ]
        );
        assert_eq!(total_of(&out[..n], memtype::USABLE), 0xa0000 + 0x110000 + 0x4000_0000);
    }

    #[test]
    fn does_not_merge_gaps_or_different_types() {
        let uefi = [(CONVENTIONAL, 0x0, 1), (CONVENTIONAL, 0x2000, 1), (LOADER_CODE, 0x3000, 1)];
        let mut out = [Entry::default(); 4];
        assert_eq!(convert(uefi.iter().copied(), &mut out).unwrap(), 3);
    }

    #[test]
    fn errors_instead_of_overrunning_or_overlapping() {
        let uefi = [(CONVENTIONAL, 0x0, 1), (CONVENTIONAL, 0x2000, 1), (CONVENTIONAL, 0x4000, 1)];
        let mut out = [Entry::default(); 2];
        assert_eq!(convert(uefi.iter().copied(), &mut out), Err(MemmapError::TooManyEntries));
        let overlap = [(CONVENTIONAL, 0x0, 4), (ACPI_NVS, 0x2000, 1)];
        let mut out = [Entry::default(); 4];
        assert_eq!(convert(overlap.iter().copied(), &mut out), Err(MemmapError::Overlap { base: 0x2000 }));
        let huge = [(CONVENTIONAL, u64::MAX - 0xfff, 2)];
        assert!(matches!(convert(huge.iter().copied(), &mut out), Err(MemmapError::Overflow { .. })));
    }

    #[test]
    fn type_mapping() {
        assert_eq!(limine_type(RUNTIME_SERVICES_CODE), memtype::RESERVED);
        assert_eq!(limine_type(UNUSABLE), memtype::BAD_MEMORY);
        assert_eq!(limine_type(PERSISTENT), memtype::RESERVED);
        assert_eq!(limine_type(0x7000_0000), memtype::RESERVED);
    }
}
