//! Host tests that try to break the server: every status, traversal in
//! many encodings, requests split at every byte, slow clients and slow
//! readers, pipelining, huge heads, ranges at each edge, HEAD, listings.

use super::*;
use crate::http::{decode_target, range, RangeAsk};
use crate::text::{etag, http_date, json_string};
use capos_text::civil::civil_from_days;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;
use std::string::ToString;
use std::vec;

// ---------------------------------------------------------------- fakes

#[derive(Clone)]
enum Ev {
    Data(Vec<u8>),
    /// The next read times out (after its whole timeout).
    Wait,
}

struct FakeConn {
    script: VecDeque<Ev>,
    /// When the script is done: time out forever (else: end of stream).
    then_wait: bool,
    out: Vec<u8>,
    now: Rc<Cell<u64>>,
    /// Most bytes a write takes.
    write_max: usize,
    /// Writes that time out before any is taken.
    stalls: usize,
    /// Bytes handed to the server.
    consumed: usize,
    closed: bool,
}

impl FakeConn {
    fn new(script: Vec<Ev>, now: &Rc<Cell<u64>>) -> FakeConn {
        FakeConn { script: script.into(), then_wait: false, out: Vec::new(), now: now.clone(), write_max: usize::MAX, stalls: 0, consumed: 0, closed: false }
    }
    fn wait(&self, ms: u32) {
        self.now.set(self.now.get() + (ms as u64).max(1));
    }
}

impl Conn for FakeConn {
    fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, ConnError> {
        assert!(!self.closed, "read after close");
        assert!(timeout_ms > 0, "a 0 ms timeout");
        match self.script.pop_front() {
            Some(Ev::Data(d)) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                if n < d.len() {
                    self.script.push_front(Ev::Data(d[n..].to_vec()));
                }
                self.consumed += n;
                Ok(n)
            }
            Some(Ev::Wait) => {
                self.wait(timeout_ms);
                Err(ConnError::TimedOut)
            }
            None if self.then_wait => {
                self.wait(timeout_ms);
                Err(ConnError::TimedOut)
            }
            None => Ok(0),
        }
    }
    fn write(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, ConnError> {
        assert!(!self.closed, "write after close");
        assert!(timeout_ms > 0, "a 0 ms timeout");
        if self.stalls > 0 {
            self.stalls -= 1;
            self.wait(timeout_ms);
            return Err(ConnError::TimedOut);
        }
        let n = data.len().min(self.write_max);
        self.out.extend_from_slice(&data[..n]);
        Ok(n)
    }
    fn close(&mut self) {
        self.closed = true;
    }
}

#[derive(Clone)]
enum FakeNode {
    File { data: Rc<Vec<u8>>, modified: Option<Mtime> },
    Dir,
}

#[derive(Default)]
struct FakeTree {
    nodes: BTreeMap<Vec<String>, FakeNode>,
    /// Every path looked up.
    lookups: RefCell<Vec<Vec<String>>>,
    /// The largest read asked of a file.
    max_read: Rc<Cell<usize>>,
    fail: bool,
    unavailable: bool,
}

struct FakeFile {
    data: Rc<Vec<u8>>,
    modified: Option<Mtime>,
    max_read: Rc<Cell<usize>>,
}

impl TreeFile for FakeFile {
    fn stat(&mut self) -> Result<FileStat, TreeError> {
        Ok(FileStat { size: self.data.len() as u64, modified: self.modified })
    }
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, TreeError> {
        self.max_read.set(self.max_read.get().max(buf.len()));
        let start = (offset as usize).min(self.data.len());
        let n = (self.data.len() - start).min(buf.len());
        buf[..n].copy_from_slice(&self.data[start..start + n]);
        Ok(n)
    }
}

const T0: i64 = 784_111_777_000_000_000; // Sun, 06 Nov 1994 08:49:37 GMT

fn p(path: &str) -> Vec<String> {
    path.split('/').filter(|c| !c.is_empty()).map(String::from).collect()
}

impl FakeTree {
    fn file(&mut self, path: &str, data: &[u8]) {
        self.file_at(path, data, Some(Mtime { unix_nanos: T0, exact: true }));
    }
    fn file_at(&mut self, path: &str, data: &[u8], modified: Option<Mtime>) {
        let comps = p(path);
        for i in 0..comps.len() {
            self.nodes.entry(comps[..i].to_vec()).or_insert(FakeNode::Dir);
        }
        self.nodes.insert(comps, FakeNode::File { data: Rc::new(data.to_vec()), modified });
    }
    fn dir(&mut self, path: &str) {
        self.nodes.insert(p(path), FakeNode::Dir);
    }
}

impl Tree for FakeTree {
    type File = FakeFile;
    fn lookup(&self, path: &[String]) -> Result<Node<FakeFile>, TreeError> {
        self.lookups.borrow_mut().push(path.to_vec());
        for c in path {
            // What a Directory capability refuses anyway.
            assert!(c != "." && c != ".." && !c.contains('/') && !c.contains('\0') && !c.is_empty(), "a bad name reached the tree: {c:?}");
        }
        if self.fail {
            return Err(TreeError::Failed("io".into()));
        }
        if self.unavailable {
            return Err(TreeError::Unavailable);
        }
        match self.nodes.get(path) {
            None => Err(TreeError::NotFound),
            Some(FakeNode::File { data, modified }) => Ok(Node::File(FakeFile { data: data.clone(), modified: *modified, max_read: self.max_read.clone() })),
            Some(FakeNode::Dir) => {
                let entries = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| k.len() == path.len() + 1 && k.starts_with(path))
                    .map(|(k, v)| match v {
                        FakeNode::File { data, .. } => Entry { name: k.last().unwrap().clone(), kind: Kind::File, size: data.len() as u64 },
                        FakeNode::Dir => Entry { name: k.last().unwrap().clone(), kind: Kind::Directory, size: 0 },
                    })
                    .collect();
                Ok(Node::Dir(entries))
            }
        }
    }
}

