//! Clocks.
//!
//! * The TSC is the monotonic clock. Its frequency comes, in order of
//!   preference, from CPUID leaf 0x15, CPUID leaf 0x16, calibration against
//!   the HPET, the ACPI PM timer, or the PIT. A rough PIT calibration runs
//!   first thing so early log lines have timestamps; [`refine`] replaces it
//!   once ACPI says which better references exist. Uptime stays monotonic
//!   across the change (it is rebased, never recomputed).
//! * The local APIC timer is calibrated against the TSC and ticks
//!   periodically ([`ticks`]).
//! * The wall clock is the bootloader's boot time (UEFI GetTime) or, failing
//!   that, the CMOS RTC, plus uptime; it carries a provenance label.

pub mod hpet;
pub mod pit;
pub mod pmtimer;
pub mod rtc;

use crate::arch::x86_64::cpu::{cpuid, rdtsc};
use core::sync::atomic::{AtomicU64, Ordering};
use crate::sync::{classes, Lock};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TscSource {
    Cpuid15,
    Cpuid16,
    Hpet,
    PmTimer,
    Pit,
    Assumed,
}

impl TscSource {
    pub fn name(self) -> &'static str {
        match self {
            TscSource::Cpuid15 => "CPUID leaf 0x15 (crystal ratio)",
            TscSource::Cpuid16 => "CPUID leaf 0x16 (base frequency)",
            TscSource::Hpet => "calibrated against the HPET",
            TscSource::PmTimer => "calibrated against the ACPI PM timer",
            TscSource::Pit => "calibrated against the PIT",
            TscSource::Assumed => "assumed 1 GHz (no reference found)",
        }
    }
}

/// Monotonic base: uptime = base_ns + (tsc - base_tsc) / hz.
struct Base {
    base_tsc: u64,
    base_ns: u64,
    hz: u64,
    source: Option<TscSource>,
}

static BASE: Lock<Base> = Lock::new(&classes::TIME_BASE, Base { base_tsc: 0, base_ns: 0, hz: 0, source: None });
static TSC_HZ: AtomicU64 = AtomicU64::new(0);
static TICKS: AtomicU64 = AtomicU64::new(0);

/// Record the boot TSC value; call first thing.
pub fn mark_boot() {
    let mut b = BASE.lock();
    b.base_tsc = rdtsc();
    publish(&b);
}

fn set_frequency(hz: u64, source: TscSource) {
    let now = rdtsc();
    let mut b = BASE.lock();
    if b.hz != 0 {
        b.base_ns += ((now.saturating_sub(b.base_tsc)) as u128 * 1_000_000_000 / b.hz as u128) as u64;
        b.base_tsc = now;
    }
    b.hz = hz;
    b.source = Some(source);
    TSC_HZ.store(hz, Ordering::Relaxed);
    publish(&b);
}

/// The base as [`uptime_ns`] reads it, without a lock (any CPU, any
/// context, an interrupt handler that logs included): a sequence count,
/// odd while [`publish`] writes (only at boot, under [`BASE`]).
static SEQ: AtomicU64 = AtomicU64::new(0);
static PUB_TSC: AtomicU64 = AtomicU64::new(0);
static PUB_NS: AtomicU64 = AtomicU64::new(0);
static PUB_HZ: AtomicU64 = AtomicU64::new(0);

fn publish(b: &Base) {
    SEQ.fetch_add(1, Ordering::AcqRel);
    PUB_TSC.store(b.base_tsc, Ordering::Release);
    PUB_NS.store(b.base_ns, Ordering::Release);
    PUB_HZ.store(b.hz, Ordering::Release);
    SEQ.fetch_add(1, Ordering::AcqRel);
}

fn from_cpuid15() -> Option<u64> {
    if cpuid(0, 0).0 < 0x15 {
        return None;
    }
    let (den, num, crystal, _) = cpuid(0x15, 0);
    (den != 0 && num != 0 && crystal != 0).then(|| crystal as u64 * num as u64 / den as u64)
}

