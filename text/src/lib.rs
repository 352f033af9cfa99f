//! Text and dates as people read them, with one copy of each rule for
//! every layer of capOS.
//!
//! - [`escape`]: text from an image, a manifest or a process made safe to
//!   print on a terminal.
//! - [`count`]: a count and its noun, `1 key` / `2 keys`.
//! - [`civil`]: the civil calendar, days and seconds since 1970 to dates
//!   and back (the loader, the kernel's clock, FAT dates, the shell, HTTP).
//!
//! Why a crate of its own: these rules are needed by crates that share no
//! other dependency (the contract crate `capos-abi`, the storage formats,
//! host tools), and each must stay dependency-free. A leaf crate with no
//! dependencies is the one place they can all link without pulling one
//! another in (`capos-abi` must not depend on the storage engines).
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod civil;
pub mod count;
pub mod escape;
