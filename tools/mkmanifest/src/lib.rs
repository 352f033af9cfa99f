//! `mkmanifest`: the capOS boot manifest, from a readable text file to the
//! capnp `Manifest` message the kernel reads at boot, and back.
//!
//! # The text format
//!
//! ```text
//! # A comment: a line whose first non-blank character is '#'.
//! process pong                      # starts a process block (comments only on their own line!)
//!     binary: /boot/pong            # required: the boot module to run
//!     grant console: kernel:console # a capability the process sees as "console"
//!     export ping                   # an endpoint this process serves
//!
//! process ping
//!     binary: /boot/ping
//!     arg: --rounds                 # one argument per line, in order
//!     arg: 10
//!     grant console: kernel:console
//!     grant data: kernel:fs:root    # kernel source with an instance name
//!     grant server: process:pong/ping  # another process's exported endpoint
//!     grant files: process:fs/files read-only  # badge marked read-only
//!     grant fsctl: kernel:control:pong # kill / status of process pong
//!     restart: on-failure max 5     # restart when it fails (default budget 1000)
//!     cpu: 1                        # run on CPU 1 only
//!
//!
//! mount data: colocated on nvme0n1 partition type A59AE5FF-8FF6-4AFC-89B0-2CEE37A58890
//! mount docs: caposro1 on vblk0 read-only
//! ```
//!
//! (The trailing `# ...` above are annotations for this page; in a real file
//! a `#` only starts a comment at the beginning of a line, so an argument may
//! contain `#`.)
//!
//! One statement per line; indentation is optional and ignored. Statements
//! after `process NAME` belong to that process until the next `process`;
//! `mount` lines belong to the manifest wherever they stand.
//!
//! | statement | meaning |
//! |-----------|---------|
//! | `process NAME` | start a process; NAME is unique, `[A-Za-z0-9_-]`, at most 32 bytes |
//! | `binary: PATH` | the boot module to load (absolute path), exactly once per process |
//! | `arg: TEXT` | append an argument (the rest of the line, trimmed, non-empty, no control characters such as tabs) |
//! | `grant NAME: kernel:SOURCE` | a kernel capability: `console`, `clock`, `ping`, `store:NAME`, `fs:NAME`, `store-ro:NAME`, `fs-ro:NAME`, `block:NAME`, `block-ro:NAME`, `control:PROCESS` (kill / status of a process of this manifest) |
//! | `grant NAME: process:PROC/ENDPOINT` | a client capability for an endpoint PROC exports, badged by the kernel from the grant's position (`capos_abi::badge`) |
//! | `grant NAME: process:PROC/ENDPOINT read-only` | the same, with the read-only bit set in the grant's badge (`capos_abi::badge`) |
//! | `grant NAME: process:PROC/ENDPOINT [read-only] terms WORD...` | the same, with terms the serving process reads to decide what this holder may do (`StartInfo.grantTerms`); the network service's are `listen=PORTS` (ports and ranges `A-B`, comma-separated), `connect`, `udp` (`capos_abi::terms`); a malformed term is an error at its line |
//! | `export NAME` | an endpoint this process serves (its receive handle is in `StartInfo.endpoints`) |
//! | `restart: on-failure [max N]` | when it faults, is killed or exits non-zero, the kernel starts it again (same binary, args and grants; its endpoints re-bound), at most N times per boot (default 1000) |
//! | `cpu: N` | run this process on CPU N (0 is the boot CPU) and nowhere else: the scheduler never moves it, and a call or reply to it from another CPU queues it there instead of switching to it; a CPU that is not online at boot is logged and the process runs anywhere |
//! | `mount NAME: FORMAT on DEVICE [partition N \| partition type GUID] [read-only]` | what the kernel mounts before starting processes: FORMAT is `caposro1`, `caposwf1`, `caposst1`, `colocated`, `fat` (read-only) or `raw` (no format: the blocks, granted as `kernel:block:NAME`, at most one writer, or `kernel:block-ro:NAME`); DEVICE a block device (`nvme0n1`, `vblk0`), or `any` with `partition type GUID` for the one partition of that type on whichever device holds it; a GPT partition by entry number or by type GUID; grants reach it as `kernel:fs:NAME`, `kernel:store:NAME` (or `fs-ro:` / `store-ro:` for the read-only wrapper). A device (or partition) serves one mount. |
//!
//! The kernel sources are listed once, in `capos_abi::manifest::KERNEL_SOURCES`.
//! The rules (unique names, known sources, endpoints that exist, no cycle of
//! endpoint grants (a process granted its own endpoint, or processes granted
//! each other's, which could wait on each other forever), bounds) are
//! `capos_abi::manifest::Manifest::validate`,
//! the same code the kernel runs on the binary. Errors are reported as
//! `FILE:LINE: message`.
//!
//! # Usage
//!
//! ```text
//! mkmanifest IN.manifest -o OUT.bin   # compile
//! mkmanifest --check IN.manifest      # validate only
//! mkmanifest --check IN.manifest --disk nvme0n1=disk.raw ...
//!                                     # and resolve its mounts on these disks
//!                                     # (see [`disks`]: `partition 2` and
//!                                     # `partition type GUID` naming one entry)
//! mkmanifest --dump OUT.bin           # print a binary manifest in the text format
//! ```
#![forbid(unsafe_code)]

