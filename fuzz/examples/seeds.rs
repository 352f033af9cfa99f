//! Write the seed corpus, fuzz/corpus/TARGET/*, from the project's own
//! builders: the storage crate's formatters, `mkmanifest` for the demo
//! manifests, the capnp params types, and small hand-laid ACPI tables,
//! GPT disks and ELF files. The FAT seeds need `mkfs.fat` and `mmd`/`mcopy`
//! (mtools; tools/setup.sh installs them).
//!
//! `cargo run -p capos-fuzz --example seeds` rewrites the seed files (the
//! names start with `seed-`); files AFL found and a person kept are left
//! alone.

use capos_abi::capos_capnp::{directory, file, rename_params, store};
use capos_abi::message::{to_words, word_bytes};
use capos_fuzz::boot::ACPI_BASE;
use capos_fuzz::images::input_from_disk;
use capos_kcore::acpi::{build_table, fix_checksum};
use capos_kcore::gpt::{crc32, CAPOS_DATA_PARTITION, EFI_SYSTEM_PARTITION};
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::readonly_fs::{build_image, SourceNode};
use capos_storage::store::Store;
use capos_storage::writable_fs::{MountOptions, WritableFs};
use capos_storage::{colocated, store as st, writable_fs, FileSystem, FixedClock, Provenance, Timestamp};
use std::path::Path;
use std::process::Command;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut seeds: Vec<(&str, String, Vec<u8>)> = Vec::new();
    // Each storage image twice: as it is, and with the input's reseal bit
    // (capos_fuzz::images) set, so AFL starts from both kinds of input.
    for (target, name, image) in [("caposro1", "tree", ro_image()), ("caposwf1", "tree", wf_image()), ("caposst1", "keys", st_image()), ("colocated", "both", colocated_image())] {
        seeds.push((target, name.into(), input_from_disk(&image, false)));
        seeds.push((target, format!("{name}-reseal"), input_from_disk(&image, true)));
    }
    match fat_image() {
        Ok(img) => seeds.push(("fat", "fat12-tree".into(), input_from_disk(&img, false))),
        Err(e) => eprintln!("seeds: skipping the FAT seed: {e}"),
    }
    for (name, bytes) in call_seeds() {
        seeds.push(("capnp_call", name.into(), bytes));
    }
    for (name, bytes) in manifest_seeds() {
        seeds.push(("manifest", name, bytes));
    }
    // The ACPI and GPT inputs start with a mode byte: 1 fixes checksums
    // before parsing (capos_fuzz::boot); each seed comes in both modes.
    for mode in [0u8, 1] {
        seeds.push(("acpi", format!("qemu-like-mode{mode}"), [vec![mode], acpi_seed()].concat()));
        seeds.push(("gpt", format!("two-partitions-mode{mode}"), [vec![mode], input_from_disk(&gpt_disk(), false)].concat()));
    }
    seeds.push(("elf", "two-segments".into(), elf_seed()));
    for (target, name, bytes) in seeds {
        assert!(capos_fuzz::target(target).is_some(), "no target {target}");
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("seed-{name}"));
        std::fs::write(&path, &bytes).unwrap();
        println!("{:6} bytes  {}", bytes.len(), path.display());
    }
}

fn clock() -> FixedClock {
    FixedClock(Timestamp::new(1_700_000_000_000_000_000, Provenance::Rtc))
}

/// Three levels, a three-block file, an empty file and directory, a
/// Unicode name; file times from the host, the directories' unknown.
fn ro_image() -> Vec<u8> {
    let mtime = Some(Timestamp::new(1_600_000_000_000_000_000, Provenance::HostFileMtime));
    let file = |data: Vec<u8>| SourceNode::File { data, mtime };
    let dir = |entries: Vec<(&str, SourceNode)>| SourceNode::Directory { entries: entries.into_iter().map(|(n, e)| (n.to_string(), e)).collect(), mtime: None };
    let tree = dir(vec![
        ("hello.txt", file(b"hello\n".to_vec())),
        ("nested", dir(vec![("deeper", dir(vec![("leaf", file((0..1500).map(|i| i as u8).collect()))])), ("empty-dir", dir(vec![]))])),
        ("ünï", file(b"unicode".to_vec())),
        ("zero", file(vec![])),
    ]);
    build_image(&tree, Timestamp::UNKNOWN).unwrap()
}

