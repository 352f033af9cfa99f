//! The boot manifest: which processes the kernel starts, from which boot
//! module, with which capabilities.
//!
//! `tools/mkmanifest` turns a readable text file into the `Manifest` capnp
//! message (schema/capos.capnp) and the kernel reads it at boot. Both sides
//! go through this module: the plain-Rust [`Manifest`], its
//! [`encode`](Manifest::encode) / [`decode`](Manifest::decode), and one set of
//! rules in [`Manifest::validate`], so a file the tool accepts is a file the
//! kernel accepts. The list of kernel capability sources lives here
//! ([`KERNEL_SOURCES`]) for the same reason.
//!
//! Endpoint grants and deadlock: every exported endpoint is created before
//! any process starts, so there is no *start-up* ordering problem. But a
//! call blocks its caller until the server answers, and a process serves
//! one call at a time, so grants that let processes wait on each other in
//! a cycle can block forever: a process granted its *own* endpoint (a server
//! calling itself), and equally `a` granted an endpoint of `b` while `b` is
//! granted one of `a` (each calls the other at once, or one calls back while
//! serving the other's call), or any longer ring. [`Manifest::validate`]
//! refuses every such cycle ([`grant_cycle`]), naming it. It does not try to
//! guess that one side never calls: a grant nobody calls is a grant to
//! remove. (Capabilities passed at run time in a call's handles are beyond
//! a manifest's reach; docs/writing-a-demo.md says what a server should do.)

use crate::capos_capnp::{grant, manifest, mount_spec, process_spec, MountFormat as capnp_format};
use crate::interfaces;
use crate::message::{read_message, write_message, MessageError};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// The `Manifest.version` this code writes and reads.
pub const MANIFEST_VERSION: u32 = 1;
/// Most processes one manifest may start.
pub const MAX_PROCESSES: usize = 64;
/// Most grants one process may receive.
pub const MAX_GRANTS_PER_PROCESS: usize = 64;
/// Most endpoints one process may export.
pub const MAX_EXPORTS_PER_PROCESS: usize = 16;
/// Most arguments per process, and the longest argument.
pub const MAX_ARGS: usize = 32;
pub const MAX_ARG_BYTES: usize = 256;
/// Longest process, grant, endpoint or source instance name.
pub const MAX_NAME_BYTES: usize = 32;
/// Longest binary (boot module) path.
pub const MAX_PATH_BYTES: usize = 128;

/// `text` with every control character (C0, DEL, C1) replaced by a visible
/// escape (`\n`, `\r`, `\t`, `\xNN`, `\u{NN}`), for error messages and
/// `mkmanifest --dump`: text from a manifest can then never move the
/// cursor, clear the screen or forge a line on a terminal. Other
/// characters, backslash included, are kept as they are.
pub fn escape_control(text: &str) -> String {
    capos_text::escape::escape_control(text, false)
}

/// Process names a manifest may not use: the console prefixes a process's
/// lines with `[name] `, and the kernel writes its own verdicts as
/// `[PASS] ` / `[FAIL] `, so these names would make a process's line read
/// as the kernel's.
pub const RESERVED_PROCESS_NAMES: [&str; 2] = ["PASS", "FAIL"];

/// Whether `name` is a valid process / grant / endpoint / instance name:
/// 1 to [`MAX_NAME_BYTES`] of `a-z A-Z 0-9 _ -`, starting with a letter or digit.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && name.as_bytes()[0].is_ascii_alphanumeric()
}

/// One kind of capability the kernel itself can grant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSourceKind {
    /// The text before `:` (or the whole text when `takes_instance` is false).
    pub prefix: &'static str,
    /// Whether the source names an instance (`store:NAME`).
    pub takes_instance: bool,
    /// The interface the granted capability implements.
    pub interface_id: u64,
    pub description: &'static str,
}

/// Every kernel source, the one list the tool and the kernel share. Add new
/// sources here (and teach the kernel to serve them).
pub const KERNEL_SOURCES: &[KernelSourceKind] = &[
    KernelSourceKind {
        prefix: "console",
        takes_instance: false,
        interface_id: interfaces::CONSOLE,
        description: "the serial log, lines prefixed with the process name",
    },
    KernelSourceKind {
        prefix: "clock",
        takes_instance: false,
        interface_id: interfaces::CLOCK,
        description: "the wall clock (nanoseconds since 1970), for stamping what a process stores",
    },
    KernelSourceKind {
        prefix: "ping",
        takes_instance: false,
        interface_id: interfaces::PING,
        description: "a kernel-served Ping (null-call benchmark and tests)",
    },
    KernelSourceKind {
        prefix: "store",
        takes_instance: true,
        interface_id: interfaces::STORE,
        description: "the persistent key/value store backer called NAME",
    },
    KernelSourceKind {
        prefix: "fs",
        takes_instance: true,
        interface_id: interfaces::DIRECTORY,
        description: "the root Directory of the filesystem backer called NAME",
    },
    KernelSourceKind {
        prefix: "store-ro",
        takes_instance: true,
        interface_id: interfaces::STORE,
        description: "the store backer called NAME behind the read-only wrapper",
    },
    KernelSourceKind {
        prefix: "fs-ro",
        takes_instance: true,
        interface_id: interfaces::DIRECTORY,
        description: "the root Directory of the filesystem called NAME behind the read-only wrapper",
    },
    KernelSourceKind {
        prefix: "block",
        takes_instance: true,
        interface_id: interfaces::BLOCK_DEVICE,
        description: "the blocks of the raw mount called NAME, read-write (one writer per mount)",
    },
    KernelSourceKind {
        prefix: "block-ro",
        takes_instance: true,
        interface_id: interfaces::BLOCK_DEVICE,
        description: "the blocks of the raw mount called NAME behind the read-only wrapper",
    },
    KernelSourceKind {
        prefix: "control",
        takes_instance: true,
        interface_id: interfaces::PROCESS_CONTROL,
        description: "ProcessControl of the manifest process called NAME: kill it, read its status",
    },
    KernelSourceKind {
        prefix: "nic",
        takes_instance: true,
        interface_id: interfaces::NIC,
        description: "the network device called NAME (net0, net1, ...): frames in and out (one holder per device)",
    },
];

/// What a mount of a [`KernelSource`] must provide: a filesystem (`fs`,
/// `fs-ro`), a store (`store`, `store-ro`), raw blocks (`block`,
/// `block-ro`: a `raw` mount) or nothing (`console`, `ping`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    Nothing,
    Filesystem,
    Store,
    Block,
    /// A process of the same manifest (`control:NAME`).
    Process,
}

impl KernelSourceKind {
    pub fn needs(&self) -> Needs {
        match self.prefix {
            "fs" | "fs-ro" => Needs::Filesystem,
            "store" | "store-ro" => Needs::Store,
            "block" | "block-ro" => Needs::Block,
            "control" => Needs::Process,
            _ => Needs::Nothing,
        }
    }

    /// Whether the granted capability is the read-only wrapper.
    pub fn read_only(&self) -> bool {
        self.prefix.ends_with("-ro")
    }
}

/// The on-disk format a mount reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MountFormat {
    /// CAPOSRO1: a read-only filesystem.
    CaposRo1,
    /// CAPOSWF1: the crash-consistent writable filesystem.
    CaposWf1,
    /// CAPOSST1: the key/value store.
    CaposSt1,
    /// A CAPOSST1 store followed by a CAPOSWF1 filesystem on one disk.
    Colocated,
    /// FAT12/16/32, read-only (a whole-disk FAT, the first FAT partition
    /// of an MBR disk, or a GPT partition named in the mount).
    Fat,
    /// No format: the kernel opens nothing and the blocks are served as a
    /// `BlockDevice` (`block:NAME`, `block-ro:NAME`). The mount still
    /// claims its range, so no filesystem mount (and no second raw mount)
    /// can reach the same blocks behind the block capability's back.
    Raw,
}

