//! Storage benchmark: engines on an in-memory device, then CAPOSST1 beside
//! redb on files.
//!
//! `cargo run --release -p capos-storage --example bench`
//!
//! First, on an in-memory device: CAPOSST1 put/get/delete operations per
//! second, CAPOSWF1 sequential write/read MiB/s and small-file create rate,
//! and for each the device writes, blocks written and flushes per operation
//! (the write amplification a real disk would see).
//!
//! Then CAPOSST1 on a file-backed device whose `flush` is `fdatasync`, beside
//! redb (a dev-dependency, used only here) on a file in the same temporary
//! directory, with the same keys and values: durable single-key puts, random
//! gets (from a fresh open, timed with it) and a bulk load, ops/s for each
//! and the ratio, medians of five rounds. These are wall-clock
//! figures dominated by the host disk's fsync latency. Figures, not a timed
//! test.

use capos_storage::mem_device::MemBlockDevice;
use capos_storage::store::{self, Store, StoreOp, StoreOptions};
use capos_storage::writable_fs::{self, MountOptions, WritableFs};
use capos_storage::{FileSystem, FixedClock, Provenance, Timestamp};
use capos_storage::{BlockDevice, BlockError, SECTOR_SIZE};
use redb::{Database, ReadableDatabase, TableDefinition};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn per_op(name: &str, ops: u64, seconds: f64, dev: &MemBlockDevice) {
    println!(
        "{name:<40} {:>10.0} ops/s   per op: {:>5.2} writes, {:>6.2} blocks written, {:>5.2} flushes, {:>5.2} reads",
        ops as f64 / seconds,
        dev.writes as f64 / ops as f64,
        dev.blocks_written as f64 / ops as f64,
        dev.flushes as f64 / ops as f64,
        dev.reads as f64 / ops as f64,
    );
}

fn bench_store() {
    const KEYS: u64 = 5000;
    let mut dev = MemBlockDevice::new(32768);
    store::format(&mut dev, None).unwrap();
    let mut s = Store::mount(dev, false).unwrap();
    let key = |i: u64| format!("bench/key/{i:08}").into_bytes();
    let value = [0x5Au8; 100];

    s.device().reset_counters();
    let t = Instant::now();
    for i in 0..KEYS {
        s.put(&key(i), &value).unwrap();
    }
    per_op("CAPOSST1 put (18 B key, 100 B value)", KEYS, t.elapsed().as_secs_f64(), s.device());

    s.device().reset_counters();
    let t = Instant::now();
    for i in 0..KEYS {
        assert_eq!(s.get(&key(i)).unwrap().unwrap().len(), 100);
    }
    per_op("CAPOSST1 get", KEYS, t.elapsed().as_secs_f64(), s.device());

    s.device().reset_counters();
    let t = Instant::now();
    for i in 0..KEYS {
        assert!(s.delete(&key(i)).unwrap());
    }
    per_op("CAPOSST1 delete", KEYS, t.elapsed().as_secs_f64(), s.device());

    // Overwrites of a few keys in a small store: compaction every few hundred puts.
    let mut dev = MemBlockDevice::new(512);
    store::format(&mut dev, None).unwrap();
    let mut s = Store::mount(dev, false).unwrap();
    s.device().reset_counters();
    let t = Instant::now();
    for i in 0..KEYS {
        s.put(&key(i % 16), &value).unwrap();
    }
    let compactions = s.compactions;
    per_op("CAPOSST1 overwrite (small store)", KEYS, t.elapsed().as_secs_f64(), s.device());
    println!("{:<40} {compactions} compactions in {KEYS} puts", "");
}

