//! The shell's plain logic: command parsing, the shell's own path
//! arithmetic, error and value formatting. No capability calls here, so
//! all of it is host-tested (`cargo test -p capos-demo-shell`); the
//! binary (`main.rs`) runs the commands against the granted capabilities.
//!
//! Paths: `/`-separated, relative to the working directory unless they
//! start with `/`. `.` is dropped and `..` removes the previous component,
//! never going above `/`: the shell resolves names itself and only ever
//! hands single names to `Directory` calls, so nothing a user types is a
//! path to the storage service. The first component names a mount (a
//! grant `fs-NAME` appears as `/NAME`).
#![no_std]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use capos_abi::capos_capnp::{ErrorCode, TimeProvenance};
/// `count(1, "key", "keys")` is `1 key`, `count(2, ..)` `2 keys`: every
/// count the shell prints goes through it (the kernel's lines too).
pub use capos_text::count::count;

pub const PROMPT: &str = "capos$ ";

/// Components of `path` taken from `cwd` (itself absolute, e.g. `/data/a`).
pub fn resolve(cwd: &str, path: &str) -> Vec<String> {
    let mut parts: Vec<String> = if path.starts_with('/') { Vec::new() } else { split(cwd) };
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            name => parts.push(name.to_string()),
        }
    }
    parts
}

fn split(p: &str) -> Vec<String> {
    p.split('/').filter(|c| !c.is_empty() && *c != ".").map(|c| c.to_string()).collect()
}

/// The absolute path of `parts`.
pub fn join(parts: &[String]) -> String {
    if parts.is_empty() {
        return String::from("/");
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(p);
    }
    s
}

/// Where `cp` writes, from the resolved FROM and TO: TO itself, or, when
/// TO is an existing directory (`to_is_dir`), FROM's name inside it (`cp
/// f dir` copies to `dir/f`, as `mv f dir` moves there). A file copied
/// onto itself is refused (the copy would truncate what it reads).
pub fn copy_target(from: &[String], to: &[String], to_is_dir: bool) -> Result<Vec<String>, String> {
    let mut target = to.to_vec();
    if to_is_dir {
        target.extend(from.last().cloned());
    }
    if target == from {
        return Err(alloc::format!("{} and {} are the same file", join(from), join(to)));
    }
    Ok(target)
}

/// A command line, parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    Empty,
    Ls(Option<String>),
    Cd(String),
    Pwd,
    Cat(String),
    Write(String, String),
    Append(String, String),
    Mkdir(String),
    Rm(String),
    Mv(String, String),
    Cp(String, String),
    Stat(String),
    Sha256(String),
    Sync,
    Put(String, String),
    Get(String),
    Has(String),
    Del(String),
    Keys(Option<String>),
    Mounts,
    Help,
    Exit,
    /// `fill PATH SIZE [SEED]`: SIZE bytes of the test pattern.
    Fill(String, u64, u64),
    Net,
    /// `icount LABEL... OPS` opens a benchmark region (Some), `icount
    /// stop` closes it (None): make bench-net's markers (abi/src/icount.rs).
    Icount(Option<(String, u64)>),
}

/// The largest `fill` (a test file, not a way to fill a disk by a typo).
pub const MAX_FILL: u64 = 64 << 20;

