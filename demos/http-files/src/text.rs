//! Formatting: HTTP-dates, entity tags, content types by extension, and
//! the escapes of the listings (HTML text and attributes, JSON strings,
//! percent-encoded links).

use crate::{Entry, FileStat, Kind};
use alloc::format;
use alloc::string::String;
use capos_text::civil::civil_from_days;
use core::fmt::Write;

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// The IMF-fixdate of RFC 9110 section 5.6.7 (`Sun, 06 Nov 1994 08:49:37
/// GMT`) for `unix_nanos`, rounded down to the second; `None` outside
/// the years 1..=9999, which the format cannot carry.
pub fn http_date(unix_nanos: i64) -> Option<String> {
    let secs = unix_nanos.div_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let in_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    if !(1..=9999).contains(&year) {
        return None;
    }
    let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    Some(format!("{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT", DAYS[weekday], day, MONTHS[month as usize - 1], year, in_day / 3600, in_day / 60 % 60, in_day % 60))
}

/// The entity tag of a file: its size and modification time in
/// nanoseconds, `"<size hex>-<mtime hex>"`. A hash of the contents would
/// cost a read of the whole file on every request; size and time change
/// whenever a writer changes the file. Strong when the time has a fine
/// resolution; weak (`W/`) when it does not (FAT's two seconds: a
/// same-size rewrite within them keeps the tag); none when the time is
/// unknown (a format that stores none): size alone would call two
/// different same-size files the same.
pub fn etag(stat: &FileStat) -> Option<String> {
    let m = stat.modified?;
    let weak = if m.exact { "" } else { "W/" };
    Some(format!("{}\"{:x}-{:x}\"", weak, stat.size, m.unix_nanos as u64))
}

/// Whether an `If-None-Match` value matches `tag` (RFC 9110 13.1.2: weak
/// comparison, `*` matches any current representation).
pub fn none_match(header: &str, tag: &str) -> bool {
    let strip = |t: &str| -> String { String::from(t.trim().strip_prefix("W/").unwrap_or(t.trim())) };
    let ours = strip(tag);
    header.split(',').any(|t| t.trim() == "*" || strip(t) == ours)
}

/// `Content-Type` by the name's extension (case-insensitive); anything
/// else is `application/octet-stream`.
pub fn content_type(name: &str) -> &'static str {
    let ext = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => return "application/octet-stream",
    };
    const TABLE: &[(&str, &str)] = &[
        ("html", "text/html; charset=utf-8"),
        ("htm", "text/html; charset=utf-8"),
        ("txt", "text/plain; charset=utf-8"),
        ("md", "text/markdown; charset=utf-8"),
        ("log", "text/plain; charset=utf-8"),
        ("css", "text/css; charset=utf-8"),
        ("csv", "text/csv; charset=utf-8"),
        ("js", "text/javascript; charset=utf-8"),
        ("json", "application/json"),
        ("xml", "application/xml"),
        ("pdf", "application/pdf"),
        ("wasm", "application/wasm"),
        ("zip", "application/zip"),
        ("gz", "application/gzip"),
        ("tar", "application/x-tar"),
        ("png", "image/png"),
        ("jpg", "image/jpeg"),
        ("jpeg", "image/jpeg"),
        ("gif", "image/gif"),
        ("webp", "image/webp"),
        ("svg", "image/svg+xml"),
        ("ico", "image/vnd.microsoft.icon"),
        ("mp4", "video/mp4"),
        ("webm", "video/webm"),
        ("mp3", "audio/mpeg"),
        ("wav", "audio/wav"),
        ("woff2", "font/woff2"),
    ];
    TABLE.iter().find(|(e, _)| e.eq_ignore_ascii_case(ext)).map(|(_, t)| *t).unwrap_or("application/octet-stream")
}

/// `s` safe in HTML text and in a double- or single-quoted attribute.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as a JSON string, quotes included (RFC 8259): `"` and `\`
/// escaped, control characters as `\u00XX`, and `<`, `>`, `&` as `\u003c`
/// ... too, so the text cannot read as markup to anything that sniffs.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '<' || c == '>' || c == '&' || c == '\u{7f}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One path component percent-encoded for a URL: every byte but
/// RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{:02X}", b);
        }
    }
    out
}

/// The absolute URL path of `components` (`/` for none), encoded;
/// `dir` adds the trailing `/`.
pub fn url_path(components: &[String], dir: bool) -> String {
    let mut out = String::from("/");
    for (i, c) in components.iter().enumerate() {
        out.push_str(&percent_encode(c));
        if dir || i + 1 < components.len() {
            out.push('/');
        }
    }
    out
}

/// The path as a person reads it (`/a/b/`), not encoded.
pub fn display_path(components: &[String]) -> String {
    let mut out = String::from("/");
    for c in components {
        out.push_str(c);
        out.push('/');
    }
    out
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::File => "file",
        Kind::Directory => "directory",
    }
}

/// The HTML listing of the directory at `path`. Links are absolute
/// paths, so they work whether or not the request ended in `/`.
pub fn listing_html(path: &[String], entries: &[Entry]) -> String {
    let title = html_escape(&display_path(path));
    let mut out = String::new();
    let _ = write!(out, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n<body><h1>Index of {title}</h1>\n<ul>\n");
    if !path.is_empty() {
        let _ = writeln!(out, "<li><a href=\"{}\">../</a></li>", url_path(&path[..path.len() - 1], true));
    }
    for e in entries {
        let mut full: alloc::vec::Vec<String> = path.to_vec();
        full.push(e.name.clone());
        let dir = e.kind == Kind::Directory;
        let href = html_escape(&url_path(&full, dir));
        let shown = html_escape(&e.name);
        match e.kind {
            Kind::Directory => {
                let _ = writeln!(out, "<li><a href=\"{href}\">{shown}/</a></li>");
            }
            Kind::File => {
                let _ = writeln!(out, "<li><a href=\"{href}\">{shown}</a> {}</li>", e.size);
            }
        }
    }
    out.push_str("</ul>\n</body></html>\n");
    out
}

/// The JSON listing: `{"path":"/a/","entries":[{"name":..,"kind":"file"|
/// "directory","size":N},..]}`.
pub fn listing_json(path: &[String], entries: &[Entry]) -> String {
    let mut out = String::new();
    let _ = write!(out, "{{\"path\":{},\"entries\":[", json_string(&display_path(path)));
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"name\":{},\"kind\":\"{}\",\"size\":{}}}", json_string(&e.name), kind_name(e.kind), e.size);
    }
    out.push_str("]}\n");
    out
}
