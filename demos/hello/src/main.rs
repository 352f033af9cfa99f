//! The smallest capOS program: one line through the Console capability.
#![no_std]
#![no_main]

extern crate alloc;

use capos_rt::{println, StartInfo};

capos_rt::entry!(main);

fn main(start: &StartInfo) -> i32 {
    println!("hello from capOS userspace: I am '{}' holding {} capabilities", start.name, start.caps.len());
    match capos_rt::console() {
        Some(c) => match c.write_line("[PASS] hello-console: this line went through a Console capability") {
            Ok(()) => 0,
            Err(_) => 1,
        },
        None => 2,
    }
}
