//! The operator's shell on the serial console: `capos$ ` prompts, lines
//! come from `Console.readLine` (the kernel echoes and edits them), output
//! goes through `Console.writeLine` (so the log shows `[shell] ...`).
//!
//! What it can reach is what the manifest granted: every grant named
//! `fs-NAME` (a `Directory`) is the top-level name `/NAME`, a grant named
//! `store` is the key/value store. The command and path logic is in
//! `lib.rs` (host-tested); this file makes the calls. No command error
//! ends the shell: each prints `error: <code>: <message>` and the prompt
//! comes back. `exit` syncs every mount, then ends the process, which
//! hands the console back to the kernel's diagnostics prompt.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use capos_abi::capos_capnp::{ErrorCode, NodeKind};
use capos_abi::limits::MAX_CONSOLE_LINE_BYTES;
use capos_demo_shell::{code_name, copy_target, count, error_line, format_time, join, mount_line, parse, resolve, show_bytes, text_lines, Command, HELP, PROMPT};
use capos_rt::{CallError, Console, Directory, File, StartInfo, Store};

capos_rt::entry!(main);

/// `cat` prints at most this much of a file.
const CAT_LIMIT: u64 = 256 * 1024;
/// Bytes per File.read.
const CHUNK: u32 = 16 * 1024;
/// `keys` prints at most this many keys.
const KEYS_LIMIT: usize = 10_000;

/// A command's failure: (error code name, message).
struct Failure(&'static str, String);

type Res<T> = Result<T, Failure>;

fn fail<T>(code: ErrorCode, message: impl Into<String>) -> Res<T> {
    Err(Failure(code_name(code), message.into()))
}

/// A failed call as the object's code and message.
fn failure(e: CallError) -> Failure {
    match e {
        CallError::Object(e) => Failure(code_name(e.code), e.message),
        CallError::Sys(f) => Failure("io", format!("call failed: {:?}", f.error)),
        CallError::Message(m) => Failure("corrupted", format!("malformed answer: {}", m)),
    }
}

/// `context: the object's message`, keeping the object's code.
fn call_err(context: &str) -> impl Fn(CallError) -> Failure + '_ {
    move |e| {
        let Failure(code, message) = failure(e);
        Failure(code, format!("{}: {}", context, message))
    }
}

/// A failed open of `path` as a file: a directory is said to be one (the
/// service's own message for it is only "not a file").
fn open_err(path: &str) -> impl Fn(CallError) -> Failure + '_ {
    move |e| {
        if is_code(&e, ErrorCode::IsADirectory) {
            Failure(code_name(ErrorCode::IsADirectory), format!("{}: is a directory", path))
        } else {
            call_err(path)(e)
        }
    }
}

fn is_code(e: &CallError, code: ErrorCode) -> bool {
    e.code() == Some(code)
}

struct Mount {
    name: String,
    root: Directory,
    /// The last file this shell wrote on the mount: `File.sync` commits
    /// the whole filesystem, through any of its files.
    sync_file: Option<File>,
}

/// A directory the shell walked to: a mount root (borrowed) or a
/// subdirectory (owned, dropped after the command).
enum Dir<'a> {
    Root(&'a Directory),
    Sub(Directory),
}

impl core::ops::Deref for Dir<'_> {
    type Target = Directory;
    fn deref(&self) -> &Directory {
        match self {
            Dir::Root(d) => d,
            Dir::Sub(d) => d,
        }
    }
}

struct Shell {
    console: Console,
    mounts: Vec<Mount>,
    store: Option<Store>,
    net: Option<capos_rt::net::Network>,
    cwd: Vec<String>,
    /// An `icount` region is open (its START executed, no STOP yet).
    counting: bool,
}

impl Shell {
    /// One output line (cut into console-sized pieces).
    fn out(&self, line: &str) {
        let max = MAX_CONSOLE_LINE_BYTES - 8;
        let mut rest = line;
        loop {
            let mut cut = rest.len().min(max);
            while !rest.is_char_boundary(cut) {
                cut -= 1;
            }
            let _ = self.console.write_line(&rest[..cut]);
            rest = &rest[cut..];
            if rest.is_empty() {
                break;
            }
        }
    }

    fn mount(&self, name: &str) -> Res<usize> {
        match self.mounts.iter().position(|m| m.name == name) {
            Some(i) => Ok(i),
            None => fail(ErrorCode::NotFound, format!("/{}: no such mount (see mounts)", name)),
        }
    }

