//! The serial console's line editor: bytes typed on a terminal in, a line
//! and the echo that keeps the terminal's picture of it right out. The
//! kernel prompt ([`LineEditor`], [`MAX_LINE`] bytes) and `Console.readLine`
//! (`console_input`, `capos_abi::limits::MAX_CONSOLE_LINE_BYTES`) both use
//! it; the bound is a const parameter.
//!
//! Whoever types is not trusted: any byte, in any order, split anyhow
//! across reads. The rules, each tested below:
//!
//! - **A line end always ends the line.** CR or LF ends the line whatever
//!   state the editor is in: a half-read escape sequence is dropped, never
//!   allowed to eat the line end. An LF straight after a CR is the same
//!   line end (CRLF counts once).
//! - **Escape sequences are read as sequences** (ECMA-48), byte by byte,
//!   so a sequence split across reads is the same as one read whole:
//!   - `ESC [` *CSI*: parameter bytes 0x30–0x3f, then intermediate bytes
//!     0x20–0x2f, ended by a final byte 0x40–0x7e. A parameter byte after
//!     an intermediate makes it malformed: read to its end and ignored.
//!   - `ESC O x` *SS3*: ended by the one printable byte `x`.
//!   - `ESC ]` *OSC* (and the other control strings, `ESC P` DCS, `ESC X`
//!     SOS, `ESC ^` PM, `ESC _` APC): ended by BEL or by ST (`ESC \`); an
//!     ESC followed by anything else ends the string and starts a new
//!     escape sequence with that byte.
//!   - Any other `ESC` (with intermediates 0x20–0x2f) followed by a final
//!     byte 0x30–0x7e is a complete sequence that does nothing (Alt-x).
//!   - Inside a sequence (not a string): another ESC drops it and starts
//!     afresh; CAN (0x18) or SUB (0x1a) drops it; any other C0 control
//!     byte acts as it would outside and the sequence goes on; DEL is
//!     ignored; a byte 0x80–0xff drops the sequence and is dropped itself.
//!     Inside a string every byte but the terminators, CAN, SUB and the
//!     line ends is ignored.
//! - **Sequences are bounded.** At most [`MAX_SEQ`] bytes of a CSI or
//!   escape sequence are kept; a longer one is abandoned: it does nothing,
//!   and the rest of it is still read up to its final byte (so its tail
//!   is never typed as text). A control string is never stored at all.
//!   However long the input, the editor's memory stays the same.
//! - **Keys.** Printable ASCII is inserted at the cursor, up to `N` bytes
//!   a line (more is dropped and reported as [`Event::Overflow`]). Left and
//!   right (`CSI D`/`C`, `SS3 D`/`C`, Ctrl-B/Ctrl-F), Home (`CSI H`,
//!   `CSI 1~`, `CSI 7~`, `SS3 H`, Ctrl-A), End (`CSI F`, `CSI 4~`,
//!   `CSI 8~`, `SS3 F`, Ctrl-E), Delete (`CSI 3~`), Backspace (0x7f,
//!   0x08), Ctrl-U (erase to the start), Ctrl-K (erase to the end), Ctrl-W
//!   (erase the word before the cursor). Modifier parameters (`CSI 1;5C`)
//!   are ignored; private sequences (`CSI ?...`) and every other sequence
//!   do nothing. Every other byte (other control bytes, 0x80–0xff) is
//!   dropped.
//! - **History.** Up and down (`CSI A`/`B`, `SS3 A`/`B`, Ctrl-P/Ctrl-N)
//!   browse the last [`HISTORY_ENTRIES`] lines entered, newest first. A
//!   blank line is not recorded, nor a line equal to the newest entry. The
//!   line being typed when browsing starts is kept and comes back when
//!   going down past the newest entry; a recalled line may be edited (a
//!   copy: the entry itself never changes) and entered. History survives
//!   [`LineEditorN::reset`]: it is the console's, not one reader's.
//! - **Echo.** Each byte returns what to write to the terminal so that the
//!   terminal shows the line and the cursor where the editor has them:
//!   the typed byte, or a redraw made of printable bytes, BS (one column
//!   left), `CSI n D` (n columns left) and `CSI K` (erase to the end of
//!   the terminal line). A redraw never moves left of where the line
//!   started, so the prompt before it is never overwritten.
//!
//! Nothing here panics on any input.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

/// The prompt's line bound.
pub const MAX_LINE: usize = 256;
/// Lines kept for up/down recall.
pub const HISTORY_ENTRIES: usize = 32;
/// Bytes of a CSI or escape sequence kept (after the ESC, or `ESC [`).
pub const MAX_SEQ: usize = 32;

