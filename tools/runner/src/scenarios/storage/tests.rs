//! The storage scenarios' host-side logic: formats, walks, the persist
//! workload's sizing and the recovery model, tried against real images.

#[test]
fn the_interrupts_off_figure_is_read_or_missed() {
    let line = |s: &str| vec![format!("[    0.075370] INFO  {s}")];
    let ok = line("interrupts off, capability calls: longest span 4122 TSC ticks (4 us) on cpu 0, in a capability call, BlockDevice method 2");
    assert_eq!(super::cap_call_irq_off_span(&ok), Ok(4122));
    assert!(super::cap_call_irq_off_span(&line("interrupts off, capability calls: no span measured")).is_err());
    assert!(super::cap_call_irq_off_span(&line("interrupts off, other system calls: longest span 9 TSC ticks")).is_err());
    assert!(super::cap_call_irq_off_span(&line("interrupts off, capability calls: longest span lots TSC ticks")).is_err());
}

use super::*;
use crate::scratch::Scratch;

#[test]
fn store_states_hold_the_last_returned_put_or_the_one_under_way() {
    let lines = |v: &[&str]| core::iter::once(crate::source::KERNEL_FIRST_LINE.to_string()).chain(v.iter().map(|l| format!("[{CHECKER}] {l}"))).collect::<Vec<_>>();
    let mut s = StoreStates::default();
    s.absorb(&lines(&["storing 1 722f6b31 size=3 sha256=aa", "stored 1 722f6b31", "storing 9 722f6b31 size=4 sha256=bb"]));
    let walk = |v: &[&str]| v.iter().map(|l| l.to_string()).collect::<BTreeSet<String>>();
    // The put under way did not land: the returned one must be there.
    assert_eq!(s.check(&walk(&["key 722f6b31 size=3 sha256=aa"])), (vec![], 0));
    s.absorb(&lines(&["storing 9 722f6b31 size=4 sha256=bb"]));
    // It landed: it is the durable value from now on.
    assert_eq!(s.check(&walk(&["key 722f6b31 size=4 sha256=bb"])), (vec![], 0));
    let (problems, lost) = s.check(&walk(&["key 722f6b31 size=3 sha256=aa"]));
    assert_eq!((problems.len(), lost), (1, 4), "an older value than the last returned put is a loss");
    assert_eq!(s.check(&walk(&[])).1, 4, "a missing key is a loss");
}

fn tmpdir(name: &str) -> Scratch {
    Scratch::new("storage-test", name)
}

/// The mkstore-image binary: MKSTORE_IMAGE, the workspace's debug
/// build, or a build into a target directory of its own (no lock
/// shared with the cargo running these tests).
fn mkstore_image() -> PathBuf {
    if let Some(p) = env("MKSTORE_IMAGE") {
        return PathBuf::from(p);
    }
    let root = crate::settings::workspace_root().unwrap();
    let own = root.join("target/runner-test-tools");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .current_dir(&root)
        .env("CARGO_TARGET_DIR", &own)
        .args(["build", "--quiet", "-p", "mkstore-image"])
        .status()
        .unwrap();
    assert!(status.success(), "building mkstore-image failed");
    own.join("debug/mkstore-image")
}

/// An 8 MiB store (16,384 blocks) holding `keys` keys of `value` bytes,
/// written to a file, as `mkstore-image --store --blocks 16384 --seed`
/// makes it; the file is `store.img` in the scratch directory returned.
fn store_file(name: &str, blocks: u64, keys: usize, value: usize) -> (Scratch, PathBuf) {
    use capos_storage::mem_device::MemBlockDevice;
    use capos_storage::store::{self, Store};
    let mut dev = MemBlockDevice::new(blocks);
    store::format(&mut dev, None).unwrap();
    let mut st = Store::mount(dev, false).unwrap();
    for k in 0..keys {
        st.put(format!("user/{:04}", k).as_bytes(), &vec![k as u8; value]).unwrap();
    }
    let dir = tmpdir(name);
    let path = dir.join("store.img");
    std::fs::write(&path, st.into_device().into_bytes()).unwrap();
    (dir, path)
}

/// Phase 1 of the persist workload on the host engine (the guest's
/// order: PERSIST_SIZES put, PERSIST_DELETED deleted, then the churn):
/// the compactions during the churn and the 1-based put of the last.
fn phase1_on_host(img: &Path, churn: plan::Churn) -> (u64, Option<u64>, Vec<u8>) {
    use capos_storage::mem_device::MemBlockDevice;
    use capos_storage::store::Store;
    let mut st = Store::mount(MemBlockDevice::from_bytes(std::fs::read(img).unwrap()), false).unwrap();
    for (i, &size) in plan::PERSIST_SIZES.iter().enumerate() {
        st.put(format!("p/{:02}", i).as_bytes(), &vec![1u8; size as usize]).unwrap();
    }
    for &i in plan::PERSIST_DELETED {
        st.delete(format!("p/{:02}", i).as_bytes()).unwrap();
    }
    let before = st.compactions;
    let mut last = None;
    let mut n = 0;
    for _round in 0..churn.rounds {
        for k in 0..plan::CHURN_KEYS {
            let c = st.compactions;
            st.put(format!("churn/{}", k).as_bytes(), &vec![2u8; churn.value]).unwrap();
            n += 1;
            if st.compactions > c {
                last = Some(n);
            }
        }
    }
    (st.compactions - before, last, st.into_device().into_bytes())
}

