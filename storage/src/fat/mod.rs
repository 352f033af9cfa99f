//! Read-only FAT12/16/32 (mount format `fat`): the `Directory`/`File`
//! backer for volumes that other systems wrote — `mkfs.fat` and `mcopy`,
//! an SD card, a UEFI system partition — on the `lamfat` engine
//! (DESIGN.md decision 4).
//!
//! Why it is built the way it is: lamfat decodes FAT directories well but
//! trusts the image. It follows cluster numbers without range checks
//! (cluster 1, or a number past the data area, overflows its arithmetic:
//! a panic in a debug build), follows a looping directory chain forever,
//! reads file data one cluster per request, and its API hides an entry's
//! first cluster. So this module puts its own checks in front and keeps
//! lamfat to the decoding (see [`lam`]):
//! - [`bpb`] checks the boot sector (every field, in `u64`) before lamfat
//!   mounts it; [`mbr`] finds the volume on an MBR disk;
//! - [`volume`] walks every cluster chain itself, bounded and with loop
//!   detection, and reads file data itself: each run of contiguous clusters
//!   is one device request, metadata goes through a small sector cache;
//! - a directory is handed to lamfat only after its chain was walked, and
//!   a subdirectory only after it was *claimed*: its first cluster is in
//!   the data area, it is not the cluster of a directory already seen (so
//!   a directory that contains itself, or an ancestor, is an error instead
//!   of an endless tree). Depth needs no limit of its own: every level is
//!   a node, and the node table is bounded ([`MAX_NODES`]).
//!
//! Nodes: a read-only volume never loses a node, so a [`NodeHandle`] is an
//! index into a table of the entries found so far (generation always 0).
//! A directory's entries are read the first time it is used, sorted by name
//! bytes, and kept; memory grows with what was visited, not with the volume,
//! up to [`MAX_NODES`].
//!
//! Names are the long name when there is a valid one, else the 8.3 name
//! (lower-cased where the NT flags say so, short-name bytes in CP437).
//! Lookups are exact: the byte string `list` returned, not FAT's
//! case-insensitive match. `.` and `..` are not listed.
//!
//! Times come from the directory entry ([`time`]): created to 10 ms,
//! modified to 2 s, read as UTC, [`Provenance::FatDirectoryEntry`];
//! a zero or invalid date is [`Timestamp::UNKNOWN`]. The root directory has
//! no entry, so its times are unknown.
//!
//! Every mutation answers [`StorageError::ReadOnly`]. The description for
//! users is `docs/storage-fat.md`.
//!
//! [`Provenance::FatDirectoryEntry`]: crate::time::Provenance::FatDirectoryEntry

pub mod bpb;
pub mod lam;
pub mod mbr;
pub mod time;
pub mod volume;

pub use bpb::{FatType, Geometry};

use crate::block::BlockDevice;
use crate::error::StorageError;
use crate::fs_api::{FileSystem, NodeHandle};
use crate::name::validate_name;
use crate::superblock::{check_block_size, read_sector};
use crate::time::Timestamp;
use crate::{DirEntry, NodeKind, Stat};
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use lam::{Listing, Staged};
use volume::Volume;

/// Most table rows (entries listed) one mount keeps: 256 Ki entries, a few
/// tens of MiB of heap at worst.
pub const MAX_NODES: usize = 1 << 18;
/// A long name is at most 255 UTF-16 units, so at most 765 bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255 * 3;

/// Where the FAT volume is on the device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FatPartition {
    /// A FAT boot sector in block 0 means the whole device; otherwise block 0
    /// must be an MBR, and the first primary partition with a FAT type
    /// (0x01, 0x04, 0x06, 0x0B, 0x0C, 0x0E, their hidden variants, 0xEF)
    /// is used. A GPT protective MBR is refused: the caller resolves GPT and
    /// passes the partition as the device (with `WholeDevice` or `Auto`).
    #[default]
    Auto,
    /// Block 0 of the device is the FAT boot sector.
    WholeDevice,
    /// Primary MBR partition 1..=4, whatever its type byte says.
    Mbr(u8),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MountOptions {
    pub partition: FatPartition,
}

