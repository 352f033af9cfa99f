//! The runner's settings and inputs: the machine settings and paths it
//! takes from the environment (the Makefile passes its variables), and the
//! runner inputs that name files (scripts, images). The lowest room: it
//! imports no other.

use std::path::PathBuf;

#[derive(Clone)]
pub struct Settings {
    pub machine: String,
    pub mem: String,
    pub smp: String,
    pub cpu: String,
    pub extra: Vec<String>,
    pub timeout_secs: u64,
    pub root: PathBuf,
    pub out_dir: PathBuf,
    pub limine_dir: Option<PathBuf>,
    pub profile: String,
}

pub fn env_or(key: &str, default: &str) -> String {
    match std::env::var(key) {
        Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
        _ => default.to_string(),
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let root = workspace_root()?;
        let timeout_secs = env_or("SCENARIO_TIMEOUT", "90")
            .parse()
            .map_err(|_| "SCENARIO_TIMEOUT must be a number of seconds".to_string())?;
        let machine = env_or("QEMU_MACHINE", "q35");
        if machine != "q35" && machine != "pc" && !machine.starts_with("q35,") && !machine.starts_with("pc,") {
            eprintln!("capos-run: note: QEMU_MACHINE={} is neither q35 nor pc; passing it through", machine);
        }
        Ok(Settings {
            machine,
            mem: env_or("QEMU_MEM", "256M"),
            smp: env_or("QEMU_SMP", "1"),
            cpu: env_or("QEMU_CPU", "max"),
            extra: env_or("QEMU_EXTRA", "").split_whitespace().map(String::from).collect(),
            timeout_secs,
            out_dir: root.join("target").join("scenarios"),
            limine_dir: std::env::var("LIMINE_DIR").ok().filter(|s| !s.is_empty()).map(PathBuf::from),
            profile: env_or("KERNEL_PROFILE", "dev"),
            root,
        })
    }
}

/// The workspace root: the nearest ancestor of the current directory (or
/// of this crate's source) holding `limine.conf` and `Cargo.toml`.
pub fn workspace_root() -> Result<PathBuf, String> {
    let start = std::env::current_dir().map_err(|e| e.to_string())?;
    for dir in start.ancestors().chain(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).ancestors()) {
        if dir.join("limine.conf").is_file() && dir.join("Cargo.toml").is_file() && dir.join("kernel").is_dir() {
            return Ok(dir.to_path_buf());
        }
    }
    Err("cannot find the capOS workspace root (a directory with limine.conf, Cargo.toml and kernel/)".into())
}

/// A runner input that names a file (SHELL_SCRIPT, DIAG_SCRIPT, BLK_IMAGE,
/// the storage scenarios' images, DATA_IMAGE): `None` when unset or blank,
/// else the path as given, surrounding blanks trimmed. A value that is not
/// UTF-8 is still a path (Linux file names are bytes), never "unset".
pub fn input_path(key: &str) -> Option<std::path::PathBuf> {
    let v = std::env::var_os(key)?;
    match v.to_str() {
        Some(t) if t.trim().is_empty() => None,
        Some(t) => Some(std::path::PathBuf::from(t.trim())),
        None => Some(std::path::PathBuf::from(v)),
    }
}

/// The text of input `var` at `path`, or a message naming both and why it
/// cannot be used (missing, unreadable, a directory, not UTF-8).
pub fn read_text_input(var: &str, path: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {} {}: {}", var, path.display(), e))?;
    String::from_utf8(bytes).map_err(|e| {
        format!("cannot use {} {}: not UTF-8 text (byte {} is {:#04x})", var, path.display(), e.utf8_error().valid_up_to(), e.as_bytes()[e.utf8_error().valid_up_to()])
    })
}
