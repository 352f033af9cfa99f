//! Measuring the TSC's frequency against a reference counter (the HPET,
//! the ACPI PM timer) whose frequency is known.
//!
//! A measurement reads the reference at the start and at the end of a
//! window, each read bracketed by two TSC reads ([`Sample`]). The CPU can
//! be taken away between any two instructions (an SMI, a hypervisor
//! running another guest, a host running QEMU's vCPU thread late), and a
//! gap inside a bracket is a gap between the reference's value and the
//! TSC value it is paired with: seen on a loaded 2-core host, an HPET
//! calibration read 195.9 MHz for a 2.8 GHz TSC, and uptime, timeouts and
//! the timer's period were 14 times off for the whole boot. Rules:
//! 1. Each end of a window is the narrowest of [`READS_PER_END`]
//!    consecutive samples (a gap is rare; under QEMU a counter read can
//!    wait milliseconds for the emulator's lock on a loaded host, so a
//!    single read is not enough). The TSC side of a sample is the middle
//!    of its bracket; the TSC
//!    ticks between the two middles over the reference's ticks between
//!    the two reads (modulo its width) times the reference's frequency is
//!    the result.
//! 2. A measurement is refused when either bracket is wider than
//!    1/[`MAX_BRACKET_SHARE`] of the TSC ticks between the two middles (the
//!    pairing is then uncertain by more than 0.1%), or when the reference
//!    or the TSC did not move.
//! 3. The caller measures again after a refusal, a few times
//!    ([`ATTEMPTS`]); if every attempt was refused it uses the one whose
//!    brackets were narrowest, and says so. A reference that did not move
//!    in a whole window ends the calibration at once (it will not move in
//!    the next either; the caller falls back to another reference).
//!
//! Gaps outside the brackets (between the two samples) do not matter: the
//! result is computed from the values read, whatever the window's length.

/// The widest a bracket may be, as a share of the window: 1/1000.
pub const MAX_BRACKET_SHARE: u64 = 1000;

/// How many windows a calibration tries before it settles for the best.
pub const ATTEMPTS: usize = 5;

/// Samples read at each end of a window, the narrowest kept (rule 1).
pub const READS_PER_END: usize = 8;

/// One read of the reference counter between two TSC reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    pub tsc_before: u64,
    pub reference: u64,
    pub tsc_after: u64,
}

impl Sample {
    fn middle(&self) -> u64 {
        self.tsc_before + (self.tsc_after.saturating_sub(self.tsc_before)) / 2
    }
    /// TSC ticks between its two reads; a TSC that went back counts as
    /// the widest bracket there is.
    fn bracket(&self) -> u64 {
        self.tsc_after.checked_sub(self.tsc_before).unwrap_or(u64::MAX)
    }
}

/// Rule 1: the sample with the narrowest bracket (the first of equals);
/// a sample that went back (after before before) counts as widest.
pub fn narrowest(samples: impl Iterator<Item = Sample>) -> Sample {
    // min_by_key keeps the first of equals.
    samples.min_by_key(Sample::bracket).unwrap_or(Sample { tsc_before: 0, reference: 0, tsc_after: 0 })
}

/// A window's result: the frequency, and its widest bracket as a share
/// of the window in parts per million (what rule 3 compares).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    pub hz: u64,
    pub bracket_ppm: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Rule 2: a bracket was too wide; the measurement, were it used.
    Bracket(Measured),
    /// The reference or the TSC did not advance (or went back).
    NoProgress,
}

/// Rules 1 and 2 for the window from `start` to `end` of a reference at
/// `reference_hz` whose counter is `mask` wide (`u64::MAX` for 64 bits).
pub fn measure(start: Sample, end: Sample, reference_hz: u64, mask: u64) -> Result<Measured, Refused> {
    let ticks = end.reference.wrapping_sub(start.reference) & mask;
    let (m0, m1) = (start.middle(), end.middle());
    if ticks == 0 || m1 <= m0 || start.tsc_after < start.tsc_before || end.tsc_after < end.tsc_before {
        return Err(Refused::NoProgress);
    }
    let tsc = m1 - m0;
    let hz = (tsc as u128 * reference_hz as u128 / ticks as u128).min(u64::MAX as u128) as u64;
    let widest = start.bracket().max(end.bracket());
    let bracket_ppm = (widest as u128 * 1_000_000 / tsc as u128).min(u64::MAX as u128) as u64;
    let m = Measured { hz, bracket_ppm };
    if widest.saturating_mul(MAX_BRACKET_SHARE) > tsc {
        return Err(Refused::Bracket(m));
    }
    Ok(m)
}

