//! The benchmarks (not tests): executed-instruction figures beside
//! Linux's, and SMP throughput.

use super::system::DEFAULT_SYSTEM_EXPECTS;
use super::*;
use crate::boot::HostSide;
use std::time::{Duration, Instant};

/// The cargo profile of the bench-* scenarios: BENCH_PROFILE, default
/// bench-opt (Cargo.toml).
pub fn bench_profile() -> String {
    std::env::var("BENCH_PROFILE").ok().map(|p| p.trim().to_string()).filter(|p| !p.is_empty()).unwrap_or_else(|| "bench-opt".into())
}

/// `-icount shift=0` for the benchmark boots (see docs/benchmarks.md for
/// why and what it costs); BENCH_ICOUNT=off leaves it out.
pub fn bench_icount_args() -> Vec<String> {
    match std::env::var("BENCH_ICOUNT").ok().as_deref().map(str::trim) {
        Some("off") => Vec::new(),
        _ => qemu_args(&["-icount", "shift=0"]),
    }
}

/// Pairs of (capOS label, Linux label) printed side by side.
pub const IPC_VS_LINUX: &[(&str, &str)] = &[("kernel null call", "getppid"), ("endpoint null round trip", "pipe round trip")];

pub const STORAGE_VS_LINUX: &[(&str, &str)] = &[
    ("File.read 4 KiB", "O_DIRECT read 4 KiB"),
    ("File.read 128 KiB", "O_DIRECT read 128 KiB"),
    ("FAT File.read 4 KiB", "O_DIRECT read 4 KiB"),
    ("FAT File.read 128 KiB", "O_DIRECT read 128 KiB"),
    ("fs-service File.read 4 KiB", "O_DIRECT read 4 KiB"),
    ("fs-service File.read 128 KiB", "O_DIRECT read 128 KiB"),
];

/// bench-storage's figures beside the raw NVMe driver's (bench-blk,
/// polled like a storage call in a syscall, its wait excluded).
pub const STORAGE_VS_BLK: &[(&str, &str, &str)] = &[
    ("blk", "File.read 4 KiB", "nvme0n1 raw read 4 KiB qd1 polled"),
    ("blk", "File.read 128 KiB", "nvme0n1 raw read 128 KiB qd1 polled"),
];

/// make bench-smp's round trips beside Linux's pinned pipe round trips
/// (stored by make bench-linux's `linux-smp` boot).
const SMP_VS_LINUX: &[(&str, &str, &str)] = &[
    ("linux-smp", "same-CPU endpoint round trip", "pipe round trip pinned 1 CPU"),
    ("linux-smp", "cross-CPU endpoint round trip", "pipe round trip pinned 2 CPUs"),
];

pub const BLK_VS_LINUX: &[(&str, &str)] = &[
    ("nvme0n1 trait read 4 KiB qd1 irq", "O_DIRECT read 4 KiB"),
    ("nvme0n1 trait read 128 KiB qd1 irq", "O_DIRECT read 128 KiB"),
];

/// A rate in one of `make bench-smp`'s throughput boots: calls (round
/// trips) per billion TSC cycles, summed over the two pairs (they run at
/// once) on each of `machines` machines (a twin boot's transcript holds
/// both machines' lines), from each pair's `N ... in C cycles` line:
/// capOS's clients' `[PASS] stress: ` lines, or Linux's `bench: pipe pair
/// K: ` lines (tools/bench-linux/bench.c).
fn summed_rate(lines: &[String], machines: usize, linux: bool) -> Result<f64, String> {
    let mut total = 0.0;
    for (client, pair) in [("ping1", "bench: pipe pair 1: "), ("ping2", "bench: pipe pair 2: ")] {
        let results: Vec<&str> = if linux {
            lines.iter().filter_map(|l| l.trim_end().strip_prefix(pair)).collect()
        } else {
            crate::source::messages_of(lines, client).filter_map(|m| m.strip_prefix("[PASS] stress: ")).collect()
        };
        let client = if linux { pair.trim_end_matches(": ") } else { client };
        if results.len() != machines {
            return Err(format!("{client} printed {} stress results where {machines} machine{} ran it", results.len(), if machines == 1 { "" } else { "s" }));
        }
        for r in results {
            let nums: Vec<f64> = r.split_whitespace().filter_map(|w| w.parse().ok()).collect();
            match nums.as_slice() {
                [n, cycles] if *cycles > 0.0 => total += n * 1e9 / cycles,
                _ => return Err(format!("cannot read '{r}'")),
            }
        }
    }
    Ok(total)
}

