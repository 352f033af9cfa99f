//! Typed clients and the server loop: a demo calls
//! `console.write_line("...")` or `ping.ping(7)`, not raw syscalls.
//!
//! [`call`] is the one generic client path: params built in place in the
//! send buffer, results read in place from the receive buffer, no heap
//! allocation. [`Server`] is the one server path: receive, and
//! reply-and-receive in one syscall.

use crate::ipc;
use crate::syscall::{self, Failure};
use capnp::traits::Owned;
use capos_abi::capos_capnp::{cap_result, console, data_result, endpoint, ping, text_result, u_int64_result, void_result};
use capos_abi::helpers::{self, check_console_line, CapError};
use capos_abi::interfaces::{self, ping_method};
use capos_abi::ipc::{CallWord, Received, ReplyWord, BULK_READ, BULK_WRITE};
use capos_abi::limits::MAX_CAPS_PER_MESSAGE;
use capos_abi::message::{build_flat, clear, read_flat, FlatReader, MessageError};
use capos_abi::small_struct::{self, u64_result};
use capos_abi::{Handle, SysError};

/// A call failed at the syscall level, or the object answered with an error.
#[derive(Debug)]
pub enum CallError {
    Sys(Failure),
    Message(MessageError),
    Object(CapError),
}

impl From<Failure> for CallError {
    fn from(f: Failure) -> Self {
        CallError::Sys(f)
    }
}
impl From<MessageError> for CallError {
    fn from(e: MessageError) -> Self {
        CallError::Message(e)
    }
}
impl From<capnp::Error> for CallError {
    fn from(e: capnp::Error) -> Self {
        CallError::Message(MessageError::from(e))
    }
}

impl CallError {
    pub fn sys(&self) -> Option<SysError> {
        match self {
            CallError::Sys(f) => f.error,
            _ => None,
        }
    }

    /// The object's error code, when the object answered with an error.
    pub fn code(&self) -> Option<capos_abi::capos_capnp::ErrorCode> {
        match self {
            CallError::Object(e) => Some(e.code),
            _ => None,
        }
    }
}

/// A bulk buffer beside a call: the object may read it, write it, or both.
#[derive(Clone, Copy)]
pub struct BulkArg {
    ptr: u64,
    len: u64,
    flags: u8,
}

impl BulkArg {
    pub const NONE: BulkArg = BulkArg { ptr: 0, len: 0, flags: 0 };
    /// Data going out (the object reads it).
    pub fn out(data: &[u8]) -> BulkArg {
        BulkArg { ptr: data.as_ptr() as u64, len: data.len() as u64, flags: BULK_READ }
    }
    /// Room for data coming back (the object writes it).
    pub fn into(buf: &mut [u8]) -> BulkArg {
        BulkArg { ptr: buf.as_mut_ptr() as u64, len: buf.len() as u64, flags: BULK_WRITE }
    }
    /// Both: the object reads it and may write its answer over it.
    pub fn both(buf: &mut [u8]) -> BulkArg {
        BulkArg { ptr: buf.as_mut_ptr() as u64, len: buf.len() as u64, flags: BULK_READ | BULK_WRITE }
    }
}

/// What came back: results read in place, the capabilities installed for
/// us, and the bulk bytes written into our buffer.
pub struct Results {
    reader: FlatReader<'static>,
    caps: &'static [Handle],
    pub bulk: u64,
}

impl Results {
    pub fn get<T: Owned>(&self) -> Result<T::Reader<'_>, CallError> {
        Ok(self.reader.get_root::<T::Reader<'_>>()?)
    }
    pub fn caps(&self) -> &[Handle] {
        self.caps
    }
}

