//! Syscall error codes.
//!
//! A syscall returns its status in `rax`: 0 for success, otherwise one of the
//! [`SysError`] values below. These are failures of the *call mechanism* (a
//! bad handle, a bad pointer, a malformed message); a method that ran and
//! failed (a missing file, a read-only backer) answers successfully with an
//! `err` result carrying a `capos_capnp::Error` the client can match on.
//!
//! Values are part of the ABI: never renumber, only append.

use core::fmt;

/// Why a syscall failed. `#[repr(u64)]` so the value is what travels in `rax`.
#[repr(u64)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SysError {
    /// `rax` named no syscall.
    UnknownSyscall = 1,
    /// The handle names no capability of this process: its slot is empty or
    /// out of range, or the value is not a handle (generation 0). Handles
    /// are per process, so another process's handle number lands here or on
    /// [`SysError::StaleHandle`], never on another object.
    InvalidHandle = 2,
    /// The handle's slot now holds a different generation: the capability
    /// was dropped (and the slot maybe reused).
    StaleHandle = 3,
    /// A pointer/length pair is not inside the caller's user mappings
    /// (a kernel address, an unmapped page, a length that overflows).
    BadAddress = 4,
    /// A message is longer than `limits::MAX_MESSAGE_BYTES`.
    MessageTooLarge = 5,
    /// A message is not a valid capnp message within the traversal and
    /// nesting limits, or is not the envelope the call expects.
    MalformedMessage = 6,
    /// The capability does not implement the interface id in the `Call`.
    UnknownInterface = 7,
    /// The interface has no method with the ordinal in the `Call`.
    UnknownMethod = 8,
    /// The output buffer is too small; `rdx` holds the length needed.
    BufferTooSmall = 9,
    /// A message carries more than `limits::MAX_CAPS_PER_MESSAGE` handles.
    TooManyCaps = 10,
    /// The receiver's capability table has no free slot.
    CapTableFull = 11,
    /// The server behind an endpoint exited or dropped the endpoint.
    PeerGone = 12,
    /// `endpoint_receive` on a handle that is not an endpoint this process serves.
    NotAnEndpoint = 13,
    /// `endpoint_reply` with a token that is not an outstanding call of this server.
    InvalidReplyToken = 14,
    /// A scalar argument is out of range.
    InvalidArgument = 15,
    /// The kernel could not allocate memory for the request.
    OutOfMemory = 16,
    /// `endpoint_receive_timeout`: nothing arrived in the time given.
    TimedOut = 17,
}

impl SysError {
    /// Every code, in numeric order (for tests and for tools that list them).
    pub const ALL: [SysError; 17] = [
        SysError::UnknownSyscall,
        SysError::InvalidHandle,
        SysError::StaleHandle,
        SysError::BadAddress,
        SysError::MessageTooLarge,
        SysError::MalformedMessage,
        SysError::UnknownInterface,
        SysError::UnknownMethod,
        SysError::BufferTooSmall,
        SysError::TooManyCaps,
        SysError::CapTableFull,
        SysError::PeerGone,
        SysError::NotAnEndpoint,
        SysError::InvalidReplyToken,
        SysError::InvalidArgument,
        SysError::OutOfMemory,
        SysError::TimedOut,
    ];

    /// The value carried in `rax`.
    pub const fn as_u64(self) -> u64 {
        self as u64
    }

    /// The code for `value`, or `None` for 0 (success) and unknown values.
    pub fn from_u64(value: u64) -> Option<SysError> {
        SysError::ALL.iter().copied().find(|e| e.as_u64() == value)
    }

    /// A short stable name, used in logs.
    pub const fn name(self) -> &'static str {
        match self {
            SysError::UnknownSyscall => "unknown-syscall",
            SysError::InvalidHandle => "invalid-handle",
            SysError::StaleHandle => "stale-handle",
            SysError::BadAddress => "bad-address",
            SysError::MessageTooLarge => "message-too-large",
            SysError::MalformedMessage => "malformed-message",
            SysError::UnknownInterface => "unknown-interface",
            SysError::UnknownMethod => "unknown-method",
            SysError::BufferTooSmall => "buffer-too-small",
            SysError::TooManyCaps => "too-many-caps",
            SysError::CapTableFull => "cap-table-full",
            SysError::PeerGone => "peer-gone",
            SysError::NotAnEndpoint => "not-an-endpoint",
            SysError::InvalidReplyToken => "invalid-reply-token",
            SysError::InvalidArgument => "invalid-argument",
            SysError::OutOfMemory => "out-of-memory",
            SysError::TimedOut => "timed-out",
        }
    }
}

