//! storage-fat-read and cloud-provider-fat-read-over-nvme: read-only FAT
//! against mtools' view.

use super::*;

pub(super) fn fat_read_virtio(r: &mut Run) -> Result<(), String> {
    fat_read(r, Bus::Virtio)
}

pub(super) fn fat_read_nvme(r: &mut Run) -> Result<(), String> {
    fat_read(r, Bus::Nvme)
}

/// Byte offset of the FAT volume in `img`: 0 for a FAT boot sector in
/// block 0, else the first MBR partition with a FAT type byte.
pub(super) fn fat_offset(img: &Path) -> Result<u64, String> {
    use std::io::Read;
    let mut b = [0u8; 512];
    std::fs::File::open(img).and_then(|mut f| f.read_exact(&mut b)).map_err(|e| format!("{}: {}", img.display(), e))?;
    let bps = u16::from_le_bytes([b[11], b[12]]);
    if b[0] == 0xEB || b[0] == 0xE9 {
        if matches!(bps, 512 | 1024 | 2048 | 4096) {
            return Ok(0);
        }
    }
    for i in 0..4 {
        let e = &b[446 + 16 * i..462 + 16 * i];
        if matches!(e[4], 0x01 | 0x04 | 0x06 | 0x0B | 0x0C | 0x0E | 0x11 | 0x14 | 0x16 | 0x1B | 0x1C | 0x1E | 0xEF) {
            return Ok(u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as u64 * 512);
        }
    }
    Err(format!("{}: neither a FAT boot sector nor an MBR with a FAT partition in block 0", img.display()))
}

/// A FAT image (FAT_IMAGE, copied, or the default one built by
/// tools/mkstorage-fat-read-image) mounted `fat` on `bus`: the checker's
/// walk must equal mtools' own extraction (`mcopy -s -m`, TZ=UTC) line for
/// line, every file's modified time must be the host's within FAT's 2 s,
/// and every mutation is refused (`readonly` mode).
pub(super) fn fat_read(r: &mut Run, bus: Bus) -> Result<(), String> {
    let img = r.dir.join("fat.img");
    match crate::settings::input_path("FAT_IMAGE") {
        Some(user) => {
            std::fs::copy(&user, &img).map_err(|e| format!("cannot read FAT_IMAGE {}: {}", user.display(), e))?;
            println!("-- {}: FAT_IMAGE={} copied to {}", r.name, user.display(), img.display());
        }
        None => {
            let _ = std::fs::remove_file(&img);
            let script = r.s.root.join("tools/mkstorage-fat-read-image");
            let out = Command::new(&script).arg(&img).env("SOURCE_DATE_EPOCH", "1700000000").output().map_err(|e| format!("{}: {}", script.display(), e))?;
            if !out.status.success() {
                return Err(format!("{}: {}{}", script.display(), String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)));
            }
            println!("-- {}: built {} with tools/mkstorage-fat-read-image", r.name, img.display());
        }
    }
    // The host's view, by mtools.
    let host = r.dir.join("host-fat");
    if host.exists() {
        std::fs::remove_dir_all(&host).map_err(|e| format!("{}: {}", host.display(), e))?;
    }
    std::fs::create_dir_all(&host).map_err(|e| e.to_string())?;
    let offset = fat_offset(&img)?;
    let image_arg = if offset == 0 { r.path_str(&img)? } else { format!("{}@@{}", r.path_str(&img)?, offset) };
    let out = Command::new("mcopy")
        .args(["-s", "-m", "-n", "-i", &image_arg, "::/*"])
        .arg(&host)
        .env("TZ", "UTC")
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .map_err(|e| format!("mcopy: {} (install mtools: tools/setup.sh)", e))?;
    if !out.status.success() && !String::from_utf8_lossy(&out.stderr).contains("No match") {
        return Err(format!("mcopy -s -m -i {} ::/*: {}", image_arg, String::from_utf8_lossy(&out.stderr).trim()));
    }
    let (host_walk, host_times) = host_fs_walk_times(&host)?;
    println!("-- {}: mtools sees {} directories and files, {} file times", r.name, host_walk.len(), host_times.len());
    let sha_before = sha_file(&img)?;
    let mounts = [Mount { name: "fat", format: Format::Fat, device: bus.guest_name(), read_only: false }];
    let procs = [checker(CHECKER, &["--mode", "readonly"], grants_for(Format::Fat, "fat", "fs", "store", "fs", "store"))];
    let text = manifest_text(&format!("{} over {:?}", r.name, bus), &mounts, &procs);
    let boot = bus.name();
    let out = r.boot(boot, &text, &[Disk { path: img.clone(), bus }], None, timeout(r, 120))?;
    r.judge(boot, &out, &mounts, &[CHECKER], &[]);
    r.check_walk(&format!("{}-walk", boot), &out, CHECKER, "start", &host_walk);
    // Times: one `time PATH modified=SECS` line per file of the first walk.
    let mut guest_times: BTreeMap<String, i64> = BTreeMap::new();
    for body in messages_of(&out.lines, CHECKER) {
        if body.starts_with("walk end start") {
            break;
        }
        if let Some(rest) = body.strip_prefix("time ") {
            if let Some((path, secs)) = rest.rsplit_once(" modified=") {
                if let Ok(v) = secs.trim().parse::<i64>() {
                    guest_times.insert(path.to_string(), v);
                }
            }
        }
    }
    let mut bad = Vec::new();
    for (path, h) in &host_times {
        match guest_times.get(path) {
            None => bad.push(format!("{}: no time line from the guest (host {})", path, h)),
            Some(g) if (g - h).abs() > 2 => bad.push(format!("{}: guest modified {} host {} ({} s apart)", path, g, h, g - h)),
            Some(_) => {}
        }
    }
    for path in guest_times.keys().filter(|p| !host_times.contains_key(*p)) {
        bad.push(format!("{}: a time line for a file mtools does not have", path));
    }
    let what = format!("{}-times", boot);
    if bad.is_empty() && !host_times.is_empty() {
        r.pass(&what, &format!("{} files' modified times equal mtools' within FAT's 2 s", host_times.len()));
    } else {
        for b in bad.iter().take(25) {
            println!("   {}", b);
        }
        r.fail(&what, &format!("{} time mismatches ({} host files)", bad.len(), host_times.len()));
    }
    let sha_after = sha_file(&img)?;
    r.check(&format!("{}-image-untouched", boot), if sha_after == sha_before { Ok(format!("{} unchanged", img.display())) } else { Err(format!("{} changed behind a read-only mount", img.display())) });
    Ok(())
}
