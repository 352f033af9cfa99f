//! storage-writable-recovery: power cuts during a write workload and
//! what must hold after each.

use super::*;

/// A file's state: Some((size, sha256)) or None (absent).
pub type FileState = Option<(u64, String)>;

/// What the guest reported durable so far.
#[derive(Default, Debug)]
pub struct Durable {
    pub states: BTreeMap<String, FileState>,
    /// The last step with `synced` lines.
    pub last_step: Option<u64>,
}

impl Durable {
    /// Take the `synced` lines of a boot, in order. The first line of step
    /// k says its sync returned, so all of step k is durable even when the
    /// cut came before its other lines: the plan's effects of step k are
    /// applied first, then what the lines report.
    pub fn absorb(&mut self, lines: &[String], c: &mut Contents) {
        for body in messages_of(lines, CHECKER) {
            if let Some((k, path, state)) = parse_synced(body) {
                if self.last_step.is_none_or(|s| k > s) {
                    self.apply_step(k, c);
                }
                // The last line before a SIGKILL can arrive cut short:
                // it still says step k's sync returned (applied above
                // from the plan), but its own hash is not the file's.
                if state_complete(&state) {
                    self.states.insert(path, state);
                }
            }
        }
    }
}

impl Durable {
    /// Step k completed (its sync returned: a later boot resumed after it)
    /// but the cut came before its `synced` lines: apply its effects as
    /// the plan defines them.
    pub fn apply_step(&mut self, k: u64, c: &mut Contents) {
        let f = |slot: u64| format!("/r/f{}", slot);
        match plan::action(k) {
            plan::Action::Replace { slot } | plan::Action::Overwrite { slot } => {
                self.states.insert(f(slot), Some(c.content(k)));
            }
            plan::Action::Delete { slot } => {
                self.states.insert(f(slot), None);
            }
            plan::Action::Move { slot, to } => {
                let g = format!("/r/d/g{}", to);
                match self.states.get(&f(slot)).cloned() {
                    Some(Some(st)) => {
                        self.states.insert(g, Some(st));
                        self.states.insert(f(slot), None);
                    }
                    Some(None) => {}
                    None => {
                        // Unknown before: unknown after.
                        self.states.remove(&g);
                    }
                }
            }
        }
        if plan::appends_log(k) {
            self.states.insert(String::from("/r/log"), Some(c.log(k)));
        }
        self.states.insert(String::from("/r/step"), Some(step_state(k)));
        self.last_step = Some(k);
    }
}

/// `synced K PATH size=N sha256=HEX` or `synced K PATH absent`.
/// Whether a `synced` line's state is whole: absent, or a size and a full
/// 64-digit sha256.
pub fn state_complete(state: &FileState) -> bool {
    match state {
        None => true,
        Some((_, h)) => h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()),
    }
}

pub fn parse_synced(body: &str) -> Option<(u64, String, FileState)> {
    let rest = body.strip_prefix("synced ")?;
    let mut it = rest.split(' ');
    let k = it.next()?.parse().ok()?;
    let path = it.next()?.to_string();
    let a = it.next()?;
    if a == "absent" {
        return Some((k, path, None));
    }
    let size = a.strip_prefix("size=")?.parse().ok()?;
    let sha = it.next()?.strip_prefix("sha256=")?.to_string();
    Some((k, path, Some((size, sha))))
}

/// Content k's and the log's (size, sha256), computed once each.
#[derive(Default)]
pub struct Contents {
    pub(super) content: HashMap<u64, (u64, String)>,
    pub(super) log: Vec<(u64, String)>,
}

impl Contents {
    pub fn content(&mut self, k: u64) -> (u64, String) {
        self.content
            .entry(k)
            .or_insert_with(|| {
                let mut v = vec![0u8; plan::content_size(k) as usize];
                plan::fill(plan::content_seed(k), 0, &mut v);
                (v.len() as u64, sha_hex(&v))
            })
            .clone()
    }

    /// The log after step k.
    pub fn log(&mut self, k: u64) -> (u64, String) {
        while self.log.len() as u64 <= k {
            let upto = self.log.len() as u64;
            let mut bytes = Vec::new();
            for j in 1..=upto {
                if plan::appends_log(j) {
                    let mut rec = vec![0u8; plan::log_record_size(j) as usize];
                    plan::fill(plan::log_record_seed(j), 0, &mut rec);
                    bytes.extend_from_slice(&rec);
                }
            }
            self.log.push((bytes.len() as u64, sha_hex(&bytes)));
        }
        self.log[k as usize].clone()
    }

