//! GUID partition table (GPT): the partition type GUIDs capOS relies on and
//! the parser the kernel reads a disk's partition table with.
//!
//! Why here: the cloud disk image (`make capos-cloudboot-image`, built by
//! the host runner) writes these type GUIDs, and the kernel will look its
//! data partition up by the same value. One constant in a crate both sides
//! link keeps them from drifting. The parser is plain Rust over a block-read
//! closure, so it is tested on the host with tables built to break it.
//!
//! GPT stores a GUID "mixed-endian": the first three fields little-endian,
//! the last eight bytes as written. [`Guid::to_bytes`] gives the on-disk
//! form, `Display` and [`Guid::parse`] the canonical text form (`sgdisk`
//! prints it uppercase).
//!
//! # Parsing (UEFI specification, "GUID Partition Table (GPT) Disk Layout")
//!
//! [`parse`] reads a disk of `block_count` 512-byte logical blocks through a
//! closure and returns the table or says why not. A disk is not trusted: a
//! header that passes its CRC still only says what some tool (or attacker)
//! wrote. The rules, each with a host test that breaks it:
//!
//! - Only 512-byte logical blocks ([`SECTOR`]). The disk needs at least
//!   [`MIN_BLOCKS`] of them. LBA 0 is never read: a protective MBR is
//!   neither required nor checked.
//! - A header has the signature `EFI PART`, revision 1.0 (`0x00010000`), a
//!   HeaderSize of 92..=512, and a CRC32 over HeaderSize bytes (with the
//!   CRC field zeroed) that matches. Its MyLBA is the LBA it was read from.
//! - Its usable range FirstUsableLBA..=LastUsableLBA is not empty, ends
//!   before the disk does, and covers neither LBA 0 (protective MBR), LBA 1
//!   (primary header) nor the header itself.
//! - Entries are 128 * 2^n bytes, at most 4096; there are 1..=1024 of them
//!   and at most 1 MiB together, so a hostile header cannot make us read
//!   more than 2048 blocks or allocate more than 1024 partitions.
//! - The entry array lies inside the disk, clear of LBA 0, LBA 1, the header
//!   and the usable range, and the CRC32 of its first
//!   NumberOfPartitionEntries * SizeOfPartitionEntry bytes matches.
//! - An entry whose type GUID is zero is unused (its other bytes are
//!   ignored). A used entry has first LBA <= last LBA, both inside the
//!   usable range, and shares no block with another used entry.
//! - The primary header is read at LBA 1. If it or its array breaks a rule,
//!   the backup is tried: at the primary's AlternateLBA when the primary
//!   header itself was intact (signature through MyLBA good) and that LBA is
//!   2..block_count, else at the last LBA. A good backup is returned with
//!   [`GptTable::used`] = [`Header::Backup`] and the primary's problem in
//!   [`GptTable::primary_problem`]; when both are bad the error names both.
//!   A good primary is used as is; the backup is then not read.
//! - No input makes `parse` panic or overflow (every LBA sum is checked), or
//!   ask the closure for an LBA past `block_count - 1`; a test flips bytes
//!   of valid tables thousands of times to hold it to that.
//!
//! Left unchecked, as Linux does: the Reserved field and the bytes past
//! HeaderSize, the AlternateLBA of a header that is used, whether a good
//! primary and the backup agree, whether unique partition GUIDs are unique,
//! and the spec's 16 KiB minimum for the entry array.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Guid {
    pub time_low: u32,
    pub time_mid: u16,
    pub time_hi: u16,
    pub tail: [u8; 8],
}

impl Guid {
    pub const fn new(time_low: u32, time_mid: u16, time_hi: u16, tail: [u8; 8]) -> Guid {
        Guid { time_low, time_mid, time_hi, tail }
    }

    /// The 16 bytes as a GPT header or partition entry stores them.
    pub fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.time_low.to_le_bytes());
        b[4..6].copy_from_slice(&self.time_mid.to_le_bytes());
        b[6..8].copy_from_slice(&self.time_hi.to_le_bytes());
        b[8..16].copy_from_slice(&self.tail);
        b
    }

    /// Decode the on-disk form.
    pub fn from_bytes(b: &[u8; 16]) -> Guid {
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&b[8..16]);
        Guid {
            time_low: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            time_mid: u16::from_le_bytes([b[4], b[5]]),
            time_hi: u16::from_le_bytes([b[6], b[7]]),
            tail,
        }
    }

    /// The all-zero GUID: the type of an unused partition entry.
    pub const ZERO: Guid = Guid::new(0, 0, 0, [0; 8]);

    /// Parse the canonical text form, `A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890`,
    /// in either case. Nothing else is accepted: no braces, no whitespace,
    /// no signs, hyphens exactly at 8, 13, 18 and 23.
    pub fn parse(text: &str) -> Option<Guid> {
        let t = text.as_bytes();
        if t.len() != 36 {
            return None;
        }
        let mut b = [0u8; 16];
        let mut n = 0;
        let mut i = 0;
        while i < 36 {
            if matches!(i, 8 | 13 | 18 | 23) {
                if t[i] != b'-' {
                    return None;
                }
                i += 1;
                continue;
            }
            b[n] = (hex_digit(t[i])? << 4) | hex_digit(t[i + 1])?;
            n += 1;
            i += 2;
        }
        // The text reads big-endian throughout; the fields are numbers.
        let mut tail = [0u8; 8];
        tail.copy_from_slice(&b[8..16]);
        Some(Guid {
            time_low: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            time_mid: u16::from_be_bytes([b[4], b[5]]),
            time_hi: u16::from_be_bytes([b[6], b[7]]),
            tail,
        })
    }
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.tail;
        write!(
            f,
            "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
            self.time_low, self.time_mid, self.time_hi, t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7]
        )
    }
}

/// The UEFI EFI System Partition type (UEFI specification, "GPT disk
/// layout"): C12A7328-F81F-11D2-BA4B-00A0C93EC93B.
pub const EFI_SYSTEM_PARTITION: Guid = Guid::new(0xC12A_7328, 0xF81F, 0x11D2, [0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B]);

/// The capOS data partition type: A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890.
///
/// Chosen once at random (a version-4 GUID) for capOS; it names a
/// partition holding the co-located CAPOSST1 store + CAPOSWF1 filesystem
/// (docs/storage-formats.md, "The co-located image"). Never reuse it for
/// another layout: a new layout gets a new type GUID.
pub const CAPOS_DATA_PARTITION: Guid = Guid::new(0xA59A_E5FF, 0x8FF6, 0x4AFC, [0x89, 0xB0, 0x2C, 0xEE, 0x37, 0xA5, 0x88, 0x90]);

/// The logical block size `parse` supports (4Kn disks are not).
pub const SECTOR: usize = 512;

/// The smallest disk a GPT fits on: protective MBR, primary header, one
/// block of entries, one usable block.
pub const MIN_BLOCKS: u64 = 4;

/// Where the primary header lives.
const PRIMARY_LBA: u64 = 1;
const SIGNATURE: &[u8; 8] = b"EFI PART";
const REVISION_1_0: u32 = 0x0001_0000;
const MIN_HEADER_SIZE: u32 = 92;
const MIN_ENTRY_SIZE: u32 = 128;
const MAX_ENTRY_SIZE: u32 = 4096;
const MAX_ENTRIES: u32 = 1024;
const MAX_ARRAY_BYTES: u64 = 1 << 20;
/// PartitionName: 36 UTF-16LE code units at offset 56 of an entry.
const NAME_UNITS: usize = 36;

/// Which copy of the table: the primary (LBA 1) or the backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Header {
    Primary,
    Backup,
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Header::Primary => "primary",
            Header::Backup => "backup",
        })
    }
}

/// A used partition entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptPartition {
    /// 1-based index of the entry in the array (what `sgdisk` and Linux
    /// call the partition number).
    pub number: u32,
    pub type_guid: Guid,
    pub unique_guid: Guid,
    pub first_lba: u64,
    /// Inclusive.
    pub last_lba: u64,
    pub attributes: u64,
    /// PartitionName, decoded from UTF-16LE (unpaired surrogates become
    /// U+FFFD), cut at the first NUL.
    pub name: String,
}

impl GptPartition {
    /// Length in blocks (0 only for a hand-made entry with last < first).
    pub fn blocks(&self) -> u64 {
        if self.last_lba < self.first_lba {
            0
        } else {
            (self.last_lba - self.first_lba).saturating_add(1)
        }
    }
}

/// A partition table that passed every rule in the module doc.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptTable {
    pub disk_guid: Guid,
    pub first_usable: u64,
    /// Inclusive.
    pub last_usable: u64,
    /// The used entries, in entry order.
    pub partitions: Vec<GptPartition>,
    /// The copy these came from.
    pub used: Header,
    /// Why the primary was not used, when the backup was.
    pub primary_problem: Option<GptError>,
}

impl GptTable {
    /// The partition with entry number `n` (1-based), if that entry is used.
    pub fn by_number(&self, n: u32) -> Option<&GptPartition> {
        self.partitions.iter().find(|p| p.number == n)
    }

    /// The partitions of type `t`, in entry order.
    pub fn by_type(&self, t: &Guid) -> impl Iterator<Item = &GptPartition> {
        let t = *t;
        self.partitions.iter().filter(move |p| p.type_guid == t)
    }
}