pub mod disks;

use capos_abi::manifest::{
    canonical_guid, escape_control, is_valid_name, Grant, GrantSource, KernelSource, Location, Manifest, ManifestError, MountFormat, MountSpec,
    PartitionSelect, ProcessSpec, Restart, DEFAULT_MAX_RESTARTS,
};
use std::fmt::Write as _;

/// A problem in a manifest text, at a 1-based line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl ParseError {
    fn new(line: usize, message: impl Into<String>) -> ParseError {
        ParseError { line, message: message.into() }
    }
    /// `FILE:LINE: message`.
    pub fn render(&self, file: &str) -> String {
        format!("{file}:{}: {}", self.line, self.message)
    }
}

/// Source lines of each part of a parsed manifest (for error messages).
#[derive(Default, Debug)]
struct ProcessLines {
    process: usize,
    binary: Option<usize>,
    args: Vec<usize>,
    grants: Vec<usize>,
    exports: Vec<usize>,
    restart: Option<usize>,
    cpu: Option<usize>,
}

/// The line of `mount NAME:` in a manifest text (1 if not found).
fn mount_line(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| l.trim().strip_prefix("mount").is_some_and(|r| r.starts_with(char::is_whitespace) && r.trim_start().split(':').next().map(str::trim) == Some(name)))
        .map_or(1, |i| i + 1)
}

