//! The userspace storage services (storage-fs-service, store-service):
//! under kills, on several CPUs, against hostile clients, under churn.

use super::*;

/// `make run-storage-services`: demos/storage-services.manifest on fresh
/// default disks (services-check `write` + `chaos`), then
/// demos/storage-services-verify.manifest on the same disks, then
/// demos/storage-services-fat.manifest (the FAT disk served by
/// storage-fs-service, walked and refused every mutation).
fn storage_services_boots() -> Vec<Boot> {
    let forbid = strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "{any} [FAIL]"]);
    vec![
        user_boot("write-and-kill", "demos/storage-services.manifest", "exit_when_idle", &[
            "[fs] CAPOSWF1 generation ",
            "[store] CAPOSST1 mounted; serving 'store'",
            "[check] [PASS] files-and-keys-round-trip",
            "[check] [PASS] subtree-cannot-escape",
            "[check] [PASS] read-only-refused",
            "[check] [PASS] malformed-calls-refused",
            "restarted as",
            "re-bound",
            "[chaos] [PASS] restarts-free-every-frame",
            "[check] [PASS] killed-service-restarts",
            "[check] [PASS] nothing-synced-lost",
        ])
            .guest_verdicts(true)
            .forbid(forbid.clone())
            .default_disks(DefaultDisksUse::Fresh)
            .timeout(400),
        user_boot("after-reboot", "demos/storage-services-verify.manifest", "exit_when_idle", &["[check] [PASS] persisted-across-reboot"])
            .guest_verdicts(true)
            .forbid(forbid.clone())
            .default_disks(DefaultDisksUse::Reuse)
            .timeout(120),
        // Group commit: four clients at once on 2 CPUs; their puts and
        // deletes arrive together and share commits.
        user_boot("group-commit", "demos/storage-services-group.manifest", "exit_when_idle", &[
            "[store] CAPOSST1 mounted; serving 'store'",
            "[b1] [PASS] burst-b1",
            "[b2] [PASS] burst-b2",
            "[b3] [PASS] burst-b3",
            "[b4] [PASS] burst-b4",
            "[store] group commit: ",
        ])
            .smp("2")
            .guest_verdicts(true)
            .forbid(forbid.clone())
            .default_disks(DefaultDisksUse::Reuse)
            .timeout(120),
        // Another format through the same service: the default FAT disk.
        user_boot("fat-served", "demos/storage-services-fat.manifest", "exit_when_idle", &[
            "[fatfs] FAT32, ",
            "[check] [PASS] walk-end",
            "[check] storage-check: ",
        ])
            .guest_verdicts(true)
            .forbid(forbid)
            .default_disks(DefaultDisksUse::Reuse)
            .timeout(120),
    ]
}

/// A fresh CAPOSWF1 image NAME of `blocks` 512-byte blocks on its own NVMe
/// controller (the kernel numbers them in the order of these arguments);
/// `cache` is QEMU's cache mode for it.
fn wf_nvme(name: &'static str, blocks: u64, cache: &str) -> ((&'static str, Vec<String>), Vec<String>) {
    (
        (name, strings(&["--writable", "--blocks", &blocks.to_string()])),
        vec![
            "-drive".into(),
            format!("file={{disk:{name}}},if=none,id={name},format=raw,cache={cache}"),
            "-device".into(),
            format!("nvme,serial=capos-{name},drive={name}"),
        ],
    )
}

/// The processes of demos/storage-services-hostile.manifest that announce
/// a bad `File.read` (`CHECK: File.read with its bulk buffer at ...`)
/// before making it, and how many calls they make in all.
const HOSTILE_READERS: &[&str] = &["hostile-ro", "hostile-unmapped", "hostile-recv", "kernel-file"];

const HOSTILE_READS: usize = 6;

/// Every bad `File.read` the hostile clients announced came back: the
/// same process later printed a verdict for that check. A call that never
/// returns leaves its announcement unanswered (the kernel then reports
/// that process among those waiting when userspace goes idle).
fn bad_reads_returned(lines: &[String]) -> Result<String, String> {
    const CALL: &str = ": File.read with its bulk buffer at ";
    let (mut announced, mut stuck) = (0, Vec::new());
    for p in HOSTILE_READERS {
        let msgs: Vec<&str> = crate::source::messages_of(lines, p).collect();
        for (i, m) in msgs.iter().enumerate() {
            let Some((check, _)) = m.split_once(CALL) else { continue };
            announced += 1;
            let verdict = |v: &&str| {
                v.strip_prefix("[PASS] ").or_else(|| v.strip_prefix("[FAIL] ")).and_then(|v| v.strip_prefix(check)).is_some_and(|v| v.starts_with(':'))
            };
            if !msgs[i + 1..].iter().any(verdict) {
                stuck.push(format!("[{p}] {m}"));
            }
        }
    }
    match (announced, stuck.is_empty()) {
        (HOSTILE_READS, true) => Ok(format!("all {HOSTILE_READS} bad File.read calls returned")),
        (n, true) => Err(format!("{n} bad File.read calls announced, expected {HOSTILE_READS}")),
        (_, false) => Err(format!("never returned: {}", stuck.join("; "))),
    }
}

