//! The state file: the aggregate survives restarts.
//!
//! `indextap-state.json` in the configured directory holds a [`Snapshot`]. Saving is atomic:
//! the snapshot is written to `indextap-state.json.tmp`, flushed to disk, renamed over the
//! old file, and the directory is flushed so the rename itself survives a power cut. A crash
//! at any point leaves either the old file or the new one, never half of one; a `.tmp` left
//! behind is ignored and overwritten by the next save.
//!
//! Loading never refuses to start the proxy over a bad file: a file that cannot be read,
//! does not parse, or has another format version is renamed to
//! `indextap-state.json.corrupt-<unix-seconds>` (kept for inspection, never overwritten) and
//! the proxy starts fresh. [`LoadOutcome`] says which of the three happened, so the caller
//! can log it.
//!
//! The functions block (std::fs); from async code, call them through
//! `tokio::task::spawn_blocking`.
//!
//! ## Layout
//! - this file: [`StateFile`], saving and loading.
//! - [`lock`]: [`lock::StateLock`], one owner per state directory.
//! - [`keeper`]: [`keeper::Keeper`], restore at start, then the state file and the snapshot
//!   sink at every interval and at shutdown.

pub mod keeper;
pub mod lock;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use indextap_analyzer::snapshot::Snapshot;

/// The state file's name inside the state directory.
pub const STATE_FILE_NAME: &str = "indextap-state.json";

/// What a save writes before renaming it into place.
const TMP_SUFFIX: &str = ".tmp";

/// Prefix of the name a bad state file is moved to.
const CORRUPT_SUFFIX: &str = ".corrupt-";

/// The state file of one state directory.
#[derive(Debug)]
pub struct StateFile {
    dir: PathBuf,
    /// Two overlapping saves (the periodic one and the one at shutdown) would share the
    /// `.tmp` file; this makes them take turns.
    saving: Mutex<()>,
}

/// What [`StateFile::load`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadOutcome {
    /// No state file: a first start.
    Fresh,
    /// The saved aggregate.
    Restored(Snapshot),
    /// The file was unusable and was moved aside; start fresh.
    MovedAside {
        /// Where the bad file now is.
        path: PathBuf,
        /// A fixed label: `unreadable`, `invalid_utf8`, `invalid_json`, `missing_version`
        /// or `wrong_version`.
        reason: &'static str,
        /// The error, for the log line (it quotes the file, which holds no traffic value).
        detail: String,
    },
}

impl LoadOutcome {
    /// The restored snapshot, if any.
    pub fn into_snapshot(self) -> Option<Snapshot> {
        match self {
            LoadOutcome::Restored(snapshot) => Some(snapshot),
            LoadOutcome::Fresh | LoadOutcome::MovedAside { .. } => None,
        }
    }
}