/// Parse and validate a manifest text.
pub fn parse(text: &str) -> Result<Manifest, ParseError> {
    let mut manifest = Manifest::default();
    let mut lines: Vec<ProcessLines> = Vec::new();
    let mut mount_lines: Vec<usize> = Vec::new();
    let mut last_line = 1;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        last_line = n;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let split = line.find(|c: char| c.is_whitespace() || c == ':').unwrap_or(line.len());
        let (keyword, rest) = line.split_at(split);
        let rest = rest.trim_start();
        if keyword == "process" {
            let name = rest;
            if name.is_empty() {
                return Err(ParseError::new(n, "'process' needs a name: 'process NAME'"));
            }
            check_name(n, "process", name)?;
            if let Some(first) = manifest.processes.iter().position(|p| p.name == name) {
                return Err(ParseError::new(n, format!("duplicate process '{name}' (first defined at line {})", lines[first].process)));
            }
            manifest.processes.push(ProcessSpec { name: name.to_string(), ..Default::default() });
            lines.push(ProcessLines { process: n, ..Default::default() });
            continue;
        }
        if keyword == "mount" {
            let spec = parse_mount(n, rest)?;
            if let Some(first) = manifest.mounts.iter().position(|m| m.name == spec.name) {
                return Err(ParseError::new(n, format!("duplicate mount '{}' (first at line {})", spec.name, mount_lines[first])));
            }
            manifest.mounts.push(spec);
            mount_lines.push(n);
            continue;
        }
        if !matches!(keyword, "binary" | "arg" | "grant" | "export" | "restart" | "cpu") {
            return Err(ParseError::new(
                n,
                format!("unknown keyword '{}' (expected process, binary, arg, grant, export, restart, cpu or mount)", escape_control(keyword)),
            ));
        }
        let (Some(process), Some(at)) = (manifest.processes.last_mut(), lines.last_mut()) else {
            return Err(ParseError::new(n, format!("'{keyword}' outside a process block (start one with 'process NAME')")));
        };
        match keyword {
            "binary" => {
                let path = value_after_colon(n, "binary", rest, "binary: /boot/NAME")?;
                if let Some(first) = at.binary {
                    return Err(ParseError::new(n, format!("process '{}' already has a binary (line {first})", process.name)));
                }
                process.binary = path.to_string();
                at.binary = Some(n);
            }
            "arg" => {
                let value = value_after_colon(n, "arg", rest, "arg: TEXT")?;
                process.args.push(value.to_string());
                at.args.push(n);
            }
            "grant" => {
                let Some((name, source)) = rest.split_once(':') else {
                    return Err(ParseError::new(n, "grant needs a name and a source: 'grant NAME: kernel:SOURCE' or 'grant NAME: process:PROC/ENDPOINT'"));
                };
                let (name, source) = (name.trim(), source.trim());
                // `terms WORDS...` ends the line: what the holder may do,
                // for the server (validated as `capos_abi::terms`).
                let mut words = source.split_whitespace();
                let (source, terms) = match words.position(|w| w == "terms") {
                    Some(i) => {
                        let rest: Vec<&str> = source.split_whitespace().skip(i + 1).collect();
                        if rest.is_empty() {
                            return Err(ParseError::new(n, "'terms' needs at least one term: 'terms listen=80 connect udp'"));
                        }
                        let head: Vec<&str> = source.split_whitespace().take(i).collect();
                        (head.join(" "), rest.join(" "))
                    }
                    None => (source.to_string(), String::new()),
                };
                let source = source.as_str();
                let (source, read_only) = match source.strip_suffix("read-only") {
                    Some(s) if s.ends_with(char::is_whitespace) => (s.trim_end(), true),
                    _ => (source, false),
                };
                check_name(n, "grant", name)?;
                if let Some(first) = process.grants.iter().position(|g| g.name == name) {
                    return Err(ParseError::new(n, format!("duplicate grant '{name}' in process '{}' (first at line {})", process.name, at.grants[first])));
                }
                let source = parse_source(n, source)?;
                process.grants.push(Grant { name: name.to_string(), source, read_only, terms });
                at.grants.push(n);
            }
            "export" => {
                let name = rest;
                if name.is_empty() {
                    return Err(ParseError::new(n, "'export' needs an endpoint name: 'export NAME'"));
                }
                check_name(n, "endpoint", name)?;
                if let Some(first) = process.exports.iter().position(|e| e == name) {
                    return Err(ParseError::new(n, format!("duplicate export '{name}' in process '{}' (first at line {})", process.name, at.exports[first])));
                }
                process.exports.push(name.to_string());
                at.exports.push(n);
            }
            "restart" => {
                let value = value_after_colon(n, "restart", rest, "restart: on-failure [max N]")?;
                if let Some(first) = at.restart {
                    return Err(ParseError::new(n, format!("process '{}' already has a restart policy (line {first})", process.name)));
                }
                process.restart = parse_restart(n, value)?;
                at.restart = Some(n);
            }
            "cpu" => {
                let value = value_after_colon(n, "cpu", rest, "cpu: N")?;
                if let Some(first) = at.cpu {
                    return Err(ParseError::new(n, format!("process '{}' already has a cpu (line {first})", process.name)));
                }
                let cpu = value.parse::<u8>().map_err(|_| ParseError::new(n, format!("cpu '{}' is not a CPU index (0 to {})", escape_control(value), capos_abi::manifest::MAX_PINNED_CPU)))?;
                process.cpu = Some(cpu);
                at.cpu = Some(n);
            }
            _ => unreachable!("keywords checked above"),
        }
    }
    // Whole-manifest rules (missing binaries, endpoint references, bounds):
    // the same validation the kernel runs, mapped back to source lines.
    match manifest.validate() {
        Ok(()) => Ok(manifest),
        Err(ManifestError::Invalid { at, message }) => {
            let line = match at {
                Location::Manifest => last_line,
                Location::Process(p) => lines[p].process,
                Location::Restart(p) => lines[p].restart.unwrap_or(lines[p].process),
                Location::Cpu(p) => lines[p].cpu.unwrap_or(lines[p].process),
                Location::Binary(p) => lines[p].binary.unwrap_or(lines[p].process),
                Location::Arg(p, a) => lines[p].args.get(a).copied().unwrap_or(lines[p].process),
                Location::Grant(p, g) => lines[p].grants.get(g).copied().unwrap_or(lines[p].process),
                Location::Export(p, e) => lines[p].exports.get(e).copied().unwrap_or(lines[p].process),
                Location::Mount(m) => mount_lines.get(m).copied().unwrap_or(last_line),
            };
            Err(ParseError::new(line, message))
        }
        Err(other) => Err(ParseError::new(last_line, other.to_string())),
    }
}

