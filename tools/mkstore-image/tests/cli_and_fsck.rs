//! The command line: help, usage errors, and fsck's exit codes on clean and
//! corrupted images of every kind (0 clean, 2 usage, 4 corrupt, 8 host I/O).

mod common;
use common::*;
use std::path::Path;

fn code(args: &[&str]) -> (i32, String) {
    let out = tool(args);
    (out.status.code().expect("exited with a code, not a signal"), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn help_and_usage_errors() {
    let out = tool(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--readonly-fs DIR"));
    // 2: usage mistakes; 8: host I/O failures.
    assert_eq!(tool(&[]).status.code(), Some(2));
    assert_eq!(code(&["--bogus"]).0, 2);
    assert_eq!(code(&["--store"]).0, 2, "missing -o");
    assert_eq!(code(&["--store", "--writable", "-o", "x"]).0, 2);
    assert_eq!(code(&["fsck"]).0, 2);
    assert_eq!(code(&["fsck", "--allow-older-commit", "x"]).0, 2, "fsck always reports a damaged newest commit");
    assert_eq!(code(&["--store", "--blocks", "12x", "-o", "/tmp/never"]).0, 2);
    assert_eq!(code(&["fsck", "/nonexistent/image"]).0, 8);
    assert_eq!(code(&["--readonly-fs", "/nonexistent/dir", "-o", "/tmp/never"]).0, 8);
}

fn corrupt(img: &Path, name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> std::path::PathBuf {
    let mut bytes = std::fs::read(img).unwrap();
    edit(&mut bytes);
    let path = img.with_file_name(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn assert_corrupt(path: &Path, needle: &str) {
    let (status, stderr) = code(&["fsck", path.to_str().unwrap()]);
    assert_eq!(status, 4, "{}: expected corruption exit, stderr: {stderr}", path.display());
    assert!(stderr.contains(needle), "{}: message {stderr:?} should name {needle:?}", path.display());
}

#[test]
fn fsck_names_the_damage_in_every_format() {
    let s = Scratch::new("fsck");
    let src = s.path("src");
    make_source_tree(&src);
    let kv = s.path("seed.kv");
    std::fs::write(&kv, "a\t1\nb\t2\n").unwrap();
    let ro = s.path("ro.img");
    let wf = s.path("wf.img");
    let st = s.path("st.img");
    ok(&["--readonly-fs", src.to_str().unwrap(), "-o", ro.to_str().unwrap()]);
    ok(&["--writable", "--seed", src.to_str().unwrap(), "-o", wf.to_str().unwrap()]);
    ok(&["--store", "--seed", kv.to_str().unwrap(), "-o", st.to_str().unwrap()]);
    for img in [&ro, &wf, &st] {
        assert_eq!(code(&["fsck", img.to_str().unwrap()]).0, 0, "{} should be clean", img.display());
    }
    for img in [&ro, &wf, &st] {
        let n = img.file_stem().unwrap().to_str().unwrap().to_string();
        assert_corrupt(&corrupt(img, &format!("{n}-magic"), |b| b[0] = b'X'), "bad magic");
        assert_corrupt(&corrupt(img, &format!("{n}-sb"), |b| b[100] ^= 1), "checksum mismatch in superblock");
        assert_corrupt(&corrupt(img, &format!("{n}-trunc"), |b| b.truncate(b.len() / 2)), "too small");
        assert_corrupt(&corrupt(img, &format!("{n}-odd"), |b| b.truncate(b.len() - 1)), "multiple of 512");
    }
    // Metadata records.
    assert_corrupt(&corrupt(&ro, "ro-node", |b| b[512 + 70] ^= 0x10), "CAPOSRO1 node record");
    assert_corrupt(&corrupt(&wf, "wf-commit", |b| { b[512 + 9] ^= 1; b[1024 + 9] ^= 1; }), "commit record");
    assert_corrupt(&corrupt(&st, "st-commit", |b| { b[512 + 9] ^= 1; b[1024 + 9] ^= 1; }), "commit record");
    // File data of CAPOSRO1 is checked against its CRC: flip the last byte of the image
    // (inside the data of the last file in node order).
    assert_corrupt(&corrupt(&ro, "ro-data", |b| { let n = b.len(); let at = (0..n).rev().find(|&i| b[i] != 0).unwrap(); b[at] ^= 0xFF; }), "CAPOSRO1 file data");
    // A CAPOSWF1 newest commit whose region was damaged is reported even though
    // mount can fall back to the older generation.
    let wf_region = corrupt(&wf, "wf-region", |b| {
        let generation_slot0 = u64::from_le_bytes(b[512 + 8..512 + 16].try_into().unwrap());
        let generation_slot1 = u64::from_le_bytes(b[1024 + 8..1024 + 16].try_into().unwrap());
        let newest_region = if generation_slot1 > generation_slot0 && b[1024..1032] == *b"WFCOMMIT" { 1 } else { 0 };
        let region_a = u64::from_le_bytes(b[64..72].try_into().unwrap()) as usize;
        let region_b = u64::from_le_bytes(b[72..80].try_into().unwrap()) as usize;
        let at = if newest_region == 0 { region_a } else { region_b } * 512;
        b[at + 44] ^= 0x01;
    });
    assert_corrupt(&wf_region, "CAPOSWF1 newest commit");
    // A store value's bytes.
    assert_corrupt(&corrupt(&st, "st-heap", |b| {
        let heap = (3 + u32::from_le_bytes(b[56..60].try_into().unwrap()) as usize) * 512;
        b[heap] ^= 0x40;
    }), "CAPOSST1");
}

#[test]
fn host_trees_with_unsupported_entries_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new("bad-host-tree");
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", src.join("link")).unwrap();
    let (status, stderr) = code(&["--readonly-fs", src.to_str().unwrap(), "-o", s.path("a.img").to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("not a regular file or directory"), "{stderr}");
    std::fs::remove_file(src.join("link")).unwrap();
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name")), b"x").unwrap();
    let (status, stderr) = code(&["--writable", "--seed", src.to_str().unwrap(), "-o", s.path("b.img").to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("is not UTF-8"), "{stderr}");
    std::fs::remove_file(src.join(std::ffi::OsStr::from_bytes(b"bad-\xff-name"))).unwrap();
    // A name longer than CAPOSWF1's 80-byte limit is fine for CAPOSRO1 but refused when seeding CAPOSWF1.
    std::fs::write(src.join("n".repeat(100)), b"x").unwrap();
    ok(&["--readonly-fs", src.to_str().unwrap(), "-o", s.path("c.img").to_str().unwrap()]);
    let (status, stderr) = code(&["--writable", "--seed", src.to_str().unwrap(), "-o", s.path("d.img").to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("longer than the format's limit"), "{stderr}");
    // A store seed that does not fit is a clear error, not a partial image.
    let kv = s.path("big.kv");
    let big_value = "v".repeat(60000);
    std::fs::write(&kv, (0..40).map(|i| format!("k{i}\t{big_value}\n")).collect::<String>()).unwrap();
    let (status, stderr) = code(&["--store", "--seed", kv.to_str().unwrap(), "--blocks", "512", "-o", s.path("e.img").to_str().unwrap()]);
    assert_eq!(status, 2);
    assert!(stderr.contains("store full"), "{stderr}");
}
