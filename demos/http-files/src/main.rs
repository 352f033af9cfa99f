//! http-files: a web server confined to a read-only directory.
//!
//! It holds a `Directory` granted as `root` (read-only: `grant root:
//! process:fs/files read-only`, or a read-only kernel mount), a way to
//! listen on one port (src/net_glue.rs: a `listener` grant, or a `net`
//! grant allowed that port), and optionally `console` (its log) and
//! `clock` (`kernel:clock`, for the idle and write deadlines). Nothing
//! else: whatever a request says, all it can reach is what `root`
//! reaches, through `open`, `sub`, `list`, `read` and `stat`. The HTTP
//! logic is the library's (`lib.rs`, host-tested).
//!
//! Arguments: `--port N` (default 80), `--connections N` (served in turn,
//! default 8), `--idle-ms N` (default 10000). `--self-test TARGET...`
//! serves a GET of each target over an in-memory connection instead of
//! the network, prints each response's head and a digest of its body,
//! and exits: the real tree, without a network.
//!
//! Connections are served by a [`Pool`]: up to `--connections` at once,
//! each polled in turn with a short wait, so an idle or slow client costs
//! the others at most that wait per turn and ends at its own deadline.
//! Further clients wait in the listener's backlog.
#![no_std]
#![no_main]

extern crate alloc;

mod net_glue;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::capos_capnp::{ErrorCode, NodeKind};
use capos_demo_http_files::{mtime, Config, Conn, ConnError, Entry, FileStat, Kind, Node, Pool, Tree, TreeError, TreeFile};
use capos_rt::{println, CallError, Directory, File, StartInfo};
use core::sync::atomic::{AtomicU64, Ordering};
use net_glue::{NetError, Stream};

// Per connection: a request head (at most ~28 KiB) and a 64 KiB chunk.
capos_rt::entry!(main, heap = 4 << 20);

const BACKLOG: u16 = 64;
/// Wait of one connection's turn when others are waiting too.
const TURN_MS: u32 = 5;
/// Wait of the only connection's turn (the listener is checked between).
const ALONE_MS: u32 = 50;
/// Wait for a connection when none is open.
const ACCEPT_IDLE_MS: u32 = 1000;

// ------------------------------------------------------------ the tree

/// The granted directory, walked one component at a time from its root.
struct DirTree {
    root: Directory,
}

/// A file of the tree: `read` and `stat` are all the server calls.
struct CapFile(File);

fn tree_error(e: CallError) -> TreeError {
    match e.code() {
        Some(ErrorCode::NotFound) | Some(ErrorCode::NotADirectory) => TreeError::NotFound,
        Some(ErrorCode::InvalidArgument) => TreeError::BadName,
        Some(ErrorCode::Unavailable) | Some(ErrorCode::Busy) => TreeError::Unavailable,
        _ => TreeError::Failed(format!("{e:?}")),
    }
}

fn entries(list: Vec<capos_rt::DirEntry>) -> Vec<Entry> {
    list.into_iter()
        .map(|e| Entry {
            name: e.name,
            kind: match e.kind {
                NodeKind::Directory => Kind::Directory,
                NodeKind::File => Kind::File,
            },
            size: e.size,
        })
        .collect()
}

impl Tree for DirTree {
    type File = CapFile;

    fn lookup(&self, path: &[String]) -> Result<Node<CapFile>, TreeError> {
        let Some((last, parents)) = path.split_last() else {
            return self.root.list().map(|l| Node::Dir(entries(l))).map_err(tree_error);
        };
        // Each intermediate Directory is dropped (its capability with it)
        // when the next replaces it.
        let mut here: Option<Directory> = None;
        for c in parents {
            let next = here.as_ref().unwrap_or(&self.root).sub(c).map_err(tree_error)?;
            here = Some(next);
        }
        let dir = here.as_ref().unwrap_or(&self.root);
        match dir.open(last) {
            Ok(f) => Ok(Node::File(CapFile(f))),
            Err(e) if e.code() == Some(ErrorCode::NotFound) => Err(TreeError::NotFound),
            // A directory (isADirectory), or a backer that says so otherwise.
            Err(e) => match dir.sub(last) {
                Ok(d) => d.list().map(|l| Node::Dir(entries(l))).map_err(tree_error),
                Err(_) => Err(tree_error(e)),
            },
        }
    }
}

