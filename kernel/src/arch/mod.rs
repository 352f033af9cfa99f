//! Architecture support. capOS targets x86_64 only; the split keeps every
//! instruction-level `unsafe` in one place.

pub mod x86_64;