    /// The directory at `parts` (non-empty: the root of all mounts is not
    /// a directory anyone can hold).
    fn dir(&self, parts: &[String]) -> Res<(usize, Dir<'_>)> {
        let Some((m, rest)) = parts.split_first() else {
            return fail(ErrorCode::InvalidArgument, "/ holds only the mounts");
        };
        let i = self.mount(m)?;
        let mut d = Dir::Root(&self.mounts[i].root);
        for (n, name) in rest.iter().enumerate() {
            let sub = d.sub(name).map_err(call_err(&join(&parts[..n + 2])))?;
            d = Dir::Sub(sub);
        }
        Ok((i, d))
    }

    /// The directory holding `path`'s last component, and that name.
    fn parent(&self, path: &str) -> Res<(usize, Dir<'_>, String, Vec<String>)> {
        self.parent_of(resolve(&join(&self.cwd), path))
    }

    /// [`Shell::parent`] of a path already resolved to `parts`.
    fn parent_of(&self, parts: Vec<String>) -> Res<(usize, Dir<'_>, String, Vec<String>)> {
        if parts.len() < 2 {
            return fail(ErrorCode::PermissionDenied, format!("{}: the root and the mounts themselves cannot be changed", join(&parts)));
        }
        let (i, d) = self.dir(&parts[..parts.len() - 1])?;
        let name = parts[parts.len() - 1].clone();
        Ok((i, d, name, parts))
    }

    /// Like [`Shell::parent_of`], for a path that must name a file: `/`
    /// and a mount root are directories, and saying so (`isADirectory`)
    /// is the answer, not that they cannot be changed.
    fn file_parent(&self, parts: Vec<String>) -> Res<(usize, Dir<'_>, String, String)> {
        match parts.len() {
            0 => fail(ErrorCode::IsADirectory, "/: is a directory (it holds the mounts)"),
            1 => {
                self.mount(&parts[0])?;
                fail(ErrorCode::IsADirectory, format!("{}: is a directory (a mount root)", join(&parts)))
            }
            _ => {
                let (i, d, name, parts) = self.parent_of(parts)?;
                Ok((i, d, name, join(&parts)))
            }
        }
    }

    fn mount_line(&self, path: &str, what: &str, state: Result<String, CallError>) {
        let line = match state.map_err(failure) {
            Ok(detail) => mount_line(path, what, Ok(&detail)),
            Err(Failure(code, message)) => mount_line(path, what, Err((code, &message))),
        };
        self.out(&line);
    }

    fn store(&self) -> Res<&Store> {
        match &self.store {
            Some(s) => Ok(s),
            None => fail(ErrorCode::NotFound, "no store granted to this shell (grant store: kernel:store:NAME)"),
        }
    }

