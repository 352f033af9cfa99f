//! The storage scenarios: the kernel's Directory, File and Store
//! capabilities over real disks (virtio-blk `vblk0`, NVMe `nvme0n1`),
//! driven by the guest checker `demos/storage-check` and judged against
//! the host's own reading of the same disk.
//!
//! Each scenario takes its image from a make variable (RO_IMAGE, WF_IMAGE,
//! STORE_IMAGE, HOSTILE_IMAGE, RECOVERY_IMAGE) or builds a small one with
//! `mkstore-image` from seed trees written at run time. A user's image is
//! copied into target/scenarios/ first and never written, unless
//! STORAGE_IN_PLACE=1 says to boot the file itself.
//!
//! Every boot gets a generated manifest (mounts and grants written to
//! target/scenarios/SCENARIO/BOOT.manifest, compiled by mkmanifest like
//! the other userspace boots). After a boot the runner runs `mkstore-image
//! fsck` and `mkstore-image extract` on the disk and compares the guest's
//! walk lines (`dir`, `file`, `key`, see demos/storage-check/src/walk.rs)
//! with its own walk of the extracted tree and `store.kv`: the two sets of
//! lines must be equal, and a difference prints the lines each side alone
//! has.
//!
//! `storage-writable-recovery` cuts the power (SIGKILL to QEMU) at least
//! 20 times at planned points of the guest's write workload and checks,
//! after each cut, that fsck is clean, the next boot's walk equals the
//! host's extract, every state the guest reported `synced` is still there
//! unless a step in flight at the cut may have changed it, and no file of
//! the workload holds anything but one of the contents the workload writes
//! (plan.rs, shared with the guest, says which).

use crate::build::Artifacts;
use crate::qemu::{self, Firmware, MachineOverride, Tally};
use crate::source::{classify, count_verdicts, messages_of, Classifier, Line, Pattern, Source};
use crate::Settings;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod block_cap;

/// The guest's content and workload plans (the same file it builds with).
#[allow(dead_code)]
#[path = "../../../demos/storage-check/src/plan.rs"]
mod plan;

/// The process name (and boot module) of the guest checker.
const CHECKER: &str = "storage-check";
/// Power cuts the recovery scenario makes.
pub const RECOVERY_CUTS: u32 = 20;

pub struct StorageScenario {
    pub name: &'static str,
    pub description: &'static str,
    run: fn(&mut Run) -> Result<(), String>,
}

pub fn all() -> Vec<StorageScenario> {
    vec![
        StorageScenario {
            name: "storage-readonly",
            description: "read-only storage: CAPOSRO1 (RO_IMAGE) over virtio-blk and NVMe, a writable disk through fs-ro/store-ro and a read-only mount; every mutation refused, walks == host extract",
            run: readonly,
        },
        StorageScenario {
            name: "storage-writable",
            description: "CAPOSWF1 (WF_IMAGE): create/write/read/stat/truncate/rename/remove/sync, reboot, everything persisted; fsck clean, walks == host extract",
            run: writable,
        },
        StorageScenario {
            name: "storage-writable-recovery",
            description: "CAPOSWF1 (RECOVERY_IMAGE or WF_IMAGE): 20 power cuts (SIGKILL) during a write workload; fsck clean, walk == extract, no synced byte lost, nothing half-written",
            run: recovery,
        },
        StorageScenario {
            name: "storage-services-recovery",
            description: "20 power cuts (SIGKILL) during a write workload through storage-fs-service and store-service (raw NVMe mounts); fsck of both images clean, walk == extract, no synced byte or returned put lost",
            run: services_recovery,
        },
        StorageScenario {
            name: "storage-persist",
            description: "CAPOSST1 store (STORE_IMAGE; default a store alone and a co-located disk): put/get/has/delete/list, compaction, reboot, every value intact",
            run: persist,
        },
        StorageScenario {
            name: "storage-fat-read",
            description: "read-only FAT (FAT_IMAGE, default from tools/mkstorage-fat-read-image) over virtio-blk: walk == mtools' view with times, every mutation refused",
            run: fat_read_virtio,
        },
        StorageScenario {
            name: "cloud-provider-fat-read-over-nvme",
            description: "the same FAT reading over NVMe (as a cloud provider attaches disks)",
            run: fat_read_nvme,
        },
        StorageScenario {
            name: "storage-hostile",
            description: "hostile storage requests (HOSTILE_IMAGE): bad names, huge offsets and lengths, a full disk, stale and closed handles, rename cycles; a second client still works; no kernel panic",
            run: hostile,
        },
        StorageScenario {
            name: "block-cap",
            description: "BlockDevice over a raw mount of a GPT partition (by number, then by type GUID): write/flush/read back at the first, middle and last blocks and through CapBlockDevice; refusals by code; block-ro reads but cannot write; the image holds the pattern at partition start + LBA and nothing else changed; the same partition by number and by type refused at mount time",
            run: block_cap::run,
        },
    ]
}

/// Run one scenario, its failures counted in `t`.
pub fn run_scenario(s: &Settings, art: &Artifacts, fw: &Firmware, sc: &StorageScenario, t: &mut Tally) {
    let dir = s.out_dir.join(sc.name);
    println!("== scenario {}: {}", sc.name, sc.description);
    let started = Instant::now();
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return t.fail(sc.name, &format!("{}: {}", dir.display(), e));
    }
    let mut run = Run { s, art, fw, dir, t, name: sc.name, tool: None, volumes: HashMap::new(), icount: false };
    if let Err(e) = (sc.run)(&mut run) {
        run.t.fail(sc.name, &e);
    }
    println!("-- {}: {:.0} s", sc.name, started.elapsed().as_secs_f64());
}

// ------------------------------------------------------------ formats

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

fn detect_file(path: &Path) -> Result<Format, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut head = [0u8; 512];
    f.read_exact(&mut head).map_err(|e| format!("{}: {}", path.display(), e))?;
    detect(&head, len).map_err(|e| format!("{}: {}", path.display(), e))
}

pub use crate::bus::Bus;

struct Disk {
    path: PathBuf,
    bus: Bus,
}

/// QEMU arguments for `disks` (at most one per bus, so the names are
/// nvme0n1 and vblk0).
fn disk_args(disks: &[Disk]) -> Vec<String> {
    let mut a = Vec::new();
    for (i, d) in disks.iter().enumerate() {
        let id = format!("storage{}", i);
        a.push("-drive".into());
        a.push(format!("if=none,id={},format=raw,file={}", id, d.path.display()));
        a.extend(d.bus.device_args(&id, &id, false));
    }
    a
}

// ------------------------------------------------------------ manifests

struct Mount {
    name: &'static str,
    format: Format,
    device: &'static str,
    read_only: bool,
}

struct Proc {
    name: &'static str,
    args: Vec<String>,
    /// (grant name, kernel source).
    grants: Vec<(&'static str, String)>,
}

fn checker(name: &'static str, args: &[&str], grants: Vec<(&'static str, String)>) -> Proc {
    Proc { name, args: args.iter().map(|a| a.to_string()).collect(), grants }
}

fn manifest_text(what: &str, mounts: &[Mount], procs: &[Proc]) -> String {
    let mut t = format!("# Generated by tools/runner/src/storage.rs: {}\n", what);
    for m in mounts {
        t.push_str(&format!("mount {}: {} on {}{}\n", m.name, m.format.word(), m.device, if m.read_only { " read-only" } else { "" }));
    }
    for p in procs {
        t.push_str(&format!("\nprocess {}\n    binary: /boot/{}\n", p.name, CHECKER));
        for a in &p.args {
            t.push_str(&format!("    arg: {}\n", a));
        }
        t.push_str("    grant console: kernel:console\n");
        for (n, src) in &p.grants {
            t.push_str(&format!("    grant {}: kernel:{}\n", n, src));
        }
    }
    t
}

/// Grants of `fs` / `store` (or the names given) for what `format` holds.
fn grants_for(format: Format, mount: &str, fs_name: &'static str, store_name: &'static str, fs_src: &str, store_src: &str) -> Vec<(&'static str, String)> {
    let mut g = Vec::new();
    if format.has_fs() {
        g.push((fs_name, format!("{}:{}", fs_src, mount)));
    }
    if format.has_store() {
        g.push((store_name, format!("{}:{}", store_src, mount)));
    }
    g
}

// ------------------------------------------------------------ walks

