//! The writable, store, co-located and NVMe images: seeded builds round-trip
//! through `extract`, fsck is clean, and the NVMe image size is pinned.

mod common;
use common::*;

#[test]
fn writable_image_seeded_round_trips() {
    let s = Scratch::new("wf-round-trip");
    let src = s.path("src");
    make_source_tree(&src);
    let img = s.path("wf.img");
    ok(&["--writable", "--seed", src.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 8192 * 512);
    ok(&["fsck", img.to_str().unwrap()]);
    let out = s.path("out");
    ok(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert_same_tree(&src, &out);
    let listing = String::from_utf8(ok(&["inspect", img.to_str().unwrap()]).stdout).unwrap();
    assert!(listing.contains("format: CAPOSWF1"), "{listing}");
    assert!(listing.contains("created=1700000000.000000000 (source-date-epoch)"), "{listing}");
}

#[test]
fn nvme_namespace_image_is_exactly_16_mib() {
    let s = Scratch::new("nvme");
    let img = s.path("nvme.img");
    ok(&["--writable-nvme", "-o", img.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), 32768 * 512);
    assert_eq!(&std::fs::read(&img).unwrap()[..8], b"CAPOSWF1");
    ok(&["fsck", img.to_str().unwrap()]);
    let src = s.path("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("seeded"), b"hello nvme").unwrap();
    let seeded = s.path("nvme-seeded.img");
    ok(&["--writable-nvme", "--seed", src.to_str().unwrap(), "-o", seeded.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&seeded).unwrap().len(), 16 * 1024 * 1024);
    let out = tool(&["--writable-nvme", "--blocks", "100", "-o", s.path("x").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "the NVMe size is not negotiable");
}

#[test]
fn store_image_seeded_round_trips() {
    let s = Scratch::new("store");
    let kv = s.path("seed.kv");
    std::fs::write(&kv, "# comment\nalpha\t1\nbeta\tsecond value\nbin%00key\t%FF%00%25\nalpha\treplaced\n").unwrap();
    let img = s.path("st.img");
    ok(&["--store", "--seed", kv.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    ok(&["fsck", img.to_str().unwrap()]);
    let out = s.path("out.kv");
    ok(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "alpha\treplaced\nbeta\tsecond value\nbin%00key\t%FF%00%25\n");
    let listing = String::from_utf8(ok(&["inspect", img.to_str().unwrap()]).stdout).unwrap();
    assert!(listing.contains("key beta size=12"), "{listing}");
    assert!(listing.contains("keys: 3 live"), "{listing}");
}

#[test]
fn colocated_image_holds_both() {
    let s = Scratch::new("colocated");
    let kv = s.path("seed.kv");
    std::fs::write(&kv, "k\tv\n").unwrap();
    let src = s.path("src");
    make_source_tree(&src);
    let img = s.path("co.img");
    ok(&["--colocated", "--store-seed", kv.to_str().unwrap(), "--fs-seed", src.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    assert_eq!(std::fs::metadata(&img).unwrap().len(), (2048 + 8192) * 512);
    ok(&["fsck", img.to_str().unwrap()]);
    let out = s.path("out");
    ok(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(out.join("store.kv")).unwrap(), "k\tv\n");
    assert_same_tree(&src, &out.join("fs"));
    let listing = String::from_utf8(ok(&["inspect", img.to_str().unwrap()]).stdout).unwrap();
    assert!(listing.contains("co-located image: CAPOSST1 at block 0 (2048 blocks), CAPOSWF1 at block 2048"), "{listing}");
}
