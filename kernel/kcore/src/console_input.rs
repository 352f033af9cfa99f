//! Who owns the serial console's input: `Console.readLine`'s rules.
//!
//! The rules, each tested below:
//!
//! - **One reader.** A process that calls `readLine` while nobody waits
//!   becomes the *holder* and sleeps until its line is complete. A second
//!   process calling while the holder waits is answered `busy` at once
//!   (it never queues behind the first, and never steals its line).
//! - **Input goes to the holder only.** While there is a holder, serial
//!   bytes feed its line (printable ASCII kept, backspace edits, escape
//!   sequences and other control bytes dropped, at most `N` bytes: the
//!   rest of an over-long line is dropped and reported once). Without a
//!   holder the caller does not feed bytes here at all: they stay in the
//!   serial ring, for the next reader or the diagnostics prompt.
//! - **A line ends the hold.** When CR or LF completes the line, the
//!   holder is handed the line and stops holding; its next `readLine`
//!   holds again. Between two reads nobody holds the input, so the kernel
//!   knows the console is free whenever no process is blocked reading.
//! - **Death ends the hold.** A holder that goes away ([`release`]) loses
//!   its half-typed line (and any half-read escape sequence), and the next
//!   reader starts clean. The history of entered lines is the console's
//!   and stays: the operator can recall what they typed for an earlier
//!   reader (no process can read it; only keys typed on the console
//!   recall it).
//!
//! [`release`]: ConsoleInput::release

use crate::line_editor::{Event, LineEditorN};
use alloc::string::String;
use alloc::vec::Vec;

/// What a `readLine` call gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// The caller now holds the input: park it until its line is complete.
    Wait,
    /// Another process holds the input: answer `busy`.
    Busy,
}

/// What one serial byte did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fed {
    /// Nothing to show.
    None,
    /// Echo these bytes to the console.
    Echo(Vec<u8>),
    EchoByte(u8),
    /// The line just became too long (reported once per line).
    Overflow,
    /// The holder's line is complete: hand it to `pid`, which no longer
    /// holds the input. `cut` says the line lost bytes to the bound.
    Line { pid: u32, line: String, cut: bool },
    /// No holder: the byte was not taken (the caller should not have fed it).
    NoHolder,
}

pub struct ConsoleInput<const N: usize> {
    holder: Option<u32>,
    editor: LineEditorN<N>,
    overflow_reported: bool,
}

impl<const N: usize> Default for ConsoleInput<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> ConsoleInput<N> {
    pub const fn new() -> ConsoleInput<N> {
        ConsoleInput { holder: None, editor: LineEditorN::new(), overflow_reported: false }
    }

    /// The process blocked reading, if any.
    pub fn holder(&self) -> Option<u32> {
        self.holder
    }

    /// `pid` calls `readLine`.
    pub fn request(&mut self, pid: u32) -> Request {
        match self.holder {
            None => {
                self.holder = Some(pid);
                Request::Wait
            }
            // A holder is blocked, so it cannot call again; treat a repeat
            // as busy rather than trusting the caller's state.
            Some(_) => Request::Busy,
        }
    }

    /// `pid` went away (exited or was killed): if it held the input, the
    /// input is free again and its half-typed line is forgotten. Returns
    /// whether it was the holder.
    pub fn release(&mut self, pid: u32) -> bool {
        if self.holder == Some(pid) {
            self.holder = None;
            self.editor.reset();
            self.overflow_reported = false;
            true
        } else {
            false
        }
    }

