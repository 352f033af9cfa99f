//! Hostile images: systematic corruption of every format must yield an
//! error (or, where a format legitimately falls back to an older commit, a
//! consistent older state) — never a panic, a hang or an unbounded
//! allocation. Random damage is swept byte by byte; structural attacks
//! that keep every checksum valid (cycles, shared blocks, bad names,
//! absurd sizes, out-of-range pointers) are crafted one by one.

mod support;

use capos_storage::checksum::crc32c;
use capos_storage::codec::seal;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::readonly_fs::{build_image, ReadOnlyFs, SourceNode};
use capos_storage::store::{self, Store};
use capos_storage::writable_fs::layout::{CommitRecord, NodeRecord, RecordKind, WfGeometry, CHAIN_ENTRIES_PER_BLOCK};
use capos_storage::writable_fs::metadata::Metadata;
use capos_storage::writable_fs::{self, MountOptions, WritableFs};
use capos_storage::{FileSystem, FixedClock, Provenance, StorageError, Timestamp};
use support::*;

// ---------- sample images ----------

fn ro_image() -> Vec<u8> {
    let file = |data: &[u8]| SourceNode::File { data: data.to_vec(), mtime: Some(Timestamp::new(7, Provenance::HostFileMtime)) };
    let tree = SourceNode::Directory {
        entries: vec![
            ("a".into(), file(b"alpha")),
            ("d".into(), SourceNode::Directory { entries: vec![("b".into(), file(&[3u8; 700])), ("e".into(), SourceNode::Directory { entries: vec![], mtime: None })], mtime: None }),
            ("z".into(), file(b"")),
        ],
        mtime: None,
    };
    build_image(&tree, Timestamp::UNKNOWN).unwrap()
}

fn wf_image() -> Vec<u8> {
    let mut dev = MemBlockDevice::new(96);
    writable_fs::format(&mut dev, Some(8), Timestamp::UNKNOWN).unwrap();
    let mut fs = WritableFs::mount(dev, FixedClock(Timestamp::new(9, Provenance::Rtc)), MountOptions::default()).unwrap();
    let root = fs.root();
    let d = fs.mkdir(root, "d").unwrap();
    let f = fs.create(d, "f").unwrap();
    fs.write(f, 0, &[5u8; 1300]).unwrap();
    fs.mkdir(d, "e").unwrap();
    let g = fs.create(root, "g").unwrap();
    fs.write(g, 0, b"gee").unwrap();
    fs.sync().unwrap();
    fs.into_device().into_bytes()
}

fn st_image() -> Vec<u8> {
    let mut dev = MemBlockDevice::new(24);
    store::format(&mut dev, Some(1)).unwrap();
    let mut s = Store::mount(dev, false).unwrap();
    s.put(b"one", b"1").unwrap();
    s.put(b"two", &[2u8; 600]).unwrap();
    s.put(b"one", b"uno").unwrap();
    s.delete(b"two").unwrap();
    s.into_device().into_bytes()
}

// ---------- "open and use everything" probes: errors are fine, panics are not ----------

fn probe_ro(image: Vec<u8>) -> Result<Snapshot, StorageError> {
    let mut fs = ReadOnlyFs::mount(MemBlockDevice::from_bytes(image))?;
    let snap = snapshot(&mut fs)?;
    for path in snap.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.clone()).collect::<Vec<_>>() {
        let file = resolve(&mut fs, &path)?;
        fs.verify_file(file)?;
    }
    Ok(snap)
}

fn probe_wf(image: Vec<u8>) -> Result<Snapshot, StorageError> {
    let mut fs = WritableFs::mount(MemBlockDevice::from_bytes(image), FixedClock(Timestamp::UNKNOWN), MountOptions::default())?;
    let snap = snapshot(&mut fs)?;
    // A volume that mounted must also accept writes and remount.
    let root = fs.root();
    if let Ok(f) = fs.create(root, "probe") {
        fs.write(f, 0, &[1u8; 2000])?;
        fs.sync()?;
        let dev = fs.into_device();
        WritableFs::mount(dev, FixedClock(Timestamp::UNKNOWN), MountOptions::default())?;
    }
    Ok(snap)
}

fn probe_st(image: Vec<u8>) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StorageError> {
    let mut s = Store::mount(MemBlockDevice::from_bytes(image), false)?;
    let entries = s.entries()?;
    s.put(b"probe", b"x")?;
    Ok(entries)
}

