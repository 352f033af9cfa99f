//! Userspace processes: a first process, IPC, process lifetimes and
//! restarts, capability faults, several CPUs.

use super::*;

/// Kernel log lines that say an endpoint was re-bound to a restarted server.
fn rebind_lines(lines: &[String]) -> usize {
    crate::source::classify(lines).iter().filter(|l| l.source == crate::source::Source::Kernel && l.raw.contains(" re-bound")).count()
}

fn two_hundred_rebinds(lines: &[String]) -> Result<String, String> {
    match rebind_lines(lines) {
        200 => Ok("200 re-bound lines".into()),
        n => Err(format!("{n} re-bound lines, expected 200")),
    }
}

/// The driver's `free frames: steady N end M`: at least N at the end, or frames leaked.
fn frames_back_at_steady(lines: &[String]) -> Result<String, String> {
    let line = crate::source::messages_of(lines, "driver").find_map(|m| m.strip_prefix("free frames: steady ").map(|rest| rest.to_string()));
    let Some(rest) = line else { return Err("the driver never printed its free frames".into()) };
    let figures: Vec<u64> = rest.split(" end ").filter_map(|f| f.trim().parse().ok()).collect();
    // At least the round-1 count at the end (demos/lifetime says why more
    // is not a leak: a dead instance's stack still held after round 1 on
    // several CPUs); one frame leaked per restart would be ~199 short.
    match figures.as_slice() {
        [steady, end] if steady == end && *steady > 0 => Ok(format!("{steady} free frames after round 1 and after round 200")),
        [steady, end] if end > steady && *steady > 0 => Ok(format!("{steady} free frames after round 1, {end} after round 200 (none lost; {} held after round 1 were freed later)", end - steady)),
        [steady, end] => Err(format!("{steady} free frames after round 1, {end} after round 200 ({} leaked)", *steady as i64 - *end as i64)),
        _ => Err(format!("cannot read the figures in '{rest}'")),
    }
}

/// The kernel's `lifetime: N process table slots and M kernel stack
/// slots ever used`: both stay near the most processes alive at once (7
/// here, plus idle, the kernel's own stacks and a restart's overlap), not
/// the 200+ processes that came and went.
fn slots_reused(lines: &[String]) -> Result<String, String> {
    let lines = crate::source::classify(lines);
    let Some(line) = lines.iter().filter(|l| l.source == crate::source::Source::Kernel).map(|l| l.raw).find(|l| l.contains("lifetime: ") && l.contains(" kernel stack slots ever used")) else {
        return Err("the kernel never reported its slots".into());
    };
    let numbers: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    match numbers.as_slice() {
        [.., table, stacks] if *table <= 16 && *stacks <= 24 => Ok(format!("{table} table slots, {stacks} stack slots")),
        [.., table, stacks] => Err(format!("{table} table slots, {stacks} stack slots: dead processes' slots are not reused")),
        _ => Err(format!("cannot read '{line}'")),
    }
}

/// `make run-process-lifetime`: demos/process-lifetime.manifest.
fn process_lifetime_boot() -> Boot {
    user_boot("lifetime", "demos/process-lifetime.manifest", "exit_when_idle", &[
        "[driver] [PASS] lifetime-restarts-serve-through-the-same-capability",
        "[driver] [PASS] lifetime-call-in-flight-gets-peer-gone",
        "[driver] [PASS] lifetime-no-frame-leaks",
        "[dropclient] [PASS] dropped-receive-handle-fails-the-queued-call",
        "[dropclient] [PASS] dropped-receive-handle-fails-later-calls",
        "killed: by ProcessControl from driver (pid 2); restarted as pid",
        "(restart #200), endpoint srv/svc re-bound",
        "proc: quitter (pid 5) exited with status 0; not restarted (exit status 0 is success)",
        "(restart #3)",
        "not restarted: its restart budget (3 restarts in one boot) is spent",
        "process driver (pid 2) exited with status 0",
    ])
        .checks(vec![
            ("200 endpoint re-binds", two_hundred_rebinds),
            ("free frames back at their steady count", frames_back_at_steady),
            ("table and stack slots reused", slots_reused),
        ])
        .timeout(600)
}