/// Rule 3: the first accepted window of at most [`ATTEMPTS`] from
/// `window` (which measures one), else the refused one with the narrowest
/// brackets (`Err`, for the caller to log); None when a window saw no
/// progress before any was measured.
pub fn calibrate(mut window: impl FnMut() -> Result<Measured, Refused>) -> Option<Result<Measured, Measured>> {
    let mut best: Option<Measured> = None;
    for _ in 0..ATTEMPTS {
        match window() {
            Ok(m) => return Some(Ok(m)),
            Err(Refused::Bracket(m)) => {
                if best.is_none_or(|b| m.bracket_ppm < b.bracket_ppm) {
                    best = Some(m);
                }
            }
            Err(Refused::NoProgress) => break,
        }
    }
    best.map(Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HPET_HZ: u64 = 100_000_000;

    fn s(tsc: u64, width: u64, reference: u64) -> Sample {
        Sample { tsc_before: tsc, reference, tsc_after: tsc + width }
    }

    /// 10 ms of a 100 MHz reference against a 2.8 GHz TSC, read with
    /// narrow brackets: the frequency comes out exact.
    #[test]
    fn a_quiet_window_gives_the_frequency() {
        let m = measure(s(1_000, 100, 5), s(1_000 + 28_000_000, 100, 5 + 1_000_000), HPET_HZ, u64::MAX).unwrap();
        assert_eq!(m.hz, 2_800_000_000);
        assert_eq!(m.bracket_ppm, 3);
    }

    /// The failure seen on a loaded host: the CPU taken away between the
    /// first reference read and the TSC read after it. Without brackets
    /// (the old code paired the reference with the later TSC read) the
    /// result is 14 times too low; with them the window is refused.
    #[test]
    fn a_gap_inside_a_bracket_is_refused_not_believed() {
        // The reference read at TSC 0; the vCPU stalls 130 ms (364e6
        // TSC ticks) before the TSC is read again; the window ends 10 ms
        // of reference later than the read.
        let start = Sample { tsc_before: 0, reference: 0, tsc_after: 364_000_000 };
        let end = s(392_000_000, 100, 14_000_000);
        match measure(start, end, HPET_HZ, u64::MAX) {
            Err(Refused::Bracket(m)) => assert!(m.bracket_ppm > 1_000, "{m:?}"),
            other => panic!("{other:?}"),
        }
        // The same stall at the end of the window.
        let start = s(0, 100, 0);
        let end = Sample { tsc_before: 28_000_000, reference: 1_000_000, tsc_after: 392_000_000 };
        assert!(matches!(measure(start, end, HPET_HZ, u64::MAX), Err(Refused::Bracket(_))));
        // A stall between the samples (outside both brackets) only makes
        // the window longer: the result stays right.
        let m = measure(s(0, 100, 0), s(392_000_000, 100, 14_000_000), HPET_HZ, u64::MAX).unwrap();
        assert_eq!(m.hz, 2_800_000_000);
    }

    /// A bracket at exactly 1/1000 of the window passes; one tick more is
    /// refused.
    #[test]
    fn the_bracket_limit_is_a_thousandth() {
        let ok = measure(s(0, 28_000, 0), s(28_000_000, 0, 1_000_000), HPET_HZ, u64::MAX);
        // Middles 14,000 and 28,000,000: the window is 27,986,000 ticks,
        // so 28,000 is just over; 27,986 is at it.
        assert!(matches!(ok, Err(Refused::Bracket(_))), "{ok:?}");
        let at = measure(s(0, 27_986, 0), s(28_000_000, 0, 1_000_000), HPET_HZ, u64::MAX);
        assert!(at.is_ok(), "{at:?}");
    }

    /// A 24-bit PM timer wrapping inside the window is counted modulo its
    /// width; a reference that did not move, or a TSC that went back, is
    /// no measurement.
    #[test]
    fn wraps_and_stalls() {
        let mask = 0x00ff_ffff;
        let m = measure(s(0, 10, 0x00ff_0000), s(2_800_000_000 / 100, 10, 0x00ff_0000u64.wrapping_add(35_795) & mask), 3_579_545, mask).unwrap();
        assert!((2_799_000_000..2_801_000_000).contains(&m.hz), "{m:?}");
        assert_eq!(measure(s(0, 10, 7), s(1_000_000, 10, 7), HPET_HZ, u64::MAX), Err(Refused::NoProgress));
        assert_eq!(measure(s(1_000_000, 10, 0), s(0, 10, 7), HPET_HZ, u64::MAX), Err(Refused::NoProgress));
    }

    /// Rule 1: of consecutive reads, the one with the narrowest bracket.
    #[test]
    fn each_end_is_the_narrowest_read() {
        let reads = [s(0, 900, 1), s(1_000, 40, 2), s(2_000, 4_000_000, 3), s(5_000, 40, 4)];
        assert_eq!(narrowest(reads.into_iter()), s(1_000, 40, 2));
        let back = Sample { tsc_before: 10, reference: 9, tsc_after: 5 };
        assert_eq!(narrowest([back, s(20, 1_000, 8)].into_iter()), s(20, 1_000, 8));
    }

    /// Rule 3: the first good window wins; with none, the narrowest
    /// refused one comes back as `Err`; a stopped reference ends it.
    #[test]
    fn calibrate_retries_then_settles_for_the_narrowest() {
        let wide = |ppm| Err(Refused::Bracket(Measured { hz: ppm * 10, bracket_ppm: ppm }));
        let mut script = vec![wide(5_000), wide(2_000), Ok(Measured { hz: 7, bracket_ppm: 3 }), wide(1)].into_iter();
        assert_eq!(calibrate(|| script.next().unwrap()), Some(Ok(Measured { hz: 7, bracket_ppm: 3 })));
        assert_eq!(script.next(), Some(wide(1)), "no window after the good one");
        let mut script = vec![wide(5_000), wide(2_000), wide(9_000), wide(4_000), wide(3_000)].into_iter();
        assert_eq!(calibrate(|| script.next().unwrap()), Some(Err(Measured { hz: 20_000, bracket_ppm: 2_000 })));
        assert_eq!(script.next(), None, "{ATTEMPTS} windows tried");
        // A reference that stopped: no more windows after it.
        let mut n = 0;
        assert_eq!(calibrate(|| { n += 1; Err(Refused::NoProgress) }), None);
        assert_eq!(n, 1);
        let mut script = vec![wide(5_000), Err(Refused::NoProgress), wide(1)].into_iter();
        assert_eq!(calibrate(|| script.next().unwrap()), Some(Err(Measured { hz: 50_000, bracket_ppm: 5_000 })));
    }
}
