//! The serial stream of a QEMU guest: its bytes read from a pipe, cut into
//! lines, cleaned of terminal escapes, printed, logged and timed, with
//! scripted input typed when its trigger text has arrived.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::Instant;

/// Remove terminal escape sequences (OVMF clears the screen on serial).
pub fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\r' || (c.is_control() && c != '\t') {
            continue;
        }
        out.push(c);
    }
    out
}

/// Forward raw chunks from a pipe (serial output can end without a newline,
/// e.g. the prompt, so we cannot wait for lines).
/// What [`stream_serial`] collected.
pub struct Serial {
    pub lines: Vec<String>,
    /// Host time (Unix seconds) each line arrived.
    pub stamps: Vec<i64>,
    pub timed_out: bool,
}

/// Read a guest's serial output from `rx` (fed by [`spawn_reader`]) until it
/// ends or `deadline` passes: print and log each line (through `clean`),
/// and type each script step's input once its trigger text has arrived
/// after the previous input was sent. A trailing partial line is kept.
pub fn stream_serial(
    rx: &mpsc::Receiver<Option<Vec<u8>>>,
    stdin: Option<&mut std::process::ChildStdin>,
    log: &mut std::fs::File,
    script: &[(&str, &[u8])],
    deadline: Instant,
    clean: fn(&str) -> String,
) -> Serial {
    stream_serial_watching(rx, stdin, log, script, deadline, clean, None)
}

/// [`stream_serial`], each chunk of output also sent to `tap` (a
/// host-side check following the console: crate::boot::HostEnv).
pub fn stream_serial_watching(
    rx: &mpsc::Receiver<Option<Vec<u8>>>,
    mut stdin: Option<&mut std::process::ChildStdin>,
    log: &mut std::fs::File,
    script: &[(&str, &[u8])],
    deadline: Instant,
    clean: fn(&str) -> String,
    tap: Option<mpsc::Sender<String>>,
) -> Serial {
    let (mut lines, mut stamps, mut partial) = (Vec::new(), Vec::new(), Vec::<u8>::new());
    // Everything received, for script triggers; triggers only match text
    // that arrived after the previous input was sent.
    let mut transcript = String::new();
    let mut cursor = 0;
    let mut steps = script.iter();
    let mut next_step = steps.next();
    let mut timed_out = false;
    loop {
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            break;
        }
        match rx.recv_timeout(deadline - now) {
            Ok(Some(chunk)) => {
                transcript.push_str(&String::from_utf8_lossy(&chunk));
                partial.extend_from_slice(&chunk);
                while let Some(pos) = partial.iter().position(|b| *b == b'\n') {
                    let raw: Vec<u8> = partial.drain(..=pos).collect();
                    let line = clean(&String::from_utf8_lossy(&raw[..raw.len() - 1]));
                    println!("{}", line);
                    let _ = writeln!(log, "{}", line);
                    lines.push(line);
                    stamps.push(host_unix());
                }
                if let Some(tap) = &tap {
                    let _ = tap.send(String::from_utf8_lossy(&chunk).into_owned());
                }
                while let Some((after, send)) = next_step {
                    match transcript[cursor..].find(after) {
                        Some(at) => {
                            if let Some(w) = stdin.as_mut() {
                                let _ = w.write_all(send);
                                let _ = w.flush();
                            }
                            cursor = transcript.len().max(cursor + at + after.len());
                            next_step = steps.next();
                        }
                        None => break,
                    }
                }
            }
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                timed_out = true;
                break;
            }
        }
    }
    if !partial.is_empty() {
        let line = clean(&String::from_utf8_lossy(&partial));
        println!("{}", line);
        let _ = writeln!(log, "{}", line);
        lines.push(line);
        stamps.push(host_unix());
    }
    Serial { lines, stamps, timed_out }
}

pub fn spawn_reader<R: Read + Send + 'static>(mut r: R, tx: mpsc::Sender<Option<Vec<u8>>>) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Some(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(None);
    });
}

fn host_unix() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ansi_sequences_are_stripped() {
        assert_eq!(strip_ansi("\x1b[2J\x1b[01;01Hcapos-boot: x\r"), "capos-boot: x");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