/// Flip bits in every byte of `range` (three masks per byte) and probe.
fn sweep<T>(name: &str, image: &[u8], blocks: std::ops::Range<usize>, probe: impl Fn(Vec<u8>) -> Result<T, StorageError>) -> (u64, u64) {
    let (mut mounted, mut refused) = (0u64, 0u64);
    for at in blocks.start * 512..blocks.end * 512 {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = image.to_vec();
            bad[at] ^= mask;
            match probe(bad) {
                Ok(_) => mounted += 1,
                Err(_) => refused += 1,
            }
        }
    }
    report(&format!("{name}: {} corrupted images: {refused} refused, {mounted} opened (damage outside live structures, or an older commit)", mounted + refused));
    (mounted, refused)
}

fn truncations<T>(image: &[u8], probe: impl Fn(Vec<u8>) -> Result<T, StorageError>) {
    for blocks in 0..image.len() / 512 {
        assert!(probe(image[..blocks * 512].to_vec()).is_err(), "truncated to {blocks} blocks must not open");
    }
}

#[test]
fn readonly_sweep() {
    let image = ro_image();
    let clean = probe_ro(image.clone()).unwrap();
    assert_eq!(clean.len(), 6);
    let (_, refused) = sweep("CAPOSRO1 bit flips", &image, 0..image.len() / 512, probe_ro);
    assert!(refused > 0);
    truncations(&image, probe_ro);
}

#[test]
fn writable_sweep() {
    let image = wf_image();
    probe_wf(image.clone()).unwrap();
    let geometry = WfGeometry::compute(96, 8).unwrap();
    let metadata_end = geometry.data_lba as usize;
    let (_, refused) = sweep("CAPOSWF1 bit flips", &image, 0..metadata_end, probe_wf);
    assert!(refused > 0);
    // Zeroed data blocks are not metadata: the volume still opens.
    truncations(&image[..metadata_end * 512], probe_wf);
}

#[test]
fn store_sweep() {
    let image = st_image();
    assert_eq!(probe_st(image.clone()).unwrap(), vec![(b"one".to_vec(), b"uno".to_vec())]);
    let (_, refused) = sweep("CAPOSST1 bit flips", &image, 0..image.len() / 512, probe_st);
    assert!(refused > 0);
    truncations(&image, probe_st);
}

/// Many random bytes changed at once, across the whole image, with the
/// superblock resealed so the damage gets past the first check.
fn scramble<T>(name: &str, image: &[u8], rounds: u64, probe: impl Fn(Vec<u8>) -> Result<T, StorageError>) {
    let mut rng = Rng(0x5C4A_4B1E);
    let (mut opened, mut refused) = (0u64, 0u64);
    for _ in 0..rounds {
        let mut bad = image.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bad.len() as u64) as usize;
            bad[at] = rng.next_u64() as u8;
        }
        if rng.chance(50) {
            bad[..8].copy_from_slice(&image[..8]);
            bad[8..12].copy_from_slice(&image[8..12]);
            seal(&mut bad[..512]).unwrap();
        }
        match probe(bad) {
            Ok(_) => opened += 1,
            Err(_) => refused += 1,
        }
    }
    report(&format!("{name}: {rounds} scrambled images: {refused} refused, {opened} opened"));
}

#[test]
fn scrambled_images() {
    scramble("CAPOSRO1", &ro_image(), 3000, probe_ro);
    scramble("CAPOSWF1", &wf_image(), 3000, probe_wf);
    scramble("CAPOSST1", &st_image(), 3000, probe_st);
}

#[test]
fn wrong_magic_and_versions_are_refused() {
    for (image, magic_err) in [(ro_image(), "CAPOSRO1"), (wf_image(), "CAPOSWF1"), (st_image(), "CAPOSST1")] {
        let mut bad = image.clone();
        bad[..8].copy_from_slice(b"CAPOSXX1");
        let opened = match magic_err {
            "CAPOSRO1" => probe_ro(bad).err(),
            "CAPOSWF1" => probe_wf(bad).err(),
            _ => probe_st(bad).err(),
        };
        assert!(matches!(opened, Some(StorageError::BadMagic { .. })), "{magic_err}: {opened:?}");
        let mut bad = image.clone();
        bad[8] = 2;
        seal(&mut bad[..512]).unwrap();
        let opened = match magic_err {
            "CAPOSRO1" => probe_ro(bad).err(),
            "CAPOSWF1" => probe_wf(bad).err(),
            _ => probe_st(bad).err(),
        };
        assert!(matches!(opened, Some(StorageError::UnsupportedVersion { version: 2, .. })), "{magic_err}: {opened:?}");
    }
}

