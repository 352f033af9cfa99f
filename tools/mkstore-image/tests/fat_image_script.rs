//! tools/mkstorage-fat-read-image builds a FAT32 image with the real
//! mkfs.fat and mcopy, reads every file back, and is reproducible.
//! Skipped (with a message) where dosfstools/mtools are not installed.

use std::path::PathBuf;
use std::process::Command;

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../mkstorage-fat-read-image")
}

fn have(tool: &str) -> bool {
    Command::new("sh").arg("-c").arg(format!("command -v {tool}")).output().map(|o| o.status.success()).unwrap_or(false)
}

#[test]
fn fat_image_is_built_checked_and_reproducible() {
    if !(have("mkfs.fat") && have("mcopy") && have("python3")) {
        println!("SKIPPED: mkfs.fat/mcopy/python3 not installed (apt-get install dosfstools mtools)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("fat-script-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let build = |name: &str| {
        let img = dir.join(name);
        let out = Command::new(script()).arg(&img).arg("34").env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
        assert!(out.status.success(), "script failed: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::read(img).unwrap()
    };
    let first = build("a.img");
    let second = build("b.img");
    assert_eq!(first.len(), 34 * 1024 * 1024);
    assert_eq!(&first[82..90], b"FAT32   ", "boot sector names FAT32");
    assert!(first == second, "FAT image is not reproducible");
    let too_small = Command::new(script()).arg(dir.join("c.img")).arg("8").output().unwrap();
    assert_eq!(too_small.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}
