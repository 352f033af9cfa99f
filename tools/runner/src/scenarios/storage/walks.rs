//! Walks of a tree, as the guest prints them and as the host reads the
//! extracted image; the seed trees images are built from.

use super::*;

/// A path component as both walks print it: bytes outside printable ASCII,
/// and `%`, as `%XX`: `capos_storage::name::percent_escape`, which the
/// guest's walk (demos/storage-check) prints with too.
pub fn escape_name(name: &[u8]) -> String {
    capos_storage::name::percent_escape(name)
}

pub(super) fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{:02x}", x)).collect()
}

pub(super) fn sha_hex(b: &[u8]) -> String {
    hex(&Sha256::digest(b))
}

/// The walk lines of an extracted directory tree: `dir /`, `dir /a`,
/// `file /a/b size=N sha256=HEX`.
pub fn host_fs_walk(root: &Path) -> Result<BTreeSet<String>, String> {
    host_fs_walk_times(root).map(|(lines, _)| lines)
}

/// [`host_fs_walk`], and each file's modification time (Unix seconds) by
/// walk path.
pub fn host_fs_walk_times(root: &Path) -> Result<(BTreeSet<String>, BTreeMap<String, i64>), String> {
    let mut times = BTreeMap::new();
    let mut out = BTreeSet::new();
    let mut stack = vec![(root.to_path_buf(), String::from("/"))];
    while let Some((dir, path)) = stack.pop() {
        out.insert(format!("dir {}", path));
        let rd = std::fs::read_dir(&dir).map_err(|e| format!("{}: {}", dir.display(), e))?;
        for e in rd {
            let e = e.map_err(|e| e.to_string())?;
            let child = if path == "/" { format!("/{}", escape_name(e.file_name().as_bytes())) } else { format!("{}/{}", path, escape_name(e.file_name().as_bytes())) };
            let ft = e.file_type().map_err(|e| e.to_string())?;
            if ft.is_dir() {
                stack.push((e.path(), child));
            } else if ft.is_file() {
                let bytes = std::fs::read(e.path()).map_err(|er| format!("{}: {}", e.path().display(), er))?;
                out.insert(format!("file {} size={} sha256={}", child, bytes.len(), sha_hex(&bytes)));
                if let Ok(m) = e.metadata() {
                    use std::os::unix::fs::MetadataExt;
                    times.insert(child.clone(), m.mtime());
                }
            } else {
                return Err(format!("{}: neither a file nor a directory", e.path().display()));
            }
        }
    }
    Ok((out, times))
}

