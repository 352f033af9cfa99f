//! What kernel objects may ask of the process layer, and nothing more.
//!
//! Kernel objects answer calls; a few must also wait or wake: the console
//! completes a `readLine` it parked, an endpoint's last receive handle
//! fails the calls queued on it, a dropped client capability wakes a
//! server to tell it, `ProcessControl` kills and reads a manifest
//! process's status. The process layer (`proc`) implements [`Waiters`]
//! and installs it once at boot; `cap/` never imports `proc/`, so process
//! state has one owner and the two rooms have no import cycle.
//!
//! Several of these run where the process table may be locked (a
//! capability can drop anywhere), so the implementation defers what needs
//! the table until the kernel is about to return to user mode.

use super::Reply;
use alloc::string::String;
use capos_abi::SysError;

/// A manifest process as `ProcessControl.status` reports it.
#[derive(Clone, Copy, Debug)]
pub struct ProcessStatus {
    pub pid: u32,
    pub running: bool,
    pub restarts: u32,
}

/// How a parked call is completed: the object builds its results.
pub type Answer<'a> = &'a mut dyn FnMut(&mut Reply) -> Result<(), SysError>;

pub trait Waiters: Sync {
    /// Complete the call `pid` is parked in (`Reply::park`): `answer`
    /// builds its results in the caller's receive buffer, then it runs
    /// again. False when `pid` is not parked (it died meanwhile).
    fn complete_parked(&self, pid: u32, answer: Answer) -> bool;
    /// `server`'s endpoint closed with these clients' calls queued: they
    /// fail with `PeerGone` before the kernel returns to user mode.
    fn orphaned(&self, server: u32, clients: &mut dyn Iterator<Item = u32>);
    /// `server` waits in receive on an endpoint that has a notification
    /// for it now: it receives again before the kernel returns to user mode.
    fn kick_receiver(&self, server: u32);
    /// End `pid` as if it faulted; returns once it has ended (and its
    /// successor, if it is restarted, serves). The caller holds no lock
    /// (the object runs unlocked: `KernelObject::runs_unlocked`).
    fn kill(&self, pid: u32, reason: String);
    /// The manifest process `name`, if there is one.
    fn status(&self, name: &str) -> Option<ProcessStatus>;
}

static WAITERS: spin::Once<&'static dyn Waiters> = spin::Once::new();

/// Install the process layer (once, at boot, before any process runs).
pub fn install(w: &'static dyn Waiters) {
    WAITERS.call_once(|| w);
}

/// The process layer.
pub fn waiters() -> &'static dyn Waiters {
    *WAITERS.get().expect("the process layer installs its waiters before any capability is used")
}
