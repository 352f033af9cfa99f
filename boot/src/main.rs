//! capos-boot: a small UEFI application that boots a kernel by the Limine
//! protocol.
//!
//! Why our own: no Limine binary can be installed from the registries this
//! project may use, and its source may not be copied in (DESIGN.md,
//! decision 2). This loader implements the part of the protocol capOS's
//! kernel requests; see docs/boot.md for the subset. The decisions (config
//! parsing, ELF checks, request scan, memory-map conversion, page tables)
//! live in the host-tested `capos-bootproto` crate; this file does the
//! firmware calls and the jump.
//!
//! Every failure prints one clear line on the UEFI console (which OVMF and
//! cloud firmware mirror to the serial port) and returns an error status to
//! the firmware. Under QEMU it also writes the status to the isa-debug-exit
//! port so a test run ends instead of dropping into the firmware's menu.
#![no_std]
#![no_main]

extern crate alloc;

mod arena;
mod handoff;
mod menu;
mod port;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_bootproto::config::{self, Config};
use capos_bootproto::kernel_elf::{self, KernelImage};
use capos_bootproto::memmap::{self, UEFI_BOOTLOADER_RECLAIMABLE, UEFI_KERNEL_AND_MODULES};
use capos_bootproto::paging::{self, PhysMemory};
use capos_bootproto::protocol::{self as proto, RequestKind, REQUEST_EXTRA_OFFSET, REQUEST_RESPONSE_OFFSET};
use capos_bootproto::requests::{self, read_u64, write_u64};
use capos_bootproto::{HHDM_OFFSET, PAGE_SIZE, SUPPORTED_BASE_REVISION};
use uefi::boot::{self, AllocateType, MemoryType};
use uefi::fs::FileSystem;
use uefi::mem::memory_map::MemoryMap;
use uefi::table::cfg::ConfigTableEntry;
use uefi::{println, CString16, Status};

use arena::Arena;

const LOADER_NAME: &str = "capos-boot";
const LOADER_VERSION: &str = env!("CARGO_PKG_VERSION");
const DEFAULT_STACK_SIZE: u64 = 64 * 1024;
const MAX_STACK_SIZE: u64 = 16 * 1024 * 1024;
/// Bytes reserved for responses and their strings.
const ARENA_BYTES: usize = 256 * 1024;
/// Largest file the loader reads (kernel or module).
const MAX_FILE_BYTES: usize = 512 * 1024 * 1024;

/// A loader failure: the message and the status returned to the firmware.
struct Fail(Status, String);

fn fail<T>(status: Status, msg: impl Into<String>) -> Result<T, Fail> {
    Err(Fail(status, msg.into()))
}

#[uefi::entry]
fn main() -> Status {
    if uefi::helpers::init().is_err() {
        return Status::ABORTED;
    }
    println!("{} {}: Limine protocol loader", LOADER_NAME, LOADER_VERSION);
    match run() {
        Ok(never) => match never {},
        Err(Fail(status, msg)) => {
            println!("capos-boot: error: {}", msg);
            println!("capos-boot: cannot boot; returning {:?} to the firmware", status);
            port::qemu_exit_if_present(port::EXIT_LOADER_ERROR);
            status
        }
    }
}

fn kernel_type() -> MemoryType {
    MemoryType::custom(UEFI_KERNEL_AND_MODULES)
}

fn reclaimable_type() -> MemoryType {
    MemoryType::custom(UEFI_BOOTLOADER_RECLAIMABLE)
}

/// Allocate zeroed pages of `ty`; returns their physical address.
fn alloc_pages(ty: MemoryType, bytes: u64, what: &str) -> Result<u64, Fail> {
    let pages = bytes.div_ceil(PAGE_SIZE).max(1) as usize;
    let ptr = boot::allocate_pages(AllocateType::AnyPages, ty, pages)
        .or_else(|_| fail(Status::OUT_OF_RESOURCES, format!("out of memory allocating {} ({} pages)", what, pages)))?;
    // SAFETY: the firmware just gave us `pages` pages at `ptr`, identity mapped.
    unsafe { core::ptr::write_bytes(ptr.as_ptr(), 0, pages * PAGE_SIZE as usize) };
    Ok(ptr.as_ptr() as u64)
}