/// A small tree with a two-block file, written and synced twice (so the
/// image holds an older commit too).
fn fill_fs<F: FileSystem>(fs: &mut F) {
    let root = fs.root();
    let d = fs.mkdir(root, "d").unwrap();
    let f = fs.create(d, "f").unwrap();
    fs.write(f, 0, &[5u8; 700]).unwrap();
    fs.sync().unwrap();
    fs.mkdir(d, "e").unwrap();
    let g = fs.create(root, "g").unwrap();
    fs.write(g, 0, b"gee").unwrap();
    fs.sync().unwrap();
}

fn wf_image() -> Vec<u8> {
    let mut dev = MemBlockDevice::new(96);
    writable_fs::format(&mut dev, Some(8), Timestamp::UNKNOWN).unwrap();
    let mut fs = WritableFs::mount(dev, clock(), MountOptions::default()).unwrap();
    fill_fs(&mut fs);
    fs.into_device().into_bytes()
}

fn fill_store<D: capos_storage::BlockDevice>(s: &mut Store<D>) {
    s.put(b"one", b"1").unwrap();
    s.put(b"two", &[2u8; 600]).unwrap();
    s.put(b"one", b"uno").unwrap();
    s.delete(b"two").unwrap();
    s.put(b"three", b"3").unwrap();
}

fn st_image() -> Vec<u8> {
    let mut dev = MemBlockDevice::new(24);
    st::format(&mut dev, Some(1)).unwrap();
    let mut s = Store::mount(dev, false).unwrap();
    fill_store(&mut s);
    s.into_device().into_bytes()
}

fn colocated_image() -> Vec<u8> {
    use capos_storage::partition::Partition;
    let mut disk = MemBlockDevice::new(24 + 96);
    let layout = colocated::format(&mut disk, 24, Timestamp::UNKNOWN).unwrap();
    {
        let mut s = Store::mount(Partition::new(&mut disk, 0, layout.store_blocks).unwrap(), false).unwrap();
        fill_store(&mut s);
    }
    {
        let part = Partition::new(&mut disk, layout.fs_start, layout.fs_blocks).unwrap();
        let mut fs = WritableFs::mount(part, clock(), MountOptions::default()).unwrap();
        fill_fs(&mut fs);
    }
    disk.into_bytes()
}

/// A 64 KiB FAT12 volume with a long name, a subdirectory and a
/// two-cluster file, made by the real mkfs.fat and mtools. Every time in
/// it is fixed (the host tree's, kept by `mcopy -m`), so the seed is the
/// same on every run.
fn fat_image() -> Result<Vec<u8>, String> {
    let dir = std::env::temp_dir().join(format!("capos-fuzz-seeds-{}", std::process::id()));
    let tree = dir.join("tree");
    std::fs::create_dir_all(tree.join("sub")).map_err(|e| e.to_string())?;
    let img = dir.join("fat.img");
    let _ = std::fs::remove_file(&img);
    let run = |cmd: &mut Command| -> Result<(), String> {
        let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
        if out.status.success() { Ok(()) } else { Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr))) }
    };
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::write(tree.join("A long file name.txt"), b"hello\n").unwrap();
    std::fs::write(tree.join("sub/two.bin"), [9u8; 3000]).unwrap();
    for p in ["A long file name.txt", "sub/two.bin", "sub"] {
        std::fs::File::open(tree.join(p)).unwrap().set_modified(when).unwrap();
    }
    run(Command::new("mkfs.fat").env("SOURCE_DATE_EPOCH", "1600000000").args(["-C", "-F", "12", "-i", "12345678"]).arg(&img).arg("64"))?;
    let mut mcopy = Command::new("mcopy");
    mcopy.args(["-s", "-m", "-i"]).arg(&img).arg(tree.join("A long file name.txt")).arg(tree.join("sub")).arg("::/").env("MTOOLS_SKIP_CHECK", "1");
    run(&mut mcopy)?;
    let bytes = std::fs::read(&img).map_err(|e| e.to_string())?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(bytes)
}