    fn run(&mut self, cmd: Command) -> Res<()> {
        match cmd {
            Command::Empty => Ok(()),
            Command::Help => {
                self.out("commands:");
                for (u, what) in HELP {
                    self.out(&format!("  {:<20} {}", u, what));
                }
                Ok(())
            }
            Command::Pwd => {
                self.out(&join(&self.cwd));
                Ok(())
            }
            Command::Mounts => {
                // Each one asked once, so a mount that failed at boot shows
                // as `unavailable` and why.
                for m in &self.mounts {
                    let state = m.root.list().map(|e| format!("{} at its root", count(e.len(), "entry", "entries")));
                    self.mount_line(&format!("/{}", m.name), &format!("filesystem (grant fs-{})", m.name), state);
                }
                if let Some(s) = &self.store {
                    let state = s.list(&[], 1).map(|(keys, _)| String::from(if keys.is_empty() { "no keys" } else { "holds keys" }));
                    self.mount_line("store", "key/value store (grant store)", state);
                }
                if self.mounts.is_empty() && self.store.is_none() {
                    self.out("(nothing granted)");
                }
                Ok(())
            }
            Command::Cd(p) => {
                let parts = resolve(&join(&self.cwd), &p);
                if !parts.is_empty() {
                    self.dir(&parts)?;
                }
                self.cwd = parts;
                Ok(())
            }
            Command::Ls(p) => self.ls(p.as_deref().unwrap_or(".")),
            Command::Cat(p) => self.cat(&p),
            Command::Write(p, text) => self.write(&p, &text, false),
            Command::Append(p, text) => self.write(&p, &text, true),
            Command::Mkdir(p) => {
                let (_, d, name, parts) = self.parent(&p)?;
                d.mkdir(&name).map_err(call_err(&join(&parts)))
            }
            Command::Rm(p) => {
                let (_, d, name, parts) = self.parent(&p)?;
                d.remove(&name).map_err(call_err(&join(&parts)))
            }
            Command::Mv(from, to) => self.mv(&from, &to),
            Command::Cp(from, to) => self.cp(&from, &to),
            Command::Stat(p) => self.stat(&p),
            Command::Sha256(p) => self.sha256(&p),
            Command::Fill(p, size, seed) => self.fill(&p, size, seed),
            Command::Net => {
                let Some(net) = &self.net else {
                    return fail(ErrorCode::Unavailable, "no network granted to this shell (grant net: process:NET/network)");
                };
                let info = net.info().map_err(call_err("net"))?;
                for l in capos_demo_shell::net_lines(&info) {
                    self.out(&l);
                }
                Ok(())
            }
            // The line goes out before START (the runner pairs it with
            // the region), so the console's output of it is not counted.
            Command::Icount(Some((label, ops))) => {
                if self.counting {
                    return fail(ErrorCode::InvalidArgument, "icount: a region is open; icount stop first");
                }
                self.out(&format!("icount: {} ops={}", label, ops));
                capos_abi::icount::region_start();
                self.counting = true;
                Ok(())
            }
            Command::Icount(None) => {
                if !self.counting {
                    return fail(ErrorCode::InvalidArgument, "icount: no region is open");
                }
                capos_abi::icount::region_stop();
                self.counting = false;
                Ok(())
            }
            Command::Sync => self.sync(),
            Command::Put(k, v) => self.store()?.put(k.as_bytes(), v.as_bytes()).map_err(call_err(&format!("put {}", k))),
            Command::Get(k) => {
                let v = self.store()?.get(k.as_bytes()).map_err(call_err(&format!("key {}", k)))?;
                self.out(&show_bytes(&v));
                Ok(())
            }
            Command::Has(k) => {
                let v = self.store()?.has(k.as_bytes()).map_err(call_err(&format!("key {}", k)))?;
                self.out(if v { "true" } else { "false" });
                Ok(())
            }
            Command::Del(k) => {
                if self.store()?.delete(k.as_bytes()).map_err(call_err(&format!("key {}", k)))? {
                    self.out(&format!("deleted {}", k));
                    Ok(())
                } else {
                    fail(ErrorCode::NotFound, format!("key {}: no such key", k))
                }
            }
            Command::Keys(prefix) => self.keys(prefix.as_deref().unwrap_or("")),
            Command::Exit => Ok(()),
        }
    }

    fn ls(&self, p: &str) -> Res<()> {
        let parts = resolve(&join(&self.cwd), p);
        if parts.is_empty() {
            for m in &self.mounts {
                self.out(&format!("{}/", m.name));
            }
            return Ok(());
        }
        let entries = match self.dir(&parts) {
            Ok((_, d)) => d.list().map_err(call_err(&join(&parts)))?,
            Err(Failure("notADirectory", _)) => {
                // A file: show its own entry.
                let (_, d, name, _) = self.parent(p)?;
                let all = d.list().map_err(call_err(&join(&parts)))?;
                all.into_iter().filter(|e| e.name == name).collect()
            }
            Err(e) => return Err(e),
        };
        if entries.is_empty() {
            self.out("(empty)");
        }
        for e in entries {
            match e.kind {
                NodeKind::Directory => self.out(&format!("{}/", e.name)),
                NodeKind::File => self.out(&format!("{}  {} bytes", e.name, e.size)),
            }
        }
        Ok(())
    }

    /// The file at `p`, to read, and its absolute path.
    fn open(&self, p: &str) -> Res<(File, String)> {
        let (_, d, name, path) = self.file_parent(resolve(&join(&self.cwd), p))?;
        let f = d.open(&name).map_err(open_err(&path))?;
        Ok((f, path))
    }

    /// Read `f` from the start in chunks, at most `limit` bytes, feeding
    /// each chunk and its offset to `each` (whose failure stops the
    /// reading); returns the bytes read. `done` counts the bytes handed to
    /// `each` so far, also when it fails.
    fn read_all(f: &File, path: &str, limit: u64, done: &mut u64, mut each: impl FnMut(u64, &[u8]) -> Res<()>) -> Res<u64> {
        *done = 0;
        while *done < limit {
            let want = CHUNK.min((limit - *done) as u32);
            let chunk = f.read(*done, want).map_err(call_err(path))?;
            if chunk.is_empty() {
                break;
            }
            each(*done, &chunk)?;
            *done += chunk.len() as u64;
        }
        Ok(*done)
    }