#[test]
fn the_persist_churn_compacts_an_8_mib_store_of_300_keys() {
    let (_dir, img) = store_file("persist-300", 16_384, 300, 200);
    let shape = store_shape(&img).unwrap();
    assert_eq!((shape.keys, shape.entries), (300, 300));
    // The fixed churn of old (120 rounds of 6 KiB) never filled this
    // store's area: no compaction, the failure users saw.
    assert_eq!(phase1_on_host(&img, plan::Churn::DEFAULT).0, 0, "the old fixed churn does not compact it");
    let churn = persist_churn(&shape).unwrap();
    let (compactions, last, after) = phase1_on_host(&img, churn);
    assert!(compactions >= 1, "{churn:?} made no compaction");
    // The runner finds the put that compacted from the image alone.
    let after_path = img.with_extension("after");
    std::fs::write(&after_path, after).unwrap();
    assert_eq!(compacting_put(&churn, &store_shape(&after_path).unwrap()), last);
    assert!(churn.puts() <= 1_000, "{churn:?}: a small store gets a short churn");
}

#[test]
fn the_persist_churn_fits_every_store_size_and_refuses_a_full_one() {
    // The scenario's own stores (1 MiB co-located, mkstore-image's
    // default), an empty 8 MiB one and a 64 MiB one: each compacts.
    for (blocks, keys, value) in [(2048u64, 5usize, 100usize), (16_384, 0, 0), (131_072, 50, 4000)] {
        let (_dir, img) = store_file(&format!("persist-{}", blocks), blocks, keys, value);
        let churn = persist_churn(&store_shape(&img).unwrap()).unwrap();
        assert!(phase1_on_host(&img, churn).0 >= 1, "{blocks} blocks: {churn:?}");
        assert!(churn.puts() <= 1_100, "{blocks} blocks: {churn:?}");
    }
    // A store whose own keys leave no room for the workload: refused
    // with the reason, not run into 'store full'.
    let (_full_dir, full) = store_file("persist-full", 2048, 40, 10_000);
    let e = persist_churn(&store_shape(&full).unwrap()).unwrap_err();
    assert!(e.starts_with("the store is too full for the persist workload: it holds 40 keys"), "{e}");
    // The bound itself: min(slots, heap / (7 + value)) + 1 puts in whole
    // rounds, never fewer than CHURN_ROUNDS.
    assert_eq!(plan::Churn::for_store(10, 1 << 30), plan::Churn { rounds: plan::CHURN_ROUNDS, value: plan::CHURN_VALUE_MAX });
    assert_eq!(plan::Churn::for_store(1000, 61_510), plan::Churn { rounds: plan::CHURN_ROUNDS, value: plan::CHURN_VALUE });
    assert_eq!(plan::Churn::for_store(100_000, 6_151 * 999), plan::Churn { rounds: 250, value: plan::CHURN_VALUE });
}

fn mk(args: &[&str]) {
    let out = Command::new(mkstore_image()).args(args).env("SOURCE_DATE_EPOCH", "1700000000").output().unwrap();
    assert!(out.status.success(), "mkstore-image {:?}: {}", args, String::from_utf8_lossy(&out.stderr));
}

const BOOTED: &str = crate::source::KERNEL_FIRST_LINE;

