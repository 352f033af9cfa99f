//! `make bench-check`: the benchmarks' figures against their committed
//! budgets (tools/bench-budgets.txt, docs/benchmarks.md "Budgets").
//!
//! The budget file, one entry a line, `#` to the end of a line a comment:
//!
//! ```text
//! <benchmark> <figure label> <budget>
//! <benchmark> <figure label> unbudgeted   # why (required)
//! <benchmark> <figure label> <budget> within <N>%   # why (required)
//! ```
//!
//! `<benchmark>` is a scenario (`bench-ipc`), the label is the figure's as
//! the benchmark prints it (words separated by single spaces), the budget
//! is executed instructions per op. `unbudgeted` lists a figure that is
//! printed but does not repeat, with the reason in the comment. `within
//! N%` allows a figure that repeats only to within N% (the network's,
//! where how frames batch follows the host's timing) that much over its
//! budget instead of [`ALLOWED_OVER`]; it too needs its reason.
//!
//! The check runs every benchmark the file names, [`jobs`] at a time
//! (crate::parallel, as `capos-run test` runs scenarios), each as its own
//! `capos-run test <benchmark>` with its log in
//! target/bench-check/, and reads the figures each writes to
//! [`FIGURES_ENV`]. A figure more than [`ALLOWED_OVER`] over its budget
//! fails; so does a budgeted figure the benchmark did not print, a printed
//! figure with no entry, and a benchmark run that failed. A figure more
//! than [`LOWER_BELOW`] under its budget passes with a note to lower it.

use crate::judge::Tally;
use crate::settings::Settings;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// The committed budget file, relative to the workspace.
pub const DEFAULT_FILE: &str = "tools/bench-budgets.txt";
/// A figure may exceed its budget by this fraction (0.5%).
pub const ALLOWED_OVER: f64 = 0.005;
/// A figure this far under its budget (3%) gets a note to lower it.
pub const LOWER_BELOW: f64 = 0.03;
pub use crate::judge::figures::FIGURES_ENV;

#[derive(Clone, Debug, PartialEq)]
pub enum Budget {
    /// Executed instructions per op, as written in the file and as a number.
    Max(String, f64),
    /// Printed but not checked; the reason.
    Unbudgeted(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub bench: String,
    pub label: String,
    pub budget: Budget,
    /// How far over its budget a figure may be (a fraction).
    pub allowed_over: f64,
}

/// Words separated by single spaces.
fn normalize(label: &str) -> String {
    label.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parse a budget file; errors name the line.
pub fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut out: Vec<Entry> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let (body, comment) = match raw.split_once('#') {
            Some((b, c)) => (b, c.trim()),
            None => (raw, ""),
        };
        let words: Vec<&str> = body.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if words.len() < 3 {
            return Err(format!("line {}: expected '<benchmark> <figure label> <budget>', got '{}'", n, body.trim()));
        }
        let bench = words[0];
        if !bench.starts_with("bench-") {
            return Err(format!("line {}: '{}' is not a benchmark (bench-...)", n, bench));
        }
        // `... <budget> within <N>%`: the allowance, then the usual line.
        let (words, allowed_over) = match words.as_slice() {
            [head @ .., within, pct] if *within == "within" && head.len() >= 3 => {
                let p = pct.strip_suffix('%').and_then(|p| p.parse::<f64>().ok()).filter(|p| p.is_finite() && *p > 0.0 && *p <= 50.0);
                let Some(p) = p else { return Err(format!("line {}: '{}' is not an allowance like '2%' (more than 0, at most 50)", n, pct)) };
                if comment.is_empty() {
                    return Err(format!("line {}: an allowance other than the usual {:.1}% needs its reason in a comment ('# ...')", n, ALLOWED_OVER * 100.0));
                }
                if head[head.len() - 1] == "unbudgeted" {
                    return Err(format!("line {}: an unbudgeted figure has no allowance", n));
                }
                (head.to_vec(), p / 100.0)
            }
            _ => (words, ALLOWED_OVER),
        };
        let label = words[1..words.len() - 1].join(" ");
        if label.contains(':') {
            return Err(format!("line {}: a figure label holds no ':'", n));
        }
        let last = words[words.len() - 1];
        let budget = if last == "unbudgeted" {
            if comment.is_empty() {
                return Err(format!("line {}: an unbudgeted figure needs its reason in a comment ('# ...')", n));
            }
            Budget::Unbudgeted(comment.to_string())
        } else {
            match last.parse::<f64>() {
                Ok(v) if v.is_finite() && v >= 0.0 => Budget::Max(last.to_string(), v),
                _ => return Err(format!("line {}: budget '{}' is neither a number of instructions nor 'unbudgeted'", n, last)),
            }
        };
        if out.iter().any(|e| e.bench == bench && e.label == label) {
            return Err(format!("line {}: {}/{} is listed twice", n, bench, label));
        }
        out.push(Entry { bench: bench.to_string(), label, budget, allowed_over });
    }
    if out.is_empty() {
        return Err("no budgets in the file".into());
    }
    Ok(out)
}

