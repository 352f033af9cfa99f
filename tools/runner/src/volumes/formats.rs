//! Storage image formats: which one an image holds, by the rule
//! mkstore-image uses (its first block and its length).

use std::path::Path;

/// The format of a storage image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Ro,
    Wf,
    St,
    Colocated,
    /// FAT12/16/32 (a boot sector or an MBR in block 0), read-only.
    Fat,
}

impl Format {
    /// The manifest's word.
    pub fn word(self) -> &'static str {
        match self {
            Format::Ro => "caposro1",
            Format::Wf => "caposwf1",
            Format::St => "caposst1",
            Format::Colocated => "colocated",
            Format::Fat => "fat",
        }
    }
    pub fn has_fs(self) -> bool {
        self != Format::St
    }
    pub fn has_store(self) -> bool {
        matches!(self, Format::St | Format::Colocated)
    }
}

/// An image's format from its first block and length, by the rule
/// mkstore-image uses: a CAPOSST1 store whose total block count (bytes
/// 48..56) is less than the image is a co-located store + filesystem.
pub fn detect(head: &[u8], len: u64) -> Result<Format, String> {
    if len < 512 || len % 512 != 0 || head.len() < 56 {
        return Err(format!("{} bytes: not a positive multiple of 512", len));
    }
    match &head[..8] {
        b"CAPOSRO1" => Ok(Format::Ro),
        b"CAPOSWF1" => Ok(Format::Wf),
        b"CAPOSST1" => {
            let total = u64::from_le_bytes(head[48..56].try_into().unwrap());
            Ok(if total < len / 512 { Format::Colocated } else { Format::St })
        }
        _ if head[510..512] == [0x55, 0xAA] => Ok(Format::Fat),
        other => Err(format!("unknown magic {:?} (want CAPOSRO1, CAPOSWF1, CAPOSST1, or a FAT boot sector or MBR)", String::from_utf8_lossy(other))),
    }
}

pub fn detect_file(path: &Path) -> Result<Format, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 512];
    f.read_exact(&mut head).map_err(|e| format!("{}: {}", path.display(), e))?;
    detect(&head, len).map_err(|e| format!("{}: {}", path.display(), e))
}