/// A mutable view of physical memory we allocated (identity mapped in UEFI).
fn phys_slice<'a>(phys: u64, len: usize) -> &'a mut [u8] {
    // SAFETY: only called on ranges returned by `alloc_pages`, which stay
    // allocated (never freed) and are accessed from this single thread.
    unsafe { core::slice::from_raw_parts_mut(phys as *mut u8, len) }
}

fn read_file(fs: &mut FileSystem, path: &str, what: &str) -> Result<Vec<u8>, Fail> {
    let uefi_path: String = path.replace('/', "\\");
    let p = CString16::try_from(uefi_path.as_str())
        .or_else(|_| fail(Status::INVALID_PARAMETER, format!("{} path '{}' has characters UEFI cannot name", what, path)))?;
    if let Ok(false) = fs.try_exists(p.as_ref()) {
        return fail(Status::NOT_FOUND, format!("{} '{}' not found on the boot volume", what, path));
    }
    let bytes = fs.read(p.as_ref()).or_else(|e| {
        fail(Status::NOT_FOUND, format!("cannot read {} '{}' from the boot volume: {}", what, path, e))
    })?;
    if bytes.len() > MAX_FILE_BYTES {
        return fail(Status::LOAD_ERROR, format!("{} '{}' is {} bytes, more than the {} allowed", what, path, bytes.len(), MAX_FILE_BYTES));
    }
    Ok(bytes)
}

fn load_config(fs: &mut FileSystem) -> Result<(String, Config), Fail> {
    for path in config::CONFIG_PATHS {
        let p = CString16::try_from(path.replace('/', "\\").as_str()).unwrap_or_default();
        if let Ok(bytes) = fs.read(p.as_ref()) {
            let cfg = config::parse(&bytes).or_else(|e| fail(Status::LOAD_ERROR, format!("{} ({})", e, path)))?;
            return Ok((String::from(*path), cfg));
        }
    }
    fail(Status::NOT_FOUND, format!("no limine.conf on the boot volume (looked for {})", config::CONFIG_PATHS.join(", ")))
}

/// Page-table frames straight from the firmware.
struct FirmwarePages {
    allocated: usize,
}

impl PhysMemory for FirmwarePages {
    fn alloc_table(&mut self) -> Option<u64> {
        self.allocated += 1;
        alloc_pages(reclaimable_type(), PAGE_SIZE, "page table").ok()
    }
    fn read_entry(&self, table: u64, index: usize) -> u64 {
        // SAFETY: `table` is a page we allocated for a table; index < 512.
        unsafe { (table as *const u64).add(index).read() }
    }
    fn write_entry(&mut self, table: u64, index: usize, value: u64) {
        // SAFETY: as above.
        unsafe { (table as *mut u64).add(index).write(value) }
    }
}

fn find_rsdp() -> Option<u64> {
    uefi::system::with_config_table(|entries: &[ConfigTableEntry]| {
        let find = |guid| entries.iter().find(|e| e.guid == guid).map(|e| e.address as u64);
        find(ConfigTableEntry::ACPI2_GUID).or_else(|| find(ConfigTableEntry::ACPI_GUID))
    })
}

fn boot_time() -> Option<i64> {
    let t = uefi::runtime::get_time().ok()?;
    capos_bootproto::time::unix_seconds(
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.time_zone().unwrap_or(capos_bootproto::time::UNSPECIFIED_TIMEZONE),
    )
}

/// A file handed to the kernel (the kernel file itself or a module).
struct LoadedFile {
    phys: u64,
    size: u64,
    path: String,
    cmdline: String,
}