fn tree() -> FakeTree {
    let mut t = FakeTree::default();
    t.file("hello.txt", b"hello, world\n");
    t.file("empty.bin", b"");
    t.file("a/b/deep.html", b"<p>deep</p>");
    t.file("with space.txt", b"spaced");
    t.file("caf\u{e9}/\u{65e5}\u{672c}.txt", "日本".as_bytes());
    t.file_at("unknown.dat", b"0123456789", None);
    t.file_at("fat.txt", b"fat", Some(Mtime { unix_nanos: T0, exact: false }));
    let big: Vec<u8> = (0..(1u32 << 20) + 123).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    t.file("big.bin", &big);
    t.dir("emptydir");
    t
}

// ------------------------------------------------------- the responses

#[derive(Debug, Clone, PartialEq)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Resp {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Split `out` into responses; `heads[i]` says response i answers HEAD
/// (no body whatever its length says).
fn parse(out: &[u8], heads: &[bool]) -> Vec<Resp> {
    let mut v = Vec::new();
    let mut rest = out;
    let mut i = 0;
    while !rest.is_empty() {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n").expect("a whole head") + 4;
        let head = std::str::from_utf8(&rest[..end - 4]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status: u16 = status_line[9..12].parse().unwrap();
        assert_eq!(&status_line[13..], reason(status));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_string(), v.to_string())
            })
            .collect();
        let r = Resp { status, headers, body: Vec::new() };
        let len: usize = r.h("content-length").map(|l| l.parse().unwrap()).unwrap_or(0);
        let head_only = heads.get(i).copied().unwrap_or(false) || status == 304;
        let blen = if head_only { 0 } else { len };
        assert!(rest.len() >= end + blen, "short body: {} of {}", rest.len() - end, blen);
        v.push(Resp { body: rest[end..end + blen].to_vec(), ..r });
        rest = &rest[end + blen..];
        i += 1;
    }
    v
}

struct Run {
    resps: Vec<Resp>,
    raw: Vec<u8>,
    closed_at: u64,
    consumed: usize,
    answered: u64,
}

fn run_with(t: &FakeTree, cfg: Config, mut conn: FakeConn, heads: &[bool]) -> Run {
    let now = conn.now.clone();
    let mut s = Session::new(cfg, now.get());
    let mut polls = 0;
    while s.poll(&mut conn, t, now.get(), 100) != Poll::Closed {
        polls += 1;
        assert!(polls < 1_000_000, "the session never ended");
    }
    assert!(s.is_closed());
    Run { resps: parse(&conn.out, heads), raw: conn.out.clone(), closed_at: now.get(), consumed: conn.consumed, answered: s.answered }
}

fn run(t: &FakeTree, script: Vec<Ev>, heads: &[bool]) -> Run {
    let now = Rc::new(Cell::new(0));
    run_with(t, Config::default(), FakeConn::new(script, &now), heads)
}

fn data(s: &str) -> Ev {
    Ev::Data(s.as_bytes().to_vec())
}

/// One request (HTTP/1.1, Host, Connection: close) and its response.
fn get(t: &FakeTree, method: &str, target: &str, extra: &str) -> Resp {
    let req = format!("{method} {target} HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n");
    let r = run(t, vec![data(&req)], &[method == "HEAD"]);
    assert_eq!(r.resps.len(), 1, "{}", String::from_utf8_lossy(&r.raw));
    r.resps[0].clone()
}

fn status_of(t: &FakeTree, raw: &str) -> u16 {
    let r = run(t, vec![data(raw)], &[false]);
    assert_eq!(r.resps.len(), 1, "{raw:?}: {}", String::from_utf8_lossy(&r.raw));
    r.resps[0].status
}

// ---------------------------------------------------------------- tests

