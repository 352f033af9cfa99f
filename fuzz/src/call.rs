//! The capnp call target: a call's params as a hostile client sends them,
//! through the same checks and dispatchers the kernel's storage objects
//! and the userspace storage services use (`CallMessage`, the in-place
//! `read_flat` framing, `small_struct::read`, the eager `read_message`
//! validation, and `capos_serve::{directory,file,store}::dispatch`).
//!
//! Input: byte 0 picks the interface (bits 0..2: Directory, File, Store)
//! and what comes with the call (bit 2: a readable bulk buffer, bit 3: a
//! writable one, bit 4: a transferred capability); byte 1 is the method
//! ordinal; the rest is the params message, as bytes.
//!
//! The servers behind the dispatchers answer every method with plain
//! values, so the results path (building a reply in place, lists, data,
//! caps) runs too. Property checked: whatever a dispatcher built as a
//! reply reads back as a valid message under the ABI's own limits.
//!
//! Not covered here: the kernel-only objects (`Console`, `Ping`,
//! `Endpoint.mint` in kernel/src/cap/) and the syscall path that copies
//! the params out of user memory; they read params through the same
//! `CallMessage` and `small_struct` code exercised here.

use capos_abi::helpers::{CapError, Stat, Timestamp};
use capos_abi::interfaces::{DIRECTORY, FILE, STORE};
use capos_abi::ipc::{CallWord, MAX_BULK_BYTES};
use capos_abi::limits::MAX_MESSAGE_BYTES;
use capos_abi::message::{build_flat, read_message, word_bytes, word_bytes_mut, words_of, CallMessage};
use capos_serve::directory::{self, DirectoryServer};
use capos_serve::file::{self, FileServer};
use capos_serve::store::{self, StoreServer};
use capos_serve::Responder;
use capos_abi::capos_capnp::NodeKind;
use capos_abi::{small_struct, SysError};
use capnp::traits::Owned;
use capos_storage::DirEntry;

pub fn capnp_call(data: &[u8]) {
    let [flags, method, params @ ..] = data else { return };
    if let Some(word) = params.first_chunk::<8>() {
        let _ = CallWord::unpack(u64::from_le_bytes(*word));
    }
    // The params as they sit in the (word-aligned) IPC area.
    let words = words_of(params);
    let bytes = &word_bytes(&words)[..params.len()];
    let _ = small_struct::read(bytes).map(|s| (0..s.data_words()).fold(0u64, |sum, i| sum.wrapping_add(s.word(i))));
    let _ = read_message(bytes);
    let Ok(call) = CallMessage::new(interface(*flags), u16::from(*method), bytes) else { return };
    REPLY.with_borrow_mut(|reply| {
        let mut r = FuzzResponder::new(*flags, reply);
        let answered = match flags & 3 {
            0 => directory::dispatch(&Server, &call, &mut r),
            1 => file::dispatch(&Server, &call, &mut r),
            _ => store::dispatch(&Server, &call, &mut r),
        };
        if let Some(len) = r.reply_len.take() {
            if answered.is_ok() {
                if let Err(e) = read_message(&word_bytes(r.reply)[..len]) {
                    panic!("a reply the dispatcher built does not read back: {e}");
                }
            }
            capos_abi::message::clear(word_bytes_mut(r.reply), len);
        }
    });
}

std::thread_local! {
    /// The reply buffer, zeroed between calls as the kernel keeps its own.
    static REPLY: std::cell::RefCell<Vec<u64>> = std::cell::RefCell::new(vec![0u64; MAX_MESSAGE_BYTES / 8]);
}

fn interface(flags: u8) -> u64 {
    match flags & 3 {
        0 => DIRECTORY,
        1 => FILE,
        _ => STORE,
    }
}

/// A responder like the kernel's: results are built in place in a reply
/// buffer of the ABI's largest message.
struct FuzzResponder<'a> {
    reply: &'a mut Vec<u64>,
    reply_len: Option<usize>,
    caps: u32,
    transferred: Option<u32>,
    bulk_in: Option<Vec<u8>>,
    bulk_out: Option<usize>,
}

