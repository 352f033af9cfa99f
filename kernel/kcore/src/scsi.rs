//! SCSI as the virtio-scsi driver speaks it, without hardware: command
//! descriptor blocks (CDBs), the virtio-scsi request and response headers,
//! INQUIRY and READ CAPACITY data, sense data, and what to do with a
//! finished command. The driver in `kernel/src/drivers/virtio_scsi.rs`
//! moves these bytes through a virtqueue and nothing else.
//!
//! Rules:
//! 1. Every byte the device returns is untrusted: a response shorter than
//!    its header, a sense length past the sense buffer, a capacity of zero
//!    blocks or a block length that is not a power of two between 512 and
//!    64 KiB is an error, never a panic or a wrong disk size.
//! 2. A command is retried only for conditions that pass by themselves
//!    (UNIT ATTENTION after a reset or a media change, NOT READY while
//!    becoming ready, BUSY, TASK SET FULL, a virtio BUSY or RESET), and at
//!    most [`MAX_RETRIES`] times; everything else fails with a named error.
//! 3. A transfer is split into commands of at most `max_blocks` blocks;
//!    READ(10)/WRITE(10) are used where the LBA and count fit (the common
//!    case, and the only one very old targets know), (16) otherwise.
//! 4. Errors reach `BlockError::Device { status }` as one `u32`
//!    ([`ScsiFailure::status`]) whose top byte says which layer failed, so
//!    a log line and a test can tell a medium error from a transport one.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// How many times one command is retried for a passing condition.
pub const MAX_RETRIES: u32 = 8;

/// The sense buffer a driver asks for (the virtio-scsi default).
pub const SENSE_SIZE: usize = 96;
/// The CDB size a driver uses (the virtio-scsi default; READ(16) needs 16).
pub const CDB_SIZE: usize = 32;

// --- Operation codes (SPC-4, SBC-3). -----------------------------------

pub mod op {
    pub const TEST_UNIT_READY: u8 = 0x00;
    pub const REQUEST_SENSE: u8 = 0x03;
    pub const INQUIRY: u8 = 0x12;
    pub const MODE_SENSE_6: u8 = 0x1a;
    pub const READ_CAPACITY_10: u8 = 0x25;
    pub const READ_10: u8 = 0x28;
    pub const WRITE_10: u8 = 0x2a;
    pub const SYNCHRONIZE_CACHE_10: u8 = 0x35;
    pub const READ_16: u8 = 0x88;
    pub const WRITE_16: u8 = 0x8a;
    pub const SERVICE_ACTION_IN_16: u8 = 0x9e;
    pub const SAI_READ_CAPACITY_16: u8 = 0x10;
}

/// A CDB, padded with zeroes to [`CDB_SIZE`] when it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cdb {
    pub bytes: [u8; 16],
    pub len: usize,
}

impl Cdb {
    fn new(bytes: &[u8]) -> Cdb {
        let mut b = [0u8; 16];
        b[..bytes.len()].copy_from_slice(bytes);
        Cdb { bytes: b, len: bytes.len() }
    }

    pub fn opcode(&self) -> u8 {
        self.bytes[0]
    }

