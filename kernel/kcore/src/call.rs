//! What a capability call does, decided before a byte moves. The kernel's
//! call path (`proc::ipc`) asks these functions and then only carries out
//! the answer; the endpoint's own queue rules are [`crate::endpoint`].
//!
//! Rules:
//! 1. **Route.** A kernel object answers only its own interface
//!    (`UnknownInterface`). A receive handle answers the Endpoint interface
//!    and only `mint` and `badgeOf` (`UnknownMethod`). A client capability
//!    takes the call to the endpoint's server, whatever its interface (the
//!    server judges that).
//! 2. **Bulk buffer.** Flags 0 means no buffer, and then the length must be
//!    0. A buffer is at most [`MAX_BULK_BYTES`], lies in the user half
//!    without overflow, and does not overlap the IPC area (the kernel
//!    writes that area itself; a buffer there would let a server's answer
//!    land in the caller's messages). Every page of it must be mapped for
//!    the user, and writable when the callee may write it
//!    ([`BULK_WRITE`]): checked **at call time**, for kernel objects and
//!    servers alike, so a call never waits for an answer that its own
//!    buffer makes impossible to deliver.
//! 3. **Next.** After an endpoint call is accepted the caller blocks: it
//!    switches straight to the server when the server was waiting
//!    (delivery now), else it leaves the CPU to the scheduler (queued).
//! 4. **Failed replies.** A reply that cannot be delivered after its token
//!    was accepted (a bad server buffer, too much bulk data, a full client
//!    table) fails for both sides with the same error: the server's
//!    syscall returns it and the client wakes with it. Nobody is left
//!    waiting for an answer that will not come.

use crate::endpoint::CallOutcome;
use capos_abi::ipc::{AREA_BYTES, BULK_READ, BULK_WRITE, IPC_AREA_ADDR, MAX_BULK_BYTES};
use capos_abi::SysError;

/// First address above the user half (the canonical hole starts here).
pub const USER_END: u64 = 0x0000_8000_0000_0000;
/// The lowest page is never mapped (a null pointer is never a buffer).
const FIRST_USER: u64 = 4096;

/// The capability a call names, as far as routing cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    Kernel { interface: u64 },
    /// A receive handle of an endpoint.
    Receive,
    /// A client of an endpoint.
    Client,
}

/// Where a call goes (rule 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    Kernel,
    Mint,
    BadgeOf,
    Endpoint,
}

/// Rule 1.
pub fn route(held: Held, interface: u64, method: u16) -> Result<Route, SysError> {
    use capos_abi::interfaces::{endpoint_method, ENDPOINT};
    match held {
        Held::Kernel { interface: i } if i == interface => Ok(Route::Kernel),
        Held::Kernel { .. } => Err(SysError::UnknownInterface),
        Held::Receive if interface != ENDPOINT => Err(SysError::UnknownInterface),
        Held::Receive => match method {
            endpoint_method::MINT => Ok(Route::Mint),
            endpoint_method::BADGE_OF => Ok(Route::BadgeOf),
            _ => Err(SysError::UnknownMethod),
        },
        Held::Client => Ok(Route::Endpoint),
    }
}

/// A bulk buffer whose arithmetic is sound (rule 2); its pages are
/// checked against the caller's page tables by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkArg {
    pub addr: u64,
    pub len: u64,
    pub flags: u8,
}

impl BulkArg {
    /// Whether the callee may read it (data going out).
    pub fn readable(&self) -> bool {
        self.flags & BULK_READ != 0
    }

    /// Whether the callee may write it (data coming back): its pages must
    /// be writable.
    pub fn writable(&self) -> bool {
        self.flags & BULK_WRITE != 0
    }
}

/// Rule 2's arithmetic: `None` for no buffer.
pub fn bulk_arg(flags: u8, addr: u64, len: u64) -> Result<Option<BulkArg>, SysError> {
    if flags == 0 {
        return if len == 0 { Ok(None) } else { Err(SysError::InvalidArgument) };
    }
    if len > MAX_BULK_BYTES {
        return Err(SysError::InvalidArgument);
    }
    let end = addr.checked_add(len).ok_or(SysError::BadAddress)?;
    if end > USER_END || (len > 0 && addr < FIRST_USER) {
        return Err(SysError::BadAddress);
    }
    let area_end = IPC_AREA_ADDR + AREA_BYTES as u64;
    if len > 0 && addr < area_end && end > IPC_AREA_ADDR {
        return Err(SysError::BadAddress);
    }
    Ok(Some(BulkArg { addr, len, flags }))
}

