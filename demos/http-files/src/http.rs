//! Parsing what a client sends: the request head (line and header
//! fields, bounded), the request target (a path of components, every one
//! checked), and the `Range` field.
//!
//! Nothing here trusts the client: every refusal is a status (and why,
//! for the body), never a panic, and nothing reads past the bounds of
//! `Limits`.

use alloc::string::String;
use alloc::vec::Vec;

/// Bounds on a request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line, without its line end (else `414`).
    pub max_request_line: usize,
    /// Most bytes of header fields after the request line, line ends
    /// included (else `431`).
    pub max_header_bytes: usize,
    /// Most header fields (else `431`).
    pub max_headers: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_request_line: 8192, max_header_bytes: 16384, max_headers: 64 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
}

/// A request this server will answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// The decoded path, one checked component each (empty: the root).
    pub path: Vec<String>,
    /// The query asked for `json` (a listing as JSON).
    pub json: bool,
    /// HTTP/1.1 without `Connection: close`.
    pub keep_alive: bool,
    /// The one `Range` field, if there was exactly one.
    pub range: Option<String>,
    pub if_none_match: Option<String>,
    /// It announced a body (`Content-Length` > 0 or `Transfer-Encoding`),
    /// which this server does not read: the connection closes after the
    /// answer, since the next request cannot be found.
    pub has_body: bool,
}

/// A request refused before it reached the tree: the status, why (the
/// body says it), and whether the connection must close after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: &'static str,
    pub close: bool,
    /// The request's method was HEAD (the answer has no body).
    pub head: bool,
}

fn refuse(status: u16, why: &'static str) -> Refusal {
    Refusal { status, why, close: true, head: false }
}

/// What the buffered bytes hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet, and within the bounds: read more.
    Incomplete,
    /// Only empty lines, `used` bytes of them: drop them and read more.
    Skip { used: usize },
    /// A whole head (or a bound broken): `used` bytes of the buffer are
    /// consumed.
    Done { used: usize, request: Result<Request, Refusal> },
}

fn find_lf(buf: &[u8], from: usize) -> Option<usize> {
    buf[from..].iter().position(|&b| b == b'\n').map(|i| from + i)
}

/// A line `buf[start..lf]` without its optional `\r`.
fn line(buf: &[u8], start: usize, lf: usize) -> &[u8] {
    let l = &buf[start..lf];
    l.strip_suffix(b"\r").unwrap_or(l)
}

/// Parse the head at the start of `buf`. Empty lines before the request
/// line are skipped (RFC 9112 2.2). Lines end in CRLF or a bare LF.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Parsed {
    let mut start = 0;
    loop {
        if buf[start..].starts_with(b"\r\n") {
            start += 2;
        } else if buf[start..].starts_with(b"\n") {
            start += 1;
        } else {
            break;
        }
    }
    if start == buf.len() || buf[start..] == *b"\r" {
        return if start > 0 { Parsed::Skip { used: start } } else { Parsed::Incomplete };
    }
    let line_end = match find_lf(buf, start) {
        Some(lf) => lf,
        // (+ 1: the line's `\r` may have come without its `\n` yet.)
        None if buf.len() - start > limits.max_request_line + 1 => return done(buf.len(), refuse(414, "the request line is too long")),
        None => return Parsed::Incomplete,
    };
    let request_line = line(buf, start, line_end);
    if request_line.len() > limits.max_request_line {
        return done(buf.len(), refuse(414, "the request line is too long"));
    }
    // The header fields, up to the empty line.
    let mut fields: Vec<&[u8]> = Vec::new();
    let headers_start = line_end + 1;
    let mut at = headers_start;
    let end = loop {
        match find_lf(buf, at) {
            None => {
                if buf.len() - headers_start > limits.max_header_bytes {
                    return done(buf.len(), refuse(431, "the header fields are too large"));
                }
                return Parsed::Incomplete;
            }
            Some(lf) => {
                if lf + 1 - headers_start > limits.max_header_bytes {
                    return done(buf.len(), refuse(431, "the header fields are too large"));
                }
                let l = line(buf, at, lf);
                at = lf + 1;
                if l.is_empty() {
                    break at;
                }
                if fields.len() == limits.max_headers {
                    return done(buf.len(), refuse(431, "too many header fields"));
                }
                fields.push(l);
            }
        }
    };
    done(end, request(request_line, &fields))
}

