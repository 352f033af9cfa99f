//! capos-run: builds capOS, writes a boot volume, runs QEMU and judges the
//! run.
//!
//! ```text
//! capos-run test SCENARIO...   run scenarios, print [PASS]/[FAIL] lines and
//!                              "N passed, N failed"; exit 1 on any failure;
//!                              JOBS (default: one per core) at a time, each
//!                              one's output printed whole (parallel.rs)
//! capos-run run                boot interactively (serial on this terminal)
//! capos-run debug              like run, QEMU waits for gdb on :1234
//! capos-run list               list scenarios
//! capos-run bench-check [FILE] run the benchmarks FILE names (default
//!                              tools/bench-budgets.txt) and judge each
//!                              figure against its budget (budget.rs)
//! capos-run esp-tree [DIR]     write what `run` puts on the boot volume to DIR
//! capos-run disk-image [OUT]   the GPT disk (make image; default target/capos.img)
//! capos-run cloudboot-image [DIR]  disk.raw, capos-disk.tar.gz and the
//!                              provenance record in DIR (default target/)
//! capos-run check-disk DISK [TARBALL]  the host check of the cloud disk rules
//! capos-run run-disk           boot DISK over DISK_BUS (nvme|virtio) interactively
//! capos-run disk-test          the cloud-disk scenario (see disk.rs)
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

mod budget;
mod build;
mod bus;
mod disk;
mod elfgen;
mod esp;
mod icount;
mod linux;
mod parallel;
mod qemu;
mod scenarios;
mod source;
mod storage;
mod system;
mod userspace;

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone)]
pub struct Settings {
    pub machine: String,
    pub mem: String,
    pub smp: String,
    pub cpu: String,
    pub extra: Vec<String>,
    pub timeout_secs: u64,
    pub root: PathBuf,
    pub out_dir: PathBuf,
    pub limine_dir: Option<PathBuf>,
    pub profile: String,
}

fn env_or(key: &str, default: &str) -> String {
    match std::env::var(key) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => default.to_string(),
    }
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let root = workspace_root()?;
        let timeout_secs = env_or("SCENARIO_TIMEOUT", "90")
            .parse()
            .map_err(|_| "SCENARIO_TIMEOUT must be a number of seconds".to_string())?;
        let machine = env_or("QEMU_MACHINE", "q35");
        if machine != "q35" && machine != "pc" && !machine.starts_with("q35,") && !machine.starts_with("pc,") {
            eprintln!("capos-run: note: QEMU_MACHINE={} is neither q35 nor pc; passing it through", machine);
        }
        Ok(Settings {
            machine,
            mem: env_or("QEMU_MEM", "256M"),
            smp: env_or("QEMU_SMP", "1"),
            cpu: env_or("QEMU_CPU", "max"),
            extra: env_or("QEMU_EXTRA", "").split_whitespace().map(String::from).collect(),
            timeout_secs,
            out_dir: root.join("target").join("scenarios"),
            limine_dir: std::env::var("LIMINE_DIR").ok().filter(|s| !s.is_empty()).map(PathBuf::from),
            profile: env_or("KERNEL_PROFILE", "dev"),
            root,
        })
    }
}

/// The workspace root: the nearest ancestor of the current directory (or
/// of this crate's source) holding `limine.conf` and `Cargo.toml`.
pub fn workspace_root() -> Result<PathBuf, String> {
    let start = std::env::current_dir().map_err(|e| e.to_string())?;
    for dir in start.ancestors().chain(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors()) {
        if dir.join("limine.conf").is_file() && dir.join("Cargo.toml").is_file() && dir.join("kernel").is_dir() {
            return Ok(dir.to_path_buf());
        }
    }
    Err("cannot find the capOS workspace root (a directory with limine.conf, Cargo.toml and kernel/)".into())
}

fn usage() -> ExitCode {
    eprintln!("usage: capos-run test SCENARIO... | bench-check [FILE] | run | debug | list | {}", disk::COMMANDS.join(" | "));
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
                judged(qemu::run_all(&settings, &wanted, &wanted_storage))
            }
        }
        "bench-check" => judged(budget::bench_check(&settings, args.get(1).map(String::as_str))),
        "run" | "debug" => match qemu::interactive(&settings, cmd == "debug") {
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