/// Params of the storage methods, each as a call (see capos_fuzz::call
/// for the two leading bytes).
fn call_seeds() -> Vec<(&'static str, Vec<u8>)> {
    fn call(flags: u8, method: u8, words: Vec<u64>) -> Vec<u8> {
        let mut v = vec![flags, method];
        v.extend_from_slice(word_bytes(&words));
        v
    }
    vec![
        ("dir-open", call(0, 0, to_words::<directory::open_params::Owned>(|mut b| { b.set_name("hello.txt"); Ok(()) }).unwrap())),
        ("dir-list", call(0, 1, vec![])),
        ("dir-mkdir", call(0, 2, to_words::<directory::mkdir_params::Owned>(|mut b| { b.set_name("new"); Ok(()) }).unwrap())),
        ("dir-rename", call(16, 6, to_words::<rename_params::Owned>(|mut b| { b.set_from("a"); b.set_to("b"); b.get_target().set_directory(0); Ok(()) }).unwrap())),
        ("file-read", call(1, 0, to_words::<file::read_params::Owned>(|mut b| { b.set_offset(10); b.set_length(100); Ok(()) }).unwrap())),
        ("file-read-bulk", call(1 | 8, 0, to_words::<file::read_params::Owned>(|mut b| { b.set_offset(0); b.set_length(4096); Ok(()) }).unwrap())),
        ("file-write", call(1, 1, to_words::<file::write_params::Owned>(|mut b| { b.set_offset(3); b.set_data(b"data"); Ok(()) }).unwrap())),
        ("file-write-bulk", call(1 | 4, 1, to_words::<file::write_params::Owned>(|mut b| { b.set_offset(3); Ok(()) }).unwrap())),
        ("file-stat", call(1, 2, vec![])),
        ("file-truncate", call(1, 3, to_words::<file::truncate_params::Owned>(|mut b| { b.set_size(5); Ok(()) }).unwrap())),
        ("store-put", call(2, 0, to_words::<store::put_params::Owned>(|mut b| { b.set_key(b"k"); b.set_value(b"v"); Ok(()) }).unwrap())),
        ("store-get", call(2, 1, to_words::<store::get_params::Owned>(|mut b| { b.set_key(b"key"); Ok(()) }).unwrap())),
        ("store-list", call(2 | 8, 4, to_words::<store::list_params::Owned>(|mut b| { b.set_after(b"k\x03"); b.set_limit(4); Ok(()) }).unwrap())),
    ]
}

/// The demo manifests, compiled as `mkmanifest` does.
fn manifest_seeds() -> Vec<(String, Vec<u8>)> {
    let demos = Path::new(env!("CARGO_MANIFEST_DIR")).join("../demos");
    let mut out = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&demos).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "manifest")).collect();
    paths.sort();
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        match mkmanifest::parse(&text) {
            Ok(m) => out.push((path.file_stem().unwrap().to_string_lossy().into_owned(), m.encode().unwrap())),
            Err(e) => eprintln!("seeds: {} does not parse ({e:?}); skipped", path.display()),
        }
    }
    out
}

