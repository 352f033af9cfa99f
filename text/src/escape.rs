//! Text made safe to print: control characters become visible escapes,
//! so text from an image, a manifest or a process can never move the
//! cursor, clear the screen or forge a line on a terminal.

use alloc::format;
use alloc::string::String;

/// `text` as it is safe to print: every control character (C0, DEL, C1)
/// as `\n`, `\r`, `\t`, `\xNN` or `\u{NN}`, so text from an image or a
/// manifest can never move the cursor or forge a line. With `backslash`,
/// a backslash is written `\\` too, so every printed text stands for
/// exactly one original (names in `mkstore-image inspect`); without, it is
/// kept as it is (error messages, `mkmanifest --dump`).
pub fn escape_control(text: &str, backslash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' if backslash => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) < 0x80 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_become_visible_and_nothing_else_changes() {
        assert_eq!(escape_control("a\nb\rc\td", false), "a\\nb\\rc\\td");
        assert_eq!(escape_control("\u{1b}[2J\u{7f}", false), "\\x1b[2J\\x7f");
        assert_eq!(escape_control("\u{85}\u{9b}", false), "\\u{85}\\u{9b}");
        assert_eq!(escape_control("plain é ✓ \\ text", false), "plain é ✓ \\ text");
    }

    #[test]
    fn with_backslash_every_output_stands_for_one_input() {
        assert_eq!(escape_control("a\\nb", true), "a\\\\nb");
        assert_eq!(escape_control("a\nb", true), "a\\nb");
        assert_ne!(escape_control("a\\nb", true), escape_control("a\nb", true));
        // Without it, the two read the same: the documented trade-off.
        assert_eq!(escape_control("a\\nb", false), escape_control("a\nb", false));
    }
}
