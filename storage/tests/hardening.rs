//! Engine-level findings of issue 14, part 1: CAPOSRO1 extents that overlap
//! or are shared, and commit generations at `u64::MAX`. Each test failed
//! before its fix.

use capos_storage::checksum::crc32c;
use capos_storage::codec::seal;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::readonly_fs::{build_image, ReadOnlyFs, SourceNode};
use capos_storage::store::layout::StoreCommit;
use capos_storage::store::{self, Store};
use capos_storage::writable_fs::layout::CommitRecord;
use capos_storage::writable_fs::{self, MountOptions, WritableFs};
use capos_storage::{FileSystem, FixedClock, StorageError, Timestamp};

// ---------- CAPOSRO1: no overlapping or shared extents ----------

fn file(data: &[u8]) -> SourceNode {
    SourceNode::File { data: data.to_vec(), mtime: None }
}

/// Nodes (breadth first): 0 root [a, b, c], 1 a (1000 bytes), 2 b (600), 3 c (10).
fn ro_image() -> Vec<u8> {
    let tree = SourceNode::Directory {
        entries: vec![("a".into(), file(&[0xAA; 1000])), ("b".into(), file(&[0xBB; 600])), ("c".into(), file(b"cccccccccc"))],
        mtime: None,
    };
    build_image(&tree, Timestamp::UNKNOWN).unwrap()
}

fn record(image: &[u8], index: usize) -> (u64, u64) {
    let at = 512 + index * 64;
    (
        u64::from_le_bytes(image[at + 8..at + 16].try_into().unwrap()),
        u64::from_le_bytes(image[at + 16..at + 24].try_into().unwrap()),
    )
}

/// Point node `index` at `size` bytes from `lba`, with a matching data CRC
/// and a resealed record: every checksum holds.
fn point(image: &mut [u8], index: usize, size: u64, lba: u64) {
    let crc = crc32c(&image[lba as usize * 512..lba as usize * 512 + size as usize]);
    let at = 512 + index * 64;
    image[at + 8..at + 16].copy_from_slice(&size.to_le_bytes());
    image[at + 16..at + 24].copy_from_slice(&lba.to_le_bytes());
    image[at + 32..at + 36].copy_from_slice(&crc.to_le_bytes());
    seal(&mut image[at..at + 64]).unwrap();
}

fn mount_ro(image: Vec<u8>) -> Result<ReadOnlyFs<MemBlockDevice>, StorageError> {
    ReadOnlyFs::mount(MemBlockDevice::from_bytes(image))
}

#[test]
fn readonly_sample_mounts() {
    let mut fs = mount_ro(ro_image()).unwrap();
    let root = fs.root();
    for name in ["a", "b", "c"] {
        let f = fs.open(root, name).unwrap();
        fs.verify_file(f).unwrap();
    }
}

#[test]
fn readonly_mount_refuses_shared_extents() {
    // b and c both name a's bytes: a small image would expand on extraction.
    let mut image = ro_image();
    let (a_size, a_lba) = record(&image, 1);
    point(&mut image, 2, a_size, a_lba);
    point(&mut image, 3, a_size, a_lba);
    match mount_ro(image) {
        Err(StorageError::Corrupt { what, .. }) => assert!(what.contains("overlap"), "{what}"),
        Err(other) => panic!("wrong refusal: {other}"),
        Ok(_) => panic!("an image whose files share one extent mounted"),
    }
}

#[test]
fn readonly_mount_refuses_overlapping_extents() {
    // b starts inside a's second block.
    let mut image = ro_image();
    let (_, a_lba) = record(&image, 1);
    point(&mut image, 2, 600, a_lba + 1);
    match mount_ro(image) {
        Err(StorageError::Corrupt { what, .. }) => assert!(what.contains("overlap"), "{what}"),
        Err(other) => panic!("wrong refusal: {other}"),
        Ok(_) => panic!("an image with overlapping extents mounted"),
    }
    // A file's data may not overlap its directory's entry list either.
    let mut image = ro_image();
    let (root_size, root_lba) = record(&image, 0);
    assert!(root_size > 0);
    point(&mut image, 3, 10, root_lba);
    assert!(mount_ro(image).is_err(), "a file overlapping the root's entry list mounted");
}

