//! Verdict lines and the small formatting helpers every mode uses.

use alloc::format;
use alloc::string::String;
use capos_abi::capos_capnp::ErrorCode;
use capos_rt::{println, CallError};
use sha2::{Digest, Sha256};

#[derive(Default)]
pub struct Report {
    pub passed: u32,
    pub failed: u32,
}

impl Report {
    pub fn pass(&mut self, name: &str, detail: &str) {
        self.passed += 1;
        if detail.is_empty() {
            println!("[PASS] {}", name);
        } else {
            println!("[PASS] {}: {}", name, detail);
        }
    }

    pub fn fail(&mut self, name: &str, reason: &str) {
        self.failed += 1;
        println!("[FAIL] {}: {}", name, reason);
    }

    /// PASS with the detail on Ok, FAIL with the reason on Err.
    pub fn check(&mut self, name: &str, result: Result<String, String>) -> bool {
        match result {
            Ok(detail) => {
                self.pass(name, &detail);
                true
            }
            Err(reason) => {
                self.fail(name, &reason);
                false
            }
        }
    }

    /// The call must fail with one of `want`; PASS names the code it got.
    pub fn refused<T: core::fmt::Debug>(&mut self, name: &str, result: Result<T, CallError>, want: &[ErrorCode]) -> bool {
        match result {
            Err(e) => match e.code() {
                Some(c) if want.contains(&c) => {
                    self.pass(name, &format!("refused with {:?}", c));
                    true
                }
                _ => {
                    self.fail(name, &format!("refused with {} (want {:?})", describe(&e), want));
                    false
                }
            },
            Ok(v) => {
                self.fail(name, &format!("succeeded ({:?}); want {:?}", v, want));
                false
            }
        }
    }
}

/// A call error as a person reads it.
pub fn describe(e: &CallError) -> String {
    match e {
        CallError::Object(c) => format!("{:?} ({})", c.code, c.message),
        CallError::Sys(f) => format!("syscall failed: {:?}", f),
        CallError::Message(m) => format!("malformed answer: {:?}", m),
    }
}

/// `Err(describe(e))` with `what` in front.
pub fn ctx<T>(what: &str, r: Result<T, CallError>) -> Result<T, String> {
    r.map_err(|e| format!("{}: {}", what, describe(&e)))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// A path component as the walk prints it: bytes outside printable ASCII,
/// and `%`, as `%XX` (the runner escapes the host's names the same way),
/// so a name cannot break a line apart or forge another.
pub fn escape_name(name: &str) -> String {
    capos_storage::name::percent_escape(name.as_bytes())
}

/// `/a/b` from a parent path and an (escaped) name.
pub fn join(parent: &str, escaped: &str) -> String {
    if parent == "/" {
        format!("/{}", escaped)
    } else {
        format!("{}/{}", parent, escaped)
    }
}
