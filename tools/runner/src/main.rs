//! capos-run: builds capOS, writes a boot volume, runs QEMU and judges the
//! run.
//!
//! ```text
//! capos-run test SCENARIO...   run scenarios, print [PASS]/[FAIL] lines and
//!                              "N passed, N failed"; exit 1 on any failure;
//!                              JOBS (default: one per core) at a time, each
//!                              one's output printed whole (parallel.rs)
//! capos-run prebuild SCENARIO...  build what `test` of the same scenarios
//!                              builds first (kernel, loader, demos,
//!                              mkstore-image), so `make test` can do it
//!                              beside the host tests; `test` then finds it
//!                              built
//! capos-run run                boot interactively (serial on this terminal)
//! capos-run debug              like run, QEMU waits for gdb on :1234
//! capos-run serve              boot the default system without console input,
//!                              serving /data over HTTP until killed (run-http)
//! capos-run list               list scenarios
//! capos-run bench-check [FILE] run the benchmarks FILE names (default
//!                              tools/bench-budgets.txt) and judge each
//!                              figure against its budget (budget.rs)
//! capos-run bench-prebuild [FILE]  only the build bench-check starts with
//! capos-run esp-tree [DIR]     write what `run` puts on the boot volume to DIR
//! capos-run disk-image [OUT]   the GPT disk (make image; default target/capos.img)
//! capos-run cloudboot-image [DIR]  disk.raw, capos-disk.tar.gz and the
//!                              provenance record in DIR (default target/)
//! capos-run check-disk DISK [TARBALL]  the host check of the cloud disk rules
//! capos-run run-disk           boot DISK over DISK_BUS (nvme|virtio) interactively
//! capos-run disk-test          the cloud-disk scenario (scenarios/cloud_disk.rs)
//! capos-run sha256 FILE...     sha256sum, fast on sparse files
//! ```
//!
//! Settings come from the environment (the Makefile passes its variables):
//! QEMU_MACHINE (q35|pc), QEMU_MEM, QEMU_SMP, QEMU_CPU, QEMU_EXTRA,
//! SCENARIO_TIMEOUT (seconds per boot), CMDLINE (for run/debug), OVMF_CODE,
//! OVMF_VARS, LIMINE_DIR (boot with a real Limine release instead of
//! capos-boot), KERNEL_PROFILE (dev|release), BENCH_PROFILE (the cargo
//! profile of the bench-* scenarios, default bench-opt), JOBS (scenarios
//! at once for `test`; 1: one after another in this process, streamed),
//! BENCH_JOBS (benchmarks at once for `bench-check`).
//!
//! # Rooms
//!
//! The runner is split by what it does, in rooms, lowest first. A room
//! may import (`crate::ROOM`) only rooms below it, never one beside or
//! above it, so there is no import cycle; tests/rooms.rs reads every
//! `crate::` path of src/ and fails on one that breaks this order.
//!
//! ```text
//! 0  settings   the machine settings and runner inputs from the environment
//! 0  source     who wrote a serial line; expectations that name a source
//! 0  scratch    the host tests' scratch directories (tests only)
//! 1  build/     cargo builds: kernel, loader, mkstore-image, the Linux guest
//! 2  machine/   QEMU's command line, OVMF, exit codes, disk buses (bus.rs),
//!               the serial stream (serial.rs)
//! 3  volumes/   boot volumes (esp.rs, userspace.rs), disks a boot attaches
//!               (blk.rs, system.rs), storage image formats (formats.rs),
//!               the cloud disk image and its check (disk/)
//! 4  judge/     expectations, forbidden lines, checks, verdicts and their
//!               tally; icount figures (icount.rs, figures.rs)
//! 5  boot       one boot (its machine, volume, disks, console script,
//!               judgement, figures) run and judged; `make run`
//! 6  scenarios/ the scenario tables as data, one file per family, and the
//!               scenarios that drive their own boots (storage/, cloud_disk.rs)
//! 7  parallel   scenarios run as child runs, JOBS at a time
//! 8  budget     `bench-check`: benchmark figures against their budgets
//! 9  main       the commands
//! ```