impl<'a> FuzzResponder<'a> {
    fn new(flags: u8, reply: &'a mut Vec<u64>) -> FuzzResponder<'a> {
        FuzzResponder {
            reply,
            reply_len: None,
            caps: 0,
            transferred: (flags & 16 != 0).then_some(7),
            bulk_in: (flags & 4 != 0).then(|| vec![0xA5; 300]),
            bulk_out: (flags & 8 != 0).then_some(MAX_BULK_BYTES as usize / 2),
        }
    }
}

impl Responder for FuzzResponder<'_> {
    type Cap = u32;
    fn results<T: Owned>(&mut self, fill: impl FnOnce(T::Builder<'_>) -> capnp::Result<()>) -> Result<(), SysError> {
        if let Some(len) = self.reply_len.take() {
            capos_abi::message::clear(word_bytes_mut(self.reply), len);
        }
        let (len, ()) = build_flat::<T, ()>(word_bytes_mut(self.reply), fill).map_err(|e| e.sys_error())?;
        self.reply_len = Some(len);
        Ok(())
    }
    fn add_cap(&mut self, _cap: u32) -> Result<u32, SysError> {
        self.caps += 1;
        Ok(self.caps - 1)
    }
    fn transferred(&self, slot: u32) -> Option<&u32> {
        self.transferred.as_ref().filter(|_| slot == 0)
    }
    fn bulk_in(&self) -> Result<Option<Vec<u8>>, SysError> {
        Ok(self.bulk_in.clone())
    }
    fn bulk_in_len(&self) -> Option<usize> {
        self.bulk_in.as_ref().map(Vec::len)
    }
    fn bulk_out_capacity(&self) -> Option<usize> {
        self.bulk_out
    }
    fn bulk_out(&mut self, data: &[u8]) -> Result<(), SysError> {
        match self.bulk_out {
            Some(c) if data.len() <= c => Ok(()),
            _ => Err(SysError::InvalidArgument),
        }
    }
}

/// One object that is a directory, a file and a store at once, answering
/// with plain values that depend on the arguments (names, offsets, keys).
struct Server;

fn refuse_empty(name: &[u8]) -> Result<(), CapError> {
    if name.is_empty() {
        Err(CapError::new(capos_abi::capos_capnp::ErrorCode::InvalidArgument, "empty"))
    } else {
        Ok(())
    }
}

impl DirectoryServer for Server {
    type Cap = u32;
    fn open(&self, name: &str) -> Result<u32, CapError> {
        refuse_empty(name.as_bytes()).map(|_| name.len() as u32)
    }
    fn list(&self) -> Result<Vec<DirEntry>, CapError> {
        Ok((0..5)
            .map(|i| DirEntry { name: format!("entry {i}"), kind: capos_storage::NodeKind::File, size: i * 100 })
            .collect())
    }
    fn mkdir(&self, name: &str) -> Result<(), CapError> {
        refuse_empty(name.as_bytes())
    }
    fn remove(&self, name: &str) -> Result<(), CapError> {
        refuse_empty(name.as_bytes())
    }
    fn sub(&self, name: &str) -> Result<u32, CapError> {
        self.open(name)
    }
    fn create(&self, name: &str) -> Result<u32, CapError> {
        self.open(name)
    }
    fn rename(&self, from: &str, to: &str, _target: Option<&u32>) -> Result<(), CapError> {
        refuse_empty(from.as_bytes()).and(refuse_empty(to.as_bytes()))
    }
}

impl FileServer for Server {
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<usize, CapError> {
        let n = buf.len().min(4096usize.saturating_sub(offset.min(4096) as usize));
        buf[..n].iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        Ok(n)
    }
    fn write(&self, _offset: u64, data: &[u8]) -> Result<u64, CapError> {
        Ok(data.len() as u64)
    }
    fn stat(&self) -> Result<Stat, CapError> {
        Ok(Stat { size: 4096, kind: NodeKind::File, created: Timestamp::UNKNOWN, modified: Timestamp::UNKNOWN })
    }
    fn truncate(&self, _size: u64) -> Result<(), CapError> {
        Ok(())
    }
    fn sync(&self) -> Result<(), CapError> {
        Ok(())
    }
    fn close(&self) -> Result<(), CapError> {
        Ok(())
    }
}

impl StoreServer for Server {
    fn put(&self, key: &[u8], _value: &[u8]) -> Result<(), CapError> {
        refuse_empty(key)
    }
    fn get(&self, key: &[u8]) -> Result<Vec<u8>, CapError> {
        refuse_empty(key).map(|_| key.repeat(3))
    }
    fn has(&self, key: &[u8]) -> Result<bool, CapError> {
        Ok(key.len().is_multiple_of(2))
    }
    fn delete(&self, key: &[u8]) -> Result<bool, CapError> {
        Ok(!key.is_empty())
    }
    fn list(&self, after: &[u8], limit: usize) -> Result<(Vec<Vec<u8>>, bool), CapError> {
        let keys: Vec<Vec<u8>> = (0u8..20).map(|i| vec![b'k', i]).filter(|k| k.as_slice() > after).collect();
        let more = keys.len() > limit;
        Ok((keys.into_iter().take(limit).collect(), more))
    }
}
