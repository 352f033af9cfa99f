//! Golden byte checks: with SOURCE_DATE_EPOCH pinned, each image kind has
//! exactly these bytes. A change here is a format change: bump the format
//! version or add a feature flag, then update the pins deliberately.
//!
//! The pins are SHA-256 digests. They were CRC32C of the image until a
//! feature flag changed in a store's superblock and the pin did not move:
//! every block of these formats ends with its own CRC32C, and the CRC of a
//! run of such sealed blocks is the same whatever they hold.

mod common;
use capos_storage::features::FeatureFlags;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::store::{self, Store};
use common::*;
use sha2::{Digest, Sha256};

fn golden(args: &[&str], name: &str) -> Vec<u8> {
    let s = Scratch::new(&format!("golden-{name}"));
    let img = s.path("out.img");
    let mut full: Vec<&str> = args.to_vec();
    let img_str = img.to_str().unwrap().to_string();
    full.extend(["-o", &img_str]);
    ok(&full);
    std::fs::read(&img).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn check(name: &str, bytes: &[u8], len: usize, digest: &str) {
    println!("{name}: len={} sha256={}", bytes.len(), sha256(bytes));
    assert_eq!((bytes.len(), sha256(bytes).as_str()), (len, digest), "{name} image bytes changed");
}

#[test]
fn readonly_image_bytes_are_pinned() {
    let s = Scratch::new("golden-ro-src");
    let src = s.path("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("a.txt"), b"hello\n").unwrap();
    std::fs::write(src.join("d/b"), (0..1000u32).map(|i| i as u8).collect::<Vec<_>>()).unwrap();
    let bytes = golden(&["--readonly-fs", src.to_str().unwrap()], "ro");
    // Superblock header: magic, version 1, no features, 512-byte blocks, total blocks.
    assert_eq!(
        hex(&bytes[..56]),
        "4341504f53524f3101000000000000000000000000000000000000000000000000000000000000000002000000000000"
            .to_string() + "0700000000000000"
    );
    check("CAPOSRO1", &bytes, 3584, "28d5156f9c1682630f9a82c04e08031523c782cae52b8b8eb1c58cd8065ff313");
}

#[test]
fn empty_writable_and_store_images_are_pinned() {
    check("CAPOSWF1 --writable", &golden(&["--writable"], "wf"), 4_194_304, "e486ac1ad201cf2a6744fc01e21040f64c966323f751e78e14912bd6ed006324");
    check("CAPOSWF1 --writable-nvme", &golden(&["--writable-nvme"], "nvme"), 16_777_216, "a4f10e88756d033f8f6d7de97cc24b4e0db636896b56d3c4481fb743881cea1d");
    check("CAPOSST1 --store", &golden(&["--store"], "st"), 1_048_576, "3b54c58937bf37136da37adc33f6258e08d0c907819d51f3eb390b025b7da25b");
    check("co-located", &golden(&["--colocated"], "co"), 5_242_880, "edd755ee4d0f16cf824a8e6d8cd7e4aca7e7143ee78f8560d64cee6ad975faea");
}

#[test]
fn seeded_store_image_is_pinned() {
    let s = Scratch::new("golden-kv");
    let kv = s.path("seed.kv");
    std::fs::write(&kv, "config/name\tcapOS\nconfig/zeros\t%00%00%00\n").unwrap();
    check("CAPOSST1 seeded", &golden(&["--store", "--seed", kv.to_str().unwrap()], "st-seeded"), 1_048_576, "5b95d777f6577fce3dcdbdbe0548f5265d0907d56a03372de2f836d2e458d451");
}

#[test]
fn seeded_writable_image_is_pinned() {
    let s = Scratch::new("golden-wf-src");
    let src = s.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), b"welcome to capOS\n").unwrap();
    std::fs::write(src.join("data.bin"), (0..3000u32).map(|i| (i % 7) as u8).collect::<Vec<_>>()).unwrap();
    check("CAPOSWF1 seeded", &golden(&["--writable", "--blocks", "1024", "--seed", src.to_str().unwrap()], "wf-seeded"), 524_288, "2bf78aba23dd9f51af835a92c4fb4257ff6d584ba1d6e92f3b26937ebed7ae66");
}

/// Stores formatted before the single-flush feature: the library's legacy
/// format gives byte for byte what the tools wrote then (these digests are
/// of images `mkstore-image --store` and `--store --seed` wrote before the
/// feature existed), and such a store still mounts, keeps its two-flush
/// commits, takes new puts and passes fsck.
#[test]
fn stores_written_before_the_single_flush_feature_still_work() {
    let legacy = || {
        let mut dev = MemBlockDevice::new(2048);
        store::format_with_features(&mut dev, None, FeatureFlags::NONE).unwrap();
        dev
    };
    assert_eq!(sha256(&legacy().into_bytes()), "22dc77e8fbdcd47819760e8e6ce8de27beeb9715558028e962b5df428b0fa9dd");
    let mut st = Store::mount(legacy(), false).unwrap();
    st.put(b"config/name", b"capOS").unwrap();
    st.put(b"config/zeros", &[0, 0, 0]).unwrap();
    let seeded = st.into_device().into_bytes();
    assert_eq!(sha256(&seeded), "cc454d9f5a752eb2dc1f93c7e8cd1b32596cc48cbc421dc751f3330b132699af");

    let mut st = Store::mount(MemBlockDevice::from_bytes(seeded), false).unwrap();
    assert!(!st.single_flush(), "a legacy store keeps flushing its data before the record");
    assert_eq!(st.get(b"config/name").unwrap().as_deref(), Some(&b"capOS"[..]));
    st.device().reset_counters();
    st.put(b"added/later", b"by today's code").unwrap();
    assert_eq!(st.device().flushes, 2, "two flushes per commit on a legacy store");
    let s = Scratch::new("golden-legacy");
    let img = s.path("legacy.img");
    std::fs::write(&img, st.into_device().into_bytes()).unwrap();
    let out = ok(&["fsck", img.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("CAPOSST1: clean (generation 3, 3 live keys, 3 entries)"), "{stdout}");
    let out = ok(&["inspect", img.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("features: compatible=0x0") && stdout.contains("formatted before the single-flush feature"), "{stdout}");

    let mut new = MemBlockDevice::new(2048);
    store::format(&mut new, None).unwrap();
    let mut st = Store::mount(new, false).unwrap();
    st.device().reset_counters();
    st.put(b"k", b"v").unwrap();
    assert_eq!(st.device().flushes, 1, "one flush per commit on a new store");
}