fn done(used: usize, r: impl Into<Result<Request, Refusal>>) -> Parsed {
    Parsed::Done { used, request: r.into() }
}

impl From<Refusal> for Result<Request, Refusal> {
    fn from(r: Refusal) -> Self {
        Err(r)
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn request(line: &[u8], fields: &[&[u8]]) -> Result<Request, Refusal> {
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) if !m.is_empty() && !t.is_empty() => (m, t, v),
        _ => return Err(refuse(400, "a request line is METHOD SP TARGET SP VERSION")),
    };
    if !method.iter().all(|&b| is_tchar(b)) {
        return Err(refuse(400, "the method is not a token"));
    }
    let keep_alive_default = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        [b'H', b'T', b'T', b'P', b'/', d, b'.', e] if d.is_ascii_digit() && e.is_ascii_digit() => {
            return Err(refuse(505, "only HTTP/1.0 and HTTP/1.1 are served"));
        }
        _ => return Err(refuse(400, "the version is not HTTP/x.y")),
    };
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => return Err(Refusal { status: 405, why: "only GET and HEAD are served", close: true, head: false }),
    };
    let head = method == Method::Head;
    let with_head = |mut r: Refusal| {
        r.head = head;
        r
    };
    let mut keep_alive = keep_alive_default;
    let mut ranges = Vec::new();
    let mut if_none_match: Option<String> = None;
    let mut has_body = false;
    let mut content_length: Option<&[u8]> = None;
    for f in fields {
        if f.first().is_some_and(|&b| b == b' ' || b == b'\t') {
            return Err(with_head(refuse(400, "obsolete line folding")));
        }
        let colon = match f.iter().position(|&b| b == b':') {
            Some(c) if c > 0 => c,
            _ => return Err(with_head(refuse(400, "a header field is NAME: VALUE"))),
        };
        let name = &f[..colon];
        if !name.iter().all(|&b| is_tchar(b)) {
            return Err(with_head(refuse(400, "a header field name is not a token")));
        }
        let value = trim(&f[colon + 1..]);
        if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(with_head(refuse(400, "a control character in a header field")));
        }
        // Values this server reads are ASCII; others are kept as bytes only.
        let text = core::str::from_utf8(value).ok();
        if name.eq_ignore_ascii_case(b"connection") {
            if let Some(t) = text {
                for token in t.split(',') {
                    let token = token.trim();
                    if token.eq_ignore_ascii_case("close") {
                        keep_alive = false;
                    }
                }
            }
        } else if name.eq_ignore_ascii_case(b"range") {
            ranges.push(text.unwrap_or(""));
        } else if name.eq_ignore_ascii_case(b"if-none-match") {
            let t = text.unwrap_or("");
            if_none_match = Some(match if_none_match {
                Some(prev) => alloc::format!("{prev}, {t}"),
                None => String::from(t),
            });
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            has_body = true;
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || !value.iter().all(|b| b.is_ascii_digit()) || content_length.is_some_and(|c| c != value) {
                return Err(with_head(refuse(400, "a bad Content-Length")));
            }
            content_length = Some(value);
            if value.iter().any(|&b| b != b'0') {
                has_body = true;
            }
        }
    }
    // Once the request was read whole, a bad path does not spoil the
    // connection: only a body we will not read does.
    let (path, json) = decode_target(target).map_err(|why| Refusal { status: 400, why, close: has_body || !keep_alive, head })?;
    Ok(Request { method, path, json, keep_alive: keep_alive && !has_body, range: if ranges.len() == 1 { Some(String::from(ranges[0])) } else { None }, if_none_match, has_body })
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Percent-decode `s` (`%XX`, nothing else: `+` stays `+`).
pub fn percent_decode(s: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            match (s.get(i + 1).copied().and_then(hex), s.get(i + 2).copied().and_then(hex)) {
                (Some(h), Some(l)) => out.push(h << 4 | l),
                _ => return Err("invalid percent-encoding"),
            }
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

/// The path components and whether the query asks for `json`, from a
/// request target. Only the origin form (`/path?query`) is served: an
/// absolute URL (`http://host/...`), the authority form and `*` are
/// refused, as are, after decoding, a component `.` or `..`, an encoded
/// `/`, a backslash, NUL or any control character, and bytes that are not
/// UTF-8. Empty components (`a//b`, a trailing `/`) are dropped. Nothing
/// is normalized: a path that tries to climb is refused, never resolved.
pub fn decode_target(target: &[u8]) -> Result<(Vec<String>, bool), &'static str> {
    if target.first() != Some(&b'/') {
        return Err(if target.windows(3).any(|w| w == b"://") { "absolute URLs are refused" } else { "the target must be a path starting with /" });
    }
    for &b in target {
        if b <= b' ' || b >= 0x7f || matches!(b, b'\\' | b'"' | b'<' | b'>' | b'#') {
            return Err(match b {
                b'\\' => "a backslash in the path",
                0 => "NUL in the path",
                _ => "a character that must be percent-encoded",
            });
        }
    }
    let (raw_path, query) = match target.iter().position(|&b| b == b'?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, &b""[..]),
    };
    let mut path = Vec::new();
    for raw in raw_path.split(|&b| b == b'/') {
        if raw.is_empty() {
            continue;
        }
        let bytes = percent_decode(raw)?;
        for &b in &bytes {
            match b {
                0 => return Err("NUL in the path"),
                b'/' => return Err("an encoded slash in the path"),
                b'\\' => return Err("a backslash in the path"),
                b if b < 0x20 || b == 0x7f => return Err("a control character in the path"),
                _ => {}
            }
        }
        let name = String::from_utf8(bytes).map_err(|_| "the path is not UTF-8")?;
        if name == "." || name == ".." {
            return Err("a path component . or ..");
        }
        path.push(name);
    }
    let json = query.split(|&b| b == b'&').any(|kv| {
        let key = kv.split(|&b| b == b'=').next().unwrap_or(b"");
        key == b"json"
    });
    Ok((path, json))
}

