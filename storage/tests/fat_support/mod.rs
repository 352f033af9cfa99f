//! Support for the FAT tests: images made by the real tools (mkfs.fat from
//! dosfstools, mcopy/mmd/mdel/mshowfat from mtools), the host's view of an
//! image (mtools' own extraction), a walk of a mounted [`FatFs`], a tiny
//! independent FAT parser for crafting corruption, and a watchdog that turns
//! a hang into a test failure.
//!
//! The tools are required: tools/setup.sh installs them. A test that needs
//! them fails with a message saying which one is missing rather than
//! passing without having checked anything.

#![allow(dead_code)]

use capos_storage::block::{check_request, BlockDevice, BlockError};
use capos_storage::fat::{FatFs, MountOptions};
use capos_storage::{FileSystem, NodeHandle, NodeKind, StorageError, Timestamp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

// ---------- tools ----------

/// The absolute path of a host tool, searching PATH and the sbin
/// directories (mkfs.fat lives in /usr/sbin). Panics with a clear message
/// when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    let dirs = path.split(':').map(PathBuf::from).chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!(
        "the FAT tests need `{name}` (dosfstools: mkfs.fat; mtools: mcopy, mmd, mdel, mshowfat); \
         install them with tools/setup.sh — these tests do not pass without checking"
    );
}

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .env("MTOOLS_SKIP_CHECK", "1")
        .env("TZ", "UTC")
        .env("LC_ALL", "C.UTF-8")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("capos-fat-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A FAT volume image file made by mkfs.fat and filled by mtools.
pub struct FatImage {
    pub dir: TempDir,
    pub path: PathBuf,
}

impl FatImage {
    /// `mkfs.fat -F <bits> -s <sectors per cluster> -S <sector bytes>` over
    /// `size` bytes.
    pub fn mkfs(tag: &str, bits: u8, size: u64, sectors_per_cluster: u8, sector_bytes: u16) -> FatImage {
        let dir = TempDir::new(tag);
        let path = dir.0.join("volume.img");
        std::fs::File::create(&path).unwrap().set_len(size).unwrap();
        run(Command::new(tool("mkfs.fat"))
            .args(["-F", &bits.to_string(), "-s", &sectors_per_cluster.to_string()])
            .args(["-S", &sector_bytes.to_string(), "--invariant"])
            .arg(&path));
        FatImage { dir, path }
    }

    /// Adopt an image file made elsewhere (the image script).
    pub fn from_file(dir: TempDir, path: PathBuf) -> FatImage {
        FatImage { dir, path }
    }

    fn mtools(&self, name: &str) -> Command {
        let mut cmd = Command::new(tool(name));
        cmd.arg("-i").arg(&self.path);
        cmd
    }

    /// A host file with `data` and modification time `mtime` (Unix seconds).
    pub fn host_file(&self, name: &str, data: &[u8], mtime: i64) -> PathBuf {
        let src = self.dir.0.join("src");
        std::fs::create_dir_all(&src).unwrap();
        let path = src.join(name);
        std::fs::write(&path, data).unwrap();
        set_mtime(&path, mtime);
        path
    }

    /// Copy `data` to `fat_path` ("/a/b.txt") keeping `mtime`.
    pub fn put(&self, fat_path: &str, data: &[u8], mtime: i64) {
        let host = self.host_file("put.tmp", data, mtime);
        run(self.mtools("mcopy").arg("-m").arg("-o").arg(&host).arg(format!("::{fat_path}")));
    }

    /// Copy a host directory's contents into the root, keeping mtimes.
    pub fn put_tree(&self, host_dir: &Path) {
        let mut cmd = self.mtools("mcopy");
        cmd.args(["-s", "-m"]);
        for entry in std::fs::read_dir(host_dir).unwrap() {
            cmd.arg(entry.unwrap().path());
        }
        run(cmd.arg("::/"));
    }

    pub fn mkdir(&self, fat_path: &str) {
        run(self.mtools("mmd").arg(format!("::{fat_path}")));
    }

    pub fn del(&self, fat_path: &str) {
        run(self.mtools("mdel").arg(format!("::{fat_path}")));
    }

    /// The runs of a file's cluster chain as mshowfat prints them
    /// ("<13-28> <120-151>"): its number of runs.
    pub fn runs(&self, fat_path: &str) -> usize {
        let out = run(self.mtools("mshowfat").arg(format!("::{fat_path}")));
        out.matches('<').count()
    }

    pub fn bytes(&self) -> Vec<u8> {
        std::fs::read(&self.path).unwrap()
    }

    /// Reset the FAT32 FSInfo "next free cluster" hint to unknown, so the
    /// next mtools write allocates from cluster 2 (and fills holes).
    pub fn forget_next_free_hint(&self) {
        let mut bytes = self.bytes();
        let fs_info = u16::from_le_bytes([bytes[48], bytes[49]]) as usize;
        bytes[fs_info * 512 + 492..fs_info * 512 + 496].copy_from_slice(&u32::MAX.to_le_bytes());
        std::fs::write(&self.path, bytes).unwrap();
    }

    /// The host's view of the image: mtools extracts it (`mcopy -s -m`).
    pub fn host_view(&self) -> Tree {
        let out = self.dir.0.join(format!("extracted-{}", NEXT_EXTRACT.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&out).unwrap();
        let listing = run(self.mtools("mdir").arg("-b").arg("::/"));
        if !listing.trim().is_empty() {
            run(self.mtools("mcopy").args(["-s", "-m", "-n"]).arg("::/*").arg(&out));
        }
        let tree = host_tree(&out);
        let _ = std::fs::remove_dir_all(&out);
        tree
    }
}

static NEXT_EXTRACT: AtomicU64 = AtomicU64::new(0);

pub fn set_mtime(path: &Path, secs: i64) {
    let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
    let file = if path.is_dir() { std::fs::File::open(path) } else { std::fs::File::options().write(true).open(path) };
    file.unwrap().set_modified(t).unwrap();
}

/// Run the repository's image script and adopt its output.
pub fn default_image() -> FatImage {
    for t in ["mkfs.fat", "mcopy", "mmd", "mtype", "mdir", "mdel", "mshowfat"] {
        tool(t);
    }
    let dir = TempDir::new("default");
    let path = dir.0.join("fat-read.img");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/mkstorage-fat-read-image");
    run(Command::new("bash").arg(script).arg(&path));
    FatImage::from_file(dir, path)
}

// ---------- trees ----------

/// One node of a walked tree: a directory, or a file's bytes and mtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Item {
    Dir,
    File { data: Vec<u8>, mtime_secs: i64 },
}

/// Path ("/a/b") → item. The root is not included.
pub type Tree = BTreeMap<String, Item>;

fn host_tree(root: &Path) -> Tree {
    let mut out = Tree::new();
    fn walk(dir: &Path, prefix: &str, out: &mut Tree) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().expect("host name is UTF-8");
            let path = format!("{prefix}/{name}");
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                out.insert(path.clone(), Item::Dir);
                walk(&entry.path(), &path, out);
            } else {
                let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
                out.insert(path, Item::File { data: std::fs::read(entry.path()).unwrap(), mtime_secs: mtime });
            }
        }
    }
    walk(root, "", &mut out);
    out
}

