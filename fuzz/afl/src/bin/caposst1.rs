//! AFL++ driver of the `caposst1` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("caposst1");
}
