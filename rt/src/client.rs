//! Typed clients: a demo calls `console.write_line("...")` or
//! `ping.ping(7)`, not raw syscalls.

use crate::syscall::{self, Failure};
use alloc::vec;
use alloc::vec::Vec;
use capos_abi::helpers::{self, CapError};
use capos_abi::message::{encode_call, encode_return, IncomingCallMessage, MessageError, ReturnMessage};
use capos_abi::{interfaces, Handle, SysError};

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

impl CallError {
    pub fn sys(&self) -> Option<SysError> {
        match self {
            CallError::Sys(f) => f.error,
            _ => None,
        }
    }
}

/// Reply buffer for ordinary calls.
const REPLY_BYTES: usize = 16 * 1024;

/// Send `request` on `handle` and return the reply bytes.
pub fn call(handle: Handle, request: &[u8]) -> Result<Vec<u8>, CallError> {
    let mut reply = vec![0u8; REPLY_BYTES];
    let n = syscall::cap_call(handle, request, &mut reply)?;
    reply.truncate(n);
    Ok(reply)
}

#[derive(Clone, Copy, Debug)]
pub struct Console(pub Handle);

impl Console {
    pub fn write_line(&self, line: &str) -> Result<(), CallError> {
        let reply = call(self.0, &helpers::console_write_line_call(line)?)?;
        helpers::read_void_return(&reply)?.map_err(CallError::Object)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct PingClient(pub Handle);

impl PingClient {
    /// The null call: answers `value` unchanged.
    pub fn ping(&self, value: u64) -> Result<u64, CallError> {
        let reply = call(self.0, &helpers::ping_call(value)?)?;
        helpers::read_u64_return(&reply)?.map_err(CallError::Object)
    }

    /// A fresh Ping capability from the same server (a capability passed in
    /// a result).
    pub fn session(&self) -> Result<PingClient, CallError> {
        let req = encode_call::<capos_abi::capos_capnp::ping::session_params::Owned>(interfaces::PING, 2, &[], |_| Ok(()))?;
        let reply = call(self.0, &req)?;
        helpers::read_cap_return(&reply)?.map(PingClient).map_err(CallError::Object)
    }

    pub fn echo(&self, data: &[u8]) -> Result<Vec<u8>, CallError> {
        let req = encode_call::<capos_abi::capos_capnp::ping::echo_params::Owned>(interfaces::PING, 1, &[], |mut p| {
            p.set_data(data);
            Ok(())
        })?;
        let reply = call(self.0, &req)?;
        helpers::read_data_return(&reply)?.map_err(CallError::Object)
    }
}

/// The server side of an endpoint.
pub struct Server {
    pub handle: Handle,
    buf: Vec<u8>,
}

impl Server {
    pub fn new(handle: Handle) -> Server {
        Server { handle, buf: vec![0u8; capos_abi::limits::MAX_MESSAGE_BYTES + 64] }
    }

    /// Wait for the next call.
    pub fn receive(&mut self) -> Result<IncomingCallMessage, CallError> {
        let n = syscall::endpoint_receive(self.handle, &mut self.buf)?;
        Ok(IncomingCallMessage::read(&self.buf[..n])?)
    }

    pub fn reply(&self, token: u64, reply: &[u8]) -> Result<(), CallError> {
        Ok(syscall::endpoint_reply(token, reply)?)
    }

    /// A new client capability for this endpoint with `badge`.
    pub fn mint(&self, badge: u64) -> Result<Handle, CallError> {
        let req = encode_call::<capos_abi::capos_capnp::endpoint::mint_params::Owned>(interfaces::ENDPOINT, 0, &[], |mut p| {
            p.set_badge(badge);
            Ok(())
        })?;
        let reply = call(self.handle, &req)?;
        helpers::read_cap_return(&reply)?.map_err(CallError::Object)
    }
}

/// Encode a `Return` carrying one capability in a `CapResult`.
pub fn cap_return(handle: Handle) -> Result<Vec<u8>, MessageError> {
    encode_return::<capos_abi::capos_capnp::cap_result::Owned>(&[handle], |mut r| {
        r.set_ok(0);
        Ok(())
    })
}

/// Read a `Return` without interpreting its results.
pub fn read_return(bytes: &[u8]) -> Result<ReturnMessage, MessageError> {
    ReturnMessage::read(bytes)
}
