//! The kernel's capability sources: what a manifest `grant NAME:
//! kernel:SOURCE` receives. One table ([`grant`]), read by the manifest
//! loader (to check a manifest before anything starts, then to make the
//! capabilities) and by the prompt's `mounts` command. The names and their
//! meaning are `capos_abi::manifest::KERNEL_SOURCES`, shared with mkmanifest.

use super::console::Console;
use super::directory::Directory;
use super::ping::KernelPing;
use super::read_only::ReadOnly;
use super::store::KernelStore;
use super::{Cap, KernelObject};
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use capos_abi::manifest::KernelSource;

/// A fresh capability for `source`, or why this kernel cannot give one
/// (an unmounted filesystem or store).
pub fn grant(source: &KernelSource) -> Result<Cap, String> {
    let obj: Arc<dyn KernelObject> = match (source.kind.prefix, source.instance) {
        ("console", None) => Arc::new(Console),
        ("ping", None) => Arc::new(KernelPing),
        ("fs" | "fs-ro", Some(name)) => {
            let mount = crate::storage::filesystem(name).ok_or_else(|| format!("no filesystem is mounted as '{name}'"))?;
            Arc::new(Directory::root(mount))
        }
        ("control", Some(name)) => Arc::new(super::control::ProcessControl { name: String::from(name) }),
        ("store" | "store-ro", Some(name)) => {
            let mount = crate::storage::store(name).ok_or_else(|| format!("no store is mounted as '{name}'"))?;
            Arc::new(KernelStore(mount))
        }
        (prefix, _) => return Err(format!("kernel source '{prefix}' is not provided by this kernel")),
    };
    Ok(Cap::kernel(if source.kind.read_only() { Arc::new(ReadOnly(obj)) } else { obj }))
}
