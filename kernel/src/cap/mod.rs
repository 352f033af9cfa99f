//! Capability objects.
//!
//! A kernel object answers with [`KernelObject::call`]: it reads the params
//! in place from the caller's send buffer ([`CallMessage`]), builds its
//! results in place in the caller's receive buffer ([`Reply::results`]),
//! may hand capabilities back ([`Reply::add_cap`]) and may read or fill
//! the caller's bulk buffer ([`Reply::bulk`]). Nothing on that path
//! allocates unless the object itself does.
//!
//! A process's capability table (`kcore::cap_table`, generational handles)
//! holds [`Cap`]s. Kernel-implemented objects answer `cap_call` directly;
//! endpoint capabilities route the call to the server process that owns
//! the endpoint. To a caller the two look the same.

pub mod block;
pub mod clock;
pub mod console;
pub mod control;
pub mod endpoint;
pub mod fs;
pub mod nic;
pub mod ping;
pub mod read_only;
pub mod refusing;
pub mod sources;
pub mod store;
pub mod waiters;

use crate::arch::x86_64::trap::{interrupt_window, zero_with_windows};
use crate::mm::ipc_area::IpcView;
use crate::mm::address_space::AddressSpace;
use crate::mm::usermem::UserSlice;
use alloc::sync::Arc;
use alloc::vec::Vec;
use capnp::traits::Owned;
use capos_abi::ipc::{BULK_READ, BULK_WRITE};
use capos_abi::limits::MAX_CAPS_PER_MESSAGE;
use capos_abi::message::{build_flat, clear};
use capos_abi::small_struct;
use capos_abi::SysError;

pub use capos_abi::message::CallMessage;

/// Up to [`MAX_CAPS_PER_MESSAGE`] capabilities in a fixed array: what a
/// call transfers, or what a reply hands back. No allocation, and only the
/// slots in use are initialised or dropped (`arrayvec`), so an empty list,
/// the common case, costs a word; the call path keeps these in place and
/// passes them by reference.
#[derive(Default)]
pub struct CapList(arrayvec::ArrayVec<Cap, MAX_CAPS_PER_MESSAGE>);

impl CapList {
    pub const fn new() -> CapList {
        CapList(arrayvec::ArrayVec::new_const())
    }

    /// Append; its slot (the index a `CapSlot` field names).
    pub fn push(&mut self, cap: Cap) -> Result<u32, SysError> {
        self.0.try_push(cap).map_err(|_| SysError::TooManyCaps)?;
        Ok(self.0.len() as u32 - 1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, slot: u32) -> Option<&Cap> {
        self.0.get(slot as usize)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Cap> {
        self.0.iter_mut()
    }

    /// Drop every capability.
    pub fn clear(&mut self) {
        self.0.clear();
    }

    /// Take every capability out, in order.
    pub fn drain(&mut self) -> impl Iterator<Item = Cap> + '_ {
        self.0.drain(..)
    }
}

/// Who is calling, and the capabilities the call transfers (a `CapSlot`
/// field of the params indexes `caps`).
pub struct Caller<'a> {
    pub pid: u32,
    pub name: &'a str,
    pub caps: &'a CapList,
}

/// The caller's bulk buffer, as the object may use it.
pub struct Bulk<'a> {
    space: &'a AddressSpace,
    slice: UserSlice,
    flags: u8,
}