/// How many times `make bench-smp` boots each throughput configuration,
/// alternating (the pairs on 1 CPU, on 2, on two 1-CPU machines at once;
/// again). The host's other work only ever slows a boot down (on the
/// shared 2-core development host a whole boot's rate moves by 2x from
/// one minute to the next), so the best rate of each configuration is the
/// one nearest what the guest does undisturbed, and the ratios are taken
/// between bests.
const SMP_ROUNDS: usize = 3;

/// The throughput configurations, in the order each round boots them.
const SMP_CONFIGS: usize = 5;
const ONE_CPU: usize = 0;
const TWO_CPUS: usize = 1;
const TWO_MACHINES: usize = 2;
/// Linux's pipe pairs (tools/bench-linux/bench.c, `bench pairs`).
const LINUX_ONE_CPU: usize = 3;
const LINUX_TWO_CPUS: usize = 4;

/// Every throughput boot's rate so far: [configuration][round].
type Rates = [[Option<f64>; SMP_ROUNDS]; SMP_CONFIGS];
static SMP_RATES: std::sync::Mutex<Rates> = std::sync::Mutex::new([[None; SMP_ROUNDS]; SMP_CONFIGS]);

fn best(rates: &[Option<f64>]) -> Option<f64> {
    rates.iter().flatten().copied().reduce(f64::max)
}

/// Each round's own ratio of configuration `num` to `den` (boots minutes
/// apart at most), and their median: beside the ratio of the bests, which
/// a slow minute during every boot of one configuration skews.
fn round_ratios(rates: &Rates, num: usize, den: usize) -> String {
    let mut v: Vec<f64> = (0..SMP_ROUNDS).filter_map(|r| Some(rates[num][r]? / rates[den][r]?)).collect();
    let list: Vec<String> = v.iter().map(|r| format!("{r:.2}")).collect();
    v.sort_by(f64::total_cmp);
    let median = match v.len() {
        0 => return String::new(),
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    };
    format!("; each round's own: {} (median {median:.2})", list.join(", "))
}

/// One throughput boot's line (configuration `CONFIG`, round `ROUND`
/// from 0): its rate; on 2 CPUs also the best of each configuration so
/// far and the 2-CPU / 1-CPU ratio; on two machines the ceiling (what
/// the host gives the same work on two machines that share nothing but
/// the host) and the share of it the 2-CPU kernel reaches. The last
/// round's lines carry the figures.
fn rate_line<const CONFIG: usize, const ROUND: usize>(lines: &[String]) -> Result<String, String> {
    let machines = if CONFIG == TWO_MACHINES { 2 } else { 1 };
    let t = summed_rate(lines, machines, CONFIG >= LINUX_ONE_CPU)?;
    let mut rates = SMP_RATES.lock().unwrap();
    if CONFIG == ONE_CPU && ROUND == 0 {
        // A new run of the scenario.
        *rates = [[None; SMP_ROUNDS]; SMP_CONFIGS];
    }
    rates[CONFIG][ROUND] = Some(t);
    let what = ["2 pairs on 1 CPU", "2 pairs on 2 CPUs", "2 pairs on each of two 1-CPU machines at once", "Linux, 2 pipe pairs on 1 CPU", "Linux, 2 pipe pairs on 2 CPUs"][CONFIG];
    let unit = if CONFIG >= LINUX_ONE_CPU { "round trips" } else { "calls" };
    let head = format!("{what}, round {} of {SMP_ROUNDS}: {t:.0} {unit} per 10^9 TSC cycles", ROUND + 1);
    if CONFIG == ONE_CPU || CONFIG == LINUX_ONE_CPU {
        return Ok(head);
    }
    if CONFIG == LINUX_TWO_CPUS {
        let one = best(&rates[LINUX_ONE_CPU]).ok_or("Linux's 1-CPU boots gave no figure")?;
        let two = best(&rates[LINUX_TWO_CPUS]).unwrap_or(t);
        let rounds = rates[CONFIG].iter().flatten().count();
        return Ok(format!("{head}; best of {rounds}: {one:.0} on 1 CPU, {two:.0} on 2, Linux's 2-CPU / 1-CPU ratio {:.2}, beside capOS's above{}", two / one, round_ratios(&rates, LINUX_TWO_CPUS, LINUX_ONE_CPU)));
    }
    let one = best(&rates[ONE_CPU]).ok_or("the 1-CPU boots gave no figure")?;
    let two = best(&rates[TWO_CPUS]).ok_or("the 2-CPU boots gave no figure")?;
    let rounds = rates[CONFIG].iter().flatten().count();
    if CONFIG == TWO_CPUS {
        return Ok(format!("{head}; best of {rounds}: {one:.0} on 1 CPU, {two:.0} on 2, 2-CPU / 1-CPU ratio {:.2}{}", two / one, round_ratios(&rates, TWO_CPUS, ONE_CPU)));
    }
    let apart = best(&rates[TWO_MACHINES]).unwrap_or(t);
    Ok(format!(
        "{head}; best of {rounds}: {apart:.0}, {:.2} times one 1-CPU machine: the ceiling this host gives the pairs' ratio; the 2-CPU kernel's ratio {:.2} is {:.0}% of it{}",
        apart / one,
        two / one,
        100.0 * two / apart,
        round_ratios(&rates, TWO_MACHINES, ONE_CPU)
    ))
}