impl TreeFile for CapFile {
    fn stat(&mut self) -> Result<FileStat, TreeError> {
        let s = self.0.stat().map_err(tree_error)?;
        Ok(FileStat { size: s.size, modified: mtime(&s.modified) })
    }

    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, TreeError> {
        self.0.read_bulk(offset, buf).map_err(tree_error)
    }
}

// ----------------------------------------------------------- the clock

/// Milliseconds counted from the waits that timed out, for a server
/// without a `clock` grant: a lower bound of the time passed, so
/// deadlines can only stretch, by the time spent in calls that returned
/// data.
static WAITED_MS: AtomicU64 = AtomicU64::new(0);

fn waited(ms: u32) {
    WAITED_MS.fetch_add(ms as u64, Ordering::Relaxed);
}

struct Now {
    clock: Option<capos_rt::Clock>,
    start_ns: u64,
}

impl Now {
    fn ms(&self) -> u64 {
        match self.clock.as_ref().map(|c| c.now()) {
            Some(Ok(ns)) => ns.saturating_sub(self.start_ns) / 1_000_000,
            _ => WAITED_MS.load(Ordering::Relaxed),
        }
    }
}

// ------------------------------------------------------ the connection

/// A connection of the pool over the glue's stream.
struct Tcp(Stream);

fn conn_error(e: NetError, timeout_ms: u32) -> ConnError {
    match e {
        NetError::TimedOut => {
            waited(timeout_ms);
            ConnError::TimedOut
        }
        NetError::Closed => ConnError::Closed,
        // Not the peer's doing: say so, then the connection is over.
        e => {
            println!("http-files: a connection failed: {e}");
            ConnError::Closed
        }
    }
}

impl Conn for Tcp {
    fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, ConnError> {
        self.0.read(buf, timeout_ms).map_err(|e| conn_error(e, timeout_ms))
    }

    fn write(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, ConnError> {
        self.0.write(data, timeout_ms).map_err(|e| conn_error(e, timeout_ms))
    }

    fn close(&mut self) {
        self.0.shutdown();
        self.0.close();
    }
}

// ---------------------------------------------------------------- main

fn entries_count(n: usize) -> String {
    if n == 1 {
        String::from("1 entry")
    } else {
        format!("{n} entries")
    }
}

fn arg(start: &StartInfo, name: &str) -> Option<u64> {
    let args: Vec<&str> = start.args.iter().map(|a| a.as_str()).collect();
    args.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse().ok())
}

