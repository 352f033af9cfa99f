//! A userspace server: serves `Ping` on the endpoint it exports as `ping`.
//! `session` mints a new client capability (its own badge, marked
//! `capos_abi::badge::SERVER_MINTED`, see docs/capabilities.md) and returns it in
//! the result, so a client gets a capability passed back by a userspace
//! server. `echoBulk` answers the client's bulk buffer from the registered
//! one, without copying it in between. The loop is one
//! `endpoint_reply_receive` per call.
#![no_std]
#![no_main]

extern crate alloc;

use capos_abi::capos_capnp::{cap_result, data_result, ping, void_result, ErrorCode};
use capos_abi::helpers::{fill_cap, fill_void, CapError};
use capos_abi::interfaces::{self, ping_method};
use capos_abi::small_struct::{self, u64_result};
use capos_rt::client::CallError;
use capos_rt::{println, Answer, Incoming, Server, StartInfo};

capos_rt::entry!(main);

/// Bulk data a call may bring: two 64 KiB storage-sized chunks.
const BULK_BYTES: usize = 128 * 1024;

fn error(code: ErrorCode, what: &str) -> Result<Answer<'static>, CallError> {
    Answer::build::<void_result::Owned>(|r| {
        fill_void(r, &Err(CapError::new(code, what)));
        Ok(())
    })
}

fn answer<'a>(server: &Server, call: &Incoming, bulk: &'a [u8], minted: &'a mut [capos_rt::Handle; 1]) -> Result<Answer<'a>, CallError> {
    match (call.interface_id(), call.method_id()) {
        (interfaces::PING, ping_method::PING) => {
            let v = match small_struct::read_as::<1, 0>(call.raw()) {
                Some(s) => s.word(0),
                None => call.params::<ping::ping_params::Owned>()?.get_value(),
            };
            Answer::small(&u64_result::ok(v), u64_result::PTRS)
        }
        (interfaces::PING, ping_method::ECHO) => {
            let params = call.params::<ping::echo_params::Owned>()?;
            let data = params.get_data()?;
            Answer::build::<data_result::Owned>(|mut r| {
                r.set_ok(data);
                Ok(())
            })
        }
        (interfaces::PING, ping_method::SESSION) => {
            minted[0] = server.mint(capos_abi::badge::server_minted(call.badge() + 1))?;
            Ok(Answer::build::<cap_result::Owned>(|r| {
                fill_cap(r, &Ok(0));
                Ok(())
            })?
            .with_caps(&minted[..]))
        }
        (interfaces::PING, ping_method::ECHO_BULK) => {
            let n = call.bulk_in().min(call.bulk_out_capacity());
            Ok(Answer::small(&u64_result::ok(n), u64_result::PTRS)?.with_bulk(&bulk[..n as usize]))
        }
        _ => error(ErrorCode::Unsupported, "pong serves Ping only"),
    }
}

fn main(start: &StartInfo) -> i32 {
    let Some(h) = start.endpoint("ping") else {
        println!("no endpoint 'ping' exported to me");
        return 1;
    };
    let mut server = Server::new(h);
    let bulk: &'static [u8] = match server.register_bulk(BULK_BYTES) {
        Ok(b) => b,
        Err(e) => {
            println!("cannot register a bulk buffer: {:?}", e);
            return 1;
        }
    };
    let mut served = 0u64;
    let mut call = match server.receive() {
        Ok(c) => c,
        Err(e) => {
            println!("receive failed: {:?}", e);
            return 1;
        }
    };
    loop {
        // The null call's fast path: a tiny params struct, answered with a
        // tiny results struct, and straight on to the next call.
        if call.interface_id() == interfaces::PING && call.method_id() == ping_method::PING && call.caps().is_empty() {
            if let Some(s) = small_struct::read_as::<1, 0>(call.raw()) {
                match server.reply_receive(call.reply_token(), Answer::tiny(&u64_result::ok(s.word(0)), u64_result::PTRS as u8)) {
                    Ok(next) => {
                        call = next;
                        continue;
                    }
                    Err(e) => {
                        println!("reply/receive failed: {:?}", e);
                        match server.receive() {
                            Ok(c) => {
                                call = c;
                                continue;
                            }
                            Err(_) => return 1,
                        }
                    }
                }
            }
        }
        let mut minted = [capos_rt::Handle::from_raw(0); 1];
        let token = call.reply_token();
        // Copied out: our own calls below overwrite CAPS_IN.
        let ntransferred = call.caps().len();
        let mut transferred = alloc::vec::Vec::new();
        if ntransferred > 0 {
            transferred.extend_from_slice(call.caps());
        }
        let reply = match answer(&server, &call, bulk, &mut minted) {
            Ok(a) => a,
            Err(e) => {
                println!("cannot answer: {:?}", e);
                match error(ErrorCode::Io, "pong could not answer") {
                    Ok(a) => a,
                    Err(_) => return 1,
                }
            }
        };
        served += 1;
        let next = if ntransferred == 0 && served % 1000 != 0 {
            server.reply_receive(token, reply)
        } else {
            // Our own calls below reuse the send and receive buffers, so
            // answer first and receive after them.
            if let Err(e) = server.reply(token, reply) {
                println!("reply failed: {:?}", e);
            }
            // A capability sent along with the call arrives as a handle in
            // our own table: use it (it must be a Console), then drop it.
            for h in &transferred {
                match capos_rt::Console(*h).write_line("[PASS] ipc-capability-received: this line went through a Console handed over in the call's params") {
                    Ok(()) => {}
                    Err(e) => println!("[FAIL] ipc-capability-received: {:?}", e),
                }
                let _ = capos_rt::syscall::cap_drop(*h);
            }
            if served % 1000 == 0 {
                println!("served {} calls", served);
            }
            server.receive()
        };
        call = match next {
            Ok(c) => c,
            Err(e) => {
                println!("reply/receive failed: {:?}", e);
                match server.receive() {
                    Ok(c) => c,
                    Err(_) => return 1,
                }
            }
        };
    }
}
