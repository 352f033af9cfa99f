//! Interface ids and method ordinals, as constants.
//!
//! A `Call` names its target method by (interface id, ordinal). The ids are
//! the explicit `@0x...` ids in `schema/capos.capnp`, taken here from the
//! generated code so they cannot disagree with it; the ordinals are the
//! contract of DESIGN.md ("Contracts that must not drift"). The tests below
//! read the compiled schema and fail if a name, ordinal or id moves.

use crate::capos_capnp::{block_device, clock, console, directory, endpoint, file, network, nic, ping, process_control, store, tcp_listener, tcp_stream, udp_socket};
use capnp::traits::HasTypeId;

pub const DIRECTORY: u64 = <directory::Client as HasTypeId>::TYPE_ID;
pub const FILE: u64 = <file::Client as HasTypeId>::TYPE_ID;
pub const STORE: u64 = <store::Client as HasTypeId>::TYPE_ID;
pub const CONSOLE: u64 = <console::Client as HasTypeId>::TYPE_ID;
pub const ENDPOINT: u64 = <endpoint::Client as HasTypeId>::TYPE_ID;
pub const PING: u64 = <ping::Client as HasTypeId>::TYPE_ID;
pub const BLOCK_DEVICE: u64 = <block_device::Client as HasTypeId>::TYPE_ID;
pub const CLOCK: u64 = <clock::Client as HasTypeId>::TYPE_ID;
pub const PROCESS_CONTROL: u64 = <process_control::Client as HasTypeId>::TYPE_ID;
pub const NIC: u64 = <nic::Client as HasTypeId>::TYPE_ID;
pub const NETWORK: u64 = <network::Client as HasTypeId>::TYPE_ID;
pub const TCP_LISTENER: u64 = <tcp_listener::Client as HasTypeId>::TYPE_ID;
pub const TCP_STREAM: u64 = <tcp_stream::Client as HasTypeId>::TYPE_ID;
pub const UDP_SOCKET: u64 = <udp_socket::Client as HasTypeId>::TYPE_ID;

/// `Directory` method ordinals.
pub mod directory_method {
    pub const OPEN: u16 = 0;
    pub const LIST: u16 = 1;
    pub const MKDIR: u16 = 2;
    pub const REMOVE: u16 = 3;
    pub const SUB: u16 = 4;
    pub const CREATE: u16 = 5;
    pub const RENAME: u16 = 6;
}

/// `File` method ordinals.
pub mod file_method {
    pub const READ: u16 = 0;
    pub const WRITE: u16 = 1;
    pub const STAT: u16 = 2;
    pub const TRUNCATE: u16 = 3;
    pub const SYNC: u16 = 4;
    pub const CLOSE: u16 = 5;
}

/// `Store` method ordinals.
pub mod store_method {
    pub const PUT: u16 = 0;
    pub const GET: u16 = 1;
    pub const HAS: u16 = 2;
    pub const DELETE: u16 = 3;
    pub const LIST: u16 = 4;
}

/// `Console` method ordinals.
pub mod console_method {
    pub const WRITE_LINE: u16 = 0;
    pub const READ_LINE: u16 = 1;
}

/// `Endpoint` method ordinals.
pub mod endpoint_method {
    pub const MINT: u16 = 0;
    pub const BADGE_OF: u16 = 1;
}

/// `Ping` method ordinals.
pub mod ping_method {
    pub const PING: u16 = 0;
    pub const ECHO: u16 = 1;
    pub const SESSION: u16 = 2;
    pub const ECHO_BULK: u16 = 3;
}

/// `BlockDevice` method ordinals.
pub mod block_method {
    pub const INFO: u16 = 0;
    pub const READ: u16 = 1;
    pub const WRITE: u16 = 2;
    pub const FLUSH: u16 = 3;
}

/// `Clock` method ordinals.
pub mod clock_method {
    pub const NOW: u16 = 0;
}

/// `ProcessControl` method ordinals.
pub mod process_control_method {
    pub const KILL: u16 = 0;
    pub const STATUS: u16 = 1;
}

