//! Names of directory entries: UTF-8, length-limited, and unable to smuggle
//! path syntax. Validated on every API call and on every name read from disk,
//! so a hostile image cannot hand a caller `..`, `a/b` or an embedded NUL.

use crate::error::StorageError;
use alloc::format;
use alloc::string::String;

/// `text` as it is safe to print (the rule is `capos_text::escape`'s;
/// this crate's callers name it here).
pub use capos_text::escape::escape_control;

/// Bytes as a walk line prints a name: printable ASCII other than `%` as
/// it is, every other byte (space, controls, non-ASCII, `%`) as `%XX`, so a
/// name can neither break a line apart nor forge another, and the guest's
/// walk and the runner's host walk print the same text for one name.
pub fn percent_escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x21..=0x7e).contains(&b) && b != b'%' {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{:02X}", b));
        }
    }
    s
}

/// Check a name against the rules shared by every capOS format.
pub fn validate_name(name: &str, max_len: usize) -> Result<(), StorageError> {
    if name.is_empty() {
        return Err(StorageError::InvalidName("empty"));
    }
    if name.len() > max_len {
        return Err(StorageError::InvalidName("longer than the format's limit"));
    }
    if name == "." || name == ".." {
        return Err(StorageError::InvalidName("'.' and '..' are reserved"));
    }
    if name.contains('/') {
        return Err(StorageError::InvalidName("contains '/'"));
    }
    if name.contains('\0') {
        return Err(StorageError::InvalidName("contains NUL"));
    }
    Ok(())
}

/// Decode a name read from an image; any violation is corruption.
pub fn decode_name(bytes: &[u8], max_len: usize) -> Result<&str, StorageError> {
    let name = core::str::from_utf8(bytes)
        .map_err(|_| StorageError::Corrupt { what: "entry name is not UTF-8", detail: 0 })?;
    validate_name(name, max_len).map_err(|e| StorageError::Corrupt {
        what: match e {
            StorageError::InvalidName(why) => why,
            _ => "invalid entry name",
        },
        detail: bytes.len() as u64,
    })?;
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert!(validate_name("ok.txt", 10).is_ok());
        assert!(validate_name("日本語", 10).is_ok());
        for bad in ["", ".", "..", "a/b", "a\0b", "elevenchars"] {
            assert!(validate_name(bad, 10).is_err(), "{bad:?}");
        }
        assert!(decode_name(&[0xff, 0xfe], 10).is_err());
        assert!(decode_name(b"a/b", 10).unwrap_err().is_corruption());
    }
}
