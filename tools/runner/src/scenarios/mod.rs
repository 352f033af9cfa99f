//! The scenarios `make test` runs, as data: [`all_in`] lists them in the
//! order `capos-run list` prints them, each defined in the file of its
//! family (kernel.rs, loader.rs, blk.rs, nic.rs, system.rs, userspace.rs,
//! services.rs, bench.rs); storage/ and cloud_disk.rs are the scenarios
//! that drive their own boots. Each boot (crate::boot::Boot) names what
//! it puts on the boot volume, the exit it expects, and lines that must
//! (or must not) appear.
//! Each such line names its source (crate::source::Pattern): `[name] text`
//! is process `name`'s, `{other} text` the firmware's or the loader's,
//! `{any} text` anyone's (for forbidden lines), any other text the kernel's.

mod bench;
mod blk;
pub mod cloud_disk;
mod kernel;
mod loader;
mod http;
mod netsvc;
mod nic;
mod services;
pub mod storage;
mod system;
mod userspace;

use crate::boot::Boot;
use crate::build::{build_all, Artifacts};
use crate::judge::{Expect, LogCheck, Tally};
use crate::machine::bus::null_disk;
use crate::machine::find_firmware;
use crate::settings::{input_path, read_text_input, Settings};
use crate::volumes::blk::{BlkDisk, DiskKind};
use crate::volumes::esp::{limine_conf, Content, Volume};
use crate::volumes::system::DefaultDisksUse;
use crate::volumes::{elfgen, standard_volume, BootVolume};
use std::path::PathBuf;

/// A boot that fails with `error` instead of running (see
/// [`Boot::input_error`]), or `b` itself.
fn failing_with(mut b: Boot, error: Option<String>) -> Boot {
    if error.is_some() {
        b.input_error = error;
    }
    b
}