#[test]
fn get_a_file() {
    let t = tree();
    let r = get(&t, "GET", "/hello.txt", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello, world\n");
    assert_eq!(r.h("content-length"), Some("13"));
    assert_eq!(r.h("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(r.h("server"), Some("capOS http-files"));
    assert_eq!(r.h("last-modified"), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    assert_eq!(r.h("etag"), Some(format!("\"d-{:x}\"", T0).as_str()));
    assert_eq!(r.h("accept-ranges"), Some("bytes"));
    assert_eq!(r.h("connection"), Some("close"));
}

#[test]
fn head_has_the_same_headers_and_no_body() {
    let t = tree();
    for (target, extra) in [
        ("/hello.txt", ""),
        ("/", ""),
        ("/a/", ""),
        ("/?json", ""),
        ("/missing", ""),
        ("/big.bin", ""),
        ("/%2e%2e/x", ""),
        ("/empty.bin", ""),
        ("/hello.txt", "Range: bytes=0-0\r\n"),
    ] {
        let g = get(&t, "GET", target, extra);
        let h = get(&t, "HEAD", target, extra);
        assert!(h.body.is_empty());
        if extra.is_empty() {
            assert_eq!(g.headers, h.headers, "{target}");
            assert_eq!(g.h("content-length").unwrap(), g.body.len().to_string());
        } else {
            // Range is defined for GET only: HEAD answers as for the whole.
            assert_eq!(g.status, 206);
            assert_eq!(h.status, 200);
        }
    }
}

#[test]
fn last_modified_and_etag_follow_the_time_provenance() {
    let t = tree();
    let r = get(&t, "GET", "/unknown.dat", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.h("last-modified"), None);
    assert_eq!(r.h("etag"), None);
    let r = get(&t, "GET", "/fat.txt", "");
    assert!(r.h("etag").unwrap().starts_with("W/\""));
    assert_eq!(r.h("last-modified"), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    // The stat's provenance decides.
    use capos_abi::capos_capnp::TimeProvenance as P;
    assert_eq!(mtime(&Timestamp { unix_nanos: 0, provenance: P::Unknown }), None);
    assert_eq!(mtime(&Timestamp { unix_nanos: 5, provenance: P::WallClock }), Some(Mtime { unix_nanos: 5, exact: true }));
    assert_eq!(mtime(&Timestamp { unix_nanos: 5, provenance: P::FatDirectoryEntry }), Some(Mtime { unix_nanos: 5, exact: false }));
    assert_eq!(etag(&FileStat { size: 255, modified: Some(Mtime { unix_nanos: 16, exact: true }) }).unwrap(), "\"ff-10\"");
    assert_eq!(etag(&FileStat { size: 255, modified: None }), None);
}

#[test]
fn http_dates() {
    assert_eq!(http_date(0).unwrap(), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(T0).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(T0 + 999_999_999).unwrap(), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(http_date(951_782_400 * 1_000_000_000).unwrap(), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(http_date(4_107_542_400 * 1_000_000_000).unwrap(), "Mon, 01 Mar 2100 00:00:00 GMT");
    assert_eq!(http_date(-1).unwrap(), "Wed, 31 Dec 1969 23:59:59 GMT");
    assert_eq!(http_date(i64::MAX).unwrap(), "Fri, 11 Apr 2262 23:47:16 GMT");
    assert_eq!(http_date(i64::MIN).unwrap(), "Tue, 21 Sep 1677 00:12:43 GMT");
    // Every day of 400 years round-trips through a naive count.
    let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
    for days in 0..146_097i64 {
        assert_eq!(civil_from_days(days), (y, m, d));
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        let len = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1];
        d += 1;
        if d > len {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}

#[test]
fn if_none_match_gives_304() {
    let t = tree();
    let tag = get(&t, "GET", "/hello.txt", "").h("etag").unwrap().to_string();
    for inm in [tag.clone(), format!("W/{tag}"), format!("\"x\", {tag}"), "*".to_string()] {
        let r = get(&t, "GET", "/hello.txt", &format!("If-None-Match: {inm}\r\n"));
        assert_eq!(r.status, 304, "{inm}");
        assert!(r.body.is_empty());
        assert_eq!(r.h("etag"), Some(tag.as_str()));
        assert_eq!(r.h("content-length"), None);
    }
    assert_eq!(get(&t, "GET", "/hello.txt", "If-None-Match: \"other\"\r\n").status, 200);
    // Without a tag only `*` matches.
    assert_eq!(get(&t, "GET", "/unknown.dat", "If-None-Match: \"\"\r\n").status, 200);
}

#[test]
fn ranges_at_each_edge() {
    let t = tree();
    let body = b"hello, world\n";
    let check = |spec: &str, s: usize, e: usize| {
        let r = get(&t, "GET", "/hello.txt", &format!("Range: {spec}\r\n"));
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(r.body, &body[s..=e], "{spec}");
        assert_eq!(r.h("content-range").unwrap(), format!("bytes {s}-{e}/13"));
        assert_eq!(r.h("content-length").unwrap(), (e - s + 1).to_string());
    };
    check("bytes=0-0", 0, 0);
    check("bytes=12-12", 12, 12);
    check("bytes=12-", 12, 12);
    check("bytes=-1", 12, 12);
    check("bytes=0-", 0, 12);
    check("bytes=3-7", 3, 7);
    check("bytes=5-1000", 5, 12);
    check("bytes=-13", 0, 12);
    check("bytes=-99999999999999999999999", 0, 12);
    check("BYTES = 1-2", 1, 2);
    for spec in ["bytes=13-", "bytes=13-20", "bytes=-0", "bytes=99999999999999999999999-"] {
        let r = get(&t, "GET", "/hello.txt", &format!("Range: {spec}\r\n"));
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(r.h("content-range"), Some("bytes */13"));
    }
    // An empty file satisfies no range.
    for spec in ["bytes=0-0", "bytes=0-", "bytes=-1"] {
        let r = get(&t, "GET", "/empty.bin", &format!("Range: {spec}\r\n"));
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(r.h("content-range"), Some("bytes */0"));
    }
    // Ignored: malformed, several ranges, another unit, two Range fields.
    for extra in
        ["Range: bytes=7-3\r\n", "Range: bytes=0-1,3-4\r\n", "Range: items=0-1\r\n", "Range: bytes=x-\r\n", "Range: bytes=-\r\n", "Range: bytes=0-0\r\nRange: bytes=1-1\r\n"]
    {
        let r = get(&t, "GET", "/hello.txt", extra);
        assert_eq!(r.status, 200, "{extra}");
        assert_eq!(r.body, body);
    }
    // A range of a listing is ignored.
    assert_eq!(get(&t, "GET", "/", "Range: bytes=0-0\r\n").status, 200);
    assert_eq!(range("bytes=0-0", 0), RangeAsk::Unsatisfiable);
    assert_eq!(range("bytes=0-18446744073709551615", 10), RangeAsk::Part { start: 0, end: 9 });
}

#[test]
fn a_range_of_a_big_file_streams_only_that_range() {
    let t = tree();
    let whole = match &t.nodes[&p("big.bin")] {
        FakeNode::File { data, .. } => data.clone(),
        _ => unreachable!(),
    };
    let r = get(&t, "GET", "/big.bin", "Range: bytes=100000-300000\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &whole[100_000..=300_000]);
}

#[test]
fn big_files_are_streamed_in_chunks() {
    let t = tree();
    let r = get(&t, "GET", "/big.bin", "");
    let whole = match &t.nodes[&p("big.bin")] {
        FakeNode::File { data, .. } => data.clone(),
        _ => unreachable!(),
    };
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), whole.len());
    assert!(r.body == *whole);
    assert_eq!(t.max_read.get(), 64 * 1024);
}

#[test]
fn statuses() {
    let t = tree();
    let ok = "Host: x\r\n\r\n";
    for (raw, status) in [
        (format!("GET /hello.txt HTTP/1.1\r\n{ok}"), 200),
        (format!("GET / HTTP/1.0\r\n{ok}"), 200),
        (format!("GET /missing HTTP/1.1\r\n{ok}"), 404),
        (format!("GET /hello.txt/x HTTP/1.1\r\n{ok}"), 404),
        (format!("GET /emptydir/nothing HTTP/1.1\r\n{ok}"), 404),
        (format!("POST /hello.txt HTTP/1.1\r\n{ok}"), 405),
        (format!("PUT /x HTTP/1.1\r\n{ok}"), 405),
        (format!("DELETE /hello.txt HTTP/1.1\r\n{ok}"), 405),
        (format!("BREW / HTTP/1.1\r\n{ok}"), 405),
        (format!("get / HTTP/1.1\r\n{ok}"), 405),
        (format!("GET / HTTP/2.0\r\n{ok}"), 505),
        (format!("GET / HTTP/0.9\r\n{ok}"), 505),
        (format!("GET / HTTP/1.10\r\n{ok}"), 400),
        (format!("GET / http/1.1\r\n{ok}"), 400),
        (format!("GET /\r\n{ok}"), 400),
        (format!("GET  / HTTP/1.1\r\n{ok}"), 400),
        (format!("GET / HTTP/1.1 \r\n{ok}"), 400),
        (format!("G(T / HTTP/1.1\r\n{ok}"), 400),
        (format!("GET / HTTP/1.1\r\nHost x\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nX: a\x01b\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n"), 400),
        (format!("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"), 400),
        (format!("GET /{} HTTP/1.1\r\n{ok}", "a".repeat(9000)), 414),
        (format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20000)), 431),
        (format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(65)), 431),
        (format!("GET / HTTP/1.1\r\n{}\r\n", "X: y\r\n".repeat(64)), 200),
    ] {
        assert_eq!(status_of(&t, &raw), status, "{}", &raw[..raw.len().min(80)]);
    }
    let r = get(&t, "DELETE", "/hello.txt", "");
    assert_eq!(r.h("allow"), Some("GET, HEAD"));
    let mut failing = tree();
    failing.fail = true;
    assert_eq!(get(&failing, "GET", "/hello.txt", "").status, 500);
    let mut away = tree();
    away.unavailable = true;
    assert_eq!(get(&away, "GET", "/hello.txt", "").status, 503);
}

#[test]
fn a_long_request_line_is_refused_before_it_ends() {
    // No line end ever comes: 414 once the bound is passed, and the server
    // read no more than the bound and one read.
    let t = tree();
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data("GET /"), Ev::Data(vec![b'a'; 1 << 20])], &now);
    c.then_wait = true;
    let r = run_with(&t, Config::default(), c, &[false]);
    assert_eq!(r.resps[0].status, 414);
    assert!(r.consumed <= 8192 + 4096, "{}", r.consumed);
}

#[test]
fn a_huge_header_is_refused_and_bounded() {
    let t = tree();
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data("GET / HTTP/1.1\r\nCookie: "), Ev::Data(vec![b'c'; 1 << 20])], &now);
    c.then_wait = true;
    let r = run_with(&t, Config::default(), c, &[false]);
    assert_eq!(r.resps.len(), 1);
    assert_eq!(r.resps[0].status, 431);
    assert_eq!(r.resps[0].h("connection"), Some("close"));
    assert!(r.consumed <= 16 + 16384 + 4096, "{}", r.consumed);
    // Many small fields, each under the size bound.
    let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(10_000));
    assert_eq!(status_of(&t, &many), 431);
}