    /// The step j <= max whose content has this size and hash.
    pub fn which_content(&mut self, state: &(u64, String), max: u64) -> Option<u64> {
        (1..=max).find(|&j| plan::content_size(j) == state.0 && self.content(j).1 == state.1)
    }
}

pub(super) fn step_state(k: u64) -> (u64, String) {
    let mut rec = [0u8; 24];
    let n = plan::step_record(k, &mut rec);
    (n as u64, sha_hex(&rec[..n]))
}

/// The states step k may leave `path` in when cut in the middle, besides
/// the state before it: (allowed states, whether absent is allowed).
pub(super) fn inflight_states(k: u64, path: &str, before: &Durable, c: &mut Contents) -> Vec<FileState> {
    let mut v = Vec::new();
    let f = |slot: u64| format!("/r/f{}", slot);
    match plan::action(k) {
        plan::Action::Replace { slot } if path == f(slot) => {
            // Between removing the old file and renaming the new one in.
            v.push(None);
            v.push(Some(c.content(k)));
        }
        plan::Action::Overwrite { slot } if path == f(slot) => {
            // In place when the file exists (no commit before the sync, so
            // never absent); a Replace when it does not.
            if !matches!(before.states.get(path), Some(Some(_))) {
                v.push(None);
            }
            v.push(Some(c.content(k)));
        }
        plan::Action::Delete { slot } if path == f(slot) => v.push(None),
        plan::Action::Move { slot, to } => {
            if path == f(slot) {
                v.push(None);
            }
            if path == format!("/r/d/g{}", to) {
                v.push(None);
                if let Some(moved) = before.states.get(&f(slot)) {
                    v.push(moved.clone());
                }
            }
        }
        _ => {}
    }
    if path == "/r/log" && plan::appends_log(k) {
        v.push(Some(c.log(k)));
    }
    if path == "/r/step" {
        v.push(Some(step_state(k)));
    }
    v
}

