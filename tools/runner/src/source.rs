//! Where a serial line came from, and expectations that name a source.
//!
//! A boot's serial log mixes three writers: the firmware and the loader
//! (OVMF's `BdsDxe: ...`, `capos-boot: ...`, or a whole non-capOS guest),
//! the kernel, and the processes the kernel started. The runner judges a
//! boot by its lines, so it must know who wrote each one, or a process
//! printing `storage: mounted data` or `[PASS] smoke-heap` would pass a
//! check meant for the kernel.
//!
//! The rules, in the order the log is read:
//!
//! 1. Every line before the kernel's first line, `capos kernel starting`
//!    on a line of its own (a contract: DESIGN.md, "Contracts"), is
//!    [`Source::Other`]. No process exists before it, and the firmware and
//!    the loader stop writing once the kernel runs.
//! 2. After it, a line `[name] text`, where `name` is a manifest process
//!    name (letters, digits, `_`, `-`; not all digits; not `PASS` or
//!    `FAIL`, which `capos_abi::manifest` reserves for the kernel's own
//!    verdict lines), is [`Source::Process`]. A process writes only
//!    through its Console, which prefixes every line with `[name] ` and
//!    replaces control characters (`capos_abi::helpers::
//!    sanitize_console_line`), so a process line cannot contain a newline
//!    and always starts with its writer's name. A kernel log line starts
//!    `[    0.012345] LEVEL`, which is no process name.
//! 3. Every other line after it is [`Source::Kernel`]: its log lines and
//!    what it writes raw (self-test verdicts, panics, the prompt, the
//!    echo of typed input).
//!
//! An expectation (a `Boot`'s `expect`/`forbid` string, see [`Pattern`])
//! names the source it wants: `[name] text` wants `text` from process
//! `name`, `{other} text` a firmware or loader line, `{any} text` any
//! line (for a forbid: "nobody may print this"), and any other string a
//! kernel line. Verdict lines (`[PASS] ...`, `[FAIL] ...` at the start of
//! a line's message) count only from the sources a scenario names
//! ([`count_verdicts`]).

/// Who wrote a serial line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Kernel,
    Process(String),
    /// Firmware, the loader, or a guest that is not capOS.
    Other,
}

/// The kernel's first line (DESIGN.md, "Contracts").
pub const KERNEL_FIRST_LINE: &str = "capos kernel starting";

/// A classified serial line: its source and its message (a process line
/// without its `[name] ` prefix, a kernel log line without its timestamp
/// and level, any other line whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    pub source: Source,
    /// The line as it arrived.
    pub raw: &'a str,
    pub message: &'a str,
}

/// Classifies a log line by line, in order (also while it streams in).
#[derive(Default)]
pub struct Classifier {
    kernel_started: bool,
}

impl Classifier {
    pub fn line<'a>(&mut self, raw: &'a str) -> Line<'a> {
        if !self.kernel_started {
            if raw.trim_end() == KERNEL_FIRST_LINE {
                self.kernel_started = true;
                return Line {
                    source: Source::Kernel,
                    raw,
                    message: raw,
                };
            }
            return Line {
                source: Source::Other,
                raw,
                message: raw,
            };
        }
        if let Some((name, text)) = process_prefix(raw) {
            return Line {
                source: Source::Process(name.to_string()),
                raw,
                message: text,
            };
        }
        Line {
            source: Source::Kernel,
            raw,
            message: kernel_log_message(raw).unwrap_or(raw),
        }
    }
}

/// Every line of a boot's log, classified.
pub fn classify(lines: &[String]) -> Vec<Line<'_>> {
    let mut c = Classifier::default();
    lines.iter().map(|l| c.line(l)).collect()
}

/// The messages of process `name` in `lines`, in order.
pub fn messages_of<'a>(lines: &'a [String], name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    let mut c = Classifier::default();
    lines.iter().filter_map(move |l| match c.line(l) {
        Line {
            source: Source::Process(p),
            message,
            ..
        } if p == name => Some(message),
        _ => None,
    })
}

/// Whether `name` can be a process's name as the console prints it.
fn is_process_name(name: &str) -> bool {
    !name.is_empty()
        && !capos_abi::manifest::RESERVED_PROCESS_NAMES.contains(&name)
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.bytes().all(|b| b.is_ascii_digit())
}