/// A log whose kernel has started (process lines count only after it).
fn booted() -> Vec<String> {
    vec![BOOTED.to_string()]
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The walk lines of the seed tree, computed here from the files
/// written (not through host_fs_walk).
fn expected_seed_lines(variant: u64) -> BTreeSet<String> {
    let f = |p: &str, b: &[u8]| format!("file {} size={} sha256={}", p, b.len(), sha_hex(b));
    let mut s = BTreeSet::new();
    for d in ["dir /", "dir /docs", "dir /docs/deep", "dir /docs/deep/nested", "dir /emptydir"] {
        s.insert(d.to_string());
    }
    s.insert(f("/hello.txt", b"hello from the host seed tree\n"));
    s.insert(f("/empty", b""));
    s.insert(f("/docs/readme.md", &b"# capOS storage seed\n\nA small tree for the storage scenarios.\n".repeat(20)));
    s.insert(f("/docs/deep/nested/leaf.bin", &bytes(variant * 10 + 1, 100_000)));
    s.insert(f("/name%20with%20spaces.txt", b"spaces\n"));
    s.insert(f("/percent%25sign", b"%%\n"));
    s.insert(f("/unicod%C3%A9-%E5%90%8D%E5%89%8D.txt", "caf\u{e9}\n".as_bytes()));
    s.insert(f("/big.bin", &bytes(variant * 10 + 2, 300_000)));
    s
}

#[test]
fn names_are_escaped_like_the_guest_does() {
    assert_eq!(escape_name(b"plain.txt"), "plain.txt");
    assert_eq!(escape_name(b"a b"), "a%20b");
    assert_eq!(escape_name(b"100%"), "100%25");
    assert_eq!(escape_name("é".as_bytes()), "%C3%A9");
    assert_eq!(escape_name(b"tab\there\n"), "tab%09here%0A");
    // The guest's escaper is the same rule (walk lines must match).
    assert_eq!(escape_name(b"~!"), "~!");
}

#[test]
fn formats_are_detected_like_mkstore_image_does() {
    let mut head = vec![0u8; 512];
    head[..8].copy_from_slice(b"CAPOSST1");
    head[48..56].copy_from_slice(&2048u64.to_le_bytes());
    assert_eq!(detect(&head, 2048 * 512).unwrap(), Format::St);
    assert_eq!(detect(&head, 10240 * 512).unwrap(), Format::Colocated);
    head[..8].copy_from_slice(b"CAPOSWF1");
    assert_eq!(detect(&head, 8192 * 512).unwrap(), Format::Wf);
    head[..8].copy_from_slice(b"CAPOSRO1");
    assert_eq!(detect(&head, 8192 * 512).unwrap(), Format::Ro);
    head[..8].copy_from_slice(b"NOTCAPOS");
    assert!(detect(&head, 8192 * 512).is_err());
    assert!(detect(&head, 1000).is_err());
}

#[test]
fn the_host_walk_of_an_extract_is_the_seed_and_a_changed_line_is_reported() {
    let dir = tmpdir("extract");
    let seed = dir.join("seed");
    seed_tree(&seed, 9).unwrap();
    let kv = dir.join("seed.kv");
    seed_kv(&kv).unwrap();
    let img = dir.join("co.img");
    mk(&["--colocated", "--store-seed", kv.to_str().unwrap(), "--fs-seed", seed.to_str().unwrap(), "-o", img.to_str().unwrap()]);
    let out = dir.join("out");
    mk(&["extract", img.to_str().unwrap(), out.to_str().unwrap()]);
    let x = Extracted::at(&out);
    assert!(x.fs.is_some() && x.kv.is_some());
    let fs = x.walk(true, false).unwrap();
    let want = expected_seed_lines(9);
    assert_eq!(compare(&want, &fs), Ok(want.len()));
    let keys = x.walk(false, true).unwrap();
    let big = bytes(77, 20_000);
    let mut want_keys = BTreeSet::new();
    for (k, v) in [(b"alpha".to_vec(), b"one".to_vec()), (b"beta".to_vec(), Vec::new()), (b"key with spaces".to_vec(), b"value with spaces".to_vec()), (b"\0binary\xffkey".to_vec(), vec![1, 2, 3]), (b"big".to_vec(), big)] {
        want_keys.insert(format!("key {} size={} sha256={}", hex(&k), v.len(), sha_hex(&v)));
    }
    assert_eq!(compare(&want_keys, &keys), Ok(5));
    // One byte different in one file: both sides' lines are named.
    let mut guest = want.clone();
    let bad = guest.iter().find(|l| l.starts_with("file /hello.txt")).unwrap().clone();
    guest.remove(&bad);
    guest.insert(bad.replace("size=30", "size=31"));
    let d = compare(&guest, &fs).unwrap_err();
    assert!(d.iter().any(|l| l.starts_with("guest only: file /hello.txt size=31")), "{:?}", d);
    assert!(d.iter().any(|l| l.starts_with("host only:  file /hello.txt size=30")), "{:?}", d);
    // A line missing on one side fails too.
    let mut fewer = want.clone();
    fewer.remove("dir /emptydir");
    assert!(compare(&fewer, &fs).unwrap_err().iter().any(|l| l == "host only:  dir /emptydir"));
    // A store image extracts to a file; a filesystem to a directory.
    let st = dir.join("st.img");
    mk(&["--store", "--seed", kv.to_str().unwrap(), "-o", st.to_str().unwrap()]);
    mk(&["extract", st.to_str().unwrap(), dir.join("st.kv").to_str().unwrap()]);
    let x = Extracted::at(&dir.join("st.kv"));
    assert!(x.fs.is_none());
    assert_eq!(x.walk(true, true).unwrap(), want_keys);
}

#[test]
fn guest_walks_are_read_by_process_and_label_and_checked_for_loss() {
    let serial = lines(&[
        BOOTED,
        "[    0.100000] INFO  storage: mounted data: caposwf1 on nvme0n1",
        "[storage-check] walk begin start",
        "[storage-check] dir /",
        "[walker] walk begin start",
        "[storage-check] file /a size=1 sha256=00",
        "[walker] dir /",
        "[storage-check] key 6b size=2 sha256=11",
        "[storage-check] walk end start dirs=1 files=1 keys=1",
        "[walker] walk end start dirs=1 files=0 keys=0",
        "[storage-check] walk begin end",
        "[storage-check] dir /",
        // a line lost on the serial: the count says 2 files
        "[storage-check] file /b size=1 sha256=00",
        "[storage-check] walk end end dirs=1 files=2 keys=0",
        "[storage-check] walk begin cut",
        "[storage-check] dir /",
        // A kernel line quoting a walk line is not the guest's.
        "[    0.200000] INFO  file /forged size=1 sha256=00",
    ]);
    let w = guest_walks(&serial);
    let get = |p: &str, l: &str| w.iter().find(|x| x.process == p && x.label == l).unwrap();
    let s = get("storage-check", "start");
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    assert_eq!(s.lines, ["dir /", "file /a size=1 sha256=00", "key 6b size=2 sha256=11"].iter().map(|x| x.to_string()).collect());
    assert!(get("walker", "start").problems.is_empty());
    assert_eq!(get("walker", "start").lines.len(), 1);
    assert!(!get("storage-check", "end").problems.is_empty(), "a count mismatch is a problem");
    assert!(get("storage-check", "cut").problems.iter().any(|p| p.contains("no 'walk end'")));
    assert!(!get("storage-check", "cut").lines.iter().any(|l| l.contains("forged")));
}

#[test]
fn kv_escapes_round_trip_as_mkstore_image_writes_them() {
    assert_eq!(kv_unescape("a%09b%25").unwrap(), b"a\tb%");
    assert!(kv_unescape("%4").is_err());
    assert!(kv_unescape("%zz").is_err());
    let w = host_kv_walk("# comment\n\nk%00\tv%FF\n").unwrap();
    assert_eq!(w.into_iter().collect::<Vec<_>>(), vec![format!("key 6b00 size=2 sha256={}", sha_hex(b"v\xff"))]);
    assert!(host_kv_walk("no tab\n").is_err());
}

#[test]
fn the_plan_is_shared_and_sane() {
    for k in 1..500 {
        let n = plan::content_size(k);
        assert!((1..=plan::MAX_CONTENT).contains(&n));
        let mut rec = [0u8; 24];
        let len = plan::step_record(k, &mut rec);
        assert_eq!(plan::parse_step(&rec[..len]), Some(k));
    }
    assert_eq!(plan::parse_step(b"12"), None);
    assert_eq!(plan::parse_step(b"x\n"), None);
    // Pieces of the stream agree with the whole.
    let mut whole = vec![0u8; 1000];
    plan::fill(5, 0, &mut whole);
    let mut part = vec![0u8; 333];
    plan::fill(5, 123, &mut part);
    assert_eq!(&whole[123..456], &part[..]);
    // Every action kind occurs.
    let kinds: BTreeSet<String> = (1..200).map(|k| format!("{:?}", plan::action(k)).split(' ').next().unwrap().to_string()).collect();
    assert_eq!(kinds.len(), 4, "{:?}", kinds);
    assert_eq!(parse_synced("synced 7 /r/f7 size=12 sha256=ab"), Some((7, "/r/f7".into(), Some((12, "ab".into())))));
    assert_eq!(parse_synced("synced 8 /r/f0 absent"), Some((8, "/r/f0".into(), None)));
    assert_eq!(parse_synced("synced x"), None);
    // A line cut short by the kill: parsed, but its state is not whole.
    let (_, _, cut) = parse_synced("synced 7 /r/f7 size=206585 sha256=39039ca0f433c6187caf6f").unwrap();
    assert!(!state_complete(&cut));
    let whole = format!("synced 7 /r/f7 size=5 sha256={}", "ab".repeat(32));
    assert!(state_complete(&parse_synced(&whole).unwrap().2));
    assert!(state_complete(&None));
}

/// Write the tree the workload leaves after steps 1..=k (as the host
/// models it) into `root`.
fn write_state(root: &Path, states: &BTreeMap<String, Vec<u8>>) {
    let _ = std::fs::remove_dir_all(root);
    std::fs::create_dir_all(root.join("r/d")).unwrap();
    for (p, b) in states {
        std::fs::write(root.join(p.trim_start_matches('/')), b).unwrap();
    }
}

/// /r/log after step k.
fn log_bytes(k: u64) -> Vec<u8> {
    let mut v = Vec::new();
    for j in 1..=k {
        if plan::appends_log(j) {
            v.extend(bytes_seeded(plan::log_record_seed(j), plan::log_record_size(j) as usize));
        }
    }
    v
}

fn content_bytes(k: u64) -> Vec<u8> {
    bytes_seeded(plan::content_seed(k), plan::content_size(k) as usize)
}

fn bytes_seeded(seed: u64, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    plan::fill(seed, 0, &mut v);
    v
}

#[test]
fn a_synced_line_cut_short_by_the_kill_still_makes_its_step_durable() {
    // CI once read `synced 7 /r/f7 size=206585 sha256=39039ca0f433c6187caf6f`
    // after the SIGKILL: the step is durable, the truncated hash is not
    // the file's, and the model must take the plan's state instead.
    let mut c = Contents::default();
    let k = (2..100).find(|&k| matches!(plan::action(k), plan::Action::Replace { .. })).unwrap();
    let plan::Action::Replace { slot } = plan::action(k) else { unreachable!() };
    let path = format!("/r/f{}", slot);
    let (size, sha) = c.content(k);
    let mut whole = Durable::default();
    whole.absorb(&[BOOTED.to_string(), format!("[storage-check] synced {} {} size={} sha256={}", k, path, size, sha)], &mut c);
    let mut cut = Durable::default();
    cut.absorb(&[BOOTED.to_string(), format!("[storage-check] synced {} {} size={} sha256={}", k, path, size, &sha[..22])], &mut c);
    assert_eq!(cut.last_step, Some(k));
    assert_eq!(cut.states.get(&path), whole.states.get(&path));
    assert_eq!(cut.states.get(&path), Some(&Some((size, sha))));
}

/// A kill can cut the serial stream short: the tree's own step record may
/// say steps were synced whose "synced" lines never arrived. Then every
/// step up to the one after that record may have changed the tree (the
/// clean-clone failure of 2026-12-07: record 49, lines in flight 49, step
/// 50 a move over /r/d/g0), and no further.
#[test]
fn a_cut_check_trusts_the_trees_own_step_record() {
    let dir = tmpdir("cut-record");
    let root = dir.join("tree");
    let mut c = Contents::default();
    // A Replace at k whose slot step k + 8 deletes.
    let k = (2..2000)
        .find(|&k| matches!(plan::action(k), plan::Action::Replace { .. }) && matches!(plan::action(k + 8), plan::Action::Delete { .. }))
        .unwrap();
    let plan::Action::Replace { slot } = plan::action(k) else { unreachable!() };
    let path = format!("/r/f{}", slot);
    let mut d = Durable::default();
    let step = step_state(k);
    d.absorb(
        &[
            BOOTED.to_string(),
            format!("[storage-check] synced {} {} size={} sha256={}", k, path, plan::content_size(k), c.content(k).1),
            format!("[storage-check] synced {} /r/step size={} sha256={}", k, step.0, step.1),
        ],
        &mut c,
    );
    let record = |j: u64| {
        let mut b = [0u8; 24];
        let n = plan::step_record(j, &mut b);
        b[..n].to_vec()
    };
    // The file gone and the record at k + 7: step k + 8 may have run.
    let tree: BTreeMap<String, Vec<u8>> = [("/r/step".to_string(), record(k + 7)), ("/r/log".to_string(), log_bytes(k))].into_iter().collect();
    write_state(&root, &tree);
    let ok = check_cut(&d, Some(k + 1), &root, &mut c);
    assert!(ok.problems.is_empty(), "{:?}", ok.problems);
    // The record at k + 6: step k + 8 cannot have begun, so the file was lost.
    let mut short = tree.clone();
    short.insert("/r/step".into(), record(k + 6));
    write_state(&root, &short);
    let bad = check_cut(&d, Some(k + 1), &root, &mut c);
    assert_eq!(bad.lost_bytes, plan::content_size(k), "{:?}", bad.problems);
}

#[test]
fn a_cut_check_finds_lost_half_written_and_resurrected_files() {
    let dir = tmpdir("cut");
    let root = dir.join("tree");
    let mut c = Contents::default();
    // Find a Replace step k, so step k+1.. are not needed.
    let k = (2..100).find(|&k| matches!(plan::action(k), plan::Action::Replace { .. })).unwrap();
    let plan::Action::Replace { slot } = plan::action(k) else { unreachable!() };
    let path = format!("/r/f{}", slot);
    let mut d = Durable::default();
    let line = format!("[storage-check] synced {} {} size={} sha256={}", k, path, plan::content_size(k), c.content(k).1);
    let step = step_state(k);
    d.absorb(&[BOOTED.to_string(), line, format!("[storage-check] synced {} /r/step size={} sha256={}", k, step.0, step.1)], &mut c);
    assert_eq!(d.last_step, Some(k));
    let mut step_bytes = [0u8; 24];
    let n = plan::step_record(k, &mut step_bytes);
    let good: BTreeMap<String, Vec<u8>> = [(path.clone(), content_bytes(k)), ("/r/step".to_string(), step_bytes[..n].to_vec()), ("/r/log".to_string(), log_bytes(k))].into_iter().collect();
    write_state(&root, &good);
    let ok = check_cut(&d, None, &root, &mut c);
    assert!(ok.problems.is_empty(), "{:?}", ok.problems);
    // The synced file gone: lost bytes counted.
    let mut gone = good.clone();
    gone.remove(&path);
    write_state(&root, &gone);
    let bad = check_cut(&d, None, &root, &mut c);
    assert_eq!(bad.lost_bytes, plan::content_size(k));
    // ... unless the step in flight removes it (a Delete of that slot).
    if let Some(j) = (k + 1..k + 400).find(|&j| plan::action(j) == plan::Action::Delete { slot }) {
        let allowed = check_cut(&d, Some(j), &root, &mut c);
        assert!(allowed.problems.is_empty(), "{:?}", allowed.problems);
    }
    // Half-written: the right size, wrong bytes.
    let mut half = good.clone();
    let mut b = content_bytes(k);
    let mid = b.len() / 2;
    b[mid] ^= 1;
    half.insert(path.clone(), b);
    write_state(&root, &half);
    let bad = check_cut(&d, None, &root, &mut c);
    assert!(bad.problems.iter().any(|p| p.contains("half-written")), "{:?}", bad.problems);
    assert!(bad.lost_bytes > 0);
    // A stray workload file that is no content at all.
    let mut stray = good.clone();
    stray.insert("/r/d/g1".into(), b"garbage".to_vec());
    write_state(&root, &stray);
    assert!(check_cut(&d, None, &root, &mut c).problems.iter().any(|p| p.contains("/r/d/g1")));
    // A synced deletion that came back.
    let mut d2 = Durable::default();
    d2.absorb(&[BOOTED.to_string(), format!("[storage-check] synced {} /r/f{} absent", k, (slot + 1) % 8)], &mut c);
    let mut back = good.clone();
    back.insert(format!("/r/f{}", (slot + 1) % 8), content_bytes(1));
    write_state(&root, &back);
    assert!(!check_cut(&d2, None, &root, &mut c).problems.is_empty());
    // The log must be one of the logs the workload writes.
    let mut log = good.clone();
    log.insert("/r/log".into(), b"junk".to_vec());
    write_state(&root, &log);
    assert!(check_cut(&d, None, &root, &mut c).problems.iter().any(|p| p.contains("/r/log")));
}

// ---- The recovery model against the real engine under simulated
// power cuts: a host copy of the guest's workload step (recovery.rs)
// over CAPOSWF1 on a CrashSimDevice, cut at many points; every state
// a cut can leave must pass check_cut, and resuming must converge.

use capos_storage::crash_sim::CrashSimDevice;
use capos_storage::mem_device::MemBlockDevice;
use capos_storage::writable_fs::{self, MountOptions, WritableFs};
use capos_storage::{BlockDevice, FileSystem, FixedClock, NodeHandle, StorageError, Timestamp};

type Fs<D> = WritableFs<D, FixedClock>;

fn clock() -> FixedClock {
    FixedClock(Timestamp::new(1_700_000_000_000_000_000, capos_storage::Provenance::WallClock))
}

fn rm<D: BlockDevice>(fs: &mut Fs<D>, dir: NodeHandle, name: &str) -> Result<(), StorageError> {
    match fs.remove(dir, name) {
        Ok(()) | Err(StorageError::NotFound) => Ok(()),
        Err(e) => Err(e),
    }
}

fn whole<D: BlockDevice>(fs: &mut Fs<D>, f: NodeHandle) -> Result<Vec<u8>, StorageError> {
    let size = fs.stat(f)?.size as usize;
    let mut v = vec![0u8; size];
    let n = fs.read(f, 0, &mut v)?;
    v.truncate(n);
    Ok(v)
}

fn host_setup<D: BlockDevice>(fs: &mut Fs<D>) -> Result<(), StorageError> {
    let root = fs.root();
    let r = fs.mkdir(root, plan::ROOT)?;
    fs.mkdir(r, "d")?;
    fs.create(r, "log")?;
    let st = fs.create(r, "step")?;
    fs.write(st, 0, b"0\n")?;
    fs.sync()
}

fn host_replace<D: BlockDevice>(fs: &mut Fs<D>, r: NodeHandle, name: &str, data: &[u8]) -> Result<(), StorageError> {
    rm(fs, r, "tmp")?;
    let t = fs.create(r, "tmp")?;
    for (i, c) in data.chunks(128 * 1024).enumerate() {
        fs.write(t, (i * 128 * 1024) as u64, c)?;
    }
    rm(fs, r, name)?;
    fs.rename(r, "tmp", r, name)
}

/// recovery.rs's `step`, over the FileSystem trait; its serial lines
/// (as the runner reads them) go to `lines`.
fn host_step<D: BlockDevice>(fs: &mut Fs<D>, k: u64, lines: &mut Vec<String>) -> Result<(), StorageError> {
    let out = |l: String| format!("[storage-check] {}", l);
    let root = fs.root();
    let r = fs.sub(root, plan::ROOT)?;
    let d = fs.sub(r, "d")?;
    lines.push(out(format!("step {} begin", k)));
    let data = content_bytes(k);
    let mut durable: Vec<(String, FileState)> = Vec::new();
    match plan::action(k) {
        plan::Action::Replace { slot } => {
            host_replace(fs, r, &format!("f{}", slot), &data)?;
            durable.push((format!("/r/f{}", slot), Some((data.len() as u64, sha_hex(&data)))));
        }
        plan::Action::Overwrite { slot } => {
            let name = format!("f{}", slot);
            match fs.open(r, &name) {
                Ok(f) => {
                    let old = fs.stat(f)?.size;
                    for (i, c) in data.chunks(128 * 1024).enumerate() {
                        fs.write(f, (i * 128 * 1024) as u64, c)?;
                    }
                    if old > data.len() as u64 {
                        fs.truncate(f, data.len() as u64)?;
                    }
                }
                Err(StorageError::NotFound) => host_replace(fs, r, &name, &data)?,
                Err(e) => return Err(e),
            }
            durable.push((format!("/r/{}", name), Some((data.len() as u64, sha_hex(&data)))));
        }
        plan::Action::Delete { slot } => {
            rm(fs, r, &format!("f{}", slot))?;
            durable.push((format!("/r/f{}", slot), None));
        }
        plan::Action::Move { slot, to } => {
            let (name, target) = (format!("f{}", slot), format!("g{}", to));
            if fs.open(r, &name).is_ok() {
                rm(fs, d, &target)?;
                fs.rename(r, &name, d, &target)?;
            }
            // Both ends as they are now (a step redone after a cut
            // may find the move already made).
            durable.push((format!("/r/{}", name), None));
            let g = match fs.open(d, &target) {
                Ok(g) => {
                    let b = whole(fs, g)?;
                    Some((b.len() as u64, sha_hex(&b)))
                }
                Err(StorageError::NotFound) => None,
                Err(e) => return Err(e),
            };
            durable.push((format!("/r/d/{}", target), g));
        }
    }
    if plan::appends_log(k) {
        let f = fs.open(r, "log")?;
        let at = fs.stat(f)?.size;
        fs.write(f, at, &bytes_seeded(plan::log_record_seed(k), plan::log_record_size(k) as usize))?;
        let b = whole(fs, f)?;
        durable.push(("/r/log".into(), Some((b.len() as u64, sha_hex(&b)))));
    }
    let st = fs.open(r, "step")?;
    let mut rec = [0u8; 24];
    let n = plan::step_record(k, &mut rec);
    fs.write(st, 0, &rec[..n])?;
    fs.truncate(st, n as u64)?;
    lines.push(out(format!("step {} sync", k)));
    fs.sync()?;
    durable.push(("/r/step".into(), Some((n as u64, sha_hex(&rec[..n])))));
    for (p, s) in durable {
        lines.push(out(match s {
            Some((n, h)) => format!("synced {} {} size={} sha256={}", k, p, n, h),
            None => format!("synced {} {} absent", k, p),
        }));
    }
    Ok(())
}

/// The files under /r of a mounted image, written to `dir`.
fn dump<D: BlockDevice>(fs: &mut Fs<D>, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let root = fs.root();
    let r = fs.sub(root, plan::ROOT).unwrap();
    for (sub, h) in [("r", r), ("r/d", fs.sub(r, "d").unwrap())] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in fs.list(h).unwrap() {
            if e.kind == capos_storage::NodeKind::File {
                let f = fs.open(h, &e.name).unwrap();
                std::fs::write(dir.join(sub).join(&e.name), whole(fs, f).unwrap()).unwrap();
            }
        }
    }
}