fn from_cpuid16() -> Option<u64> {
    if cpuid(0, 0).0 < 0x16 {
        return None;
    }
    let mhz = cpuid(0x16, 0).0 & 0xffff;
    (mhz != 0).then(|| mhz as u64 * 1_000_000)
}

/// Early calibration (before ACPI): CPUID, else the PIT.
pub fn calibrate_early() -> TscSource {
    let (hz, src) = if let Some(hz) = from_cpuid15() {
        (hz, TscSource::Cpuid15)
    } else if let Some(hz) = from_cpuid16() {
        (hz, TscSource::Cpuid16)
    } else if let Some(hz) = pit::measure_tsc_hz() {
        (hz, TscSource::Pit)
    } else {
        (1_000_000_000, TscSource::Assumed)
    };
    set_frequency(hz, src);
    src
}

/// The TSC's frequency against a reference counter `read` running at
/// `ref_hz` (`mask` wide): windows of about 10 ms, each end the narrowest
/// of a few reads each between two TSC reads, measured again when the CPU
/// was taken away inside a bracket anyway (`capos_kcore::tsc_calibration`'s
/// rules). None when the counter never advanced within a window's worth
/// of reads.
fn calibrate(name: &str, ref_hz: u64, mask: u64, mut read: impl FnMut() -> u64) -> Option<u64> {
    use capos_kcore::tsc_calibration::{self as cal, Refused};
    let want = ref_hz / 100;
    let mut window = || {
        let start = window_end(&mut read);
        for _ in 0..100_000_000u64 {
            if read().wrapping_sub(start.reference) & mask >= want {
                return cal::measure(start, window_end(&mut read), ref_hz, mask);
            }
        }
        Err(Refused::NoProgress)
    };
    match cal::calibrate(&mut window)? {
        Ok(m) => Some(m.hz),
        Err(m) => {
            log::warn!("{name}: every calibration window was interrupted inside a counter read (the narrowest by {} ppm of the window); using {} Hz", m.bracket_ppm, m.hz);
            Some(m.hz)
        }
    }
}

/// One end of a calibration window against the counter `read`: the
/// narrowest of a few reads, each between two TSC reads
/// (`capos_kcore::tsc_calibration` rule 1).
pub(crate) fn window_end(read: &mut impl FnMut() -> u64) -> capos_kcore::tsc_calibration::Sample {
    use capos_kcore::tsc_calibration::{narrowest, Sample, READS_PER_END};
    narrowest(core::iter::repeat_with(|| {
        let tsc_before = rdtsc();
        let reference = read();
        Sample { tsc_before, reference, tsc_after: rdtsc() }
    }).take(READS_PER_END))
}

/// After ACPI: use the best reference that exists.
pub fn refine(hpet: Option<&capos_kcore::acpi::Hpet>, pm: Option<capos_kcore::acpi::PmTimer>) -> TscSource {
    let current = tsc_source();
    if matches!(current, Some(TscSource::Cpuid15) | Some(TscSource::Cpuid16)) {
        return current.unwrap_or(TscSource::Assumed);
    }
    if let Some(h) = hpet {
        if let Some(hz) = hpet::init(h).and_then(|_| hpet::measure_tsc_hz()) {
            set_frequency(hz, TscSource::Hpet);
            return TscSource::Hpet;
        }
    }
    if let Some(p) = pm {
        if let Some(hz) = pmtimer::measure_tsc_hz(p) {
            set_frequency(hz, TscSource::PmTimer);
            return TscSource::PmTimer;
        }
    }
    current.unwrap_or(TscSource::Assumed)
}

pub fn tsc_hz() -> u64 {
    TSC_HZ.load(Ordering::Relaxed)
}

pub fn tsc_source() -> Option<TscSource> {
    BASE.lock().source
}

