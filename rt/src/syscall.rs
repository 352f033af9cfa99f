//! Syscall wrappers (see `capos_abi::syscall` for the convention).

use capos_abi::error::{decode_status, SyscallFailure};
use capos_abi::syscall as nr;
use capos_abi::{Handle, SysError};
use core::arch::asm;

/// The raw instruction: `(rax, rdx)` after the call. For tests that must
/// pass arbitrary (even hostile) arguments.
///
/// # Safety
/// The kernel validates every argument, so no argument can harm the
/// kernel; the caller must only accept that pointers it passes may be
/// written to if they are valid.
pub unsafe fn raw(number: u64, a: [u64; 6]) -> (u64, u64) {
    let (rax, rdx): (u64, u64);
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => rax,
            in("rdi") a[0],
            in("rsi") a[1],
            inlateout("rdx") a[2] => rdx,
            in("r10") a[3],
            in("r8") a[4],
            in("r9") a[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    (rax, rdx)
}

/// A syscall error with its detail (`rdx`, e.g. the length needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Failure {
    pub error: Option<SysError>,
    pub detail: u64,
}

impl Failure {
    pub fn is(&self, e: SysError) -> bool {
        self.error == Some(e)
    }
}

fn call(number: u64, a: [u64; 6]) -> Result<u64, Failure> {
    // SAFETY: the wrappers below pass pointers to live Rust buffers.
    let (rax, rdx) = unsafe { raw(number, a) };
    decode_status(rax, rdx).map_err(|f| match f {
        SyscallFailure::Error(e, d) => Failure { error: Some(e), detail: d },
        SyscallFailure::Unknown(code) => Failure { error: None, detail: code },
    })
}

pub fn cap_call(handle: Handle, request: &[u8], reply: &mut [u8]) -> Result<usize, Failure> {
    call(nr::CAP_CALL, [handle.raw(), request.as_ptr() as u64, request.len() as u64, reply.as_mut_ptr() as u64, reply.len() as u64, 0])
        .map(|n| n as usize)
}

pub fn cap_drop(handle: Handle) -> Result<(), Failure> {
    call(nr::CAP_DROP, [handle.raw(), 0, 0, 0, 0, 0]).map(|_| ())
}

pub fn endpoint_create() -> Result<Handle, Failure> {
    call(nr::ENDPOINT_CREATE, [0; 6]).map(Handle::from_raw)
}

pub fn endpoint_receive(handle: Handle, buf: &mut [u8]) -> Result<usize, Failure> {
    call(nr::ENDPOINT_RECEIVE, [handle.raw(), buf.as_mut_ptr() as u64, buf.len() as u64, 0, 0, 0]).map(|n| n as usize)
}

pub fn endpoint_reply(token: u64, reply: &[u8]) -> Result<(), Failure> {
    call(nr::ENDPOINT_REPLY, [token, reply.as_ptr() as u64, reply.len() as u64, 0, 0, 0]).map(|_| ())
}

pub fn yield_now() {
    let _ = call(nr::YIELD, [0; 6]);
}

pub fn exit(status: u64) -> ! {
    // SAFETY: exit takes a number only.
    unsafe {
        raw(nr::EXIT, [status, 0, 0, 0, 0, 0]);
    }
    // The kernel never returns from exit; if it did, fault rather than run on.
    loop {
        // SAFETY: ud2 raises an invalid-opcode fault, which ends the process.
        unsafe { asm!("ud2", options(noreturn)) }
    }
}

/// The time-stamp counter (for benchmarks).
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC reads a counter; CR4.TSD is clear.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack)) };
    (hi as u64) << 32 | lo as u64
}
