//! Instruction-count markers: the guest side of the benchmark counter.
//!
//! A benchmark brackets what it measures with [`region_start`] and
//! [`region_stop`]. Each emits one architectural no-op that the QEMU plugin
//! `tools/icount/insn_count.c` recognises by its bytes when it translates
//! guest code:
//!
//! | marker    | instruction             | bytes                  |
//! | --------- | ----------------------- | ---------------------- |
//! | START     | `nopl 0x43415053(%rax)` | `0f 1f 80 53 50 41 43` |
//! | STOP      | `nopl 0x43415045(%rax)` | `0f 1f 80 45 50 41 43` |
//! | WAIT      | `nopl 0x43415057(%rax)` | `0f 1f 80 57 50 41 43` |
//! | RESUME    | `nopl 0x43415052(%rax)` | `0f 1f 80 52 50 41 43` |
//! | MILESTONE | `nopl 0x4341504d(%rax)` | `0f 1f 80 4d 50 41 43` |
//!
//! (the displacements spell "SPAC", "EPAC", "WPAC", "RPAC" and "MPAC" in
//! memory).
//! [`device_wait_begin`] / [`device_wait_end`] bracket a driver's busy wait
//! for a device: the plugin leaves those instructions out of the open
//! region, as a halted CPU's would be, because the number of poll turns
//! depends on how fast the host finishes the emulated I/O. A multi-byte NOP
//! reads no memory, so the markers cost one instruction each and nothing
//! else, with or without the plugin, in kernel and user mode alike.
//!
//! The plugin counts every instruction executed strictly after START up to
//! and including STOP, at every privilege level, and writes
//! `region <k> insns=<n>` for the k-th STOP. The protocol with the runner
//! (`tools/runner`): immediately **before** each `region_start()` the guest
//! prints one serial line
//!
//! ```text
//! icount: <label> ops=<n>
//! ```
//!
//! and the runner pairs the k-th such line with the k-th region, printing
//! `<label>: <insns / n> executed instructions per op`. A region without a
//! line (or the reverse), a START inside an open region or a STOP without a
//! START fails the benchmark. The Linux guest (`tools/bench-linux/bench.c`)
//! emits the same bytes and lines. docs/benchmarks.md has the whole story.
//!
//! [`milestone`] marks a point of the whole run rather than a region: the
//! first time the CPU executes a MILESTONE marker at a given address, the
//! plugin writes `milestone <k> insns=<n>`, `n` being every instruction
//! executed since QEMU started, WAIT..RESUME spans left out. It needs no
//! serial line and is never an error, so it can sit in code every boot
//! runs (kernel entry, the first entry to user mode, the shell's first
//! prompt); the runner's `bench-boot` names the milestones it expects in
//! order and prints the differences.
//!
//! The `asm!` blocks are not `nomem`: they are compiler barriers, so the
//! compiler cannot move the measured memory work out of the region.
#![allow(unsafe_code)]

/// The START marker's bytes.
pub const START_MARKER: [u8; 7] = [0x0f, 0x1f, 0x80, 0x53, 0x50, 0x41, 0x43];
/// The STOP marker's bytes.
pub const STOP_MARKER: [u8; 7] = [0x0f, 0x1f, 0x80, 0x45, 0x50, 0x41, 0x43];

/// The WAIT marker's bytes.
pub const WAIT_MARKER: [u8; 7] = [0x0f, 0x1f, 0x80, 0x57, 0x50, 0x41, 0x43];
/// The RESUME marker's bytes.
pub const RESUME_MARKER: [u8; 7] = [0x0f, 0x1f, 0x80, 0x52, 0x50, 0x41, 0x43];

/// The MILESTONE marker's bytes.
pub const MILESTONE_MARKER: [u8; 7] = [0x0f, 0x1f, 0x80, 0x4d, 0x50, 0x41, 0x43];

/// The serial line the guest prints before `region_start()`.
pub const LINE_PREFIX: &str = "icount: ";

/// A busy wait for a device begins (emits the WAIT marker).
#[inline(always)]
pub fn device_wait_begin() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as region_start.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1f, 0x80, 0x57, 0x50, 0x41, 0x43", options(nostack, preserves_flags));
    }
}

/// The busy wait ended (emits the RESUME marker).
#[inline(always)]
pub fn device_wait_end() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as region_start.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1f, 0x80, 0x52, 0x50, 0x41, 0x43", options(nostack, preserves_flags));
    }
}

/// A milestone of the run (emits the MILESTONE marker; only its first
/// execution at this address is reported).
#[inline(always)]
pub fn milestone() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as region_start.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1f, 0x80, 0x4d, 0x50, 0x41, 0x43", options(nostack, preserves_flags));
    }
}

/// Open a counted region (emits the START marker).
#[inline(always)]
pub fn region_start() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a multi-byte NOP: it reads and writes no memory, registers or
    // flags; it is only visible to an instruction-counting plugin.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1f, 0x80, 0x53, 0x50, 0x41, 0x43", options(nostack, preserves_flags));
    }
}

/// Close the open region (emits the STOP marker).
#[inline(always)]
pub fn region_stop() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: as region_start.
    unsafe {
        core::arch::asm!(".byte 0x0f, 0x1f, 0x80, 0x45, 0x50, 0x41, 0x43", options(nostack, preserves_flags));
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The first `len` bytes of a function's machine code.
    fn code(f: fn(), len: usize) -> Vec<u8> {
        let p = f as *const u8;
        // SAFETY: reading the host's own text section, which is mapped
        // readable; `len` stays within the small function and its
        // neighbours in the same section.
        (0..len).map(|i| unsafe { core::ptr::read_volatile(p.add(i)) }).collect()
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn the_markers_are_the_documented_nops() {
        // nopl disp32(%rax): 0f 1f /0 with mod=10 rm=000, then the
        // little-endian displacement.
        assert_eq!(START_MARKER[..3], [0x0f, 0x1f, 0x80]);
        assert_eq!(u32::from_le_bytes(START_MARKER[3..].try_into().unwrap()), 0x4341_5053);
        assert_eq!(u32::from_le_bytes(STOP_MARKER[3..].try_into().unwrap()), 0x4341_5045);
    }

    #[test]
    fn the_functions_emit_their_marker() {
        let start = code(region_start, 32);
        let stop = code(region_stop, 32);
        assert!(contains(&start, &START_MARKER), "region_start code: {:02x?}", start);
        assert!(contains(&stop, &STOP_MARKER), "region_stop code: {:02x?}", stop);
        let wait = code(device_wait_begin, 32);
        let resume = code(device_wait_end, 32);
        assert!(contains(&wait, &WAIT_MARKER), "device_wait_begin code: {:02x?}", wait);
        assert!(contains(&resume, &RESUME_MARKER), "device_wait_end code: {:02x?}", resume);
        assert_eq!(u32::from_le_bytes(WAIT_MARKER[3..].try_into().unwrap()), 0x4341_5057);
        assert_eq!(u32::from_le_bytes(RESUME_MARKER[3..].try_into().unwrap()), 0x4341_5052);
        let mark = code(milestone, 32);
        assert!(contains(&mark, &MILESTONE_MARKER), "milestone code: {:02x?}", mark);
        assert_eq!(u32::from_le_bytes(MILESTONE_MARKER[3..].try_into().unwrap()), 0x4341_504d);
        // Running them is harmless on the host too.
        milestone();
        region_start();
        device_wait_begin();
        device_wait_end();
        region_stop();
    }
}
