//! AFL++ driver of the `fat` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("fat");
}
