//! Validation of userspace ELF binaries (filled in by the capability-layer work).
