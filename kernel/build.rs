//! Links the kernel at its higher-half address and generates the 256
//! interrupt entry stubs (plain assembly text, so the kernel builds on
//! stable Rust without the x86-interrupt ABI).
use std::fmt::Write as _;

/// Exceptions for which the CPU pushes an error code.
const HAS_ERROR_CODE: &[u32] = &[8, 10, 11, 12, 13, 14, 17, 21, 29, 30];

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap();
    println!("cargo:rustc-link-arg-bins=-T{}/linker.ld", dir);
    println!("cargo:rustc-link-arg-bins=--no-dynamic-linker");
    println!("cargo:rerun-if-changed=linker.ld");
    println!("cargo:rerun-if-changed=build.rs");

    let mut s = String::new();
    s.push_str(".section .text.isr, \"ax\"\n");
    for v in 0..256u32 {
        let _ = writeln!(s, ".global isr_stub_{v}\nisr_stub_{v}:");
        if !HAS_ERROR_CODE.contains(&v) {
            s.push_str("    push 0\n");
        }
        // NMI, double fault and machine check (the IST vectors) may arrive
        // before the kernel's swapgs: their entry checks GS_BASE (trap.rs).
        let entry = if [2, 8, 18].contains(&v) { "isr_paranoid" } else { "isr_common" };
        let _ = writeln!(s, "    push {v}\n    jmp {entry}");
    }
    s.push_str(".section .rodata.isr, \"a\"\n.balign 8\n.global isr_stub_table\nisr_stub_table:\n");
    for v in 0..256u32 {
        let _ = writeln!(s, "    .quad isr_stub_{v}");
    }
    let out = std::env::var("OUT_DIR").unwrap();
    std::fs::write(format!("{out}/isr_stubs.s"), s).unwrap();
}