/// Walk a mounted filesystem: every directory listed, every file read
/// whole (in 4 KiB pieces, to exercise the read cursor) and stat'ed. Fails
/// if it visits more than `max_nodes` nodes.
pub fn walk<F: FileSystem>(fs: &mut F, max_nodes: usize) -> Result<Tree, StorageError> {
    let mut out = Tree::new();
    let root = fs.root();
    walk_dir(fs, root, "", &mut out, max_nodes)?;
    Ok(out)
}

fn walk_dir<F: FileSystem>(
    fs: &mut F,
    dir: NodeHandle,
    prefix: &str,
    out: &mut Tree,
    max_nodes: usize,
) -> Result<(), StorageError> {
    let entries = fs.list(dir)?;
    let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    assert_eq!(names, sorted, "list of {prefix}/ is not sorted by name bytes");
    for entry in entries {
        assert!(out.len() < max_nodes, "walk visited more than {max_nodes} nodes");
        let path = format!("{prefix}/{}", entry.name);
        match entry.kind {
            NodeKind::Directory => {
                let sub = fs.sub(dir, &entry.name)?;
                assert_eq!(fs.stat(sub)?.kind, NodeKind::Directory);
                out.insert(path.clone(), Item::Dir);
                walk_dir(fs, sub, &path, out, max_nodes)?;
            }
            NodeKind::File => {
                let file = fs.open(dir, &entry.name)?;
                let stat = fs.stat(file)?;
                assert_eq!(stat.size, entry.size, "list and stat disagree on {path}");
                let mut data = vec![0u8; stat.size as usize];
                let mut at = 0usize;
                while at < data.len() {
                    let end = (at + 4096).min(data.len());
                    let n = fs.read(file, at as u64, &mut data[at..end])?;
                    assert_eq!(n, end - at, "short read of {path} at {at}");
                    at = end;
                }
                assert_eq!(fs.read(file, stat.size, &mut [0u8; 16])?, 0, "read past the end of {path}");
                out.insert(path, Item::File { data, mtime_secs: secs(stat.modified) });
            }
        }
    }
    Ok(())
}

