//! Limine boot protocol constants and the byte layouts of the responses this
//! loader writes.
//!
//! Layouts follow PROTOCOL.md of the Limine project (C structs, SysV ABI,
//! every pointer 64 bits and a higher-half direct map address unless the
//! spec says physical). They are written field by field as little-endian
//! u64s into loader memory; see `boot/src/responses.rs`.

/// First two words of every request ID.
pub const COMMON_MAGIC: [u64; 2] = [0xc7b1_dd30_df4c_8b88, 0x0a82_e883_a194_f07b];

/// Base revision tag: `[MAGIC_1, MAGIC_2, requested revision]`. A loader that
/// supports the revision writes 0 to the third word and the revision it
/// loaded with to the second.
pub const BASE_REVISION_MAGIC: [u64; 2] = [0xf956_2b2d_5c95_a6c8, 0x6a7b_3849_4453_6bdc];

/// Optional markers bracketing the kernel's requests.
pub const REQUESTS_START_MARKER: [u64; 4] = [
    0xf6b8_f4b3_9de7_d1ae,
    0xfab9_1a69_40fc_b9cf,
    0x785c_6ed0_15d3_e316,
    0x181e_920a_7852_b9d9,
];
pub const REQUESTS_END_MARKER: [u64; 2] = [0xadc0_e053_1bb1_0d03, 0x9572_709f_3176_4c62];

/// The request kinds the loader knows, by the last two words of their ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestKind {
    BootloaderInfo,
    FirmwareType,
    StackSize,
    Hhdm,
    Framebuffer,
    PagingMode,
    Mp,
    MemoryMap,
    EntryPoint,
    ExecutableFile,
    Module,
    Rsdp,
    Smbios,
    EfiSystemTable,
    EfiMemoryMap,
    DateAtBoot,
    ExecutableAddress,
    ExecutableCmdline,
    DeviceTreeBlob,
    /// An ID with the common magic that this loader does not know.
    Unknown([u64; 2]),
}

const KINDS: &[([u64; 2], RequestKind)] = &[
    ([0xf550_38d8_e2a1_202f, 0x2794_26fc_f5f5_9740], RequestKind::BootloaderInfo),
    ([0x8c2f_75d9_0bef_28a8, 0x7045_a468_8eac_00c3], RequestKind::FirmwareType),
    ([0x224e_f046_0a8e_8926, 0xe1cb_0fc2_5f46_ea3d], RequestKind::StackSize),
    ([0x48dc_f1cb_8ad2_b852, 0x6398_4e95_9a98_244b], RequestKind::Hhdm),
    ([0x9d58_27dc_d881_dd75, 0xa314_8604_f6fa_b11b], RequestKind::Framebuffer),
    ([0x95c1_a0ed_ab09_44cb, 0xa4e5_cb38_42f7_488a], RequestKind::PagingMode),
    ([0x95a6_7b81_9a1b_857e, 0xa0b6_1b72_3b6a_73e0], RequestKind::Mp),
    ([0x67cf_3d9d_378a_806f, 0xe304_acdf_c50c_3c62], RequestKind::MemoryMap),
    ([0x13d8_6c03_5a1c_d3e1, 0x2b0c_aa89_d8f3_026a], RequestKind::EntryPoint),
    ([0xad97_e90e_83f1_ed67, 0x31eb_5d1c_5ff2_3b69], RequestKind::ExecutableFile),
    ([0x3e7e_2797_02be_32af, 0xca1c_4f3b_d128_0cee], RequestKind::Module),
    ([0xc5e7_7b6b_397e_7b43, 0x2763_7845_accd_cf3c], RequestKind::Rsdp),
    ([0x9e90_46f1_1e09_5391, 0xaa4a_520f_efbd_e5ee], RequestKind::Smbios),
    ([0x5ceb_a516_3eaa_f6d6, 0x0a69_8161_0cf6_5fcc], RequestKind::EfiSystemTable),
    ([0x7df6_2a43_1d68_72d5, 0xa4fc_dfb3_e573_06c8], RequestKind::EfiMemoryMap),
    ([0x5027_46e1_84c0_88aa, 0xfbc5_ec83_e632_7893], RequestKind::DateAtBoot),
    ([0x71ba_7686_3cc5_5f63, 0xb264_4a48_c516_a487], RequestKind::ExecutableAddress),
    ([0x4b16_1536_e598_651e, 0xb390_ad4a_2f1f_303a], RequestKind::ExecutableCmdline),
    ([0xb40d_db48_fb54_bac7, 0x5450_8149_3f81_ffb7], RequestKind::DeviceTreeBlob),
];

