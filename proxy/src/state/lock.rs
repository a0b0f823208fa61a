//! One owner per state directory: an exclusive lock on `<dir>/indextap.lock`.
//!
//! Two proxies on one directory would overwrite each other's state file, each losing what
//! the other learned. So the proxy takes the lock before anything else and holds it for its
//! whole life; a second proxy finds it taken and stops with an error that names the lock
//! file and the holder's process id. The lock is the operating system's (`flock` through
//! `File::try_lock`), so it is released however the holder ends, `kill -9` included: the
//! file left behind is not a stale lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the state directory.
pub const LOCK_FILE_NAME: &str = "indextap.lock";

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    // Held open: closing the file would release the lock.
    _file: File,
    path: PathBuf,
}

/// Why the state directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "the state directory {} is in use by another indextap{}: its lock file {} is held; \
         give each proxy its own state.dir",
        dir.display(),
        holder.as_ref().map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        path.display()
    )]
    Held {
        /// The state directory.
        dir: PathBuf,
        /// The lock file.
        path: PathBuf,
        /// The holder's process id, as it wrote it in the file.
        holder: Option<String>,
    },
    /// The directory or the lock file could not be created or locked.
    #[error("cannot lock the state directory: {action} {}: {source}", path.display())]
    Io {
        /// The step that failed.
        action: &'static str,
        /// The path it failed on.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl StateLock {
    /// Creates `dir` if needed and takes its lock, without waiting.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io_error = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| LockError::Io {
                action,
                path,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io_error("creating", dir))?;
        let path = dir.join(LOCK_FILE_NAME);
        // Not truncated on open: the holder's pid must survive a failed attempt to read it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error("opening", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = Some(holder.trim().to_owned()).filter(|pid| !pid.is_empty());
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    path,
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => {
                return Err(LockError::Io {
                    action: "locking",
                    path,
                    source,
                })
            }
        }
        // Who holds it, for the next one's error message.
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        written.map_err(io_error("writing", &path))?;
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let first = StateLock::acquire(&state).unwrap();
        assert_eq!(first.path(), state.join(LOCK_FILE_NAME));
        assert_eq!(
            std::fs::read_to_string(first.path()).unwrap().trim(),
            std::process::id().to_string()
        );

        let err = StateLock::acquire(&state).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{message}");
        assert!(message.contains(LOCK_FILE_NAME), "{message}");
        assert!(
            message.contains(&format!("pid {}", std::process::id())),
            "{message}"
        );

        drop(first);
        let again = StateLock::acquire(&state).unwrap();
        assert!(again.path().exists());
    }

    #[test]
    fn a_path_that_cannot_be_a_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("plain-file");
        std::fs::write(&file, "x").unwrap();
        let err = StateLock::acquire(&file).unwrap_err();
        assert!(
            matches!(
                err,
                LockError::Io {
                    action: "creating",
                    ..
                }
            ),
            "{err}"
        );
    }
}
