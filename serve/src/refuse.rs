//! Refusing a call in its method's own result shape.
//!
//! Every method of `schema/capos.capnp` answers with a `...Result` struct
//! whose union is `ok` or `err :Error`, but the structs differ in layout
//! (a `UInt64Result` keeps its discriminant after the value, a
//! `VoidResult` before the pointer), so an object that refuses a call it
//! does not carry out (the read-only wrapper refusing a mutation, the
//! stand-in for a mount that failed at boot refusing everything) must know
//! which struct the method returns. [`result_kind`] is that table, for
//! every method of every interface in [`capos_abi::interfaces::ALL`]; its test
//! reads the compiled schema, so a new method does not pass until it is
//! listed here. [`refuse`] is the one encoder.

use capos_abi::capos_capnp::{
    block_info_result, bool_result, cap_result, data_result, keys_result, list_result, net_address_result, network_info_result, nic_counters_result,
    nic_info_result, nic_receive_result, process_status_result, udp_receive_result, stat_result, text_result, u_int64_result, void_result,
};
use capos_abi::helpers::{fill_error, CapError};
use capos_abi::interfaces::{self as i, block_method as bm, clock_method as cm, console_method as com, directory_method as dm};
use capos_abi::interfaces::{endpoint_method as em, file_method as fm, nic_method as nm, ping_method as pm, process_control_method as pcm, store_method as sm};
use capos_abi::interfaces::{network_method as netm, tcp_listener_method as tlm, tcp_stream_method as tsm, udp_socket_method as um};
use crate::Responder;
use capos_abi::message::CallMessage;
use capos_abi::SysError;

/// The result struct a method answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultKind {
    Void,
    UInt64,
    Bool,
    Cap,
    Data,
    Text,
    List,
    Keys,
    Stat,
    BlockInfo,
    ProcessStatus,
    NicInfo,
    NicReceive,
    NicCounters,
    NetworkInfo,
    NetAddress,
    UdpReceive,
}

impl ResultKind {
    /// The struct's name in the schema.
    pub fn schema_name(self) -> &'static str {
        match self {
            ResultKind::Void => "VoidResult",
            ResultKind::UInt64 => "UInt64Result",
            ResultKind::Bool => "BoolResult",
            ResultKind::Cap => "CapResult",
            ResultKind::Data => "DataResult",
            ResultKind::Text => "TextResult",
            ResultKind::List => "ListResult",
            ResultKind::Keys => "KeysResult",
            ResultKind::Stat => "StatResult",
            ResultKind::BlockInfo => "BlockInfoResult",
            ResultKind::ProcessStatus => "ProcessStatusResult",
            ResultKind::NicInfo => "NicInfoResult",
            ResultKind::NicReceive => "NicReceiveResult",
            ResultKind::NicCounters => "NicCountersResult",
            ResultKind::NetworkInfo => "NetworkInfoResult",
            ResultKind::NetAddress => "NetAddressResult",
            ResultKind::UdpReceive => "UdpReceiveResult",
        }
    }
}

