//! What the kernel mounts: the manifest's `mount` lines, opened before any
//! process starts, and the backers the storage capabilities reach.
//!
//! Rules:
//! - Each mount stands alone. Every declared mount ends up mounted or
//!   failed with its reason (a missing device, a GPT that does not parse,
//!   a bad magic, corruption, an unknown incompatible feature), logged as
//!   `storage: mount NAME failed: ...`; the others are not affected, and
//!   processes start either way. A grant of a failed mount is a
//!   capability that answers every call with `unavailable` and that
//!   reason (`cap/refusing.rs`, made in `cap/sources.rs`), so a process
//!   that does not use it never notices. An image never panics the
//!   kernel: the engines return errors for everything they read.
//! - A block range serves one mount. The manifest already refuses two
//!   mounts on one device or partition by name; here, once partition
//!   tables are read, the resolved block ranges are checked again
//!   (`kcore::mount_claims`), so a partition named by number and the same
//!   one named by type are caught: the later mount fails, the others stand.
//! - Read-only is the engine's word: a mount asked read-only opens
//!   read-only, and an image with an unknown read-only-compatible feature
//!   opens read-only too (the log says so); mutations then fail with
//!   `readOnly` inside the engine.
//! - A `raw` mount opens no format: it claims its range like any mount
//!   (so no filesystem mount can reach the same blocks) and serves it as
//!   a `BlockDevice` (`block:NAME`, `block-ro:NAME`, `cap/block.rs`).
//!   The manifest allows at most one writable `block:` grant per raw mount.
//! - The kernel's wall clock stamps CAPOSWF1 times (provenance
//!   `wallClock`); without a clock source they read as `unknown`.

pub mod device;

use crate::drivers::block as blockdev;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use capos_abi::manifest::{MountFormat, MountSpec};
use capos_storage::partition::Partition;
use capos_storage::store::Store;
use capos_storage::writable_fs::{MountOptions, WritableFs};
use capos_storage::fat::{FatFs, FatPartition, MountOptions as FatOptions};
use capos_storage::{readonly_fs::ReadOnlyFs, BlockDevice, Clock, FileSystem, Provenance, Timestamp};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use device::{DevHandle, Range};
use crate::sync::{classes, Lock};
use capos_kcore::mount_claims::Claims;

/// The blocks a backer reads and writes: a range of a registered device.
pub type Dev = Partition<DevHandle>;

/// The kernel wall clock as a storage [`Clock`].
pub struct KernelClock;

impl Clock for KernelClock {
    fn now(&mut self) -> Timestamp {
        match crate::time::wall_now_ns() {
            Some(ns) => Timestamp::new(ns, Provenance::WallClock),
            None => Timestamp::UNKNOWN,
        }
    }
}

/// A mounted filesystem. `id` tells two mounts apart (a rename may only
/// move within one).
pub struct FsMount {
    pub id: u64,
    pub name: String,
    pub fs: Lock<Box<dyn FileSystem + Send>>,
}

/// A mounted store, and how many compactions were logged so far.
pub struct StoreMount {
    pub name: String,
    pub store: Lock<Store<Dev>>,
    compactions_logged: AtomicU64,
}

impl StoreMount {
    /// Log the compactions the engine ran since the last call.
    pub fn log_compactions(&self, store: &Store<Dev>) {
        let seen = self.compactions_logged.swap(store.compactions, Ordering::Relaxed);
        if store.compactions > seen {
            log::info!(
                "storage: {}: compaction #{} ({}, {} heap bytes in use)",
                self.name,
                store.compactions,
                capos_text::count::count(store.len(), "live key", "live keys"),
                store.heap_used()
            );
        }
    }
}

/// A raw mount: its claimed range as one device, served by `cap/block.rs`.
pub struct RawMount {
    pub dev: Lock<Dev>,
    /// The mount said `read-only`: every grant of it is read-only.
    pub read_only: bool,
}

pub struct Mounted {
    pub spec: MountSpec,
    pub fs: Option<Arc<FsMount>>,
    pub store: Option<Arc<StoreMount>>,
    pub raw: Option<Arc<RawMount>>,
    /// One line for the log and the prompt.
    pub summary: String,
}

