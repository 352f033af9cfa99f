//! Storage benchmark on an in-memory device.
//!
//! `cargo run --release -p capos-storage --example bench`
//!
//! Prints CAPOSST1 put/get/delete operations per second, CAPOSWF1
//! sequential write/read MiB/s and small-file create rate, and for each the
//! device writes, blocks written and flushes per operation (the write
//! amplification a real disk would see). Figures, not a timed test.

use capos_storage::mem_device::MemBlockDevice;
use capos_storage::store::{self, Store};
use capos_storage::writable_fs::{self, MountOptions, WritableFs};
use capos_storage::{FileSystem, FixedClock, Provenance, Timestamp};
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
    per_op("CAPOSST1 put (19 B key, 100 B value)", KEYS, t.elapsed().as_secs_f64(), s.device());

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

fn main() {
    println!("capOS storage benchmark (in-memory device, 512-byte blocks)");
    bench_store();
    bench_fs();
}