// ---------- commit generations at u64::MAX ----------

/// A CAPOSWF1 image whose newest commit claims generation `u64::MAX`.
fn writable_at_max() -> Vec<u8> {
    let mut dev = MemBlockDevice::new(256);
    writable_fs::format(&mut dev, None, Timestamp::UNKNOWN).unwrap();
    let mut fs = WritableFs::mount(dev, FixedClock(Timestamp::UNKNOWN), MountOptions::default()).unwrap();
    let root = fs.root();
    fs.mkdir(root, "one").unwrap();
    assert_eq!(fs.generation(), 1);
    let mut bytes = fs.into_device().into_bytes();
    // u64::MAX is odd: same slot and region as generation 1.
    let old = CommitRecord::decode(&bytes[1024..1536], 1).unwrap();
    let record = CommitRecord { generation: u64::MAX, region_digest: old.region_digest }.encode().unwrap();
    bytes[1024..1536].copy_from_slice(&record);
    bytes
}

#[test]
fn writable_generation_at_max_is_refused_not_wrapped() {
    let image = writable_at_max();
    // Read-only, the image can still be looked at.
    let ro = WritableFs::mount(MemBlockDevice::from_bytes(image.clone()), FixedClock(Timestamp::UNKNOWN), MountOptions { read_only: true }).unwrap();
    assert_eq!(ro.generation(), u64::MAX);
    drop(ro);
    // Read-write, no commit can follow it: refused at mount, nothing written.
    let result = WritableFs::mount(MemBlockDevice::from_bytes(image.clone()), FixedClock(Timestamp::UNKNOWN), MountOptions::default());
    match result {
        Err(e) => assert!(e.to_string().contains("generation"), "{e}"),
        Ok(mut fs) => {
            let root = fs.root();
            let made = fs.mkdir(root, "two");
            assert!(made.is_err(), "a commit after u64::MAX succeeded (generation now {})", fs.generation());
            let after = fs.into_device().into_bytes();
            assert_eq!(after[512..1536], image[512..1536], "commit records unchanged");
        }
    }
}

/// A CAPOSST1 image whose newest commit claims generation `u64::MAX`.
fn store_at_max() -> Vec<u8> {
    let mut dev = MemBlockDevice::new(64);
    store::format(&mut dev, None).unwrap();
    let mut st = Store::mount(dev, false).unwrap();
    st.put(b"k", b"v").unwrap();
    assert_eq!(st.generation(), 1);
    let geometry = *st.geometry();
    let mut bytes = st.into_device().into_bytes();
    let mut commit = StoreCommit::decode(&bytes[1024..1536], 1, &geometry).unwrap();
    commit.generation = u64::MAX;
    bytes[1024..1536].copy_from_slice(&commit.encode().unwrap());
    bytes
}

#[test]
fn store_generation_at_max_is_refused_not_wrapped() {
    let image = store_at_max();
    let ro = Store::mount(MemBlockDevice::from_bytes(image.clone()), true).unwrap();
    assert_eq!(ro.generation(), u64::MAX);
    drop(ro);
    match Store::mount(MemBlockDevice::from_bytes(image.clone()), false) {
        Err(e) => assert!(e.to_string().contains("generation"), "{e}"),
        Ok(mut st) => {
            assert!(st.put(b"k2", b"v2").is_err(), "a put after u64::MAX succeeded (generation now {})", st.generation());
            let after = st.into_device().into_bytes();
            assert_eq!(after[512..1536], image[512..1536], "commit records unchanged");
        }
    }
}
