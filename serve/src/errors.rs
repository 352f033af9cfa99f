//! Every [`StorageError`] as exactly one [`ErrorCode`]: the one table.
//!
//! The match below has no wildcard arm, so a new storage error does not
//! compile until someone decides its code here. The message is the
//! storage error's own `Display` text: it says what went wrong (which
//! checksum, which limit) for the person reading it; clients branch on the
//! code only.

use capos_abi::capos_capnp::ErrorCode;
use capos_abi::helpers::CapError;
use alloc::string::ToString;
use capos_storage::StorageError;

/// The code a client sees for `e`.
pub fn error_code(e: &StorageError) -> ErrorCode {
    use ErrorCode as C;
    use StorageError as S;
    match e {
        S::Device(_) => C::Io,
        S::Poisoned => C::Io,
        S::UnsupportedBlockSize(_) => C::Unsupported,
        S::UnsupportedVersion { .. } => C::Unsupported,
        S::IncompatibleFeatures { .. } => C::Unsupported,
        S::DeviceTooSmall { .. } => C::Corrupted,
        S::Truncated => C::Corrupted,
        S::BadMagic { .. } => C::Corrupted,
        S::ChecksumMismatch { .. } => C::Corrupted,
        S::Corrupt { .. } => C::Corrupted,
        S::NoValidCommit => C::Corrupted,
        S::NotFound => C::NotFound,
        S::AlreadyExists => C::AlreadyExists,
        S::NotADirectory => C::NotADirectory,
        S::NotAFile => C::IsADirectory,
        S::DirectoryNotEmpty => C::NotEmpty,
        S::InvalidName(_) => C::InvalidArgument,
        S::InvalidArgument(_) => C::InvalidArgument,
        S::WouldCreateCycle => C::InvalidArgument,
        S::ReadOnly => C::ReadOnly,
        S::StaleHandle => C::StaleHandle,
        S::NoSpace => C::NoSpace,
        S::TooManyNodes => C::NoSpace,
        S::StoreFull => C::NoSpace,
        S::FileTooLarge => C::TooLarge,
        S::KeyTooLong { .. } => C::TooLarge,
        S::ValueTooLarge { .. } => C::TooLarge,
    }
}

/// `e` as the `err` arm of a result.
pub fn storage_error(e: &StorageError) -> CapError {
    CapError { code: error_code(e), message: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capos_storage::BlockError;

    #[test]
    fn each_error_has_its_code_and_keeps_its_message() {
        let cases = [
            (StorageError::Device(BlockError::Timeout), ErrorCode::Io),
            (StorageError::NotFound, ErrorCode::NotFound),
            (StorageError::NotAFile, ErrorCode::IsADirectory),
            (StorageError::NotADirectory, ErrorCode::NotADirectory),
            (StorageError::DirectoryNotEmpty, ErrorCode::NotEmpty),
            (StorageError::ReadOnly, ErrorCode::ReadOnly),
            (StorageError::StaleHandle, ErrorCode::StaleHandle),
            (StorageError::NoSpace, ErrorCode::NoSpace),
            (StorageError::StoreFull, ErrorCode::NoSpace),
            (StorageError::InvalidName("contains '/'"), ErrorCode::InvalidArgument),
            (StorageError::WouldCreateCycle, ErrorCode::InvalidArgument),
            (StorageError::KeyTooLong { len: 300, max: 255 }, ErrorCode::TooLarge),
            (StorageError::ChecksumMismatch { what: "x", location: 3 }, ErrorCode::Corrupted),
            (StorageError::IncompatibleFeatures { unknown: 4 }, ErrorCode::Unsupported),
        ];
        for (e, code) in cases {
            let c = storage_error(&e);
            assert_eq!(c.code, code, "{e:?}");
            assert_eq!(c.message, e.to_string());
        }
    }

    #[test]
    fn corruption_is_reported_as_corruption_or_unsupported() {
        // fsck's notion of "damaged image" and the client's code agree.
        let damaged = [
            StorageError::Truncated,
            StorageError::NoValidCommit,
            StorageError::Corrupt { what: "x", detail: 1 },
            StorageError::BadMagic { expected: *b"CAPOSWF1", found: [0; 8] },
            StorageError::DeviceTooSmall { needed_blocks: 2, available_blocks: 1 },
            StorageError::UnsupportedBlockSize(4096),
            StorageError::UnsupportedVersion { format: "CAPOSWF1", version: 9 },
        ];
        for e in damaged {
            assert!(e.is_corruption());
            assert!(matches!(error_code(&e), ErrorCode::Corrupted | ErrorCode::Unsupported), "{e:?}");
        }
    }
}
