//! The FAT volume as bytes: a window onto the device with a small sector
//! cache, the FAT itself, and bounded cluster-chain walks.
//!
//! Why a cache and a bypass: metadata (boot sector, FAT entries, directory
//! entries) is read a few bytes at a time, mostly from the same sectors, so
//! it goes through a small LRU cache of [`CACHE_SECTORS`] sectors. File
//! data goes around it: a run of contiguous clusters is one device request
//! straight into the caller's buffer; only a partial sector at either end
//! of a read goes through the cache.
//!
//! Why bounded walks: a FAT is a linked list an image author controls. Every
//! walk here checks each link against the data area and stops a chain that
//! loops — Brent's cycle detection finds a loop within a few times its
//! length, and a hard step limit (the volume's cluster count, or the
//! directory size limit) backs it up — so no image makes a walk run
//! forever.

use super::bpb::{FatType, Geometry};
use crate::block::{BlockDevice, SECTOR_SIZE};
use crate::error::StorageError;
use alloc::vec;
use alloc::vec::Vec;

/// Sectors the metadata cache holds (16 KiB).
pub const CACHE_SECTORS: usize = 32;

/// The largest directory read: the FAT specification's limit of 65536
/// entries of 32 bytes.
pub const MAX_DIR_BYTES: u64 = 65536 * 32;

struct CachedSector {
    /// Volume-relative block number; `u64::MAX` when empty.
    lba: u64,
    last_used: u64,
    data: [u8; SECTOR_SIZE],
}

/// The FAT volume: blocks `start .. start + blocks` of `device`, read-only.
pub struct Volume<D> {
    device: D,
    start: u64,
    blocks: u64,
    cache: Vec<CachedSector>,
    tick: u64,
}

impl<D: BlockDevice> Volume<D> {
    pub fn new(device: D, start: u64, blocks: u64) -> Self {
        let cache = (0..CACHE_SECTORS)
            .map(|_| CachedSector { lba: u64::MAX, last_used: 0, data: [0; SECTOR_SIZE] })
            .collect();
        Self { device, start, blocks, cache, tick: 0 }
    }

    pub fn device(&self) -> &D {
        &self.device
    }

    pub fn into_device(self) -> D {
        self.device
    }

    /// First device block of the volume, and its length in blocks.
    pub fn extent(&self) -> (u64, u64) {
        (self.start, self.blocks)
    }

    pub fn len_bytes(&self) -> u64 {
        self.blocks * SECTOR_SIZE as u64
    }

    fn check_range(&self, offset: u64, len: usize) -> Result<(), StorageError> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= self.len_bytes() => Ok(()),
            _ => Err(StorageError::Corrupt { what: "read past the end of the FAT volume", detail: offset }),
        }
    }

    /// A volume block, through the cache.
    pub fn block(&mut self, lba: u64) -> Result<&[u8; SECTOR_SIZE], StorageError> {
        self.tick += 1;
        let slot = match self.cache.iter().position(|c| c.lba == lba) {
            Some(hit) => hit,
            None => {
                if lba >= self.blocks {
                    return Err(StorageError::Corrupt { what: "read past the end of the FAT volume", detail: lba });
                }
                let victim = (0..self.cache.len()).min_by_key(|&i| self.cache[i].last_used).unwrap_or(0);
                let entry = &mut self.cache[victim];
                entry.lba = u64::MAX;
                self.device.read_blocks(self.start + lba, &mut entry.data)?;
                entry.lba = lba;
                victim
            }
        };
        self.cache[slot].last_used = self.tick;
        Ok(&self.cache[slot].data)
    }

    /// Small reads (metadata): every byte through the cache.
    pub fn read_cached(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), StorageError> {
        self.check_range(offset, dst.len())?;
        let mut done = 0;
        while done < dst.len() {
            let at = offset + done as u64;
            let within = (at % SECTOR_SIZE as u64) as usize;
            let take = (SECTOR_SIZE - within).min(dst.len() - done);
            let block = self.block(at / SECTOR_SIZE as u64)?;
            dst[done..done + take].copy_from_slice(&block[within..within + take]);
            done += take;
        }
        Ok(())
    }

    /// Bulk reads (file data, whole directories): the whole sectors in one
    /// device request into `dst`, a partial first or last sector through
    /// the cache.
    pub fn read_direct(&mut self, offset: u64, dst: &mut [u8]) -> Result<(), StorageError> {
        self.check_range(offset, dst.len())?;
        let mut done = 0;
        while done < dst.len() {
            let at = offset + done as u64;
            let within = (at % SECTOR_SIZE as u64) as usize;
            let whole = (dst.len() - done) / SECTOR_SIZE * SECTOR_SIZE;
            if within == 0 && whole > 0 {
                self.device.read_blocks(self.start + at / SECTOR_SIZE as u64, &mut dst[done..done + whole])?;
                done += whole;
            } else {
                let take = (SECTOR_SIZE - within).min(dst.len() - done);
                self.read_cached(at, &mut dst[done..done + take])?;
                done += take;
            }
        }
        Ok(())
    }

    /// The FAT entry of `cluster`: the next cluster of its chain, or `None`
    /// at the end of the chain. As lamfat reads it, a free or bad entry also
    /// ends a chain; a link to a cluster outside the data area (0 and 1
    /// included) is corruption.
    pub fn next_cluster(&mut self, geometry: &Geometry, cluster: u32) -> Result<Option<u32>, StorageError> {
        let c = u64::from(cluster);
        let (value, bad) = match geometry.fat_type {
            FatType::Fat32 => {
                let mut b = [0u8; 4];
                self.read_cached(geometry.fat_offset + c * 4, &mut b)?;
                (u32::from_le_bytes(b) & 0x0FFF_FFFF, 0x0FFF_FFF7)
            }
            FatType::Fat16 => {
                let mut b = [0u8; 2];
                self.read_cached(geometry.fat_offset + c * 2, &mut b)?;
                (u32::from(u16::from_le_bytes(b)), 0xFFF7)
            }
            FatType::Fat12 => {
                let mut b = [0u8; 2];
                self.read_cached(geometry.fat_offset + c + c / 2, &mut b)?;
                let packed = u32::from(u16::from_le_bytes(b));
                (if cluster & 1 == 0 { packed & 0x0FFF } else { packed >> 4 }, 0xFF7)
            }
        };
        if value == 0 || value >= bad {
            return Ok(None);
        }
        if !geometry.is_data_cluster(value) {
            return Err(StorageError::Corrupt {
                what: "FAT cluster chain links to a cluster outside the data area",
                detail: u64::from(value),
            });
        }
        Ok(Some(value))
    }
}