/// A path component as both walks print it: bytes outside printable ASCII,
/// and `%`, as `%XX`: `capos_storage::name::percent_escape`, which the
/// guest's walk (demos/storage-check) prints with too.
pub fn escape_name(name: &[u8]) -> String {
    capos_storage::name::percent_escape(name)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

fn sha_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// The walk lines of an extracted directory tree: `dir /`, `dir /a`,
/// `file /a/b size=N sha256=HEX`.
pub fn host_fs_walk(root: &Path) -> Result<BTreeSet<String>, String> {
    host_fs_walk_times(root).map(|(lines, _)| lines)
}

/// [`host_fs_walk`], and each file's modification time (Unix seconds) by
/// walk path.
pub fn host_fs_walk_times(root: &Path) -> Result<(BTreeSet<String>, BTreeMap<String, i64>), String> {
    let mut times = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut stack = vec![(root.to_path_buf(), String::from("/"))];
    while let Some((dir, path)) = stack.pop() {
        out.insert(format!("dir {}", path));
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
        for e in rd {
            let e = e.map_err(|e| e.to_string())?;
            let child = if path == "/" { format!("/{}", escape_name(e.file_name().as_bytes())) } else { format!("{}/{}", path, escape_name(e.file_name().as_bytes())) };
            let ft = e.file_type().map_err(|e| e.to_string())?;
            if ft.is_dir() {
                stack.push((e.path(), child));
            } else if ft.is_file() {
                let bytes = std::fs::read(e.path()).map_err(|er| format!("{}: {}", e.path().display(), er))?;
                out.insert(format!("file {} size={} sha256={}", child, bytes.len(), sha_hex(&bytes)));
                if let Ok(m) = e.metadata() {
                    use std::os::unix::fs::MetadataExt;
                    times.insert(child.clone(), m.mtime());
                }
            } else {
                return Err(format!("{}: neither a file nor a directory", e.path().display()));
            }
        }
    }
    Ok((out, times))
}

/// `%XX`-unescape one field of a store.kv line (tools/mkstore-image/src/kv_file.rs).
pub fn kv_unescape(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = text.get(i + 1..i + 3).ok_or_else(|| format!("truncated escape in {:?}", text))?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| format!("bad escape %{}", h))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The walk lines of a store.kv file: `key HEXKEY size=N sha256=HEX`.
pub fn host_kv_walk(text: &str) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('\t').ok_or_else(|| format!("store.kv line {}: no tab", n + 1))?;
        let (k, v) = (kv_unescape(k)?, kv_unescape(v)?);
        out.insert(format!("key {} size={} sha256={}", hex(&k), v.len(), sha_hex(&v)));
    }
    Ok(out)
}

/// One walk a guest process printed.
#[derive(Debug, Default)]
pub struct GuestWalk {
    pub process: String,
    pub label: String,
    pub lines: BTreeSet<String>,
    /// Whether its `walk end` line came, with counts that match the lines.
    pub problems: Vec<String>,
}

/// The walks in a boot's serial lines, by process and label.
pub fn guest_walks(lines: &[String]) -> Vec<GuestWalk> {
    let mut done = Vec::new();
    let mut open: BTreeMap<String, GuestWalk> = BTreeMap::new();
    for l in classify(lines) {
        let (Source::Process(p), body) = (l.source, l.message) else { continue };
        if let Some(label) = body.strip_prefix("walk begin ") {
            if let Some(mut w) = open.remove(&p) {
                w.problems.push(String::from("no 'walk end' line"));
                done.push(w);
            }
            open.insert(p.clone(), GuestWalk { process: p, label: label.trim().to_string(), ..Default::default() });
        } else if let Some(rest) = body.strip_prefix("walk end ") {
            let Some(mut w) = open.remove(&p) else { continue };
            let mut parts = rest.split_whitespace();
            if parts.next() != Some(w.label.as_str()) {
                w.problems.push(format!("'walk end {}' closes walk '{}'", rest, w.label));
            }
            let count = |k: &str| w.lines.iter().filter(|x| x.starts_with(k)).count() as u64;
            let want = [("dirs=", count("dir ")), ("files=", count("file ")), ("keys=", count("key "))];
            for part in parts {
                if let Some((name, n)) = want.iter().find(|(n, _)| part.starts_with(n)) {
                    let said: Option<u64> = part[name.len()..].parse().ok();
                    if said != Some(*n) {
                        w.problems.push(format!("'walk end' says {} but {} such lines arrived", part, n));
                    }
                }
            }
            done.push(w);
        } else if body.starts_with("dir ") || body.starts_with("file ") || body.starts_with("key ") {
            if let Some(w) = open.get_mut(&p) {
                if !w.lines.insert(body.to_string()) {
                    w.problems.push(format!("line twice: {}", body));
                }
            }
        }
    }
    for (_, mut w) in open {
        w.problems.push(String::from("no 'walk end' line"));
        done.push(w);
    }
    done
}

/// Exactly the same lines on both sides; otherwise the lines each side
/// alone has (at most 25 each).
pub fn compare(guest: &BTreeSet<String>, host: &BTreeSet<String>) -> Result<usize, Vec<String>> {
    if guest == host {
        return Ok(guest.len());
    }
    let mut d = Vec::new();
    let g: Vec<&String> = guest.difference(host).collect();
    let h: Vec<&String> = host.difference(guest).collect();
    for l in g.iter().take(25) {
        d.push(format!("guest only: {}", l));
    }
    if g.len() > 25 {
        d.push(format!("guest only: ... {} more", g.len() - 25));
    }
    for l in h.iter().take(25) {
        d.push(format!("host only:  {}", l));
    }
    if h.len() > 25 {
        d.push(format!("host only:  ... {} more", h.len() - 25));
    }
    Err(d)
}

/// What `mkstore-image extract` wrote: a tree, a store.kv, or both.
pub struct Extracted {
    pub fs: Option<PathBuf>,
    pub kv: Option<PathBuf>,
}

impl Extracted {
    /// Recognize extract's output at `out`.
    pub fn at(out: &Path) -> Extracted {
        if out.is_file() {
            Extracted { fs: None, kv: Some(out.to_path_buf()) }
        } else if out.join("store.kv").is_file() && out.join("fs").is_dir() {
            Extracted { fs: Some(out.join("fs")), kv: Some(out.join("store.kv")) }
        } else {
            Extracted { fs: Some(out.to_path_buf()), kv: None }
        }
    }

    /// The host's walk lines of the parts asked for.
    pub fn walk(&self, fs: bool, kv: bool) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        if fs {
            if let Some(p) = &self.fs {
                out.extend(host_fs_walk(p)?);
            }
        }
        if kv {
            if let Some(p) = &self.kv {
                let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {}", p.display(), e))?;
                out.extend(host_kv_walk(&text)?);
            }
        }
        Ok(out)
    }
}

// ------------------------------------------------------------ seeds

/// A small tree with the awkward cases a walk must handle: nesting, an
/// empty file and directory, names with spaces, `%`, non-ASCII.
fn seed_tree(dir: &Path, variant: u64) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("hello.txt", b"hello from the host seed tree\n".to_vec()),
        ("empty", Vec::new()),
        ("docs/readme.md", b"# capOS storage seed\n\nA small tree for the storage scenarios.\n".repeat(20)),
        ("docs/deep/nested/leaf.bin", bytes(variant * 10 + 1, 100_000)),
        ("name with spaces.txt", b"spaces\n".to_vec()),
        ("percent%sign", b"%%\n".to_vec()),
        ("unicod\u{e9}-\u{540d}\u{524d}.txt", "caf\u{e9}\n".as_bytes().to_vec()),
        ("big.bin", bytes(variant * 10 + 2, 300_000)),
    ];
    for (p, b) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, b).map_err(|e| format!("{}: {}", path.display(), e))?;
    }
    std::fs::create_dir_all(dir.join("emptydir")).map_err(|e| e.to_string())
}

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    plan::fill(seed, 0, &mut v);
    v
}

/// A store.kv seed: plain keys, escaped bytes, an empty value, a large one.
fn seed_kv(path: &Path) -> Result<(), String> {
    let big: String = bytes(77, 20_000).iter().map(|b| format!("%{:02X}", b)).collect();
    let text = format!(
        "# seed for the storage scenarios\nalpha\tone\nbeta\t\nkey with spaces\tvalue with spaces\n%00binary%FFkey\t%01%02%03\nbig\t{}\n",
        big
    );
    std::fs::write(path, text).map_err(|e| format!("{}: {}", path.display(), e))
}

// ------------------------------------------------------------ running

/// How the recovery scenario cuts a boot: when the guest prints `step K
/// MARK` for K the `steps`-th step past the one it resumed from (MARK
/// `begin`: the step's writes start; `sync`: its commit starts), wait
/// `delay_ms`, SIGKILL.
#[derive(Clone, Copy, Debug)]
struct KillPlan {
    steps: u64,
    mark: &'static str,
    delay_ms: u64,
}

struct BootOut {
    lines: Vec<String>,
    /// Seconds since QEMU started, per line.
    stamps: Vec<f64>,
    exit: Option<i32>,
    timed_out: bool,
    /// SIGKILLed as planned.
    killed: bool,
}

struct Run<'a> {
    s: &'a Settings,
    art: &'a Artifacts,
    fw: &'a Firmware,
    dir: PathBuf,
    t: &'a mut Tally,
    name: &'static str,
    tool: Option<PathBuf>,
    /// Boot volumes already written, by manifest text.
    volumes: HashMap<String, PathBuf>,
    /// Boot with `-icount shift=ICOUNT_SHIFT` (time follows executed
    /// instructions, whatever the host's load) and hold the kernel's
    /// longest interrupts-off span in a capability call to
    /// [`CAP_CALL_IRQ_OFF_BOUND`].
    icount: bool,
}

/// Under `-icount shift=5` every executed instruction advances the
/// guest's clock by 2^5 ns, and the TSC (1 GHz there) by 32 ticks: a span
/// in ticks is 32 times the instructions executed in it. (shift=0 would
/// make ticks instructions, but firmware's delay loops then take 35 s.)
const ICOUNT_SHIFT: u32 = 5;

/// The bound on the kernel's longest interrupts-off span in a capability
/// call, in executed instructions: 100,000, about 25 times what a 1 MiB
/// BlockDevice or File call keeps interrupts off for now (the call runs
/// with them on past its checks), and a fraction of what one with its
/// 1 MiB bulk buffer copied with them off took (docs/interrupts-off.md
/// has the figures).
const CAP_CALL_IRQ_OFF_BOUND: u64 = 100_000;