/// Why a disk's partition table cannot be used. Every variant but
/// `DiskTooSmall` and `BothBad` names the copy it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GptError {
    /// Fewer than [`MIN_BLOCKS`] blocks.
    DiskTooSmall { block_count: u64 },
    /// The read closure failed for `lba`.
    Read { header: Header, lba: u64 },
    /// No `EFI PART` at the start of the block.
    Signature { header: Header },
    Revision { header: Header, revision: u32 },
    HeaderSize { header: Header, size: u32 },
    HeaderCrc { header: Header, stored: u32, computed: u32 },
    /// The header read from `read_at` says it is at `my_lba`.
    MyLba { header: Header, read_at: u64, my_lba: u64 },
    /// FirstUsableLBA > LastUsableLBA, or LastUsableLBA >= block_count.
    UsableRange { header: Header, first_usable: u64, last_usable: u64, block_count: u64 },
    /// The usable range covers `lba`: the protective MBR or a header.
    UsableCoversMetadata { header: Header, first_usable: u64, last_usable: u64, lba: u64 },
    /// SizeOfPartitionEntry is not 128 * 2^n or is over 4096.
    EntrySize { header: Header, size: u32 },
    /// NumberOfPartitionEntries is 0 or over 1024, or the array is over 1 MiB.
    EntryCount { header: Header, count: u32, entry_size: u32 },
    /// The entry array (`blocks` blocks from `entry_lba`) ends past the disk.
    ArrayOutsideDisk { header: Header, entry_lba: u64, blocks: u64, block_count: u64 },
    /// The entry array covers `lba`: the protective MBR or a header.
    ArrayCoversMetadata { header: Header, entry_lba: u64, blocks: u64, lba: u64 },
    ArrayOverlapsUsable { header: Header, entry_lba: u64, blocks: u64, first_usable: u64, last_usable: u64 },
    ArrayCrc { header: Header, stored: u32, computed: u32 },
    /// Entry `number`'s first LBA is after its last.
    EntryBackwards { header: Header, number: u32, first_lba: u64, last_lba: u64 },
    EntryOutsideUsable { header: Header, number: u32, first_lba: u64, last_lba: u64, first_usable: u64, last_usable: u64 },
    /// Entries `a` < `b` share at least one block.
    EntriesOverlap { header: Header, a: u32, b: u32 },
    /// Neither copy is usable; the backup was looked for at `backup_lba`.
    BothBad { primary: Box<GptError>, backup: Box<GptError>, backup_lba: u64 },
}

/// `first..=last` of `blocks` blocks from `first`, for messages.
fn last_of(first: u64, blocks: u64) -> u64 {
    first.saturating_add(blocks.saturating_sub(1))
}

impl fmt::Display for GptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use GptError::*;
        match self {
            DiskTooSmall { block_count } => write!(f, "disk of {} blocks is too small for a GPT (at least {} needed)", block_count, MIN_BLOCKS),
            Read { header, lba } => write!(f, "{} GPT: reading LBA {} failed", header, lba),
            Signature { header } => write!(f, "{} GPT header: no \"EFI PART\" signature", header),
            Revision { header, revision } => write!(f, "{} GPT header: revision {:#010x}, only 1.0 ({:#010x}) is supported", header, revision, REVISION_1_0),
            HeaderSize { header, size } => write!(f, "{} GPT header: HeaderSize {} is outside 92..=512", header, size),
            HeaderCrc { header, stored, computed } => write!(f, "{} GPT header CRC mismatch (stored {:#010x}, computed {:#010x})", header, stored, computed),
            MyLba { header, read_at, my_lba } => write!(f, "{} GPT header read from LBA {} says it is at LBA {}", header, read_at, my_lba),
            UsableRange { header, first_usable, last_usable, block_count } => write!(
                f,
                "{} GPT header: usable range LBA {}..={} is empty or ends past the disk's last LBA {}",
                header,
                first_usable,
                last_usable,
                block_count.saturating_sub(1)
            ),
            UsableCoversMetadata { header, first_usable, last_usable, lba } => {
                write!(f, "{} GPT header: usable range LBA {}..={} covers LBA {} (protective MBR or a GPT header)", header, first_usable, last_usable, lba)
            }
            EntrySize { header, size } => write!(f, "{} GPT header: partition entry size {} is not 128, 256, 512, 1024, 2048 or 4096", header, size),
            EntryCount { header, count, entry_size } => write!(
                f,
                "{} GPT header: {} partition entries of {} bytes; 1..={} entries and at most {} bytes are supported",
                header, count, entry_size, MAX_ENTRIES, MAX_ARRAY_BYTES
            ),
            ArrayOutsideDisk { header, entry_lba, blocks, block_count } => {
                write!(f, "{} GPT entry array ({} blocks from LBA {}) runs past the end of the disk ({} blocks)", header, blocks, entry_lba, block_count)
            }
            ArrayCoversMetadata { header, entry_lba, blocks, lba } => write!(
                f,
                "{} GPT entry array at LBA {}..={} covers LBA {} (protective MBR or a GPT header)",
                header,
                entry_lba,
                last_of(*entry_lba, *blocks),
                lba
            ),
            ArrayOverlapsUsable { header, entry_lba, blocks, first_usable, last_usable } => write!(
                f,
                "{} GPT entry array at LBA {}..={} overlaps the usable range LBA {}..={}",
                header,
                entry_lba,
                last_of(*entry_lba, *blocks),
                first_usable,
                last_usable
            ),
            ArrayCrc { header, stored, computed } => write!(f, "{} GPT entry array CRC mismatch (stored {:#010x}, computed {:#010x})", header, stored, computed),
            EntryBackwards { header, number, first_lba, last_lba } => write!(f, "{} GPT entry {}: first LBA {} is after last LBA {}", header, number, first_lba, last_lba),
            EntryOutsideUsable { header, number, first_lba, last_lba, first_usable, last_usable } => write!(
                f,
                "{} GPT entry {}: LBA {}..={} is outside the usable range LBA {}..={}",
                header, number, first_lba, last_lba, first_usable, last_usable
            ),
            EntriesOverlap { header, a, b } => write!(f, "{} GPT entries {} and {} overlap", header, a, b),
            BothBad { primary, backup, backup_lba } => write!(f, "no usable GPT: {}; {} (backup looked for at LBA {})", primary, backup, backup_lba),
        }
    }
}

/// CRC-32 as UEFI uses it: IEEE 802.3, reflected, polynomial 0xEDB88320,
/// initial value and final XOR 0xFFFFFFFF. Written here rather than taken
/// from a crate because it is a dozen lines and kcore keeps its
/// dependencies to the ones it cannot do without; the table is built at
/// compile time.
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = Crc32::new();
    c.update(data);
    c.finish()
}

const CRC_TABLE: [u32; 256] = crc_table();

const fn crc_table() -> [u32; 256] {
    let mut t = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
            k += 1;
        }
        t[i] = c;
        i += 1;
    }
    t
}

struct Crc32(u32);

impl Crc32 {
    fn new() -> Crc32 {
        Crc32(0xFFFF_FFFF)
    }

    fn update(&mut self, data: &[u8]) {
        for &b in data {
            self.0 = CRC_TABLE[((self.0 ^ b as u32) & 0xFF) as usize] ^ (self.0 >> 8);
        }
    }

    fn finish(self) -> u32 {
        !self.0
    }
}