/// Call `method` of `interface_id` on `handle`: `fill` writes the params
/// (in place), `caps` are transferred, `bulk` rides beside, and `read`
/// decodes the results before anything else can overwrite them.
pub fn call<P: Owned, R>(
    handle: Handle,
    interface_id: u64,
    method: u16,
    caps: &[Handle],
    bulk: BulkArg,
    fill: impl FnOnce(P::Builder<'_>) -> capnp::Result<()>,
    read: impl FnOnce(&Results) -> Result<R, CallError>,
) -> Result<R, CallError> {
    let mut send = ipc::send_buffer();
    let (len, ()) = build_flat::<P, ()>(&mut send, fill)?;
    let r = send_built(handle, interface_id, method, caps, bulk, len);
    clear(&mut send, len);
    drop(send);
    read(&r?)
}

/// Like [`call`] for a method without params: nothing is built or sent.
pub fn call_no_params<R>(
    handle: Handle,
    interface_id: u64,
    method: u16,
    caps: &[Handle],
    bulk: BulkArg,
    read: impl FnOnce(&Results) -> Result<R, CallError>,
) -> Result<R, CallError> {
    read(&send_built(handle, interface_id, method, caps, bulk, 0)?)
}

fn send_built(handle: Handle, interface_id: u64, method: u16, caps: &[Handle], bulk: BulkArg, len: usize) -> Result<Results, CallError> {
    if caps.len() > MAX_CAPS_PER_MESSAGE {
        return Err(CallError::Sys(Failure { error: Some(SysError::TooManyCaps), detail: 0 }));
    }
    if !caps.is_empty() {
        ipc::set_caps_out(caps);
    }
    let word = CallWord { method, caps: caps.len() as u8, bulk: bulk.flags, len: len as u32 };
    let (reply, bulk_out) = syscall::cap_call(handle, interface_id, word, (bulk.ptr, bulk.len))?;
    let reader = read_flat(ipc::received(reply.len as usize))?;
    Ok(Results { reader, caps: ipc::caps_in(reply.caps), bulk: bulk_out })
}

/// A `UInt64Result`: the tiny-struct fast path for `ok`, the general
/// reader for anything else (an `err` carries a pointer).
#[inline(always)]
fn read_u64_results(bytes: &[u8]) -> Result<u64, CallError> {
    if let Some(v) = small_struct::read_as::<{ u64_result::DATA_WORDS }, { u64_result::PTRS as usize }>(bytes).as_ref().and_then(u64_result::read_ok) {
        return Ok(v);
    }
    read_u64_results_general(bytes)
}

#[cold]
#[inline(never)]
fn read_u64_results_general(bytes: &[u8]) -> Result<u64, CallError> {
    object(helpers::read_u64(read_flat(bytes)?.get_root::<u_int64_result::Reader>()?))
}

pub(crate) fn object<T>(r: Result<Result<T, CapError>, MessageError>) -> Result<T, CallError> {
    r?.map_err(CallError::Object)
}

#[derive(Clone, Copy, Debug)]
pub struct Console(pub Handle);

impl Console {
    pub fn write_line(&self, line: &str) -> Result<(), CallError> {
        check_console_line(line)?;
        call::<console::write_line_params::Owned, _>(
            self.0,
            interfaces::CONSOLE,
            0,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_line(line);
                Ok(())
            },
            |r| object(helpers::read_void(r.get::<void_result::Owned>()?)),
        )
    }

    /// The next line typed on the serial console (without its terminator;
    /// printable ASCII, at most `MAX_CONSOLE_LINE_BYTES`). Sleeps until
    /// the line is complete; `busy` when another process is reading.
    pub fn read_line(&self) -> Result<alloc::string::String, CallError> {
        call_no_params(self.0, interfaces::CONSOLE, interfaces::console_method::READ_LINE, &[], BulkArg::NONE, |r| {
            object(helpers::read_text(r.get::<text_result::Owned>()?))
        })
    }
}

/// The kernel's wall clock (`kernel:clock`).
#[derive(Clone, Copy, Debug)]
pub struct Clock(pub Handle);

impl Clock {
    /// Nanoseconds since 1970-01-01 UTC (`unsupported` without a clock).
    pub fn now(&self) -> Result<u64, CallError> {
        call_no_params(self.0, interfaces::CLOCK, interfaces::clock_method::NOW, &[], BulkArg::NONE, |r| object(helpers::read_u64(r.get::<u_int64_result::Owned>()?)))
    }
}

#[derive(Clone, Copy, Debug)]
pub struct PingClient(pub Handle);

impl PingClient {
    /// The null call: answers `value` unchanged. Params and results are
    /// tiny structs, so both take `small_struct`'s fast path (an `err`
    /// result, or results from a writer that lays them out differently,
    /// take the general reader).
    #[inline]
    pub fn ping(&self, value: u64) -> Result<u64, CallError> {
        let len = small_struct::write(&mut ipc::send_buffer_raw(), &[value], 0).unwrap_or(0);
        ipc::send_dirty(len);
        let word = CallWord { method: ping_method::PING, caps: 0, bulk: 0, len: len as u32 };
        let r = syscall::cap_call(self.0, interfaces::PING, word, (0, 0));
        read_u64_results(ipc::received(r?.0.len as usize))
    }

    /// A fresh Ping capability from the same server (a capability passed in
    /// a result).
    pub fn session(&self) -> Result<PingClient, CallError> {
        call_no_params(self.0, interfaces::PING, ping_method::SESSION, &[], BulkArg::NONE, |r| {
            object(helpers::read_cap(r.get::<cap_result::Owned>()?, r.caps())).map(PingClient)
        })
    }