/// RSDP (revision 2) at ACPI_BASE, then an XSDT naming a MADT (local APIC,
/// I/O APIC, two overrides, an NMI), an MCFG, an HPET and a FADT whose
/// DSDT follows it.
fn acpi_seed() -> Vec<u8> {
    let madt = {
        let mut b = vec![0u8; 8];
        b[..4].copy_from_slice(&0xfee0_0000u32.to_le_bytes());
        b[4] = 1;
        for e in [
            vec![0, 8, 0, 0, 1, 0, 0, 0],
            vec![1, 12, 0, 0, 0x00, 0x00, 0xc0, 0xfe, 0, 0, 0, 0],
            vec![2, 10, 0, 0, 2, 0, 0, 0, 0, 0],
            vec![2, 10, 0, 9, 9, 0, 0, 0, 0x0d, 0],
            vec![4, 6, 0xff, 0x05, 0, 1],
        ] {
            b.extend_from_slice(&e);
        }
        build_table(b"APIC", &b)
    };
    let mut mcfg = vec![0u8; 8];
    mcfg.extend_from_slice(&0xb000_0000u64.to_le_bytes());
    mcfg.extend_from_slice(&[0, 0, 0, 0xff, 0, 0, 0, 0]);
    let mcfg = build_table(b"MCFG", &mcfg);
    let mut hpet = vec![0u8; 20];
    hpet[..4].copy_from_slice(&0x8086_a201u32.to_le_bytes());
    hpet[8..16].copy_from_slice(&0xfed0_0000u64.to_le_bytes());
    let hpet = build_table(b"HPET", &hpet);
    let dsdt = build_table(b"DSDT", &[0x10, 0x0a, b'_', b'S', b'B', b'_']);
    // Lay out: RSDP (36) | XSDT | MADT | MCFG | HPET | FADT | DSDT.
    let xsdt_len = 36 + 8 * 4;
    let mut at = ACPI_BASE + 36 + xsdt_len as u64;
    let mut addrs = Vec::new();
    for t in [&madt, &mcfg, &hpet] {
        addrs.push(at);
        at += t.len() as u64;
    }
    let fadt_at = at;
    addrs.push(fadt_at);
    let mut fadt = vec![0u8; 244 - 36];
    let dsdt_at = fadt_at + 244;
    fadt[40 - 36..44 - 36].copy_from_slice(&(dsdt_at as u32).to_le_bytes());
    fadt[46 - 36..48 - 36].copy_from_slice(&9u16.to_le_bytes()); // SCI
    fadt[76 - 36..80 - 36].copy_from_slice(&0x608u32.to_le_bytes()); // PM timer block
    fadt[91 - 36] = 4;
    fadt[140 - 36..148 - 36].copy_from_slice(&dsdt_at.to_le_bytes());
    let fadt = build_table(b"FACP", &fadt);
    let mut xsdt_body = Vec::new();
    for a in &addrs {
        xsdt_body.extend_from_slice(&a.to_le_bytes());
    }
    let xsdt = build_table(b"XSDT", &xsdt_body);
    let mut rsdp = vec![0u8; 36];
    rsdp[..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(b"CAPOS ");
    rsdp[15] = 2;
    rsdp[20..24].copy_from_slice(&36u32.to_le_bytes());
    rsdp[24..32].copy_from_slice(&(ACPI_BASE + 36).to_le_bytes());
    fix_checksum(&mut rsdp[..20], 8);
    fix_checksum(&mut rsdp, 32);
    [rsdp, xsdt, madt, mcfg, hpet, fadt, dsdt].concat()
}

/// A 16-block disk: protective MBR, primary header and a one-block array
/// of four entries (an EFI system partition and a capOS data partition),
/// and their backups at the end.
fn gpt_disk() -> Vec<u8> {
    const BLOCKS: u64 = 16;
    let mut disk = vec![0u8; BLOCKS as usize * 512];
    // Protective MBR.
    disk[446 + 4] = 0xEE;
    disk[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
    disk[446 + 12..446 + 16].copy_from_slice(&((BLOCKS - 1) as u32).to_le_bytes());
    disk[510] = 0x55;
    disk[511] = 0xAA;
    let mut entries = vec![0u8; 512];
    for (i, (ty, first, last, name)) in [(EFI_SYSTEM_PARTITION, 4u64, 7u64, "EFI"), (CAPOS_DATA_PARTITION, 8, 12, "capos-data")].iter().enumerate() {
        let e = &mut entries[i * 128..(i + 1) * 128];
        e[..16].copy_from_slice(&ty.to_bytes());
        e[16..32].copy_from_slice(&[i as u8 + 1; 16]);
        e[32..40].copy_from_slice(&first.to_le_bytes());
        e[40..48].copy_from_slice(&last.to_le_bytes());
        for (j, u) in name.encode_utf16().enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&u.to_le_bytes());
        }
    }
    let array_crc = crc32(&entries);
    let header = |my: u64, alt: u64, array: u64| {
        let mut h = vec![0u8; 512];
        h[..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my.to_le_bytes());
        h[32..40].copy_from_slice(&alt.to_le_bytes());
        h[40..48].copy_from_slice(&3u64.to_le_bytes());
        h[48..56].copy_from_slice(&(BLOCKS - 3).to_le_bytes());
        h[56..72].copy_from_slice(&[0x42; 16]);
        h[72..80].copy_from_slice(&array.to_le_bytes());
        h[80..84].copy_from_slice(&4u32.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&array_crc.to_le_bytes());
        let crc = crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let put = |disk: &mut Vec<u8>, lba: u64, b: &[u8]| disk[lba as usize * 512..lba as usize * 512 + b.len()].copy_from_slice(b);
    put(&mut disk, 1, &header(1, BLOCKS - 1, 2));
    put(&mut disk, 2, &entries);
    put(&mut disk, BLOCKS - 2, &entries);
    put(&mut disk, BLOCKS - 1, &header(BLOCKS - 1, 1, BLOCKS - 2));
    disk
}

/// A static x86_64 executable: a read-execute text segment and a
/// read-write data segment with a .bss tail.
fn elf_seed() -> Vec<u8> {
    let phnum = 2u16;
    let mut f = vec![0u8; 64 + 56 * phnum as usize];
    f[..4].copy_from_slice(b"\x7fELF");
    f[4] = 2; // 64-bit
    f[5] = 1; // little endian
    f[6] = 1;
    f[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f[18..20].copy_from_slice(&62u16.to_le_bytes()); // x86_64
    f[20..24].copy_from_slice(&1u32.to_le_bytes());
    f[24..32].copy_from_slice(&0x20_10b0u64.to_le_bytes()); // entry
    f[32..40].copy_from_slice(&64u64.to_le_bytes()); // phoff
    f[52..54].copy_from_slice(&64u16.to_le_bytes());
    f[54..56].copy_from_slice(&56u16.to_le_bytes());
    f[56..58].copy_from_slice(&phnum.to_le_bytes());
    f[58..60].copy_from_slice(&64u16.to_le_bytes());
    // (flags, offset, vaddr, filesz, memsz)
    let segments = [(5u32, 0xb0u64, 0x20_10b0u64, 0x40u64, 0x40u64), (6, 0xf0, 0x20_20f0, 0x10, 0x100)];
    for (i, (flags, offset, vaddr, filesz, memsz)) in segments.iter().enumerate() {
        let p = &mut f[64 + 56 * i..64 + 56 * (i + 1)];
        p[..4].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        p[4..8].copy_from_slice(&flags.to_le_bytes());
        p[8..16].copy_from_slice(&offset.to_le_bytes());
        p[16..24].copy_from_slice(&vaddr.to_le_bytes());
        p[24..32].copy_from_slice(&vaddr.to_le_bytes());
        p[32..40].copy_from_slice(&filesz.to_le_bytes());
        p[40..48].copy_from_slice(&memsz.to_le_bytes());
        p[48..56].copy_from_slice(&0x1000u64.to_le_bytes());
    }
    f.resize(0x100, 0);
    f[0xb0..0xf0].fill(0x90);
    f[0xf0..0x100].fill(0x11);
    f
}