/// `[name] text` with a process name: (name, text).
fn process_prefix(s: &str) -> Option<(&str, &str)> {
    let (name, text) = s.strip_prefix('[')?.split_once("] ")?;
    is_process_name(name).then_some((name, text))
}

/// The message of a kernel log line, `[ SSSSS.UUUUUU] LEVEL message`
/// (kernel/src/diag/logger.rs), or None if `line` is not one.
fn kernel_log_message(line: &str) -> Option<&str> {
    let (stamp, rest) = line.strip_prefix('[')?.split_once("] ")?;
    let (secs, micros) = stamp.split_once('.')?;
    let secs = secs.trim_start_matches(' ');
    let stamp_ok = !secs.is_empty()
        && secs.bytes().all(|b| b.is_ascii_digit())
        && micros.len() == 6
        && micros.bytes().all(|b| b.is_ascii_digit());
    let level = ["ERROR ", "WARN  ", "INFO  ", "DEBUG ", "TRACE "]
        .into_iter()
        .find(|l| rest.starts_with(l))?;
    stamp_ok.then(|| &rest[level.len()..])
}

/// The source an expectation wants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    Kernel,
    Process(String),
    Other,
    Any,
}

/// An expectation (or a forbidden line): the source it wants and the text
/// that line must contain.
///
/// Written as a string so a scenario's list stays a list of strings:
/// `[name] text` (or `[name]` alone: any line of `name`) wants process
/// `name`; `{other} text` a firmware or loader line; `{any} text` any
/// line; anything else, including `[PASS] x` (the kernel's verdicts), a
/// kernel line. A kernel or other pattern is searched in the whole line,
/// a process pattern in the process's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    pub want: Want,
    pub text: String,
}

pub const OTHER_MARK: &str = "{other} ";
pub const ANY_MARK: &str = "{any} ";

impl Pattern {
    pub fn parse(s: &str) -> Pattern {
        let (want, text) = if let Some(t) = s.strip_prefix(OTHER_MARK) {
            (Want::Other, t)
        } else if let Some(t) = s.strip_prefix(ANY_MARK) {
            (Want::Any, t)
        } else if let Some((name, t)) = process_prefix(s) {
            (Want::Process(name.to_string()), t)
        } else if let Some(name) = s
            .strip_prefix('[')
            .and_then(|r| r.strip_suffix(']'))
            .filter(|n| is_process_name(n))
        {
            (Want::Process(name.to_string()), "")
        } else {
            (Want::Kernel, s)
        };
        Pattern {
            want,
            text: text.to_string(),
        }
    }

    pub fn matches(&self, line: &Line) -> bool {
        match (&self.want, &line.source) {
            (Want::Any, _) | (Want::Kernel, Source::Kernel) | (Want::Other, Source::Other) => {
                line.raw.contains(self.text.as_str())
            }
            (Want::Process(want), Source::Process(got)) => {
                want == got && line.message.contains(self.text.as_str())
            }
            _ => false,
        }
    }

    /// The first of `lines` this pattern matches.
    pub fn find<'l, 'a>(&self, lines: &'l [Line<'a>]) -> Option<&'l Line<'a>> {
        lines.iter().find(|l| self.matches(l))
    }
}

/// Verdict lines counted from the named sources, and those ignored.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub passed: u32,
    pub failed: u32,
    /// Verdict lines from sources the scenario does not name.
    pub ignored: u32,
}

