//! The image-building commands.
//!
//! Every size comes from the user, so a size no format can hold, or a
//! number whose byte count overflows, is a usage error found before any
//! memory is allocated; so is a seed that does not fit.

use super::{build_time, source_date_epoch, CommandResult, Failure, Options};
use crate::host_tree::{read_host_tree, TreeError};
use crate::kv_file;
use capos_storage::colocated::{self, DEFAULT_STORE_BLOCKS};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::partition::Partition;
use capos_storage::readonly_fs::{build_image, SourceNode};
use capos_storage::store::{self, Store, StoreGeometry};
use capos_storage::writable_fs::{self, MountOptions, WfGeometry, WritableFs, NVME_NAMESPACE_BLOCKS};
use capos_storage::{BlockDevice, FileSystem, FixedClock, NodeHandle, StorageError, Timestamp, SECTOR_SIZE};
use std::path::Path;

/// Default size of a `--writable` image: 4 MiB.
pub const DEFAULT_WRITABLE_BLOCKS: u64 = 8192;
/// Default size of a `--store` image: 1 MiB.
pub const DEFAULT_STORE_IMAGE_BLOCKS: u64 = DEFAULT_STORE_BLOCKS;
/// Default size of a `--colocated` image: 1 MiB store + 4 MiB filesystem.
pub const DEFAULT_COLOCATED_BLOCKS: u64 = DEFAULT_STORE_BLOCKS + DEFAULT_WRITABLE_BLOCKS;

pub fn build(options: Options) -> CommandResult {
    let output = options.output.clone().ok_or_else(|| Failure::usage("missing -o/--output FILE"))?;
    let now = build_time()?;
    let unused = |flag: &str, set: bool| -> Result<(), Failure> {
        if set {
            Err(Failure::usage(format!("{flag} does not apply to {}", options.mode)))
        } else {
            Ok(())
        }
    };
    let image = match options.mode.as_str() {
        "--readonly-fs" => {
            unused("--blocks", options.blocks.is_some())?;
            unused("--seed", options.seed.is_some())?;
            let dir = options.readonly_dir.as_deref().unwrap_or_default();
            let tree = read_host_tree(Path::new(dir), source_date_epoch()?).map_err(tree_failure)?;
            build_image(&tree, now).map_err(|e| Failure::input("building CAPOSRO1", e))?
        }
        "--writable" | "--writable-nvme" => {
            let blocks = if options.mode == "--writable-nvme" {
                unused("--blocks", options.blocks.is_some())?;
                NVME_NAMESPACE_BLOCKS
            } else {
                options.blocks.unwrap_or(DEFAULT_WRITABLE_BLOCKS)
            };
            check_writable_size("--blocks", blocks)?;
            let mut device = new_device(blocks)?;
            make_writable(&mut device, options.seed.as_deref(), now)?;
            device.into_bytes()
        }
        "--store" => {
            let blocks = options.blocks.unwrap_or(DEFAULT_STORE_IMAGE_BLOCKS);
            check_store_size("--blocks", blocks)?;
            let mut device = new_device(blocks)?;
            make_store(&mut device, options.seed.as_deref())?;
            device.into_bytes()
        }
        "--colocated" => {
            unused("--seed", options.seed.is_some())?;
            let store_blocks = options.store_blocks.unwrap_or(DEFAULT_STORE_BLOCKS);
            let total = options.blocks.unwrap_or(DEFAULT_COLOCATED_BLOCKS);
            check_store_size("--store-blocks", store_blocks)?;
            let fs_blocks = total.checked_sub(store_blocks).filter(|&n| n > 0).ok_or_else(|| {
                Failure::usage(format!("--store-blocks {store_blocks} leaves no room for the filesystem in --blocks {total}"))
            })?;
            check_writable_size("--blocks minus --store-blocks", fs_blocks)?;
            let mut device = new_device(total)?;
            let layout = colocated::format(&mut device, store_blocks, now)
                .map_err(|e| Failure::input("formatting co-located image", e))?;
            make_store(&mut Partition::new(&mut device, 0, store_blocks).map_err(io_layout)?, options.store_seed.as_deref())?;
            make_writable(
                &mut Partition::new(&mut device, layout.fs_start, layout.fs_blocks).map_err(io_layout)?,
                options.fs_seed.as_deref(),
                now,
            )?;
            device.into_bytes()
        }
        other => return Err(Failure::usage(format!("unknown image kind {other}"))),
    };
    std::fs::write(&output, &image).map_err(|e| Failure::io(format!("{output}: {e}")))?;
    Ok(())
}

