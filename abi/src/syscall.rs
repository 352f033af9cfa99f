//! Syscall numbers and the calling convention.
//!
//! # Calling convention (x86_64, `syscall` instruction)
//!
//! | register | on entry                 | on return                              |
//! |----------|--------------------------|----------------------------------------|
//! | `rax`    | syscall number           | status: 0 = success, else a [`SysError`](crate::SysError) |
//! | `rdi`    | argument 0               | preserved                              |
//! | `rsi`    | argument 1               | preserved                              |
//! | `rdx`    | argument 2               | value: the call's result (a length, a handle), or for `BufferTooSmall` the length needed; 0 otherwise |
//! | `r10`    | argument 3               | preserved                              |
//! | `r8`     | argument 4               | preserved                              |
//! | `r9`     | argument 5               | preserved                              |
//! | `rcx`    | (clobbered by `syscall`: return `rip`) | clobbered                |
//! | `r11`    | (clobbered by `syscall`: `rflags`)     | clobbered                |
//!
//! Argument 3 is in `r10`, not `rcx`, because the `syscall` instruction
//! overwrites `rcx` (as in the Linux convention). Every other register,
//! including `rsp`, `rbp`, `rbx`, `r12`–`r15` and the SSE state, is preserved.
//! Pointer arguments are user virtual addresses; the kernel checks every
//! `(pointer, length)` pair against the caller's mappings (no kernel address,
//! no overflow) before touching it and fails with `BadAddress` otherwise.
//! Messages are serialized capnp messages in the standard framing (segment
//! table first), at most [`MAX_MESSAGE_BYTES`](crate::limits::MAX_MESSAGE_BYTES).
//!
//! # Process entry
//!
//! A new process starts at its ELF entry point with `rsp` 16-byte aligned at
//! the top of its stack, `rdi` = address and `rsi` = length of its
//! `StartInfo` message (mapped read-only; see `schema/capos.capnp`), and every
//! other general register zero. The process ends with [`EXIT`]; returning
//! from the entry point is a fault.
//!
//! # The calls
//!
//! | nr | name               | arguments                                   | `rdx` on success |
//! |----|--------------------|---------------------------------------------|------------------|
//! | 1  | [`CAP_CALL`]         | handle, request ptr, request len, reply ptr, reply capacity | reply length |
//! | 2  | [`CAP_DROP`]         | handle                                      | 0 |
//! | 3  | [`ENDPOINT_CREATE`]  | —                                           | new endpoint handle |
//! | 4  | [`ENDPOINT_RECEIVE`] | endpoint handle, buffer ptr, buffer capacity | message length |
//! | 5  | [`ENDPOINT_REPLY`]   | reply token, reply ptr, reply len           | 0 |
//! | 6  | [`EXIT`]             | status                                      | does not return |
//! | 7  | [`YIELD`]            | —                                           | 0 |
//!
//! Number 0 is deliberately unused so that a zeroed `rax` is `UnknownSyscall`.
//! There is no ambient "debug print": a process logs through the `Console`
//! capability it was granted, and the kernel logs every exit and fault itself.

/// Call a method on a capability. The request is a `Call` message; on
/// success the reply buffer holds a `Return` message whose `caps` are the
/// handles just installed in the caller's table. Blocks until the object
/// (the kernel, or the server behind an endpoint) answers. If the reply does
/// not fit, the call has still taken effect, the reply is discarded (its
/// capabilities are never installed) and the status is `BufferTooSmall` with
/// the reply length in `rdx`; a reply buffer of `MAX_MESSAGE_BYTES` never
/// sees this.
pub const CAP_CALL: u64 = 1;
/// Drop a handle. The slot's generation is bumped, so the handle (and every
/// copy of its value) is stale from now on. Dropping a handle that was
/// already dropped fails with `StaleHandle`.
pub const CAP_DROP: u64 = 2;
/// Create an endpoint served by the caller. The handle returned is the
/// receive side: `endpoint_receive` on it takes calls, and a `cap_call` on it
/// reaches the kernel's `Endpoint` interface (`mint` client capabilities).
pub const ENDPOINT_CREATE: u64 = 3;
/// Wait for the next call on an endpoint. The buffer receives an
/// `IncomingCall` message (reply token, badge, interface, method, params and
/// the transferred capabilities, already installed in the server's table).
/// If it does not fit, the call stays queued and the status is
/// `BufferTooSmall` with the length needed in `rdx`.
pub const ENDPOINT_RECEIVE: u64 = 4;
/// Answer the call named by a reply token with a `Return` message; its
/// `caps` are handles of the server, copied into the caller's table. Each
/// token answers exactly once.
pub const ENDPOINT_REPLY: u64 = 5;
/// End the calling process with a status (0 = success). Its capabilities are
/// dropped; callers blocked on its endpoints fail with `PeerGone`.
pub const EXIT: u64 = 6;
/// Give up the rest of the time slice.
pub const YIELD: u64 = 7;

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
}

impl Syscall {
    /// Every syscall, in numeric order.
    pub const ALL: [Syscall; 7] = [
        Syscall::CapCall,
        Syscall::CapDrop,
        Syscall::EndpointCreate,
        Syscall::EndpointReceive,
        Syscall::EndpointReply,
        Syscall::Exit,
        Syscall::Yield,
    ];

    /// The number carried in `rax`.
    pub const fn number(self) -> u64 {
        self as u64
    }

    /// The syscall for `rax`, or `None`.
    pub fn from_number(number: u64) -> Option<Syscall> {
        Syscall::ALL.iter().copied().find(|s| s.number() == number)
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
        }
    }

    /// How many of the argument registers the call reads.
    pub const fn argument_count(self) -> usize {
        match self {
            Syscall::CapCall => 5,
            Syscall::CapDrop => 1,
            Syscall::EndpointCreate => 0,
            Syscall::EndpointReceive => 3,
            Syscall::EndpointReply => 3,
            Syscall::Exit => 1,
            Syscall::Yield => 0,
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
        for (i, s) in Syscall::ALL.iter().enumerate() {
            assert_eq!(s.number(), i as u64 + 1);
            assert_eq!(Syscall::try_from(s.number()), Ok(*s));
            assert!(s.argument_count() <= 6, "only six argument registers exist");
        }
        for bad in [0u64, 8, 100, u64::MAX] {
            assert_eq!(Syscall::try_from(bad), Err(crate::SysError::UnknownSyscall));
        }
        assert_eq!(Syscall::CapCall.name(), "cap_call");
    }
}