/// The throughput boots' names and checks by round, in
/// [`SMP_CONFIGS`] order.
const SMP_RATE_BOOTS: [[&str; SMP_CONFIGS]; SMP_ROUNDS] = [
    ["1cpu-1", "2cpu-1", "apart-1", "linux-1cpu-1", "linux-2cpu-1"],
    ["1cpu-2", "2cpu-2", "apart-2", "linux-1cpu-2", "linux-2cpu-2"],
    ["1cpu-3", "2cpu-3", "apart-3", "linux-1cpu-3", "linux-2cpu-3"],
];
const SMP_RATE_CHECKS: [[LogCheck; SMP_CONFIGS]; SMP_ROUNDS] = [
    [rate_line::<ONE_CPU, 0>, rate_line::<TWO_CPUS, 0>, rate_line::<TWO_MACHINES, 0>, rate_line::<LINUX_ONE_CPU, 0>, rate_line::<LINUX_TWO_CPUS, 0>],
    [rate_line::<ONE_CPU, 1>, rate_line::<TWO_CPUS, 1>, rate_line::<TWO_MACHINES, 1>, rate_line::<LINUX_ONE_CPU, 1>, rate_line::<LINUX_TWO_CPUS, 1>],
    [rate_line::<ONE_CPU, 2>, rate_line::<TWO_CPUS, 2>, rate_line::<TWO_MACHINES, 2>, rate_line::<LINUX_ONE_CPU, 2>, rate_line::<LINUX_TWO_CPUS, 2>],
];

/// `make bench-smp` (a benchmark): the round trips' instructions (icount);
/// then, SMP_ROUNDS times, two checked ping-pong pairs on 1 CPU, on 2 and
/// on two 1-CPU machines at once (the ceiling), and Linux's two pipe pairs
/// on 1 CPU and on 2: throughput (wall time, TSC cycles: TCG runs a thread
/// per vCPU) and the ratios.
fn bench_smp_boots() -> Vec<Boot> {
    // Executed instructions of a round trip within one CPU and across
    // two (demos/bench-smp-icount.manifest pins the processes): 2 CPUs
    // in one QEMU thread, the plugin counting both.
    let icount = user_boot("icount", "demos/bench-smp-icount.manifest", "exit_when_idle", &[
        "pinned to cpu 1",
        "[ping] icount: same-CPU endpoint round trip",
        "[ping] icount: cross-CPU endpoint round trip",
        "[ping] [PASS] round-trips",
    ])
        .qemu_args(bench_icount_args())
        .smp("2")
        .timeout(1200)
        .forbid(vec!["is not online".to_string()])
        .icount_plugin()
        .profile(bench_profile())
        .stored_pairs(SMP_VS_LINUX.to_vec());
    // Two checked ping-pong pairs on 1 CPU, on 2, and on two 1-CPU
    // machines at once (a twin boot), SMP_ROUNDS times over.
    let expect = ["[ping1] [PASS] stress", "[ping2] [PASS] stress"];
    let mut rates = Vec::new();
    for (names, checks) in SMP_RATE_BOOTS.iter().zip(&SMP_RATE_CHECKS) {
        for (config, (name, check)) in names.iter().zip(checks).enumerate() {
            // Wall time: reported, never budgeted, so make bench-check
            // leaves these out.
            let cpus = if config == TWO_CPUS || config == LINUX_TWO_CPUS { "2" } else { "1" };
            let boot = if config >= LINUX_ONE_CPU {
                Boot::new(name, BootVolume::Linux("capos.bench=pairs"), Expect::Success)
                    .machine("q35")
                    .expect(strings(&["{other} bench: done"]))
                    .forbid(strings(&["{other} FAILED", "{other} Kernel panic"]))
            } else {
                user_boot(name, "demos/bench-smp.manifest", "exit_when_idle", &expect).profile(bench_profile())
            };
            let boot = boot.smp(cpus).timeout(600).checks(vec![("pair throughput", *check)]).not_budgeted();
            rates.push(if config == TWO_MACHINES { boot.twin() } else { boot });
        }
    }
    core::iter::once(icount).chain(rates).collect()
}

