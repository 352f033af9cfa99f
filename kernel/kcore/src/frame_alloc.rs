//! Physical frame allocator: two bits per 4 KiB frame.
//!
//! A bitmap costs 64 KiB per GiB of RAM, gives O(1) free and double-free
//! detection, and makes contiguous runs (DMA buffers, later) easy to find.
//! Allocation scans from a rotating cursor one 64-bit word at a time, so
//! long runs of used frames are skipped quickly.
//!
//! Rules:
//! - Only frames handed over with [`FrameAllocator::add_free`] are
//!   *managed*; [`FrameAllocator::reserve`] takes frames out of management
//!   again (free or not). A second bitmap records which frames are managed.
//! - Only a managed frame that is in use can be freed. Freeing anything
//!   else — a frame the memory map never gave (MMIO, firmware, a hole), a
//!   reserved frame, a free frame — is [`FreeError::NotAllocated`] and
//!   changes nothing, so such a frame is never handed out later.
//! - Frame 0 is never managed, whatever the memory map says, so a null
//!   physical address is never a valid frame.

pub const FRAME_SIZE: u64 = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreeError {
    /// Address not 4 KiB aligned.
    Misaligned(u64),
    /// Address beyond the tracked range.
    OutOfRange(u64),
    /// The frame was already free (double free), never managed, or reserved.
    NotAllocated(u64),
}

/// A bitmap allocator over `storage`: the first half is the in-use bitmap
/// (bit set = frame not available), the second the managed bitmap (bit set
/// = frame handed over by `add_free` and not reserved since).
pub struct FrameAllocator<'a> {
    used: &'a mut [u64],
    managed_bits: &'a mut [u64],
    frames: u64,
    free: u64,
    managed: u64,
    cursor: usize,
}

/// Words of storage (both bitmaps) needed to track physical memory up to
/// `max_phys`.
pub fn bitmap_words(max_phys: u64) -> usize {
    2 * (max_phys.div_ceil(FRAME_SIZE)).div_ceil(64) as usize
}

fn bit(bits: &[u64], frame: u64) -> bool {
    bits[(frame / 64) as usize] & (1 << (frame % 64)) != 0
}

fn set_bit(bits: &mut [u64], frame: u64, value: bool) {
    let w = &mut bits[(frame / 64) as usize];
    if value {
        *w |= 1 << (frame % 64);
    } else {
        *w &= !(1 << (frame % 64));
    }
}

