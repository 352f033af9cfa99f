//! storage-readonly and storage-hostile.

use super::*;

pub(super) fn readonly(r: &mut Run) -> Result<(), String> {
    let seed = r.dir.join("seed-ro");
    seed_tree(&seed, 1)?;
    let seed_s = r.path_str(&seed)?;
    let ro = r.image("RO_IMAGE", "ro.img", &["--readonly-fs", &seed_s])?;
    let ro_fmt = detect_file(&ro)?;
    // The writable disk the read-only wrappers (and a read-only mount) sit on.
    let seed2 = r.dir.join("seed-rw");
    seed_tree(&seed2, 2)?;
    let kv = r.dir.join("seed.kv");
    seed_kv(&kv)?;
    let (seed2_s, kv_s) = (r.path_str(&seed2)?, r.path_str(&kv)?);
    let rw = r.image("", "rw.img", &["--colocated", "--store-seed", &kv_s, "--fs-seed", &seed2_s])?;
    let host_ro = r.extract(&ro, "ro-before")?.walk(ro_fmt.has_fs(), ro_fmt.has_store())?;
    let host_rw = r.extract(&rw, "rw-before")?.walk(true, true)?;
    let ro_sha = sha_file(&ro)?;
    for (boot, ro_bus, rw_bus, rw_read_only_mount) in [("virtio", Bus::Virtio, Bus::Nvme, false), ("nvme", Bus::Nvme, Bus::Virtio, true)] {
        let mounts = [
            Mount { name: "ro", format: ro_fmt, device: ro_bus.guest_name(), read_only: ro_fmt != Format::Ro },
            Mount { name: "rw", format: Format::Colocated, device: rw_bus.guest_name(), read_only: rw_read_only_mount },
        ];
        // The first boot reaches the writable disk through the read-only
        // wrappers; the second through a read-only mount.
        let mut grants = grants_for(ro_fmt, "ro", "fs", "store", "fs", "store");
        if rw_read_only_mount {
            grants.extend(grants_for(Format::Colocated, "rw", "rofs", "rostore", "fs", "store"));
        } else {
            grants.extend(grants_for(Format::Colocated, "rw", "rofs", "rostore", "fs-ro", "store-ro"));
        }
        let procs = [checker(CHECKER, &["--mode", "readonly"], grants)];
        let text = manifest_text(&format!("storage-readonly boot {}", boot), &mounts, &procs);
        let out = r.boot(boot, &text, &[Disk { path: ro.clone(), bus: ro_bus }, Disk { path: rw.clone(), bus: rw_bus }], None, timeout(r, 120))?;
        r.judge(boot, &out, &mounts, &[CHECKER], &[]);
        r.check_walk(&format!("{}-walk-ro-start", boot), &out, CHECKER, "start", &host_ro);
        r.check_walk(&format!("{}-walk-ro-end", boot), &out, CHECKER, "end", &host_ro);
        r.check_walk(&format!("{}-walk-wrapped-start", boot), &out, CHECKER, "start-ro", &host_rw);
        let ro_now = sha_file(&ro)?;
        r.check(&format!("{}-ro-image-untouched", boot), if ro_now == ro_sha { Ok(format!("{} bytes unchanged (sha256 {})", ro.display(), &ro_sha[..16])) } else { Err(format!("{} changed: sha256 {} -> {}", ro.display(), ro_sha, ro_now)) });
        if let Some((_, host)) = r.host_state(&format!("{}-rw-after", boot), &rw, true, true) {
            let w = format!("{}-rw-unchanged", boot);
            match compare(&host, &host_rw) {
                Ok(n) => r.pass(&w, &format!("the writable disk's extract is unchanged ({} lines)", n)),
                Err(d) => {
                    for l in d {
                        println!("   {}", l.replace("guest only", "now only").replace("host only: ", "before only:"));
                    }
                    r.fail(&w, "the writable disk changed behind read-only capabilities (lines above)");
                }
            }
        }
    }
    Ok(())
}

pub(super) fn hostile(r: &mut Run) -> Result<(), String> {
    let kv = r.dir.join("seed.kv");
    seed_kv(&kv)?;
    let seed = r.dir.join("seed-fs");
    seed_tree(&seed, 5)?;
    let (kv_s, seed_s) = (r.path_str(&kv)?, r.path_str(&seed)?);
    // A 4 MiB filesystem: small enough to fill quickly.
    let img = r.image("HOSTILE_IMAGE", "hostile.img", &["--colocated", "--blocks", "10240", "--store-blocks", "2048", "--store-seed", &kv_s, "--fs-seed", &seed_s])?;
    let fmt = detect_file(&img)?;
    if !fmt.has_fs() {
        return Err(format!("HOSTILE_IMAGE {} is {}, which holds no filesystem", img.display(), fmt.word()));
    }
    let host0 = r.extract(&img, "before")?.walk(true, fmt.has_store())?;
    let bus = Bus::from_env(Bus::Virtio)?;
    let mounts = [Mount { name: "data", format: fmt, device: bus.guest_name(), read_only: false }];
    let mut grants = grants_for(fmt, "data", "fs", "store", "fs", "store");
    grants.push(("rofs", String::from("fs-ro:data")));
    let procs = [
        checker(CHECKER, &["--mode", "hostile"], grants),
        // A second client of the same filesystem: waits for the hostile
        // one to finish, then walks it.
        checker("walker", &["--mode", "walk", "--wait-for", "/h/done"], vec![("fs", String::from("fs:data"))]),
    ];
    let text = manifest_text("storage-hostile", &mounts, &procs);
    let out = r.boot("hostile", &text, &[Disk { path: img.clone(), bus }], None, timeout(r, 240))?;
    r.judge("hostile", &out, &mounts, &[CHECKER, "walker"], &[]);
    r.check_walk("walk-start", &out, CHECKER, "start", &host0);
    if let Some((_, h)) = r.host_state("after", &img, true, fmt.has_store()) {
        r.check_walk("walk-end", &out, CHECKER, "end", &h);
        let fs_only = r.extract(&img, "after-fs")?.walk(true, false)?;
        r.check_walk("second-client-walk", &out, "walker", "start", &fs_only);
    }
    Ok(())
}
