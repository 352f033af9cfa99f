//! `persist`: a CAPOSST1 store (alone or co-located) answers
//! put/get/has/delete/list as the contract says and keeps every value
//! across a reboot, including after enough overwrites that it compacts.
//!
//! Phase 1 writes `p/00`.. (plan::PERSIST_SIZES, inline and bulk, 0 bytes
//! to 64 KiB), deletes plan::PERSIST_DELETED, checks listing and paging,
//! then overwrites `churn/0..` with multi-KiB values as many times as the
//! runner computed the store needs to compact (`--churn-rounds`,
//! `--churn-value`: plan::Churn; the kernel logs its compaction). Phase 2 finds every value intact and the deleted
//! keys absent, then changes a little (the runner's final comparison).
//! With a filesystem granted too (co-located), a file rides along.

use crate::bufs::Bufs;
use crate::ops::{verify, write_stream, Via};
use crate::plan::{self, churn_seed, persist_seed, Churn, CHURN_KEYS, PERSIST_DELETED, PERSIST_SIZES};
use crate::report::{ctx, describe, hex, Report};
use crate::Grants;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::{Directory, Store};

fn pkey(i: usize) -> Vec<u8> {
    format!("p/{:02}", i).into_bytes()
}

fn ckey(k: u64) -> Vec<u8> {
    format!("churn/{}", k).into_bytes()
}

/// The key's value must be exactly `len` bytes of stream `seed`.
fn check_value(st: &Store, key: &[u8], len: usize, seed: u64, inline: bool, bufs: &mut Bufs) -> Result<String, String> {
    let got: &[u8] = if inline {
        let v = ctx("get", st.get(key))?;
        let n = v.len().min(bufs.read.len());
        bufs.read[..n].copy_from_slice(&v[..n]);
        if v.len() != len {
            return Err(format!("{} bytes, want {}", v.len(), len));
        }
        &bufs.read[..n]
    } else {
        let n = ctx("get_bulk", st.get_bulk(key, bufs.read))?;
        if n != len {
            return Err(format!("{} bytes, want {}", n, len));
        }
        &bufs.read[..n]
    };
    plan::fill(seed, 0, &mut bufs.data[..len]);
    match (0..len).find(|&i| got[i] != bufs.data[i]) {
        Some(i) => Err(format!("byte {} is {:#04x}, want {:#04x}", i, got[i], bufs.data[i])),
        None => Ok(format!("{} bytes intact ({})", len, if inline { "inline" } else { "bulk" })),
    }
}

/// Every key from `after` on whose bytes start with `prefix`, paging `limit` at a time.
fn keys_with_prefix(st: &Store, prefix: &[u8], limit: u32) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    let mut after = prefix.to_vec();
    for _ in 0..100_000 {
        let (keys, more) = ctx("list", st.list(&after, limit))?;
        if limit != 0 && keys.len() > limit as usize {
            return Err(format!("{} keys for limit {}", keys.len(), limit));
        }
        for k in &keys {
            if k.as_slice() <= after.as_slice() {
                return Err(format!("key {} is not after {}", hex(k), hex(&after)));
            }
            after = k.clone();
            if !k.starts_with(prefix) {
                return Ok(out);
            }
            out.push(k.clone());
        }
        if !more {
            return Ok(out);
        }
        if keys.is_empty() {
            return Err(String::from("an empty page says more keys remain"));
        }
    }
    Err(String::from("more than 100000 pages"))
}

fn live_keys() -> Vec<Vec<u8>> {
    (0..PERSIST_SIZES.len()).filter(|i| !PERSIST_DELETED.contains(i)).map(pkey).collect()
}

/// `--churn-rounds R --churn-value V` (each optional), or why not.
pub fn churn_args(rounds: Option<&str>, value: Option<&str>) -> Result<Churn, String> {
    let mut c = Churn::DEFAULT;
    if let Some(v) = rounds {
        c.rounds = v.parse::<u64>().ok().filter(|r| (1..=1_000_000).contains(r)).ok_or_else(|| format!("--churn-rounds '{}' is not 1 to 1000000", v))?;
    }
    if let Some(v) = value {
        c.value = v.parse::<usize>().ok().filter(|n| (1..=plan::CHURN_VALUE_MAX).contains(n)).ok_or_else(|| format!("--churn-value '{}' is not 1 to {}", v, plan::CHURN_VALUE_MAX))?;
    }
    Ok(c)
}

