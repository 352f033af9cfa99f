//! Explicit little-endian encoding and decoding of on-disk fields.
//!
//! Why not transmute or `repr(C)` casts: the bytes come from a disk that may
//! be hostile, and every field must be read at a named offset with a bounds
//! check. These helpers never panic: an out-of-bounds read yields an error.

use crate::error::StorageError;

/// Reads little-endian fields from a byte slice at explicit offsets.
pub struct LeReader<'a> {
    bytes: &'a [u8],
}

impl<'a> LeReader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub fn bytes(&self, offset: usize, len: usize) -> Result<&'a [u8], StorageError> {
        offset
            .checked_add(len)
            .and_then(|end| self.bytes.get(offset..end))
            .ok_or(StorageError::Truncated)
    }

    fn array<const N: usize>(&self, offset: usize) -> Result<[u8; N], StorageError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(offset, N)?);
        Ok(out)
    }

    pub fn u8(&self, offset: usize) -> Result<u8, StorageError> {
        Ok(self.array::<1>(offset)?[0])
    }
    pub fn u16(&self, offset: usize) -> Result<u16, StorageError> {
        Ok(u16::from_le_bytes(self.array(offset)?))
    }
    pub fn u32(&self, offset: usize) -> Result<u32, StorageError> {
        Ok(u32::from_le_bytes(self.array(offset)?))
    }
    pub fn u64(&self, offset: usize) -> Result<u64, StorageError> {
        Ok(u64::from_le_bytes(self.array(offset)?))
    }
    pub fn i64(&self, offset: usize) -> Result<i64, StorageError> {
        Ok(i64::from_le_bytes(self.array(offset)?))
    }
}

/// Writes little-endian fields into a byte slice at explicit offsets.
///
/// Encoders only ever write into buffers they sized themselves, so an
/// out-of-bounds offset is a bug in this crate; it is still reported as an
/// error rather than a panic.
pub struct LeWriter<'a> {
    bytes: &'a mut [u8],
}

impl<'a> LeWriter<'a> {
    pub fn new(bytes: &'a mut [u8]) -> Self {
        Self { bytes }
    }

    pub fn put_bytes(&mut self, offset: usize, value: &[u8]) -> Result<(), StorageError> {
        let end = offset.checked_add(value.len()).ok_or(StorageError::Truncated)?;
        self.bytes
            .get_mut(offset..end)
            .ok_or(StorageError::Truncated)?
            .copy_from_slice(value);
        Ok(())
    }
    pub fn u8(&mut self, offset: usize, value: u8) -> Result<(), StorageError> {
        self.put_bytes(offset, &[value])
    }
    pub fn u16(&mut self, offset: usize, value: u16) -> Result<(), StorageError> {
        self.put_bytes(offset, &value.to_le_bytes())
    }
    pub fn u32(&mut self, offset: usize, value: u32) -> Result<(), StorageError> {
        self.put_bytes(offset, &value.to_le_bytes())
    }
    pub fn u64(&mut self, offset: usize, value: u64) -> Result<(), StorageError> {
        self.put_bytes(offset, &value.to_le_bytes())
    }
    pub fn i64(&mut self, offset: usize, value: i64) -> Result<(), StorageError> {
        self.put_bytes(offset, &value.to_le_bytes())
    }
}

/// Store `crc32c(bytes[..len-4])` in the last four bytes of `bytes`.
pub fn seal(bytes: &mut [u8]) -> Result<(), StorageError> {
    let body_len = bytes.len().checked_sub(4).ok_or(StorageError::Truncated)?;
    let crc = crate::checksum::crc32c(&bytes[..body_len]);
    LeWriter::new(bytes).u32(body_len, crc)
}

/// Whether the last four bytes of `bytes` are the CRC32C of the rest.
pub fn is_sealed(bytes: &[u8]) -> bool {
    match bytes.len().checked_sub(4) {
        Some(body_len) => {
            let stored = LeReader::new(bytes).u32(body_len).unwrap_or(0);
            crate::checksum::crc32c(&bytes[..body_len]) == stored
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut buf = [0u8; 16];
        let mut w = LeWriter::new(&mut buf);
        w.u16(0, 0x1234).unwrap();
        w.u32(2, 0xDEAD_BEEF).unwrap();
        w.i64(6, -2).unwrap();
        assert!(w.u64(9, 1).is_err());
        assert_eq!(&buf[..6], &[0x34, 0x12, 0xEF, 0xBE, 0xAD, 0xDE]);
        let r = LeReader::new(&buf);
        assert_eq!(r.u16(0).unwrap(), 0x1234);
        assert_eq!(r.u32(2).unwrap(), 0xDEAD_BEEF);
        assert_eq!(r.i64(6).unwrap(), -2);
        assert_eq!(r.u64(9), Err(StorageError::Truncated));
        assert_eq!(r.bytes(usize::MAX, 2), Err(StorageError::Truncated));
    }

    #[test]
    fn seal_detects_every_single_bit_flip() {
        let mut block = [0u8; 64];
        for (i, b) in block.iter_mut().enumerate() {
            *b = i as u8;
        }
        seal(&mut block).unwrap();
        assert!(is_sealed(&block));
        for bit in 0..block.len() * 8 {
            let mut copy = block;
            copy[bit / 8] ^= 1 << (bit % 8);
            assert!(!is_sealed(&copy), "flip of bit {bit} went unnoticed");
        }
        assert!(!is_sealed(&[1, 2, 3]));
    }
}
