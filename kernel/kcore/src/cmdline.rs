//! The kernel command line: whitespace-separated `key=value` words and bare
//! flags. Unknown keys are kept so the kernel can warn about them.
//!
//! Known keys: `test=a,b,c` (in-kernel self-tests to run, then exit),
//! `log=error|warn|info|debug|trace`.

pub struct Cmdline<'a> {
    text: &'a str,
}

impl<'a> Cmdline<'a> {
    pub fn new(text: &'a str) -> Cmdline<'a> {
        Cmdline { text }
    }

    /// Every `(key, value)`; a bare flag has an empty value.
    pub fn pairs(&self) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.text
            .split_ascii_whitespace()
            .map(|w| w.split_once('=').unwrap_or((w, "")))
    }

    /// The value of the last occurrence of `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.pairs().filter(|(k, _)| *k == key).last().map(|(_, v)| v)
    }

    /// The comma-separated self-tests named by `test=`.
    pub fn tests(&self) -> impl Iterator<Item = &'a str> {
        self.get("test").unwrap_or("").split(',').filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_flags() {
        let c = Cmdline::new("  test=page-fault,divide-error log=debug quiet log=trace ");
        assert_eq!(c.get("log"), Some("trace"), "last occurrence wins");
        assert_eq!(c.get("quiet"), Some(""));
        assert_eq!(c.get("missing"), None);
        assert_eq!(c.tests().collect::<Vec<_>>(), vec!["page-fault", "divide-error"]);
        assert_eq!(Cmdline::new("").tests().count(), 0);
        assert_eq!(Cmdline::new("test=").tests().count(), 0);
        assert_eq!(Cmdline::new("test=a,,b").tests().collect::<Vec<_>>(), vec!["a", "b"]);
    }
}
