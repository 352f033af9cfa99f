//! storage-persist: a CAPOSST1 store driven until it compacts, within
//! the image's own capacity, and read back after a reboot.

use super::*;

/// What a CAPOSST1 store (alone or the store half of a co-located disk)
/// holds, read on the host through the kernel's own engine, read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct StoreShape {
    /// Entry slots and heap bytes of one area (what a compaction resets).
    pub(super) slots: u64,
    pub(super) heap_bytes: u64,
    /// Live keys and their key + value bytes.
    pub(super) keys: u64,
    pub(super) live_bytes: u64,
    /// Entries in the active area's table (live, overwritten, tombstones).
    pub(super) entries: u64,
}

pub(super) fn store_shape(img: &Path) -> Result<StoreShape, String> {
    use capos_storage::store::Store;
    let bytes = std::fs::read(img).map_err(|e| format!("cannot read {}: {}", img.display(), e))?;
    let mut dev = capos_storage::mem_device::MemBlockDevice::from_bytes(bytes);
    let part = capos_storage::colocated::store_part(&mut dev).map_err(|e| format!("{}: {}", img.display(), e))?;
    let p = capos_storage::partition::Partition::new(&mut dev, part.start, part.count).map_err(|e| format!("{}: {:?}", img.display(), e))?;
    let mut st = Store::mount(p, true).map_err(|e| format!("{}: CAPOSST1: {}", img.display(), e))?;
    let live_bytes = st.entries().map_err(|e| format!("{}: CAPOSST1: {}", img.display(), e))?.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let g = *st.geometry();
    Ok(StoreShape { slots: g.slot_capacity() as u64, heap_bytes: g.heap_bytes() as u64, keys: st.len() as u64, live_bytes, entries: st.entry_count() as u64 })
}

/// The persist churn for a store shaped `shape` (plan::Churn::for_store:
/// enough puts that one must compact), or why the workload does not fit:
/// after a compaction the area holds every live key, and the store's own
/// keys plus what phase 1 leaves (PERSIST_SIZES, the churn keys, phase 2's
/// key) must fit one area, or the store is full, not compacting.
pub(super) fn persist_churn(shape: &StoreShape) -> Result<plan::Churn, String> {
    let churn = plan::Churn::for_store(shape.slots, shape.heap_bytes);
    let persist_keys = plan::PERSIST_SIZES.len() as u64;
    let persist_bytes: u64 = plan::PERSIST_SIZES.iter().map(|s| s + 4).sum::<u64>() + plan::CHURN_KEYS * (8 + churn.value as u64) + 1000 + 15;
    let keys = shape.keys + persist_keys + plan::CHURN_KEYS + 1;
    let bytes = shape.live_bytes + persist_bytes;
    if keys > shape.slots || bytes > shape.heap_bytes {
        return Err(format!(
            "the store is too full for the persist workload: it holds {} keys ({} bytes), the workload adds up to {} keys ({} bytes), and one area holds {} entries and {} heap bytes; use a larger store (mkstore-image --store --blocks N) or one with fewer keys",
            shape.keys,
            shape.live_bytes,
            keys - shape.keys,
            persist_bytes,
            shape.slots,
            shape.heap_bytes
        ));
    }
    Ok(churn)
}

/// Which churn put (1-based) made the last compaction, from the store
/// after phase 1: that compaction left exactly the live keys in the
/// area, and every churn put after it appended one entry. `None` when the
/// counts cannot come from a compaction during the churn.
pub(super) fn compacting_put(churn: &plan::Churn, after: &StoreShape) -> Option<u64> {
    let appended = after.entries.checked_sub(after.keys)?;
    churn.puts().checked_sub(appended).filter(|p| *p >= 1)
}