    fn cat(&self, p: &str) -> Res<()> {
        let (f, path) = self.open(p)?;
        let mut data = Vec::new();
        let n = Self::read_all(&f, &path, CAT_LIMIT, &mut 0, |_, c| {
            data.extend_from_slice(c);
            Ok(())
        })?;
        for l in text_lines(&data) {
            self.out(&l);
        }
        if n >= CAT_LIMIT {
            self.out(&format!("... (output stops after {} bytes; sha256 reads it all)", CAT_LIMIT));
        }
        Ok(())
    }

    fn write(&mut self, p: &str, text: &str, append: bool) -> Res<()> {
        let (i, f, path) = self.open_or_create(resolve(&join(&self.cwd), p))?;
        let line = format!("{}\n", text);
        let at = if append {
            f.stat().map_err(call_err(&path))?.size
        } else {
            f.truncate(0).map_err(call_err(&path))?;
            0
        };
        let n = f.write(at, line.as_bytes()).map_err(call_err(&path))?;
        self.out(&format!("{} {} bytes to {}", if append { "appended" } else { "wrote" }, n, path));
        self.mounts[i].sync_file = Some(f);
        Ok(())
    }

    /// `fill PATH SIZE SEED`: the file made or replaced with SIZE bytes of
    /// the test pattern (`capos_abi::pattern`), CHUNK bytes a call.
    fn fill(&mut self, p: &str, size: u64, seed: u64) -> Res<()> {
        let (i, f, path) = self.open_or_create(resolve(&join(&self.cwd), p))?;
        f.truncate(0).map_err(call_err(&path))?;
        let mut buf = alloc::vec![0u8; CHUNK as usize];
        let mut at = 0u64;
        while at < size {
            let n = (size - at).min(CHUNK as u64) as usize;
            capos_abi::pattern::fill(seed, at, &mut buf[..n]);
            match f.write(at, &buf[..n]) {
                Ok(w) if w == n as u64 => at += w,
                Ok(w) => return fail(ErrorCode::Io, format!("{}: wrote {} of {} bytes at offset {}", path, w, n, at)),
                Err(e) => {
                    let Failure(code, why) = call_err(&path)(e);
                    return Err(Failure(code, format!("{} (after {} of {} bytes; the file holds what was written)", why, at, size)));
                }
            }
        }
        self.out(&format!("filled {} with {} of pattern {}", path, count(size, "byte", "bytes"), seed));
        self.mounts[i].sync_file = Some(f);
        Ok(())
    }

    /// The file at `parts`, opened, or made empty if there is none; with its
    /// mount and absolute path.
    fn open_or_create(&self, parts: Vec<String>) -> Res<(usize, File, String)> {
        let (i, d, name, path) = self.file_parent(parts)?;
        let f = match d.open(&name) {
            Ok(f) => f,
            Err(e) if is_code(&e, ErrorCode::NotFound) => d.create(&name).map_err(call_err(&path))?,
            Err(e) => return Err(open_err(&path)(e)),
        };
        Ok((i, f, path))
    }