fn bench_fs() {
    const FILE_MIB: usize = 16;
    let clock = FixedClock(Timestamp::new(1_700_000_000_000_000_000, Provenance::WallClock));
    let mut dev = MemBlockDevice::new(65536);
    writable_fs::format(&mut dev, None, Timestamp::UNKNOWN).unwrap();
    let mut fs = WritableFs::mount(dev, clock, MountOptions::default()).unwrap();
    let root = fs.root();
    let file = fs.create(root, "big").unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let chunks = FILE_MIB * 1024 * 1024 / chunk.len();

    fs.device().reset_counters();
    let t = Instant::now();
    for i in 0..chunks {
        fs.write(file, (i * chunk.len()) as u64, &chunk).unwrap();
    }
    fs.sync().unwrap();
    let secs = t.elapsed().as_secs_f64();
    let d = fs.device().clone();
    println!(
        "CAPOSWF1 sequential write + sync  {:>10.1} MiB/s  per MiB: {:.1} writes, {:.1} blocks written, {} flushes total",
        FILE_MIB as f64 / secs,
        d.writes as f64 / FILE_MIB as f64,
        d.blocks_written as f64 / FILE_MIB as f64,
        d.flushes
    );

    let mut buf = vec![0u8; 64 * 1024];
    fs.device().reset_counters();
    let t = Instant::now();
    for i in 0..chunks {
        assert_eq!(fs.read(file, (i * buf.len()) as u64, &mut buf).unwrap(), buf.len());
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "CAPOSWF1 sequential read          {:>10.1} MiB/s  per MiB: {:.1} reads",
        FILE_MIB as f64 / secs,
        fs.device().reads as f64 / FILE_MIB as f64
    );

    // Overwrite after sync: copy-on-write to fresh blocks, synced every MiB.
    fs.device().reset_counters();
    let t = Instant::now();
    for i in 0..chunks {
        fs.write(file, (i * chunk.len()) as u64, &chunk).unwrap();
        if i % 16 == 15 {
            fs.sync().unwrap();
        }
    }
    fs.sync().unwrap();
    let secs = t.elapsed().as_secs_f64();
    println!(
        "CAPOSWF1 overwrite, sync per MiB  {:>10.1} MiB/s  per MiB: {:.1} blocks written",
        FILE_MIB as f64 / secs,
        fs.device().blocks_written as f64 / FILE_MIB as f64
    );
    fs.remove(root, "big").unwrap();

    const FILES: u64 = 1000;
    let dir = fs.mkdir(root, "small").unwrap();
    fs.device().reset_counters();
    let t = Instant::now();
    for i in 0..FILES {
        let f = fs.create(dir, &format!("file-{i:05}")).unwrap();
        fs.write(f, 0, &[7u8; 100]).unwrap();
        fs.sync().unwrap();
    }
    per_op("CAPOSWF1 small file create+write+sync", FILES, t.elapsed().as_secs_f64(), fs.device());

    fs.device().reset_counters();
    let t = Instant::now();
    for i in 0..FILES {
        fs.create(dir, &format!("empty-{i:05}")).unwrap();
    }
    per_op("CAPOSWF1 create (empty file)", FILES, t.elapsed().as_secs_f64(), fs.device());

    let dev = fs.into_device();
    let t = Instant::now();
    let fs = WritableFs::mount(dev, clock, MountOptions::default()).unwrap();
    println!("CAPOSWF1 mount of 32 MiB volume     {:>10.2} ms ({} live nodes)", t.elapsed().as_secs_f64() * 1000.0, fs.live_nodes());
}

// ---------------------------------------------------------------------------
// CAPOSST1 beside redb, both on files with an fsync per commit.

/// Durable single-key puts per engine, each its own commit.
const DURABLE_PUTS: u64 = 500;
/// Random gets of existing keys per engine.
const RANDOM_GETS: u64 = 200_000;
/// Entries in the bulk load (also the key set the random gets draw from).
const BULK_ENTRIES: u64 = 50_000;
const VALUE_LEN: usize = 100;

/// A [`BlockDevice`] over a file, for the host. `flush` is
/// `File::sync_data` (fdatasync), so every CAPOSST1 commit costs real
/// fsyncs. The crate itself is `no_std` and `mkstore-image` has no such
/// device (it builds images in a `MemBlockDevice` and writes the bytes
/// out), hence this small one here.
struct FileBlockDevice {
    file: File,
    blocks: u64,
    /// Number of `flush` calls, each one `sync_data`.
    fsyncs: u64,
}

impl FileBlockDevice {
    /// Open an existing image; a trailing partial block is not addressable.
    fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let blocks = file.metadata()?.len() / SECTOR_SIZE as u64;
        Ok(Self { file, blocks, fsyncs: 0 })
    }

    /// A new zero-filled image of `blocks` blocks, written out and synced
    /// (not sparse: a disk has its blocks already, so the timed commits
    /// should not also pay the host filesystem's block allocation).
    fn create(path: &Path, blocks: u64) -> std::io::Result<Self> {
        let mut file = File::create(path)?;
        let zeros = vec![0u8; 1 << 20];
        let mut left = blocks as usize * SECTOR_SIZE;
        while left > 0 {
            let n = left.min(zeros.len());
            file.write_all(&zeros[..n])?;
            left -= n;
        }
        file.sync_all()?;
        drop(file);
        Self::open(path)
    }
}

fn io_error(_: std::io::Error) -> BlockError {
    BlockError::Device { status: 0 }
}

impl BlockDevice for FileBlockDevice {
    fn block_size(&self) -> usize {
        SECTOR_SIZE
    }
    fn block_count(&self) -> u64 {
        self.blocks
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(SECTOR_SIZE, self.blocks, lba, buf.len())?;
        self.file.read_exact_at(buf, lba * SECTOR_SIZE as u64).map_err(io_error)
    }
    fn write_blocks(&mut self, lba: u64, buf: &[u8]) -> Result<(), BlockError> {
        capos_storage::block::check_request(SECTOR_SIZE, self.blocks, lba, buf.len())?;
        self.file.write_all_at(buf, lba * SECTOR_SIZE as u64).map_err(io_error)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        self.fsyncs += 1;
        self.file.sync_data().map_err(io_error)
    }
}