/// `make run-storage-services-hostile`: demos/storage-services-hostile.manifest
/// (demos/fs-hostile). Each hostile client's bad `File.read` must fail
/// with badAddress at once, through storage-fs-service and through the
/// kernel's own File; `busy` must be served throughout; and when userspace
/// goes idle only the service may still be waiting (a client stuck in its
/// call would be counted there too).
fn storage_services_hostile_boot() -> Boot {
    let (svc_image, svc_args) = wf_nvme("svc", 16_384, "writeback");
    let (kfs_image, kfs_args) = wf_nvme("kfs", 16_384, "writeback");
    user_boot("bad-bulk-buffers", "demos/storage-services-hostile.manifest", "exit_when_idle", &[
        "storage: mounted kfs",
        "[fs] CAPOSWF1 generation ",
        "[hostile-ro] [PASS] fs-service-read-into-read-only-page: badAddress",
        "[hostile-unmapped] [PASS] fs-service-read-into-unmapped: badAddress",
        "[hostile-recv] [PASS] fs-service-read-into-recv-area: badAddress",
        "[kernel-file] [PASS] kernel-file-read-into-read-only-page: badAddress",
        "[kernel-file] [PASS] kernel-file-read-into-unmapped: badAddress",
        "[kernel-file] [PASS] kernel-file-read-into-recv-area: badAddress",
        "[busy] [PASS] busy-served-throughout:",
        "[busy] [PASS] hostile-clients-ended:",
        "userspace idle: 5 exited, 0 killed, 1 waiting for calls",
    ])
        .machine("q35")
        .qemu_args([svc_args, kfs_args].concat())
        .store_images(vec![svc_image, kfs_image])
        // A bad buffer must be refused when the call is made: the service
        // never answers into it (it says so when a reply is refused).
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "[fs] reply to badge"]))
        .checks(vec![("every bad File.read returned", bad_reads_returned)])
        .timeout(180)
}

/// demos/storage-services-churn.manifest's workload: `churn`'s cycles,
/// `holder`'s lives and files per life.
const CHURN_CYCLES: u64 = 20_000;

const HOLDER_LIVES: u64 = 5;

const HOLDER_FILES: u64 = 1_500;

/// Objects the clients are handed: a File per churn cycle and the
/// `churn` directory, and per holder life its files and `hold` directory.
const CHURN_OBJECTS: u64 = CHURN_CYCLES + 1 + HOLDER_LIVES * (HOLDER_FILES + 1);

/// storage-fs-service's last `live objects: N, released R`: every client
/// has ended when userspace is idle, so N must be 0 (the manifest leaves
/// no object held: the service's session roots are not objects), and R
/// at least every object the clients were handed.
fn objects_released(lines: &[String]) -> Result<String, String> {
    let Some(last) = crate::source::messages_of(lines, "fs").filter_map(|m| m.strip_prefix("live objects: ")).last() else {
        return Err("storage-fs-service never printed 'live objects: N, released R' (it released nothing)".into());
    };
    let figures: Vec<u64> = last.split(", released ").filter_map(|f| f.trim().parse().ok()).collect();
    match figures.as_slice() {
        [0, released] if *released >= CHURN_OBJECTS => Ok(format!("0 objects live at the end, {released} released (the clients were handed {CHURN_OBJECTS})")),
        [live, released] => Err(format!("{live} objects live at the end, {released} released; expected 0 live and at least {CHURN_OBJECTS} released")),
        _ => Err(format!("cannot read 'live objects: {last}'")),
    }
}

