//! Hardware-independent kernel logic, built for the kernel target and tested
//! on the host (Tock/Hubris style: the decisions are plain Rust, the kernel
//! binary only wires them to the hardware).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi;
pub mod call;
pub mod cap_table;
pub mod cmdline;
pub mod console_input;
pub mod endpoint;
pub mod frame_alloc;
pub mod gpt;
pub mod line_editor;
pub mod lock_order;
pub mod mmio;
pub mod mount_claims;
pub mod net;
pub mod nvme;
pub mod pci;
pub mod pid_table;
pub mod rtc;
pub mod restart;
pub mod run_queues;
pub mod scsi;
pub mod tsc_calibration;
pub mod user_elf;
pub mod vectors;

/// The byte the block-device scenarios write at `offset` of logical block
/// `lba`; shared by the kernel's self-test and the host runner that checks
/// the disk image afterwards.
pub fn blk_test_pattern(lba: u64, offset: usize) -> u8 {
    (lba.wrapping_mul(31) as u8) ^ (offset as u8) ^ ((offset >> 8) as u8).wrapping_mul(7) ^ 0xa5
}
