//! Command-line dispatch and the failure type that carries an exit code.

mod build;
mod extract;
mod fsck;
mod image;
mod inspect;
mod output;
mod walk;

use crate::{EXIT_CORRUPT, EXIT_IO, EXIT_USAGE};
use capos_storage::StorageError;
use image::OlderCommit;

pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    /// A usage mistake (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { message: message.into(), exit_code: EXIT_USAGE }
    }
    /// A host file or directory could not be read or written (exit 8).
    pub fn io(message: impl Into<String>) -> Self {
        Failure { message: message.into(), exit_code: EXIT_IO }
    }
    /// Damage in an image (exit 4).
    pub fn corrupt(message: impl Into<String>) -> Self {
        Failure { message: message.into(), exit_code: EXIT_CORRUPT }
    }
    /// Classify a storage error met while reading an image: image damage is
    /// corruption (exit 4), anything else an I/O failure (exit 8).
    pub fn storage(context: &str, error: StorageError) -> Self {
        let exit_code = if error.is_corruption() { EXIT_CORRUPT } else { EXIT_IO };
        Failure { message: format!("{context}: {error}"), exit_code }
    }
    /// A storage error met while building an image from the user's sizes
    /// and seeds: whatever it says, the input is what cannot be used (exit 2).
    pub fn input(context: &str, error: StorageError) -> Self {
        Failure { message: format!("{context}: {error}"), exit_code: EXIT_USAGE }
    }
}

pub type CommandResult = Result<(), Failure>;

/// Parsed `--flag value` options of a build command.
pub struct Options {
    pub mode: String,
    pub output: Option<String>,
    pub seed: Option<String>,
    pub store_seed: Option<String>,
    pub fs_seed: Option<String>,
    pub blocks: Option<u64>,
    pub store_blocks: Option<u64>,
    pub readonly_dir: Option<String>,
}

/// A block count: digits only, and it must fit a `u64` (an overflow is a
/// usage error, never a wrapped or saturated value).
fn parse_number(flag: &str, value: &str) -> Result<u64, Failure> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Failure::usage(format!("{flag}: not a number: {value:?}")));
    }
    value
        .parse()
        .map_err(|_| Failure::usage(format!("{flag}: {value} is out of range (at most {})", u64::MAX)))
}

fn parse_build_options(args: &[String]) -> Result<Options, Failure> {
    let mut options = Options {
        mode: String::new(),
        output: None,
        seed: None,
        store_seed: None,
        fs_seed: None,
        blocks: None,
        store_blocks: None,
        readonly_dir: None,
    };
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let mut value = || -> Result<String, Failure> {
            i += 1;
            args.get(i).cloned().ok_or_else(|| Failure::usage(format!("{flag} needs a value")))
        };
        match flag {
            "--readonly-fs" => {
                options.readonly_dir = Some(value()?);
                set_mode(&mut options, flag)?;
            }
            "--writable" | "--store" | "--colocated" | "--writable-nvme" => {
                set_mode(&mut options, flag)?
            }
            "-o" | "--output" => options.output = Some(value()?),
            "--seed" => options.seed = Some(value()?),
            "--store-seed" => options.store_seed = Some(value()?),
            "--fs-seed" => options.fs_seed = Some(value()?),
            "--blocks" => options.blocks = Some(parse_number(flag, &value()?)?),
            "--store-blocks" => options.store_blocks = Some(parse_number(flag, &value()?)?),
            other => return Err(Failure::usage(format!("unknown argument {other:?} (see --help)"))),
        }
        i += 1;
    }
    if options.mode.is_empty() {
        return Err(Failure::usage("no image kind given (see --help)"));
    }
    Ok(options)
}

fn set_mode(options: &mut Options, flag: &str) -> Result<(), Failure> {
    if !options.mode.is_empty() {
        return Err(Failure::usage(format!("{flag} conflicts with {}", options.mode)));
    }
    options.mode = flag.to_string();
    Ok(())
}

pub fn run(args: &[String]) -> CommandResult {
    let command = args[0].as_str();
    match command {
        "inspect" | "fsck" | "extract" => {
            let mut older = OlderCommit::Refuse;
            let mut operands: Vec<&str> = Vec::new();
            for arg in &args[1..] {
                match arg.as_str() {
                    "--allow-older-commit" if command != "fsck" => older = OlderCommit::AllowLoudly,
                    flag if flag.starts_with("--") => {
                        return Err(Failure::usage(format!("{command}: unknown option {flag:?} (see --help)")))
                    }
                    operand => operands.push(operand),
                }
            }
            let want = if command == "extract" { 2 } else { 1 };
            if operands.len() != want {
                return Err(Failure::usage(match command {
                    "extract" => "usage: mkstore-image extract [--allow-older-commit] IMG OUT",
                    "inspect" => "usage: mkstore-image inspect [--allow-older-commit] IMG",
                    _ => "usage: mkstore-image fsck IMG",
                }));
            }
            // OUT without trailing slashes: "link/" would make the system
            // resolve a symbolic link `link` even with O_NOFOLLOW.
            let out: std::path::PathBuf = operands.get(1).map(|o| std::path::Path::new(o).components().collect()).unwrap_or_default();
            if command == "extract" {
                // Refuse a bad output path before reading anything.
                output::check_output_path(&out)?;
            }
            let bytes = std::fs::read(operands[0]).map_err(|e| Failure::io(format!("{}: {e}", operands[0])))?;
            match command {
                "inspect" => inspect::inspect(bytes, older),
                "fsck" => fsck::fsck(bytes),
                _ => extract::extract(bytes, &out, older),
            }
        }
        _ => build::build(parse_build_options(args)?),
    }
}

/// `SOURCE_DATE_EPOCH` when set (seconds since the epoch). A value whose
/// nanoseconds do not fit the image's `i64` timestamps is a usage error,
/// not a silently saturated time.
pub fn source_date_epoch() -> Result<Option<i64>, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => {
            let seconds: i64 = text
                .trim()
                .parse()
                .map_err(|_| Failure::usage(format!("SOURCE_DATE_EPOCH is not an integer in range: {text:?}")))?;
            if seconds.checked_mul(1_000_000_000).is_none() {
                return Err(Failure::usage(format!(
                    "SOURCE_DATE_EPOCH {seconds} is out of range: timestamps are i64 nanoseconds (years 1678 to 2262)"
                )));
            }
            Ok(Some(seconds))
        }
        Err(_) => Ok(None),
    }
}

/// The build time: `SOURCE_DATE_EPOCH` when set, else the host's wall clock.
pub fn build_time() -> Result<capos_storage::Timestamp, Failure> {
    use capos_storage::{Provenance, Timestamp};
    Ok(match source_date_epoch()? {
        // In range: checked by `source_date_epoch`.
        Some(sde) => Timestamp::new(sde * 1_000_000_000, Provenance::SourceDateEpoch),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_nanos()).ok())
                .unwrap_or(0);
            Timestamp::new(now, Provenance::WallClock)
        }
    })
}

pub fn format_time(t: capos_storage::Timestamp) -> String {
    if t.provenance == capos_storage::Provenance::Unknown {
        return "unknown".to_string();
    }
    format!("{}.{:09} ({})", t.unix_nanos.div_euclid(1_000_000_000), t.unix_nanos.rem_euclid(1_000_000_000), t.provenance.label())
}
