//! A block device backed by memory, with counters.
//!
//! Why: the host tool builds images in memory before writing the file, tests
//! run engines against it, and the benchmark reads its write and flush
//! counters to report write amplification.

use crate::block::{check_request, BlockDevice, BlockError, SECTOR_SIZE};
use alloc::vec;
use alloc::vec::Vec;

#[derive(Clone, Debug)]
pub struct MemBlockDevice {
    bytes: Vec<u8>,
    read_only: bool,
    /// Number of `write_blocks` calls that succeeded.
    pub writes: u64,
    /// Number of blocks those calls wrote.
    pub blocks_written: u64,
    /// Number of `flush` calls.
    pub flushes: u64,
    /// Number of `read_blocks` calls.
    pub reads: u64,
}

impl MemBlockDevice {
    /// A zeroed device of `blocks` 512-byte blocks.
    pub fn new(blocks: u64) -> Self {
        Self::from_bytes(vec![0u8; (blocks as usize) * SECTOR_SIZE])
    }

    /// Wrap an image. A trailing partial block is not addressable.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self { bytes, read_only: false, writes: 0, blocks_written: 0, flushes: 0, reads: 0 }
    }

    /// Make every later write fail with [`BlockError::ReadOnly`].
    pub fn set_read_only(&mut self, read_only: bool) {
        self.read_only = read_only;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    pub fn reset_counters(&mut self) {
        self.writes = 0;
        self.blocks_written = 0;
        self.flushes = 0;
        self.reads = 0;
    }
}

impl BlockDevice for MemBlockDevice {
    fn block_size(&self) -> usize {
        SECTOR_SIZE
    }
    fn block_count(&self) -> u64 {
        (self.bytes.len() / SECTOR_SIZE) as u64
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(SECTOR_SIZE, self.block_count(), lba, buf.len())?;
        let start = lba as usize * SECTOR_SIZE;
        buf.copy_from_slice(&self.bytes[start..start + buf.len()]);
        self.reads += 1;
        Ok(())
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        let blocks = check_request(SECTOR_SIZE, self.block_count(), lba, buf.len())?;
        if self.read_only {
            return Err(BlockError::ReadOnly);
        }
        let start = lba as usize * SECTOR_SIZE;
        self.bytes[start..start + buf.len()].copy_from_slice(buf);
        self.writes += 1;
        self.blocks_written += blocks;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.flushes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_requests() {
        let mut d = MemBlockDevice::new(4);
        let mut buf = [0u8; 1024];
        assert_eq!(d.read_blocks(3, &mut buf), Err(BlockError::OutOfRange));
        assert_eq!(d.read_blocks(u64::MAX, &mut buf), Err(BlockError::OutOfRange));
        assert_eq!(d.read_blocks(0, &mut buf[..100]), Err(BlockError::BadLength));
        assert_eq!(d.read_blocks(0, &mut []), Err(BlockError::BadLength));
        d.write_blocks(2, &[7u8; 1024]).unwrap();
        d.read_blocks(2, &mut buf).unwrap();
        assert_eq!(buf, [7u8; 1024]);
        d.set_read_only(true);
        assert_eq!(d.write_blocks(0, &buf[..512]), Err(BlockError::ReadOnly));
    }
}
