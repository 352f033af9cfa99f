//! `make run-net`: the default system as `make run` boots it, with its
//! network: net-service on the virtio-net card (QEMU's user network,
//! `restrict=on`, one forward from 127.0.0.1 on a port the runner picks
//! to the guest's port 80) and web (demos/http-files) serving /data
//! read-only. The shell writes files into /data (text, 1 MiB and 70,000
//! bytes of the test pattern, names with spaces, Unicode and HTML
//! characters) and syncs; then the host fetches each over HTTP and
//! compares sha256, checks listings (HTML and `?json`), HEAD, ETag and
//! Last-Modified with a 304, byte ranges (206, 416), 64 connections at
//! once, and a hostile request of each kind answered with its status
//! while the server keeps serving; the data image must be byte for byte
//! what the shell's sync left, whatever the web server was asked.
//! docs/network.md, docs/http-files.md.

use super::*;
use crate::boot::{HostEnv, HostSide};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What the shell types (each at a `capos$ ` prompt) before the host
/// side starts: the files the host then fetches.
const TYPED: &[&str] = &[
    "write /data/hello.txt hello over http",
    "fill \"/data/big file.bin\" 1M 3",
    "fill /data/binary.dat 70000 11",
    "mkdir /data/sub",
    "write \"/data/sub/caf\\u{e9} \\u{1F600}.txt\" a name in Unicode",
    "write \"/data/<b>&amp.txt\" escaped in listings",
    "sync",
    "net",
];

/// The line after which the host side starts (the shell's `net` answer
/// comes after the sync).
const READY: &str = "[shell] mac 52:54:00:12:34:56, link up";

/// What the runner prints on the serial log once its checks are done, so
/// the script can go on (`exit`, then `halt` at the kernel's prompt).
const DONE: &str = crate::boot::HOST_SIDE_DONE;

/// A file the shell wrote: its URL path and its bytes.
struct Served {
    url: &'static str,
    bytes: Vec<u8>,
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len];
    capos_abi::pattern::fill(seed, 0, &mut b);
    b
}

fn served() -> Vec<Served> {
    vec![
        Served { url: "/hello.txt", bytes: b"hello over http\n".to_vec() },
        Served { url: "/big%20file.bin", bytes: pattern(3, 1 << 20) },
        Served { url: "/binary.dat", bytes: pattern(11, 70_000) },
        Served { url: "/sub/caf%C3%A9%20%F0%9F%98%80.txt", bytes: b"a name in Unicode\n".to_vec() },
        Served { url: "/%3Cb%3E%26amp.txt", bytes: b"escaped in listings\n".to_vec() },
    ]
}

pub(super) fn hex(b: &[u8]) -> String {
    Sha256::digest(b).iter().map(|x| format!("{:02x}", x)).collect()
}

