//! Feature flags in three classes, the rule that lets formats evolve.
//!
//! Why three classes (the ext2/EROFS scheme): an older reader must know what
//! it may safely do with a newer image. A feature the reader does not know is
//! - *incompatible*: the reader would misread the image → refuse to open;
//! - *read-only compatible*: reading is safe, but writing could break the
//!   feature's invariants → open read-only;
//! - *compatible*: safe to read and write → ignore.

use crate::error::StorageError;

/// The three feature words of a superblock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FeatureFlags {
    pub compatible: u64,
    pub ro_compatible: u64,
    pub incompatible: u64,
}

/// What the feature check allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    ReadOnly,
}

impl FeatureFlags {
    pub const NONE: FeatureFlags =
        FeatureFlags { compatible: 0, ro_compatible: 0, incompatible: 0 };

    /// Decide how an image with these features may be opened by code that
    /// knows the features in `known`.
    pub fn check(&self, known: &FeatureFlags) -> Result<Access, StorageError> {
        let unknown_incompatible = self.incompatible & !known.incompatible;
        if unknown_incompatible != 0 {
            return Err(StorageError::IncompatibleFeatures { unknown: unknown_incompatible });
        }
        if self.ro_compatible & !known.ro_compatible != 0 {
            return Ok(Access::ReadOnly);
        }
        Ok(Access::ReadWrite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KNOWN: FeatureFlags = FeatureFlags { compatible: 1, ro_compatible: 1, incompatible: 1 };

    #[test]
    fn three_classes() {
        let f = |c, r, i| FeatureFlags { compatible: c, ro_compatible: r, incompatible: i };
        assert_eq!(f(0, 0, 0).check(&KNOWN), Ok(Access::ReadWrite));
        assert_eq!(f(1, 1, 1).check(&KNOWN), Ok(Access::ReadWrite));
        assert_eq!(f(1 << 40, 0, 0).check(&KNOWN), Ok(Access::ReadWrite));
        assert_eq!(f(0, 1 << 3, 0).check(&KNOWN), Ok(Access::ReadOnly));
        assert_eq!(
            f(0, 1 << 3, 1 << 5 | 1).check(&KNOWN),
            Err(StorageError::IncompatibleFeatures { unknown: 1 << 5 })
        );
    }
}
