//! http-files' core: a confined HTTP/1.1 file server over two small
//! traits, a connection ([`Conn`]) and a read-only tree ([`Tree`]). Plain
//! `no_std` code, host-tested here (`cargo test -p capos-demo-http-files`);
//! `main.rs` implements the tree over a `Directory` capability and the
//! connection over the network service's `TcpStream`.
//!
//! Rules:
//! - **Read-only by construction.** [`Tree`] and [`TreeFile`] have no
//!   operation that changes anything: lookup, list, stat, read. The
//!   binary's tree holds a read-only `Directory` grant, so even a bug
//!   here could not write: the capability would refuse it.
//! - **Confined.** A request's path is decoded into components, each
//!   checked ([`http::decode_target`]): `.` and `..` (plain or encoded,
//!   any case), encoded slashes, backslashes, NUL and control
//!   characters, invalid percent-encoding and non-UTF-8 are refused with
//!   `400`, as are absolute URLs. Nothing is normalized. The components
//!   go to the tree one at a time from its root; the capability itself
//!   reaches nothing above it.
//! - **Bounded.** A request head is at most [`http::Limits`] (`414`,
//!   `431`); a connection holds at most that head plus one read and one
//!   chunk of a file ([`Config::chunk_bytes`]): files are streamed, never
//!   read whole. A request must arrive within
//!   [`Config::idle_timeout_ms`] of the connection going idle (else
//!   `408` if part of one came, or a silent close), and a response must
//!   make progress within [`Config::write_timeout_ms`].
//! - **Fair.** A [`Session`] is a state machine polled with a short wait
//!   ([`Session::poll`]); a [`Pool`] polls a fixed number of them in turn,
//!   so one slow or idle client holds the others for at most one wait
//!   per turn, and its own deadline ends it.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod http;
#[cfg(test)]
mod tests;
pub mod text;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use capos_abi::capos_capnp::TimeProvenance;
use capos_abi::helpers::Timestamp;
use core::fmt::Write;
use http::{Limits, Method, Parsed, RangeAsk, Refusal, Request};

/// The `Server` field of every response.
pub const SERVER: &str = "capOS http-files";
/// The `Allow` field of a `405`.
pub const ALLOW: &str = "GET, HEAD";

/// How a server behaves; `Config::default()` is what the binary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub limits: Limits,
    /// A connection with no whole request this long after it went idle
    /// (accepted, or its last response sent) is closed.
    pub idle_timeout_ms: u64,
    /// A response that makes no progress this long is abandoned.
    pub write_timeout_ms: u64,
    /// Bytes of a file read and written at a time.
    pub chunk_bytes: usize,
    /// Bytes asked of the connection per read.
    pub read_bytes: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config { limits: Limits::default(), idle_timeout_ms: 10_000, write_timeout_ms: 10_000, chunk_bytes: 64 * 1024, read_bytes: 4096 }
    }
}

/// Why a connection call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnError {
    /// Nothing happened within the timeout (try again later).
    TimedOut,
    /// The connection is gone (reset, closed, or any other failure).
    Closed,
}

/// A byte stream to one client (the binary's is a `TcpStream`).
pub trait Conn {
    /// Up to `buf.len()` bytes, waiting at most `timeout_ms`; `Ok(0)` is
    /// the end of the stream, `Err(TimedOut)` that nothing came.
    fn read(&mut self, buf: &mut [u8], timeout_ms: u32) -> Result<usize, ConnError>;
    /// Queue some of `data`, waiting at most `timeout_ms` for room;
    /// returns how many bytes were taken (`Ok(0)` or `Err(TimedOut)`:
    /// none yet).
    fn write(&mut self, data: &[u8], timeout_ms: u32) -> Result<usize, ConnError>;
    /// The server is done with the connection (after the last response).
    fn close(&mut self) {}
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    File,
    Directory,
}

/// One entry of a directory listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub size: u64,
}

