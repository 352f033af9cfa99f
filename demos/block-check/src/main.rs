//! block-check: the guest side of the `block-cap` scenario
//! (tools/runner/src/scenarios/storage/block_cap.rs). It holds `blk` (a writable
//! `kernel:block:NAME`) and `ro` (`kernel:block-ro:` of the same raw
//! mount), and prints one verdict line per check: `[PASS] NAME` or
//! `[FAIL] NAME: reason`; it exits 1 if any check failed.
//!
//! ```text
//! block-check --expect-blocks N --seed S
//! block-check --latency READS [--delay-ms D]
//! ```
//!
//! It writes the pattern of run S (pattern.rs) at the first, middle and
//! last blocks, and through `CapBlockDevice` in several calls; flushes;
//! reads everything back; probes the server's refusals (out of range, bad
//! lengths, wrong bulk direction, too large); and checks that `ro` reads
//! the same bytes but cannot write or flush. The runner then compares the
//! disk image with the pattern.
//!
//! With `--latency` it holds `blk` and `clock` only: after D ms (a busy
//! wait on the clock) it reads READS single blocks, one call each, at
//! LBAs spread over the device, and prints one line the runner reads:
//! `latency: READS reads from T0 to T1 ns, slowest S us` (wall clock ns).
//! The `block-cap` scenario's `two-namespaces` boot runs one on a
//! throttled namespace and one on a fast namespace of the same NVMe
//! controller, to show that a request waiting for the device holds up no
//! request on another mount.
#![no_std]
#![no_main]

extern crate alloc;

mod pattern;

use alloc::format;
use alloc::vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::verdict::Report;
use capos_rt::{println, Block, CapBlockDevice, Clock, StartInfo};
use capos_storage::BlockDevice;

// 3 MiB of heap: the whole-bulk-buffer checks hold a 1 MiB buffer.
capos_rt::entry!(main, heap = 3 << 20);


/// `--name VALUE` as a number.
fn num(start: &StartInfo, name: &str) -> Option<u64> {
    let i = start.args.iter().position(|a| a == name)?;
    start.args.get(i + 1)?.parse().ok()
}

/// `--latency`: time single-block reads (module docs).
fn latency(start: &StartInfo, reads: u64) -> i32 {
    let (Some(blk), Some(clock)) = (start.cap("blk").map(Block::new), start.cap("clock").map(Clock)) else {
        println!("[FAIL] grants: block-check --latency needs 'blk' (block:NAME) and 'clock'");
        return 1;
    };
    let delay_ns = num(start, "--delay-ms").unwrap_or(0).saturating_mul(1_000_000);
    let now = || clock.now().map_err(|e| format!("{:?}", e));
    let run = || -> Result<(u64, u64, u64), alloc::string::String> {
        let count = blk.info().map_err(|e| format!("info: {:?}", e))?.block_count.max(1);
        let t = now()?;
        while now()? < t.saturating_add(delay_ns) {}
        let mut buf = [0u8; 512];
        let (t0, mut slowest) = (now()?, 0);
        for i in 0..reads {
            let before = now()?;
            blk.read(i * 7919 % count, 1, &mut buf).map_err(|e| format!("read {}: {:?}", i, e))?;
            slowest = slowest.max(now()? - before);
        }
        Ok((t0, now()?, slowest))
    };
    match run() {
        Ok((t0, t1, slowest)) => {
            println!("latency: {} reads from {} to {} ns, slowest {} us", reads, t0, t1, slowest / 1000);
            0
        }
        Err(e) => {
            println!("[FAIL] latency: {}", e);
            1
        }
    }
}