/// A file's state in an extracted tree (`path` like `/r/f3`).
pub(super) fn tree_state(root: &Path, path: &str) -> Result<FileState, String> {
    let p = root.join(path.trim_start_matches('/'));
    match std::fs::read(&p) {
        Ok(b) => Ok(Some((b.len() as u64, sha_hex(&b)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {}", p.display(), e)),
    }
}

/// The result of checking one cut's extracted tree.
#[derive(Debug, Default)]
pub struct CutCheck {
    pub problems: Vec<String>,
    pub lost_bytes: u64,
    pub notes: Vec<String>,
}

/// After a cut: every state in `d` is in the tree unless step `inflight`
/// (the one begun and not reported synced) may have changed it, and every
/// workload file holds one of the workload's contents (nothing half
/// written). `max_step` bounds the contents that may exist.
pub fn check_cut(d: &Durable, inflight: Option<u64>, root: &Path, c: &mut Contents) -> CutCheck {
    let mut out = CutCheck::default();
    // The steps that may have changed the tree since `d`: the one begun,
    // and, when the tree's own step record says later steps were synced
    // (a kill can cut the serial stream short, so their "synced" lines
    // never arrived), every step up to the one after that record. Seen in
    // a clean-clone run: the record said 49, the lines said 49 was in
    // flight, and step 50 (a move over /r/d/g0) had begun.
    let synced = d.last_step.unwrap_or(0);
    let in_tree = tree_state(root, "/r/step").ok().flatten().and_then(|s| (synced..=synced + 8).find(|&k| step_state(k) == s));
    let steps = match (inflight, in_tree) {
        (i, Some(t)) if t > synced => Some((i.unwrap_or(synced + 1).min(synced + 1), (t + 1).max(i.unwrap_or(0)))),
        (Some(i), _) => Some((i, i)),
        (None, _) => None,
    };
    for (path, want) in &d.states {
        let got = match tree_state(root, path) {
            Ok(s) => s,
            Err(e) => {
                out.problems.push(e);
                continue;
            }
        };
        if &got == want {
            continue;
        }
        let by = steps.and_then(|(lo, hi)| (lo..=hi).find(|&k| inflight_states(k, path, d, c).contains(&got)));
        if let Some(k) = by {
            out.notes.push(format!("{} changed by step {} in flight", path, k));
            continue;
        }
        let show = |s: &FileState| match s {
            Some((n, h)) => format!("{} bytes sha256 {}", n, &h[..16.min(h.len())]),
            None => String::from("absent"),
        };
        out.problems.push(format!("{}: synced as {}, found {}", path, show(want), show(&got)));
        if let Some((n, _)) = want {
            out.lost_bytes += n;
        }
    }
    // Nothing half-written: every workload file is whole.
    let max = steps.map(|(_, hi)| hi).or(d.last_step).unwrap_or(0) + 1;
    let r = root.join(plan::ROOT);
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for (sub, prefix) in [("", "/r/"), ("d", "/r/d/")] {
        if let Ok(rd) = std::fs::read_dir(r.join(sub)) {
            for e in rd.flatten() {
                if e.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    files.push((format!("{}{}", prefix, e.file_name().to_string_lossy()), e.path()));
                }
            }
        }
    }
    for (path, p) in files {
        let Ok(b) = std::fs::read(&p) else { continue };
        let state = (b.len() as u64, sha_hex(&b));
        let name = path.rsplit('/').next().unwrap_or("");
        let ok = if path == "/r/log" {
            (0..=max).any(|j| c.log(j) == state)
        } else if path == "/r/step" {
            plan::parse_step(&b).is_some_and(|k| k <= max)
        } else if path == "/r/tmp" {
            b.is_empty() || c.which_content(&state, max).is_some()
        } else if name.starts_with('f') || name.starts_with('g') {
            c.which_content(&state, max).is_some()
        } else {
            true
        };
        if !ok {
            out.problems.push(format!("{} ({} bytes) is not any content the workload writes (half-written?)", path, b.len()));
        }
    }
    out
}

/// Where the last workload line before a cut says it landed.
pub(super) fn landing(lines: &[String]) -> &'static str {
    for body in messages_of(lines, CHECKER).collect::<Vec<_>>().into_iter().rev() {
        if body.starts_with("step ") && body.ends_with(" begin") {
            return "during a step's writes";
        }
        if body.starts_with("step ") && body.ends_with(" sync") {
            return "during a commit";
        }
        if body.starts_with("synced ") {
            return "between steps";
        }
    }
    "before the workload"
}

/// The resume line of a boot.
pub(super) fn resumed(lines: &[String]) -> Option<u64> {
    messages_of(lines, CHECKER).find_map(|body| body.strip_prefix("recovery: resume after step ").and_then(|r| r.trim().parse().ok()))
}

/// The highest `step K begin` of a boot.
pub(super) fn last_begun(lines: &[String]) -> Option<u64> {
    messages_of(lines, CHECKER).filter_map(|body| body.strip_prefix("step ").and_then(|r| r.strip_suffix(" begin")).and_then(|k| k.parse().ok())).max()
}

/// What a power-cut scenario boots: the filesystem image (and a store's,
/// when the workload also puts keys), how the kernel mounts them, the
/// workload's manifest and the final check's.
struct Cuts {
    img: PathBuf,
    store_img: Option<PathBuf>,
    mounts: Vec<Mount>,
    /// Kernel lines every boot must show (the raw mounts the services use).
    expect: Vec<String>,
    disks: Vec<Disk>,
    work: String,
    last: String,
}

/// `make run-storage-writable-recovery`: power cuts under the kernel's own
/// CAPOSWF1 mount.
pub(super) fn recovery(r: &mut Run) -> Result<(), String> {
    let var = if crate::settings::input_path("RECOVERY_IMAGE").is_some() { "RECOVERY_IMAGE" } else { "WF_IMAGE" };
    let img = r.image(var, "recovery.img", &["--writable-nvme"])?;
    let fmt = detect_file(&img)?;
    if !fmt.has_fs() || fmt == Format::Ro {
        return Err(format!("{} {} is {}, not a writable filesystem", var, img.display(), fmt.word()));
    }
    // Power cuts over DISK_BUS (default NVMe).
    let bus = Bus::from_env(Bus::Nvme)?;
    let mounts = vec![Mount { name: "data", format: fmt, device: bus.guest_name(), read_only: false }];
    let disks = vec![Disk { path: img.clone(), bus }];
    let grants = || vec![("fs", String::from("fs:data"))];
    let work = manifest_text("storage-writable-recovery workload", &mounts, &[checker(CHECKER, &["--mode", "recovery"], grants())]);
    let last = manifest_text("storage-writable-recovery final check", &mounts, &[checker(CHECKER, &["--mode", "recovery", "--max-steps", "0"], grants())]);
    power_cuts(r, Cuts { img, store_img: None, mounts, expect: Vec::new(), disks, work, last })
}

/// `make run-storage-services-recovery`: the same power cuts, with the
/// workload reaching its files through storage-fs-service and putting a
/// key a step through store-service (the way `make run` serves /data and
/// the store), each over a raw mount of its own NVMe disk; both restart
/// on failure.
pub(super) fn services_recovery(r: &mut Run) -> Result<(), String> {
    let img = r.image("", "recovery-fs.img", &["--writable-nvme"])?;
    let store_img = r.image("", "recovery-store.img", &["--store", "--blocks", "4096"])?;
    let disks = vec![Disk { path: img.clone(), bus: Bus::Nvme }, Disk { path: store_img.clone(), bus: Bus::Nvme }];
    let manifest = |what: &str, args: &str| {
        format!(
            "# Generated by tools/runner/src/scenarios/storage/recovery.rs: storage-services-recovery {what}\n\
             mount data: raw on nvme0n1\nmount keys: raw on nvme1n1\n\n\
             process fs\n    binary: /boot/storage-fs-service\n    restart: on-failure\n    grant console: kernel:console\n    grant clock: kernel:clock\n    grant disk: kernel:block:data\n    export files\n\n\
             process store\n    binary: /boot/store-service\n    restart: on-failure\n    grant console: kernel:console\n    grant disk: kernel:block:keys\n    export store\n\n\
             process {CHECKER}\n    binary: /boot/{CHECKER}\n    arg: --mode\n    arg: recovery\n{args}    grant console: kernel:console\n    grant fs: process:fs/files\n    grant store: process:store/store\n"
        )
    };
    let work = manifest("workload", "");
    let last = manifest("final check", "    arg: --max-steps\n    arg: 0\n");
    let expect = vec![String::from("storage: mounted data: raw on nvme0n1"), String::from("storage: mounted keys: raw on nvme1n1")];
    power_cuts(r, Cuts { img, store_img: Some(store_img), mounts: Vec::new(), expect, disks, work, last })
}

/// Each key's value as the workload's `storing`/`stored` lines left it:
/// the last one a put returned for, and the one a put was under way for.
#[derive(Default)]
pub(super) struct StoreStates {
    /// key hex -> (durable "size=N sha256=H", in flight)
    pub(super) keys: BTreeMap<String, (Option<String>, Option<String>)>,
}

impl StoreStates {
    pub(super) fn absorb(&mut self, lines: &[String]) {
        for l in classify(lines) {
            let (Source::Process(p), body) = (l.source, l.message) else { continue };
            if p != CHECKER {
                continue;
            }
            let words: Vec<&str> = body.split(' ').collect();
            match words.as_slice() {
                ["storing", _, key, size, sha] => self.keys.entry(key.to_string()).or_default().1 = Some(format!("{size} {sha}")),
                ["stored", _, key] => {
                    let e = self.keys.entry(key.to_string()).or_default();
                    if let Some(v) = e.1.take() {
                        e.0 = Some(v);
                    }
                }
                _ => {}
            }
        }
    }

    /// Hold the host's walk of the store (`key HEX size=N sha256=H`) to
    /// them after a cut: each key's durable value, or the one in flight
    /// (which then counts as durable). Returns (problems, bytes lost).
    pub(super) fn check(&mut self, walk: &BTreeSet<String>) -> (Vec<String>, u64) {
        let (mut problems, mut lost) = (Vec::new(), 0u64);
        for (key, (durable, inflight)) in self.keys.iter_mut() {
            let has = |v: &String| walk.contains(&format!("key {key} {v}"));
            if let Some(v) = inflight.take().filter(|v| has(v)) {
                *durable = Some(v);
                continue;
            }
            if let Some(v) = durable.as_ref().filter(|v| !has(v)) {
                let size: u64 = v.strip_prefix("size=").and_then(|s| s.split(' ').next()).and_then(|n| n.parse().ok()).unwrap_or(0);
                lost += size;
                let found: Vec<&String> = walk.iter().filter(|l| l.starts_with(&format!("key {key} "))).collect();
                problems.push(format!("store key {key}: want {v} (its last put that returned), found {found:?}"));
            }
        }
        (problems, lost)
    }
}

/// Power cuts (SIGKILL of QEMU) at planned points of the recovery
/// workload; after each, fsck and the host's extract hold the images to
/// everything the workload reported durable; the next boot resumes.
fn power_cuts(r: &mut Run, setup: Cuts) -> Result<(), String> {
    let Cuts { img, store_img, mounts, expect, disks, work, last } = setup;
    let expect: Vec<&str> = expect.iter().map(String::as_str).collect();
    let mut stored = StoreStates::default();
    let mut host = r.extract(&img, "before")?.walk(true, false)?;
    // The store's keys as the host reads them: the guest's walk holds
    // both when it has a store.
    let mut host_kv = match &store_img {
        Some(s) => r.extract(s, "store-before")?.walk(false, true)?,
        None => BTreeSet::new(),
    };
    let mut durable = Durable::default();
    let mut contents = Contents::default();
    let delays = [0u64, 3, 9, 20, 35, 60, 90, 130, 180, 250];
    let (mut cuts, mut recovered, mut lost) = (0u32, 0u32, 0u64);
    // Whether the previous cut's state checked out (fsck, content); its
    // walk is checked by the boot after it.
    let mut pending: Option<bool> = None;
    let mut landed: BTreeMap<&str, u32> = BTreeMap::new();
    let started = Instant::now();
    for i in 0..=RECOVERY_CUTS {
        let final_boot = i == RECOVERY_CUTS;
        let boot = if final_boot { String::from("final") } else { format!("cut{:02}", i + 1) };
        // Every fourth cut aims at a commit (a few ms after `step K sync`),
        // the others at the writes of a step, from its start to well past it.
        let plan = if i % 4 == 3 {
            KillPlan { steps: 1 + (i as u64 % 3), mark: "sync", delay_ms: [0, 1, 2, 4, 6][(i / 4) as usize % 5] }
        } else {
            KillPlan { steps: 1 + (i as u64 % 3), mark: "begin", delay_ms: delays[i as usize % delays.len()] + (i as u64 / 10) * 7 }
        };
        let (text, kill) = if final_boot { (&last, None) } else { (&work, Some(plan)) };
        if let Some(k) = kill {
            println!("-- {}/{}: cut {} of {}: at 'step resume+{} {}', wait {} ms, SIGKILL", r.name, boot, i + 1, RECOVERY_CUTS, k.steps, k.mark, k.delay_ms);
        }
        let out = r.boot(&boot, text, &disks, kill, timeout(r, 120))?;
        // The boot after a cut mounted it and its walk equals the host's extract.
        let expected: BTreeSet<String> = host.union(&host_kv).cloned().collect();
        let walk_ok = r.check_walk(&format!("{}-walk-start", boot), &out, CHECKER, "start", &expected);
        let resume = resumed(&out.lines);
        let resume_ok = match (resume, durable.last_step) {
            (Some(got), Some(s)) => {
                let ok = got == s || got == s + 1;
                if got == s + 1 {
                    // The cut came after step s+1's sync, before its lines.
                    println!("   step {} was durable without its 'synced' lines", got);
                    durable.apply_step(got, &mut contents);
                }
                r.check(&format!("{}-resume", boot), if ok { Ok(format!("resumed after step {} (last synced {})", got, s)) } else { Err(format!("resumed after step {}, but step {} was the last synced", got, s)) });
                ok
            }
            (Some(got), None) => {
                r.pass(&format!("{}-resume", boot), &format!("resumed after step {}", got));
                true
            }
            (None, _) => {
                r.fail(&format!("{}-resume", boot), "no 'recovery: resume after step N' line");
                false
            }
        };
        if let Some(prev_ok) = pending.take() {
            if prev_ok && walk_ok && resume_ok {
                recovered += 1;
            }
        }
        stored.absorb(&out.lines);
        if final_boot {
            r.judge(&boot, &out, &mounts, &[CHECKER], &expect);
            break;
        }
        cuts += 1;
        if !out.killed {
            let why = if out.timed_out { String::from("timed out before the planned cut") } else { format!("QEMU ended on its own (exit {:?}) before the planned cut", out.exit) };
            r.fail(&format!("{}-cut", boot), &why);
            r.judge_lines(&boot, &out, &mounts, &[CHECKER], &expect, false);
            pending = Some(false);
            if let Some((_, h)) = r.host_state(&format!("after-{}", boot), &img, true, false) {
                host = h;
            }
            if let Some(s) = &store_img {
                if let Some((_, h)) = r.host_state(&format!("after-{}-store", boot), s, false, true) {
                    host_kv = h;
                }
            }
            durable.absorb(&out.lines, &mut contents);
            continue;
        }
        let land = landing(&out.lines);
        *landed.entry(land).or_default() += 1;
        let resumed_at = out.lines.iter().position(|l| l.contains("recovery: resume after step")).map(|i| out.stamps[i]).unwrap_or(0.0);
        let ran = out.stamps.last().copied().unwrap_or(0.0) - resumed_at;
        r.pass(&format!("{}-cut", boot), &format!("SIGKILL {} ms after 'step {} {}' ({}; the workload ran {:.1} s)", plan.delay_ms, resume.unwrap_or(0) + plan.steps, plan.mark, land, ran));
        r.judge_lines(&boot, &out, &mounts, &[CHECKER], &expect, false);
        durable.absorb(&out.lines, &mut contents);
        let store_ok = match &store_img {
            None => true,
            Some(s) => {
                let fsck_ok = r.fsck(&format!("after-{}-store-fsck", boot), s);
                let walk = r.extract(s, &format!("after-{}-store", boot)).and_then(|x| x.walk(false, true));
                match walk {
                    Ok(w) => {
                        let (problems, bytes) = stored.check(&w);
                        host_kv = w;
                        lost += bytes;
                        let what = format!("after-{}-store-durable", boot);
                        if problems.is_empty() {
                            r.pass(&what, &format!("{} keys hold their last returned put (or the one under way)", stored.keys.len()));
                        } else {
                            for p in &problems {
                                println!("   {}", p);
                            }
                            r.fail(&what, &format!("{} keys lost their last returned put; {} bytes", problems.len(), bytes));
                        }
                        fsck_ok && problems.is_empty()
                    }
                    Err(e) => {
                        r.fail(&format!("after-{}-store-extract", boot), &e);
                        false
                    }
                }
            }
        };
        let begun = last_begun(&out.lines);
        let inflight = match (begun, durable.last_step) {
            (Some(b), Some(s)) if b > s => Some(b),
            _ => None,
        };
        let fsck_ok = r.fsck(&format!("after-{}-fsck", boot), &img);
        let ex = r.extract(&img, &format!("after-{}", boot));
        let content_ok = match ex {
            Ok(x) => {
                match x.walk(true, false) {
                    Ok(h) => host = h,
                    Err(e) => r.fail(&format!("after-{}-extract", boot), &e),
                }
                let root = x.fs.clone().unwrap_or_default();
                let c = check_cut(&durable, inflight, &root, &mut contents);
                lost += c.lost_bytes;
                for n in &c.notes {
                    println!("   {}", n);
                }
                let w = format!("after-{}-durable", boot);
                if c.problems.is_empty() {
                    r.pass(&w, &format!("{} synced states present (last synced step {:?}, in flight {:?}); every workload file whole", durable.states.len(), durable.last_step, inflight));
                    true
                } else {
                    for p in &c.problems {
                        println!("   {}", p);
                    }
                    r.fail(&w, &format!("{} problems (above); {} synced bytes lost", c.problems.len(), c.lost_bytes));
                    false
                }
            }
            Err(e) => {
                r.fail(&format!("after-{}-extract", boot), &e);
                false
            }
        };
        pending = Some(fsck_ok && content_ok && store_ok);
    }
    let summary = format!("power cuts: {}, recovered: {}, synced bytes lost: {}", cuts, recovered, lost);
    println!("{}", summary);
    let where_: Vec<String> = landed.iter().map(|(k, v)| format!("{} {}", v, k)).collect();
    println!("-- {}: cuts landed: {}; {:.0} s", r.name, where_.join(", "), started.elapsed().as_secs_f64());
    r.check("power-cuts", if lost == 0 && recovered == cuts && cuts >= RECOVERY_CUTS { Ok(summary) } else { Err(format!("{} (want every cut recovered, at least {}, and 0 bytes lost)", summary, RECOVERY_CUTS)) });
    Ok(())
}
