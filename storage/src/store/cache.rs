//! The store's cache of verified values.
//!
//! Why: a `get` of a value not cached costs a device read, a CRC over the
//! entry and a copy; most stores are read far more than written, and the
//! same keys are read again. The rules:
//! - A value enters only when its bytes are known good: checked against the
//!   entry's data CRC (by mount, which reads and checks every entry, or by
//!   a `get` that read it from the device), or just written by this store.
//!   A hit is therefore answered without a device read or a CRC.
//! - Values are found by the CRC32C of their key, and each cached value
//!   keeps its key beside it: a hit compares the key bytes, so two keys
//!   with one hash never answer for each other (the later one simply takes
//!   the place of the earlier). A hit touches neither the store's index nor
//!   the device: one lookup of a 32-bit number and one comparison.
//! - The store keeps the cache exact: a put replaces the key's value, a
//!   delete removes it. Compaction moves entries but changes no value, so
//!   the cache survives it.
//! - The cache holds at most `budget` bytes, counting each key and value
//!   plus [`OVERHEAD`]. The oldest value leaves first (FIFO: no bookkeeping
//!   on a hit). A value larger than the budget is never cached; a budget of
//!   0 turns the cache off. Once full, only one in [`ADMIT_EVERY`] values
//!   read from the device enters, so a scan does not churn the cache.

use crate::checksum::crc32c;
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

/// Bytes counted per cached value beyond its key and value: the map node
/// and the queue slot, roughly.
pub const OVERHEAD: usize = 64;

#[derive(Debug)]
struct Cached {
    /// When it entered (matches its slot in the queue).
    stamp: u64,
    key_len: usize,
    /// Key bytes, then value bytes.
    data: Box<[u8]>,
}

#[derive(Debug, Default)]
pub struct ValueCache {
    budget: usize,
    used: usize,
    values: BTreeMap<u32, Cached>,
    /// (key hash, stamp) in the order values entered. A slot whose stamp no
    /// longer matches the cached value (replaced or removed since) is
    /// skipped when it reaches the front, and such slots are swept out when
    /// they outnumber the live ones, so the queue stays within twice the
    /// number of cached values (plus a constant).
    order: VecDeque<(u32, u64)>,
    next_stamp: u64,
    /// Reads that missed while the cache was full (see `insert_read`).
    misses_when_full: u64,
}

/// How the cache's longer stretches of work let its caller pause between
/// pieces: the copy of a value (up to 64 KiB) and the evictions that make
/// room for it (up to one per cached value). The store's paces the
/// device ([`crate::block::Pacer`]); [`Unpaced`] does nothing.
pub trait Pace {
    /// Append `bytes` to `out`.
    fn append(&mut self, out: &mut Vec<u8>, bytes: &[u8]);
    /// Copy `src` over `dst` (as long).
    fn copy(&mut self, dst: &mut [u8], src: &[u8]);
    /// One value evicted.
    fn evicted(&mut self);
}

/// [`Pace`] without pauses.
pub struct Unpaced;

impl Pace for Unpaced {
    fn append(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(bytes);
    }
    fn copy(&mut self, dst: &mut [u8], src: &[u8]) {
        dst.copy_from_slice(src);
    }
    fn evicted(&mut self) {}
}

/// Key bytes then value bytes, the value appended by `pace`.
fn filled(key: &[u8], value: &[u8], pace: &mut impl Pace) -> Box<[u8]> {
    let mut data = Vec::with_capacity(key.len() + value.len());
    data.extend_from_slice(key);
    pace.append(&mut data, value);
    data.into_boxed_slice()
}

/// Once full, one in this many values read from the device enters.
pub const ADMIT_EVERY: u64 = 8;

fn cost(data_len: usize) -> usize {
    data_len + OVERHEAD
}