/// `make run-smp`: demos/smp.manifest (four checked ping-pong pairs, one
/// pinned across two CPUs, and
/// the storage services under 40 kills) on q35 and pc with 2, 4 and 8
/// CPUs, each CPU reported online, no lock-order report (a dev kernel
/// checks), the restarts' frames all freed; then the TLB shootdown
/// self-test, and the same test with the shootdown skipped once, which
/// must fail (it can see a stale translation).
fn smp_boots() -> Vec<Boot> {
    let forbid = strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "{any} [FAIL]", "lock order:", "is not online", "ran on cpu"]);
    let mut boots = Vec::new();
    for (name, machine, cpus, online) in [
        ("q35-2cpu", "q35", "2", "smp: 2 of 2 CPUs online"),
        ("q35-4cpu", "q35", "4", "smp: 4 of 4 CPUs online"),
        ("q35-8cpu", "q35", "8", "smp: 8 of 8 CPUs online"),
        ("pc-2cpu", "pc", "2", "smp: 2 of 2 CPUs online"),
        ("pc-4cpu", "pc", "4", "smp: 4 of 4 CPUs online"),
        ("pc-8cpu", "pc", "8", "smp: 8 of 8 CPUs online"),
    ] {
        boots.push(user_boot(name, "demos/smp.manifest", "test=tlb", &[
            online,
            "[ping1] [PASS] stress",
            "[ping2] [PASS] stress",
            "[ping3] [PASS] stress",
            "[ping4] [PASS] stress",
            "pinned to cpu 1",
            "[check] [PASS] killed-service-restarts",
            "[check] [PASS] nothing-synced-lost",
            "[chaos] [PASS] restarts-free-every-frame",
            "[PASS] tlb-shootdown: CPU 1 read the new mapping",
        ])
            .machine(machine)
            .smp(cpus)
            .guest_verdicts(true)
            .forbid(forbid.clone())
            .default_disks(DefaultDisksUse::Fresh)
            .timeout(600)
            .profile("dev"));
    }
    boots.push(kernel_boot("tlb-skipped", "test=tlb-skip", Expect::KernelFailure, &[
        "tlb: shootdown skipped once (self-test)",
        "[FAIL] tlb-shootdown: CPU 1 read through its stale translation",
    ])
        .smp("2")
        .profile("dev")
        // Its [FAIL] is the expected outcome, not the guest's verdict.
        .guest_verdicts(false)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC"])));
    boots
}

pub(super) fn smp() -> Scenario {
    Scenario {
        name: "smp",
        description: "ping-pong pairs and storage services under kills on q35 and pc with 2, 4 and 8 CPUs; TLB shootdown seen to work and seen to be needed",
        capos_boot_only: false,
        boots: smp_boots(),
    }
}

pub(super) fn hello() -> Scenario {
    Scenario {
        name: "hello",
        description: "userspace: one process writes through its Console capability; a manifest whose mounts name missing devices still starts every process, and grants of those mounts answer unavailable",
        capos_boot_only: false,
        boots: vec![
            user_boot("hello", "demos/hello.manifest", "exit_when_idle", &[
                "[hello] hello from capOS userspace: I am 'hello' holding 1 capabilities",
                "[hello] [PASS] hello-console",
                "process hello (pid 1) exited with status 0",
                "userspace idle: 1 exited, 0 killed, 0 waiting for calls",
            ]),
            // A mount that fails stops no process: hello starts with a
            // grant of the failed mount it never calls; a storage
            // service over a failed raw mount answers `unavailable` and
            // why, and its client (bootcount) fails with that answer
            // (so its [FAIL] is expected: guest verdicts are not counted).
            kernel_boot("missing-device", "exit_when_idle", Expect::Success, &[
                "storage: mount db failed: caposst1 on nvme9n1: no block device nvme9n1 (found: none)",
                "storage: mount disk failed: raw on nvme8n1: no block device nvme8n1 (found: none)",
                "storage: 0 mounts ready, 2 failed (their capabilities answer unavailable)",
                "[hello] [PASS] hello-console",
                "process hello (pid 1) exited with status 0",
                "[fs] cannot mount the disk: Unavailable: the disk: mount disk failed: no block device nvme8n1 (found: none); answering every call with it",
                "[bootcount] [FAIL] bootcount: open /boots: Object(CapError { code: Unavailable, message: \"the disk: mount disk failed: no block device nvme8n1 (found: none)\" })",
                "process bootcount (pid 3) exited with status 1",
            ])
                .forbid(strings(&["userspace not started", "KERNEL PANIC", "EXCEPTION (unexpected)"]))
                .volume(BootVolume::Manifest("demos/missing-device.manifest", "exit_when_idle"))
                .guest_verdicts(false),
        ],
    }
}

pub(super) fn ipc() -> Scenario {
    Scenario {
        name: "ipc",
        description: "userspace IPC: ping calls pong over an endpoint and the kernel's Ping; capabilities in results",
        capos_boot_only: false,
        boots: vec![user_boot("ping-pong", "demos/ipc.manifest", "exit_when_idle", &[
            "[ping] [PASS] ipc-ping-userspace",
            "[ping] [PASS] ipc-echo-userspace",
            "[ping] [PASS] ipc-capability-in-result",
            "[ping] [PASS] ipc-capability-in-params",
            "[pong] [PASS] ipc-capability-received",
            "[ping] [PASS] ipc-ping-kernel",
            "[ping] [PASS] kernel-capability-in-result",
            "[ping] [PASS] ipc-bulk-echo-userspace",
            "[ping] [PASS] kernel-bulk-echo",
            "process ping (pid 2) exited with status 0",
            "userspace idle: 1 exited, 0 killed, 1 waiting for calls",
        ])],
    }
}

