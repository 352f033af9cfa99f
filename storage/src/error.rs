//! Errors are values: every failure a caller or an image can cause is a
//! variant here, with a message that says what is wrong. Nothing in this
//! crate panics on bad input.

use crate::block::BlockError;
use core::fmt;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StorageError {
    // --- device and geometry ---
    /// The device failed a request.
    Device(BlockError),
    /// The device's block size is not the one the formats are laid out in.
    UnsupportedBlockSize(usize),
    /// The device (or image) is too small for the requested layout.
    DeviceTooSmall { needed_blocks: u64, available_blocks: u64 },

    // --- image corruption (fsck reports these as corruption) ---
    /// A structure ends past the bytes that hold it.
    Truncated,
    /// The first eight bytes are not the expected magic.
    BadMagic { expected: [u8; 8], found: [u8; 8] },
    /// A format version this code does not implement.
    UnsupportedVersion { format: &'static str, version: u32 },
    /// The image uses incompatible features this code does not know.
    IncompatibleFeatures { unknown: u64 },
    /// A checksum did not match: `what` names the structure, `location` the
    /// block (or record index) it lives in.
    ChecksumMismatch { what: &'static str, location: u64 },
    /// A structural invariant does not hold; the message says which.
    Corrupt { what: &'static str, detail: u64 },
    /// Neither commit record is valid.
    NoValidCommit,

    // --- operation errors ---
    NotFound,
    AlreadyExists,
    NotADirectory,
    NotAFile,
    DirectoryNotEmpty,
    /// A name is empty, too long, `.`/`..`, or holds NUL or `/`.
    InvalidName(&'static str),
    /// The filesystem or store was mounted read-only (or is read-only by
    /// format) and the call would mutate it.
    ReadOnly,
    /// A node handle refers to a node that was removed (and maybe reused).
    StaleHandle,
    /// No free data blocks are left.
    NoSpace,
    /// The node table is full.
    TooManyNodes,
    /// A rename would move a directory into its own subtree.
    WouldCreateCycle,
    /// The file would exceed the largest size the format can address.
    FileTooLarge,
    /// CAPOSST1: the entry does not fit even after compaction; nothing changed.
    StoreFull,
    KeyTooLong { len: usize, max: usize },
    ValueTooLarge { len: usize, max: usize },
    /// An argument is outside what the operation accepts.
    InvalidArgument(&'static str),
    /// An earlier device error left in-memory state unknown; remount.
    Poisoned,
}

impl StorageError {
    /// Whether this error means the image itself is damaged (as opposed to
    /// a usage error or a device failure). `fsck` exits with its corruption
    /// code for exactly these.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            StorageError::Truncated
                | StorageError::BadMagic { .. }
                | StorageError::UnsupportedVersion { .. }
                | StorageError::IncompatibleFeatures { .. }
                | StorageError::ChecksumMismatch { .. }
                | StorageError::Corrupt { .. }
                | StorageError::NoValidCommit
                | StorageError::DeviceTooSmall { .. }
                | StorageError::UnsupportedBlockSize(_)
        )
    }
}

impl From<BlockError> for StorageError {
    fn from(error: BlockError) -> Self {
        StorageError::Device(error)
    }
}

fn magic_text(f: &mut fmt::Formatter<'_>, magic: &[u8; 8]) -> fmt::Result {
    for &b in magic {
        if b.is_ascii_graphic() {
            write!(f, "{}", b as char)?;
        } else {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

impl fmt::Display for StorageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use StorageError::*;
        match self {
            Device(e) => write!(f, "device error: {e}"),
            UnsupportedBlockSize(size) => {
                write!(f, "unsupported device block size {size} (formats use 512-byte blocks)")
            }
            DeviceTooSmall { needed_blocks, available_blocks } => write!(
                f,
                "device too small: layout needs {needed_blocks} blocks, device has {available_blocks}"
            ),
            Truncated => write!(f, "structure truncated: image ends before the data it describes"),
            BadMagic { expected, found } => {
                write!(f, "bad magic: expected \"")?;
                magic_text(f, expected)?;
                write!(f, "\", found \"")?;
                magic_text(f, found)?;
                write!(f, "\"")
            }
            UnsupportedVersion { format, version } => {
                write!(f, "{format}: unsupported format version {version}")
            }
            IncompatibleFeatures { unknown } => write!(
                f,
                "image uses unknown incompatible features {unknown:#x}; refusing to open"
            ),
            ChecksumMismatch { what, location } => {
                write!(f, "checksum mismatch in {what} at {location}")
            }
            Corrupt { what, detail } => write!(f, "corrupt image: {what} ({detail})"),
            NoValidCommit => write!(f, "no valid commit record: both slots fail their checks"),
            NotFound => write!(f, "no such file or directory"),
            AlreadyExists => write!(f, "name already exists"),
            NotADirectory => write!(f, "not a directory"),
            NotAFile => write!(f, "not a file"),
            DirectoryNotEmpty => write!(f, "directory not empty"),
            InvalidName(why) => write!(f, "invalid name: {why}"),
            ReadOnly => write!(f, "read-only: mutation refused"),
            StaleHandle => write!(f, "stale handle: the node was removed"),
            NoSpace => write!(f, "no space left: all data blocks are in use"),
            TooManyNodes => write!(f, "node table full"),
            WouldCreateCycle => write!(f, "cannot move a directory into its own subtree"),
            FileTooLarge => write!(f, "file too large for this format"),
            StoreFull => write!(
                f,
                "store full: the entry does not fit even after compaction; nothing was changed"
            ),
            KeyTooLong { len, max } => write!(f, "key of {len} bytes exceeds the limit of {max}"),
            ValueTooLarge { len, max } => {
                write!(f, "value of {len} bytes exceeds the limit of {max}")
            }
            InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Poisoned => write!(f, "an earlier device error left the volume in an unknown state; remount"),
        }
    }
}
