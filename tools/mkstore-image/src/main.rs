//! mkstore-image: build, inspect, check and extract capOS storage images.
//!
//! Why one tool: every image the system boots with is produced by the same
//! typed encoders the kernel decodes with (the `capos-storage` crate), so no
//! layout is ever hand-encoded at literal offsets.
//!
//! The tool never hands a user silently wrong output: `extract` checks the
//! whole image (every checksum, as fsck does) before it writes anything,
//! never writes over an existing file or through a symbolic link, and
//! neither `extract` nor `inspect` presents an older commit as the image's
//! contents unless told to (`--allow-older-commit`), and then says so on
//! stderr. Trees are walked without recursion, so any depth works.

mod commands;
mod host_tree;
mod kv_file;

use std::process::ExitCode;

/// Exit code for a clean run.
pub const EXIT_OK: u8 = 0;
/// Exit code for usage mistakes: unknown or conflicting arguments, numbers
/// that overflow or sizes a format cannot hold, an output path `extract`
/// refuses, seed contents that cannot go into an image.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when an image is corrupt (fsck found damage, an image could
/// not be opened because of its contents, or its newest commit is damaged).
pub const EXIT_CORRUPT: u8 = 4;
/// Exit code when a host file or directory cannot be read or written.
pub const EXIT_IO: u8 = 8;

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
  N counts 512-byte blocks; images are built in memory.

LOOK INSIDE:
  mkstore-image inspect [--allow-older-commit] IMG
                                 format, version, features, tree or keys with sizes/times
                                 (control characters in names are shown escaped: \\x1b)
  mkstore-image fsck IMG         check every checksum and invariant
  mkstore-image extract [--allow-older-commit] IMG OUT
                                 filesystem -> directory OUT; store -> KEY<TAB>VALUE file OUT
                                 (co-located: OUT/store.kv and OUT/fs/). The whole image is
                                 checked first (as fsck does) and nothing is written if it
                                 is damaged. OUT must not exist (an empty directory is
                                 accepted for a filesystem) and must not be a symbolic link;
                                 no existing file is ever overwritten or followed.

  IMG may also be a FAT12/16/32 volume, or an MBR disk with a FAT partition, as
  mkfs.fat and mcopy make them (docs/storage-fat.md): inspect, fsck and extract
  read it through the kernel's read-only FAT backer.

  When the newest commit of a CAPOSWF1 or CAPOSST1 image is damaged, inspect and
  extract refuse (exit 4) rather than show an older state as the image's contents.
  --allow-older-commit uses the older commit and prints a WARNING naming its
  generation on stderr.

Times: with SOURCE_DATE_EPOCH set, output is deterministic: host mtimes are
clamped to it and it is the build time.

Exit codes: 0 success/clean, 2 usage error (bad arguments, numbers that overflow,
sizes a format cannot hold, a refused output path, unusable seed contents),
4 image corrupt, 8 host I/O error (a host file cannot be read or written).
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.iter().any(|a| a == "--help" || a == "-h") {
        print!("{HELP}");
        return ExitCode::from(if args.is_empty() { EXIT_USAGE } else { EXIT_OK });
    }
    match commands::run(&args) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(failure) => {
            eprintln!("mkstore-image: {}", failure.message);
            ExitCode::from(failure.exit_code)
        }
    }
}
