//! A cache of freed small heap blocks, by size class: the "slab" in front
//! of the kernel's and the runtime's heaps.
//!
//! Why: the call path builds a capnp message per call, and capnp's
//! builder keeps its segment table in a `Vec`, one small allocation per
//! message. `linked_list_allocator` serves that with a first-fit walk of
//! its free list and a merge on free (a few hundred instructions per call
//! measured); this cache hands the same block back in a dozen.
//!
//! Rules:
//! 1. A request is small when it is at most [`MAX_SMALL`] bytes with
//!    alignment at most [`BLOCK_ALIGN`]; it is served by a block of its
//!    class size (16, 32, ... 4096 bytes), [`BLOCK_ALIGN`]-aligned, whether
//!    the block comes from the cache or from the heap, so any block of a
//!    class fits any request of that class.
//! 2. A freed small block goes back to its class's cache if there is room
//!    ([`DEPTH`] per class), else to the heap (with the class layout).
//! 3. The cache holds addresses only: it never touches the memory, so it
//!    is plain safe code the heaps wrap.

/// Largest small request. Up to 4 KiB: the storage paths allocate a
/// block-sized buffer or a page of bytes per call, and with every such
/// buffer coming back to its class instead of the first-fit list, a call's
/// cost no longer depends on how many long-lived small blocks (a store's
/// index and cache, a mount's tables) sit in front of the first hole big
/// enough (FAT File.read 4 KiB cost 15% more once a store cache filled).
pub const MAX_SMALL: usize = 4096;
/// Alignment of every small block.
pub const BLOCK_ALIGN: usize = 16;
/// Freed blocks kept per class.
pub const DEPTH: usize = 32;
const CLASSES: usize = 9; // 16, 32, 64, 128, 256, 512, 1024, 2048, 4096

/// The class of a request, or `None` if it is not small (rule 1).
pub fn class_of(size: usize, align: usize) -> Option<usize> {
    if size > MAX_SMALL || align > BLOCK_ALIGN {
        return None;
    }
    let block = size.max(16).next_power_of_two();
    Some(block.trailing_zeros() as usize - 4)
}

/// The block size of a class (its layout is (this, [`BLOCK_ALIGN`])).
pub fn class_size(class: usize) -> usize {
    16 << class
}

pub struct SmallBlocks {
    free: [[usize; DEPTH]; CLASSES],
    len: [u8; CLASSES],
}

impl Default for SmallBlocks {
    fn default() -> Self {
        Self::new()
    }
}

impl SmallBlocks {
    pub const fn new() -> SmallBlocks {
        SmallBlocks { free: [[0; DEPTH]; CLASSES], len: [0; CLASSES] }
    }

    /// A cached block of `class`, most recently freed first.
    pub fn take(&mut self, class: usize) -> Option<usize> {
        let n = self.len.get(class).copied()? as usize;
        if n == 0 {
            return None;
        }
        self.len[class] -= 1;
        Some(self.free[class][n - 1])
    }

    /// Keep a freed block of `class`; `false` if the class is full (free
    /// it to the heap then).
    pub fn put(&mut self, class: usize, addr: usize) -> bool {
        match self.len.get(class) {
            Some(&n) if (n as usize) < DEPTH => {
                self.free[class][n as usize] = addr;
                self.len[class] += 1;
                true
            }
            _ => false,
        }
    }

    /// Blocks held, over all classes.
    pub fn held(&self) -> usize {
        self.len.iter().map(|n| *n as usize).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_cover_small_requests_and_refuse_the_rest() {
        assert_eq!(class_of(1, 1), Some(0));
        assert_eq!(class_of(16, 8), Some(0));
        assert_eq!(class_of(17, 8), Some(1));
        assert_eq!(class_of(64, 16), Some(2));
        assert_eq!(class_of(256, 8), Some(4));
        assert_eq!(class_of(257, 8), Some(5));
        assert_eq!(class_of(4096, 16), Some(8));
        assert_eq!(class_of(4097, 8), None);
        assert_eq!(class_of(4096, 4096), None, "page-aligned requests go to the heap");
        assert_eq!(class_of(64, 32), None, "over-aligned requests go to the heap");
        for size in 1..=MAX_SMALL {
            let c = class_of(size, 8).unwrap();
            assert!(class_size(c) >= size && class_size(c) < 2 * size.max(16));
        }
    }

    #[test]
    fn blocks_come_back_lifo_and_a_full_class_refuses() {
        let mut s = SmallBlocks::new();
        assert_eq!(s.take(2), None);
        assert!(s.put(2, 0x1000));
        assert!(s.put(2, 0x2000));
        assert_eq!(s.take(1), None, "classes do not mix");
        assert_eq!(s.take(2), Some(0x2000));
        assert_eq!(s.take(2), Some(0x1000));
        assert_eq!(s.take(2), None);
        for i in 0..DEPTH {
            assert!(s.put(0, 0x10 * (i + 1)));
        }
        assert!(!s.put(0, 0xdead0), "a full class hands the block back to the heap");
        assert_eq!(s.held(), DEPTH);
        assert_eq!(s.take(CLASSES), None);
        assert!(!s.put(CLASSES, 1));
    }
}