/// The attack must be refused, and for the reason the test names.
fn expect_refusal<T: std::fmt::Debug>(format: &str, name: &str, expected: &str, result: Result<T, StorageError>) {
    match result {
        Ok(v) => panic!("{format} {name}: hostile image accepted: {v:?}"),
        Err(e) => {
            let message = e.to_string();
            assert!(message.contains(expected), "{format} {name}: refused for the wrong reason: {message:?} (expected {expected:?})");
            println!("{format} {name}: refused: {message}");
        }
    }
}

// ---------- crafted CAPOSRO1 attacks (checksums kept valid) ----------

/// Rewrite node `index` of a CAPOSRO1 image through `edit` on its raw
/// 64-byte record (bytes 0..60), resealing it.
fn ro_edit_record(image: &mut [u8], index: usize, edit: impl FnOnce(&mut [u8])) {
    let at = 512 + index * 64;
    edit(&mut image[at..at + 60]);
    seal(&mut image[at..at + 64]).unwrap();
}

/// Replace the entry list of directory node `index` (same length), fixing its data CRC.
fn ro_edit_list(image: &mut [u8], index: usize, edit: impl FnOnce(&mut [u8])) {
    let at = 512 + index * 64;
    let size = u64::from_le_bytes(image[at + 8..at + 16].try_into().unwrap()) as usize;
    let lba = u64::from_le_bytes(image[at + 16..at + 24].try_into().unwrap()) as usize;
    edit(&mut image[lba * 512..lba * 512 + size]);
    let crc = crc32c(&image[lba * 512..lba * 512 + size]);
    ro_edit_record(image, index, |r| r[32..36].copy_from_slice(&crc.to_le_bytes()));
}

fn ro_attack(name: &str, expected: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut image = ro_image();
    edit(&mut image);
    let result = probe_ro(image);
    expect_refusal("CAPOSRO1", name, expected, result);
}

#[test]
fn readonly_crafted_attacks() {
    // Nodes (BFS): 0 root [a, d, z], 1 a, 2 d [b, e], 3 z, 4 b, 5 e.
    ro_attack("directory cycle (d lists the root)", "corrupt image: entry points outside the node table", |i| ro_edit_list(i, 2, |l| l[..4].copy_from_slice(&0u32.to_le_bytes())));
    ro_attack("directory cycle (d lists itself)", "corrupt image: directory cycle or shared child", |i| ro_edit_list(i, 2, |l| l[..4].copy_from_slice(&2u32.to_le_bytes())));
    ro_attack("child shared by two directories", "corrupt image: directory cycle or shared child", |i| ro_edit_list(i, 2, |l| l[..4].copy_from_slice(&1u32.to_le_bytes())));
    ro_attack("entry out of the node table", "corrupt image: entry points outside the node table", |i| ro_edit_list(i, 0, |l| l[..4].copy_from_slice(&999u32.to_le_bytes())));
    ro_attack("name with '/'", "corrupt image: contains '/'", |i| ro_edit_list(i, 0, |l| l[6] = b'/'));
    ro_attack("name with NUL", "corrupt image: contains NUL", |i| ro_edit_list(i, 0, |l| l[6] = 0));
    ro_attack("name '.'", "corrupt image: '.' and '..' are reserved", |i| ro_edit_list(i, 0, |l| l[6] = b'.'));
    ro_attack("name not UTF-8", "corrupt image: entry name is not UTF-8", |i| ro_edit_list(i, 0, |l| l[6] = 0xFF));
    ro_attack("name length past the list", "structure truncated: image ends before the data it describes", |i| ro_edit_list(i, 0, |l| l[4..6].copy_from_slice(&60000u16.to_le_bytes())));
    ro_attack("entries out of order", "corrupt image: directory entries unsorted or duplicated", |i| ro_edit_list(i, 0, |l| { l[6] = b'y'; }));
    ro_attack("absurd file size", "corrupt image: node data out of range", |i| ro_edit_record(i, 1, |r| r[8..16].copy_from_slice(&(1u64 << 62).to_le_bytes())));
    ro_attack("file data past the image", "corrupt image: node data out of range", |i| ro_edit_record(i, 4, |r| r[16..24].copy_from_slice(&1000u64.to_le_bytes())));
    ro_attack("file data inside the node table", "corrupt image: node data out of range", |i| ro_edit_record(i, 4, |r| r[16..24].copy_from_slice(&1u64.to_le_bytes())));
    ro_attack("absurd entry count", "corrupt image: directory entry list size out of range", |i| ro_edit_record(i, 0, |r| r[4..8].copy_from_slice(&u32::MAX.to_le_bytes())));
    ro_attack("root is a file", "corrupt image: file node with directory entries", |i| ro_edit_record(i, 0, |r| r[0] = 2));
    ro_attack("unknown node kind", "corrupt image: unknown node kind", |i| ro_edit_record(i, 3, |r| r[0] = 9));
    ro_attack("unknown time provenance", "corrupt image: unknown timestamp provenance byte", |i| ro_edit_record(i, 1, |r| r[2] = 200));
    ro_attack("absurd node count", "corrupt image: node table location does not match node count", |i| {
        i[56..60].copy_from_slice(&u32::MAX.to_le_bytes());
        seal(&mut i[..512]).unwrap();
    });
    ro_attack("orphan node (entry count shrunk)", "corrupt image: directory entry list has trailing bytes", |i| {
        // Drop the last entry of d's list: node 5 becomes unreachable.
        ro_edit_record(i, 2, |r| r[4..8].copy_from_slice(&1u32.to_le_bytes()));
    });
}