struct Node {
    name: String,
    kind: NodeKind,
    first_cluster: u32,
    size: u32,
    created: Timestamp,
    modified: Timestamp,
    depth: u32,
    /// Directories: checked as described in the module docs.
    claimed: bool,
    /// Directories, once read: children sorted by name bytes.
    children: Option<Vec<u32>>,
    /// Files: the cluster chain was checked against the size.
    chain_checked: bool,
}

/// Where the last read stopped, so a sequential reader does not walk the
/// chain from its start on every call.
#[derive(Clone, Copy)]
struct Cursor {
    node: u32,
    /// Index of `cluster` within the file's chain.
    position: u32,
    cluster: u32,
}

/// A mounted read-only FAT volume.
pub struct FatFs<D: BlockDevice> {
    volume: Volume<D>,
    geometry: Geometry,
    nodes: Vec<Node>,
    /// First cluster of every claimed directory → its node.
    directories: BTreeMap<u32, u32>,
    cursor: Option<Cursor>,
}

impl<D: BlockDevice> FatFs<D> {
    /// Find the volume (see [`FatPartition`]), check its boot sector, and
    /// read the root directory.
    pub fn mount(mut device: D, options: MountOptions) -> Result<Self, StorageError> {
        check_block_size(&device)?;
        let blocks = device.block_count();
        let (start, count) = match options.partition {
            FatPartition::WholeDevice => (0, blocks),
            FatPartition::Mbr(number) => {
                let sector = read_sector(&mut device, 0)?;
                let part = mbr::select(&sector, blocks, Some(number))?;
                (part.start, part.blocks)
            }
            FatPartition::Auto => {
                let sector = read_sector(&mut device, 0)?;
                match bpb::parse(&sector, blocks.saturating_mul(512)) {
                    Ok(_) => (0, blocks),
                    Err(whole) => match mbr::select(&sector, blocks, None) {
                        Ok(part) => (part.start, part.blocks),
                        Err(gpt @ StorageError::InvalidArgument(_)) => return Err(gpt),
                        Err(_) => return Err(whole),
                    },
                }
            }
        };
        let mut volume = Volume::new(device, start, count);
        let boot = *volume.block(0)?;
        let geometry = bpb::parse(&boot, volume.len_bytes())?;
        if geometry.fat_type == FatType::Fat32 {
            let mut info = [0u8; 512];
            volume.read_cached(geometry.fs_info_offset, &mut info)?;
            bpb::check_fs_info(&info)?;
        }
        lam::list(&mut volume, &Staged::empty(), geometry.fat_type, Listing::MountCheck, &[])?;
        let root = Node {
            name: String::new(),
            kind: NodeKind::Directory,
            first_cluster: geometry.root_cluster,
            size: 0,
            created: Timestamp::UNKNOWN,
            modified: Timestamp::UNKNOWN,
            depth: 0,
            claimed: true,
            children: None,
            chain_checked: false,
        };
        let mut directories = BTreeMap::new();
        if geometry.fat_type == FatType::Fat32 {
            directories.insert(geometry.root_cluster, 0);
        }
        let mut fs = FatFs { volume, geometry, nodes: vec![root], directories, cursor: None };
        fs.load_directory(0)?;
        Ok(fs)
    }