/// A cluster chain walked with a step limit and Brent's cycle detection.
pub struct ChainWalk {
    current: u32,
    steps: u32,
    limit: u32,
    tortoise: u32,
    power: u32,
    lambda: u32,
}

impl ChainWalk {
    /// Walk from `first` (already checked to be a data cluster) for at
    /// most `limit` clusters in all.
    pub fn new(first: u32, limit: u32) -> Self {
        Self { current: first, steps: 1, limit, tortoise: first, power: 1, lambda: 0 }
    }

    pub fn current(&self) -> u32 {
        self.current
    }

    /// Clusters seen so far, the first included.
    pub fn clusters(&self) -> u32 {
        self.steps
    }

    /// Advance to the next cluster; `Ok(None)` at the end of the chain.
    pub fn advance<D: BlockDevice>(
        &mut self,
        volume: &mut Volume<D>,
        geometry: &Geometry,
        too_long: &'static str,
    ) -> Result<Option<u32>, StorageError> {
        let Some(next) = volume.next_cluster(geometry, self.current)? else {
            return Ok(None);
        };
        if next == self.tortoise {
            return Err(StorageError::Corrupt { what: "FAT cluster chain loops", detail: u64::from(next) });
        }
        self.lambda += 1;
        if self.lambda == self.power {
            self.tortoise = next;
            self.power = self.power.saturating_mul(2);
            self.lambda = 0;
        }
        self.steps += 1;
        if self.steps > self.limit {
            return Err(StorageError::Corrupt { what: too_long, detail: u64::from(self.steps) });
        }
        self.current = next;
        Ok(Some(next))
    }
}

/// The byte extents (offset, length) of a directory's cluster chain in
/// chain order, adjacent clusters merged. The chain must start in the data
/// area, end within [`MAX_DIR_BYTES`] and not loop.
pub fn directory_extents<D: BlockDevice>(
    volume: &mut Volume<D>,
    geometry: &Geometry,
    first: u32,
) -> Result<Vec<(u64, u64)>, StorageError> {
    if !geometry.is_data_cluster(first) {
        return Err(StorageError::Corrupt {
            what: "directory starts outside the data area",
            detail: u64::from(first),
        });
    }
    let cluster_bytes = u64::from(geometry.cluster_bytes);
    let limit = (MAX_DIR_BYTES / cluster_bytes).max(1).min(u64::from(geometry.cluster_count)) as u32;
    let mut walk = ChainWalk::new(first, limit);
    let mut extents = vec![(geometry.cluster_offset(first), cluster_bytes)];
    while let Some(next) =
        walk.advance(volume, geometry, "directory is larger than 65536 entries (or its cluster chain loops)")?
    {
        let offset = geometry.cluster_offset(next);
        match extents.last_mut() {
            Some(last) if last.0 + last.1 == offset => last.1 += cluster_bytes,
            _ => extents.push((offset, cluster_bytes)),
        }
    }
    Ok(extents)
}