/// What `method` of `interface_id` answers with; `None` for a method or
/// interface the schema does not have.
pub fn result_kind(interface_id: u64, method: u16) -> Option<ResultKind> {
    use ResultKind::*;
    Some(match (interface_id, method) {
        (i::DIRECTORY, dm::OPEN | dm::SUB | dm::CREATE) => Cap,
        (i::DIRECTORY, dm::LIST) => List,
        (i::DIRECTORY, dm::MKDIR | dm::REMOVE | dm::RENAME) => Void,
        (i::FILE, fm::READ) => Data,
        (i::FILE, fm::WRITE) => UInt64,
        (i::FILE, fm::STAT) => Stat,
        (i::FILE, fm::TRUNCATE | fm::SYNC | fm::CLOSE) => Void,
        (i::STORE, sm::PUT) => Void,
        (i::STORE, sm::GET) => Data,
        (i::STORE, sm::HAS | sm::DELETE) => Bool,
        (i::STORE, sm::LIST) => Keys,
        (i::CONSOLE, com::WRITE_LINE) => Void,
        (i::CONSOLE, com::READ_LINE) => Text,
        (i::ENDPOINT, em::MINT) => Cap,
        (i::ENDPOINT, em::BADGE_OF) => UInt64,
        (i::PING, pm::PING | pm::ECHO_BULK) => UInt64,
        (i::PING, pm::ECHO) => Data,
        (i::PING, pm::SESSION) => Cap,
        (i::BLOCK_DEVICE, bm::INFO) => BlockInfo,
        (i::BLOCK_DEVICE, bm::READ) => Data,
        (i::BLOCK_DEVICE, bm::WRITE | bm::FLUSH) => Void,
        (i::CLOCK, cm::NOW) => UInt64,
        (i::PROCESS_CONTROL, pcm::KILL) => Void,
        (i::PROCESS_CONTROL, pcm::STATUS) => ProcessStatus,
        (i::NIC, nm::INFO) => NicInfo,
        (i::NIC, nm::TRANSMIT) => Void,
        (i::NIC, nm::RECEIVE) => NicReceive,
        (i::NIC, nm::COUNTERS) => NicCounters,
        (i::NETWORK, netm::INFO) => NetworkInfo,
        (i::NETWORK, netm::LISTEN | netm::CONNECT | netm::UDP_BIND) => Cap,
        (i::TCP_LISTENER, tlm::ACCEPT) => Cap,
        (i::TCP_LISTENER, tlm::LOCAL) => NetAddress,
        (i::TCP_LISTENER, tlm::CLOSE) => Void,
        (i::TCP_STREAM, tsm::READ | tsm::WRITE) => UInt64,
        (i::TCP_STREAM, tsm::SHUTDOWN | tsm::CLOSE) => Void,
        (i::TCP_STREAM, tsm::PEER | tsm::LOCAL) => NetAddress,
        (i::UDP_SOCKET, um::SEND | um::CLOSE) => Void,
        (i::UDP_SOCKET, um::RECEIVE) => UdpReceive,
        (i::UDP_SOCKET, um::LOCAL) => NetAddress,
        _ => return None,
    })
}

/// Answer with `e` as the `err` arm of the result struct `kind`.
pub fn refuse<R: Responder>(r: &mut R, kind: ResultKind, e: CapError) -> Result<(), SysError> {
    macro_rules! err {
        ($m:ident) => {
            r.results::<$m::Owned>(|b| {
                fill_error(b.init_err(), &e);
                Ok(())
            })
        };
    }
    match kind {
        ResultKind::Void => err!(void_result),
        ResultKind::UInt64 => err!(u_int64_result),
        ResultKind::Bool => err!(bool_result),
        ResultKind::Cap => err!(cap_result),
        ResultKind::Data => err!(data_result),
        ResultKind::Text => err!(text_result),
        ResultKind::List => err!(list_result),
        ResultKind::Keys => err!(keys_result),
        ResultKind::Stat => err!(stat_result),
        ResultKind::BlockInfo => err!(block_info_result),
        ResultKind::ProcessStatus => err!(process_status_result),
        ResultKind::NicInfo => err!(nic_info_result),
        ResultKind::NicReceive => err!(nic_receive_result),
        ResultKind::NicCounters => err!(nic_counters_result),
        ResultKind::NetworkInfo => err!(network_info_result),
        ResultKind::NetAddress => err!(net_address_result),
        ResultKind::UdpReceive => err!(udp_receive_result),
    }
}

/// The object that refuses every call with one reason, in each method's
/// own result shape: what a capability stands for when nothing behind it
/// can serve (the grant of a mount that failed at boot, a closed File, a
/// capability of an earlier instance of a service, a service whose disk
/// did not mount). A process holding one learns why on its first call;
/// one that never calls it never notices. The kernel's refusing object and
/// storage-fs-service both answer through it.
#[derive(Clone, Debug)]
pub struct Refusal(pub CapError);

impl Refusal {
    /// Answer `call` with the reason, if it is a call of one of
    /// `interfaces` (the ones this object stands in for);
    /// `UnknownInterface` otherwise, and `UnknownMethod` for a method the
    /// interface does not have, as from the real object.
    pub fn answer<R: Responder>(&self, interfaces: &[u64], call: &CallMessage, r: &mut R) -> Result<(), SysError> {
        if !interfaces.contains(&call.interface_id()) {
            return Err(SysError::UnknownInterface);
        }
        refuse_call(r, call.interface_id(), call.method_id(), self.0.clone())
    }
}