/// `make run-storage-services-churn`: demos/storage-services-churn.manifest
/// (demos/fs-churn). Objects made and never closed must be freed when
/// their capability is dropped (20,000 create/write/drop/remove cycles
/// in one session) or their holder dies (five lives of one session, each
/// holding 1,500 new files); at the end none is live. The disk is
/// attached with `cache=unsafe`: the service flushes twice per commit and
/// durability is not what this scenario tests.
fn storage_services_churn_boot() -> Boot {
    let (svc_image, svc_args) = wf_nvme("svc", 131_072, "unsafe");
    let mut expect = vec![
        "[fs] CAPOSWF1 generation ".to_string(),
        "[churn] churn: 10000 cycles".to_string(),
        format!("[churn] [PASS] churn-create-drop-remove: {CHURN_CYCLES} cycles"),
        "(restart #4)".to_string(),
        "proc: holder (pid".to_string(),
        "exited with status 0; not restarted (exit status 0 is success)".to_string(),
        "userspace idle: 6 exited, 0 killed, 1 waiting for calls".to_string(),
    ];
    for life in 1..=HOLDER_LIVES {
        expect.push(format!("[holder] life {life}: {HOLDER_FILES} files"));
        expect.push(format!("[holder] [PASS] holder-life-{life}: {HOLDER_FILES} new files held"));
    }
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    user_boot("churn-and-hold", "demos/storage-services-churn.manifest", "exit_when_idle", &expect)
        .machine("q35")
        .qemu_args(svc_args)
        .store_images(vec![svc_image])
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic"]))
        .checks(vec![("every object released", objects_released)])
        .timeout(CHURN_TIMEOUT_SECS)
}

/// The churn boot's time limit: a cycle took 4.9 ms on an idle 2-core
/// host and 6.9 ms on a loaded one (nearly all of it NVMe commands: two
/// commits and a data write a cycle), so 20,000 cycles about 100 to 140 s.
const CHURN_TIMEOUT_SECS: u64 = 900;

pub(super) fn storage_services() -> Scenario {
    Scenario {
        name: "storage-services",
        description: "storage-fs-service and store-service over Block capabilities: files and keys round trip, a subtree cannot be left, read-only grants are refused, 200 kills mid-workload are restarted with nothing synced lost and every frame given back, the data survives a reboot, and four clients putting at once share commits (group commit)",
        capos_boot_only: false,
        boots: storage_services_boots(),
    }
}

pub(super) fn storage_services_smp4() -> Scenario {
    Scenario {
        name: "storage-services-smp4",
        description: "storage-services with 4 CPUs: the services, the writer and chaos at once on different CPUs",
        capos_boot_only: false,
        boots: storage_services_boots().into_iter().map(|b| b
            .smp("4")).collect(),
    }
}

pub(super) fn storage_services_hostile() -> Scenario {
    Scenario {
        name: "storage-services-hostile",
        description: "File.read through storage-fs-service with a bulk buffer the service cannot write (a read-only page, an unmapped address, the caller's IPC receive area) fails with badAddress at once, as on the kernel's own File; another client is served throughout",
        capos_boot_only: false,
        boots: vec![storage_services_hostile_boot()],
    }
}