/// The benchmarks the entries name, in their order of first appearance.
pub fn benchmarks(entries: &[Entry]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in entries {
        if !out.contains(&e.bench) {
            out.push(e.bench.clone());
        }
    }
    out
}

/// What one figure (or entry) came to.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Within budget; `Some(lower_to)` when well under it.
    Pass { figure: f64, budget: String, lower_to: Option<f64> },
    /// More than `allowed` (a fraction) over its budget.
    Over { figure: f64, budget: String, allowed: f64 },
    /// A budget entry whose figure the benchmark did not print.
    Missing { budget: String },
    /// A printed figure with no entry in the file.
    NoBudget { figure: f64 },
    /// Listed as unbudgeted, printed: shown, not judged.
    Unbudgeted { figure: f64, reason: String },
}

/// `<benchmark>/<label>` and what it came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Outcome {
    pub name: String,
    pub verdict: Verdict,
}

impl Outcome {
    /// Whether this outcome fails the check (None: not judged).
    pub fn passed(&self) -> Option<bool> {
        match self.verdict {
            Verdict::Pass { .. } => Some(true),
            Verdict::Over { .. } | Verdict::Missing { .. } | Verdict::NoBudget { .. } => Some(false),
            Verdict::Unbudgeted { .. } => None,
        }
    }

    /// The text after `[PASS] <name>: ` / `[FAIL] <name>: ` (or after
    /// `-- <name>: ` when not judged).
    pub fn describe(&self) -> String {
        match &self.verdict {
            Verdict::Pass { figure, budget, .. } => format!("{:.1} <= budget {} ({})", figure, budget, relative(*figure, budget)),
            Verdict::Over { figure, budget, allowed } => {
                format!("{:.1} > budget {} ({}, allowed +{:.1}%)", figure, budget, relative(*figure, budget), allowed * 100.0)
            }
            Verdict::Missing { budget } => format!("not among the figures the benchmark printed (budget {})", budget),
            Verdict::NoBudget { figure } => format!(
                "{:.1} has no budget: add '{} {:.1}' to the budget file, or list it as unbudgeted with the reason",
                figure,
                self.name.replacen('/', " ", 1),
                figure
            ),
            Verdict::Unbudgeted { figure, reason } => format!("{:.1} (unbudgeted: {})", figure, reason),
        }
    }

    /// A note for a figure well under its budget.
    pub fn note(&self) -> Option<String> {
        match &self.verdict {
            Verdict::Pass { figure, budget, lower_to: Some(to) } => Some(format!(
                "note: {} is {} its budget {}: lower the budget to {:.1}",
                self.name,
                relative(*figure, budget).trim_start_matches('-').to_string() + " under",
                budget,
                to
            )),
            _ => None,
        }
    }
}

/// `+1.8%` / `-3.4%` of `figure` against `budget`.
fn relative(figure: f64, budget: &str) -> String {
    let b: f64 = budget.parse().unwrap_or(0.0);
    if b > 0.0 {
        format!("{:+.1}%", (figure - b) / b * 100.0)
    } else if figure > 0.0 {
        format!("+{:.1} over 0", figure)
    } else {
        "+0.0%".into()
    }
}

/// Judge one figure against its budget, [`ALLOWED_OVER`] allowed (the
/// tests' shorthand for [`judge_within`]).
#[cfg(test)]
pub fn judge(figure: f64, budget: &str, value: f64) -> Verdict {
    judge_within(figure, budget, value, ALLOWED_OVER)
}

