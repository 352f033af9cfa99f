//! The capOS userspace runtime.
//!
//! A demo is an ordinary `no_std` binary that names its entry with
//! [`entry!`]: `capos_rt::entry!(main);` with `fn main(start: &StartInfo) ->
//! i32`. The runtime provides `_start` (which decodes the `StartInfo` the
//! kernel mapped, sets up the heap and calls `main`, then exits with its
//! status), a heap, a panic handler that reports through the Console (if
//! the process has one) and exits with status 101, safe syscall wrappers,
//! and typed clients for the kernel's and the demos' interfaces.
#![no_std]

extern crate alloc;

/// A client that owns its handle: `new`, `handle`, `into_handle`, and a
/// `Drop` that drops the capability (the storage and network clients).
macro_rules! owned_handle {
    ($t:ident) => {
        impl $t {
            /// Take ownership of `handle` (it is dropped with the client).
            pub fn new(handle: Handle) -> $t {
                $t(handle)
            }
            pub fn handle(&self) -> Handle {
                self.0
            }
            /// Give the handle up without dropping the capability.
            pub fn into_handle(self) -> Handle {
                let h = self.0;
                core::mem::forget(self);
                h
            }
        }
        impl Drop for $t {
            fn drop(&mut self) {
                let _ = $crate::syscall::cap_drop(self.0);
            }
        }
    };
}

pub mod bench;
pub mod client;
pub mod control;
pub mod heap;
pub mod ipc;
pub mod net;
pub mod serve;
pub mod storage;
pub mod syscall;
pub mod verdict;

pub use capos_abi::start::StartInfo;
pub use capos_abi::{Handle, SysError};
pub use client::{Answer, BulkArg, CallError, Clock, Console, Incoming, PingClient, Server};
pub use net::{Network, Nic, TcpListener, TcpStream, UdpSocket};
pub use storage::{Block, CapBlockDevice, DirEntry, Directory, File, Store};

use core::sync::atomic::{AtomicU64, Ordering};

/// The process's console handle, once `_start` found one called `console`.
static CONSOLE: AtomicU64 = AtomicU64::new(0);

/// The console the manifest granted as `console`, if any.
pub fn console() -> Option<Console> {
    match CONSOLE.load(Ordering::Relaxed) {
        0 => None,
        raw => Some(Console(Handle::from_raw(raw))),
    }
}

/// Write a formatted line to the console (silently dropped without one).
#[macro_export]
macro_rules! println {
    ($($arg:tt)*) => {
        if let Some(c) = $crate::console() {
            let _ = c.write_line(&alloc::format!($($arg)*));
        }
    };
}

/// Declare the program's `main`, and its heap: 1 MiB
/// ([`heap::DEFAULT_HEAP_BYTES`]) unless `heap = BYTES` says otherwise
/// (`capos_rt::entry!(main, heap = 8 << 20);`).
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        $crate::entry!($main, heap = $crate::heap::DEFAULT_HEAP_BYTES);
    };
    ($main:path, heap = $bytes:expr) => {
        #[no_mangle]
        fn capos_main(start: &$crate::StartInfo) -> i32 {
            $main(start)
        }
        #[no_mangle]
        fn capos_heap_arena() -> (*mut u8, usize) {
            const BYTES: usize = $bytes;
            static mut ARENA: $crate::heap::Arena<BYTES> = $crate::heap::Arena([0; BYTES]);
            (core::ptr::addr_of_mut!(ARENA) as *mut u8, BYTES)
        }
    };
}

extern "Rust" {
    fn capos_main(start: &StartInfo) -> i32;
}

core::arch::global_asm!(
    ".section .text._start, \"ax\"",
    ".global _start",
    "_start:",
    "    and rsp, -16",
    "    call {start}",
    "    ud2",
    start = sym rt_start,
);

extern "C" fn rt_start(info_ptr: u64, info_len: u64) -> ! {
    heap::init();
    // SAFETY: the kernel maps `info_len` bytes of StartInfo at `info_ptr`
    // read-only for the life of the process.
    let bytes = unsafe { core::slice::from_raw_parts(info_ptr as *const u8, info_len as usize) };
    let start = match StartInfo::decode(bytes) {
        Ok(s) => s,
        Err(_) => syscall::exit(102),
    };
    if let Some(h) = start.cap("console") {
        CONSOLE.store(h.raw(), Ordering::Relaxed);
    }
    // SAFETY: `entry!` defines capos_main with this signature.
    let status = unsafe { capos_main(&start) };
    syscall::exit(status as i64 as u64)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if let Some(c) = console() {
        let _ = c.write_line(&alloc::format!("panic: {}", info));
    }
    syscall::exit(101)
}
