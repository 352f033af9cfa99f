//! Parser for the subset of Limine's `limine.conf` that capOS's loader reads.
//!
//! The format is Limine's (version 8 and later): global `key: value` lines,
//! then entries that start with a line `/Name` and hold indented `key: value`
//! lines. `#` starts a comment line. Keys are case-insensitive.
//!
//! Understood globals: `timeout` (seconds or `no`), `default_entry` (1-based),
//! plus `serial`, `verbose`, `quiet`, `graphics`, `interface_*`, `term_*`,
//! `wallpaper*`, `editor_enabled`, `hash_mismatch_panic`, `randomise_memory`,
//! which are accepted and ignored (they only concern Limine's menu).
//! Understood entry keys: `protocol` (must be `limine`), `path` (alias
//! `kernel_path`), `cmdline` (alias `kernel_cmdline`), `module_path`
//! (repeatable), `module_cmdline` (alias `module_string`, applies to the
//! module named just before), `kaslr` (accepted; this loader never
//! relocates), `comment`. Anything else is a warning, not an error, so a
//! config written for real Limine still boots here.
//!
//! Paths are Limine URIs on the boot volume: `boot():/path` or the older
//! `boot:///path`. Other resources (`hdd(…)`, `guid(…)`, `boot(N)`) are
//! refused with a message.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

/// A parsed `limine.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Seconds to show the menu; `None` for `timeout: no` (wait forever).
    pub timeout: Option<u64>,
    /// Index into `entries` (0-based) of the entry booted by default.
    pub default_entry: usize,
    pub entries: Vec<Entry>,
    /// Unknown keys and other things worth telling the user.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Kernel path on the boot volume, `/`-separated, starting with `/`.
    pub kernel_path: String,
    pub cmdline: String,
    pub modules: Vec<Module>,
    /// Line of the entry's header, for messages.
    pub line: usize,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub path: String,
    pub cmdline: String,
}

/// A configuration error, with the 1-based line it was found on (0 when it
/// concerns the whole file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "limine.conf: {}", self.message)
        } else {
            write!(f, "limine.conf line {}: {}", self.line, self.message)
        }
    }
}

/// Refuse absurd files early; a real config is a few hundred bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;
const MAX_ENTRIES: usize = 64;
const MAX_MODULES: usize = 64;
const MAX_VALUE_LEN: usize = 4096;

const IGNORED_GLOBALS: &[&str] = &[
    "serial", "serial_baudrate", "verbose", "quiet", "graphics", "editor_enabled",
    "hash_mismatch_panic", "randomise_memory", "randomize_memory", "remember_last_entry",
    "backdrop", "wallpaper", "wallpaper_style",
];

fn err(line: usize, message: impl Into<String>) -> ConfigError {
    ConfigError { line, message: message.into() }
}

