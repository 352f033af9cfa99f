//! storage-writable: CAPOSWF1 through every mutation and a reboot.

use super::*;

pub(super) fn writable(r: &mut Run) -> Result<(), String> {
    // Its 1 MiB File writes and reads: the interrupts-off bound.
    r.icount = true;
    let seed = r.dir.join("seed-wf");
    seed_tree(&seed, 3)?;
    let seed_s = r.path_str(&seed)?;
    let img = r.image("WF_IMAGE", "wf.img", &["--writable-nvme", "--seed", &seed_s])?;
    let fmt = detect_file(&img)?;
    if !fmt.has_fs() {
        return Err(format!("WF_IMAGE {} is {}, which holds no filesystem", img.display(), fmt.word()));
    }
    let mut host = r.extract(&img, "before")?.walk(true, false)?;
    // Phase 1 over DISK_BUS (default NVMe), phase 2 over virtio-blk (NVMe
    // when DISK_BUS is virtio): the image moves between buses.
    let first = Bus::from_env(Bus::Nvme)?;
    let second = if first == Bus::Virtio { Bus::Nvme } else { Bus::Virtio };
    for (phase, bus) in [(1, first), (2, second)] {
        let boot = format!("phase{}-{}", phase, bus.name());
        let mounts = [Mount { name: "data", format: fmt, device: bus.guest_name(), read_only: false }];
        let procs = [checker(CHECKER, &["--mode", "writable", "--phase", &phase.to_string()], vec![("fs", String::from("fs:data"))])];
        let text = manifest_text(&format!("storage-writable phase {}", phase), &mounts, &procs);
        let out = r.boot(&boot, &text, &[Disk { path: img.clone(), bus }], None, timeout(r, 240))?;
        r.judge(&boot, &out, &mounts, &[CHECKER], &[]);
        r.check_walk(&format!("{}-walk-start", boot), &out, CHECKER, "start", &host);
        match r.host_state(&format!("after-phase{}", phase), &img, true, false) {
            Some((_, h)) => {
                r.check_walk(&format!("{}-walk-end", boot), &out, CHECKER, "end", &h);
                host = h;
            }
            None => return Ok(()),
        }
    }
    Ok(())
}