fn secs(t: Timestamp) -> i64 {
    if t.provenance == capos_storage::Provenance::Unknown {
        i64::MIN
    } else {
        t.unix_nanos.div_euclid(1_000_000_000)
    }
}

/// Assert that the walk of our backer and the host's view agree: the same
/// paths, the same bytes, and modification times within FAT's 2 s.
pub fn assert_same_tree(ours: &Tree, host: &Tree) {
    let our_paths: Vec<&String> = ours.keys().collect();
    let host_paths: Vec<&String> = host.keys().collect();
    assert_eq!(our_paths, host_paths, "the backer and mtools list different paths");
    for (path, item) in ours {
        match (item, &host[path]) {
            (Item::Dir, Item::Dir) => {}
            (Item::File { data, mtime_secs }, Item::File { data: host_data, mtime_secs: host_mtime }) => {
                assert!(data == host_data, "{path}: bytes differ from mtools' ({} vs {} bytes)", data.len(), host_data.len());
                assert!((mtime_secs - host_mtime).abs() <= 2, "{path}: mtime {mtime_secs} vs host {host_mtime}");
            }
            (a, b) => panic!("{path}: kind differs: {a:?} vs {b:?}"),
        }
    }
}

pub fn mount_bytes(bytes: Vec<u8>) -> Result<FatFs<capos_storage::mem_device::MemBlockDevice>, StorageError> {
    FatFs::mount(capos_storage::mem_device::MemBlockDevice::from_bytes(bytes), MountOptions::default())
}

// ---------- a read-only device over borrowed bytes ----------

/// A device over a byte slice, counting requests: the fuzz test flips bytes
/// in one buffer and restores them instead of copying the image each time.
pub struct SliceDevice<'a> {
    pub bytes: &'a [u8],
    pub reads: u64,
}

impl BlockDevice for SliceDevice<'_> {
    fn block_size(&self) -> usize {
        512
    }
    fn block_count(&self) -> u64 {
        (self.bytes.len() / 512) as u64
    }
    fn read_blocks(&mut self, lba: u64, buf: &mut [u8]) -> Result<(), BlockError> {
        check_request(512, self.block_count(), lba, buf.len())?;
        self.reads += 1;
        let at = lba as usize * 512;
        buf.copy_from_slice(&self.bytes[at..at + buf.len()]);
        Ok(())
    }
    fn write_blocks(&mut self, _: u64, _: &[u8]) -> Result<(), BlockError> {
        Err(BlockError::ReadOnly)
    }
    fn flush(&mut self) -> Result<(), BlockError> {
        Ok(())
    }
}

// ---------- an independent little FAT parser, to craft corruption ----------

/// Just enough of a FAT layout to find entries and patch links, written
/// apart from the crate's parser so a test does not trust what it tests.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub bits: u32,
    pub bytes_per_sector: usize,
    pub cluster_bytes: usize,
    pub fat_offset: usize,
    pub fat_bytes: usize,
    pub fats: usize,
    pub root_offset: usize,
    pub root_bytes: usize,
    pub root_cluster: u32,
    pub data_offset: usize,
    pub clusters: u32,
}

fn le16(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes([b[at], b[at + 1]]) as usize
}
fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]) as usize
}

impl Layout {
    pub fn of(b: &[u8]) -> Layout {
        let bps = le16(b, 11);
        let spc = b[13] as usize;
        let reserved = le16(b, 14);
        let fats = b[16] as usize;
        let root_entries = le16(b, 17);
        let total = if le16(b, 19) != 0 { le16(b, 19) } else { le32(b, 32) };
        let spf = if le16(b, 22) != 0 { le16(b, 22) } else { le32(b, 36) };
        let root_bytes = (root_entries * 32).div_ceil(bps) * bps;
        let root_offset = (reserved + fats * spf) * bps;
        let data_offset = root_offset + root_bytes;
        let clusters = ((total * bps - data_offset) / (spc * bps)) as u32;
        let bits = if clusters < 4085 { 12 } else if clusters < 65525 { 16 } else { 32 };
        Layout {
            bits,
            bytes_per_sector: bps,
            cluster_bytes: spc * bps,
            fat_offset: reserved * bps,
            fat_bytes: spf * bps,
            fats,
            root_offset,
            root_bytes,
            root_cluster: if bits == 32 { le32(b, 44) as u32 } else { 0 },
            data_offset,
            clusters,
        }
    }