/// What the caller does after its endpoint call was accepted (rule 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Run the server now: it was waiting and the call is delivered to it.
    SwitchTo(u32),
    /// Wait in the queue; the scheduler picks who runs.
    Block,
}

/// Rule 3.
pub fn next_after(outcome: CallOutcome, server: u32) -> Next {
    match outcome {
        CallOutcome::Deliver => Next::SwitchTo(server),
        CallOutcome::Queued => Next::Block,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::interfaces::{endpoint_method, ENDPOINT, FILE, PING};

    #[test]
    fn kernel_objects_answer_only_their_interface() {
        assert_eq!(route(Held::Kernel { interface: FILE }, FILE, 0), Ok(Route::Kernel));
        assert_eq!(route(Held::Kernel { interface: FILE }, PING, 0), Err(SysError::UnknownInterface));
        assert_eq!(route(Held::Kernel { interface: FILE }, ENDPOINT, endpoint_method::MINT), Err(SysError::UnknownInterface));
    }

    #[test]
    fn receive_handles_mint_and_tell_badges_and_nothing_else() {
        assert_eq!(route(Held::Receive, ENDPOINT, endpoint_method::MINT), Ok(Route::Mint));
        assert_eq!(route(Held::Receive, ENDPOINT, endpoint_method::BADGE_OF), Ok(Route::BadgeOf));
        assert_eq!(route(Held::Receive, ENDPOINT, 2), Err(SysError::UnknownMethod));
        assert_eq!(route(Held::Receive, ENDPOINT, u16::MAX), Err(SysError::UnknownMethod));
        assert_eq!(route(Held::Receive, FILE, endpoint_method::MINT), Err(SysError::UnknownInterface));
    }

    #[test]
    fn clients_reach_their_server_whatever_the_interface() {
        for i in [FILE, PING, ENDPOINT, 0, u64::MAX] {
            assert_eq!(route(Held::Client, i, 7), Ok(Route::Endpoint));
        }
    }

    #[test]
    fn bulk_buffers_are_checked_before_anything_moves() {
        assert_eq!(bulk_arg(0, 0, 0), Ok(None));
        assert_eq!(bulk_arg(0, 0x1000, 0), Ok(None), "no flags, no buffer, whatever the pointer");
        assert_eq!(bulk_arg(0, 0x1000, 1), Err(SysError::InvalidArgument));
        assert_eq!(bulk_arg(BULK_WRITE, 0x10_0000, MAX_BULK_BYTES + 1), Err(SysError::InvalidArgument));
        assert_eq!(bulk_arg(BULK_WRITE, u64::MAX - 10, 100), Err(SysError::BadAddress));
        assert_eq!(bulk_arg(BULK_WRITE, USER_END - 8, 16), Err(SysError::BadAddress));
        assert_eq!(bulk_arg(BULK_WRITE, 0xffff_8000_0000_0000, 16), Err(SysError::BadAddress));
        assert_eq!(bulk_arg(BULK_READ, 0, 16), Err(SysError::BadAddress), "null page");
        let ok = bulk_arg(BULK_WRITE, 0x10_0000, 4096).unwrap().unwrap();
        assert!(ok.writable() && !ok.readable());
        assert_eq!(bulk_arg(BULK_WRITE, USER_END - 16, 16).map(|b| b.is_some()), Ok(true), "the last user bytes");
    }

    #[test]
    fn no_bulk_buffer_may_touch_the_ipc_area() {
        let start = IPC_AREA_ADDR;
        let end = IPC_AREA_ADDR + AREA_BYTES as u64;
        for (addr, len) in [(start, 1), (end - 1, 1), (start - 8, 16), (end - 8, 16), (start + 4096 * 33, 4096), (start - 4096, 8192)] {
            assert_eq!(bulk_arg(BULK_WRITE, addr, len), Err(SysError::BadAddress), "{addr:#x}+{len}");
            assert_eq!(bulk_arg(BULK_READ, addr, len), Err(SysError::BadAddress), "{addr:#x}+{len}");
        }
        assert!(bulk_arg(BULK_WRITE, start - 16, 16).unwrap().is_some(), "just below");
        assert!(bulk_arg(BULK_WRITE, end, 16).unwrap().is_some(), "just above");
        assert_eq!(bulk_arg(BULK_WRITE, start, 0).map(|b| b.is_some()), Ok(true), "an empty buffer touches nothing");
    }

    #[test]
    fn a_delivered_call_switches_to_its_server() {
        assert_eq!(next_after(CallOutcome::Deliver, 9), Next::SwitchTo(9));
        assert_eq!(next_after(CallOutcome::Queued, 9), Next::Block);
    }
}
