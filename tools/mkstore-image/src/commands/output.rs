//! Where `extract` writes, and how, without ever following a symbolic link
//! or writing over an existing file.
//!
//! Rules for the output path OUT: not the empty string; not a symbolic link
//! (even to an empty directory); for a filesystem, a directory that does not
//! exist yet or is empty; for a store, a file that does not exist yet.
//! (Directories above OUT are the user's choice and are used as given.)
//!
//! Below OUT, every directory is created with `mkdirat` and entered with
//! `openat(O_DIRECTORY | O_NOFOLLOW)` relative to its parent's descriptor,
//! and every file is created with `openat(O_CREAT | O_EXCL | O_NOFOLLOW)`:
//! no path longer than one name is ever resolved, so any depth works
//! (beyond `PATH_MAX`), nothing existing is written to, and no link is
//! followed even if one appears while extraction runs. Only the current
//! directory is held open; going back up opens `..` and checks it is the
//! directory we came from (device and inode), so the number of open
//! descriptors does not grow with depth.

use super::{CommandResult, Failure};
use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Refuse an output path that `extract` must not write to. Called before
/// the image is read; the checks that matter are repeated atomically when
/// OUT is created or opened.
pub fn check_output_path(out: &Path) -> CommandResult {
    if out.as_os_str().is_empty() {
        return Err(Failure::usage("extract: the output path is empty"));
    }
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Failure::io(format!("{}: {e}", out.display()))),
        Ok(meta) if meta.file_type().is_symlink() => Err(Failure::usage(format!(
            "{}: is a symbolic link; extract never follows one (name a path that does not exist)",
            out.display()
        ))),
        Ok(meta) if meta.is_dir() => {
            let mut listing = std::fs::read_dir(out).map_err(|e| Failure::io(format!("{}: {e}", out.display())))?;
            if listing.next().is_some() {
                return Err(Failure::usage(format!(
                    "{}: is a directory that is not empty; extract never writes over existing files",
                    out.display()
                )));
            }
            Ok(())
        }
        Ok(_) => Err(Failure::usage(format!("{}: already exists; extract never overwrites a file", out.display()))),
    }
}

/// Create the file OUT for a store's key file: it must not exist.
pub fn create_new_file(out: &Path) -> Result<File, Failure> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .mode(0o666)
        .open(out)
        .map_err(|e| open_failure(out.display().to_string(), e))
}

fn open_failure(what: String, e: std::io::Error) -> Failure {
    if e.kind() == std::io::ErrorKind::AlreadyExists {
        Failure::usage(format!("{what}: already exists; extract never overwrites"))
    } else if e.raw_os_error() == Some(libc::ELOOP) {
        Failure::usage(format!("{what}: is a symbolic link; extract never follows one"))
    } else {
        Failure::io(format!("{what}: {e}"))
    }
}

/// A directory being written, held by descriptor.
pub struct DirWriter {
    current: File,
    /// Device and inode of each directory above `current`, to check `..`.
    ancestors: Vec<(u64, u64)>,
    /// OUT as given, for messages.
    root: String,
}

impl DirWriter {
    /// Create OUT as a directory (or take it if it is an existing empty
    /// directory that is not a symbolic link).
    pub fn create_root(out: &Path) -> Result<DirWriter, Failure> {
        let shown = out.display().to_string();
        match std::fs::create_dir(out) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Failure::io(format!("{shown}: {e}"))),
        }
        let current = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(out)
            .map_err(|e| open_failure(shown.clone(), e))?;
        if std::fs::read_dir(out).map_err(|e| Failure::io(format!("{shown}: {e}")))?.next().is_some() {
            return Err(Failure::usage(format!("{shown}: is a directory that is not empty; extract never writes over existing files")));
        }
        Ok(DirWriter { current, ancestors: Vec::new(), root: shown })
    }

    fn shown(&self, shown_path: &str) -> String {
        format!("{}{shown_path}", self.root.trim_end_matches('/'))
    }

    /// Create the directory `name` in the current one and make it current.
    pub fn enter_new_dir(&mut self, name: &str, shown_path: &str) -> CommandResult {
        let c_name = one_name(name, shown_path)?;
        // SAFETY: `current` is an open directory descriptor and `c_name` a
        // NUL-terminated string, both alive for the call; mkdirat only reads them.
        let result = unsafe { libc::mkdirat(self.current.as_raw_fd(), c_name.as_ptr(), 0o777) };
        if result != 0 {
            return Err(open_failure(self.shown(shown_path), std::io::Error::last_os_error()));
        }
        let child = self.open_dir_at(&c_name).map_err(|e| open_failure(self.shown(shown_path), e))?;
        let meta = self.current.metadata().map_err(|e| Failure::io(format!("{}: {e}", self.root)))?;
        self.ancestors.push((meta.dev(), meta.ino()));
        self.current = child;
        Ok(())
    }

    /// Go back to the parent of the current directory.
    pub fn leave_dir(&mut self) -> CommandResult {
        let Some(expected) = self.ancestors.pop() else { return Ok(()) };
        let dotdot = CString::new("..").unwrap_or_default();
        let parent = self.open_dir_at(&dotdot).map_err(|e| Failure::io(format!("{}: {e}", self.root)))?;
        let meta = parent.metadata().map_err(|e| Failure::io(format!("{}: {e}", self.root)))?;
        if (meta.dev(), meta.ino()) != expected {
            return Err(Failure::io(format!("{}: the output tree was moved while extract was writing it", self.root)));
        }
        self.current = parent;
        Ok(())
    }

    /// Create the file `name` in the current directory; it must not exist.
    pub fn create_file(&mut self, name: &str, shown_path: &str) -> Result<File, Failure> {
        let c_name = one_name(name, shown_path)?;
        // SAFETY: as in `enter_new_dir`; openat returns a new descriptor
        // or -1 and reads nothing else.
        let fd = unsafe {
            libc::openat(
                self.current.as_raw_fd(),
                c_name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o666 as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(open_failure(self.shown(shown_path), std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn open_dir_at(&self, name: &CString) -> std::io::Result<File> {
        // SAFETY: as in `enter_new_dir`.
        let fd = unsafe {
            libc::openat(
                self.current.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by openat and is owned by nobody else.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }
}

/// A name from an image as one path component. The storage crate already
/// refuses `/`, NUL, `.` and `..` in names; this is the last line.
fn one_name(name: &str, shown_path: &str) -> Result<CString, Failure> {
    if name.is_empty() || name == "." || name == ".." || name.as_bytes().contains(&b'/') {
        return Err(Failure::corrupt(format!("{shown_path}: not a single path component")));
    }
    CString::new(Path::new(name).as_os_str().as_bytes())
        .map_err(|_| Failure::corrupt(format!("{shown_path}: name holds NUL")))
}

/// Write all of `data` to `file`, naming `shown` on failure.
pub fn write_all(file: &mut File, data: &[u8], shown: &str) -> CommandResult {
    file.write_all(data).map_err(|e| Failure::io(format!("{shown}: {e}")))
}
