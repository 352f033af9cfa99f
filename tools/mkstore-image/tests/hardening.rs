//! The tool never hands a user silently wrong output (issue 14, part 1).
//!
//! Each test here failed on the code before the fix it names: extract
//! without checksum verification, silent fallback to an older commit, the
//! key file losing `#` keys, recursive tree walks, extraction over existing
//! files and through symlinks, raw control characters in `inspect`, and
//! numeric options that overflowed into panics or "corrupt" exit codes.

mod common;
use capos_storage::readonly_fs::{build_image, SourceNode};
use capos_storage::writable_fs::{MountOptions, WritableFs};
use capos_storage::features::FeatureFlags;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::store::{self, Store};
use capos_storage::{FixedClock, Timestamp};
use common::*;
use std::path::Path;
use std::process::Command;

const EXIT_USAGE: i32 = 2;
const EXIT_CORRUPT: i32 = 4;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = tool(args);
    (
        out.status.code().unwrap_or_else(|| panic!("mkstore-image {args:?} died by a signal: {:?}", out.status)),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("needle in image")
}

// ---------- extract verifies CAPOSRO1 checksums ----------

#[test]
fn extract_verifies_readonly_file_checksums() {
    let sc = Scratch::new("ro-crc");
    let src = sc.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), b"the original bytes").unwrap();
    let img = sc.path("ro.img");
    ok(&["--readonly-fs", s(&src), "-o", s(&img)]);
    let mut bytes = std::fs::read(&img).unwrap();
    let at = find(&bytes, b"the original bytes");
    bytes[at + 4] = b'O';
    std::fs::write(&img, &bytes).unwrap();
    let out = sc.path("out");
    let (code, _, stderr) = run(&["extract", s(&img), s(&out)]);
    assert_eq!(code, EXIT_CORRUPT, "extract of a damaged file must fail as corrupt; stderr: {stderr}");
    assert!(stderr.contains("checksum mismatch in CAPOSRO1 file data"), "{stderr}");
    assert!(!out.exists(), "nothing is written when the image does not verify");
}

// ---------- no silent fallback to an older commit ----------

/// A writable image whose newest metadata region is damaged (the older
/// commit is intact), and the generation mounted before the damage.
fn writable_with_damaged_newest(sc: &Scratch) -> (std::path::PathBuf, u64) {
    let src = sc.path("src");
    std::fs::create_dir_all(src.join("dir")).unwrap();
    std::fs::write(src.join("dir/file"), b"data").unwrap();
    let img = sc.path("wf.img");
    ok(&["--writable", "--seed", s(&src), "--blocks", "2048", "-o", s(&img)]);
    let mut bytes = std::fs::read(&img).unwrap();
    let fs = WritableFs::mount(MemBlockDevice::from_bytes(bytes.clone()), FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: true }).unwrap();
    let generation = fs.generation();
    let lba = fs.geometry().region_lba((generation % 2) as usize) as usize;
    drop(fs);
    bytes[lba * 512 + 5] ^= 0x40;
    std::fs::write(&img, &bytes).unwrap();
    (img, generation)
}

/// A store with `alpha` put in generation 1 and `beta` in generation 2,
/// whose `beta` bytes are then damaged. `legacy`: formatted without the
/// single-flush feature, as the tools wrote stores before it.
fn store_with_damaged_newest(sc: &Scratch, legacy: bool) -> std::path::PathBuf {
    let img = sc.path("st.img");
    if legacy {
        let mut dev = MemBlockDevice::new(2048);
        store::format_with_features(&mut dev, None, FeatureFlags::NONE).unwrap();
        let mut st = Store::mount(dev, false).unwrap();
        st.put(b"alpha", b"AAAA").unwrap();
        st.put(b"beta", b"BBBB").unwrap();
        std::fs::write(&img, st.into_device().into_bytes()).unwrap();
    } else {
        let kv = sc.path("seed.kv");
        std::fs::write(&kv, "alpha\tAAAA\nbeta\tBBBB\n").unwrap();
        ok(&["--store", "--seed", s(&kv), "-o", s(&img)]);
    }
    let mut bytes = std::fs::read(&img).unwrap();
    let at = find(&bytes, b"betaBBBB");
    bytes[at + 5] ^= 1;
    std::fs::write(&img, &bytes).unwrap();
    img
}

