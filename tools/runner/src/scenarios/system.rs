//! The default system (`make run`): the shell scenario and two boots on
//! the same default disks.

use super::*;

/// The shell scenario (`make run-shell`): the default system (crate::volumes::system:
/// /data on storage-fs-service over a fresh CAPOSWF1 disk, the store on
/// store-service, /fat from the kernel; DATA_IMAGE, STORE_IMAGE and
/// FAT_IMAGE in their place, in place), with the
/// lines of SHELL_SCRIPT (default tools/shell.script) typed one per
/// `capos$ ` prompt, then `halt` at the kernel prompt the shell's `exit`
/// hands the console back to. The default script on fresh disks is
/// checked line by line (and gets escape sequences before Enter, an
/// up-arrow recall, a 1,500-character line and a line of binary garbage
/// before its `exit`), and a second boot, on a FAT disk and a store the
/// scenario builds, checks the user's own disks are what /fat and the
/// store serve; any other run gets the generic
/// checks: no panic, the shell reaches `exit`, the kernel prompt halts.
fn shell_boots(root: &std::path::Path) -> Vec<Boot> {
    let first = shell_boot_with(root, input_path("SHELL_SCRIPT"), &crate::volumes::system::user_images_env());
    if first.judgement.checks.is_empty() {
        vec![first]
    } else {
        vec![first, user_disks_boot(root)]
    }
}

/// The shell on the user's own disks as FAT_IMAGE=, STORE_IMAGE= and
/// DATA_IMAGE= give them: images built from tools/shell-user-disks/
/// (crate::volumes::system::boot_images takes a boot's own `fat`, `store` and
/// `data` as those variables). The user's file must be in /fat and copy
/// into /data unchanged, the user's key in the store, and nothing of the
/// default FAT disk visible. /data is a 128 KiB disk, so copying the
/// 165 KiB big.txt fails midway: the shell must say so, remove the part it
/// wrote, and carry on.
fn user_disks_boot(root: &std::path::Path) -> Boot {
    let typed = [
        "ls /fat",
        "cat /fat/from-host.txt",
        "keys",
        "get owner",
        "cp /fat/from-host.txt /data",
        "sha256 /fat/from-host.txt",
        "sha256 /data/from-host.txt",
        "cp /fat/big.txt /data/big.txt",
        "stat /data/big.txt",
        "ls /data",
        "exit",
    ];
    let mut script: Vec<(String, Vec<u8>)> = typed.iter().map(|l| ("capos$ ".to_string(), format!("{l}\r").into_bytes())).collect();
    script.push(("capos> ".into(), b"halt\r".to_vec()));
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&[
        "[shell] from-host.txt  42 bytes",
        "[shell] brought in on a FAT disk made on the host",
        "[shell] owner",
        "[shell] (1 key)",
        "[shell] the user's own store",
        "[shell] copied 42 bytes from /fat/from-host.txt to /data/from-host.txt",
        // The code is the service's (today tooLarge: a 128 KiB CAPOSWF1
        // disk cannot hold a file that size).
        "[shell] : cp /fat/big.txt /data/big.txt: stopped after ",
        "[shell]  of 168960 bytes: /data/big.txt: ",
        "[shell] ; removed the partial /data/big.txt",
        "[shell] error: notFound: /data/big.txt",
        "[shell] bye",
        "halting",
    ]);
    let kv = root.join("tools/shell-user-disks/store.kv").display().to_string();
    kernel_boot("user-disks", "", Expect::Success, &expect)
        .script(script)
        .guest_verdicts(false)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "restarted as", "[shell] README.TXT", "[shell] docs/", "[shell] welcome.txt"]))
        .default_system()
        .default_disks(DefaultDisksUse::Fresh)
        .store_images(vec![("store", strings(&["--store", "--seed", &kv, "--blocks", "2048"])), ("data", strings(&["--writable", "--blocks", "256"]))])
        .script_images(vec![("fat", "tools/mkdefault-fat-image", vec![("FAT_SOURCE", "tools/shell-user-disks/fat")])])
        .checks(vec![("each copy has its source's sha256", copies_match_their_source)])
        .timeout(120)
}