impl MountFormat {
    pub const ALL: [MountFormat; 6] =
        [MountFormat::CaposRo1, MountFormat::CaposWf1, MountFormat::CaposSt1, MountFormat::Colocated, MountFormat::Fat, MountFormat::Raw];

    /// The manifest's word for it.
    pub fn name(self) -> &'static str {
        match self {
            MountFormat::CaposRo1 => "caposro1",
            MountFormat::CaposWf1 => "caposwf1",
            MountFormat::CaposSt1 => "caposst1",
            MountFormat::Colocated => "colocated",
            MountFormat::Fat => "fat",
            MountFormat::Raw => "raw",
        }
    }

    pub fn parse(word: &str) -> Option<MountFormat> {
        MountFormat::ALL.into_iter().find(|f| f.name() == word)
    }

    pub fn has_filesystem(self) -> bool {
        !matches!(self, MountFormat::CaposSt1 | MountFormat::Raw)
    }

    pub fn has_store(self) -> bool {
        matches!(self, MountFormat::CaposSt1 | MountFormat::Colocated)
    }

    /// Whether the mount is served as blocks (`block:`, `block-ro:`) and
    /// as nothing else.
    pub fn is_raw(self) -> bool {
        self == MountFormat::Raw
    }
}

/// Which part of a device a mount uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PartitionSelect {
    Whole,
    /// A GPT partition entry number, 1-based.
    Number(u32),
    /// The one GPT partition of this type, as canonical uppercase GUID text.
    Type(String),
}

/// The device word that means "whichever device holds the one GPT
/// partition of this type" (`mount data: colocated on any partition type
/// GUID`): the cloud disk is NVMe on Compute Engine and may be virtio-blk
/// elsewhere, and its manifest should not care.
pub const ANY_DEVICE: &str = "any";

/// Highest GPT partition number a manifest may name (GPT tables hold 128
/// entries by default; the parser accepts up to 1024).
pub const MAX_PARTITION_NUMBER: u32 = 1024;
/// Most mounts one manifest may declare.
pub const MAX_MOUNTS: usize = 16;

/// `text` as canonical uppercase GUID text (`8-4-4-4-12` hex digits), if
/// it is one.
pub fn canonical_guid(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let shape_ok = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { *c == b'-' } else { c.is_ascii_hexdigit() });
    shape_ok.then(|| text.to_ascii_uppercase())
}

/// A mount: the kernel opens `format` on `device` (or one of its GPT
/// partitions) before any process starts, and grants name it by `name`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountSpec {
    pub name: String,
    pub format: MountFormat,
    pub device: String,
    pub partition: PartitionSelect,
    /// Mount read-only even when the format is writable.
    pub read_only: bool,
}

impl MountSpec {
    /// The device and partition, as a person reads them: `nvme0n1`,
    /// `nvme0n1 partition 2`, `nvme0n1 partition type A59A...`.
    pub fn target(&self) -> String {
        match &self.partition {
            PartitionSelect::Whole => self.device.clone(),
            PartitionSelect::Number(n) => format!("{} partition {n}", self.device),
            PartitionSelect::Type(t) => format!("{} partition type {t}", self.device),
        }
    }

    /// Whether two mounts would claim the same blocks: a whole device
    /// overlaps every partition of it, and the same partition (by number
    /// or by type) twice overlaps. (A number and a type that resolve to
    /// the same partition are caught by the kernel once it has read the
    /// table, and by `mkmanifest --check --disk DEVICE=IMAGE`.)
    pub fn conflicts_with(&self, other: &MountSpec) -> bool {
        if self.device == ANY_DEVICE || other.device == ANY_DEVICE {
            // Which device `any` finds is known at boot; the same type
            // twice is the same partition (or an ambiguous one).
            return matches!((&self.partition, &other.partition), (PartitionSelect::Type(a), PartitionSelect::Type(b)) if a == b);
        }
        self.device == other.device
            && match (&self.partition, &other.partition) {
                (PartitionSelect::Whole, _) | (_, PartitionSelect::Whole) => true,
                (a, b) => a == b,
            }
    }
}

/// A ring of endpoint grants of two or more processes, if there is one:
/// the edges `(process index, grant index)` in calling order, each grant an
/// endpoint grant of its process naming the next process on the ring (the
/// last names the first). An edge `p -> q` means `p` holds a grant to an
/// endpoint `q` exports, so `p` may block until `q` answers. A process
/// granted its own endpoint (a ring of one) is [`Manifest::validate`]'s own,
/// earlier refusal; grants naming unknown processes are ignored here.
/// Depth-first search from each process in order, so the ring reported is
/// the first one found through the lowest-numbered process (deterministic).
pub fn grant_cycle(m: &Manifest) -> Option<Vec<(usize, usize)>> {
    let n = m.processes.len();
    // Edges of each process: (callee, grant index), in grant order.
    let edges: Vec<Vec<(usize, usize)>> = m
        .processes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            p.grants
                .iter()
                .enumerate()
                .filter_map(|(g, grant)| match &grant.source {
                    GrantSource::Endpoint { process, .. } => {
                        m.processes.iter().position(|q| &q.name == process).filter(|&q| q != i).map(|q| (q, g))
                    }
                    GrantSource::Kernel(_) => None,
                })
                .collect()
        })
        .collect();
    // 0 unvisited, 1 on the current path, 2 done (no ring through it).
    let mut state = alloc::vec![0u8; n];
    for root in 0..n {
        if state[root] != 0 {
            continue;
        }
        // The path: (process, next edge to try, grant that entered it;
        // unused for the root).
        let mut path: Vec<(usize, usize, usize)> = alloc::vec![(root, 0, 0)];
        state[root] = 1;
        while let Some(top) = path.last_mut() {
            let (p, next) = (top.0, top.1);
            if next == edges[p].len() {
                state[p] = 2;
                path.pop();
                continue;
            }
            top.1 += 1;
            let (q, g) = edges[p][next];
            match state[q] {
                0 => {
                    state[q] = 1;
                    path.push((q, 0, g));
                }
                1 => {
                    // q is on the path: the ring is q .. p, then p -> q.
                    let from = path.iter().position(|e| e.0 == q).unwrap_or(0);
                    let mut ring: Vec<(usize, usize)> = path[from..].windows(2).map(|w| (w[0].0, w[1].2)).collect();
                    ring.push((p, g));
                    return Some(ring);
                }
                _ => {}
            }
        }
    }
    None
}

/// A parsed kernel source: its kind and, for `store:`/`fs:`, the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KernelSource<'a> {
    pub kind: &'static KernelSourceKind,
    pub instance: Option<&'a str>,
}