fn read_step<D: BlockDevice>(fs: &mut Fs<D>) -> u64 {
    let root = fs.root();
    let r = fs.sub(root, plan::ROOT).unwrap();
    let f = fs.open(r, "step").unwrap();
    plan::parse_step(&whole(fs, f).unwrap()).unwrap()
}

#[test]
fn the_recovery_model_accepts_every_state_a_power_cut_leaves() {
    const STEPS: u64 = 12;
    let dir = tmpdir("crash");
    let mut base = MemBlockDevice::new(16384);
    writable_fs::format(&mut base, None, clock().0).unwrap();
    let mut after_setup = CrashSimDevice::new(base.into_bytes());
    {
        let mut fs = WritableFs::mount(&mut after_setup, clock(), MountOptions::default()).unwrap();
        host_setup(&mut fs).unwrap();
    }
    let image = after_setup.surviving_image(|_| 0);
    // Events of the whole run, to spread the cuts over it.
    let mut dev = CrashSimDevice::new(image.clone());
    {
        let mut fs = WritableFs::mount(&mut dev, clock(), MountOptions::default()).unwrap();
        let mut lines = booted();
        for k in 1..=STEPS {
            host_step(&mut fs, k, &mut lines).unwrap();
        }
    }
    let total = dev.events();
    let mut c = Contents::default();
    // A kill while a step's `synced` lines are printed: its sync
    // returned, so the whole step is durable though only its first
    // line was seen; and a kill right after `step k sync` returned,
    // before any line (k in flight).
    {
        let mut dev = CrashSimDevice::new(image.clone());
        let mut fs = WritableFs::mount(&mut dev, clock(), MountOptions::default()).unwrap();
        let mut lines = booted();
        for k in 1..=STEPS {
            host_step(&mut fs, k, &mut lines).unwrap();
            let tree = dir.join("tree");
            dump(&mut fs, &tree);
            let first = lines.iter().position(|l| l.starts_with(&format!("[storage-check] synced {} ", k))).unwrap();
            let mut d = Durable::default();
            d.absorb(&lines[..=first], &mut c);
            let check = check_cut(&d, None, &tree, &mut c);
            assert!(check.problems.is_empty(), "step {} with only its first synced line: {:?}", k, check.problems);
            let mut d = Durable::default();
            d.absorb(&lines[..first], &mut c);
            let check = check_cut(&d, Some(k), &tree, &mut c);
            assert!(check.problems.is_empty(), "step {} synced without lines: {:?}", k, check.problems);
        }
    }
    let mut checked = 0;
    // Sixty cuts spread over the run, each read back three ways (the
    // flushed media, every write, a mix): 180 states. (120 cuts took 20 s
    // of the host tests' minute; storage-writable-recovery cuts real
    // power under the same model.)
    for cut in (1..total).step_by((total / 60).max(1) as usize) {
        let mut dev = CrashSimDevice::new(image.clone());
        dev.cut_power_at(cut);
        let mut lines = booted();
        {
            let mut fs = WritableFs::mount(&mut dev, clock(), MountOptions::default()).unwrap();
            for k in 1..=STEPS {
                if host_step(&mut fs, k, &mut lines).is_err() {
                    break;
                }
            }
        }
        assert!(dev.power_lost(), "cut {} of {} did not happen", cut, total);
        let mut durable = Durable::default();
        durable.absorb(&lines, &mut c);
        let inflight = last_begun(&lines).filter(|b| Some(*b) > durable.last_step);
        // The flushed media alone, every write that reached the device, and a mix.
        let mut alt = 0usize;
        let chooses: [&mut dyn FnMut(usize) -> usize; 3] = [&mut |_| 0, &mut |n| n - 1, &mut move |n| {
            alt += 1;
            alt % n
        }];
        for (which, choose) in chooses.into_iter().enumerate() {
            let media = dev.surviving_image(choose);
            let mut fs = WritableFs::mount(MemBlockDevice::from_bytes(media), clock(), MountOptions::default()).unwrap_or_else(|e| panic!("cut {}: mount: {}", cut, e));
            let tree = dir.join("tree");
            dump(&mut fs, &tree);
            let check = check_cut(&durable, inflight, &tree, &mut c);
            assert!(check.problems.is_empty(), "cut at event {} (media {}), in flight {:?}: {:?}", cut, which, inflight, check.problems);
            // The cut may also come while the last step's `synced`
            // lines are printed (before the next step began): only
            // its first line seen.
            if let (Some(last), None) = (durable.last_step, inflight) {
                let first = lines.iter().position(|l| l.starts_with(&format!("[storage-check] synced {} ", last))).unwrap();
                let partial = &lines[..=first];
                let mut dp = Durable::default();
                dp.absorb(partial, &mut c);
                let check = check_cut(&dp, last_begun(partial).filter(|b| Some(*b) > dp.last_step), &tree, &mut c);
                assert!(check.problems.is_empty(), "cut at event {} (media {}), lines cut after the first of step {}: {:?}", cut, which, last, check.problems);
            }
            let resumed = read_step(&mut fs);
            let s = durable.last_step.unwrap_or(0);
            assert!(resumed == s || resumed == s + 1, "cut {}: resumed after {} but {} was synced", cut, resumed, s);
            // Going on from there converges: two more steps, nothing in flight.
            let mut more = booted();
            for k in resumed + 1..=resumed + 2 {
                host_step(&mut fs, k, &mut more).unwrap_or_else(|e| panic!("cut {}: step {} after resume: {}", cut, k, e));
            }
            let mut d2 = Durable::default();
            d2.absorb(&lines, &mut c);
            if resumed == s + 1 {
                d2.apply_step(resumed, &mut c);
            }
            d2.absorb(&more, &mut c);
            dump(&mut fs, &tree);
            let check = check_cut(&d2, None, &tree, &mut c);
            assert!(check.problems.is_empty(), "cut {} (media {}) then resumed after {} (synced {}): {:?}\nlines: {:?}\nmore: {:?}", cut, which, resumed, s, check.problems, lines, more);
            checked += 1;
        }
    }
    assert!(checked >= 150, "only {} cut states checked", checked);
}