impl<'a> Bulk<'a> {
    pub fn new(space: &'a AddressSpace, slice: UserSlice, flags: u8) -> Bulk<'a> {
        Bulk { space, slice, flags }
    }

    pub fn len(&self) -> usize {
        self.slice.len()
    }

    /// Whether the caller lets the object read it (data going out).
    pub fn readable(&self) -> bool {
        self.flags & BULK_READ != 0
    }

    /// Whether the caller lets the object write it (data coming back).
    pub fn writable(&self) -> bool {
        self.flags & BULK_WRITE != 0
    }

    /// Copy the buffer's bytes out (refused unless readable).
    pub fn read(&self) -> Result<Vec<u8>, SysError> {
        if !self.readable() {
            return Err(SysError::InvalidArgument);
        }
        self.slice.read(self.space)
    }

    /// Write `data` at the start of the buffer (refused unless writable).
    pub fn write(&self, data: &[u8]) -> Result<(), SysError> {
        if !self.writable() {
            return Err(SysError::InvalidArgument);
        }
        self.slice.write(self.space, data)
    }

    /// Run `f` over the whole buffer in place, if it is readable and its
    /// pages are physically contiguous (`UserSlice::with_contiguous`);
    /// `Ok(None)` otherwise.
    pub fn with_in_place_read<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<Option<R>, SysError> {
        if !self.readable() {
            return Ok(None);
        }
        self.slice.with_contiguous(self.space, self.slice.len(), f)
    }

    /// Run `f` over the buffer's first `len` bytes in place, if its pages
    /// are physically contiguous (`UserSlice::with_contiguous_mut`);
    /// `Ok(None)` when they are not, or the buffer is not writable.
    pub fn with_in_place<R>(&self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Result<Option<R>, SysError> {
        if !self.writable() {
            return Ok(None);
        }
        self.slice.with_contiguous_mut(self.space, len, f)
    }
}

/// What a kernel object answers: results built in place in the caller's
/// receive buffer, the capabilities to hand back, and how many bulk bytes
/// it produced. A plain value: nothing boxed, nothing allocated.
pub struct Reply<'a> {
    recv: IpcView,
    dirty: &'a mut usize,
    len: usize,
    caps: &'a mut CapList,
    bulk: Option<Bulk<'a>>,
    bulk_out: u64,
    parked: bool,
}

impl<'a> Reply<'a> {
    /// A reply into `recv`, whose first `*dirty` bytes may hold an older
    /// message (they are cleared before building); returned capabilities
    /// gather in `caps` (empty; the dispatcher installs them).
    pub fn new(recv: IpcView, dirty: &'a mut usize, caps: &'a mut CapList, bulk: Option<Bulk<'a>>) -> Reply<'a> {
        Reply { recv, dirty, len: 0, caps, bulk, bulk_out: 0, parked: false }
    }

    /// Answer later: the caller sleeps (`State::AwaitingInput`) until the
    /// object writes its results and wakes it (`Console.readLine`). Only
    /// for a call with no capabilities and no bulk data to return.
    pub fn park(&mut self) {
        self.parked = true;
    }

    pub fn parked(&self) -> bool {
        self.parked
    }

    /// Build the results struct `T` (once; a second call replaces the first).
    pub fn results<T: Owned, R>(&mut self, fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<R>) -> Result<R, SysError> {
        let buf = self.recv.recv_mut();
        clear(buf, *self.dirty);
        *self.dirty = 0;
        let (n, r) = build_flat::<T, R>(buf, fill).map_err(|e| e.sys_error())?;
        *self.dirty = n;
        self.len = n;
        Ok(r)
    }

    /// Results that are a tiny struct (`capos_abi::small_struct`): written
    /// whole, no builder.
    pub fn small_results(&mut self, data: &[u64], ptrs: u16) -> Result<(), SysError> {
        let n = small_struct::write(self.recv.recv_mut(), data, ptrs).ok_or(SysError::MessageTooLarge)?;
        *self.dirty = (*self.dirty).max(n);
        self.len = n;
        Ok(())
    }

    /// Hand a capability back; its slot for a `CapSlot` field.
    pub fn add_cap(&mut self, cap: Cap) -> Result<u32, SysError> {
        self.caps.push(cap)
    }

    pub fn caps_mut(&mut self) -> &mut CapList {
        self.caps
    }

    /// The caller's bulk buffer, if the call named one.
    pub fn bulk(&self) -> Option<&Bulk<'a>> {
        self.bulk.as_ref()
    }

