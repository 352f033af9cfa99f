//! Generates the Rust code for `schema/capos.capnp` with `capnpc` (which runs
//! the `capnp` compiler from the Debian package `capnproto`), then makes it
//! build in `no_std`: the generated interface code names `Box` and
//! `to_string` through the std prelude, so every generated module gets
//! `use alloc::{boxed::Box, string::ToString};` right after its inner
//! attributes (an item before an inner attribute is a compile error).

use std::path::PathBuf;

const SCHEMA_DIR: &str = "../schema";
const SCHEMA: &str = "../schema/capos.capnp";
const GENERATED: &str = "capos_capnp.rs";
const ALLOC_IMPORTS: &str =
    "#[allow(unused_imports)] use alloc::{boxed::Box, string::ToString};";

fn main() {
    println!("cargo:rerun-if-changed={SCHEMA}");
    println!("cargo:rerun-if-changed=build.rs");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    // The raw CodeGeneratorRequest is kept for the tests that check the
    // compiled schema's ordinals and names against the contract.
    if let Err(e) = capnpc::CompilerCommand::new()
        .src_prefix(SCHEMA_DIR)
        .file(SCHEMA)
        .raw_code_generator_request_path(out_dir.join("capos.cgr"))
        .run()
    {
        panic!(
            "compiling {SCHEMA} failed: {e}\n\
             (the `capnp` compiler comes from the Debian package `capnproto`: apt-get install -y capnproto)"
        );
    }
    let out = out_dir.join(GENERATED);
    let text = std::fs::read_to_string(&out).expect("read generated code");
    std::fs::write(&out, add_alloc_imports(&text)).expect("write generated code");
}

/// Insert [`ALLOC_IMPORTS`] into every `pub mod NAME {` block, after the
/// block's leading inner attributes (`#![...]` lines).
fn add_alloc_imports(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64 * 1024);
    let mut lines = text.lines().peekable();
    let mut modules = 0;
    while let Some(line) = lines.next() {
        out.push_str(line);
        out.push('\n');
        let trimmed = line.trim_start();
        if trimmed.starts_with("pub mod ") && trimmed.ends_with('{') {
            while let Some(next) = lines.peek() {
                if next.trim_start().starts_with("#![") {
                    out.push_str(next);
                    out.push('\n');
                    lines.next();
                } else {
                    break;
                }
            }
            let indent = &line[..line.len() - trimmed.len()];
            out.push_str(indent);
            out.push_str("  ");
            out.push_str(ALLOC_IMPORTS);
            out.push('\n');
            modules += 1;
        }
    }
    assert!(modules > 0, "no `pub mod` found in the generated code; has capnpc's output changed?");
    out
}
