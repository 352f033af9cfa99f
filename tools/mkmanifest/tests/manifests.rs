//! Good and bad manifest files, the library API and the command line.
//!
//! Every file in `bad/` starts with `# expect: LINE: MESSAGE`, the exact
//! error the tool must report for it.

use capos_abi::manifest::{GrantSource, Manifest};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join(name)
}

fn files(name: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "manifest"))
        .collect();
    v.sort();
    v
}

#[test]
fn good_files_compile_decode_and_print_back_unchanged() {
    let good = files("good");
    assert!(good.len() >= 3, "the good examples are missing");
    for path in good {
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = mkmanifest::parse(&text).unwrap_or_else(|e| panic!("{}", e.render(&path.display().to_string())));
        let bytes = mkmanifest::compile(&text).unwrap();
        let decoded = Manifest::decode(&bytes).unwrap();
        assert_eq!(decoded, parsed, "{}", path.display());
        // --dump output is itself a manifest that means the same thing.
        let printed = mkmanifest::dump(&bytes).unwrap();
        assert_eq!(mkmanifest::parse(&printed).unwrap(), parsed, "{}", path.display());
        assert_eq!(mkmanifest::compile(&printed).unwrap(), bytes, "encoding is deterministic");
    }
}

#[test]
fn the_ipc_example_means_what_it_says() {
    let m = mkmanifest::parse(&std::fs::read_to_string(dir("good").join("ipc.manifest")).unwrap()).unwrap();
    assert_eq!(m.processes.len(), 2);
    let (pong, ping) = (&m.processes[0], &m.processes[1]);
    assert_eq!((pong.name.as_str(), pong.binary.as_str()), ("pong", "/boot/pong"));
    assert_eq!(pong.exports, vec!["ping".to_string()]);
    assert_eq!(ping.args, vec!["--rounds".to_string(), "10".to_string()]);
    assert_eq!(ping.grants[0].name, "console");
    assert_eq!(ping.grants[0].source, GrantSource::Kernel("console".into()));
    assert_eq!(ping.grants[1].source, GrantSource::Endpoint { process: "pong".into(), endpoint: "ping".into() });
}

#[test]
fn args_keep_hashes_and_inner_spaces() {
    let m = mkmanifest::parse(&std::fs::read_to_string(dir("good").join("storage.manifest")).unwrap()).unwrap();
    assert_eq!(m.processes[0].args, vec!["--path=/docs/readme.txt".to_string(), "a # is not a comment here".to_string()]);
    assert_eq!(m.processes[0].grants[2].name, "fat", "'grant fat:kernel:...' without a space parses");
    assert_eq!(m.processes[0].grants[2].source, GrantSource::Kernel("fs:fat-nvme".into()));
}

fn expectation(text: &str) -> (usize, String) {
    let first = text.lines().next().unwrap();
    let rest = first.strip_prefix("# expect: ").expect("bad files start with '# expect: LINE: MESSAGE'");
    let (line, message) = rest.split_once(": ").unwrap();
    (line.parse().unwrap(), message.to_string())
}

#[test]
fn bad_files_report_the_line_and_the_message() {
    let bad = files("bad");
    assert!(bad.len() >= 15, "the bad examples are missing");
    for path in bad {
        let text = std::fs::read_to_string(&path).unwrap();
        let (line, message) = expectation(&text);
        let err = mkmanifest::parse(&text).expect_err(&format!("{} must be rejected", path.display()));
        assert_eq!((err.line, err.message.as_str()), (line, message.as_str()), "{}", path.display());
        assert!(mkmanifest::compile(&text).is_err());
    }
}

#[test]
fn inline_bad_cases() {
    let cases: &[(&str, usize, &str)] = &[
        ("process\n", 1, "'process' needs a name: 'process NAME'"),
        ("process a\n  binary /boot/a\n", 2, "'binary' needs a colon: 'binary: /boot/NAME'"),
        ("process a\n  binary: /boot/a\n  export\n", 3, "'export' needs an endpoint name: 'export NAME'"),
        ("process a\n  binary: /boot/a\n  grant c: kernel:console:x\n", 3, "kernel source 'console' takes no instance name"),
        ("process a\n  binary: /boot/a\n  grant c: kernel:fs:a/b\n", 3, "invalid fs instance name 'a/b'"),
        ("process a\n  binary: /boot/a\n  grant -c: kernel:console\n", 3,
         "invalid grant name '-c': use 1 to 32 characters from A-Z a-z 0-9 _ -, starting with a letter or digit"),
        ("process a\n  binary: /boot/a b\n", 2, "binary '/boot/a b' must be an absolute boot module path of at most 128 bytes without spaces"),
        ("  # indented comment\nfoo: bar\n", 2, "unknown keyword 'foo' (expected process, binary, arg, grant, export, restart, cpu or mount)"),
    ];
    for (text, line, message) in cases {
        let err = mkmanifest::parse(text).expect_err(text);
        assert_eq!((err.line, err.message.as_str()), (*line, *message), "{text:?}");
    }
    let e = mkmanifest::parse("process x\n").unwrap_err();
    assert_eq!(e.render("sys.manifest"), "sys.manifest:1: process 'x' has no binary");
}