/// Count `[PASS] ...` and `[FAIL] ...` lines (the verdict at the start of
/// the message) from `sources` only.
pub fn count_verdicts(lines: &[Line], sources: &[Source]) -> Verdicts {
    let mut v = Verdicts::default();
    for l in lines {
        let passed = if l.message.starts_with("[PASS] ") {
            true
        } else if l.message.starts_with("[FAIL] ") {
            false
        } else {
            continue;
        };
        if !sources.contains(&l.source) {
            v.ignored += 1;
        } else if passed {
            v.passed += 1;
        } else {
            v.failed += 1;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(lines: &[&str]) -> Vec<String> {
        lines.iter().map(|s| s.to_string()).collect()
    }

    fn sources(lines: &[&str]) -> Vec<Source> {
        classify(&log(lines))
            .into_iter()
            .map(|l| l.source)
            .collect()
    }

    fn seen(pattern: &str, lines: &[&str]) -> bool {
        let lines = log(lines);
        Pattern::parse(pattern).find(&classify(&lines)).is_some()
    }

    const BOOTED: &str = KERNEL_FIRST_LINE;

    #[test]
    fn lines_before_the_kernel_are_other_then_kernel_and_processes() {
        let s = sources(&[
            "BdsDxe: starting Boot0002",
            "capos-boot: exiting boot services and entering the kernel",
            "[ping] before the kernel: firmware, not a process",
            BOOTED,
            "[    0.013508] INFO  tsc: 2471 MHz",
            "[12345.678901] ERROR x",
            "[PASS] stack-overflow: double fault",
            "[FAIL] boot: no memory map",
            "KERNEL PANIC at kernel/src/x.rs:1:1: y",
            "capos> status",
            "[ping] [PASS] ipc-ping: ok",
            "[shell-2_b] text",
            "[123] all digits is no name",
            "[a b] a space is no name",
        ]);
        use Source::*;
        let p = |n: &str| Process(n.to_string());
        assert_eq!(
            s,
            vec![
                Other,
                Other,
                Other,
                Kernel,
                Kernel,
                Kernel,
                Kernel,
                Kernel,
                Kernel,
                Kernel,
                p("ping"),
                p("shell-2_b"),
                Kernel,
                Kernel
            ]
        );
    }

    #[test]
    fn messages_drop_the_process_prefix_and_the_log_stamp() {
        let lines = log(&[
            BOOTED,
            "[    0.1] INFO  short stamp",
            "[    0.100000] WARN  x: y",
            "[ping] [PASS] a",
            "raw",
        ]);
        let m: Vec<&str> = classify(&lines).iter().map(|l| l.message).collect();
        assert_eq!(
            m,
            vec![
                BOOTED,
                "[    0.1] INFO  short stamp",
                "x: y",
                "[PASS] a",
                "raw"
            ]
        );
    }

    #[test]
    fn without_the_kernel_start_line_nothing_is_the_kernel() {
        // A loader error, or a guest that is not capOS.
        assert!(sources(&[
            "capos-boot: cannot boot",
            "[    0.100000] INFO  x",
            "[PASS] smoke-heap"
        ])
        .iter()
        .all(|s| *s == Source::Other));
        // The start line must be the whole line, and a process cannot print it.
        assert_eq!(
            sources(&[
                "firmware says capos kernel starting",
                "[    0.100000] INFO  x"
            ]),
            vec![Source::Other, Source::Other]
        );
        assert_eq!(
            sources(&[BOOTED, "[hostile] capos kernel starting"])[1],
            Source::Process("hostile".into())
        );
    }

    #[test]
    fn patterns_name_their_source() {
        assert_eq!(
            Pattern::parse("mem: usable="),
            Pattern {
                want: Want::Kernel,
                text: "mem: usable=".into()
            }
        );
        assert_eq!(
            Pattern::parse("[PASS] smoke-heap").want,
            Want::Kernel,
            "PASS is the kernel's, not a process"
        );
        assert_eq!(
            Pattern::parse("[ping] [PASS] x"),
            Pattern {
                want: Want::Process("ping".into()),
                text: "[PASS] x".into()
            }
        );
        assert_eq!(
            Pattern::parse("[hello]"),
            Pattern {
                want: Want::Process("hello".into()),
                text: String::new()
            }
        );
        assert_eq!(
            Pattern::parse("{other} capos-boot: cannot boot"),
            Pattern {
                want: Want::Other,
                text: "capos-boot: cannot boot".into()
            }
        );
        assert_eq!(
            Pattern::parse("{any} panic"),
            Pattern {
                want: Want::Any,
                text: "panic".into()
            }
        );
        assert_eq!(Pattern::parse("(unix ").want, Want::Kernel);
    }

    #[test]
    fn a_userspace_line_never_satisfies_a_kernel_expectation() {
        assert!(seen(
            "storage: mounted data",
            &[
                BOOTED,
                "[    0.100000] INFO  storage: mounted data: caposwf1 on nvme0n1"
            ]
        ));
        assert!(!seen(
            "storage: mounted data",
            &[BOOTED, "[evil] storage: mounted data: caposwf1 on nvme0n1"]
        ));
        assert!(!seen(
            "[PASS] smoke-heap",
            &[BOOTED, "[evil] [PASS] smoke-heap"]
        ));
        assert!(!seen(
            "[PASS] smoke-heap",
            &[BOOTED, "[evil] [    0.100000] INFO  [PASS] smoke-heap"]
        ));
        // Nor a firmware or loader line.
        assert!(!seen(
            "storage: mounted data",
            &["capos-boot: storage: mounted data", BOOTED]
        ));
        assert!(!seen(
            BOOTED,
            &[
                "[x] capos kernel starting",
                "capos-boot: capos kernel starting"
            ]
        ));
    }

    #[test]
    fn a_process_expectation_wants_that_process() {
        assert!(seen(
            "[ping] [PASS] ipc-ping",
            &[BOOTED, "[ping] [PASS] ipc-ping: ok"]
        ));
        assert!(
            !seen(
                "[ping] [PASS] ipc-ping",
                &[BOOTED, "[pong] [PASS] ipc-ping: ok"]
            ),
            "another process"
        );
        assert!(
            !seen(
                "[ping] [PASS] ipc-ping",
                &[BOOTED, "[    0.200000] INFO  [ping] [PASS] ipc-ping"]
            ),
            "the kernel quoting a process"
        );
        assert!(
            !seen(
                "[ping] [PASS] ipc-ping",
                &["[ping] [PASS] ipc-ping", BOOTED]
            ),
            "before the kernel: not a process"
        );
        // The text is searched in the message, after the prefix.
        assert!(!seen("[ping] ping", &[BOOTED, "[ping] pong"]));
        assert!(seen("[hello]", &[BOOTED, "[hello] anything"]));
    }

    #[test]
    fn messages_of_one_process() {
        let lines = log(&[
            "[check] firmware",
            BOOTED,
            "[check] a",
            "[other] b",
            "[    0.100000] INFO  [check] c",
            "[check] d",
        ]);
        assert_eq!(
            messages_of(&lines, "check").collect::<Vec<_>>(),
            vec!["a", "d"]
        );
    }

    #[test]
    fn other_and_any_patterns() {
        let boot = [
            "BdsDxe: loading Boot0002",
            "capos-boot: boot menu",
            "  1) smoke (default)",
            BOOTED,
            "[    0.100000] INFO  booting entry 'x'",
            "[p] panic: y",
        ];
        assert!(seen("{other} capos-boot: boot menu", &boot));
        assert!(seen("{other}   1) smoke (default)", &boot));
        assert!(
            !seen("{other} booting entry 'x'", &boot),
            "a kernel line is not other"
        );
        assert!(
            !seen("capos-boot: boot menu", &boot),
            "a loader line is not the kernel's"
        );
        assert!(seen("{any} panic", &boot));
        assert!(!seen("panic", &boot), "a process's panic is no kernel line");
    }

    #[test]
    fn verdicts_count_only_from_named_sources() {
        let lines = log(&[
            "[PASS] from the firmware",
            BOOTED,
            "[    0.100000] INFO  [PASS] smoke-heap: ok",
            "[PASS] stack-overflow: raw",
            "[    0.200000] INFO  cmdline: 'x [PASS] y' is no verdict",
            "[ping] [PASS] a",
            "[ping] [FAIL] b: broke",
            "[ping] text [FAIL] not at the start",
            "[evil] [PASS] forged",
            "[evil] [FAIL] forged",
        ]);
        let c = classify(&lines);
        let named = [Source::Kernel, Source::Process("ping".into())];
        assert_eq!(
            count_verdicts(&c, &named),
            Verdicts {
                passed: 3,
                failed: 1,
                ignored: 3
            }
        );
        assert_eq!(
            count_verdicts(&c, &[Source::Kernel]),
            Verdicts {
                passed: 2,
                failed: 0,
                ignored: 5
            }
        );
    }
}
