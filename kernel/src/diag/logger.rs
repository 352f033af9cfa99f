//! The `log` backend: one line per record on COM1, prefixed with the
//! monotonic time since boot and the level, e.g.
//! `[    0.012345] INFO  mem: usable=...`. The last lines are also kept in
//! a ring for the prompt's `logs` command.

use crate::arch::x86_64::serial;
use core::fmt::{self, Write};
use log::{Level, LevelFilter, Log, Metadata, Record};
use crate::sync::{classes, Lock};

const LINE_MAX: usize = 200;
pub const RING_LINES: usize = 64;

#[derive(Clone, Copy)]
struct Line {
    bytes: [u8; LINE_MAX],
    len: usize,
}

struct Ring {
    lines: [Line; RING_LINES],
    next: usize,
    count: usize,
}

static RING: Lock<Ring> = Lock::new(&classes::LOG_RING, Ring { lines: [Line { bytes: [0; LINE_MAX], len: 0 }; RING_LINES], next: 0, count: 0 });

/// A fixed buffer that silently truncates.
struct Fixed {
    bytes: [u8; LINE_MAX],
    len: usize,
}

impl Write for Fixed {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(LINE_MAX - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

struct SerialLogger;

static LOGGER: SerialLogger = SerialLogger;

impl Log for SerialLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let ns = crate::time::uptime_ns();
        let level = match record.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        // One line at a time across CPUs; re-entrant for an interrupt
        // handler that logs mid-line on this CPU (`serial::exclusive`).
        serial::exclusive(|| {
            serial::start_line();
            let _ = writeln!(serial::RawSerial, "[{:5}.{:06}] {} {}", ns / 1_000_000_000, (ns / 1000) % 1_000_000, level, record.args());
        });
        if let Some(mut ring) = RING.try_lock() {
            let mut f = Fixed { bytes: [0; LINE_MAX], len: 0 };
            let _ = write!(f, "[{:5}.{:06}] {} {}", ns / 1_000_000_000, (ns / 1000) % 1_000_000, level, record.args());
            let at = ring.next;
            ring.lines[at] = Line { bytes: f.bytes, len: f.len };
            ring.next = (at + 1) % RING_LINES;
            ring.count = (ring.count + 1).min(RING_LINES);
        }
    }

    fn flush(&self) {}
}

pub fn init(level: LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

pub fn parse_level(s: &str) -> Option<LevelFilter> {
    match s {
        "off" => Some(LevelFilter::Off),
        "error" => Some(LevelFilter::Error),
        "warn" => Some(LevelFilter::Warn),
        "info" => Some(LevelFilter::Info),
        "debug" => Some(LevelFilter::Debug),
        "trace" => Some(LevelFilter::Trace),
        _ => None,
    }
}

/// Call `f` with each of the last `n` log lines, oldest first.
pub fn recent(n: usize, mut f: impl FnMut(&str)) {
    let ring = RING.lock();
    let n = n.min(ring.count);
    for i in 0..n {
        let idx = (ring.next + RING_LINES - n + i) % RING_LINES;
        let l = &ring.lines[idx];
        f(core::str::from_utf8(&l.bytes[..l.len]).unwrap_or("<non-UTF-8 line>"));
    }
}