/// Judge one figure against its budget, `allowed` (a fraction) over it
/// allowed.
pub fn judge_within(figure: f64, budget: &str, value: f64, allowed: f64) -> Verdict {
    // The figures are printed to 0.1; a hair of float error is not a
    // regression.
    if figure > value * (1.0 + allowed) + 1e-9 {
        Verdict::Over { figure, budget: budget.to_string(), allowed }
    } else {
        let lower_to = (figure < value * (1.0 - LOWER_BELOW)).then_some(figure);
        Verdict::Pass { figure, budget: budget.to_string(), lower_to }
    }
}

/// Every entry of `entries` against the figures each benchmark printed
/// (`figures[bench]`: label, per-op figure, in print order), then every
/// printed figure the file does not list. A benchmark absent from
/// `figures` printed nothing.
pub fn check(entries: &[Entry], figures: &BTreeMap<String, Vec<(String, f64)>>) -> Vec<Outcome> {
    let mut out = Vec::new();
    for bench in benchmarks(entries) {
        let printed: Vec<(String, f64)> = figures.get(&bench).map(|f| f.iter().map(|(l, v)| (normalize(l), *v)).collect()).unwrap_or_default();
        for e in entries.iter().filter(|e| e.bench == bench) {
            let figure = printed.iter().find(|(l, _)| *l == e.label).map(|(_, v)| *v);
            let verdict = match (&e.budget, figure) {
                (Budget::Max(text, value), Some(f)) => judge_within(f, text, *value, e.allowed_over),
                (Budget::Max(text, _), None) => Verdict::Missing { budget: text.clone() },
                (Budget::Unbudgeted(reason), Some(f)) => Verdict::Unbudgeted { figure: f, reason: reason.clone() },
                (Budget::Unbudgeted(_), None) => Verdict::Missing { budget: "unbudgeted".into() },
            };
            out.push(Outcome { name: format!("{}/{}", bench, e.label), verdict });
        }
        for (label, f) in &printed {
            if !entries.iter().any(|e| e.bench == bench && e.label == *label) {
                out.push(Outcome { name: format!("{}/{}", bench, label), verdict: Verdict::NoBudget { figure: *f } });
            }
        }
    }
    out
}

/// How many benchmarks run at once: BENCH_JOBS, else one per core.
pub fn jobs() -> usize {
    crate::parallel::jobs("BENCH_JOBS")
}

/// Longest first, so the last to start is a short one (measured on the
/// development host: bench-storage ~115 s, bench-blk ~95 s, bench-boot and
/// bench-ipc ~80 s, nearly all of it OVMF under -icount); others after.
const LONGEST_FIRST: &[&str] = &["bench-storage", "bench-blk", "bench-boot", "bench-ipc"];

fn run_order(benches: &[String]) -> Vec<String> {
    let mut v = benches.to_vec();
    v.sort_by_key(|b| LONGEST_FIRST.iter().position(|l| l == b).unwrap_or(LONGEST_FIRST.len()));
    v
}

/// Where benchmark `b`'s run writes its figures (FIGURES_ENV).
fn figures_file(dir: &std::path::Path, b: &str) -> PathBuf {
    dir.join(format!("{}.figures.txt", b))
}

/// Build what every benchmark boots, once, before any starts
/// (crate::parallel::prebuild): the runs then build nothing.
fn prebuild(s: &Settings, benches: &[String]) -> Result<(), String> {
    let wanted: Vec<_> = crate::scenarios::all().into_iter().filter(|sc| benches.iter().any(|b| b == sc.name)).collect();
    crate::parallel::prebuild(s, &wanted, false)
}