#[test]
fn writable_damaged_newest_commit_is_refused_unless_allowed() {
    let sc = Scratch::new("wf-older");
    let (img, generation) = writable_with_damaged_newest(&sc);
    for cmd in ["inspect", "extract"] {
        let out = sc.path(&format!("out-{cmd}"));
        let mut args = vec![cmd, s(&img)];
        if cmd == "extract" {
            args.push(s(&out));
        }
        let (code, _, stderr) = run(&args);
        assert_eq!(code, EXIT_CORRUPT, "{cmd} must refuse a passed-over newest commit; stderr: {stderr}");
        assert!(stderr.contains("--allow-older-commit"), "{cmd}: the refusal names the flag: {stderr}");
        assert!(!out.exists());
        let mut allowed = vec![cmd, "--allow-older-commit", s(&img)];
        if cmd == "extract" {
            allowed.push(s(&out));
        }
        let (code, _, stderr) = run(&allowed);
        assert_eq!(code, 0, "{cmd} --allow-older-commit: {stderr}");
        assert!(
            stderr.contains("WARNING") && stderr.contains(&format!("generation {}", generation - 1)),
            "{cmd}: the fallback is announced with the generation used: {stderr}"
        );
    }
}

#[test]
fn legacy_store_damaged_newest_commit_is_refused_unless_allowed() {
    let sc = Scratch::new("st-older");
    let img = store_with_damaged_newest(&sc, true);
    for cmd in ["inspect", "extract"] {
        let out = sc.path(&format!("out-{cmd}.kv"));
        let mut args = vec![cmd, s(&img)];
        if cmd == "extract" {
            args.push(s(&out));
        }
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, EXIT_CORRUPT, "{cmd} must refuse; stdout: {stdout} stderr: {stderr}");
        assert!(stderr.contains("--allow-older-commit"), "{stderr}");
        assert!(!out.exists());
        let mut allowed = vec![cmd, "--allow-older-commit", s(&img)];
        if cmd == "extract" {
            allowed.push(s(&out));
        }
        let (code, _, stderr) = run(&allowed);
        assert_eq!(code, 0, "{cmd} --allow-older-commit: {stderr}");
        assert!(stderr.contains("WARNING") && stderr.contains("generation 1"), "{stderr}");
    }
    assert_eq!(std::fs::read_to_string(sc.path("out-extract.kv")).unwrap(), "alpha\tAAAA\n");
}

