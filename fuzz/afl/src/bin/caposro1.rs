//! AFL++ driver of the `caposro1` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("caposro1");
}