pub(super) fn process_lifetime() -> Scenario {
    Scenario {
        name: "process-lifetime",
        description: "supervision: a server restarted 200 times (killed through ProcessControl, or faulting with a call in flight) keeps serving through the same capability and leaks no frame; a dropped receive handle fails calls with PeerGone; exit 0 is not restarted; a restart budget stops a crash loop",
        capos_boot_only: false,
        boots: vec![process_lifetime_boot()],
    }
}

pub(super) fn process_lifetime_smp4() -> Scenario {
    Scenario {
        name: "process-lifetime-smp4",
        description: "process-lifetime with 4 CPUs: the server and the driver on different CPUs, kills carried out where the process runs",
        capos_boot_only: false,
        boots: vec![process_lifetime_boot()
            .smp("4")],
    }
}

pub(super) fn cap_faults() -> Scenario {
    Scenario {
        name: "cap-faults",
        description: "a hostile process: every bad handle, pointer, length and message is refused; its page fault ends only it",
        capos_boot_only: false,
        boots: vec![user_boot("hostile", "demos/cap-faults.manifest", "exit_when_idle", &[
            "[hostile] [PASS] hostile-invalid-handle",
            "[hostile] [PASS] hostile-null-handle",
            "[hostile] [PASS] hostile-foreign-handle-number",
            "[hostile] [PASS] hostile-call-own-endpoint",
            "[hostile] [PASS] hostile-dropped-handle",
            "[hostile] [PASS] hostile-double-drop",
            "[hostile] [PASS] hostile-huge-message",
            "[hostile] [PASS] hostile-too-many-caps",
            "[hostile] [PASS] hostile-unknown-bulk-flag",
            "[hostile] [PASS] hostile-bulk-length-without-flags",
            "[hostile] [PASS] hostile-stale-cap-in-transfer",
            "[hostile] [PASS] hostile-bulk-in-kernel-memory",
            "[hostile] [PASS] hostile-bulk-in-direct-map",
            "[hostile] [PASS] hostile-bulk-unmapped",
            "[hostile] [PASS] hostile-bulk-null-page",
            "[hostile] [PASS] hostile-bulk-overflowing-length",
            "[hostile] [PASS] hostile-bulk-wrapping-pointer",
            "[hostile] [PASS] hostile-bulk-too-large",
            "[hostile] [PASS] hostile-bulk-write-into-read-only",
            "[hostile] [PASS] hostile-bulk-over-own-send-area",
            "[hostile] [PASS] hostile-bulk-reaching-into-ipc-area",
            "[hostile] [PASS] hostile-truncated-message",
            "[hostile] [PASS] hostile-garbage-message",
            "[hostile] [PASS] hostile-unaligned-length",
            "[hostile] [PASS] hostile-nesting-control",
            "[hostile] [PASS] hostile-nested-past-limit",
            "[hostile] [PASS] hostile-wrong-ordinal",
            "[hostile] [PASS] hostile-wrong-interface",
            "[hostile] [PASS] hostile-unknown-syscall-0",
            "[hostile] [PASS] hostile-unknown-syscall-99",
            "[hostile] [PASS] hostile-receive-on-non-endpoint",
            "[hostile] [PASS] hostile-reply-with-bogus-token",
            "[hostile] [PASS] hostile-reply-with-token-0",
            "[hostile] [PASS] hostile-reply-word-high-bits",
            "[hostile] [PASS] hostile-reply-receive-stale-token",
            "[hostile] [PASS] hostile-reply-receive-on-non-endpoint",
            "[hostile] [PASS] hostile-bulk-register-kernel-memory",
            "[hostile] [PASS] hostile-bulk-register-too-large",
            "[hostile] [PASS] hostile-bulk-register-read-only",
            "[hostile] [PASS] hostile-bulk-register-own-send-area",
            "[hostile] [PASS] hostile-receive-timeout-on-non-endpoint",
            "[hostile] [PASS] hostile-receive-timeout-zero",
            "[hostile] [PASS] hostile-receive-timeout-waits: 30 ms asked",
            "[hostile] [PASS] hostile-receive-timeout-waits: 120 ms asked",
            "[hostile] [PASS] hostile-receive-timeout-takes-notification",
            "[hostile] [PASS] hostile-only-granted-caps",
            "[hostile] hostile: all cases refused correctly",
            "EXCEPTION (in user mode): vector 14 (page fault)",
            "process hostile (pid 1) killed: page fault at 0x10",
            "[witness] [PASS] witness-peer-gone",
            "[witness] [PASS] witness-kernel-still-serving",
            "[hello] [PASS] hello-console",
            "userspace idle: 2 exited, 1 killed, 0 waiting for calls",
        ])
            .forbid(strings(&["KERNEL PANIC", "EXCEPTION (unexpected)"]))],
    }
}
