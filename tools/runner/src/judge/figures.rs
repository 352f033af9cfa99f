//! The executed-instruction figures of a boot that loaded the icount
//! plugin: printed, written for `make bench-check`, stored for later
//! comparisons, and set beside Linux's and other benchmarks' figures.

use crate::judge::{Outcome, Tally};
use crate::machine::bus::BENCH_LATENCY_NS;
use crate::machine::Machine;
use crate::settings::Settings;
use std::io::Write;

/// When set, `capos-run test` appends each benchmark boot's rendered
/// figures to this file ([`report_icount`]; budget.rs reads it).
pub const FIGURES_ENV: &str = "CAPOS_BENCH_FIGURES";

/// The executed-instruction figures a boot reports.
#[derive(Default)]
pub struct Figures {
    /// Load the instruction-counting plugin (tools/icount) and print the
    /// executed instructions of each region the guest announces
    /// (`icount: <label> ops=<n>`); see icount.rs.
    pub icount: bool,
    /// The milestones (abi::icount::milestone) the plugin must report, in
    /// order; each after the first gives the figure `<first> to <it>`.
    /// Empty: milestones are ignored.
    pub milestones: Vec<&'static str>,
    /// (our label, Linux label): print Linux's figure from
    /// target/bench/linux.txt beside ours, with the ratio.
    pub linux_pairs: Vec<(&'static str, &'static str)>,
    /// Store this boot's figures as target/bench/NAME.txt when it passes
    /// (bench-blk keeps its raw driver figures for bench-storage).
    pub store_figures: Option<&'static str>,
    /// (stored figures file NAME, our label, its label): print a figure
    /// stored by another benchmark beside ours, with the ratio.
    pub stored_pairs: Vec<(&'static str, &'static str, &'static str)>,
    /// The boot's figures are not budgeted: a comparison beside capOS's
    /// (make bench-net's Linux boot) or wall time, read by a person (make
    /// bench-smp's throughput boots). `make bench-check`, which holds
    /// capOS's figures to budgets ([`FIGURES_ENV`] set), leaves it out.
    pub not_budgeted: bool,
}

/// What a cargo profile means, printed beside the figures.
fn describe_profile(p: &str) -> String {
    match p {
        "bench-opt" => "bench-opt (Cargo.toml: release + opt-level 3, fat LTO, 1 codegen unit, no debug info)".into(),
        "dev" => "dev (opt-level 1, debug assertions: not a figure to compare)".into(),
        other => other.to_string(),
    }
}

/// Print the executed-instruction figures of a boot that loaded the plugin;
/// a protocol error is a failed check. The Linux boot stores its figures.
/// `linux`: the boot was the Linux benchmark guest, whose figures are stored.
#[allow(clippy::too_many_arguments)]
pub fn report_icount(s: &Settings, label: &str, wanted: &Figures, machine: &Machine, linux: bool, profile: &str, out: &Outcome, t: &mut Tally, judged_ok: bool) {
    let Some(text) = &out.icount else { return };
    let figs = text.clone().and_then(|text| {
        let mut figs = super::icount::pair(&super::icount::guest_regions(&out.lines)?, &super::icount::plugin_regions(&text)?)?;
        let regions = figs.len();
        figs.extend(super::icount::milestone_figures(&wanted.milestones, &super::icount::plugin_milestones(&text)?)?);
        Ok((figs, regions))
    });
    let figs = match figs {
        Ok((f, _)) if f.is_empty() => return t.fail(label, "no icount regions measured"),
        Ok((f, regions)) => {
            if regions > 0 || wanted.milestones.is_empty() {
                t.pass(label, &format!("{} icount regions paired with the guest's lines", regions));
            }
            if !wanted.milestones.is_empty() {
                t.pass(label, &format!("the {} milestones reported in order: {}", wanted.milestones.len(), wanted.milestones.join(", ")));
            }
            f
        }
        Err(e) => return t.fail(label, &format!("icount: {}", e)),
    };
    println!("-- {}: executed instructions (QEMU plugin tools/icount, markers abi/src/icount.rs)", label);
    match &out.linux_description {
        Some(d) => println!("   guest: {}", d),
        None => println!("   profile: {}", describe_profile(profile)),
    }
    let rendered: Vec<String> = figs.iter().map(super::icount::render).collect();
    let all = super::icount::render_all(&figs);
    for r in &all {
        println!("   {}", r);
    }
    // make bench-check reads the figures from here (budget.rs).
    if let Some(path) = std::env::var_os(FIGURES_ENV) {
        let text: String = all.iter().map(|r| format!("{}\n", r)).collect();
        let written = std::fs::OpenOptions::new().create(true).append(true).open(&path).and_then(|mut f| f.write_all(text.as_bytes()));
        if let Err(e) = written {
            t.fail(label, &format!("cannot write {}: {}", std::path::Path::new(&path).display(), e));
        }
    }
    let reference = super::icount::reference_path(&s.root);
    // A Linux boot that names its own figures file (make bench-net's)
    // stores there, below; the others are make bench-linux's reference.
    let linux = linux && wanted.store_figures.is_none();
    if linux && !judged_ok {
        println!("   (not stored in {}: the run failed)", reference.display());
    } else if linux {
        let mut text = format!(
            "# Linux figures written by `make bench-linux` (tools/runner/src/build/linux.rs): {}\n# QEMU {} machine, -cpu {}, -m {}, -smp 1, OVMF, -nic none, {}; null-co NVMe drive, latency-ns={}; I/O scheduler none\n",
            out.linux_description.as_deref().unwrap_or("?"),
            machine.kind.unwrap_or(&s.machine),
            s.cpu,
            machine.mem.unwrap_or(&s.mem),
            if machine.args.iter().any(|a| a == "-icount") { "-icount shift=0" } else { "no -icount" },
            BENCH_LATENCY_NS
        );
        for r in &rendered {
            text.push_str(r);
            text.push('\n');
        }
        let _ = std::fs::create_dir_all(reference.parent().unwrap());
        match std::fs::write(&reference, text) {
            Ok(()) => println!("   (stored in {})", reference.display()),
            Err(e) => t.fail(label, &format!("cannot write {}: {}", reference.display(), e)),
        }
    } else if !wanted.linux_pairs.is_empty() {
        compare_with(&reference, "linux", "make bench-linux", &figs, &wanted.linux_pairs);
    }
    if let Some(name) = wanted.store_figures {
        let path = super::icount::stored_path(&s.root, name);
        if judged_ok {
            let what = out.linux_description.clone().unwrap_or_else(|| describe_profile(profile));
            let text = format!("# figures written by the {} benchmark ({})\n{}\n", name, what, rendered.join("\n"));
            let _ = std::fs::create_dir_all(path.parent().unwrap());
            match std::fs::write(&path, text) {
                Ok(()) => println!("   (stored in {})", path.display()),
                Err(e) => t.fail(label, &format!("cannot write {}: {}", path.display(), e)),
            }
        }
    }
    let mut files: Vec<&str> = wanted.stored_pairs.iter().map(|(f, _, _)| *f).collect();
    files.dedup();
    for name in files {
        let pairs: Vec<(&str, &str)> = wanted.stored_pairs.iter().filter(|(f, _, _)| *f == name).map(|(_, a, b)| (*a, *b)).collect();
        compare_with(&super::icount::stored_path(&s.root, name), &format!("bench-{name}"), &format!("make {}", stored_by(name)), &figs, &pairs);
    }
}

/// The make target whose boot stores the figures file `name`
/// ([`Figures::store_figures`]).
fn stored_by(name: &str) -> String {
    match name {
        "linux-net" => "bench-net".into(),
        "linux-smp" => "bench-linux".into(),
        other => format!("bench-{other}"),
    }
}

/// Print the figures of `reference` named in `pairs` beside ours.
fn compare_with(reference: &std::path::Path, who: &str, how: &str, figs: &[super::icount::Figure], pairs: &[(&str, &str)]) {
    {
        match std::fs::read_to_string(reference) {
            Ok(text) => match super::icount::parse_reference(&text) {
                Ok(r) => {
                    for l in super::icount::comparison(figs, &r, pairs, who) {
                        println!("   {}", l);
                    }
                }
                Err(e) => println!("   {}: {} (run {} again)", reference.display(), e, how),
            },
            Err(_) => println!("   run {} for the figures of {}", how, reference.display()),
        }
    }
}
