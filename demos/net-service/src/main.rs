#![no_std]
#![no_main]
capos_rt::entry!(main);
fn main(_s: &capos_rt::StartInfo) -> i32 { 0 }
