//! The fuzz targets' seed corpora (`fuzz/seeds/<target>/`), made from the tests' fixtures.
//!
//! A test hands [`exercise`] its fixtures as seeds and the entry point of their target: every
//! fixture and every committed seed file runs through it, as the fuzzer would start. With
//! `INDEXTAP_WRITE_SEEDS=1` the fixtures are (re)written into the seed folder first, which is
//! how the committed seeds were made.

use std::path::PathBuf;

/// The environment variable that makes [`exercise`] write the fixtures as seed files.
pub const WRITE_SEEDS: &str = "INDEXTAP_WRITE_SEEDS";

/// `fuzz/seeds/<target>` in the workspace.
pub fn seed_dir(target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target)
}

/// Runs `entry` over every fixture and every committed seed of `target`; panics if the
/// target has no committed seeds. Returns how many seed files ran.
pub fn exercise(target: &str, fixtures: &[Vec<u8>], entry: fn(&[u8])) -> usize {
    let dir = seed_dir(target);
    if std::env::var_os(WRITE_SEEDS).is_some() {
        std::fs::create_dir_all(&dir).expect("create the seed folder");
        for bytes in fixtures {
            std::fs::write(dir.join(file_name(bytes)), bytes).expect("write a seed");
        }
    }
    for bytes in fixtures {
        entry(bytes);
    }
    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err} (write them with {WRITE_SEEDS}=1)", dir.display()))
        .map(|entry| entry.expect("a seed folder entry").path())
        .collect();
    assert!(!files.is_empty(), "{} holds no seeds", dir.display());
    for file in &files {
        entry(&std::fs::read(file).expect("read a seed"));
    }
    files.len()
}

/// A seed's file name: the hash of its bytes, as libFuzzer names what it finds.
fn file_name(bytes: &[u8]) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bytes))
}