    /// `ping` with capabilities transferred along (the server gets them).
    pub fn ping_with_caps(&self, value: u64, caps: &[Handle]) -> Result<u64, CallError> {
        call::<ping::ping_params::Owned, _>(
            self.0,
            interfaces::PING,
            ping_method::PING,
            caps,
            BulkArg::NONE,
            |mut p| {
                p.set_value(value);
                Ok(())
            },
            |r| object(helpers::read_u64(r.get::<u_int64_result::Owned>()?)),
        )
    }

    /// Echo through the capnp message (params and results both carry it).
    pub fn echo(&self, data: &[u8]) -> Result<alloc::vec::Vec<u8>, CallError> {
        call::<ping::echo_params::Owned, _>(
            self.0,
            interfaces::PING,
            ping_method::ECHO,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_data(data);
                Ok(())
            },
            |r| object(helpers::read_data(r.get::<data_result::Owned>()?)),
        )
    }

    /// Echo through the bulk buffer: `buf` goes out and the answer comes
    /// back over it; returns the byte count the object reported.
    #[inline]
    pub fn echo_bulk(&self, buf: &mut [u8]) -> Result<u64, CallError> {
        let bulk = BulkArg::both(buf);
        let word = CallWord { method: ping_method::ECHO_BULK, caps: 0, bulk: bulk.flags, len: 0 };
        let (reply, _) = syscall::cap_call(self.0, interfaces::PING, word, (bulk.ptr, bulk.len))?;
        read_u64_results(ipc::received(reply.len as usize))
    }
}

/// A call a server received: its envelope, the capabilities it brought
/// (already in our table) and its params, read in place. Read the params
/// before making any call of your own (module docs of `crate::ipc`).
pub struct Incoming {
    pub envelope: Received,
    caps: &'static [Handle],
    bytes: &'static [u8],
    /// Made on the first `params` call (fast-path servers never need it).
    params: core::cell::OnceCell<Result<FlatReader<'static>, MessageError>>,
}

impl Incoming {
    pub(crate) fn new(envelope: Received) -> Result<Incoming, CallError> {
        let caps = ipc::caps_in(envelope.word.caps);
        let bytes = ipc::received(envelope.word.len as usize);
        Ok(Incoming { envelope, caps, bytes, params: core::cell::OnceCell::new() })
    }
    pub fn reply_token(&self) -> u64 {
        self.envelope.token
    }
    /// Whether this is a no-senders notification (the last capability
    /// with [`badge`](Self::badge) that this server minted with
    /// notification is gone), not a call: there is nothing to answer.
    pub fn is_no_senders(&self) -> bool {
        self.envelope.is_no_senders()
    }
    pub fn badge(&self) -> u64 {
        self.envelope.badge
    }
    /// More calls were queued behind this one when it was delivered
    /// ([`capos_abi::ipc::Received::more_waiting`]).
    pub fn more_waiting(&self) -> bool {
        self.envelope.more_waiting()
    }
    pub fn interface_id(&self) -> u64 {
        self.envelope.interface_id
    }
    pub fn method_id(&self) -> u16 {
        self.envelope.word.method
    }
    pub fn caps(&self) -> &[Handle] {
        self.caps
    }
    pub fn params<T: Owned>(&self) -> Result<T::Reader<'_>, CallError> {
        match self.params.get_or_init(|| read_flat(self.bytes)) {
            Ok(reader) => Ok(reader.get_root::<T::Reader<'_>>()?),
            Err(e) => Err(CallError::Message(e.clone())),
        }
    }
    /// The params' bytes (for `small_struct::read`).
    pub fn raw(&self) -> &[u8] {
        self.bytes
    }
    /// Bulk bytes the client sent (in the server's registered buffer).
    pub fn bulk_in(&self) -> u64 {
        self.envelope.bulk_in
    }
    /// Bulk bytes the client accepts back.
    pub fn bulk_out_capacity(&self) -> u64 {
        self.envelope.bulk_out_capacity
    }
}

/// An answer a server is about to send: results built in place, the
/// capabilities it hands back, and bulk data from its own memory.
pub struct Answer<'a> {
    /// Bytes to clear after sending (0 for a fast-path message, which
    /// leaves the buffer marked dirty instead).
    len: usize,
    /// Bytes to send.
    sent: usize,
    caps: &'a [Handle],
    bulk: &'a [u8],
}