    pub fn cluster_offset(&self, c: u32) -> usize {
        self.data_offset + (c as usize - 2) * self.cluster_bytes
    }

    pub fn get(&self, b: &[u8], c: u32) -> u32 {
        let c = c as usize;
        match self.bits {
            32 => le32(b, self.fat_offset + 4 * c) as u32 & 0x0FFF_FFFF,
            16 => le16(b, self.fat_offset + 2 * c) as u32,
            _ => {
                let v = le16(b, self.fat_offset + c + c / 2) as u32;
                if c & 1 == 0 { v & 0xFFF } else { v >> 4 }
            }
        }
    }

    /// Set a FAT entry in every copy of the FAT.
    pub fn set(&self, b: &mut [u8], c: u32, value: u32) {
        for copy in 0..self.fats {
            let base = self.fat_offset + copy * self.fat_bytes;
            let c = c as usize;
            match self.bits {
                32 => b[base + 4 * c..base + 4 * c + 4].copy_from_slice(&value.to_le_bytes()),
                16 => b[base + 2 * c..base + 2 * c + 2].copy_from_slice(&(value as u16).to_le_bytes()),
                _ => {
                    let at = base + c + c / 2;
                    let old = le16(b, at) as u16;
                    let new = if c & 1 == 0 { (old & 0xF000) | value as u16 } else { (old & 0x000F) | ((value as u16) << 4) };
                    b[at..at + 2].copy_from_slice(&new.to_le_bytes());
                }
            }
        }
    }

    pub fn end_of_chain(&self) -> u32 {
        match self.bits {
            32 => 0x0FFF_FFFF,
            16 => 0xFFFF,
            _ => 0xFFF,
        }
    }

    /// The clusters of a chain (stops after `clusters` steps).
    pub fn chain(&self, b: &[u8], first: u32) -> Vec<u32> {
        let mut out = vec![];
        let mut c = first;
        while c >= 2 && c < self.clusters + 2 && out.len() <= self.clusters as usize {
            out.push(c);
            c = self.get(b, c);
        }
        out
    }

    /// Byte ranges of a directory: the fixed root (`first` = 0 on
    /// FAT12/16) or a cluster chain.
    pub fn dir_ranges(&self, b: &[u8], first: u32) -> Vec<(usize, usize)> {
        if first == 0 {
            vec![(self.root_offset, self.root_bytes)]
        } else {
            self.chain(b, first).into_iter().map(|c| (self.cluster_offset(c), self.cluster_bytes)).collect()
        }
    }

    /// The root directory's first cluster (0 for the fixed root).
    pub fn root(&self) -> u32 {
        self.root_cluster
    }

    /// Byte offset of the 8.3 entry named `name11` ("NAME    EXT", the
    /// raw 11 bytes, upper case) in directory `dir`.
    pub fn find(&self, b: &[u8], dir: u32, name11: &[u8; 11]) -> usize {
        for (offset, len) in self.dir_ranges(b, dir) {
            for at in (offset..offset + len).step_by(32) {
                if &b[at..at + 11] == name11 {
                    return at;
                }
            }
        }
        panic!("no entry {:?} in directory {dir}", String::from_utf8_lossy(name11));
    }

    pub fn first_cluster(&self, b: &[u8], entry: usize) -> u32 {
        let high = if self.bits == 32 { le16(b, entry + 20) << 16 } else { 0 };
        (high | le16(b, entry + 26)) as u32
    }

    pub fn set_first_cluster(&self, b: &mut [u8], entry: usize, c: u32) {
        b[entry + 20..entry + 22].copy_from_slice(&((c >> 16) as u16).to_le_bytes());
        b[entry + 26..entry + 28].copy_from_slice(&(c as u16).to_le_bytes());
    }
}

// ---------- a watchdog ----------

/// Run `f` on its own thread and fail the test if it panics or does not
/// finish within `limit`: a hang becomes a failure naming `what`.
pub fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let _ = tx.send(result);
    });
    match rx.recv_timeout(limit) {
        Ok(Ok(value)) => value,
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("{what}: panicked: {msg}")
        }
        Err(_) => panic!("{what}: did not finish within {limit:?} (a hang)"),
    }
}

pub fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}