impl<'a> KernelSource<'a> {
    /// Parse `console`, `ping`, `store:NAME`, `fs:NAME`.
    pub fn parse(text: &'a str) -> Result<KernelSource<'a>, String> {
        let (prefix, instance) = match text.split_once(':') {
            Some((p, i)) => (p, Some(i)),
            None => (text, None),
        };
        let Some(kind) = KERNEL_SOURCES.iter().find(|k| k.prefix == prefix) else {
            let known: Vec<String> = KERNEL_SOURCES
                .iter()
                .map(|k| if k.takes_instance { format!("{}:NAME", k.prefix) } else { k.prefix.to_string() })
                .collect();
            return Err(format!("unknown kernel source '{}' (known: {})", escape_control(text), known.join(", ")));
        };
        match (kind.takes_instance, instance) {
            (false, None) => Ok(KernelSource { kind, instance: None }),
            (false, Some(_)) => Err(format!("kernel source '{prefix}' takes no instance name")),
            (true, None) => Err(format!("kernel source '{prefix}' needs an instance name: '{prefix}:NAME'")),
            (true, Some(i)) if is_valid_name(i) => Ok(KernelSource { kind, instance: Some(i) }),
            (true, Some(i)) => Err(format!("invalid {prefix} instance name '{}'", escape_control(i))),
        }
    }
}

/// Where a grant's capability comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GrantSource {
    /// A kernel source in text form (see [`KernelSource::parse`]).
    Kernel(String),
    /// An endpoint exported by another process.
    Endpoint { process: String, endpoint: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    /// The name the process sees in `StartInfo.caps`.
    pub name: String,
    pub source: GrantSource,
    /// `read-only` after an endpoint source: the badge's
    /// `capos_abi::badge::MANIFEST_READ_ONLY` bit.
    pub read_only: bool,
    /// `terms ...` after an endpoint source: what the holder may do, for
    /// the serving process (`crate::terms`); empty when none are given.
    pub terms: String,
}

/// The restart budget of `restart: on-failure` without `max N`.
pub const DEFAULT_MAX_RESTARTS: u32 = 1000;
/// The largest `max N`.
pub const MAX_RESTART_BUDGET: u32 = 1_000_000;

/// What the kernel does when a process ends (`restart:`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Restart {
    /// It stays dead (no `restart:` line).
    #[default]
    Never,
    /// `restart: on-failure [max N]`: a fault, a kill or a non-zero exit
    /// starts it again from the same binary with the same args and grants,
    /// at most `max` times in one boot (`capos_kcore::restart`).
    OnFailure { max: u32 },
}

