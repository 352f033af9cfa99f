//! A count and its noun, singular or plural: `1 key`, `0 keys`, `2 keys`.
//!
//! Shared by the kernel's prompt and log lines, the storage services and
//! the shell, so "1 keys" is fixed in one place. A
//! `Display` value rather than a `String`, so the kernel formats it
//! without allocating.

use core::fmt;

/// `n` and `one` when `n` is 1, else `n` and `many`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count<'a> {
    pub n: u64,
    pub one: &'a str,
    pub many: &'a str,
}

/// `count(1, "key", "keys")` shows as `1 key`, any other `n` as `n keys`
/// (`n` is a length or counter; one too large for `u64` cannot occur).
pub fn count<'a>(n: impl TryInto<u64>, one: &'a str, many: &'a str) -> Count<'a> {
    Count { n: n.try_into().unwrap_or(u64::MAX), one, many }
}

impl fmt::Display for Count<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.n, if self.n == 1 { self.one } else { self.many })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn one_is_singular_every_other_count_plural() {
        assert_eq!(format!("{}", count(1usize, "key", "keys")), "1 key");
        assert_eq!(format!("{}", count(0usize, "key", "keys")), "0 keys");
        assert_eq!(format!("{}", count(2u32, "key", "keys")), "2 keys");
        assert_eq!(format!("{}", count(11u64, "entry", "entries")), "11 entries");
        assert_eq!(format!("{}", count(1u8, "entry", "entries")), "1 entry");
        assert_eq!(format!("({})", count(u64::MAX, "key", "keys")), "(18446744073709551615 keys)");
    }
}