    /// One byte typed on the console.
    pub fn feed(&mut self, b: u8) -> Fed {
        let Some(pid) = self.holder else { return Fed::NoHolder };
        match self.editor.feed(b) {
            Event::None => Fed::None,
            Event::Echo(s) => Fed::Echo(s),
            Event::EchoByte(c) => Fed::EchoByte(c),
            Event::Overflow => {
                if self.overflow_reported {
                    Fed::None
                } else {
                    self.overflow_reported = true;
                    Fed::Overflow
                }
            }
            Event::Line(line) => {
                let cut = self.overflow_reported;
                self.overflow_reported = false;
                self.holder = None;
                Fed::Line { pid, line, cut }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn type_bytes<const N: usize>(c: &mut ConsoleInput<N>, bytes: &[u8]) -> Vec<Fed> {
        bytes.iter().map(|b| c.feed(*b)).filter(|f| !matches!(f, Fed::None | Fed::EchoByte(_) | Fed::Echo(_))).collect()
    }

    #[test]
    fn one_reader_at_a_time() {
        let mut c = ConsoleInput::<64>::new();
        assert_eq!(c.holder(), None);
        assert_eq!(c.request(3), Request::Wait);
        assert_eq!(c.holder(), Some(3));
        assert_eq!(c.request(4), Request::Busy, "a second reader is refused");
        assert_eq!(c.request(3), Request::Busy, "a repeat is refused too");
        assert_eq!(c.holder(), Some(3), "and the first keeps the input");
        assert_eq!(type_bytes(&mut c, b"ls\r"), [Fed::Line { pid: 3, line: "ls".into(), cut: false }]);
        assert_eq!(c.holder(), None, "a line ends the hold");
        assert_eq!(c.request(4), Request::Wait, "the input is free for the next reader");
    }

    #[test]
    fn without_a_holder_nothing_is_taken() {
        let mut c = ConsoleInput::<64>::new();
        assert_eq!(c.feed(b'x'), Fed::NoHolder);
        assert_eq!(c.feed(b'\r'), Fed::NoHolder);
        assert_eq!(c.request(1), Request::Wait);
        assert_eq!(type_bytes(&mut c, b"pwd\n"), [Fed::Line { pid: 1, line: "pwd".into(), cut: false }], "no stale byte leaked in");
    }

    #[test]
    fn release_frees_the_input_and_forgets_the_line() {
        let mut c = ConsoleInput::<64>::new();
        assert_eq!(c.request(7), Request::Wait);
        let _ = type_bytes(&mut c, b"half a li");
        assert!(!c.release(8), "another pid releases nothing");
        assert_eq!(c.holder(), Some(7));
        assert!(c.release(7));
        assert_eq!(c.holder(), None);
        assert_eq!(c.request(9), Request::Wait);
        assert_eq!(type_bytes(&mut c, b"ne\r"), [Fed::Line { pid: 9, line: "ne".into(), cut: false }]);
    }

    #[test]
    fn long_lines_are_bounded_and_reported_once() {
        let mut c = ConsoleInput::<16>::new();
        assert_eq!(c.request(2), Request::Wait);
        let long = [b'a'; 1000];
        let events = type_bytes(&mut c, &long);
        assert_eq!(events, [Fed::Overflow], "one report for the whole line");
        match c.feed(b'\r') {
            Fed::Line { pid: 2, line, cut: true } => assert_eq!(line.len(), 16),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.request(2), Request::Wait);
        assert_eq!(type_bytes(&mut c, b"help\r"), [Fed::Line { pid: 2, line: "help".into(), cut: false }], "the next line is whole again");
    }

    #[test]
    fn garbage_and_editing() {
        let mut c = ConsoleInput::<64>::new();
        assert_eq!(c.request(5), Request::Wait);
        // Every byte value except the terminators, then an edit.
        let garbage: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r' && *b != b'\n').collect();
        let events = type_bytes(&mut c, &garbage);
        assert!(events.iter().all(|e| matches!(e, Fed::Overflow)), "{events:?}");
        match c.feed(b'\n') {
            Fed::Line { line, .. } => assert!(line.bytes().all(|b| (0x20..0x7f).contains(&b)), "only printable ASCII: {line:?}"),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.request(5), Request::Wait);
        assert_eq!(type_bytes(&mut c, b"cta\x7f\x08at\x1b[Dx\r"), [Fed::Line { pid: 5, line: "caxt".into(), cut: false }]);
    }

    #[test]
    fn an_escape_never_eats_the_line_end() {
        let mut c = ConsoleInput::<64>::new();
        for junk in [&b"\x1b"[..], b"\x1b[", b"\x1b]0;", b"\x1bO"] {
            assert_eq!(c.request(1), Request::Wait);
            let mut typed = junk.to_vec();
            typed.push(b'\r');
            assert_eq!(type_bytes(&mut c, &typed), [Fed::Line { pid: 1, line: "".into(), cut: false }], "{junk:?}");
            // Typed before the next readLine: the bytes wait in the serial
            // ring, and arrive whole.
            assert_eq!(c.request(1), Request::Wait);
            assert_eq!(type_bytes(&mut c, b"status\r"), [Fed::Line { pid: 1, line: "status".into(), cut: false }], "{junk:?}");
        }
    }

    #[test]
    fn history_outlives_a_reader() {
        let mut c = ConsoleInput::<64>::new();
        assert_eq!(c.request(1), Request::Wait);
        let _ = type_bytes(&mut c, b"get color\r");
        assert_eq!(c.request(1), Request::Wait);
        let _ = type_bytes(&mut c, b"half\x1b[");
        assert!(c.release(1));
        assert_eq!(c.request(2), Request::Wait);
        assert_eq!(type_bytes(&mut c, b"\x1b[A\r"), [Fed::Line { pid: 2, line: "get color".into(), cut: false }], "recalled for the next reader");
    }
}
