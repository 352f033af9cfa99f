//! CRC32C (Castagnoli), the checksum on every capOS metadata block and record.
//!
//! Why our own: the registry's `crc32c` crate needs `std` (runtime CPU
//! feature detection and `std::io` adapters), and the kernel build is
//! `no_std`. A table-driven CRC is a few lines, computed at compile time, and
//! pinned below by the standard check value (RFC 3720, B.4).
//!
//! Eight bytes a step ("slicing-by-8": eight 1 KiB tables, where
//! `TABLES[k][b]` is byte `b` followed by `k` zero bytes): every metadata
//! commit checksums its region's fingerprints and every block it seals, so
//! this is on the write path of every store and file system operation.
//! The hardware `crc32` instruction would be faster still, but it needs
//! SSE4.2 chosen at build or run time and `unsafe` in this crate.

const POLYNOMIAL_REVERSED: u32 = 0x82F6_3B78;

const TABLES: [[u32; 256]; 8] = build_tables();

const fn build_tables() -> [[u32; 256]; 8] {
    let mut tables = [[0u32; 256]; 8];
    let mut index = 0;
    while index < 256 {
        let mut crc = index as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ POLYNOMIAL_REVERSED } else { crc >> 1 };
            bit += 1;
        }
        tables[0][index] = crc;
        index += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut index = 0;
        while index < 256 {
            let previous = tables[k - 1][index];
            tables[k][index] = tables[0][(previous & 0xFF) as usize] ^ (previous >> 8);
            index += 1;
        }
        k += 1;
    }
    tables
}

/// CRC32C of `bytes`.
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c_append(0, bytes)
}

/// Continue a CRC32C: `crc32c_append(crc32c(a), b) == crc32c(a ++ b)`.
pub fn crc32c_append(crc: u32, bytes: &[u8]) -> u32 {
    let t = &TABLES;
    let mut state = !crc;
    let mut words = bytes.chunks_exact(8);
    for w in &mut words {
        let low = state ^ u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
        state = t[7][(low & 0xFF) as usize]
            ^ t[6][((low >> 8) & 0xFF) as usize]
            ^ t[5][((low >> 16) & 0xFF) as usize]
            ^ t[4][(low >> 24) as usize]
            ^ t[3][w[4] as usize]
            ^ t[2][w[5] as usize]
            ^ t[1][w[6] as usize]
            ^ t[0][w[7] as usize];
    }
    for &byte in words.remainder() {
        state = t[0][((state ^ byte as u32) & 0xFF) as usize] ^ (state >> 8);
    }
    !state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_check_values() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc32c(b"Hello world!"), 0x7B98_E751);
    }

    /// The bit-at-a-time definition, to hold the tables to.
    fn reference(bytes: &[u8]) -> u32 {
        let mut state = !0u32;
        for &byte in bytes {
            state ^= byte as u32;
            for _ in 0..8 {
                state = if state & 1 != 0 { (state >> 1) ^ POLYNOMIAL_REVERSED } else { state >> 1 };
            }
        }
        !state
    }

    #[test]
    fn eight_at_a_time_matches_bit_at_a_time() {
        let data: alloc::vec::Vec<u8> = (0..300u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        for start in 0..9 {
            for end in start..data.len() {
                assert_eq!(crc32c(&data[start..end]), reference(&data[start..end]), "{start}..{end}");
            }
        }
    }

    #[test]
    fn append_matches_whole() {
        let data = b"capOS storage checksum";
        for split in 0..data.len() {
            let (a, b) = data.split_at(split);
            assert_eq!(crc32c_append(crc32c(a), b), crc32c(data));
        }
    }
}