fn check_name(line: usize, what: &str, name: &str) -> Result<(), ParseError> {
    if is_valid_name(name) {
        Ok(())
    } else {
        Err(ParseError::new(
            line,
            format!(
                "invalid {what} name '{}': use 1 to {} characters from A-Z a-z 0-9 _ -, starting with a letter or digit",
                escape_control(name),
                capos_abi::manifest::MAX_NAME_BYTES
            ),
        ))
    }
}

fn value_after_colon<'a>(line: usize, keyword: &str, rest: &'a str, example: &str) -> Result<&'a str, ParseError> {
    let Some(value) = rest.strip_prefix(':') else {
        return Err(ParseError::new(line, format!("'{keyword}' needs a colon: '{example}'")));
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(ParseError::new(line, format!("'{keyword}' needs a value: '{example}'")));
    }
    Ok(value)
}

const MOUNT_FORM: &str = "'mount NAME: FORMAT on DEVICE [partition N | partition type GUID] [read-only]'";

/// `NAME: FORMAT on DEVICE [partition N | partition type GUID] [read-only]`.
fn parse_mount(line: usize, rest: &str) -> Result<MountSpec, ParseError> {
    let Some((name, spec)) = rest.split_once(':') else {
        return Err(ParseError::new(line, format!("mount needs a name and a colon: {MOUNT_FORM}")));
    };
    let name = name.trim();
    check_name(line, "mount", name)?;
    let words: Vec<&str> = spec.split_whitespace().collect();
    let (format_word, device) = match words.as_slice() {
        [format, "on", device, ..] => (*format, *device),
        _ => return Err(ParseError::new(line, format!("mount '{name}': expected {MOUNT_FORM}"))),
    };
    let Some(format) = MountFormat::parse(format_word) else {
        let known: Vec<&str> = MountFormat::ALL.iter().map(|f| f.name()).collect();
        return Err(ParseError::new(line, format!("mount '{name}': unknown format '{}' (known: {})", escape_control(format_word), known.join(", "))));
    };
    check_name(line, "device", device)?;
    let mut tail = &words[3..];
    let mut partition = PartitionSelect::Whole;
    match tail {
        ["partition", "type", guid, more @ ..] => {
            let Some(canonical) = canonical_guid(guid) else {
                return Err(ParseError::new(line, format!("mount '{name}': '{}' is not a GUID (8-4-4-4-12 hex digits)", escape_control(guid))));
            };
            partition = PartitionSelect::Type(canonical);
            tail = more;
        }
        ["partition", number, more @ ..] => {
            let n = number.parse::<u32>().map_err(|_| {
                ParseError::new(line, format!("mount '{name}': partition '{}' is neither a number nor 'type GUID'", escape_control(number)))
            })?;
            partition = PartitionSelect::Number(n);
            tail = more;
        }
        _ => {}
    }
    let read_only = match tail {
        [] => false,
        ["read-only"] => true,
        other => {
            return Err(ParseError::new(line, format!("mount '{name}': unexpected '{}' (expected {MOUNT_FORM})", escape_control(&other.join(" ")))));
        }
    };
    Ok(MountSpec { name: name.to_string(), format, device: device.to_string(), partition, read_only })
}