/// `Nic` method ordinals.
pub mod nic_method {
    pub const INFO: u16 = 0;
    pub const TRANSMIT: u16 = 1;
    pub const RECEIVE: u16 = 2;
    pub const COUNTERS: u16 = 3;
}

/// `Network` method ordinals.
pub mod network_method {
    pub const INFO: u16 = 0;
    pub const LISTEN: u16 = 1;
    pub const CONNECT: u16 = 2;
    pub const UDP_BIND: u16 = 3;
}

/// `TcpListener` method ordinals.
pub mod tcp_listener_method {
    pub const ACCEPT: u16 = 0;
    pub const LOCAL: u16 = 1;
    pub const CLOSE: u16 = 2;
}

/// `TcpStream` method ordinals.
pub mod tcp_stream_method {
    pub const READ: u16 = 0;
    pub const WRITE: u16 = 1;
    pub const SHUTDOWN: u16 = 2;
    pub const CLOSE: u16 = 3;
    pub const PEER: u16 = 4;
    pub const LOCAL: u16 = 5;
}

/// `UdpSocket` method ordinals.
pub mod udp_socket_method {
    pub const SEND: u16 = 0;
    pub const RECEIVE: u16 = 1;
    pub const LOCAL: u16 = 2;
    pub const CLOSE: u16 = 3;
}

/// Every interface: (name in the schema, id, method names by ordinal).
pub const ALL: &[(&str, u64, &[&str])] = &[
    ("Directory", DIRECTORY, &["open", "list", "mkdir", "remove", "sub", "create", "rename"]),
    ("File", FILE, &["read", "write", "stat", "truncate", "sync", "close"]),
    ("Store", STORE, &["put", "get", "has", "delete", "list"]),
    ("Console", CONSOLE, &["writeLine", "readLine"]),
    ("Endpoint", ENDPOINT, &["mint", "badgeOf"]),
    ("Ping", PING, &["ping", "echo", "session", "echoBulk"]),
    ("BlockDevice", BLOCK_DEVICE, &["info", "read", "write", "flush"]),
    ("ProcessControl", PROCESS_CONTROL, &["kill", "status"]),
    ("Clock", CLOCK, &["now"]),
    ("Nic", NIC, &["info", "transmit", "receive", "counters"]),
    ("Network", NETWORK, &["info", "listen", "connect", "udpBind"]),
    ("TcpListener", TCP_LISTENER, &["accept", "local", "close"]),
    ("TcpStream", TCP_STREAM, &["read", "write", "shutdown", "close", "peer", "local"]),
    ("UdpSocket", UDP_SOCKET, &["send", "receive", "local", "close"]),
];

/// The schema name of an interface id (for logs), if it is one of ours.
pub fn name_of(interface_id: u64) -> Option<&'static str> {
    ALL.iter().find(|(_, id, _)| *id == interface_id).map(|(name, _, _)| *name)
}

/// The method name for (interface, ordinal), if both exist.
pub fn method_name(interface_id: u64, method_id: u16) -> Option<&'static str> {
    ALL.iter()
        .find(|(_, id, _)| *id == interface_id)
        .and_then(|(_, _, methods)| methods.get(method_id as usize).copied())
}

#[cfg(test)]
mod tests {
    use super::*;
    use capnp::schema_capnp::{code_generator_request, node};
    use std::collections::HashMap;

    /// The CodeGeneratorRequest `capnp compile` produced for this build.
    static CGR: &[u8] = crate::COMPILED_SCHEMA;

