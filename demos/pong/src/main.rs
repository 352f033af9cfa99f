//! A userspace server: serves `Ping` on the endpoint it exports as `ping`.
//! `session` mints a new client capability (badge + 1) and returns it in
//! the result, so a client gets a capability passed back by a userspace
//! server.
#![no_std]
#![no_main]

extern crate alloc;

use capos_abi::capos_capnp::{data_result, ping};
use capos_abi::helpers::{encode_u64_return, encode_void_return, CapError};
use capos_abi::capos_capnp::ErrorCode;
use capos_abi::interfaces;
use capos_abi::message::encode_return;
use capos_rt::client::cap_return;
use capos_rt::{println, Server, StartInfo};

capos_rt::entry!(main);

fn main(start: &StartInfo) -> i32 {
    let Some(h) = start.endpoint("ping") else {
        println!("no endpoint 'ping' exported to me");
        return 1;
    };
    let mut server = Server::new(h);
    let mut served = 0u64;
    loop {
        let call = match server.receive() {
            Ok(c) => c,
            Err(e) => {
                println!("receive failed: {:?}", e);
                return 1;
            }
        };
        // A capability sent along with the call arrives as a handle in our
        // own table: use it (it must be a Console), then drop it.
        for h in call.caps() {
            let c = capos_rt::Console(*h);
            match c.write_line("[PASS] ipc-capability-received: this line went through a Console handed over in the call's params") {
                Ok(()) => {}
                Err(e) => println!("[FAIL] ipc-capability-received: {:?}", e),
            }
            let _ = capos_rt::syscall::cap_drop(*h);
        }
        let reply = match (call.interface_id(), call.method_id()) {
            (interfaces::PING, 0) => match call.params::<ping::ping_params::Owned>() {
                Ok(p) => encode_u64_return(&Ok(p.get_value())),
                Err(e) => Err(e),
            },
            (interfaces::PING, 1) => {
                let data = call.params::<ping::echo_params::Owned>().and_then(|p| Ok(alloc::vec::Vec::from(p.get_data().map_err(capos_abi::message::MessageError::from)?)));
                match data {
                    Ok(d) => encode_return::<data_result::Owned>(&[], |mut r| {
                        r.set_ok(&d);
                        Ok(())
                    }),
                    Err(e) => Err(e),
                }
            }
            (interfaces::PING, 2) => match server.mint(call.badge() + 1) {
                Ok(h) => cap_return(h),
                Err(e) => {
                    println!("mint failed: {:?}", e);
                    encode_void_return(&Err(CapError::new(ErrorCode::Io, "mint failed")))
                }
            },
            _ => encode_void_return(&Err(CapError::new(ErrorCode::Unsupported, "pong serves Ping only"))),
        };
        match reply {
            Ok(bytes) => {
                if let Err(e) = server.reply(call.reply_token(), &bytes) {
                    println!("reply failed: {:?}", e);
                }
            }
            Err(e) => println!("cannot encode a reply: {}", e),
        }
        served += 1;
        if served % 1000 == 0 {
            println!("served {} calls", served);
        }
    }
}