/// Targets that try to leave the tree, or are not a clean path.
const HOSTILE: &[&str] = &[
    "/..",
    "/../",
    "/../etc/passwd",
    "/a/../../etc/passwd",
    "/a/b/../../..",
    "/%2e%2e",
    "/%2E%2E/",
    "/%2e%2E/x",
    "/%2E%2e/x",
    "/.%2e/x",
    "/%2e./x",
    "/.%2E",
    "/a/%2e%2e/%2e%2e/x",
    "/%2e%2e%2fetc%2fpasswd",
    "/..%2fetc",
    "/..%2Fetc",
    "/a%2fb",
    "/%2f",
    "/%2F%2F",
    "/.",
    "/%2e",
    "/a/./b",
    "/a\\b",
    "/..\\..\\x",
    "/%5c..%5cx",
    "/%5C",
    "/%00",
    "/hello.txt%00.html",
    "/a%00",
    "/%0a",
    "/%0d%0aX:%20y",
    "/%7f",
    "/%",
    "/%2",
    "/%zz",
    "/%g0",
    "/%2e%",
    "/%c0%ae%c0%ae/x",
    "/%c0%af",
    "/%ff",
    "/%e6%97",
    "http://host/hello.txt",
    "HTTP://host/",
    "http://host/../x",
    "https://x",
    "host:80",
    "*",
    "hello.txt",
    "/a#frag",
    "/caf\u{e9}",
    "/a\"b",
    "/a<b>",
];

#[test]
fn traversal_is_refused_in_every_encoding() {
    let t = tree();
    for target in HOSTILE {
        for method in ["GET", "HEAD"] {
            let r = get(&t, method, target, "");
            assert_eq!(r.status, 400, "{method} {target}");
            assert_eq!(r.h("content-type"), Some("text/plain; charset=utf-8"));
        }
        assert!(decode_target(target.as_bytes()).is_err(), "{target}");
    }
    // No hostile path reached the tree (FakeTree::lookup asserts too).
    assert!(t.lookups.borrow().is_empty(), "{:?}", t.lookups.borrow());
    // A raw NUL, CR or tab in the target.
    for raw in ["GET /a\0b HTTP/1.1\r\n\r\n", "GET /a\tb HTTP/1.1\r\n\r\n", "GET /a\rb HTTP/1.1\r\n\r\n", "GET /\u{e9} HTTP/1.1\r\n\r\n"] {
        assert_eq!(status_of(&t, raw), 400, "{raw:?}");
    }
}