/// Every command and what it does (`help`).
pub const HELP: &[(&str, &str)] = &[
    ("ls [PATH]", "list a directory (/ lists the mounts)"),
    ("cd PATH", "change the working directory"),
    ("pwd", "print the working directory"),
    ("cat PATH", "print a file"),
    ("write PATH TEXT...", "create or replace a file with TEXT and a newline"),
    ("append PATH TEXT...", "add TEXT and a newline at the end of a file"),
    ("mkdir PATH", "make a directory"),
    ("rm PATH", "remove a file or an empty directory"),
    ("mv FROM TO", "rename or move, within one mount"),
    ("cp FROM TO", "copy a file, across mounts too (TO a directory: into it, same name)"),
    ("stat PATH", "size, kind, created and modified times with their source"),
    ("sha256 PATH", "sha256 of a file's contents"),
    ("fill PATH SIZE [SEED]", "create or replace a file with SIZE bytes (K, M suffixes) of the test pattern (capos_abi::pattern; seed 1)"),
    ("sync", "make every mount's changes durable"),
    ("put KEY VALUE...", "store a value under KEY"),
    ("get KEY", "print the value under KEY"),
    ("has KEY", "whether KEY exists"),
    ("del KEY", "delete KEY"),
    ("keys [PREFIX]", "list the store's keys (starting with PREFIX)"),
    ("mounts", "the filesystems and the store this shell holds, and their state"),
    ("net", "the network: address, link, the card's counters, open sockets"),
    ("icount LABEL... OPS", "open a counted region for the instruction-count benchmarks (make bench-net); icount stop closes it"),
    ("help", "this list"),
    ("exit", "sync, leave the shell and hand the console back"),
];

/// Why a line is not a command: (error code name, message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub code: &'static str,
    pub message: String,
}

fn usage(cmd: &str) -> ParseError {
    let u = HELP.iter().find(|(u, _)| u.split(' ').next() == Some(cmd)).map(|(u, _)| *u).unwrap_or(cmd);
    ParseError { code: "invalidArgument", message: alloc::format!("usage: {}", u) }
}

fn bad(message: String) -> ParseError {
    ParseError { code: "invalidArgument", message }
}

/// The words of a line, separated by spaces or tabs. `"..."` and `'...'`
/// keep spaces inside a word (`write "my notes.txt" hi`); a backslash
/// takes the next character as it is (`my\ notes.txt`, `\"`, `\\`),
/// except inside single quotes, which take everything literally; and
/// `\u{HEX}` (outside single quotes) is that Unicode character, for names
/// the serial console cannot type (`caf\u{e9}.txt`).
pub fn words(line: &str) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    // A word has started (an empty quoted word is still a word).
    let mut started = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some('\''), '\'') => quote = None,
            (Some('\''), c) => cur.push(c),
            (Some('"'), '"') => quote = None,
            (None, '"' | '\'') => {
                quote = Some(c);
                started = true;
            }
            (None, ' ' | '\t') => {
                if started {
                    out.push(core::mem::take(&mut cur));
                    started = false;
                }
            }
            (_, '\\') => {
                started = true;
                match chars.next() {
                    None => return Err(bad(String::from("a backslash at the end of the line escapes nothing"))),
                    Some('u') => cur.push(unicode_escape(&mut chars)?),
                    Some(n) => cur.push(n),
                }
            }
            (_, c) => {
                started = true;
                cur.push(c);
            }
        }
    }
    if let Some(q) = quote {
        return Err(bad(alloc::format!("unterminated {} quote", if q == '"' { "double" } else { "single" })));
    }
    if started {
        out.push(cur);
    }
    Ok(out)
}

/// After `\u`: `{HEX}`, 1 to 6 hex digits naming a Unicode scalar value.
fn unicode_escape(chars: &mut core::iter::Peekable<core::str::Chars<'_>>) -> Result<char, ParseError> {
    let bad_escape = || bad(String::from("\\u needs {HEX}: 1 to 6 hex digits of a Unicode character, e.g. \\u{e9}"));
    if chars.next() != Some('{') {
        return Err(bad_escape());
    }
    let mut hex = String::new();
    loop {
        match chars.next() {
            Some('}') => break,
            Some(c) if c.is_ascii_hexdigit() && hex.len() < 6 => hex.push(c),
            _ => return Err(bad_escape()),
        }
    }
    let v = u32::from_str_radix(&hex, 16).map_err(|_| bad_escape())?;
    char::from_u32(v).filter(|c| *c != '\0').ok_or_else(|| bad(alloc::format!("\\u{{{}}} is not a character a name can hold", hex)))
}

