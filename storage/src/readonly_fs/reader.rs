//! Mount and read a CAPOSRO1 image.
//!
//! Mount validates everything but file contents: the superblock, every node
//! record's checksum, that no two nodes' data extents overlap, every
//! directory entry list (checksum, names, order, child indices), and that
//! the directories form a tree — every node is
//! reached exactly once from the root, so cycles, shared children and
//! orphans are all refused. Work and memory are bounded by the image size.
//! File bytes are checked against their CRC by [`ReadOnlyFs::verify_file`]
//! (fsck, extract), not on every partial read.

use super::layout::*;
use crate::block::BlockDevice;
use crate::checksum::crc32c;
use crate::codec::LeReader;
use crate::error::StorageError;
use crate::features::Access;
use crate::fs_api::{FileSystem, NodeHandle};
use crate::name::decode_name;
use crate::superblock::{check_block_size, read_sector, SuperblockHeader};
use crate::time::Timestamp;
use crate::{DirEntry, NodeKind, Stat};
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

pub struct ReadOnlyFs<D: BlockDevice> {
    device: D,
    header: SuperblockHeader,
    geometry: RoGeometry,
    nodes: Vec<RoNodeRecord>,
    /// Children of each directory (empty for files), sorted by name.
    children: Vec<Vec<(String, u32)>>,
}

impl<D: BlockDevice> ReadOnlyFs<D> {
    pub fn mount(mut device: D) -> Result<Self, StorageError> {
        check_block_size(&device)?;
        let device_blocks = device.block_count();
        let sb = read_sector(&mut device, 0)?;
        let header = SuperblockHeader::decode(&sb, &MAGIC, "CAPOSRO1", VERSION, device_blocks)?;
        // Read-only by nature: an unknown ro-compatible feature changes nothing.
        let _: Access = header.features.check(&KNOWN_FEATURES)?;
        let geometry = RoGeometry::decode(&sb, header.total_blocks)?;
        if geometry.data_lba > header.total_blocks
            || geometry.node_table_blocks > header.total_blocks
        {
            return Err(StorageError::Corrupt {
                what: "node table extends past the volume",
                detail: geometry.node_table_blocks,
            });
        }
        let mut table = vec![0u8; geometry.node_table_blocks as usize * 512];
        device.read_blocks(geometry.node_table_lba, &mut table)?;
        let mut nodes = Vec::with_capacity(geometry.node_count as usize);
        for index in 0..geometry.node_count {
            let at = index as usize * NODE_RECORD_SIZE;
            let record = RoNodeRecord::decode(&table[at..at + NODE_RECORD_SIZE], index)?;
            check_extent(&record, &geometry, header.total_blocks, index)?;
            nodes.push(record);
        }
        drop(table);
        check_disjoint_extents(&nodes)?;
        if nodes[0].kind != NodeKind::Directory {
            return Err(StorageError::Corrupt { what: "root node is not a directory", detail: 0 });
        }
        let mut fs = ReadOnlyFs { device, header, geometry, nodes, children: Vec::new() };
        fs.load_tree()?;
        Ok(fs)
    }

    /// Load every directory's entries, proving the nodes form one tree.
    fn load_tree(&mut self) -> Result<(), StorageError> {
        let count = self.nodes.len();
        let mut children: Vec<Vec<(String, u32)>> = vec![Vec::new(); count];
        let mut reached = vec![false; count];
        reached[0] = true;
        let mut stack = vec![0u32];
        let mut reached_count = 1usize;
        while let Some(dir) = stack.pop() {
            let record = self.nodes[dir as usize];
            if record.kind != NodeKind::Directory {
                continue;
            }
            // Each entry takes at least 7 bytes, so a list claiming more
            // entries than nodes or bytes than entries allow is corrupt
            // before anything is allocated for it.
            let max_size = record.entry_count as u64 * (ENTRY_HEADER_SIZE + MAX_NAME_LEN) as u64;
            if record.entry_count as usize >= count || record.size > max_size {
                return Err(StorageError::Corrupt {
                    what: "directory entry list size out of range",
                    detail: dir as u64,
                });
            }
            let bytes = self.read_extent(&record)?;
            if crc32c(&bytes) != record.data_crc {
                return Err(StorageError::ChecksumMismatch {
                    what: "CAPOSRO1 directory entry list",
                    location: dir as u64,
                });
            }
            let list = decode_entry_list(&bytes, record.entry_count, count)?;
            for (_, child) in &list {
                if reached[*child as usize] {
                    return Err(StorageError::Corrupt {
                        what: "directory cycle or shared child",
                        detail: *child as u64,
                    });
                }
                reached[*child as usize] = true;
                reached_count += 1;
                stack.push(*child);
            }
            children[dir as usize] = list;
        }
        if reached_count != count {
            return Err(StorageError::Corrupt {
                what: "nodes unreachable from the root",
                detail: (count - reached_count) as u64,
            });
        }
        self.children = children;
        Ok(())
    }

