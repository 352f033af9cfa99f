//! Streamed writes and checked reads of deterministic content (plan::fill),
//! in chunks, so a file of any size needs only the two 1 MiB buffers.

use crate::plan;
use crate::report::{describe, hex};
use alloc::format;
use alloc::string::String;
use capos_abi::capos_capnp::{NodeKind, TimeProvenance};
use capos_rt::storage::Stat;
use capos_rt::{Directory, File};
use sha2::{Digest, Sha256};

/// Most bytes one inline write or read carries (MAX_IO_CHUNK_BYTES).
pub const INLINE: usize = capos_abi::limits::MAX_IO_CHUNK_BYTES as usize;

/// How a transfer is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// In the capnp message, `INLINE` bytes at most per call.
    Inline,
    /// Through the bulk buffer, this many bytes per call.
    Bulk(usize),
}

impl Via {
    fn chunk(self) -> usize {
        match self {
            Via::Inline => INLINE,
            Via::Bulk(n) => n,
        }
    }
}

/// Write `len` bytes of stream `seed` (its bytes at offset..offset+len) at
/// `offset`, `via` inline or bulk calls; every call must report its count.
pub fn write_stream(f: &File, offset: u64, len: u64, seed: u64, via: Via, data: &mut [u8]) -> Result<(), String> {
    let chunk = via.chunk().min(data.len());
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk as u64) as usize;
        let at = offset + done;
        plan::fill(seed, at, &mut data[..n]);
        let r = match via {
            Via::Inline => f.write(at, &data[..n]),
            Via::Bulk(_) => f.write_bulk(at, &data[..n]),
        };
        match r {
            Ok(c) if c == n as u64 => {}
            Ok(c) => return Err(format!("write of {} bytes at {} reported {}", n, at, c)),
            Err(e) => return Err(format!("write of {} bytes at {}: {}", n, at, describe(&e))),
        }
        done += n as u64;
    }
    Ok(())
}

/// Read `f` from 0 to its end `via` inline or bulk reads and compare every
/// byte with `expect(offset, buf)`, which fills buf with the expected bytes
/// at offset. The file must be exactly `size` bytes (the read at `size`
/// answers nothing). Returns the sha256 of what was read.
pub fn verify(f: &File, size: u64, via: Via, read: &mut [u8], data: &mut [u8], expect: &dyn Fn(u64, &mut [u8])) -> Result<String, String> {
    let chunk = via.chunk().min(read.len()).min(data.len());
    let mut h = Sha256::new();
    let mut at = 0u64;
    loop {
        let got: &[u8] = match via {
            Via::Inline => {
                let v = f.read(at, chunk as u32).map_err(|e| format!("read at {}: {}", at, describe(&e)))?;
                let n = v.len().min(chunk);
                read[..n].copy_from_slice(&v[..n]);
                if v.len() > chunk {
                    return Err(format!("read of {} at {} answered {} bytes", chunk, at, v.len()));
                }
                &read[..n]
            }
            Via::Bulk(_) => {
                let n = f.read_bulk(at, &mut read[..chunk]).map_err(|e| format!("bulk read at {}: {}", at, describe(&e)))?;
                &read[..n]
            }
        };
        let n = got.len();
        if n == 0 {
            break;
        }
        if at + n as u64 > size {
            return Err(format!("read {} bytes at {}, past the expected size {}", n, at, size));
        }
        let want_len = ((size - at) as usize).min(chunk);
        if n != want_len {
            return Err(format!("short read: {} bytes at {}, want {}", n, at, want_len));
        }
        expect(at, &mut data[..n]);
        if let Some(i) = (0..n).find(|&i| got[i] != data[i]) {
            return Err(format!("byte {} is {:#04x}, want {:#04x}", at + i as u64, got[i], data[i]));
        }
        h.update(got);
        at += n as u64;
    }
    if at != size {
        return Err(format!("read {} bytes, want {}", at, size));
    }
    Ok(hex(&h.finalize()))
}

/// 2020-01-01 and 2100-01-01 in Unix nanoseconds: a wall-clock time
/// outside them is wrong.
const SANE_FROM: i64 = 1_577_836_800 * 1_000_000_000;
const SANE_UNTIL: i64 = 4_102_444_800 * 1_000_000_000;

/// A file's stat: size, kind, both times from the wall clock, sane, and
/// modified not before created.
pub fn check_stat(s: &Stat, size: u64) -> Result<String, String> {
    if s.size != size {
        return Err(format!("size {} want {}", s.size, size));
    }
    if s.kind != NodeKind::File {
        return Err(format!("kind {:?}", s.kind));
    }
    for (what, t) in [("created", s.created), ("modified", s.modified)] {
        if t.provenance != TimeProvenance::WallClock {
            return Err(format!("{} provenance {:?}, want WallClock", what, t.provenance));
        }
        if !(SANE_FROM..SANE_UNTIL).contains(&t.unix_nanos) {
            return Err(format!("{} {} ns is not between 2020 and 2100", what, t.unix_nanos));
        }
    }
    if s.modified.unix_nanos < s.created.unix_nanos {
        return Err(format!("modified {} before created {}", s.modified.unix_nanos, s.created.unix_nanos));
    }
    Ok(format!("size {} created {} modified {} (wallClock)", s.size, s.created.unix_nanos, s.modified.unix_nanos))
}

/// Remove `name` in `dir` and everything below it.
pub fn remove_tree(dir: &Directory, name: &str, depth: u32) -> Result<(), String> {
    if depth > 64 {
        return Err(format!("{}: deeper than 64 levels", name));
    }
    if let Ok(sub) = dir.sub(name) {
        let entries = sub.list().map_err(|e| format!("list {}: {}", name, describe(&e)))?;
        for e in entries {
            match e.kind {
                NodeKind::Directory => remove_tree(&sub, &e.name, depth + 1)?,
                NodeKind::File => sub.remove(&e.name).map_err(|er| format!("remove {}/{}: {}", name, e.name, describe(&er)))?,
            }
        }
    }
    dir.remove(name).map_err(|e| format!("remove {}: {}", name, describe(&e)))
}

/// Names of a directory's entries, in the order listed.
pub fn names(d: &Directory) -> Result<alloc::vec::Vec<String>, String> {
    d.list().map(|v| v.into_iter().map(|e| e.name).collect()).map_err(|e| format!("list: {}", describe(&e)))
}
