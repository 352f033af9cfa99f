//! The deterministic content and workload plans, shared by the guest
//! (`storage-check`) and the host runner (tools/runner/src/scenarios/storage/mod.rs
//! includes this file with `#[path]`), so both sides compute the same bytes
//! and the same expected state from a step number alone.
//!
//! Only `core`: no allocation, no I/O.

/// A 64-bit mixer (splitmix64's finalizer): every input bit affects every
/// output bit, so nearby seeds give unrelated streams.
pub const fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Fill `buf` with the bytes at `offset..offset + buf.len()` of the
/// pseudo-random stream `seed` (a function of seed and absolute offset, so
/// any piece of a file can be checked alone).
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut i = 0usize;
    while i < buf.len() {
        let at = offset + i as u64;
        let word = mix(seed ^ (at >> 3).wrapping_mul(0xd6e8_feb8_6659_fd93)).to_le_bytes();
        let mut within = (at & 7) as usize;
        while within < 8 && i < buf.len() {
            buf[i] = word[within];
            within += 1;
            i += 1;
        }
    }
}

// --------------------------------------------------------------- recovery

/// The recovery workload works under this directory of the filesystem.
pub const ROOT: &str = "r";
/// `/r/f0` .. `/r/f7`: files replaced, overwritten, moved and deleted.
pub const SLOTS: u64 = 8;
/// `/r/d/g0` .. `/r/d/g2`: where moved files land (another directory).
pub const MOVE_SLOTS: u64 = 3;
/// Largest file the workload writes (bytes).
pub const MAX_CONTENT: u64 = 300 * 1024;

/// What step `k` (k >= 1) does besides appending to the log and recording
/// itself in `/r/step`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write content `k` into `/r/tmp`, then remove `/r/f<slot>` and rename
    /// `/r/tmp` to it (within the directory).
    Replace { slot: u64 },
    /// Overwrite `/r/f<slot>` in place with content `k` and truncate it to
    /// that size (a Replace when the file does not exist).
    Overwrite { slot: u64 },
    /// Remove `/r/f<slot>` if it exists.
    Delete { slot: u64 },
    /// If `/r/f<slot>` exists: remove `/r/d/g<to>` if it exists and move
    /// `/r/f<slot>` there (rename across directories).
    Move { slot: u64, to: u64 },
}

pub fn action(k: u64) -> Action {
    let slot = k % SLOTS;
    match mix(k ^ 0xac7) % 10 {
        0 | 1 | 2 | 3 => Action::Replace { slot },
        4 | 5 | 6 => Action::Overwrite { slot },
        7 => Action::Delete { slot },
        _ => Action::Move { slot, to: mix(k ^ 0x30e) % MOVE_SLOTS },
    }
}

/// The size of content `k` (1 byte to MAX_CONTENT).
pub fn content_size(k: u64) -> u64 {
    1 + mix(k ^ 0x512e) % MAX_CONTENT
}

/// The seed of content `k`'s bytes (see [`fill`]).
pub fn content_seed(k: u64) -> u64 {
    mix(k ^ 0xc0_7e47)
}

/// Whether step `k` appends a record to `/r/log`.
pub fn appends_log(k: u64) -> bool {
    k % 3 == 0
}

/// The size of step `k`'s log record.
pub fn log_record_size(k: u64) -> u64 {
    64 + mix(k ^ 0x106) % 4000
}

/// The seed of step `k`'s log record.
pub fn log_record_seed(k: u64) -> u64 {
    mix(k ^ 0x10_6a11)
}

