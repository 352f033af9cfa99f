//! Serving capnp interfaces from a process through the typed server traits
//! of `capos_serve`: the loop the storage services run.
//!
//! A service hands its objects out as client capabilities of its one
//! endpoint, each with its own badge ([`capos_abi::badge`] says which
//! badges the manifest chose and which the server mints), so every call
//! arrives with the badge of the object it is for. This module does what
//! every such service needs around `dispatch`:
//!
//! - the call's params are **copied** out of the receive buffer first (a
//!   service makes calls of its own while answering — minting a
//!   capability, reading its Block device — and each one overwrites the
//!   receive buffer);
//! - capabilities the call transferred arrive with their badges (the
//!   kernel writes them beside the handles, so a service recognises one of
//!   its own objects passed back, e.g. `Directory.rename`'s target;
//!   anything else reads as badge 0, which no object has) and are dropped
//!   from our table at once;
//! - [`ServeResponder`] is the `Responder` whose `Cap` is a badge: handing
//!   an object back mints a client capability with that badge and
//!   notification, which the reply *moves* to the caller;
//! - **lifetimes**: when the last copy of a minted capability is gone
//!   (dropped, or its holder died) the kernel sends a no-senders
//!   notification through the same receive; the loop counts mints per
//!   badge and calls `released` when a badge has none left, so the
//!   service frees that object;
//! - bulk data arrives in, and leaves from, the buffer registered with
//!   `bulk_register`;
//! - a call the dispatcher refuses at the call level (unreadable params,
//!   unknown method) is answered with an empty message, which the client
//!   reads as a malformed reply, like a kernel object's syscall error.

use crate::client::{CallError, Incoming, Server};
use crate::{ipc, syscall};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use capnp::traits::Owned;
use capos_abi::ipc::ReplyWord;
use capos_abi::limits::MAX_CAPS_PER_MESSAGE;
use capos_abi::message::{build_flat, clear, word_bytes, CallMessage};
use capos_serve::Responder;
use capos_abi::{Handle, SysError};
use crate::storage::{Block, CapBlockDevice};
use capos_storage::colocated::Part;
use capos_storage::partition::Partition;

/// One received call, copied out of the IPC area.
pub struct Call {
    pub badge: u64,
    pub interface_id: u64,
    pub method: u16,
    /// The params, word-aligned.
    params: Vec<u64>,
    params_len: usize,
    /// Badges of the transferred capabilities (0 for one not of ours).
    transferred: Vec<u64>,
    bulk_in: usize,
    bulk_out_capacity: usize,
}

impl Call {
    /// Copy `incoming` out of the IPC area (its transferred handles are
    /// dropped; their badges kept).
    pub fn copy(incoming: &Incoming) -> Call {
        let raw = incoming.raw();
        let mut params = alloc::vec![0u64; raw.len().div_ceil(8)];
        capos_abi::message::word_bytes_mut(&mut params)[..raw.len()].copy_from_slice(raw);
        let mut handles = [Handle::from_raw(0); MAX_CAPS_PER_MESSAGE];
        let n = incoming.caps().len().min(MAX_CAPS_PER_MESSAGE);
        handles[..n].copy_from_slice(&incoming.caps()[..n]);
        let badges = ipc::badges_in(n as u8);
        let call = Call {
            badge: incoming.badge(),
            interface_id: incoming.interface_id(),
            method: incoming.method_id(),
            params,
            params_len: raw.len(),
            transferred: Vec::new(),
            bulk_in: incoming.bulk_in() as usize,
            bulk_out_capacity: incoming.bulk_out_capacity() as usize,
        };
        // We keep only the badges.
        for h in &handles[..n] {
            let _ = syscall::cap_drop(*h);
        }
        Call { transferred: badges[..n].to_vec(), ..call }
    }

    /// The call as the dispatchers read it.
    pub fn message(&self) -> Result<CallMessage<'_>, SysError> {
        CallMessage::new(self.interface_id, self.method, &word_bytes(&self.params)[..self.params_len]).map_err(|e| e.sys_error())
    }
}

