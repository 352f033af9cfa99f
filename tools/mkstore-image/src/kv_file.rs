//! The key/value text file that seeds and extracts a CAPOSST1 store.
//!
//! One entry per line: `KEY<TAB>VALUE`. Bytes other than printable ASCII
//! (so tab, newline, CR and every non-UTF-8 or non-ASCII byte), `%` and `#`
//! are written as `%XX` (two hex digits), so any key or value round-trips:
//! a written line never starts with `#` and never holds a raw tab or line
//! break of its own. Empty lines and lines starting with `#` are comments.

pub fn escape(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_graphic() && b != b'%' && b != b'#' || b == b' ' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn unescape(text: &str) -> Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or_else(|| format!("truncated escape in {text:?}"))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad escape %{hex}"))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

pub fn parse(text: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>, String> {
    let mut entries = Vec::new();
    for (number, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .split_once('\t')
            .ok_or_else(|| format!("line {}: expected KEY<TAB>VALUE", number + 1))?;
        entries.push((
            unescape(key).map_err(|e| format!("line {}: {e}", number + 1))?,
            unescape(value).map_err(|e| format!("line {}: {e}", number + 1))?,
        ));
    }
    Ok(entries)
}

pub fn render(entries: &[(Vec<u8>, Vec<u8>)]) -> String {
    let mut out = String::new();
    for (key, value) in entries {
        out.push_str(&escape(key));
        out.push('\t');
        out.push_str(&escape(value));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_look_like_comments_round_trip() {
        let entries = vec![
            (b"#hash".to_vec(), b"#".to_vec()),
            (b"#".to_vec(), b"x".to_vec()),
            (b"tab\tkey".to_vec(), b"nl\nvalue\r".to_vec()),
            (vec![0xff, 0xfe, b'#'], vec![0x80]),
        ];
        let text = render(&entries);
        assert!(text.lines().all(|l| !l.starts_with('#')), "{text}");
        assert_eq!(parse(&text).unwrap(), entries);
    }

    #[test]
    fn round_trip_any_bytes() {
        let entries = vec![
            (b"plain key".to_vec(), b"value".to_vec()),
            ((0u8..=255).collect(), b"%\t\n".to_vec()),
            (b"k".to_vec(), Vec::new()),
        ];
        assert_eq!(parse(&render(&entries)).unwrap(), entries);
        assert!(parse("no tab here").is_err());
        assert!(parse("a\t%4").is_err());
        assert!(parse("a\t%zz").is_err());
    }
}