/// `make bench-boot`: what `make run` boots (the default system on fresh
/// disks, as a first `make run` makes them), counted from the kernel's
/// first instruction (kernel/src/main.rs) to the first process's first
/// entry to user mode (kernel/src/arch/x86_64/syscall.rs), to the shell's
/// first prompt (demos/shell) and to the first time the kernel finds
/// nothing to run (kernel/src/proc/mod.rs: the services serving, the shell
/// waiting for a line). Then `exit` and `halt`. The prompt comes while the
/// storage services may still be starting, at a point that moves with the
/// host (docs/benchmarks.md); the first idle does not.
fn boot_icount() -> Boot {
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&["[shell] bye", "halting"]);
    kernel_boot("icount", "", Expect::Success, &expect)
        .machine("q35")
        .smp("1")
        .qemu_args(bench_icount_args())
        .icount_plugin()
        .profile(bench_profile())
        .milestones(vec!["kernel entry", "first user process", "shell prompt", "first idle"])
        .script(vec![("capos$ ".into(), b"exit\r".to_vec()), ("capos> ".into(), b"halt\r".to_vec())])
        .guest_verdicts(false)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "restarted as"]))
        .default_system()
        .default_disks(DefaultDisksUse::Fresh)
        .timeout(600)
}

pub(super) fn bench_smp() -> Scenario {
    Scenario {
        name: "bench-smp",
        description: "benchmark (not a test): round trips within a CPU and across two (icount); two checked ping-pong pairs on 1 CPU, on 2, and on two 1-CPU machines at once (what the host gives two CPUs doing that work): throughput, the 2-CPU / 1-CPU ratio and that ceiling",
        capos_boot_only: false,
        boots: bench_smp_boots(),
    }
}

pub(super) fn bench_ipc() -> Scenario {
    Scenario {
        name: "bench-ipc",
        description: "benchmark (not a test): executed instructions per kernel null call, endpoint round trip and echo (icount plugin)",
        capos_boot_only: false,
        boots: vec![user_boot("icount", "demos/bench-ipc.manifest", "exit_when_idle", &["[ping] icount: kernel null call", "[ping] icount: endpoint null round trip", "[ping] icount: echo 64 B", "[ping] icount: echo 4 KiB", "[ping] icount: echo 64 KiB", "[ping] icount: kernel echo 64 KiB"])
            // What the guest must do is the icount protocol: at least
            // one `icount: <label> ops=<n>` line, each followed by a
            // counted region (report_icount checks the pairing).
            .qemu_args(bench_icount_args())
            .timeout(1200)
            .smp("1")
            .icount_plugin()
            .profile(bench_profile())
            .linux_pairs(IPC_VS_LINUX.to_vec())],
    }
}

pub(super) fn bench_blk() -> Scenario {
    Scenario {
        name: "bench-blk",
        description: "benchmark (not a test): executed instructions per NVMe, virtio-blk and virtio-scsi read, trait and raw, irq and polled (icount plugin)",
        capos_boot_only: false,
        boots: vec![kernel_boot("icount", "bench=blk", Expect::Success, &[
            "icount: nvme0n1 trait read 4 KiB qd1 irq",
            "icount: nvme0n1 raw read 4 KiB qd1 irq",
            "icount: vblk0 trait read 4 KiB qd1 polled",
            "icount: sda trait read 4 KiB qd1 polled",
            "bench: done",
        ])
            .machine("q35")
            .smp("1")
            .qemu_args([bench_icount_args(), null_disk("nvme0", "nvme"), null_disk("vblk0", "virtio"), null_disk("sda", "scsi")].concat())
            .guest_verdicts(false)
            .timeout(1200)
            .icount_plugin()
            .profile(bench_profile())
            .linux_pairs(BLK_VS_LINUX.to_vec())
            .store_figures("blk")],
    }
}