/// On a single-flush store the same bytes are what a power cut before the
/// last commit's flush leaves: the commit is rolled back, loudly, and the
/// image is clean at the generation before it.
#[test]
fn single_flush_store_rolls_back_an_unfinished_commit_and_says_so() {
    let sc = Scratch::new("st-unfinished");
    let img = store_with_damaged_newest(&sc, false);
    let (code, stdout, stderr) = run(&["fsck", s(&img)]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    assert!(stdout.contains("CAPOSST1: clean (generation 1, 1 live keys, 1 entries, unfinished commit 2 rolled back)"), "{stdout}");
    assert!(stderr.contains("commit generation 2 was not finished") && stderr.contains("at generation 1"), "{stderr}");
    let out = sc.path("out.kv");
    let (code, _, stderr) = run(&["extract", s(&img), s(&out)]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "alpha\tAAAA\n");
}

// ---------- the key file round-trips every key ----------

#[test]
fn store_key_file_round_trips_every_key() {
    let sc = Scratch::new("kv-round-trip");
    let seed = sc.path("seed.kv");
    // Keys: starting with '#', holding a tab, a newline, a CR, invalid UTF-8,
    // leading and trailing spaces; values likewise.
    std::fs::write(
        &seed,
        "%23hash\tvalue of a hash key\n#real comment\ntab%09key\tv%09\nnl%0Akey\tv%0A\ncr%0D\tx\n%FF%FEbin\t%80\n lead and trail \t sp \n%23\t#\n",
    )
    .unwrap();
    let img1 = sc.path("one.img");
    ok(&["--store", "--seed", s(&seed), "-o", s(&img1)]);
    let out1 = sc.path("one.kv");
    ok(&["extract", s(&img1), s(&out1)]);
    let img2 = sc.path("two.img");
    ok(&["--store", "--seed", s(&out1), "-o", s(&img2)]);
    let out2 = sc.path("two.kv");
    ok(&["extract", s(&img2), s(&out2)]);
    let first = std::fs::read_to_string(&out1).unwrap();
    let second = std::fs::read_to_string(&out2).unwrap();
    assert_eq!(first.lines().count(), 7, "all seven keys extracted: {first}");
    assert_eq!(first, second, "extract -> seed -> extract must be the identity");
}

// ---------- deep trees: no recursion, linear memory ----------

/// A CAPOSRO1 image that is one chain of `depth` directories (the root,
/// then `depth - 1` named `d`) with a file `leaf` at the bottom.
fn deep_readonly_image(depth: usize) -> Vec<u8> {
    let mut node = SourceNode::File { data: b"bottom".to_vec(), mtime: None };
    let mut name = String::from("leaf");
    for _ in 0..depth {
        node = SourceNode::Directory { entries: vec![(name, node)], mtime: None };
        name = String::from("d");
    }
    let image = build_image(&node, Timestamp::UNKNOWN).unwrap();
    // Dismantle the chain without recursion (a derived Drop would recurse).
    let mut current = node;
    while let SourceNode::Directory { mut entries, .. } = current {
        match entries.pop() {
            Some((_, child)) => current = child,
            None => break,
        }
    }
    image
}

#[test]
fn very_deep_trees_are_checked() {
    let sc = Scratch::new("deep");
    let depth = 100_000;
    let img = sc.path("deep.img");
    std::fs::write(&img, deep_readonly_image(depth)).unwrap();
    let (code, stdout, stderr) = run(&["fsck", s(&img)]);
    assert_eq!(code, 0, "fsck of a {depth}-level tree: {stderr}");
    assert!(stdout.contains("1 files verified"), "{stdout}");
}

/// Run the tool with a 256 KiB main-thread stack: a walk whose stack use
/// does not grow with depth needs far less.
fn run_small_stack(args: &[&str]) -> (i32, String, String) {
    let out = Command::new("sh")
        .arg("-c")
        .arg("ulimit -s 256 && exec \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_mkstore-image"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or_else(|| panic!("mkstore-image {args:?} died by a signal: {:?}", out.status)),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn tree_walks_use_no_stack_per_level() {
    // inspect prints every path in full, so its output grows with the square
    // of the depth; a smaller stack shows the walk is not recursive instead.
    let sc = Scratch::new("deep-small-stack");
    let depth = 5000;
    let img = sc.path("deep.img");
    std::fs::write(&img, deep_readonly_image(depth)).unwrap();
    let (code, stdout, stderr) = run_small_stack(&["inspect", s(&img)]);
    assert_eq!(code, 0, "inspect of a {depth}-level tree: {stderr}");
    assert_eq!(stdout.lines().filter(|l| l.starts_with("dir ") || l.starts_with("file")).count(), depth + 1);
    let (code, _, stderr) = run_small_stack(&["fsck", s(&img)]);
    assert_eq!(code, 0, "fsck of a {depth}-level tree: {stderr}");
}

#[test]
fn trees_deeper_than_path_max_extract() {
    let sc = Scratch::new("deep-extract");
    let depth = 3001; // "d/" x 3000 = 6000 bytes: beyond PATH_MAX (4096)
    let img = sc.path("deep.img");
    std::fs::write(&img, deep_readonly_image(depth)).unwrap();
    let out = sc.path("out");
    let (code, _, stderr) = run(&["extract", s(&img), s(&out)]);
    assert_eq!(code, 0, "extract of a {depth}-level tree: {stderr}");
    // Walk down one name at a time from descriptors (a path this long
    // cannot be named in one call), check the leaf, then remove the tree
    // (coreutils rm handles any depth).
    let check = Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sys\n\
             fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)\n\
             for _ in range(int(sys.argv[2]) - 1):\n\
             \x20   assert os.listdir(fd) == ['d'], os.listdir(fd)\n\
             \x20   child = os.open('d', os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)\n\
             \x20   os.close(fd)\n\
             \x20   fd = child\n\
             assert os.listdir(fd) == ['leaf'], os.listdir(fd)\n\
             leaf = os.open('leaf', os.O_RDONLY, dir_fd=fd)\n\
             sys.stdout.write(os.read(leaf, 100).decode())\n",
        )
        .arg(&out)
        .arg(depth.to_string())
        .output()
        .unwrap();
    let removed = Command::new("rm").arg("-rf").arg(&out).status().unwrap();
    assert_eq!(String::from_utf8_lossy(&check.stdout), "bottom", "{}", String::from_utf8_lossy(&check.stderr));
    assert!(removed.success());
}

// ---------- extract's output path ----------

#[test]
fn extract_refuses_unsafe_output_paths() {
    let sc = Scratch::new("out-path");
    let src = sc.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("hello.txt"), b"from the image").unwrap();
    let ro = sc.path("ro.img");
    ok(&["--readonly-fs", s(&src), "-o", s(&ro)]);
    let kv = sc.path("seed.kv");
    std::fs::write(&kv, "k\tv\n").unwrap();
    let st = sc.path("st.img");
    ok(&["--store", "--seed", s(&kv), "-o", s(&st)]);

    // The empty string: today this extracts into the current directory.
    let cwd = sc.path("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_mkstore-image")).args(["extract", s(&ro), ""]).current_dir(&cwd).output().unwrap();
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "empty output path: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read_dir(&cwd).unwrap().next().is_none(), "nothing written to the working directory");

    // A non-empty directory: its files must not be overwritten.
    let full = sc.path("full");
    std::fs::create_dir_all(&full).unwrap();
    std::fs::write(full.join("hello.txt"), b"precious").unwrap();
    let (code, _, stderr) = run(&["extract", s(&ro), s(&full)]);
    assert_eq!(code, EXIT_USAGE, "non-empty directory: {stderr}");
    assert_eq!(std::fs::read(full.join("hello.txt")).unwrap(), b"precious");

    // An empty directory is fine.
    let empty = sc.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    ok(&["extract", s(&ro), s(&empty)]);
    assert_eq!(std::fs::read(empty.join("hello.txt")).unwrap(), b"from the image");

    // A symlink to an empty directory is not followed.
    let target = sc.path("target-dir");
    std::fs::create_dir_all(&target).unwrap();
    let link = sc.path("link-dir");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (code, _, stderr) = run(&["extract", s(&ro), s(&link)]);
    assert_eq!(code, EXIT_USAGE, "symlinked output directory: {stderr}");
    let with_slash = format!("{}/", s(&link));
    let (code, _, stderr) = run(&["extract", s(&ro), &with_slash]);
    assert_eq!(code, EXIT_USAGE, "symlinked output directory named with a trailing slash: {stderr}");
    assert!(std::fs::read_dir(&target).unwrap().next().is_none());

    // A store never overwrites an existing file, nor writes through a symlink.
    let existing = sc.path("existing.kv");
    std::fs::write(&existing, b"precious").unwrap();
    let (code, _, stderr) = run(&["extract", s(&st), s(&existing)]);
    assert_eq!(code, EXIT_USAGE, "existing output file: {stderr}");
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
    let victim = sc.path("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = sc.path("link.kv");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let (code, _, stderr) = run(&["extract", s(&st), s(&link)]);
    assert_eq!(code, EXIT_USAGE, "symlinked output file: {stderr}");
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let dangling = sc.path("dangling.kv");
    std::os::unix::fs::symlink(sc.path("nowhere"), &dangling).unwrap();
    let (code, _, stderr) = run(&["extract", s(&st), s(&dangling)]);
    assert_eq!(code, EXIT_USAGE, "dangling symlink: {stderr}");
    assert!(!sc.path("nowhere").exists());

    // A fresh path works.
    let fresh = sc.path("fresh.kv");
    ok(&["extract", s(&st), s(&fresh)]);
    assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "k\tv\n");
}

