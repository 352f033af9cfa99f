//! A device that can lose power, for crash-consistency tests.
//!
//! Why in the library: the storage crate's own tests, the image tool's tests
//! and anyone adding a format need the same adversary. The model follows the
//! [`BlockDevice`] contract exactly:
//! - every `write_blocks` and `flush` call is one numbered *event*;
//! - a power cut at event `k` means events `0..k` happened and nothing after:
//!   the call numbered `k` and every later call fail;
//! - what survives is the flushed media plus, for every block with unflushed
//!   writes, *any one* of {its flushed contents, each unflushed version}
//!   (writes are dropped, reordered, and multi-block writes torn at block
//!   granularity; one block is written atomically).

use crate::block::{check_request, BlockDevice, BlockError, SECTOR_SIZE};
use alloc::collections::BTreeMap;
use alloc::vec::Vec;

/// Status reported by every request after the simulated power cut.
pub const POWER_LOST_STATUS: u32 = 0xDEAD;

#[derive(Clone, Debug)]
pub struct CrashSimDevice {
    /// Contents that survive a power cut for sure.
    durable: Vec<u8>,
    /// What reads see: durable plus every unflushed write.
    current: Vec<u8>,
    /// Unflushed versions of each block, oldest first.
    pending: BTreeMap<u64, Vec<Vec<u8>>>,
    events: u64,
    cut_at: Option<u64>,
    power_lost: bool,
}

impl CrashSimDevice {
    pub fn new(image: Vec<u8>) -> Self {
        Self {
            current: image.clone(),
            durable: image,
            pending: BTreeMap::new(),
            events: 0,
            cut_at: None,
            power_lost: false,
        }
    }

    /// Lose power when event number `event` (0-based) is attempted.
    pub fn cut_power_at(&mut self, event: u64) {
        self.cut_at = Some(event);
    }

    /// Writes plus flushes attempted so far (before any cut).
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn power_lost(&self) -> bool {
        self.power_lost
    }

    /// The media after power loss. `choose(versions)` picks, for each block
    /// with unflushed writes, which version survives: 0 is the flushed
    /// contents, `i` the `i`-th unflushed write (so `versions` is the number
    /// of unflushed writes plus one).
    pub fn surviving_image(&self, mut choose: impl FnMut(usize) -> usize) -> Vec<u8> {
        let mut image = self.durable.clone();
        for (&lba, versions) in &self.pending {
            let pick = choose(versions.len() + 1) % (versions.len() + 1);
            if pick > 0 {
                let start = lba as usize * SECTOR_SIZE;
                image[start..start + SECTOR_SIZE].copy_from_slice(&versions[pick - 1]);
            }
        }
        image
    }

    /// Number of blocks that have unflushed writes.
    pub fn pending_blocks(&self) -> usize {
        self.pending.len()
    }

    fn event(&mut self) -> Result<(), BlockError> {
        if self.power_lost || self.cut_at == Some(self.events) {
            self.power_lost = true;
            return Err(BlockError::Device { status: POWER_LOST_STATUS });
        }
        self.events += 1;
        Ok(())
    }
}

impl BlockDevice for CrashSimDevice {
    fn block_size(&self) -> usize {
        SECTOR_SIZE
    }
    fn block_count(&self) -> u64 {
        (self.current.len() / SECTOR_SIZE) as u64
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        if self.power_lost {
            return Err(BlockError::Device { status: POWER_LOST_STATUS });
        }
        check_request(SECTOR_SIZE, self.block_count(), lba, buf.len())?;
        let start = lba as usize * SECTOR_SIZE;
        buf.copy_from_slice(&self.current[start..start + buf.len()]);
        Ok(())
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        check_request(SECTOR_SIZE, self.block_count(), lba, buf.len())?;
        self.event()?;
        for (i, block) in buf.chunks(SECTOR_SIZE).enumerate() {
            let at = lba + i as u64;
            let start = at as usize * SECTOR_SIZE;
            self.current[start..start + SECTOR_SIZE].copy_from_slice(block);
            self.pending.entry(at).or_default().push(block.to_vec());
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.event()?;
        self.durable.copy_from_slice(&self.current);
        self.pending.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn unflushed_writes_may_be_lost_flushed_ones_survive() {
        let mut d = CrashSimDevice::new(vec![0u8; 4 * 512]);
        d.write_blocks(0, &[1u8; 1024]).unwrap();
        d.flush().unwrap();
        d.write_blocks(1, &[2u8; 1024]).unwrap();
        d.write_blocks(1, &[3u8; 512]).unwrap();
        d.cut_power_at(4);
        assert!(d.flush().is_err());
        assert!(d.power_lost());
        let mut buf = [0u8; 512];
        assert!(d.read_blocks(0, &mut buf).is_err());
        let none = d.surviving_image(|_| 0);
        assert_eq!(&none[..1024], &[1u8; 1024][..]);
        assert_eq!(none[1024], 0);
        let newest = d.surviving_image(|n| n - 1);
        assert_eq!(newest[512], 3);
        assert_eq!(newest[1024], 2);
        let older = d.surviving_image(|_| 1);
        assert_eq!(older[512], 2);
        assert_eq!(d.events(), 4);
    }
}
