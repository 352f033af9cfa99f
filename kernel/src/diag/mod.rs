//! Diagnostics: the serial logger and the panic handler.

pub mod logger;
pub mod panic;
