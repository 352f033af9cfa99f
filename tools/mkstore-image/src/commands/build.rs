//! The image-building commands.

use super::{build_time, source_date_epoch, CommandResult, Failure, Options};
use crate::host_tree::read_host_tree;
use crate::kv_file;
use capos_storage::colocated::{self, DEFAULT_STORE_BLOCKS};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::partition::Partition;
use capos_storage::readonly_fs::{build_image, SourceNode};
use capos_storage::store::{self, Store};
use capos_storage::writable_fs::{self, MountOptions, WritableFs, NVME_NAMESPACE_BLOCKS};
use capos_storage::{BlockDevice, FileSystem, FixedClock, NodeHandle, StorageError, Timestamp};
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
            let tree = read_host_tree(Path::new(dir), source_date_epoch()?).map_err(Failure::usage)?;
            build_image(&tree, now).map_err(|e| Failure::storage("building CAPOSRO1", e))?
        }
        "--writable" | "--writable-nvme" => {
            let blocks = if options.mode == "--writable-nvme" {
                unused("--blocks", options.blocks.is_some())?;
                NVME_NAMESPACE_BLOCKS
            } else {
                options.blocks.unwrap_or(DEFAULT_WRITABLE_BLOCKS)
            };
            let mut device = MemBlockDevice::new(blocks);
            make_writable(&mut device, options.seed.as_deref(), now)?;
            device.into_bytes()
        }
        "--store" => {
            let mut device = MemBlockDevice::new(options.blocks.unwrap_or(DEFAULT_STORE_IMAGE_BLOCKS));
            make_store(&mut device, options.seed.as_deref())?;
            device.into_bytes()
        }
        "--colocated" => {
            unused("--seed", options.seed.is_some())?;
            let store_blocks = options.store_blocks.unwrap_or(DEFAULT_STORE_BLOCKS);
            let total = options.blocks.unwrap_or(DEFAULT_COLOCATED_BLOCKS);
            let mut device = MemBlockDevice::new(total);
            let layout = colocated::format(&mut device, store_blocks, now)
                .map_err(|e| Failure::storage("formatting co-located image", e))?;
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
    std::fs::write(&output, &image).map_err(|e| Failure::usage(format!("{output}: {e}")))?;
    Ok(())
}

fn io_layout(e: capos_storage::BlockError) -> Failure {
    Failure::storage("layout", StorageError::Device(e))
}

/// Format a CAPOSWF1 volume over `device` and copy a host tree into it.
fn make_writable<D: BlockDevice>(device: &mut D, seed: Option<&str>, now: Timestamp) -> CommandResult {
    writable_fs::format(device, None, now).map_err(|e| Failure::storage("formatting CAPOSWF1", e))?;
    let Some(seed) = seed else { return Ok(()) };
    let tree = read_host_tree(Path::new(seed), source_date_epoch()?).map_err(Failure::usage)?;
    let mut fs = WritableFs::mount(&mut *device, FixedClock(now), MountOptions::default())
        .map_err(|e| Failure::storage("mounting new CAPOSWF1", e))?;
    let root = fs.root();
    copy_tree(&mut fs, root, &tree).map_err(|e| Failure::usage(format!("seeding from {seed}: {e}")))?;
    fs.sync().map_err(|e| Failure::storage("sync", e))
}

fn copy_tree<F: FileSystem>(fs: &mut F, dir: NodeHandle, node: &SourceNode) -> Result<(), StorageError> {
    if let SourceNode::Directory { entries, .. } = node {
        for (name, child) in entries {
            match child {
                SourceNode::Directory { .. } => {
                    let sub = fs.mkdir(dir, name)?;
                    copy_tree(fs, sub, child)?;
                }
                SourceNode::File { data, .. } => {
                    let file = fs.create(dir, name)?;
                    fs.write(file, 0, data)?;
                }
            }
        }
    }
    Ok(())
}

/// Format a CAPOSST1 volume over `device` and load a key/value file into it.
fn make_store<D: BlockDevice>(device: &mut D, seed: Option<&str>) -> CommandResult {
    store::format(device, None).map_err(|e| Failure::storage("formatting CAPOSST1", e))?;
    let Some(seed) = seed else { return Ok(()) };
    let text = std::fs::read_to_string(seed).map_err(|e| Failure::usage(format!("{seed}: {e}")))?;
    let entries = kv_file::parse(&text).map_err(|e| Failure::usage(format!("{seed}: {e}")))?;
    let mut store = Store::mount(&mut *device, false).map_err(|e| Failure::storage("mounting new CAPOSST1", e))?;
    for (key, value) in entries {
        store
            .put(&key, &value)
            .map_err(|e| Failure::usage(format!("{seed}: key {}: {e}", kv_file::escape(&key))))?;
    }
    Ok(())
}
