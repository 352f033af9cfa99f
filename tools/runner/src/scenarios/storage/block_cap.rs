//! `block-cap`: the kernel's BlockDevice capability over a raw mount of a
//! GPT partition, driven by the guest `demos/block-check` and judged by
//! reading the disk image afterwards.
//!
//! The runner makes a 8 MiB disk whose every byte is a filler
//! (`filler`), then a GPT with sgdisk: partition 1 (blocks 2048..4096)
//! and partition 2 (blocks 4096..12288, type [`RAW_TYPE`]). Two boots:
//! `mount disk: raw on nvme0n1 partition 2`, then the same partition by
//! `partition type GUID`, each with a writable `block:disk` and a
//! `block-ro:disk` grant and its own pattern seed. After each boot the
//! image must hold the guest's pattern at exactly partition start + LBA
//! of every region it wrote, and every other byte (partition 1, the GPTs,
//! the rest of partition 2) as it was before the boot. A third boot mounts
//! partition 2 twice, once by number and once by type: mkmanifest cannot
//! see that they are one partition (the manifest does not say which type
//! entry 2 has), so the kernel must refuse it at mount time, once it has
//! read the GPT, naming both mounts and the blocks, start nothing and
//! leave the disk as it was.

use super::{Run, BootOut};
use capos_kcore::gpt::{self, Guid};
use std::path::Path;
use std::process::Command;

/// What block-check writes where (the file the guest builds with).
#[allow(dead_code)]
#[path = "../../../../../demos/block-check/src/pattern.rs"]
mod pattern;

const GUEST: &str = "block-check";
const DISK_BLOCKS: u64 = 16384;
/// The partition type of the raw partition (made up for this test).
const RAW_TYPE: &str = "B10C0C4B-5A17-4E0D-9C3A-0000000000B1";

/// The byte a fresh disk holds at `offset`: not zero and not the
/// guest's pattern, so a stray write shows.
fn filler(offset: u64) -> u8 {
    0xA5 ^ (offset / 512) as u8 ^ (offset as u8 & 0xF0)
}