// ---------- crafted CAPOSWF1 attacks ----------

/// Decode the newest region of a CAPOSWF1 image, let `edit` change node
/// records and chain entries, re-encode with valid checksums, digest and
/// commit record.
fn wf_edit(image: &mut [u8], edit: impl FnOnce(&mut Vec<NodeRecord>, &mut Vec<u32>)) {
    let total = (image.len() / 512) as u64;
    let g = WfGeometry::decode(&image[..512], total).unwrap();
    let commits: Vec<CommitRecord> = (0..2u64).filter_map(|s| CommitRecord::decode(&image[(1 + s as usize) * 512..(2 + s as usize) * 512], s).ok()).collect();
    let commit = *commits.iter().max_by_key(|c| c.generation).unwrap();
    let region = (commit.generation % 2) as usize;
    let start = g.region_lba(region) as usize * 512;
    let bytes = &mut image[start..start + g.region_blocks() as usize * 512];
    let mut nodes: Vec<NodeRecord> = (0..g.node_capacity as usize).map(|i| NodeRecord::decode(&bytes[i * 128..(i + 1) * 128], i as u32).unwrap()).collect();
    let chain_at = g.node_blocks as usize * 512;
    let mut chain: Vec<u32> = (0..g.data_blocks as usize)
        .map(|i| {
            let block = i / CHAIN_ENTRIES_PER_BLOCK as usize;
            let at = chain_at + block * 512 + (i % CHAIN_ENTRIES_PER_BLOCK as usize) * 4;
            u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
        })
        .collect();
    edit(&mut nodes, &mut chain);
    for (i, node) in nodes.iter().enumerate() {
        // Names are written raw, so attacks may put any bytes in them.
        let mut raw = [0u8; 128];
        let mut clean = node.clone();
        clean.name = String::new();
        clean.encode(&mut raw).unwrap();
        raw[1] = node.name.len() as u8;
        raw[44..44 + node.name.len()].copy_from_slice(node.name.as_bytes());
        seal(&mut raw).unwrap();
        bytes[i * 128..(i + 1) * 128].copy_from_slice(&raw);
    }
    for (i, entry) in chain.iter().enumerate() {
        let block = i / CHAIN_ENTRIES_PER_BLOCK as usize;
        let at = chain_at + block * 512 + (i % CHAIN_ENTRIES_PER_BLOCK as usize) * 4;
        bytes[at..at + 4].copy_from_slice(&entry.to_le_bytes());
    }
    for block in 0..g.chain_blocks as usize {
        seal(&mut bytes[chain_at + block * 512..chain_at + (block + 1) * 512]).unwrap();
    }
    let digest = Metadata::digest_of_region(&g, bytes);
    let record = CommitRecord { generation: commit.generation, region_digest: digest }.encode().unwrap();
    let slot = (1 + commit.generation % 2) as usize;
    image[slot * 512..(slot + 1) * 512].copy_from_slice(&record);
}