impl ValueCache {
    pub fn new(budget: usize) -> Self {
        ValueCache { budget, ..Default::default() }
    }

    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Bytes counted against the budget now.
    pub fn used(&self) -> usize {
        self.used
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Whether a value of this key and length would fit the budget beside
    /// what is cached now, without evicting anything.
    pub fn has_room(&self, key_len: usize, value_len: usize) -> bool {
        self.used + cost(key_len + value_len) <= self.budget
    }

    /// The cached value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let cached = self.values.get(&crc32c(key))?;
        (cached.data[..cached.key_len] == *key).then(|| &cached.data[cached.key_len..])
    }

    /// Cache `value` (already verified) for `key`, making room by dropping
    /// the oldest values. Returns whether it was cached.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> bool {
        self.insert_paced(key, value, &mut Unpaced)
    }

    /// [`ValueCache::insert`], its copy and evictions paced by `pace`.
    pub fn insert_paced(&mut self, key: &[u8], value: &[u8], pace: &mut impl Pace) -> bool {
        let hash = crc32c(key);
        let cost = cost(key.len() + value.len());
        if let Some(c) = self.values.get_mut(&hash) {
            if c.data.len() == key.len() + value.len() {
                // The same size (an overwrite, usually): refill in place;
                // it keeps its place in the queue.
                c.key_len = key.len();
                let (k, v) = c.data.split_at_mut(key.len());
                k.copy_from_slice(key);
                pace.copy(v, value);
                return true;
            }
            self.drop_hash(hash);
        }
        if cost > self.budget {
            return false;
        }
        while self.used + cost > self.budget {
            let Some((old, stamp)) = self.order.pop_front() else { break };
            if self.values.get(&old).is_some_and(|c| c.stamp == stamp) {
                self.drop_hash(old);
                pace.evicted();
            }
        }
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        self.values.insert(hash, Cached { stamp, key_len: key.len(), data: filled(key, value, pace) });
        self.order.push_back((hash, stamp));
        self.used += cost;
        if self.order.len() > 2 * self.values.len() + 64 {
            let values = &self.values;
            self.order.retain(|(hash, stamp)| values.get(hash).is_some_and(|c| c.stamp == *stamp));
        }
        true
    }

    /// Cache a value a `get` had to read from the device. While there is
    /// room it always enters; once the cache is full only every
    /// [`ADMIT_EVERY`]th such value does (evicting the oldest), so a scan
    /// over more keys than fit does not churn the whole cache on every
    /// read, yet a new working set still moves in. Paced by `pace`.
    pub fn insert_read(&mut self, key: &[u8], value: &[u8], pace: &mut impl Pace) -> bool {
        if !self.has_room(key.len(), value.len()) {
            self.misses_when_full += 1;
            if self.misses_when_full % ADMIT_EVERY != 0 {
                return false;
            }
        }
        self.insert_paced(key, value, pace)
    }

    /// Forget `key`'s value (the key was deleted).
    pub fn remove(&mut self, key: &[u8]) {
        let hash = crc32c(key);
        if self.values.get(&hash).is_some_and(|c| c.data[..c.key_len] == *key) {
            self.drop_hash(hash);
        }
    }

    fn drop_hash(&mut self, hash: u32) {
        if let Some(c) = self.values.remove(&hash) {
            self.used -= cost(c.data.len());
        }
    }

    /// Forget everything.
    pub fn clear(&mut self) {
        self.values.clear();
        self.order.clear();
        self.used = 0;
    }

    /// Queue slots (for tests of the bound).
    pub fn queued(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> [u8; 4] {
        i.to_le_bytes()
    }

    #[test]
    fn holds_at_most_its_budget_and_drops_the_oldest_first() {
        let mut c = ValueCache::new(3 * cost(14));
        for i in 0..3u32 {
            assert!(c.insert(&key(i), &[i as u8; 10]));
        }
        assert_eq!(c.used(), 3 * cost(14));
        assert!(!c.has_room(4, 10));
        assert!(c.insert(&key(3), &[3; 10]));
        assert_eq!(c.get(&key(0)), None, "the oldest left");
        assert_eq!(c.get(&key(1)), Some(&[1u8; 10][..]));
        assert_eq!(c.get(&key(3)), Some(&[3u8; 10][..]));
        assert!(c.used() <= c.budget());
        // A bigger value evicts as many as it needs.
        let big = [4u8; 10 + 2 * (14 + OVERHEAD)];
        assert!(c.insert(&key(4), &big));
        assert_eq!((c.len(), c.get(&key(4))), (1, Some(&big[..])));
        assert!(c.used() <= c.budget());
    }

    #[test]
    fn a_key_sharing_a_hash_never_answers_for_another() {
        // Find two keys with one CRC32C: pseudo-random 8-byte keys meet
        // by the birthday bound after about 2^16 draws. (Keys with
        // structure may never meet: CRC is linear, so e.g. `x ++ x` over
        // all 32-bit x is one-to-one.)
        let mut seen = BTreeMap::new();
        let mut state = 0x5EED_u64;
        let (a, b) = (0..1_000_000)
            .find_map(|_| {
                state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                let k = (z ^ (z >> 31)).to_le_bytes().to_vec();
                seen.insert(crc32c(&k), k.clone()).filter(|other| *other != k).map(|other| (other, k))
            })
            .expect("a CRC32C collision within a million random keys");
        assert_eq!(crc32c(&a), crc32c(&b));
        let mut c = ValueCache::new(1 << 20);
        c.insert(&a, b"value of a");
        assert_eq!(c.get(&b), None);
        c.remove(&b);
        assert_eq!(c.get(&a), Some(&b"value of a"[..]), "removing b leaves a");
        c.insert(&b, b"value of b");
        assert_eq!((c.get(&a), c.get(&b)), (None, Some(&b"value of b"[..])));
        assert_eq!(c.used(), cost(8 + 10));
    }

    #[test]
    fn a_full_cache_admits_one_read_in_eight() {
        let mut c = ValueCache::new(4 * cost(14));
        for i in 0..4u32 {
            assert!(c.insert_read(&key(i), &[0; 10], &mut Unpaced), "room: always");
        }
        let admitted = (4..4 + 8 * ADMIT_EVERY as u32).filter(|&i| c.insert_read(&key(i), &[0; 10], &mut Unpaced)).count();
        assert_eq!(admitted, 8);
        assert!(c.used() <= c.budget());
        // A write is not a read: it always enters.
        assert!(c.insert(&key(1000), &[1; 10]));
        assert_eq!(c.get(&key(1000)), Some(&[1u8; 10][..]));
    }

    #[test]
    fn too_big_or_zero_budget_is_not_cached() {
        let mut c = ValueCache::new(100);
        assert!(!c.insert(b"k", &[0; 100]));
        assert!(c.is_empty());
        let mut off = ValueCache::new(0);
        assert!(!off.insert(b"k", &[]));
        assert_eq!(off.used(), 0);
    }

    #[test]
    fn replaced_and_removed_values_give_their_bytes_back_and_the_queue_stays_bounded() {
        let mut c = ValueCache::new(1 << 20);
        c.insert(b"a", &[1; 50]);
        c.insert(b"b", &[2; 50]);
        c.remove(b"a");
        c.remove(b"a");
        assert_eq!(c.used(), cost(51));
        // A hot key overwritten many times: one value, a bounded queue.
        for i in 0..10_000u32 {
            c.insert(b"hot", &i.to_le_bytes());
            assert!(c.queued() <= 2 * c.len() + 65);
        }
        assert_eq!(c.get(b"hot"), Some(&9999u32.to_le_bytes()[..]));
        assert_eq!(c.used(), cost(51) + cost(7));
        c.clear();
        assert_eq!((c.used(), c.len(), c.queued()), (0, 0, 0));
    }

    #[test]
    fn eviction_skips_stale_queue_slots() {
        // Room for two values; "a" replaced keeps only its newest slot live.
        let mut c = ValueCache::new(2 * cost(2));
        c.insert(b"a", b"1");
        c.insert(b"a", b"2");
        c.insert(b"b", b"3");
        // The stale slot of a's first value must not evict a's second.
        c.insert(b"c", b"4");
        assert_eq!((c.get(b"a"), c.get(b"b"), c.get(b"c")), (None, Some(&b"3"[..]), Some(&b"4"[..])));
        assert!(c.used() <= c.budget());
    }
}