/// The `Responder` of a service: capabilities are badges of our endpoint.
pub struct ServeResponder<'a> {
    server: &'a Server,
    mints: &'a mut Mints,
    call: &'a Call,
    bulk: &'a mut [u8],
    bulk_out: usize,
    results: Option<usize>,
    minted: Vec<Handle>,
}

impl<'a> ServeResponder<'a> {
    /// A responder for `call`: capabilities it hands back are minted on
    /// `server` (counted in `mints`); `bulk` is the registered bulk buffer
    /// (the call's bytes in, the answer's bytes out). A call answered later
    /// is answered through a responder made then, over the kept `Call`:
    /// between receives the bulk buffer is ours to use.
    pub fn new(server: &'a Server, mints: &'a mut Mints, call: &'a Call, bulk: &'a mut [u8]) -> ServeResponder<'a> {
        ServeResponder { server, mints, call, bulk, bulk_out: 0, results: None, minted: Vec::new() }
    }

    /// The answer as it will be sent: `answered` is what the dispatcher
    /// returned (a call-level error sends an empty message, without
    /// capabilities or bulk bytes).
    pub fn prepare(mut self, answered: Result<(), SysError>) -> Prepared {
        let len = match answered {
            Ok(()) => self.results.unwrap_or(0),
            Err(_) => {
                if let Some(n) = self.results.take() {
                    clear(&mut ipc::send_buffer(), n);
                }
                0
            }
        };
        let minted = core::mem::take(&mut self.minted);
        // An empty reply carries neither capabilities nor bulk data.
        let (caps, out) = if len == 0 { (0, 0) } else { (minted.len(), self.bulk_out) };
        Prepared { word: ReplyWord { len: len as u32, caps: caps as u8, moves: true }, out, minted, badge: self.call.badge }
    }
}

/// An answer ready to go: built in the send buffer, its minted
/// capabilities to move with it, `out` bytes of the bulk buffer.
pub struct Prepared {
    word: ReplyWord,
    out: usize,
    minted: Vec<Handle>,
    badge: u64,
}

impl Prepared {
    /// Bytes of the bulk buffer the answer carries.
    pub fn bulk_len(&self) -> usize {
        self.out
    }

    /// Send it with `send(word)` (`endpoint_reply`, or
    /// `endpoint_reply_receive`), then clean up: the send buffer is
    /// cleared and the minted handles that did not move are dropped.
    pub fn send<T>(self, send: impl FnOnce(ReplyWord) -> Result<T, syscall::Failure>) -> Result<T, syscall::Failure> {
        let caps = &self.minted[..self.word.caps as usize];
        if !caps.is_empty() {
            ipc::set_caps_out(caps);
        }
        let sent = send(self.word);
        if self.word.len > 0 {
            clear(&mut ipc::send_buffer(), self.word.len as usize);
        }
        if sent.is_err() || caps.is_empty() {
            // Not moved (the reply failed, or carried none of them): drop
            // ours; a handle that did move is stale now and refused.
            drop_all(&self.minted);
        }
        if let Err(f) = &sent {
            // The caller's side refused the answer (its buffer or table):
            // the kernel told the caller too. Say so: a call the kernel
            // should have refused when it was made shows up here.
            if [SysError::BadAddress, SysError::BufferTooSmall, SysError::CapTableFull].iter().any(|e| f.is(*e)) {
                crate::println!("reply to badge {:#x} not delivered: {:?} (the caller was told)", self.badge, f.error);
            }
        }
        sent
    }
}