/// One HTTP response, as the host read it.
pub(super) struct Response {
    pub(super) status: u16,
    headers: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

const STEP: Duration = Duration::from_secs(120);

fn connect(port: u16) -> Result<TcpStream, String> {
    let a = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&a, Duration::from_secs(10)).map_err(|e| format!("connect to {a}: {e}"))?;
    s.set_read_timeout(Some(STEP)).map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(STEP)).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Send `raw` as is on a new connection and read the whole answer (the
/// request says `Connection: close`, or the server closes after an
/// error); `head`: the request was HEAD (no body whatever the length).
fn exchange(port: u16, raw: &[u8], head: bool) -> Result<Response, String> {
    let mut s = connect(port)?;
    s.write_all(raw).map_err(|e| format!("send: {e}"))?;
    let mut got = Vec::new();
    // The server may close before reading all of a request it refused.
    let _ = s.read_to_end(&mut got);
    parse(&got, head)
}

fn parse(got: &[u8], head: bool) -> Result<Response, String> {
    let end = got.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| format!("no end of the response head in {} bytes: {:?}", got.len(), String::from_utf8_lossy(&got[..got.len().min(200)])))?;
    let text = std::str::from_utf8(&got[..end]).map_err(|_| "the response head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| format!("bad status line '{status_line}'"))?;
    let headers: Vec<(String, String)> = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let body = got[end + 4..].to_vec();
    let r = Response { status, headers, body };
    if !head {
        if let Some(n) = r.header("content-length").and_then(|v| v.parse::<usize>().ok()) {
            if r.body.len() != n {
                return Err(format!("status {status}: Content-Length {n} but {} bytes of body", r.body.len()));
            }
        }
    }
    Ok(r)
}

pub(super) fn get(port: u16, path: &str, extra: &str) -> Result<Response, String> {
    exchange(port, format!("GET {path} HTTP/1.1\r\nHost: capos\r\nConnection: close\r\n{extra}\r\n").as_bytes(), false)
}

fn want_status(r: &Response, status: u16) -> Result<(), String> {
    if r.status == status {
        Ok(())
    } else {
        Err(format!("status {} (wanted {}), body {:?}", r.status, status, String::from_utf8_lossy(&r.body[..r.body.len().min(120)])))
    }
}

/// Wait until the server answers `path` (DHCP and the listener may come
/// after the shell's last line).
pub(super) fn wait_for_server(port: u16, path: &str) -> Result<String, String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < Duration::from_secs(90) {
        match get(port, path, "") {
            Ok(r) if r.status == 200 => return Ok(format!("GET {path} answered 200 after {} ms", start.elapsed().as_millis())),
            Ok(r) => last = format!("status {}", r.status),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Err(format!("no 200 for GET {path} within 90 s (last: {last})"))
}

fn listing(port: u16) -> Result<String, String> {
    let r = get(port, "/", "")?;
    want_status(&r, 200)?;
    let body = String::from_utf8_lossy(&r.body).to_string();
    let ct = r.header("content-type").unwrap_or("");
    if !ct.starts_with("text/html") {
        return Err(format!("Content-Type '{ct}'"));
    }
    for want in ["hello.txt", "big file.bin", "binary.dat", "sub/", "&lt;b&gt;&amp;amp.txt"] {
        if !body.contains(want) {
            return Err(format!("the HTML listing lacks '{want}'"));
        }
    }
    if body.contains("<b>&amp.txt") {
        return Err("the HTML listing shows a name unescaped".into());
    }
    let j = get(port, "/?json", "")?;
    want_status(&j, 200)?;
    let jb = String::from_utf8_lossy(&j.body).to_string();
    for want in ["\"hello.txt\"", "\"big file.bin\"", "1048576"] {
        if !jb.contains(want) {
            return Err(format!("the JSON listing lacks {want}: {jb}"));
        }
    }
    // JSON may write `<`, `>` and `&` as they are or as \u escapes.
    if !jb.contains("\"<b>&amp.txt\"") && !jb.contains("\"\\u003cb\\u003e\\u0026amp.txt\"") {
        return Err(format!("the JSON listing lacks the name <b>&amp.txt: {jb}"));
    }
    let s = get(port, "/sub/", "")?;
    want_status(&s, 200)?;
    if !String::from_utf8_lossy(&s.body).contains("café 😀.txt") {
        return Err("/sub/ does not list the Unicode name".into());
    }
    Ok(format!("HTML ({} bytes, names escaped) and JSON ({} bytes) list /data; /sub/ lists the Unicode name", r.body.len(), j.body.len()))
}

fn files(port: u16, files: &[Served]) -> Result<String, String> {
    let mut total = 0;
    for f in files {
        let r = get(port, f.url, "")?;
        want_status(&r, 200).map_err(|e| format!("{}: {e}", f.url))?;
        if hex(&r.body) != hex(&f.bytes) {
            return Err(format!("{}: sha256 {} ({} bytes), the shell wrote {} ({} bytes)", f.url, hex(&r.body), r.body.len(), hex(&f.bytes), f.bytes.len()));
        }
        total += r.body.len();
    }
    Ok(format!("{} files, {} bytes, each with the sha256 of what the shell wrote", files.len(), total))
}

fn head_and_validators(port: u16, big: &Served) -> Result<String, String> {
    let h = exchange(port, format!("HEAD {} HTTP/1.1\r\nHost: capos\r\nConnection: close\r\n\r\n", big.url).as_bytes(), true)?;
    want_status(&h, 200)?;
    if h.header("content-length") != Some(&big.bytes.len().to_string()) || !h.body.is_empty() {
        return Err(format!("HEAD: Content-Length {:?}, {} bytes of body", h.header("content-length"), h.body.len()));
    }
    let etag = h.header("etag").ok_or("no ETag")?.to_string();
    let modified = h.header("last-modified").ok_or("no Last-Modified")?.to_string();
    if !modified.ends_with(" GMT") {
        return Err(format!("Last-Modified '{modified}' is not an HTTP date"));
    }
    let again = get(port, big.url, &format!("If-None-Match: {etag}\r\n"))?;
    want_status(&again, 304)?;
    if !again.body.is_empty() {
        return Err("a 304 with a body".into());
    }
    Ok(format!("HEAD: Content-Length {}, no body; ETag {etag}, Last-Modified {modified}; If-None-Match gives 304", big.bytes.len()))
}

fn ranges(port: u16, big: &Served) -> Result<String, String> {
    let n = big.bytes.len();
    let r = get(port, big.url, "Range: bytes=100-199\r\n")?;
    want_status(&r, 206)?;
    if r.body != big.bytes[100..200] || r.header("content-range") != Some(&format!("bytes 100-199/{n}")) {
        return Err(format!("bytes=100-199: Content-Range {:?}, body {} bytes", r.header("content-range"), r.body.len()));
    }
    let r = get(port, big.url, "Range: bytes=-10\r\n")?;
    want_status(&r, 206)?;
    if r.body != big.bytes[n - 10..] {
        return Err("bytes=-10: not the last 10 bytes".into());
    }
    let r = get(port, big.url, &format!("Range: bytes={}-\r\n", n - 1))?;
    want_status(&r, 206)?;
    if r.body != big.bytes[n - 1..] {
        return Err("the last byte alone: wrong".into());
    }
    let r = get(port, big.url, &format!("Range: bytes={}-\r\n", n))?;
    want_status(&r, 416)?;
    if r.header("content-range") != Some(&format!("bytes */{n}")) {
        return Err(format!("416 with Content-Range {:?}", r.header("content-range")));
    }
    Ok("100-199, -10 and the last byte are 206 with the right bytes; a range at the end is 416 with bytes */size".into())
}

fn concurrent(port: u16, n: usize) -> Result<String, String> {
    // n connections open at once, then each asks at once. They are opened
    // 20 ms apart: QEMU's forward takes host connections from a listen
    // backlog of one, one per turn of its loop, and a burst faster than
    // that leaves some half-open on the host (and the first idle past the
    // server's 10 s idle timeout before the last is in). The server
    // serves 8 in turn; the rest wait in its backlog.
    let opening = Instant::now();
    let mut conns = Vec::new();
    for i in 0..n {
        conns.push(connect(port).map_err(|e| format!("connection {i}: {e}"))?);
        std::thread::sleep(Duration::from_millis(20));
    }
    let opened = opening.elapsed();
    if opened > Duration::from_secs(8) {
        return Err(format!("opening {n} connections took {} ms (the server closes one idle for 10 s)", opened.as_millis()));
    }
    let start = Instant::now();
    let threads: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(i, mut s)| {
            std::thread::spawn(move || -> Result<(), String> {
                s.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: capos\r\nConnection: close\r\n\r\n").map_err(|e| format!("connection {i}: {e}"))?;
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got);
                let r = parse(&got, false).map_err(|e| format!("connection {i} (after {} ms): {e}", start.elapsed().as_millis()))?;
                want_status(&r, 200).map_err(|e| format!("connection {i}: {e}"))?;
                if r.body != b"hello over http\n" {
                    return Err(format!("connection {i}: wrong body"));
                }
                Ok(())
            })
        })
        .collect();
    let mut failed = Vec::new();
    for t in threads {
        if let Err(e) = t.join().map_err(|_| "a connection's thread panicked".to_string()).and_then(|r| r) {
            failed.push(e);
        }
    }
    if !failed.is_empty() {
        return Err(format!("{} of {n} failed: {}", failed.len(), failed.join("; ")));
    }
    Ok(format!("{n} connections open at once (opened in {} ms), each answered 200 with the file in {} ms", opened.as_millis(), start.elapsed().as_millis()))
}