    pub fn name(&self) -> &'static str {
        match self.bytes[0] {
            op::TEST_UNIT_READY => "TEST UNIT READY",
            op::REQUEST_SENSE => "REQUEST SENSE",
            op::INQUIRY => "INQUIRY",
            op::MODE_SENSE_6 => "MODE SENSE(6)",
            op::READ_CAPACITY_10 => "READ CAPACITY(10)",
            op::READ_10 => "READ(10)",
            op::WRITE_10 => "WRITE(10)",
            op::SYNCHRONIZE_CACHE_10 => "SYNCHRONIZE CACHE(10)",
            op::READ_16 => "READ(16)",
            op::WRITE_16 => "WRITE(16)",
            op::SERVICE_ACTION_IN_16 if self.bytes[1] & 0x1f == op::SAI_READ_CAPACITY_16 => "READ CAPACITY(16)",
            _ => "command",
        }
    }

    pub fn test_unit_ready() -> Cdb {
        Cdb::new(&[op::TEST_UNIT_READY, 0, 0, 0, 0, 0])
    }

    /// Standard INQUIRY data, `len` bytes at most (36 is the classic size).
    pub fn inquiry(len: u8) -> Cdb {
        Cdb::new(&[op::INQUIRY, 0, 0, 0, len, 0])
    }

    /// MODE SENSE(6) of all pages, `len` bytes at most; the driver reads
    /// only the 4-byte header (its write-protect bit).
    pub fn mode_sense_6(len: u8) -> Cdb {
        Cdb::new(&[op::MODE_SENSE_6, 0x08, 0x3f, 0, len, 0])
    }

    pub fn read_capacity_10() -> Cdb {
        Cdb::new(&[op::READ_CAPACITY_10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    pub fn read_capacity_16(len: u32) -> Cdb {
        let l = len.to_be_bytes();
        Cdb::new(&[op::SERVICE_ACTION_IN_16, op::SAI_READ_CAPACITY_16, 0, 0, 0, 0, 0, 0, 0, 0, l[0], l[1], l[2], l[3], 0, 0])
    }

    /// SYNCHRONIZE CACHE(10) of the whole medium (LBA 0, 0 blocks = to the end).
    pub fn synchronize_cache() -> Cdb {
        Cdb::new(&[op::SYNCHRONIZE_CACHE_10, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    /// READ or WRITE of `blocks` blocks at `lba`: the (10) form where both
    /// fit, the (16) form otherwise. `None` for zero blocks or a count no
    /// form can carry.
    pub fn rw(write: bool, lba: u64, blocks: u32) -> Option<Cdb> {
        if blocks == 0 {
            return None;
        }
        let end = lba.checked_add(blocks as u64)?;
        if end <= 1 << 32 && blocks <= 0xffff {
            let l = (lba as u32).to_be_bytes();
            let n = (blocks as u16).to_be_bytes();
            let code = if write { op::WRITE_10 } else { op::READ_10 };
            Some(Cdb::new(&[code, 0, l[0], l[1], l[2], l[3], 0, n[0], n[1], 0]))
        } else {
            let l = lba.to_be_bytes();
            let n = blocks.to_be_bytes();
            let code = if write { op::WRITE_16 } else { op::READ_16 };
            Some(Cdb::new(&[code, 0, l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7], n[0], n[1], n[2], n[3], 0, 0]))
        }
    }
}

// --- The virtio-scsi request and response (virtio 1.2, 5.6.6). ---------

/// Bytes of `struct virtio_scsi_req_cmd`'s device-readable header with a
/// `cdb_size`-byte CDB: lun[8], id (u64), task_attr, prio, crn, cdb.
pub const fn request_header_len(cdb_size: usize) -> usize {
    8 + 8 + 3 + cdb_size
}

/// Bytes of the device-writable response header with a `sense_size` sense
/// buffer: sense_len (u32), residual (u32), status_qualifier (u16),
/// status, response, sense.
pub const fn response_len(sense_size: usize) -> usize {
    4 + 4 + 2 + 1 + 1 + sense_size
}

/// The 8-byte LUN field of a virtio-scsi request: `1, target, LUN in the
/// flat space (0x4000 | lun), 0...`. `None` past the addressable range
/// (targets 0..=255, LUNs 0..=16383).
pub fn lun_address(target: u16, lun: u16) -> Option<[u8; 8]> {
    if target > 255 || lun > 0x3fff {
        return None;
    }
    let l = (0x4000 | lun).to_be_bytes();
    Some([1, target as u8, l[0], l[1], 0, 0, 0, 0])
}

/// Write a request header for `cdb` into `out` (exactly
/// `request_header_len(cdb_size)` bytes; the CDB is zero-padded).
pub fn encode_request(out: &mut [u8], lun: [u8; 8], tag: u64, cdb: &Cdb) -> Result<(), &'static str> {
    if out.len() < 19 + cdb.len {
        return Err("request header shorter than the CDB");
    }
    out.fill(0);
    out[0..8].copy_from_slice(&lun);
    out[8..16].copy_from_slice(&tag.to_le_bytes());
    // task_attr 0 = SIMPLE, prio 0, crn 0.
    out[19..19 + cdb.len].copy_from_slice(&cdb.bytes[..cdb.len]);
    Ok(())
}

/// virtio-scsi `response` codes.
pub mod response {
    pub const OK: u8 = 0;
    pub const OVERRUN: u8 = 1;
    pub const ABORTED: u8 = 2;
    pub const BAD_TARGET: u8 = 3;
    pub const RESET: u8 = 4;
    pub const BUSY: u8 = 5;
    pub const TRANSPORT_FAILURE: u8 = 6;
    pub const TARGET_FAILURE: u8 = 7;
    pub const NEXUS_FAILURE: u8 = 8;
    pub const FAILURE: u8 = 9;
}

pub fn response_name(r: u8) -> &'static str {
    match r {
        response::OK => "ok",
        response::OVERRUN => "overrun",
        response::ABORTED => "aborted",
        response::BAD_TARGET => "bad target",
        response::RESET => "reset",
        response::BUSY => "busy",
        response::TRANSPORT_FAILURE => "transport failure",
        response::TARGET_FAILURE => "target failure",
        response::NEXUS_FAILURE => "nexus failure",
        response::FAILURE => "failure",
        _ => "unknown response",
    }
}

/// SCSI status codes (SAM-5).
pub mod status {
    pub const GOOD: u8 = 0x00;
    pub const CHECK_CONDITION: u8 = 0x02;
    pub const CONDITION_MET: u8 = 0x04;
    pub const BUSY: u8 = 0x08;
    pub const RESERVATION_CONFLICT: u8 = 0x18;
    pub const TASK_SET_FULL: u8 = 0x28;
    pub const ACA_ACTIVE: u8 = 0x30;
    pub const TASK_ABORTED: u8 = 0x40;
}

pub fn status_name(s: u8) -> &'static str {
    match s {
        status::GOOD => "GOOD",
        status::CHECK_CONDITION => "CHECK CONDITION",
        status::CONDITION_MET => "CONDITION MET",
        status::BUSY => "BUSY",
        status::RESERVATION_CONFLICT => "RESERVATION CONFLICT",
        status::TASK_SET_FULL => "TASK SET FULL",
        status::ACA_ACTIVE => "ACA ACTIVE",
        status::TASK_ABORTED => "TASK ABORTED",
        _ => "unknown status",
    }
}

/// A decoded response header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub residual: u32,
    pub status: u8,
    pub response: u8,
    /// The sense bytes the device says it wrote, bounded by the buffer.
    pub sense: Vec<u8>,
}