fn main(start: &StartInfo) -> i32 {
    let Some(root) = start.cap("root").map(Directory::new) else {
        println!("http-files: no 'root' grant (a read-only Directory to serve)");
        return 2;
    };
    let port = arg(start, "--port").and_then(|p| u16::try_from(p).ok()).unwrap_or(80);
    let connections = arg(start, "--connections").map(|n| n.clamp(1, 64) as usize).unwrap_or(8);
    let mut cfg = Config::default();
    if let Some(ms) = arg(start, "--idle-ms") {
        cfg.idle_timeout_ms = ms.max(1);
    }
    let clock = start.cap("clock").map(capos_rt::Clock);
    let start_ns = clock.as_ref().and_then(|c| c.now().ok()).unwrap_or(0);
    let now = Now { clock, start_ns };

    // The grant must be a directory we can list, before anyone asks.
    let tree = DirTree { root };
    match tree.lookup(&[]) {
        Ok(Node::Dir(list)) => println!("http-files: 'root' lists {}", entries_count(list.len())),
        Ok(Node::File(_)) => {
            println!("http-files: 'root' is not a directory");
            return 2;
        }
        Err(e) => {
            println!("http-files: 'root' cannot be listed: {e:?}");
            return 2;
        }
    }

    if let Some(at) = start.args.iter().position(|a| a == "--self-test") {
        return self_test(&tree, cfg, &now, &start.args[at + 1..]);
    }

    let listener = match net_glue::listen(start, port, BACKLOG) {
        Ok(l) => l,
        // No network here: nothing to serve, and starting again would not
        // change that (a restart is for failures).
        Err(NetError::Unavailable(why)) => {
            println!("http-files: no network to listen on ({why}); not serving");
            return 0;
        }
        Err(e) => {
            println!("http-files: cannot listen on port {port}: {e}");
            return 3;
        }
    };
    println!(
        "http-files: serving the 'root' directory read-only on port {port}, {connections} connections at a time, idle timeout {} ms{}",
        cfg.idle_timeout_ms,
        if now.clock.is_some() { "" } else { " (no clock: deadlines counted from timed-out waits)" }
    );
    let mut pool: Pool<Tcp, CapFile> = Pool::new(cfg, connections);
    let mut accepted: u64 = 0;
    loop {
        if pool.has_room() {
            // Never 0: the network service may read 0 as "no limit".
            let wait = if pool.active() == 0 { ACCEPT_IDLE_MS } else { 1 };
            match listener.accept(wait) {
                Ok(s) => {
                    accepted += 1;
                    if pool.add(Tcp(s), now.ms()).is_err() {
                        println!("http-files: no room for connection {accepted}");
                    }
                }
                Err(NetError::TimedOut) => waited(wait),
                Err(e) => {
                    // The listener itself failed: nothing more will come.
                    println!("http-files: accept failed: {e}; stopping");
                    return 4;
                }
            }
        }
        let wait = if pool.active() > 1 { TURN_MS } else { ALONE_MS };
        pool.round(&tree, || now.ms(), wait);
    }
}

// ----------------------------------------------------------- self-test

/// A connection whose client is a fixed byte string.
struct Scripted {
    input: Vec<u8>,
    at: usize,
    out: Vec<u8>,
}

impl Conn for Scripted {
    fn read(&mut self, buf: &mut [u8], _timeout_ms: u32) -> Result<usize, ConnError> {
        let n = (self.input.len() - self.at).min(buf.len());
        buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }

    fn write(&mut self, data: &[u8], _timeout_ms: u32) -> Result<usize, ConnError> {
        self.out.extend_from_slice(data);
        Ok(data.len())
    }
}

/// FNV-1a, to name a body in the log without printing it.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

fn self_test(tree: &DirTree, cfg: Config, now: &Now, targets: &[String]) -> i32 {
    let mut input = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let close = if i + 1 == targets.len() { "Connection: close\r\n" } else { "" };
        input.extend_from_slice(format!("GET {t} HTTP/1.1\r\nHost: self-test\r\n{close}\r\n").as_bytes());
    }
    let mut conn = Scripted { input, at: 0, out: Vec::new() };
    let answered = capos_demo_http_files::serve(&mut conn, tree, cfg, || now.ms(), 50);
    let mut rest = conn.out.as_slice();
    while let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = core::str::from_utf8(&rest[..end]).unwrap_or("(not UTF-8)");
        let len = head.lines().find_map(|l| l.strip_prefix("Content-Length: ")).and_then(|n| n.trim().parse::<usize>().ok()).unwrap_or(0).min(rest.len() - end - 4);
        for l in head.lines() {
            println!("self-test: {l}");
        }
        let body = &rest[end + 4..end + 4 + len];
        println!("self-test: body {} bytes, fnv1a {:016x}", body.len(), fnv(body));
        // A JSON listing is short and says what the backer calls things.
        if head.contains("Content-Type: application/json") {
            println!("self-test: {}", core::str::from_utf8(&body[..body.len().min(1024)]).unwrap_or("(not UTF-8)").trim_end());
        }
        rest = &rest[end + 4 + len..];
    }
    println!("self-test: {answered} of {} answered", targets.len());
    if answered as usize == targets.len() {
        0
    } else {
        1
    }
}
