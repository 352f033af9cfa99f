//! The test pattern: a byte stream anyone can make again from a seed,
//! without storing it. The shell's `fill PATH SIZE [SEED]` writes it, and
//! the runner computes the same bytes to check what came back (over HTTP
//! in `make run-net`): binary data of any size, every byte value, typed
//! as one short command.
//!
//! Byte `i` of the stream for `seed` is byte `i % 8` (little-endian) of
//! `splitmix64(seed + i / 8)`, so any range can be made on its own, and
//! the stream is the same on every machine.

/// SplitMix64's output for state `x` (Steele, Lea and Flood's finaliser).
pub const fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fill `buf` with the stream for `seed` from byte `offset`.
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let at = offset + i as u64;
        *b = splitmix64(seed.wrapping_add(at / 8)).to_le_bytes()[(at % 8) as usize];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values_and_any_range_on_its_own() {
        // SplitMix64 from state 0: its first output is the published one.
        assert_eq!(splitmix64(0), 0xe220_a839_7b1d_cdaf);
        let mut whole = [0u8; 100];
        fill(7, 0, &mut whole);
        for start in 0..100 {
            let mut part = [0u8; 13];
            let n = part.len().min(100 - start);
            fill(7, start as u64, &mut part[..n]);
            assert_eq!(&part[..n], &whole[start..start + n], "range from {start}");
        }
        let mut other = [0u8; 100];
        fill(8, 0, &mut other);
        assert_ne!(whole, other, "another seed, another stream");
    }

    #[test]
    fn every_byte_value_appears_in_a_few_kib() {
        let mut buf = [0u8; 8192];
        fill(1, 0, &mut buf);
        let mut seen = [false; 256];
        for b in buf {
            seen[b as usize] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }
}