fn wf_attack(name: &str, expected: &str, edit: impl FnOnce(&mut Vec<NodeRecord>, &mut Vec<u32>)) {
    let mut image = wf_image();
    wf_edit(&mut image, edit);
    // Both slots: make the older commit unusable too, so a fallback cannot hide the attack.
    let total = (image.len() / 512) as u64;
    let g = WfGeometry::decode(&image[..512], total).unwrap();
    let newest = (0..2u64).filter_map(|s| CommitRecord::decode(&image[(1 + s as usize) * 512..(2 + s as usize) * 512], s).ok()).max_by_key(|c| c.generation).unwrap();
    let older_slot = 1 + (1 - newest.generation % 2) as usize;
    image[older_slot * 512..(older_slot + 1) * 512].fill(0);
    let _ = g;
    let result = probe_wf(image);
    expect_refusal("CAPOSWF1", name, expected, result);
}

fn find(nodes: &[NodeRecord], name: &str) -> usize {
    nodes.iter().position(|n| n.kind != RecordKind::Free && n.name == name).unwrap()
}

#[test]
fn writable_crafted_attacks() {
    wf_edit(&mut wf_image(), |_, _| {}); // the editor itself keeps a clean image clean:
    let mut clean = wf_image();
    wf_edit(&mut clean, |_, _| {});
    probe_wf(clean).unwrap();

    wf_attack("parent cycle (d inside its own child e)", "corrupt image: directory cycle", |n, _| { let d = find(n, "d"); let e = find(n, "e"); n[d].parent = e as u32; });
    wf_attack("directory is its own parent", "corrupt image: parent is not a directory", |n, _| { let d = find(n, "d"); n[d].parent = d as u32; });
    wf_attack("parent out of range", "corrupt image: parent is not a directory", |n, _| { let g = find(n, "g"); n[g].parent = 5000; });
    wf_attack("parent is a file", "corrupt image: parent is not a directory", |n, _| { let g = find(n, "g"); let f = find(n, "f"); n[g].parent = f as u32; });
    wf_attack("duplicate names", "corrupt image: duplicate name in a directory", |n, _| { let g = find(n, "g"); n[g].name = "d".into(); });
    wf_attack("name with '/'", "corrupt image: contains '/'", |n, _| { let g = find(n, "g"); n[g].name = "a/b".into(); });
    wf_attack("name with NUL", "corrupt image: contains NUL", |n, _| { let g = find(n, "g"); n[g].name = "a\0".into(); });
    wf_attack("name '..'", "corrupt image: '.' and '..' are reserved", |n, _| { let g = find(n, "g"); n[g].name = "..".into(); });
    wf_attack("absurd file size", "corrupt image: file size and block count disagree", |n, _| { let g = find(n, "g"); n[g].size = u64::MAX; });
    wf_attack("absurd block count", "corrupt image: file size and block count disagree", |n, _| { let g = find(n, "g"); n[g].block_count = u32::MAX; n[g].size = u32::MAX as u64 * 512; });
    wf_attack("first block out of range", "corrupt image: file block chain out of range or shared", |n, _| { let g = find(n, "g"); n[g].first_block = 1 << 30; });
    wf_attack("two files share a block", "corrupt image: file block chain out of range or shared", |n, _| { let g = find(n, "g"); let f = find(n, "f"); n[g].first_block = n[f].first_block; });
    wf_attack("chain loops on itself", "corrupt image: file block chain out of range or shared", |n, c| { let f = find(n, "f"); let first = n[f].first_block as usize; c[first] = first as u32; });
    wf_attack("chain points outside the data area", "corrupt image: chain entry points outside the data area", |n, c| { let f = find(n, "f"); let first = n[f].first_block as usize; c[first] = 1 << 29; });
    wf_attack("leaked chain entry", "corrupt image: chain entry in use by no file", |_, c| { let free = c.iter().rposition(|&e| e == 0xFFFF_FFFE).unwrap(); c[free] = 0xFFFF_FFFF; });
    wf_attack("root is a file", "corrupt image: root node is not a directory", |n, _| { n[0].kind = RecordKind::File; });
}

// ---------- crafted CAPOSST1 attacks ----------