impl<'a> FrameAllocator<'a> {
    /// An allocator managing no frame yet; add memory with [`add_free`].
    /// `storage` holds both bitmaps (see [`bitmap_words`]); an odd last
    /// word is unused.
    pub fn new(storage: &'a mut [u64]) -> FrameAllocator<'a> {
        let half = storage.len() / 2;
        let (used, rest) = storage.split_at_mut(half);
        let managed_bits = &mut rest[..half];
        used.fill(u64::MAX);
        managed_bits.fill(0);
        let frames = half as u64 * 64;
        FrameAllocator { used, managed_bits, frames, free: 0, managed: 0, cursor: 0 }
    }

    fn is_used(&self, frame: u64) -> bool {
        bit(self.used, frame)
    }

    fn set(&mut self, frame: u64, used: bool) {
        set_bit(self.used, frame, used);
    }

    fn is_managed(&self, frame: u64) -> bool {
        bit(self.managed_bits, frame)
    }

    /// Hand the whole frames inside `[base, base + len)` to the allocator.
    /// Partial frames at either end and anything beyond the bitmap are
    /// ignored, as are frames already managed (free or in use). Returns
    /// how many frames were added.
    pub fn add_free(&mut self, base: u64, len: u64) -> u64 {
        let first = base.div_ceil(FRAME_SIZE).max(1);
        let end = (base.saturating_add(len) / FRAME_SIZE).min(self.frames);
        let mut added = 0;
        for f in first..end {
            if !self.is_managed(f) {
                set_bit(self.managed_bits, f, true);
                self.set(f, false);
                added += 1;
            }
        }
        self.free += added;
        self.managed += added;
        added
    }

    /// Take the frames touching `[base, base + len)` out of management (e.g.
    /// the frames holding the bitmap itself): they are never handed out and
    /// freeing one is refused. A frame in use when reserved stays with its
    /// holder, who can no longer free it. Returns how many were free.
    pub fn reserve(&mut self, base: u64, len: u64) -> u64 {
        let first = base / FRAME_SIZE;
        let end = base.saturating_add(len).div_ceil(FRAME_SIZE).min(self.frames);
        let mut taken = 0;
        for f in first..end {
            if !self.is_managed(f) {
                continue;
            }
            set_bit(self.managed_bits, f, false);
            self.managed -= 1;
            if !self.is_used(f) {
                self.set(f, true);
                taken += 1;
            }
        }
        self.free -= taken;
        taken
    }

    /// One frame; returns its physical address.
    pub fn alloc(&mut self) -> Option<u64> {
        if self.free == 0 {
            return None;
        }
        let words = self.used.len();
        for i in 0..words {
            let w = (self.cursor + i) % words;
            let word = self.used[w];
            if word != u64::MAX {
                let bit = (!word).trailing_zeros() as u64;
                let frame = w as u64 * 64 + bit;
                self.set(frame, true);
                self.free -= 1;
                self.cursor = w;
                return Some(frame * FRAME_SIZE);
            }
        }
        None
    }

    /// `count` physically contiguous frames whose first frame is a multiple
    /// of `align_frames` (a power of two, at least 1). First fit.
    pub fn alloc_contiguous(&mut self, count: u64, align_frames: u64) -> Option<u64> {
        if count == 0 || !align_frames.is_power_of_two() || count > self.free {
            return None;
        }
        let mut start = align_frames.max(1);
        while start + count <= self.frames {
            match (start..start + count).rev().find(|&f| self.is_used(f)) {
                Some(used) => start = (used + 1).next_multiple_of(align_frames),
                None => {
                    for f in start..start + count {
                        self.set(f, true);
                    }
                    self.free -= count;
                    return Some(start * FRAME_SIZE);
                }
            }
        }
        None
    }

    /// One frame at or above physical address `min` (first fit).
    pub fn alloc_at_or_above(&mut self, min: u64) -> Option<u64> {
        let first = min.div_ceil(FRAME_SIZE).max(1);
        let frame = (first..self.frames).find(|&f| !self.is_used(f))?;
        self.set(frame, true);
        self.free -= 1;
        Some(frame * FRAME_SIZE)
    }

    /// Give back a frame this allocator handed out. Anything else is
    /// refused and changes nothing (see the rules at the top).
    pub fn free(&mut self, addr: u64) -> Result<(), FreeError> {
        if addr % FRAME_SIZE != 0 {
            return Err(FreeError::Misaligned(addr));
        }
        let frame = addr / FRAME_SIZE;
        if frame >= self.frames {
            return Err(FreeError::OutOfRange(addr));
        }
        if frame == 0 || !self.is_managed(frame) || !self.is_used(frame) {
            return Err(FreeError::NotAllocated(addr));
        }
        self.set(frame, false);
        self.free += 1;
        Ok(())
    }

    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames managed now: added and not reserved since (free or in use).
    pub fn managed_frames(&self) -> u64 {
        self.managed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_only_added_frames_and_never_frame_zero() {
        let mut bits = vec![0u64; bitmap_words(128 * FRAME_SIZE)];
        let mut a = FrameAllocator::new(&mut bits);
        assert_eq!(a.alloc(), None, "nothing added yet");
        assert_eq!(a.add_free(0, 4 * FRAME_SIZE), 3, "frame 0 is never added");
        let mut got: Vec<u64> = (0..3).map(|_| a.alloc().unwrap()).collect();
        got.sort();
        assert_eq!(got, vec![0x1000, 0x2000, 0x3000]);
        assert_eq!(a.alloc(), None, "exhausted");
        assert_eq!(a.free_frames(), 0);
    }

    #[test]
    fn partial_frames_and_out_of_range_are_clipped() {
        let mut bits = vec![0u64; bitmap_words(64 * FRAME_SIZE)]; // 256 KiB
        let mut a = FrameAllocator::new(&mut bits);
        // 0x1800..0x5800 holds whole frames 2, 3, 4 only.
        assert_eq!(a.add_free(0x1800, 0x4000), 3);
        // Beyond the bitmap: only frames 60..63 count.
        assert_eq!(a.add_free(60 * FRAME_SIZE, 100 * FRAME_SIZE), 4);
        assert_eq!(a.managed_frames(), 7);
        // Adding the same range twice does not double count.
        assert_eq!(a.add_free(0x2000, 0x1000), 0);
        assert_eq!(a.free_frames(), 7);
    }

    #[test]
    fn free_detects_misuse() {
        let mut bits = vec![0u64; bitmap_words(64 * FRAME_SIZE)];
        let mut a = FrameAllocator::new(&mut bits);
        a.add_free(0, 8 * FRAME_SIZE);
        let f = a.alloc().unwrap();
        assert_eq!(a.free(f + 1), Err(FreeError::Misaligned(f + 1)));
        assert_eq!(a.free(1 << 40), Err(FreeError::OutOfRange(1 << 40)));
        assert_eq!(a.free(f), Ok(()));
        assert_eq!(a.free(f), Err(FreeError::NotAllocated(f)), "double free");
        assert_eq!(a.free(0), Err(FreeError::NotAllocated(0)));
        // A freed frame is reused.
        let before = a.free_frames();
        let again = a.alloc().unwrap();
        assert_eq!(a.free_frames(), before - 1);
        assert!(again >= FRAME_SIZE);
    }

    #[test]
    fn every_frame_allocated_exactly_once() {
        let mut bits = vec![0u64; bitmap_words(1024 * FRAME_SIZE)];
        let mut a = FrameAllocator::new(&mut bits);
        a.add_free(0, 300 * FRAME_SIZE);
        a.add_free(500 * FRAME_SIZE, 200 * FRAME_SIZE);
        a.reserve(510 * FRAME_SIZE, 10 * FRAME_SIZE);
        let total = a.free_frames();
        assert_eq!(total, 299 + 200 - 10);
        let mut seen = std::collections::BTreeSet::new();
        while let Some(f) = a.alloc() {
            assert!(seen.insert(f), "frame {:#x} handed out twice", f);
            let n = f / FRAME_SIZE;
            assert!((1..300).contains(&n) || (500..510).contains(&n) || (520..700).contains(&n), "{}", n);
        }
        assert_eq!(seen.len() as u64, total);
        for f in &seen {
            a.free(*f).unwrap();
        }
        assert_eq!(a.free_frames(), total);
    }

    #[test]
    fn contiguous_runs_respect_alignment_and_holes() {
        let mut bits = vec![0u64; bitmap_words(256 * FRAME_SIZE)];
        let mut a = FrameAllocator::new(&mut bits);
        a.add_free(0, 256 * FRAME_SIZE);
        a.reserve(10 * FRAME_SIZE, FRAME_SIZE); // hole at frame 10
        let run = a.alloc_contiguous(16, 16).unwrap();
        assert_eq!(run, 16 * FRAME_SIZE, "frames 1..16 are broken by the hole at 10; next aligned start is 16");
        let run2 = a.alloc_contiguous(8, 1).unwrap();
        assert_eq!(run2, FRAME_SIZE, "first fit from frame 1");
        assert_eq!(a.alloc_contiguous(0, 1), None);
        assert_eq!(a.alloc_contiguous(4, 3), None, "alignment must be a power of two");
        assert_eq!(a.alloc_contiguous(1000, 1), None, "larger than free memory");
        let free_before = a.free_frames();
        assert_eq!(a.alloc_contiguous(250, 1), None, "no run that long");
        assert_eq!(a.free_frames(), free_before, "a failed request takes nothing");
    }

    #[test]
    fn alloc_at_or_above_finds_high_frames() {
        let mut bits = vec![0u64; bitmap_words(256 * FRAME_SIZE)];
        let mut a = FrameAllocator::new(&mut bits);
        a.add_free(0, 8 * FRAME_SIZE);
        a.add_free(200 * FRAME_SIZE, 2 * FRAME_SIZE);
        assert_eq!(a.alloc_at_or_above(100 * FRAME_SIZE), Some(200 * FRAME_SIZE));
        assert_eq!(a.alloc_at_or_above(100 * FRAME_SIZE + 1), Some(201 * FRAME_SIZE));
        assert_eq!(a.alloc_at_or_above(100 * FRAME_SIZE), None);
        assert_eq!(a.free_frames(), 7);
    }

    #[test]
    fn frames_never_handed_out_cannot_be_freed_into_the_pool() {
        let mut bits = vec![0u64; bitmap_words(256 * FRAME_SIZE)];
        let mut a = FrameAllocator::new(&mut bits);
        a.add_free(16 * FRAME_SIZE, 16 * FRAME_SIZE); // frames 16..32
        a.reserve(20 * FRAME_SIZE, 2 * FRAME_SIZE); // frames 20, 21 reserved
        let free_before = a.free_frames();
        // A frame the memory map never gave (MMIO, firmware, a hole).
        assert_eq!(a.free(100 * FRAME_SIZE), Err(FreeError::NotAllocated(100 * FRAME_SIZE)));
        // A reserved frame (e.g. the bitmap itself).
        assert_eq!(a.free(20 * FRAME_SIZE), Err(FreeError::NotAllocated(20 * FRAME_SIZE)));
        // A managed frame that is free already.
        assert_eq!(a.free(30 * FRAME_SIZE), Err(FreeError::NotAllocated(30 * FRAME_SIZE)));
        assert_eq!(a.free_frames(), free_before, "refused frees change nothing");
        let mut handed = Vec::new();
        while let Some(f) = a.alloc() {
            handed.push(f / FRAME_SIZE);
        }
        assert!(
            handed.iter().all(|f| (16..32).contains(f) && !(20..22).contains(f)),
            "only managed, unreserved frames are handed out: {handed:?}"
        );
        assert_eq!(handed.len(), 14);
        assert_eq!(a.alloc_at_or_above(0), None);
        assert_eq!(a.alloc_contiguous(1, 1), None);
        // Every frame handed out can be given back, once.
        for f in &handed {
            assert_eq!(a.free(f * FRAME_SIZE), Ok(()));
        }
        assert_eq!(a.free_frames(), 14);
        // Reserving a frame that is in use takes it out of management too:
        // giving it back later is refused and it is never reused.
        let f = a.alloc().unwrap();
        a.reserve(f, FRAME_SIZE);
        assert_eq!(a.free(f), Err(FreeError::NotAllocated(f)));
        assert_eq!(a.managed_frames(), 13);
        while let Some(g) = a.alloc() {
            assert_ne!(g, f, "a reserved frame was handed out");
        }
    }

    #[test]
    fn bitmap_size() {
        // Two bitmaps (in use, managed) of one bit per frame each.
        assert_eq!(bitmap_words(0), 0);
        assert_eq!(bitmap_words(4096), 2);
        assert_eq!(bitmap_words(64 * 4096), 2);
        assert_eq!(bitmap_words(64 * 4096 + 1), 4);
        assert_eq!(bitmap_words(6 << 30), 2 * (6 << 30) / 4096 / 64);
    }
}