impl RequestKind {
    pub fn from_id(id: [u64; 2]) -> RequestKind {
        KINDS
            .iter()
            .find(|(k, _)| *k == id)
            .map(|(_, kind)| *kind)
            .unwrap_or(RequestKind::Unknown(id))
    }

    /// The request-specific half of the ID (for tests and for writing kernels).
    pub fn id(self) -> [u64; 2] {
        match self {
            RequestKind::Unknown(id) => id,
            kind => KINDS.iter().find(|(_, k)| *k == kind).map(|(id, _)| *id).unwrap_or([0, 0]),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RequestKind::BootloaderInfo => "bootloader info",
            RequestKind::FirmwareType => "firmware type",
            RequestKind::StackSize => "stack size",
            RequestKind::Hhdm => "HHDM",
            RequestKind::Framebuffer => "framebuffer",
            RequestKind::PagingMode => "paging mode",
            RequestKind::Mp => "MP",
            RequestKind::MemoryMap => "memory map",
            RequestKind::EntryPoint => "entry point",
            RequestKind::ExecutableFile => "executable file",
            RequestKind::Module => "module",
            RequestKind::Rsdp => "RSDP",
            RequestKind::Smbios => "SMBIOS",
            RequestKind::EfiSystemTable => "EFI system table",
            RequestKind::EfiMemoryMap => "EFI memory map",
            RequestKind::DateAtBoot => "date at boot",
            RequestKind::ExecutableAddress => "executable address",
            RequestKind::ExecutableCmdline => "executable cmdline",
            RequestKind::DeviceTreeBlob => "device tree blob",
            RequestKind::Unknown(_) => "unknown",
        }
    }
}

/// Byte offset of the `response` pointer inside every request.
pub const REQUEST_RESPONSE_OFFSET: usize = 40;
/// Byte offset of the first request-specific member.
pub const REQUEST_EXTRA_OFFSET: usize = 48;

/// Memory map entry types (`limine_memmap_entry.type`).
pub mod memtype {
    pub const USABLE: u64 = 0;
    pub const RESERVED: u64 = 1;
    pub const ACPI_RECLAIMABLE: u64 = 2;
    pub const ACPI_NVS: u64 = 3;
    pub const BAD_MEMORY: u64 = 4;
    pub const BOOTLOADER_RECLAIMABLE: u64 = 5;
    pub const EXECUTABLE_AND_MODULES: u64 = 6;
    pub const FRAMEBUFFER: u64 = 7;

    pub fn name(t: u64) -> &'static str {
        match t {
            USABLE => "usable",
            RESERVED => "reserved",
            ACPI_RECLAIMABLE => "ACPI reclaimable",
            ACPI_NVS => "ACPI NVS",
            BAD_MEMORY => "bad memory",
            BOOTLOADER_RECLAIMABLE => "bootloader reclaimable",
            EXECUTABLE_AND_MODULES => "executable and modules",
            FRAMEBUFFER => "framebuffer",
            _ => "unknown",
        }
    }
}

/// `limine_firmware_type_response.firmware_type` for 64-bit UEFI.
pub const FIRMWARE_TYPE_UEFI64: u64 = 2;

/// Size of `struct limine_file` (revision 0 layout).
pub const LIMINE_FILE_SIZE: usize = 112;
/// Size of `struct limine_memmap_entry`.
pub const MEMMAP_ENTRY_SIZE: usize = 24;
