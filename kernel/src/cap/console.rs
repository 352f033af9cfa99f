//! `Console`: a process writes lines to the serial log, prefixed with its
//! manifest name. Control characters are replaced so a process cannot forge
//! kernel log lines or drive the operator's terminal.

use super::{CallMessage, Caller, KernelObject, Reply};
use capos_abi::capos_capnp::{console, void_result};
use capos_abi::helpers::{console_write_line_param, fill_void, sanitize_console_line};
use capos_abi::{interfaces, SysError};

pub struct Console;

impl KernelObject for Console {
    fn interface_id(&self) -> u64 {
        interfaces::CONSOLE
    }

    fn kind(&self) -> &'static str {
        "console"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        match call.method_id() {
            0 => {
                let params = call.params::<console::write_line_params::Owned>().map_err(|e| e.sys_error())?;
                let line = console_write_line_param(params).map_err(|e| e.sys_error())?;
                crate::arch::x86_64::serial::write_str(&alloc::format!("[{}] {}\n", caller.name, sanitize_console_line(line)));
                reply.results::<void_result::Owned, _>(|r| {
                    fill_void(r, &Ok(()));
                    Ok(())
                })
            }
            _ => Err(SysError::UnknownMethod),
        }
    }
}
