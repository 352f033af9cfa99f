//! AFL++ driver of the `manifest` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("manifest");
}
