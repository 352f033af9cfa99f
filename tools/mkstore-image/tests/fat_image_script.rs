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

/// inspect, fsck and extract read a FAT image through the storage crate's
/// read-only FAT backer; fsck reports a damaged chain as corruption.
#[test]
fn inspect_fsck_and_extract_read_the_fat_image() {
    if !(have("mkfs.fat") && have("mcopy") && have("mshowfat") && have("python3")) {
        println!("SKIPPED: mkfs.fat/mcopy/mshowfat/python3 not installed (apt-get install dosfstools mtools)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("fat-script-tool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let img = dir.join("fat.img");
    let out = Command::new(script()).arg(&img).env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
    assert!(out.status.success(), "script failed: {}", String::from_utf8_lossy(&out.stderr));
    let tool = |args: &[&std::ffi::OsStr]| Command::new(env!("CARGO_BIN_EXE_mkstore-image")).args(args).output().unwrap();

    let out = tool(&["inspect".as_ref(), img.as_os_str()]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("format: FAT32"), "{text}");
    assert!(text.contains("file /hello.txt size=17 "), "{text}");
    assert!(text.contains("file /known-time.txt size=40 ") && text.contains("modified=1704164646.000000000 (fat-directory-entry)"), "{text}");
    assert!(text.contains("file /many/entry-299.txt "), "{text}");
    assert!(text.contains("dir  /nested/deeper/deepest "), "{text}");

    let out = tool(&["fsck".as_ref(), img.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "fsck: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAT32: clean"));

    let extracted = dir.join("out");
    let out = tool(&["extract".as_ref(), img.as_os_str(), extracted.as_os_str()]);
    assert!(out.status.success(), "extract failed: {}", String::from_utf8_lossy(&out.stderr));
    let fragmented = std::fs::read(extracted.join("fragmented.bin")).unwrap();
    assert_eq!(fragmented, (0..40000usize).map(|i| ((7 * i + 3) % 256) as u8).collect::<Vec<_>>());
    assert_eq!(std::fs::read(extracted.join("Ünïcödé-名前.txt")).unwrap(), b"unicode names work\n");
    assert_eq!(std::fs::read_dir(extracted.join("many")).unwrap().count(), 300);

    // Make hello.txt claim more bytes than its one cluster holds.
    let mut bytes = std::fs::read(&img).unwrap();
    let at = bytes.windows(11).position(|w| w == b"HELLO   TXT").expect("hello.txt's 8.3 entry");
    bytes[at + 28..at + 32].copy_from_slice(&4096u32.to_le_bytes());
    let damaged = dir.join("damaged.img");
    std::fs::write(&damaged, bytes).unwrap();
    let out = tool(&["fsck".as_ref(), damaged.as_os_str()]);
    assert_eq!(out.status.code(), Some(4), "fsck of a damaged FAT image: {}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("larger than its cluster chain"));
    let _ = std::fs::remove_dir_all(&dir);
}