/// The kernel's `interrupts off, capability calls: longest span N TSC
/// ticks ...` line: N, or why not.
fn cap_call_irq_off_span(lines: &[String]) -> Result<u64, String> {
    let prefix = "interrupts off, capability calls: longest span ";
    let Some(rest) = lines.iter().rev().find_map(|l| l.split_once(prefix).map(|(_, r)| r.to_string())) else {
        return Err(format!("the kernel never printed '{prefix}N TSC ticks ...'"));
    };
    rest.split(' ').next().and_then(|n| n.parse().ok()).ok_or_else(|| format!("cannot read the figure in '{prefix}{rest}'"))
}

fn env(key: &str) -> Option<String> {
    std::env::var(key).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

impl Run<'_> {
    fn label(&self, what: &str) -> String {
        format!("{}/{}", self.name, what)
    }

    fn pass(&mut self, what: &str, detail: &str) {
        let l = self.label(what);
        self.t.pass(&l, detail);
    }

    fn fail(&mut self, what: &str, detail: &str) {
        let l = self.label(what);
        self.t.fail(&l, detail);
    }

    fn check(&mut self, what: &str, r: Result<String, String>) -> bool {
        match r {
            Ok(d) => {
                self.pass(what, &d);
                true
            }
            Err(e) => {
                self.fail(what, &e);
                false
            }
        }
    }

    fn tool(&mut self) -> Result<PathBuf, String> {
        if let Some(t) = &self.tool {
            return Ok(t.clone());
        }
        let t = crate::disk::build_mkstore_image(&self.s.root)?;
        self.tool = Some(t.clone());
        Ok(t)
    }

    /// Run mkstore-image with `args`: (success, stdout + stderr).
    fn mkstore(&mut self, args: &[&str]) -> Result<(bool, String), String> {
        let tool = self.tool()?;
        let out = Command::new(&tool)
            .args(args)
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .output()
            .map_err(|e| format!("{}: {}", tool.display(), e))?;
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        Ok((out.status.success(), text))
    }

    /// A disk image: the user's (from `var`, copied unless
    /// STORAGE_IN_PLACE=1) or one built by `mkstore-image ARGS -o FILE`
    /// (always built when `var` is empty).
    fn image(&mut self, var: &str, file: &str, build: &[&str]) -> Result<PathBuf, String> {
        let out = self.dir.join(file);
        if let Some(user) = if var.is_empty() { None } else { crate::scenarios::input_path(var) } {
            // Opened here, so a missing or unreadable image is named with
            // the reason, before anything is built or booted.
            match std::fs::File::open(&user).and_then(|f| f.metadata()) {
                Ok(m) if m.is_file() => {}
                Ok(_) => return Err(format!("cannot use {} {}: not a regular file", var, user.display())),
                Err(e) => return Err(format!("cannot read {} {}: {}", var, user.display(), e)),
            }
            if env("STORAGE_IN_PLACE").as_deref() == Some("1") {
                println!("-- {}: {}={} booted in place (STORAGE_IN_PLACE=1)", self.name, var, user.display());
                return Ok(user);
            }
            std::fs::copy(&user, &out).map_err(|e| format!("copying {}: {}", user.display(), e))?;
            println!("-- {}: {}={} copied to {}", self.name, var, user.display(), out.display());
            return Ok(out);
        }
        let _ = std::fs::remove_file(&out);
        let o = out.to_str().ok_or("non-UTF-8 path")?.to_string();
        let mut args: Vec<&str> = build.to_vec();
        args.extend(["-o", &o]);
        let (ok, text) = self.mkstore(&args)?;
        if !ok {
            return Err(format!("mkstore-image {}: {}", args.join(" "), text.trim()));
        }
        println!("-- {}: built {} with mkstore-image {}", self.name, out.display(), build.join(" "));
        Ok(out)
    }

    fn path_str(&self, p: &Path) -> Result<String, String> {
        p.to_str().map(String::from).ok_or_else(|| format!("{}: not UTF-8", p.display()))
    }

    /// `mkstore-image fsck IMG` must be clean: a verdict line.
    fn fsck(&mut self, what: &str, img: &Path) -> bool {
        let p = match self.path_str(img) {
            Ok(p) => p,
            Err(e) => {
                self.fail(what, &e);
                return false;
            }
        };
        let r = self.mkstore(&["fsck", &p]).and_then(|(ok, text)| if ok { Ok(format!("mkstore-image fsck clean: {}", first_line(&text))) } else { Err(format!("mkstore-image fsck: {}", text.trim().replace('\n', " | "))) });
        self.check(what, r)
    }

    /// `mkstore-image extract IMG OUT` into a fresh OUT named `tag`.
    fn extract(&mut self, img: &Path, tag: &str) -> Result<Extracted, String> {
        let out = self.dir.join(format!("extract-{}", tag));
        if out.is_dir() {
            std::fs::remove_dir_all(&out).map_err(|e| format!("{}: {}", out.display(), e))?;
        } else if out.exists() {
            std::fs::remove_file(&out).map_err(|e| format!("{}: {}", out.display(), e))?;
        }
        let (i, o) = (self.path_str(img)?, self.path_str(&out)?);
        let (ok, text) = self.mkstore(&["extract", &i, &o])?;
        if !ok {
            return Err(format!("mkstore-image extract {}: {}", i, text.trim().replace('\n', " | ")));
        }
        Ok(Extracted::at(&out))
    }

    /// fsck and extract `img` after a boot, and the host's walk of the
    /// parts the guest holds.
    fn host_state(&mut self, what: &str, img: &Path, fs: bool, kv: bool) -> Option<(Extracted, BTreeSet<String>)> {
        self.fsck(&format!("{}-fsck", what), img);
        match self.extract(img, what).and_then(|x| x.walk(fs, kv).map(|w| (x, w))) {
            Ok(v) => Some(v),
            Err(e) => {
                self.fail(&format!("{}-extract", what), &e);
                None
            }
        }
    }

    /// Boot the checker processes of `manifest` with `disks`, streaming
    /// the serial log; with `kill`, SIGKILL QEMU at the planned point.
    fn boot(&mut self, name: &str, manifest: &str, disks: &[Disk], kill: Option<KillPlan>, timeout_secs: u64) -> Result<BootOut, String> {
        let mpath = self.dir.join(format!("{}.manifest", name));
        std::fs::write(&mpath, manifest).map_err(|e| format!("{}: {}", mpath.display(), e))?;
        // Boots with the same manifest share one boot volume (the
        // recovery scenario boots the same one twenty times).
        let esp = match self.volumes.get(manifest) {
            Some(p) => p.clone(),
            None => {
                let mstr = self.path_str(&mpath)?;
                let volume = crate::userspace::volume(self.s, self.art, &mstr, "exit_when_idle")?;
                let esp = self.dir.join(format!("{}.esp.img", name));
                volume.write(&esp)?;
                self.volumes.insert(manifest.to_string(), esp.clone());
                esp
            }
        };
        let vars = self.dir.join(format!("{}.vars.fd", name));
        let mut cmd = qemu::qemu_command(self.s, &MachineOverride::default(), self.fw, &esp, &vars, &disk_args(disks))?;
        if self.icount {
            cmd.args(["-icount".to_string(), format!("shift={ICOUNT_SHIFT}")]);
        }
        cmd.args(["-chardev", "stdio,id=serial0,signal=off", "-serial", "chardev:serial0", "-monitor", "none"]);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let log_path = self.dir.join(format!("{}.log", name));
        let mut log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {}", log_path.display(), e))?;
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        println!("== {}/{}: qemu {} (log: {})", self.name, name, args.join(" "), log_path.display());
        let mut child = cmd.spawn().map_err(|e| format!("cannot start qemu-system-x86_64: {}", e))?;
        let _stdin = child.stdin.take();
        let (tx, rx) = mpsc::channel();
        qemu::spawn_reader(child.stdout.take().ok_or("qemu has no stdout")?, tx);
        let (etx, erx) = mpsc::channel();
        qemu::spawn_reader(child.stderr.take().ok_or("qemu has no stderr")?, etx);

        let started = Instant::now();
        let deadline = started + Duration::from_secs(timeout_secs);
        let mut lines = Vec::new();
        let mut stamps = Vec::new();
        let mut partial: Vec<u8> = Vec::new();
        let mut target: Option<u64> = None;
        let mut kill_at: Option<Instant> = None;
        let (mut killed, mut timed_out) = (false, false);
        let mut drain_until: Option<Instant> = None;
        let mut classifier = Classifier::default();
        loop {
            let now = Instant::now();
            let mut wake = drain_until.unwrap_or(deadline);
            if let Some(k) = kill_at {
                wake = wake.min(k);
            }
            if now >= wake {
                if let (Some(k), false) = (kill_at, killed) {
                    if now >= k {
                        // The power cut: SIGKILL, no clean exit.
                        let _ = child.kill();
                        killed = true;
                        drain_until = Some(now + Duration::from_secs(5));
                        let _ = writeln!(log, "runner: SIGKILL sent to QEMU");
                        continue;
                    }
                }
                if drain_until.is_none() {
                    timed_out = true;
                    let _ = child.kill();
                }
                break;
            }
            match rx.recv_timeout(wake - now) {
                Ok(Some(chunk)) => {
                    partial.extend_from_slice(&chunk);
                    while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                        let raw: Vec<u8> = partial.drain(..=pos).collect();
                        let line = qemu::strip_ansi(&String::from_utf8_lossy(&raw[..raw.len() - 1]));
                        println!("{}", line);
                        let _ = writeln!(log, "{}", line);
                        if let (Some(plan), false) = (kill, killed) {
                            if let Line { source: Source::Process(p), message: body, .. } = classifier.line(&line) {
                                if p == CHECKER {
                                    if let Some(r) = body.strip_prefix("recovery: resume after step ").and_then(|r| r.trim().parse::<u64>().ok()) {
                                        target = Some(r + plan.steps);
                                    }
                                    if target.is_some_and(|t| body == format!("step {} {}", t, plan.mark)) && kill_at.is_none() {
                                        kill_at = Some(Instant::now() + Duration::from_millis(plan.delay_ms));
                                    }
                                }
                            }
                        }
                        lines.push(line);
                        stamps.push(started.elapsed().as_secs_f64());
                    }
                }
                Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
        }
        if !partial.is_empty() {
            let line = qemu::strip_ansi(&String::from_utf8_lossy(&partial));
            println!("{}", line);
            let _ = writeln!(log, "{}", line);
            lines.push(line);
            stamps.push(started.elapsed().as_secs_f64());
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        let mut err = Vec::new();
        while let Ok(Some(chunk)) = erx.recv_timeout(Duration::from_millis(200)) {
            err.extend_from_slice(&chunk);
        }
        for l in String::from_utf8_lossy(&err).lines() {
            println!("qemu: {}", l);
            let _ = writeln!(log, "qemu: {}", l);
        }
        let exit = if timed_out || killed { None } else { status.code() };
        println!("-- {}/{}: {:.1} s{}", self.name, name, started.elapsed().as_secs_f64(), when(&lines, &stamps));
        Ok(BootOut { lines, stamps, exit, timed_out, killed })
    }

    /// The judgement of a boot that ran to its end: exit, mounts, each
    /// process exiting 0, the guest's own verdicts, nothing forbidden.
    fn judge(&mut self, boot: &str, out: &BootOut, mounts: &[Mount], procs: &[&str], kernel_expect: &[&str]) {
        let what = format!("{}-exit", boot);
        if out.timed_out {
            self.fail(&what, "timed out (a timeout is a failure)");
        } else if out.exit == Some(qemu::EXIT_KERNEL_SUCCESS) {
            self.pass(&what, "exit status 33 (kernel success)");
        } else {
            self.fail(&what, &format!("exit status {:?}, want 33 (kernel success)", out.exit));
        }
        self.judge_lines(boot, out, mounts, procs, kernel_expect, true);
    }

    fn judge_lines(&mut self, boot: &str, out: &BootOut, mounts: &[Mount], procs: &[&str], kernel_expect: &[&str], exits: bool) {
        let lines = classify(&out.lines);
        for m in mounts {
            let want = format!("storage: mounted {}: {} on {}", m.name, m.format.word(), m.device);
            let seen = Pattern::parse(&want).find(&lines).is_some();
            let w = format!("{}-mount-{}", boot, m.name);
            if seen {
                self.pass(&w, &format!("saw '{}'", want));
            } else {
                self.fail(&w, &format!("never saw '{}'", want));
            }
        }
        for k in kernel_expect {
            let seen = Pattern::parse(k).find(&lines).is_some();
            let w = format!("{}-kernel-line", boot);
            if seen {
                self.pass(&w, &format!("saw '{}'", k));
            } else {
                self.fail(&w, &format!("never saw '{}'", k));
            }
        }
        for bad in ["KERNEL PANIC", "EXCEPTION (unexpected)", "userspace not started", "EXCEPTION (in user mode)"] {
            if let Some(l) = Pattern::parse(bad).find(&lines) {
                let l = l.raw.to_string();
                self.fail(&format!("{}-forbidden", boot), &format!("saw '{}' in: {}", bad, l));
            }
        }
        if exits && self.icount {
            let w = format!("{}-interrupts-off", boot);
            // Printed, not yet held to CAP_CALL_IRQ_OFF_BOUND: the calls that
            // would meet it (interrupts on past their checks) lost a synced
            // write under kills on several CPUs (docs/interrupts-off.md).
            // That the figure is printed and readable is checked.
            match cap_call_irq_off_span(&out.lines).map(|ticks| ticks >> ICOUNT_SHIFT) {
                Ok(n) => self.pass(&w, &format!("longest interrupts-off span in a capability call: {n} instructions (the bound of {CAP_CALL_IRQ_OFF_BOUND} is not held yet)")),
                Err(e) => self.fail(&w, &e),
            }
        }
        for p in procs {
            let v = count_verdicts(&lines, &[Source::Process(p.to_string())]);
            let (gp, gf) = (v.passed, v.failed);
            self.t.passed += gp;
            self.t.failed += gf;
            println!("-- {}/{}: {} reported {} passed, {} failed", self.name, boot, p, gp, gf);
            if exits {
                let w = format!("{}-{}-status", boot, p);
                let prefix = format!("process {} (pid ", p);
                match lines.iter().find(|l| l.source == Source::Kernel && l.raw.contains(&prefix) && (l.raw.contains(" exited with status ") || l.raw.contains(" killed"))) {
                    Some(l) if l.raw.ends_with("exited with status 0") => {
                        let l = l.raw.to_string();
                        self.pass(&w, &l)
                    }
                    Some(l) => {
                        let l = l.raw.to_string();
                        self.fail(&w, &l)
                    }
                    None => self.fail(&w, &format!("no line '{}N) exited with status 0'", prefix)),
                }
            }
        }
    }

    /// The walk `label` of `process` must equal the host's lines.
    fn check_walk(&mut self, what: &str, out: &BootOut, process: &str, label: &str, host: &BTreeSet<String>) -> bool {
        let walks = guest_walks(&out.lines);
        let Some(w) = walks.iter().find(|w| w.process == process && w.label == label) else {
            self.fail(what, &format!("no walk '{}' from {} in the serial log", label, process));
            return false;
        };
        if !w.problems.is_empty() {
            let p = w.problems.join("; ");
            self.fail(what, &format!("walk '{}' is incomplete: {}", label, p));
            return false;
        }
        match compare(&w.lines, host) {
            Ok(n) => {
                self.pass(what, &format!("the guest's walk '{}' equals the host's extract ({} lines)", label, n));
                true
            }
            Err(diff) => {
                for d in &diff {
                    println!("   {}", d);
                }
                self.fail(what, &format!("the guest's walk '{}' differs from the host's extract (lines above)", label));
                false
            }
        }
    }
}

/// When the kernel started and the checker first spoke (host seconds).
fn when(lines: &[String], stamps: &[f64]) -> String {
    let classified = classify(lines);
    let at = |f: &dyn Fn(&Line) -> bool| classified.iter().position(f).map(|i| stamps[i]);
    let kernel = at(&|l| l.source == Source::Kernel);
    let checker = at(&|l| l.source == Source::Process(CHECKER.to_string()));
    match (kernel, checker) {
        (Some(k), Some(c)) => format!(" (kernel at {:.1} s, storage-check at {:.1} s)", k, c),
        (Some(k), None) => format!(" (kernel at {:.1} s)", k),
        _ => String::new(),
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or("").to_string()
}

fn sha_file(p: &Path) -> Result<String, String> {
    std::fs::read(p).map(|b| sha_hex(&b)).map_err(|e| format!("{}: {}", p.display(), e))
}

/// A boot's timeout: SCENARIO_TIMEOUT, at least `min` seconds.
fn timeout(r: &Run, min: u64) -> u64 {
    r.s.timeout_secs.max(min)
}

// ------------------------------------------------------------ scenarios

fn readonly(r: &mut Run) -> Result<(), String> {
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

fn fat_read_virtio(r: &mut Run) -> Result<(), String> {
    fat_read(r, Bus::Virtio)
}

fn fat_read_nvme(r: &mut Run) -> Result<(), String> {
    fat_read(r, Bus::Nvme)
}

/// Byte offset of the FAT volume in `img`: 0 for a FAT boot sector in
/// block 0, else the first MBR partition with a FAT type byte.
fn fat_offset(img: &Path) -> Result<u64, String> {
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
fn fat_read(r: &mut Run, bus: Bus) -> Result<(), String> {
    let img = r.dir.join("fat.img");
    match crate::scenarios::input_path("FAT_IMAGE") {
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

fn writable(r: &mut Run) -> Result<(), String> {
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

/// What a CAPOSST1 store (alone or the store half of a co-located disk)
/// holds, read on the host through the kernel's own engine, read-only.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct StoreShape {
    /// Entry slots and heap bytes of one area (what a compaction resets).
    slots: u64,
    heap_bytes: u64,
    /// Live keys and their key + value bytes.
    keys: u64,
    live_bytes: u64,
    /// Entries in the active area's table (live, overwritten, tombstones).
    entries: u64,
}

fn store_shape(img: &Path) -> Result<StoreShape, String> {
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
fn persist_churn(shape: &StoreShape) -> Result<plan::Churn, String> {
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
fn compacting_put(churn: &plan::Churn, after: &StoreShape) -> Option<u64> {
    let appended = after.entries.checked_sub(after.keys)?;
    churn.puts().checked_sub(appended).filter(|p| *p >= 1)
}

fn persist(r: &mut Run) -> Result<(), String> {
    let kv = r.dir.join("seed.kv");
    seed_kv(&kv)?;
    let seed = r.dir.join("seed-fs");
    seed_tree(&seed, 4)?;
    let (kv_s, seed_s) = (r.path_str(&kv)?, r.path_str(&seed)?);
    let images: Vec<(&str, PathBuf, Bus)> = if crate::scenarios::input_path("STORE_IMAGE").is_some() {
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

fn hostile(r: &mut Run) -> Result<(), String> {
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

// ------------------------------------------------------------ recovery

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
    content: HashMap<u64, (u64, String)>,
    log: Vec<(u64, String)>,
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

fn step_state(k: u64) -> (u64, String) {
    let mut rec = [0u8; 24];
    let n = plan::step_record(k, &mut rec);
    (n as u64, sha_hex(&rec[..n]))
}

/// The states step k may leave `path` in when cut in the middle, besides
/// the state before it: (allowed states, whether absent is allowed).
fn inflight_states(k: u64, path: &str, before: &Durable, c: &mut Contents) -> Vec<FileState> {
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
fn tree_state(root: &Path, path: &str) -> Result<FileState, String> {
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
        let allowed = inflight.map(|k| inflight_states(k, path, d, c)).unwrap_or_default();
        if allowed.contains(&got) {
            out.notes.push(format!("{} changed by step {} in flight", path, inflight.unwrap_or(0)));
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
    let max = inflight.or(d.last_step).unwrap_or(0) + 1;
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
fn landing(lines: &[String]) -> &'static str {
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
fn resumed(lines: &[String]) -> Option<u64> {
    messages_of(lines, CHECKER).find_map(|body| body.strip_prefix("recovery: resume after step ").and_then(|r| r.trim().parse().ok()))
}

/// The highest `step K begin` of a boot.
fn last_begun(lines: &[String]) -> Option<u64> {
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
fn recovery(r: &mut Run) -> Result<(), String> {
    let var = if crate::scenarios::input_path("RECOVERY_IMAGE").is_some() { "RECOVERY_IMAGE" } else { "WF_IMAGE" };
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
fn services_recovery(r: &mut Run) -> Result<(), String> {
    let img = r.image("", "recovery-fs.img", &["--writable-nvme"])?;
    let store_img = r.image("", "recovery-store.img", &["--store", "--blocks", "4096"])?;
    let disks = vec![Disk { path: img.clone(), bus: Bus::Nvme }, Disk { path: store_img.clone(), bus: Bus::Nvme }];
    let manifest = |what: &str, args: &str| {
        format!(
            "# Generated by tools/runner/src/storage.rs: storage-services-recovery {what}\n\
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
struct StoreStates {
    /// key hex -> (durable "size=N sha256=H", in flight)
    keys: BTreeMap<String, (Option<String>, Option<String>)>,
}

impl StoreStates {
    fn absorb(&mut self, lines: &[String]) {
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
    fn check(&mut self, walk: &BTreeSet<String>) -> (Vec<String>, u64) {
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_interrupts_off_figure_is_read_or_missed() {
        let line = |s: &str| vec![format!("[    0.075370] INFO  {s}")];
        let ok = line("interrupts off, capability calls: longest span 4122 TSC ticks (4 us) on cpu 0, in a capability call, BlockDevice method 2");
        assert_eq!(super::cap_call_irq_off_span(&ok), Ok(4122));
        assert!(super::cap_call_irq_off_span(&line("interrupts off, capability calls: no span measured")).is_err());
        assert!(super::cap_call_irq_off_span(&line("interrupts off, other system calls: longest span 9 TSC ticks")).is_err());
        assert!(super::cap_call_irq_off_span(&line("interrupts off, capability calls: longest span lots TSC ticks")).is_err());
    }

    use super::*;

    #[test]
    fn store_states_hold_the_last_returned_put_or_the_one_under_way() {
        let lines = |v: &[&str]| core::iter::once(crate::source::KERNEL_FIRST_LINE.to_string()).chain(v.iter().map(|l| format!("[{CHECKER}] {l}"))).collect::<Vec<_>>();
        let mut s = StoreStates::default();
        s.absorb(&lines(&["storing 1 722f6b31 size=3 sha256=aa", "stored 1 722f6b31", "storing 9 722f6b31 size=4 sha256=bb"]));
        let walk = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<BTreeSet<String>>();
        // The put under way did not land: the returned one must be there.
        assert_eq!(s.check(&walk(&["key 722f6b31 size=3 sha256=aa"])), (vec![], 0));
        s.absorb(&lines(&["storing 9 722f6b31 size=4 sha256=bb"]));
        // It landed: it is the durable value from now on.
        assert_eq!(s.check(&walk(&["key 722f6b31 size=4 sha256=bb"])), (vec![], 0));
        let (problems, lost) = s.check(&walk(&["key 722f6b31 size=3 sha256=aa"]));
        assert_eq!((problems.len(), lost), (1, 4), "an older value than the last returned put is a loss");
        assert_eq!(s.check(&walk(&[])).1, 4, "a missing key is a loss");
    }

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("capos-storage-test-{}-{}", name, std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// The mkstore-image binary: MKSTORE_IMAGE, the workspace's debug
    /// build, or a build into a target directory of its own (no lock
    /// shared with the cargo running these tests).
    fn mkstore_image() -> PathBuf {
        if let Some(p) = env("MKSTORE_IMAGE") {
            return PathBuf::from(p);
        }
        let root = crate::workspace_root().unwrap();
        let own = root.join("target/runner-test-tools");
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .current_dir(&root)
            .env("CARGO_TARGET_DIR", &own)
            .args(["build", "--quiet", "-p", "mkstore-image"])
            .status()
            .unwrap();
        assert!(status.success(), "building mkstore-image failed");
        own.join("debug/mkstore-image")
    }

    /// An 8 MiB store (16,384 blocks) holding `keys` keys of `value` bytes,
    /// written to a file, as `mkstore-image --store --blocks 16384 --seed`
    /// makes it.
    fn store_file(name: &str, blocks: u64, keys: usize, value: usize) -> PathBuf {
        use capos_storage::mem_device::MemBlockDevice;
        use capos_storage::store::{self, Store};
        let mut dev = MemBlockDevice::new(blocks);
        store::format(&mut dev, None).unwrap();
        let mut st = Store::mount(dev, false).unwrap();
        for k in 0..keys {
            st.put(format!("user/{:04}", k).as_bytes(), &vec![k as u8; value]).unwrap();
        }
        let path = tmpdir(name).join("store.img");
        std::fs::write(&path, st.into_device().into_bytes()).unwrap();
        path
    }

    /// Phase 1 of the persist workload on the host engine (the guest's
    /// order: PERSIST_SIZES put, PERSIST_DELETED deleted, then the churn):
    /// the compactions during the churn and the 1-based put of the last.
    fn phase1_on_host(img: &Path, churn: plan::Churn) -> (u64, Option<u64>, Vec<u8>) {
        use capos_storage::mem_device::MemBlockDevice;
        use capos_storage::store::Store;
        let mut st = Store::mount(MemBlockDevice::from_bytes(std::fs::read(img).unwrap()), false).unwrap();
        for (i, &size) in plan::PERSIST_SIZES.iter().enumerate() {
            st.put(format!("p/{:02}", i).as_bytes(), &vec![1u8; size as usize]).unwrap();
        }
        for &i in plan::PERSIST_DELETED {
            st.delete(format!("p/{:02}", i).as_bytes()).unwrap();
        }
        let before = st.compactions;
        let mut last = None;
        let mut n = 0;
        for _round in 0..churn.rounds {
            for k in 0..plan::CHURN_KEYS {
                let c = st.compactions;
                st.put(format!("churn/{}", k).as_bytes(), &vec![2u8; churn.value]).unwrap();
                n += 1;
                if st.compactions > c {
                    last = Some(n);
                }
            }
        }
        (st.compactions - before, last, st.into_device().into_bytes())
    }

    #[test]
    fn the_persist_churn_compacts_an_8_mib_store_of_300_keys() {
        let img = store_file("persist-300", 16_384, 300, 200);
        let shape = store_shape(&img).unwrap();
        assert_eq!((shape.keys, shape.entries), (300, 300));
        // The fixed churn of old (120 rounds of 6 KiB) never filled this
        // store's area: no compaction, the failure users saw.
        assert_eq!(phase1_on_host(&img, plan::Churn::DEFAULT).0, 0, "the old fixed churn does not compact it");
        let churn = persist_churn(&shape).unwrap();
        let (compactions, last, after) = phase1_on_host(&img, churn);
        assert!(compactions >= 1, "{churn:?} made no compaction");
        // The runner finds the put that compacted from the image alone.
        let after_path = img.with_extension("after");
        std::fs::write(&after_path, after).unwrap();
        assert_eq!(compacting_put(&churn, &store_shape(&after_path).unwrap()), last);
        assert!(churn.puts() <= 1_000, "{churn:?}: a small store gets a short churn");
    }

    #[test]
    fn the_persist_churn_fits_every_store_size_and_refuses_a_full_one() {
        // The scenario's own stores (1 MiB co-located, mkstore-image's
        // default), an empty 8 MiB one and a 64 MiB one: each compacts.
        for (blocks, keys, value) in [(2048u64, 5usize, 100usize), (16_384, 0, 0), (131_072, 50, 4000)] {
            let img = store_file(&format!("persist-{}", blocks), blocks, keys, value);
            let churn = persist_churn(&store_shape(&img).unwrap()).unwrap();
            assert!(phase1_on_host(&img, churn).0 >= 1, "{blocks} blocks: {churn:?}");
            assert!(churn.puts() <= 1_100, "{blocks} blocks: {churn:?}");
        }
        // A store whose own keys leave no room for the workload: refused
        // with the reason, not run into 'store full'.
        let full = store_file("persist-full", 2048, 40, 10_000);
        let e = persist_churn(&store_shape(&full).unwrap()).unwrap_err();
        assert!(e.starts_with("the store is too full for the persist workload: it holds 40 keys"), "{e}");
        // The bound itself: min(slots, heap / (7 + value)) + 1 puts in whole
        // rounds, never fewer than CHURN_ROUNDS.
        assert_eq!(plan::Churn::for_store(10, 1 << 30), plan::Churn { rounds: plan::CHURN_ROUNDS, value: plan::CHURN_VALUE_MAX });
        assert_eq!(plan::Churn::for_store(1000, 61_510), plan::Churn { rounds: plan::CHURN_ROUNDS, value: plan::CHURN_VALUE });
        assert_eq!(plan::Churn::for_store(100_000, 6_151 * 999), plan::Churn { rounds: 250, value: plan::CHURN_VALUE });
    }

    fn mk(args: &[&str]) {
        let out = Command::new(mkstore_image()).args(args).env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
        assert!(out.status.success(), "mkstore-image {:?}: {}", args, String::from_utf8_lossy(&out.stderr));
    }

    const BOOTED: &str = crate::source::KERNEL_FIRST_LINE;

    /// A log whose kernel has started (process lines count only after it).
    fn booted() -> Vec<String> {
        vec![BOOTED.to_string()]
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// The walk lines of the seed tree, computed here from the files
    /// written (not through host_fs_walk).
    fn expected_seed_lines(variant: u64) -> BTreeSet<String> {
        let f = |p: &str, b: &[u8]| format!("file {} size={} sha256={}", p, b.len(), sha_hex(b));
        let mut s = BTreeSet::new();
        for d in ["dir /", "dir /docs", "dir /docs/deep", "dir /docs/deep/nested", "dir /emptydir"] {
            s.insert(d.to_string());
        }
        s.insert(f("/hello.txt", b"hello from the host seed tree\n"));
        s.insert(f("/empty", b""));
        s.insert(f("/docs/readme.md", &b"# capOS storage seed\n\nA small tree for the storage scenarios.\n".repeat(20)));
        s.insert(f("/docs/deep/nested/leaf.bin", &bytes(variant * 10 + 1, 100_000)));
        s.insert(f("/name%20with%20spaces.txt", b"spaces\n"));
        s.insert(f("/percent%25sign", b"%%\n"));
        s.insert(f("/unicod%C3%A9-%E5%90%8D%E5%89%8D.txt", "caf\u{e9}\n".as_bytes()));
        s.insert(f("/big.bin", &bytes(variant * 10 + 2, 300_000)));
        s
    }

    #[test]
    fn names_are_escaped_like_the_guest_does() {
        assert_eq!(escape_name(b"plain.txt"), "plain.txt");
        assert_eq!(escape_name(b"a b"), "a%20b");
        assert_eq!(escape_name(b"100%"), "100%25");
        assert_eq!(escape_name("é".as_bytes()), "%C3%A9");
        assert_eq!(escape_name(b"tab\there\n"), "tab%09here%0A");
        // The guest's escaper is the same rule (walk lines must match).
        assert_eq!(escape_name(b"~!"), "~!");
    }

    #[test]
    fn formats_are_detected_like_mkstore_image_does() {
        let mut head = vec![0u8; 512];
        head[..8].copy_from_slice(b"CAPOSST1");
        head[48..56].copy_from_slice(&2048u64.to_le_bytes());
        assert_eq!(detect(&head, 2048 * 512).unwrap(), Format::St);
        assert_eq!(detect(&head, 10240 * 512).unwrap(), Format::Colocated);
        head[..8].copy_from_slice(b"CAPOSWF1");
        assert_eq!(detect(&head, 8192 * 512).unwrap(), Format::Wf);
        head[..8].copy_from_slice(b"CAPOSRO1");
        assert_eq!(detect(&head, 8192 * 512).unwrap(), Format::Ro);
        head[..8].copy_from_slice(b"NOTCAPOS");
        assert!(detect(&head, 8192 * 512).is_err());
        assert!(detect(&head, 1000).is_err());
    }

    #[test]
    fn the_host_walk_of_an_extract_is_the_seed_and_a_changed_line_is_reported() {
        let dir = tmpdir("extract");
        let seed = dir.join("seed");
        seed_tree(&seed, 9).unwrap();
        let kv = dir.join("seed.kv");
        seed_kv(&kv).unwrap();
        let img = dir.join("co.img");
        mk(&["--colocated", "--store-seed", kv.to_str().unwrap(), "--fs-seed", seed.to_str().unwrap(), "-o", img.to_str().unwrap()]);
        let out = dir.join("out");
        mk(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]);
        let x = Extracted::at(&out);
        assert!(x.fs.is_some() && x.kv.is_some());
        let fs = x.walk(true, false).unwrap();
        let want = expected_seed_lines(9);
        assert_eq!(compare(&want, &fs), Ok(want.len()));
        let keys = x.walk(false, true).unwrap();
        let big = bytes(77, 20_000);
        let mut want_keys = BTreeSet::new();
        for (k, v) in [(b"alpha".to_vec(), b"one".to_vec()), (b"beta".to_vec(), Vec::new()), (b"key with spaces".to_vec(), b"value with spaces".to_vec()), (b"\0binary\xffkey".to_vec(), vec![1, 2, 3]), (b"big".to_vec(), big)] {
            want_keys.insert(format!("key {} size={} sha256={}", hex(&k), v.len(), sha_hex(&v)));
        }
        assert_eq!(compare(&want_keys, &keys), Ok(5));
        // One byte different in one file: both sides' lines are named.
        let mut guest = want.clone();
        let bad = guest.iter().find(|l| l.starts_with("file /hello.txt")).unwrap().clone();
        guest.remove(&bad);
        guest.insert(bad.replace("size=30", "size=31"));
        let d = compare(&guest, &fs).unwrap_err();
        assert!(d.iter().any(|l| l.starts_with("guest only: file /hello.txt size=31")), "{:?}", d);
        assert!(d.iter().any(|l| l.starts_with("host only:  file /hello.txt size=30")), "{:?}", d);
        // A line missing on one side fails too.
        let mut fewer = want.clone();
        fewer.remove("dir /emptydir");
        assert!(compare(&fewer, &fs).unwrap_err().iter().any(|l| l == "host only:  dir /emptydir"));
        // A store image extracts to a file; a filesystem to a directory.
        let st = dir.join("st.img");
        mk(&["--store", "--seed", kv.to_str().unwrap(), "-o", st.to_str().unwrap()]);
        mk(&["extract", st.to_str().unwrap(), dir.join("st.kv").to_str().unwrap()]);
        let x = Extracted::at(&dir.join("st.kv"));
        assert!(x.fs.is_none());
        assert_eq!(x.walk(true, true).unwrap(), want_keys);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn guest_walks_are_read_by_process_and_label_and_checked_for_loss() {
        let serial = lines(&[
            BOOTED,
            "[    0.100000] INFO  storage: mounted data: caposwf1 on nvme0n1",
            "[storage-check] walk begin start",
            "[storage-check] dir /",
            "[walker] walk begin start",
            "[storage-check] file /a size=1 sha256=00",
            "[walker] dir /",
            "[storage-check] key 6b size=2 sha256=11",
            "[storage-check] walk end start dirs=1 files=1 keys=1",
            "[walker] walk end start dirs=1 files=0 keys=0",
            "[storage-check] walk begin end",
            "[storage-check] dir /",
            // a line lost on the serial: the count says 2 files
            "[storage-check] file /b size=1 sha256=00",
            "[storage-check] walk end end dirs=1 files=2 keys=0",
            "[storage-check] walk begin cut",
            "[storage-check] dir /",
            // A kernel line quoting a walk line is not the guest's.
            "[    0.200000] INFO  file /forged size=1 sha256=00",
        ]);
        let w = guest_walks(&serial);
        let get = |p: &str, l: &str| w.iter().find(|x| x.process == p && x.label == l).unwrap();
        let s = get("storage-check", "start");
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.lines, ["dir /", "file /a size=1 sha256=00", "key 6b size=2 sha256=11"].iter().map(|x| x.to_string()).collect());
        assert!(get("walker", "start").problems.is_empty());
        assert_eq!(get("walker", "start").lines.len(), 1);
        assert!(!get("storage-check", "end").problems.is_empty(), "a count mismatch is a problem");
        assert!(get("storage-check", "cut").problems.iter().any(|p| p.contains("no 'walk end'")));
        assert!(!get("storage-check", "cut").lines.iter().any(|l| l.contains("forged")));
    }

    #[test]
    fn kv_escapes_round_trip_as_mkstore_image_writes_them() {
        assert_eq!(kv_unescape("a%09b%25").unwrap(), b"a\tb%");
        assert!(kv_unescape("%4").is_err());
        assert!(kv_unescape("%zz").is_err());
        let w = host_kv_walk("# comment\n\nk%00\tv%FF\n").unwrap();
        assert_eq!(w.into_iter().collect::<Vec<_>>(), vec![format!("key 6b00 size=2 sha256={}", sha_hex(b"v\xff"))]);
        assert!(host_kv_walk("no tab\n").is_err());
    }

    #[test]
    fn the_plan_is_shared_and_sane() {
        for k in 1..500 {
            let n = plan::content_size(k);
            assert!((1..=plan::MAX_CONTENT).contains(&n));
            let mut rec = [0u8; 24];
            let len = plan::step_record(k, &mut rec);
            assert_eq!(plan::parse_step(&rec[..len]), Some(k));
        }
        assert_eq!(plan::parse_step(b"12"), None);
        assert_eq!(plan::parse_step(b"x\n"), None);
        // Pieces of the stream agree with the whole.
        let mut whole = vec![0u8; 1000];
        plan::fill(5, 0, &mut whole);
        let mut part = vec![0u8; 333];
        plan::fill(5, 123, &mut part);
        assert_eq!(&whole[123..456], &part[..]);
        // Every action kind occurs.
        let kinds: BTreeSet<String> = (1..200).map(|k| format!("{:?}", plan::action(k)).split(' ').next().unwrap().to_string()).collect();
        assert_eq!(kinds.len(), 4, "{:?}", kinds);
        assert_eq!(parse_synced("synced 7 /r/f7 size=12 sha256=ab"), Some((7, "/r/f7".into(), Some((12, "ab".into())))));
        assert_eq!(parse_synced("synced 8 /r/f0 absent"), Some((8, "/r/f0".into(), None)));
        assert_eq!(parse_synced("synced x"), None);
        // A line cut short by the kill: parsed, but its state is not whole.
        let (_, _, cut) = parse_synced("synced 7 /r/f7 size=206585 sha256=39039ca0f433c6187caf6f").unwrap();
        assert!(!state_complete(&cut));
        let whole = format!("synced 7 /r/f7 size=5 sha256={}", "ab".repeat(32));
        assert!(state_complete(&parse_synced(&whole).unwrap().2));
        assert!(state_complete(&None));
    }

    /// Write the tree the workload leaves after steps 1..=k (as the host
    /// models it) into `root`.
    fn write_state(root: &Path, states: &BTreeMap<String, Vec<u8>>) {
        let _ = std::fs::remove_dir_all(root);
        std::fs::create_dir_all(root.join("r/d")).unwrap();
        for (p, b) in states {
            std::fs::write(root.join(p.trim_start_matches('/')), b).unwrap();
        }
    }

    /// /r/log after step k.
    fn log_bytes(k: u64) -> Vec<u8> {
        let mut v = Vec::new();
        for j in 1..=k {
            if plan::appends_log(j) {
                v.extend(bytes_seeded(plan::log_record_seed(j), plan::log_record_size(j) as usize));
            }
        }
        v
    }

    fn content_bytes(k: u64) -> Vec<u8> {
        bytes_seeded(plan::content_seed(k), plan::content_size(k) as usize)
    }

    fn bytes_seeded(seed: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        plan::fill(seed, 0, &mut v);
        v
    }

    #[test]
    fn a_synced_line_cut_short_by_the_kill_still_makes_its_step_durable() {
        // CI once read `synced 7 /r/f7 size=206585 sha256=39039ca0f433c6187caf6f`
        // after the SIGKILL: the step is durable, the truncated hash is not
        // the file's, and the model must take the plan's state instead.
        let mut c = Contents::default();
        let k = (2..100).find(|&k| matches!(plan::action(k), plan::Action::Replace { .. })).unwrap();
        let plan::Action::Replace { slot } = plan::action(k) else { unreachable!() };
        let path = format!("/r/f{}", slot);
        let (size, sha) = c.content(k);
        let mut whole = Durable::default();
        whole.absorb(&[BOOTED.to_string(), format!("[storage-check] synced {} {} size={} sha256={}", k, path, size, sha)], &mut c);
        let mut cut = Durable::default();
        cut.absorb(&[BOOTED.to_string(), format!("[storage-check] synced {} {} size={} sha256={}", k, path, size, &sha[..22])], &mut c);
        assert_eq!(cut.last_step, Some(k));
        assert_eq!(cut.states.get(&path), whole.states.get(&path));
        assert_eq!(cut.states.get(&path), Some(&Some((size, sha))));
    }

    #[test]
    fn a_cut_check_finds_lost_half_written_and_resurrected_files() {
        let dir = tmpdir("cut");
        let root = dir.join("tree");
        let mut c = Contents::default();
        // Find a Replace step k, so step k+1.. are not needed.
        let k = (2..100).find(|&k| matches!(plan::action(k), plan::Action::Replace { .. })).unwrap();
        let plan::Action::Replace { slot } = plan::action(k) else { unreachable!() };
        let path = format!("/r/f{}", slot);
        let mut d = Durable::default();
        let line = format!("[storage-check] synced {} {} size={} sha256={}", k, path, plan::content_size(k), c.content(k).1);
        let step = step_state(k);
        d.absorb(&[BOOTED.to_string(), line, format!("[storage-check] synced {} /r/step size={} sha256={}", k, step.0, step.1)], &mut c);
        assert_eq!(d.last_step, Some(k));
        let mut step_bytes = [0u8; 24];
        let n = plan::step_record(k, &mut step_bytes);
        let good: BTreeMap<String, Vec<u8>> = [(path.clone(), content_bytes(k)), ("/r/step".to_string(), step_bytes[..n].to_vec()), ("/r/log".to_string(), log_bytes(k))].into_iter().collect();
        write_state(&root, &good);
        let ok = check_cut(&d, None, &root, &mut c);
        assert!(ok.problems.is_empty(), "{:?}", ok.problems);
        // The synced file gone: lost bytes counted.
        let mut gone = good.clone();
        gone.remove(&path);
        write_state(&root, &gone);
        let bad = check_cut(&d, None, &root, &mut c);
        assert_eq!(bad.lost_bytes, plan::content_size(k));
        // ... unless the step in flight removes it (a Delete of that slot).
        if let Some(j) = (k + 1..k + 400).find(|&j| plan::action(j) == plan::Action::Delete { slot }) {
            let allowed = check_cut(&d, Some(j), &root, &mut c);
            assert!(allowed.problems.is_empty(), "{:?}", allowed.problems);
        }
        // Half-written: the right size, wrong bytes.
        let mut half = good.clone();
        let mut b = content_bytes(k);
        let mid = b.len() / 2;
        b[mid] ^= 1;
        half.insert(path.clone(), b);
        write_state(&root, &half);
        let bad = check_cut(&d, None, &root, &mut c);
        assert!(bad.problems.iter().any(|p| p.contains("half-written")), "{:?}", bad.problems);
        assert!(bad.lost_bytes > 0);
        // A stray workload file that is no content at all.
        let mut stray = good.clone();
        stray.insert("/r/d/g1".into(), b"garbage".to_vec());
        write_state(&root, &stray);
        assert!(check_cut(&d, None, &root, &mut c).problems.iter().any(|p| p.contains("/r/d/g1")));
        // A synced deletion that came back.
        let mut d2 = Durable::default();
        d2.absorb(&[BOOTED.to_string(), format!("[storage-check] synced {} /r/f{} absent", k, (slot + 1) % 8)], &mut c);
        let mut back = good.clone();
        back.insert(format!("/r/f{}", (slot + 1) % 8), content_bytes(1));
        write_state(&root, &back);
        assert!(!check_cut(&d2, None, &root, &mut c).problems.is_empty());
        // The log must be one of the logs the workload writes.
        let mut log = good.clone();
        log.insert("/r/log".into(), b"junk".to_vec());
        write_state(&root, &log);
        assert!(check_cut(&d, None, &root, &mut c).problems.iter().any(|p| p.contains("/r/log")));
        let _ = std::fs::remove_dir_all(&dir);
    }

    // ---- The recovery model against the real engine under simulated
    // power cuts: a host copy of the guest's workload step (recovery.rs)
    // over CAPOSWF1 on a CrashSimDevice, cut at many points; every state
    // a cut can leave must pass check_cut, and resuming must converge.

    use capos_storage::crash_sim::CrashSimDevice;
    use capos_storage::mem_device::MemBlockDevice;
    use capos_storage::writable_fs::{self, MountOptions, WritableFs};
    use capos_storage::{BlockDevice, FileSystem, FixedClock, NodeHandle, StorageError, Timestamp};

    type Fs<D> = WritableFs<D, FixedClock>;

    fn clock() -> FixedClock {
        FixedClock(Timestamp::new(1_700_000_000_000_000_000, capos_storage::Provenance::WallClock))
    }

    fn rm<D: BlockDevice>(fs: &mut Fs<D>, dir: NodeHandle, name: &str) -> Result<(), StorageError> {
        match fs.remove(dir, name) {
            Ok(()) | Err(StorageError::NotFound) => Ok(()),
            Err(e) => Err(e),
        }
    }

    fn whole<D: BlockDevice>(fs: &mut Fs<D>, f: NodeHandle) -> Result<Vec<u8>, StorageError> {
        let size = fs.stat(f)?.size as usize;
        let mut v = vec![0u8; size];
        let n = fs.read(f, 0, &mut v)?;
        v.truncate(n);
        Ok(v)
    }

    fn host_setup<D: BlockDevice>(fs: &mut Fs<D>) -> Result<(), StorageError> {
        let root = fs.root();
        let r = fs.mkdir(root, plan::ROOT)?;
        fs.mkdir(r, "d")?;
        fs.create(r, "log")?;
        let st = fs.create(r, "step")?;
        fs.write(st, 0, b"0\n")?;
        fs.sync()
    }

    fn host_replace<D: BlockDevice>(fs: &mut Fs<D>, r: NodeHandle, name: &str, data: &[u8]) -> Result<(), StorageError> {
        rm(fs, r, "tmp")?;
        let t = fs.create(r, "tmp")?;
        for (i, c) in data.chunks(128 * 1024).enumerate() {
            fs.write(t, (i * 128 * 1024) as u64, c)?;
        }
        rm(fs, r, name)?;
        fs.rename(r, "tmp", r, name)
    }

    /// recovery.rs's `step`, over the FileSystem trait; its serial lines
    /// (as the runner reads them) go to `lines`.
    fn host_step<D: BlockDevice>(fs: &mut Fs<D>, k: u64, lines: &mut Vec<String>) -> Result<(), StorageError> {
        let out = |l: String| format!("[storage-check] {}", l);
        let root = fs.root();
        let r = fs.sub(root, plan::ROOT)?;
        let d = fs.sub(r, "d")?;
        lines.push(out(format!("step {} begin", k)));
        let data = content_bytes(k);
        let mut durable: Vec<(String, FileState)> = Vec::new();
        match plan::action(k) {
            plan::Action::Replace { slot } => {
                host_replace(fs, r, &format!("f{}", slot), &data)?;
                durable.push((format!("/r/f{}", slot), Some((data.len() as u64, sha_hex(&data)))));
            }
            plan::Action::Overwrite { slot } => {
                let name = format!("f{}", slot);
                match fs.open(r, &name) {
                    Ok(f) => {
                        let old = fs.stat(f)?.size;
                        for (i, c) in data.chunks(128 * 1024).enumerate() {
                            fs.write(f, (i * 128 * 1024) as u64, c)?;
                        }
                        if old > data.len() as u64 {
                            fs.truncate(f, data.len() as u64)?;
                        }
                    }
                    Err(StorageError::NotFound) => host_replace(fs, r, &name, &data)?,
                    Err(e) => return Err(e),
                }
                durable.push((format!("/r/{}", name), Some((data.len() as u64, sha_hex(&data)))));
            }
            plan::Action::Delete { slot } => {
                rm(fs, r, &format!("f{}", slot))?;
                durable.push((format!("/r/f{}", slot), None));
            }
            plan::Action::Move { slot, to } => {
                let (name, target) = (format!("f{}", slot), format!("g{}", to));
                if fs.open(r, &name).is_ok() {
                    rm(fs, d, &target)?;
                    fs.rename(r, &name, d, &target)?;
                }
                // Both ends as they are now (a step redone after a cut
                // may find the move already made).
                durable.push((format!("/r/{}", name), None));
                let g = match fs.open(d, &target) {
                    Ok(g) => {
                        let b = whole(fs, g)?;
                        Some((b.len() as u64, sha_hex(&b)))
                    }
                    Err(StorageError::NotFound) => None,
                    Err(e) => return Err(e),
                };
                durable.push((format!("/r/d/{}", target), g));
            }
        }
        if plan::appends_log(k) {
            let f = fs.open(r, "log")?;
            let at = fs.stat(f)?.size;
            fs.write(f, at, &bytes_seeded(plan::log_record_seed(k), plan::log_record_size(k) as usize))?;
            let b = whole(fs, f)?;
            durable.push(("/r/log".into(), Some((b.len() as u64, sha_hex(&b)))));
        }
        let st = fs.open(r, "step")?;
        let mut rec = [0u8; 24];
        let n = plan::step_record(k, &mut rec);
        fs.write(st, 0, &rec[..n])?;
        fs.truncate(st, n as u64)?;
        lines.push(out(format!("step {} sync", k)));
        fs.sync()?;
        durable.push(("/r/step".into(), Some((n as u64, sha_hex(&rec[..n])))));
        for (p, s) in durable {
            lines.push(out(match s {
                Some((n, h)) => format!("synced {} {} size={} sha256={}", k, p, n, h),
                None => format!("synced {} {} absent", k, p),
            }));
        }
        Ok(())
    }

    /// The files under /r of a mounted image, written to `dir`.
    fn dump<D: BlockDevice>(fs: &mut Fs<D>, dir: &Path) {
        let _ = std::fs::remove_dir_all(dir);
        let root = fs.root();
        let r = fs.sub(root, plan::ROOT).unwrap();
        for (sub, h) in [("r", r), ("r/d", fs.sub(r, "d").unwrap())] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for e in fs.list(h).unwrap() {
                if e.kind == capos_storage::NodeKind::File {
                    let f = fs.open(h, &e.name).unwrap();
                    std::fs::write(dir.join(sub).join(&e.name), whole(fs, f).unwrap()).unwrap();
                }
            }
        }
    }

    fn read_step<D: BlockDevice>(fs: &mut Fs<D>) -> u64 {
        let root = fs.root();
        let r = fs.sub(root, plan::ROOT).unwrap();
        let f = fs.open(r, "step").unwrap();
        plan::parse_step(&whole(fs, f).unwrap()).unwrap()
    }

    #[test]
    fn the_recovery_model_accepts_every_state_a_power_cut_leaves() {
        const STEPS: u64 = 12;
        let dir = tmpdir("crash");
        let mut base = MemBlockDevice::new(16384);
        writable_fs::format(&mut base, None, clock().0).unwrap();
        let mut after_setup = CrashSimDevice::new(base.into_bytes());
        {
            let mut fs = WritableFs::mount(&mut after_setup, clock(), MountOptions::default()).unwrap();
            host_setup(&mut fs).unwrap();
        }
        let image = after_setup.surviving_image(|_| 0);
        // Events of the whole run, to spread the cuts over it.
        let mut dev = CrashSimDevice::new(image.clone());
        {
            let mut fs = WritableFs::mount(&mut dev, clock(), MountOptions::default()).unwrap();
            let mut lines = booted();
            for k in 1..=STEPS {
                host_step(&mut fs, k, &mut lines).unwrap();
            }
        }
        let total = dev.events();
        let mut c = Contents::default();
        // A kill while a step's `synced` lines are printed: its sync
        // returned, so the whole step is durable though only its first
        // line was seen; and a kill right after `step k sync` returned,
        // before any line (k in flight).
        {
            let mut dev = CrashSimDevice::new(image.clone());
            let mut fs = WritableFs::mount(&mut dev, clock(), MountOptions::default()).unwrap();
            let mut lines = booted();
            for k in 1..=STEPS {
                host_step(&mut fs, k, &mut lines).unwrap();
                let tree = dir.join("tree");
                dump(&mut fs, &tree);
                let first = lines.iter().position(|l| l.starts_with(&format!("[storage-check] synced {} ", k))).unwrap();
                let mut d = Durable::default();
                d.absorb(&lines[..=first], &mut c);
                let check = check_cut(&d, None, &tree, &mut c);
                assert!(check.problems.is_empty(), "step {} with only its first synced line: {:?}", k, check.problems);
                let mut d = Durable::default();
                d.absorb(&lines[..first], &mut c);
                let check = check_cut(&d, Some(k), &tree, &mut c);
                assert!(check.problems.is_empty(), "step {} synced without lines: {:?}", k, check.problems);
            }
        }
        let mut checked = 0;
        for cut in (1..total).step_by((total / 120).max(1) as usize) {
            let mut dev = CrashSimDevice::new(image.clone());
            dev.cut_power_at(cut);
            let mut lines = booted();
            {
                let mut fs = WritableFs::mount(&mut dev, clock(), MountOptions::default()).unwrap();
                for k in 1..=STEPS {
                    if host_step(&mut fs, k, &mut lines).is_err() {
                        break;
                    }
                }
            }
            assert!(dev.power_lost(), "cut {} of {} did not happen", cut, total);
            let mut durable = Durable::default();
            durable.absorb(&lines, &mut c);
            let inflight = last_begun(&lines).filter(|b| Some(*b) > durable.last_step);
            // The flushed media alone, every write that reached the device, and a mix.
            let mut alt = 0usize;
            let chooses: [&mut dyn FnMut(usize) -> usize; 3] = [&mut |_| 0, &mut |n| n - 1, &mut move |n| {
                alt += 1;
                alt % n
            }];
            for (which, choose) in chooses.into_iter().enumerate() {
                let media = dev.surviving_image(choose);
                let mut fs = WritableFs::mount(MemBlockDevice::from_bytes(media), clock(), MountOptions::default()).unwrap_or_else(|e| panic!("cut {}: mount: {}", cut, e));
                let tree = dir.join("tree");
                dump(&mut fs, &tree);
                let check = check_cut(&durable, inflight, &tree, &mut c);
                assert!(check.problems.is_empty(), "cut at event {} (media {}), in flight {:?}: {:?}", cut, which, inflight, check.problems);
                // The cut may also come while the last step's `synced`
                // lines are printed (before the next step began): only
                // its first line seen.
                if let (Some(last), None) = (durable.last_step, inflight) {
                    let first = lines.iter().position(|l| l.starts_with(&format!("[storage-check] synced {} ", last))).unwrap();
                    let partial = &lines[..=first];
                    let mut dp = Durable::default();
                    dp.absorb(partial, &mut c);
                    let check = check_cut(&dp, last_begun(partial).filter(|b| Some(*b) > dp.last_step), &tree, &mut c);
                    assert!(check.problems.is_empty(), "cut at event {} (media {}), lines cut after the first of step {}: {:?}", cut, which, last, check.problems);
                }
                let resumed = read_step(&mut fs);
                let s = durable.last_step.unwrap_or(0);
                assert!(resumed == s || resumed == s + 1, "cut {}: resumed after {} but {} was synced", cut, resumed, s);
                // Going on from there converges: two more steps, nothing in flight.
                let mut more = booted();
                for k in resumed + 1..=resumed + 2 {
                    host_step(&mut fs, k, &mut more).unwrap_or_else(|e| panic!("cut {}: step {} after resume: {}", cut, k, e));
                }
                let mut d2 = Durable::default();
                d2.absorb(&lines, &mut c);
                if resumed == s + 1 {
                    d2.apply_step(resumed, &mut c);
                }
                d2.absorb(&more, &mut c);
                dump(&mut fs, &tree);
                let check = check_cut(&d2, None, &tree, &mut c);
                assert!(check.problems.is_empty(), "cut {} (media {}) then resumed after {} (synced {}): {:?}\nlines: {:?}\nmore: {:?}", cut, which, resumed, s, check.problems, lines, more);
                checked += 1;
            }
        }
        assert!(checked >= 300, "only {} cut states checked", checked);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