    /// Record that `n` bytes of the bulk buffer now hold results.
    pub fn set_bulk_out(&mut self, n: u64) {
        self.bulk_out = n;
    }

    /// (results length, bulk bytes out), for the dispatcher, which then
    /// installs [`caps_mut`](Self::caps_mut) in the caller's table.
    pub fn finish(&self) -> (usize, u64) {
        (self.len, self.bulk_out)
    }
}

pub trait KernelObject: Send + Sync {
    /// The capnp interface id this object implements.
    fn interface_id(&self) -> u64;
    fn kind(&self) -> &'static str;
    /// Answer a call whose interface id already matched, building its
    /// results in `reply`.
    fn call(&self, caller: &Caller, call: &CallMessage, reply: &mut Reply) -> Result<(), SysError>;

    /// The tiny-message fast path: a call with no capabilities and no bulk
    /// buffer whose params the object reads with `capos_abi::small_struct`
    /// and whose results it writes the same way into `results` (the
    /// caller's receive buffer). Returns the results' length, or `None` to
    /// take the general path ([`call`](Self::call)), which must give the
    /// same answer. Most objects keep the default.
    fn call_tiny(&self, _method: u16, _params: &[u8], _results: &mut [u8]) -> Option<usize> {
        None
    }

    /// Whether the call path runs [`call`](Self::call) with the process
    /// table unlocked (interrupts still off:
    /// docs/interrupts-off.md): objects whose calls wait for a device
    /// (storage) or move many bytes say yes, so a read on one mount stops
    /// no other call, on this CPU's next process or on another CPU. Such
    /// a call never parks (`Reply::park`: its
    /// completion could race the unlocked call) and must not touch the
    /// process table but through `waiters`. The others keep the default:
    /// their calls are short and may park.
    fn runs_unlocked(&self) -> bool {
        false
    }

    /// The object itself, for a method that must know what kind of object
    /// a transferred capability is (`Directory.rename` checks its target
    /// is a directory of the same filesystem). Wrappers keep the default:
    /// a wrapped object is never taken for the object inside.
    fn as_any(&self) -> Option<&dyn core::any::Any> {
        None
    }
}

/// A kernel object's [`capos_serve::Responder`]: results in place in
/// the caller's receive buffer, capabilities into the reply's list, bulk
/// data through the caller's bulk buffer, transferred capabilities from
/// the call.
pub struct KernelResponder<'r, 'a> {
    reply: &'r mut Reply<'a>,
    transferred: &'r CapList,
}

impl<'r, 'a> KernelResponder<'r, 'a> {
    pub fn new(caller: &'r Caller<'r>, reply: &'r mut Reply<'a>) -> KernelResponder<'r, 'a> {
        KernelResponder { reply, transferred: caller.caps }
    }
}

impl capos_serve::Responder for KernelResponder<'_, '_> {
    type Cap = Cap;

    fn pause(&mut self) {
        interrupt_window();
    }

