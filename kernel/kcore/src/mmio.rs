//! Register windows: which offsets a mapped block of device registers holds.
//!
//! The kernel maps a device's registers once (a LAPIC page, an I/O APIC's
//! index/data pair, the HPET block, an MSI-X table, a PCI function's
//! configuration space, an NVMe BAR) and hands out typed registers taken
//! from that window. Each register is checked here once, when it is taken;
//! the register the kernel then holds is the proof, and its accesses are
//! not checked again. So these rules are all that stands between a bad
//! offset (a device's own description of itself, a driver's arithmetic)
//! and a stray write into memory that is not the device's.
//!
//! Rules:
//! 1. A register is 4 or 8 bytes wide and must be aligned to its width
//!    (a device never sees a split or misaligned access).
//! 2. A register of width `w` at `offset` lies in a window of `len` bytes
//!    iff `offset + w <= len`, computed without overflow: an offset near
//!    `u64::MAX` is refused, never wrapped into the window.
//!    A zero-length window holds nothing, so it can hand out no register.
//! 3. Misalignment is reported before range, so a driver's error says the
//!    more specific thing.

use core::fmt;

/// A register the window does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfWindow {
    /// Where it was asked for, from the window's start.
    pub offset: u64,
    /// The register's width in bytes.
    pub width: u64,
    /// The window's length in bytes.
    pub len: u64,
    /// Whether the refusal is for alignment (rule 1), not range.
    pub misaligned: bool,
}

impl fmt::Display for OutOfWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.misaligned {
            let unit = match self.width {
                4 => "dword",
                8 => "qword",
                _ => "naturally",
            };
            write!(f, "register offset {:#x} is not {} aligned", self.offset, unit)
        } else {
            write!(f, "register offset {:#x} is past the {:#x}-byte register window", self.offset, self.len)
        }
    }
}

/// Check a register of `width` bytes (4 or 8) at `offset` against a window
/// of `len` bytes (rules 1 to 3).
pub fn check_register(len: u64, offset: u64, width: u64) -> Result<(), OutOfWindow> {
    let refuse = |misaligned| Err(OutOfWindow { offset, width, len, misaligned });
    if !matches!(width, 4 | 8) || offset % width != 0 {
        return refuse(true);
    }
    match offset.checked_add(width) {
        Some(end) if end <= len => Ok(()),
        _ => refuse(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_inside_the_window_are_taken() {
        assert_eq!(check_register(4096, 0, 4), Ok(()));
        assert_eq!(check_register(4096, 0x3f0, 4), Ok(()));
        // The last dword and the last qword of the window.
        assert_eq!(check_register(4096, 4092, 4), Ok(()));
        assert_eq!(check_register(4096, 4088, 8), Ok(()));
        // The I/O APIC's window is 0x20 bytes: IOREGSEL and IOWIN.
        assert_eq!(check_register(0x20, 0x10, 4), Ok(()));
    }

    #[test]
    fn a_register_reaching_past_the_end_is_refused() {
        // Starts inside, ends one byte past: the whole register must fit.
        let e = check_register(4092, 4088, 8).unwrap_err();
        assert!(!e.misaligned && e.offset == 4088 && e.len == 4092);
        assert!(check_register(4096, 4096, 4).is_err());
        assert!(check_register(0x20, 0x20, 4).is_err());
        // An empty window holds no register at all.
        assert!(check_register(0, 0, 4).is_err());
    }

    #[test]
    fn offsets_near_the_top_do_not_wrap_into_the_window() {
        // u64::MAX - 3 is dword aligned; + 4 overflows to 0, which a
        // wrapping check would find "inside" any window.
        let top = u64::MAX - 3;
        let e = check_register(u64::MAX, top, 4).unwrap_err();
        assert!(!e.misaligned);
        assert!(check_register(u64::MAX, u64::MAX - 7, 8).is_err());
    }

    #[test]
    fn misaligned_registers_are_refused_and_said_so() {
        let e = check_register(4096, 2, 4).unwrap_err();
        assert!(e.misaligned);
        assert_eq!(e.to_string(), "register offset 0x2 is not dword aligned");
        // Dword aligned is not enough for a qword.
        let e = check_register(4096, 4, 8).unwrap_err();
        assert!(e.misaligned);
        assert_eq!(e.to_string(), "register offset 0x4 is not qword aligned");
        // Misaligned and out of range: alignment is what is reported.
        assert!(check_register(16, 4097, 4).unwrap_err().misaligned);
    }

    #[test]
    fn only_dword_and_qword_registers_exist() {
        for width in [0, 1, 2, 3, 5, 16] {
            assert!(check_register(4096, 0, width).is_err(), "width {}", width);
        }
    }

    #[test]
    fn range_refusals_name_the_window() {
        let e = check_register(0x1000, 0x2000, 4).unwrap_err();
        assert_eq!(e.to_string(), "register offset 0x2000 is past the 0x1000-byte register window");
    }
}
