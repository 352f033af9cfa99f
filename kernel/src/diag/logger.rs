//! The `log` backend: one line per record on COM1, prefixed with the
//! monotonic time since boot and the level, e.g.
//! `[    0.012345] INFO  mem: usable=...`.

use crate::arch::x86_64::serial;
use core::fmt::Write;
use log::{Level, LevelFilter, Log, Metadata, Record};
use spin::Mutex;

struct SerialLogger {
    lock: Mutex<()>,
}

static LOGGER: SerialLogger = SerialLogger { lock: Mutex::new(()) };

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
        // Interrupt handlers may log too: never spin forever on our own lock.
        let _guard = self.lock.try_lock();
        let _ = writeln!(
            serial::RawSerial,
            "[{:5}.{:06}] {} {}",
            ns / 1_000_000_000,
            (ns / 1000) % 1_000_000,
            level,
            record.args()
        );
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
