//! AFL++ driver of the `elf` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("elf");
}
