//! AFL++ driver of the `caposwf1` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("caposwf1");
}