    /// Every node of the compiled schema, keyed by its display name without
    /// the file prefix ("Directory", "Stat", ...).
    fn with_nodes<R>(f: impl FnOnce(&HashMap<String, node::Reader<'_>>) -> R) -> R {
        let mut options = capnp::message::ReaderOptions::new();
        options.traversal_limit_in_words(None);
        let msg = capnp::serialize::read_message(&mut &CGR[..], options).unwrap();
        let req = msg.get_root::<code_generator_request::Reader>().unwrap();
        let mut nodes = HashMap::new();
        for n in req.get_nodes().unwrap() {
            // "capos.capnp:Directory" -> "Directory"; nested nodes keep their
            // parent ("Directory.open$Params").
            let full = n.get_display_name().unwrap().to_string().unwrap();
            let key = full.split_once(':').map(|(_, rest)| rest.to_string()).unwrap_or(full);
            nodes.insert(key, n);
        }
        f(&nodes)
    }

    #[test]
    fn file_id_is_fixed() {
        let mut options = capnp::message::ReaderOptions::new();
        options.traversal_limit_in_words(None);
        let msg = capnp::serialize::read_message(&mut &CGR[..], options).unwrap();
        let req = msg.get_root::<code_generator_request::Reader>().unwrap();
        let file = req.get_requested_files().unwrap().get(0);
        assert_eq!(file.get_id(), 0xad8c_e303_fd16_20fc, "the schema file id must never change");
    }

    #[test]
    fn interface_ids_and_method_ordinals_match_the_contract() {
        // Pinned ids: changing one breaks every binary built before.
        assert_eq!(DIRECTORY, 0xff6c_69db_78cd_a102);
        assert_eq!(FILE, 0xe68e_4df8_b3fa_eb24);
        assert_eq!(STORE, 0x8bbf_15ab_1dce_c557);
        assert_eq!(CONSOLE, 0x95c1_f531_14cf_d349);
        assert_eq!(ENDPOINT, 0xaeae_efc5_c08a_4c81);
        assert_eq!(PING, 0xe963_f547_c7c2_8724);
        assert_eq!(BLOCK_DEVICE, 0xcabc_0a58_8a53_7a84);
        assert_eq!(PROCESS_CONTROL, 0xcdf0_ff86_2f58_2772);
        assert_eq!(CLOCK, 0xc4b6_55d8_a98c_884d);
        assert_eq!(NIC, 0x9587_022b_73d9_7181);
        assert_eq!(NETWORK, 0xbd40_2108_16ed_2a86);
        assert_eq!(TCP_LISTENER, 0x8da0_795c_c14e_d413);
        assert_eq!(TCP_STREAM, 0x9bcd_496f_352a_831e);
        assert_eq!(UDP_SOCKET, 0xff49_4c31_385c_a06d);
        with_nodes(|nodes| {
            for (name, id, methods) in ALL {
                let n = nodes.get(*name).unwrap_or_else(|| panic!("interface {name} missing from the schema"));
                assert_eq!(n.get_id(), *id, "{name} id");
                let node::Interface(iface) = n.which().unwrap() else { panic!("{name} is not an interface") };
                let schema_methods = iface.get_methods().unwrap();
                assert_eq!(schema_methods.len() as usize, methods.len(), "{name} method count");
                for m in schema_methods {
                    let ordinal = m.get_code_order() as usize;
                    let mname = m.get_name().unwrap().to_str().unwrap();
                    assert_eq!(methods[ordinal], mname, "{name}.{mname} must be @{ordinal}");
                }
            }
        });
        // The DESIGN.md contract, spelled out once more by constant.
        use directory_method as d;
        assert_eq!([d::OPEN, d::LIST, d::MKDIR, d::REMOVE, d::SUB, d::CREATE, d::RENAME], [0, 1, 2, 3, 4, 5, 6]);
        use file_method as f;
        assert_eq!([f::READ, f::WRITE, f::STAT, f::TRUNCATE, f::SYNC, f::CLOSE], [0, 1, 2, 3, 4, 5]);
        use store_method as s;
        assert_eq!([s::PUT, s::GET, s::HAS, s::DELETE, s::LIST], [0, 1, 2, 3, 4]);
        assert_eq!(method_name(DIRECTORY, d::RENAME), Some("rename"));
        assert_eq!(method_name(FILE, f::CLOSE), Some("close"));
        assert_eq!(method_name(STORE, s::DELETE), Some("delete"));
        assert_eq!(method_name(CONSOLE, console_method::WRITE_LINE), Some("writeLine"));
        assert_eq!(method_name(CONSOLE, console_method::READ_LINE), Some("readLine"));
        assert_eq!(method_name(CONSOLE, 2), None);
        assert_eq!(method_name(ENDPOINT, endpoint_method::MINT), Some("mint"));
        assert_eq!(method_name(PING, ping_method::SESSION), Some("session"));
        assert_eq!(method_name(STORE, s::LIST), Some("list"));
        assert_eq!(method_name(PROCESS_CONTROL, process_control_method::KILL), Some("kill"));
        assert_eq!(method_name(PROCESS_CONTROL, process_control_method::STATUS), Some("status"));
        assert_eq!(method_name(STORE, 5), None);
        use block_method as b;
        assert_eq!([b::INFO, b::READ, b::WRITE, b::FLUSH], [0, 1, 2, 3]);
        assert_eq!(method_name(BLOCK_DEVICE, b::FLUSH), Some("flush"));
        assert_eq!(name_of(0x1234), None);
        assert_eq!(name_of(CONSOLE), Some("Console"));
    }

    #[test]
    fn envelope_ids_are_pinned() {
        use capnp::traits::HasTypeId;
        use crate::capos_capnp as c;
        assert_eq!(<c::start_info::Reader as HasTypeId>::TYPE_ID, 0xa525_7900_c77b_9c06);
        assert_eq!(<c::manifest::Reader as HasTypeId>::TYPE_ID, 0x8579_300a_f96e_2e0e);
    }

    #[test]
    fn stat_and_error_fields_are_where_clients_expect_them() {
        // Field ordinals of the structs clients match on.
        let expect: &[(&str, &[&str])] = &[
            ("Stat", &["size", "kind", "created", "modified"]),
            ("Timestamp", &["unixNanos", "provenance"]),
            ("Error", &["code", "message"]),
            ("DirEntry", &["name", "kind", "size"]),
            ("BlockInfo", &["blockSize", "blockCount", "readOnly"]),
            ("NetAddress", &["ip", "port"]),
            ("NetworkInfo", &["address", "prefixLength", "gateway", "dhcp", "mac", "linkUp", "counters", "openSockets"]),
            ("UdpDatagram", &["length", "peer"]),
            ("GrantTerms", &["endpoint", "badge", "terms"]),
        ];
        with_nodes(|nodes| {
            for (name, fields) in expect {
                let n = nodes.get(*name).unwrap_or_else(|| panic!("{name} missing"));
                let node::Struct(s) = n.which().unwrap() else { panic!("{name} is not a struct") };
                for f in s.get_fields().unwrap() {
                    let fname = f.get_name().unwrap().to_str().unwrap();
                    let ordinal = match f.get_ordinal().which().unwrap() {
                        capnp::schema_capnp::field::ordinal::Explicit(o) => o as usize,
                        capnp::schema_capnp::field::ordinal::Implicit(()) => panic!("{name}.{fname} has no ordinal"),
                    };
                    assert_eq!(fields[ordinal], fname, "{name}.{fname} must be @{ordinal}");
                }
            }
        });
        // Enum values the kernel and the storage crate map by number.
        use crate::capos_capnp::{ErrorCode, NodeKind, TimeProvenance};
        assert_eq!(TimeProvenance::Unknown as u16, 0);
        assert_eq!(TimeProvenance::WallClock as u16, 1);
        assert_eq!(TimeProvenance::Rtc as u16, 2);
        assert_eq!(TimeProvenance::FatDirectoryEntry as u16, 3);
        assert_eq!(TimeProvenance::FixedSourceDateEpoch as u16, 4);
        assert_eq!(TimeProvenance::HostFileMtime as u16, 5);
        assert_eq!(NodeKind::File as u16, 0);
        assert_eq!(NodeKind::Directory as u16, 1);
        assert_eq!(ErrorCode::Unspecified as u16, 0);
        assert_eq!(ErrorCode::NotFound as u16, 1);
        assert_eq!(ErrorCode::ReadOnly as u16, 6);
        assert_eq!(ErrorCode::StaleHandle as u16, 14);
        assert_eq!(ErrorCode::Busy as u16, 16);
        assert_eq!(ErrorCode::Unavailable as u16, 17);
        assert_eq!(ErrorCode::TimedOut as u16, 18);
        assert_eq!(ErrorCode::ConnectionRefused as u16, 19);
        assert_eq!(ErrorCode::ConnectionReset as u16, 20);
    }
}