fn tree_failure(e: TreeError) -> Failure {
    match e {
        TreeError::Io(message) => Failure::io(message),
        TreeError::Unsupported(message) => Failure::usage(message),
    }
}

/// Whether CAPOSWF1 can lay itself out over `blocks`.
fn check_writable_size(what: &str, blocks: u64) -> CommandResult {
    WfGeometry::compute(blocks, WfGeometry::default_node_capacity(blocks))
        .map(|_| ())
        .map_err(|e| Failure::usage(format!("{what} {blocks}: not a CAPOSWF1 size: {e}")))
}

/// Whether CAPOSST1 can lay itself out over `blocks`.
fn check_store_size(what: &str, blocks: u64) -> CommandResult {
    StoreGeometry::compute(blocks, StoreGeometry::default_slot_blocks(blocks))
        .map(|_| ())
        .map_err(|e| Failure::usage(format!("{what} {blocks}: not a CAPOSST1 size: {e}")))
}

/// A zeroed in-memory device of `blocks` blocks; a byte count that
/// overflows, or memory the host cannot give, is an error, not an abort.
fn new_device(blocks: u64) -> Result<MemBlockDevice, Failure> {
    let bytes = blocks
        .checked_mul(SECTOR_SIZE as u64)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Failure::usage(format!("{blocks} blocks of {SECTOR_SIZE} bytes do not fit in memory")))?;
    let mut image = Vec::new();
    image
        .try_reserve_exact(bytes)
        .map_err(|_| Failure::usage(format!("cannot allocate {bytes} bytes for a {blocks}-block image")))?;
    image.resize(bytes, 0);
    Ok(MemBlockDevice::from_bytes(image))
}

fn io_layout(e: capos_storage::BlockError) -> Failure {
    Failure::input("layout", StorageError::Device(e))
}

/// Format a CAPOSWF1 volume over `device` and copy a host tree into it.
fn make_writable<D: BlockDevice>(device: &mut D, seed: Option<&str>, now: Timestamp) -> CommandResult {
    writable_fs::format(device, None, now).map_err(|e| Failure::input("formatting CAPOSWF1", e))?;
    let Some(seed) = seed else { return Ok(()) };
    let tree = read_host_tree(Path::new(seed), source_date_epoch()?).map_err(tree_failure)?;
    let mut fs = WritableFs::mount(&mut *device, FixedClock(now), MountOptions::default())
        .map_err(|e| Failure::input("mounting new CAPOSWF1", e))?;
    let root = fs.root();
    copy_tree(&mut fs, root, &tree).map_err(|e| Failure::usage(format!("seeding from {seed}: {e}")))?;
    fs.sync().map_err(|e| Failure::input("sync", e))
}

/// Copy `node`'s children into `dir`, depth first in entry order (the
/// order fixes the image bytes), without recursion.
fn copy_tree<F: FileSystem>(fs: &mut F, dir: NodeHandle, node: &SourceNode) -> Result<(), StorageError> {
    let SourceNode::Directory { entries, .. } = node else { return Ok(()) };
    let mut stack = vec![(dir, entries.iter())];
    while let Some((dir, remaining)) = stack.last_mut() {
        let dir = *dir;
        let Some((name, child)) = remaining.next() else {
            stack.pop();
            continue;
        };
        match child {
            SourceNode::Directory { entries, .. } => {
                let sub = fs.mkdir(dir, name)?;
                stack.push((sub, entries.iter()));
            }
            SourceNode::File { data, .. } => {
                let file = fs.create(dir, name)?;
                fs.write(file, 0, data)?;
            }
        }
    }
    Ok(())
}

/// Format a CAPOSST1 volume over `device` and load a key/value file into it.
fn make_store<D: BlockDevice>(device: &mut D, seed: Option<&str>) -> CommandResult {
    store::format(device, None).map_err(|e| Failure::input("formatting CAPOSST1", e))?;
    let Some(seed) = seed else { return Ok(()) };
    let text = std::fs::read_to_string(seed).map_err(|e| match e.kind() {
        std::io::ErrorKind::InvalidData => Failure::usage(format!("{seed}: not UTF-8 text (write other bytes as %XX)")),
        _ => Failure::io(format!("{seed}: {e}")),
    })?;
    let entries = kv_file::parse(&text).map_err(|e| Failure::usage(format!("{seed}: {e}")))?;
    let mut store = Store::mount(&mut *device, false).map_err(|e| Failure::input("mounting new CAPOSST1", e))?;
    for (key, value) in entries {
        store
            .put(&key, &value)
            .map_err(|e| Failure::usage(format!("{seed}: key {}: {e}", kv_file::escape(&key))))?;
    }
    Ok(())
}
