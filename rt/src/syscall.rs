//! Syscall wrappers (see `capos_abi::syscall` for the convention).

use capos_abi::error::{decode_status, SyscallFailure};
use capos_abi::ipc::{CallWord, Received, ReplyWord};
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

/// Every register the IPC calls return: (rax, rdx, rsi, rdi, r10, r8, r9).
///
/// # Safety
/// As for [`raw`]: the kernel checks every argument; pointers the caller
/// passes may be written if valid.
pub unsafe fn raw_ipc(number: u64, a: [u64; 6]) -> [u64; 7] {
    let (rax, rdx, rsi, rdi, r10, r8, r9): (u64, u64, u64, u64, u64, u64, u64);
    // SAFETY: forwarded to the caller.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") number => rax,
            inlateout("rdi") a[0] => rdi,
            inlateout("rsi") a[1] => rsi,
            inlateout("rdx") a[2] => rdx,
            inlateout("r10") a[3] => r10,
            inlateout("r8") a[4] => r8,
            inlateout("r9") a[5] => r9,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    [rax, rdx, rsi, rdi, r10, r8, r9]
}

fn failure(rax: u64, rdx: u64) -> Failure {
    match decode_status(rax, rdx) {
        Err(SyscallFailure::Error(e, d)) => Failure { error: Some(e), detail: d },
        Err(SyscallFailure::Unknown(code)) => Failure { error: None, detail: code },
        Ok(_) => Failure { error: None, detail: 0 },
    }
}

/// `cap_call`: (ReplyWord, bulk bytes written back) on success.
#[inline]
pub fn cap_call(handle: Handle, interface_id: u64, word: CallWord, bulk: (u64, u64)) -> Result<(ReplyWord, u64), Failure> {
    let (rax, rdx, rsi): (u64, u64, u64);
    // SAFETY: the bulk buffer (if any) is the caller's own memory, named
    // with the flags it allows; everything else is numbers.
    unsafe {
        asm!(
            "syscall",
            inlateout("rax") nr::CAP_CALL => rax,
            in("rdi") handle.raw(),
            inlateout("rsi") interface_id => rsi,
            inlateout("rdx") word.pack() => rdx,
            in("r10") bulk.0,
            in("r8") bulk.1,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    if rax != 0 {
        return Err(failure(rax, rdx));
    }
    Ok((ReplyWord::new(rdx as u32, (rdx >> 32) as u8), rsi))
}

#[inline(always)]
fn received(r: [u64; 7]) -> Result<Received, Failure> {
    if r[0] != 0 {
        return Err(failure(r[0], r[1]));
    }
    let word = Received::unpack_word(r[1]).map_err(|e| Failure { error: Some(e), detail: 0 })?;
    Ok(Received { word, interface_id: r[2], token: r[3], badge: r[4], bulk_in: r[5], bulk_out_capacity: r[6] })
}

/// `endpoint_receive`: the next call's envelope.
pub fn endpoint_receive(endpoint: Handle) -> Result<Received, Failure> {
    // SAFETY: numbers only.
    received(unsafe { raw_ipc(nr::ENDPOINT_RECEIVE, [endpoint.raw(), 0, 0, 0, 0, 0]) })
}

/// `endpoint_receive_timeout`: as `endpoint_receive`, but fails with
/// `TimedOut` when nothing arrives within `ns` nanoseconds (0: not at all).
pub fn endpoint_receive_timeout(endpoint: Handle, ns: u64) -> Result<Received, Failure> {
    // SAFETY: numbers only.
    received(unsafe { raw_ipc(nr::ENDPOINT_RECEIVE_TIMEOUT, [endpoint.raw(), ns, 0, 0, 0, 0]) })
}

/// `endpoint_reply`.
pub fn endpoint_reply(token: u64, word: ReplyWord, bulk: &[u8]) -> Result<(), Failure> {
    call(nr::ENDPOINT_REPLY, [token, 0, word.pack(), bulk.as_ptr() as u64, bulk.len() as u64, 0]).map(|_| ())
}

/// `endpoint_reply_receive`: reply, then the next call's envelope.
#[inline]
pub fn endpoint_reply_receive(token: u64, endpoint: Handle, word: ReplyWord, bulk: &[u8]) -> Result<Received, Failure> {
    // SAFETY: the bulk slice is read by the kernel only.
    received(unsafe {
        raw_ipc(nr::ENDPOINT_REPLY_RECEIVE, [token, endpoint.raw(), word.pack(), bulk.as_ptr() as u64, bulk.len() as u64, 0])
    })
}

/// `bulk_register`: where calls' bulk data lands while this process serves.
pub fn bulk_register(buffer: &'static mut [u8]) -> Result<(), Failure> {
    call(nr::BULK_REGISTER, [buffer.as_mut_ptr() as u64, buffer.len() as u64, 0, 0, 0, 0]).map(|_| ())
}

pub fn cap_drop(handle: Handle) -> Result<(), Failure> {
    call(nr::CAP_DROP, [handle.raw(), 0, 0, 0, 0, 0]).map(|_| ())
}

pub fn endpoint_create() -> Result<Handle, Failure> {
    call(nr::ENDPOINT_CREATE, [0; 6]).map(Handle::from_raw)
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