/// A size: digits with an optional `K` or `M` (binary: 1024, 1048576).
pub fn parse_size(s: &str) -> Option<u64> {
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1u64 << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1u64 << 20),
        _ => (s, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

/// Parse one line (words as [`words`] splits them).
pub fn parse(line: &str) -> Result<Command, ParseError> {
    let owned = words(line)?;
    let words: Vec<&str> = owned.iter().map(String::as_str).collect();
    let Some((&cmd, args)) = words.split_first() else { return Ok(Command::Empty) };
    let one = |f: fn(String) -> Command| match args {
        [a] => Ok(f(a.to_string())),
        _ => Err(usage(cmd)),
    };
    let none = |c: Command| if args.is_empty() { Ok(c) } else { Err(usage(cmd)) };
    let opt = |f: fn(Option<String>) -> Command| match args {
        [] => Ok(f(None)),
        [a] => Ok(f(Some(a.to_string()))),
        _ => Err(usage(cmd)),
    };
    let two = |f: fn(String, String) -> Command| match args {
        [a, b] => Ok(f(a.to_string(), b.to_string())),
        _ => Err(usage(cmd)),
    };
    let text = |f: fn(String, String) -> Command| match args {
        [p, rest @ ..] if !rest.is_empty() => Ok(f(p.to_string(), rest.join(" "))),
        _ => Err(usage(cmd)),
    };
    match cmd {
        "ls" => opt(Command::Ls),
        "cd" => one(Command::Cd),
        "pwd" => none(Command::Pwd),
        "cat" => one(Command::Cat),
        "write" => text(Command::Write),
        "append" => text(Command::Append),
        "mkdir" => one(Command::Mkdir),
        "rm" => one(Command::Rm),
        "mv" => two(Command::Mv),
        "cp" => two(Command::Cp),
        "stat" => one(Command::Stat),
        "sha256" => one(Command::Sha256),
        "sync" => none(Command::Sync),
        "put" => text(Command::Put),
        "get" => one(Command::Get),
        "has" => one(Command::Has),
        "del" => one(Command::Del),
        "keys" => opt(Command::Keys),
        "mounts" => none(Command::Mounts),
        "help" => none(Command::Help),
        "exit" => none(Command::Exit),
        "net" => none(Command::Net),
        "icount" => match args {
            ["stop"] => Ok(Command::Icount(None)),
            [label @ .., ops] if !label.is_empty() => {
                let ops = ops.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| bad(alloc::format!("icount: ops '{}' is not a number of at least 1", ops)))?;
                let label = label.join(" ");
                if label.contains(':') {
                    return Err(bad(String::from("icount: a label holds no ':'")));
                }
                Ok(Command::Icount(Some((label, ops))))
            }
            _ => Err(usage(cmd)),
        },
        "fill" => match args {
            [p, size] | [p, size, _] => {
                let n = parse_size(size).ok_or_else(|| bad(alloc::format!("fill: '{}' is not a size (digits, then K or M if you like)", size)))?;
                if n > MAX_FILL {
                    return Err(bad(alloc::format!("fill: {} bytes is more than the {} a fill may write", n, MAX_FILL)));
                }
                let seed = match args.get(2) {
                    Some(s) => s.parse::<u64>().map_err(|_| bad(alloc::format!("fill: seed '{}' is not a number", s)))?,
                    None => 1,
                };
                Ok(Command::Fill(p.to_string(), n, seed))
            }
            _ => Err(usage(cmd)),
        },
        other => {
            let shown: String = other.chars().take(32).collect();
            Err(ParseError { code: "invalidArgument", message: alloc::format!("unknown command '{}'; type help", shown) })
        }
    }
}

/// The schema's name of an error code (camelCase, as in capos.capnp).
pub fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::Unspecified => "unspecified",
        ErrorCode::NotFound => "notFound",
        ErrorCode::AlreadyExists => "alreadyExists",
        ErrorCode::NotADirectory => "notADirectory",
        ErrorCode::IsADirectory => "isADirectory",
        ErrorCode::NotEmpty => "notEmpty",
        ErrorCode::ReadOnly => "readOnly",
        ErrorCode::InvalidArgument => "invalidArgument",
        ErrorCode::NoSpace => "noSpace",
        ErrorCode::TooLarge => "tooLarge",
        ErrorCode::PermissionDenied => "permissionDenied",
        ErrorCode::Io => "io",
        ErrorCode::Corrupted => "corrupted",
        ErrorCode::Unsupported => "unsupported",
        ErrorCode::StaleHandle => "staleHandle",
        ErrorCode::Closed => "closed",
        ErrorCode::Busy => "busy",
        ErrorCode::Unavailable => "unavailable",
        ErrorCode::TimedOut => "timedOut",
        ErrorCode::ConnectionRefused => "connectionRefused",
        ErrorCode::ConnectionReset => "connectionReset",
    }
}