impl Restart {
    /// The budget, when restarts are on.
    pub fn max_restarts(self) -> Option<u32> {
        match self {
            Restart::Never => None,
            Restart::OnFailure { max } => Some(max),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ProcessSpec {
    pub name: String,
    /// Boot module path, e.g. `/boot/hello`.
    pub binary: String,
    pub args: Vec<String>,
    pub grants: Vec<Grant>,
    pub exports: Vec<String>,
    pub restart: Restart,
    /// `cpu: N`: the CPU (its index, 0 the boot CPU) this process runs on
    /// and nowhere else; `None` runs it wherever the scheduler places it.
    /// A CPU that is not online at boot is logged and the pin dropped.
    pub cpu: Option<u8>,
}

/// The most CPUs a `cpu:` line may name (the kernel's `MAX_CPUS`).
pub const MAX_PINNED_CPU: u8 = 63;

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Manifest {
    pub processes: Vec<ProcessSpec>,
    pub mounts: Vec<MountSpec>,
}

impl Manifest {
    pub fn mount(&self, name: &str) -> Option<&MountSpec> {
        self.mounts.iter().find(|m| m.name == name)
    }
}

/// What part of a manifest a problem is about (indexes into the lists), so
/// a tool can point at the source line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Location {
    Manifest,
    Process(usize),
    Binary(usize),
    Arg(usize, usize),
    Grant(usize, usize),
    Export(usize, usize),
    Mount(usize),
    /// A process's `restart:` policy.
    Restart(usize),
    /// A process's `cpu:` line.
    Cpu(usize),
}

/// Why a manifest was refused.
#[derive(Clone, Debug)]
pub enum ManifestError {
    /// The bytes are not a valid message.
    Message(MessageError),
    /// A rule of [`Manifest::validate`] failed.
    Invalid { at: Location, message: String },
}

impl ManifestError {
    fn at(at: Location, message: String) -> ManifestError {
        ManifestError::Invalid { at, message }
    }
}

impl From<MessageError> for ManifestError {
    fn from(e: MessageError) -> Self {
        ManifestError::Message(e)
    }
}

impl From<capnp::Error> for ManifestError {
    fn from(e: capnp::Error) -> Self {
        ManifestError::Message(MessageError::Malformed(e))
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ManifestError::Message(e) => write!(f, "manifest is not a valid message: {e}"),
            ManifestError::Invalid { message, .. } => f.write_str(message),
        }
    }
}

fn text(t: capnp::text::Reader<'_>) -> Result<String, ManifestError> {
    Ok(t.to_str().map_err(capnp::Error::from)?.to_string())
}

impl Manifest {
    /// Check every rule; the first problem found is returned.
    pub fn validate(&self) -> Result<(), ManifestError> {
        use Location as L;
        if self.processes.is_empty() {
            return Err(ManifestError::at(L::Manifest, "the manifest starts no process".into()));
        }
        if self.processes.len() > MAX_PROCESSES {
            return Err(ManifestError::at(L::Manifest, format!("more than {MAX_PROCESSES} processes")));
        }
        if self.mounts.len() > MAX_MOUNTS {
            return Err(ManifestError::at(L::Mount(MAX_MOUNTS), format!("more than {MAX_MOUNTS} mounts")));
        }
        for (i, m) in self.mounts.iter().enumerate() {
            let at = L::Mount(i);
            if !is_valid_name(&m.name) {
                return Err(ManifestError::at(at, format!("invalid mount name '{}'", escape_control(&m.name))));
            }
            if self.mounts[..i].iter().any(|o| o.name == m.name) {
                return Err(ManifestError::at(at, format!("duplicate mount '{}'", m.name)));
            }
            if !is_valid_name(&m.device) {
                return Err(ManifestError::at(at, format!("mount '{}': invalid device name '{}'", m.name, escape_control(&m.device))));
            }
            if m.device == ANY_DEVICE && !matches!(m.partition, PartitionSelect::Type(_)) {
                return Err(ManifestError::at(at, format!("mount '{}': device 'any' needs 'partition type GUID' (it finds the one partition of that type)", m.name)));
            }
            match &m.partition {
                PartitionSelect::Whole => {}
                PartitionSelect::Number(n) if (1..=MAX_PARTITION_NUMBER).contains(n) => {}
                PartitionSelect::Number(n) => {
                    return Err(ManifestError::at(at, format!("mount '{}': partition number {n} is not 1 to {MAX_PARTITION_NUMBER}", m.name)));
                }
                PartitionSelect::Type(t) if canonical_guid(t).as_deref() == Some(t.as_str()) => {}
                PartitionSelect::Type(t) => {
                    return Err(ManifestError::at(
                        at,
                        format!("mount '{}': partition type '{}' is not an uppercase GUID like A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890", m.name, escape_control(t)),
                    ));
                }
            }
            if let Some(first) = self.mounts[..i].iter().find(|o| o.conflicts_with(m)) {
                return Err(ManifestError::at(
                    at,
                    format!("mount '{}' claims {}, already claimed by mount '{}' ({}): a device serves one mount", m.name, m.target(), first.name, first.target()),
                ));
            }
        }
        // (raw mount, process, grant) of every writable `block:` grant so far.
        let mut writers: Vec<(&str, &str, &str)> = Vec::new();
        // (device, process, grant) of every `nic:` grant so far.
        let mut nic_holders: Vec<(&str, &str, &str)> = Vec::new();
        for (i, p) in self.processes.iter().enumerate() {
            if !is_valid_name(&p.name) {
                return Err(ManifestError::at(L::Process(i), format!("invalid process name '{}'", escape_control(&p.name))));
            }
            if self.processes[..i].iter().any(|q| q.name == p.name) {
                return Err(ManifestError::at(L::Process(i), format!("duplicate process '{}'", p.name)));
            }
            if RESERVED_PROCESS_NAMES.contains(&p.name.as_str()) {
                return Err(ManifestError::at(
                    L::Process(i),
                    format!("process name '{}' is reserved (the kernel's own verdict lines start with it)", p.name),
                ));
            }
            if p.binary.is_empty() {
                return Err(ManifestError::at(L::Process(i), format!("process '{}' has no binary", p.name)));
            }
            if p.binary.chars().any(char::is_control) {
                return Err(ManifestError::at(
                    L::Binary(i),
                    format!("binary '{}' holds a control character", escape_control(&p.binary)),
                ));
            }
            if !p.binary.starts_with('/') || p.binary.len() > MAX_PATH_BYTES || p.binary.contains(['\0', ' ']) {
                return Err(ManifestError::at(
                    L::Binary(i),
                    format!("binary '{}' must be an absolute boot module path of at most {MAX_PATH_BYTES} bytes without spaces", p.binary),
                ));
            }
            if p.args.len() > MAX_ARGS {
                return Err(ManifestError::at(L::Arg(i, MAX_ARGS), format!("process '{}' has more than {MAX_ARGS} arguments", p.name)));
            }
            for (a, arg) in p.args.iter().enumerate() {
                if arg.len() > MAX_ARG_BYTES {
                    return Err(ManifestError::at(L::Arg(i, a), format!("argument longer than {MAX_ARG_BYTES} bytes")));
                }
                // Control characters (NUL, tab, newline, escape, DEL, C1) are
                // refused: an argument is printed by tools and programs, and
                // must not be able to drive a terminal or forge a line.
                if arg.chars().any(char::is_control) {
                    return Err(ManifestError::at(
                        L::Arg(i, a),
                        format!("argument '{}' holds a control character", escape_control(arg)),
                    ));
                }
            }
            if p.grants.len() > MAX_GRANTS_PER_PROCESS {
                return Err(ManifestError::at(L::Grant(i, MAX_GRANTS_PER_PROCESS), format!("process '{}' has more than {MAX_GRANTS_PER_PROCESS} grants", p.name)));
            }
            for (g, grant) in p.grants.iter().enumerate() {
                let at = L::Grant(i, g);
                if !is_valid_name(&grant.name) {
                    return Err(ManifestError::at(at, format!("invalid grant name '{}'", escape_control(&grant.name))));
                }
                if p.grants[..g].iter().any(|o| o.name == grant.name) {
                    return Err(ManifestError::at(at, format!("duplicate grant '{}' in process '{}'", grant.name, p.name)));
                }
                if grant.read_only && matches!(grant.source, GrantSource::Kernel(_)) {
                    return Err(ManifestError::at(at, format!(
                        "grant '{}': 'read-only' applies to endpoint grants; for a kernel source use its -ro form (fs-ro:, store-ro:)",
                        grant.name
                    )));
                }
                if !grant.terms.is_empty() {
                    if matches!(grant.source, GrantSource::Kernel(_)) {
                        return Err(ManifestError::at(at, format!("grant '{}': 'terms' apply to endpoint grants (a server reads them)", grant.name)));
                    }
                    crate::terms::NetTerms::parse(&grant.terms).map_err(|m| ManifestError::at(at, format!("grant '{}': {m}", grant.name)))?;
                }
                match &grant.source {
                    GrantSource::Kernel(source) => {
                        let ks = KernelSource::parse(source).map_err(|m| ManifestError::at(at, m))?;
                        self.check_mount_for(&ks).map_err(|m| ManifestError::at(at, format!("grant '{}': {m}", grant.name)))?;
                        if let (Needs::Block, false, Some(mount)) = (ks.kind.needs(), ks.kind.read_only(), ks.instance) {
                            if let Some((_, wp, wg)) = writers.iter().find(|(m, _, _)| *m == mount) {
                                return Err(ManifestError::at(at, format!(
                                    "grant '{}': block:{mount} is already granted writable to process '{wp}' (grant '{wg}'); a raw mount has one writer (grant block-ro:{mount} to readers)",
                                    grant.name
                                )));
                            }
                            writers.push((mount, &p.name, &grant.name));
                        }
                        if let ("nic", Some(device)) = (ks.kind.prefix, ks.instance) {
                            if let Some((_, hp, hg)) = nic_holders.iter().find(|(d, _, _)| *d == device) {
                                return Err(ManifestError::at(at, format!(
                                    "grant '{}': nic:{device} is already granted to process '{hp}' (grant '{hg}'); a network device has one holder",
                                    grant.name
                                )));
                            }
                            nic_holders.push((device, &p.name, &grant.name));
                        }
                    }
                    GrantSource::Endpoint { process, endpoint } => {
                        let Some(server) = self.processes.iter().find(|q| &q.name == process) else {
                            return Err(ManifestError::at(at, format!("grant '{}' names unknown process '{}'", grant.name, escape_control(process))));
                        };
                        if !server.exports.iter().any(|e| e == endpoint) {
                            return Err(ManifestError::at(at, format!("process '{process}' exports no endpoint '{}'", escape_control(endpoint))));
                        }
                        if process == &p.name {
                            return Err(ManifestError::at(at, format!(
                                "process '{}' is granted its own endpoint '{endpoint}'; a server calling itself would block forever",
                                p.name
                            )));
                        }
                    }
                }
            }
            if let Some(cpu) = p.cpu {
                if cpu > MAX_PINNED_CPU {
                    return Err(ManifestError::at(L::Cpu(i), format!("process '{}': cpu {cpu} is past the last CPU the kernel runs on ({MAX_PINNED_CPU})", p.name)));
                }
            }
            if let Restart::OnFailure { max } = p.restart {
                if max == 0 || max > MAX_RESTART_BUDGET {
                    return Err(ManifestError::at(L::Restart(i), format!("process '{}': restart budget {max} is not 1 to {MAX_RESTART_BUDGET}", p.name)));
                }
            }
            if p.exports.len() > MAX_EXPORTS_PER_PROCESS {
                return Err(ManifestError::at(L::Export(i, MAX_EXPORTS_PER_PROCESS), format!("process '{}' exports more than {MAX_EXPORTS_PER_PROCESS} endpoints", p.name)));
            }
            for (e, export) in p.exports.iter().enumerate() {
                if !is_valid_name(export) {
                    return Err(ManifestError::at(L::Export(i, e), format!("invalid endpoint name '{}'", escape_control(export))));
                }
                if p.exports[..e].contains(export) {
                    return Err(ManifestError::at(L::Export(i, e), format!("duplicate export '{export}' in process '{}'", p.name)));
                }
            }
        }
        if let Some(cycle) = grant_cycle(self) {
            // Reported at the grant that closes the ring (the cycle's
            // last edge; a ring is never empty), naming every process and
            // grant on it.
            let (p, g) = cycle.last().copied().unwrap_or((0, 0));
            let ring: Vec<String> = cycle
                .iter()
                .filter_map(|&(p, g)| {
                    let grant = &self.processes[p].grants[g];
                    match &grant.source {
                        GrantSource::Endpoint { process, endpoint } => {
                            Some(format!("'{}' may call '{process}' (grant '{}': process:{process}/{endpoint})", self.processes[p].name, grant.name))
                        }
                        GrantSource::Kernel(_) => None,
                    }
                })
                .collect();
            return Err(ManifestError::at(
                L::Grant(p, g),
                format!("endpoint grants form a cycle: {}; processes that call each other in a ring can block forever (each serves one call at a time)", ring.join(", ")),
            ));
        }
        Ok(())
    }

    /// Check that every process's binary is one of `modules` (the boot
    /// modules' paths): what the kernel does before starting anything, so a
    /// missing binary is one clear error instead of a half-started system.
    /// The mount a storage source names must exist and hold what it needs.
    fn check_mount_for(&self, source: &KernelSource) -> Result<(), String> {
        let Some(instance) = source.instance else { return Ok(()) };
        let needs = source.kind.needs();
        if needs == Needs::Nothing {
            return Ok(());
        }
        if needs == Needs::Process {
            return match self.processes.iter().any(|p| p.name == instance) {
                true => Ok(()),
                false => Err(format!("control:{instance} names no process of this manifest")),
            };
        }
        let Some(mount) = self.mount(instance) else {
            return Err(format!("{}:{instance} names no mount (declare it: 'mount {instance}: FORMAT on DEVICE')", source.kind.prefix));
        };
        match needs {
            Needs::Filesystem if !mount.format.has_filesystem() => {
                Err(format!("mount '{instance}' is {}, which holds no filesystem", mount.format.name()))
            }
            Needs::Store if !mount.format.has_store() => Err(format!("mount '{instance}' is {}, which holds no store", mount.format.name())),
            Needs::Block if !mount.format.is_raw() => Err(format!(
                "mount '{instance}' is {}, not raw: {}:{instance} needs 'mount {instance}: raw on DEVICE' (a device serves one mount)",
                mount.format.name(),
                source.kind.prefix
            )),
            Needs::Block if mount.read_only && !source.kind.read_only() => {
                Err(format!("mount '{instance}' is read-only: grant block-ro:{instance}"))
            }
            _ => Ok(()),
        }
    }

