//! Deterministic byte-flip fuzzing of the FAT backer: valid mkfs.fat/mcopy
//! images (FAT12 and FAT32) with a few bytes changed per iteration — most
//! in the boot sector, the FAT and the directories, some as FAT links set
//! to chosen values (loops, cluster 1, past the end), some in file data —
//! then mount, list every directory, open and read every file.
//!
//! Each iteration must end with a value (Ok or an error) — no panic (caught
//! per iteration and reported with the flips that caused it), no hang (a
//! watchdog fails the test when one iteration takes more than 20 s), and a
//! walk no larger than the image could describe.
//!
//! CAPOS_FAT_FUZZ_ITERS=N runs N iterations per image (default 5000).

mod fat_support;

use capos_storage::fat::{FatFs, MountOptions};
use fat_support::*;
use std::sync::mpsc;
use std::time::Duration;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn iterations() -> u64 {
    std::env::var("CAPOS_FAT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(5000)
}

/// A small tree with every feature: long and Unicode names, nesting, a
/// multi-cluster file, a fragmented file, an empty file, a 30-entry
/// directory.
fn image(bits: u8) -> FatImage {
    let (size, tag) = if bits == 32 { (40 << 20, "fuzz32") } else { (1_474_560, "fuzz12") };
    let img = FatImage::mkfs(tag, bits, size, 1, 512);
    let s = img.dir.0.join("staging");
    std::fs::create_dir_all(s.join("nested/deeper")).unwrap();
    std::fs::create_dir_all(s.join("dir of thirty")).unwrap();
    std::fs::write(s.join("hello.txt"), b"hello\n").unwrap();
    std::fs::write(s.join("A long file name.txt"), b"long\n").unwrap();
    std::fs::write(s.join("Ünïcödé-名前.txt"), b"unicode\n").unwrap();
    std::fs::write(s.join("nested/deeper/leaf.txt"), b"leaf\n").unwrap();
    std::fs::write(s.join("multi.bin"), (0..6000).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    std::fs::write(s.join("empty.txt"), b"").unwrap();
    for i in 0..30 {
        std::fs::write(s.join(format!("dir of thirty/entry {i}.txt")), format!("{i}")).unwrap();
    }
    img.put_tree(&s);
    img.put("/HOLE.BIN", &[1u8; 2048], 1_600_000_000);
    img.put("/FILLER.BIN", b"filler", 1_600_000_000);
    img.del("/HOLE.BIN");
    if bits == 32 {
        img.forget_next_free_hint();
    }
    img.put("/FRAG.BIN", &[7u8; 5000], 1_600_000_000);
    assert!(img.runs("/FRAG.BIN") >= 2);
    img
}

/// Where flips do damage: boot sector and FSInfo, the used part of the
/// first FAT, the directories (found by following directory entries).
fn metadata(b: &[u8]) -> (Layout, Vec<(usize, usize)>, u32) {
    let l = Layout::of(b);
    let mut ranges = vec![(0, 1024)];
    let max_used = (2..l.clusters + 2).filter(|&c| l.get(b, c) != 0).max().unwrap_or(2);
    ranges.push((l.fat_offset, (max_used as usize + 3) * l.bits as usize / 8));
    let mut stack = vec![l.root()];
    let mut seen = vec![];
    while let Some(dir) = stack.pop() {
        for (offset, len) in l.dir_ranges(b, dir) {
            ranges.push((offset, len));
            for e in b[offset..offset + len].chunks_exact(32) {
                if e[0] == 0 {
                    break;
                }
                if e[0] == 0xE5 || e[11] & 0x0F == 0x0F || e[0] == b'.' || e[11] & 0x10 == 0 {
                    continue;
                }
                let at = e.as_ptr() as usize - b.as_ptr() as usize;
                let c = l.first_cluster(b, at);
                if c >= 2 && !seen.contains(&c) {
                    seen.push(c);
                    stack.push(c);
                }
            }
        }
    }
    (l, ranges, max_used)
}

/// One iteration's damage: (offset, new byte) pairs.
fn damage(rng: &mut Rng, b: &[u8], l: &Layout, ranges: &[(usize, usize)], max_used: u32) -> Vec<(usize, u8)> {
    let mut flips = vec![];
    for _ in 0..1 + rng.below(4) {
        match rng.below(10) {
            // A FAT link of a used cluster set to a chosen value.
            0..=1 => {
                let c = 2 + rng.below(u64::from(max_used - 1)) as u32;
                let value = match rng.below(5) {
                    0 => 1,
                    1 => 0,
                    2 => l.clusters + 2 + rng.below(100) as u32,
                    _ => 2 + rng.below(u64::from(max_used)) as u32, // likely a loop or a cross-link
                };
                // Patch a copy of the entry's bytes only (the image is large).
                let at = l.fat_offset + (c as usize * l.bits as usize) / 8;
                let width = (l.bits as usize).div_ceil(8) + 1;
                let mut window = vec![0u8; l.fat_offset];
                window.extend_from_slice(&b[l.fat_offset..at + width]);
                let mut one_fat = *l;
                one_fat.fats = 1;
                one_fat.set(&mut window, c, value);
                for i in at..at + width {
                    if window[i] != b[i] {
                        flips.push((i, window[i]));
                    }
                }
            }
            // A byte anywhere in the file data that is in use.
            2 => {
                let end = l.cluster_offset(max_used + 1).min(b.len());
                let at = l.data_offset + rng.below((end - l.data_offset) as u64) as usize;
                flips.push((at, rng.next() as u8));
            }
            // A byte of the metadata: random, or a boundary value.
            _ => {
                let (offset, len) = ranges[rng.below(ranges.len() as u64) as usize];
                let at = offset + rng.below(len as u64) as usize;
                let value = match rng.below(4) {
                    0 => 0,
                    1 => 0xFF,
                    2 => b[at] ^ (1 << rng.below(8)),
                    _ => rng.next() as u8,
                };
                flips.push((at, value));
            }
        }
    }
    flips
}

enum Report {
    Start(u64, Vec<(usize, u8)>),
    Done { mounted: bool, walked: bool },
    Panic(u64, Vec<(usize, u8)>, String),
    Finished,
}

fn fuzz(bits: u8, seed: u64) {
    let img = image(bits);
    let original = img.bytes();
    let (layout, ranges, max_used) = metadata(&original);
    let max_nodes = original.len() / 32;
    let iterations = iterations();
    let (tx, rx) = mpsc::channel();
    // The work runs on its own thread so a hang can be reported.
    std::thread::spawn(move || {
        let mut bytes = original.clone();
        let mut rng = Rng(seed);
        for i in 0..iterations {
            let flips = damage(&mut rng, &original, &layout, &ranges, max_used);
            let _ = tx.send(Report::Start(i, flips.clone()));
            for &(at, value) in &flips {
                bytes[at] = value;
            }
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let device = SliceDevice { bytes: &bytes, reads: 0 };
                match FatFs::mount(device, MountOptions::default()) {
                    Err(_) => (false, false),
                    Ok(mut fs) => (true, walk(&mut fs, max_nodes).is_ok()),
                }
            }));
            for &(at, _) in &flips {
                bytes[at] = original[at];
            }
            match outcome {
                Ok((mounted, walked)) => {
                    let _ = tx.send(Report::Done { mounted, walked });
                }
                Err(panic) => {
                    let msg = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    let _ = tx.send(Report::Panic(i, flips, msg));
                }
            }
        }
        let _ = tx.send(Report::Finished);
    });

    let mut current = (0, vec![]);
    let (mut mounted, mut walked, mut done) = (0u64, 0u64, 0u64);
    let mut panics = vec![];
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(Report::Start(i, flips)) => current = (i, flips),
            Ok(Report::Done { mounted: m, walked: w }) => {
                done += 1;
                mounted += m as u64;
                walked += w as u64;
            }
            Ok(Report::Panic(i, flips, msg)) => panics.push(format!("iteration {i}, flips {flips:?}: {msg}")),
            Ok(Report::Finished) => break,
            Err(_) => panic!("FAT{bits} fuzz: iteration {} hangs (flips {:?})", current.0, current.1),
        }
    }
    eprintln!(
        "FAT{bits} fuzz: {iterations} iterations, {mounted} mounted, {walked} walked without error, \
         {} refused at mount, {} panics",
        done - mounted,
        panics.len()
    );
    assert!(panics.is_empty(), "FAT{bits} fuzz panicked:\n{}", panics.join("\n"));
    assert_eq!(done, iterations);
    // The damage must matter: some images refused, some read whole.
    if iterations >= 100 {
        assert!(walked > 0 && walked < iterations, "FAT{bits} fuzz: {walked} of {iterations} walked clean");
    }
}

#[test]
fn fat12_byte_flips_never_panic_or_hang() {
    fuzz(12, 0x0F12_F12F);
}

#[test]
fn fat32_byte_flips_never_panic_or_hang() {
    fuzz(32, 0x0F32_F32F);
}
