//! Fuzz targets: one function per parser of untrusted input, each taking
//! arbitrary bytes and never panicking (a refusal is an `Err` inside the
//! target and is simply dropped).
//!
//! Why a library of plain functions: the same code runs three ways. AFL++
//! drives each target through a thin binary in `fuzz/afl/` (built with
//! `cargo afl`, on stable Rust — DESIGN.md decision 1); `cargo test`
//! (`tests/replay.rs`) feeds every saved corpus file and every crash ever
//! found back through it without AFL; and a crash reproduces with
//! `cargo run -p capos-fuzz --example replay -- TARGET FILE`.
//!
//! A target panics only when the code under test panics, or when a
//! property that must hold for every input fails (a reply the dispatcher
//! built must read back; a manifest that decoded must re-encode to the
//! same manifest). Those are the findings. See docs/fuzzing.md.

pub mod boot;
pub mod call;
pub mod images;

/// One fuzz target: its name (the directory under `fuzz/corpus/` and
/// `fuzz/regressions/`, and the AFL binary's name) and its function.
pub struct Target {
    pub name: &'static str,
    pub run: fn(&[u8]),
}

/// Every target. `make fuzz` runs those with a directory under
/// `fuzz/corpus/` (the replay test checks that every target has one).
pub const TARGETS: &[Target] = &[
    Target { name: "caposro1", run: images::caposro1 },
    Target { name: "caposwf1", run: images::caposwf1 },
    Target { name: "caposst1", run: images::caposst1 },
    Target { name: "colocated", run: images::colocated },
    Target { name: "fat", run: images::fat },
    Target { name: "capnp_call", run: call::capnp_call },
    Target { name: "manifest", run: boot::manifest },
    Target { name: "acpi", run: boot::acpi },
    Target { name: "gpt", run: boot::gpt },
    Target { name: "elf", run: boot::elf },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