/// A file's modification time, when its format stores one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mtime {
    pub unix_nanos: i64,
    /// Fine enough that a rewrite changes it (not FAT's two seconds):
    /// the entity tag is strong only then.
    pub exact: bool,
}

/// What a response needs of `File.stat`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    pub modified: Option<Mtime>,
}

/// The modification time of a `File.stat` timestamp: none when its
/// provenance is `unknown` (the format stores none; the value is zero).
pub fn mtime(t: &Timestamp) -> Option<Mtime> {
    match t.provenance {
        TimeProvenance::Unknown => None,
        TimeProvenance::FatDirectoryEntry => Some(Mtime { unix_nanos: t.unix_nanos, exact: false }),
        _ => Some(Mtime { unix_nanos: t.unix_nanos, exact: true }),
    }
}

/// Why a lookup or a read failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeError {
    /// No such entry, or a file where a directory was needed: `404`.
    NotFound,
    /// The backer refused the name: `400`.
    BadName,
    /// What serves the tree is absent or restarting (`unavailable`,
    /// `busy`): `503`, try again.
    Unavailable,
    /// Anything else: `500` (the text is logged by the caller's tree,
    /// never sent).
    Failed(String),
}

/// An open file of the tree: read-only, there is no other operation.
pub trait TreeFile {
    fn stat(&mut self) -> Result<FileStat, TreeError>;
    /// Up to `buf.len()` bytes at `offset` (fewer at the end, 0 past it).
    fn read(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize, TreeError>;
}

/// What a path names.
pub enum Node<F> {
    File(F),
    /// A directory, listed: sorted as the backer sorts.
    Dir(Vec<Entry>),
}

/// A read-only tree, reached from its root one component at a time.
pub trait Tree {
    type File: TreeFile;
    /// The node at `path` (components from the root; empty: the root).
    fn lookup(&self, path: &[String]) -> Result<Node<Self::File>, TreeError>;
}

/// The reason phrase of each status this server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response on its way out: the head (and a small body) in `out`, a
/// file's bytes `next..end` still to read.
struct Outgoing<F> {
    out: Vec<u8>,
    body: Option<Body<F>>,
    close: bool,
}

struct Body<F> {
    file: F,
    next: u64,
    end: u64,
}

fn head(status: u16, close: bool, fields: &[(&str, &str)], length: Option<u64>) -> String {
    let mut h = String::new();
    let _ = write!(h, "HTTP/1.1 {} {}\r\nServer: {}\r\n", status, reason(status), SERVER);
    for (name, value) in fields {
        let _ = write!(h, "{name}: {value}\r\n");
    }
    if let Some(n) = length {
        let _ = write!(h, "Content-Length: {n}\r\n");
    }
    if close {
        h.push_str("Connection: close\r\n");
    }
    h.push_str("X-Content-Type-Options: nosniff\r\n\r\n");
    h
}

fn small<F>(status: u16, close: bool, head_only: bool, fields: &[(&str, &str)], content_type: &str, body: &[u8]) -> Outgoing<F> {
    let mut all: Vec<(&str, &str)> = Vec::with_capacity(fields.len() + 1);
    all.push(("Content-Type", content_type));
    all.extend_from_slice(fields);
    let mut out = head(status, close, &all, Some(body.len() as u64)).into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    Outgoing { out, body: None, close }
}

fn error<F>(status: u16, why: &str, close: bool, head_only: bool) -> Outgoing<F> {
    let body = format!("{} {}: {}\n", status, reason(status), why);
    let allow: &[(&str, &str)] = if status == 405 { &[("Allow", ALLOW)] } else { &[] };
    small(status, close, head_only, allow, "text/plain; charset=utf-8", body.as_bytes())
}

fn refusal<F>(r: Refusal) -> Outgoing<F> {
    error(r.status, r.why, r.close, r.head)
}

fn respond<T: Tree>(req: Request, tree: &T) -> Outgoing<T::File> {
    let close = !req.keep_alive;
    let head_only = req.method == Method::Head;
    let mut file = match tree.lookup(&req.path) {
        Err(TreeError::NotFound) => return error(404, "no such file or directory", close, head_only),
        Err(TreeError::BadName) => return error(400, "the name was refused", close, head_only),
        Err(TreeError::Failed(_)) => return error(500, "the file could not be read", close, head_only),
        Err(TreeError::Unavailable) => return error(503, "the storage is not available now", close, head_only),
        Ok(Node::Dir(entries)) => {
            let (body, ty) =
                if req.json { (text::listing_json(&req.path, &entries), "application/json") } else { (text::listing_html(&req.path, &entries), "text/html; charset=utf-8") };
            return small(200, close, head_only, &[], ty, body.as_bytes());
        }
        Ok(Node::File(f)) => f,
    };
    let stat = match file.stat() {
        Ok(s) => s,
        Err(TreeError::Unavailable) => return error(503, "the storage is not available now", close, head_only),
        Err(_) => return error(500, "the file could not be read", close, head_only),
    };
    let size = stat.size;
    let tag = text::etag(&stat);
    let date = stat.modified.and_then(|m| text::http_date(m.unix_nanos));
    let name = req.path.last().map(String::as_str).unwrap_or("");
    let mut fields: Vec<(&str, &str)> = Vec::with_capacity(6);
    if let Some(t) = &tag {
        fields.push(("ETag", t));
    }
    if let Some(d) = &date {
        fields.push(("Last-Modified", d));
    }
    if let Some(inm) = &req.if_none_match {
        if text::none_match(inm, tag.as_deref().unwrap_or("\"\u{0}\"")) {
            // 304: the validators, no body and no length.
            return Outgoing { out: head(304, close, &fields, None).into_bytes(), body: None, close };
        }
    }
    fields.push(("Content-Type", text::content_type(name)));
    fields.push(("Accept-Ranges", "bytes"));
    let ask = match (&req.range, req.method) {
        (Some(r), Method::Get) => http::range(r, size),
        _ => RangeAsk::Whole,
    };
    let (status, start, end) = match ask {
        RangeAsk::Whole => (200, 0, size),
        RangeAsk::Part { start, end } => (206, start, end + 1),
        RangeAsk::Unsatisfiable => {
            let cr = format!("bytes */{size}");
            let body = format!("416 {}: the range is past the end of the file ({size} bytes)\n", reason(416));
            let mut f: Vec<(&str, &str)> = fields.iter().filter(|(n, _)| *n != "Content-Type").copied().collect();
            f.push(("Content-Range", &cr));
            return small(416, close, head_only, &f, "text/plain; charset=utf-8", body.as_bytes());
        }
    };
    let cr;
    if status == 206 {
        cr = format!("bytes {}-{}/{}", start, end - 1, size);
        fields.push(("Content-Range", &cr));
    }
    let out = head(status, close, &fields, Some(end - start)).into_bytes();
    let body = if head_only || start == end { None } else { Some(Body { file, next: start, end }) };
    Outgoing { out, body, close }
}

/// What one [`Session::poll`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Bytes moved or a request was answered: poll again soon.
    Progress,
    /// It waited and nothing happened.
    Idle,
    /// The connection is finished: close it.
    Closed,
}