/// `on-failure` or `on-failure max N`.
fn parse_restart(line: usize, value: &str) -> Result<Restart, ParseError> {
    let words: Vec<&str> = value.split_whitespace().collect();
    match words.as_slice() {
        ["on-failure"] => Ok(Restart::OnFailure { max: DEFAULT_MAX_RESTARTS }),
        ["on-failure", "max", n] => match n.parse::<u32>() {
            Ok(max) => Ok(Restart::OnFailure { max }),
            Err(_) => Err(ParseError::new(line, format!("restart budget '{}' is not a number", escape_control(n)))),
        },
        _ => Err(ParseError::new(line, format!("unknown restart policy '{}' (expected 'on-failure' or 'on-failure max N')", escape_control(value)))),
    }
}

fn parse_source(line: usize, source: &str) -> Result<GrantSource, ParseError> {
    if let Some(kernel) = source.strip_prefix("kernel:") {
        KernelSource::parse(kernel).map_err(|m| ParseError::new(line, m))?;
        Ok(GrantSource::Kernel(kernel.to_string()))
    } else if let Some(target) = source.strip_prefix("process:") {
        let Some((process, endpoint)) = target.split_once('/') else {
            return Err(ParseError::new(line, format!("endpoint source '{}' needs the form 'process:PROC/ENDPOINT'", escape_control(source))));
        };
        check_name(line, "process", process)?;
        check_name(line, "endpoint", endpoint)?;
        Ok(GrantSource::Endpoint { process: process.to_string(), endpoint: endpoint.to_string() })
    } else {
        Err(ParseError::new(line, format!("unknown grant source '{}': expected 'kernel:SOURCE' or 'process:PROC/ENDPOINT'", escape_control(source))))
    }
}

/// Parse, validate and encode a manifest text.
pub fn compile(text: &str) -> Result<Vec<u8>, ParseError> {
    let manifest = parse(text)?;
    manifest.encode().map_err(|e| ParseError::new(1, e.to_string()))
}

/// Print a manifest in the text format ([`parse`] reads a valid manifest
/// back unchanged). Control characters, which no valid manifest holds, are
/// printed escaped (`\x1b`, `\n`, ...), never raw, so even an unchecked
/// [`Manifest`] cannot drive a terminal or forge a line.
pub fn to_text(manifest: &Manifest) -> String {
    let e = escape_control;
    let mut out = String::new();
    for m in &manifest.mounts {
        let partition = match &m.partition {
            PartitionSelect::Whole => String::new(),
            PartitionSelect::Number(n) => format!(" partition {n}"),
            PartitionSelect::Type(t) => format!(" partition type {}", e(t)),
        };
        let ro = if m.read_only { " read-only" } else { "" };
        let _ = writeln!(out, "mount {}: {} on {}{partition}{ro}", e(&m.name), m.format.name(), e(&m.device));
    }
    if !manifest.mounts.is_empty() && !manifest.processes.is_empty() {
        out.push('\n');
    }
    for (i, p) in manifest.processes.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "process {}", e(&p.name));
        let _ = writeln!(out, "    binary: {}", e(&p.binary));
        for a in &p.args {
            let _ = writeln!(out, "    arg: {}", e(a));
        }
        for g in &p.grants {
            match &g.source {
                GrantSource::Kernel(s) => {
                    let _ = writeln!(out, "    grant {}: kernel:{}", e(&g.name), e(s));
                }
                GrantSource::Endpoint { process, endpoint } => {
                    let ro = if g.read_only { " read-only" } else { "" };
                    let terms = if g.terms.is_empty() { String::new() } else { format!(" terms {}", e(&g.terms)) };
                    let _ = writeln!(out, "    grant {}: process:{}/{}{ro}{terms}", e(&g.name), e(process), e(endpoint));
                }
            }
        }
        if let Restart::OnFailure { max } = p.restart {
            let _ = writeln!(out, "    restart: on-failure max {max}");
        }
        if let Some(cpu) = p.cpu {
            let _ = writeln!(out, "    cpu: {cpu}");
        }
        for x in &p.exports {
            let _ = writeln!(out, "    export {}", e(x));
        }
    }
    out
}

