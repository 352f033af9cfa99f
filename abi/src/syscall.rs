//! Syscall numbers and the calling convention.
//!
//! # Calling convention (x86_64, `syscall` instruction)
//!
//! `rax` holds the syscall number on entry and the status on return (0 =
//! success, else a [`SysError`](crate::SysError)); `rdx` holds the call's
//! value on return (for `BufferTooSmall`, the length needed). Arguments are
//! in `rdi`, `rsi`, `rdx`, `r10`, `r8`, `r9` (argument 3 is in `r10`, not
//! `rcx`, because `syscall` overwrites `rcx`, as in the Linux convention).
//! `rcx` and `r11` are clobbered. The IPC calls also return values in
//! `rsi`, `rdi`, `r10`, `r8` and `r9` as listed below; every other register,
//! including `rsp`, `rbp`, `rbx`, `r12`–`r15` and the SSE state, is
//! preserved. Pointer arguments are user virtual addresses; the kernel
//! checks every `(pointer, length)` pair against the caller's mappings (no
//! kernel address, no overflow) before touching it and fails with
//! `BadAddress` otherwise.
//!
//! The call envelope travels in registers and in the process's IPC area
//! ([`crate::ipc`]): capnp messages (a method's params or results only) are
//! in the area's send and receive buffers, capability handles in its
//! header, bulk data in a buffer of the caller's own memory.
//!
//! # Process entry
//!
//! A new process starts at its ELF entry point with `rsp` 16-byte aligned at
//! the top of its stack, `rdi` = address and `rsi` = length of its
//! `StartInfo` message (mapped read-only; see `schema/capos.capnp`), and every
//! other general register zero. Its IPC area is mapped at
//! [`IPC_AREA_ADDR`](crate::ipc::IPC_AREA_ADDR). The process ends with
//! [`EXIT`]; returning from the entry point is a fault.
//!
//! # The calls
//!
//! | nr | name | arguments | returns (on success) |
//! |----|------|-----------|----------------------|
//! | 1 | [`CAP_CALL`] | `rdi` handle, `rsi` interface id, `rdx` [`CallWord`](crate::ipc::CallWord), `r10` bulk ptr, `r8` bulk len | `rdx` [`ReplyWord`](crate::ipc::ReplyWord), `rsi` bulk bytes written back |
//! | 2 | [`CAP_DROP`] | `rdi` handle | — |
//! | 3 | [`ENDPOINT_CREATE`] | — | `rdx` new endpoint handle |
//! | 4 | [`ENDPOINT_RECEIVE`] | `rdi` endpoint handle | the call, as [`Received`](crate::ipc::Received) lists |
//! | 5 | [`ENDPOINT_REPLY`] | `rdi` reply token, `rdx` [`ReplyWord`](crate::ipc::ReplyWord), `r10` bulk ptr, `r8` bulk len | — |
//! | 6 | [`EXIT`] | `rdi` status | does not return |
//! | 7 | [`YIELD`] | — | — |
//! | 8 | [`ENDPOINT_REPLY_RECEIVE`] | `rdi` reply token, `rsi` endpoint handle, `rdx` [`ReplyWord`](crate::ipc::ReplyWord), `r10` bulk ptr, `r8` bulk len | the next call, as for receive |
//! | 9 | [`BULK_REGISTER`] | `rdi` buffer ptr, `rsi` len (0 = none) | — |
//! | 10 | [`ENDPOINT_RECEIVE_TIMEOUT`] | `rdi` endpoint handle, `rsi` nanoseconds | as for receive, or `TimedOut` |
//!
//! Number 0 is deliberately unused so that a zeroed `rax` is `UnknownSyscall`.
//! There is no ambient "debug print": a process logs through the `Console`
//! capability it was granted, and the kernel logs every exit and fault itself.

/// Call a method on a capability. The params are the first `len` bytes of
/// the send buffer (none: the default struct), the transferred handles the
/// first `caps` of CAPS_OUT. On success the results are in the receive
/// buffer and the handles installed for the caller in CAPS_IN. Blocks until
/// the object (the kernel, or the server behind an endpoint) answers.
pub const CAP_CALL: u64 = 1;
/// Drop a handle. The slot's generation is bumped, so the handle (and every
/// copy of its value) is stale from now on. Dropping a handle that was
/// already dropped fails with `StaleHandle`.
pub const CAP_DROP: u64 = 2;
/// Create an endpoint served by the caller. The handle returned is the
/// receive side: `endpoint_receive` on it takes calls, and a `cap_call` on it
/// reaches the kernel's `Endpoint` interface (`mint` client capabilities).
pub const ENDPOINT_CREATE: u64 = 3;
/// Wait for the next call on an endpoint. Its params land in the receive
/// buffer, its transferred capabilities (installed in the server's table)
/// in CAPS_IN, its bulk data in the registered bulk buffer.
pub const ENDPOINT_RECEIVE: u64 = 4;
/// Answer the call named by a reply token: results from the send buffer,
/// handles (copied into the caller's table) from CAPS_OUT, bulk data copied
/// into the caller's bulk buffer. Each token answers exactly once.
pub const ENDPOINT_REPLY: u64 = 5;
/// End the calling process with a status (0 = success). Its capabilities are
/// dropped; callers blocked on its endpoints fail with `PeerGone`.
pub const EXIT: u64 = 6;
/// Give up the rest of the time slice.
pub const YIELD: u64 = 7;
/// Reply, then wait for the next call on an endpoint: the server's loop in
/// one syscall, and the CPU goes straight back to the client.
pub const ENDPOINT_REPLY_RECEIVE: u64 = 8;
/// Register the buffer a server's incoming bulk data lands in (at most
/// [`MAX_BULK_BYTES`](crate::ipc::MAX_BULK_BYTES); a call with more bulk
/// data than fits fails with `BufferTooSmall`).
pub const BULK_REGISTER: u64 = 9;
/// `endpoint_receive` that gives up: when no call or notification arrives
/// within `rsi` nanoseconds of monotonic time it fails with
/// [`SysError::TimedOut`](crate::SysError::TimedOut) (0: do not wait at
/// all). The deadline is kept at the scheduler's tick (10 ms at worst),
/// never earlier than asked. For a server that has work of its own to do
/// between calls (a network stack's timers, a device it polls).
pub const ENDPOINT_RECEIVE_TIMEOUT: u64 = 10;