#[test]
fn too_many_processes_is_reported() {
    let mut text = String::new();
    for i in 0..=capos_abi::manifest::MAX_PROCESSES {
        text.push_str(&format!("process p{i}\n  binary: /boot/p\n"));
    }
    let e = mkmanifest::parse(&text).unwrap_err();
    assert_eq!(e.message, format!("more than {} processes", capos_abi::manifest::MAX_PROCESSES));
}

#[test]
fn argument_parsing() {
    use mkmanifest::{parse_args, Command as C};
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(parse_args(&s(&["in.manifest", "-o", "out.bin"])), Ok(C::Compile { input: "in.manifest".into(), output: "out.bin".into() }));
    assert_eq!(parse_args(&s(&["-o", "out.bin", "in.manifest"])), Ok(C::Compile { input: "in.manifest".into(), output: "out.bin".into() }));
    assert_eq!(parse_args(&s(&["--check", "in"])), Ok(C::Check { input: "in".into(), disks: vec![] }));
    assert_eq!(
        parse_args(&s(&["--check", "in", "--disk", "nvme0n1=a.raw", "--disk", "vblk0=b.raw"])),
        Ok(C::Check { input: "in".into(), disks: vec!["nvme0n1=a.raw".into(), "vblk0=b.raw".into()] })
    );
    assert!(parse_args(&s(&["--check", "in", "--disk"])).is_err());
    assert!(parse_args(&s(&["--check", "in", "--frob", "x"])).is_err());
    assert_eq!(parse_args(&s(&["--dump", "out.bin"])), Ok(C::Dump { input: "out.bin".into() }));
    assert_eq!(parse_args(&s(&["--help"])), Ok(C::Help));
    for bad in [&[][..], &["in"][..], &["in", "-o"][..], &["--check"][..], &["--frobnicate", "x"][..], &["in", "out"][..]] {
        assert!(parse_args(&s(bad)).is_err(), "{bad:?}");
    }
}

