//! Platform discovery: ACPI tables and what the kernel takes from them.

pub mod acpi;
