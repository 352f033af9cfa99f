//! Diagnostics: the serial logger (with an in-memory ring of recent lines),
//! the panic handler, and the operator's prompt on COM1.

pub mod input;
pub mod logger;
pub mod panic;
pub mod prompt;
