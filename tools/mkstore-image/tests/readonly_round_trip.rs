//! `--readonly-fs DIR` then `extract` reproduces DIR byte for byte; fsck is
//! clean; the build is deterministic under SOURCE_DATE_EPOCH.

mod common;
use common::*;

#[test]
fn readonly_image_round_trips_byte_for_byte() {
    let s = Scratch::new("ro-round-trip");
    let src = s.path("src");
    make_source_tree(&src);
    let img = s.path("ro.img");
    ok(&["--readonly-fs", src.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    let bytes = std::fs::read(&img).unwrap();
    assert_eq!(&bytes[..8], b"CAPOSRO1");
    let fsck = ok(&["fsck", img.to_str().unwrap()]);
    assert!(String::from_utf8_lossy(&fsck.stdout).contains("clean"));
    let out = s.path("out");
    ok(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert_same_tree(&src, &out);

    // Same input, same SOURCE_DATE_EPOCH: same bytes.
    let img2 = s.path("ro2.img");
    ok(&["--readonly-fs", src.to_str().unwrap(), "-o", img2.to_str().unwrap()]);
    assert!(bytes == std::fs::read(&img2).unwrap(), "build is not deterministic");

    let listing = String::from_utf8(ok(&["inspect", img.to_str().unwrap()]).stdout).unwrap();
    assert!(listing.contains("format: CAPOSRO1"), "{listing}");
    assert!(listing.contains("file /big.bin size=3145851"), "{listing}");
    assert!(listing.contains("/日本語ディレクトリ/ファイル-ü-é.txt"), "{listing}");
    assert!(listing.contains("modified=1700000000.000000000 (source-date-epoch)"), "{listing}");
}
