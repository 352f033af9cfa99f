//! Capability objects.
//!
//! A process's capability table (`kcore::cap_table`, generational handles)
//! holds [`Cap`]s. Kernel-implemented objects answer `cap_call` directly;
//! endpoint capabilities route the call to the server process that owns
//! the endpoint. To a caller the two look the same.

pub mod console;
pub mod endpoint;
pub mod ping;
pub mod read_only;

use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::message::{CallMessage, MessageError};
use capos_abi::{Handle, SysError};
use endpoint::Endpoint;

/// What a kernel object hands back: capabilities to install in the caller's
/// table, and a function that encodes the `Return` once their handles are
/// known.
pub struct KernelReply {
    pub caps: Vec<Cap>,
    pub encode: alloc::boxed::Box<dyn FnOnce(&[Handle]) -> Result<Vec<u8>, MessageError>>,
}

impl KernelReply {
    pub fn plain(bytes: Result<Vec<u8>, MessageError>) -> Result<KernelReply, SysError> {
        let bytes = bytes.map_err(|e| e.sys_error())?;
        Ok(KernelReply { caps: Vec::new(), encode: alloc::boxed::Box::new(move |_| Ok(bytes)) })
    }
}

/// Who is calling, for objects that care (the Console prefixes lines).
pub struct Caller<'a> {
    pub pid: u32,
    pub name: &'a str,
}

pub trait KernelObject: Send + Sync {
    /// The capnp interface id this object implements.
    fn interface_id(&self) -> u64;
    fn kind(&self) -> &'static str;
    /// Answer a call whose interface id already matched.
    fn call(&self, caller: &Caller, call: &CallMessage) -> Result<KernelReply, SysError>;
}

#[derive(Clone)]
pub enum Cap {
    Kernel(Arc<dyn KernelObject>),
    /// A client of a userspace-served endpoint; the badge tells the server
    /// which client (or session) is calling.
    EndpointClient { endpoint: Arc<Endpoint>, badge: u64 },
    /// The receive side of an endpoint (its server holds it).
    EndpointServer(Arc<Endpoint>),
}

impl Cap {
    pub fn describe(&self) -> alloc::string::String {
        match self {
            Cap::Kernel(o) => alloc::format!("kernel {}", o.kind()),
            Cap::EndpointClient { endpoint, badge } => alloc::format!("endpoint {} client (badge {})", endpoint.id, badge),
            Cap::EndpointServer(e) => alloc::format!("endpoint {} server", e.id),
        }
    }
}