/// Decode a response header of `sense_size` sense bytes.
pub fn decode_response(bytes: &[u8], sense_size: usize) -> Result<Response, &'static str> {
    if bytes.len() < response_len(sense_size) {
        return Err("response shorter than its header");
    }
    let u32_at = |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
    let sense_len = (u32_at(0) as usize).min(sense_size);
    Ok(Response { residual: u32_at(4), status: bytes[10], response: bytes[11], sense: bytes[12..12 + sense_len].to_vec() })
}

// --- Sense data (SPC-4 4.5). --------------------------------------------

pub mod key {
    pub const NO_SENSE: u8 = 0x0;
    pub const RECOVERED_ERROR: u8 = 0x1;
    pub const NOT_READY: u8 = 0x2;
    pub const MEDIUM_ERROR: u8 = 0x3;
    pub const HARDWARE_ERROR: u8 = 0x4;
    pub const ILLEGAL_REQUEST: u8 = 0x5;
    pub const UNIT_ATTENTION: u8 = 0x6;
    pub const DATA_PROTECT: u8 = 0x7;
    pub const BLANK_CHECK: u8 = 0x8;
    pub const ABORTED_COMMAND: u8 = 0xb;
}

/// Sense key, additional sense code and qualifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sense {
    pub key: u8,
    pub asc: u8,
    pub ascq: u8,
}

/// Decode fixed (0x70/0x71) or descriptor (0x72/0x73) sense data. `None`
/// when there is none or its format is unknown.
pub fn decode_sense(s: &[u8]) -> Option<Sense> {
    let code = *s.first()? & 0x7f;
    match code {
        0x70 | 0x71 => {
            let key = *s.get(2)? & 0x0f;
            // ASC and ASCQ are present only if the additional length covers them.
            let (asc, ascq) = if s.len() >= 14 && s.get(7).copied().unwrap_or(0) >= 6 { (s[12], s[13]) } else { (0, 0) };
            Some(Sense { key, asc, ascq })
        }
        0x72 | 0x73 => Some(Sense { key: *s.get(1)? & 0x0f, asc: s.get(2).copied().unwrap_or(0), ascq: s.get(3).copied().unwrap_or(0) }),
        _ => None,
    }
}

pub fn key_name(k: u8) -> &'static str {
    match k {
        key::NO_SENSE => "NO SENSE",
        key::RECOVERED_ERROR => "RECOVERED ERROR",
        key::NOT_READY => "NOT READY",
        key::MEDIUM_ERROR => "MEDIUM ERROR",
        key::HARDWARE_ERROR => "HARDWARE ERROR",
        key::ILLEGAL_REQUEST => "ILLEGAL REQUEST",
        key::UNIT_ATTENTION => "UNIT ATTENTION",
        key::DATA_PROTECT => "DATA PROTECT",
        key::BLANK_CHECK => "BLANK CHECK",
        0x9 => "VENDOR SPECIFIC",
        0xa => "COPY ABORTED",
        key::ABORTED_COMMAND => "ABORTED COMMAND",
        0xd => "VOLUME OVERFLOW",
        0xe => "MISCOMPARE",
        _ => "reserved sense key",
    }
}