/// Parse a whole `limine.conf`.
pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
    if bytes.len() > MAX_CONFIG_BYTES {
        return Err(err(0, format!("file is {} bytes, more than the {} allowed", bytes.len(), MAX_CONFIG_BYTES)));
    }
    let text = core::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        err(line, "not valid UTF-8")
    })?;

    let mut timeout = Some(5);
    let mut default_entry_line = (1usize, 0usize);
    let mut entries: Vec<Entry> = Vec::new();
    let mut warnings = Vec::new();
    // Per-entry state while inside an entry.
    let mut protocol_seen: Option<usize> = None;

    for (idx, raw) in text.lines().enumerate() {
        let line_no = idx + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.contains('\0') {
            return Err(err(line_no, "contains a NUL byte"));
        }
        if let Some(rest) = line.strip_prefix('/') {
            finish_entry(&entries, protocol_seen)?;
            // `//Name` is a sub-entry in Limine; we flatten the hierarchy.
            let name = rest.trim_start_matches('/').trim_start_matches('+').trim();
            if name.is_empty() {
                return Err(err(line_no, "entry header '/' without a name"));
            }
            if entries.len() >= MAX_ENTRIES {
                return Err(err(line_no, format!("more than {} entries", MAX_ENTRIES)));
            }
            entries.push(Entry {
                name: name.to_string(),
                kernel_path: String::new(),
                cmdline: String::new(),
                modules: Vec::new(),
                line: line_no,
            });
            protocol_seen = None;
            continue;
        }
        if line.starts_with(':') {
            return Err(err(line_no, "old-style entry header ':Name' (Limine 7 syntax); write '/Name' instead"));
        }
        let Some((key, value)) = line.split_once(':') else {
            if line.contains('=') {
                return Err(err(line_no, format!("'{}' uses old-style KEY=value syntax; write 'key: value'", line)));
            }
            return Err(err(line_no, format!("expected 'key: value', found '{}'", line)));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if value.len() > MAX_VALUE_LEN {
            return Err(err(line_no, format!("value of '{}' is longer than {} bytes", key, MAX_VALUE_LEN)));
        }
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(err(line_no, format!("invalid key '{}'", key)));
        }

        let Some(entry) = entries.last_mut() else {
            // Global option.
            match key.as_str() {
                "timeout" => {
                    timeout = if value.eq_ignore_ascii_case("no") {
                        None
                    } else {
                        Some(value.parse::<u64>().map_err(|_| {
                            err(line_no, format!("timeout must be a number of seconds or 'no', found '{}'", value))
                        })?)
                    };
                }
                "default_entry" => {
                    let n = value.parse::<usize>().map_err(|_| {
                        err(line_no, format!("default_entry must be a positive number, found '{}'", value))
                    })?;
                    if n == 0 {
                        return Err(err(line_no, "default_entry counts from 1"));
                    }
                    default_entry_line = (n, line_no);
                }
                k if IGNORED_GLOBALS.contains(&k) || k.starts_with("interface_") || k.starts_with("term_") => {}
                k => warnings.push(format!("line {}: unknown global option '{}' ignored", line_no, k)),
            }
            continue;
        };

        match key.as_str() {
            "protocol" => {
                if !value.eq_ignore_ascii_case("limine") {
                    return Err(err(
                        line_no,
                        format!("entry '{}' asks for protocol '{}'; this loader speaks only 'limine'", entry.name, value),
                    ));
                }
                protocol_seen = Some(line_no);
            }
            "path" | "kernel_path" => {
                if !entry.kernel_path.is_empty() {
                    return Err(err(line_no, format!("entry '{}' names its kernel twice", entry.name)));
                }
                entry.kernel_path = parse_uri(value).map_err(|m| err(line_no, m))?;
            }
            "cmdline" | "kernel_cmdline" => entry.cmdline = value.to_string(),
            "module_path" => {
                if entry.modules.len() >= MAX_MODULES {
                    return Err(err(line_no, format!("more than {} modules", MAX_MODULES)));
                }
                let path = parse_uri(value).map_err(|m| err(line_no, m))?;
                entry.modules.push(Module { path, cmdline: String::new() });
            }
            "module_cmdline" | "module_string" => match entry.modules.last_mut() {
                Some(m) => m.cmdline = value.to_string(),
                None => return Err(err(line_no, format!("'{}' before any module_path", key))),
            },
            "kaslr" | "comment" => {}
            k => warnings.push(format!("line {}: unknown option '{}' in entry '{}' ignored", line_no, k, entry.name)),
        }
    }
    finish_entry(&entries, protocol_seen)?;

    if entries.is_empty() {
        return Err(err(0, "no boot entry (an entry starts with a line '/Name')"));
    }
    let (n, line) = default_entry_line;
    if n > entries.len() {
        return Err(err(line, format!("default_entry is {} but there are only {} entries", n, entries.len())));
    }
    Ok(Config { timeout, default_entry: n - 1, entries, warnings })
}

fn finish_entry(entries: &[Entry], protocol_seen: Option<usize>) -> Result<(), ConfigError> {
    let Some(entry) = entries.last() else { return Ok(()) };
    if protocol_seen.is_none() {
        return Err(err(entry.line, format!("entry '{}' has no 'protocol: limine' line", entry.name)));
    }
    if entry.kernel_path.is_empty() {
        return Err(err(entry.line, format!("entry '{}' has no kernel 'path:'", entry.name)));
    }
    Ok(())
}

/// Turn a Limine URI naming a file on the boot volume into an absolute path.
pub fn parse_uri(value: &str) -> Result<String, String> {
    let path = if let Some(p) = value.strip_prefix("boot():") {
        p
    } else if let Some(p) = value.strip_prefix("boot://") {
        // Old form `boot:///path`; `boot://N/path` names a partition.
        if !p.starts_with('/') {
            return Err(format!("'{}': partition numbers in boot:// URIs are not supported, only the boot volume", value));
        }
        p
    } else if value.starts_with("boot(") {
        return Err(format!("'{}': only boot() (the boot volume itself) is supported", value));
    } else if let Some((res, _)) = value.split_once("():").or_else(|| value.split_once("):")) {
        return Err(format!("'{}': resource '{}' is not supported, use boot():/path", value, res));
    } else {
        return Err(format!("'{}' is not a URI; write boot():/path/to/file", value));
    };
    if !path.starts_with('/') {
        return Err(format!("'{}': the path must start with '/'", value));
    }
    if path.ends_with('/') {
        return Err(format!("'{}' names a directory, not a file", value));
    }
    if path.contains('#') {
        return Err(format!("'{}': hash suffixes are not supported", value));
    }
    if path.split('/').any(|c| c == "..") {
        return Err(format!("'{}': '..' is not allowed in paths", value));
    }
    Ok(path.to_string())
}