    /// The checked boot sector: FAT type, cluster size and count, offsets.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    pub fn fat_type(&self) -> FatType {
        self.geometry.fat_type
    }

    /// First device block of the volume and its length in blocks (not 0
    /// and the device length when an MBR partition was used).
    pub fn volume_extent(&self) -> (u64, u64) {
        self.volume.extent()
    }

    /// Entries found so far (the root included).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// The device (tests read its request counters).
    pub fn device(&self) -> &D {
        self.volume.device()
    }

    pub fn into_device(self) -> D {
        self.volume.into_device()
    }

    fn index(&self, handle: NodeHandle) -> Result<u32, StorageError> {
        if handle.generation != 0 || handle.index as usize >= self.nodes.len() {
            return Err(StorageError::StaleHandle);
        }
        Ok(handle.index)
    }

    /// A directory handle, claimed and read.
    fn directory(&mut self, handle: NodeHandle) -> Result<u32, StorageError> {
        let index = self.index(handle)?;
        if self.nodes[index as usize].kind != NodeKind::Directory {
            return Err(StorageError::NotADirectory);
        }
        self.claim(index)?;
        self.load_directory(index)?;
        Ok(index)
    }

    /// Check a subdirectory before anything walks into it.
    fn claim(&mut self, index: u32) -> Result<(), StorageError> {
        let node = &self.nodes[index as usize];
        if node.claimed {
            return Ok(());
        }
        let cluster = node.first_cluster;
        if !self.geometry.is_data_cluster(cluster) {
            return Err(StorageError::Corrupt {
                what: "FAT subdirectory starts outside the data area",
                detail: u64::from(cluster),
            });
        }
        if let Some(&owner) = self.directories.get(&cluster) {
            if owner != index {
                return Err(StorageError::Corrupt {
                    what: "FAT directory cycle: a subdirectory's cluster is another directory's",
                    detail: u64::from(cluster),
                });
            }
        }
        self.directories.insert(cluster, index);
        self.nodes[index as usize].claimed = true;
        Ok(())
    }

    /// Read a claimed directory's entries into the table, once.
    fn load_directory(&mut self, index: u32) -> Result<(), StorageError> {
        if self.nodes[index as usize].children.is_some() {
            return Ok(());
        }
        let geometry = self.geometry;
        let extents = if index == 0 && geometry.fat_type != FatType::Fat32 {
            vec![(geometry.root_dir_offset, u64::from(geometry.root_dir_bytes))]
        } else {
            volume::directory_extents(&mut self.volume, &geometry, self.nodes[index as usize].first_cluster)?
        };
        let mut staged = Staged::read(&mut self.volume, &extents)?;
        let raw = lam::scan(&staged.bytes, geometry.fat_type);
        if self.nodes.len() + raw.len() > MAX_NODES {
            return Err(StorageError::TooManyNodes);
        }
        let listing = if index == 0 {
            Listing::Root
        } else {
            let root_offset = match geometry.fat_type {
                FatType::Fat32 => geometry.cluster_offset(geometry.root_cluster),
                _ => geometry.root_dir_offset,
            };
            // The one-entry root must not hide bytes of this directory
            // (only a cross-linked FAT32 chain could make them meet).
            if extents.iter().any(|&(offset, len)| (offset..offset + len).contains(&root_offset)) {
                return Err(StorageError::Corrupt {
                    what: "FAT directory chain runs into the root directory",
                    detail: root_offset,
                });
            }
            staged = staged.through_root(root_offset, self.nodes[index as usize].first_cluster);
            Listing::ThroughRoot
        };
        let named = lam::list(&mut self.volume, &staged, geometry.fat_type, listing, &raw)?;
        let depth = self.nodes[index as usize].depth + 1;
        let first_new = self.nodes.len();
        let mut fresh = Vec::with_capacity(raw.len());
        for (position, (entry, named)) in raw.iter().zip(named).enumerate() {
            if named.name == "." || named.name == ".." {
                continue;
            }
            validate_name(&named.name, MAX_NAME_BYTES).map_err(|_| StorageError::Corrupt {
                what: "FAT entry name is empty, too long, or holds '/' or NUL",
                detail: position as u64,
            })?;
            let kind = if named.is_dir { NodeKind::Directory } else { NodeKind::File };
            fresh.push(Node {
                name: named.name,
                kind,
                first_cluster: entry.first_cluster,
                size: if kind == NodeKind::File { entry.size } else { 0 },
                created: entry.created,
                modified: entry.modified,
                depth,
                claimed: false,
                children: None,
                chain_checked: false,
            });
        }
        fresh.sort_unstable_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        if let Some(pair) = fresh.windows(2).position(|w| w[0].name == w[1].name) {
            return Err(StorageError::Corrupt {
                what: "two entries of a FAT directory have the same name",
                detail: pair as u64,
            });
        }
        let children = (first_new..first_new + fresh.len()).map(|i| i as u32).collect();
        self.nodes.extend(fresh);
        self.nodes[index as usize].children = Some(children);
        Ok(())
    }

    fn lookup(&mut self, dir: NodeHandle, name: &str) -> Result<u32, StorageError> {
        let index = self.directory(dir)?;
        let nodes = &self.nodes;
        let children = nodes[index as usize].children.as_deref().unwrap_or(&[]);
        children
            .binary_search_by(|&c| nodes[c as usize].name.as_bytes().cmp(name.as_bytes()))
            .map(|at| children[at])
            .map_err(|_| StorageError::NotFound)
    }

    /// The cluster after `cluster` in a chain that [`volume::check_file_chain`]
    /// accepted for the bytes being read.
    fn next_in_file(&mut self, cluster: u32) -> Result<u32, StorageError> {
        self.volume.next_cluster(&self.geometry, cluster)?.ok_or(StorageError::Corrupt {
            what: "file size is larger than its cluster chain",
            detail: u64::from(cluster),
        })
    }
}