/// The additional sense code and qualifier in words, for the common ones.
pub fn asc_name(asc: u8, ascq: u8) -> &'static str {
    match (asc, ascq) {
        (0x00, 0x00) => "no additional sense information",
        (0x04, 0x00) => "logical unit not ready, cause not reportable",
        (0x04, 0x01) => "logical unit is in process of becoming ready",
        (0x04, 0x02) => "logical unit not ready, initializing command required",
        (0x04, 0x03) => "logical unit not ready, manual intervention required",
        (0x04, _) => "logical unit not ready",
        (0x0c, _) => "write error",
        (0x11, _) => "unrecovered read error",
        (0x1a, 0x00) => "parameter list length error",
        (0x20, 0x00) => "invalid command operation code",
        (0x21, 0x00) => "logical block address out of range",
        (0x24, 0x00) => "invalid field in CDB",
        (0x25, 0x00) => "logical unit not supported",
        (0x27, _) => "write protected",
        (0x28, 0x00) => "not ready to ready change, medium may have changed",
        (0x29, _) => "power on, reset, or bus device reset occurred",
        (0x2a, _) => "parameters changed",
        (0x3a, _) => "medium not present",
        (0x3f, _) => "target operating conditions have changed",
        (0x44, 0x00) => "internal target failure",
        _ => "other additional sense code",
    }
}

impl core::fmt::Display for Sense {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{} ({:#04x}), {} (ASC {:#04x} ASCQ {:#04x})", key_name(self.key), self.key, asc_name(self.asc, self.ascq), self.asc, self.ascq)
    }
}

// --- What a finished command means. ---------------------------------

/// Why a command failed, in the layer that said so.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScsiFailure {
    /// The virtio-scsi transport answered something other than OK.
    Transport(u8),
    /// CHECK CONDITION with sense data.
    Sense(Sense),
    /// A SCSI status other than GOOD, without usable sense data.
    Status(u8),
    /// The device's answer could not be decoded.
    Malformed,
    /// A read or write finished GOOD but moved this many bytes fewer than
    /// asked (the residual): its data cannot be trusted.
    Short(u32),
}

impl ScsiFailure {
    /// The `BlockError::Device` status: top byte the layer (1 transport,
    /// 2 sense, 3 status, 4 malformed, 6 short transfer), then sense key,
    /// ASC and ASCQ, or the response or status code in the low byte, or
    /// the residual (saturated to 24 bits).
    pub fn status(&self) -> u32 {
        match *self {
            ScsiFailure::Transport(r) => 0x0100_0000 | r as u32,
            ScsiFailure::Sense(s) => 0x0200_0000 | (s.key as u32) << 16 | (s.asc as u32) << 8 | s.ascq as u32,
            ScsiFailure::Status(s) => 0x0300_0000 | s as u32,
            ScsiFailure::Malformed => 0x0400_0000,
            ScsiFailure::Short(r) => 0x0600_0000 | r.min(0x00ff_ffff),
        }
    }
}

impl core::fmt::Display for ScsiFailure {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ScsiFailure::Transport(r) => write!(f, "virtio-scsi response {} ({})", r, response_name(*r)),
            ScsiFailure::Sense(s) => write!(f, "CHECK CONDITION: {}", s),
            ScsiFailure::Status(s) => write!(f, "SCSI status {:#04x} ({})", s, status_name(*s)),
            ScsiFailure::Malformed => write!(f, "malformed response"),
            ScsiFailure::Short(r) => write!(f, "short transfer: {} bytes not moved", r),
        }
    }
}

/// What the driver does with a finished command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// A condition that passes by itself: send the command again.
    Retry(ScsiFailure),
    Fail(ScsiFailure),
}

/// Judge a finished read or write, which must move every byte: as
/// [`outcome`], and a GOOD answer with a residual is a failure.
pub fn outcome_exact(r: &Response) -> Outcome {
    match outcome(r) {
        Outcome::Done if r.residual != 0 => Outcome::Fail(ScsiFailure::Short(r.residual)),
        o => o,
    }
}

