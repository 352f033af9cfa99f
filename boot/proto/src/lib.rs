//! The pure logic of capOS's Limine-protocol loader.
//!
//! The UEFI application in `boot/` does the firmware calls (files, memory,
//! exit boot services, the jump); everything that decides *what* to do with
//! the bytes lives here so it can be tested on the host: the `limine.conf`
//! parser, the kernel ELF checks, the request scanner, the memory-map
//! conversion, the page-table builder and the boot-time conversion.
//!
//! Nothing here touches hardware, and the crate forbids `unsafe`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod config;
pub mod kernel_elf;
pub mod memmap;
pub mod paging;
pub mod protocol;
pub mod requests;
pub mod time;

/// Base revision of the Limine protocol this loader implements.
pub const SUPPORTED_BASE_REVISION: u64 = 3;

/// Where the higher-half direct map starts (4-level paging, no KASLR).
pub const HHDM_OFFSET: u64 = 0xffff_8000_0000_0000;

/// The protocol requires kernels at or above this address.
pub const KERNEL_MIN_VADDR: u64 = 0xffff_ffff_8000_0000;

pub const PAGE_SIZE: u64 = 4096;