/// Decode a binary manifest (with the kernel's checks) and print it.
pub fn dump(bytes: &[u8]) -> Result<String, ManifestError> {
    Ok(to_text(&Manifest::decode(bytes)?))
}

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Compile { input: String, output: String },
    /// `disks`: `DEVICE=IMAGE` of each `--disk`.
    Check { input: String, disks: Vec<String> },
    Dump { input: String },
    Help,
}

pub const USAGE: &str = "usage: mkmanifest IN.manifest -o OUT.bin\n       mkmanifest --check IN.manifest [--disk DEVICE=IMAGE]...\n       mkmanifest --dump OUT.bin";

/// Parse the arguments (without the program name).
pub fn parse_args(args: &[String]) -> Result<Command, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match args.as_slice() {
        ["-h" | "--help"] => Ok(Command::Help),
        ["--check", input, rest @ ..] if rest.len() % 2 == 0 && rest.chunks(2).all(|p| p[0] == "--disk") => {
            Ok(Command::Check { input: input.to_string(), disks: rest.chunks(2).map(|p| p[1].to_string()).collect() })
        }
        ["--dump", input] => Ok(Command::Dump { input: input.to_string() }),
        [input, "-o", output] | ["-o", output, input] if !input.starts_with('-') => {
            Ok(Command::Compile { input: input.to_string(), output: output.to_string() })
        }
        _ => Err(USAGE.to_string()),
    }
}

/// Run a command; returns the exit status (0 ok, 1 bad manifest or I/O, 2 usage)
/// and writes diagnostics to `err`, results to `out`.
pub fn run(args: &[String], out: &mut dyn std::io::Write, err: &mut dyn std::io::Write) -> i32 {
    let command = match parse_args(args) {
        Ok(c) => c,
        Err(usage) => {
            let _ = writeln!(err, "{usage}");
            return 2;
        }
    };
    let read_text = |path: &str, err: &mut dyn std::io::Write| match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            let _ = writeln!(err, "{path}: cannot read: {e}");
            None
        }
    };
    match command {
        Command::Help => {
            let _ = writeln!(out, "{USAGE}");
            0
        }
        Command::Check { input, disks } => {
            let Some(text) = read_text(&input, err) else { return 1 };
            match parse(&text) {
                Ok(m) => {
                    let mut loaded = Vec::new();
                    for d in &disks {
                        match disks::load(d) {
                            Ok(disk) => loaded.push(disk),
                            Err(e) => {
                                let _ = writeln!(err, "{e}");
                                return 1;
                            }
                        }
                    }
                    if let Err((mount, message)) = disks::check(&m, &loaded) {
                        let _ = writeln!(err, "{}", ParseError::new(mount_line(&text, &m.mounts[mount].name), message).render(&input));
                        return 1;
                    }
                    let on = if loaded.is_empty() { String::new() } else { format!(", mounts resolved on {}", loaded.iter().map(|d| format!("{}={}", d.name, d.path)).collect::<Vec<_>>().join(" ")) };
                    let _ = writeln!(out, "{input}: ok ({} processes{on})", m.processes.len());
                    0
                }
                Err(e) => {
                    let _ = writeln!(err, "{}", e.render(&input));
                    1
                }
            }
        }
        Command::Compile { input, output } => {
            let Some(text) = read_text(&input, err) else { return 1 };
            let bytes = match compile(&text) {
                Ok(b) => b,
                Err(e) => {
                    let _ = writeln!(err, "{}", e.render(&input));
                    return 1;
                }
            };
            if let Err(e) = std::fs::write(&output, &bytes) {
                let _ = writeln!(err, "{output}: cannot write: {e}");
                return 1;
            }
            0
        }
        Command::Dump { input } => {
            let bytes = match std::fs::read(&input) {
                Ok(b) => b,
                Err(e) => {
                    let _ = writeln!(err, "{input}: cannot read: {e}");
                    return 1;
                }
            };
            match dump(&bytes) {
                Ok(text) => {
                    let _ = write!(out, "{text}");
                    0
                }
                Err(e) => {
                    let _ = writeln!(err, "{input}: {e}");
                    1
                }
            }
        }
    }
}
