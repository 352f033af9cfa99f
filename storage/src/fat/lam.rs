//! The lamfat side: its I/O traits over a [`Volume`], and reading one
//! directory's names through it.
//!
//! lamfat is used for what it does well and what is easy to get wrong by
//! hand: decoding directory entries — long-name assembly with its order
//! numbers and checksum, UCS-2 names, the NT lower-case flags of 8.3 names,
//! the OEM code page of short names (CP437 here, see [`Cp437`]). It is
//! never handed a structure this module has not checked first:
//! - `lamfat::FileSystem::new` only sees a boot sector that
//!   [`super::bpb::parse`] accepted;
//! - it only iterates a directory whose cluster chain
//!   [`super::volume::directory_extents`] walked (in range, no loop, at most
//!   65536 entries), and those bytes are served to it from memory
//!   ([`Staged`]);
//! - it only opens a subdirectory that the backer claimed (its first
//!   cluster in the data area, not already another directory).
//!
//! How lamfat is led to a subdirectory: its API opens directories only
//! through the entries of their parent, so walking there would cost a pass
//! over every ancestor. Instead the bytes lamfat reads at the start of the
//! root directory are replaced, for that one listing, by a single entry
//! naming the subdirectory ([`Staged::through_root`]); lamfat opens that
//! entry and lists the directory. The real root is not touched (and is
//! never the directory listed this way: a subdirectory with the root's
//! cluster is refused as a cycle).
//!
//! lamfat's public API does not tell an entry's first cluster, so the
//! directory bytes are also scanned here ([`scan`]) with lamfat's own rules
//! for which 32-byte records are entries; the two lists must agree in
//! length and in each entry's attributes and size, or the directory is
//! reported corrupt.

use super::bpb::FatType;
use super::time::fat_timestamp;
use super::volume::Volume;
use crate::block::{BlockDevice, SECTOR_SIZE};
use crate::error::StorageError;
use crate::time::Timestamp;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use lamfat::{IoBase, IoError, OemCpConverter, Read, Seek, SeekFrom, Write};

/// An error crossing lamfat: ours, or one lamfat makes up through
/// [`IoError`].
#[derive(Debug)]
pub enum LamIoError {
    Storage(StorageError),
    UnexpectedEof,
    WriteZero,
}

impl IoError for LamIoError {
    fn is_interrupted(&self) -> bool {
        false
    }
    fn new_unexpected_eof_error() -> Self {
        LamIoError::UnexpectedEof
    }
    fn new_write_zero_error() -> Self {
        LamIoError::WriteZero
    }
}

/// A lamfat error as one of ours.
pub fn storage_error(error: lamfat::Error<LamIoError>) -> StorageError {
    match error {
        lamfat::Error::Io(LamIoError::Storage(e)) => e,
        lamfat::Error::Io(_) | lamfat::Error::UnexpectedEof => {
            StorageError::Corrupt { what: "FAT structure ends early (lamfat)", detail: 0 }
        }
        lamfat::Error::CorruptedFileSystem => {
            StorageError::Corrupt { what: "lamfat refused the FAT volume as corrupted", detail: 0 }
        }
        lamfat::Error::NotFound => StorageError::NotFound,
        _ => StorageError::Corrupt { what: "lamfat failed on the FAT volume", detail: 0 },
    }
}

/// One directory's bytes, read by the backer and served to lamfat from
/// memory: `(volume offset, length, index into bytes)`, sorted by offset;
/// and, to list a subdirectory, the one-entry root that leads lamfat to it.
pub struct Staged {
    extents: Vec<(u64, u64, usize)>,
    pub bytes: Vec<u8>,
    root: Option<(u64, [u8; 64])>,
}

impl Staged {
    /// Nothing staged: every read goes through the volume's cache.
    pub fn empty() -> Self {
        Self { extents: Vec::new(), bytes: Vec::new(), root: None }
    }

    /// Read `extents` (in chain order), one device request each.
    pub fn read<D: BlockDevice>(volume: &mut Volume<D>, extents: &[(u64, u64)]) -> Result<Self, StorageError> {
        let total: u64 = extents.iter().map(|e| e.1).sum();
        let mut bytes = vec![0u8; total as usize];
        let mut index = Vec::with_capacity(extents.len());
        let mut at = 0usize;
        for &(offset, len) in extents {
            volume.read_direct(offset, &mut bytes[at..at + len as usize])?;
            index.push((offset, len, at));
            at += len as usize;
        }
        index.sort_unstable_by_key(|e| e.0);
        Ok(Self { extents: index, bytes, root: None })
    }