impl<'a> Answer<'a> {
    /// Build the results struct `T` in the send buffer.
    pub fn build<T: Owned>(fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<Answer<'a>, CallError> {
        let (len, ()) = build_flat::<T, ()>(&mut ipc::send_buffer(), fill)?;
        Ok(Answer { len, sent: len, caps: &[], bulk: &[] })
    }
    /// Results that are a tiny struct of at most 8 data words and 8
    /// pointers, which always fits the send buffer (so this cannot fail).
    #[inline]
    pub fn tiny<const N: usize>(data: &[u64; N], ptrs: u8) -> Answer<'a> {
        const { assert!(N <= 8) };
        let len = small_struct::write(&mut ipc::send_buffer_raw(), data, ptrs.min(8) as u16).unwrap_or(0);
        ipc::send_dirty(len);
        Answer { len: 0, sent: len, caps: &[], bulk: &[] }
    }

    /// Results that are a tiny struct (`capos_abi::small_struct`).
    pub fn small(data: &[u64], ptrs: u16) -> Result<Answer<'a>, CallError> {
        let len = small_struct::write(&mut ipc::send_buffer_raw(), data, ptrs).ok_or(CallError::Message(MessageError::TooLarge { len: 0, max: 0 }))?;
        ipc::send_dirty(len);
        Ok(Answer { len: 0, sent: len, caps: &[], bulk: &[] })
    }
    pub fn with_caps(self, caps: &'a [Handle]) -> Answer<'a> {
        Answer { caps, ..self }
    }
    pub fn with_bulk(self, bulk: &'a [u8]) -> Answer<'a> {
        Answer { bulk, ..self }
    }
    fn word(&self) -> ReplyWord {
        if !self.caps.is_empty() {
            ipc::set_caps_out(self.caps);
        }
        ReplyWord::new(self.sent as u32, self.caps.len().min(MAX_CAPS_PER_MESSAGE) as u8)
    }
    fn done(self) {
        if self.len > 0 {
            clear(&mut ipc::send_buffer_raw(), self.len);
        }
    }
}

/// The server side of an endpoint.
pub struct Server {
    pub handle: Handle,
}

impl Server {
    pub fn new(handle: Handle) -> Server {
        Server { handle }
    }

    /// Register where calls' bulk data lands (once; the buffer lives as
    /// long as the process).
    pub fn register_bulk(&self, bytes: usize) -> Result<&'static mut [u8], CallError> {
        // Page aligned, so its pieces (and what copies into it cost) do not
        // depend on where the heap happened to put it.
        let backing: &'static mut [u8] = alloc::vec![0u8; bytes + 4096].leak();
        let off = backing.as_ptr().align_offset(4096);
        let buf = &mut backing[off..off + bytes];
        let ptr = buf.as_mut_ptr();
        let len = buf.len();
        syscall::bulk_register(buf)?;
        // SAFETY: the leaked buffer lives forever; the kernel writes it
        // only inside our own syscalls (a delivered call), so handing the
        // caller a view of it is like handing it the receive buffer.
        Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
    }

    /// Wait for the next call.
    pub fn receive(&mut self) -> Result<Incoming, CallError> {
        Incoming::new(syscall::endpoint_receive(self.handle)?)
    }

    /// The next call or notification, or a [`CallError`] whose `sys()` is
    /// `Some(SysError::TimedOut)` when none arrives within `ns` nanoseconds.
    pub fn receive_timeout(&mut self, ns: u64) -> Result<Incoming, CallError> {
        Incoming::new(syscall::endpoint_receive_timeout(self.handle, ns)?)
    }

    /// Answer `token`.
    pub fn reply(&self, token: u64, answer: Answer) -> Result<(), CallError> {
        let r = syscall::endpoint_reply(token, answer.word(), answer.bulk);
        answer.done();
        Ok(r?)
    }

    /// Answer `token` and wait for the next call, in one syscall.
    #[inline]
    pub fn reply_receive(&mut self, token: u64, answer: Answer) -> Result<Incoming, CallError> {
        let r = syscall::endpoint_reply_receive(token, self.handle, answer.word(), answer.bulk);
        answer.done();
        Incoming::new(r?)
    }

    /// A new client capability for this endpoint with `badge`.
    pub fn mint(&self, badge: u64) -> Result<Handle, CallError> {
        self.mint_with(badge, false)
    }

    /// Like [`mint`](Self::mint), and when the last copy of the new
    /// capability is gone this server receives a no-senders notification
    /// for `badge` (`Incoming::is_no_senders`).
    pub fn mint_notified(&self, badge: u64) -> Result<Handle, CallError> {
        self.mint_with(badge, true)
    }

    fn mint_with(&self, badge: u64, notify: bool) -> Result<Handle, CallError> {
        call::<endpoint::mint_params::Owned, _>(
            self.handle,
            interfaces::ENDPOINT,
            0,
            &[],
            BulkArg::NONE,
            |mut p| {
                p.set_badge(badge);
                p.set_notify(notify);
                Ok(())
            },
            |r| object(helpers::read_cap(r.get::<cap_result::Owned>()?, r.caps())),
        )
    }
}