/// A uniquely named directory under `std::env::temp_dir()`, removed on drop
/// (also when a step panics).
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        let path = std::env::temp_dir().join(format!("capos-storage-bench-{}-{nanos}", std::process::id()));
        std::fs::create_dir(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// splitmix64: the same deterministic sequence of key indices for both
/// engines.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n
    }
}

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

fn bench_key(i: u64) -> Vec<u8> {
    format!("bench/key/{i:08}").into_bytes()
}

/// 100 bytes that name their key, so a get that returns the wrong entry is
/// caught.
fn bench_value(i: u64) -> [u8; VALUE_LEN] {
    let mut v = [i as u8; VALUE_LEN];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

/// A CAPOSST1 device (default geometry) that holds `entries` key/value pairs
/// of this benchmark without compacting: the entry table (2 slots per area
/// block) is the limit, so each area gets about 0.625 blocks per entry.
fn store_blocks(entries: u64) -> u64 {
    entries + entries / 4 + 64
}

/// Cache for the CAPOSST1 mounts of the comparison: every value of the bulk
/// set fits (redb's default cache, which it gets here, is 1 GiB).
const COMPARISON_CACHE_BYTES: usize = 64 << 20;

/// Rounds of the comparison; each figure printed is the median.
const ROUNDS: usize = 5;

/// One round's figures, ops/s: (CAPOSST1, redb) for puts, gets, bulk load.
struct Round {
    put: (f64, f64),
    get: (f64, f64),
    bulk: (f64, f64),
    put_fsyncs: f64,
    bulk_fsyncs: u64,
    mount_ms: f64,
}

fn round(dir: &TempDir, n: usize) -> Round {
    // (1) Durable single-key puts: each a commit of its own.
    let path = dir.0.join(format!("puts-{n}.caposst1"));
    let mut dev = FileBlockDevice::create(&path, store_blocks(DURABLE_PUTS)).unwrap();
    store::format(&mut dev, None).unwrap();
    let mut s = Store::mount(dev, false).unwrap();
    s.device().fsyncs = 0;
    let t = Instant::now();
    for i in 0..DURABLE_PUTS {
        s.put(&bench_key(i), &bench_value(i)).unwrap();
    }
    let caposst1_put = DURABLE_PUTS as f64 / t.elapsed().as_secs_f64();
    let put_fsyncs = s.device().fsyncs as f64 / DURABLE_PUTS as f64;
    assert_eq!(s.compactions, 0);
    drop(s);

    let db = Database::create(dir.0.join(format!("puts-{n}.redb"))).unwrap();
    let t = Instant::now();
    for i in 0..DURABLE_PUTS {
        let txn = db.begin_write().unwrap();
        txn.open_table(TABLE).unwrap().insert(bench_key(i).as_slice(), bench_value(i).as_slice()).unwrap();
        txn.commit().unwrap();
    }
    let redb_put = DURABLE_PUTS as f64 / t.elapsed().as_secs_f64();
    drop(db);

    // (3) Bulk load, run before the gets so they draw from its larger key
    // set: each engine writes every entry in one durable commit (CAPOSST1:
    // mount and one `apply` batch on the file device; redb: one write
    // transaction). Neither file's creation (`format`, `Database::create`)
    // is timed.
    let path = dir.0.join(format!("bulk-{n}.caposst1"));
    let mut dev = FileBlockDevice::create(&path, store_blocks(BULK_ENTRIES)).unwrap();
    let keys: Vec<Vec<u8>> = (0..BULK_ENTRIES).map(bench_key).collect();
    let values: Vec<[u8; VALUE_LEN]> = (0..BULK_ENTRIES).map(bench_value).collect();
    store::format(&mut dev, None).unwrap();
    let format_fsyncs = dev.fsyncs;
    let t = Instant::now();
    let mut s = Store::mount(dev, false).unwrap();
    let ops: Vec<StoreOp> = keys.iter().zip(&values).map(|(k, v)| StoreOp::Put(k, v)).collect();
    s.apply(&ops).unwrap();
    let caposst1_bulk = BULK_ENTRIES as f64 / t.elapsed().as_secs_f64();
    let bulk_fsyncs = s.device().fsyncs - format_fsyncs;
    drop((ops, s));

    let db = Database::create(dir.0.join(format!("bulk-{n}.redb"))).unwrap();
    let t = Instant::now();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(TABLE).unwrap();
        for (k, v) in keys.iter().zip(&values) {
            table.insert(k.as_slice(), v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    let redb_bulk = BULK_ENTRIES as f64 / t.elapsed().as_secs_f64();
    drop(db);

    // (2) Random gets of existing keys, the same index sequence for both,
    // each engine freshly opened on its bulk file; the open is timed with
    // the gets (CAPOSST1's mount reads and checks every entry and fills
    // its cache; redb's open reads its header and fills its cache as the
    // gets go).
    let t = Instant::now();
    let options = StoreOptions { read_only: false, cache_bytes: COMPARISON_CACHE_BYTES };
    let mut s = Store::mount_with(FileBlockDevice::open(&path).unwrap(), options).unwrap();
    let mount_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut rng = Rng(0x0C0F_FEE0);
    for _ in 0..RANDOM_GETS {
        let i = rng.below(BULK_ENTRIES);
        // get_with: the value where it lies, as redb's AccessGuard gives it.
        assert!(s.get_with(&bench_key(i), |v| v == bench_value(i)).unwrap().unwrap());
    }
    let caposst1_get = RANDOM_GETS as f64 / t.elapsed().as_secs_f64();
    drop(s);

    let t = Instant::now();
    let db = Database::open(dir.0.join(format!("bulk-{n}.redb"))).unwrap();
    let mut rng = Rng(0x0C0F_FEE0);
    let read = db.begin_read().unwrap();
    let table = read.open_table(TABLE).unwrap();
    for _ in 0..RANDOM_GETS {
        let i = rng.below(BULK_ENTRIES);
        assert_eq!(table.get(bench_key(i).as_slice()).unwrap().unwrap().value(), bench_value(i));
    }
    let redb_get = RANDOM_GETS as f64 / t.elapsed().as_secs_f64();
    Round {
        put: (caposst1_put, redb_put),
        get: (caposst1_get, redb_get),
        bulk: (caposst1_bulk, redb_bulk),
        put_fsyncs,
        bulk_fsyncs,
        mount_ms,
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Prints one row: the medians of each engine and of the per-round ratio.
fn row(name: &str, figures: Vec<(f64, f64)>, note: &str) {
    let ratios: Vec<f64> = figures.iter().map(|(c, r)| c / r).collect();
    let ratio = median(ratios.clone());
    let caposst1 = median(figures.iter().map(|f| f.0).collect());
    let redb = median(figures.iter().map(|f| f.1).collect());
    println!("{name:<44} {caposst1:>14.0} {redb:>14.0} {ratio:>11.3}  {note}");
    let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
    println!("{:<44} {:>41}  ratio in each round: {}", "", "", each.join(", "));
}

fn bench_vs_redb() {
    let dir = TempDir::new();
    println!();
    println!("CAPOSST1 beside redb 3, both on files with an fsync per commit (wall clock, host disk)");
    println!("  files under {}; keys 18 B (\"bench/key/NNNNNNNN\"), values {VALUE_LEN} B", dir.0.display());
    println!(
        "  CAPOSST1: FileBlockDevice, flush = fdatasync, single-flush commits; redb: Database::create, default Durability::Immediate"
    );
    println!("  {ROUNDS} rounds, each engine after the other in each; each figure is the median, and the ratio is the median of the rounds' ratios");
    println!("{:<44} {:>14} {:>14} {:>11}", "workload", "CAPOSST1 ops/s", "redb ops/s", "capOS/redb");
    let rounds: Vec<Round> = (0..ROUNDS).map(|n| round(&dir, n)).collect();
    row(
        &format!("(1) durable put, N={DURABLE_PUTS}, one commit each"),
        rounds.iter().map(|r| r.put).collect(),
        &format!("CAPOSST1: {:.2} fsyncs/put; redb: one write txn (one fdatasync) per put", rounds[0].put_fsyncs),
    );
    row(
        &format!("(2) random get, M={RANDOM_GETS} of the K keys"),
        rounds.iter().map(|r| r.get).collect(),
        &format!(
            "both timed from open; CAPOSST1: {} MiB value cache, filled by its mount ({:.1} ms) that checks every entry; redb: one read txn",
            COMPARISON_CACHE_BYTES >> 20,
            median(rounds.iter().map(|r| r.mount_ms).collect())
        ),
    );
    row(
        &format!("(3) bulk load, K={BULK_ENTRIES}, ascending keys"),
        rounds.iter().map(|r| r.bulk).collect(),
        &format!("CAPOSST1: mount + one apply() batch, {} fsync; redb: one write txn", rounds[0].bulk_fsyncs),
    );
}

fn main() {
    println!("capOS storage benchmark (in-memory device, 512-byte blocks)");
    bench_store();
    bench_fs();
    bench_vs_redb();
}