impl Responder for ServeResponder<'_> {
    type Cap = u64;

    fn results<T: Owned>(&mut self, fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<(), SysError> {
        let mut send = ipc::send_buffer();
        if let Some(old) = self.results.take() {
            clear(&mut send, old);
        }
        let (len, ()) = build_flat::<T, ()>(&mut send, fill).map_err(|e| e.sys_error())?;
        self.results = Some(len);
        Ok(())
    }

    fn add_cap(&mut self, badge: u64) -> Result<u32, SysError> {
        // Minting is a call of its own through the send buffer: results
        // are built after every capability is added (the dispatchers do).
        if self.results.is_some() || self.minted.len() >= MAX_CAPS_PER_MESSAGE {
            return Err(SysError::InvalidArgument);
        }
        let h = self.server.mint_notified(badge).map_err(|e| e.sys().unwrap_or(SysError::InvalidArgument))?;
        self.mints.minted(badge);
        self.minted.push(h);
        Ok(self.minted.len() as u32 - 1)
    }

    fn transferred(&self, slot: u32) -> Option<&u64> {
        self.call.transferred.get(slot as usize)
    }

    fn bulk_in(&self) -> Result<Option<Vec<u8>>, SysError> {
        Ok(self.bulk_in_len().map(|n| self.bulk[..n].to_vec()))
    }

    /// In place: `f` reads the service's registered bulk buffer, where the
    /// kernel put the caller's bytes (no copy into a `Vec`).
    fn bulk_in_with<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Result<T, SysError> {
        Ok(f(&self.bulk[..self.bulk_in_len().unwrap_or(0)]))
    }

    fn bulk_in_len(&self) -> Option<usize> {
        match self.call.bulk_in {
            0 => None,
            n => Some(n.min(self.bulk.len())),
        }
    }

    fn bulk_out_capacity(&self) -> Option<usize> {
        match self.call.bulk_out_capacity.min(self.bulk.len()) {
            0 => None,
            n => Some(n),
        }
    }

    fn bulk_out(&mut self, data: &[u8]) -> Result<(), SysError> {
        let copied = self.bulk_out_with(data.len(), |buf| {
            buf.copy_from_slice(data);
            Ok::<_, core::convert::Infallible>(data.len())
        })?;
        copied.map(|_| ()).map_err(|never| match never {})
    }

    /// In place: `fill` writes straight into this service's registered
    /// bulk buffer, which the kernel then copies to the caller (no
    /// zero-filled staging buffer, no copy into the bulk buffer). What an
    /// earlier call left there is overwritten or not sent: only the `n`
    /// bytes `fill` reports go out.
    fn bulk_out_with<E>(&mut self, len: usize, fill: impl FnOnce(&mut [u8]) -> Result<usize, E>) -> Result<Result<usize, E>, SysError> {
        match self.bulk_out_capacity() {
            Some(room) if len <= room => {}
            _ => return Err(SysError::InvalidArgument),
        }
        match fill(&mut self.bulk[..len]) {
            Ok(n) => {
                self.bulk_out = n.min(len);
                Ok(Ok(self.bulk_out))
            }
            Err(e) => Ok(Err(e)),
        }
    }
}

/// How many capabilities of each badge are out (minted with notification
/// and not yet reported gone): a badge minted N times is released after N
/// no-senders notifications.
#[derive(Default)]
pub struct Mints {
    out: BTreeMap<u64, u32>,
}

impl Mints {
    /// One more capability of `badge` is out.
    pub fn minted(&mut self, badge: u64) {
        *self.out.entry(badge).or_insert(0) += 1;
    }

    /// One capability of `badge` is gone (a no-senders notification);
    /// true when none is left, so its object is to be freed.
    pub fn gone(&mut self, badge: u64) -> bool {
        match self.out.get_mut(&badge) {
            Some(n) if *n > 1 => {
                *n -= 1;
                false
            }
            Some(_) => {
                self.out.remove(&badge);
                true
            }
            // Not one of ours (never minted by this loop): nothing to free.
            None => false,
        }
    }

    /// Badges with capabilities out.
    pub fn live(&self) -> usize {
        self.out.len()
    }
}

/// Serve calls on `server` forever: each call is copied out, handed to
/// `answer` with a [`ServeResponder`], and replied to; when the last
/// capability of a badge this loop minted is gone, `released` is told the
/// badge. Returns only if receiving fails (the endpoint is gone).
pub fn serve<S>(
    server: &mut Server,
    bulk: &'static mut [u8],
    state: &mut S,
    mut answer: impl FnMut(&mut S, &Call, &mut ServeResponder) -> Result<(), SysError>,
    mut released: impl FnMut(&mut S, u64),
) -> CallError {
    serve_grouped(server, bulk, &mut Alone(state), |s, call, r| answer(s.0, call, r), |s, badge| released(s.0, badge))
}