/// What a `Range` field asks of a representation of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeAsk {
    /// Serve it whole (no range, a malformed one, or several: RFC 9110
    /// 14.2 lets a server ignore Range, and one whole answer is simpler
    /// and never larger than a multipart one).
    Whole,
    /// Bytes `start..=end`, both within the representation.
    Part { start: u64, end: u64 },
    /// No byte of it is in the representation: `416`.
    Unsatisfiable,
}

fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Saturate: a position past u64 is past any file.
    Some(s.bytes().fold(0u64, |n, d| n.saturating_mul(10).saturating_add((d - b'0') as u64)))
}

/// RFC 9110 14.1.2 for one `bytes` range: `a-b`, `a-`, `-n`.
pub fn range(header: &str, size: u64) -> RangeAsk {
    let spec = match header.trim().split_once('=') {
        Some((unit, spec)) if unit.trim().eq_ignore_ascii_case("bytes") => spec.trim(),
        _ => return RangeAsk::Whole,
    };
    if spec.contains(',') {
        return RangeAsk::Whole;
    }
    let (first, last) = match spec.split_once('-') {
        Some((f, l)) => (f.trim(), l.trim()),
        None => return RangeAsk::Whole,
    };
    match (first.is_empty(), last.is_empty()) {
        (false, _) => {
            let Some(start) = number(first) else { return RangeAsk::Whole };
            let end = if last.is_empty() {
                u64::MAX
            } else {
                match number(last) {
                    Some(e) if e >= start => e,
                    _ => return RangeAsk::Whole,
                }
            };
            if start >= size {
                return RangeAsk::Unsatisfiable;
            }
            RangeAsk::Part { start, end: end.min(size - 1) }
        }
        (true, false) => {
            let Some(n) = number(last) else { return RangeAsk::Whole };
            if n == 0 || size == 0 {
                return RangeAsk::Unsatisfiable;
            }
            RangeAsk::Part { start: size - n.min(size), end: size - 1 }
        }
        (true, true) => RangeAsk::Whole,
    }
}