    /// `cp FROM TO`: the file FROM streamed, CHUNK bytes at a time, into TO
    /// (made, or replaced), on any mount. TO an existing directory means
    /// TO/NAME, as for `mv`. A failure midway removes what was written of
    /// TO and says so, or says TO is partial if even that fails.
    fn cp(&mut self, from: &str, to: &str) -> Res<()> {
        let cwd = join(&self.cwd);
        let (src, from_path) = self.open(from)?;
        let (fparts, tparts) = (resolve(&cwd, from), resolve(&cwd, to));
        let to_is_dir = !tparts.is_empty() && self.dir(&tparts).is_ok();
        let target = copy_target(&fparts, &tparts, to_is_dir).map_err(|m| Failure(code_name(ErrorCode::InvalidArgument), m))?;
        let size = src.stat().map_err(call_err(&from_path))?.size;
        let (ti, dst, to_path) = self.open_or_create(target.clone())?;
        dst.truncate(0).map_err(call_err(&to_path))?;
        let mut copied = 0u64;
        let result = Self::read_all(&src, &from_path, u64::MAX, &mut copied, |at, chunk| match dst.write(at, chunk) {
            Ok(n) if n == chunk.len() as u64 => Ok(()),
            Ok(n) => fail(ErrorCode::Io, format!("{}: wrote {} of {} bytes at offset {}", to_path, n, chunk.len(), at)),
            Err(e) => Err(call_err(&to_path)(e)),
        });
        match result {
            Ok(n) => {
                self.out(&format!("copied {} from {} to {}", count(n, "byte", "bytes"), from_path, to_path));
                self.mounts[ti].sync_file = Some(dst);
                Ok(())
            }
            Err(Failure(code, why)) => {
                drop(dst);
                let removed = self.parent_of(target).and_then(|(_, d, name, _)| d.remove(&name).map_err(call_err(&to_path)));
                let after = format!("stopped after {} of {} bytes: {}", copied, size, why);
                Err(Failure(code, match removed {
                    Ok(()) => format!("cp {} {}: {}; removed the partial {}", from_path, to_path, after, to_path),
                    Err(Failure(_, e)) => format!("cp {} {}: {}; {} is PARTIAL ({} bytes) and removing it failed: {}", from_path, to_path, after, to_path, copied, e),
                }))
            }
        }
    }

    fn mv(&self, from: &str, to: &str) -> Res<()> {
        let (fi, fd, fname, fparts) = self.parent(from)?;
        let cwd = join(&self.cwd);
        let tparts = resolve(&cwd, to);
        // Onto an existing directory: move into it, keeping the name.
        let (ti, td, tname, tdir_parts) = match self.dir(&tparts) {
            Ok((ti, d)) if !tparts.is_empty() => (ti, d, fname.clone(), tparts.clone()),
            _ => {
                let (ti, d, name, parts) = self.parent(to)?;
                let dir_parts = parts[..parts.len() - 1].to_vec();
                (ti, d, name, dir_parts)
            }
        };
        if fi != ti {
            return fail(ErrorCode::InvalidArgument, format!("{} and {}: a move stays within one mount", join(&fparts), join(&tparts)));
        }
        let what = join(&fparts);
        if tdir_parts[..] == fparts[..fparts.len() - 1] {
            fd.rename(&fname, &tname).map_err(call_err(&what))
        } else {
            fd.rename_into(&fname, &td, &tname).map_err(call_err(&what))
        }
    }

    fn stat(&self, p: &str) -> Res<()> {
        let parts = resolve(&join(&self.cwd), p);
        if parts.len() < 2 {
            self.dir(&parts)?;
            self.out(&format!("{}: directory (mount root); times: not available for directories", join(&parts)));
            return Ok(());
        }
        let (_, d, name, _) = self.parent(p)?;
        let path = join(&parts);
        match d.open(&name) {
            Ok(f) => {
                let s = f.stat().map_err(call_err(&path))?;
                let kind = match s.kind {
                    NodeKind::File => "file",
                    NodeKind::Directory => "directory",
                };
                self.out(&format!("{}: {} bytes, {}", path, s.size, kind));
                self.out(&format!("  created:  {}", format_time(s.created.unix_nanos, s.created.provenance)));
                self.out(&format!("  modified: {}", format_time(s.modified.unix_nanos, s.modified.provenance)));
                Ok(())
            }
            Err(e) if is_code(&e, ErrorCode::IsADirectory) => {
                let size = d.list().map_err(call_err(&path))?.into_iter().find(|e| e.name == name).map(|e| e.size).unwrap_or(0);
                self.out(&format!("{}: {} bytes, directory; times: not available for directories", path, size));
                Ok(())
            }
            Err(e) => Err(call_err(&path)(e)),
        }
    }

    fn sha256(&self, p: &str) -> Res<()> {
        use sha2::{Digest, Sha256};
        let (f, path) = self.open(p)?;
        let mut h = Sha256::new();
        let n = Self::read_all(&f, &path, u64::MAX, &mut 0, |_, c| {
            h.update(c);
            Ok(())
        })?;
        let mut hex = String::new();
        for x in h.finalize().iter() {
            hex.push_str(&format!("{:02x}", x));
        }
        self.out(&format!("{}  {} ({} bytes)", hex, path, n));
        Ok(())
    }

