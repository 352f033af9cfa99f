//! Golden byte checks: with SOURCE_DATE_EPOCH pinned, each image kind has
//! exactly these bytes. A change here is a format change: bump the format
//! version or add a feature flag, then update the pins deliberately.

mod common;
use capos_storage::checksum::crc32c;
use common::*;

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

fn check(name: &str, bytes: &[u8], len: usize, crc: u32) {
    println!("{name}: len={} crc={:#010x}", bytes.len(), crc32c(bytes));
    assert_eq!((bytes.len(), crc32c(bytes)), (len, crc), "{name} image bytes changed");
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
    check("CAPOSRO1", &bytes, 3584, 0xe502_68fe);
}

#[test]
fn empty_writable_and_store_images_are_pinned() {
    check("CAPOSWF1 --writable", &golden(&["--writable"], "wf"), 4_194_304, 0x5a99_b28d);
    check("CAPOSWF1 --writable-nvme", &golden(&["--writable-nvme"], "nvme"), 16_777_216, 0x7894_5cf4);
    check("CAPOSST1 --store", &golden(&["--store"], "st"), 1_048_576, 0x54da_c048);
    check("co-located", &golden(&["--colocated"], "co"), 5_242_880, 0xd3b6_fc00);
}

#[test]
fn seeded_store_image_is_pinned() {
    let s = Scratch::new("golden-kv");
    let kv = s.path("seed.kv");
    std::fs::write(&kv, "config/name\tcapOS\nconfig/zeros\t%00%00%00\n").unwrap();
    check("CAPOSST1 seeded", &golden(&["--store", "--seed", kv.to_str().unwrap()], "st-seeded"), 1_048_576, 0xd0cf_9f4a);
}

#[test]
fn seeded_writable_image_is_pinned() {
    let s = Scratch::new("golden-wf-src");
    let src = s.path("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), b"welcome to capOS\n").unwrap();
    std::fs::write(src.join("data.bin"), (0..3000u32).map(|i| (i % 7) as u8).collect::<Vec<_>>()).unwrap();
    check("CAPOSWF1 seeded", &golden(&["--writable", "--blocks", "1024", "--seed", src.to_str().unwrap()], "wf-seeded"), 524_288, 0x61b2_e8dc);
}
