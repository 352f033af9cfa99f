//! Independent runs of this runner, a few at a time: `capos-run test A B
//! ...` with JOBS > 1 (each scenario a child `capos-run test A`), and
//! `bench-check` (each benchmark a child). Everything the children boot
//! is built first, once and serially ([`prebuild`]); the children are told
//! so ([`crate::build::PREBUILT_ENV`]) and run no cargo, so no two ever build in the
//! same target directory at once.
//!
//! Each child writes its whole output (stdout and stderr) to its own log
//! file; `test` prints each log whole, in the order the scenarios were
//! named, as soon as it and every one before it are done, then one
//! `N passed, N failed` line summing them ([`child_verdict`]). A child
//! that cannot start, dies, or ends without its closing line is a failure,
//! counted and named.
//!
//! Scenarios in [`crate::scenarios::RUN_ALONE`] start only when nothing
//! else runs, after every other scenario has started; the long ones of
//! [`crate::scenarios::LONG`] start first ([`next_to_start`]).

use crate::judge::Tally;
use crate::volumes::BootVolume;
use crate::settings::Settings;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How many runs at once: the variable `var` (JOBS, BENCH_JOBS) when it
/// is a positive number, else one per core.
pub fn jobs(var: &str) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|j| j.trim().parse().ok())
        .filter(|j| *j > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// One child run: `capos-run ARGS` with `env`, its output in `log`.
pub struct Spec {
    pub name: String,
    pub args: Vec<String>,
    pub env: Vec<(String, OsString)>,
    pub log: PathBuf,
    /// Runs with nothing else running.
    pub alone: bool,
    /// A long run: started before the others that share the machine, so
    /// it does not end the parallel batch alone.
    pub long: bool,
}

/// How a child run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finished {
    /// Its exit code (None: killed by a signal, or it never started).
    pub code: Option<i32>,
    pub took: Duration,
    /// Why it never started.
    pub error: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Waiting,
    Running,
    Done,
}

/// The order runs start in: the long ones that may share the machine,
/// then the other such, then those that run alone; each group in the
/// order given.
pub fn start_order(alone: &[bool], long: &[bool]) -> Vec<usize> {
    let n = alone.len();
    let mut v: Vec<usize> = (0..n).filter(|i| !alone[*i] && long[*i]).collect();
    v.extend((0..n).filter(|i| !alone[*i] && !long[*i]));
    v.extend((0..n).filter(|i| alone[*i]));
    v
}

/// The run to start now, if any: the first waiting one in [`start_order`];
/// one that runs alone only when nothing runs, and nothing starts beside
/// it; the others while fewer than `jobs` run.
pub fn next_to_start(alone: &[bool], long: &[bool], state: &[State], jobs: usize) -> Option<usize> {
    let running: Vec<usize> = (0..state.len()).filter(|i| state[*i] == State::Running).collect();
    if running.iter().any(|i| alone[*i]) {
        return None;
    }
    let next = start_order(alone, long).into_iter().find(|i| state[*i] == State::Waiting)?;
    let free = if alone[next] { running.is_empty() } else { running.len() < jobs.max(1) };
    free.then_some(next)
}

