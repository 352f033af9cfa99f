//! Executed-instruction figures: building the QEMU plugin
//! (`tools/icount/insn_count.c`), pairing its regions with the guest's
//! `icount: <label> ops=<n>` lines, and the Linux reference file.
//!
//! The protocol (abi/src/icount.rs has the guest side): the guest prints
//! `icount: <label> ops=<n>` immediately before each START marker; the
//! plugin writes `region <k> insns=<count>` at each STOP. The k-th line
//! goes with the k-th region. Any `error:` line from the plugin, a count
//! mismatch, or a region whose number is out of sequence fails the
//! benchmark.
//!
//! Milestones (`milestone <k> insns=<n>`, abi/src/icount.rs) are points of
//! the whole run: a boot that names them (bench-boot) gets one figure per
//! milestone after the first, `<first> to <that one>`, the instructions
//! executed in between (one op). Other boots ignore them: the kernel's
//! markers are in every boot.
//!
//! A region labelled `<X> spin` right after a region labelled `<X>` is the
//! guest replaying, with no I/O outstanding, exactly the poll iterations
//! it spun in `<X>` (polled I/O: how long the device takes, and so how
//! often the guest polls, is host real time). The runner prints `<X>`
//! minus its spin as `<X> excluding spin`, the figure that repeats.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Build the plugin with gcc into target/icount/ unless the shared object
/// is newer than the source.
pub fn build_plugin(root: &Path) -> Result<PathBuf, String> {
    let src = root.join("tools/icount/insn_count.c");
    let out_dir = root.join("target/icount");
    let so = out_dir.join("libinsn_count.so");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let src_time = mtime(&src).ok_or_else(|| format!("{} is missing", src.display()))?;
    if matches!(mtime(&so), Some(t) if t >= src_time) {
        return Ok(so);
    }
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {}", out_dir.display(), e))?;
    let status = Command::new("gcc")
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-Werror", "-fvisibility=hidden", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .map_err(|e| format!("cannot run gcc to build the icount plugin (Debian package gcc; run tools/setup.sh): {}", e))?;
    if !status.success() {
        return Err(format!("gcc failed to build {}", src.display()));
    }
    Ok(so)
}

/// One measured region.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub label: String,
    pub ops: u64,
    pub insns: u64,
}

impl Figure {
    pub fn per_op(&self) -> f64 {
        self.insns as f64 / self.ops as f64
    }

    /// Bytes one op moves, when its label names a size (`File.read 4 KiB`,
    /// `... 128 KiB ...`): the word before `KiB`/`MiB`.
    pub fn bytes_per_op(&self) -> Option<u64> {
        let words: Vec<&str> = self.label.split_whitespace().collect();
        words.windows(2).find_map(|w| {
            let n: u64 = w[0].parse().ok()?;
            match w[1] {
                "KiB" => Some(n << 10),
                "MiB" => Some(n << 20),
                _ => None,
            }
        })
    }

    /// Executed instructions per MiB moved, for a figure with a size.
    pub fn per_mib(&self) -> Option<f64> {
        self.bytes_per_op().filter(|b| *b > 0).map(|b| self.per_op() * (1u64 << 20) as f64 / b as f64)
    }
}

/// `<label> ops=<n>` from the guest's `icount: ` lines (serial prefixes
/// such as `[ping] ` or a log timestamp are allowed before `icount: `).
pub fn guest_regions(lines: &[String]) -> Result<Vec<(String, u64)>, String> {
    let mut out = Vec::new();
    for l in lines {
        let Some(rest) = l.split_once("icount: ").map(|(_, r)| r.trim()) else { continue };
        let (label, ops) = rest.rsplit_once(" ops=").ok_or_else(|| format!("guest line '{}' lacks ' ops=<n>'", l))?;
        let ops: u64 = ops.trim().parse().map_err(|_| format!("guest line '{}': ops is not a number", l))?;
        if ops == 0 {
            return Err(format!("guest line '{}': ops must be at least 1", l));
        }
        if label.trim().is_empty() || label.contains(':') {
            return Err(format!("guest line '{}': the label must be non-empty and hold no ':'", l));
        }
        out.push((label.trim().to_string(), ops));
    }
    Ok(out)
}

/// The plugin's counts, in order; any `error:` line (or anything else
/// unexpected) is an error. Milestone lines are read by
/// [`plugin_milestones`].
pub fn plugin_regions(text: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for l in text.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("milestone ")) {
        if let Some(e) = l.strip_prefix("error:") {
            return Err(format!("the icount plugin reported:{}", e));
        }
        let bad = || format!("unexpected icount plugin line '{}'", l);
        let rest = l.strip_prefix("region ").ok_or_else(bad)?;
        let (k, n) = rest.split_once(" insns=").ok_or_else(bad)?;
        let k: usize = k.parse().map_err(|_| bad())?;
        if k != out.len() + 1 {
            return Err(format!("icount plugin region {} out of sequence (expected {})", k, out.len() + 1));
        }
        out.push(n.trim().parse().map_err(|_| bad())?);
    }
    Ok(out)
}