#[test]
fn names_that_look_odd_but_are_names() {
    let t = tree();
    // Decoded once: `%252e%252e` is the name `%2e%2e`, not `..`.
    assert_eq!(get(&t, "GET", "/%252e%252e", "").status, 404);
    assert_eq!(t.lookups.borrow().last().unwrap(), &vec!["%2e%2e".to_string()]);
    // `...`, `.hidden`, `a..b` are ordinary names.
    for target in ["/...", "/.hidden", "/a..b", "/%2e%2e%2e"] {
        assert_eq!(get(&t, "GET", target, "").status, 404, "{target}");
    }
    // Empty components are dropped; a trailing / is fine.
    assert_eq!(get(&t, "GET", "//a//b///deep.html", "").status, 200);
    assert_eq!(get(&t, "GET", "/a/b/", "").status, 200);
    assert_eq!(get(&t, "GET", "/hello.txt?json&x=..", "").body, b"hello, world\n");
}

#[test]
fn hostile_requests_do_not_stop_the_connection() {
    let t = tree();
    let mut req = String::new();
    for target in HOSTILE.iter().filter(|h| h.starts_with('/')) {
        req.push_str(&format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    req.push_str("GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let r = run(&t, vec![Ev::Data(req.into_bytes())], &[]);
    let n = r.resps.len();
    assert!(r.resps[..n - 1].iter().all(|r| r.status == 400));
    assert_eq!(r.resps[n - 1].status, 200);
    assert_eq!(r.resps[n - 1].body, b"hello, world\n");
}

#[test]
fn spaces_and_unicode() {
    let t = tree();
    let r = get(&t, "GET", "/with%20space.txt", "");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"spaced"[..]));
    let r = get(&t, "GET", "/caf%C3%A9/%E6%97%A5%E6%9C%AC.txt", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "日本");
    let r = get(&t, "GET", "/caf%c3%a9/", "");
    assert!(r.text().contains("<a href=\"/caf%C3%A9/%E6%97%A5%E6%9C%AC.txt\">日本.txt</a>"), "{}", r.text());
    // `+` is a plus, not a space.
    assert_eq!(get(&t, "GET", "/with+space.txt", "").status, 404);
}

#[test]
fn listings_escape_names() {
    let mut t = tree();
    t.file("d/<script>alert(1)<\\script>&\"x'.txt", b"x");
    t.file("d/sub dir/f", b"");
    t.file("d/q\"uote\\back\u{1}.txt", b"");
    let r = get(&t, "GET", "/d", "");
    assert_eq!(r.h("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(!html.contains("<script>"), "{html}");
    assert!(html.contains("&lt;script&gt;alert(1)&lt;\\script&gt;&amp;&quot;x&#39;.txt</a> 1"), "{html}");
    assert!(html.contains("href=\"/d/%3Cscript%3Ealert%281%29%3C%5Cscript%3E%26%22x%27.txt\""), "{html}");
    assert!(html.contains("<a href=\"/d/sub%20dir/\">sub dir/</a>"), "{html}");
    assert!(html.contains("<a href=\"/\">../</a>"), "{html}");
    let r = get(&t, "GET", "/d/?json", "");
    assert_eq!(r.h("content-type"), Some("application/json"));
    let json = r.text();
    assert!(json.starts_with("{\"path\":\"/d/\",\"entries\":["), "{json}");
    assert!(json.contains("{\"name\":\"\\u003cscript\\u003ealert(1)\\u003c\\\\script\\u003e\\u0026\\\"x'.txt\",\"kind\":\"file\",\"size\":1}"), "{json}");
    assert!(json.contains("{\"name\":\"q\\\"uote\\\\back\\u0001.txt\",\"kind\":\"file\",\"size\":0}"), "{json}");
    assert!(json.contains("{\"name\":\"sub dir\",\"kind\":\"directory\",\"size\":0}"), "{json}");
    assert_eq!(json_string("a\"b\\c\nd\u{1f}e\u{2028}"), "\"a\\\"b\\\\c\\nd\\u001fe\\u2028\"");
    // The root: no parent link; json by any spelling of the query key.
    let root = get(&t, "GET", "/", "").text();
    assert!(!root.contains("../"));
    assert!(root.contains("<a href=\"/hello.txt\">hello.txt</a> 13"));
    assert!(root.contains("<a href=\"/a/\">a/</a>"));
    assert!(get(&t, "GET", "/?x=1&json=yes", "").text().starts_with("{\"path\":\"/\""));
    assert_eq!(get(&t, "GET", "/emptydir?json", "").text(), "{\"path\":\"/emptydir/\",\"entries\":[]}\n");
}

#[test]
fn content_types() {
    use crate::text::content_type;
    assert_eq!(content_type("a.HTML"), "text/html; charset=utf-8");
    assert_eq!(content_type("x.tar.gz"), "application/gzip");
    assert_eq!(content_type("p.PNG"), "image/png");
    assert_eq!(content_type("README"), "application/octet-stream");
    assert_eq!(content_type(".png"), "application/octet-stream");
    assert_eq!(content_type("a.exe"), "application/octet-stream");
    assert_eq!(get(&tree(), "GET", "/big.bin", "").h("content-type"), Some("application/octet-stream"));
}

const TWO: &str = "GET /hello.txt HTTP/1.1\r\nHost: x\r\nUser-Agent: split-test\r\n\r\nHEAD /a/b/deep.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

#[test]
fn requests_split_at_every_byte() {
    let t = tree();
    let whole = run(&t, vec![data(TWO)], &[false, true]);
    assert_eq!(whole.resps.len(), 2);
    assert_eq!(whole.resps[0].status, 200);
    assert_eq!(whole.resps[1].status, 200);
    let b = TWO.as_bytes();
    for i in 1..b.len() {
        let r = run(&t, vec![Ev::Data(b[..i].to_vec()), Ev::Data(b[i..].to_vec())], &[false, true]);
        assert_eq!(r.raw, whole.raw, "split at {i}");
        // With a timeout between the halves too.
        let r = run(&t, vec![Ev::Data(b[..i].to_vec()), Ev::Wait, Ev::Data(b[i..].to_vec())], &[false, true]);
        assert_eq!(r.raw, whole.raw, "split at {i} with a wait");
    }
    let bytewise: Vec<Ev> = b.iter().map(|&c| Ev::Data(vec![c])).collect();
    assert_eq!(run(&t, bytewise, &[false, true]).raw, whole.raw);
    // Bare LF line ends are accepted too.
    let lf = TWO.replace("\r\n", "\n");
    assert_eq!(run(&t, vec![data(&lf)], &[false, true]).raw, whole.raw);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let t = tree();
    let req = "GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /missing HTTP/1.1\r\n\r\nGET /hello.txt HTTP/1.1\r\nRange: bytes=-6\r\n\r\nGET /a HTTP/1.1\r\nConnection: close\r\n\r\nGET /hello.txt HTTP/1.1\r\n\r\n";
    let r = run(&t, vec![data(req)], &[false, true, false, false, false, false]);
    let st: Vec<u16> = r.resps.iter().map(|r| r.status).collect();
    // The last one comes after `Connection: close`: never answered.
    assert_eq!(st, [200, 200, 404, 206, 200]);
    assert_eq!(r.resps[3].body, b"world\n");
    assert_eq!(r.answered, 5);
}

#[test]
fn keep_alive_and_close() {
    let t = tree();
    let two = |first: &str| {
        let req = format!("{first}GET /hello.txt HTTP/1.1\r\n\r\n");
        run(&t, vec![data(&req)], &[]).resps.len()
    };
    assert_eq!(two("GET / HTTP/1.1\r\n\r\n"), 2);
    assert_eq!(two("GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n"), 2);
    assert_eq!(two("GET / HTTP/1.1\r\nConnection: Upgrade, CLOSE\r\n\r\n"), 1);
    assert_eq!(two("GET / HTTP/1.0\r\n\r\n"), 1);
    assert_eq!(two("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"), 1);
    // A body we do not read: answered, then closed.
    assert_eq!(two("GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"), 1);
    assert_eq!(two("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 1);
    assert_eq!(two("GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n"), 2);
    // Refusals of the request itself close; a refused path does not.
    assert_eq!(two("GET / HTTP/2.0\r\n\r\n"), 1);
    assert_eq!(two("GET /../x HTTP/1.1\r\n\r\n"), 2);
    assert_eq!(two("GET /missing HTTP/1.1\r\n\r\n"), 2);
    // Empty lines before a request are skipped.
    assert_eq!(two("\r\n\r\nGET / HTTP/1.1\r\n\r\n"), 2);
    // A 1.0 answer says so.
    let r = run(&t, vec![data("GET /hello.txt HTTP/1.0\r\n\r\n")], &[]);
    assert_eq!(r.resps[0].h("connection"), Some("close"));
}

#[test]
fn idle_connections_time_out() {
    let t = tree();
    // Nothing ever comes: closed silently at the idle timeout.
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![], &now);
    c.then_wait = true;
    let r = run_with(&t, Config::default(), c, &[]);
    assert!(r.raw.is_empty());
    assert!((10_000..10_200).contains(&r.closed_at), "{}", r.closed_at);
    // After a response, the connection gets a fresh idle timeout.
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data("GET / HTTP/1.1\r\n\r\n")], &now);
    c.then_wait = true;
    let r = run_with(&t, Config { idle_timeout_ms: 3000, ..Config::default() }, c, &[]);
    assert_eq!(r.resps.len(), 1);
    assert!((3000..3200).contains(&r.closed_at), "{}", r.closed_at);
}

#[test]
fn a_slow_client_is_served_within_the_deadline_and_cut_off_after_it() {
    let t = tree();
    let req = b"GET /hello.txt HTTP/1.1\r\nConnection: close\r\n\r\n";
    // One byte per 150 ms (a wait of 100 ms and a byte): 46 bytes in ~7 s.
    let slow = |cfg: Config| {
        let mut script = Vec::new();
        for &b in req.iter() {
            script.push(Ev::Wait);
            script.push(Ev::Data(vec![b]));
        }
        let now = Rc::new(Cell::new(0));
        let mut c = FakeConn::new(script, &now);
        c.then_wait = true;
        run_with(&t, cfg, c, &[false])
    };
    let r = slow(Config::default());
    assert_eq!(r.resps[0].status, 200);
    // Slowloris: the whole head must arrive within the idle timeout,
    // however steadily the bytes trickle in.
    let r = slow(Config { idle_timeout_ms: 2000, ..Config::default() });
    assert_eq!(r.resps.len(), 1);
    assert_eq!(r.resps[0].status, 408);
    assert!(r.closed_at < 2200);
}

#[test]
fn a_slow_reader_gets_everything_and_a_dead_one_is_dropped() {
    let t = tree();
    let req = "GET /big.bin HTTP/1.1\r\nConnection: close\r\n\r\n";
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data(req)], &now);
    c.write_max = 1000;
    c.stalls = 3;
    let r = run_with(&t, Config::default(), c, &[false]);
    assert_eq!(r.resps[0].status, 200);
    assert_eq!(r.resps[0].body.len(), (1 << 20) + 123);
    // A client that never reads: the response is abandoned at the write
    // timeout.
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data(req)], &now);
    c.stalls = usize::MAX;
    c.then_wait = true;
    let r = run_with(&t, Config { write_timeout_ms: 5000, ..Config::default() }, c, &[]);
    assert!(r.raw.is_empty());
    assert!((5000..5200).contains(&r.closed_at), "{}", r.closed_at);
}