fn main(start: &StartInfo) -> i32 {
    if let Some(reads) = num(start, "--latency") {
        return latency(start, reads);
    }
    let mut r = Report::default();
    let (Some(blk), Some(ro)) = (start.cap("blk").map(Block::new), start.cap("ro").map(Block::new)) else {
        println!("[FAIL] grants: block-check needs 'blk' (block:NAME) and 'ro' (block-ro:NAME)");
        return 1;
    };
    let expect = num(start, "--expect-blocks").unwrap_or(0);
    let seed = num(start, "--seed").unwrap_or(1);
    let info = match blk.info() {
        Ok(i) => i,
        Err(e) => {
            println!("[FAIL] info: {:?}", e);
            return 1;
        }
    };
    let (bs, count) = (info.block_size as usize, info.block_count);
    r.check(
        "info",
        if info.block_size == 512 && count == expect && !info.read_only {
            Ok(format!("{} blocks of {} bytes, writable", count, bs))
        } else {
            Err(format!("{:?}, want {} writable blocks of 512 bytes", info, expect))
        },
    );
    if count < 64 || bs != 512 {
        return 1;
    }
    let regions = pattern::regions(count);

    // Write the pattern through the client, one call per region, and flush.
    for &(lba, blocks) in &regions[..3] {
        let mut data = vec![0u8; blocks as usize * bs];
        pattern::fill(seed, lba, bs, &mut data);
        r.check(&format!("write-{}", lba), blk.write(lba, &data).map(|()| format!("{} blocks at {}", blocks, lba)).map_err(|e| format!("{:?}", e)));
    }
    // The adapter: one write_blocks and one read_blocks, split into calls
    // of ADAPTER_CALL_BYTES.
    let (alba, ablocks) = regions[3];
    let mut data = vec![0u8; ablocks as usize * bs];
    pattern::fill(seed, alba, bs, &mut data);
    let mut dev = match CapBlockDevice::with_call_limit(blk, pattern::ADAPTER_CALL_BYTES) {
        Ok(d) => d,
        Err(e) => {
            println!("[FAIL] adapter: {:?}", e);
            return 1;
        }
    };
    r.check(
        "adapter-write",
        dev.write_blocks(alba, &data)
            .map(|()| format!("{} blocks at {} in {} calls", ablocks, alba, data.len().div_ceil(dev.call_limit())))
            .map_err(|e| format!("{}", e)),
    );
    let mut back = vec![0u8; data.len()];
    r.check(
        "adapter-read",
        match dev.read_blocks(alba, &mut back) {
            Ok(()) if back == data => Ok(format!("{} blocks read back equal", ablocks)),
            Ok(()) => Err("read back differs from what was written".into()),
            Err(e) => Err(format!("{}", e)),
        },
    );
    r.check("adapter-geometry", if dev.block_count() == count && dev.block_size() == bs { Ok("block count and size as info".into()) } else { Err("geometry differs".into()) });
    r.check(
        "adapter-refuses-out-of-range",
        match dev.read_blocks(count, &mut back[..bs]) {
            Err(capos_storage::BlockError::OutOfRange) => Ok("OutOfRange before any call".into()),
            other => Err(format!("{:?}", other)),
        },
    );
    r.check("flush", dev.flush().map(|()| "flushed".into()).map_err(|e| format!("{}", e)));
    let blk = dev.into_block();

    // Read every region back through the client.
    for &(lba, blocks) in &regions {
        let mut want = vec![0u8; blocks as usize * bs];
        pattern::fill(seed, lba, bs, &mut want);
        let mut got = vec![0u8; want.len()];
        r.check(
            &format!("read-{}", lba),
            match blk.read(lba, blocks as u32, &mut got) {
                Ok(n) if n == want.len() && got == want => Ok(format!("{} blocks equal the pattern", blocks)),
                Ok(n) => Err(format!("{} bytes; equal to the pattern: {}", n, got == want)),
                Err(e) => Err(format!("{:?}", e)),
            },
        );
    }

    // Refusals: each with its code, none reaching the device.
    let mut buf = vec![0u8; 4 * bs];
    r.refused("read-past-end", blk.read(count, 1, &mut buf), ErrorCode::InvalidArgument);
    r.refused("read-straddling-end", blk.read(count - 1, 2, &mut buf), ErrorCode::InvalidArgument);
    r.refused("read-lba-overflow", blk.read(u64::MAX, 1, &mut buf), ErrorCode::InvalidArgument);
    r.refused("read-no-blocks", blk.read(0, 0, &mut buf), ErrorCode::InvalidArgument);
    r.refused("read-more-than-buffer", blk.read(0, 5, &mut buf), ErrorCode::TooLarge);
    r.refused("read-more-than-bulk-limit", blk.read(0, u32::MAX, &mut buf), ErrorCode::TooLarge);
    r.refused("read-without-buffer", blk.read_without_buffer(0, 1), ErrorCode::InvalidArgument);
    r.refused("read-into-readable-buffer", blk.read_into_readable(0, 1, &buf[..bs]), ErrorCode::InvalidArgument);
    r.refused("write-past-end", blk.write(count, &buf[..bs]), ErrorCode::InvalidArgument);
    r.refused("write-straddling-end", blk.write(count - 1, &buf[..2 * bs]), ErrorCode::InvalidArgument);
    r.refused("write-partial-block", blk.write(0, &buf[..100]), ErrorCode::InvalidArgument);
    r.refused("write-without-buffer", blk.write_without_buffer(0), ErrorCode::InvalidArgument);

    // Whole bulk buffers (1 MiB): one refused for straddling the end
    // (checked before a byte is copied), then one read and written back
    // in place (the disk's bytes stay what the runner compares). The
    // kernel's longest interrupts-off span, printed when userspace is
    // idle, must stay short through them (the runner's bound).
    let mut mib = vec![0u8; 1 << 20];
    let mib_blocks = (mib.len() / bs) as u64;
    if count > mib_blocks {
        r.refused("write-1mib-straddling-end", blk.write(count - mib_blocks / 2, &mib), ErrorCode::InvalidArgument);
        r.check(
            "read-1mib",
            blk.read(0, mib_blocks as u32, &mut mib).map(|n| format!("{} bytes in one call", n)).map_err(|e| format!("{:?}", e)),
        );
        r.check("write-1mib", blk.write(0, &mib).map(|()| "1 MiB in one call, written back in place".into()).map_err(|e| format!("{:?}", e)));
    }

    // The read-only grant of the same mount.
    r.check(
        "ro-info",
        match ro.info() {
            Ok(i) if i.read_only && i.block_count == count => Ok(format!("{} blocks, read-only", i.block_count)),
            other => Err(format!("{:?}", other)),
        },
    );
    let (lba0, blocks0) = regions[0];
    let mut want = vec![0u8; blocks0 as usize * bs];
    pattern::fill(seed, lba0, bs, &mut want);
    let mut got = vec![0u8; want.len()];
    r.check(
        "ro-read",
        match ro.read(lba0, blocks0 as u32, &mut got) {
            Ok(_) if got == want => Ok("reads what blk wrote".into()),
            other => Err(format!("{:?}; equal: {}", other, got == want)),
        },
    );
    r.refused("ro-write", ro.write(lba0, &buf[..bs]), ErrorCode::ReadOnly);
    r.refused("ro-flush", ro.flush(), ErrorCode::ReadOnly);
    got.fill(0);
    r.check(
        "ro-write-changed-nothing",
        match blk.read(lba0, blocks0 as u32, &mut got) {
            Ok(_) if got == want => Ok("the pattern is still there".into()),
            other => Err(format!("{:?}; equal: {}", other, got == want)),
        },
    );
    println!("block-check: {} passed, {} failed", r.passed, r.failed);
    if r.failed == 0 {
        0
    } else {
        1
    }
}
