//! AFL++ driver of the `colocated` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("colocated");
}