#[test]
fn a_file_that_shrinks_ends_the_connection() {
    struct Liar;
    struct LiarFile;
    impl TreeFile for LiarFile {
        fn stat(&mut self) -> Result<FileStat, TreeError> {
            Ok(FileStat { size: 100, modified: None })
        }
        fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, TreeError> {
            let n = (50u64.saturating_sub(offset) as usize).min(buf.len());
            buf[..n].fill(b'x');
            Ok(n)
        }
    }
    impl Tree for Liar {
        type File = LiarFile;
        fn lookup(&self, _: &[String]) -> Result<Node<LiarFile>, TreeError> {
            Ok(Node::File(LiarFile))
        }
    }
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data("GET /x HTTP/1.1\r\n\r\nGET /x HTTP/1.1\r\n\r\n")], &now);
    let mut s = Session::new(Config::default(), 0);
    while s.poll(&mut c, &Liar, now.get(), 100) != Poll::Closed {}
    let out = String::from_utf8(c.out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(out.contains("Content-Length: 100\r\n"));
    assert!(out.ends_with(&"x".repeat(50)), "{out}");
}

#[test]
fn a_pool_is_not_held_by_idle_or_slow_connections() {
    let t = tree();
    let now = Rc::new(Cell::new(0));
    let mut pool: Pool<FakeConn, FakeFile> = Pool::new(Config::default(), 4);
    // Three connections that never send anything, and one that never
    // reads its response.
    for _ in 0..3 {
        let mut c = FakeConn::new(vec![], &now);
        c.then_wait = true;
        pool.add(c, 0).map_err(|_| ()).unwrap();
    }
    let mut stuck = FakeConn::new(vec![data("GET /big.bin HTTP/1.1\r\n\r\n")], &now);
    stuck.stalls = usize::MAX;
    stuck.then_wait = true;
    pool.add(stuck, 0).map_err(|_| ()).unwrap();
    assert!(!pool.has_room());
    // A round costs at most one short wait per connection.
    pool.round(&t, || now.get(), 10);
    assert!(now.get() <= 40, "{}", now.get());
    // Every one ends by its deadline; none outlives it by much.
    while pool.active() > 0 {
        pool.round(&t, || now.get(), 10);
        assert!(now.get() < 10_100, "{}", now.get());
    }
}