    fn read_extent(&mut self, record: &RoNodeRecord) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; (record.size.div_ceil(512) * 512) as usize];
        if !buf.is_empty() {
            self.device.read_blocks(record.data_lba, &mut buf)?;
        }
        buf.truncate(record.size as usize);
        Ok(buf)
    }

    pub fn header(&self) -> &SuperblockHeader {
        &self.header
    }

    pub fn geometry(&self) -> &RoGeometry {
        &self.geometry
    }

    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Check a file's bytes against the CRC in its node record.
    pub fn verify_file(&mut self, file: NodeHandle) -> Result<(), StorageError> {
        let record = *self.node(file)?;
        if record.kind != NodeKind::File {
            return Err(StorageError::NotAFile);
        }
        let mut crc = 0u32;
        let mut offset = 0u64;
        let mut chunk = vec![0u8; 64 * 1024];
        while offset < record.size {
            let blocks = ((record.size - offset).div_ceil(512)).min(128);
            let len = (blocks * 512) as usize;
            self.device.read_blocks(record.data_lba + offset / 512, &mut chunk[..len])?;
            let useful = ((record.size - offset) as usize).min(len);
            crc = crate::checksum::crc32c_append(crc, &chunk[..useful]);
            offset += useful as u64;
        }
        if crc != record.data_crc {
            return Err(StorageError::ChecksumMismatch {
                what: "CAPOSRO1 file data",
                location: file.index as u64,
            });
        }
        Ok(())
    }

    fn node(&self, handle: NodeHandle) -> Result<&RoNodeRecord, StorageError> {
        if handle.generation != 0 {
            return Err(StorageError::StaleHandle);
        }
        self.nodes.get(handle.index as usize).ok_or(StorageError::StaleHandle)
    }

    fn lookup(&self, dir: NodeHandle, name: &str) -> Result<(u32, NodeKind), StorageError> {
        if self.node(dir)?.kind != NodeKind::Directory {
            return Err(StorageError::NotADirectory);
        }
        let list = &self.children[dir.index as usize];
        let at = list
            .binary_search_by(|(n, _)| n.as_bytes().cmp(name.as_bytes()))
            .map_err(|_| StorageError::NotFound)?;
        let child = list[at].1;
        Ok((child, self.nodes[child as usize].kind))
    }
}

/// Check that a node's data lies inside the data area of the volume.
fn check_extent(
    record: &RoNodeRecord,
    geometry: &RoGeometry,
    total_blocks: u64,
    index: u32,
) -> Result<(), StorageError> {
    if record.size == 0 {
        if record.data_lba != 0 {
            return Err(StorageError::Corrupt { what: "empty node with a data pointer", detail: index as u64 });
        }
        return Ok(());
    }
    let end = record.data_lba.checked_add(record.size.div_ceil(512));
    match end {
        Some(end) if record.data_lba >= geometry.data_lba && end <= total_blocks => Ok(()),
        _ => Err(StorageError::Corrupt {
            what: "node data out of range",
            detail: index as u64,
        }),
    }
}

/// Refuse extents that overlap or are shared: every block of the data area
/// belongs to at most one node, so the bytes a mounted image can yield are
/// bounded by its size (a small image cannot expand into gigabytes of
/// files that all name the same blocks). O(n log n) time, O(n) memory.
fn check_disjoint_extents(nodes: &[RoNodeRecord]) -> Result<(), StorageError> {
    // (first block, end block, node); extents were range-checked already.
    let mut extents: Vec<(u64, u64, usize)> = nodes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.size > 0)
        .map(|(i, r)| (r.data_lba, r.data_lba + r.size.div_ceil(512), i))
        .collect();
    extents.sort_unstable();
    for pair in extents.windows(2) {
        if pair[1].0 < pair[0].1 {
            return Err(StorageError::Corrupt {
                what: "node data extents overlap or are shared",
                detail: pair[1].2 as u64,
            });
        }
    }
    Ok(())
}

