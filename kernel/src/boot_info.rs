//! What the bootloader told us, read through the `limine` crate and copied
//! into kernel-owned memory before the bootloader-reclaimable memory that
//! holds the responses is given back to the frame allocator.
//!
//! Nothing here trusts the responses blindly: missing responses are errors
//! with a message, counts are capped, and strings are length-limited.

use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicUsize, Ordering};
use limine::memory_map::EntryType;
use limine::request::{
    BootloaderInfoRequest, DateAtBootRequest, ExecutableAddressRequest, ExecutableCmdlineRequest, HhdmRequest,
    MemoryMapRequest, ModuleRequest, RequestsEndMarker, RequestsStartMarker, RsdpRequest, StackSizeRequest,
};
use limine::BaseRevision;
use spin::Once;

#[used]
#[link_section = ".requests_start_marker"]
static REQUESTS_START: RequestsStartMarker = RequestsStartMarker::new();
#[used]
#[link_section = ".requests"]
static BASE_REVISION: BaseRevision = BaseRevision::new();
#[used]
#[link_section = ".requests"]
static BOOTLOADER_INFO: BootloaderInfoRequest = BootloaderInfoRequest::new();
#[used]
#[link_section = ".requests"]
static HHDM: HhdmRequest = HhdmRequest::new();
#[used]
#[link_section = ".requests"]
static MEMORY_MAP: MemoryMapRequest = MemoryMapRequest::new();
#[used]
#[link_section = ".requests"]
static EXECUTABLE_ADDRESS: ExecutableAddressRequest = ExecutableAddressRequest::new();
#[used]
#[link_section = ".requests"]
static CMDLINE: ExecutableCmdlineRequest = ExecutableCmdlineRequest::new();
#[used]
#[link_section = ".requests"]
static MODULES: ModuleRequest = ModuleRequest::new();
#[used]
#[link_section = ".requests"]
static RSDP: RsdpRequest = RsdpRequest::new();
#[used]
#[link_section = ".requests"]
static DATE_AT_BOOT: DateAtBootRequest = DateAtBootRequest::new();
#[used]
#[link_section = ".requests"]
static STACK_SIZE: StackSizeRequest = StackSizeRequest::new().with_size(64 * 1024);
#[used]
#[link_section = ".requests_end_marker"]
static REQUESTS_END: RequestsEndMarker = RequestsEndMarker::new();

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegionKind {
    Usable,
    Reserved,
    AcpiReclaimable,
    AcpiNvs,
    BadMemory,
    BootloaderReclaimable,
    KernelAndModules,
    Framebuffer,
    Unknown(u64),
}

impl RegionKind {
    fn from_limine(t: EntryType) -> RegionKind {
        match t {
            EntryType::USABLE => RegionKind::Usable,
            EntryType::RESERVED => RegionKind::Reserved,
            EntryType::ACPI_RECLAIMABLE => RegionKind::AcpiReclaimable,
            EntryType::ACPI_NVS => RegionKind::AcpiNvs,
            EntryType::BAD_MEMORY => RegionKind::BadMemory,
            EntryType::BOOTLOADER_RECLAIMABLE => RegionKind::BootloaderReclaimable,
            EntryType::EXECUTABLE_AND_MODULES => RegionKind::KernelAndModules,
            EntryType::FRAMEBUFFER => RegionKind::Framebuffer,
            // SAFETY-free: EntryType is a transparent u64 without a getter;
            // anything unknown is treated as reserved.
            _ => RegionKind::Unknown(0),
        }
    }

