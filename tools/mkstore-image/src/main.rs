//! mkstore-image: build, inspect, check and extract capOS storage images.
//!
//! Why one tool: every image the system boots with is produced by the same
//! typed encoders the kernel decodes with (the `capos-storage` crate), so no
//! layout is ever hand-encoded at literal offsets.

mod commands;
mod host_tree;
mod kv_file;

use std::process::ExitCode;

/// Exit code for a clean run.
pub const EXIT_OK: u8 = 0;
/// Exit code when an image is corrupt (fsck found damage, or an image could
/// not be opened because of its contents).
pub const EXIT_CORRUPT: u8 = 4;
/// Exit code for usage mistakes and host I/O failures.
pub const EXIT_USAGE_OR_IO: u8 = 8;

const HELP: &str = "\
mkstore-image: build, inspect, check and extract capOS storage images

BUILD (write the image to -o/--output FILE):
  mkstore-image --readonly-fs DIR -o IMG        CAPOSRO1 image of a host directory
  mkstore-image --writable [--seed DIR] [--blocks N] -o IMG
                                                CAPOSWF1 filesystem, empty or seeded
  mkstore-image --store [--seed FILE] [--blocks N] -o IMG
                                                CAPOSST1 store, empty or seeded from a
                                                KEY<TAB>VALUE file (%XX escapes bytes)
  mkstore-image --colocated [--store-seed FILE] [--fs-seed DIR]
                [--store-blocks N] [--blocks N] -o IMG
                                                CAPOSST1 store followed by a CAPOSWF1
                                                filesystem on one disk
  mkstore-image --writable-nvme [--seed DIR] -o IMG
                                                CAPOSWF1 NVMe namespace image: exactly
                                                32768 blocks of 512 bytes (16 MiB)

LOOK INSIDE:
  mkstore-image inspect IMG      format, version, features, tree or keys with sizes/times
  mkstore-image fsck IMG         check every checksum and invariant
  mkstore-image extract IMG OUT  filesystem -> directory OUT; store -> KEY<TAB>VALUE file OUT
                                 (co-located: OUT/store.kv and OUT/fs/)

Times: with SOURCE_DATE_EPOCH set, output is deterministic: host mtimes are
clamped to it and it is the build time.

Exit codes: 0 success/clean, 4 image corrupt, 8 usage or host I/O error.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::from(if args.is_empty() { EXIT_USAGE_OR_IO } else { EXIT_OK });
    }
    match commands::run(&args) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            eprintln!("mkstore-image: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
