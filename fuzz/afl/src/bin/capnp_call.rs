//! AFL++ driver of the `capnp_call` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("capnp_call");
}
