//! What block-check writes where: shared with the runner
//! (tools/runner/src/scenarios/storage/block_cap.rs includes this file), which
//! checks the disk image byte for byte after the boot.

/// Byte `i` of block `lba` (relative to the granted range) in the run
/// with `seed`: differs between blocks, runs and offsets in a block.
pub fn byte(seed: u64, lba: u64, i: usize) -> u8 {
    let x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ lba.wrapping_mul(0xC2B2_AE3D_27D4_EB4F) ^ (i as u64).wrapping_mul(0x1656_67B1);
    (x ^ (x >> 29) ^ (x >> 47)) as u8
}

/// `buf` (whole blocks of `block_size`) as blocks `lba..` of run `seed`.
pub fn fill(seed: u64, lba: u64, block_size: usize, buf: &mut [u8]) {
    for (b, block) in buf.chunks_mut(block_size).enumerate() {
        for (i, v) in block.iter_mut().enumerate() {
            *v = byte(seed, lba + b as u64, i);
        }
    }
}

/// The regions `(lba, blocks)` the guest writes in a range of `count`
/// blocks: the first blocks, the middle, the last block, and the
/// region written through `CapBlockDevice` (`ADAPTER`).
pub fn regions(count: u64) -> [(u64, u64); 4] {
    [(0, 2), (count / 2 - 1, 3), (count - 1, 1), (count / 4, ADAPTER_BLOCKS)]
}

/// Blocks written through the adapter, in calls of `ADAPTER_CALL_BYTES`.
pub const ADAPTER_BLOCKS: u64 = 24;
pub const ADAPTER_CALL_BYTES: usize = 4096;