    pub fn check_binaries(&self, modules: &[&str]) -> Result<(), ManifestError> {
        for (i, p) in self.processes.iter().enumerate() {
            if !modules.contains(&p.binary.as_str()) {
                return Err(ManifestError::at(
                    Location::Binary(i),
                    format!("process '{}': binary '{}' is not among the boot modules", p.name, p.binary),
                ));
            }
        }
        Ok(())
    }

    /// Validate, then serialize as a `Manifest` message.
    pub fn encode(&self) -> Result<Vec<u8>, ManifestError> {
        self.validate()?;
        self.encode_unchecked()
    }

    /// Serialize without validating: only for tests that show the kernel
    /// refuses at boot what `mkmanifest --check` refuses (the kernel
    /// validates whatever it is given).
    pub fn encode_unchecked(&self) -> Result<Vec<u8>, ManifestError> {
        let mut message = capnp::message::Builder::new_default();
        let mut root = message.init_root::<manifest::Builder>();
        root.set_version(MANIFEST_VERSION);
        let mut list = root.reborrow().init_processes(self.processes.len() as u32);
        for (i, p) in self.processes.iter().enumerate() {
            let mut b = list.reborrow().get(i as u32);
            b.set_name(p.name.as_str());
            b.set_binary(p.binary.as_str());
            let mut args = b.reborrow().init_args(p.args.len() as u32);
            for (a, arg) in p.args.iter().enumerate() {
                args.set(a as u32, arg.as_str());
            }
            if let Restart::OnFailure { max } = p.restart {
                b.set_restart_on_failure(true);
                b.set_max_restarts(max);
            }
            if let Some(cpu) = p.cpu {
                b.set_pinned(true);
                b.set_cpu(cpu);
            }
            let mut grants = b.reborrow().init_grants(p.grants.len() as u32);
            for (g, grant) in p.grants.iter().enumerate() {
                let mut gb = grants.reborrow().get(g as u32);
                gb.set_name(grant.name.as_str());
                gb.set_read_only(grant.read_only);
                gb.set_terms(grant.terms.as_str());
                match &grant.source {
                    GrantSource::Kernel(s) => gb.init_source().set_kernel(s.as_str()),
                    GrantSource::Endpoint { process, endpoint } => {
                        let mut e = gb.init_source().init_endpoint();
                        e.set_process(process.as_str());
                        e.set_endpoint(endpoint.as_str());
                    }
                }
            }
            let mut exports = b.init_exports(p.exports.len() as u32);
            for (e, export) in p.exports.iter().enumerate() {
                exports.set(e as u32, export.as_str());
            }
        }
        let mut mounts = root.init_mounts(self.mounts.len() as u32);
        for (i, m) in self.mounts.iter().enumerate() {
            let mut b = mounts.reborrow().get(i as u32);
            b.set_name(m.name.as_str());
            b.set_format(match m.format {
                MountFormat::CaposRo1 => capnp_format::Caposro1,
                MountFormat::CaposWf1 => capnp_format::Caposwf1,
                MountFormat::CaposSt1 => capnp_format::Caposst1,
                MountFormat::Colocated => capnp_format::Colocated,
                MountFormat::Fat => capnp_format::Fat,
                MountFormat::Raw => capnp_format::Raw,
            });
            b.set_device(m.device.as_str());
            b.set_read_only(m.read_only);
            match &m.partition {
                PartitionSelect::Whole => b.get_partition().set_whole(()),
                PartitionSelect::Number(n) => b.get_partition().set_number(*n),
                PartitionSelect::Type(t) => b.get_partition().set_type_guid(t.as_str()),
            }
        }
        Ok(write_message(&message)?)
    }

