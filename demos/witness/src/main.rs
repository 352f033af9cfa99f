//! Calls an endpoint served by the hostile process. The call waits until
//! the hostile process dies, then must fail with PeerGone; after that the
//! kernel must still serve this well-behaved process.
#![no_std]
#![no_main]

extern crate alloc;

use capos_abi::SysError;
use capos_rt::{println, PingClient, StartInfo};

capos_rt::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let Some(h) = start.cap("hostile") else {
        println!("[FAIL] witness-setup: no capability 'hostile'");
        return 1;
    };
    let r = PingClient(h).ping(1);
    let gone = matches!(&r, Err(e) if e.sys() == Some(SysError::PeerGone));
    if gone {
        println!("[PASS] witness-peer-gone: the call to the dead server failed with PeerGone");
    } else {
        println!("[FAIL] witness-peer-gone: got {:?}", r);
    }
    let again = PingClient(h).ping(2);
    let still = matches!(&again, Err(e) if e.sys() == Some(SysError::PeerGone));
    println!("[{}] witness-dead-endpoint-stays-dead: {:?}", if still { "PASS" } else { "FAIL" }, again.map_err(|e| e.sys()));
    println!("[PASS] witness-kernel-still-serving: this line was written after the hostile process was killed");
    if gone && still { 0 } else { 1 }
}
