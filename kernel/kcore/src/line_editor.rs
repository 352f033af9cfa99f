//! The serial prompt's line editor: printable ASCII is kept up to a fixed
//! length, backspace/delete erase, CR or LF ends the line, everything else
//! (control bytes, escape sequences, non-ASCII) is dropped. What to echo is
//! returned so the caller can write it to the console.
//!
//! The bound is a const parameter: the prompt's editor ([`LineEditor`])
//! keeps [`MAX_LINE`] bytes, `Console.readLine`'s keeps
//! `capos_abi::limits::MAX_CONSOLE_LINE_BYTES` (see `console_input`).

use alloc::string::String;

pub const MAX_LINE: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Echo these bytes.
    Echo(&'static [u8]),
    EchoByte(u8),
    /// A complete line (without the terminator).
    Line(String),
    /// The byte was dropped because the line is full.
    Overflow,
    None,
}

/// The prompt's editor.
pub type LineEditor = LineEditorN<MAX_LINE>;

pub struct LineEditorN<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Bytes dropped on the current line because it was full.
    pub dropped: usize,
    last_was_cr: bool,
    in_escape: u8,
}

impl<const N: usize> Default for LineEditorN<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditorN<N> {
    pub const fn new() -> LineEditorN<N> {
        LineEditorN { buf: [0; N], len: 0, dropped: 0, last_was_cr: false, in_escape: 0 }
    }

    /// Forget the line being typed (its owner went away).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Bytes on the current line so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn feed(&mut self, b: u8) -> Event {
        // Swallow ANSI escape sequences (arrow keys and such).
        if self.in_escape == 1 {
            self.in_escape = if b == b'[' { 2 } else { 0 };
            return Event::None;
        }
        if self.in_escape == 2 {
            if (0x40..=0x7e).contains(&b) {
                self.in_escape = 0;
            }
            return Event::None;
        }
        let was_cr = self.last_was_cr;
        self.last_was_cr = b == b'\r';
        match b {
            0x1b => {
                self.in_escape = 1;
                Event::None
            }
            b'\r' | b'\n' => {
                if b == b'\n' && was_cr {
                    return Event::None; // CRLF counts once
                }
                let line = String::from_utf8_lossy(&self.buf[..self.len]).into_owned();
                self.len = 0;
                self.dropped = 0;
                Event::Line(line)
            }
            0x08 | 0x7f => {
                if self.len > 0 {
                    self.len -= 1;
                    Event::Echo(b"\x08 \x08")
                } else {
                    Event::None
                }
            }
            0x20..=0x7e => {
                if self.len == N {
                    self.dropped += 1;
                    Event::Overflow
                } else {
                    self.buf[self.len] = b;
                    self.len += 1;
                    Event::EchoByte(b)
                }
            }
            _ => Event::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_all(e: &mut LineEditor, bytes: &[u8]) -> Vec<String> {
        bytes.iter().filter_map(|b| match e.feed(*b) {
            Event::Line(l) => Some(l),
            _ => None,
        }).collect()
    }

    #[test]
    fn lines_and_backspace() {
        let mut e = LineEditor::new();
        assert_eq!(feed_all(&mut e, b"helo\x08lo\r\n"), vec!["hello"]);
        assert_eq!(feed_all(&mut e, b"\x7f\x7fmem\n"), vec!["mem"], "backspace on empty line is harmless");
        assert_eq!(feed_all(&mut e, b"a\r\rb\n"), vec!["a", "", "b"]);
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut e = LineEditor::new();
        let long = vec![b'x'; 10_000];
        assert!(feed_all(&mut e, &long).is_empty());
        assert_eq!(e.dropped, 10_000 - MAX_LINE);
        let lines = feed_all(&mut e, b"\n");
        assert_eq!(lines[0].len(), MAX_LINE);
        assert_eq!(feed_all(&mut e, b"help\n"), vec!["help"], "editor works after an overflow");
    }

    #[test]
    fn garbage_is_dropped() {
        let mut e = LineEditor::new();
        let garbage: Vec<u8> = (0u16..512).map(|i| (i * 37 % 256) as u8).filter(|b| *b != b'\n' && *b != b'\r').collect();
        for b in garbage {
            let _ = e.feed(b);
        }
        // Whatever printable bytes got in, a newline ends the line and the
        // editor is usable again.
        let _ = feed_all(&mut e, b"\n");
        assert_eq!(feed_all(&mut e, b"\x1b[Astatus\n"), vec!["status"], "escape sequences are swallowed");
    }
}