fn decode_entry_list(
    bytes: &[u8],
    entry_count: u32,
    node_count: usize,
) -> Result<Vec<(String, u32)>, StorageError> {
    let r = LeReader::new(bytes);
    let mut list: Vec<(String, u32)> = Vec::with_capacity(entry_count as usize);
    let mut at = 0usize;
    for _ in 0..entry_count {
        let child = r.u32(at)?;
        let name_len = r.u16(at + 4)? as usize;
        let name = decode_name(r.bytes(at + ENTRY_HEADER_SIZE, name_len)?, MAX_NAME_LEN)?;
        at += ENTRY_HEADER_SIZE + name_len;
        if child == 0 || child as usize >= node_count {
            return Err(StorageError::Corrupt { what: "entry points outside the node table", detail: child as u64 });
        }
        if let Some((last, _)) = list.last() {
            if last.as_bytes() >= name.as_bytes() {
                return Err(StorageError::Corrupt { what: "directory entries unsorted or duplicated", detail: at as u64 });
            }
        }
        list.push((name.to_string(), child));
    }
    if at != bytes.len() {
        return Err(StorageError::Corrupt { what: "directory entry list has trailing bytes", detail: at as u64 });
    }
    Ok(list)
}

impl<D: BlockDevice> FileSystem for ReadOnlyFs<D> {
    fn root(&self) -> NodeHandle {
        NodeHandle { index: 0, generation: 0 }
    }

    fn open(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        match self.lookup(dir, name)? {
            (index, NodeKind::File) => Ok(NodeHandle { index, generation: 0 }),
            _ => Err(StorageError::NotAFile),
        }
    }

    fn sub(&mut self, dir: NodeHandle, name: &str) -> Result<NodeHandle, StorageError> {
        match self.lookup(dir, name)? {
            (index, NodeKind::Directory) => Ok(NodeHandle { index, generation: 0 }),
            _ => Err(StorageError::NotADirectory),
        }
    }

    fn list(&mut self, dir: NodeHandle) -> Result<Vec<DirEntry>, StorageError> {
        if self.node(dir)?.kind != NodeKind::Directory {
            return Err(StorageError::NotADirectory);
        }
        Ok(self.children[dir.index as usize]
            .iter()
            .map(|(name, child)| {
                let record = &self.nodes[*child as usize];
                DirEntry {
                    name: name.clone(),
                    kind: record.kind,
                    size: if record.kind == NodeKind::File { record.size } else { 0 },
                }
            })
            .collect())
    }

    fn read(&mut self, file: NodeHandle, offset: u64, buf: &mut [u8]) -> Result<usize, StorageError> {
        let record = *self.node(file)?;
        if record.kind != NodeKind::File {
            return Err(StorageError::NotAFile);
        }
        if offset >= record.size || buf.is_empty() {
            return Ok(0);
        }
        let len = (record.size - offset).min(buf.len() as u64) as usize;
        let mut done = 0usize;
        let mut sector = [0u8; 512];
        while done < len {
            let at = offset + done as u64;
            let within = (at % 512) as usize;
            let lba = record.data_lba + at / 512;
            let remaining = len - done;
            if within == 0 && remaining >= 512 {
                let whole = remaining / 512 * 512;
                self.device.read_blocks(lba, &mut buf[done..done + whole])?;
                done += whole;
            } else {
                self.device.read_blocks(lba, &mut sector)?;
                let take = (512 - within).min(remaining);
                buf[done..done + take].copy_from_slice(&sector[within..within + take]);
                done += take;
            }
        }
        Ok(len)
    }

    fn stat(&mut self, node: NodeHandle) -> Result<Stat, StorageError> {
        let record = self.node(node)?;
        Ok(Stat {
            kind: record.kind,
            size: if record.kind == NodeKind::File { record.size } else { 0 },
            // CAPOSRO1 keeps only the source's modification time; when the
            // source had none, `modified` is unknown as well.
            created: Timestamp::UNKNOWN,
            modified: record.mtime,
        })
    }
}