/// Run `specs` (children of this executable, in `root`), at most `jobs`
/// at once by [`next_to_start`]. `started(i)` and `finished(i, how)` are
/// called as runs start and end. Returns how each ended.
pub fn run(root: &Path, specs: &[Spec], jobs: usize, mut started: impl FnMut(usize), mut finished: impl FnMut(usize, &Finished)) -> Vec<Finished> {
    let exe = std::env::current_exe();
    let alone: Vec<bool> = specs.iter().map(|s| s.alone).collect();
    let long: Vec<bool> = specs.iter().map(|s| s.long).collect();
    let mut state = vec![State::Waiting; specs.len()];
    let mut children: Vec<Option<(std::process::Child, Instant)>> = specs.iter().map(|_| None).collect();
    let mut results: Vec<Option<Finished>> = vec![None; specs.len()];
    loop {
        for i in 0..specs.len() {
            let Some((child, since)) = children[i].as_mut() else { continue };
            let status = match child.try_wait() {
                Ok(Some(st)) => Some(st.code()),
                Ok(None) => None,
                // Cannot wait on it: count it as killed.
                Err(_) => Some(None),
            };
            if let Some(code) = status {
                let f = Finished { code, took: since.elapsed(), error: None };
                children[i] = None;
                state[i] = State::Done;
                finished(i, &f);
                results[i] = Some(f);
            }
        }
        if let Some(i) = next_to_start(&alone, &long, &state, jobs) {
            let spec = &specs[i];
            let spawned = exe.as_ref().map_err(|e| format!("cannot find capos-run itself: {}", e)).and_then(|exe| {
                let log = std::fs::File::create(&spec.log).map_err(|e| format!("{}: {}", spec.log.display(), e))?;
                let err = log.try_clone().map_err(|e| e.to_string())?;
                Command::new(exe)
                    .args(&spec.args)
                    .envs(spec.env.iter().map(|(k, v)| (k, v)))
                    .current_dir(root)
                    .stdin(Stdio::null())
                    .stdout(log)
                    .stderr(err)
                    .spawn()
                    .map_err(|e| format!("cannot start {} {}: {}", exe.display(), spec.args.join(" "), e))
            });
            state[i] = State::Running;
            started(i);
            match spawned {
                Ok(child) => children[i] = Some((child, Instant::now())),
                Err(e) => {
                    let f = Finished { code: None, took: Duration::ZERO, error: Some(e) };
                    state[i] = State::Done;
                    finished(i, &f);
                    results[i] = Some(f);
                }
            }
            continue;
        }
        if state.iter().all(|s| *s == State::Done) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    results.into_iter().map(|r| r.expect("every run finished")).collect()
}

/// The closing `N passed, N failed` line of a run's output (the last one).
pub fn closing_line(output: &str) -> Option<(u32, u32)> {
    output.lines().rev().find_map(|l| {
        let (p, rest) = l.trim().split_once(" passed, ")?;
        let f = rest.strip_suffix(" failed")?;
        Some((p.parse().ok()?, f.parse().ok()?))
    })
}

/// What a child run adds to the tally: (passed, failed, why the run itself
/// failed). A run that exited 0 with its closing line counts as that line
/// says; one that did not start, was killed, exited otherwise or printed no
/// closing line adds at least one failure, with the reason.
pub fn child_verdict(f: &Finished, output: &str) -> (u32, u32, Option<String>) {
    if let Some(e) = &f.error {
        return (0, 1, Some(e.clone()));
    }
    let line = closing_line(output);
    match (f.code, line) {
        (Some(0), Some((p, fl))) if p > 0 => (p, fl, None),
        (Some(0), Some((p, fl))) => (p, fl + 1, Some(format!("it exited 0 but closed with '{} passed, {} failed'", p, fl))),
        (_, Some((p, fl))) if fl > 0 => (p, fl, None),
        (code, Some((p, fl))) => (p, fl + 1, Some(format!("it exited {} after '{} passed, {} failed'", describe(code), p, fl))),
        (code, None) => (0, 1, Some(format!("it exited {} without its closing 'N passed, N failed' line", describe(code)))),
    }
}

fn describe(code: Option<i32>) -> String {
    match code {
        Some(c) => format!("with status {}", c),
        None => "on a signal".into(),
    }
}

/// Build, once and in this process, everything the named scenarios boot:
/// the kernel and the loader of every profile they use, the demos their
/// boots name (with storage scenarios, which make manifests as they run,
/// every demo of demos/ in the default profile, one cargo call),
/// mkstore-image, and the icount plugin when a boot loads it. Afterwards child runs with [`crate::build::PREBUILT_ENV`] find
/// every file and build nothing.
pub fn prebuild(s: &Settings, scenarios: &[crate::scenarios::Scenario], storage: bool) -> Result<(), String> {
    let mut profiles: Vec<String> = Vec::new();
    let mut plugin = false;
    for sc in scenarios {
        for b in sc.boots.iter().filter(|b| !matches!(b.volume, BootVolume::Linux(_))) {
            let p = b.profile.clone().unwrap_or_else(|| s.profile.clone());
            if !profiles.contains(&p) {
                profiles.push(p);
            }
            plugin |= b.figures.icount;
        }
    }
    if storage && !profiles.contains(&s.profile) {
        profiles.push(s.profile.clone());
    }
    for p in &profiles {
        let bs = Settings { profile: p.clone(), ..s.clone() };
        let started = Instant::now();
        let art = crate::build::build_all(&bs)?;
        if storage && *p == s.profile {
            // The storage scenarios make their manifests as they run.
            crate::volumes::userspace::build_all_demos(&bs)?;
        } else {
            // The demos the boots of this profile name (a bench-opt build
            // of every demo would cost minutes of fat LTO).
            for b in scenarios.iter().flat_map(|sc| &sc.boots).filter(|b| !matches!(b.volume, BootVolume::Linux(_)) && b.profile.as_ref().unwrap_or(&s.profile) == p) {
                match b.volume {
                    BootVolume::DefaultSystem => drop(crate::volumes::default_volume(&bs, &art)?),
                    BootVolume::Manifest(manifest, cmdline) => drop(crate::volumes::userspace::volume(&bs, &art, manifest, cmdline)?),
                    _ => {}
                }
            }
        }
        println!("== built the kernel, the loader and the demos ({} profile) in {} s", p, started.elapsed().as_secs());
    }
    crate::build::build_mkstore_image(&s.root)?;
    if plugin {
        crate::judge::icount::build_plugin(&s.root)?;
    }
    Ok(())
}

/// `capos-run test` with more than one scenario and JOBS > 1: prebuild,
/// then each scenario a child run; logs printed whole, in the order given.
pub fn test(s: &Settings, scenarios: Vec<crate::scenarios::Scenario>, storage: Vec<crate::scenarios::storage::StorageScenario>, jobs: usize) -> Result<bool, String> {
    let total = Instant::now();
    prebuild(s, &scenarios, !storage.is_empty())?;
    // The named scenarios in the order given (boot scenarios first, as
    // run_all runs them), and what was skipped.
    let mut names: Vec<(&'static str, Option<String>)> = Vec::new();
    for sc in &scenarios {
        let skip = (s.limine_dir.is_some() && sc.capos_boot_only).then(|| format!("== {}: skipped, it tests capos-boot itself and LIMINE_DIR is set", sc.name));
        names.push((sc.name, skip));
    }
    names.extend(storage.iter().map(|sc| (sc.name, None)));
    std::fs::create_dir_all(&s.out_dir).map_err(|e| format!("{}: {}", s.out_dir.display(), e))?;
    let runnable: Vec<usize> = (0..names.len()).filter(|i| names[*i].1.is_none()).collect();
    let specs: Vec<Spec> = runnable
        .iter()
        .map(|i| {
            let name = names[*i].0;
            Spec {
                name: name.to_string(),
                args: vec!["test".into(), name.into()],
                env: vec![(crate::build::PREBUILT_ENV.into(), "1".into()), ("JOBS".into(), "1".into())],
                log: s.out_dir.join(format!("{}.out", name)),
                alone: crate::scenarios::runs_alone(name).is_some(),
                long: crate::scenarios::LONG.contains(&name),
            }
        })
        .collect();
    let alone: Vec<&str> = specs.iter().filter(|sp| sp.alone).map(|sp| sp.name.as_str()).collect();
    println!(
        "== {} scenarios, {} at a time{}; each one's output printed whole when it is done, in order (logs: {}/SCENARIO.out)",
        specs.len(),
        jobs,
        if alone.is_empty() { String::new() } else { format!(", then alone: {}", alone.join(", ")) },
        s.out_dir.display()
    );
    let mut t = Tally::default();
    let mut done: Vec<Option<Finished>> = vec![None; specs.len()];
    // Print every finished scenario whose predecessors have been printed.
    let mut printed = 0;
    let mut skipped_at = 0;
    let mut flush = |done: &[Option<Finished>], t: &mut Tally| {
        while printed < specs.len() {
            let Some(f) = &done[printed] else { break };
            // Skip lines of scenarios named before this one.
            while skipped_at < runnable[printed] {
                if let Some(line) = &names[skipped_at].1 {
                    println!("{}", line);
                }
                skipped_at += 1;
            }
            skipped_at += 1;
            let spec = &specs[printed];
            let output = std::fs::read(&spec.log).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
            // The child's closing line is replaced by this one's at the end.
            let lines: Vec<&str> = output.lines().collect();
            let closing = lines.iter().rposition(|l| closing_line(l).is_some());
            for (n, l) in lines.iter().enumerate() {
                if Some(n) != closing {
                    println!("{}", l);
                }
            }
            let (p, fl, why) = child_verdict(f, &output);
            // The run's own failure is counted by t.fail below.
            t.passed += p;
            t.failed += fl - u32::from(why.is_some());
            if let Some(why) = why {
                t.fail(&spec.name, &format!("the run of this scenario failed: {} (its output: {})", why, spec.log.display()));
            }
            println!("-- {}: {} passed, {} failed in {} s", spec.name, p, fl, f.took.as_secs());
            printed += 1;
        }
    };
    run(
        &s.root,
        &specs,
        jobs,
        |_| {},
        |i, f| {
            done[i] = Some(f.clone());
            flush(&done, &mut t);
        },
    );
    for line in names[skipped_at.min(names.len())..].iter().filter_map(|(_, l)| l.as_ref()) {
        println!("{}", line);
    }
    println!("== {} scenarios in {} s, {} at a time", specs.len(), total.elapsed().as_secs(), jobs);
    println!("{} passed, {} failed", t.passed, t.failed);
    Ok(t.failed == 0 && t.passed > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use State::*;

    #[test]
    fn shared_runs_start_in_order_up_to_jobs() {
        let alone = [false, false, false];
        let long = [false; 3];
        assert_eq!(next_to_start(&alone, &long, &[Waiting, Waiting, Waiting], 2), Some(0));
        assert_eq!(next_to_start(&alone, &long, &[Running, Waiting, Waiting], 2), Some(1));
        assert_eq!(next_to_start(&alone, &long, &[Running, Running, Waiting], 2), None);
        assert_eq!(next_to_start(&alone, &long, &[Done, Running, Waiting], 2), Some(2));
        assert_eq!(next_to_start(&alone, &long, &[Done, Done, Done], 2), None);
        // JOBS=1: one at a time, in order.
        assert_eq!(next_to_start(&alone, &long, &[Running, Waiting, Waiting], 1), None);
        assert_eq!(next_to_start(&alone, &long, &[Done, Waiting, Waiting], 1), Some(1));
    }

    #[test]
    fn runs_alone_come_last_and_have_the_machine_to_themselves() {
        // 1 runs alone: 0 and 2 first, then 1 once both are done.
        let alone = [false, true, false];
        let long = [false; 3];
        assert_eq!(start_order(&alone, &long), vec![0, 2, 1]);
        assert_eq!(next_to_start(&alone, &long, &[Running, Waiting, Waiting], 2), Some(2));
        assert_eq!(next_to_start(&alone, &long, &[Running, Waiting, Running], 4), None);
        assert_eq!(next_to_start(&alone, &long, &[Done, Waiting, Running], 4), None);
        assert_eq!(next_to_start(&alone, &long, &[Done, Waiting, Done], 4), Some(1));
        // Nothing starts beside it.
        let alone = [true, true, false];
        assert_eq!(next_to_start(&alone, &long, &[Running, Waiting, Done], 4), None);
        assert_eq!(next_to_start(&alone, &long, &[Done, Waiting, Done], 4), Some(1));
    }

    #[test]
    fn long_runs_start_first_unless_they_run_alone() {
        let alone = [false, false, true, false];
        let long = [false, true, true, true];
        assert_eq!(start_order(&alone, &long), vec![1, 3, 0, 2]);
        assert_eq!(next_to_start(&alone, &long, &[Waiting; 4], 2), Some(1));
        assert_eq!(next_to_start(&alone, &long, &[Waiting, Running, Waiting, Running], 2), None);
        assert_eq!(next_to_start(&alone, &long, &[Waiting, Running, Waiting, Done], 2), Some(0));
    }

    #[test]
    fn every_scenario_that_runs_alone_exists() {
        let known = |name: &str| crate::scenarios::all().iter().any(|s| s.name == name) || crate::scenarios::storage::all().iter().any(|s| s.name == name);
        for (name, why) in crate::scenarios::RUN_ALONE {
            assert!(known(name), "RUN_ALONE names {}, which is no scenario", name);
            assert!(!why.is_empty());
        }
        for name in crate::scenarios::LONG {
            assert!(known(name), "LONG names {}, which is no scenario", name);
        }
    }

    /// The Makefile's SCENARIOS, in order.
    fn makefile_scenarios() -> Vec<String> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let text = std::fs::read_to_string(root.join("Makefile")).unwrap();
        let start = text.find("\nSCENARIOS := ").expect("SCENARIOS in the Makefile") + "\nSCENARIOS := ".len();
        let mut names = Vec::new();
        for line in text[start..].lines() {
            let (words, more) = match line.trim_end().strip_suffix('\\') {
                Some(w) => (w, true),
                None => (line, false),
            };
            names.extend(words.split_whitespace().map(String::from));
            if !more {
                break;
            }
        }
        names
    }

    #[test]
    fn make_test_names_the_scenarios_that_run_alone_last() {
        // Their output is printed in the order named, and they run last:
        // named earlier, they would hold back the output of the others.
        let names = makefile_scenarios();
        assert!(names.len() > 20, "{:?}", names);
        let first_alone = names.iter().position(|n| crate::scenarios::runs_alone(n).is_some()).expect("a scenario that runs alone");
        for n in &names[first_alone..] {
            assert!(crate::scenarios::runs_alone(n).is_some(), "{} is named after a scenario that runs alone", n);
        }
    }

    #[test]
    fn the_closing_line_is_the_last_one() {
        assert_eq!(closing_line("a\n3 passed, 1 failed\nb\n5 passed, 0 failed\n"), Some((5, 0)));
        assert_eq!(closing_line("[PASS] x: 3 passed, 1 failed and more\n"), None);
        assert_eq!(closing_line("nothing\n"), None);
    }

    fn fin(code: Option<i32>) -> Finished {
        Finished { code, took: Duration::ZERO, error: None }
    }

    #[test]
    fn a_run_that_did_not_end_well_is_a_failure() {
        assert_eq!(child_verdict(&fin(Some(0)), "7 passed, 0 failed\n"), (7, 0, None));
        assert_eq!(child_verdict(&fin(Some(1)), "7 passed, 2 failed\n"), (7, 2, None));
        // A panic: no closing line, exit 101.
        let (p, f, why) = child_verdict(&fin(Some(101)), "[PASS] a\nthread 'main' panicked at x\n");
        assert_eq!((p, f), (0, 1));
        assert!(why.unwrap().contains("101"));
        // Killed after its closing line was printed.
        let (p, f, why) = child_verdict(&fin(None), "3 passed, 0 failed\n");
        assert_eq!((p, f), (3, 1));
        assert!(why.is_some());
        // Nothing passed is not a pass.
        assert_eq!(child_verdict(&fin(Some(0)), "0 passed, 0 failed\n").1, 1);
        // It never started.
        let never = Finished { code: None, took: Duration::ZERO, error: Some("cannot start".into()) };
        assert_eq!(child_verdict(&never, ""), (0, 1, Some("cannot start".into())));
    }
}