fn load_into_kernel_memory(bytes: &[u8], path: &str, cmdline: &str, what: &str) -> Result<LoadedFile, Fail> {
    let phys = alloc_pages(kernel_type(), bytes.len() as u64, what)?;
    phys_slice(phys, bytes.len()).copy_from_slice(bytes);
    Ok(LoadedFile { phys, size: bytes.len() as u64, path: format!("boot():{}", path), cmdline: String::from(cmdline) })
}

fn run() -> Result<core::convert::Infallible, Fail> {
    let sfs = boot::get_image_file_system(boot::image_handle())
        .or_else(|e| fail(Status::NOT_FOUND, format!("cannot open the boot volume: {:?}", e.status())))?;
    let mut fs = FileSystem::new(sfs);

    let (config_path, cfg) = load_config(&mut fs)?;
    for w in &cfg.warnings {
        println!("capos-boot: warning: {}", w);
    }
    let entry = &cfg.entries[menu::choose(&cfg)];
    println!("capos-boot: {}: booting entry '{}' ({} entries)", config_path, entry.name, cfg.entries.len());

    // The kernel.
    let kernel_bytes = read_file(&mut fs, &entry.kernel_path, "kernel")?;
    let kernel: KernelImage = kernel_elf::check(&kernel_bytes)
        .or_else(|e| fail(Status::LOAD_ERROR, format!("kernel '{}' rejected: {}", entry.kernel_path, e)))?;
    let kernel_phys = alloc_pages(kernel_type(), kernel.span, "the kernel image")?;
    let image = phys_slice(kernel_phys, kernel.span as usize);
    kernel_elf::copy_segments(&kernel, &kernel_bytes, image);
    println!(
        "capos-boot: kernel {} ({} bytes): {} segments at {:#x}, {} KiB, entry {:#x}",
        entry.kernel_path, kernel_bytes.len(), kernel.segments.len(), kernel.virt_base, kernel.span / 1024, kernel.entry
    );

    let scan = requests::scan(image)
        .or_else(|e| fail(Status::LOAD_ERROR, format!("kernel '{}': {}", entry.kernel_path, e)))?;

    // Base revision.
    let mut revision = 0;
    if let Some((at, wanted)) = scan.base_revision {
        if wanted > SUPPORTED_BASE_REVISION {
            return fail(
                Status::UNSUPPORTED,
                format!("kernel requires Limine base revision {}; {} implements up to {}", wanted, LOADER_NAME, SUPPORTED_BASE_REVISION),
            );
        }
        revision = wanted;
        write_u64(image, at + 8, wanted);
        write_u64(image, at + 16, 0);
    }

    // Modules and the kernel file.
    let mut modules = Vec::new();
    for m in &entry.modules {
        let bytes = read_file(&mut fs, &m.path, "module")?;
        modules.push(load_into_kernel_memory(&bytes, &m.path, &m.cmdline, "a module")?);
    }
    // The kernel file itself is only kept if the kernel asks for it (it can
    // be large with debug info, and small machines have little to spare).
    let kernel_file = if scan.requests.iter().any(|r| r.kind == RequestKind::ExecutableFile) {
        Some(load_into_kernel_memory(&kernel_bytes, &entry.kernel_path, &entry.cmdline, "the kernel file")?)
    } else {
        None
    };
    drop(kernel_bytes);

    let mut arena = Arena::new(alloc_pages(reclaimable_type(), ARENA_BYTES as u64, "responses")?, ARENA_BYTES);
    let hhdm = |phys: u64| phys + HHDM_OFFSET;
    let mut entry_point = kernel.entry;
    let mut stack_size = DEFAULT_STACK_SIZE;
    let mut memmap_request = None;
    let mut answered: Vec<&'static str> = Vec::new();
    let mut unanswered: Vec<&'static str> = Vec::new();

    for req in &scan.requests {
        let extra = |image: &[u8], n: usize| read_u64(image, req.offset + REQUEST_EXTRA_OFFSET + 8 * n).unwrap_or(0);
        let response: Option<u64> = match req.kind {
            RequestKind::BootloaderInfo => {
                let name = arena.cstr(LOADER_NAME)?;
                let version = arena.cstr(LOADER_VERSION)?;
                Some(arena.words(&[0, hhdm(name), hhdm(version)])?)
            }
            RequestKind::FirmwareType => Some(arena.words(&[0, proto::FIRMWARE_TYPE_UEFI64])?),
            RequestKind::StackSize => {
                let wanted = extra(image, 0);
                if wanted > MAX_STACK_SIZE {
                    return fail(Status::UNSUPPORTED, format!("kernel asks for a {} byte stack; the limit is {}", wanted, MAX_STACK_SIZE));
                }
                stack_size = stack_size.max(wanted);
                Some(arena.words(&[0])?)
            }
            RequestKind::Hhdm => Some(arena.words(&[0, HHDM_OFFSET])?),
            RequestKind::PagingMode => {
                // Request revision 1 carries max_mode and min_mode; 0 = 4-level.
                if req.revision >= 1 && extra(image, 2) > 0 {
                    return fail(Status::UNSUPPORTED, "kernel requires 5-level paging; this loader provides 4-level only");
                }
                Some(arena.words(&[0, 0])?)
            }
            RequestKind::MemoryMap => {
                memmap_request = Some(req.offset);
                None // answered after ExitBootServices
            }
            RequestKind::EntryPoint => {
                let ep = extra(image, 0);
                if !kernel.segments.iter().any(|s| s.executable && ep >= s.vaddr && ep < s.vaddr + s.mem_size) {
                    return fail(Status::LOAD_ERROR, format!("entry point request names {:#x}, outside the kernel's code", ep));
                }
                entry_point = ep;
                Some(arena.words(&[0])?)
            }
            RequestKind::ExecutableFile => match &kernel_file {
                Some(f) => {
                    let file = arena.limine_file(f)?;
                    Some(arena.words(&[0, hhdm(file)])?)
                }
                None => None,
            },
            RequestKind::Module => {
                if req.revision >= 1 && extra(image, 0) > 0 {
                    check_internal_modules(image, &kernel, extra(image, 0), extra(image, 1))?;
                }
                let mut ptrs = Vec::new();
                for m in &modules {
                    ptrs.push(hhdm(arena.limine_file(m)?));
                }
                let array = arena.words(&ptrs)?;
                Some(arena.words(&[0, modules.len() as u64, hhdm(array)])?)
            }
            RequestKind::Rsdp => match find_rsdp() {
                // Base revision 3 passes the RSDP as a physical address.
                Some(rsdp) => Some(arena.words(&[0, if revision >= 3 { rsdp } else { hhdm(rsdp) }])?),
                None => {
                    println!("capos-boot: warning: the firmware has no ACPI table; RSDP request left unanswered");
                    None
                }
            },
            RequestKind::DateAtBoot => match boot_time() {
                Some(t) => Some(arena.words(&[0, t as u64])?),
                None => {
                    println!("capos-boot: warning: the firmware clock gave no valid time; date request left unanswered");
                    None
                }
            },
            RequestKind::ExecutableAddress => Some(arena.words(&[0, kernel_phys, kernel.virt_base])?),
            RequestKind::ExecutableCmdline => {
                let s = arena.cstr(&entry.cmdline)?;
                Some(arena.words(&[0, hhdm(s)])?)
            }
            _ => None,
        };
        match response {
            Some(r) => {
                write_u64(image, req.offset + REQUEST_RESPONSE_OFFSET, hhdm(r));
                answered.push(req.kind.name());
            }
            None if req.kind == RequestKind::MemoryMap => answered.push(req.kind.name()),
            None => unanswered.push(req.kind.name()),
        }
    }
    println!(
        "capos-boot: base revision {}; answered: {}; not provided: {}",
        revision,
        answered.join(", "),
        if unanswered.is_empty() { String::from("none") } else { unanswered.join(", ") }
    );

    // Stack, GDT and page tables, all in bootloader-reclaimable memory.
    let stack = alloc_pages(reclaimable_type(), stack_size, "the kernel stack")?;
    let gdt = handoff::write_gdt(alloc_pages(reclaimable_type(), PAGE_SIZE, "the GDT")?);

    let map = boot::memory_map(MemoryType::LOADER_DATA)
        .or_else(|e| fail(Status::LOAD_ERROR, format!("cannot read the memory map: {:?}", e.status())))?;
    let highest = map.entries().map(|d| d.phys_start + d.page_count * PAGE_SIZE).max().unwrap_or(0);
    // Room for the map to grow by the allocations still to come.
    let capacity = map.len() + 64;
    drop(map);
    let top = paging::direct_map_top(highest);
    let mut frames = FirmwarePages { allocated: 0 };
    let pml4 = paging::build(&mut frames, &kernel, kernel_phys, top)
        .or_else(|e| fail(Status::OUT_OF_RESOURCES, format!("building page tables: {:?}", e)))?;
    println!(
        "capos-boot: page tables: {} frames, direct maps up to {:#x}; stack {} KiB",
        frames.allocated, top, stack_size / 1024
    );

    let memmap_entries = alloc_pages(reclaimable_type(), (capacity * proto::MEMMAP_ENTRY_SIZE) as u64, "the memory map")?;
    let memmap_ptrs = alloc_pages(reclaimable_type(), (capacity * 8) as u64, "the memory map")?;
    let memmap_response = arena.words(&[0, 0, hhdm(memmap_ptrs)])?;
    if let Some(offset) = memmap_request {
        write_u64(image, offset + REQUEST_RESPONSE_OFFSET, hhdm(memmap_response));
    }
    println!("capos-boot: exiting boot services and entering the kernel");

    // SAFETY: nothing of boot services is used after this point: no
    // printing, no allocation. The final map lands in reclaimable memory.
    let final_map = unsafe { boot::exit_boot_services(Some(reclaimable_type())) };
    // SAFETY: `memmap_entries` holds `capacity` entries' worth of pages we own.
    let out = unsafe { core::slice::from_raw_parts_mut(memmap_entries as *mut memmap::Entry, capacity) };
    let n = match memmap::convert(
        final_map.entries().map(|d| (d.ty.0, d.phys_start, d.page_count)),
        out,
    ) {
        Ok(n) => n,
        Err(e) => {
            port::serial_line("capos-boot: error: cannot convert the final memory map");
            let _ = e;
            port::qemu_exit_if_present(port::EXIT_LOADER_ERROR);
            port::halt_forever();
        }
    };
    let ptrs = phys_slice(memmap_ptrs, capacity * 8);
    for i in 0..n {
        let entry_phys = memmap_entries + (i * proto::MEMMAP_ENTRY_SIZE) as u64;
        ptrs[i * 8..i * 8 + 8].copy_from_slice(&hhdm(entry_phys).to_le_bytes());
    }
    phys_slice(memmap_response + 8, 8).copy_from_slice(&(n as u64).to_le_bytes());
    core::mem::forget(final_map);

    // SAFETY: the tables map the kernel, HHDM and the identity map holding
    // this code, the GDT and the stack; boot services are gone.
    unsafe { handoff::enter_kernel(pml4, gdt, hhdm(stack + stack_size), entry_point) }
}

/// Module request revision 1 lets the kernel name modules it carries itself.
/// We cannot provide those; a required one is a fatal error.
fn check_internal_modules(image: &[u8], kernel: &KernelImage, count: u64, array_va: u64) -> Result<(), Fail> {
    let at = |va: u64| va.checked_sub(kernel.virt_base).map(|o| o as usize);
    for i in 0..count.min(64) {
        let Some(ptr_off) = array_va.checked_add(8 * i).and_then(at) else { break };
        let Some(module_va) = read_u64(image, ptr_off) else { break };
        let Some(m) = at(module_va) else { continue };
        let flags = read_u64(image, m + 16).unwrap_or(0);
        if flags & 1 != 0 {
            return fail(Status::UNSUPPORTED, "kernel requires an internal module; this loader does not provide internal modules");
        }
    }
    Ok(())
}
