//! The kernel's capability sources: what a manifest `grant NAME:
//! kernel:SOURCE` receives. One table ([`grant`]), read by the manifest
//! loader (to check a manifest before anything starts, then to make the
//! capabilities) and by the prompt's `mounts` command. The names and their
//! meaning are `capos_abi::manifest::KERNEL_SOURCES`, shared with mkmanifest.

use super::block::{Block, RawBlock};
use super::console::Console;
use super::fs::FsCap;
use super::ping::KernelPing;
use super::read_only::ReadOnly;
use super::refusing::Refusing;
use super::store::KernelStore;
use super::{Cap, KernelObject};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::manifest::{KernelSource, MountFormat};
use capos_serve::block::ReadOnlyBlock;

/// A fresh capability for `source`, or why this kernel cannot give one
/// (an undeclared filesystem or store, a `block:` of a mount that is not
/// raw, a writable `block:` of a read-only raw mount). A declared mount
/// that failed at boot is not such a reason: its grant is a capability
/// answering `unavailable` ([`unavailable`]).
pub fn grant(source: &KernelSource) -> Result<Cap, String> {
    let obj: Arc<dyn KernelObject> = match (source.kind.prefix, source.instance) {
        ("console", None) => Arc::new(Console),
        ("ping", None) => Arc::new(KernelPing),
        ("clock", None) => Arc::new(super::clock::Clock),
        ("fs" | "fs-ro", Some(name)) => {
            let Some(mount) = crate::storage::filesystem(name) else {
                return unavailable(source, name, MountFormat::has_filesystem, || format!("no filesystem is mounted as '{name}'"));
            };
            // Read-only is the adapter's typed wrapper, inherited by what
            // the directory opens (capos_serve::fs), not the generic one below.
            return Ok(Cap::kernel(Arc::new(FsCap::root(mount, source.kind.read_only()))));
        }
        ("nic", Some(name)) => match crate::drivers::net::find(name) {
            Some(dev) => Arc::new(super::nic::Nic(dev)),
            // A machine without that card still boots its manifest (as
            // one without a disk does): the grant answers `unavailable`
            // and says why, and its holder decides what to do.
            None => {
                let found: alloc::vec::Vec<String> = crate::drivers::net::all().iter().map(|n| n.name.clone()).collect();
                let reason = format!("no network device '{name}' (found: {})", if found.is_empty() { String::from("none") } else { found.join(", ") });
                return Ok(Cap::kernel(Arc::new(Refusing::new(source.kind.interface_id, ErrorCode::Unavailable, reason))));
            }
        },
        ("control", Some(name)) => Arc::new(super::control::ProcessControl { name: String::from(name) }),
        ("store" | "store-ro", Some(name)) => {
            let Some(mount) = crate::storage::store(name) else {
                return unavailable(source, name, MountFormat::has_store, || format!("no store is mounted as '{name}'"));
            };
            Arc::new(KernelStore(mount))
        }
        ("block" | "block-ro", Some(name)) => {
            let Some(mount) = crate::storage::raw(name) else {
                return unavailable(source, name, MountFormat::is_raw, || format!("no raw mount '{name}' (block: needs 'mount {name}: raw on DEVICE')"));
            };
            // Attenuation is the wrapper in front of the blocks (it also
            // says readOnly in `info`), not the generic ReadOnly below.
            return Ok(Cap::kernel(match (source.kind.read_only(), mount.read_only) {
                (false, false) => Arc::new(Block(RawBlock(mount))),
                (true, _) => Arc::new(Block(ReadOnlyBlock(RawBlock(mount)))),
                (false, true) => return Err(format!("raw mount '{name}' is read-only: grant block-ro:{name}")),
            }));
        }
        (prefix, _) => return Err(format!("kernel source '{prefix}' is not provided by this kernel")),
    };
    Ok(Cap::kernel(if source.kind.read_only() { Arc::new(ReadOnly(obj)) } else { obj }))
}

/// The grant of mount `name` that is not mounted: if the manifest declared
/// it with a format that serves this source (`serves`) and it failed at
/// boot, a capability refusing every call with `unavailable` and the
/// mount's reason (a writable `block:` of a read-only raw mount is still
/// refused: the manifest is wrong whether or not the disk is there);
/// otherwise `missing()`.
fn unavailable(source: &KernelSource, name: &str, serves: fn(MountFormat) -> bool, missing: impl FnOnce() -> String) -> Result<Cap, String> {
    let Some((spec, reason)) = crate::storage::failed(name).filter(|(spec, _)| serves(spec.format)) else {
        return Err(missing());
    };
    if spec.format.is_raw() && spec.read_only && !source.kind.read_only() {
        return Err(format!("raw mount '{name}' is read-only: grant block-ro:{name}"));
    }
    let reason = format!("mount {name} failed: {reason}");
    Ok(Cap::kernel(Arc::new(Refusing::new(source.kind.interface_id, ErrorCode::Unavailable, reason))))
}
