//! Finding the kernel's Limine requests in its loaded image.
//!
//! Requests are 8-byte aligned structures starting with the common magic.
//! If the kernel brackets them with the start/end markers, only the bytes
//! between the markers are searched (as real Limine does); otherwise the
//! whole image is. The base revision tag is searched for everywhere.

use crate::protocol::{
    RequestKind, BASE_REVISION_MAGIC, COMMON_MAGIC, REQUESTS_END_MARKER, REQUESTS_START_MARKER,
};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// A request found in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FoundRequest {
    /// Byte offset of the request in the image.
    pub offset: usize,
    pub kind: RequestKind,
    pub revision: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanResult {
    /// Offset of the base revision tag and the revision it asks for.
    pub base_revision: Option<(usize, u64)>,
    pub requests: Vec<FoundRequest>,
    /// Whether start/end markers bounded the search.
    pub used_markers: bool,
}

/// Most requests a kernel may carry (real Limine allows 128).
pub const MAX_REQUESTS: usize = 128;

pub fn read_u64(image: &[u8], at: usize) -> Option<u64> {
    let bytes = image.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

pub fn write_u64(image: &mut [u8], at: usize, value: u64) -> Option<()> {
    image.get_mut(at..at.checked_add(8)?)?.copy_from_slice(&value.to_le_bytes());
    Some(())
}

fn words_at(image: &[u8], at: usize, words: &[u64]) -> bool {
    words.iter().enumerate().all(|(i, w)| read_u64(image, at + 8 * i) == Some(*w))
}

/// Scan a loaded kernel image. `image` must start at a page-aligned address.
pub fn scan(image: &[u8]) -> Result<ScanResult, String> {
    let last = image.len().saturating_sub(8);
    let mut base_revision = None;
    let mut start = 0;
    let mut end = image.len();
    let mut used_markers = false;
    let mut at = 0;
    while at <= last && image.len() >= 8 {
        if words_at(image, at, &BASE_REVISION_MAGIC) && at + 24 <= image.len() {
            if base_revision.is_some() {
                return Err(format!("two base revision tags (second at image offset {:#x})", at));
            }
            base_revision = Some((at, read_u64(image, at + 16).unwrap_or(0)));
        }
        if !used_markers && words_at(image, at, &REQUESTS_START_MARKER) {
            used_markers = true;
            start = at + 32;
        } else if used_markers && end == image.len() && words_at(image, at, &REQUESTS_END_MARKER) {
            end = at;
        }
        at += 8;
    }
    if used_markers && end == image.len() {
        return Err(String::from("requests start marker without an end marker"));
    }

    let mut requests: Vec<FoundRequest> = Vec::new();
    let mut at = start;
    while at + 48 <= end {
        if words_at(image, at, &COMMON_MAGIC) {
            let id = [read_u64(image, at + 16).unwrap_or(0), read_u64(image, at + 24).unwrap_or(0)];
            let kind = RequestKind::from_id(id);
            if requests.iter().any(|r| r.kind == kind) {
                return Err(format!("the kernel has two {} requests (ID {:#x}:{:#x})", kind.name(), id[0], id[1]));
            }
            if requests.len() >= MAX_REQUESTS {
                return Err(format!("more than {} requests", MAX_REQUESTS));
            }
            requests.push(FoundRequest { offset: at, kind, revision: read_u64(image, at + 32).unwrap_or(0) });
            at += 48;
            continue;
        }
        at += 8;
    }
    Ok(ScanResult { base_revision, requests, used_markers })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(image: &mut [u8], at: usize, words: &[u64]) {
        for (i, w) in words.iter().enumerate() {
            write_u64(image, at + 8 * i, *w).unwrap();
        }
    }

    fn request(image: &mut [u8], at: usize, kind: RequestKind, revision: u64) {
        let id = kind.id();
        put(image, at, &[COMMON_MAGIC[0], COMMON_MAGIC[1], id[0], id[1], revision, 0]);
    }

    #[test]
    fn finds_requests_and_base_revision() {
        let mut image = vec![0u8; 4096];
        put(&mut image, 0x100, &[BASE_REVISION_MAGIC[0], BASE_REVISION_MAGIC[1], 3]);
        request(&mut image, 0x200, RequestKind::Hhdm, 0);
        request(&mut image, 0x238, RequestKind::MemoryMap, 0);
        request(&mut image, 0x400, RequestKind::Module, 1);
        request(&mut image, 0x800, RequestKind::Unknown([1, 2]), 0);
        let r = scan(&image).unwrap();
        assert_eq!(r.base_revision, Some((0x100, 3)));
        assert!(!r.used_markers);
        let kinds: Vec<_> = r.requests.iter().map(|q| (q.offset, q.kind, q.revision)).collect();
        assert_eq!(
            kinds,
            vec![
                (0x200, RequestKind::Hhdm, 0),
                (0x238, RequestKind::MemoryMap, 0),
                (0x400, RequestKind::Module, 1),
                (0x800, RequestKind::Unknown([1, 2]), 0),
            ]
        );
    }

    #[test]
    fn ignores_unaligned_magic() {
        let mut image = vec![0u8; 4096];
        // Misaligned by 4: must not be found.
        let id = RequestKind::Hhdm.id();
        for (i, w) in [COMMON_MAGIC[0], COMMON_MAGIC[1], id[0], id[1], 0, 0].iter().enumerate() {
            image[0x204 + 8 * i..0x20c + 8 * i].copy_from_slice(&w.to_le_bytes());
        }
        assert!(scan(&image).unwrap().requests.is_empty());
    }

    #[test]
    fn markers_bound_the_search() {
        let mut image = vec![0u8; 4096];
        request(&mut image, 0x40, RequestKind::Rsdp, 0); // before start marker: ignored
        put(&mut image, 0x100, &REQUESTS_START_MARKER);
        request(&mut image, 0x120, RequestKind::Hhdm, 0);
        put(&mut image, 0x200, &REQUESTS_END_MARKER);
        request(&mut image, 0x300, RequestKind::Module, 0); // after end marker: ignored
        let r = scan(&image).unwrap();
        assert!(r.used_markers);
        assert_eq!(r.requests.len(), 1);
        assert_eq!(r.requests[0].kind, RequestKind::Hhdm);
        assert_eq!(r.base_revision, None);
    }

    #[test]
    fn refuses_duplicates_and_unterminated_markers() {
        let mut image = vec![0u8; 4096];
        request(&mut image, 0x100, RequestKind::Hhdm, 0);
        request(&mut image, 0x200, RequestKind::Hhdm, 0);
        assert!(scan(&image).unwrap_err().contains("two HHDM requests"));
        let mut image = vec![0u8; 4096];
        put(&mut image, 0x100, &REQUESTS_START_MARKER);
        assert!(scan(&image).unwrap_err().contains("end marker"));
    }

    #[test]
    fn request_at_the_very_end_is_bounds_checked() {
        let mut image = vec![0u8; 64];
        put(&mut image, 24, &[COMMON_MAGIC[0], COMMON_MAGIC[1], 5, 6, 0]);
        // Only 40 bytes fit: the request (48 bytes) is not complete, so not found.
        assert!(scan(&image).unwrap().requests.is_empty());
        assert!(scan(&[]).unwrap().requests.is_empty());
        assert!(scan(&[1, 2, 3]).unwrap().requests.is_empty());
    }
}