enum State<F> {
    Reading,
    Sending { out: Vec<u8>, sent: usize, body: Option<Body<F>>, close: bool },
    Closed,
}

/// One connection's state: reading a request head, or sending a response.
pub struct Session<F> {
    cfg: Config,
    inbuf: Vec<u8>,
    state: State<F>,
    /// Reading: when the request must be whole. Sending: when the next
    /// progress must have happened.
    deadline: u64,
    /// Requests answered (for the caller's log).
    pub answered: u64,
}

impl<F: TreeFile> Session<F> {
    /// A session for a connection accepted at `now_ms`.
    pub fn new(cfg: Config, now_ms: u64) -> Session<F> {
        Session { cfg, inbuf: Vec::new(), state: State::Reading, deadline: now_ms.saturating_add(cfg.idle_timeout_ms), answered: 0 }
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Advance the connection once, waiting at most `wait_ms` in a read
    /// or a write. `now_ms` is any clock in milliseconds that does not go
    /// backwards. The connection is never asked to wait 0 ms (a network
    /// service may read 0 as "no limit"): at least 1.
    pub fn poll<C: Conn, T: Tree<File = F>>(&mut self, conn: &mut C, tree: &T, now_ms: u64, wait_ms: u32) -> Poll {
        let wait_ms = wait_ms.max(1);
        let p = match self.state {
            State::Reading => self.poll_read(conn, tree, now_ms, wait_ms),
            State::Sending { .. } => self.poll_send(conn, now_ms, wait_ms),
            State::Closed => Poll::Closed,
        };
        if p == Poll::Closed {
            self.state = State::Closed;
            self.inbuf = Vec::new();
        }
        p
    }

    /// Answer the request at the start of the buffer, if a whole one is
    /// there.
    fn try_request<T: Tree<File = F>>(&mut self, tree: &T, now_ms: u64) -> bool {
        loop {
            match http::parse_head(&self.inbuf, &self.cfg.limits) {
                Parsed::Incomplete => return false,
                Parsed::Skip { used } => {
                    self.inbuf.drain(..used);
                }
                Parsed::Done { used, request } => {
                    self.inbuf.drain(..used);
                    let o = match request {
                        Ok(r) => respond(r, tree),
                        Err(r) => refusal(r),
                    };
                    self.answered += 1;
                    self.start_send(o, now_ms);
                    return true;
                }
            }
        }
    }

    fn start_send(&mut self, o: Outgoing<F>, now_ms: u64) {
        if o.close {
            // Nothing after this response is read.
            self.inbuf = Vec::new();
        }
        self.state = State::Sending { out: o.out, sent: 0, body: o.body, close: o.close };
        self.deadline = now_ms.saturating_add(self.cfg.write_timeout_ms);
    }

    fn poll_read<C: Conn, T: Tree<File = F>>(&mut self, conn: &mut C, tree: &T, now_ms: u64, wait_ms: u32) -> Poll {
        if self.try_request(tree, now_ms) {
            return match self.poll_send(conn, now_ms, 1) {
                Poll::Closed => Poll::Closed,
                _ => Poll::Progress,
            };
        }
        if now_ms >= self.deadline {
            if self.inbuf.is_empty() {
                return Poll::Closed;
            }
            self.start_send(error(408, "the request did not arrive in time", true, false), now_ms);
            return self.poll_send(conn, now_ms, 1);
        }
        let wait = (self.deadline - now_ms).min(wait_ms as u64) as u32;
        let old = self.inbuf.len();
        self.inbuf.resize(old + self.cfg.read_bytes, 0);
        let got = conn.read(&mut self.inbuf[old..], wait);
        let n = match got {
            Ok(n) => n.min(self.cfg.read_bytes),
            Err(_) => 0,
        };
        self.inbuf.truncate(old + n);
        match got {
            Ok(0) | Err(ConnError::Closed) => Poll::Closed,
            Err(ConnError::TimedOut) => Poll::Idle,
            Ok(_) => {
                if self.try_request(tree, now_ms) && self.poll_send(conn, now_ms, 1) == Poll::Closed {
                    return Poll::Closed;
                }
                Poll::Progress
            }
        }
    }

    fn poll_send<C: Conn>(&mut self, conn: &mut C, now_ms: u64, wait_ms: u32) -> Poll {
        let chunk = self.cfg.chunk_bytes.max(1);
        let State::Sending { out, sent, body, close } = &mut self.state else { return Poll::Closed };
        if *sent == out.len() {
            match body {
                Some(b) if b.next < b.end => {
                    let n = (b.end - b.next).min(chunk as u64) as usize;
                    out.clear();
                    out.resize(n, 0);
                    match b.file.read(b.next, out) {
                        Ok(k) if k > 0 => {
                            let k = k.min(n);
                            out.truncate(k);
                            b.next += k as u64;
                            *sent = 0;
                        }
                        // The file shrank or failed under us: the length
                        // already sent cannot be met, so the connection ends.
                        _ => return Poll::Closed,
                    }
                }
                _ => {
                    if *close {
                        return Poll::Closed;
                    }
                    self.state = State::Reading;
                    self.deadline = now_ms.saturating_add(self.cfg.idle_timeout_ms);
                    return Poll::Progress;
                }
            }
        }
        match conn.write(&out[*sent..], wait_ms) {
            Ok(n) if n > 0 => {
                *sent += n.min(out.len() - *sent);
                self.deadline = now_ms.saturating_add(self.cfg.write_timeout_ms);
                if *sent == out.len() && body.as_ref().is_none_or(|b| b.next >= b.end) {
                    // Finished: settle now rather than on the next turn.
                    if *close {
                        return Poll::Closed;
                    }
                    self.state = State::Reading;
                    self.deadline = now_ms.saturating_add(self.cfg.idle_timeout_ms);
                }
                Poll::Progress
            }
            Ok(_) | Err(ConnError::TimedOut) => {
                if now_ms >= self.deadline {
                    Poll::Closed
                } else {
                    Poll::Idle
                }
            }
            Err(ConnError::Closed) => Poll::Closed,
        }
    }
}

/// Serve one connection to its end, alone (a serial server; tests).
/// `now_ms` is read before every poll.
pub fn serve<C: Conn, T: Tree>(conn: &mut C, tree: &T, cfg: Config, mut now_ms: impl FnMut() -> u64, wait_ms: u32) -> u64 {
    let mut s = Session::new(cfg, now_ms());
    while s.poll(conn, tree, now_ms(), wait_ms) != Poll::Closed {}
    conn.close();
    s.answered
}

/// A fixed number of connections served in turn.
pub struct Pool<C, F> {
    cfg: Config,
    slots: Vec<Option<(C, Session<F>)>>,
}

impl<C: Conn, F: TreeFile> Pool<C, F> {
    pub fn new(cfg: Config, max_connections: usize) -> Pool<C, F> {
        let mut slots = Vec::with_capacity(max_connections);
        slots.resize_with(max_connections, || None);
        Pool { cfg, slots }
    }

    pub fn active(&self) -> usize {
        self.slots.iter().filter(|s| s.is_some()).count()
    }

    pub fn has_room(&self) -> bool {
        self.slots.iter().any(|s| s.is_none())
    }

    /// Take a new connection (given back when the pool is full).
    pub fn add(&mut self, conn: C, now_ms: u64) -> Result<(), C> {
        match self.slots.iter_mut().find(|s| s.is_none()) {
            Some(slot) => {
                *slot = Some((conn, Session::new(self.cfg, now_ms)));
                Ok(())
            }
            None => Err(conn),
        }
    }

    /// One turn: poll every connection once, waiting at most `wait_ms`
    /// in each; finished ones are closed and dropped. Returns how many
    /// made progress.
    pub fn round<T: Tree<File = F>>(&mut self, tree: &T, mut now_ms: impl FnMut() -> u64, wait_ms: u32) -> usize {
        let mut progressed = 0;
        for slot in self.slots.iter_mut() {
            let Some((conn, session)) = slot else { continue };
            match session.poll(conn, tree, now_ms(), wait_ms) {
                Poll::Progress => progressed += 1,
                Poll::Idle => {}
                Poll::Closed => {
                    conn.close();
                    *slot = None;
                }
            }
        }
        progressed
    }
}