/// The plugin's milestone counts, in order (errors are
/// [`plugin_regions`]'s to report).
pub fn plugin_milestones(text: &str) -> Result<Vec<u64>, String> {
    let mut out = Vec::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("milestone ")) {
        let bad = || format!("unexpected icount plugin line 'milestone {}'", l);
        let (k, n) = l.split_once(" insns=").ok_or_else(bad)?;
        let k: usize = k.parse().map_err(|_| bad())?;
        if k != out.len() + 1 {
            return Err(format!("icount plugin milestone {} out of sequence (expected {})", k, out.len() + 1));
        }
        out.push(n.trim().parse().map_err(|_| bad())?);
    }
    Ok(out)
}

/// One figure per milestone after the first, `<first> to <label>`: what
/// ran from the first milestone to that one. The plugin must have reported
/// exactly the milestones named, in order; a boot that names none ignores
/// them.
pub fn milestone_figures(labels: &[&str], counts: &[u64]) -> Result<Vec<Figure>, String> {
    if labels.is_empty() {
        return Ok(Vec::new());
    }
    if labels.len() != counts.len() {
        return Err(format!(
            "expected {} milestones ({}) but the plugin reported {}",
            labels.len(),
            labels.join(", "),
            counts.len()
        ));
    }
    let Some((first, start)) = labels.first().zip(counts.first()) else { return Ok(Vec::new()) };
    labels[1..]
        .iter()
        .zip(&counts[1..])
        .map(|(label, n)| match n.checked_sub(*start) {
            Some(d) => Ok(Figure { label: format!("{} to {}", first, label), ops: 1, insns: d }),
            None => Err(format!("milestone '{}' came before '{}'", label, first)),
        })
        .collect()
}

/// Zip the guest's lines with the plugin's regions.
pub fn pair(guest: &[(String, u64)], counts: &[u64]) -> Result<Vec<Figure>, String> {
    if guest.len() != counts.len() {
        return Err(format!(
            "the guest announced {} regions ('icount: ' lines) but the plugin counted {}",
            guest.len(),
            counts.len()
        ));
    }
    Ok(guest.iter().zip(counts).map(|((label, ops), insns)| Figure { label: label.clone(), ops: *ops, insns: *insns }).collect())
}

/// A figure as printed and as stored in target/bench/linux.txt (and, for
/// a figure whose label names a size, its cost per MiB after it, and per
/// byte for a size of a MiB or more: make bench-net's).
pub fn render(f: &Figure) -> String {
    let mut mib = f.per_mib().map(|m| format!("; {:.0} per MiB", m)).unwrap_or_default();
    if let Some(m) = f.per_mib().filter(|_| f.bytes_per_op().unwrap_or(0) >= 1 << 20) {
        mib.push_str(&format!(", {:.2} per byte", m / (1u64 << 20) as f64));
    }
    format!("{}: {:.1} executed instructions per op ({} ops, {} total){}", f.label, f.per_op(), f.ops, f.insns, mib)
}

/// Every figure rendered, each `<X> spin` that follows its `<X>` followed
/// in turn by `<X> excluding spin: <difference per op>`.
pub fn render_all(figs: &[Figure]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, f) in figs.iter().enumerate() {
        out.push(render(f));
        if i > 0 {
            let base = &figs[i - 1];
            if f.label == format!("{} spin", base.label) && f.ops == base.ops {
                let net = base.per_op() - f.per_op();
                out.push(format!("{} excluding spin: {:.1} executed instructions per op", base.label, net));
            }
        }
    }
    out
}

/// Parse target/bench/linux.txt: `#` comments, then rendered figures.
pub fn parse_reference(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for l in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let bad = || format!("bad reference line '{}'", l);
        let (label, rest) = l.split_once(": ").ok_or_else(bad)?;
        let n = rest.split_whitespace().next().ok_or_else(bad)?;
        out.push((label.to_string(), n.parse().map_err(|_| bad())?));
    }
    Ok(out)
}

/// Where `make bench-linux` stores Linux's figures.
pub fn reference_path(root: &Path) -> PathBuf {
    root.join("target/bench/linux.txt")
}

/// Where a benchmark stores its figures for another to compare with
/// (`store_figures`): target/bench/NAME.txt.
pub fn stored_path(root: &Path, name: &str) -> PathBuf {
    root.join("target/bench").join(format!("{name}.txt"))
}