const ESC: u8 = 0x1b;
const BEL: u8 = 0x07;
const BS: u8 = 0x08;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
const DEL: u8 = 0x7f;

const fn ctrl(c: u8) -> u8 {
    c & 0x1f
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Write these bytes (a redraw: cursor moves, erasures, a recalled line).
    Echo(Vec<u8>),
    /// Write this byte (typed at the end of the line).
    EchoByte(u8),
    /// A complete line (without the terminator).
    Line(String),
    /// The byte was dropped because the line is full.
    Overflow,
    None,
}

/// Where the editor is in the escape-sequence grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    /// Plain typing.
    Ground,
    /// After ESC (and any intermediate bytes, kept in `seq`).
    Escape,
    /// After `ESC [` (parameter and intermediate bytes kept in `seq`).
    Csi,
    /// After `ESC O`.
    Ss3,
    /// Inside a control string (OSC, DCS, SOS, PM, APC).
    Str,
    /// An ESC inside a control string: `\` makes it ST.
    StrEsc,
}

/// What a key does to the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Left,
    Right,
    Home,
    End,
    Delete,
    Up,
    Down,
}

/// The prompt's editor.
pub type LineEditor = LineEditorN<MAX_LINE>;

pub struct LineEditorN<const N: usize> {
    buf: [u8; N],
    len: usize,
    /// Where the next byte goes (0..=len).
    cursor: usize,
    /// Bytes dropped on the current line because it was full.
    pub dropped: usize,
    last_was_cr: bool,
    parse: Parse,
    /// The sequence read so far (see `Parse`), at most `MAX_SEQ` bytes.
    seq: [u8; MAX_SEQ],
    seq_len: usize,
    /// The sequence is too long or malformed: read it to its end, do nothing.
    seq_ignored: bool,
    /// Entered lines, oldest first; at most `HISTORY_ENTRIES`, each at most `N` bytes.
    history: VecDeque<Vec<u8>>,
    /// The entry shown while browsing (an index into `history`).
    browsing: Option<usize>,
    /// The line being typed when browsing started.
    draft: Vec<u8>,
}

impl<const N: usize> Default for LineEditorN<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineEditorN<N> {
    pub const fn new() -> LineEditorN<N> {
        LineEditorN {
            buf: [0; N],
            len: 0,
            cursor: 0,
            dropped: 0,
            last_was_cr: false,
            parse: Parse::Ground,
            seq: [0; MAX_SEQ],
            seq_len: 0,
            seq_ignored: false,
            history: VecDeque::new(),
            browsing: None,
            draft: Vec::new(),
        }
    }

    /// Forget the line being typed and any half-read sequence (its reader
    /// went away). The history is kept.
    pub fn reset(&mut self) {
        self.len = 0;
        self.cursor = 0;
        self.dropped = 0;
        self.last_was_cr = false;
        self.parse = Parse::Ground;
        self.seq_len = 0;
        self.seq_ignored = false;
        self.browsing = None;
        self.draft = Vec::new();
    }