/// A syscall number, decoded. Unknown numbers are rejected, never guessed.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Syscall {
    CapCall = CAP_CALL,
    CapDrop = CAP_DROP,
    EndpointCreate = ENDPOINT_CREATE,
    EndpointReceive = ENDPOINT_RECEIVE,
    EndpointReply = ENDPOINT_REPLY,
    Exit = EXIT,
    Yield = YIELD,
    EndpointReplyReceive = ENDPOINT_REPLY_RECEIVE,
    BulkRegister = BULK_REGISTER,
    EndpointReceiveTimeout = ENDPOINT_RECEIVE_TIMEOUT,
}

impl Syscall {
    /// Every syscall, in numeric order.
    pub const ALL: [Syscall; 10] = [
        Syscall::CapCall,
        Syscall::CapDrop,
        Syscall::EndpointCreate,
        Syscall::EndpointReceive,
        Syscall::EndpointReply,
        Syscall::Exit,
        Syscall::Yield,
        Syscall::EndpointReplyReceive,
        Syscall::BulkRegister,
        Syscall::EndpointReceiveTimeout,
    ];

    /// The number carried in `rax`.
    pub const fn number(self) -> u64 {
        self as u64
    }

    /// The syscall for `rax`, or `None`.
    #[inline]
    pub fn from_number(number: u64) -> Option<Syscall> {
        Some(match number {
            CAP_CALL => Syscall::CapCall,
            CAP_DROP => Syscall::CapDrop,
            ENDPOINT_CREATE => Syscall::EndpointCreate,
            ENDPOINT_RECEIVE => Syscall::EndpointReceive,
            ENDPOINT_REPLY => Syscall::EndpointReply,
            EXIT => Syscall::Exit,
            YIELD => Syscall::Yield,
            ENDPOINT_REPLY_RECEIVE => Syscall::EndpointReplyReceive,
            BULK_REGISTER => Syscall::BulkRegister,
            ENDPOINT_RECEIVE_TIMEOUT => Syscall::EndpointReceiveTimeout,
            _ => return None,
        })
    }

    /// A short stable name, used in logs.
    pub const fn name(self) -> &'static str {
        match self {
            Syscall::CapCall => "cap_call",
            Syscall::CapDrop => "cap_drop",
            Syscall::EndpointCreate => "endpoint_create",
            Syscall::EndpointReceive => "endpoint_receive",
            Syscall::EndpointReply => "endpoint_reply",
            Syscall::Exit => "exit",
            Syscall::Yield => "yield",
            Syscall::EndpointReplyReceive => "endpoint_reply_receive",
            Syscall::BulkRegister => "bulk_register",
            Syscall::EndpointReceiveTimeout => "endpoint_receive_timeout",
        }
    }

    /// How many of the argument registers the call reads.
    pub const fn argument_count(self) -> usize {
        match self {
            Syscall::CapCall => 5,
            Syscall::CapDrop => 1,
            Syscall::EndpointCreate => 0,
            Syscall::EndpointReceive => 1,
            Syscall::EndpointReply => 5,
            Syscall::Exit => 1,
            Syscall::Yield => 0,
            Syscall::EndpointReplyReceive => 5,
            Syscall::BulkRegister => 2,
            Syscall::EndpointReceiveTimeout => 2,
        }
    }
}

impl TryFrom<u64> for Syscall {
    type Error = crate::SysError;
    /// Unknown numbers map to [`SysError::UnknownSyscall`](crate::SysError::UnknownSyscall).
    fn try_from(number: u64) -> Result<Self, crate::SysError> {
        Syscall::from_number(number).ok_or(crate::SysError::UnknownSyscall)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_pinned_and_round_trip() {
        assert_eq!((CAP_CALL, CAP_DROP, ENDPOINT_CREATE, ENDPOINT_RECEIVE, ENDPOINT_REPLY, EXIT, YIELD), (1, 2, 3, 4, 5, 6, 7));
        assert_eq!((ENDPOINT_REPLY_RECEIVE, BULK_REGISTER, ENDPOINT_RECEIVE_TIMEOUT), (8, 9, 10));
        for (i, s) in Syscall::ALL.iter().enumerate() {
            assert_eq!(s.number(), i as u64 + 1);
            assert_eq!(Syscall::try_from(s.number()), Ok(*s));
            assert!(s.argument_count() <= 6, "only six argument registers exist");
        }
        for bad in [0u64, 11, 100, u64::MAX] {
            assert_eq!(Syscall::try_from(bad), Err(crate::SysError::UnknownSyscall));
        }
        assert_eq!(Syscall::CapCall.name(), "cap_call");
    }
}