/// `%XX`-unescape one field of a store.kv line (tools/mkstore-image/src/kv_file.rs).
pub fn kv_unescape(text: &str) -> Result<Vec<u8>, String> {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let h = text.get(i + 1..i + 3).ok_or_else(|| format!("truncated escape in {:?}", text))?;
            out.push(u8::from_str_radix(h, 16).map_err(|_| format!("bad escape %{}", h))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The walk lines of a store.kv file: `key HEXKEY size=N sha256=HEX`.
pub fn host_kv_walk(text: &str) -> Result<BTreeSet<String>, String> {
    let mut out = BTreeSet::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('\t').ok_or_else(|| format!("store.kv line {}: no tab", n + 1))?;
        let (k, v) = (kv_unescape(k)?, kv_unescape(v)?);
        out.insert(format!("key {} size={} sha256={}", hex(&k), v.len(), sha_hex(&v)));
    }
    Ok(out)
}

/// One walk a guest process printed.
#[derive(Debug, Default)]
pub struct GuestWalk {
    pub process: String,
    pub label: String,
    pub lines: BTreeSet<String>,
    /// Whether its `walk end` line came, with counts that match the lines.
    pub problems: Vec<String>,
}

/// The walks in a boot's serial lines, by process and label.
pub fn guest_walks(lines: &[String]) -> Vec<GuestWalk> {
    let mut done = Vec::new();
    let mut open: BTreeMap<String, GuestWalk> = BTreeMap::new();
    for l in classify(lines) {
        let (Source::Process(p), body) = (l.source, l.message) else { continue };
        if let Some(label) = body.strip_prefix("walk begin ") {
            if let Some(mut w) = open.remove(&p) {
                w.problems.push(String::from("no 'walk end' line"));
                done.push(w);
            }
            open.insert(p.clone(), GuestWalk { process: p, label: label.trim().to_string(), ..Default::default() });
        } else if let Some(rest) = body.strip_prefix("walk end ") {
            let Some(mut w) = open.remove(&p) else { continue };
            let mut parts = rest.split_whitespace();
            if parts.next() != Some(w.label.as_str()) {
                w.problems.push(format!("'walk end {}' closes walk '{}'", rest, w.label));
            }
            let count = |k: &str| w.lines.iter().filter(|x| x.starts_with(k)).count() as u64;
            let want = [("dirs=", count("dir ")), ("files=", count("file ")), ("keys=", count("key "))];
            for part in parts {
                if let Some((name, n)) = want.iter().find(|(n, _)| part.starts_with(n)) {
                    let said: Option<u64> = part[name.len()..].parse().ok();
                    if said != Some(*n) {
                        w.problems.push(format!("'walk end' says {} but {} such lines arrived", part, n));
                    }
                }
            }
            done.push(w);
        } else if body.starts_with("dir ") || body.starts_with("file ") || body.starts_with("key ") {
            if let Some(w) = open.get_mut(&p) {
                if !w.lines.insert(body.to_string()) {
                    w.problems.push(format!("line twice: {}", body));
                }
            }
        }
    }
    for (_, mut w) in open {
        w.problems.push(String::from("no 'walk end' line"));
        done.push(w);
    }
    done
}

/// Exactly the same lines on both sides; otherwise the lines each side
/// alone has (at most 25 each).
pub fn compare(guest: &BTreeSet<String>, host: &BTreeSet<String>) -> Result<usize, Vec<String>> {
    if guest == host {
        return Ok(guest.len());
    }
    let mut d = Vec::new();
    let g: Vec<&String> = guest.difference(host).collect();
    let h: Vec<&String> = host.difference(guest).collect();
    for l in g.iter().take(25) {
        d.push(format!("guest only: {}", l));
    }
    if g.len() > 25 {
        d.push(format!("guest only: ... {} more", g.len() - 25));
    }
    for l in h.iter().take(25) {
        d.push(format!("host only:  {}", l));
    }
    if h.len() > 25 {
        d.push(format!("host only:  ... {} more", h.len() - 25));
    }
    Err(d)
}

/// What `mkstore-image extract` wrote: a tree, a store.kv, or both.
pub struct Extracted {
    pub fs: Option<PathBuf>,
    pub kv: Option<PathBuf>,
}

impl Extracted {
    /// Recognize extract's output at `out`.
    pub fn at(out: &Path) -> Extracted {
        if out.is_file() {
            Extracted { fs: None, kv: Some(out.to_path_buf()) }
        } else if out.join("store.kv").is_file() && out.join("fs").is_dir() {
            Extracted { fs: Some(out.join("fs")), kv: Some(out.join("store.kv")) }
        } else {
            Extracted { fs: Some(out.to_path_buf()), kv: None }
        }
    }

    /// The host's walk lines of the parts asked for.
    pub fn walk(&self, fs: bool, kv: bool) -> Result<BTreeSet<String>, String> {
        let mut out = BTreeSet::new();
        if fs {
            if let Some(p) = &self.fs {
                out.extend(host_fs_walk(p)?);
            }
        }
        if kv {
            if let Some(p) = &self.kv {
                let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {}", p.display(), e))?;
                out.extend(host_kv_walk(&text)?);
            }
        }
        Ok(out)
    }
}

// ------------------------------------------------------------ seeds

/// A small tree with the awkward cases a walk must handle: nesting, an
/// empty file and directory, names with spaces, `%`, non-ASCII.
pub(super) fn seed_tree(dir: &Path, variant: u64) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(dir);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("hello.txt", b"hello from the host seed tree\n".to_vec()),
        ("empty", Vec::new()),
        ("docs/readme.md", b"# capOS storage seed\n\nA small tree for the storage scenarios.\n".repeat(20)),
        ("docs/deep/nested/leaf.bin", bytes(variant * 10 + 1, 100_000)),
        ("name with spaces.txt", b"spaces\n".to_vec()),
        ("percent%sign", b"%%\n".to_vec()),
        ("unicod\u{e9}-\u{540d}\u{524d}.txt", "caf\u{e9}\n".as_bytes().to_vec()),
        ("big.bin", bytes(variant * 10 + 2, 300_000)),
    ];
    for (p, b) in files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).map_err(|e| e.to_string())?;
        std::fs::write(&path, b).map_err(|e| format!("{}: {}", path.display(), e))?;
    }
    std::fs::create_dir_all(dir.join("emptydir")).map_err(|e| e.to_string())
}

pub(super) fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    plan::fill(seed, 0, &mut v);
    v
}

/// A store.kv seed: plain keys, escaped bytes, an empty value, a large one.
pub(super) fn seed_kv(path: &Path) -> Result<(), String> {
    let big: String = bytes(77, 20_000).iter().map(|b| format!("%{:02X}", b)).collect();
    let text = format!(
        "# seed for the storage scenarios\nalpha\tone\nbeta\t\nkey with spaces\tvalue with spaces\n%00binary%FFkey\t%01%02%03\nbig\t{}\n",
        big
    );
    std::fs::write(path, text).map_err(|e| format!("{}: {}", path.display(), e))
}