impl<D: BlockDevice> core::fmt::Debug for FatFs<D> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FatFs")
            .field("geometry", &self.geometry)
            .field("volume_extent", &self.volume.extent())
            .field("nodes", &self.nodes.len())
            .finish()
    }
}

fn handle(index: u32) -> NodeHandle {
    NodeHandle { index, generation: 0 }
}

impl<D: BlockDevice> FileSystem for FatFs<D> {
    fn root(&self) -> NodeHandle {
        handle(0)
    }

    fn open(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        let child = self.lookup(dir, name)?;
        if self.nodes[child as usize].kind != NodeKind::File {
            return Err(StorageError::NotAFile);
        }
        Ok(handle(child))
    }

    fn sub(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        let child = self.lookup(dir, name)?;
        if self.nodes[child as usize].kind != NodeKind::Directory {
            return Err(StorageError::NotADirectory);
        }
        self.claim(child)?;
        Ok(handle(child))
    }

    fn list(&mut self, dir: NodeHandle) -> Result<Vec<DirEntry>, StorageError> {
        let index = self.directory(dir)?;
        let nodes = &self.nodes;
        Ok(nodes[index as usize]
            .children
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .map(|&c| {
                let node = &nodes[c as usize];
                DirEntry { name: node.name.clone(), kind: node.kind, size: u64::from(node.size) }
            })
            .collect())
    }

    /// Reads walk the chain from where the previous read of the same file
    /// stopped (or from its start) and issue one device request per run of
    /// contiguous clusters.
    fn read(&mut self, file: NodeHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let index = self.index(file)?;
        let node = &self.nodes[index as usize];
        if node.kind != NodeKind::File {
            return Err(StorageError::NotAFile);
        }
        let (size, first) = (u64::from(node.size), node.first_cluster);
        if offset >= size || buf.is_empty() {
            return Ok(0);
        }
        if !node.chain_checked {
            volume::check_file_chain(&mut self.volume, &self.geometry, first, node.size)?;
            self.nodes[index as usize].chain_checked = true;
        }
        let len = (size - offset).min(buf.len() as u64) as usize;
        let cluster_bytes = u64::from(self.geometry.cluster_bytes);
        let target = (offset / cluster_bytes) as u32;
        let (mut position, mut cluster) = match self.cursor {
            Some(c) if c.node == index && c.position <= target => (c.position, c.cluster),
            _ => (0, first),
        };
        while position < target {
            cluster = self.next_in_file(cluster)?;
            position += 1;
        }
        let mut done = 0usize;
        loop {
            // A run of contiguous clusters from `cluster` covering as much
            // of the rest as it can.
            let within = offset + done as u64 - u64::from(position) * cluster_bytes;
            let wanted = (len - done) as u64;
            let mut run = 1u32;
            let mut last = cluster;
            let mut after = None;
            while u64::from(run) * cluster_bytes - within < wanted {
                let next = self.next_in_file(last)?;
                if next == last + 1 {
                    run += 1;
                    last = next;
                } else {
                    after = Some(next);
                    break;
                }
            }
            let take = (u64::from(run) * cluster_bytes - within).min(wanted) as usize;
            let at = self.geometry.cluster_offset(cluster) + within;
            self.volume.read_direct(at, &mut buf[done..done + take])?;
            done += take;
            position += run - 1;
            self.cursor = Some(Cursor { node: index, position, cluster: last });
            match after {
                Some(next) if done < len => {
                    cluster = next;
                    position += 1;
                }
                _ => break,
            }
        }
        Ok(len)
    }

    fn stat(&mut self, node: NodeHandle) -> Result<Stat, StorageError> {
        let node = &self.nodes[self.index(node)? as usize];
        Ok(Stat { kind: node.kind, size: u64::from(node.size), created: node.created, modified: node.modified })
    }
}
