//! `Console`: a process writes lines to the serial log, prefixed with its
//! manifest name, and reads lines typed on the serial console. Control
//! characters are replaced so a process cannot forge kernel log lines or
//! drive the operator's terminal.
//!
//! `readLine` parks the caller (`Reply::park`: the call path blocks it
//! and schedules away); while it waits it holds the console's input. The
//! idle loop ([`service_input`], called by the process layer whenever
//! nothing is ready to run) feeds serial
//! bytes to the holder's line, echoes them, and when the line is complete
//! completes the parked call (`Waiters::complete_parked`). Who
//! may hold the input, and what a byte does, is `kcore::console_input`
//! (host-tested). Without a holder no byte is taken: they stay in the
//! serial ring for the next reader or the diagnostics prompt.

use super::{CallMessage, Caller, KernelObject, Reply};
use crate::arch::x86_64::serial;
use super::waiters::waiters;
use capos_abi::capos_capnp::{console, text_result, void_result, ErrorCode};
use capos_abi::helpers::{console_write_line_param, fill_text, fill_void, sanitize_console_line, CapError};
use capos_abi::interfaces::console_method;
use capos_abi::limits::MAX_CONSOLE_LINE_BYTES;
use capos_abi::{interfaces, SysError};
use capos_kcore::console_input::{ConsoleInput, Fed, Request};

pub struct Console;

/// Who holds the console's input, and the line being typed.
static INPUT: crate::sync::Lock<ConsoleInput<MAX_CONSOLE_LINE_BYTES>> = crate::sync::Lock::new(&crate::sync::classes::CONSOLE_INPUT, ConsoleInput::new());

impl KernelObject for Console {
    fn interface_id(&self) -> u64 {
        interfaces::CONSOLE
    }

    fn kind(&self) -> &'static str {
        "console"
    }

    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError> {
        match call.method_id() {
            console_method::WRITE_LINE => {
                let params = call.params::<console::write_line_params::Owned>().map_err(|e| e.sys_error())?;
                let line = console_write_line_param(params).map_err(|e| e.sys_error())?;
                let out = alloc::format!("[{}] {}\n", caller.name, sanitize_console_line(line));
                crate::arch::x86_64::serial::exclusive(|| {
                    crate::arch::x86_64::serial::start_line();
                    crate::arch::x86_64::serial::write_str(&out)
                });
                reply.results::<void_result::Owned, _>(|r| {
                    fill_void(r, &Ok(()));
                    Ok(())
                })
            }
            console_method::READ_LINE => match INPUT.lock().request(caller.pid) {
                Request::Wait => {
                    reply.park();
                    Ok(())
                }
                Request::Busy => reply.results::<text_result::Owned, _>(|r| {
                    fill_text(r, &Err(CapError::new(ErrorCode::Busy, "another process is reading the console")));
                    Ok(())
                }),
            },
            _ => Err(SysError::UnknownMethod),
        }
    }
}

/// `pid` is gone: free the input if it held it.
pub fn release(pid: u32) {
    if INPUT.lock().release(pid) {
        log::info!("console: input released by pid {}", pid);
    }
}

/// Feed waiting serial bytes to the reader's line (idle loop, interrupts
/// off). Returns true when a line was handed over and its reader woken.
pub fn service_input() -> bool {
    loop {
        if INPUT.lock().holder().is_none() {
            return false;
        }
        let Some(b) = crate::diag::input::pop() else { return false };
        let fed = INPUT.lock().feed(b);
        match fed {
            Fed::None | Fed::NoHolder => {}
            Fed::EchoByte(c) => serial::write_byte(c),
            Fed::Echo(s) => s.iter().for_each(|c| serial::write_byte(*c)),
            Fed::Overflow => serial::write_str(&alloc::format!(
                "\n(line too long; input beyond {} bytes on this line is ignored)\n",
                MAX_CONSOLE_LINE_BYTES
            )),
            Fed::Line { pid, line, cut } => {
                serial::write_str("\n");
                if cut {
                    serial::write_str(&alloc::format!("(line was cut to {} bytes)\n", MAX_CONSOLE_LINE_BYTES));
                }
                deliver(pid, &line);
                return true;
            }
        }
    }
}

/// Write `line` as `pid`'s `readLine` results and make it runnable.
fn deliver(pid: u32, line: &str) {
    waiters().complete_parked(pid, &mut |reply| {
        reply.results::<text_result::Owned, _>(|r| {
            fill_text(r, &Ok(line));
            Ok(())
        })
    });
}
