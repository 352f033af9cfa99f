//! Bounds on what crosses the syscall boundary.
//!
//! Every message from userspace is copied into the kernel with a size cap and
//! read with the traversal and nesting limits below, so a hostile message
//! costs the kernel at most a bounded amount of memory and work. The same
//! limits apply to messages between processes (the kernel re-reads them).

use capnp::message::ReaderOptions;

/// Largest serialized message (segment table included) accepted by any
/// syscall, and the largest the helpers here will produce. It fits a
/// 64 KiB CAPOSST1 value plus its envelope.
pub const MAX_MESSAGE_BYTES: usize = 128 * 1024;

/// [`MAX_MESSAGE_BYTES`] in 8-byte words.
pub const MAX_MESSAGE_WORDS: usize = MAX_MESSAGE_BYTES / 8;

/// Words a reader may traverse in one message. Validation walks the whole
/// message once and a handler reads it about once more, so four times the
/// largest message leaves room for that while bounding amplification
/// (a list of many pointers to one struct).
pub const TRAVERSAL_LIMIT_WORDS: usize = 4 * MAX_MESSAGE_WORDS;

/// Deepest pointer nesting accepted. The envelopes and schema structs nest a
/// handful of levels (Call -> params -> result -> list -> entry -> text);
/// capnp's own default (64) is looser than any contract here needs.
pub const NESTING_LIMIT: i32 = 16;

/// Most capability handles one message may carry (`caps` list).
pub const MAX_CAPS_PER_MESSAGE: usize = 16;

/// Largest `length` a `File.read` may ask for, and a sensible write chunk.
pub const MAX_IO_CHUNK_BYTES: u32 = 64 * 1024;

/// Most bytes one `TcpStream.write` queues, and the largest datagram
/// `UdpSocket.send` takes (a network service copies a write it cannot
/// queue at once, so this bounds what one waiting call holds).
pub const MAX_NET_IO_BYTES: usize = 64 * 1024;

/// Most bytes the terms of one grant may be (`Grant.terms`).
pub const MAX_TERMS_BYTES: usize = 256;

/// Longest line `Console.writeLine` accepts (bytes, UTF-8).
pub const MAX_CONSOLE_LINE_BYTES: usize = 1024;

/// Capability table slots per process: as many objects as a storage
/// session may hold (4,096), so a client can hold all of them at once.
/// The table grows as it is used, so a small process pays for few.
pub const MAX_CAPS_PER_PROCESS: usize = 4096;

// Checked at compile time: a message is whole words, a full File.read and a
// 64 KiB CAPOSST1 value fit a reply with room for the envelope, and a slot
// index fits a handle's 32 bits.
const _: () = assert!(MAX_MESSAGE_BYTES.is_multiple_of(8));
const _: () = assert!(MAX_IO_CHUNK_BYTES as usize + 1024 <= MAX_MESSAGE_BYTES);
const _: () = assert!(64 * 1024 + 1024 <= MAX_MESSAGE_BYTES);
const _: () = assert!(MAX_CAPS_PER_PROCESS <= u32::MAX as usize);

/// The reader options every message read must use.
pub fn reader_options() -> ReaderOptions {
    let mut options = ReaderOptions::new();
    options.traversal_limit_in_words(Some(TRAVERSAL_LIMIT_WORDS)).nesting_limit(NESTING_LIMIT);
    options
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_pinned() {
        // Userspace is built against these numbers and docs/capabilities.md
        // quotes them: changing one is an ABI change, made here on purpose.
        assert_eq!(MAX_MESSAGE_BYTES, 131_072);
        assert_eq!(TRAVERSAL_LIMIT_WORDS, 65_536);
        assert_eq!(NESTING_LIMIT, 16);
        assert_eq!(MAX_CAPS_PER_MESSAGE, 16);
        assert_eq!(MAX_IO_CHUNK_BYTES, 65_536);
        assert_eq!(MAX_CONSOLE_LINE_BYTES, 1024);
        assert_eq!(MAX_CAPS_PER_PROCESS, 4096);
    }

    #[test]
    fn limits_are_consistent() {
        let o = reader_options();
        assert_eq!(o.traversal_limit_in_words, Some(TRAVERSAL_LIMIT_WORDS));
        assert_eq!(o.nesting_limit, NESTING_LIMIT);
    }
}