pub(super) fn bench_storage() -> Scenario {
    Scenario {
        name: "bench-storage",
        description: "benchmark (not a test): executed instructions per File.read/write (4 KiB, 128 KiB) on CAPOSWF1 over NVMe, through the kernel's capabilities and through storage-fs-service, and per Store put/get through the kernel's and through store-service (icount plugin)",
        capos_boot_only: false,
        boots: vec![user_boot("icount", "demos/bench-storage.manifest", "exit_when_idle", &[
            "storage: mounted bench",
            "[bench] icount: File.write 4 KiB",
            "[bench] icount: File.read 128 KiB",
            "[bench] icount: Store.get 100 B",
            "[bench] icount: FAT File.read 128 KiB",
            "[bench] icount: fs-service File.read 128 KiB",
            "[bench] icount: store-service Store.get 100 B",
            "[bench] bench: done",
            "process bench (pid 3) exited with status 0",
        ])
            .machine("q35")
            .smp("1")
            .qemu_args([
                bench_icount_args(),
                strings(&["-drive", "file={disk:bench},if=none,id=bench,format=raw", "-device", "nvme,serial=capos-bench,drive=bench"]),
                strings(&["-drive", "file={disk:fat},if=none,id=fat,format=raw", "-device", "nvme,serial=capos-fat,drive=fat"]),
                strings(&["-drive", "file={disk:svc},if=none,id=svc,format=raw", "-device", "nvme,serial=capos-svc,drive=svc"]),
                strings(&["-drive", "file={disk:svckeys},if=none,id=svckeys,format=raw", "-device", "nvme,serial=capos-svckeys,drive=svckeys"]),
            ]
            .concat())
            .store_images(vec![
                ("bench", strings(&["--colocated", "--store-blocks", "4096", "--blocks", "65536"])),
                ("svc", strings(&["--writable", "--blocks", "65536"])),
                ("svckeys", strings(&["--store", "--blocks", "4096"])),
            ])
            .script_images(vec![("fat", "tools/mkstorage-fat-read-image", vec![("FAT_BIG_MIB", "4")])])
            .guest_verdicts(true)
            .timeout(1800)
            .icount_plugin()
            .profile(bench_profile())
            .linux_pairs(STORAGE_VS_LINUX.to_vec())
            .stored_pairs(STORAGE_VS_BLK.to_vec())],
    }
}

pub(super) fn bench_boot() -> Scenario {
    Scenario {
        name: "bench-boot",
        description: "benchmark (not a test): executed instructions from kernel entry to the first user process, to the default system's shell prompt and to its first idle (icount plugin milestones)",
        capos_boot_only: false,
        boots: vec![boot_icount()],
    }
}

pub(super) fn bench_linux() -> Scenario {
    Scenario {
        name: "bench-linux",
        description: "benchmark (not a test): Debian's Linux 6.1 in the same QEMU with the same counter: getppid, pipe round trip, O_DIRECT NVMe reads; then on 2 CPUs the pipe round trip pinned to one CPU and across two",
        capos_boot_only: false,
        boots: vec![Boot::new("linux", BootVolume::Linux(""), Expect::Success)
            .machine("q35")
            .smp("1")
            .qemu_args([bench_icount_args(), null_disk("nvme0", "nvme")].concat())
            .timeout(1200)
            .icount_plugin()
            .expect(strings(&["{other} bench-linux: nvme0n1 I/O scheduler: [none]", "{other} bench: done"]))
            .forbid(strings(&["{other} FAILED", "{other} Kernel panic"])),
            // The pipe round trip pinned to one CPU and across two, for
            // make bench-smp (SMP_VS_LINUX): 2 vCPUs in one QEMU thread,
            // as bench-smp's icount boot, but without -icount: Linux 6.1
            // with 2 vCPUs under -icount shift=0 made no progress past
            // its EFI stub in 7 minutes (it boots in 3 s without), so a
            // timer tick landing in a region moves its figure a little
            // (a reference beside capOS's, not budgeted).
            Boot::new("linux-smp", BootVolume::Linux("capos.bench=smp"), Expect::Success)
                .machine("q35")
                .smp("2")
                .timeout(600)
                .icount_plugin()
                .expect(strings(&["{other} -amd64, 2 CPU", "{other} bench: done"]))
                .forbid(strings(&["{other} FAILED", "{other} Kernel panic"]))
                .store_figures("linux-smp")
                .not_budgeted()],
    }
}

