//! A contiguous range of blocks of another device, seen as a device.
//!
//! Why: the co-located image holds a CAPOSST1 store and a CAPOSWF1
//! filesystem side by side on one disk; each engine addresses its own range
//! from block 0 and cannot touch its neighbour's blocks.

use crate::block::{check_request, BlockDevice, BlockError};

pub struct Partition<D> {
    inner: D,
    start: u64,
    count: u64,
}

impl<D: BlockDevice> Partition<D> {
    /// The blocks `start .. start + count` of `inner`.
    pub fn new(inner: D, start: u64, count: u64) -> Result<Self, BlockError> {
        match start.checked_add(count) {
            Some(end) if end <= inner.block_count() => Ok(Self { inner, start, count }),
            _ => Err(BlockError::OutOfRange),
        }
    }

    pub fn into_inner(self) -> D {
        self.inner
    }
}

impl<D: BlockDevice> BlockDevice for Partition<D> {
    fn block_size(&self) -> usize {
        self.inner.block_size()
    }
    fn block_count(&self) -> u64 {
        self.count
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(self.block_size(), self.count, lba, buf.len())?;
        self.inner.read_blocks(self.start + lba, buf)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        check_request(self.block_size(), self.count, lba, buf.len())?;
        self.inner.write_blocks(self.start + lba, buf)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.inner.flush()
    }
    fn pause(&mut self) {
        self.inner.pause()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem_device::MemBlockDevice;

    #[test]
    fn confines_requests() {
        let mut disk = MemBlockDevice::new(8);
        {
            let mut p = Partition::new(&mut disk, 2, 3).unwrap();
            assert_eq!(p.write_blocks(3, &[1u8; 512]), Err(BlockError::OutOfRange));
            p.write_blocks(2, &[9u8; 512]).unwrap();
        }
        assert_eq!(disk.as_bytes()[4 * 512], 9);
        assert!(Partition::new(&mut disk, 6, 3).is_err());
        assert!(Partition::new(&mut disk, u64::MAX, 3).is_err());
    }
}