pub struct Scenario {
    pub name: &'static str,
    pub description: &'static str,
    pub boots: Vec<Boot>,
    /// Tests capos-boot itself; skipped when LIMINE_DIR selects real Limine.
    pub capos_boot_only: bool,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn kernel_boot(name: &'static str, cmdline: &'static str, expect_exit: Expect, expect: &[&str]) -> Boot {
    kernel_boot_owned(name, cmdline.to_string(), expect_exit, expect)
}

fn kernel_boot_owned(name: &'static str, cmdline: String, expect_exit: Expect, expect: &[&str]) -> Boot {
    let mut e = strings(&["capos kernel starting"]);
    e.extend(strings(expect));
    Boot::new(name, BootVolume::Made(Box::new(move |art| standard_volume(art, &cmdline))), expect_exit)
        .expect(e)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC"]))
        .guest_verdicts(true)
}

fn qemu_args(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn user_boot(name: &'static str, manifest: &'static str, cmdline: &'static str, expect: &[&str]) -> Boot {
    let mut e = strings(&["userspace: ", "userspace idle: "]);
    e.extend(strings(expect));
    let e: Vec<&str> = e.iter().map(|s| s.as_str()).collect();
    kernel_boot(name, cmdline, Expect::Success, &e)
        .volume(BootVolume::Manifest(manifest, cmdline))
}

/// Scenarios that run with the machine to themselves when scenarios run in
/// parallel (JOBS > 1, parallel.rs): after the others, one at a time, each
/// with the reason. The rest judge by lines and generous per-boot time
/// limits, and hold under a machine shared with another QEMU.
pub const RUN_ALONE: &[(&str, &str)] = &[
    ("smp", "up to 8 vCPUs, each a host thread under TCG: beside another QEMU on 2 cores its boots come near their time limits, and its TLB-shootdown check wants the vCPUs to run at once"),
    ("process-lifetime-smp4", "4 vCPUs (host threads) killing and restarting a server 200 times against a time limit"),
    ("storage-services-smp4", "4 vCPUs (host threads) under 200 kills against a time limit"),
    ("bench-smp", "its figure is throughput in TSC cycles (wall time), which another QEMU beside it would change"),
];

/// Scenarios that take minutes (measured alone on the development host),
/// started first when scenarios run in parallel so that none of them is
/// left running by itself at the end of the batch. The two power-cut
/// scenarios run beside another QEMU: their cuts are SIGKILLs at
/// host-time delays after a workload line, so a slower guest moves where
/// within a step a cut lands (the log counts where they landed), and
/// every check holds wherever it lands.
pub const LONG: &[&str] = &["storage-writable-recovery", "storage-services-recovery", "storage-services-churn"];

/// Why `name` runs alone (RUN_ALONE), if it does.
pub fn runs_alone(name: &str) -> Option<&'static str> {
    RUN_ALONE.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

pub fn all() -> Vec<Scenario> {
    all_in(&crate::settings::workspace_root().unwrap_or_default())
}

pub fn all_in(root: &std::path::Path) -> Vec<Scenario> {
    vec![
        kernel::smoke(),
        kernel::smoke_matrix(),
        kernel::fault(),
        bench::bench_smp(),
        userspace::smp(),
        kernel::diag(root),
        kernel::prompt_robustness(),
        kernel::acpi(),
        kernel::pci(),
        kernel::msix(),
        blk::blk_virtio(),
        blk::blk_nvme(),
        blk::blk_scsi(),
        blk::blk_multi(),
        nic::net_nic(),
        netsvc::net_service(),
        http::net(),
        userspace::hello(),
        system::shell(root),
        system::default_system(),
        services::storage_services(),
        services::storage_services_smp4(),
        services::storage_services_hostile(),
        services::storage_services_churn(),
        userspace::ipc(),
        userspace::process_lifetime(),
        userspace::process_lifetime_smp4(),
        userspace::cap_faults(),
        bench::bench_ipc(),
        bench::bench_blk(),
        bench::bench_storage(),
        bench::bench_boot(),
        bench::bench_linux(),
        bench::bench_net(),
        loader::boot_menu(),
        loader::loader_errors(),
    ]
}

/// The boot scenarios, then the storage scenarios (storage/, which drive
/// their own boots), with one tally and one final line.
pub fn run_all(s: &Settings, scenarios: &[Scenario], storage: &[storage::StorageScenario]) -> Result<bool, String> {
    // Artifacts per cargo profile, built when a boot first needs them.
    let mut built: Vec<(String, Artifacts)> = Vec::new();
    let fw = find_firmware()?;
    let mut t = Tally::default();
    for sc in scenarios {
        if s.limine_dir.is_some() && sc.capos_boot_only {
            println!("== {}: skipped, it tests capos-boot itself and LIMINE_DIR is set", sc.name);
            continue;
        }
        let dir = s.out_dir.join(sc.name);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        println!("== scenario {}: {}", sc.name, sc.description);
        for boot in &sc.boots {
            let label = format!("{}/{}", sc.name, boot.name);
            if boot.figures.not_budgeted && std::env::var_os(crate::judge::figures::FIGURES_ENV).is_some() {
                println!("== {label}: left out: its figures are not budgeted (a comparison, or wall time), and make bench-check holds capOS's to their budgets");
                continue;
            }
            let bs = Settings { profile: boot.profile.clone().unwrap_or_else(|| s.profile.clone()), ..s.clone() };
            let art = if let BootVolume::Linux(_) = boot.volume {
                // Nothing of capOS is booted.
                Artifacts { kernel: PathBuf::new(), kernel_symbols: PathBuf::new(), loader: PathBuf::new() }
            } else {
                match built.iter().position(|(p, _)| *p == bs.profile) {
                    Some(i) => built[i].1.clone(),
                    None => {
                        let a = build_all(&bs)?;
                        built.push((bs.profile.clone(), a.clone()));
                        a
                    }
                }
            };
            crate::boot::run(&bs, &dir, &label, boot, &art, &fw, &mut t);
        }
    }
    for sc in storage {
        let art = match built.iter().position(|(p, _)| *p == s.profile) {
            Some(i) => built[i].1.clone(),
            None => {
                let a = build_all(s)?;
                built.push((s.profile.clone(), a.clone()));
                a
            }
        };
        storage::run_scenario(s, &art, &fw, sc, &mut t);
    }
    println!("{} passed, {} failed", t.passed, t.failed);
    Ok(t.failed == 0 && t.passed > 0)
}