/// A status value that is neither 0 nor a known [`SysError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownStatus(pub u64);

impl TryFrom<u64> for SysError {
    type Error = UnknownStatus;
    fn try_from(value: u64) -> Result<Self, UnknownStatus> {
        SysError::from_u64(value).ok_or(UnknownStatus(value))
    }
}

impl From<SysError> for u64 {
    fn from(e: SysError) -> u64 {
        e.as_u64()
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.as_u64())
    }
}

/// What the syscall layer hands back in `(rax, rdx)` for `result`: `(0,
/// value)` on success, `(code, detail)` on failure (`detail` is the needed
/// length for [`SysError::BufferTooSmall`], else 0).
pub fn encode_status(result: Result<u64, (SysError, u64)>) -> (u64, u64) {
    match result {
        Ok(value) => (0, value),
        Err((e, detail)) => (e.as_u64(), detail),
    }
}

/// A failed syscall as seen by userspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyscallFailure {
    /// A known error and the `rdx` detail.
    Error(SysError, u64),
    /// A status this ABI version does not know (a newer kernel?).
    Unknown(u64),
}

/// Interpret `(rax, rdx)` after a syscall. Unknown non-zero statuses are
/// failures too, never successes.
pub fn decode_status(rax: u64, rdx: u64) -> Result<u64, SyscallFailure> {
    if rax == 0 {
        return Ok(rdx);
    }
    match SysError::from_u64(rax) {
        Some(e) => Err(SyscallFailure::Error(e, rdx)),
        None => Err(SyscallFailure::Unknown(rax)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pinned() {
        // The ABI: these numbers must never change.
        assert_eq!(SysError::UnknownSyscall as u64, 1);
        assert_eq!(SysError::InvalidHandle as u64, 2);
        assert_eq!(SysError::StaleHandle as u64, 3);
        assert_eq!(SysError::BadAddress as u64, 4);
        assert_eq!(SysError::MessageTooLarge as u64, 5);
        assert_eq!(SysError::MalformedMessage as u64, 6);
        assert_eq!(SysError::UnknownInterface as u64, 7);
        assert_eq!(SysError::UnknownMethod as u64, 8);
        assert_eq!(SysError::BufferTooSmall as u64, 9);
        assert_eq!(SysError::TooManyCaps as u64, 10);
        assert_eq!(SysError::CapTableFull as u64, 11);
        assert_eq!(SysError::PeerGone as u64, 12);
        assert_eq!(SysError::NotAnEndpoint as u64, 13);
        assert_eq!(SysError::InvalidReplyToken as u64, 14);
        assert_eq!(SysError::InvalidArgument as u64, 15);
        assert_eq!(SysError::OutOfMemory as u64, 16);
    }

    #[test]
    fn conversion_round_trips_and_rejects_unknown_values() {
        for (i, e) in SysError::ALL.iter().enumerate() {
            assert_eq!(e.as_u64(), i as u64 + 1, "ALL must be in numeric order without gaps");
            assert_eq!(SysError::try_from(e.as_u64()), Ok(*e));
            assert_eq!(u64::from(*e), e.as_u64());
        }
        for bad in [0u64, 18, 19, 255, 1 << 32, u64::MAX] {
            assert_eq!(SysError::try_from(bad), Err(UnknownStatus(bad)));
        }
        let names: std::collections::HashSet<_> = SysError::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.len(), SysError::ALL.len(), "names must be distinct");
    }

    #[test]
    fn status_encoding() {
        assert_eq!(encode_status(Ok(42)), (0, 42));
        assert_eq!(encode_status(Err((SysError::BufferTooSmall, 4096))), (9, 4096));
        assert_eq!(decode_status(0, 7), Ok(7));
        assert_eq!(decode_status(9, 4096), Err(SyscallFailure::Error(SysError::BufferTooSmall, 4096)));
        assert_eq!(decode_status(999, 0), Err(SyscallFailure::Unknown(999)));
        for e in SysError::ALL {
            let (rax, rdx) = encode_status(Err((e, 3)));
            assert_eq!(decode_status(rax, rdx), Err(SyscallFailure::Error(e, 3)));
        }
    }
}