/// `make bench-net`'s two regions: (label, file, requests). Each request
/// is a new connection (`Connection: close`, as busybox httpd answers
/// anyway), made from the host through the boot's forward to port 80.
const NET_REGIONS: &[(&str, &str, usize)] = &[("http GET 1 MiB", "big.bin", 4), ("http GET 100 B", "small.bin", 50)];

/// capOS's figures beside the Linux boot's (stored in
/// target/bench/linux-net.txt by the scenario's first boot).
const NET_VS_LINUX: &[(&str, &str, &str)] = &[("linux-net", "http GET 1 MiB", "http GET 1 MiB"), ("linux-net", "http GET 100 B", "http GET 100 B")];

/// What the runner types to open and close the regions, in order, and the
/// line of its own ([`crate::boot::HostEnv::say`]) each waits for: the
/// same for both guests (capOS's shell `icount` command, bench.c `marks`).
fn net_marks() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (label, _, n) in NET_REGIONS {
        out.push((format!("{}bench: {label}", crate::boot::RUNNER_PREFIX), format!("icount {label} {n}\r").into_bytes()));
        out.push((format!("{}bench: stop", crate::boot::RUNNER_PREFIX), b"icount stop\r".to_vec()));
    }
    out.push((crate::boot::HOST_SIDE_DONE.to_string(), b"exit\r".to_vec()));
    out
}

/// The host side of either guest: the files fetched once and checked
/// (the warm-up: ARP, the server's first run through its code), then for
/// each region: tell the script to open it, wait for the guest's `icount:`
/// line and its prompt after START, make the requests (every body checked
/// by sha256), give the guest a moment to finish with the connections,
/// tell the script to close the region and wait for the prompt after
/// STOP.
fn net_requests(env: &crate::boot::HostEnv, prompt: &str) -> Vec<(String, Result<String, String>)> {
    use super::http::{get, hex, wait_for_server};
    let port = env.ports[0];
    let files: Vec<(String, String)> = crate::build::linux::WWW.iter().map(|f| (format!("/{}", f.name), hex(&f.bytes()))).collect();
    let fetch = |path: &str| -> Result<(), String> {
        let want = files.iter().find(|(p, _)| p == path).map(|(_, h)| h.clone()).ok_or_else(|| format!("{path} is no bench file"))?;
        let r = get(port, path, "")?;
        let got = hex(&r.body);
        match (r.status, got == want) {
            (200, true) => Ok(()),
            (200, false) => Err(format!("GET {path}: {} bytes with sha256 {}, not the file's {}", r.body.len(), &got[..16], &want[..16])),
            (s, _) => Err(format!("GET {path}: status {s}")),
        }
    };
    let mut out = Vec::new();
    let up = wait_for_server(port, &files[1].0);
    let mut ready = up.is_ok();
    out.push(("the web server answers".to_string(), up));
    if ready {
        let warm = files.iter().try_for_each(|(p, _)| fetch(p)).map(|()| "each file fetched once, sha256 right".to_string());
        ready = warm.is_ok();
        out.push(("warm-up".to_string(), warm));
    }
    // Every region is opened and closed even after a failure (with no
    // requests then), so the script runs to its end and the boot ends
    // at once instead of at its time limit; the failure is the verdict.
    let step = Duration::from_secs(300);
    for (label, file, n) in NET_REGIONS {
        let region = (|| -> Result<String, String> {
            env.say(&format!("bench: {label}"));
            env.wait_for(&format!("icount: {label} ops={n}"), step)?;
            env.wait_for(prompt, step)?;
            let t = Instant::now();
            let requests = if ready { (0..*n).try_for_each(|_| fetch(&format!("/{file}"))) } else { Err("not made: the server was not ready".to_string()) };
            let took = t.elapsed();
            // The last response is read; the guest still answers its FIN.
            std::thread::sleep(Duration::from_millis(300));
            env.say("bench: stop");
            env.wait_for(prompt, step)?;
            requests.map(|()| format!("{n} GETs of /{file}, every sha256 right, in {} ms", took.as_millis()))
        })();
        ready &= region.is_ok();
        out.push((format!("region '{label}'"), region));
    }
    out
}