/// A file in a scratch directory of this test process and `test` (each
/// test has its own directory, so one test's cleanup never races another).
fn scratch(test: &str, name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mkmanifest-test-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

fn tool(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mkmanifest")).args(args).output().unwrap();
    (out.status.code().unwrap(), String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
}

#[test]
fn command_line_compile_check_dump() {
    let input = dir("good").join("ipc.manifest");
    let input = input.to_str().unwrap();
    let output = scratch("compile", "ipc.bin");
    let output = output.to_str().unwrap();
    let (code, _, err) = tool(&[input, "-o", output]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(output).unwrap();
    assert_eq!(bytes, mkmanifest::compile(&std::fs::read_to_string(input).unwrap()).unwrap());

    let (code, out, _) = tool(&["--check", input]);
    assert_eq!((code, out), (0, format!("{input}: ok (2 processes)\n")));

    let (code, out, _) = tool(&["--dump", output]);
    assert_eq!(code, 0);
    assert!(out.starts_with("process pong\n    binary: /boot/pong\n"), "{out}");
    assert!(out.contains("    grant server: process:pong/ping\n"), "{out}");

    // A damaged binary is refused by --dump with the kernel's checks.
    let mut damaged = bytes.clone();
    damaged.truncate(bytes.len() - 8);
    let path = scratch("compile", "damaged.bin");
    std::fs::write(&path, &damaged).unwrap();
    let (code, _, err) = tool(&["--dump", path.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("not a valid message"), "{err}");
    let _ = std::fs::remove_file(output);
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

#[test]
fn command_line_errors_are_file_line_message() {
    let bad = dir("bad").join("unknown-endpoint.manifest");
    let bad = bad.to_str().unwrap();
    let output = scratch("errors", "never.bin");
    let (code, out, err) = tool(&[bad, "-o", output.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err, format!("{bad}:7: process 'pong' exports no endpoint 'pang'\n"));
    assert!(!output.exists(), "no output is written for a bad manifest");
    let (code, _, err) = tool(&["--check", bad]);
    assert_eq!((code, err), (1, format!("{bad}:7: process 'pong' exports no endpoint 'pang'\n")));
    let (code, _, err) = tool(&["--check", "/nonexistent/x.manifest"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("/nonexistent/x.manifest: cannot read"), "{err}");
    let (code, _, err) = tool(&["--bogus"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("usage: mkmanifest"), "{err}");
    let _ = std::fs::remove_dir(output.parent().unwrap());
}

// ---------- control characters (issue 14, part 1) ----------

fn has_raw_control(text: &str) -> bool {
    text.chars().any(|c| c.is_control() && c != '\n')
}

#[test]
fn arguments_and_binaries_with_control_characters_are_rejected() {
    for (text, line) in [
        ("process a\n  binary: /boot/a\n  arg: one\ttwo\n", 3),
        ("process a\n  binary: /boot/a\n  arg: \u{1b}[2Jclear\n", 3),
        ("process a\n  binary: /boot/a\n  arg: bell\u{7}\n", 3),
        ("process a\n  binary: /boot/a\u{1b}\n", 2),
        ("process a\n  binary: /boot/a\u{9b}x\n", 2),
    ] {
        let err = mkmanifest::parse(text).expect_err(&format!("{text:?} must be rejected"));
        assert_eq!(err.line, line, "{text:?}: {}", err.message);
        assert!(err.message.contains("control character"), "{text:?}: {}", err.message);
        assert!(!has_raw_control(&err.message), "the error message is escaped: {:?}", err.message);
    }
}

#[test]
fn to_text_escapes_control_characters() {
    let m = Manifest {
        processes: vec![capos_abi::manifest::ProcessSpec {
            name: "a".into(),
            binary: "/boot/\u{1b}[31m".into(),
            args: vec!["x\nprocess evil".into(), "\u{9b}2J".into()],
            ..Default::default()
        }],
        mounts: vec![],
    };
    let text = mkmanifest::to_text(&m);
    assert!(!has_raw_control(&text), "{text:?}");
    assert!(!text.contains("\nprocess evil"), "an argument forged a line: {text:?}");
}

#[test]
fn dump_of_a_binary_with_control_characters_prints_none_raw() {
    let text = "process a\n  binary: /boot/aaaaaa\n  arg: XXXXXXXX\n";
    let mut bytes = mkmanifest::compile(text).unwrap();
    // Patch raw control bytes into the encoded strings (capnp text is
    // stored as is), as a hostile or hand-made manifest binary could.
    let at = bytes.windows(8).position(|w| w == b"XXXXXXXX").unwrap();
    bytes[at..at + 8].copy_from_slice(b"\x1b[2J\nZ\r\x07");
    let at = bytes.windows(6).position(|w| w == b"aaaaaa").unwrap();
    bytes[at..at + 6].copy_from_slice(b"\x1b[31m\x08");
    let path = scratch("dump-control", "evil.bin");
    std::fs::write(&path, &bytes).unwrap();
    let (code, out, err) = tool(&["--dump", path.to_str().unwrap()]);
    assert!(!has_raw_control(&out), "stdout: {out:?}");
    assert!(!has_raw_control(&err), "stderr: {err:?}");
    assert_eq!(code, 1, "the kernel's rules refuse it: {out:?} {err:?}");
    let _ = std::fs::remove_file(&path);
    let _ = std::fs::remove_dir(path.parent().unwrap());
}

// ------------------------------------------------- --check --disk (GPT)

/// A GPT disk of `blocks` 512-byte blocks (128 entries of 128 bytes, both
/// copies, as sgdisk lays them out) with `parts`: (type GUID, first, last).
fn gpt_disk(blocks: u64, parts: &[(&str, u64, u64)]) -> Vec<u8> {
    use capos_kcore::gpt::{crc32, Guid};
    let mut d = vec![0u8; blocks as usize * 512];
    let mut array = vec![0u8; 128 * 128];
    for (i, (t, first, last)) in parts.iter().enumerate() {
        let e = &mut array[i * 128..][..128];
        e[0..16].copy_from_slice(&Guid::parse(t).unwrap().to_bytes());
        e[16] = i as u8 + 1;
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
    }
    let acrc = crc32(&array);
    for (my, alt, entries) in [(1u64, blocks - 1, 2u64), (blocks - 1, 1, blocks - 33)] {
        d[entries as usize * 512..][..array.len()].copy_from_slice(&array);
        let mut h = [0u8; 92];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&34u64.to_le_bytes());
        h[48..56].copy_from_slice(&(blocks - 34).to_le_bytes());
        h[56] = 0x42;
        h[72..80].copy_from_slice(&entries.to_le_bytes());
        h[80..84].copy_from_slice(&128u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&acrc.to_le_bytes());
        let c = crc32(&h);
        h[16..20].copy_from_slice(&c.to_le_bytes());
        d[my as usize * 512..][..92].copy_from_slice(&h);
    }
    d
}

const RAW: &str = "B10C0C4B-5A17-4E0D-9C3A-0000000000B1";
const OTHER: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

#[test]
fn check_with_the_disk_refuses_a_number_and_a_type_naming_one_partition() {
    // Partition 1 blocks 2048..4095, partition 2 (type RAW) 4096..12287.
    let disk = scratch("disk", "gpt.raw");
    std::fs::write(&disk, gpt_disk(16384, &[(OTHER, 2048, 4095), (RAW, 4096, 12287)])).unwrap();
    let d = format!("nvme0n1={}", disk.display());
    let manifest = |mounts: &str| {
        let p = scratch("disk", "m.manifest");
        std::fs::write(&p, format!("{mounts}\nprocess p\n    binary: /boot/p\n    grant a: kernel:block:a\n")).unwrap();
        p
    };
    let same = manifest(&format!("mount a: raw on nvme0n1 partition 2\nmount b: raw on nvme0n1 partition type {RAW}"));
    let same_s = same.to_str().unwrap();
    // The text alone cannot tell: accepted (the kernel refuses it at mount time).
    assert_eq!(tool(&["--check", same_s]).0, 0);
    let (code, _, err) = tool(&["--check", same_s, "--disk", &d]);
    assert_eq!(code, 1);
    assert_eq!(
        err.trim(),
        format!("{same_s}:2: mount 'b' (nvme0n1 partition type {RAW}) is blocks 4096..12288 of nvme0n1 ({}), already claimed by mount 'a' (nvme0n1 partition 2): a device serves one mount", disk.display())
    );
    // Two different partitions, one by number and one by type: fine.
    let two = manifest(&format!("mount a: raw on nvme0n1 partition 1\nmount b: raw on nvme0n1 partition type {RAW}"));
    let (code, out, err) = tool(&["--check", two.to_str().unwrap(), "--disk", &d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("mounts resolved on {d}")), "{out}");
    // `any` finds the one partition of the type on the given disks too.
    let any = manifest(&format!("mount a: raw on nvme0n1 partition 2\nmount b: raw on any partition type {RAW}"));
    let (code, _, err) = tool(&["--check", any.to_str().unwrap(), "--disk", &d]);
    assert_eq!(code, 1);
    assert!(err.contains("mount 'b' (any partition type B10C0C4B-5A17-4E0D-9C3A-0000000000B1) is blocks 4096..12288 of nvme0n1"), "{err}");
    // What the disk does not have is refused as the kernel would.
    let missing = manifest("mount a: raw on nvme0n1 partition 3");
    let (code, _, err) = tool(&["--check", missing.to_str().unwrap(), "--disk", &d]);
    assert_eq!(code, 1);
    assert!(err.contains(":1: mount 'a' (nvme0n1 partition 3): nvme0n1 (") && err.contains(") has no GPT partition 3"), "{err}");
    // A device no --disk names is left to the kernel; a bad --disk is an error.
    let other = manifest("mount a: raw on vblk0 partition 3");
    assert_eq!(tool(&["--check", other.to_str().unwrap(), "--disk", &d]).0, 0);
    let (code, _, err) = tool(&["--check", same_s, "--disk", "nvme0n1=/nonexistent/disk.raw"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("/nonexistent/disk.raw: cannot read: "), "{err}");
    let (code, _, err) = tool(&["--check", same_s, "--disk", "nvme0n1"]);
    assert_eq!(code, 1);
    assert!(err.contains("expected --disk DEVICE=IMAGE"), "{err}");
}