/// A declared mount: what it opened, or why it did not.
pub enum Mount {
    Mounted(Mounted),
    Failed { spec: MountSpec, reason: String },
}

static MOUNTS: Lock<Vec<Mount>> = Lock::new(&classes::STORAGE_MOUNTS, Vec::new());
/// A manifest got as far as its mounts ([`mount_all`] ran, maybe on none).
static MOUNTS_READ: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn mounted<T>(name: &str, f: impl Fn(&Mounted) -> Option<T>) -> Option<T> {
    MOUNTS.lock().iter().find_map(|m| match m {
        Mount::Mounted(m) if m.spec.name == name => f(m),
        _ => None,
    })
}

/// The filesystem of mount `name`.
pub fn filesystem(name: &str) -> Option<Arc<FsMount>> {
    mounted(name, |m| m.fs.clone())
}

/// The store of mount `name`.
pub fn store(name: &str) -> Option<Arc<StoreMount>> {
    mounted(name, |m| m.store.clone())
}

/// The raw mount `name`.
pub fn raw(name: &str) -> Option<Arc<RawMount>> {
    mounted(name, |m| m.raw.clone())
}

/// Mount `name` was declared and failed: its declaration and the reason.
pub fn failed(name: &str) -> Option<(MountSpec, String)> {
    MOUNTS.lock().iter().find_map(|m| match m {
        Mount::Failed { spec, reason } if spec.name == name => Some((spec.clone(), reason.clone())),
        _ => None,
    })
}

/// Every declared mount, in manifest order, for the prompt; false when no
/// manifest got as far as its mounts (none was found, or it was refused).
pub fn with_mounts(mut f: impl FnMut(&Mount)) -> bool {
    for m in MOUNTS.lock().iter() {
        f(m);
    }
    MOUNTS_READ.load(Ordering::Acquire)
}

/// Mount everything `specs` names, each on its own: a mount that fails
/// (its device, its partition table, its image, or blocks another mount
/// claimed) is kept as failed with its reason and logged; the others are
/// mounted regardless. Returns (mounted, failed).
pub fn mount_all(specs: &[MountSpec]) -> (usize, usize) {
    let mut claims = Claims::new();
    let mut all: Vec<Mount> = Vec::new();
    let (mut ok, mut failed) = (0, 0);
    for spec in specs {
        let outcome = device::resolve(spec).and_then(|range| {
            claims.claim(&spec.name, &range.device, range.start, range.count)?;
            open(spec, range)
        });
        match outcome {
            Ok(m) => {
                log::info!("storage: mounted {}", m.summary);
                ok += 1;
                all.push(Mount::Mounted(m));
            }
            Err(reason) => {
                log::error!("storage: mount {} failed: {} on {}: {}", spec.name, spec.format.name(), spec.target(), reason);
                failed += 1;
                all.push(Mount::Failed { spec: spec.clone(), reason });
            }
        }
    }
    *MOUNTS.lock() = all;
    MOUNTS_READ.store(true, Ordering::Release);
    (ok, failed)
}