/// `make bench-net`: busybox httpd on Debian's Linux, then capOS's default
/// system (net-service and http-files over /data), each serving the same
/// files on QEMU's user network (`restrict=on`, one forward from
/// 127.0.0.1), counted from the first request of a region to the guest's
/// STOP; capOS's figures beside Linux's.
fn bench_net_boots() -> Vec<Boot> {
    let http = |prompt: &'static str| -> HostSide {
        HostSide {
            trigger: if prompt == "bench> " { "bench-linux: httpd serving" } else { NET_READY },
            forwards: vec![("tcp", 80)],
            run: std::sync::Arc::new(move |env: &crate::boot::HostEnv| net_requests(env, prompt)),
        }
    };
    let linux = Boot::new("linux", BootVolume::Linux("capos.bench=net"), Expect::Success)
        .machine("q35")
        .smp("1")
        .qemu_args([bench_icount_args(), nic::nic_args_forwarding("")].concat())
        .timeout(1200)
        .icount_plugin()
        .script(net_marks())
        .host_side(http("bench> "))
        .expect(strings(&["{other} bench-linux: httpd serving /www on 10.0.2.15:80", "{other} bench: done"]))
        .forbid(strings(&["{other} FAILED", "{other} Kernel panic"]))
        .store_figures("linux-net")
        .not_budgeted();
    let mut script: Vec<(String, Vec<u8>)> = crate::build::linux::WWW
        .iter()
        .map(|f| format!("fill /data/{} {} {}", f.name, f.size, f.seed))
        .chain(["sync".to_string(), "net".to_string()])
        .map(|l| ("capos$ ".to_string(), format!("{l}\r").into_bytes()))
        .collect();
    script.extend(net_marks());
    script.push(("capos> ".into(), b"halt\r".to_vec()));
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&["[web] http-files: serving the 'root' directory read-only on port 80", NET_READY, "[shell] bye", "halting"]);
    let capos = kernel_boot("icount", "", Expect::Success, &expect)
        .machine("q35")
        .smp("1")
        .qemu_args([bench_icount_args(), nic::nic_args_forwarding("")].concat())
        .icount_plugin()
        .profile(bench_profile())
        .script(script)
        .host_side(http("capos$ "))
        .guest_verdicts(false)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "restarted as"]))
        .default_system()
        .default_disks(DefaultDisksUse::Fresh)
        .timeout(1200)
        .stored_pairs(NET_VS_LINUX.to_vec());
    vec![linux, capos]
}

/// The shell's `net` answer: the card is up (the host side then waits
/// for the listener itself).
const NET_READY: &str = "[shell] mac 52:54:00:12:34:56, link up";