fn st_attack(name: &str, expected: &str, edit: impl FnOnce(&mut Vec<u8>)) {
    let mut image = st_image();
    edit(&mut image);
    let result = probe_st(image);
    expect_refusal("CAPOSST1", name, expected, result);
}

/// Rewrite both commit records (so no fallback hides the attack) from the
/// newest one through `edit` on its raw bytes, resealing.
fn st_edit_commit(image: &mut [u8], edit: impl Fn(&mut [u8])) {
    let newest = if u64::from_le_bytes(image[1024 + 8..1024 + 16].try_into().unwrap()) > u64::from_le_bytes(image[512 + 8..512 + 16].try_into().unwrap()) { 2 } else { 1 };
    let mut record = image[newest * 512..(newest + 1) * 512].to_vec();
    edit(&mut record);
    seal(&mut record).unwrap();
    image[newest * 512..(newest + 1) * 512].copy_from_slice(&record);
    image[(3 - newest) * 512..(4 - newest) * 512].fill(0);
}

/// Rewrite slot `index` of the front table, resealing it and fixing the
/// table digest in the newest commit.
fn st_edit_slot(image: &mut Vec<u8>, index: usize, edit: impl FnOnce(&mut [u8])) {
    let at = 3 * 512 + index * 32;
    edit(&mut image[at..at + 28]);
    seal(&mut image[at..at + 32]).unwrap();
    let count = {
        let newest = if u64::from_le_bytes(image[1024 + 8..1024 + 16].try_into().unwrap()) > u64::from_le_bytes(image[512 + 8..512 + 16].try_into().unwrap()) { 2 } else { 1 };
        u32::from_le_bytes(image[newest * 512 + 20..newest * 512 + 24].try_into().unwrap()) as usize
    };
    let digest = store::engine::table_digest(&image[3 * 512..3 * 512 + 512], count);
    st_edit_commit(image, |r| r[28..32].copy_from_slice(&digest.to_le_bytes()));
}

#[test]
fn store_crafted_attacks() {
    // Slots: 0 put one=1, 1 put two=[2;600], 2 put one=uno, 3 tombstone two.
    st_attack("entry count beyond the table", "corrupt image: CAPOSST1 commit record fields out of range", |i| st_edit_commit(i, |r| r[20..24].copy_from_slice(&1000u32.to_le_bytes())));
    st_attack("heap cursor beyond the heap", "corrupt image: CAPOSST1 commit record fields out of range", |i| st_edit_commit(i, |r| r[24..28].copy_from_slice(&u32::MAX.to_le_bytes())));
    st_attack("unknown area", "corrupt image: CAPOSST1 commit record fields out of range", |i| st_edit_commit(i, |r| r[16] = 7));
    st_attack("key length zero", "corrupt image: entry slot fields out of range", |i| st_edit_slot(i, 0, |s| s[2..4].copy_from_slice(&0u16.to_le_bytes())));
    st_attack("key longer than the limit", "corrupt image: entry slot fields out of range", |i| st_edit_slot(i, 0, |s| s[2..4].copy_from_slice(&60000u16.to_le_bytes())));
    st_attack("absurd value length", "corrupt image: entry slot fields out of range", |i| st_edit_slot(i, 1, |s| s[4..8].copy_from_slice(&u32::MAX.to_le_bytes())));
    st_attack("entries overlap", "corrupt image: entry not packed after its predecessor", |i| st_edit_slot(i, 2, |s| s[8..12].copy_from_slice(&0u32.to_le_bytes())));
    st_attack("entry past the heap cursor", "corrupt image: entry not packed after its predecessor", |i| st_edit_slot(i, 3, |s| s[8..12].copy_from_slice(&100_000u32.to_le_bytes())));
    st_attack("tombstone with a value", "corrupt image: entry slot fields out of range", |i| st_edit_slot(i, 3, |s| s[4..8].copy_from_slice(&1u32.to_le_bytes())));
    st_attack("unknown entry kind", "corrupt image: unknown entry kind", |i| st_edit_slot(i, 0, |s| s[0] = 3));
    st_attack("wrong data checksum", "checksum mismatch in CAPOSST1 entry data", |i| st_edit_slot(i, 0, |s| s[12] ^= 1));
    st_attack("absurd table size", "corrupt image: CAPOSST1 entry table size out of range", |i| { i[56..60].copy_from_slice(&u32::MAX.to_le_bytes()); seal(&mut i[..512]).unwrap(); });
}