/// How a service gathers calls that arrive together and answers them
/// after one piece of work for the lot (store-service's group commit:
/// several callers' puts made durable with one flush).
pub trait Group {
    /// Take `call` into the group: true when the state has kept what it
    /// needs of it (its bulk bytes, `bulk_in`, are overwritten by the
    /// next receive). False: it is answered alone, after the group.
    fn hold(&mut self, call: &Call, bulk_in: Option<&[u8]>) -> bool;
    /// Do the group's work (make the held calls' changes durable).
    fn commit(&mut self);
    /// Answer the oldest held call (they are answered in the order held).
    fn answer_held(&mut self, call: &Call, r: &mut ServeResponder) -> Result<(), SysError>;
}

/// A state that gathers nothing: [`serve`].
struct Alone<'s, S>(&'s mut S);

impl<S> Group for Alone<'_, S> {
    fn hold(&mut self, _: &Call, _: Option<&[u8]>) -> bool {
        false
    }
    fn commit(&mut self) {}
    fn answer_held(&mut self, _: &Call, _: &mut ServeResponder) -> Result<(), SysError> {
        Err(SysError::InvalidArgument)
    }
}

/// [`serve`], gathering calls into groups ([`Group`]): a call is offered
/// to `hold` only when the kernel said more calls waited behind it
/// ([`Incoming::more_waiting`]) or a group is already being gathered, so a
/// call that arrives alone costs what it did; the next one is then taken
/// without blocking (its caller may have gone meanwhile). The group is
/// committed and every held call answered, in order, as soon as nothing
/// more waits, a call is not held, a notification arrives or
/// [`MAX_HELD`] are held: a held caller never waits on another client's
/// pace.
pub fn serve_grouped<S: Group>(
    server: &mut Server,
    bulk: &'static mut [u8],
    state: &mut S,
    mut answer: impl FnMut(&mut S, &Call, &mut ServeResponder) -> Result<(), SysError>,
    mut released: impl FnMut(&mut S, u64),
) -> CallError {
    let mut mints = Mints::default();
    let mut held: Vec<(u64, Call)> = Vec::new();
    let mut incoming = match server.receive() {
        Ok(c) => c,
        Err(e) => return e,
    };
    loop {
        if incoming.is_no_senders() {
            answer_group(server, &mut mints, bulk, state, &mut held);
            if mints.gone(incoming.badge()) {
                released(state, incoming.badge());
            }
            incoming = match server.receive() {
                Ok(c) => c,
                Err(e) => return e,
            };
            continue;
        }
        let token = incoming.reply_token();
        let more = incoming.more_waiting();
        let call = Call::copy(&incoming);
        if (more || !held.is_empty()) && held.len() < MAX_HELD {
            let bytes = (call.bulk_in > 0).then(|| &bulk[..call.bulk_in.min(bulk.len())]);
            if state.hold(&call, bytes) {
                held.push((token, call));
                if more && held.len() < MAX_HELD {
                    match server.receive_timeout(0) {
                        Ok(next) => {
                            incoming = next;
                            continue;
                        }
                        Err(e) if e.sys() == Some(SysError::TimedOut) => {}
                        Err(e) => {
                            answer_group(server, &mut mints, bulk, state, &mut held);
                            return e;
                        }
                    }
                }
                answer_group(server, &mut mints, bulk, state, &mut held);
                incoming = match server.receive() {
                    Ok(c) => c,
                    Err(e) => return e,
                };
                continue;
            }
        }
        // Answered alone; a group gathered before it goes first.
        answer_group(server, &mut mints, bulk, state, &mut held);
        let mut r = ServeResponder::new(server, &mut mints, &call, &mut *bulk);
        let answered = answer(state, &call, &mut r);
        let prepared = r.prepare(answered);
        let out = prepared.bulk_len();
        let next = prepared.send(|word| syscall::endpoint_reply_receive(token, server.handle, word, &bulk[..out]));
        incoming = match next.map_err(CallError::from).and_then(Incoming::new) {
            Ok(c) => c,
            // The reply could not be delivered (the caller died, or its
            // answer could not be delivered and it was told so): that
            // call is over; wait for the next one.
            Err(_) => match server.receive() {
                Ok(c) => c,
                Err(e) => return e,
            },
        };
    }
}