fn shell_boot_with(root: &std::path::Path, user_script: Option<std::path::PathBuf>, images: &crate::volumes::system::UserImages) -> Boot {
    let path = user_script.clone().unwrap_or_else(|| root.join("tools/shell.script"));
    let (text, error) = match read_text_input("SHELL_SCRIPT", &path) {
        Ok(t) => (t, None),
        Err(e) => (String::new(), Some(e)),
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for l in text.lines().map(|l| l.trim_end_matches('\r')) {
        if l.trim().is_empty() || l.trim_start().starts_with('#') {
            continue;
        }
        lines.push(l.as_bytes().to_vec());
        if l.trim() == "exit" {
            break;
        }
    }
    if lines.last().map(|l| l.trim_ascii()) != Some(b"exit".as_slice()) {
        lines.push(b"exit".to_vec());
    }
    let checked = user_script.is_none() && !images.any();
    if checked {
        let at = lines.len() - 1;
        // A lone ESC and a half CSI before Enter (Enter still ends the
        // line); a half CSI, Enter and a command in one write (the command
        // arrives whole); the up arrow recalls that command.
        let escapes: [&[u8]; 4] = [b"\x1b", b"\x1b[", b"\x1b[\rget app/name", b"\x1b[A"];
        for (i, e) in escapes.iter().enumerate() {
            lines.insert(at + i, e.to_vec());
        }
        let at = at + escapes.len();
        lines.insert(at, vec![b'y'; 1500]);
        let garbage: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r' && *b != b'\n').collect();
        lines.insert(at + 1, garbage);
    }
    let mut script: Vec<(String, Vec<u8>)> = lines
        .into_iter()
        .map(|mut l| {
            l.push(b'\r');
            ("capos$ ".to_string(), l)
        })
        .collect();
    script.push(("capos> ".into(), b"halt\r".to_vec()));
    let mut expect = DEFAULT_SYSTEM_EXPECTS.to_vec();
    // No card here (make run has one): net answers every call with
    // `unavailable`, web has nothing to listen on and ends (status 0, not
    // restarted); the shell exits; fs, store and net wait.
    expect.extend_from_slice(&[
        "[shell] bye",
        "exited with status 0",
        "[net] no network card: no network device 'net0' (found: none); answering every call with it",
        "[web] http-files: no network to listen on",
        "userspace idle: 2 exited, 0 killed, 3 waiting for calls",
        "halting",
    ]);
    if checked {
        expect.extend_from_slice(SHELL_SCRIPT_EXPECTS);
    }
    kernel_boot("shell", "", Expect::Success, &expect)
        .script(script)
        .guest_verdicts(false)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "[shell] panic", "[fs] panic", "[store] panic", "restarted as", "[shell] error: permissionDenied: /data: the root", "[shell] (1 keys)"]))
        .default_system()
        .default_disks(DefaultDisksUse::Fresh)
        .timeout(120)
        .checks(if checked {
            vec![("get app/name ran twice (typed after ESC [ Enter, then recalled with the up arrow)", get_ran_twice), ("each copy has its source's sha256", copies_match_their_source)]
        } else {
            Vec::new()
        })
        .input_error(error)
}

