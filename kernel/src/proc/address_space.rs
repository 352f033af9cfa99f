//! A process's address space. Its page tables (the walks over them and the
//! CR3 write that activates them) are memory management's: they live in
//! [`crate::mm::address_space`], and processes use them through its API.

pub use crate::mm::address_space::{AddressSpace, SpaceError, USER_END};
