//! Build a CAPOSRO1 image from an in-memory tree (host side).
//!
//! Deterministic: entries are ordered by name bytes, nodes are numbered
//! breadth-first from the root, and every byte not described by the layout
//! is zero — the same tree and build time give the same image.

use super::layout::*;
use crate::checksum::crc32c;
use crate::codec::seal;
use crate::error::StorageError;
use crate::name::validate_name;
use crate::superblock::SuperblockHeader;
use crate::time::Timestamp;
use crate::NodeKind;
use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// A directory tree to put into an image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceNode {
    Directory { entries: Vec<(String, SourceNode)>, mtime: Option<Timestamp> },
    File { data: Vec<u8>, mtime: Option<Timestamp> },
}

fn blocks_for(bytes: u64) -> u64 {
    bytes.div_ceil(512)
}

/// Encode `root` as a complete CAPOSRO1 image.
pub fn build_image(root: &SourceNode, build_time: Timestamp) -> Result<Vec<u8>, StorageError> {
    if !matches!(root, SourceNode::Directory { .. }) {
        return Err(StorageError::InvalidArgument("the root of an image must be a directory"));
    }
    // Breadth-first numbering; each directory's children sorted by name.
    let mut order: Vec<&SourceNode> = Vec::new();
    let mut lists: Vec<Vec<u8>> = Vec::new();
    let mut queue: VecDeque<&SourceNode> = VecDeque::new();
    queue.push_back(root);
    let mut next_index: u64 = 1;
    while let Some(node) = queue.pop_front() {
        let mut list = Vec::new();
        if let SourceNode::Directory { entries, .. } = node {
            let mut sorted: Vec<&(String, SourceNode)> = entries.iter().collect();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            for pair in sorted.windows(2) {
                if pair[0].0 == pair[1].0 {
                    return Err(StorageError::AlreadyExists);
                }
            }
            for (name, child) in sorted {
                validate_name(name, MAX_NAME_LEN)?;
                let index = u32::try_from(next_index)
                    .map_err(|_| StorageError::InvalidArgument("too many nodes"))?;
                next_index += 1;
                list.extend_from_slice(&index.to_le_bytes());
                list.extend_from_slice(&(name.len() as u16).to_le_bytes());
                list.extend_from_slice(name.as_bytes());
                queue.push_back(child);
            }
        }
        order.push(node);
        lists.push(list);
    }
    let node_count = order.len() as u64;
    let node_table_blocks = node_count.div_ceil(NODES_PER_BLOCK as u64);
    let data_lba = 1 + node_table_blocks;

    let mut records = vec![0u8; (node_table_blocks as usize) * 512];
    let mut data: Vec<u8> = Vec::new();
    for (index, node) in order.iter().enumerate() {
        let (kind, bytes, mtime, entry_count): (NodeKind, &[u8], _, u32) = match node {
            SourceNode::Directory { entries, mtime } => {
                (NodeKind::Directory, &lists[index], *mtime, entries.len() as u32)
            }
            SourceNode::File { data, mtime } => (NodeKind::File, data, *mtime, 0),
        };
        let lba = if bytes.is_empty() { 0 } else { data_lba + (data.len() / 512) as u64 };
        data.extend_from_slice(bytes);
        data.resize((blocks_for(data.len() as u64) * 512) as usize, 0);
        let record = RoNodeRecord {
            kind,
            entry_count,
            size: bytes.len() as u64,
            data_lba: lba,
            mtime: mtime.unwrap_or(Timestamp::UNKNOWN),
            data_crc: crc32c(bytes),
        };
        record.encode(&mut records[index * NODE_RECORD_SIZE..(index + 1) * NODE_RECORD_SIZE])?;
    }

    let total_blocks = data_lba + (data.len() / 512) as u64;
    let mut image = vec![0u8; 512];
    SuperblockHeader {
        magic: MAGIC,
        version: VERSION,
        features: KNOWN_FEATURES,
        total_blocks,
    }
    .encode(&mut image)?;
    RoGeometry {
        node_count: node_count as u32,
        node_table_lba: 1,
        node_table_blocks,
        data_lba,
        build_time,
    }
    .encode(&mut image)?;
    seal(&mut image)?;
    image.extend_from_slice(&records);
    image.extend_from_slice(&data);
    Ok(image)
}