/// `make run-default-system`: two boots of what `make run` boots, on disks
/// made afresh by the first (as a first `make run` makes them) and used in
/// place by the second. The first lists /, reads the seeded files, writes a
/// file and a key and exits (which syncs); the second reads both back.
fn default_system_boots() -> Vec<Boot> {
    let typed = |lines: &[&str]| -> Vec<(String, Vec<u8>)> {
        let mut v: Vec<(String, Vec<u8>)> = lines.iter().map(|l| ("capos$ ".to_string(), format!("{l}\r").into_bytes())).collect();
        v.push(("capos> ".into(), b"devices\r".to_vec()));
        v.push(("capos> ".into(), b"halt\r".to_vec()));
        v
    };
    let boot = |name: &'static str, disks, lines: &[&str], expect: &[&str]| {
        let mut e = DEFAULT_SYSTEM_EXPECTS.to_vec();
        e.extend_from_slice(expect);
        // The shell exits; fs, store, net and web wait (net's timers
        // count as idle where the prompt takes over).
        e.extend_from_slice(&["[shell] bye", "userspace idle: 1 exited, 0 killed, 4 waiting for calls", "capos> devices", "nvme0n1", "nvme1n1", "vblk0", "net0", "halting"]);
        e.extend_from_slice(&["[net] serving 'network' over mac 52:54:00:12:34:56", "[web] http-files: serving the 'root' directory read-only on port 80"]);
        // As `make run` boots it: 2 CPUs, like the smallest cloud shapes.
        e.push("smp: 2 of 2 CPUs online");
        kernel_boot(name, "", Expect::Success, &e)
            .smp("2")
            .script(typed(lines))
            .guest_verdicts(false)
            .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "{any} error: ", "restarted as"]))
            .default_system()
            .default_disks(disks)
            // As `make run` has it: the card on a restricted user network.
            .qemu_args(nic::nic_args(""))
            .timeout(120)
    };
    vec![
        boot(
            "first-run",
            DefaultDisksUse::Fresh,
            &["ls /", "cat /data/welcome.txt", "cat /fat/docs/hello.txt", "write /data/note.txt written by the first run", "put color blue", "net", "exit"],
            &["[shell] mac 52:54:00:12:34:56, link up", "[shell] data/", "[shell] fat/", "[shell] Welcome to capOS.", "[shell] hello from FAT32", "[shell] wrote 25 bytes to /data/note.txt", "[shell] synced /data", "[shell] /fat: read-only, nothing to sync"],
        ),
        boot(
            "second-run",
            DefaultDisksUse::Reuse,
            &["cat /data/note.txt", "get color", "ls /data", "exit"],
            &["[shell] written by the first run", "[shell] blue", "[shell] note.txt  25 bytes", "[shell] welcome.txt"],
        ),
    ]
}

/// shell: `get app/name`'s output twice, and no mangled command.
fn get_ran_twice(lines: &[String]) -> Result<String, String> {
    let runs = crate::source::messages_of(lines, "shell").filter(|m| m.trim_end() == "capOS").count();
    if let Some(l) = lines.iter().find(|l| l.contains("unknown command 'et'")) {
        return Err(format!("the first letter was lost: {l}"));
    }
    match runs {
        2 => Ok("get app/name printed capOS twice".into()),
        n => Err(format!("get app/name printed capOS {n} times, expected 2")),
    }
}

/// shell: for each `copied N bytes from A to B`, the last `sha256` lines
/// printed for A and for B name the same hash and size; at least one copy.
fn copies_match_their_source(lines: &[String]) -> Result<String, String> {
    let said: Vec<&str> = crate::source::messages_of(lines, "shell").collect();
    let sha = |path: &str| said.iter().rev().find_map(|m| m.split_once("  ").filter(|(h, rest)| h.len() == 64 && rest.starts_with(path) && rest[path.len()..].starts_with(" (")).map(|(h, rest)| (h, &rest[path.len()..])));
    let mut copies = 0;
    for m in &said {
        let Some((_, fromto)) = m.strip_prefix("copied ").and_then(|r| r.split_once(" from ")) else { continue };
        let Some((from, to)) = fromto.split_once(" to ") else { continue };
        match (sha(from), sha(to)) {
            (Some(a), Some(b)) if a == b => copies += 1,
            (Some(a), Some(b)) => return Err(format!("{to} is {} {}, its source {from} {} {}", b.0, b.1, a.0, a.1)),
            _ => return Err(format!("no sha256 line for both {from} and {to}")),
        }
    }
    match copies {
        0 => Err("no `copied ... from ... to ...` line".into()),
        n => Ok(format!("every copy ({n}) has its source's sha256 and size")),
    }
}