/// A state file operation that failed; `action` says which step.
#[derive(Debug, thiserror::Error)]
#[error("state file: {action} {}: {source}", path.display())]
pub struct StateError {
    /// What was being done: `creating directory`, `writing`, `syncing`, `renaming`,
    /// `moving aside`, ...
    pub action: &'static str,
    /// The path it was done to.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl StateError {
    fn new<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
        move |source| StateError {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl StateFile {
    /// The state file in `dir` (created on the first save if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            saving: Mutex::new(()),
        }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `<dir>/indextap-state.json`.
    pub fn path(&self) -> PathBuf {
        self.dir.join(STATE_FILE_NAME)
    }

    fn tmp_path(&self) -> PathBuf {
        self.dir.join(format!("{STATE_FILE_NAME}{TMP_SUFFIX}"))
    }

    /// Reads the saved snapshot. A missing file is [`LoadOutcome::Fresh`]; a bad one is moved
    /// aside ([`LoadOutcome::MovedAside`]). Errors only when a bad file cannot be moved.
    pub fn load(&self) -> Result<LoadOutcome, StateError> {
        let path = self.path();
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(LoadOutcome::Fresh),
            Err(e) => return self.move_aside("unreadable", e.to_string()),
        };
        let text = match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(e) => return self.move_aside("invalid_utf8", e.to_string()),
        };
        match Snapshot::from_json(&text) {
            Ok(snapshot) => Ok(LoadOutcome::Restored(snapshot)),
            Err(e) => self.move_aside(e.reason(), e.to_string()),
        }
    }

    /// Replaces the state file with `snapshot`, atomically.
    pub fn save(&self, snapshot: &Snapshot) -> Result<(), StateError> {
        self.save_with(|writer| snapshot.write_json(writer))
    }

    /// Replaces the state file with what `write` writes (a snapshot's JSON), atomically: the
    /// live aggregate streams itself without a copy of it in memory.
    pub fn save_with(
        &self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), StateError> {
        // A poisoned lock only means an earlier save panicked; the next one starts over.
        let _turn = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        fs::create_dir_all(&self.dir).map_err(StateError::new("creating directory", &self.dir))?;

        let tmp = self.tmp_path();
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(StateError::new("creating", &tmp))?;
        // Streamed: a snapshot of thousands of shapes never exists as one string.
        let mut writer = io::BufWriter::new(file);
        write(&mut writer)
            .and_then(|()| writer.flush())
            .map_err(StateError::new("writing", &tmp))?;
        let file = writer
            .into_inner()
            .map_err(|e| StateError::new("writing", &tmp)(e.into_error()))?;
        file.sync_all().map_err(StateError::new("syncing", &tmp))?;
        drop(file);

        let path = self.path();
        fs::rename(&tmp, &path).map_err(StateError::new("renaming", &tmp))?;
        sync_dir(&self.dir)
    }

    /// Moves the state file to an unused `.corrupt-<unix-seconds>` name.
    fn move_aside(&self, reason: &'static str, detail: String) -> Result<LoadOutcome, StateError> {
        let path = self.path();
        let seconds = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let base = format!("{STATE_FILE_NAME}{CORRUPT_SUFFIX}{seconds}");
        // Never overwrite an earlier bad file: it may be the one worth investigating.
        let aside = (0u32..)
            .map(|n| match n {
                0 => self.dir.join(&base),
                n => self.dir.join(format!("{base}-{n}")),
            })
            .find(|candidate| !candidate.exists())
            .unwrap_or_else(|| self.dir.join(&base));
        fs::rename(&path, &aside).map_err(StateError::new("moving aside", &path))?;
        sync_dir(&self.dir)?;
        Ok(LoadOutcome::MovedAside {
            path: aside,
            reason,
            detail,
        })
    }
}

