//! Command-line dispatch and the failure type that carries an exit code.

mod build;
mod extract;
mod fsck;
mod image;
mod inspect;

use crate::{EXIT_CORRUPT, EXIT_USAGE_OR_IO};
use capos_storage::StorageError;

pub struct Failure {
    pub message: String,
    pub exit_code: u8,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Failure { message: message.into(), exit_code: EXIT_USAGE_OR_IO }
    }
    /// Classify a storage error: image damage is corruption, the rest usage/IO.
    pub fn storage(context: &str, error: StorageError) -> Self {
        let exit_code = if error.is_corruption() { EXIT_CORRUPT } else { EXIT_USAGE_OR_IO };
        Failure { message: format!("{context}: {error}"), exit_code }
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

fn parse_number(flag: &str, value: &str) -> Result<u64, Failure> {
    value.parse().map_err(|_| Failure::usage(format!("{flag}: not a number: {value}")))
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
    match args[0].as_str() {
        "inspect" | "fsck" | "extract" => {
            let want = if args[0] == "extract" { 3 } else { 2 };
            if args.len() != want {
                return Err(Failure::usage(format!(
                    "usage: mkstore-image {} IMG{}",
                    args[0],
                    if want == 3 { " OUT" } else { "" }
                )));
            }
            let bytes = std::fs::read(&args[1])
                .map_err(|e| Failure::usage(format!("{}: {e}", args[1])))?;
            match args[0].as_str() {
                "inspect" => inspect::inspect(bytes),
                "fsck" => fsck::fsck(bytes),
                _ => extract::extract(bytes, std::path::Path::new(&args[2])),
            }
        }
        _ => build::build(parse_build_options(args)?),
    }
}

/// `SOURCE_DATE_EPOCH` when set (seconds since the epoch).
pub fn source_date_epoch() -> Result<Option<i64>, Failure> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Failure::usage(format!("SOURCE_DATE_EPOCH is not an integer: {text:?}"))),
        Err(_) => Ok(None),
    }
}

/// The build time: `SOURCE_DATE_EPOCH` when set, else the host's wall clock.
pub fn build_time() -> Result<capos_storage::Timestamp, Failure> {
    use capos_storage::{Provenance, Timestamp};
    Ok(match source_date_epoch()? {
        Some(sde) => Timestamp::new(sde.saturating_mul(1_000_000_000), Provenance::SourceDateEpoch),
        None => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
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
