//! Hardware-independent kernel logic, built for the kernel target and tested
//! on the host (Tock/Hubris style: the decisions are plain Rust, the kernel
//! binary only wires them to the hardware).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod acpi;
pub mod cap_table;
pub mod civil;
pub mod cmdline;
pub mod frame_alloc;
pub mod line_editor;
pub mod pci;
pub mod user_elf;
pub mod vectors;