/// What every boot of the default system prints before the shell's prompt.
pub(super) const DEFAULT_SYSTEM_EXPECTS: &[&str] = &[
    "storage: mounted fat",
    "[fs] CAPOSWF1 generation ",
    "[store] CAPOSST1 mounted; serving 'store'",
    "[shell] capOS shell: 2 filesystems, a store; type help",
];

/// `sha256` of `fill "/data/pattern 1.bin" 100K 7` (a unit test below
/// recomputes it from `capos_abi::pattern`).
const PATTERN_7_100K_SHA256: &str = "[shell] d2281affefad6b5a9001a91ae3e0632c50a3ce6b64cef5d667b0ac9d67983522  /data/pattern 1.bin (102400 bytes)";

/// What tools/shell.script must print on a fresh disk.
const SHELL_SCRIPT_EXPECTS: &[&str] = &[
    "[shell]   write PATH TEXT...",
    "[shell] /data  filesystem (grant fs-data): available, ",
    "[shell] /fat  filesystem (grant fs-fat): available, ",
    "[shell] store  key/value store (grant store): available, ",
    "[shell] data/",
    "[shell] wrote 27 bytes to /data/docs/hello.txt",
    "[shell] appended 12 bytes to /data/docs/hello.txt",
    "[shell] hello from the capOS shell",
    "[shell] second line",
    "[shell] hello.txt  39 bytes",
    "[shell] /data/docs/hello.txt: 39 bytes, file",
    "[shell]   created:  20",
    "[shell] UTC (wallClock)",
    "[shell]   modified: ",
    "[shell] bedb4bce80831efb46a5ce019121f41ec5c3472e4ce64c8f753f2bb455e9afa5  /data/docs/hello.txt (39 bytes)",
    "[shell] greeting.txt  39 bytes",
    "[shell] /data/archive",
    "[shell] error: notFound: /data/nothing-here",
    "[shell] archive/",
    "[shell] /data/archive: 0 bytes, directory",
    "[shell] error: isADirectory: /data: is a directory (a mount root)",
    "[shell] error: isADirectory: /: is a directory (it holds the mounts)",
    "[shell] error: isADirectory: /data/archive: is a directory",
    "[shell] error: isADirectory: /data/notes: is a directory",
    "[shell] error: isADirectory: /data/pics: is a directory",
    "[shell] error: isADirectory: /fat/docs: is a directory",
    "[shell] error: notADirectory: /data/welcome.txt: ",
    "[shell] copied 17 bytes from /fat/docs/hello.txt to /data/hello-copy.txt",
    "[shell] copied 234 bytes from /data/welcome.txt to /data/archive/welcome.txt",
    "[shell] welcome.txt  234 bytes",
    "[shell] error: notFound: /fat/no-such-file",
    "[shell] error: invalidArgument: /data/hello-copy.txt and /data are the same file",
    "[shell] error: readOnly: /fat/welcome.txt",
    "[shell] filled /data/pattern 1.bin with 102400 bytes of pattern 7",
    PATTERN_7_100K_SHA256,
    "[shell] wrote 34 bytes to /data/café notes.txt",
    "[shell] a name with a space and an accent",
    "[shell] error: invalidArgument: fill: 68157440 bytes is more than the 67108864 a fill may write",
    "[shell] error: invalidArgument: unterminated double quote",
    "[shell] error: unavailable: net: no network: no network device 'net0' (found: none)",
    "[shell] blue",
    "[shell] true",
    "[shell] app/name",
    "[shell] (2 keys)",
    "[shell] (1 key)",
    "[shell] deleted color",
    "[shell] false",
    "[shell] error: notFound: key color",
    "[shell] error: invalidArgument: unknown command 'frobnicate'; type help",
    "(line too long; input beyond 1024 bytes on this line is ignored)",
    "(line was cut to 1024 bytes)",
    "[shell] error: invalidArgument: unknown command 'yyyyyyyy",
    "[shell] synced /data",
];