    /// Show lamfat, at `root_offset` (where the root directory starts), a
    /// root whose only entry is a directory starting at `cluster`.
    pub fn through_root(mut self, root_offset: u64, cluster: u32) -> Self {
        let mut entry = [0u8; 64];
        entry[..11].copy_from_slice(b"SUBDIR     ");
        entry[11] = 0x10; // directory
        entry[20..22].copy_from_slice(&((cluster >> 16) as u16).to_le_bytes());
        entry[26..28].copy_from_slice(&(cluster as u16).to_le_bytes());
        // entry[32] = 0: the end of the directory.
        self.root = Some((root_offset, entry));
        self
    }

    /// The staged bytes from volume offset `pos` to the end of their run.
    fn at(&self, pos: u64) -> Option<&[u8]> {
        if let Some((offset, bytes)) = &self.root {
            if let Some(into) = pos.checked_sub(*offset).filter(|&i| i < 64) {
                return Some(&bytes[into as usize..]);
            }
        }
        let i = self.extents.partition_point(|e| e.0 <= pos).checked_sub(1)?;
        let (offset, len, at) = self.extents[i];
        let into = pos - offset;
        (into < len).then(|| &self.bytes[at + into as usize..at + len as usize])
    }
}

/// lamfat's view of the volume: bytes, read-only.
pub struct LamIo<'a, D> {
    volume: &'a mut Volume<D>,
    staged: &'a Staged,
    pos: u64,
}

impl<'a, D: BlockDevice> LamIo<'a, D> {
    pub fn new(volume: &'a mut Volume<D>, staged: &'a Staged) -> Self {
        Self { volume, staged, pos: 0 }
    }
}

impl<D> IoBase for LamIo<'_, D> {
    type Error = LamIoError;
}

impl<D: BlockDevice> Read for LamIo<'_, D> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, LamIoError> {
        if buf.is_empty() {
            return Ok(0);
        }
        let n = if let Some(src) = self.staged.at(self.pos) {
            let n = src.len().min(buf.len());
            buf[..n].copy_from_slice(&src[..n]);
            n
        } else {
            let within = (self.pos % SECTOR_SIZE as u64) as usize;
            let block = self.volume.block(self.pos / SECTOR_SIZE as u64).map_err(LamIoError::Storage)?;
            let n = (SECTOR_SIZE - within).min(buf.len());
            buf[..n].copy_from_slice(&block[within..within + n]);
            n
        };
        self.pos += n as u64;
        Ok(n)
    }
}

impl<D> Write for LamIo<'_, D> {
    fn write(&mut self, _: &[u8]) -> Result<usize, LamIoError> {
        Err(LamIoError::Storage(StorageError::ReadOnly))
    }
    fn flush(&mut self) -> Result<(), LamIoError> {
        Ok(())
    }
}

impl<D: BlockDevice> Seek for LamIo<'_, D> {
    fn seek(&mut self, pos: SeekFrom) -> Result<u64, LamIoError> {
        let target = match pos {
            SeekFrom::Start(at) => Some(at),
            SeekFrom::Current(delta) => self.pos.checked_add_signed(delta),
            SeekFrom::End(delta) => self.volume.len_bytes().checked_add_signed(delta),
        };
        match target {
            Some(at) if at <= self.volume.len_bytes() => {
                self.pos = at;
                Ok(at)
            }
            _ => Err(LamIoError::Storage(StorageError::Corrupt { what: "lamfat seeks outside the volume", detail: 0 })),
        }
    }
}

/// Short names in code page 437, the IBM PC's and the default of Linux's
/// `vfat`. Unlike lamfat's default (every byte above 0x7F becomes U+FFFD)
/// it maps each byte to its own character, so two short names never
/// collapse into one.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cp437;

const CP437_HIGH: [char; 128] = [
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å', //
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ', //
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»', //
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐', //
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧', //
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀', //
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩', //
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', '\u{a0}',
];

impl OemCpConverter for Cp437 {
    fn decode(&self, oem_char: u8) -> char {
        match oem_char {
            0..=0x7F => char::from(oem_char),
            _ => CP437_HIGH[usize::from(oem_char - 0x80)],
        }
    }
    fn encode(&self, uni_char: char) -> Option<u8> {
        if uni_char.is_ascii() {
            return Some(uni_char as u8);
        }
        CP437_HIGH.iter().position(|&c| c == uni_char).map(|i| 0x80 + i as u8)
    }
}