#[test]
fn a_pool_serves_64_connections_in_turn() {
    let t = tree();
    let now = Rc::new(Cell::new(0));
    let outs: Vec<Rc<RefCell<Vec<u8>>>> = (0..64).map(|_| Rc::new(RefCell::new(Vec::new()))).collect();
    /// A connection that keeps what it was sent after the pool drops it.
    struct Kept(FakeConn, Rc<RefCell<Vec<u8>>>);
    impl Conn for Kept {
        fn read(&mut self, buf: &mut [u8], t: u32) -> Result<usize, ConnError> {
            self.0.read(buf, t)
        }
        fn write(&mut self, d: &[u8], t: u32) -> Result<usize, ConnError> {
            let n = self.0.write(d, t)?;
            self.1.borrow_mut().extend_from_slice(&d[..n]);
            Ok(n)
        }
    }
    let mut pool2: Pool<Kept, FakeFile> = Pool::new(Config::default(), 8);
    let mut next = 0;
    let mut rounds = 0;
    while next < 64 || pool2.active() > 0 {
        while next < 64 && pool2.has_room() {
            // Every fourth client is slow: a byte at a time with waits.
            let req = format!("GET /big.bin HTTP/1.1\r\nRange: bytes={}-{}\r\nConnection: close\r\n\r\n", next * 1000, next * 1000 + 99);
            let script = if next % 4 == 0 { req.bytes().flat_map(|b| [Ev::Wait, Ev::Data(vec![b])]).collect() } else { vec![Ev::Data(req.into_bytes())] };
            let mut c = FakeConn::new(script, &now);
            c.write_max = 37;
            pool2.add(Kept(c, outs[next].clone()), now.get()).map_err(|_| ()).unwrap();
            next += 1;
        }
        // 0 asked: the connections still see at least 1 ms.
        pool2.round(&t, || now.get(), if rounds % 2 == 0 { 5 } else { 0 });
        rounds += 1;
        assert!(rounds < 100_000);
    }
    let whole = match &t.nodes[&p("big.bin")] {
        FakeNode::File { data, .. } => data.clone(),
        _ => unreachable!(),
    };
    for (i, o) in outs.iter().enumerate() {
        let r = parse(&o.borrow(), &[false]);
        assert_eq!(r.len(), 1, "connection {i}");
        assert_eq!(r[0].status, 206);
        assert_eq!(r[0].body, &whole[i * 1000..i * 1000 + 100]);
    }
}

#[test]
fn the_tree_has_no_way_to_write() {
    // A compile-time fact, checked by reading: Tree has `lookup`, TreeFile
    // `stat` and `read`, and nothing else. This test keeps a list of
    // them so adding one shows up in review.
    fn _only_these<T: Tree>(t: &T) {
        let _ = t.lookup(&[]);
    }
    fn _file<F: TreeFile>(mut f: F) {
        let _ = f.stat();
        let _ = f.read(0, &mut []);
    }
    let _ = vec![0u8];
}