// ---------- control characters in inspect ----------

#[test]
fn inspect_escapes_control_characters_in_names() {
    let sc = Scratch::new("ctl");
    let evil = "evil\u{1b}[2J\nfile fake size=0\r\u{7f}\u{9b}";
    let tree = SourceNode::Directory {
        entries: vec![(evil.to_string(), SourceNode::File { data: b"x".to_vec(), mtime: None })],
        mtime: None,
    };
    let img = sc.path("ctl.img");
    std::fs::write(&img, build_image(&tree, Timestamp::UNKNOWN).unwrap()).unwrap();
    let (code, stdout, stderr) = run(&["inspect", s(&img)]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !stdout.chars().any(|c| c.is_control() && c != '\n'),
        "inspect printed raw control characters: {stdout:?}"
    );
    assert!(!stdout.contains("\nfile fake"), "a name forged a line: {stdout:?}");
    assert!(stdout.contains(r"file /evil\x1b[2J\nfile fake size=0\r\x7f\u{9b} size=1"), "{stdout:?}");
}

// ---------- numeric options ----------

#[test]
fn overflowing_numbers_are_usage_errors() {
    let sc = Scratch::new("numbers");
    let o = sc.path("x.img");
    for (args, what) in [
        (vec!["--store", "--blocks", "18446744073709551616", "-o", s(&o)], "u64 overflow"),
        (vec!["--store", "--blocks", "18446744073709551615", "-o", s(&o)], "u64::MAX blocks"),
        (vec!["--writable", "--blocks", "36028797018963968", "-o", s(&o)], "bytes overflow"),
        (vec!["--store", "--blocks", "1", "-o", s(&o)], "too small for the layout"),
        (vec!["--colocated", "--store-blocks", "18446744073709551615", "-o", s(&o)], "store blocks overflow"),
        (vec!["--colocated", "--store-blocks", "9000", "--blocks", "9000", "-o", s(&o)], "store larger than the disk"),
    ] {
        let (code, _, stderr) = run(&args);
        assert_eq!(code, EXIT_USAGE, "{what}: {args:?}: {stderr}");
        assert!(!o.exists(), "{what}: no image written");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_mkstore-image"))
        .args(["--store", "-o", s(&o)])
        .env("SOURCE_DATE_EPOCH", "9223372036854775807")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "SOURCE_DATE_EPOCH beyond the nanosecond range: {}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn help_documents_the_exit_codes() {
    let (code, stdout, _) = run(&["--help"]);
    assert_eq!(code, 0);
    for needle in ["2 usage", "4 image corrupt", "8 host I/O", "--allow-older-commit"] {
        assert!(stdout.contains(needle), "--help lacks {needle:?}: {stdout}");
    }
}

// ---------- generations at u64::MAX ----------

#[test]
fn fsck_reports_a_generation_that_cannot_advance() {
    use capos_storage::store::layout::StoreCommit;
    use capos_storage::store::Store;
    use capos_storage::writable_fs::layout::CommitRecord;
    let sc = Scratch::new("gen-max");
    let src = sc.path("src");
    std::fs::create_dir_all(src.join("a")).unwrap();
    let wf = sc.path("wf.img");
    ok(&["--writable", "--seed", s(&src), "--blocks", "2048", "-o", s(&wf)]);
    let mut bytes = std::fs::read(&wf).unwrap();
    // Slot 1 holds the newest odd generation; its region is intact.
    let old = CommitRecord::decode(&bytes[1024..1536], 1).unwrap();
    bytes[1024..1536].copy_from_slice(&CommitRecord { generation: u64::MAX, region_digest: old.region_digest }.encode().unwrap());
    std::fs::write(&wf, &bytes).unwrap();

    let kv = sc.path("seed.kv");
    std::fs::write(&kv, "k\tv\n").unwrap();
    let st = sc.path("st.img");
    ok(&["--store", "--seed", s(&kv), "-o", s(&st)]);
    let mut bytes = std::fs::read(&st).unwrap();
    let geometry = *Store::mount(MemBlockDevice::from_bytes(bytes.clone()), true).unwrap().geometry();
    let mut commit = StoreCommit::decode(&bytes[1024..1536], 1, &geometry).unwrap();
    commit.generation = u64::MAX;
    bytes[1024..1536].copy_from_slice(&commit.encode().unwrap());
    std::fs::write(&st, &bytes).unwrap();

    for img in [&wf, &st] {
        let (code, stdout, stderr) = run(&["fsck", s(img)]);
        assert_eq!(code, EXIT_CORRUPT, "{}: stdout {stdout} stderr {stderr}", img.display());
        assert!(stderr.contains("u64::MAX"), "{stderr}");
        // Still readable: inspect shows it.
        let (code, stdout, stderr) = run(&["inspect", s(img)]);
        assert_eq!(code, 0, "{stderr}");
        assert!(stdout.contains("generation: 18446744073709551615"), "{stdout}");
    }
}
