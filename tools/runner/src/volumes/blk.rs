//! Disks of known content a boot attaches: pseudo-random bytes the guest
//! must hash and whose last 64 blocks it must overwrite with the test
//! pattern (the judge compares both with the host's).

use std::path::{Path, PathBuf};

/// Generated block-device disks larger than this are sparse past the bytes
/// the guest reads.
const SPARSE_FROM: u64 = 1 << 30;

/// A disk prepared for a boot: where it is and what the guest must report.
pub struct PreparedDisk {
    pub guest_name: String,
    pub path: PathBuf,
    pub read_len: u64,
    pub sha256: String,
    pub size: u64,
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failing run can be
/// reproduced with the same image.
pub fn pseudo_random(seed: u64, len: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut out = Vec::with_capacity(len as usize);
    while (out.len() as u64) < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len as usize);
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{:02x}", b)).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiskKind {
    Nvme,
    Virtio,
    /// A `scsi-hd` on the boot's one virtio-scsi controller, at this
    /// target; the first SCSI disk's `controller` options (e.g.
    /// `,disable-legacy=on`) are the controller's.
    Scsi { target: u8, controller: &'static str },
}

/// A disk of known pseudo-random content the guest must read and hash
/// (`blk: NAME read N bytes sha256=...`) and whose last 64 blocks it must
/// overwrite with the test pattern.
#[derive(Clone, Debug)]
pub struct BlkDisk {
    /// The name the kernel gives it (`nvme0n1`, `vblk0`).
    pub guest_name: &'static str,
    pub kind: DiskKind,
    pub size: u64,
    pub seed: u64,
    /// Use a copy of this image instead of generating one (BLK_IMAGE).
    pub source: Option<std::path::PathBuf>,
}

/// Make `disks` for boot `boot` in `dir`, their QEMU arguments added to
/// `args`; what the guest must report of each.
pub fn make(dir: &Path, boot: &str, disks: &[BlkDisk], read_bytes: u64, args: &mut Vec<String>) -> Result<Vec<PreparedDisk>, String> {
    let mut prepared = Vec::new();
    let mut scsi_controller = false;
    for (i, d) in disks.iter().enumerate() {
        let path = dir.join(format!("{}-{}.img", boot, d.guest_name));
        // A disk larger than SPARSE_FROM gets pseudo-random bytes only where
        // the guest reads them (the first blk_read_bytes) and is sparse
        // past them, so a 3 TiB disk costs what its written blocks do.
        let sparse = d.source.is_none() && d.size > SPARSE_FROM;
        if sparse && (read_bytes == 0 || read_bytes > SPARSE_FROM) {
            return Err(format!("disk {} is {} bytes: a disk that large is made sparse, and the guest may read at most its first {} bytes (BLK_READ_MIB)", d.guest_name, d.size, SPARSE_FROM));
        }
        let bytes = match &d.source {
            Some(src) => std::fs::read(src).map_err(|e| format!("BLK_IMAGE {}: {}", src.display(), e))?,
            None if sparse => pseudo_random(d.seed, read_bytes),
            None => pseudo_random(d.seed, d.size),
        };
        let size = if sparse { d.size } else { bytes.len() as u64 };
        if size < 64 * 512 || size % 512 != 0 {
            return Err(format!("disk image for {} is {} bytes; it must be a multiple of 512 and at least 32 KiB", d.guest_name, size));
        }
        let read_len = if read_bytes == 0 { size } else { read_bytes.min(size) };
        let sha256 = sha256_hex(&bytes[..read_len as usize]);
        std::fs::write(&path, &bytes).map_err(|e| format!("{}: {}", path.display(), e))?;
        if sparse {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(size))
                .map_err(|e| format!("{}: making it {} bytes (sparse): {}", path.display(), size, e))?;
        }
        let id = format!("disk{}", i);
        args.push("-drive".into());
        args.push(format!("if=none,id={},format=raw,file={}", id, path.display()));
        if let (DiskKind::Scsi { controller, .. }, false) = (d.kind, scsi_controller) {
            // One virtio-scsi controller carries every SCSI disk of a boot.
            args.extend(["-device".to_string(), format!("virtio-scsi-pci,id=scsi0{}", controller)]);
            scsi_controller = true;
        }
        args.push("-device".into());
        args.push(match d.kind {
            DiskKind::Nvme => format!("nvme,serial=capos-{},drive={}", d.guest_name, id),
            DiskKind::Virtio => format!("virtio-blk-pci,drive={}", id),
            DiskKind::Scsi { target, .. } => format!("scsi-hd,drive={},bus=scsi0.0,channel=0,scsi-id={},lun=0", id, target),
        });
        prepared.push(PreparedDisk { guest_name: d.guest_name.to_string(), path, read_len, sha256, size });
    }
    Ok(prepared)
}