/// The places real Limine looks for its config on the boot volume, in order.
pub const CONFIG_PATHS: &[&str] = &[
    "/limine.conf",
    "/limine/limine.conf",
    "/boot/limine.conf",
    "/boot/limine/limine.conf",
    "/EFI/BOOT/limine.conf",
];

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# capOS
timeout: 0
serial: yes

/capOS
    protocol: limine
    path: boot():/boot/capos-kernel
    cmdline: test=smoke log=debug
    module_path: boot():/boot/init
    module_cmdline: init process
    module_path: boot:///boot/data.bin

/Other
    PROTOCOL: limine
    kernel_path: boot():/k2
";

    #[test]
    fn parses_a_full_config() {
        let c = parse(GOOD.as_bytes()).unwrap();
        assert_eq!(c.timeout, Some(0));
        assert_eq!(c.default_entry, 0);
        assert_eq!(c.entries.len(), 2);
        let e = &c.entries[0];
        assert_eq!(e.name, "capOS");
        assert_eq!(e.kernel_path, "/boot/capos-kernel");
        assert_eq!(e.cmdline, "test=smoke log=debug");
        assert_eq!(
            e.modules,
            vec![
                Module { path: "/boot/init".into(), cmdline: "init process".into() },
                Module { path: "/boot/data.bin".into(), cmdline: "".into() },
            ]
        );
        assert_eq!(c.entries[1].kernel_path, "/k2");
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    }

    #[test]
    fn default_entry_and_timeout_no() {
        let text = format!("default_entry: 2\ntimeout: no\n{}", GOOD.replace("timeout: 0\n", ""));
        let c = parse(text.as_bytes()).unwrap();
        assert_eq!(c.default_entry, 1);
        assert_eq!(c.timeout, None);
        let bad = format!("default_entry: 3\n{}", GOOD);
        let e = parse(bad.as_bytes()).unwrap_err();
        assert_eq!(e.line, 1);
        assert!(e.message.contains("only 2 entries"), "{}", e);
    }

    #[test]
    fn unknown_keys_warn_but_boot() {
        let c = parse(b"wibble: 3\n/a\n protocol: limine\n path: boot():/k\n frob: 1\n").unwrap();
        assert_eq!(c.warnings.len(), 2);
        assert!(c.warnings[0].contains("wibble"));
        assert!(c.warnings[1].contains("frob"));
    }

    fn error_of(text: &str) -> ConfigError {
        parse(text.as_bytes()).expect_err("config should have been rejected")
    }

    #[test]
    fn errors_name_the_problem_and_line() {
        let e = error_of("");
        assert!(e.message.contains("no boot entry"));
        let e = error_of("/a\n path: boot():/k\n");
        assert_eq!(e.line, 1);
        assert!(e.message.contains("protocol"), "{}", e);
        let e = error_of("/a\n protocol: linux\n path: boot():/k\n");
        assert_eq!(e.line, 2);
        assert!(e.message.contains("linux"));
        let e = error_of("/a\n protocol: limine\n");
        assert!(e.message.contains("no kernel"), "{}", e);
        let e = error_of("timeout: soon\n/a\n protocol: limine\n path: boot():/k\n");
        assert_eq!(e.line, 1);
        let e = error_of(":old\nPROTOCOL=limine\n");
        assert!(e.message.contains("old-style"));
        let e = error_of("/a\n protocol: limine\n path: /k\n");
        assert_eq!(e.line, 3);
        assert!(e.message.contains("not a URI"), "{}", e);
        let e = error_of("/a\n protocol: limine\n path: hdd(1:2):/k\n");
        assert!(e.message.contains("not supported"), "{}", e);
        let e = error_of("/a\n protocol: limine\n path: boot():/../k\n");
        assert!(e.message.contains(".."));
        let e = error_of("/a\n protocol: limine\n path: boot():/k\n module_cmdline: x\n");
        assert_eq!(e.line, 4);
        let e = error_of("just some words\n");
        assert!(e.message.contains("key: value"));
    }

    #[test]
    fn rejects_binary_and_huge_files() {
        let e = parse(&[b'/', b'a', b'\n', 0xff, 0xfe]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("UTF-8"));
        let big = vec![b'#'; MAX_CONFIG_BYTES + 1];
        assert!(parse(&big).is_err());
    }

    #[test]
    fn every_prefix_of_a_good_file_parses_or_errors_cleanly() {
        // No panic on any truncation.
        for n in 0..GOOD.len() {
            let _ = parse(&GOOD.as_bytes()[..n]);
        }
    }
}
