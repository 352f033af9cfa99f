//! What a read-only capability may do.
//!
//! Attenuation in capOS is structural: a read-only `Directory`, `File` or
//! `Store` is a wrapper object in front of the real one, not a rights bit
//! the real object checks. The wrapper asks [`read_only`] about each call:
//! reads pass through (and capabilities they return are wrapped again), and
//! mutations are answered by the wrapper itself with a `readOnly` error of
//! the method's result type, without reaching the object. Interfaces the
//! table does not know are refused whole (fail closed).

use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use capos_abi::interfaces::{self, directory_method as dm, file_method as fm, store_method as sm};

/// The result struct a method answers with, and the one encoder of an
/// error in that shape (shared with every other refusing object).
pub use capos_serve::refuse::{refuse, ResultKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Pass the call through; wrap returned capabilities read-only too.
    Read,
    /// Refuse with `readOnly`, encoded as this result kind.
    Mutation(ResultKind),
    /// The interface or method is not one the wrapper knows: refuse.
    Unknown,
}

pub fn read_only(interface_id: u64, method: u16) -> Access {
    use Access::*;
    use ResultKind::*;
    match (interface_id, method) {
        (interfaces::DIRECTORY, dm::OPEN | dm::LIST | dm::SUB) => Read,
        (interfaces::DIRECTORY, dm::MKDIR | dm::REMOVE | dm::RENAME) => Mutation(Void),
        (interfaces::DIRECTORY, dm::CREATE) => Mutation(Cap),
        (interfaces::FILE, fm::READ | fm::STAT | fm::CLOSE) => Read,
        (interfaces::FILE, fm::WRITE) => Mutation(UInt64),
        (interfaces::FILE, fm::TRUNCATE | fm::SYNC) => Mutation(Void),
        (interfaces::STORE, sm::GET | sm::HAS | sm::LIST) => Read,
        (interfaces::STORE, sm::PUT) => Mutation(Void),
        (interfaces::STORE, sm::DELETE) => Mutation(Bool),
        _ => Unknown,
    }
}

/// The `readOnly` error a wrapper answers a mutation with.
pub fn refusal(interface_id: u64, method: u16) -> CapError {
    CapError::new(
        ErrorCode::ReadOnly,
        &alloc::format!(
            "read-only capability: {}.{} refused",
            interfaces::name_of(interface_id).unwrap_or("?"),
            interfaces::method_name(interface_id, method).unwrap_or("?")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_storage_method_is_classified() {
        let reads = [
            (interfaces::DIRECTORY, dm::OPEN), (interfaces::DIRECTORY, dm::LIST), (interfaces::DIRECTORY, dm::SUB),
            (interfaces::FILE, fm::READ), (interfaces::FILE, fm::STAT), (interfaces::FILE, fm::CLOSE),
            (interfaces::STORE, sm::GET), (interfaces::STORE, sm::HAS), (interfaces::STORE, sm::LIST),
        ];
        for (i, m) in reads {
            assert_eq!(read_only(i, m), Access::Read, "{:#x}/{}", i, m);
        }
        let writes = [
            (interfaces::DIRECTORY, dm::MKDIR, ResultKind::Void), (interfaces::DIRECTORY, dm::REMOVE, ResultKind::Void),
            (interfaces::DIRECTORY, dm::CREATE, ResultKind::Cap), (interfaces::DIRECTORY, dm::RENAME, ResultKind::Void),
            (interfaces::FILE, fm::WRITE, ResultKind::UInt64), (interfaces::FILE, fm::TRUNCATE, ResultKind::Void),
            (interfaces::FILE, fm::SYNC, ResultKind::Void),
            (interfaces::STORE, sm::PUT, ResultKind::Void), (interfaces::STORE, sm::DELETE, ResultKind::Bool),
        ];
        for (i, m, k) in writes {
            assert_eq!(read_only(i, m), Access::Mutation(k), "{:#x}/{}", i, m);
        }
    }

    #[test]
    fn mutations_are_refused_in_their_schema_result_shape() {
        for (name, id, methods) in interfaces::ALL {
            for m in 0..methods.len() as u16 {
                if let Access::Mutation(kind) = read_only(*id, m) {
                    assert_eq!(Some(kind), capos_serve::refuse::result_kind(*id, m), "{name}.{}", methods[m as usize]);
                }
            }
        }
    }

    #[test]
    fn unknown_interfaces_and_methods_fail_closed() {
        assert_eq!(read_only(interfaces::FILE, 99), Access::Unknown);
        assert_eq!(read_only(interfaces::CONSOLE, 0), Access::Unknown);
        assert_eq!(read_only(0x1234, 0), Access::Unknown);
    }
}