pub(super) fn shell(root: &std::path::Path) -> Scenario {
    Scenario {
        name: "shell",
        description: "the shell over the default system's disks: SHELL_SCRIPT typed line by line, every command's output checked (cp across mounts by sha256), exit hands the console back to the prompt; then the user's own FAT_IMAGE and STORE_IMAGE in place",
        capos_boot_only: false,
        boots: shell_boots(root),
    }
}

pub(super) fn default_system() -> Scenario {
    Scenario {
        name: "default-system",
        description: "what make run boots: the storage services and the shell over the default disks; a file and a key written in one boot are read back in the next",
        capos_boot_only: false,
        boots: default_system_boots(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::kernel::diag_boot_with;
    use super::*;

    fn temp(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("capos-run-input-{}-{}", std::process::id(), name));
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn the_pattern_sha_the_shell_scenario_expects_is_the_patterns() {
        use sha2::{Digest, Sha256};
        let mut b = vec![0u8; 100 * 1024];
        capos_abi::pattern::fill(7, 0, &mut b);
        let hex: String = Sha256::digest(&b).iter().map(|x| format!("{:02x}", x)).collect();
        assert_eq!(PATTERN_7_100K_SHA256, format!("[shell] {}  /data/pattern 1.bin (102400 bytes)", hex));
    }

    #[test]
    fn an_unreadable_script_is_a_failure_naming_the_file_never_a_default() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let missing = std::path::PathBuf::from("/nonexistent/capos-shell.script");
        let b = shell_boot_with(&root, Some(missing.clone()), &Default::default());
        let e = b.input_error.expect("a missing SHELL_SCRIPT fails the boot");
        assert!(e.starts_with("cannot read SHELL_SCRIPT /nonexistent/capos-shell.script: "), "{e}");
        assert!(e.contains("No such file"), "{e}");
        assert!(b.script.iter().all(|(_, l)| l != b"help\r"), "nothing is typed in its place");

        let latin1 = temp("latin1.script", b"help\necho caf\xe9\n");
        let e = shell_boot_with(&root, Some(latin1.clone()), &Default::default()).input_error.expect("non-UTF-8 fails");
        assert_eq!(e, format!("cannot use SHELL_SCRIPT {}: not UTF-8 text (byte 13 is 0xe9)", latin1.display()));
        let e = diag_boot_with(&latin1).input_error.expect("non-UTF-8 fails");
        assert!(e.starts_with("cannot use DIAG_SCRIPT "), "{e}");
        std::fs::remove_file(&latin1).unwrap();

        let e = diag_boot_with(std::path::Path::new("/nonexistent/diag.script")).input_error.expect("missing fails");
        assert!(e.starts_with("cannot read DIAG_SCRIPT /nonexistent/diag.script: "), "{e}");
        let e = read_text_input("SHELL_SCRIPT", &std::env::temp_dir()).unwrap_err();
        assert!(e.starts_with("cannot read SHELL_SCRIPT "), "a directory: {e}");

        // The scripts of the repository still load, and load what they say.
        let good = temp("good.script", b"# c\nls /\n");
        let b = shell_boot_with(&root, Some(good.clone()), &Default::default());
        assert!(b.input_error.is_none());
        assert_eq!(b.script[0].1, b"ls /\r");
        std::fs::remove_file(&good).unwrap();
        assert!(shell_boots(&root)[0].input_error.is_none() || std::env::var_os("SHELL_SCRIPT").is_some());
        assert!(diag_boot_with(&root.join("tools/diag.script")).input_error.is_none());
    }
}