    /// Any file on mount `i` (breadth first, bounded), to sync through.
    fn any_file(&self, i: usize) -> Option<File> {
        let mut queue: Vec<Vec<String>> = alloc::vec![alloc::vec![self.mounts[i].name.clone()]];
        let mut seen = 0;
        while let Some(parts) = (!queue.is_empty()).then(|| queue.remove(0)) {
            seen += 1;
            if seen > 64 {
                return None;
            }
            let Ok((_, d)) = self.dir(&parts) else { continue };
            let Ok(entries) = d.list() else { continue };
            for e in entries {
                match e.kind {
                    NodeKind::File => {
                        if let Ok(f) = d.open(&e.name) {
                            return Some(f);
                        }
                    }
                    NodeKind::Directory => {
                        let mut p = parts.clone();
                        p.push(e.name);
                        queue.push(p);
                    }
                }
            }
        }
        None
    }

    fn sync(&mut self) -> Res<()> {
        let mut first_err = None;
        for i in 0..self.mounts.len() {
            let name = format!("/{}", self.mounts[i].name);
            let mut done = match &self.mounts[i].sync_file {
                Some(f) => f.sync().is_ok(),
                None => false,
            };
            if !done {
                self.mounts[i].sync_file = None;
                match self.any_file(i) {
                    Some(f) => match f.sync() {
                        Ok(()) => {
                            done = true;
                            self.mounts[i].sync_file = Some(f);
                        }
                        Err(e) if e.code() == Some(ErrorCode::ReadOnly) => {
                            self.out(&format!("{}: read-only, nothing to sync", name));
                            continue;
                        }
                        Err(e) => {
                            let f = call_err(&name)(e);
                            self.out(&error_line(f.0, &f.1));
                            first_err.get_or_insert(f);
                            continue;
                        }
                    },
                    None => {
                        self.out(&format!("{}: no file to sync through (nothing written yet)", name));
                        continue;
                    }
                }
            }
            if done {
                self.out(&format!("synced {}", name));
            }
        }
        match first_err {
            Some(f) => Err(f),
            None => Ok(()),
        }
    }

    fn keys(&self, prefix: &str) -> Res<()> {
        let store = self.store()?;
        let mut after: Vec<u8> = Vec::new();
        let mut shown = 0usize;
        loop {
            let (page, more) = store.list(&after, 0).map_err(call_err("keys"))?;
            for k in &page {
                if k.starts_with(prefix.as_bytes()) {
                    if shown == KEYS_LIMIT {
                        self.out(&format!("... (stopped after {} keys)", KEYS_LIMIT));
                        return Ok(());
                    }
                    self.out(&show_bytes(k));
                    shown += 1;
                }
            }
            match page.last() {
                Some(last) if more => after = last.clone(),
                _ => break,
            }
        }
        self.out(&format!("({})", count(shown, "key", "keys")));
        Ok(())
    }
}

fn main(start: &StartInfo) -> i32 {
    let Some(console) = capos_rt::console() else { return 1 };
    let mut mounts = Vec::new();
    let mut store = None;
    let mut net = None;
    for (name, h) in &start.caps {
        if let Some(m) = name.strip_prefix("fs-") {
            mounts.push(Mount { name: m.to_string(), root: Directory::new(*h), sync_file: None });
        } else if name == "store" {
            store = Some(Store::new(*h));
        } else if name == "net" {
            net = Some(capos_rt::net::Network::new(*h));
        }
    }
    let mut sh = Shell { console, mounts, store, net, cwd: Vec::new(), counting: false };
    sh.out(&format!("capOS shell: {}, {}; type help", count(sh.mounts.len(), "filesystem", "filesystems"), if sh.store.is_some() { "a store" } else { "no store" }));
    loop {
        sh.out(PROMPT);
        // The end of the boot figures (make bench-boot): a no-op unless the
        // instruction-counting QEMU plugin is loaded, which reports only
        // the first prompt.
        capos_abi::icount::milestone();
        let line = match sh.console.read_line() {
            Ok(l) => l,
            Err(e) => {
                let f = call_err("console")(e);
                sh.out(&error_line(f.0, &f.1));
                return 2;
            }
        };
        match parse(&line) {
            Ok(Command::Exit) => {
                let _ = sh.sync();
                sh.out("bye");
                return 0;
            }
            Ok(cmd) => {
                if let Err(Failure(code, message)) = sh.run(cmd) {
                    sh.out(&error_line(code, &message));
                }
            }
            Err(e) => sh.out(&error_line(e.code, &e.message)),
        }
    }
}