fn open(spec: &MountSpec, range: Range) -> Result<Mounted, String> {
    let dev = |start: u64, count: u64| -> Result<Dev, String> {
        Partition::new(DevHandle(range.shared.clone()), range.start + start, count).map_err(|e| e.to_string())
    };
    let mut notes: Vec<String> = Vec::new();
    let (mut fs, mut store, mut raw) = (None, None, None);
    let (fs_range, store_range) = match spec.format {
        MountFormat::Raw => {
            let d = dev(0, range.count)?;
            notes.push(format!("{} blocks of {} bytes served as BlockDevice", range.count, d.block_size()));
            raw = Some(Arc::new(RawMount { dev: Lock::new(&classes::STORAGE_RAW, d), read_only: spec.read_only }));
            (None, None)
        }
        MountFormat::CaposRo1 | MountFormat::CaposWf1 | MountFormat::Fat => (Some((0, range.count)), None),
        MountFormat::CaposSt1 => (None, Some((0, range.count))),
        MountFormat::Colocated => {
            let layout = capos_storage::colocated::locate(&mut dev(0, range.count)?).map_err(|e| e.to_string())?;
            notes.push(format!("store {} blocks + filesystem {} blocks", layout.store_blocks, layout.fs_blocks));
            (Some((layout.fs_start, layout.fs_blocks)), Some((0, layout.store_blocks)))
        }
    };
    if let Some((start, count)) = store_range {
        let s = Store::mount(dev(start, count)?, spec.read_only).map_err(|e| format!("CAPOSST1: {e}"))?;
        if s.is_read_only() && !spec.read_only {
            notes.push("store read-only: the image has read-only-compatible features this kernel does not know".into());
        }
        if let Some(skipped) = s.skipped_commit() {
            log::warn!("storage: {}: the newest store commit is damaged ({}); mounted the one before it", spec.name, skipped);
        }
        if let Some(unfinished) = s.unfinished_commit() {
            notes.push(format!("unfinished commit {} rolled back ({})", unfinished.generation, unfinished.why));
        }
        notes.push(format!("store generation {}, {}{}", s.generation(), capos_text::count::count(s.len(), "key", "keys"), if s.is_read_only() { ", read-only" } else { "" }));
        store = Some(Arc::new(StoreMount { name: spec.name.clone(), store: Lock::new(&classes::STORAGE_STORE, s), compactions_logged: AtomicU64::new(0) }));
    }
    if let Some((start, count)) = fs_range {
        let boxed: Box<dyn FileSystem + Send> = if spec.format == MountFormat::CaposRo1 {
            let f = ReadOnlyFs::mount(dev(start, count)?).map_err(|e| format!("CAPOSRO1: {e}"))?;
            notes.push(format!("{}, read-only by format", capos_text::count::count(f.node_count(), "node", "nodes")));
            Box::new(f)
        } else if spec.format == MountFormat::Fat {
            let partition = match range.mbr_partition {
                Some(n) => FatPartition::Mbr(n),
                None => FatPartition::Auto,
            };
            let f = FatFs::mount(dev(start, count)?, FatOptions { partition }).map_err(|e| format!("FAT: {e}"))?;
            let g = f.geometry();
            let (first, blocks) = f.volume_extent();
            notes.push(format!(
                "{}, {} clusters of {} bytes, volume at blocks {}..{}, read-only by format",
                f.fat_type().label(),
                g.cluster_count,
                g.cluster_bytes,
                first,
                first + blocks
            ));
            Box::new(f)
        } else {
            let f = WritableFs::mount(dev(start, count)?, KernelClock, MountOptions { read_only: spec.read_only })
                .map_err(|e| format!("CAPOSWF1: {e}"))?;
            if f.is_read_only() && !spec.read_only {
                notes.push("filesystem read-only: the image has read-only-compatible features this kernel does not know".into());
            }
            if let Some(skipped) = f.skipped_commit() {
                log::warn!("storage: {}: the newest filesystem commit is damaged ({}); mounted the one before it", spec.name, skipped);
            }
            notes.push(format!(
                "filesystem generation {}, {}, {}{}",
                f.generation(),
                capos_text::count::count(f.live_nodes(), "node", "nodes"),
                capos_text::count::count(f.free_blocks(), "free block", "free blocks"),
                if f.is_read_only() { ", read-only" } else { "" }
            ));
            Box::new(f)
        };
        fs = Some(Arc::new(FsMount { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), name: spec.name.clone(), fs: Lock::new(&classes::STORAGE_FS, boxed) }));
    }
    let summary = format!(
        "{}: {} on {} (blocks {}..{}){}{}",
        spec.name,
        spec.format.name(),
        spec.target(),
        range.start,
        range.end(),
        if spec.read_only { ", read-only" } else { "" },
        if notes.is_empty() { String::new() } else { format!("; {}", notes.join("; ")) }
    );
    Ok(Mounted { spec: spec.clone(), fs, store, raw, summary })
}

/// The registered block devices, for error messages.
pub fn device_names() -> String {
    let names: Vec<String> = blockdev::all().into_iter().map(|(n, _, _)| n).collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