pub(super) fn persist(r: &mut Run) -> Result<(), String> {
    // Its 64 KiB values and compactions: the interrupts-off bound.
    r.icount = true;
    let kv = r.dir.join("seed.kv");
    seed_kv(&kv)?;
    let seed = r.dir.join("seed-fs");
    seed_tree(&seed, 4)?;
    let (kv_s, seed_s) = (r.path_str(&kv)?, r.path_str(&seed)?);
    let images: Vec<(&str, PathBuf, Bus)> = if crate::settings::input_path("STORE_IMAGE").is_some() {
        vec![("user", r.image("STORE_IMAGE", "store.img", &[])?, Bus::Virtio)]
    } else {
        vec![
            ("store", r.image("", "store.img", &["--store", "--seed", &kv_s])?, Bus::Virtio),
            ("colocated", r.image("", "colocated.img", &["--colocated", "--store-seed", &kv_s, "--fs-seed", &seed_s])?, Bus::Nvme),
        ]
    };
    for (tag, img, bus) in images {
        let fmt = detect_file(&img)?;
        if !fmt.has_store() {
            r.fail(&format!("{}-format", tag), &format!("{} is {}, which holds no store", img.display(), fmt.word()));
            continue;
        }
        let mut host = r.extract(&img, &format!("{}-before", tag))?.walk(true, true)?;
        // The churn is sized from the store itself, so any store compacts
        // within its own capacity (or the run says why it cannot).
        let shape = store_shape(&img)?;
        let churn = match persist_churn(&shape) {
            Ok(c) => c,
            Err(e) => {
                r.fail(&format!("{}-capacity", tag), &e);
                continue;
            }
        };
        r.pass(
            &format!("{}-churn-plan", tag),
            &format!(
                "store of {} entries and {} heap bytes per area holding {} keys ({} bytes): {} puts of {} bytes over {} keys, of which one must compact",
                shape.slots,
                shape.heap_bytes,
                shape.keys,
                shape.live_bytes,
                churn.puts(),
                churn.value,
                plan::CHURN_KEYS
            ),
        );
        let (rounds, value) = (churn.rounds.to_string(), churn.value.to_string());
        // Every put is a flush and a commit: the budget grows with them
        // (0.3 s a put: about 8 ms each under TCG here, with room for a
        // loaded host).
        let secs = 240u64.max(120 + churn.puts() * 3 / 10);
        for phase in [1, 2] {
            let boot = format!("{}-phase{}", tag, phase);
            let mounts = [Mount { name: "data", format: fmt, device: bus.guest_name(), read_only: false }];
            let procs = [checker(CHECKER, &["--mode", "persist", "--phase", &phase.to_string(), "--churn-rounds", &rounds, "--churn-value", &value], grants_for(fmt, "data", "fs", "store", "fs", "store"))];
            let text = manifest_text(&format!("storage-persist {} phase {}", tag, phase), &mounts, &procs);
            let out = r.boot(&boot, &text, &[Disk { path: img.clone(), bus }], None, timeout(r, secs))?;
            // Phase 1 overwrites enough that the store must compact.
            let expect: &[&str] = if phase == 1 { &["compaction"] } else { &[] };
            r.judge(&boot, &out, &mounts, &[CHECKER], expect);
            if phase == 1 {
                let logged = out.lines.iter().filter(|l| l.contains("storage: data: compaction #")).count();
                let at = store_shape(&img).map(|after| compacting_put(&churn, &after));
                let what = format!("{}-compacted", boot);
                match at {
                    Ok(Some(p)) if logged > 0 => r.pass(&what, &format!("{} compaction(s) logged; the last at churn put {} of {} ({} bytes each)", logged, p, churn.puts(), churn.value)),
                    Ok(_) => r.fail(&what, &format!("{} compaction(s) logged in {} churn puts", logged, churn.puts())),
                    Err(e) => r.fail(&what, &e),
                }
            }
            r.check_walk(&format!("{}-walk-start", boot), &out, CHECKER, "start", &host);
            match r.host_state(&format!("{}-after-phase{}", tag, phase), &img, true, true) {
                Some((_, h)) => {
                    r.check_walk(&format!("{}-walk-end", boot), &out, CHECKER, "end", &h);
                    host = h;
                }
                None => break,
            }
        }
    }
    Ok(())
}