/// The budget file (`file`, else [`DEFAULT_FILE`]): its path, entries and
/// the benchmarks they name, each checked to be a scenario.
fn budget_file(s: &Settings, file: Option<&str>) -> Result<(PathBuf, Vec<Entry>, Vec<String>), String> {
    let path = match file {
        Some(f) => PathBuf::from(f),
        None => s.root.join(DEFAULT_FILE),
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let entries = parse(&text).map_err(|e| format!("{}: {}", path.display(), e))?;
    let benches = benchmarks(&entries);
    let known: Vec<&str> = crate::scenarios::all().iter().map(|sc| sc.name).collect();
    if let Some(b) = benches.iter().find(|b| !known.contains(&b.as_str())) {
        return Err(format!("{}: '{}' is not a scenario (`capos-run list`)", path.display(), b));
    }
    Ok((path, entries, benches))
}

/// `capos-run bench-prebuild [BUDGET_FILE]`: only the build `bench-check`
/// starts with (make test runs it at idle priority beside the scenarios,
/// so bench-check later finds it done).
pub fn bench_prebuild(s: &Settings, file: Option<&str>) -> Result<(), String> {
    let (_, _, benches) = budget_file(s, file)?;
    prebuild(s, &benches)
}

/// `capos-run bench-check [BUDGET_FILE]`: run the benchmarks the file names
/// and judge their figures. Ok(true) when every figure is within budget.
pub fn bench_check(s: &Settings, file: Option<&str>) -> Result<bool, String> {
    let total = Instant::now();
    let (path, entries, benches) = budget_file(s, file)?;
    println!("== bench-check: {} figures of {} against {}", entries.len(), benches.join(", "), path.display());
    prebuild(s, &benches)?;
    let dir = s.root.join("target/bench-check");
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
    let jobs = jobs();
    println!("== bench-check: {} at a time; logs in {}", jobs, dir.display());
    let order = run_order(&benches);
    let specs: Vec<crate::parallel::Spec> = order
        .iter()
        .map(|b| {
            let figures = figures_file(&dir, b);
            let _ = std::fs::remove_file(&figures);
            crate::parallel::Spec {
                name: b.clone(),
                args: vec!["test".into(), b.clone()],
                env: vec![(FIGURES_ENV.into(), figures.into_os_string()), (crate::build::PREBUILT_ENV.into(), "1".into())],
                log: dir.join(format!("{}.log", b)),
                alone: false,
                long: false,
            }
        })
        .collect();
    let results = crate::parallel::run(
        &s.root,
        &specs,
        jobs,
        |i| println!("== {}: started (log: {})", specs[i].name, specs[i].log.display()),
        |i, f| {
            let how = match (&f.error, f.code) {
                (Some(e), _) => format!("FAILED to start: {}", e),
                (None, Some(0)) => "passed".to_string(),
                (None, Some(c)) => format!("FAILED (exit status: {})", c),
                (None, None) => "FAILED (killed by a signal)".to_string(),
            };
            println!("== {}: {} in {} s", specs[i].name, how, f.took.as_secs());
        },
    );
    let mut t = Tally::default();
    let mut figures = BTreeMap::new();
    for (r, f) in specs.iter().zip(&results) {
        if f.code != Some(0) {
            let why = f.error.clone().unwrap_or_else(|| format!("exit {:?}", f.code));
            t.fail(&r.name, &format!("the benchmark run failed ({}); its log: {}", why, r.log.display()));
            for l in std::fs::read_to_string(&r.log).unwrap_or_default().lines().filter(|l| l.starts_with("[FAIL]") || l.starts_with("capos-run:")) {
                println!("   {}", l);
            }
        }
        let path = figures_file(&dir, &r.name);
        let printed = std::fs::read_to_string(&path).ok().map(|t| crate::judge::icount::parse_reference(&t));
        match printed {
            Some(Ok(f)) => {
                figures.insert(r.name.clone(), f);
            }
            Some(Err(e)) => t.fail(&r.name, &format!("{}: {}", path.display(), e)),
            None => {}
        }
    }
    println!("-- bench-check: executed instructions per op against {} (over by more than {:.1}%, or an entry's own `within`, fails)", path.display(), ALLOWED_OVER * 100.0);
    let mut notes = Vec::new();
    for o in check(&entries, &figures) {
        match o.passed() {
            Some(true) => t.pass(&o.name, &o.describe()),
            Some(false) => t.fail(&o.name, &o.describe()),
            None => println!("-- {}: {}", o.name, o.describe()),
        }
        notes.extend(o.note());
    }
    for n in notes {
        println!("{}", n);
    }
    println!("== bench-check: {} s in all", total.elapsed().as_secs());
    println!("{} passed, {} failed", t.passed, t.failed);
    Ok(t.failed == 0 && t.passed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# budgets
bench-ipc kernel null call 325          # per call
bench-ipc  endpoint   null round trip 1302.0
bench-blk nvme0n1 raw read 4 KiB qd32 irq unbudgeted  # host timing

bench-boot kernel entry to shell prompt 1000000
";

    fn figures(v: &[(&str, &[(&str, f64)])]) -> BTreeMap<String, Vec<(String, f64)>> {
        v.iter().map(|(b, f)| (b.to_string(), f.iter().map(|(l, x)| (l.to_string(), *x)).collect())).collect()
    }

    #[test]
    fn the_file_parses() {
        let e = parse(FILE).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[0], Entry { bench: "bench-ipc".into(), label: "kernel null call".into(), budget: Budget::Max("325".into(), 325.0), allowed_over: ALLOWED_OVER });
        assert_eq!(e[1].label, "endpoint null round trip");
        assert_eq!(e[1].budget, Budget::Max("1302.0".into(), 1302.0));
        assert_eq!(e[2].budget, Budget::Unbudgeted("host timing".into()));
        assert_eq!(benchmarks(&e), vec!["bench-ipc", "bench-blk", "bench-boot"]);
    }

    #[test]
    fn bad_lines_are_errors_that_name_the_line() {
        let err = |t: &str| parse(t).unwrap_err();
        assert!(err("bench-ipc kernel null call\n").contains("line 1"));
        assert!(err("bench-ipc kernel null call 3x5\n").contains("neither a number"));
        assert!(err("bench-ipc kernel null call -5\n").contains("neither a number"));
        assert!(err("ipc kernel null call 325\n").contains("not a benchmark"));
        assert!(err("bench-ipc 325\n").contains("expected"));
        assert!(err("# x\nbench-blk a b unbudgeted\n").contains("line 2: an unbudgeted figure needs its reason"));
        assert!(err("bench-ipc a 1\nbench-ipc a  1\n").contains("listed twice"));
        assert!(err("bench-ipc a: b 1\n").contains("no ':'"));
        assert!(err("# only comments\n\n").contains("no budgets"));
    }

    #[test]
    fn an_allowance_widens_one_figure_and_needs_a_reason() {
        let e = parse("bench-net http GET 1 MiB 1000 within 2%  # frames batch by host timing\nbench-net http GET 100 B 50\n").unwrap();
        assert_eq!((e[0].label.as_str(), &e[0].budget, e[0].allowed_over), ("http GET 1 MiB", &Budget::Max("1000".into(), 1000.0), 0.02));
        assert_eq!(e[1].allowed_over, ALLOWED_OVER);
        let figs = figures(&[("bench-net", &[("http GET 1 MiB", 1019.0), ("http GET 100 B", 50.2)])]);
        assert!(check(&e, &figs).iter().all(|o| o.passed() == Some(true)), "1.9% over passes within 2%");
        let figs = figures(&[("bench-net", &[("http GET 1 MiB", 1021.0), ("http GET 100 B", 50.2)])]);
        let out = check(&e, &figs);
        assert_eq!(out[0].passed(), Some(false));
        assert!(out[0].describe().contains("allowed +2.0%"), "{}", out[0].describe());
        let err = |t: &str| parse(t).unwrap_err();
        assert!(err("bench-net a 1000 within 2%\n").contains("needs its reason"));
        assert!(err("bench-net a 1000 within 2  # r\n").contains("not an allowance"));
        assert!(err("bench-net a 1000 within 0%  # r\n").contains("not an allowance"));
        assert!(err("bench-net a 1000 within 80%  # r\n").contains("not an allowance"));
        assert!(err("bench-net a unbudgeted within 2%  # r\n").contains("no allowance"));
    }

    #[test]
    fn over_by_more_than_half_a_percent_fails() {
        assert!(matches!(judge(325.0, "325", 325.0), Verdict::Pass { lower_to: None, .. }));
        // 0.5% over is allowed, a hair more is not.
        assert!(matches!(judge(326.6, "325", 325.0), Verdict::Pass { .. }));
        assert!(matches!(judge(326.7, "325", 325.0), Verdict::Over { .. }));
        let o = Outcome { name: "bench-ipc/kernel null call".into(), verdict: judge(331.0, "325", 325.0) };
        assert_eq!(o.passed(), Some(false));
        assert_eq!(o.describe(), "331.0 > budget 325 (+1.8%, allowed +0.5%)");
        // A budget of 0 allows nothing.
        assert!(matches!(judge(0.1, "0", 0.0), Verdict::Over { .. }));
        assert!(matches!(judge(0.0, "0.0", 0.0), Verdict::Pass { lower_to: None, .. }));
    }

    #[test]
    fn well_under_passes_with_a_note() {
        let v = judge(315.0, "325", 325.0);
        assert_eq!(v, Verdict::Pass { figure: 315.0, budget: "325".into(), lower_to: Some(315.0) });
        let o = Outcome { name: "bench-ipc/kernel null call".into(), verdict: v };
        assert_eq!(o.passed(), Some(true));
        assert_eq!(o.describe(), "315.0 <= budget 325 (-3.1%)");
        assert_eq!(o.note().unwrap(), "note: bench-ipc/kernel null call is 3.1% under its budget 325: lower the budget to 315.0");
        // 3% under or less: no note.
        assert!(matches!(judge(316.0, "325", 325.0), Verdict::Pass { lower_to: None, .. }));
    }

    #[test]
    fn missing_and_unlisted_figures_fail() {
        let e = parse(FILE).unwrap();
        let f = figures(&[
            ("bench-ipc", &[("kernel null call", 325.0), ("echo 64 B", 2230.0)]),
            ("bench-blk", &[("nvme0n1 raw read 4 KiB qd32 irq", 422.0)]),
        ]);
        let out = check(&e, &f);
        let find = |n: &str| out.iter().find(|o| o.name == n).unwrap_or_else(|| panic!("{n} in {out:?}"));
        assert_eq!(find("bench-ipc/kernel null call").passed(), Some(true));
        // Budgeted, not printed.
        let missing = find("bench-ipc/endpoint null round trip");
        assert_eq!(missing.verdict, Verdict::Missing { budget: "1302.0".into() });
        assert_eq!(missing.passed(), Some(false));
        // Printed, not budgeted.
        assert_eq!(find("bench-ipc/echo 64 B").verdict, Verdict::NoBudget { figure: 2230.0 });
        assert_eq!(find("bench-ipc/echo 64 B").passed(), Some(false));
        assert!(find("bench-ipc/echo 64 B").describe().contains("add 'bench-ipc echo 64 B 2230.0' to the budget file"));
        // Unbudgeted: shown, not judged.
        assert_eq!(find("bench-blk/nvme0n1 raw read 4 KiB qd32 irq").passed(), None);
        // A benchmark that printed nothing: each of its entries is missing.
        assert_eq!(find("bench-boot/kernel entry to shell prompt").passed(), Some(false));
        assert_eq!(out.len(), 5);
        // An unbudgeted entry whose figure is gone is stale: a failure.
        let f = figures(&[("bench-ipc", &[("kernel null call", 325.0), ("endpoint null round trip", 1302.0)])]);
        let out = check(&e, &f);
        assert_eq!(out.iter().find(|o| o.name.starts_with("bench-blk/")).unwrap().passed(), Some(false));
    }

    #[test]
    fn labels_match_however_spaced() {
        let e = parse("bench-ipc echo   64 B 2230\n").unwrap();
        let f = figures(&[("bench-ipc", &[("echo 64  B", 2240.0)])]);
        let out = check(&e, &f);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].describe(), "2240.0 <= budget 2230 (+0.4%)");
    }

    #[test]
    fn the_longest_run_first() {
        let b: Vec<String> = ["bench-ipc", "bench-new", "bench-storage", "bench-boot"].iter().map(|s| s.to_string()).collect();
        assert_eq!(run_order(&b), vec!["bench-storage", "bench-boot", "bench-ipc", "bench-new"]);
    }

    #[test]
    fn the_committed_file_parses_and_names_only_benchmarks() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join(DEFAULT_FILE)).unwrap();
        let e = parse(&text).unwrap();
        let known: Vec<&str> = crate::scenarios::all().iter().map(|sc| sc.name).collect();
        for b in benchmarks(&e) {
            assert!(known.contains(&b.as_str()), "{b} is not a scenario");
        }
    }
}
