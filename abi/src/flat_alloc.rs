//! The one `unsafe` corner of this crate: a capnp [`Allocator`] over a
//! borrowed, zeroed buffer, so a message can be built in place in the IPC
//! area with no heap allocation.
//!
//! capnp's own `SingleSegmentAllocator` zeroes its whole buffer when made
//! (128 KiB per message here) and panics when a message outgrows it; a
//! kernel must never panic on a message a process caused. This one hands
//! out the buffer once, and if the message needs more it hands out heap
//! segments instead and remembers that it [`overflowed`], so the caller
//! refuses the message (`TooLarge`) on the error path alone.
//!
//! [`overflowed`]: FlatAllocator::overflowed
#![allow(unsafe_code)]

use alloc::vec;
use alloc::vec::Vec;
use capnp::message::Allocator;
use core::ptr::NonNull;

pub struct FlatAllocator<'a> {
    segment: &'a mut [u8],
    handed_out: bool,
    /// Heap segments handed out after the buffer ran out (error path only).
    extra: Vec<Vec<u64>>,
}

impl<'a> FlatAllocator<'a> {
    /// `segment` must be zeroed, 8-byte aligned and a whole number of words
    /// (checked by the caller, `message::build_flat`).
    pub fn new(segment: &'a mut [u8]) -> FlatAllocator<'a> {
        FlatAllocator { segment, handed_out: false, extra: Vec::new() }
    }

    /// Whether the message needed more than the buffer.
    pub fn overflowed(&self) -> bool {
        !self.extra.is_empty()
    }
}

// SAFETY: every segment handed out is zeroed (the buffer by the caller's
// contract, heap segments by `vec!`), 8-byte aligned, `words` long, and
// lives as long as the allocator (the buffer is borrowed for 'a; heap
// segments are owned by `extra` and their storage never moves).
unsafe impl Allocator for FlatAllocator<'_> {
    fn allocate_segment(&mut self, minimum_size: u32) -> (NonNull<u8>, u32) {
        let words = self.segment.len() / 8;
        if !self.handed_out && minimum_size as usize <= words {
            self.handed_out = true;
            return (NonNull::new(self.segment.as_mut_ptr()).expect("a slice pointer is never null"), words as u32);
        }
        self.handed_out = true;
        let mut heap = vec![0u64; (minimum_size as usize).max(1)];
        let ptr = NonNull::new(heap.as_mut_ptr() as *mut u8).expect("a Vec pointer is never null");
        let len = heap.len() as u32;
        self.extra.push(heap);
        (ptr, len)
    }

    unsafe fn deallocate_segment(&mut self, _ptr: NonNull<u8>, _word_size: u32, _words_used: u32) {
        // The buffer belongs to the caller, who clears what was used; heap
        // segments are freed with `extra`.
    }
}

/// A word slice as bytes (same memory, 8-byte aligned).
pub fn as_bytes(words: &[u64]) -> &[u8] {
    // SAFETY: u64 has no padding and any byte pattern of it is valid; the
    // byte slice covers exactly the same memory for the same lifetime.
    unsafe { core::slice::from_raw_parts(words.as_ptr() as *const u8, words.len() * 8) }
}

/// A mutable word slice as bytes (same memory, 8-byte aligned).
pub fn as_bytes_mut(words: &mut [u64]) -> &mut [u8] {
    // SAFETY: as in `as_bytes`; every byte pattern written is a valid u64.
    unsafe { core::slice::from_raw_parts_mut(words.as_mut_ptr() as *mut u8, words.len() * 8) }
}