/// Answer a call of `method` on `interface_id` with `e`, whatever the
/// method (the object stands in for one that cannot serve). A method the
/// schema does not have is `UnknownMethod`, as from any object.
pub fn refuse_call<R: Responder>(r: &mut R, interface_id: u64, method: u16, e: CapError) -> Result<(), SysError> {
    let kind = result_kind(interface_id, method).ok_or(SysError::UnknownMethod)?;
    refuse(r, kind, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_abi::capos_capnp::ErrorCode;
    use capos_abi::helpers::read_error;
    use crate::testing::TestResponder;
    use capnp::schema_capnp::{code_generator_request, node};
    use std::collections::HashMap;
    use std::string::{String, ToString};

    static CGR: &[u8] = capos_abi::COMPILED_SCHEMA;

    #[test]
    fn every_method_of_every_interface_has_its_schema_result() {
        let mut options = capnp::message::ReaderOptions::new();
        options.traversal_limit_in_words(None);
        let msg = capnp::serialize::read_message(&mut &CGR[..], options).unwrap();
        let req = msg.get_root::<code_generator_request::Reader>().unwrap();
        let mut names: HashMap<u64, String> = HashMap::new();
        let mut ifaces: HashMap<String, node::Reader<'_>> = HashMap::new();
        for n in req.get_nodes().unwrap() {
            let full = n.get_display_name().unwrap().to_string().unwrap();
            let short = full.split_once(':').map(|(_, rest)| rest.to_string()).unwrap_or(full);
            names.insert(n.get_id(), short.clone());
            ifaces.insert(short, n);
        }
        let mut checked = 0;
        for (name, id, methods) in i::ALL {
            let node::Interface(iface) = ifaces[*name].which().unwrap() else { panic!("{name} is not an interface") };
            for m in iface.get_methods().unwrap() {
                let ordinal = m.get_code_order() as u16;
                let kind = result_kind(*id, ordinal).unwrap_or_else(|| panic!("{name}.{} has no result kind", methods[ordinal as usize]));
                assert_eq!(names[&m.get_result_struct_type()], kind.schema_name(), "{name}.{}", methods[ordinal as usize]);
                checked += 1;
            }
            assert_eq!(result_kind(*id, methods.len() as u16), None, "{name} past its last method");
        }
        assert!(checked >= 30, "only {checked} methods checked");
        assert_eq!(result_kind(0x1234, 0), None);
    }

    #[test]
    fn every_shape_reads_back_as_the_error() {
        use ResultKind::*;
        let e = || CapError::new(ErrorCode::Unavailable, "mount data failed: no device");
        let back = |r: &TestResponder, kind: ResultKind| -> CapError {
            macro_rules! read {
                ($m:ident) => {
                    r.get::<$m::Owned, _>(|x| match x.which().unwrap() {
                        $m::Which::Err(er) => read_error(er.unwrap()).unwrap(),
                        _ => panic!("{kind:?} answered ok"),
                    })
                };
            }
            match kind {
                Void => read!(void_result),
                UInt64 => read!(u_int64_result),
                Bool => read!(bool_result),
                Cap => read!(cap_result),
                Data => read!(data_result),
                Text => read!(text_result),
                List => read!(list_result),
                Keys => read!(keys_result),
                Stat => read!(stat_result),
                BlockInfo => read!(block_info_result),
                ProcessStatus => read!(process_status_result),
                NicInfo => read!(nic_info_result),
                NicReceive => read!(nic_receive_result),
                NicCounters => read!(nic_counters_result),
                NetworkInfo => read!(network_info_result),
                NetAddress => read!(net_address_result),
                UdpReceive => read!(udp_receive_result),
            }
        };
        for kind in [Void, UInt64, Bool, Cap, Data, Text, List, Keys, Stat, BlockInfo, ProcessStatus, NicInfo, NicReceive, NicCounters, NetworkInfo, NetAddress, UdpReceive] {
            let mut r = TestResponder::new();
            refuse(&mut r, kind, e()).unwrap();
            let got = back(&r, kind);
            assert_eq!((got.code, got.message.as_str()), (ErrorCode::Unavailable, "mount data failed: no device"), "{kind:?}");
            assert!(r.caps.is_empty() && r.bulk_out.is_none());
        }
        let mut r = TestResponder::new();
        refuse_call(&mut r, i::DIRECTORY, dm::LIST, e()).unwrap();
        assert_eq!(back(&r, List).code, ErrorCode::Unavailable);
        assert_eq!(refuse_call(&mut TestResponder::new(), i::DIRECTORY, 99, e()), Err(SysError::UnknownMethod));
    }
}