    /// Read and validate a `Manifest` message (what the kernel does at boot).
    pub fn decode(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let reader = read_message(bytes)?;
        let root = reader.get_root::<manifest::Reader>()?;
        if root.get_version() != MANIFEST_VERSION {
            return Err(ManifestError::at(
                Location::Manifest,
                format!("manifest version {} is not the supported {MANIFEST_VERSION}", root.get_version()),
            ));
        }
        let list = root.get_processes()?;
        if list.len() as usize > MAX_PROCESSES {
            return Err(ManifestError::at(Location::Manifest, format!("more than {MAX_PROCESSES} processes")));
        }
        let mut processes = Vec::new();
        for p in list {
            processes.push(read_process(p)?);
        }
        let mount_list = root.get_mounts()?;
        if mount_list.len() as usize > MAX_MOUNTS {
            return Err(ManifestError::at(Location::Mount(MAX_MOUNTS), format!("more than {MAX_MOUNTS} mounts")));
        }
        let mut mounts = Vec::new();
        for m in mount_list {
            mounts.push(read_mount(m)?);
        }
        let m = Manifest { processes, mounts };
        m.validate()?;
        Ok(m)
    }
}

fn read_mount(m: mount_spec::Reader<'_>) -> Result<MountSpec, ManifestError> {
    let format = match m.get_format().map_err(|e| MessageError::UnknownEnumValue { field: "MountSpec.format", value: e.0 })? {
        capnp_format::Caposro1 => MountFormat::CaposRo1,
        capnp_format::Caposwf1 => MountFormat::CaposWf1,
        capnp_format::Caposst1 => MountFormat::CaposSt1,
        capnp_format::Colocated => MountFormat::Colocated,
        capnp_format::Fat => MountFormat::Fat,
        capnp_format::Raw => MountFormat::Raw,
    };
    let partition = match m.get_partition().which().map_err(|e| MessageError::UnknownEnumValue { field: "MountSpec.partition", value: e.0 })? {
        mount_spec::partition::Whole(()) => PartitionSelect::Whole,
        mount_spec::partition::Number(n) => PartitionSelect::Number(n),
        mount_spec::partition::TypeGuid(t) => PartitionSelect::Type(text(t?)?),
    };
    Ok(MountSpec { name: text(m.get_name()?)?, format, device: text(m.get_device()?)?, partition, read_only: m.get_read_only() })
}

fn read_process(p: process_spec::Reader<'_>) -> Result<ProcessSpec, ManifestError> {
    let mut spec = ProcessSpec { name: text(p.get_name()?)?, binary: text(p.get_binary()?)?, ..Default::default() };
    if p.get_restart_on_failure() {
        spec.restart = Restart::OnFailure { max: p.get_max_restarts() };
    }
    if p.get_pinned() {
        spec.cpu = Some(p.get_cpu());
    }
    for a in p.get_args()? {
        spec.args.push(text(a?)?);
    }
    for g in p.get_grants()? {
        let source = match g.get_source().which().map_err(|e| MessageError::UnknownEnumValue { field: "Grant.source", value: e.0 })? {
            grant::source::Kernel(s) => GrantSource::Kernel(text(s?)?),
            grant::source::Endpoint(e) => {
                let e = e?;
                GrantSource::Endpoint { process: text(e.get_process()?)?, endpoint: text(e.get_endpoint()?)? }
            }
        };
        spec.grants.push(Grant { name: text(g.get_name()?)?, source, read_only: g.get_read_only(), terms: text(g.get_terms()?)? });
    }
    for e in p.get_exports()? {
        spec.exports.push(text(e?)?);
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(name: &str, source: &str) -> Grant {
        Grant { name: name.into(), source: GrantSource::Kernel(source.into()), read_only: false, terms: String::new() }
    }

    fn sample() -> Manifest {
        Manifest {
            processes: vec![
                ProcessSpec {
                    name: "pong".into(),
                    binary: "/boot/pong".into(),
                    args: vec![],
                    grants: vec![kernel("console", "console")],
                    exports: vec!["ping".into()],
                    restart: Restart::OnFailure { max: 5 },
                    cpu: Some(3),
                },
                ProcessSpec {
                    name: "ping".into(),
                    binary: "/boot/ping".into(),
                    args: vec!["--rounds".into(), "10".into()],
                    grants: vec![
                        kernel("console", "console"),
                        kernel("data", "fs:root"),
                        Grant { name: "server".into(), source: GrantSource::Endpoint { process: "pong".into(), endpoint: "ping".into() }, read_only: true, terms: "listen=80 udp".into() },
                    ],
                    exports: vec![],
                    restart: Restart::Never,
                    cpu: None,
                },
            ],
            mounts: vec![MountSpec {
                name: "root".into(),
                format: MountFormat::CaposWf1,
                device: "nvme0n1".into(),
                partition: PartitionSelect::Whole,
                read_only: false,
            }],
        }
    }

    fn mount(name: &str, format: MountFormat, device: &str, partition: PartitionSelect) -> MountSpec {
        MountSpec { name: name.into(), format, device: device.into(), partition, read_only: false }
    }

    #[test]
    fn mounts_round_trip_in_every_shape() {
        let mut m = sample();
        m.mounts = vec![
            mount("a", MountFormat::CaposRo1, "vblk0", PartitionSelect::Whole),
            mount("b", MountFormat::CaposSt1, "nvme0n1", PartitionSelect::Number(3)),
            mount("f", MountFormat::Fat, "vblk1", PartitionSelect::Whole),
            MountSpec { read_only: true, ..mount("root", MountFormat::Colocated, "nvme0n1", PartitionSelect::Type("A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890".into())) },
        ];
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn a_device_serves_one_mount() {
        let mut m = sample();
        m.mounts.push(mount("other", MountFormat::CaposSt1, "nvme0n1", PartitionSelect::Number(1)));
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Mount(1));
        assert!(msg.contains("mount 'other' claims nvme0n1 partition 1, already claimed by mount 'root' (nvme0n1)"), "{msg}");
        // Two different partitions of one disk are two claims; the same one twice is refused.
        m.mounts[0].partition = PartitionSelect::Number(2);
        m.validate().unwrap();
        m.mounts[1].partition = PartitionSelect::Number(2);
        assert!(invalid(&m).1.contains("already claimed by mount 'root'"));
        // Another device is fine.
        m.mounts[1].device = "vblk0".into();
        m.validate().unwrap();
    }

    #[test]
    fn any_device_needs_a_partition_type() {
        let mut m = sample();
        m.mounts[0].device = ANY_DEVICE.into();
        assert!(invalid(&m).1.contains("device 'any' needs 'partition type GUID'"));
        m.mounts[0].partition = PartitionSelect::Number(2);
        assert!(invalid(&m).1.contains("device 'any' needs"));
        let t = "A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890".to_string();
        m.mounts[0].partition = PartitionSelect::Type(t.clone());
        m.validate().unwrap();
        // Another mount of the same type anywhere is the same partition.
        m.mounts.push(mount("b", MountFormat::CaposSt1, "nvme0n1", PartitionSelect::Type(t)));
        assert!(invalid(&m).1.contains("already claimed by mount 'root'"));
        // A whole device beside `any` is checked once the kernel has found the partition.
        m.mounts[1].partition = PartitionSelect::Whole;
        m.validate().unwrap();
    }

    #[test]
    fn mount_fields_are_checked() {
        let mut m = sample();
        m.mounts[0].partition = PartitionSelect::Number(0);
        assert!(invalid(&m).1.contains("partition number 0 is not 1 to 1024"));
        m.mounts[0].partition = PartitionSelect::Type("a59ae5ff-8ff6-4afc-89b0-2cee37a58890".into());
        assert!(invalid(&m).1.contains("is not an uppercase GUID"), "lowercase is canonicalised by the tool, not accepted raw");
        m.mounts[0].partition = PartitionSelect::Type("A59AE5FF-8FF6-4AFC-89B0-2CEE37A5889".into());
        assert!(invalid(&m).1.contains("is not an uppercase GUID"));
        m.mounts[0].partition = PartitionSelect::Whole;
        m.mounts[0].device = "nvme/0".into();
        assert!(invalid(&m).1.contains("invalid device name 'nvme/0'"));
        let mut m = sample();
        m.mounts.push(m.mounts[0].clone());
        m.mounts[1].device = "vblk1".into();
        assert!(invalid(&m).1.contains("duplicate mount 'root'"));
        assert_eq!(canonical_guid("a59ae5ff-8ff6-4afc-89b0-2cee37a58890").as_deref(), Some("A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890"));
        assert_eq!(canonical_guid("A59AE5FF8FF64AFC89B02CEE37A58890"), None);
    }

    #[test]
    fn storage_grants_need_a_mount_that_holds_them() {
        let mut m = sample();
        m.processes[1].grants[1] = kernel("data", "fs:nothere");
        assert!(invalid(&m).1.contains("grant 'data': fs:nothere names no mount"), "{}", invalid(&m).1);
        m.processes[1].grants[1] = kernel("data", "store:root");
        assert!(invalid(&m).1.contains("mount 'root' is caposwf1, which holds no store"));
        m.processes[1].grants[1] = kernel("data", "store-ro:root");
        assert!(invalid(&m).1.contains("which holds no store"));
        m.mounts[0].format = MountFormat::CaposSt1;
        m.validate().unwrap();
        m.processes[1].grants[1] = kernel("data", "fs-ro:root");
        assert!(invalid(&m).1.contains("mount 'root' is caposst1, which holds no filesystem"));
        m.mounts[0].format = MountFormat::Colocated;
        m.validate().unwrap();
        assert!(KernelSource::parse("fs-ro:root").unwrap().kind.read_only());
        assert!(!KernelSource::parse("fs:root").unwrap().kind.read_only());
    }

    #[test]
    fn a_nic_has_one_holder() {
        let mut m = sample();
        m.processes[1].grants.push(kernel("nic", "nic:net0"));
        m.processes[0].grants.push(kernel("nic1", "nic:net1"));
        m.validate().unwrap();
        assert_eq!(Manifest::decode(&m.encode().unwrap()).unwrap(), m);
        assert_eq!(KernelSource::parse("nic:net0").unwrap().kind.interface_id, interfaces::NIC);
        // The same device to a second process ...
        m.processes[0].grants[1] = kernel("nic1", "nic:net0");
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 3));
        assert!(msg.contains("grant 'nic': nic:net0 is already granted to process 'pong' (grant 'nic1'); a network device has one holder"), "{msg}");
        // ... or twice to the same one.
        m.processes[0].grants[1] = kernel("nic1", "nic:net1");
        m.processes[0].grants.push(kernel("nic2", "nic:net1"));
        assert!(invalid(&m).1.contains("nic:net1 is already granted to process 'pong' (grant 'nic1')"), "{}", invalid(&m).1);
        // The kernel refuses the same bytes: what encode would not write,
        // encode_unchecked does, and decode (the kernel's path) refuses.
        let bytes = m.encode_unchecked().unwrap();
        assert!(m.encode().is_err());
        assert!(Manifest::decode(&bytes).unwrap_err().to_string().contains("a network device has one holder"));
        // A nic needs no mount, and a bad instance name is refused as any other.
        assert!(KernelSource::parse("nic:").is_err());
    }