/// Judge a finished command (rule 2).
pub fn outcome(r: &Response) -> Outcome {
    match r.response {
        response::OK => {}
        response::BUSY | response::RESET | response::ABORTED => return Outcome::Retry(ScsiFailure::Transport(r.response)),
        other => return Outcome::Fail(ScsiFailure::Transport(other)),
    }
    match r.status {
        status::GOOD | status::CONDITION_MET => Outcome::Done,
        status::BUSY | status::TASK_SET_FULL => Outcome::Retry(ScsiFailure::Status(r.status)),
        status::CHECK_CONDITION => match decode_sense(&r.sense) {
            Some(s) => match s.key {
                // Finished, with a correction the device made itself.
                key::RECOVERED_ERROR | key::NO_SENSE => Outcome::Done,
                key::UNIT_ATTENTION => Outcome::Retry(ScsiFailure::Sense(s)),
                // Becoming ready passes; "medium not present" or "manual
                // intervention" do not.
                key::NOT_READY if s.asc == 0x04 && matches!(s.ascq, 0x00 | 0x01) => Outcome::Retry(ScsiFailure::Sense(s)),
                key::ABORTED_COMMAND => Outcome::Retry(ScsiFailure::Sense(s)),
                _ => Outcome::Fail(ScsiFailure::Sense(s)),
            },
            None => Outcome::Fail(ScsiFailure::Status(r.status)),
        },
        other => Outcome::Fail(ScsiFailure::Status(other)),
    }
}

// --- INQUIRY and READ CAPACITY data. ---------------------------------

/// Standard INQUIRY data, what the driver needs of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inquiry {
    /// 0: a device of this type is connected at this LUN.
    pub qualifier: u8,
    /// 0x00: direct-access block device (a disk).
    pub device_type: u8,
    pub removable: bool,
    pub vendor: String,
    pub product: String,
    pub revision: String,
}

impl Inquiry {
    /// A disk the driver binds: qualifier 0 and type 0 (rule of the issue:
    /// peripheral qualifier 0, type 0 only).
    pub fn is_disk(&self) -> bool {
        self.qualifier == 0 && self.device_type == 0
    }
}

fn ascii_field(b: &[u8]) -> String {
    let s: String = b.iter().map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '?' }).collect();
    String::from(s.trim())
}

pub fn parse_inquiry(d: &[u8]) -> Result<Inquiry, &'static str> {
    if d.len() < 36 {
        return Err("INQUIRY data shorter than 36 bytes");
    }
    Ok(Inquiry {
        qualifier: d[0] >> 5,
        device_type: d[0] & 0x1f,
        removable: d[1] & 0x80 != 0,
        vendor: ascii_field(&d[8..16]),
        product: ascii_field(&d[16..32]),
        revision: ascii_field(&d[32..36]),
    })
}

/// A disk's size (rule 1 checks it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capacity {
    pub blocks: u64,
    pub block_len: u32,
}

fn check_capacity(last_lba: u64, block_len: u32) -> Result<Capacity, String> {
    if !block_len.is_power_of_two() || !(512..=65536).contains(&block_len) {
        return Err(format!("block length {} is not a power of two from 512 to 65536", block_len));
    }
    let blocks = last_lba.checked_add(1).ok_or_else(|| String::from("last LBA is the largest 64-bit number"))?;
    if blocks.checked_mul(block_len as u64).is_none() {
        return Err(format!("{} blocks of {} bytes overflow 64 bits", blocks, block_len));
    }
    Ok(Capacity { blocks, block_len })
}

/// What READ CAPACITY(10) says: `Ok(None)` when the disk is too large for
/// it (last LBA 0xffffffff: ask READ CAPACITY(16)).
pub fn parse_capacity_10(d: &[u8]) -> Result<Option<Capacity>, String> {
    if d.len() < 8 {
        return Err(String::from("READ CAPACITY(10) data shorter than 8 bytes"));
    }
    let last = u32::from_be_bytes([d[0], d[1], d[2], d[3]]);
    let len = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
    if last == u32::MAX {
        return Ok(None);
    }
    check_capacity(last as u64, len).map(Some)
}

pub fn parse_capacity_16(d: &[u8]) -> Result<Capacity, String> {
    if d.len() < 12 {
        return Err(String::from("READ CAPACITY(16) data shorter than 12 bytes"));
    }
    let last = u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]);
    let len = u32::from_be_bytes([d[8], d[9], d[10], d[11]]);
    check_capacity(last, len)
}

/// Whether MODE SENSE(6) data says the medium is write-protected (the WP
/// bit of the header's device-specific parameter). `None`: too short.
pub fn mode_sense_write_protected(d: &[u8]) -> Option<bool> {
    Some(d.get(2)? & 0x80 != 0)
}

/// The name of the `index`th SCSI disk found: `sda` ... `sdz`, `sdaa` ...
/// `sdzz`, `sdaaa` ... (as Linux names them).
pub fn disk_name(index: usize) -> String {
    let mut letters = Vec::new();
    let mut n = index + 1;
    while n > 0 {
        n -= 1;
        letters.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    letters.reverse();
    format!("sd{}", String::from_utf8(letters).unwrap_or_default())
}

// --- Splitting a transfer (rule 3). ----------------------------------

/// One command of a split transfer: `blocks` blocks at `lba`, the bytes
/// `offset..offset + blocks * block_len` of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    pub lba: u64,
    pub blocks: u32,
    pub offset: usize,
}