    fn results<T: Owned>(&mut self, fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<(), SysError> {
        self.reply.results::<T, ()>(fill)
    }

    fn add_cap(&mut self, cap: Cap) -> Result<u32, SysError> {
        self.reply.add_cap(cap)
    }

    fn transferred(&self, slot: u32) -> Option<&Cap> {
        self.transferred.get(slot)
    }

    fn bulk_in(&self) -> Result<Option<Vec<u8>>, SysError> {
        match self.reply.bulk() {
            Some(b) if b.readable() => b.read().map(Some),
            _ => Ok(None),
        }
    }

    fn bulk_in_len(&self) -> Option<usize> {
        self.reply.bulk().filter(|b| b.readable()).map(|b| b.len())
    }

    /// The caller's pages where they lie when physically contiguous (the
    /// engine and the device's DMA read them: no kernel buffer, no copy);
    /// a copy otherwise.
    fn bulk_in_with<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Result<T, SysError> {
        let mut f = Some(f);
        if let Some(b) = self.reply.bulk() {
            if let Some(t) = b.with_in_place_read(|data| (f.take().expect("run once"))(data))? {
                return Ok(t);
            }
        }
        Ok((f.take().expect("not run"))(&self.bulk_in()?.unwrap_or_default()))
    }

    fn bulk_out_capacity(&self) -> Option<usize> {
        self.reply.bulk().filter(|b| b.writable()).map(|b| b.len())
    }

    fn bulk_out(&mut self, data: &[u8]) -> Result<(), SysError> {
        match self.reply.bulk() {
            Some(b) if b.writable() && data.len() <= b.len() => b.write(data)?,
            _ => return Err(SysError::InvalidArgument),
        }
        self.reply.set_bulk_out(data.len() as u64);
        Ok(())
    }

    /// In the caller's own pages when they are physically contiguous (a
    /// device's DMA and the engine's bytes land there: no kernel buffer,
    /// no copy); through a staging buffer otherwise. In place, the bytes
    /// past what `fill` reports, and all of them on an error, are zeroed:
    /// whatever an engine used as scratch (the rest of a block, a failed
    /// read's partial data) never stays in the caller's memory, as it
    /// never left the staging buffer.
    fn bulk_out_with<E>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Result<Result<usize, E>, SysError> {
        let Some(b) = self.reply.bulk().filter(|b| b.writable() && len <= b.len()) else {
            return Err(SysError::InvalidArgument);
        };
        let mut fill = Some(fill);
        let done = b.with_in_place(len, |buf| {
            let fill = fill.take().expect("run once");
            match fill(buf) {
                Ok(n) => {
                    let n = n.min(buf.len());
                    zero_with_windows(&mut buf[n..]);
                    Ok(n)
                }
                Err(e) => {
                    zero_with_windows(buf);
                    Err(e)
                }
            }
        })?;
        match done {
            Some(Ok(n)) => {
                self.reply.set_bulk_out(n as u64);
                Ok(Ok(n))
            }
            Some(Err(e)) => Ok(Err(e)),
            None => capos_serve::staged_bulk_out_with(self, len, fill.take().expect("not run")),
        }
    }
}

/// A kernel object as a capability holds it: the object and its interface
/// id, read once when the capability is made, so the call path checks the
/// interface without a virtual call.
#[derive(Clone)]
pub struct KernelCap {
    obj: Arc<dyn KernelObject>,
    interface_id: u64,
}

impl KernelCap {
    pub fn new(obj: Arc<dyn KernelObject>) -> KernelCap {
        let interface_id = obj.interface_id();
        KernelCap { obj, interface_id }
    }

    pub fn interface_id(&self) -> u64 {
        self.interface_id
    }

    pub fn object(&self) -> &Arc<dyn KernelObject> {
        &self.obj
    }
}

impl core::ops::Deref for KernelCap {
    type Target = dyn KernelObject;
    fn deref(&self) -> &Self::Target {
        &*self.obj
    }
}

#[derive(Clone)]
pub enum Cap {
    Kernel(KernelCap),
    /// A client of a userspace-served endpoint; the badge tells the server
    /// which client (or session) is calling. Every copy shares one
    /// [`endpoint::Client`]; when the last goes, a client minted with
    /// notification tells its server (`endpoint::Client`'s `Drop`).
    EndpointClient(Arc<endpoint::Client>),
    /// The receive side of an endpoint (its server holds it); the last
    /// copy's drop closes the endpoint (`endpoint::ServerHandle`).
    EndpointServer(Arc<endpoint::ServerHandle>),
}

impl Cap {
    /// A capability to a kernel object.
    pub fn kernel(obj: Arc<dyn KernelObject>) -> Cap {
        Cap::Kernel(KernelCap::new(obj))
    }
}