/// One entry of a directory as the raw scan sees it.
#[derive(Clone, Copy, Debug)]
pub struct RawEntry {
    pub attributes: u8,
    pub first_cluster: u32,
    pub size: u32,
    pub created: Timestamp,
    pub modified: Timestamp,
}

/// The entries lamfat's iterator yields, in its order, with the fields its
/// API does not give: the records up to the first one starting with 0,
/// except deleted ones (0xE5), long-name parts (attributes & 0x0F = 0x0F)
/// and the volume label (attribute 0x08).
pub fn scan(bytes: &[u8], fat_type: FatType) -> Vec<RawEntry> {
    let le16 = |e: &[u8], at: usize| u16::from_le_bytes([e[at], e[at + 1]]);
    let mut out = Vec::new();
    for e in bytes.chunks_exact(32) {
        if e[0] == 0 {
            break;
        }
        let attributes = e[11];
        if e[0] == 0xE5 || attributes & 0x0F == 0x0F || attributes & 0x08 != 0 {
            continue;
        }
        let high = if fat_type == FatType::Fat32 { u32::from(le16(e, 20)) << 16 } else { 0 };
        out.push(RawEntry {
            attributes,
            first_cluster: high | u32::from(le16(e, 26)),
            size: u32::from_le_bytes([e[28], e[29], e[30], e[31]]),
            created: fat_timestamp(le16(e, 16), le16(e, 14), e[13]),
            modified: fat_timestamp(le16(e, 24), le16(e, 22), 0),
        });
    }
    out
}

/// What lamfat says of one entry.
pub struct NamedEntry {
    pub name: String,
    pub is_dir: bool,
}

/// Which directory [`list`] lists.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// None: only mount the volume in lamfat and check it agrees.
    MountCheck,
    /// The root directory.
    Root,
    /// The directory named by the one-entry root of [`Staged::through_root`].
    ThroughRoot,
}

/// Mount the volume in lamfat (checking that it agrees on the FAT type)
/// and list a directory whose bytes are `staged`. Each entry is checked
/// against `raw` (from [`scan`] of the same bytes).
pub fn list<D: BlockDevice>(
    volume: &mut Volume<D>,
    staged: &Staged,
    fat_type: FatType,
    listing: Listing,
    raw: &[RawEntry],
) -> Result<Vec<NamedEntry>, StorageError> {
    let options = lamfat::FsOptions::new().oem_cp_converter(Cp437).update_accessed_date(false);
    let fs = lamfat::FileSystem::new(LamIo::new(volume, staged), options).map_err(storage_error)?;
    let lamfat_type = match fs.fat_type() {
        lamfat::FatType::Fat12 => FatType::Fat12,
        lamfat::FatType::Fat16 => FatType::Fat16,
        lamfat::FatType::Fat32 => FatType::Fat32,
    };
    if lamfat_type != fat_type {
        return Err(StorageError::Corrupt { what: "lamfat and the boot sector check disagree on the FAT type", detail: 0 });
    }
    let dir = match listing {
        Listing::MountCheck => return Ok(Vec::new()),
        Listing::Root => fs.root_dir(),
        Listing::ThroughRoot => match fs.root_dir().iter().next() {
            Some(Ok(entry)) if entry.is_dir() => entry.to_dir(),
            Some(Err(e)) => return Err(storage_error(e)),
            _ => return Err(StorageError::Corrupt { what: "lamfat did not see the staged directory entry", detail: 0 }),
        },
    };
    let mut out = Vec::with_capacity(raw.len());
    for entry in dir.iter() {
        let entry = entry.map_err(storage_error)?;
        let Some(expected) = raw.get(out.len()) else {
            return Err(StorageError::Corrupt { what: "lamfat found more directory entries than the scan", detail: 0 });
        };
        if entry.attributes().bits() != expected.attributes & 0x3F || entry.len() != u64::from(expected.size) {
            return Err(StorageError::Corrupt {
                what: "lamfat and the scan disagree about a directory entry",
                detail: out.len() as u64,
            });
        }
        out.push(NamedEntry { name: entry.file_name(), is_dir: entry.is_dir() });
    }
    if out.len() != raw.len() {
        return Err(StorageError::Corrupt {
            what: "lamfat found fewer directory entries than the scan",
            detail: out.len() as u64,
        });
    }
    Ok(out)
}