    #[test]
    fn block_grants_need_a_raw_mount_and_one_writer() {
        let mut m = sample();
        m.mounts.push(mount("disk", MountFormat::Raw, "nvme1n1", PartitionSelect::Number(2)));
        m.processes[1].grants.push(kernel("blk", "block:disk"));
        m.validate().unwrap();
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m, "raw round-trips through the schema");
        // A raw mount holds no filesystem and no store.
        m.processes[1].grants[1] = kernel("data", "fs:disk");
        assert!(invalid(&m).1.contains("mount 'disk' is raw, which holds no filesystem"), "{}", invalid(&m).1);
        m.processes[1].grants[1] = kernel("data", "store-ro:disk");
        assert!(invalid(&m).1.contains("mount 'disk' is raw, which holds no store"));
        // block: of a formatted mount is refused.
        m.processes[1].grants[1] = kernel("data", "block-ro:root");
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 1));
        assert!(msg.contains("mount 'root' is caposwf1, not raw: block-ro:root needs 'mount root: raw on DEVICE'"), "{msg}");
        m.processes[1].grants[1] = kernel("data", "fs:root");
        // A second writable grant of the same mount, in another process or the same one.
        m.processes[0].grants.push(kernel("blk2", "block:disk"));
        m.validate().unwrap_err();
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 3), "the later grant is the one refused");
        assert!(msg.contains("block:disk is already granted writable to process 'pong' (grant 'blk2')"), "{msg}");
        m.processes[0].grants[1] = kernel("blk2", "block-ro:disk");
        m.processes[1].grants.push(kernel("blk3", "block-ro:disk"));
        m.validate().unwrap();
        // A read-only raw mount takes block-ro only.
        m.mounts[1].read_only = true;
        assert!(invalid(&m).1.contains("mount 'disk' is read-only: grant block-ro:disk"));
        m.processes[1].grants.remove(3);
        m.validate().unwrap();
        // A raw mount claims its blocks like any mount.
        m.mounts.push(mount("fsdisk", MountFormat::CaposWf1, "nvme1n1", PartitionSelect::Whole));
        assert!(invalid(&m).1.contains("already claimed by mount 'disk'"));
        assert_eq!(KernelSource::parse("block-ro:disk").unwrap().kind.interface_id, interfaces::BLOCK_DEVICE);
        assert!(KernelSource::parse("block-ro:disk").unwrap().kind.read_only());
    }

    #[test]
    fn verdict_words_are_reserved_process_names() {
        for reserved in RESERVED_PROCESS_NAMES {
            let mut m = sample();
            m.processes[0].name = reserved.to_string();
            let e = m.validate().unwrap_err();
            assert!(e.to_string().contains("reserved"), "{e}");
        }
    }

    #[test]
    fn encodes_and_decodes() {
        let m = sample();
        let bytes = m.encode().unwrap();
        assert_eq!(Manifest::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn restart_policies_and_read_only_grants_round_trip_and_are_checked() {
        let mut m = sample();
        let back = Manifest::decode(&m.encode().unwrap()).unwrap();
        assert_eq!(back.processes[0].restart, Restart::OnFailure { max: 5 });
        assert_eq!(back.processes[1].restart, Restart::Never);
        assert!(back.processes[1].grants[2].read_only);
        assert!(!back.processes[1].grants[0].read_only);
        m.processes[0].restart = Restart::OnFailure { max: 0 };
        assert!(invalid(&m).1.contains("restart budget 0"));
        m.processes[0].restart = Restart::OnFailure { max: MAX_RESTART_BUDGET + 1 };
        assert_eq!(invalid(&m).0, Location::Restart(0));
        m.processes[0].restart = Restart::OnFailure { max: DEFAULT_MAX_RESTARTS };
        m.processes[1].grants[0].read_only = true;
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 0));
        assert!(msg.contains("-ro form"), "{msg}");
    }

    #[test]
    fn grant_terms_round_trip_and_are_checked() {
        let mut m = sample();
        let back = Manifest::decode(&m.encode().unwrap()).unwrap();
        assert_eq!(back.processes[1].grants[2].terms, "listen=80 udp");
        assert_eq!(back.processes[1].grants[0].terms, "");
        m.processes[1].grants[2].terms = "listen=80 conect".into();
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 2));
        assert!(msg.contains("unknown term 'conect'"), "{msg}");
        m.processes[1].grants[2].terms = "listen=80".into();
        m.processes[1].grants[0].terms = "udp".into();
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 0));
        assert!(msg.contains("apply to endpoint grants"), "{msg}");
    }

    #[test]
    fn control_names_a_process_of_the_manifest() {
        let mut m = sample();
        m.processes[1].grants.push(kernel("ctl", "control:pong"));
        m.validate().unwrap();
        assert_eq!(KernelSource::parse("control:pong").unwrap().kind.interface_id, interfaces::PROCESS_CONTROL);
        m.processes[1].grants.push(kernel("ctl2", "control:nobody"));
        let (at, msg) = invalid(&m);
        assert_eq!(at, Location::Grant(1, 4));
        assert!(msg.contains("control:nobody names no process"), "{msg}");
        assert!(KernelSource::parse("control").is_err(), "control needs a process name");
    }

    #[test]
    fn kernel_sources_parse() {
        assert_eq!(KernelSource::parse("console").unwrap().kind.prefix, "console");
        let s = KernelSource::parse("store:persist").unwrap();
        assert_eq!((s.kind.prefix, s.instance, s.kind.interface_id), ("store", Some("persist"), interfaces::STORE));
        assert_eq!(KernelSource::parse("fs:root").unwrap().kind.interface_id, interfaces::DIRECTORY);
        assert!(KernelSource::parse("disk").unwrap_err().contains("unknown kernel source 'disk'"));
        assert!(KernelSource::parse("console:x").unwrap_err().contains("takes no instance"));
        assert!(KernelSource::parse("store").unwrap_err().contains("needs an instance"));
        assert!(KernelSource::parse("fs:").unwrap_err().contains("invalid fs instance"));
        assert!(KernelSource::parse("fs:a/b").is_err());
    }

    fn invalid(m: &Manifest) -> (Location, String) {
        match m.validate() {
            Err(ManifestError::Invalid { at, message }) => (at, message),
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    /// A process NAME exporting `exports`, granted `calls` (PROC/ENDPOINT).
    fn server(name: &str, exports: &[&str], calls: &[&str]) -> ProcessSpec {
        ProcessSpec {
            name: name.into(),
            binary: format!("/boot/{name}"),
            args: vec![],
            grants: core::iter::once(kernel("console", "console"))
                .chain(calls.iter().enumerate().map(|(i, c)| {
                    let (process, endpoint) = c.split_once('/').unwrap();
                    Grant { name: format!("g{i}"), source: GrantSource::Endpoint { process: process.into(), endpoint: endpoint.into() }, read_only: false, terms: String::new() }
                }))
                .collect(),
            exports: exports.iter().map(|e| e.to_string()).collect(),
            restart: Restart::Never,
            cpu: None,
        }
    }

    fn manifest(processes: Vec<ProcessSpec>) -> Manifest {
        Manifest { processes, ..Default::default() }
    }

    #[test]
    fn two_servers_granted_each_other_are_refused_naming_the_ring() {
        let m = manifest(vec![server("a", &["x"], &["b/y"]), server("b", &["y"], &["a/x"])]);
        assert_eq!(
            invalid(&m),
            (
                Location::Grant(1, 1),
                "endpoint grants form a cycle: 'a' may call 'b' (grant 'g0': process:b/y), 'b' may call 'a' (grant 'g0': process:a/x); \
                 processes that call each other in a ring can block forever (each serves one call at a time)"
                    .into()
            )
        );
        // Read-only badges change nothing: the caller still waits.
        let mut m = m;
        m.processes[0].grants[1].read_only = true;
        assert!(invalid(&m).1.starts_with("endpoint grants form a cycle"));
    }

    #[test]
    fn longer_rings_are_refused_and_chains_and_fans_are_not() {
        // a -> b -> c -> a, found from a whatever order the grants are in.
        let m = manifest(vec![server("a", &["x"], &["b/y"]), server("b", &["y"], &["c/z"]), server("c", &["z"], &["a/x"])]);
        let (at, message) = invalid(&m);
        assert_eq!(at, Location::Grant(2, 1));
        assert!(message.contains("'a' may call 'b' (grant 'g0': process:b/y), 'b' may call 'c' (grant 'g0': process:c/z), 'c' may call 'a' (grant 'g0': process:a/x)"), "{message}");
        assert_eq!(grant_cycle(&m), Some(vec![(0, 1), (1, 1), (2, 1)]));

        // A ring not through the first process, behind a chain into it.
        let m = manifest(vec![server("client", &[], &["s1/e"]), server("s1", &["e"], &["s2/e"]), server("s2", &["e"], &["s3/e"]), server("s3", &["e"], &["s2/e"])]);
        assert_eq!(grant_cycle(&m), Some(vec![(2, 1), (3, 1)]));
        assert!(invalid(&m).1.contains("'s2' may call 's3' (grant 'g0': process:s3/e), 's3' may call 's2'"));

        // Two endpoints of one server, each process granted the other's
        // second one: still a ring (a process serves one call at a time).
        let m = manifest(vec![server("a", &["x1", "x2"], &["b/y2"]), server("b", &["y1", "y2"], &["a/x2"])]);
        assert!(grant_cycle(&m).is_some());

        // Chains, a diamond, many clients of one server: no ring.
        for m in [
            manifest(vec![server("a", &["x"], &["b/y"]), server("b", &["y"], &["c/z"]), server("c", &["z"], &[])]),
            manifest(vec![server("top", &[], &["l/e", "r/e"]), server("l", &["e"], &["bottom/e"]), server("r", &["e"], &["bottom/e"]), server("bottom", &["e"], &[])]),
            manifest(vec![server("s", &["e"], &[]), server("c1", &[], &["s/e"]), server("c2", &[], &["s/e"]), server("c3", &["e"], &["s/e"])]),
            sample(),
        ] {
            assert_eq!(grant_cycle(&m), None);
            assert!(m.validate().is_ok(), "{:?}", m.validate());
        }
    }

    #[test]
    fn a_ring_through_64_processes_is_found() {
        let names: Vec<String> = (0..MAX_PROCESSES).map(|i| format!("p{i}")).collect();
        let procs: Vec<ProcessSpec> = (0..MAX_PROCESSES).map(|i| server(&names[i], &["e"], &[&format!("{}/e", names[(i + 1) % MAX_PROCESSES])])).collect();
        let m = manifest(procs);
        assert_eq!(grant_cycle(&m).map(|c| c.len()), Some(MAX_PROCESSES));
        assert_eq!(invalid(&m).0, Location::Grant(MAX_PROCESSES - 1, 1));
    }

    #[test]
    fn rules_are_enforced_with_locations() {
        let mut m = sample();
        m.processes[1].name = "pong".into();
        assert_eq!(invalid(&m).0, Location::Process(1));
        assert!(invalid(&m).1.contains("duplicate process 'pong'"));

        let mut m = sample();
        m.processes[0].binary.clear();
        assert_eq!(invalid(&m), (Location::Process(0), "process 'pong' has no binary".into()));

        let mut m = sample();
        m.processes[0].binary = "boot/pong".into();
        assert_eq!(invalid(&m).0, Location::Binary(0));

        let mut m = sample();
        m.processes[1].grants[2].source = GrantSource::Endpoint { process: "nobody".into(), endpoint: "ping".into() };
        assert_eq!(invalid(&m), (Location::Grant(1, 2), "grant 'server' names unknown process 'nobody'".into()));

        let mut m = sample();
        m.processes[1].grants[2].source = GrantSource::Endpoint { process: "pong".into(), endpoint: "pang".into() };
        assert_eq!(invalid(&m), (Location::Grant(1, 2), "process 'pong' exports no endpoint 'pang'".into()));

        let mut m = sample();
        m.processes[0].grants.push(Grant { name: "me".into(), source: GrantSource::Endpoint { process: "pong".into(), endpoint: "ping".into() }, read_only: false, terms: String::new() });
        assert_eq!(invalid(&m).0, Location::Grant(0, 1));
        assert!(invalid(&m).1.contains("its own endpoint"));

        let mut m = sample();
        m.processes[1].grants[1] = kernel("data", "nvme:0");
        assert_eq!(invalid(&m).0, Location::Grant(1, 1));
        assert!(invalid(&m).1.contains("unknown kernel source 'nvme:0'"));

        let mut m = sample();
        m.processes[1].grants[1].name = "console".into();
        assert_eq!(invalid(&m), (Location::Grant(1, 1), "duplicate grant 'console' in process 'ping'".into()));

        let mut m = sample();
        m.processes[0].exports.push("ping".into());
        assert_eq!(invalid(&m).0, Location::Export(0, 1));

        let mut m = sample();
        m.processes[0].name = "has space".into();
        assert_eq!(invalid(&m).0, Location::Process(0));

        assert_eq!(invalid(&Manifest::default()).0, Location::Manifest);
        let mut m = sample();
        m.processes[1].args = vec!["a".into(); MAX_ARGS + 1];
        assert!(invalid(&m).1.contains("more than"));
    }

    #[test]
    fn decode_refuses_bad_versions_and_garbage() {
        let bytes = sample().encode().unwrap();
        // version is the first u32 of the root's data section (word 2 of a
        // single-segment message: table word, root pointer word).
        let mut v2 = bytes.clone();
        assert_eq!(&v2[16..20], &MANIFEST_VERSION.to_le_bytes());
        v2[16..20].copy_from_slice(&2u32.to_le_bytes());
        assert!(Manifest::decode(&v2).unwrap_err().to_string().contains("version 2"));
        for n in 0..bytes.len() {
            assert!(Manifest::decode(&bytes[..n]).is_err());
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x20;
            let _ = Manifest::decode(&b);
        }
    }

    #[test]
    fn binaries_are_checked_against_the_module_list() {
        let m = sample();
        assert!(m.check_binaries(&["/boot/pong", "/boot/ping", "/boot/extra"]).is_ok());
        match m.check_binaries(&["/boot/pong"]) {
            Err(ManifestError::Invalid { at, message }) => {
                assert_eq!(at, Location::Binary(1));
                assert_eq!(message, "process 'ping': binary '/boot/ping' is not among the boot modules");
            }
            other => panic!("expected a missing binary, got {other:?}"),
        }
    }

    #[test]
    fn control_characters_in_arguments_and_paths_are_rejected() {
        for bad in ["\u{1b}[2J", "a\nb", "tab\there", "cr\r", "del\u{7f}", "c1\u{9b}"] {
            let mut m = sample();
            m.processes[1].args[0] = bad.into();
            let (at, message) = invalid(&m);
            assert_eq!(at, Location::Arg(1, 0), "{bad:?}");
            assert!(!message.chars().any(char::is_control), "the message itself is escaped: {message:?}");
            let mut m = sample();
            m.processes[0].binary = format!("/boot/{bad}");
            let (at, message) = invalid(&m);
            assert_eq!(at, Location::Binary(0), "{bad:?}");
            assert!(!message.chars().any(char::is_control), "the message itself is escaped: {message:?}");
        }
        // Printable text, including non-ASCII, stays allowed.
        let mut m = sample();
        m.processes[1].args[0] = "grüße # 🌍 \\x1b".into();
        assert!(m.validate().is_ok());
    }

    #[test]
    fn names() {
        for ok in ["a", "hello", "ping-2", "x_y", "0abc", &"a".repeat(MAX_NAME_BYTES)] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "-a", "_a", "a b", "a/b", "a:b", "é", &"a".repeat(MAX_NAME_BYTES + 1)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
