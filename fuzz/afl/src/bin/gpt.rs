//! AFL++ driver of the `gpt` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("gpt");
}
