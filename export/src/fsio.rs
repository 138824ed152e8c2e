//! Atomic file replacement.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// Writes `bytes` to `path` atomically: either `path` ends up holding exactly `bytes`, or it
/// is left as it was (absent, or the old file intact).
///
/// The bytes go to a temporary file `.<name>.<random>.tmp` in the same directory, are
/// flushed to disk (`fsync`), and the temporary file is then renamed over `path`. On any
/// error the temporary file is removed. A crash may leave a stray `.tmp` file beside `path`,
/// never a truncated `path`. On Unix the new file gets mode `0644`.
///
/// # Errors
/// [`Error::Io`] when the directory is missing or unwritable, the disk is full, or `path` is
/// a directory.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let path = path.as_ref();
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let prefix = match path.file_name() {
        Some(name) => format!(".{}.", name.to_string_lossy()),
        None => {
            return Err(Error::InvalidInput(format!(
                "cannot write to {}: the path does not name a file",
                path.display()
            )))
        }
    };
    if !dir.is_dir() {
        return Err(Error::Io {
            action: "write",
            path: path.to_path_buf(),
            err: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!(
                    "directory {} does not exist; create it first",
                    dir.display()
                ),
            ),
        });
    }
    let io = |action: &'static str, p: &Path| {
        let p = p.to_path_buf();
        move |err| Error::Io {
            action,
            path: p,
            err,
        }
    };

    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o644));
    }
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(io("create a temporary file in", dir))?;
    tmp.write_all(bytes).map_err(io("write", tmp.path()))?;
    tmp.as_file().sync_all().map_err(io("sync", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| io("replace", path)(e.error))?;
    // Make the rename itself durable. Best effort: some file systems refuse to sync a
    // directory, and the data is already safe either way.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("a.bin");
        write_atomic(&p, b"one").expect("first write");
        write_atomic(&p, b"second").expect("second write");
        assert_eq!(std::fs::read(&p).expect("read"), b"second");
        assert_eq!(entries(dir.path()), ["a.bin"]);
    }

    #[test]
    fn missing_directory_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("no/such/dir/a.bin");
        let err = write_atomic(&p, b"x").expect_err("must fail");
        assert!(matches!(err, Error::Io { .. }), "{err}");
        assert!(err.to_string().contains("no/such/dir"), "{err}");
        assert!(entries(dir.path()).is_empty());
    }

    #[test]
    fn failed_replace_keeps_old_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Renaming a file over a non-empty directory fails after the data was written.
        let target = dir.path().join("target");
        std::fs::create_dir(&target).expect("mkdir");
        std::fs::write(target.join("keep"), b"old").expect("write");
        let err = write_atomic(&target, b"new").expect_err("must fail");
        assert!(err.to_string().contains("replace"), "{err}");
        assert_eq!(entries(dir.path()), ["target"]);
        assert_eq!(std::fs::read(target.join("keep")).expect("read"), b"old");
    }

    #[cfg(unix)]
    #[test]
    fn a_write_that_fails_midway_keeps_old_file_and_leaves_no_temporary() {
        // The new bytes (64 KiB) run into a 4 KiB file-size limit while they are written: a
        // real I/O error after data reached the disk, for root too (file permissions do not
        // stop root; RLIMIT_FSIZE does). Writing `path` in place would leave it truncated.
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("model.onnx");
        std::fs::write(&p, b"old").expect("write");
        let out = test_support::run_with_file_limit(
            "fsio::tests::child_writes_past_the_file_limit",
            dir.path(),
        );
        assert!(out.status.success(), "{out:?}");
        assert_eq!(std::fs::read(&p).expect("read"), b"old");
        assert_eq!(entries(dir.path()), ["model.onnx"]);
    }

    #[cfg(unix)]
    #[test]
    #[ignore = "run by a_write_that_fails_midway_keeps_old_file_and_leaves_no_temporary"]
    fn child_writes_past_the_file_limit() {
        let dir = test_support::limited_child_dir();
        let err = write_atomic(dir.join("model.onnx"), &vec![7u8; 64 * 1024])
            .expect_err("the write must hit the file-size limit");
        assert!(err.to_string().contains("write"), "{err}");
    }
}

/// Failure injection for the atomic-write tests of this crate.
#[cfg(all(test, unix))]
pub(crate) mod test_support {
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output};

    /// The file-size limit of the child processes: 4 KiB.
    pub(crate) const LIMIT: u64 = 4096;
    const DIR_VAR: &str = "CARTRIDGE_TEST_LIMITED_DIR";

    /// Runs the ignored test `name` of this test binary alone in a child process that writes
    /// in `dir` under a file-size limit of [`LIMIT`] bytes (the child sets it itself through
    /// [`limited_child_dir`]).
    pub(crate) fn run_with_file_limit(name: &str, dir: &Path) -> Output {
        let exe = std::env::current_exe().expect("test binary");
        Command::new(exe)
            .args([name, "--exact", "--ignored", "--test-threads=1"])
            .env(DIR_VAR, dir)
            .output()
            .expect("run the child test")
    }

    /// In the child: caps this process's file size at [`LIMIT`] bytes (writes past it fail
    /// with EFBIG instead of raising SIGXFSZ) and returns the directory to write in.
    pub(crate) fn limited_child_dir() -> PathBuf {
        let dir = PathBuf::from(std::env::var_os(DIR_VAR).expect("run by the parent test"));
        let limit = libc::rlimit {
            rlim_cur: LIMIT,
            rlim_max: LIMIT,
        };
        // SAFETY: plain system calls on this process with valid arguments.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            assert_eq!(libc::setrlimit(libc::RLIMIT_FSIZE, &limit), 0, "setrlimit");
        }
        dir
    }
}