pub fn run(g: &Grants, phase: u32, churn: Churn, bufs: &mut Bufs, r: &mut Report) {
    let Some(st) = g.store.as_ref() else {
        r.fail("st-grants", "persist mode needs a store granted as 'store'");
        return;
    };
    match phase {
        1 => phase1(st, g.fs.as_ref(), churn, bufs, r),
        2 => phase2(st, g.fs.as_ref(), churn, bufs, r),
        p => r.fail("st-phase", &format!("unknown phase {}", p)),
    }
}

fn phase1(st: &Store, fs: Option<&Directory>, churn: Churn, bufs: &mut Bufs, r: &mut Report) {
    // Keys of an earlier run go first.
    for i in 0..PERSIST_SIZES.len() {
        let _ = st.delete(&pkey(i));
    }
    for k in 0..CHURN_KEYS {
        let _ = st.delete(&ckey(k));
    }
    let _ = st.delete(b"p2/after-reboot");
    for (i, &size) in PERSIST_SIZES.iter().enumerate() {
        let key = pkey(i);
        let len = size as usize;
        plan::fill(persist_seed(i), 0, &mut bufs.data[..len]);
        let inline = i % 2 == 0;
        let put = if inline { st.put(&key, &bufs.data[..len]) } else { st.put_bulk(&key, &bufs.data[..len]) };
        let name = format!("st-put-p{:02}", i);
        if r.check(&name, put.map(|_| format!("{} bytes {}", len, if inline { "inline" } else { "bulk" })).map_err(|e| describe(&e))) {
            // Read back the other way round.
            r.check(&format!("st-get-p{:02}", i), check_value(st, &key, len, persist_seed(i), !inline && len <= 60_000, bufs));
        }
    }
    r.check("st-has", match (st.has(&pkey(0)), st.has(b"p/zz")) {
        (Ok(true), Ok(false)) => Ok(String::from("p/00 yes, p/zz no")),
        (a, b) => Err(format!("has p/00 {:?}, has p/zz {:?}", a.map_err(|e| describe(&e)), b.map_err(|e| describe(&e)))),
    });
    r.refused("st-get-missing", st.get(b"p/zz"), &[ErrorCode::NotFound]);
    r.refused("st-get-bulk-missing", st.get_bulk(b"p/zz", bufs.read), &[ErrorCode::NotFound]);
    for &i in PERSIST_DELETED {
        let key = pkey(i);
        let n = format!("st-delete-p{:02}", i);
        let res = match (st.delete(&key), st.delete(&key), st.has(&key)) {
            (Ok(true), Ok(false), Ok(false)) => Ok(String::from("existed, then did not, has says no")),
            (a, b, c) => Err(format!("delete {:?}, again {:?}, has {:?}", a.map_err(|e| describe(&e)), b.map_err(|e| describe(&e)), c.map_err(|e| describe(&e)))),
        };
        r.check(&n, res);
        r.refused(&format!("st-get-deleted-p{:02}", i), st.get(&key), &[ErrorCode::NotFound]);
    }
    check_listing(st, r);

    // Churn: the same keys overwritten until the store must compact.
    let mut failed = None;
    let mut puts = 0u64;
    let value = churn.value;
    'churn: for round in 0..churn.rounds {
        for k in 0..CHURN_KEYS {
            plan::fill(churn_seed(k, round), 0, &mut bufs.data[..value]);
            if let Err(e) = st.put_bulk(&ckey(k), &bufs.data[..value]) {
                failed = Some(format!("round {} key {}: {}", round, k, describe(&e)));
                break 'churn;
            }
            puts += 1;
        }
    }
    let total = puts * value as u64;
    r.check("st-churn", match failed {
        None => Ok(format!("{} puts of {} bytes ({} KiB written over {} keys)", puts, value, total / 1024, CHURN_KEYS)),
        Some(e) => Err(e),
    });
    for k in 0..CHURN_KEYS {
        r.check(&format!("st-churn-final-{}", k), check_value(st, &ckey(k), value, churn_seed(k, churn.rounds - 1), k % 2 == 0, bufs));
    }
    // Everything written before the churn survived its compactions.
    let mut bad = Vec::new();
    for i in 0..PERSIST_SIZES.len() {
        if !PERSIST_DELETED.contains(&i) {
            if let Err(e) = check_value(st, &pkey(i), PERSIST_SIZES[i] as usize, persist_seed(i), false, bufs) {
                bad.push(format!("p/{:02}: {}", i, e));
            }
        }
    }
    r.check("st-survives-compaction", if bad.is_empty() { Ok(format!("{} values intact", live_keys().len())) } else { Err(bad.join("; ")) });

    if let Some(root) = fs {
        let res = {
            let _ = root.remove("persist-fs");
            ctx("create /persist-fs", root.create("persist-fs")).and_then(|f| {
                write_stream(&f, 0, 5000, 555, Via::Inline, bufs.data)?;
                ctx("sync", f.sync())
            })
        };
        r.check("st-colocated-fs-write", res.map(|_| String::from("/persist-fs 5000 bytes beside the store")));
    }
}