/// At most this many calls held in one group.
pub const MAX_HELD: usize = 64;

/// Commit the group and answer every held call, oldest first. A caller
/// that died meanwhile is not answered; the others are.
fn answer_group<S: Group>(server: &Server, mints: &mut Mints, bulk: &mut [u8], state: &mut S, held: &mut Vec<(u64, Call)>) {
    if held.is_empty() {
        return;
    }
    state.commit();
    for (token, call) in held.drain(..) {
        let mut r = ServeResponder::new(server, mints, &call, &mut *bulk);
        let answered = state.answer_held(&call, &mut r);
        let prepared = r.prepare(answered);
        let out = prepared.bulk_len();
        let _ = prepared.send(|word| syscall::endpoint_reply(token, word, &bulk[..out]));
    }
}

/// What a storage service starts from: the Block capability granted as
/// `disk`, the endpoint it exports (with a bulk buffer of the largest size
/// registered), and whether its arguments say `--read-only`.
pub struct DiskService {
    pub disk: Handle,
    pub server: Server,
    pub bulk: &'static mut [u8],
    pub read_only: bool,
}

impl DiskService {
    /// Gather it from `start`; what is missing is printed, and the exit
    /// status to end with is the error.
    pub fn from_start(start: &crate::StartInfo, endpoint: &str) -> Result<DiskService, i32> {
        let (Some(disk), Some(ep)) = (start.cap("disk"), start.endpoint(endpoint)) else {
            crate::println!("needs a Block capability 'disk' and an exported endpoint '{endpoint}'");
            return Err(2);
        };
        let server = Server::new(ep);
        let bulk = server.register_bulk(capos_abi::ipc::MAX_BULK_BYTES as usize).map_err(|e| {
            crate::println!("cannot register a bulk buffer: {e:?}");
            1
        })?;
        Ok(DiskService { disk, server, bulk, read_only: start.args.iter().any(|a| a == "--read-only") })
    }
}

/// A storage error as the answer a service gives for it (`format` names
/// the engine in the message: `CAPOSWF1: bad magic ...`).
pub fn storage_failure(format: &str, e: &capos_storage::StorageError) -> capos_abi::helpers::CapError {
    capos_abi::helpers::CapError::new(capos_serve::storage_error(e).code, &alloc::format!("{format}: {e}"))
}

/// The Block capability `disk` as a device, narrowed to the blocks `find`
/// says hold the service's format (the whole disk, or one half of a
/// co-located one), or why not.
pub fn open_part(
    disk: Handle,
    format: &str,
    find: impl FnOnce(&mut CapBlockDevice) -> Result<Part, capos_storage::StorageError>,
) -> Result<(Partition<CapBlockDevice>, Part), capos_abi::helpers::CapError> {
    // The disk's own answer keeps its code (a grant of a mount that failed
    // at boot answers `unavailable` and why; clients see the same).
    let mut dev = CapBlockDevice::new(Block::new(disk)).map_err(|e| match e {
        crate::CallError::Object(o) => capos_abi::helpers::CapError::new(o.code, &alloc::format!("the disk: {}", o.message)),
        e => capos_abi::helpers::CapError::new(capos_abi::capos_capnp::ErrorCode::Io, &alloc::format!("the disk does not answer: {e:?}")),
    })?;
    let part = find(&mut dev).map_err(|e| storage_failure(format, &e))?;
    let dev = Partition::new(dev, part.start, part.count).map_err(|e| storage_failure(format, &capos_storage::StorageError::Device(e)))?;
    Ok((dev, part))
}

/// Drop handles we no longer need (their copies went with a reply).
fn drop_all(handles: &[Handle]) {
    for h in handles {
        let _ = syscall::cap_drop(*h);
    }
}