/// One line of `mounts`: a mount the shell holds and its state, from one
/// call on it (`available` with a detail, or the error's code and message:
/// a mount that failed at boot answers `unavailable` and why).
pub fn mount_line(path: &str, what: &str, state: Result<&str, (&str, &str)>) -> String {
    match state {
        Ok(detail) => alloc::format!("{}  {}: available, {}", path, what, detail),
        Err((code, message)) => alloc::format!("{}  {}: {}: {}", path, what, code, message),
    }
}

/// What `net` prints of a `Network.info` answer.
pub fn net_lines(i: &capos_serve::net::NetworkInfo) -> Vec<String> {
    let ip = |a: [u8; 4]| alloc::format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3]);
    let m = i.mac;
    let mac = alloc::format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5]);
    let address = match (i.address, i.gateway) {
        (Some((a, p)), Some(g)) => alloc::format!("{}/{} via {}{}", ip(a), p, ip(g), if i.dhcp { " (dhcp)" } else { "" }),
        (Some((a, p)), None) => alloc::format!("{}/{}, no gateway{}", ip(a), p, if i.dhcp { " (dhcp)" } else { "" }),
        (None, _) => String::from("no address yet (waiting for DHCP)"),
    };
    let c = &i.counters;
    alloc::vec![
        alloc::format!("address {}", address),
        alloc::format!("mac {}, link {}", mac, if i.link_up { "up" } else { "down" }),
        alloc::format!("rx {}, {}, {} dropped, {}", count(c.rx_frames, "frame", "frames"), count(c.rx_bytes, "byte", "bytes"), c.rx_drops, count(c.rx_errors, "error", "errors")),
        alloc::format!("tx {}, {}, {} dropped, {}", count(c.tx_frames, "frame", "frames"), count(c.tx_bytes, "byte", "bytes"), c.tx_drops, count(c.tx_errors, "error", "errors")),
        alloc::format!("{} open", count(i.open_sockets, "socket", "sockets")),
    ]
}

/// `error: <code>: <message>`.
pub fn error_line(code: &str, message: &str) -> String {
    alloc::format!("error: {}: {}", code, message)
}

pub fn provenance_name(p: TimeProvenance) -> &'static str {
    match p {
        TimeProvenance::Unknown => "unknown",
        TimeProvenance::WallClock => "wallClock",
        TimeProvenance::Rtc => "rtc",
        TimeProvenance::FatDirectoryEntry => "fatDirectoryEntry",
        TimeProvenance::FixedSourceDateEpoch => "fixedSourceDateEpoch",
        TimeProvenance::HostFileMtime => "hostFileMtime",
    }
}

/// A time for `stat`: `2024-05-01 12:00:00 UTC (wallClock)`, or
/// `unknown` when the format recorded none.
pub fn format_time(unix_nanos: i64, provenance: TimeProvenance) -> String {
    if provenance == TimeProvenance::Unknown {
        return String::from("unknown (unknown)");
    }
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = capos_text::civil::civil_from_days(days);
    alloc::format!("{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC ({})", y, m, d, rem / 3600, rem / 60 % 60, rem % 60, provenance_name(provenance))
}

/// Bytes as a printable string: UTF-8 text as is (the console replaces
/// control characters), anything else as `0x` hex.
pub fn show_bytes(b: &[u8]) -> String {
    match core::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => {
            let mut s = String::from("0x");
            for x in b {
                s.push_str(&alloc::format!("{:02x}", x));
            }
            s
        }
    }
}

