//! The runner's rooms and which may import which (the rule at the top of
//! src/main.rs): every `crate::ROOM` path in a source file names a room
//! below the file's own, or its own. A lower room that imports a higher
//! one is the start of a cycle, and this test names the file and the line.

use std::path::{Path, PathBuf};

/// The rooms, lowest first; a room may import only rooms of a lower rank.
/// A top-level file or directory of src/ missing here is an error too: a
/// new room gets its place in the order before it is used.
const ROOMS: &[(&str, u32)] = &[
    ("settings", 0),
    ("source", 0),
    ("scratch", 0),
    ("build", 1),
    ("machine", 2),
    ("volumes", 3),
    ("judge", 4),
    ("boot", 5),
    ("scenarios", 6),
    ("parallel", 7),
    ("budget", 8),
    ("main", 9),
];

fn rank(room: &str) -> Option<u32> {
    ROOMS.iter().find(|(r, _)| *r == room).map(|(_, n)| *n)
}

/// The room of a source file: its first component under src/ (`machine`
/// for src/machine/serial.rs, `source` for src/source.rs).
fn room_of(rel: &Path) -> String {
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.strip_suffix(".rs").unwrap_or(&first).to_string()
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a line: without a `//` comment (doc comments name rooms in
/// prose) and without string literals.
fn code(line: &str) -> String {
    let (mut out, mut in_str, mut chars) = (String::new(), false, line.chars().peekable());
    while let Some(c) = chars.next() {
        match c {
            '\\' if in_str => {
                chars.next();
            }
            '"' => in_str = !in_str,
            '/' if !in_str && chars.peek() == Some(&'/') => break,
            _ if !in_str => out.push(c),
            _ => {}
        }
    }
    out
}

/// The rooms a line of code names through `crate::`: `crate::machine::x`
/// names `machine`, `crate::{a, b::c}` names `a` and `b`; a name that is
/// not a room (an item of main.rs) is `main`.
fn imported(code: &str) -> Vec<String> {
    let mut v = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `my_crate::`, not this crate
        }
        let names: Vec<&str> = match rest.strip_prefix('{') {
            Some(group) => {
                let mut depth = 0;
                let end = group.char_indices().find(|&(_, c)| {
                    depth += (c == '{') as i32 - (c == '}') as i32;
                    depth < 0
                });
                let inner = &group[..end.map_or(group.len(), |(i, _)| i)];
                let mut tops = Vec::new();
                let (mut d, mut start) = (0, 0);
                for (i, c) in inner.char_indices() {
                    match c {
                        '{' => d += 1,
                        '}' => d -= 1,
                        ',' if d == 0 => {
                            tops.push(&inner[start..i]);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
                tops.push(&inner[start..]);
                tops
            }
            None => vec![rest],
        };
        for n in names {
            let name: String = n.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                v.push(if rank(&name).is_some() { name } else { "main".to_string() });
            }
        }
    }
    v
}

/// Every `crate::` import of a lower room from a higher one, as
/// `file:line: ROOM imports HIGHER`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    sources(src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(src).unwrap();
        let room = room_of(rel);
        let Some(own) = rank(&room) else {
            bad.push(format!("{}: room '{}' has no place in ROOMS (tests/rooms.rs) and the rule of main.rs", rel.display(), room));
            continue;
        };
        let text = std::fs::read_to_string(f).unwrap();
        for (i, line) in text.lines().enumerate() {
            for other in imported(&code(line)) {
                let theirs = rank(&other).unwrap();
                if other != room && theirs >= own {
                    bad.push(format!("{}:{}: {} (rank {}) imports {} (rank {})", rel.display(), i + 1, room, own, other, theirs));
                }
            }
        }
    }
    bad
}

#[test]
fn no_room_imports_a_room_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let bad = violations(&src);
    assert!(bad.is_empty(), "lower rooms import higher ones (see the rule at the top of src/main.rs):\n{}", bad.join("\n"));
}

#[test]
fn imports_are_read_as_written() {
    assert_eq!(imported("use crate::machine::serial::{spawn_reader, strip_ansi};"), ["machine"]);
    assert_eq!(imported("use crate::{judge::Tally, volumes::{esp, blk}};"), ["judge", "volumes"]);
    assert_eq!(imported("let x = crate::build::prebuilt() && crate::settings::input_path(\"X\").is_some();"), ["build", "settings"]);
    assert_eq!(imported("use crate::Settings;"), ["main"]);
    assert_eq!(imported("use capos_crate::machine;"), Vec::<String>::new());
    assert_eq!(code("let s = \"crate::boot\"; // crate::scenarios"), "let s = ; ");
    assert!(imported(&code("/// (crate::parallel, as `capos-run test` runs scenarios)")).is_empty());
}