fn make_disk(path: &Path) -> Result<(), String> {
    let bytes: Vec<u8> = (0..DISK_BLOCKS * 512).map(filler).collect();
    std::fs::write(path, &bytes).map_err(|e| format!("{}: {}", path.display(), e))?;
    let out = Command::new("sgdisk")
        .args(["-o", "-n", "1:2048:4095", "-t", "1:8300", "-c", "1:other", "-n", "2:4096:12287"])
        .arg(format!("--typecode=2:{}", RAW_TYPE))
        .args(["-c", "2:capos-raw"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run sgdisk (Debian package gdisk; run tools/setup.sh): {}", e))?;
    if !out.status.success() {
        return Err(format!("sgdisk: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(())
}

/// Partition 2's (first block, block count) as the kernel's own GPT
/// parser reads it from the image.
fn raw_partition(img: &[u8]) -> Result<(u64, u64), String> {
    let table = gpt::parse(img.len() as u64 / 512, |lba, buf| {
        let at = lba as usize * 512;
        buf.copy_from_slice(img.get(at..at + 512).ok_or("past the end")?);
        Ok::<(), &str>(())
    })
    .map_err(|e| format!("GPT of the test disk: {}", e))?;
    let p = table.by_number(2).ok_or("the test disk has no partition 2")?;
    let want = Guid::parse(RAW_TYPE).ok_or("RAW_TYPE is not a GUID")?;
    if p.type_guid != want {
        return Err(format!("partition 2 is type {}, want {}", p.type_guid, RAW_TYPE));
    }
    Ok((p.first_lba, p.blocks()))
}

/// `after` must equal `before` except that every region the guest wrote
/// (relative to `start`) holds the pattern of `seed`.
fn compare(before: &[u8], after: &[u8], start: u64, count: u64, seed: u64) -> Result<String, String> {
    if before.len() != after.len() {
        return Err(format!("the image changed size: {} -> {} bytes", before.len(), after.len()));
    }
    let mut want = before.to_vec();
    let mut written = 0u64;
    for (lba, blocks) in pattern::regions(count) {
        let at = ((start + lba) * 512) as usize;
        pattern::fill(seed, lba, 512, &mut want[at..at + blocks as usize * 512]);
        written += blocks;
    }
    let diffs: Vec<usize> = (0..want.len()).filter(|&i| want[i] != after[i]).collect();
    match diffs.first() {
        None => Ok(format!("the pattern of seed {} at {} blocks of partition 2 (start {}), every other byte of the {}-byte image unchanged", seed, written, start, after.len())),
        Some(&i) => Err(format!(
            "{} bytes differ; the first at byte {} (disk block {}, {}): {:#04x}, want {:#04x}",
            diffs.len(),
            i,
            i / 512,
            if (i as u64 / 512) >= start && (i as u64 / 512) < start + count { "inside partition 2" } else { "outside partition 2" },
            after[i],
            want[i]
        )),
    }
}

pub fn run(r: &mut Run) -> Result<(), String> {
    // block-check's 1 MiB BlockDevice calls: the interrupts-off bound.
    r.icount = true;
    let img = r.dir.join("block.img");
    make_disk(&img)?;
    let bytes = std::fs::read(&img).map_err(|e| e.to_string())?;
    let (start, count) = raw_partition(&bytes)?;
    r.pass("disk", &format!("{} blocks; partition 2 at blocks {}..{} ({} blocks, type {})", DISK_BLOCKS, start, start + count, count, RAW_TYPE));
    for (boot, seed, target) in [("by-number", 1u64, "nvme0n1 partition 2".to_string()), ("by-type", 2, format!("nvme0n1 partition type {}", RAW_TYPE))] {
        let before = std::fs::read(&img).map_err(|e| e.to_string())?;
        let manifest = format!(
            "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
             mount disk: raw on {target}\n\n\
             process {GUEST}\n    binary: /boot/{GUEST}\n    arg: --expect-blocks\n    arg: {count}\n    arg: --seed\n    arg: {seed}\n\
             \x20   grant console: kernel:console\n    grant blk: kernel:block:disk\n    grant ro: kernel:block-ro:disk\n"
        );
        let out: BootOut = r.boot(boot, &manifest, &[super::Disk { path: img.clone(), bus: super::Bus::Nvme }], None, super::timeout(r, 120))?;
        let mounted = format!("storage: mounted disk: raw on {} (blocks {}..{})", target, start, start + count);
        r.judge(boot, &out, &[], &[GUEST], &[&mounted]);
        let after = std::fs::read(&img).map_err(|e| e.to_string())?;
        let verdict = compare(&before, &after, start, count, seed);
        r.check(&format!("{}-image", boot), verdict);
    }
    number_and_type(r, &img, start, count)
}

/// `partition 2` and `partition type RAW_TYPE` on one device: refused by
/// the kernel's resolved-range check, nothing started, nothing written.
fn number_and_type(r: &mut Run, img: &Path, start: u64, count: u64) -> Result<(), String> {
    let boot = "number-and-type";
    // b names the partition a names, by type: the later mount fails, a
    // stands, and block-check is started with b's grant as its writable
    // `blk`, which must answer `unavailable` to its first call (so it
    // writes nothing) and a read-only grant of a.
    let manifest = format!(
        "# Generated by tools/runner/src/scenarios/storage/block_cap.rs: block-cap boot {boot}\n\
         mount a: raw on nvme0n1 partition 2\n\
         mount b: raw on nvme0n1 partition type {RAW_TYPE}\n\n\
         process {GUEST}\n    binary: /boot/{GUEST}\n    grant console: kernel:console\n    grant blk: kernel:block:b\n    grant ro: kernel:block-ro:a\n"
    );
    let before = std::fs::read(img).map_err(|e| e.to_string())?;
    let out: BootOut = r.boot(boot, &manifest, &[super::Disk { path: img.to_path_buf(), bus: super::Bus::Nvme }], None, super::timeout(r, 120))?;
    let refusal = format!(
        "storage: mount b failed: raw on nvme0n1 partition type {RAW_TYPE}: blocks {start}..{} of nvme0n1 are already claimed by mount a (blocks {start}..{}): a device serves one mount",
        start + count,
        start + count
    );
    r.check(&format!("{boot}-exit"), match (out.timed_out, out.exit) {
        (false, Some(crate::machine::EXIT_KERNEL_SUCCESS)) => Ok("exit status 33 (kernel success)".into()),
        (t, e) => Err(format!("exit status {e:?}{}, want 33", if t { " (timed out)" } else { "" })),
    });
    let lines = crate::source::classify(&out.lines);
    for (check, want) in [
        ("refused", refusal.as_str()),
        ("a-mounted", "storage: mounted a: raw on nvme0n1 partition 2"),
        ("b-unavailable", "[block-check] [FAIL] info: Object(CapError { code: Unavailable, message: \"mount b failed: blocks"),
    ] {
        r.check(&format!("{boot}-{check}"), match crate::source::Pattern::parse(want).find(&lines) {
            Some(_) => Ok(format!("saw '{want}'")),
            None => Err(format!("never saw '{want}'")),
        });
    }
    let bad: Vec<&str> = ["KERNEL PANIC", "userspace not started"].into_iter().filter(|bad| out.lines.iter().any(|l| l.contains(bad))).collect();
    r.check(&format!("{boot}-started"), if bad.is_empty() { Ok("the other mount and the process started, no panic".into()) } else { Err(format!("saw {:?}", bad)) });
    let after = std::fs::read(img).map_err(|e| e.to_string())?;
    r.check(&format!("{boot}-image"), if after == before { Ok("the disk is byte for byte as before".into()) } else { Err("the disk changed".into()) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_finds_a_stray_byte_and_a_missing_pattern() {
        let (start, count) = (8u64, 64u64);
        let before: Vec<u8> = (0..128 * 512).map(filler).collect();
        let mut after = before.clone();
        for (lba, blocks) in pattern::regions(count) {
            let at = ((start + lba) * 512) as usize;
            pattern::fill(3, lba, 512, &mut after[at..at + blocks as usize * 512]);
        }
        compare(&before, &after, start, count, 3).unwrap();
        assert!(compare(&before, &after, start, count, 4).is_err(), "another seed's pattern");
        let mut stray = after.clone();
        stray[3] ^= 1;
        assert!(compare(&before, &stray, start, count, 3).unwrap_err().contains("outside partition 2"));
        // The pattern one block off (the partition offset ignored) is caught.
        assert!(compare(&before, &after, start + 1, count, 3).is_err());
        assert!(compare(&before, &before, start, count, 3).is_err(), "nothing written");
    }
}