/// Lowercase hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut s = String::new();
    for x in Sha256::digest(data).iter() {
        s.push_str(&alloc::format!("{:02x}", x));
    }
    s
}

/// A file's text as output lines (one per `\n`; a last line without a
/// newline is still a line).
pub fn text_lines(data: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(data);
    let mut lines: Vec<String> = text.split('\n').map(|l| l.to_string()).collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn r(cwd: &str, p: &str) -> String {
        join(&resolve(cwd, p))
    }

    #[test]
    fn paths_resolve_from_the_cwd_and_never_above_root() {
        assert_eq!(r("/", "data"), "/data");
        assert_eq!(r("/data", "a/b"), "/data/a/b");
        assert_eq!(r("/data/a", ".."), "/data");
        assert_eq!(r("/data/a", "../../.."), "/");
        assert_eq!(r("/data", "/../../etc"), "/etc");
        assert_eq!(r("/data", "./x//y/./"), "/data/x/y");
        assert_eq!(r("/data/a", "/fat"), "/fat");
        assert_eq!(r("/data", ""), "/data");
        assert_eq!(r("/", "/"), "/");
        assert_eq!(resolve("/data/a/b", "../c"), vec!["data", "a", "c"]);
    }

    #[test]
    fn icount_takes_a_label_and_ops_or_stop() {
        assert_eq!(parse("icount http GET 1 MiB 4"), Ok(Command::Icount(Some(("http GET 1 MiB".into(), 4)))));
        assert_eq!(parse("icount stop"), Ok(Command::Icount(None)));
        for bad in ["icount", "icount 4", "icount label 0", "icount label x", "icount a:b 3", "icount label -1"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cp_targets_the_file_or_into_a_directory_never_the_source_itself() {
        let p = |s: &str| resolve("/", s);
        assert_eq!(copy_target(&p("/fat/docs/a.txt"), &p("/data/b.txt"), false), Ok(p("/data/b.txt")));
        assert_eq!(copy_target(&p("/fat/docs/a.txt"), &p("/data"), true), Ok(p("/data/a.txt")));
        assert_eq!(copy_target(&p("/data/x/a.txt"), &p("/data/x/y"), true), Ok(p("/data/x/y/a.txt")));
        assert_eq!(copy_target(&p("/data/a.txt"), &p("/data/a.txt"), false), Err("/data/a.txt and /data/a.txt are the same file".into()));
        // `cp a.txt .` in /data: into the directory the file is already in.
        assert_eq!(copy_target(&p("/data/a.txt"), &resolve("/data", "."), true), Err("/data/a.txt and /data are the same file".into()));
        assert_eq!(copy_target(&resolve("/data/x", "../a.txt"), &p("/data/./a.txt"), false).unwrap_err(), "/data/a.txt and /data/a.txt are the same file");
    }

    #[test]
    fn net_shows_the_address_the_card_and_the_counters() {
        use capos_serve::net::NetworkInfo;
        use capos_serve::nic::NicCounters;
        let mut i = NetworkInfo { address: Some(([10, 0, 2, 15], 24)), gateway: Some([10, 0, 2, 2]), dhcp: true, mac: [0x52, 0x54, 0, 0x12, 0x34, 0x56], link_up: true, counters: NicCounters::default(), open_sockets: 1 };
        i.counters.rx_frames = 1;
        i.counters.rx_bytes = 590;
        assert_eq!(net_lines(&i), vec![
            "address 10.0.2.15/24 via 10.0.2.2 (dhcp)".to_string(),
            "mac 52:54:00:12:34:56, link up".into(),
            "rx 1 frame, 590 bytes, 0 dropped, 0 errors".into(),
            "tx 0 frames, 0 bytes, 0 dropped, 0 errors".into(),
            "1 socket open".into(),
        ]);
        i.address = None;
        i.link_up = false;
        assert_eq!(net_lines(&i)[0], "address no address yet (waiting for DHCP)");
        assert_eq!(net_lines(&i)[1], "mac 52:54:00:12:34:56, link down");
        assert_eq!(parse("net"), Ok(Command::Net));
        assert!(parse("net x").is_err());
    }

    #[test]
    fn counts_read_right() {
        assert_eq!(alloc::format!("({})", count(1usize, "key", "keys")), "(1 key)");
        assert_eq!(alloc::format!("({})", count(0usize, "key", "keys")), "(0 keys)");
        assert_eq!(alloc::format!("({})", count(2usize, "key", "keys")), "(2 keys)");
        assert_eq!(alloc::format!("{} at its root", count(1usize, "entry", "entries")), "1 entry at its root");
    }

    #[test]
    fn commands_parse() {
        assert_eq!(parse(""), Ok(Command::Empty));
        assert_eq!(parse("   \t "), Ok(Command::Empty));
        assert_eq!(parse("ls"), Ok(Command::Ls(None)));
        assert_eq!(parse("ls /data"), Ok(Command::Ls(Some("/data".into()))));
        assert_eq!(parse("write  notes.txt hello   big\tworld"), Ok(Command::Write("notes.txt".into(), "hello big world".into())));
        assert_eq!(parse("append a x"), Ok(Command::Append("a".into(), "x".into())));
        assert_eq!(parse("mv a b"), Ok(Command::Mv("a".into(), "b".into())));
        assert_eq!(parse("cp /fat/docs/hello.txt /data/hello.txt"), Ok(Command::Cp("/fat/docs/hello.txt".into(), "/data/hello.txt".into())));
        assert_eq!(parse(" cp\ta   b "), Ok(Command::Cp("a".into(), "b".into())));
        assert_eq!(parse("put k some value"), Ok(Command::Put("k".into(), "some value".into())));
        assert_eq!(parse("keys app/"), Ok(Command::Keys(Some("app/".into()))));
        assert_eq!(parse("exit"), Ok(Command::Exit));
    }

    #[test]
    fn quotes_and_escapes_make_names_with_spaces_and_unicode() {
        let w = |l: &str| words(l).map_err(|e| e.message);
        assert_eq!(w(r#"cat "my notes.txt""#), Ok(vec!["cat".into(), "my notes.txt".into()]));
        assert_eq!(w(r"cat my\ notes.txt"), Ok(vec!["cat".into(), "my notes.txt".into()]));
        assert_eq!(w(r#"cat 'a "b" \c'"#), Ok(vec!["cat".into(), r#"a "b" \c"#.into()]));
        assert_eq!(w(r#"cat "a \"b\" \\c""#), Ok(vec!["cat".into(), r#"a "b" \c"#.into()]));
        assert_eq!(w(r"cat caf\u{e9}.txt"), Ok(vec!["cat".into(), "caf\u{e9}.txt".into()]));
        assert_eq!(w(r#"cat "\u{1F600} x""#), Ok(vec!["cat".into(), "\u{1F600} x".into()]));
        assert_eq!(w(r"cat '\u{e9}'"), Ok(vec!["cat".into(), r"\u{e9}".into()]), "single quotes take it literally");
        assert_eq!(w(r#"a "" b"#), Ok(vec!["a".into(), "".into(), "b".into()]));
        assert_eq!(w(r#"a"b c"d"#), Ok(vec!["ab cd".into()]));
        assert_eq!(w("  a\t b  "), Ok(vec!["a".into(), "b".into()]));
        for bad in [r#"cat "open"#, "cat 'open", r"cat x\", r"cat \u{}", r"cat \u{110000}", r"cat \u{d800}", r"cat \ue9", r"cat \u{1234567}", r"cat \u{0}", r"cat \u{zz}"] {
            let e = words(bad).unwrap_err();
            assert_eq!(e.code, "invalidArgument", "{bad}");
        }
        assert_eq!(parse(r#"write "a b.txt" hello  there"#), Ok(Command::Write("a b.txt".into(), "hello there".into())));
    }

    #[test]
    fn fill_takes_a_bounded_size_and_a_seed() {
        assert_eq!(parse("fill f 1M"), Ok(Command::Fill("f".into(), 1 << 20, 1)));
        assert_eq!(parse("fill f 4k 9"), Ok(Command::Fill("f".into(), 4096, 9)));
        assert_eq!(parse("fill f 0"), Ok(Command::Fill("f".into(), 0, 1)));
        assert_eq!(parse("fill f 64M"), Ok(Command::Fill("f".into(), MAX_FILL, 1)));
        for bad in ["fill f", "fill f 1G", "fill f 65M", "fill f -1", "fill f K", "fill f 12x", "fill f 99999999999999999999", "fill f 1 x", "fill f 1 2 3", "fill f 18446744073709551615M"] {
            assert_eq!(parse(bad).map_err(|e| e.code), Err("invalidArgument"), "{bad}");
        }
    }

    #[test]
    fn bad_lines_are_errors_not_commands() {
        let e = parse("frobnicate now").unwrap_err();
        assert_eq!(e.code, "invalidArgument");
        assert!(e.message.contains("unknown command 'frobnicate'"), "{}", e.message);
        assert_eq!(parse("write onlypath").unwrap_err().message, "usage: write PATH TEXT...");
        assert_eq!(parse("mv a").unwrap_err().message, "usage: mv FROM TO");
        assert_eq!(parse("cp a").unwrap_err().message, "usage: cp FROM TO");
        assert_eq!(parse("cp").unwrap_err().message, "usage: cp FROM TO");
        assert_eq!(parse("cp a b c").unwrap_err().message, "usage: cp FROM TO");
        assert_eq!(parse("pwd extra").unwrap_err().message, "usage: pwd");
        assert!(parse("cat a b").is_err());
        let long = "x".repeat(5000);
        let e = parse(&long).unwrap_err();
        assert!(e.message.len() < 80, "an unknown command is shown cut: {}", e.message);
        assert!(parse("\u{1}\u{7f}\u{fffd}").is_err());
    }

    #[test]
    fn every_help_entry_parses_as_its_command() {
        for (u, _) in HELP {
            let line: Vec<&str> = u.split(' ').map(|w| if w.contains("SIZE") || w.contains("SEED") || w == "OPS" { "1" } else if w.ends_with("...") || w.chars().all(|c| c.is_ascii_uppercase() || c == '[' || c == ']') { "x" } else { w }).collect();
            assert!(parse(&line.join(" ")).is_ok(), "help entry '{u}' does not parse");
        }
    }

    #[test]
    fn error_lines_use_the_schema_names() {
        assert_eq!(error_line(code_name(ErrorCode::NotFound), "no such file"), "error: notFound: no such file");
        assert_eq!(code_name(ErrorCode::IsADirectory), "isADirectory");
        assert_eq!(code_name(ErrorCode::Busy), "busy");
        assert_eq!(code_name(ErrorCode::Unavailable), "unavailable");
    }

    #[test]
    fn mount_lines_say_the_state() {
        assert_eq!(mount_line("/data", "filesystem (grant fs-data)", Ok("3 entries at its root")), "/data  filesystem (grant fs-data): available, 3 entries at its root");
        assert_eq!(
            mount_line("/data", "filesystem (grant fs-data)", Err((code_name(ErrorCode::Unavailable), "mount data failed: no device"))),
            "/data  filesystem (grant fs-data): unavailable: mount data failed: no device"
        );
    }

    #[test]
    fn times_and_bytes_format() {
        assert_eq!(format_time(0, TimeProvenance::WallClock), "1970-01-01 00:00:00 UTC (wallClock)");
        assert_eq!(format_time(1_700_000_000_000_000_000, TimeProvenance::FatDirectoryEntry), "2023-11-14 22:13:20 UTC (fatDirectoryEntry)");
        assert_eq!(format_time(5, TimeProvenance::Unknown), "unknown (unknown)");
        assert_eq!(show_bytes(b"abc"), "abc");
        assert_eq!(show_bytes(&[0xff, 0x00]), "0xff00");
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(text_lines(b"a\nb\n"), vec!["a", "b"]);
        assert_eq!(text_lines(b"a\n\nb"), vec!["a", "", "b"]);
        assert!(text_lines(b"").is_empty());
    }
}
