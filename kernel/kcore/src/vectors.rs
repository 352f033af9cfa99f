//! Allocator for interrupt vectors handed to devices (MSI/MSI-X) and legacy
//! routes: first fit over a fixed range, with release and reuse.

/// Vectors 0..32 are exceptions; the allocator manages `[first, last]`.
pub struct VectorAllocator {
    used: [u64; 4],
    first: u8,
    last: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorError {
    Exhausted,
    OutOfRange(u8),
    NotAllocated(u8),
    AlreadyAllocated(u8),
}

impl VectorAllocator {
    pub const fn new(first: u8, last: u8) -> VectorAllocator {
        VectorAllocator { used: [0; 4], first, last }
    }

    fn bit(&self, v: u8) -> bool {
        self.used[(v / 64) as usize] & (1 << (v % 64)) != 0
    }

    fn set(&mut self, v: u8, on: bool) {
        let w = &mut self.used[(v / 64) as usize];
        if on {
            *w |= 1 << (v % 64);
        } else {
            *w &= !(1 << (v % 64));
        }
    }

    /// The lowest free vector.
    pub fn alloc(&mut self) -> Result<u8, VectorError> {
        let v = (self.first..=self.last).find(|&v| !self.bit(v)).ok_or(VectorError::Exhausted)?;
        self.set(v, true);
        Ok(v)
    }

    /// Claim a specific vector (fixed assignments such as the timer).
    pub fn claim(&mut self, v: u8) -> Result<(), VectorError> {
        if v < self.first || v > self.last {
            return Err(VectorError::OutOfRange(v));
        }
        if self.bit(v) {
            return Err(VectorError::AlreadyAllocated(v));
        }
        self.set(v, true);
        Ok(())
    }

    pub fn release(&mut self, v: u8) -> Result<(), VectorError> {
        if v < self.first || v > self.last {
            return Err(VectorError::OutOfRange(v));
        }
        if !self.bit(v) {
            return Err(VectorError::NotAllocated(v));
        }
        self.set(v, false);
        Ok(())
    }

    pub fn is_allocated(&self, v: u8) -> bool {
        v >= self.first && v <= self.last && self.bit(v)
    }

    pub fn in_use(&self) -> u32 {
        (self.first..=self.last).filter(|&v| self.bit(v)).count() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_release_and_reuse() {
        let mut a = VectorAllocator::new(0x30, 0x33);
        assert_eq!(a.alloc(), Ok(0x30));
        assert_eq!(a.alloc(), Ok(0x31));
        assert_eq!(a.alloc(), Ok(0x32));
        a.release(0x31).unwrap();
        assert_eq!(a.alloc(), Ok(0x31), "lowest free vector is reused");
        assert_eq!(a.alloc(), Ok(0x33));
        assert_eq!(a.alloc(), Err(VectorError::Exhausted));
        assert_eq!(a.in_use(), 4);
        assert_eq!(a.release(0x20), Err(VectorError::OutOfRange(0x20)));
        a.release(0x30).unwrap();
        assert_eq!(a.release(0x30), Err(VectorError::NotAllocated(0x30)), "double release");
    }

    #[test]
    fn claims() {
        let mut a = VectorAllocator::new(32, 254);
        a.claim(0xef).unwrap();
        assert_eq!(a.claim(0xef), Err(VectorError::AlreadyAllocated(0xef)));
        assert_eq!(a.claim(0xff), Err(VectorError::OutOfRange(0xff)));
        assert!(a.is_allocated(0xef));
        assert_eq!(a.alloc(), Ok(32));
        let mut full = VectorAllocator::new(32, 254);
        for _ in 32..=254 {
            full.alloc().unwrap();
        }
        assert_eq!(full.alloc(), Err(VectorError::Exhausted));
    }
}
