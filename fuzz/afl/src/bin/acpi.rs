//! AFL++ driver of the `acpi` fuzz target (capos_fuzz::TARGETS).
fn main() {
    capos_fuzz_afl::drive("acpi");
}
