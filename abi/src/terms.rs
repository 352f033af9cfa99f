//! Grant terms: what the holder of a manifest grant of a network service
//! may do, written after the grant's source:
//!
//! ```text
//! grant net: process:net/network terms listen=80,8080,9000-9010 connect udp
//! ```
//!
//! The kernel carries the words, unchanged, to the process that serves the
//! endpoint (`StartInfo.grantTerms`, beside the grant's badge), and the
//! server decides every call by them. One grammar, checked here, by
//! `Manifest::validate` (so `mkmanifest --check` and the kernel refuse a
//! malformed term before anything starts) and by the server reading them:
//!
//! - `listen=PORTS`: may listen on these TCP ports; PORTS is a comma list
//!   of ports (1..=65535) and ranges `A-B` (A <= B);
//! - `connect`: may open TCP connections out;
//! - `udp`: may bind UDP sockets (any port, 0 for an ephemeral one).
//!
//! Each word at most once; anything else is an error naming the word. No
//! terms (or an empty list) allow nothing but `Network.info`.

use crate::limits::MAX_TERMS_BYTES;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// Most `listen` port entries (ports or ranges) one grant may name.
pub const MAX_LISTEN_ENTRIES: usize = 32;

/// Parsed network terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetTerms {
    /// Inclusive port ranges `listen` allows (a single port is `(p, p)`).
    pub listen: Vec<(u16, u16)>,
    pub connect: bool,
    pub udp: bool,
}

impl NetTerms {
    /// Parse the words of a grant's terms (whitespace-separated).
    pub fn parse(text: &str) -> Result<NetTerms, String> {
        if text.len() > MAX_TERMS_BYTES {
            return Err(format!("terms are {} bytes, more than {MAX_TERMS_BYTES}", text.len()));
        }
        let mut t = NetTerms::default();
        let mut seen_listen = false;
        for word in text.split_whitespace() {
            if let Some(ports) = word.strip_prefix("listen=") {
                if seen_listen {
                    return Err(String::from("term 'listen' given twice (list every port in one: listen=80,8080)"));
                }
                seen_listen = true;
                for entry in ports.split(',') {
                    let range = match entry.split_once('-') {
                        Some((a, b)) => (port(a, word)?, port(b, word)?),
                        None => {
                            let p = port(entry, word)?;
                            (p, p)
                        }
                    };
                    if range.0 > range.1 {
                        return Err(format!("term '{}': the range {entry} runs backwards", escape(word)));
                    }
                    t.listen.push(range);
                }
                if t.listen.len() > MAX_LISTEN_ENTRIES {
                    return Err(format!("term 'listen' names more than {MAX_LISTEN_ENTRIES} ports and ranges"));
                }
                continue;
            }
            let flag = match word {
                "connect" => &mut t.connect,
                "udp" => &mut t.udp,
                "listen" => return Err(String::from("term 'listen' needs its ports: listen=80,8080")),
                other => return Err(format!("unknown term '{}' (known: listen=PORTS, connect, udp)", escape(other))),
            };
            if *flag {
                return Err(format!("term '{word}' given twice"));
            }
            *flag = true;
        }
        Ok(t)
    }

    /// Whether `listen` allows `port`.
    pub fn may_listen(&self, port: u16) -> bool {
        self.listen.iter().any(|(a, b)| (*a..=*b).contains(&port))
    }

    /// The terms written back in their canonical form.
    pub fn render(&self) -> String {
        let mut words: Vec<String> = Vec::new();
        if !self.listen.is_empty() {
            let ports: Vec<String> = self.listen.iter().map(|(a, b)| if a == b { format!("{a}") } else { format!("{a}-{b}") }).collect();
            words.push(format!("listen={}", ports.join(",")));
        }
        if self.connect {
            words.push(String::from("connect"));
        }
        if self.udp {
            words.push(String::from("udp"));
        }
        words.join(" ")
    }
}

fn port(text: &str, word: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 && text.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("term '{}': '{}' is not a port (1 to 65535)", escape(word), escape(text))),
    }
}

fn escape(s: &str) -> String {
    crate::manifest::escape_control(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_terms_parse_and_render() {
        let t = NetTerms::parse("listen=80,8080,9000-9010 connect udp").unwrap();
        assert_eq!(t.listen, vec![(80, 80), (8080, 8080), (9000, 9010)]);
        assert!(t.connect && t.udp);
        assert!(t.may_listen(80) && t.may_listen(9005) && t.may_listen(9010));
        assert!(!t.may_listen(81) && !t.may_listen(8999) && !t.may_listen(0));
        assert_eq!(NetTerms::parse(&t.render()).unwrap(), t);
        let none = NetTerms::parse("").unwrap();
        assert_eq!(none, NetTerms::default());
        assert!(!none.may_listen(80) && !none.connect && !none.udp, "no terms allow nothing");
        assert_eq!(NetTerms::parse("  udp\tconnect ").unwrap().render(), "connect udp");
    }

    #[test]
    fn malformed_terms_are_errors_naming_the_word() {
        for (bad, says) in [
            ("listen=", "'' is not a port"),
            ("listen=0", "'0' is not a port"),
            ("listen=65536", "'65536' is not a port"),
            ("listen=80,", "'' is not a port"),
            ("listen=+80", "'+80' is not a port"),
            ("listen=90-80", "runs backwards"),
            ("listen=a-80", "'a' is not a port"),
            ("listen", "needs its ports"),
            ("listen=80 listen=81", "given twice"),
            ("udp udp", "'udp' given twice"),
            ("conect", "unknown term 'conect'"),
            ("read-only", "unknown term"),
        ] {
            let e = NetTerms::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let many: Vec<String> = (1..=MAX_LISTEN_ENTRIES as u16 + 1).map(|p| p.to_string()).collect();
        assert!(NetTerms::parse(&format!("listen={}", many.join(","))).unwrap_err().contains("more than"));
        assert!(NetTerms::parse(&"udp ".repeat(100)).unwrap_err().contains("bytes"));
    }
}