/// `/r/step` after step `k`: the decimal step number and a newline, in
/// `buf`; returns the length.
pub fn step_record(k: u64, buf: &mut [u8; 24]) -> usize {
    let mut digits = [0u8; 20];
    let mut n = 0;
    let mut v = k;
    loop {
        digits[n] = b'0' + (v % 10) as u8;
        n += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in 0..n {
        buf[i] = digits[n - 1 - i];
    }
    buf[n] = b'\n';
    n + 1
}

/// Parse `/r/step`'s bytes.
pub fn parse_step(bytes: &[u8]) -> Option<u64> {
    let text = bytes.strip_suffix(b"\n")?;
    if text.is_empty() || text.len() > 19 || !text.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v = 0u64;
    for b in text {
        v = v * 10 + (b - b'0') as u64;
    }
    Some(v)
}

// ---------------------------------------------------------------- writable

/// The files the `writable` mode leaves under `/w` after phase 1 (and
/// phase 2 must find): (path below /w, size, seed, zero_from): bytes below
/// `zero_from` are the stream `seed`, the rest (after a truncate up) are
/// zero.
pub const WRITABLE_FILES: &[(&str, u64, u64, u64)] = &[
    ("empty", 0, 0, 0),
    ("one", 1, 11, 1),
    ("odd", 511, 12, 511),
    ("block", 512, 13, 512),
    ("inline-4097", 4097, 14, 4097),
    ("inline-64k", 65536, 15, 65536),
    ("inline-200k", 200_000, 16, 200_000),
    ("bulk-200k", 200_000, 17, 200_000),
    ("bulk-1m-plus", 1_572_865, 18, 1_572_865),
    ("bulk-3m", 3 * 1024 * 1024 + 100, 19, 3 * 1024 * 1024 + 100),
    // Truncated from 200000 down to 1000, then up to 5000: zero after 1000.
    ("trunc", 5000, 20, 1000),
    // Written at 0..3000, then 100 bytes at 10000: a zero gap between.
    ("gap", 10_100, 21, 3000),
    ("a/renamed", 7777, 22, 7777),
    ("b/moved", 12_345, 23, 12_345),
    ("b/sub/deep", 999, 24, 999),
];

/// Directories under `/w` after phase 1 (besides `/w` itself).
pub const WRITABLE_DIRS: &[&str] = &["a", "b", "b/sub"];

// ----------------------------------------------------------------- persist

/// Keys `p/00` .. `p/20` with these sizes (index = key number); keys in
/// [`PERSIST_DELETED`] are deleted again in phase 1.
pub const PERSIST_SIZES: &[u64] = &[0, 1, 2, 31, 100, 255, 256, 511, 512, 1000, 4096, 4097, 8000, 16384, 30000, 32768, 65535, 65536, 7, 77, 777];
pub const PERSIST_DELETED: &[usize] = &[3, 9, 17];
/// Churn: `churn/0..CHURN_KEYS` each overwritten [`Churn::rounds`] times
/// with values of [`Churn::value`] bytes (round r has seed
/// churn_seed(key, r)); CHURN_ROUNDS and CHURN_VALUE are the defaults.
pub const CHURN_KEYS: u64 = 4;
pub const CHURN_ROUNDS: u64 = 120;
pub const CHURN_VALUE: usize = 6 * 1024;
/// The largest churn value the runner may ask for: the even keys' final
/// values are read back inline, which holds less than a bulk read.
pub const CHURN_VALUE_MAX: usize = 48 * 1024;

/// Every key the churn writes is at least this long (`churn/0`).
#[allow(dead_code)] // the runner's (tools/runner/src/scenarios/storage/mod.rs)
pub const CHURN_KEY_MIN: u64 = 7;

/// The churn that must make a store compact: values of `value` bytes
/// (6 KiB, more for a large store so the run stays near a thousand puts,
/// at most [`CHURN_VALUE_MAX`]) over `rounds` rounds of the CHURN_KEYS
/// keys. A compaction comes when a put finds its area's entry table
/// (`slots`) or heap (`heap_bytes`) full; each churn put that does not
/// compact takes one slot and at least CHURN_KEY_MIN + value heap bytes,
/// so min(slots, heap_bytes / (CHURN_KEY_MIN + value)) + 1 puts cannot all
/// fit, whatever the store held before: one of them compacts. Never fewer
/// than CHURN_ROUNDS rounds (a small store then compacts several times). The runner
/// passes `--churn-rounds R --churn-value V` (the same in both phases).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Churn {
    pub rounds: u64,
    pub value: usize,
}

impl Churn {
    pub const DEFAULT: Churn = Churn { rounds: CHURN_ROUNDS, value: CHURN_VALUE };

    /// The churn for a store of `slots` entry slots and `heap_bytes` heap
    /// bytes per area (the runner's: the guest is told the result).
    #[allow(dead_code)]
    pub fn for_store(slots: u64, heap_bytes: u64) -> Churn {
        let value = (heap_bytes / 1024).div_ceil(1024).saturating_mul(1024).clamp(CHURN_VALUE as u64, CHURN_VALUE_MAX as u64);
        let must_compact = slots.min(heap_bytes / (CHURN_KEY_MIN + value)) + 1;
        Churn { rounds: must_compact.div_ceil(CHURN_KEYS).max(CHURN_ROUNDS), value: value as usize }
    }

    #[allow(dead_code)]
    pub fn puts(&self) -> u64 {
        self.rounds * CHURN_KEYS
    }
}

pub fn persist_seed(i: usize) -> u64 {
    mix(0x9e55 ^ i as u64)
}

pub fn churn_seed(key: u64, round: u64) -> u64 {
    mix(0xc4_0000 ^ (key << 20) ^ round)
}