pub(super) fn storage_services_churn() -> Scenario {
    Scenario {
        name: "storage-services-churn",
        description: "storage-fs-service frees objects nobody closes: 20,000 create/write/drop/remove cycles in one session, five lives of a restarted client each holding 1,500 new files, and none live at the end",
        capos_boot_only: false,
        boots: vec![storage_services_churn_boot()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> Vec<String> {
        let mut v = vec!["capos kernel starting".to_string()];
        v.extend(lines.iter().map(|l| l.to_string()));
        v
    }

    /// The workspace file `path` (the runner's tests run from its crate).
    fn workspace_file(path: &str) -> String {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        std::fs::read_to_string(root.join(path)).unwrap()
    }

    /// `(process, its arg lines and restart line)` of a manifest.
    fn process_lines(manifest: &str, process: &str) -> Vec<String> {
        let text = workspace_file(manifest);
        let mut lines = text.lines().map(str::trim).skip_while(|l| *l != format!("process {process}"));
        let _ = lines.next().expect("the process is in the manifest");
        lines.take_while(|l| !l.starts_with("process ")).filter(|l| l.starts_with("arg:") || l.starts_with("restart:")).map(String::from).collect()
    }

    fn announced(p: &str, check: &str) -> String {
        format!("[{p}] {check}: File.read with its bulk buffer at 0x41a000 (read-only-page), 4096 bytes")
    }

    #[test]
    fn every_bad_read_must_come_back_with_a_verdict() {
        let mut all = Vec::new();
        for (p, check) in [
            ("hostile-ro", "fs-service-read-into-read-only-page"),
            ("hostile-unmapped", "fs-service-read-into-unmapped"),
            ("hostile-recv", "fs-service-read-into-recv-area"),
            ("kernel-file", "kernel-file-read-into-read-only-page"),
            ("kernel-file", "kernel-file-read-into-unmapped"),
            ("kernel-file", "kernel-file-read-into-recv-area"),
        ] {
            all.push(announced(p, check));
            all.push(format!("[{p}] [PASS] {check}: badAddress after 0 ms"));
        }
        let lines: Vec<&str> = all.iter().map(String::as_str).collect();
        assert!(bad_reads_returned(&log(&lines)).is_ok());
        // A [FAIL] verdict also means the call came back (its check fails on its own).
        let failed: Vec<String> = all.iter().map(|l| l.replace("[PASS]", "[FAIL]")).collect();
        assert!(bad_reads_returned(&log(&failed.iter().map(String::as_str).collect::<Vec<_>>())).is_ok());
        // hostile-unmapped's verdict missing: its call never returned.
        let stuck: Vec<&str> = lines.iter().copied().filter(|l| !l.starts_with("[hostile-unmapped] [PASS]")).collect();
        let e = bad_reads_returned(&log(&stuck)).unwrap_err();
        assert!(e.contains("[hostile-unmapped] fs-service-read-into-unmapped: File.read"), "{e}");
        assert!(!e.contains("hostile-ro"), "{e}");
        // A verdict for another check, or from another process, answers nothing.
        let mut other = stuck.clone();
        other.push("[hostile-ro] [PASS] fs-service-read-into-unmapped: badAddress after 0 ms");
        other.push("[hostile-unmapped] [PASS] fs-service-read-into-unmapped-twice: x");
        assert!(bad_reads_returned(&log(&other)).is_err());
        // A verdict before the announcement does not count either.
        let mut early = vec!["[hostile-unmapped] [PASS] fs-service-read-into-unmapped: badAddress after 0 ms"];
        early.extend(stuck.iter().copied());
        assert!(bad_reads_returned(&log(&early)).is_err());
        // Fewer calls than the manifest makes: something did not run.
        assert!(bad_reads_returned(&log(&lines[2..])).unwrap_err().contains("5 bad File.read calls announced"));
        // A process's own line, not the kernel's or another's, is what counts.
        let foreign: Vec<String> = all.iter().map(|l| l.replace("[hostile-ro]", "[busy]")).collect();
        assert!(bad_reads_returned(&log(&foreign.iter().map(String::as_str).collect::<Vec<_>>())).is_err());
    }

    #[test]
    fn the_last_live_objects_line_must_say_none_live_and_enough_released() {
        let enough = format!("[fs] live objects: 0, released {CHURN_OBJECTS}");
        assert!(objects_released(&log(&["[fs] live objects: 12, released 1000", &enough])).is_ok());
        // The last line is the one that counts.
        assert!(objects_released(&log(&[&enough, "[fs] live objects: 1, released 106000"])).unwrap_err().contains("1 objects live"));
        let short = format!("[fs] live objects: 0, released {}", CHURN_OBJECTS - 1);
        assert!(objects_released(&log(&[&short])).is_err());
        assert!(objects_released(&log(&["[fs] CAPOSWF1 generation 0"])).unwrap_err().contains("never printed"));
        // Only storage-fs-service's line counts.
        assert!(objects_released(&log(&[&enough.replace("[fs]", "[churn]")])).is_err());
        assert!(objects_released(&log(&["[fs] live objects: zero, released many"])).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn the_churn_manifest_makes_what_the_runner_counts() {
        let m = "demos/storage-services-churn.manifest";
        assert_eq!(process_lines(m, "churn"), ["arg: churn".to_string(), format!("arg: {CHURN_CYCLES}")]);
        assert_eq!(
            process_lines(m, "holder"),
            ["arg: hold".to_string(), format!("arg: {HOLDER_FILES}"), format!("arg: {HOLDER_LIVES}"), format!("restart: on-failure max {}", HOLDER_LIVES - 1)]
        );
        // The lives together are over the service's 4,096 objects per
        // session; two lives fit (a release may lag a restart); one life
        // fits a process's capability table.
        assert!(HOLDER_LIVES * HOLDER_FILES > 4096 && 2 * (HOLDER_FILES + 1) < 4096);
        assert!(HOLDER_FILES + 8 <= capos_abi::limits::MAX_CAPS_PER_PROCESS as u64);
        assert!(CHURN_CYCLES > 4096);
    }

    #[test]
    fn the_hostile_manifest_starts_every_reader_the_check_counts() {
        let text = workspace_file("demos/storage-services-hostile.manifest");
        for p in HOSTILE_READERS {
            assert!(text.lines().any(|l| l.trim() == format!("process {p}")), "{p}");
        }
        let cases = ["read-only-page", "unmapped", "recv-area"];
        let service_reads = cases.iter().filter(|c| text.lines().any(|l| l.trim() == format!("arg: {c}"))).count();
        assert_eq!(service_reads + cases.len(), HOSTILE_READS, "three through the service, three on the kernel's File");
    }
}