/// `linux <label>: N` and the ratio, for each (ours, linux) pair found.
pub fn comparison(figs: &[Figure], reference: &[(String, f64)], pairs: &[(&str, &str)], who: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (ours, theirs) in pairs {
        let Some(f) = figs.iter().find(|f| f.label == *ours) else { continue };
        match reference.iter().find(|(l, _)| l == theirs) {
            Some((_, n)) => out.push(format!(
                "{who} {}: {:.1} executed instructions per op; {} / {who} = {:.2}x",
                theirs,
                n,
                ours,
                f.per_op() / n
            )),
            None => out.push(format!("{who} {}: not in the {who} results file", theirs)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sizes_in_labels_give_per_mib_figures() {
        let f = |label: &str, insns| Figure { label: label.into(), ops: 4, insns };
        assert_eq!(f("File.read 4 KiB", 4000).per_mib(), Some(256_000.0));
        assert_eq!(f("File.write 128 KiB", 4000).per_mib(), Some(8_000.0));
        assert_eq!(f("nvme0n1 trait read 128 KiB qd1 irq", 400).bytes_per_op(), Some(128 << 10));
        assert_eq!(f("kernel null call", 4).per_mib(), None);
        assert_eq!(f("Store.put 100 B", 4).per_mib(), None);
        assert!(render(&f("File.read 4 KiB", 4000)).ends_with("; 256000 per MiB"));
        // The reference parser still reads a rendered figure's first number.
        let parsed = parse_reference(&render(&f("File.read 4 KiB", 4000))).unwrap();
        assert_eq!(parsed, vec![("File.read 4 KiB".to_string(), 1000.0)]);
    }

    #[test]
    fn guest_lines_with_prefixes_are_found() {
        let g = guest_regions(&lines(&["noise", "[ping] icount: kernel null call ops=2000", "[ 1.0] INFO icount: nvme0n1 read 4 KiB ops=64"])).unwrap();
        assert_eq!(g, vec![("kernel null call".to_string(), 2000), ("nvme0n1 read 4 KiB".to_string(), 64)]);
    }

    #[test]
    fn bad_guest_lines_are_errors() {
        assert!(guest_regions(&lines(&["icount: no ops here"])).is_err());
        assert!(guest_regions(&lines(&["icount: x ops=zero"])).is_err());
        assert!(guest_regions(&lines(&["icount: x ops=0"])).is_err());
        assert!(guest_regions(&lines(&["icount: a: b ops=1"])).is_err());
    }

    #[test]
    fn plugin_output_is_checked() {
        assert_eq!(plugin_regions("region 1 insns=10\nregion 2 insns=7\n").unwrap(), vec![10, 7]);
        assert!(plugin_regions("region 1 insns=10\nerror: STOP without START (after region 1)\n").is_err());
        assert!(plugin_regions("region 2 insns=10\n").is_err());
        assert!(plugin_regions("region 1 insns=ten\n").is_err());
        assert!(plugin_regions("garbage\n").is_err());
    }

    #[test]
    fn milestones_are_read_apart_from_regions() {
        let text = "milestone 1 insns=1000\nregion 1 insns=10\nmilestone 2 insns=5000\nmilestone 3 insns=9000\n";
        assert_eq!(plugin_regions(text).unwrap(), vec![10]);
        assert_eq!(plugin_milestones(text).unwrap(), vec![1000, 5000, 9000]);
        assert!(plugin_milestones("milestone 2 insns=5\n").is_err());
        assert!(plugin_milestones("milestone 1 insns=x\n").is_err());
        let f = milestone_figures(&["kernel entry", "first user process", "shell prompt"], &[1000, 5000, 9000]).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(render(&f[0]), "kernel entry to first user process: 4000.0 executed instructions per op (1 ops, 4000 total)");
        assert_eq!(f[1].label, "kernel entry to shell prompt");
        assert_eq!(f[1].insns, 8000);
        // The kernel's milestones in a boot that names none are ignored;
        // a boot that names some needs exactly those.
        assert!(milestone_figures(&[], &[1000, 5000]).unwrap().is_empty());
        assert!(milestone_figures(&["a", "b", "c"], &[1000, 5000]).is_err());
    }

    #[test]
    fn pairing_needs_equal_counts() {
        let g = vec![("a".to_string(), 4)];
        assert!(pair(&g, &[]).is_err());
        assert!(pair(&g, &[1, 2]).is_err());
        let f = pair(&g, &[10]).unwrap();
        assert_eq!(render(&f[0]), "a: 2.5 executed instructions per op (4 ops, 10 total)");
    }

    #[test]
    fn spin_regions_are_subtracted() {
        let f = vec![
            Figure { label: "x polled".into(), ops: 10, insns: 1000 },
            Figure { label: "x polled spin".into(), ops: 10, insns: 400 },
            Figure { label: "y".into(), ops: 1, insns: 5 },
        ];
        let r = render_all(&f);
        assert_eq!(r.len(), 4);
        assert_eq!(r[2], "x polled excluding spin: 60.0 executed instructions per op");
    }

    #[test]
    fn reference_round_trips_and_compares() {
        let f = Figure { label: "getppid".into(), ops: 1000, insns: 338_000 };
        let text = format!("# made by make bench-linux\n{}\n", render(&f));
        let r = parse_reference(&text).unwrap();
        assert_eq!(r, vec![("getppid".to_string(), 338.0)]);
        let ours = vec![Figure { label: "kernel null call".into(), ops: 10, insns: 6760 }];
        let c = comparison(&ours, &r, &[("kernel null call", "getppid"), ("missing", "getppid")], "linux");
        assert_eq!(c, vec!["linux getppid: 338.0 executed instructions per op; kernel null call / linux = 2.00x".to_string()]);
        assert!(parse_reference("getppid 338").is_err());
    }
}