/// Flushes a directory's entries, so a rename inside it is durable.
fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(StateError::new("syncing directory", dir))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use indextap_analyzer::shape::{Namespace, Shape};
    use indextap_analyzer::snapshot::{
        LatencySketch, OtherRecord, ShapeRecord, WriteRecord, FORMAT_VERSION,
    };

    use super::*;

    fn sample() -> Snapshot {
        let shape = Shape::new(Namespace::mongo("app", "orders"), "find");
        let record = ShapeRecord {
            shape: shape.clone().into(),
            count: 12,
            errors: 1,
            error_codes: BTreeMap::from([("11000".to_owned(), 1)]),
            total_micros: 3_400,
            returned: 40,
            continuations: 2,
            first_seen_ms: 1_700_000_000_000,
            last_seen_ms: 1_700_000_100_000,
            constants: Vec::new(),
            normalized_sql: None,
            latency: LatencySketch::from_buckets([(100, 10), (1_023, 2)]),
        };
        Snapshot {
            shapes: BTreeMap::from([(shape.id(), record)]),
            writes: vec![WriteRecord {
                namespace: Namespace::mongo("app", "orders"),
                inserts: 5,
                updates: 1,
                deletes: 0,
                insert_micros: 700,
            }],
            other: OtherRecord {
                count: 3,
                total_micros: 90,
                evicted_shapes: 1,
            },
            ..Snapshot::new()
        }
    }

    fn files_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn missing_file_is_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path().join("not-yet-created"));
        assert_eq!(state.load().unwrap(), LoadOutcome::Fresh);
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        // The directory is created on the first save.
        let state = StateFile::new(dir.path().join("state"));
        let snapshot = sample();
        state.save(&snapshot).unwrap();
        assert_eq!(
            state.load().unwrap(),
            LoadOutcome::Restored(snapshot.clone())
        );
        assert_eq!(files_in(state.dir()), vec![STATE_FILE_NAME.to_owned()]);

        // A second save replaces the first.
        let mut newer = snapshot;
        newer.other.count = 99;
        state.save(&newer).unwrap();
        assert_eq!(state.load().unwrap().into_snapshot(), Some(newer));
        assert_eq!(files_in(state.dir()), vec![STATE_FILE_NAME.to_owned()]);
    }

    #[test]
    fn corrupt_file_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        fs::write(state.path(), b"{\"version\": 1, \"shapes\": {tru").unwrap();

        let LoadOutcome::MovedAside {
            path,
            reason,
            detail,
        } = state.load().unwrap()
        else {
            panic!("a corrupt file must be moved aside");
        };
        assert_eq!(reason, "invalid_json");
        assert!(!detail.is_empty());
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let seconds = name
            .strip_prefix("indextap-state.json.corrupt-")
            .expect("named .corrupt-<seconds>");
        assert!(seconds.parse::<u64>().unwrap() > 1_600_000_000, "{name}");
        assert_eq!(
            fs::read(&path).unwrap(),
            b"{\"version\": 1, \"shapes\": {tru"
        );
        assert!(!state.path().exists());

        // The next start is fresh, and a save works.
        assert_eq!(state.load().unwrap(), LoadOutcome::Fresh);
        state.save(&sample()).unwrap();
        assert_eq!(state.load().unwrap(), LoadOutcome::Restored(sample()));
    }

    #[test]
    fn a_version_1_file_is_converted_not_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        // Version 1 kept latency as HDR histogram (value µs, count) pairs.
        let mut value: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        value["version"] = serde_json::json!(1);
        let id = sample().shapes.keys().next().unwrap().to_string();
        value["shapes"][&id]["latency"] = serde_json::json!([[100, 10], [1_023, 2]]);
        fs::write(state.path(), value.to_string()).unwrap();

        let LoadOutcome::Restored(restored) = state.load().unwrap() else {
            panic!("a version 1 file must load");
        };
        assert_eq!(restored.version, FORMAT_VERSION);
        let record = restored.shapes.values().next().unwrap();
        assert_eq!(record.latency.count(), 12);
        assert!((record.latency.quantile(0.5) - 100.0).abs() <= 1.0);
        assert_eq!(files_in(state.dir()), vec![STATE_FILE_NAME.to_owned()]);
    }

    #[test]
    fn wrong_version_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        let mut value: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        value["version"] = serde_json::json!(FORMAT_VERSION + 1);
        fs::write(state.path(), value.to_string()).unwrap();

        let outcome = state.load().unwrap();
        let LoadOutcome::MovedAside {
            path,
            reason,
            detail,
        } = &outcome
        else {
            panic!("expected MovedAside, got {outcome:?}");
        };
        assert_eq!(*reason, "wrong_version");
        assert!(detail.contains("version"), "{detail}");
        assert!(path.exists());
        assert!(!state.path().exists());
    }

    #[test]
    fn unreadable_and_non_utf8_files_are_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        fs::write(state.path(), [0xff, 0xfe, 0x00]).unwrap();
        let not_utf8 = state.load().unwrap();
        // A directory where the file should be cannot be read.
        fs::create_dir(state.path()).unwrap();
        let unreadable = state.load().unwrap();
        for (outcome, expected) in [(not_utf8, "invalid_utf8"), (unreadable, "unreadable")] {
            assert!(
                matches!(outcome, LoadOutcome::MovedAside { reason, .. } if reason == expected),
                "{outcome:?}"
            );
        }
    }

    #[test]
    fn earlier_bad_files_are_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        fs::write(state.path(), "first").unwrap();
        let first = state.load().unwrap();
        fs::write(state.path(), "second").unwrap();
        let second = state.load().unwrap();
        let (
            LoadOutcome::MovedAside { path: first, .. },
            LoadOutcome::MovedAside { path: second, .. },
        ) = (first, second)
        else {
            panic!("both must be moved aside");
        };
        assert_ne!(first, second);
        assert_eq!(fs::read_to_string(first).unwrap(), "first");
        assert_eq!(fs::read_to_string(second).unwrap(), "second");
    }

    #[test]
    fn tmp_left_by_a_crash_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateFile::new(dir.path());
        // A crash mid-save, before any state file existed.
        fs::write(state.tmp_path(), "{\"version\": 1, \"sha").unwrap();
        assert_eq!(state.load().unwrap(), LoadOutcome::Fresh);

        // A crash mid-save, with a good state file in place.
        state.save(&sample()).unwrap();
        fs::write(state.tmp_path(), "garbage").unwrap();
        assert_eq!(state.load().unwrap(), LoadOutcome::Restored(sample()));
        // The leftover is not evidence of corruption: nothing was moved aside.
        assert!(files_in(state.dir())
            .iter()
            .all(|name| !name.contains("corrupt")));

        // The next save overwrites it and renames it into place.
        let mut newer = sample();
        newer.other.count = 7;
        state.save(&newer).unwrap();
        assert_eq!(state.load().unwrap(), LoadOutcome::Restored(newer));
        assert_eq!(files_in(state.dir()), vec![STATE_FILE_NAME.to_owned()]);
    }
}