fn le32(b: &[u8; SECTOR], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

fn le64(b: &[u8; SECTOR], o: usize) -> u64 {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(v)
}

fn guid_at(b: &[u8], o: usize) -> Guid {
    let mut g = [0u8; 16];
    g.copy_from_slice(&b[o..o + 16]);
    Guid::from_bytes(&g)
}

/// The fields of a header that passed the checks on the header alone
/// (signature, revision, size, CRC, MyLBA).
struct HeaderFields {
    alternate_lba: u64,
    first_usable: u64,
    last_usable: u64,
    disk_guid: Guid,
    entry_lba: u64,
    entry_count: u32,
    entry_size: u32,
    array_crc: u32,
}

/// Read the partition table at `block_count` 512-byte blocks through
/// `read(lba, block)`, following the rules in the module doc. A failed read
/// becomes [`GptError::Read`]; the closure's error value is dropped (log it
/// in the closure if it matters).
pub fn parse<E>(block_count: u64, mut read: impl FnMut(u64, &mut [u8; SECTOR]) -> Result<(), E>) -> Result<GptTable, GptError> {
    if block_count < MIN_BLOCKS {
        return Err(GptError::DiskTooSmall { block_count });
    }
    let mut alternate = None;
    let primary_problem = match read_header(Header::Primary, PRIMARY_LBA, &mut read) {
        Ok(h) => {
            alternate = Some(h.alternate_lba);
            match read_table(Header::Primary, PRIMARY_LBA, &h, block_count, &mut read) {
                Ok(t) => return Ok(t),
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    let backup_lba = match alternate {
        Some(a) if a > PRIMARY_LBA && a < block_count => a,
        _ => block_count - 1,
    };
    let backup = read_header(Header::Backup, backup_lba, &mut read).and_then(|h| read_table(Header::Backup, backup_lba, &h, block_count, &mut read));
    match backup {
        Ok(mut t) => {
            t.primary_problem = Some(primary_problem);
            Ok(t)
        }
        Err(e) => Err(GptError::BothBad { primary: Box::new(primary_problem), backup: Box::new(e), backup_lba }),
    }
}

/// Read the header at `lba` and check what it says about itself.
fn read_header<E>(header: Header, lba: u64, read: &mut impl FnMut(u64, &mut [u8; SECTOR]) -> Result<(), E>) -> Result<HeaderFields, GptError> {
    let mut b = [0u8; SECTOR];
    read(lba, &mut b).map_err(|_| GptError::Read { header, lba })?;
    if &b[0..8] != SIGNATURE {
        return Err(GptError::Signature { header });
    }
    let revision = le32(&b, 8);
    if revision != REVISION_1_0 {
        return Err(GptError::Revision { header, revision });
    }
    let size = le32(&b, 12);
    if !(MIN_HEADER_SIZE..=SECTOR as u32).contains(&size) {
        return Err(GptError::HeaderSize { header, size });
    }
    let stored = le32(&b, 16);
    let mut crc = Crc32::new();
    crc.update(&b[..16]);
    crc.update(&[0; 4]);
    crc.update(&b[20..size as usize]);
    let computed = crc.finish();
    if stored != computed {
        return Err(GptError::HeaderCrc { header, stored, computed });
    }
    let my_lba = le64(&b, 24);
    if my_lba != lba {
        return Err(GptError::MyLba { header, read_at: lba, my_lba });
    }
    Ok(HeaderFields {
        alternate_lba: le64(&b, 32),
        first_usable: le64(&b, 40),
        last_usable: le64(&b, 48),
        disk_guid: guid_at(&b, 56),
        entry_lba: le64(&b, 72),
        entry_count: le32(&b, 80),
        entry_size: le32(&b, 84),
        array_crc: le32(&b, 88),
    })
}

/// Check the layout `h` (read at `lba`) describes, read its entry array and
/// check the entries.
fn read_table<E>(header: Header, lba: u64, h: &HeaderFields, block_count: u64, read: &mut impl FnMut(u64, &mut [u8; SECTOR]) -> Result<(), E>) -> Result<GptTable, GptError> {
    let (first_usable, last_usable) = (h.first_usable, h.last_usable);
    if first_usable > last_usable || last_usable >= block_count {
        return Err(GptError::UsableRange { header, first_usable, last_usable, block_count });
    }
    // LBA 0 holds the protective MBR and LBA 1 the primary header whichever
    // copy this is: a partition must not be able to cover them.
    for m in [0, PRIMARY_LBA, lba] {
        if first_usable <= m && m <= last_usable {
            return Err(GptError::UsableCoversMetadata { header, first_usable, last_usable, lba: m });
        }
    }

    let (count, size) = (h.entry_count, h.entry_size);
    if !(MIN_ENTRY_SIZE..=MAX_ENTRY_SIZE).contains(&size) || !size.is_power_of_two() {
        return Err(GptError::EntrySize { header, size });
    }
    // At most 2^32 * 2^12: no overflow in u64.
    let array_bytes = count as u64 * size as u64;
    if count == 0 || count > MAX_ENTRIES || array_bytes > MAX_ARRAY_BYTES {
        return Err(GptError::EntryCount { header, count, entry_size: size });
    }
    let blocks = array_bytes.div_ceil(SECTOR as u64);
    let entry_lba = h.entry_lba;
    let end = match entry_lba.checked_add(blocks) {
        Some(end) if end <= block_count => end,
        _ => return Err(GptError::ArrayOutsideDisk { header, entry_lba, blocks, block_count }),
    };
    let array_last = end - 1;
    for m in [0, PRIMARY_LBA, lba] {
        if entry_lba <= m && m <= array_last {
            return Err(GptError::ArrayCoversMetadata { header, entry_lba, blocks, lba: m });
        }
    }
    if entry_lba <= last_usable && first_usable <= array_last {
        return Err(GptError::ArrayOverlapsUsable { header, entry_lba, blocks, first_usable, last_usable });
    }

    // One block at a time: the CRC over exactly array_bytes, and every entry
    // decoded as it goes by. An entry never straddles a block: its size
    // either divides 512 or is a multiple of it, and only its first 128
    // bytes are read.
    let array_bytes = array_bytes as usize; // <= 1 MiB
    let size = size as usize;
    let mut crc = Crc32::new();
    let mut partitions = Vec::new();
    let mut b = [0u8; SECTOR];
    for i in 0..blocks {
        let block_lba = entry_lba + i; // < end, no overflow
        read(block_lba, &mut b).map_err(|_| GptError::Read { header, lba: block_lba })?;
        let start = i as usize * SECTOR;
        let len = SECTOR.min(array_bytes - start);
        crc.update(&b[..len]);
        let mut at = start.div_ceil(size) * size;
        while at < start + len {
            let o = at - start;
            partitions.extend(decode_entry(&b[o..o + MIN_ENTRY_SIZE as usize], (at / size) as u32 + 1));
            at += size;
        }
    }
    let computed = crc.finish();
    if computed != h.array_crc {
        return Err(GptError::ArrayCrc { header, stored: h.array_crc, computed });
    }

    for p in &partitions {
        let (number, first_lba, last_lba) = (p.number, p.first_lba, p.last_lba);
        if first_lba > last_lba {
            return Err(GptError::EntryBackwards { header, number, first_lba, last_lba });
        }
        if first_lba < first_usable || last_lba > last_usable {
            return Err(GptError::EntryOutsideUsable { header, number, first_lba, last_lba, first_usable, last_usable });
        }
    }
    // Sorted by first block, an overlap anywhere shows between neighbours.
    let mut by_start: Vec<&GptPartition> = partitions.iter().collect();
    by_start.sort_unstable_by_key(|p| (p.first_lba, p.number));
    for w in by_start.windows(2) {
        if w[1].first_lba <= w[0].last_lba {
            let (a, b) = (w[0].number.min(w[1].number), w[0].number.max(w[1].number));
            return Err(GptError::EntriesOverlap { header, a, b });
        }
    }

    Ok(GptTable { disk_guid: h.disk_guid, first_usable, last_usable, partitions, used: header, primary_problem: None })
}

/// The first 128 bytes of entry `number`; None when it is unused.
fn decode_entry(e: &[u8], number: u32) -> Option<GptPartition> {
    let type_guid = guid_at(e, 0);
    if type_guid == Guid::ZERO {
        return None;
    }
    let u64_at = |o: usize| {
        let mut v = [0u8; 8];
        v.copy_from_slice(&e[o..o + 8]);
        u64::from_le_bytes(v)
    };
    let units = (0..NAME_UNITS).map(|k| u16::from_le_bytes([e[56 + 2 * k], e[57 + 2 * k]])).take_while(|&u| u != 0);
    let name = char::decode_utf16(units).map(|r| r.unwrap_or(char::REPLACEMENT_CHARACTER)).collect();
    Some(GptPartition { number, type_guid, unique_guid: guid_at(e, 16), first_lba: u64_at(32), last_lba: u64_at(40), attributes: u64_at(48), name })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use std::collections::BTreeMap;

    #[test]
    fn esp_type_has_the_uefi_on_disk_bytes() {
        // The byte sequence every GPT tool writes for an ESP entry.
        let want = [0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E, 0xC9, 0x3B];
        assert_eq!(EFI_SYSTEM_PARTITION.to_bytes(), want);
        assert_eq!(Guid::from_bytes(&want), EFI_SYSTEM_PARTITION);
        assert_eq!(EFI_SYSTEM_PARTITION.to_string(), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    }

    #[test]
    fn capos_data_type_text_and_bytes_agree() {
        assert_eq!(CAPOS_DATA_PARTITION.to_string(), "A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890");
        let b = CAPOS_DATA_PARTITION.to_bytes();
        assert_eq!(&b[..4], &[0xFF, 0xE5, 0x9A, 0xA5]);
        assert_eq!(Guid::from_bytes(&b), CAPOS_DATA_PARTITION);
        assert_ne!(CAPOS_DATA_PARTITION, EFI_SYSTEM_PARTITION);
        // Version 4, RFC 4122 variant.
        assert_eq!(CAPOS_DATA_PARTITION.time_hi >> 12, 4);
        assert_eq!(CAPOS_DATA_PARTITION.tail[0] & 0xC0, 0x80);
    }

    // ---- Guid::parse ----

    #[test]
    fn guid_parse_reads_the_canonical_form_in_either_case() {
        assert_eq!(Guid::parse("A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890"), Some(CAPOS_DATA_PARTITION));
        assert_eq!(Guid::parse("a59ae5ff-8ff6-4afc-89b0-2cee37a58890"), Some(CAPOS_DATA_PARTITION));
        assert_eq!(Guid::parse("c12a7328-F81F-11d2-bA4b-00A0C93EC93B"), Some(EFI_SYSTEM_PARTITION));
        assert_eq!(Guid::parse("00000000-0000-0000-0000-000000000000"), Some(Guid::ZERO));
        for g in [CAPOS_DATA_PARTITION, EFI_SYSTEM_PARTITION, Guid::new(0x0102_0304, 0x0506, 0x0708, [9, 10, 11, 12, 13, 14, 15, 16])] {
            assert_eq!(Guid::parse(&g.to_string()), Some(g), "{}", g);
        }
    }

    #[test]
    fn guid_parse_refuses_anything_else() {
        let good = "A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890";
        for bad in [
            "",
            "A59AE5FF-8FF6-4AFC-89B0-2CEE37A5889",    // short
            "A59AE5FF-8FF6-4AFC-89B0-2CEE37A588900",  // long
            "{A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890}", // braces
            " A59AE5FF-8FF6-4AFC-89B0-2CEE37A5889",   // whitespace
            "A59AE5FF8-FF6-4AFC-89B0-2CEE37A58890",   // hyphen moved
            "A59AE5FF-8FF6-4AFC-89B02CEE37A58890-",   // hyphen moved to the end
            "A59AE5FF-8FF6-4AFC-89B0-2CEE37A5889G",   // not hex
            "+59AE5FF-8FF6-4AFC-89B0-2CEE37A58890",   // from_str_radix would take a sign
            "A59AE5FF-+FF6-4AFC-89B0-2CEE37A58890",
            "A59AE5FF-8FF6-4AFC-89B0-2CEE37A5889é",   // 36 bytes? no: 37, and not hex either
            "A59AE5FF-8FF6-4AFC-89B0-2CEE37A588é",    // 36 bytes with a multi-byte char
            "A59AE5FF_8FF6_4AFC_89B0_2CEE37A58890",
            "A59AE5FFA8FF6A4AFCA89B0A2CEE37A58890",
        ] {
            assert_eq!(Guid::parse(bad), None, "{:?}", bad);
        }
        assert!(Guid::parse(good).is_some());
    }

    // ---- CRC32 ----

    #[test]
    fn crc32_is_the_ieee_one() {
        // The CRC-32/ISO-HDLC check value, and the empty input.
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        let mut c = Crc32::new();
        c.update(b"1234");
        c.update(b"56789");
        assert_eq!(c.finish(), 0xCBF4_3926, "feeding it in pieces changes nothing");
    }

    // ---- A GPT built in memory ----

    const DISK: Guid = Guid::new(0x8202_65F8, 0x1063, 0x46EC, [0x9E, 0x28, 0x6B, 0xC8, 0x1B, 0xA1, 0x9D, 0x33]);

    fn unique(n: u32) -> Guid {
        Guid::new(0x1000_0000 + n, 0x2000, 0x4000, [0x80, 0, 0, 0, 0, 0, 0, n as u8])
    }

    /// One used entry: `slot` is its 0-based index in the array.
    struct Part {
        slot: u32,
        type_guid: Guid,
        first: u64,
        last: u64,
        name: &'static str,
    }

    fn part(slot: u32, type_guid: Guid, first: u64, last: u64, name: &'static str) -> Part {
        Part { slot, type_guid, first, last, name }
    }

    /// Disk size and entry array shape; the builder lays the disk out the
    /// way sgdisk does: MBR, primary header, its array, the usable range,
    /// the backup array, the backup header in the last block.
    #[derive(Clone, Copy)]
    struct Layout {
        blocks: u64,
        count: u32,
        size: u32,
    }

    impl Layout {
        fn array_bytes(&self) -> usize {
            self.count as usize * self.size as usize
        }
        fn array_blocks(&self) -> u64 {
            self.array_bytes().div_ceil(SECTOR) as u64
        }
        fn first_usable(&self) -> u64 {
            2 + self.array_blocks()
        }
        fn last_usable(&self) -> u64 {
            self.blocks - 2 - self.array_blocks()
        }
        fn backup_array(&self) -> u64 {
            self.blocks - 1 - self.array_blocks()
        }
        fn backup(&self) -> u64 {
            self.blocks - 1
        }
    }

    /// 128 entries of 128 bytes, as sgdisk writes them: array at 2..=33,
    /// usable 34..=94, backup array 95..=126, backup header 127.
    const STD: Layout = Layout { blocks: 128, count: 128, size: 128 };

    // Header and entry field offsets.
    const H_REVISION: usize = 8;
    const H_SIZE: usize = 12;
    const H_CRC: usize = 16;
    const H_MY: usize = 24;
    const H_ALT: usize = 32;
    const H_FIRST: usize = 40;
    const H_LAST: usize = 48;
    const H_ENTRY_LBA: usize = 72;
    const H_COUNT: usize = 80;
    const H_ESIZE: usize = 84;
    const H_ACRC: usize = 88;
    const E_FIRST: usize = 32;
    const E_LAST: usize = 40;
    const E_NAME: usize = 56;

    fn at(lba: u64, off: usize) -> usize {
        lba as usize * SECTOR + off
    }
    fn put32(d: &mut [u8], lba: u64, off: usize, v: u32) {
        d[at(lba, off)..at(lba, off) + 4].copy_from_slice(&v.to_le_bytes());
    }
    fn put64(d: &mut [u8], lba: u64, off: usize, v: u64) {
        d[at(lba, off)..at(lba, off) + 8].copy_from_slice(&v.to_le_bytes());
    }
    fn get32(d: &[u8], lba: u64, off: usize) -> u32 {
        u32::from_le_bytes(d[at(lba, off)..at(lba, off) + 4].try_into().unwrap())
    }
    fn get64(d: &[u8], lba: u64, off: usize) -> u64 {
        u64::from_le_bytes(d[at(lba, off)..at(lba, off) + 8].try_into().unwrap())
    }

    /// The CRC the header at `lba` should carry (HeaderSize clamped, so a
    /// hostile size still gives an answer).
    fn header_crc(d: &[u8], lba: u64) -> u32 {
        let size = (get32(d, lba, H_SIZE) as usize).clamp(92, SECTOR);
        let mut h = d[at(lba, 0)..at(lba, size)].to_vec();
        h[H_CRC..H_CRC + 4].fill(0);
        crc32(&h)
    }

    /// Make the header at `lba` pass its CRC again after an edit.
    fn reseal(d: &mut [u8], lba: u64) {
        let c = header_crc(d, lba);
        put32(d, lba, H_CRC, c);
    }

    /// The CRC of the array the header at `lba` points at, if it is on the disk.
    fn array_crc(d: &[u8], lba: u64) -> Option<u32> {
        let bytes = get32(d, lba, H_COUNT) as u64 * get32(d, lba, H_ESIZE) as u64;
        let start = get64(d, lba, H_ENTRY_LBA).checked_mul(SECTOR as u64)?;
        let end = start.checked_add(bytes)?;
        (end <= d.len() as u64).then(|| crc32(&d[start as usize..end as usize]))
    }

    /// Reseal the array CRC (where the array is on the disk) and the header.
    fn reseal_all(d: &mut [u8], lba: u64) {
        if let Some(c) = array_crc(d, lba) {
            put32(d, lba, H_ACRC, c);
        }
        reseal(d, lba);
    }

    fn write_header(d: &mut [u8], l: &Layout, my: u64, alt: u64, entry_lba: u64, array_crc: u32) {
        d[at(my, 0)..at(my, 8)].copy_from_slice(b"EFI PART");
        put32(d, my, H_REVISION, 0x0001_0000);
        put32(d, my, H_SIZE, 92);
        put64(d, my, H_MY, my);
        put64(d, my, H_ALT, alt);
        put64(d, my, H_FIRST, l.first_usable());
        put64(d, my, H_LAST, l.last_usable());
        d[at(my, 56)..at(my, 72)].copy_from_slice(&DISK.to_bytes());
        put64(d, my, H_ENTRY_LBA, entry_lba);
        put32(d, my, H_COUNT, l.count);
        put32(d, my, H_ESIZE, l.size);
        put32(d, my, H_ACRC, array_crc);
        reseal(d, my);
    }

    /// A valid GPT disk with a protective MBR.
    fn build(l: &Layout, parts: &[Part]) -> Vec<u8> {
        let mut d = vec![0u8; l.blocks as usize * SECTOR];
        // Protective MBR: one 0xEE entry from LBA 1 to the end.
        d[446 + 4] = 0xEE;
        d[446 + 8..446 + 12].copy_from_slice(&1u32.to_le_bytes());
        d[446 + 12..446 + 16].copy_from_slice(&((l.blocks - 1).min(u32::MAX as u64) as u32).to_le_bytes());
        d[510] = 0x55;
        d[511] = 0xAA;
        let mut array = vec![0u8; l.array_blocks() as usize * SECTOR];
        // Past NumberOfPartitionEntries * SizeOfPartitionEntry: outside the
        // CRC, so junk there must not matter.
        array[l.array_bytes()..].fill(0xA5);
        for p in parts {
            let e = &mut array[p.slot as usize * l.size as usize..][..128];
            e[0..16].copy_from_slice(&p.type_guid.to_bytes());
            e[16..32].copy_from_slice(&unique(p.slot + 1).to_bytes());
            e[E_FIRST..E_FIRST + 8].copy_from_slice(&p.first.to_le_bytes());
            e[E_LAST..E_LAST + 8].copy_from_slice(&p.last.to_le_bytes());
            e[48..56].copy_from_slice(&((p.slot as u64) << 48 | 1).to_le_bytes());
            for (k, u) in p.name.encode_utf16().take(36).enumerate() {
                e[E_NAME + 2 * k..E_NAME + 2 * k + 2].copy_from_slice(&u.to_le_bytes());
            }
        }
        let acrc = crc32(&array[..l.array_bytes()]);
        d[at(2, 0)..at(2, 0) + array.len()].copy_from_slice(&array);
        d[at(l.backup_array(), 0)..at(l.backup_array(), 0) + array.len()].copy_from_slice(&array);
        write_header(&mut d, l, 1, l.backup(), 2, acrc);
        write_header(&mut d, l, l.backup(), 1, l.backup_array(), acrc);
        d
    }

    fn two_parts() -> Vec<u8> {
        build(&STD, &[part(0, EFI_SYSTEM_PARTITION, 34, 49, "EFI System"), part(1, CAPOS_DATA_PARTITION, 50, 94, "capOS data")])
    }

    /// Edit entry `slot` of both arrays of an STD disk and reseal both copies.
    fn set_entry(d: &mut [u8], slot: u32, off: usize, bytes: &[u8]) {
        for a in [2, STD.backup_array()] {
            let o = at(a, slot as usize * 128 + off);
            d[o..o + bytes.len()].copy_from_slice(bytes);
        }
        reseal_all(d, 1);
        reseal_all(d, STD.backup());
    }

    fn read_from(d: &[u8]) -> impl FnMut(u64, &mut [u8; SECTOR]) -> Result<(), ()> + '_ {
        move |lba, b| {
            let o = usize::try_from(lba).ok().and_then(|l| l.checked_mul(SECTOR)).ok_or(())?;
            b.copy_from_slice(d.get(o..o.checked_add(SECTOR).ok_or(())?).ok_or(())?);
            Ok(())
        }
    }

    fn parse_disk(d: &[u8]) -> Result<GptTable, GptError> {
        parse(d.len() as u64 / SECTOR as u64, read_from(d))
    }

    /// Parse and also return the LBAs read, asserting none is LBA 0 or
    /// past the disk.
    fn parse_logged(d: &[u8], block_count: u64) -> (Result<GptTable, GptError>, Vec<u64>) {
        let mut reads = Vec::new();
        let mut inner = read_from(d);
        let r = parse(block_count, |lba, b| {
            assert!(lba != 0 && lba < block_count, "read of LBA {} on a disk of {} blocks", lba, block_count);
            reads.push(lba);
            inner(lba, b)
        });
        (r, reads)
    }

    /// The primary is refused with `want`; the backup is used.
    fn primary_refused(d: &[u8], want: GptError) {
        let t = parse_disk(d).expect("the backup is good");
        assert_eq!(t.used, Header::Backup);
        assert_eq!(t.primary_problem, Some(want));
    }

    fn both_refused(d: &[u8], primary: GptError, backup: GptError) {
        let backup_lba = d.len() as u64 / SECTOR as u64 - 1;
        assert_eq!(parse_disk(d), Err(GptError::BothBad { primary: Box::new(primary), backup: Box::new(backup), backup_lba }));
    }

    /// Break the primary (its signature) so the backup's own rules show.
    fn kill_primary(d: &mut [u8]) {
        d[at(1, 0)] ^= 0xFF;
    }

    #[test]
    fn a_built_table_is_accepted() {
        let d = two_parts();
        let (t, reads) = parse_logged(&d, STD.blocks);
        let t = t.unwrap();
        assert_eq!(t.used, Header::Primary);
        assert_eq!(t.primary_problem, None);
        assert_eq!(t.disk_guid, DISK);
        assert_eq!((t.first_usable, t.last_usable), (34, 94));
        assert_eq!(t.partitions.len(), 2);
        let esp = &t.partitions[0];
        assert_eq!((esp.number, esp.type_guid, esp.unique_guid), (1, EFI_SYSTEM_PARTITION, unique(1)));
        assert_eq!((esp.first_lba, esp.last_lba, esp.blocks(), esp.attributes), (34, 49, 16, 1));
        assert_eq!(esp.name, "EFI System");
        let data = t.by_number(2).unwrap();
        assert_eq!((data.type_guid, data.name.as_str(), data.blocks(), data.attributes), (CAPOS_DATA_PARTITION, "capOS data", 45, 1 << 48 | 1));
        assert_eq!(t.by_number(0), None);
        assert_eq!(t.by_number(3), None);
        assert_eq!(t.by_type(&CAPOS_DATA_PARTITION).map(|p| p.number).collect::<Vec<_>>(), [2]);
        assert_eq!(t.by_type(&Guid::ZERO).count(), 0);
        // The primary header and its 32 blocks of entries; not the backup.
        assert_eq!(reads, (1..=33).collect::<Vec<u64>>());
    }

    #[test]
    fn no_protective_mbr_is_needed() {
        let mut d = two_parts();
        let with_mbr = parse_disk(&d).unwrap();
        d[..SECTOR].fill(0);
        assert_eq!(parse_disk(&d).unwrap(), with_mbr);
        d[..SECTOR].fill(0xFF);
        assert_eq!(parse_disk(&d).unwrap(), with_mbr);
    }

    #[test]
    fn unused_entries_are_skipped_and_numbers_are_entry_indexes() {
        let mut d = build(&STD, &[part(4, CAPOS_DATA_PARTITION, 40, 50, "a"), part(127, EFI_SYSTEM_PARTITION, 94, 94, "last")]);
        // A zero type GUID makes an entry unused whatever else it holds.
        set_entry(&mut d, 9, 16, &[0x77; 112]);
        let t = parse_disk(&d).unwrap();
        assert_eq!(t.used, Header::Primary);
        assert_eq!(t.partitions.iter().map(|p| p.number).collect::<Vec<_>>(), [5, 128]);
        assert_eq!(t.by_number(128).unwrap().blocks(), 1);
        // And an empty table is a table.
        assert_eq!(parse_disk(&build(&STD, &[])).unwrap().partitions, []);
    }

    #[test]
    fn names_are_decoded_lossily_and_cut_at_the_first_nul() {
        let long = "abcdefghijklmnopqrstuvwxyz0123456789"; // 36 units, no NUL
        let mut d = build(&STD, &[part(0, CAPOS_DATA_PARTITION, 34, 40, long), part(1, CAPOS_DATA_PARTITION, 41, 42, "x")]);
        assert_eq!(parse_disk(&d).unwrap().partitions[0].name, long);
        let units = |u: &[u16]| u.iter().flat_map(|u| u.to_le_bytes()).collect::<Vec<u8>>();
        // Unpaired surrogate, a pair (U+1D11E), a NUL, then bytes to ignore.
        set_entry(&mut d, 1, E_NAME, &units(&[0xD800, b'y' as u16, 0xD834, 0xDD1E, 0, b'z' as u16]));
        assert_eq!(parse_disk(&d).unwrap().partitions[1].name, "\u{FFFD}y\u{1D11E}");
    }

    #[test]
    fn entry_sizes_and_counts_other_than_sgdisks_work() {
        for l in [
            Layout { blocks: 64, count: 4, size: 256 },
            Layout { blocks: 64, count: 4, size: 512 },
            Layout { blocks: 64, count: 4, size: 1024 },
            Layout { blocks: 64, count: 3, size: 4096 },
            Layout { blocks: 600, count: 1024, size: 128 },
            Layout { blocks: 4200, count: 256, size: 4096 }, // exactly 1 MiB
            Layout { blocks: 64, count: 5, size: 128 },      // 640 bytes: the CRC stops inside block 2
        ] {
            let (f, last) = (l.first_usable(), l.last_usable());
            let d = build(&l, &[part(0, CAPOS_DATA_PARTITION, f, f + 1, "a"), part(l.count - 1, EFI_SYSTEM_PARTITION, last, last, "z")]);
            let t = parse_disk(&d).unwrap_or_else(|e| panic!("{} x {}: {}", l.count, l.size, e));
            assert_eq!(t.used, Header::Primary);
            assert_eq!(t.partitions.iter().map(|p| (p.number, p.name.as_str())).collect::<Vec<_>>(), [(1, "a"), (l.count, "z")]);
        }
    }

    #[test]
    fn the_smallest_disk_holds_a_gpt_and_smaller_ones_are_refused() {
        // MBR, header, one block of 4 entries, one usable block (then the
        // backup, which a 4-block disk has no room for).
        let l = Layout { blocks: 6, count: 4, size: 128 };
        let d = build(&l, &[part(0, CAPOS_DATA_PARTITION, 3, 3, "one")]);
        assert_eq!(parse_disk(&d).unwrap().partitions[0].blocks(), 1);
        let t = parse(MIN_BLOCKS, read_from(&d[..4 * SECTOR])).unwrap();
        assert_eq!((t.used, t.first_usable, t.last_usable), (Header::Primary, 3, 3));
        for n in 0..MIN_BLOCKS {
            let r = parse(n, |_, _| -> Result<(), ()> { panic!("nothing to read on a disk of {} blocks", n) });
            assert_eq!(r, Err(GptError::DiskTooSmall { block_count: n }));
        }
    }

    // ---- The header ----

    #[test]
    fn a_header_without_the_signature_is_refused() {
        let mut d = two_parts();
        kill_primary(&mut d);
        primary_refused(&d, GptError::Signature { header: Header::Primary });
        d[at(STD.backup(), 7)] = b'S';
        both_refused(&d, GptError::Signature { header: Header::Primary }, GptError::Signature { header: Header::Backup });
    }

    #[test]
    fn only_revision_1_0_is_accepted() {
        for rev in [0, 0x0001_0001, 0x0002_0000, 0x0000_0001, u32::MAX] {
            let mut d = two_parts();
            put32(&mut d, 1, H_REVISION, rev);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::Revision { header: Header::Primary, revision: rev });
        }
    }

    #[test]
    fn header_size_must_be_92_to_512() {
        for size in [0, 91, 513, 4096, u32::MAX] {
            let mut d = two_parts();
            put32(&mut d, 1, H_SIZE, size);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::HeaderSize { header: Header::Primary, size });
        }
        for size in [92, 93, 200, 512] {
            let mut d = two_parts();
            put32(&mut d, 1, H_SIZE, size);
            reseal(&mut d, 1);
            assert_eq!(parse_disk(&d).unwrap().used, Header::Primary, "size {}", size);
        }
    }

    #[test]
    fn a_header_crc_mismatch_is_refused() {
        let mut d = two_parts();
        let stored = get32(&d, 1, H_CRC);
        d[at(1, 60)] ^= 0x5A; // a byte of the disk GUID
        let computed = header_crc(&d, 1);
        assert_ne!(stored, computed);
        primary_refused(&d, GptError::HeaderCrc { header: Header::Primary, stored, computed });
        // The same in the backup, with the primary gone: both named.
        kill_primary(&mut d);
        let stored = get32(&d, STD.backup(), H_CRC);
        d[at(STD.backup(), 60)] ^= 0x5A;
        let computed = header_crc(&d, STD.backup());
        both_refused(&d, GptError::Signature { header: Header::Primary }, GptError::HeaderCrc { header: Header::Backup, stored, computed });
    }

    #[test]
    fn the_header_crc_covers_exactly_header_size_bytes() {
        let mut d = two_parts();
        put32(&mut d, 1, H_SIZE, 100);
        reseal(&mut d, 1);
        // Past HeaderSize: not covered, not checked.
        d[at(1, 100)] = 0xEE;
        d[at(1, 511)] = 0xEE;
        assert_eq!(parse_disk(&d).unwrap().used, Header::Primary);
        // Inside HeaderSize but past the 92 bytes of fields: covered.
        let stored = get32(&d, 1, H_CRC);
        d[at(1, 99)] = 0xEE;
        primary_refused(&d, GptError::HeaderCrc { header: Header::Primary, stored, computed: header_crc(&d, 1) });
    }

    #[test]
    fn a_header_must_be_at_its_my_lba() {
        let mut d = two_parts();
        put64(&mut d, 1, H_MY, 2);
        reseal(&mut d, 1);
        primary_refused(&d, GptError::MyLba { header: Header::Primary, read_at: 1, my_lba: 2 });
        // A copy of the primary header in the last block is not a backup.
        let mut d = two_parts();
        let primary = d[at(1, 0)..at(2, 0)].to_vec();
        d[at(STD.backup(), 0)..].copy_from_slice(&primary);
        kill_primary(&mut d);
        both_refused(&d, GptError::Signature { header: Header::Primary }, GptError::MyLba { header: Header::Backup, read_at: 127, my_lba: 1 });
    }

    #[test]
    fn the_usable_range_must_be_non_empty_and_on_the_disk() {
        for (first, last) in [(95, 94), (60, 50), (34, 128), (34, u64::MAX), (u64::MAX, u64::MAX)] {
            let mut d = two_parts();
            put64(&mut d, 1, H_FIRST, first);
            put64(&mut d, 1, H_LAST, last);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::UsableRange { header: Header::Primary, first_usable: first, last_usable: last, block_count: 128 });
        }
    }

    #[test]
    fn the_usable_range_must_not_cover_the_mbr_or_a_header() {
        for (first, lba) in [(0, 0), (1, 1)] {
            let mut d = two_parts();
            put64(&mut d, 1, H_FIRST, first);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::UsableCoversMetadata { header: Header::Primary, first_usable: first, last_usable: 94, lba });
        }
        // The backup's range must spare its own block and LBA 1 too.
        for (first, last, lba) in [(34, 127, 127), (1, 94, 1)] {
            let mut d = two_parts();
            kill_primary(&mut d);
            put64(&mut d, 127, H_FIRST, first);
            put64(&mut d, 127, H_LAST, last);
            reseal(&mut d, 127);
            both_refused(
                &d,
                GptError::Signature { header: Header::Primary },
                GptError::UsableCoversMetadata { header: Header::Backup, first_usable: first, last_usable: last, lba },
            );
        }
    }

    #[test]
    fn the_entry_size_must_be_128_times_a_power_of_two_up_to_4096() {
        for size in [0, 1, 64, 100, 127, 129, 192, 384, 8192, 1 << 31, u32::MAX] {
            let mut d = two_parts();
            put32(&mut d, 1, H_ESIZE, size);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::EntrySize { header: Header::Primary, size });
        }
    }

    #[test]
    fn the_entry_count_is_bounded() {
        for (count, size) in [(0, 128), (1025, 128), (u32::MAX, 128), (257, 4096), (u32::MAX, 4096)] {
            let mut d = two_parts();
            put32(&mut d, 1, H_COUNT, count);
            put32(&mut d, 1, H_ESIZE, size);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::EntryCount { header: Header::Primary, count, entry_size: size });
        }
    }

    #[test]
    fn the_entry_array_must_lie_inside_the_disk() {
        for entry_lba in [97, 127, 128, u64::MAX - 31, u64::MAX] {
            let mut d = two_parts();
            put64(&mut d, 1, H_ENTRY_LBA, entry_lba);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::ArrayOutsideDisk { header: Header::Primary, entry_lba, blocks: 32, block_count: 128 });
        }
    }

    #[test]
    fn the_entry_array_must_not_cover_the_mbr_or_a_header() {
        for (entry_lba, lba) in [(0, 0), (1, 1)] {
            let mut d = two_parts();
            put64(&mut d, 1, H_ENTRY_LBA, entry_lba);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::ArrayCoversMetadata { header: Header::Primary, entry_lba, blocks: 32, lba });
        }
        // The backup's array running into the backup header itself, or
        // over the primary header's block.
        for (entry_lba, lba) in [(96, 127), (1, 1)] {
            let mut d = two_parts();
            kill_primary(&mut d);
            put64(&mut d, 127, H_ENTRY_LBA, entry_lba);
            reseal(&mut d, 127);
            both_refused(&d, GptError::Signature { header: Header::Primary }, GptError::ArrayCoversMetadata { header: Header::Backup, entry_lba, blocks: 32, lba });
        }
    }

    #[test]
    fn the_entry_array_must_not_overlap_the_usable_range() {
        for entry_lba in [3, 34, 60, 94] {
            let mut d = two_parts();
            put64(&mut d, 1, H_ENTRY_LBA, entry_lba);
            reseal(&mut d, 1);
            primary_refused(&d, GptError::ArrayOverlapsUsable { header: Header::Primary, entry_lba, blocks: 32, first_usable: 34, last_usable: 94 });
        }
        // Outside the usable range is enough: the primary may name the
        // backup's array (the same bytes, so the same CRC).
        let mut d = two_parts();
        put64(&mut d, 1, H_ENTRY_LBA, 95);
        reseal(&mut d, 1);
        assert_eq!(parse_disk(&d).unwrap().used, Header::Primary);
    }

    // ---- The entry array ----

    #[test]
    fn an_entry_array_crc_mismatch_is_refused() {
        let mut d = two_parts();
        let stored = get32(&d, 1, H_ACRC);
        d[at(2, 128 + E_NAME)] ^= 0x20; // "capOS data" -> "CapOS data"
        let computed = array_crc(&d, 1).unwrap();
        primary_refused(&d, GptError::ArrayCrc { header: Header::Primary, stored, computed });
        assert_eq!(parse_disk(&d).unwrap().by_number(2).unwrap().name, "capOS data", "from the backup");
        // In an entry the table does not use, too: the CRC covers them all.
        let mut d = two_parts();
        d[at(33, 511)] = 1;
        primary_refused(&d, GptError::ArrayCrc { header: Header::Primary, stored, computed: array_crc(&d, 1).unwrap() });
    }

    #[test]
    fn the_array_crc_covers_exactly_count_times_size_bytes() {
        // 5 entries of 128 bytes: 640 bytes, the CRC ends 128 bytes into block 3.
        let l = Layout { blocks: 64, count: 5, size: 128 };
        let mut d = build(&l, &[part(0, CAPOS_DATA_PARTITION, 10, 20, "a")]);
        d[at(3, 128)] ^= 1; // already 0xA5 junk from the builder; still not covered
        assert_eq!(parse_disk(&d).unwrap().used, Header::Primary);
        let stored = get32(&d, 1, H_ACRC);
        d[at(3, 127)] ^= 1;
        primary_refused(&d, GptError::ArrayCrc { header: Header::Primary, stored, computed: array_crc(&d, 1).unwrap() });
    }

    #[test]
    fn an_entry_must_not_run_backwards() {
        let d = build(&STD, &[part(0, CAPOS_DATA_PARTITION, 34, 40, "ok"), part(2, CAPOS_DATA_PARTITION, 60, 50, "backwards")]);
        both_refused(
            &d,
            GptError::EntryBackwards { header: Header::Primary, number: 3, first_lba: 60, last_lba: 50 },
            GptError::EntryBackwards { header: Header::Backup, number: 3, first_lba: 60, last_lba: 50 },
        );
    }

    #[test]
    fn an_entry_must_lie_in_the_usable_range() {
        for (first, last) in [(33, 40), (90, 95), (0, 0), (1, 33), (95, 127), (u64::MAX, u64::MAX), (0, u64::MAX)] {
            let d = build(&STD, &[part(0, CAPOS_DATA_PARTITION, first, last, "out")]);
            let e = |header| GptError::EntryOutsideUsable { header, number: 1, first_lba: first, last_lba: last, first_usable: 34, last_usable: 94 };
            both_refused(&d, e(Header::Primary), e(Header::Backup));
        }
        // The edges themselves are in.
        let d = build(&STD, &[part(0, CAPOS_DATA_PARTITION, 34, 94, "all")]);
        assert_eq!(parse_disk(&d).unwrap().partitions[0].blocks(), 61);
    }

    #[test]
    fn overlapping_entries_are_refused_naming_both() {
        type Case = (&'static [(u32, u64, u64)], (u32, u32));
        let cases: &[Case] = &[
            (&[(0, 34, 40), (1, 41, 50), (3, 50, 60)], (2, 4)), // one shared block
            (&[(0, 60, 70), (5, 34, 60)], (1, 6)),              // entry order is not block order
            (&[(0, 34, 94), (1, 40, 41)], (1, 2)),              // one inside the other
            (&[(7, 50, 50), (2, 50, 50)], (3, 8)),              // the same block
            (&[(0, 34, 90), (1, 40, 41), (2, 60, 61)], (1, 2)), // a long one across two
        ];
        for (entries, (a, b)) in cases {
            let parts: Vec<Part> = entries.iter().map(|&(slot, f, l)| part(slot, CAPOS_DATA_PARTITION, f, l, "p")).collect();
            let d = build(&STD, &parts);
            both_refused(&d, GptError::EntriesOverlap { header: Header::Primary, a: *a, b: *b }, GptError::EntriesOverlap { header: Header::Backup, a: *a, b: *b });
        }
        // Touching is not overlapping.
        let d = build(&STD, &[part(0, CAPOS_DATA_PARTITION, 34, 40, "a"), part(1, CAPOS_DATA_PARTITION, 41, 41, "b"), part(2, CAPOS_DATA_PARTITION, 42, 94, "c")]);
        assert_eq!(parse_disk(&d).unwrap().partitions.len(), 3);
    }

    // ---- Primary and backup ----

    #[test]
    fn the_backup_is_found_at_the_primarys_alternate_lba() {
        // A disk grown after the table was written (a cloud disk resized
        // past its image): the backup is no longer in the last block.
        let mut d = two_parts();
        d.resize(200 * SECTOR, 0);
        assert_eq!(parse_disk(&d).unwrap().used, Header::Primary);
        // The primary header intact, its array not: its AlternateLBA leads
        // to the backup.
        let stored = get32(&d, 1, H_ACRC);
        d[at(2, E_NAME)] ^= 1;
        let t = parse_disk(&d).unwrap();
        assert_eq!(t.used, Header::Backup);
        assert_eq!(t.primary_problem, Some(GptError::ArrayCrc { header: Header::Primary, stored, computed: array_crc(&d, 1).unwrap() }));
        assert_eq!(t.partitions, parse_disk(&two_parts()).unwrap().partitions);
        // The primary header itself broken: nothing to trust, so the last
        // block is tried, and holds nothing.
        kill_primary(&mut d);
        assert_eq!(
            parse_disk(&d),
            Err(GptError::BothBad { primary: Box::new(GptError::Signature { header: Header::Primary }), backup: Box::new(GptError::Signature { header: Header::Backup }), backup_lba: 199 })
        );
    }

    #[test]
    fn an_alternate_lba_off_the_disk_is_not_followed() {
        for alt in [0, 1, 128, 1000, u64::MAX] {
            let mut d = two_parts();
            put64(&mut d, 1, H_ALT, alt);
            d[at(2, E_NAME)] ^= 1;
            reseal(&mut d, 1);
            let t = parse_disk(&d).unwrap();
            assert_eq!((t.used, &t.primary_problem.map(|p| matches!(p, GptError::ArrayCrc { .. }))), (Header::Backup, &Some(true)), "AlternateLBA {}", alt);
        }
        // One on the disk is followed, even when it leads nowhere.
        let mut d = two_parts();
        put64(&mut d, 1, H_ALT, 50);
        d[at(2, E_NAME)] ^= 1;
        reseal(&mut d, 1);
        match parse_disk(&d) {
            Err(GptError::BothBad { backup, backup_lba: 50, .. }) => assert_eq!(*backup, GptError::Signature { header: Header::Backup }),
            other => panic!("{:?}", other),
        }
    }

    #[test]
    fn read_failures_are_reported_and_the_backup_is_tried() {
        #[derive(Debug)]
        struct Io;
        let d = two_parts();
        for bad in [1, 2, 33] {
            let t = parse(128, |lba, b| if lba == bad { Err(Io) } else { read_from(&d)(lba, b).map_err(|_| Io) }).unwrap();
            assert_eq!((t.used, t.primary_problem), (Header::Backup, Some(GptError::Read { header: Header::Primary, lba: bad })));
        }
        let r = parse(128, |_, _| Err(Io));
        assert_eq!(
            r,
            Err(GptError::BothBad {
                primary: Box::new(GptError::Read { header: Header::Primary, lba: 1 }),
                backup: Box::new(GptError::Read { header: Header::Backup, lba: 127 }),
                backup_lba: 127
            })
        );
        // A short disk image: the closure fails for blocks it does not have.
        let (r, _) = parse_logged(&d[..20 * SECTOR], 128);
        assert_eq!(
            r,
            Err(GptError::BothBad {
                primary: Box::new(GptError::Read { header: Header::Primary, lba: 20 }),
                backup: Box::new(GptError::Read { header: Header::Backup, lba: 127 }),
                backup_lba: 127
            })
        );
    }

    #[test]
    fn both_bad_names_both_problems() {
        let mut d = two_parts();
        d[at(1, 60)] ^= 1;
        d[at(STD.backup_array(), 60)] ^= 1;
        let e = parse_disk(&d).unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("no usable GPT: primary GPT header CRC mismatch (stored 0x"), "{}", text);
        assert!(text.contains("; backup GPT entry array CRC mismatch (stored 0x"), "{}", text);
        assert!(text.ends_with("(backup looked for at LBA 127)"), "{}", text);
    }

    #[test]
    fn messages_say_what_is_wrong() {
        use GptError::*;
        let h = Header::Primary;
        let cases = [
            (HeaderCrc { header: h, stored: 0x1234_5678, computed: 0x9ABC_DEF0 }, "primary GPT header CRC mismatch (stored 0x12345678, computed 0x9abcdef0)"),
            (Read { header: Header::Backup, lba: 127 }, "backup GPT: reading LBA 127 failed"),
            (EntriesOverlap { header: h, a: 2, b: 4 }, "primary GPT entries 2 and 4 overlap"),
            (MyLba { header: h, read_at: 1, my_lba: 2 }, "primary GPT header read from LBA 1 says it is at LBA 2"),
            (DiskTooSmall { block_count: 3 }, "disk of 3 blocks is too small for a GPT (at least 4 needed)"),
            (Revision { header: h, revision: 0x0001_0001 }, "primary GPT header: revision 0x00010001, only 1.0 (0x00010000) is supported"),
            (
                ArrayCoversMetadata { header: h, entry_lba: u64::MAX, blocks: u64::MAX, lba: 0 },
                "primary GPT entry array at LBA 18446744073709551615..=18446744073709551615 covers LBA 0 (protective MBR or a GPT header)",
            ),
            (UsableRange { header: h, first_usable: 5, last_usable: 4, block_count: 0 }, "primary GPT header: usable range LBA 5..=4 is empty or ends past the disk's last LBA 0"),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }

    // ---- The layout the host tool writes ----

    /// The blocks `sgdisk` 1.0.9 writes for the cloud disk, as
    /// tools/runner/src/volumes/disk/mod.rs `assemble` asks for it on a 10 GiB disk
    /// (DEFAULT_DISK_GIB): its non-zero bytes, as (LBA, offset, hex). Made
    /// with `truncate -s 10G d.raw` and the sgdisk arguments `assemble`
    /// passes (--clear, --disk-guid, --new/--typecode/--change-name/
    /// --partition-guid for partitions 1 and 2).
    const CLOUD_BLOCKS: u64 = 10 * (1 << 30) / SECTOR as u64;
    const CLOUD_DISK: &[(u64, usize, &str)] = &[
        (
            0,
            448,
            "0200eeffffff01000000ffff3f0100000000000000000000000000000000000000000000000000000000000000000000\
             000000000000000000000000000055aa",
        ),
        (
            1,
            0,
            "4546492050415254000001005c000000fcda3a4c000000000100000000000000ffff3f01000000002200000000000000\
             deff3f0100000000f86502826310ec469e286bc81ba19d330200000000000000800000008000000094c3c6f7",
        ),
        (2, 0, CLOUD_ENTRIES),
        (CLOUD_BLOCKS - 33, 0, CLOUD_ENTRIES),
        (
            CLOUD_BLOCKS - 1,
            0,
            "4546492050415254000001005c0000005109b4f300000000ffff3f010000000001000000000000002200000000000000\
             deff3f0100000000f86502826310ec469e286bc81ba19d33dfff3f0100000000800000008000000094c3c6f7",
        ),
    ];
    const CLOUD_ENTRIES: &str = "28732ac11ff8d211ba4b00a0c93ec93b61f36c5d30c36c4ab37b912d9fad75770008000000000000ff07040000000000\
         00000000000000004500460049002000530079007300740065006d000000000000000000000000000000000000000000\
         0000000000000000000000000000000000000000000000000000000000000000ffe59aa5f68ffc4a89b02cee37a58890\
         54cfa863f2d55340bb6c7b488f2380820008040000000000ff0706000000000000000000000000006300610070004f00\
         5300200064006100740061";

    fn cloud_disk() -> BTreeMap<u64, [u8; SECTOR]> {
        let mut m = BTreeMap::new();
        for &(lba, off, hex) in CLOUD_DISK {
            let b: &mut [u8; SECTOR] = m.entry(lba).or_insert([0; SECTOR]);
            for (k, pair) in hex.as_bytes().chunks(2).enumerate() {
                b[off + k] = (hex_digit(pair[0]).unwrap() << 4) | hex_digit(pair[1]).unwrap();
            }
        }
        m
    }

    fn parse_sparse(m: &BTreeMap<u64, [u8; SECTOR]>, block_count: u64) -> Result<GptTable, GptError> {
        parse(block_count, |lba, b| -> Result<(), ()> {
            assert!(lba < block_count);
            *b = m.get(&lba).copied().unwrap_or([0; SECTOR]);
            Ok(())
        })
    }

    #[test]
    fn the_cloud_disk_sgdisk_writes_is_accepted() {
        let mut m = cloud_disk();
        let t = parse_sparse(&m, CLOUD_BLOCKS).unwrap();
        assert_eq!((t.used, t.disk_guid), (Header::Primary, Guid::parse("820265F8-1063-46EC-9E28-6BC81BA19D33").unwrap()));
        assert_eq!((t.first_usable, t.last_usable), (34, CLOUD_BLOCKS - 34));
        let got: Vec<_> = t.partitions.iter().map(|p| (p.number, p.type_guid, p.unique_guid, p.first_lba, p.last_lba, p.attributes, p.name.as_str())).collect();
        assert_eq!(
            got,
            [
                (1, EFI_SYSTEM_PARTITION, Guid::parse("5D6CF361-C330-4A6C-B37B-912D9FAD7577").unwrap(), 2048, 264_191, 0, "EFI System"),
                (2, CAPOS_DATA_PARTITION, Guid::parse("63A8CF54-D5F2-4053-BB6C-7B488F238082").unwrap(), 264_192, 395_263, 0, "capOS data"),
            ]
        );
        // What the kernel will do with it.
        let data: Vec<_> = t.by_type(&Guid::parse("a59ae5ff-8ff6-4afc-89b0-2cee37a58890").unwrap()).collect();
        assert_eq!((data.len(), data[0].blocks() * SECTOR as u64), (1, 64 << 20));
        // Compute Engine may hand us a bigger disk than the image: fine.
        assert_eq!(parse_sparse(&m, 2 * CLOUD_BLOCKS).unwrap().partitions, t.partitions);
        // The backup alone gives the same table.
        m.get_mut(&2).unwrap()[100] ^= 1;
        let b = parse_sparse(&m, 2 * CLOUD_BLOCKS).unwrap();
        assert_eq!((b.used, &b.partitions, b.disk_guid), (Header::Backup, &t.partitions, t.disk_guid));
        m.remove(&1);
        let b = parse_sparse(&m, CLOUD_BLOCKS).unwrap();
        assert_eq!((b.used, b.partitions), (Header::Backup, t.partitions));
    }

    // ---- Hostile bytes ----

    /// xorshift64*: deterministic, so a failure repeats.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn kind(e: &GptError) -> String {
        let s = format!("{:?}", e);
        s.split([' ', '{']).next().unwrap().to_string()
    }

    #[test]
    fn hostile_bytes_never_panic_and_what_parses_obeys_the_rules() {
        let layouts = [STD, Layout { blocks: 24, count: 8, size: 128 }, Layout { blocks: 40, count: 4, size: 1024 }, Layout { blocks: 20, count: 5, size: 256 }];
        let bases: Vec<Vec<u8>> = layouts
            .iter()
            .map(|l| {
                let (f, last) = (l.first_usable(), l.last_usable());
                build(l, &[part(0, EFI_SYSTEM_PARTITION, f, f + 1, "esp"), part(1, CAPOS_DATA_PARTITION, f + 2, last, "data"), part(l.count - 1, CAPOS_DATA_PARTITION, f + 2, f + 2, "x")])
            })
            .collect();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            let i = rng.below(layouts.len() as u64) as usize;
            let l = layouts[i];
            let mut d = bases[i].clone();
            // The last entry overlaps the data partition: keep it only sometimes.
            if rng.below(2) == 0 {
                for a in [2, l.backup_array()] {
                    d[at(a, (l.count as usize - 1) * l.size as usize)] = 0;
                }
                reseal_all(&mut d, 1);
                reseal_all(&mut d, l.backup());
            }
            let blocks = l.blocks;
            let headers = [1, l.backup()];
            let arrays = [2, l.backup_array()];
            let interesting = |rng: &mut Rng| -> u64 {
                let v = [0, 1, 2, 3, blocks - 2, blocks - 1, blocks, blocks + 1, u32::MAX as u64, 1 << 63, u64::MAX - 1, u64::MAX];
                if rng.below(4) == 0 {
                    rng.next()
                } else {
                    v[rng.below(v.len() as u64) as usize]
                }
            };
            for _ in 0..1 + rng.below(3) {
                let h = headers[rng.below(2) as usize];
                let a = arrays[rng.below(2) as usize];
                match rng.below(5) {
                    0 => d[at(h, rng.below(100) as usize)] = rng.next() as u8,
                    1 => {
                        let off = [H_MY, H_ALT, H_FIRST, H_LAST, H_ENTRY_LBA][rng.below(5) as usize];
                        let v = interesting(&mut rng);
                        put64(&mut d, h, off, v);
                    }
                    2 => {
                        let off = [H_REVISION, H_SIZE, H_COUNT, H_ESIZE][rng.below(4) as usize];
                        let v = [0, 1, 91, 92, 127, 128, 256, 512, 513, 1024, 1025, 4096, 8192, 0x0001_0000, u32::MAX][rng.below(15) as usize];
                        put32(&mut d, h, off, v);
                    }
                    3 => {
                        let e = rng.below(l.count as u64) as usize * l.size as usize;
                        let o = at(a, e + rng.below(128) as usize);
                        d[o] = rng.next() as u8;
                    }
                    _ => {
                        let e = rng.below(l.count as u64) as usize * l.size as usize;
                        let v = interesting(&mut rng);
                        let o = at(a, e + [E_FIRST, E_LAST][rng.below(2) as usize]);
                        d[o..o + 8].copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            // Mostly reseal, so the checks past the CRCs are reached.
            if rng.below(4) != 0 {
                for h in headers {
                    reseal_all(&mut d, h);
                }
            }
            let block_count = match rng.below(8) {
                0 => rng.below(blocks + 2),
                1 => blocks + rng.below(64),
                _ => blocks,
            };
            let (r, reads) = parse_logged(&d, block_count);
            assert!(reads.len() <= 2 + 2 * 2048, "{} reads", reads.len());
            match r {
                Ok(t) => {
                    seen.insert(format!("Ok {:?}", t.used));
                    assert!(2 <= t.first_usable && t.first_usable <= t.last_usable && t.last_usable < block_count);
                    assert_eq!(t.used == Header::Backup, t.primary_problem.is_some());
                    assert!(t.partitions.windows(2).all(|w| w[0].number < w[1].number));
                    for p in &t.partitions {
                        assert!(p.type_guid != Guid::ZERO && (1..=1024).contains(&p.number));
                        assert!(t.first_usable <= p.first_lba && p.first_lba <= p.last_lba && p.last_lba <= t.last_usable);
                        for q in &t.partitions {
                            assert!(p.number == q.number || p.last_lba < q.first_lba || q.last_lba < p.first_lba);
                        }
                    }
                    if let Some(e) = &t.primary_problem {
                        seen.insert(kind(e));
                    }
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    match &e {
                        GptError::BothBad { primary, backup, .. } => {
                            seen.insert(kind(primary));
                            seen.insert(kind(backup));
                        }
                        other => {
                            seen.insert(kind(other));
                        }
                    }
                }
            }
        }
        // The mutations reach every rule, not just the CRCs.
        for k in [
            "Ok Primary",
            "Ok Backup",
            "DiskTooSmall",
            "Read",
            "Signature",
            "Revision",
            "HeaderSize",
            "HeaderCrc",
            "MyLba",
            "UsableRange",
            "UsableCoversMetadata",
            "EntrySize",
            "EntryCount",
            "ArrayOutsideDisk",
            "ArrayCoversMetadata",
            "ArrayOverlapsUsable",
            "ArrayCrc",
            "EntryBackwards",
            "EntryOutsideUsable",
            "EntriesOverlap",
        ] {
            assert!(seen.contains(k), "never saw {}; saw {:?}", k, seen);
        }
    }
}