/// Check a file's chain once before reading it: it starts in the data
/// area, reaches its end without looping, and has a cluster for every byte
/// of `size`. After this, following the chain up to the size cannot fail
/// but for a device error.
pub fn check_file_chain<D: BlockDevice>(
    volume: &mut Volume<D>,
    geometry: &Geometry,
    first: u32,
    size: u32,
) -> Result<(), StorageError> {
    if size == 0 {
        return Ok(());
    }
    if !geometry.is_data_cluster(first) {
        return Err(StorageError::Corrupt { what: "file data starts outside the data area", detail: u64::from(first) });
    }
    let mut walk = ChainWalk::new(first, geometry.cluster_count);
    while walk.advance(volume, geometry, "FAT cluster chain is longer than the volume (it loops)")?.is_some() {}
    let needed = u64::from(size).div_ceil(u64::from(geometry.cluster_bytes));
    if u64::from(walk.clusters()) < needed {
        return Err(StorageError::Corrupt {
            what: "file size is larger than its cluster chain",
            detail: u64::from(size),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fat::bpb;
    use crate::mem_device::MemBlockDevice;

    /// The mkfs-like FAT32 geometry of `bpb::tests`, with `links` written
    /// into the FAT.
    fn volume(links: &[(u32, u32)]) -> (Volume<MemBlockDevice>, Geometry) {
        let sector = bpb::tests::fat32_sector();
        let geometry = bpb::parse(&sector, 81920 * 512).unwrap();
        let mut bytes = vec![0u8; 81920 * 512];
        bytes[..512].copy_from_slice(&sector);
        for &(cluster, next) in links {
            let at = geometry.fat_offset as usize + cluster as usize * 4;
            bytes[at..at + 4].copy_from_slice(&next.to_le_bytes());
        }
        (Volume::new(MemBlockDevice::from_bytes(bytes), 0, 81920), geometry)
    }

    const EOC: u32 = 0x0FFF_FFFF;

    #[test]
    fn directory_extents_merge_adjacent_clusters() {
        let (mut v, g) = volume(&[(5, 6), (6, 7), (7, 20), (20, EOC)]);
        let ext = directory_extents(&mut v, &g, 5).unwrap();
        assert_eq!(ext, vec![(g.cluster_offset(5), 1536), (g.cluster_offset(20), 512)]);
    }

    #[test]
    fn loops_and_wild_links_are_errors() {
        for links in [
            vec![(5, 6), (6, 5)],                  // two-cluster loop
            vec![(5, 5)],                          // self loop
            vec![(5, 6), (6, 7), (7, 8), (8, 6)],  // loop after a tail
            vec![(5, 1)],                          // reserved cluster
            vec![(5, 0x0FFF_FFF0)],                // past the data area
        ] {
            let (mut v, g) = volume(&links);
            assert!(directory_extents(&mut v, &g, 5).unwrap_err().is_corruption(), "{links:?}");
            assert!(check_file_chain(&mut v, &g, 5, 4096).unwrap_err().is_corruption(), "{links:?}");
        }
        // A long loop far down the chain is still caught, by Brent or by the limit.
        let mut links: Vec<(u32, u32)> = (100..3000).map(|c| (c, c + 1)).collect();
        links.push((3000, 1500));
        let (mut v, g) = volume(&links);
        assert!(check_file_chain(&mut v, &g, 100, 512).is_err());
        assert!(directory_extents(&mut v, &g, 100).is_err());
    }

    #[test]
    fn file_size_must_fit_the_chain() {
        let (mut v, g) = volume(&[(5, 6), (6, EOC)]);
        check_file_chain(&mut v, &g, 5, 1024).unwrap();
        check_file_chain(&mut v, &g, 5, 1).unwrap();
        assert!(check_file_chain(&mut v, &g, 5, 1025).is_err());
        assert!(check_file_chain(&mut v, &g, 0, 1).is_err());
        check_file_chain(&mut v, &g, 0, 0).unwrap();
    }

    #[test]
    fn cache_serves_repeated_metadata_reads() {
        let (mut v, g) = volume(&[(5, 6), (6, EOC)]);
        v.device.reset_counters();
        for _ in 0..100 {
            v.next_cluster(&g, 5).unwrap();
        }
        assert_eq!(v.device.reads, 1);
        let mut buf = vec![0u8; 4096 + 100];
        v.read_direct(g.data_offset + 100, &mut buf).unwrap();
        // Head partial sector, one request for the whole sectors, tail.
        assert_eq!(v.device.reads, 1 + 3);
        assert!(v.read_direct(v.len_bytes() - 10, &mut [0u8; 11]).is_err());
    }
}