mod boot;
mod budget;
mod build;
mod judge;
mod machine;
mod parallel;
mod scenarios;
#[cfg(test)]
mod scratch;
mod settings;
mod source;
mod volumes;

use scenarios::cloud_disk as disk;
use scenarios::storage;
use settings::Settings;
use std::process::ExitCode;

fn usage() -> ExitCode {
    eprintln!("usage: capos-run test SCENARIO... | prebuild SCENARIO... | bench-check [FILE] | bench-prebuild [FILE] | run | debug | serve | list | {}", disk::COMMANDS.join(" | "));
    ExitCode::from(2)
}

/// The exit code of a judged run: its verdict, or an error that stopped it
/// (counted as one failure, so the closing line never reads as a pass).
fn judged(r: Result<bool, String>) -> ExitCode {
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("capos-run: {}", e);
            println!("0 passed, 1 failed");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { return usage() };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("capos-run: {}", e);
            return ExitCode::from(2);
        }
    };
    match cmd.as_str() {
        "list" => {
            for s in scenarios::all() {
                println!("{:24} {}", s.name, s.description);
            }
            for s in storage::all() {
                println!("{:24} {}", s.name, s.description);
            }
            ExitCode::SUCCESS
        }
        "test" => {
            if args.len() < 2 {
                return usage();
            }
            let mut wanted = Vec::new();
            let mut wanted_storage = Vec::new();
            for name in &args[1..] {
                if let Some(s) = scenarios::all().into_iter().find(|s| s.name == *name) {
                    wanted.push(s);
                } else if let Some(s) = storage::all().into_iter().find(|s| s.name == *name) {
                    wanted_storage.push(s);
                } else {
                    eprintln!("capos-run: unknown scenario '{}'; `capos-run list` shows them", name);
                    return ExitCode::from(2);
                }
            }
            // More than one scenario and more than one job: each in a
            // child run, JOBS at a time (parallel.rs); else in this
            // process, output streamed. A scenario named twice runs twice,
            // so one after another (the runs share its directory).
            let jobs = parallel::jobs("JOBS");
            let mut names = args[1..].to_vec();
            names.sort();
            names.dedup();
            if jobs > 1 && names.len() > 1 && names.len() == args.len() - 1 {
                judged(parallel::test(&settings, wanted, wanted_storage, jobs))
            } else {
                judged(scenarios::run_all(&settings, &wanted, &wanted_storage))
            }
        }
        "prebuild" => {
            if args.len() < 2 {
                return usage();
            }
            let mut wanted = Vec::new();
            let mut storage_named = false;
            for name in &args[1..] {
                if let Some(s) = scenarios::all().into_iter().find(|s| s.name == *name) {
                    wanted.push(s);
                } else if storage::all().iter().any(|s| s.name == *name) {
                    storage_named = true;
                } else {
                    eprintln!("capos-run: unknown scenario '{}'; `capos-run list` shows them", name);
                    return ExitCode::from(2);
                }
            }
            match parallel::prebuild(&settings, &wanted, storage_named) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("capos-run: {}", e);
                    ExitCode::FAILURE
                }
            }
        }
        "bench-prebuild" => match budget::bench_prebuild(&settings, args.get(1).map(String::as_str)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("capos-run: {}", e);
                ExitCode::FAILURE
            }
        },
        "bench-check" => judged(budget::bench_check(&settings, args.get(1).map(String::as_str))),
        "run" | "debug" | "serve" => match boot::interactive(&settings, match cmd.as_str() {
            "debug" => boot::Interactive::Debug,
            "serve" => boot::Interactive::Serve,
            _ => boot::Interactive::Console,
        }) {
            Ok(code) => ExitCode::from(code),
            Err(e) => {
                eprintln!("capos-run: {}", e);
                ExitCode::FAILURE
            }
        },
        c if disk::COMMANDS.contains(&c) => disk::command(&settings, c, &args[1..]),
        _ => usage(),
    }
}