    /// Bytes on the current line so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The line being typed.
    pub fn line(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The cursor's offset in the line.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    /// Bytes of a half-read sequence held (never more than [`MAX_SEQ`]).
    pub fn pending_sequence_bytes(&self) -> usize {
        self.seq_len
    }

    /// Entries in the history.
    pub fn history_len(&self) -> usize {
        self.history.len()
    }

    /// One byte typed.
    pub fn feed(&mut self, b: u8) -> Event {
        let was_cr = self.last_was_cr;
        self.last_was_cr = b == b'\r';
        if b == b'\r' || b == b'\n' {
            // Whatever was half read, the line ends here.
            self.parse = Parse::Ground;
            if b == b'\n' && was_cr {
                return Event::None; // CRLF counts once
            }
            return self.enter();
        }
        match self.parse {
            Parse::Ground => self.ground(b),
            Parse::Escape | Parse::Csi | Parse::Ss3 => self.in_sequence(b),
            Parse::Str => {
                match b {
                    ESC => self.parse = Parse::StrEsc,
                    BEL | CAN | SUB => self.parse = Parse::Ground,
                    _ => {}
                }
                Event::None
            }
            Parse::StrEsc => {
                if b == b'\\' {
                    self.parse = Parse::Ground;
                    Event::None
                } else {
                    // The string ended at that ESC; b goes on from there.
                    self.begin(Parse::Escape);
                    self.in_sequence(b)
                }
            }
        }
    }

    /// A byte outside any sequence.
    fn ground(&mut self, b: u8) -> Event {
        match b {
            ESC => {
                self.begin(Parse::Escape);
                Event::None
            }
            0x20..=0x7e => self.insert(b),
            DEL | BS => self.backspace(),
            _ if b == ctrl(b'A') => self.key(Key::Home),
            _ if b == ctrl(b'E') => self.key(Key::End),
            _ if b == ctrl(b'B') => self.key(Key::Left),
            _ if b == ctrl(b'F') => self.key(Key::Right),
            _ if b == ctrl(b'P') => self.key(Key::Up),
            _ if b == ctrl(b'N') => self.key(Key::Down),
            _ if b == ctrl(b'U') => self.erase(0, self.cursor),
            _ if b == ctrl(b'K') => self.erase(self.cursor, self.len),
            _ if b == ctrl(b'W') => self.erase(self.word_start(), self.cursor),
            _ => Event::None,
        }
    }

    /// Start reading a sequence in state `p` (with nothing kept yet).
    fn begin(&mut self, p: Parse) {
        self.parse = p;
        self.seq_len = 0;
        self.seq_ignored = false;
    }

    /// Keep one byte of the sequence, or give up on it past the bound.
    fn keep(&mut self, b: u8) {
        if self.seq_len < MAX_SEQ {
            self.seq[self.seq_len] = b;
            self.seq_len += 1;
        } else {
            self.seq_ignored = true;
        }
    }

    /// The sequence is complete (or dropped): back to plain typing.
    fn end_sequence(&mut self) {
        self.parse = Parse::Ground;
        self.seq_len = 0;
        self.seq_ignored = false;
    }

    /// A byte inside an escape, CSI or SS3 sequence.
    fn in_sequence(&mut self, b: u8) -> Event {
        match b {
            ESC => {
                self.begin(Parse::Escape);
                return Event::None;
            }
            CAN | SUB => {
                self.end_sequence();
                return Event::None;
            }
            // C0 controls act as they would outside; the sequence goes on.
            0x00..=0x1f => return self.ground(b),
            DEL => return Event::None,
            0x80..=0xff => {
                self.end_sequence();
                return Event::None;
            }
            _ => {}
        }
        // b is 0x20..=0x7e.
        match self.parse {
            Parse::Escape => match b {
                0x20..=0x2f => {
                    self.keep(b);
                    Event::None
                }
                _ if self.seq_len > 0 || self.seq_ignored => {
                    // ESC, intermediates, final: a sequence that does nothing.
                    self.end_sequence();
                    Event::None
                }
                b'[' => {
                    self.begin(Parse::Csi);
                    Event::None
                }
                b'O' => {
                    self.begin(Parse::Ss3);
                    Event::None
                }
                b']' | b'P' | b'X' | b'^' | b'_' => {
                    self.begin(Parse::Str);
                    Event::None
                }
                _ => {
                    // Alt-x and the like.
                    self.end_sequence();
                    Event::None
                }
            },
            Parse::Csi => match b {
                0x30..=0x3f => {
                    if self.seq[..self.seq_len].iter().any(|c| (0x20..=0x2f).contains(c)) {
                        self.seq_ignored = true; // a parameter after an intermediate
                    }
                    self.keep(b);
                    Event::None
                }
                0x20..=0x2f => {
                    self.keep(b);
                    Event::None
                }
                _ => {
                    let key = if self.seq_ignored { None } else { csi_key(&self.seq[..self.seq_len], b) };
                    self.end_sequence();
                    key.map_or(Event::None, |k| self.key(k))
                }
            },
            Parse::Ss3 => {
                self.end_sequence();
                cursor_key(b).map_or(Event::None, |k| self.key(k))
            }
            // Not reached: only the three states above come here.
            Parse::Ground | Parse::Str | Parse::StrEsc => Event::None,
        }
    }

    fn key(&mut self, k: Key) -> Event {
        match k {
            Key::Left if self.cursor > 0 => {
                self.cursor -= 1;
                Event::EchoByte(BS)
            }
            Key::Right if self.cursor < self.len => {
                let c = self.buf[self.cursor];
                self.cursor += 1;
                Event::EchoByte(c)
            }
            Key::Home if self.cursor > 0 => {
                let mut out = Vec::new();
                left(&mut out, self.cursor);
                self.cursor = 0;
                Event::Echo(out)
            }
            Key::End if self.cursor < self.len => {
                let out = self.buf[self.cursor..self.len].to_vec();
                self.cursor = self.len;
                Event::Echo(out)
            }
            Key::Delete if self.cursor < self.len => self.erase(self.cursor, self.cursor + 1),
            Key::Up => self.history_up(),
            Key::Down => self.history_down(),
            _ => Event::None,
        }
    }

    fn insert(&mut self, b: u8) -> Event {
        if self.len == N {
            self.dropped += 1;
            return Event::Overflow;
        }
        let at = self.cursor;
        self.buf.copy_within(at..self.len, at + 1);
        self.buf[at] = b;
        self.len += 1;
        self.cursor += 1;
        if self.cursor == self.len {
            return Event::EchoByte(b);
        }
        // Mid-line: rewrite from the new byte to the end, come back.
        let mut out = self.buf[at..self.len].to_vec();
        left(&mut out, self.len - self.cursor);
        Event::Echo(out)
    }

    fn backspace(&mut self) -> Event {
        if self.cursor == 0 {
            return Event::None;
        }
        self.erase(self.cursor - 1, self.cursor)
    }

    /// Remove `buf[from..to]` (`from <= cursor <= to` or the whole range on
    /// one side of the cursor); the cursor ends at `from`.
    fn erase(&mut self, from: usize, to: usize) -> Event {
        let (from, to) = (from.min(self.len), to.min(self.len));
        if from >= to {
            return Event::None;
        }
        let mut out = Vec::new();
        left(&mut out, self.cursor.saturating_sub(from));
        self.buf.copy_within(to..self.len, from);
        self.len -= to - from;
        self.cursor = from;
        out.extend_from_slice(&self.buf[from..self.len]);
        out.extend_from_slice(b"\x1b[K");
        left(&mut out, self.len - from);
        Event::Echo(out)
    }

    /// Where Ctrl-W's erase starts: back over spaces, then over the word.
    fn word_start(&self) -> usize {
        let mut i = self.cursor;
        while i > 0 && self.buf[i - 1] == b' ' {
            i -= 1;
        }
        while i > 0 && self.buf[i - 1] != b' ' {
            i -= 1;
        }
        i
    }

    /// Show `text` (at most `N` bytes) as the whole line, cursor at its end.
    fn replace_line(&mut self, text: &[u8]) -> Event {
        let text = &text[..text.len().min(N)];
        let mut out = Vec::new();
        left(&mut out, self.cursor);
        out.extend_from_slice(text);
        out.extend_from_slice(b"\x1b[K");
        self.buf[..text.len()].copy_from_slice(text);
        self.len = text.len();
        self.cursor = self.len;
        Event::Echo(out)
    }

    fn history_up(&mut self) -> Event {
        let at = match self.browsing {
            None if self.history.is_empty() => return Event::None,
            None => {
                self.draft = self.buf[..self.len].to_vec();
                self.history.len() - 1
            }
            Some(0) => return Event::None, // already at the oldest
            Some(i) => i - 1,
        };
        self.browsing = Some(at);
        let entry = self.history.get(at).cloned().unwrap_or_default();
        self.replace_line(&entry)
    }

    fn history_down(&mut self) -> Event {
        match self.browsing {
            None => Event::None,
            Some(i) if i + 1 < self.history.len() => {
                self.browsing = Some(i + 1);
                let entry = self.history.get(i + 1).cloned().unwrap_or_default();
                self.replace_line(&entry)
            }
            Some(_) => {
                self.browsing = None;
                let draft = core::mem::take(&mut self.draft);
                self.replace_line(&draft)
            }
        }
    }

    /// The line is complete: record it and start the next one.
    fn enter(&mut self) -> Event {
        let line = &self.buf[..self.len];
        let blank = line.iter().all(|c| *c == b' ');
        if !blank && self.history.back().map(|h| h.as_slice()) != Some(line) {
            if self.history.len() == HISTORY_ENTRIES {
                self.history.pop_front();
            }
            self.history.push_back(line.to_vec());
        }
        let text = String::from_utf8_lossy(line).into_owned();
        self.len = 0;
        self.cursor = 0;
        self.dropped = 0;
        self.browsing = None;
        self.draft = Vec::new();
        Event::Line(text)
    }
}

/// The key a final byte names after `ESC [` or `ESC O`: the arrows, Home
/// and End are the same letters in both.
fn cursor_key(fin: u8) -> Option<Key> {
    match fin {
        b'A' => Some(Key::Up),
        b'B' => Some(Key::Down),
        b'C' => Some(Key::Right),
        b'D' => Some(Key::Left),
        b'H' => Some(Key::Home),
        b'F' => Some(Key::End),
        _ => None,
    }
}

/// The key a complete CSI sequence (`params_and_intermediates`, `fin`) is.
fn csi_key(params: &[u8], fin: u8) -> Option<Key> {
    if params.first().is_some_and(|c| (0x3c..=0x3f).contains(c)) {
        return None; // private (`CSI ?...`)
    }
    if params.iter().any(|c| (0x20..=0x2f).contains(c)) {
        return None; // intermediates: not a key we know
    }
    if let Some(k) = cursor_key(fin) {
        return Some(k);
    }
    match fin {
        b'~' => {
            // The first parameter names the key (the rest are modifiers).
            let first = params.split(|c| *c == b';' || *c == b':').next().unwrap_or(&[]);
            if first.is_empty() || !first.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = first.iter().fold(0u32, |n, d| n.saturating_mul(10).saturating_add(u32::from(d - b'0')));
            match n {
                1 | 7 => Some(Key::Home),
                4 | 8 => Some(Key::End),
                3 => Some(Key::Delete),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Move the terminal's cursor `n` columns left.
fn left(out: &mut Vec<u8>, n: usize) {
    match n {
        0 => {}
        1 => out.push(BS),
        _ => {
            out.extend_from_slice(b"\x1b[");
            out.extend_from_slice(alloc::format!("{}", n).as_bytes());
            out.push(b'D');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A terminal line as a serial terminal would show it: only the echo
    /// forms the editor promises (module rules) are understood; anything
    /// else, or a move left of the line's start, fails the test.
    #[derive(Default, Debug)]
    struct Screen {
        cells: Vec<u8>,
        cursor: usize,
    }

    impl Screen {
        fn apply(&mut self, bytes: &[u8]) {
            let mut i = 0;
            while i < bytes.len() {
                let b = bytes[i];
                i += 1;
                match b {
                    0x20..=0x7e => {
                        if self.cursor == self.cells.len() {
                            self.cells.push(b);
                        } else {
                            self.cells[self.cursor] = b;
                        }
                        self.cursor += 1;
                    }
                    BS => {
                        assert!(self.cursor > 0, "BS at the start of the line would overwrite the prompt");
                        self.cursor -= 1;
                    }
                    ESC => {
                        assert_eq!(bytes.get(i), Some(&b'['), "only CSI is echoed: {bytes:?}");
                        i += 1;
                        let start = i;
                        while i < bytes.len() && bytes[i].is_ascii_digit() {
                            i += 1;
                        }
                        let n: usize = core::str::from_utf8(&bytes[start..i]).unwrap().parse().unwrap_or(1);
                        match bytes.get(i) {
                            Some(b'D') => {
                                assert!(n <= self.cursor, "CSI {n} D from column {} would overwrite the prompt", self.cursor);
                                self.cursor -= n;
                            }
                            Some(b'K') => {
                                assert_eq!(start, i, "CSI K takes no parameter here");
                                self.cells.truncate(self.cursor);
                            }
                            other => panic!("unexpected CSI final {other:?} in {bytes:?}"),
                        }
                        i += 1;
                    }
                    _ => panic!("unexpected echo byte {b:#04x} in {bytes:?}"),
                }
            }
        }
    }

    /// An editor and the terminal its echo is written to.
    struct Term<const N: usize> {
        e: LineEditorN<N>,
        screen: Screen,
        lines: Vec<String>,
    }

    impl<const N: usize> Term<N> {
        fn new() -> Self {
            Term { e: LineEditorN::new(), screen: Screen::default(), lines: Vec::new() }
        }

        /// Type `bytes`; after every byte the terminal must show exactly
        /// the editor's line with the cursor where the editor has it.
        fn typed(&mut self, bytes: &[u8]) -> &mut Self {
            for &b in bytes {
                match self.e.feed(b) {
                    Event::Echo(s) => self.screen.apply(&s),
                    Event::EchoByte(c) => self.screen.apply(&[c]),
                    Event::Line(l) => {
                        self.lines.push(l);
                        self.screen = Screen::default(); // the caller writes a newline
                    }
                    Event::Overflow | Event::None => {}
                }
                assert_eq!(self.screen.cells, self.e.line(), "screen vs line after {b:#04x}");
                assert_eq!(self.screen.cursor, self.e.cursor(), "cursor after {b:#04x}");
                assert!(self.e.cursor() <= self.e.len() && self.e.len() <= N);
                assert!(self.e.pending_sequence_bytes() <= MAX_SEQ);
                assert!(self.e.history_len() <= HISTORY_ENTRIES);
            }
            self
        }

        fn lines(&self) -> Vec<&str> {
            self.lines.iter().map(|s| s.as_str()).collect()
        }
    }

    fn lines_of(bytes: &[u8]) -> Vec<String> {
        let mut t = Term::<MAX_LINE>::new();
        t.typed(bytes);
        t.lines
    }

    #[test]
    fn lines_and_backspace() {
        let mut t = Term::<MAX_LINE>::new();
        t.typed(b"helo\x08lo\r\n");
        t.typed(b"\x7f\x7fmem\n");
        t.typed(b"a\r\rb\n");
        assert_eq!(t.lines(), ["hello", "mem", "a", "", "b"], "backspace on an empty line is harmless; CRLF counts once");
    }

    #[test]
    fn a_line_end_is_never_eaten() {
        // The bug found by a hostile user: ESC swallowed the Enter after it.
        assert_eq!(lines_of(b"\x1b\rstatus\r"), ["", "status"]);
        // And ESC [ ate the Enter and the next command's first letter.
        assert_eq!(lines_of(b"\x1b[\rstatus\r"), ["", "status"]);
        assert_eq!(lines_of(b"\x1b[12;3\nstatus\r"), ["", "status"]);
        assert_eq!(lines_of(b"ls\x1b]0;title\rstatus\r"), ["ls", "status"], "an unterminated OSC");
        assert_eq!(lines_of(b"ls\x1b]0;x\x1b\rstatus\r"), ["ls", "status"], "an OSC's half ST");
        assert_eq!(lines_of(b"ls\x1bO\rstatus\r"), ["ls", "status"], "a half SS3");
        assert_eq!(lines_of(b"ls\x1b(\rstatus\r"), ["ls", "status"], "ESC with an intermediate");
        // A CR that aborted a sequence still pairs with its LF.
        assert_eq!(lines_of(b"ls\x1b[\r\nstatus\r\n"), ["ls", "status"]);
    }

    /// Every byte value after each sequence opener, then Enter and the next
    /// command: the Enter ends the line and the command arrives whole.
    #[test]
    fn every_byte_after_an_opener_keeps_enter_and_the_next_command() {
        for opener in [&b"\x1b"[..], b"\x1b[", b"\x1b[1;", b"\x1b[1 ", b"\x1bO", b"\x1b]", b"\x1b]0;t\x1b", b"\x1b("] {
            for b in 0..=255u8 {
                let mut t = Term::<MAX_LINE>::new();
                t.typed(b"ls").typed(opener).typed(&[b]).typed(b"\rstatus\r");
                let lines = t.lines();
                let want = if b == b'\r' || b == b'\n' { 3 } else { 2 };
                assert_eq!(lines.len(), want, "{opener:?} {b:#04x}: {lines:?}");
                assert_eq!(lines[want - 1], "status", "{opener:?} {b:#04x}: {lines:?}");
                assert!(b"ls".starts_with(lines[0].as_bytes()), "{opener:?} {b:#04x}: {lines:?}");
            }
        }
    }

    #[test]
    fn editing_keys() {
        let cases: &[(&[u8], &str)] = &[
            (b"cat\x1b[Dx\r", "caxt"),
            (b"cat\x1bODx\r", "caxt"),
            (b"cat\x02\x02x\r", "cxat"),
            (b"cat\x1b[D\x1b[D\x1b[Cx\r", "caxt"),
            (b"cat\x06\x1b[Cx\r", "catx"),
            (b"cat\x1b[Hx\r", "xcat"),
            (b"cat\x1b[1~x\r", "xcat"),
            (b"cat\x1b[7~x\r", "xcat"),
            (b"cat\x1bOHx\r", "xcat"),
            (b"cat\x01x\r", "xcat"),
            (b"cat\x01\x1b[Fx\r", "catx"),
            (b"cat\x01\x1b[4~x\r", "catx"),
            (b"cat\x01\x1b[8~x\r", "catx"),
            (b"cat\x01\x1bOFx\r", "catx"),
            (b"cat\x01\x05x\r", "catx"),
            (b"cat\x01\x1b[3~\r", "at"),
            (b"cat\x1b[3~\r", "cat"),
            (b"cat\x1b[D\x7f\r", "ct"),
            (b"cat\x1b[D\x08\x08\x08\x08\r", "t"),
            (b"cat file\x1b[D\x1b[D\x15\r", "le"),
            (b"cat file\x01\x1b[C\x0b\r", "c"),
            (b"cat  file  \x17\r", "cat  "),
            (b"cat  file\x17\x17\r", ""),
            (b"cat  file\x1b[D\x1b[D\x17\r", "cat  le"),
            (b"cat\x1b[1;5D\x1b[1;5Dx\r", "cxat"),
            (b"cat\x1b[?1Dx\r", "catx"),
            (b"cat\x1b[ 1Dx\r", "catx"),
            (b"cat\x1b[1 ;Dx\r", "catx"),
            (b"cat\x1b[2~\x1b[5~\x1b[99999999999999~x\r", "catx"),
            (b"cat\x1b[\x08Dx\r", "cxa"),
            (b"cat\x1b[D\x1b[\x1b[Dx\r", "cxat"),
            (b"cat\x1b[\x18Dx\r", "catDx"),
            (b"cat\x1b[\x1aDx\r", "catDx"),
            (b"cat\x1b[1\x7fDx\r", "caxt"),
            (b"cat\x1b[\xc3Dx\r", "catDx"),
            (b"cat\x1b]0;title\x07x\r", "catx"),
            (b"cat\x1b]0;title\x1b\\x\r", "catx"),
            (b"cat\x1b]0;ti\x7f\x08\x15tle\x07x\r", "catx"),
            (b"cat\x1b]0;title\x1b[Dx\r", "caxt"),
            (b"cat\x1bP1$r\x1b\\x\r", "catx"),
            (b"cat\x1bxyz\r", "catyz"),
            (b"cat\x1b\x1bxyz\r", "catyz"),
            (b"cat\x1b(Bx\r", "catx"),
            (b"\xe9t\xff\x00\x09\x0ca\r", "ta"),
        ];
        for (input, want) in cases {
            assert_eq!(lines_of(input), [*want], "typing {:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn a_full_line_stays_full_wherever_the_cursor_is() {
        let mut t = Term::<8>::new();
        t.typed(b"abcdefgh").typed(b"\x1b[D\x1b[DXY");
        assert_eq!(t.e.dropped, 2);
        t.typed(b"\x7fZ\r");
        assert_eq!(t.lines(), ["abcdeZgh"]);
    }

    /// Every key sequence typed byte by byte, split at every point with
    /// other work in between, is the same as typed whole; a prefix of a
    /// sequence changes nothing.
    #[test]
    fn split_sequences_are_the_same_as_whole() {
        let keys: &[&[u8]] = &[
            b"\x1b[A", b"\x1b[B", b"\x1b[C", b"\x1b[D", b"\x1b[H", b"\x1b[F", b"\x1b[1~", b"\x1b[3~", b"\x1b[4~",
            b"\x1b[1;5C", b"\x1bOA", b"\x1bOB", b"\x1bOC", b"\x1bOD", b"\x1bOH", b"\x1bOF", b"\x1b]0;title\x07",
            b"\x1b]0;title\x1b\\", b"\x1bPq#0\x1b\\", b"\x1b(B", b"\x1bx",
        ];
        for key in keys {
            let whole = {
                let mut t = Term::<MAX_LINE>::new();
                t.typed(b"one\rtwo\rab cd").typed(key).typed(b"Z\r");
                t.lines
            };
            for split in 1..key.len() {
                let mut t = Term::<MAX_LINE>::new();
                t.typed(b"one\rtwo\rab cd").typed(&key[..split]);
                assert_eq!((t.e.line(), t.e.cursor()), (&b"ab cd"[..], 5), "{key:?} cut at {split} did something");
                t.typed(&key[split..]).typed(b"Z\r");
                assert_eq!(t.lines, whole, "{key:?} split at {split}");
            }
        }
    }

    #[test]
    fn history_up_down_edit_restore() {
        let mut t = Term::<MAX_LINE>::new();
        t.typed(b"first\r").typed(b"second\r").typed(b"third\r");
        assert_eq!(t.e.history_len(), 3);
        // Browse up to the oldest and beyond (stays), then down.
        t.typed(b"draft");
        t.typed(b"\x1b[A");
        assert_eq!(t.e.line(), b"third");
        t.typed(b"\x1bOA\x10\x1b[A");
        assert_eq!(t.e.line(), b"first", "stays at the oldest");
        t.typed(b"\x1b[B");
        assert_eq!(t.e.line(), b"second");
        // Edit a recalled line: the entry itself does not change.
        t.typed(b"\x7f\x7f\x7f\x7f\x7f\x7fedited");
        t.typed(b"\x1b[B\x1b[A");
        assert_eq!(t.e.line(), b"second", "a recalled line is a copy");
        // Down past the newest restores what was being typed.
        t.typed(b"\x1b[B\x0e\x1bOB");
        assert_eq!(t.e.line(), b"draft");
        t.typed(b"\x1b[B");
        assert_eq!(t.e.line(), b"draft", "down with nothing browsed does nothing");
        // Recall, edit and enter: the edited line is recorded.
        t.typed(b"\x15\x1b[A\x1b[A\x01re\r");
        assert_eq!(t.lines.last().unwrap(), "resecond");
        t.typed(b"\x1b[A\r");
        assert_eq!(t.lines.last().unwrap(), "resecond", "recalled a second time");
        assert_eq!(t.e.history_len(), 4, "no duplicate of the newest entry");
        // Blank lines are not recorded.
        t.typed(b"\r   \r");
        assert_eq!(t.e.history_len(), 4);
        // Recall into a shorter and a longer line redraws (Term checks the screen).
        t.typed(b"a very long line that is typed\x1b[D\x1b[D\x1b[A\x1b[A\x1b[B\x1b[B\x1b[B");
        assert_eq!(t.e.line(), b"a very long line that is typed");
        assert_eq!(t.e.cursor(), t.e.len());
    }

    #[test]
    fn history_without_entries_and_empty_draft() {
        let mut t = Term::<MAX_LINE>::new();
        t.typed(b"\x1b[A\x1b[Bx\r");
        assert_eq!(t.lines(), ["x"]);
        t.typed(b"\x1b[A\x1b[B\r");
        assert_eq!(t.lines(), ["x", ""], "the empty draft comes back");
    }

    #[test]
    fn history_is_bounded() {
        let mut t = Term::<16>::new();
        for i in 0..100 {
            t.typed(alloc::format!("cmd{}\r", i).as_bytes());
        }
        assert_eq!(t.e.history_len(), HISTORY_ENTRIES);
        for _ in 0..200 {
            t.typed(b"\x1b[A");
        }
        assert_eq!(t.e.line(), alloc::format!("cmd{}", 100 - HISTORY_ENTRIES).as_bytes(), "the oldest kept");
        // Entries are bounded by the line bound.
        t.typed(b"\x15").typed(&[b'z'; 100]).typed(b"\r\x1b[A");
        assert_eq!(t.e.line(), &[b'z'; 16][..]);
    }

    #[test]
    fn reset_forgets_the_line_not_the_history() {
        let mut t = Term::<MAX_LINE>::new();
        t.typed(b"kept\rhalf \x1b[1;");
        t.e.reset();
        t.screen = Screen::default();
        t.typed(b"2D\r\x1b[A\x1b[A\r");
        assert_eq!(t.lines(), ["kept", "2D", "kept"], "the half-read CSI was forgotten, the history kept");
    }

    #[test]
    fn long_lines_are_bounded() {
        let mut t = Term::<MAX_LINE>::new();
        t.typed(&[b'x'; 10_000]);
        assert_eq!(t.e.dropped, 10_000 - MAX_LINE);
        t.typed(b"\n");
        assert_eq!(t.lines[0].len(), MAX_LINE);
        t.typed(b"help\n");
        assert_eq!(t.lines[1], "help", "editor works after an overflow");
    }

    /// 10,000-byte sequences: nothing kept past the bound, nothing typed,
    /// and the next input works.
    #[test]
    fn long_sequences_are_bounded() {
        let mut csi = b"\x1b[".to_vec();
        csi.extend((0..5000).flat_map(|_| *b"1;"));
        csi.push(b'D');
        let mut osc = b"\x1b]0;".to_vec();
        osc.extend([b'a'; 10_000]);
        osc.push(BEL);
        let mut esc = vec![ESC];
        esc.extend([b' '; 10_000]);
        esc.push(b'B');
        let mut long_key = b"\x1b[".to_vec();
        long_key.extend([b'0'; 40]);
        long_key.extend(b"1~"); // Home, were it short enough
        for seq in [csi, osc, esc, long_key] {
            let mut t = Term::<MAX_LINE>::new();
            t.typed(b"ab").typed(&seq); // Term checks the bound after every byte
            assert_eq!((t.e.line(), t.e.cursor()), (&b"ab"[..], 2), "the sequence did nothing");
            t.typed(b"c\rstatus\r");
            assert_eq!(t.lines(), ["abc", "status"]);
        }
        // Unterminated: Enter still ends the line.
        let mut t = Term::<MAX_LINE>::new();
        t.typed(b"\x1b]").typed(&[b'q'; 10_000]).typed(b"\rstatus\r");
        assert_eq!(t.lines(), ["", "status"]);
    }

    /// Pseudo-random bytes (with the interesting ones often): the screen
    /// always matches the line, bounds hold (Term checks), nothing panics,
    /// and Enter afterwards gives a line and a working editor.
    #[test]
    fn random_input_never_breaks_it() {
        let interesting = b"\x1b[O]~;0123ABCDFHP\\\x07\x08\x7f\x01\x02\x05\x06\x0b\x0e\x10\x15\x17\x18\x1a ax";
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut t = Term::<24>::new();
        for _ in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let r = (seed >> 32) as usize;
            let b = if r.is_multiple_of(4) { (r >> 8) as u8 } else { interesting[(r >> 8) % interesting.len()] };
            t.typed(&[b]);
        }
        let before = t.lines.len();
        t.typed(b"\rhelp\r");
        assert_eq!(t.lines.last().unwrap(), "help");
        assert!(t.lines.len() >= before + 2);
    }
}
