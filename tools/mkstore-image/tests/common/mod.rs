//! Helpers shared by the tool's integration tests: scratch directories and
//! running the built binary.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A fresh scratch directory, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mkstore-image-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, rest: &str) -> PathBuf {
        self.0.join(rest)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the tool with a pinned SOURCE_DATE_EPOCH.
pub fn tool(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mkstore-image"))
        .args(args)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .output()
        .expect("run mkstore-image")
}

pub fn ok(args: &[&str]) -> Output {
    let out = tool(args);
    assert!(
        out.status.success(),
        "mkstore-image {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A source tree exercising the corners: empty file, empty and nested
/// directories, non-ASCII names, a multi-MiB file.
pub fn make_source_tree(root: &Path) {
    std::fs::create_dir_all(root.join("nested/deeper/deepest")).unwrap();
    std::fs::create_dir_all(root.join("empty-dir")).unwrap();
    std::fs::create_dir_all(root.join("日本語ディレクトリ")).unwrap();
    std::fs::write(root.join("empty-file"), b"").unwrap();
    std::fs::write(root.join("hello.txt"), b"hello, capOS\n").unwrap();
    std::fs::write(root.join("nested/deeper/deepest/leaf.bin"), noise(1000, 1)).unwrap();
    std::fs::write(root.join("nested/exactly-one-block"), noise(512, 2)).unwrap();
    std::fs::write(root.join("日本語ディレクトリ/ファイル-ü-é.txt"), "grüße 🌍".as_bytes()).unwrap();
    std::fs::write(root.join("big.bin"), noise(3 * 1024 * 1024 + 123, 3)).unwrap();
}

/// Assert two host trees are identical: same names, kinds and bytes.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let mut names_a: Vec<_> = std::fs::read_dir(a).unwrap().map(|e| e.unwrap().file_name()).collect();
    let mut names_b: Vec<_> = std::fs::read_dir(b).unwrap().map(|e| e.unwrap().file_name()).collect();
    names_a.sort();
    names_b.sort();
    assert_eq!(names_a, names_b, "entries differ in {}", a.display());
    for name in names_a {
        let (pa, pb) = (a.join(&name), b.join(&name));
        assert_eq!(pa.is_dir(), pb.is_dir(), "{}", pa.display());
        if pa.is_dir() {
            assert_same_tree(&pa, &pb);
        } else {
            assert!(std::fs::read(&pa).unwrap() == std::fs::read(&pb).unwrap(), "{} differs", pa.display());
        }
    }
}