/// Split `blocks` blocks at `lba` into commands of at most `max_blocks`.
pub fn split(lba: u64, blocks: u64, block_len: usize, max_blocks: u32) -> Vec<Piece> {
    let max = max_blocks.max(1) as u64;
    let mut out = Vec::new();
    let mut done = 0u64;
    while done < blocks {
        let n = (blocks - done).min(max);
        out.push(Piece { lba: lba + done, blocks: n as u32, offset: done as usize * block_len });
        done += n;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_bytes(resp: u8, st: u8, sense: &[u8], claimed: u32) -> Vec<u8> {
        let mut b = vec![0u8; response_len(SENSE_SIZE)];
        b[0..4].copy_from_slice(&claimed.to_le_bytes());
        b[10] = st;
        b[11] = resp;
        b[12..12 + sense.len()].copy_from_slice(sense);
        b
    }

    fn fixed_sense(k: u8, asc: u8, ascq: u8) -> Vec<u8> {
        let mut s = vec![0u8; 18];
        s[0] = 0x70;
        s[2] = k;
        s[7] = 10;
        s[12] = asc;
        s[13] = ascq;
        s
    }

    #[test]
    fn lun_addressing_is_flat_and_bounded() {
        assert_eq!(lun_address(0, 0), Some([1, 0, 0x40, 0, 0, 0, 0, 0]));
        assert_eq!(lun_address(7, 3), Some([1, 7, 0x40, 3, 0, 0, 0, 0]));
        assert_eq!(lun_address(255, 0x3fff), Some([1, 255, 0x7f, 0xff, 0, 0, 0, 0]));
        assert_eq!(lun_address(256, 0), None);
        assert_eq!(lun_address(0, 0x4000), None);
    }

    #[test]
    fn request_header_layout() {
        let mut h = vec![0xeeu8; request_header_len(CDB_SIZE)];
        assert_eq!(h.len(), 51);
        encode_request(&mut h, lun_address(2, 0).unwrap(), 0x0102030405060708, &Cdb::test_unit_ready()).unwrap();
        assert_eq!(&h[0..8], &[1, 2, 0x40, 0, 0, 0, 0, 0]);
        assert_eq!(&h[8..16], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(&h[16..19], &[0, 0, 0]);
        assert!(h[19..].iter().all(|&b| b == 0), "TEST UNIT READY is all zeroes, padding too");
        let mut short = vec![0u8; 20];
        assert!(encode_request(&mut short, [0; 8], 0, &Cdb::read_capacity_16(32)).is_err());
    }

    #[test]
    fn rw_picks_the_smallest_form_that_fits() {
        let c = Cdb::rw(false, 0x1234, 8).unwrap();
        assert_eq!(c.len, 10);
        assert_eq!(&c.bytes[..10], &[op::READ_10, 0, 0, 0, 0x12, 0x34, 0, 0, 8, 0]);
        let c = Cdb::rw(true, 0xffff_fff0, 0x10).unwrap();
        assert_eq!(c.opcode(), op::WRITE_10, "ends exactly at 2^32: still fits");
        let c = Cdb::rw(true, 0xffff_fff0, 0x11).unwrap();
        assert_eq!(c.opcode(), op::WRITE_16);
        assert_eq!(c.len, 16);
        assert_eq!(&c.bytes[2..10], &0xffff_fff0u64.to_be_bytes());
        assert_eq!(&c.bytes[10..14], &0x11u32.to_be_bytes());
        let c = Cdb::rw(false, 0, 0x1_0000).unwrap();
        assert_eq!(c.opcode(), op::READ_16, "65536 blocks do not fit READ(10)'s count");
        assert_eq!(Cdb::rw(false, 5, 0), None);
        assert_eq!(Cdb::rw(false, u64::MAX, 2), None);
        assert_eq!(c.name(), "READ(16)");
        assert_eq!(Cdb::read_capacity_16(32).name(), "READ CAPACITY(16)");
    }

    #[test]
    fn response_decoding_bounds_the_sense() {
        let b = response_bytes(response::OK, status::CHECK_CONDITION, &fixed_sense(key::UNIT_ATTENTION, 0x29, 0), 10_000);
        let r = decode_response(&b, SENSE_SIZE).unwrap();
        assert_eq!(r.sense.len(), SENSE_SIZE, "a claimed length past the buffer is cut to it");
        assert!(decode_response(&b[..50], SENSE_SIZE).is_err());
        let b = response_bytes(response::OK, status::GOOD, &[], 0);
        assert_eq!(decode_response(&b, SENSE_SIZE).unwrap().sense.len(), 0);
    }

    #[test]
    fn sense_formats() {
        assert_eq!(decode_sense(&fixed_sense(3, 0x11, 0)), Some(Sense { key: 3, asc: 0x11, ascq: 0 }));
        // Fixed format cut short: the key is known, the code is not.
        assert_eq!(decode_sense(&[0x70, 0, 6]), Some(Sense { key: 6, asc: 0, ascq: 0 }));
        assert_eq!(decode_sense(&[0x72, 0x05, 0x24, 0x00, 0, 0, 0, 0]), Some(Sense { key: 5, asc: 0x24, ascq: 0 }));
        assert_eq!(decode_sense(&[]), None);
        assert_eq!(decode_sense(&[0x7f, 1, 2]), None);
        assert_eq!(decode_sense(&[0x70, 0]), None);
        let s = format!("{}", Sense { key: 5, asc: 0x21, ascq: 0 });
        assert!(s.contains("ILLEGAL REQUEST") && s.contains("out of range"), "{s}");
    }

    #[test]
    fn outcomes_retry_only_what_passes() {
        let judge = |resp, st, sense: &[u8]| outcome(&decode_response(&response_bytes(resp, st, sense, sense.len() as u32), SENSE_SIZE).unwrap());
        assert_eq!(judge(response::OK, status::GOOD, &[]), Outcome::Done);
        assert!(matches!(judge(response::OK, status::CHECK_CONDITION, &fixed_sense(key::UNIT_ATTENTION, 0x29, 0)), Outcome::Retry(_)));
        assert!(matches!(judge(response::OK, status::CHECK_CONDITION, &fixed_sense(key::NOT_READY, 0x04, 0x01)), Outcome::Retry(_)));
        assert!(matches!(judge(response::OK, status::CHECK_CONDITION, &fixed_sense(key::NOT_READY, 0x3a, 0)), Outcome::Fail(_)));
        assert!(matches!(judge(response::OK, status::CHECK_CONDITION, &fixed_sense(key::MEDIUM_ERROR, 0x11, 0)), Outcome::Fail(_)));
        assert!(matches!(judge(response::OK, status::BUSY, &[]), Outcome::Retry(_)));
        assert!(matches!(judge(response::BUSY, status::GOOD, &[]), Outcome::Retry(_)));
        assert_eq!(judge(response::BAD_TARGET, 0, &[]), Outcome::Fail(ScsiFailure::Transport(response::BAD_TARGET)));
        assert_eq!(judge(response::OK, status::CHECK_CONDITION, &[]), Outcome::Fail(ScsiFailure::Status(status::CHECK_CONDITION)));
        assert_eq!(judge(response::OK, status::CHECK_CONDITION, &fixed_sense(key::RECOVERED_ERROR, 0x17, 0)), Outcome::Done);
        assert_eq!(judge(response::OK, status::RESERVATION_CONFLICT, &[]), Outcome::Fail(ScsiFailure::Status(0x18)));
    }

    #[test]
    fn a_short_read_is_a_failure_only_where_every_byte_is_owed() {
        let mut b = response_bytes(response::OK, status::GOOD, &[], 0);
        b[4..8].copy_from_slice(&512u32.to_le_bytes());
        let r = decode_response(&b, SENSE_SIZE).unwrap();
        assert_eq!(r.residual, 512);
        assert_eq!(outcome(&r), Outcome::Done, "INQUIRY may answer less than asked");
        assert_eq!(outcome_exact(&r), Outcome::Fail(ScsiFailure::Short(512)));
        assert_eq!(ScsiFailure::Short(u32::MAX).status(), 0x06ff_ffff);
        let b = response_bytes(response::OK, status::GOOD, &[], 0);
        assert_eq!(outcome_exact(&decode_response(&b, SENSE_SIZE).unwrap()), Outcome::Done);
    }

    #[test]
    fn failure_status_names_its_layer() {
        assert_eq!(ScsiFailure::Sense(Sense { key: 5, asc: 0x21, ascq: 0 }).status(), 0x0205_2100);
        assert_eq!(ScsiFailure::Transport(3).status(), 0x0100_0003);
        assert_eq!(ScsiFailure::Status(0x18).status(), 0x0300_0018);
        let all = [ScsiFailure::Transport(0), ScsiFailure::Sense(Sense { key: 0, asc: 0, ascq: 0 }), ScsiFailure::Status(0), ScsiFailure::Malformed, ScsiFailure::Short(0)];
        for (i, a) in all.iter().enumerate() {
            for b in &all[i + 1..] {
                assert_ne!(a.status(), b.status());
            }
        }
        assert!(format!("{}", ScsiFailure::Transport(3)).contains("bad target"));
    }

    #[test]
    fn inquiry_fields() {
        let mut d = vec![0u8; 36];
        d[8..16].copy_from_slice(b"QEMU    ");
        d[16..32].copy_from_slice(b"QEMU HARDDISK   ");
        d[32..36].copy_from_slice(b"2.5+");
        let i = parse_inquiry(&d).unwrap();
        assert!(i.is_disk());
        assert_eq!((i.vendor.as_str(), i.product.as_str(), i.revision.as_str()), ("QEMU", "QEMU HARDDISK", "2.5+"));
        d[0] = 0x05; // CD-ROM
        assert!(!parse_inquiry(&d).unwrap().is_disk());
        d[0] = 0x7f; // qualifier 3: no device at this LUN
        assert!(!parse_inquiry(&d).unwrap().is_disk());
        d[0] = 0;
        d[8] = 0xff;
        assert_eq!(parse_inquiry(&d).unwrap().vendor, "?EMU");
        assert!(parse_inquiry(&d[..35]).is_err());
    }

    #[test]
    fn capacities_are_checked() {
        let c10 = |last: u32, len: u32| {
            let mut d = last.to_be_bytes().to_vec();
            d.extend_from_slice(&len.to_be_bytes());
            parse_capacity_10(&d)
        };
        assert_eq!(c10(2047, 512).unwrap(), Some(Capacity { blocks: 2048, block_len: 512 }));
        assert_eq!(c10(u32::MAX, 512).unwrap(), None, "too large: ask (16)");
        assert!(c10(100, 0).is_err());
        assert!(c10(100, 520).is_err());
        assert!(c10(100, 256).is_err());
        assert!(parse_capacity_10(&[0; 7]).is_err());
        let c16 = |last: u64, len: u32| {
            let mut d = last.to_be_bytes().to_vec();
            d.extend_from_slice(&len.to_be_bytes());
            d.extend_from_slice(&[0; 20]);
            parse_capacity_16(&d)
        };
        assert_eq!(c16((3u64 << 40) / 512 - 1, 512).unwrap(), Capacity { blocks: (3u64 << 40) / 512, block_len: 512 });
        assert_eq!(c16(1000, 4096).unwrap().block_len, 4096);
        assert!(c16(u64::MAX, 512).is_err());
        assert!(c16(u64::MAX / 1024, 4096).is_err(), "bytes overflow");
        assert!(parse_capacity_16(&[0; 11]).is_err());
    }

    #[test]
    fn disk_names() {
        assert_eq!(disk_name(0), "sda");
        assert_eq!(disk_name(1), "sdb");
        assert_eq!(disk_name(25), "sdz");
        assert_eq!(disk_name(26), "sdaa");
        assert_eq!(disk_name(27), "sdab");
        assert_eq!(disk_name(26 + 26 * 26 - 1), "sdzz");
        assert_eq!(disk_name(26 + 26 * 26), "sdaaa");
        assert_eq!(mode_sense_write_protected(&[3, 0, 0x80, 0]), Some(true));
        assert_eq!(mode_sense_write_protected(&[3, 0, 0x10, 0]), Some(false));
        assert_eq!(mode_sense_write_protected(&[3, 0]), None);
    }

    #[test]
    fn split_covers_the_transfer_exactly() {
        assert_eq!(split(10, 5, 512, 2), vec![
            Piece { lba: 10, blocks: 2, offset: 0 },
            Piece { lba: 12, blocks: 2, offset: 1024 },
            Piece { lba: 14, blocks: 1, offset: 2048 },
        ]);
        assert_eq!(split(0, 0, 512, 8), vec![]);
        assert_eq!(split(7, 3, 4096, 0), split(7, 3, 4096, 1), "a zero limit is treated as one block");
        for (blocks, max) in [(1u64, 1u32), (255, 16), (256, 256), (1000, 7)] {
            let p = split(100, blocks, 512, max);
            assert_eq!(p.iter().map(|x| x.blocks as u64).sum::<u64>(), blocks);
            assert!(p.iter().all(|x| x.blocks <= max && x.blocks > 0));
            for w in p.windows(2) {
                assert_eq!(w[0].lba + w[0].blocks as u64, w[1].lba);
                assert_eq!(w[0].offset + w[0].blocks as usize * 512, w[1].offset);
            }
        }
    }
}