fn check_listing(st: &Store, r: &mut Report) {
    let want = live_keys();
    r.check("st-list", match keys_with_prefix(st, b"p/", 0) {
        Ok(k) if k == want => Ok(format!("{} keys in byte order", k.len())),
        Ok(k) => Err(format!("{} keys {:?}, want {:?}", k.len(), k.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect::<Vec<_>>(), want.len())),
        Err(e) => Err(e),
    });
    r.check("st-list-pages-of-3", match keys_with_prefix(st, b"p/", 3) {
        Ok(k) if k == want => Ok(format!("{} keys in pages of 3", k.len())),
        Ok(k) => Err(format!("{} keys, want {}", k.len(), want.len())),
        Err(e) => Err(e),
    });
    // `after` is exclusive: after p/05 comes p/06.
    r.check("st-list-after", match st.list(&pkey(5), 1) {
        Ok((k, _)) if k == [pkey(6)] => Ok(String::from("after p/05 comes p/06")),
        Ok((k, more)) => Err(format!("{:?} more={}", k.iter().map(|x| String::from_utf8_lossy(x).into_owned()).collect::<Vec<_>>(), more)),
        Err(e) => Err(describe(&e)),
    });
    let huge = st.list(b"", u32::MAX);
    r.check("st-list-limit-capped", match huge {
        Ok((k, _)) if k.len() <= 256 => Ok(format!("limit u32::MAX gave {} keys (at most 256)", k.len())),
        Ok((k, _)) => Err(format!("{} keys in one page", k.len())),
        Err(e) => Err(describe(&e)),
    });
    r.check("st-list-past-the-end", match st.list(&[0xff; 200], 0) {
        Ok((k, false)) if k.is_empty() => Ok(String::from("nothing after ff..ff")),
        Ok((k, more)) => Err(format!("{} keys, more={}", k.len(), more)),
        Err(e) => Err(describe(&e)),
    });
}

fn phase2(st: &Store, fs: Option<&Directory>, churn: Churn, bufs: &mut Bufs, r: &mut Report) {
    for (i, &size) in PERSIST_SIZES.iter().enumerate() {
        let key = pkey(i);
        let n = format!("st-persisted-p{:02}", i);
        if PERSIST_DELETED.contains(&i) {
            r.check(&n, match (st.has(&key), st.get(&key)) {
                (Ok(false), Err(e)) if e.code() == Some(ErrorCode::NotFound) => Ok(String::from("deleted, still absent")),
                (h, g) => Err(format!("deleted key: has {:?}, get {:?}", h.map_err(|e| describe(&e)), g.map(|v| v.len()).map_err(|e| describe(&e)))),
            });
        } else {
            r.check(&n, check_value(st, &key, size as usize, persist_seed(i), i % 3 == 0 && size <= 60_000, bufs));
        }
    }
    for k in 0..CHURN_KEYS {
        r.check(&format!("st-persisted-churn-{}", k), check_value(st, &ckey(k), churn.value, churn_seed(k, churn.rounds - 1), false, bufs));
    }
    check_listing(st, r);
    if let Some(root) = fs {
        let res = ctx("open /persist-fs", root.open("persist-fs")).and_then(|f| verify(&f, 5000, Via::Inline, bufs.read, bufs.data, &|o, b| plan::fill(555, o, b)));
        r.check("st-colocated-fs-persisted", res.map(|_| String::from("/persist-fs intact")));
    }
    // A change after the reboot, for the runner's final comparison.
    plan::fill(2, 0, &mut bufs.data[..1000]);
    r.check("st-phase2-put", st.put(b"p2/after-reboot", &bufs.data[..1000]).map(|_| String::new()).map_err(|e| describe(&e)));
    r.check("st-phase2-get", check_value(st, b"p2/after-reboot", 1000, 2, true, bufs));
}