#[test]
fn bounds_are_exact() {
    let t = tree();
    // A request line of exactly 8192 bytes passes; one more is 414.
    let line = |n: usize| format!("GET /{} HTTP/1.1", "a".repeat(n - "GET / HTTP/1.1".len()));
    assert_eq!(line(8192).len(), 8192);
    assert_eq!(status_of(&t, &format!("{}\r\n\r\n", line(8192))), 404);
    assert_eq!(status_of(&t, &format!("{}\r\n\r\n", line(8193))), 414);
    // ... also when the longest line's CR and LF come apart.
    let l = format!("{}\r", line(8192));
    assert_eq!(run(&t, vec![data(&l), Ev::Wait, data("\n\r\n")], &[false]).resps[0].status, 404);
    let l = format!("{}\r", line(8193));
    assert_eq!(run(&t, vec![data(&l), Ev::Wait, data("\n\r\n")], &[false]).resps[0].status, 414);
    // Header fields of exactly 16384 bytes (line ends and the empty line
    // included) pass; one more is 431.
    let fields = |n: usize| format!("X: {}\r\n\r\n", "b".repeat(n - "X: \r\n\r\n".len()));
    assert_eq!(fields(16384).len(), 16384);
    assert_eq!(status_of(&t, &format!("GET / HTTP/1.1\r\n{}", fields(16384))), 200);
    assert_eq!(status_of(&t, &format!("GET / HTTP/1.1\r\n{}", fields(16385))), 431);
    // Smaller bounds are honoured as given.
    let cfg = Config { limits: crate::http::Limits { max_request_line: 23, max_header_bytes: 30, max_headers: 2 }, ..Config::default() };
    let st = |raw: &str| {
        let now = Rc::new(Cell::new(0));
        run_with(&t, cfg, FakeConn::new(vec![data(raw)], &now), &[false]).resps[0].status
    };
    assert_eq!(st("GET /hello.txt HTTP/1.1\r\nA: b\r\nC: d\r\n\r\n"), 200);
    assert_eq!(st("GET /hello.txt HTTP/1.1\r\nA: b\r\nC: d\r\nE: f\r\n\r\n"), 431);
    assert_eq!(st("GET /hello.txt1 HTTP/1.1\r\n\r\n"), 414);
    assert_eq!(st("GET /hello.txt HTTP/1.1\r\nA: 01234567890123456789012\r\n\r\n"), 200);
    assert_eq!(st("GET /hello.txt HTTP/1.1\r\nA: 012345678901234567890123\r\n\r\n"), 431);
}

#[test]
fn empty_lines_forever_do_not_hold_a_connection() {
    let t = tree();
    let now = Rc::new(Cell::new(0));
    let script: Vec<Ev> = (0..100_000).flat_map(|_| [Ev::Wait, data("\r\n")]).collect();
    let r = run_with(&t, Config::default(), FakeConn::new(script, &now), &[]);
    assert!(r.raw.is_empty());
    assert!((10_000..10_200).contains(&r.closed_at), "{}", r.closed_at);
}

#[test]
fn a_name_the_backer_refuses_is_400() {
    struct Picky;
    impl Tree for Picky {
        type File = FakeFile;
        fn lookup(&self, _: &[String]) -> Result<Node<FakeFile>, TreeError> {
            Err(TreeError::BadName)
        }
    }
    let now = Rc::new(Cell::new(0));
    let mut c = FakeConn::new(vec![data("GET /x:y HTTP/1.1\r\n\r\n")], &now);
    let mut s = Session::new(Config::default(), 0);
    while s.poll(&mut c, &Picky, now.get(), 100) != Poll::Closed {}
    assert_eq!(parse(&c.out, &[false])[0].status, 400);
}

/// xorshift64*: a fixed sequence, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn mutated_requests_never_break_it() {
    // Valid requests mutated at random with the bytes that matter; each
    // must end in well-formed responses with known statuses, no bad name
    // may reach the tree (FakeTree::lookup asserts), and nothing panics.
    let t = tree();
    let seeds = [
        "GET /hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=0-4\r\n\r\n",
        "HEAD /a/b/deep.html HTTP/1.0\r\nIf-None-Match: \"x\"\r\n\r\n",
        "GET /caf%C3%A9/%E6%97%A5%E6%9C%AC.txt?json HTTP/1.1\r\nConnection: close\r\n\r\n",
        "GET /a/%2e%2e/hello.txt HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    ];
    let alphabet: &[u8] = b"%./\\\0\r\n :?#-=,2eEfF05aAcC\xff\xc0\xae\t\"<";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let known = [200, 206, 304, 400, 404, 405, 408, 414, 416, 431, 505];
    for round in 0..3000 {
        let mut req = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(req.len() + 1);
            match rng.below(4) {
                0 if at < req.len() => req[at] = alphabet[rng.below(alphabet.len())],
                1 => req.insert(at, alphabet[rng.below(alphabet.len())]),
                2 if at < req.len() => {
                    req.remove(at);
                }
                _ => {
                    let end = (at + rng.below(8)).min(req.len());
                    let piece = req[at..end].to_vec();
                    req.splice(at..at, piece);
                }
            }
        }
        // Delivered in random pieces.
        let mut script = Vec::new();
        let mut i = 0;
        while i < req.len() {
            let n = 1 + rng.below(req.len() - i);
            script.push(Ev::Data(req[i..i + n].to_vec()));
            if rng.below(3) == 0 {
                script.push(Ev::Wait);
            }
            i += n;
        }
        let now = Rc::new(Cell::new(0));
        let mut c = FakeConn::new(script, &now);
        c.then_wait = rng.below(2) == 0;
        let out = {
            let mut s = Session::new(Config::default(), 0);
            let mut polls = 0;
            while s.poll(&mut c, &t, now.get(), 100) != Poll::Closed {
                polls += 1;
                assert!(polls < 100_000, "{:?}", String::from_utf8_lossy(&req));
            }
            c.out.clone()
        };
        // Every response is whole; HEAD ones may carry no body, so only
        // the status lines are checked here.
        let text = String::from_utf8_lossy(&out);
        for line in text.split("\r\n").filter(|l| l.starts_with("HTTP/1.1 ")) {
            let status: u16 = line[9..12].parse().unwrap();
            assert!(known.contains(&status), "{line} for {:?}", String::from_utf8_lossy(&req));
        }
    }
}