pub(super) fn bench_net() -> Scenario {
    Scenario {
        name: "bench-net",
        description: "benchmark (not a test): executed instructions per HTTP GET of a 1 MiB and a 100 B file from the host, busybox httpd on Linux beside capOS's http-files through net-service (icount plugin)",
        capos_boot_only: false,
        boots: bench_net_boots(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(cycles: [u64; 2]) -> Vec<String> {
        vec![
            crate::source::KERNEL_FIRST_LINE.to_string(),
            format!("[ping1] [PASS] stress: 1000 calls answered right in {} cycles", cycles[0]),
            format!("[ping2] [PASS] stress: 1000 calls answered right in {} cycles", cycles[1]),
        ]
    }

    /// The ratio is taken between the best rate of each configuration over
    /// the rounds, whatever round it came in; a new run starts afresh; a
    /// boot without both pairs' lines gives no figure.
    #[test]
    fn the_ratio_is_between_the_best_rounds() {
        // Rates per 10^9 cycles: 1000 calls in 10^8 cycles is 10,000.
        let [one0, two0, apart0, linux_one0, linux_two0] = SMP_RATE_CHECKS[0];
        let [one1, two1, _, _, _] = SMP_RATE_CHECKS[1];
        let [one2, two2, apart2, _, _] = SMP_RATE_CHECKS[2];
        assert!(one0(&pairs([100_000_000, 100_000_000])).unwrap().contains("20000 calls"));
        let l = two0(&pairs([50_000_000, 100_000_000])).unwrap();
        assert!(l.ends_with("best of 1: 20000 on 1 CPU, 30000 on 2, 2-CPU / 1-CPU ratio 1.50; each round's own: 1.50 (median 1.50)"), "{l}");
        // A slow 1-CPU round does not raise the ratio; a slow 2-CPU round
        // does not lower it.
        one1(&pairs([200_000_000, 200_000_000])).unwrap();
        let l = two1(&pairs([200_000_000, 200_000_000])).unwrap();
        assert!(l.ends_with("best of 2: 20000 on 1 CPU, 30000 on 2, 2-CPU / 1-CPU ratio 1.50; each round's own: 1.50, 1.00 (median 1.25)"), "{l}");
        // A faster 1-CPU round lowers it.
        one2(&pairs([80_000_000, 80_000_000])).unwrap();
        let l = two2(&pairs([50_000_000, 50_000_000])).unwrap();
        assert!(l.ends_with("best of 3: 25000 on 1 CPU, 40000 on 2, 2-CPU / 1-CPU ratio 1.60; each round's own: 1.50, 1.00, 1.60 (median 1.50)"), "{l}");
        // A new run forgets the last one's rounds.
        one0(&pairs([100_000_000, 100_000_000])).unwrap();
        let l = two0(&pairs([100_000_000, 100_000_000])).unwrap();
        assert!(l.ends_with("best of 1: 20000 on 1 CPU, 20000 on 2, 2-CPU / 1-CPU ratio 1.00; each round's own: 1.00 (median 1.00)"), "{l}");
        assert!(two1(&pairs([100_000_000, 100_000_000])[..2]).is_err());
        // Two machines at once: both transcripts' four clients summed,
        // beside the best 1-CPU and 2-CPU rates, as the ceiling of the
        // ratio and the share of it the 2-CPU kernel reaches.
        let both = |a: [u64; 2], b: [u64; 2]| -> Vec<String> {
            let mut l = pairs(a);
            l.push(crate::boot::TWIN_FOLLOWS.to_string());
            l.extend(pairs(b));
            l
        };
        let l = apart0(&both([100_000_000, 100_000_000], [125_000_000, 125_000_000])).unwrap();
        assert!(l.ends_with("best of 1: 36000, 1.80 times one 1-CPU machine: the ceiling this host gives the pairs' ratio; the 2-CPU kernel's ratio 1.00 is 56% of it; each round's own: 1.80 (median 1.80)"), "{l}");
        let l = apart2(&both([100_000_000, 100_000_000], [100_000_000, 100_000_000])).unwrap();
        assert!(l.contains("best of 2: 40000, 2.00 times"), "{l}");
        // A twin boot needs a result of each client from each machine:
        // one machine's lines alone are no ceiling.
        let e = apart2(&pairs([100_000_000, 100_000_000])).unwrap_err();
        assert!(e.contains("ping1 printed 1 stress results where 2 machines ran it"), "{e}");
        // Nor does a 1-machine configuration take two machines' lines.
        assert!(one1(&both([100_000_000, 100_000_000], [100_000_000, 100_000_000])).is_err());
        // Linux's pipe pairs: their own lines, their own ratio.
        let linux = |c: [u64; 2]| -> Vec<String> {
            vec![format!("bench: pipe pair 1: 1000 round trips in {} cycles", c[0]), format!("bench: pipe pair 2: 1000 round trips in {} cycles\r", c[1])]
        };
        assert!(linux_one0(&linux([100_000_000, 100_000_000])).unwrap().contains("20000 round trips"));
        let l = linux_two0(&linux([50_000_000, 50_000_000])).unwrap();
        assert!(l.ends_with("best of 1: 20000 on 1 CPU, 40000 on 2, Linux's 2-CPU / 1-CPU ratio 2.00, beside capOS's above; each round's own: 2.00 (median 2.00)"), "{l}");
        assert!(linux_two0(&linux([50_000_000, 50_000_000])[..1]).unwrap_err().contains("bench: pipe pair 2 printed 0"));
        // capOS's lines are not Linux's.
        assert!(linux_one0(&pairs([100_000_000, 100_000_000])).is_err());
    }
}
