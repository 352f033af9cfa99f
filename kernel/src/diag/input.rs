//! Serial input: the COM1 interrupt handler drains the UART into a ring;
//! the prompt (running in the idle loop) takes bytes out. One producer (the
//! interrupt), one consumer (the idle loop), so two atomic indices suffice.
//!
//! Flow control: when the ring is full the handler stops draining and turns
//! the UART's receive interrupt off, leaving bytes in the UART's FIFO (QEMU
//! then stops feeding it, a real line would overrun the FIFO); the prompt
//! turns it back on once it has emptied half the ring. Without this a fast
//! paste (10,000 characters) overran the ring and lost the line's end.

use crate::arch::x86_64::serial;
use core::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};

static PAUSED: AtomicBool = AtomicBool::new(false);

const SIZE: usize = 1024;
static BUF: [AtomicU8; SIZE] = [const { AtomicU8::new(0) }; SIZE];
static HEAD: AtomicUsize = AtomicUsize::new(0); // next write
static TAIL: AtomicUsize = AtomicUsize::new(0); // next read
/// Bytes dropped because the ring was full.
pub static OVERRUNS: AtomicU64 = AtomicU64::new(0);
pub static RECEIVED: AtomicU64 = AtomicU64::new(0);

pub fn on_interrupt(_vector: u8) {
    // Drain everything the UART holds (bounded, in case it babbles).
    for _ in 0..64 {
        let head = HEAD.load(Ordering::Relaxed);
        let next = (head + 1) % SIZE;
        if next == TAIL.load(Ordering::Acquire) {
            // Full: leave the rest in the UART until the prompt catches up.
            PAUSED.store(true, Ordering::Release);
            serial::set_rx_interrupt(false);
            return;
        }
        let Some(b) = serial::read_byte() else { break };
        RECEIVED.fetch_add(1, Ordering::Relaxed);
        BUF[head].store(b, Ordering::Relaxed);
        HEAD.store(next, Ordering::Release);
    }
}

pub fn pop() -> Option<u8> {
    let tail = TAIL.load(Ordering::Relaxed);
    if tail == HEAD.load(Ordering::Acquire) {
        return None;
    }
    let b = BUF[tail].load(Ordering::Relaxed);
    TAIL.store((tail + 1) % SIZE, Ordering::Release);
    let used = (HEAD.load(Ordering::Acquire) + SIZE - (tail + 1) % SIZE) % SIZE;
    if PAUSED.load(Ordering::Acquire) && used < SIZE / 2 {
        PAUSED.store(false, Ordering::Release);
        serial::set_rx_interrupt(true);
    }
    Some(b)
}
