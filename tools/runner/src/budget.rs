//! Performance budgets (`make bench-check`): each deterministic benchmark
//! figure has a committed budget in `tools/bench-budgets.txt`, and a run
//! whose figure is more than [`TOLERANCE_PERCENT`] over it fails, naming
//! the figure.
//!
//! Rules:
//! 1. The budget file has one figure a line: `BENCH | LABEL | BUDGET`
//!    (executed instructions per op); `#` starts a comment, blank lines
//!    are ignored, anything else is an error (a budget never silently
//!    drops out).
//! 2. A figure is read from a benchmark's log line
//!    `   LABEL: N executed instructions per op ...` (what the runner's
//!    icount report prints).
//! 3. Over `budget × (1 + 0.5%)`: fail. A budget with no figure in the log
//!    fails too (a benchmark that stopped printing a figure must not pass).
//!    More than 3% under: pass, with a note that the budget should come
//!    down. Budgets go down when code gets faster; a commit that raises
//!    one says why.

use std::collections::BTreeMap;

pub const TOLERANCE_PERCENT: f64 = 0.5;
pub const LOWER_HINT_PERCENT: f64 = 3.0;

#[derive(Clone, Debug, PartialEq)]
pub struct Budget {
    pub bench: String,
    pub label: String,
    pub budget: f64,
}

/// Rule 1.
pub fn parse_budgets(text: &str) -> Result<Vec<Budget>, String> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        let [bench, label, budget] = parts[..] else {
            return Err(format!("line {}: expected 'BENCH | LABEL | BUDGET', got '{}'", i + 1, raw));
        };
        let budget: f64 = budget.parse().map_err(|_| format!("line {}: '{}' is not a number", i + 1, budget))?;
        if bench.is_empty() || label.is_empty() || !(budget > 0.0) {
            return Err(format!("line {}: empty name or a budget that is not positive: '{}'", i + 1, raw));
        }
        if out.iter().any(|b: &Budget| b.bench == bench && b.label == label) {
            return Err(format!("line {}: {bench}/{label} is budgeted twice", i + 1));
        }
        out.push(Budget { bench: bench.into(), label: label.into(), budget });
    }
    Ok(out)
}

/// Rule 2: every `LABEL: N executed instructions per op` of a log.
pub fn parse_figures(log: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in log.lines() {
        let Some((head, _)) = line.split_once(" executed instructions per op") else { continue };
        let Some((label, n)) = head.rsplit_once(": ") else { continue };
        if let Ok(n) = n.trim().parse::<f64>() {
            out.insert(label.trim().to_string(), n);
        }
    }
    out
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Pass { note: Option<String> },
    Fail(String),
}

/// Rule 3 for one budget.
pub fn judge(b: &Budget, figure: Option<f64>) -> Verdict {
    let Some(f) = figure else {
        return Verdict::Fail(format!("no figure '{}' in the {} output", b.label, b.bench));
    };
    let over = (f / b.budget - 1.0) * 100.0;
    if over > TOLERANCE_PERCENT {
        Verdict::Fail(format!("{f:.1} > budget {} ({over:+.1}%, allowed +{TOLERANCE_PERCENT}%)", b.budget))
    } else if over < -LOWER_HINT_PERCENT {
        Verdict::Pass { note: Some(format!("{f:.1}, {over:+.1}% under budget {}: lower the budget", b.budget)) }
    } else {
        Verdict::Pass { note: None }
    }
}

/// Check every budget against the logs (bench name → log text); prints
/// `[PASS]`/`[FAIL]` lines and the closing count; true when all pass.
pub fn check(budgets: &[Budget], logs: &BTreeMap<String, String>) -> bool {
    let (mut passed, mut failed) = (0, 0);
    let figures: BTreeMap<&str, BTreeMap<String, f64>> = logs.iter().map(|(k, v)| (k.as_str(), parse_figures(v))).collect();
    for b in budgets {
        let figure = figures.get(b.bench.as_str()).and_then(|f| f.get(&b.label)).copied();
        match judge(b, figure) {
            Verdict::Pass { note } => {
                passed += 1;
                match note {
                    Some(n) => println!("[PASS] {}/{}: {} (note: {n})", b.bench, b.label, figure.unwrap_or(0.0)),
                    None => println!("[PASS] {}/{}: {:.1} within budget {}", b.bench, b.label, figure.unwrap_or(0.0), b.budget),
                }
            }
            Verdict::Fail(why) => {
                failed += 1;
                println!("[FAIL] {}/{}: {why}", b.bench, b.label);
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    failed == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# comment\n\nbench-ipc | kernel null call | 300  # trailing\nbench-ipc | echo 64 KiB | 20000\n";
    const LOG: &str = "   profile: bench-opt\n   kernel null call: 301.0 executed instructions per op (2000 ops, 1 total)\n   echo 64 KiB: 19818.3 executed instructions per op (500 ops, 9909134 total); 317092 per MiB\n";

    #[test]
    fn budgets_parse_and_bad_lines_are_refused() {
        let b = parse_budgets(FILE).unwrap();
        assert_eq!(b.len(), 2);
        assert_eq!(b[0], Budget { bench: "bench-ipc".into(), label: "kernel null call".into(), budget: 300.0 });
        assert!(parse_budgets("bench-ipc | x").is_err());
        assert!(parse_budgets("bench-ipc | x | many").is_err());
        assert!(parse_budgets("bench-ipc | x | 0").is_err());
        assert!(parse_budgets("bench-ipc | x | 5\nbench-ipc | x | 6").is_err(), "twice");
    }

    #[test]
    fn figures_are_read_from_the_report_lines() {
        let f = parse_figures(LOG);
        assert_eq!(f.get("kernel null call"), Some(&301.0));
        assert_eq!(f.get("echo 64 KiB"), Some(&19818.3));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn over_by_more_than_half_a_percent_fails_missing_fails_well_under_notes() {
        let b = Budget { bench: "b".into(), label: "x".into(), budget: 1000.0 };
        assert_eq!(judge(&b, Some(1005.0)), Verdict::Pass { note: None }, "exactly +0.5% passes");
        assert!(matches!(judge(&b, Some(1005.1)), Verdict::Fail(_)));
        assert!(matches!(judge(&b, Some(1010.0)), Verdict::Fail(ref s) if s.contains("+1.0%")), "a 1% regression fails");
        assert!(matches!(judge(&b, None), Verdict::Fail(ref s) if s.contains("no figure")));
        assert_eq!(judge(&b, Some(980.0)), Verdict::Pass { note: None });
        assert!(matches!(judge(&b, Some(900.0)), Verdict::Pass { note: Some(_) }));
    }

    #[test]
    fn check_names_the_failing_figure() {
        let b = parse_budgets(FILE).unwrap();
        let logs = BTreeMap::from([("bench-ipc".to_string(), LOG.to_string())]);
        assert!(check(&b, &logs), "301 is +0.33% over 300: within the tolerance");
        let tight = parse_budgets("bench-ipc | kernel null call | 297\nbench-ipc | echo 64 KiB | 20000").unwrap();
        assert!(!check(&tight, &logs), "301 is +1.3% over 297");
        assert!(!check(&b, &BTreeMap::new()), "no log, no figures: fail");
    }
}