    /// RAM the kernel may direct-map with normal caching.
    pub fn is_ram_like(self) -> bool {
        matches!(
            self,
            RegionKind::Usable
                | RegionKind::BootloaderReclaimable
                | RegionKind::AcpiReclaimable
                | RegionKind::AcpiNvs
                | RegionKind::KernelAndModules
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            RegionKind::Usable => "usable",
            RegionKind::Reserved => "reserved",
            RegionKind::AcpiReclaimable => "ACPI reclaimable",
            RegionKind::AcpiNvs => "ACPI NVS",
            RegionKind::BadMemory => "bad memory",
            RegionKind::BootloaderReclaimable => "bootloader reclaimable",
            RegionKind::KernelAndModules => "kernel and modules",
            RegionKind::Framebuffer => "framebuffer",
            RegionKind::Unknown(_) => "unknown",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct MemoryRegion {
    pub base: u64,
    pub length: u64,
    pub kind: RegionKind,
}

pub const MAX_REGIONS: usize = 512;
const EMPTY: MemoryRegion = MemoryRegion { base: 0, length: 0, kind: RegionKind::Reserved };

/// The memory map, copied into the kernel image's bss at entry (before the
/// heap exists) so it outlives the bootloader's memory.
static mut REGIONS: [MemoryRegion; MAX_REGIONS] = [EMPTY; MAX_REGIONS];
static REGION_COUNT: AtomicUsize = AtomicUsize::new(0);

/// Fixed-size copy of the command line, also taken at entry.
const MAX_CMDLINE: usize = 1024;
static mut CMDLINE_BUF: [u8; MAX_CMDLINE] = [0; MAX_CMDLINE];
static CMDLINE_LEN: AtomicUsize = AtomicUsize::new(0);

/// The parts of the early boot information needed before the heap exists.
pub struct EarlyBoot {
    pub hhdm_offset: u64,
    pub kernel_phys: u64,
    pub kernel_virt: u64,
    pub truncated_regions: usize,
}

/// Read the responses every boot needs. Runs once, first thing, on the
/// bootloader's stack.
pub fn early() -> Result<EarlyBoot, &'static str> {
    if !BASE_REVISION.is_supported() {
        return Err("the bootloader does not support Limine base revision 3");
    }
    let hhdm = HHDM.get_response().ok_or("no HHDM response from the bootloader")?;
    let map = MEMORY_MAP.get_response().ok_or("no memory map from the bootloader")?;
    let addr = EXECUTABLE_ADDRESS.get_response().ok_or("no executable address response from the bootloader")?;
    let entries = map.entries();
    let n = entries.len().min(MAX_REGIONS);
    // SAFETY: single-threaded boot; REGIONS is written only here, before
    // any reader exists (readers go through `memory_map()`).
    let regions = unsafe { &mut *core::ptr::addr_of_mut!(REGIONS) };
    for (slot, e) in regions.iter_mut().zip(entries.iter()) {
        *slot = MemoryRegion { base: e.base, length: e.length, kind: RegionKind::from_limine(e.entry_type) };
    }
    REGION_COUNT.store(n, Ordering::Release);
    if let Some(c) = CMDLINE.get_response() {
        let bytes = c.cmdline().to_bytes();
        let len = bytes.len().min(MAX_CMDLINE);
        // SAFETY: as above, written once before any reader.
        unsafe { (&mut *core::ptr::addr_of_mut!(CMDLINE_BUF))[..len].copy_from_slice(&bytes[..len]) };
        CMDLINE_LEN.store(len, Ordering::Release);
    }
    Ok(EarlyBoot {
        hhdm_offset: hhdm.offset(),
        kernel_phys: addr.physical_base(),
        kernel_virt: addr.virtual_base(),
        truncated_regions: entries.len() - n,
    })
}

pub fn memory_map() -> &'static [MemoryRegion] {
    let n = REGION_COUNT.load(Ordering::Acquire);
    // SAFETY: REGIONS[..n] was fully written before REGION_COUNT was published
    // and is never written again.
    unsafe { &(&*core::ptr::addr_of!(REGIONS))[..n] }
}

/// The command line (non-UTF-8 bytes make it empty, with a warning logged
/// by the caller).
pub fn cmdline() -> &'static str {
    let n = CMDLINE_LEN.load(Ordering::Acquire);
    // SAFETY: as for memory_map().
    let bytes = unsafe { &(&*core::ptr::addr_of!(CMDLINE_BUF))[..n] };
    core::str::from_utf8(bytes).unwrap_or("")
}

/// A boot module: where its bytes are (kernel-and-modules memory, never
/// reclaimed) and what the config called it.
#[derive(Clone, Debug)]
pub struct BootModule {
    pub phys: u64,
    pub size: u64,
    pub path: String,
    pub cmdline: String,
}

pub struct LateBoot {
    pub modules: Vec<BootModule>,
    /// Physical address of the RSDP, if the firmware has ACPI.
    pub rsdp: Option<u64>,
    /// Unix seconds at boot, from the bootloader (firmware RTC).
    pub boot_time: Option<i64>,
    pub bootloader: String,
}

static LATE: Once<LateBoot> = Once::new();

const MAX_MODULES: usize = 64;
const MAX_STRING: usize = 256;

fn bounded(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_STRING)]).into_owned()
}

/// Copy everything else out of the responses (needs the heap). After this
/// returns, bootloader-reclaimable memory may be reclaimed.
pub fn late(hhdm_offset: u64) -> &'static LateBoot {
    LATE.call_once(|| {
        let mut modules = Vec::new();
        if let Some(m) = MODULES.get_response() {
            for f in m.modules().iter().take(MAX_MODULES) {
                let va = f.addr() as u64;
                modules.push(BootModule {
                    phys: va.wrapping_sub(hhdm_offset),
                    size: f.size(),
                    path: bounded(f.path().to_bytes()),
                    cmdline: bounded(f.string().to_bytes()),
                });
            }
        }
        // Base revision 3 passes the RSDP physically; older loaders passed an
        // HHDM address. Accept both.
        let rsdp = RSDP.get_response().map(|r| {
            let a = r.address() as u64;
            if a >= hhdm_offset { a - hhdm_offset } else { a }
        });
        let boot_time = DATE_AT_BOOT.get_response().map(|d| d.timestamp().as_secs() as i64);
        let bootloader = BOOTLOADER_INFO
            .get_response()
            .map(|b| {
                let mut s = bounded(b.name().as_bytes());
                s.push(' ');
                s.push_str(&bounded(b.version().as_bytes()));
                s
            })
            .unwrap_or_else(|| String::from("unknown bootloader"));
        LateBoot { modules, rsdp, boot_time, bootloader }
    })
}