/// Nanoseconds since boot (0 before the first calibration).
pub fn uptime_ns() -> u64 {
    loop {
        let seq = SEQ.load(Ordering::Acquire);
        let (tsc, ns, hz) = (PUB_TSC.load(Ordering::Acquire), PUB_NS.load(Ordering::Acquire), PUB_HZ.load(Ordering::Acquire));
        if seq % 2 == 1 || SEQ.load(Ordering::Acquire) != seq {
            core::hint::spin_loop();
            continue;
        }
        if hz == 0 {
            return 0;
        }
        return ns + (rdtsc().saturating_sub(tsc) as u128 * 1_000_000_000 / hz as u128) as u64;
    }
}

/// TSC ticks in `ns` nanoseconds (saturating; 1 GHz before calibration).
/// For a deadline taken once and compared with raw [`rdtsc`] readings, so
/// a wait does not convert every reading to nanoseconds.
pub fn tsc_ticks(ns: u64) -> u64 {
    let hz = match tsc_hz() {
        0 => 1_000_000_000,
        hz => hz,
    };
    (ns as u128 * hz as u128 / 1_000_000_000).min(u64::MAX as u128) as u64
}

/// Milliseconds in `ticks` TSC ticks, rounded to the nearest (for
/// messages: `tsc_ticks_to_ms(tsc_ticks(20_000_000))` is 20).
pub fn tsc_ticks_to_ms(ticks: u64) -> u64 {
    let hz = match tsc_hz() {
        0 => 1_000_000_000,
        hz => hz,
    } as u128;
    ((ticks as u128 * 1000 + hz / 2) / hz) as u64
}

/// Busy-wait `ns` nanoseconds on the TSC.
pub fn spin_ns(ns: u64) {
    let start = uptime_ns();
    while uptime_ns().saturating_sub(start) < ns {
        core::hint::spin_loop();
    }
}

/// LAPIC timer interrupt handler: count ticks (the bootstrap CPU's only:
/// every CPU's timer runs at the same rate, and [`ticks`] counts time).
pub fn on_tick(_vector: u8) {
    if crate::arch::x86_64::percpu::index() == 0 {
        TICKS.fetch_add(1, Ordering::Relaxed);
    }
}

pub fn ticks() -> u64 {
    TICKS.load(Ordering::Relaxed)
}

/// Where the wall clock came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WallSource {
    Bootloader,
    CmosRtc,
    Unknown,
}

impl WallSource {
    pub fn label(self) -> &'static str {
        match self {
            WallSource::Bootloader => "firmware clock via the bootloader (UEFI GetTime)",
            WallSource::CmosRtc => "CMOS RTC",
            WallSource::Unknown => "unknown (no clock source)",
        }
    }
}

struct Wall {
    unix_at_boot: i64,
    source: WallSource,
}

static WALL: Lock<Wall> = Lock::new(&classes::TIME_WALL, Wall { unix_at_boot: 0, source: WallSource::Unknown });

pub fn init_wall_clock(from_bootloader: Option<i64>, century_register: u8) {
    let (t, src) = match from_bootloader.filter(|t| *t > 0) {
        Some(t) => (t - (uptime_ns() / 1_000_000_000) as i64, WallSource::Bootloader),
        None => match rtc::read(century_register) {
            Some(t) => (t - (uptime_ns() / 1_000_000_000) as i64, WallSource::CmosRtc),
            None => (0, WallSource::Unknown),
        },
    };
    *WALL.lock() = Wall { unix_at_boot: t, source: src };
}

/// Nanoseconds since the Unix epoch now, if any clock source set the wall
/// clock (the storage backers stamp CAPOSWF1 times with it).
pub fn wall_now_ns() -> Option<i64> {
    let w = WALL.lock();
    if w.source == WallSource::Unknown {
        return None;
    }
    (w.unix_at_boot as i128 * 1_000_000_000 + uptime_ns() as i128).try_into().ok()
}

/// (Unix seconds now, provenance).
pub fn wall_now() -> (i64, WallSource) {
    let w = WALL.lock();
    (w.unix_at_boot + (uptime_ns() / 1_000_000_000) as i64, w.source)
}
