//! `Console`: a process writes lines to the serial log, prefixed with its
//! manifest name. Control characters are replaced so a process cannot forge
//! kernel log lines or drive the operator's terminal.

use super::{Caller, KernelObject, KernelReply};
use capos_abi::helpers::{console_write_line_param, encode_void_return, sanitize_console_line};
use capos_abi::message::CallMessage;
use capos_abi::{interfaces, SysError};

pub struct Console;

impl KernelObject for Console {
    fn interface_id(&self) -> u64 {
        interfaces::CONSOLE
    }

    fn kind(&self) -> &'static str {
        "console"
    }

    fn call(&self, caller: &Caller, call: &CallMessage) -> Result<KernelReply, SysError> {
        match call.method_id() {
            0 => {
                let line = console_write_line_param(call).map_err(|e| e.sys_error())?;
                crate::arch::x86_64::serial::write_str(&alloc::format!("[{}] {}\n", caller.name, sanitize_console_line(line)));
                KernelReply::plain(encode_void_return(&Ok(())))
            }
            _ => Err(SysError::UnknownMethod),
        }
    }
}