/// Each hostile request, the status it must get and what the answer
/// must say (for the targets that try to leave the directory: the web
/// server's own reason, not the storage service's refusal of a name
/// behind it, so a server that stops checking is caught even though its
/// read-only capability would still refuse); after each, the server must
/// still serve a file.
fn hostile(port: u16) -> Result<String, String> {
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: capos\r\n\r\n", "a".repeat(9000));
    let big_headers = format!("GET /hello.txt HTTP/1.1\r\nHost: capos\r\n{}\r\n", "X-Filler: yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\r\n".repeat(200));
    let req = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: capos\r\nConnection: close\r\n\r\n");
    let dots = "a path component . or ..";
    let cases: Vec<(&str, String, u16, &str)> = vec![
        ("dot-dot", req("/../hello.txt"), 400, dots),
        ("dot-dot inside", req("/sub/../../hello.txt"), 400, dots),
        ("encoded dot-dot", req("/%2e%2e/hello.txt"), 400, dots),
        ("mixed-case encoded dot-dot", req("/sub/%2E%2e/hello.txt"), 400, dots),
        ("encoded slash", req("/%2E.%2fhello.txt"), 400, "an encoded slash"),
        ("NUL", req("/hello.txt%00.png"), 400, "NUL in the path"),
        ("backslash", req("/sub\\..\\hello.txt"), 400, "a backslash"),
        ("absolute URL", req("http://elsewhere/hello.txt"), 400, "absolute URLs are refused"),
        ("bad percent-encoding", req("/hello%zz.txt"), 400, "invalid percent-encoding"),
        ("request line too long", long_line, 414, ""),
        ("headers too large", big_headers, 431, ""),
        ("DELETE", "DELETE /hello.txt HTTP/1.1\r\nHost: capos\r\nConnection: close\r\n\r\n".into(), 405, ""),
        ("PUT", "PUT /new.txt HTTP/1.1\r\nHost: capos\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc".into(), 405, ""),
        ("POST", "POST / HTTP/1.1\r\nHost: capos\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(), 405, ""),
        ("missing file", req("/no-such-file.txt"), 404, ""),
    ];
    let mut seen = Vec::new();
    for (what, raw, status, says) in &cases {
        let r = exchange(port, raw.as_bytes(), false).map_err(|e| format!("{what}: {e}"))?;
        if r.status != *status {
            return Err(format!("{what}: status {} (wanted {status})", r.status));
        }
        let body = String::from_utf8_lossy(&r.body);
        if !body.contains(says) {
            return Err(format!("{what}: status {status}, but the answer says {:?}, not '{says}'", body.trim_end()));
        }
        if *status == 405 && r.header("allow") != Some("GET, HEAD") {
            return Err(format!("{what}: 405 with Allow {:?}", r.header("allow")));
        }
        let ok = get(port, "/hello.txt", "").map_err(|e| format!("after {what}: {e}"))?;
        want_status(&ok, 200).map_err(|e| format!("after {what}: {e}"))?;
        seen.push(format!("{what} {status}"));
    }
    Ok(format!("{}; a file served after each", seen.join(", ")))
}

fn sha_of(p: &std::path::Path) -> Result<String, String> {
    std::fs::read(p).map(|b| hex(&b)).map_err(|e| format!("{}: {e}", p.display()))
}

/// The host side: every check, in order (a check that cannot run is a
/// failure, never skipped).
fn checks(env: &HostEnv) -> Vec<(String, Result<String, String>)> {
    let port = env.ports[0];
    let mut out: Vec<(String, Result<String, String>)> = Vec::new();
    let data = env.disk("data");
    let before = data.as_deref().ok_or_else(|| "the boot has no data disk".to_string()).and_then(sha_of);
    let up = wait_for_server(port, "/");
    let serving = up.is_ok();
    out.push(("the web server answers".into(), up));
    if !serving {
        return out;
    }
    let files_served = served();
    out.push(("listings".into(), listing(port)));
    out.push(("files by sha256".into(), files(port, &files_served)));
    out.push(("HEAD, ETag, Last-Modified, 304".into(), head_and_validators(port, &files_served[1])));
    out.push(("byte ranges".into(), ranges(port, &files_served[1])));
    out.push(("64 connections at once".into(), concurrent(port, 64)));
    out.push(("hostile requests answered, serving on".into(), hostile(port)));
    let after = data.as_deref().ok_or_else(|| "the boot has no data disk".to_string()).and_then(sha_of);
    out.push((
        "the data image is unchanged by the web server".into(),
        match (before, after) {
            (Ok(b), Ok(a)) if a == b => Ok(format!("sha256 {} before and after", &a[..16])),
            (Ok(b), Ok(a)) => Err(format!("sha256 {} after the sync, {} after the requests", &b[..16], &a[..16])),
            (Err(e), _) | (_, Err(e)) => Err(e),
        },
    ));
    out
}

fn net_boot() -> Boot {
    let mut script: Vec<(String, Vec<u8>)> = TYPED.iter().map(|l| ("capos$ ".to_string(), format!("{l}\r").into_bytes())).collect();
    script.push((DONE.to_string(), b"exit\r".to_vec()));
    script.push(("capos> ".into(), b"halt\r".to_vec()));
    let mut expect = system::DEFAULT_SYSTEM_EXPECTS.to_vec();
    expect.extend_from_slice(&[
        "[shell] filled /data/big file.bin with 1048576 bytes of pattern 3",
        "[shell] synced /data",
        "[net] net: 10.0.2.15/24",
        "[web] http-files: serving the 'root' directory read-only on port 80",
        "[shell] address 10.0.2.15/24",
        READY,
        DONE,
        "[shell] bye",
        "halting",
    ]);
    kernel_boot("web", "", Expect::Success, &expect)
        .smp("2")
        .script(script)
        .guest_verdicts(false)
        .forbid(strings(&["EXCEPTION (unexpected)", "KERNEL PANIC", "{any} panic", "restarted as"]))
        .default_system()
        .default_disks(DefaultDisksUse::Fresh)
        .qemu_args(nic::nic_args_forwarding(""))
        .host_side(HostSide { trigger: READY, forwards: vec![("tcp", 80)], run: Arc::new(checks) })
        .timeout(600)
}

pub(super) fn net() -> Scenario {
    Scenario {
        name: "net",
        description: "the default system with its network (make run-net): files the shell writes into /data fetched over HTTP from the host and compared by sha256; listings, HEAD, ETag/304, ranges, 64 connections at once, hostile requests answered while serving on; the data image unchanged by the web server",
        capos_boot_only: false,
        boots: vec![net_boot()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_and_a_short_body_is_refused() {
        let r = parse(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\nContent-Range: bytes 0-2/9\r\n\r\nabc", false).unwrap();
        assert_eq!((r.status, r.header("content-range"), r.body.as_slice()), (206, Some("bytes 0-2/9"), &b"abc"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc", false).is_err());
        assert!(parse(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).is_ok(), "HEAD has no body");
        assert!(parse(b"HTTP/1.1 200 OK\r\n", false).is_err());
    }

    #[test]
    fn the_files_the_host_expects_are_what_the_shell_is_told_to_write() {
        let f = served();
        assert_eq!(f[1].bytes.len(), 1 << 20);
        assert!(TYPED.contains(&"fill \"/data/big file.bin\" 1M 3"));
        assert!(TYPED.contains(&"fill /data/binary.dat 70000 11"));
        assert_eq!(f[2].bytes.len(), 70_000);
        assert!(TYPED.iter().any(|l| l.contains("caf\\u{e9} \\u{1F600}.txt")));
    }
}
