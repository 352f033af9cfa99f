//! CAPOSRO1 as a backer: answers open/list/sub/read/stat, fails closed on
//! every mutation, reports the source mtime with its provenance (and an
//! unknown creation time), and applies the feature-flag rules.

mod support;

use capos_storage::codec::seal;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::readonly_fs::{build_image, ReadOnlyFs, SourceNode};
use capos_storage::{FileSystem, NodeHandle, NodeKind, Provenance, StorageError, Timestamp};

fn image() -> Vec<u8> {
    let mtime = Some(Timestamp::new(1_600_000_000_123_456_789, Provenance::HostFileMtime));
    let big: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    let tree = SourceNode::Directory {
        entries: vec![
            ("big".into(), SourceNode::File { data: big, mtime }),
            ("no-time".into(), SourceNode::File { data: b"x".to_vec(), mtime: None }),
            ("sub".into(), SourceNode::Directory { entries: vec![("inner".into(), SourceNode::File { data: b"in".to_vec(), mtime })], mtime }),
        ],
        mtime: None,
    };
    build_image(&tree, Timestamp::new(42, Provenance::SourceDateEpoch)).unwrap()
}

fn mount(bytes: Vec<u8>) -> Result<ReadOnlyFs<MemBlockDevice>, StorageError> {
    ReadOnlyFs::mount(MemBlockDevice::from_bytes(bytes))
}

#[test]
fn answers_reads_and_fails_closed_on_mutations() {
    let mut fs = mount(image()).unwrap();
    let root = fs.root();
    let names: Vec<String> = fs.list(root).unwrap().into_iter().map(|e| e.name).collect();
    assert_eq!(names, ["big", "no-time", "sub"]);
    let big = fs.open(root, "big").unwrap();
    let sub = fs.sub(root, "sub").unwrap();
    assert_eq!(fs.open(root, "sub"), Err(StorageError::NotAFile));
    assert_eq!(fs.sub(root, "big"), Err(StorageError::NotADirectory));
    assert_eq!(fs.open(root, "missing"), Err(StorageError::NotFound));
    assert_eq!(fs.list(big), Err(StorageError::NotADirectory));
    // Reads at every alignment agree with the source bytes.
    let expected: Vec<u8> = (0..5000u32).map(|i| (i % 253) as u8).collect();
    for (offset, len) in [(0usize, 5000usize), (1, 511), (511, 2), (512, 1024), (4999, 10), (5000, 1), (100, 3000)] {
        let mut buf = vec![0u8; len];
        let n = fs.read(big, offset as u64, &mut buf).unwrap();
        let end = (offset + len).min(5000);
        assert_eq!(n, end.saturating_sub(offset));
        assert_eq!(&buf[..n], &expected[offset.min(5000)..end]);
    }
    fs.verify_file(big).unwrap();
    // Every mutation is refused with ReadOnly.
    assert_eq!(fs.mkdir(root, "d"), Err(StorageError::ReadOnly));
    assert_eq!(fs.create(root, "f"), Err(StorageError::ReadOnly));
    assert_eq!(fs.remove(root, "big"), Err(StorageError::ReadOnly));
    assert_eq!(fs.rename(root, "big", sub, "moved"), Err(StorageError::ReadOnly));
    assert_eq!(fs.write(big, 0, b"x"), Err(StorageError::ReadOnly));
    assert_eq!(fs.truncate(big, 0), Err(StorageError::ReadOnly));
    assert_eq!(fs.sync(), Err(StorageError::ReadOnly));
    assert_eq!(fs.stat(NodeHandle { index: 99, generation: 0 }), Err(StorageError::StaleHandle));
}

#[test]
fn stat_reports_source_mtime_and_unknown_creation() {
    let mut fs = mount(image()).unwrap();
    let root = fs.root();
    let big = fs.open(root, "big").unwrap();
    let stat = fs.stat(big).unwrap();
    assert_eq!(stat.kind, NodeKind::File);
    assert_eq!(stat.size, 5000);
    assert_eq!(stat.modified, Timestamp::new(1_600_000_000_123_456_789, Provenance::HostFileMtime));
    assert_eq!(stat.created, Timestamp::UNKNOWN);
    let no_time = fs.open(root, "no-time").unwrap();
    assert_eq!(fs.stat(no_time).unwrap().modified, Timestamp::UNKNOWN);
    assert_eq!(fs.stat(root).unwrap().kind, NodeKind::Directory);
    assert_eq!(fs.geometry().build_time, Timestamp::new(42, Provenance::SourceDateEpoch));
}

#[test]
fn feature_flags() {
    let with = |offset: usize, bit: u64| {
        let mut bytes = image();
        bytes[offset..offset + 8].copy_from_slice(&bit.to_le_bytes());
        seal(&mut bytes[..512]).unwrap();
        mount(bytes)
    };
    assert!(with(16, 1 << 20).is_ok(), "unknown compatible feature is ignored");
    assert!(with(24, 1 << 20).is_ok(), "unknown ro-compatible feature: fine for a read-only format");
    assert_eq!(with(32, 1 << 20).err(), Some(StorageError::IncompatibleFeatures { unknown: 1 << 20 }));
}

#[test]
fn builder_rejects_bad_trees() {
    let file = || SourceNode::File { data: vec![], mtime: None };
    let dir = |entries: Vec<(&str, SourceNode)>| SourceNode::Directory {
        entries: entries.into_iter().map(|(n, c)| (n.to_string(), c)).collect(),
        mtime: None,
    };
    assert!(build_image(&file(), Timestamp::UNKNOWN).is_err(), "root must be a directory");
    assert_eq!(build_image(&dir(vec![("a", file()), ("a", file())]), Timestamp::UNKNOWN).err(), Some(StorageError::AlreadyExists));
    for bad in ["", ".", "..", "a/b", "nul\0"] {
        assert!(matches!(build_image(&dir(vec![(bad, file())]), Timestamp::UNKNOWN), Err(StorageError::InvalidName(_))), "{bad:?}");
    }
    let long = "é".repeat(128); // 256 bytes
    assert!(build_image(&dir(vec![(&long, file())]), Timestamp::UNKNOWN).is_err());
    let ok = "é".repeat(127); // 254 bytes
    let mut fs = mount(build_image(&dir(vec![(&ok, file())]), Timestamp::UNKNOWN).unwrap()).unwrap();
    let root = fs.root();
    assert_eq!(fs.list(root).unwrap()[0].name, ok);
}
