//! The persistent parse index: path -> (stat stamp, parse result). A second
//! analysis of an unchanged tree stats files and parses nothing.
//!
//! One index file per project root keeps loads small. It is written with a
//! temp file + rename, so concurrent runs at worst lose each other's
//! additions, never corrupt the file; an unreadable or older-format index is
//! ignored and rebuilt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::fsutil::{write_atomic, StatStamp};
use crate::parse::ParsedFile;
use crate::symbols::TopStatement;

/// Bumped whenever the index layout or anything stored in it changes
/// (including [`crate::normalize::NORMALIZED_FORMAT_VERSION`]).
const INDEX_FORMAT: u32 = 12 + 1000 * crate::normalize::NORMALIZED_FORMAT_VERSION;

/// The file of one index kind (`suffix`) for a project root.
fn index_file(cache_dir: Option<&Path>, root_dir: &Path, suffix: &str) -> Option<PathBuf> {
    cache_dir.map(|dir| {
        let key = blake3::hash(root_dir.as_os_str().as_encoded_bytes());
        dir.join("index")
            .join(format!("{}{suffix}", &key.to_hex()[..32]))
    })
}

/// Reads an index file written by [`save_file`]; anything unreadable, or
/// of another format, is an empty index.
fn load_file<T: serde::de::DeserializeOwned>(file: Option<&Path>) -> Option<T> {
    let bytes = std::fs::read(file?).ok()?;
    let (format, value): (u32, T) = postcard::from_bytes(&bytes).ok()?;
    (format == INDEX_FORMAT).then_some(value)
}

/// Writes an index file atomically. Failure only costs speed next time, so
/// it is logged, not returned.
fn save_file<T: Serialize>(file: &Path, value: &T, what: &str) {
    match postcard::to_stdvec(&(INDEX_FORMAT, value)) {
        Ok(bytes) => {
            if let Err(err) = write_atomic(file, &bytes) {
                tracing::warn!("could not save the {what} {}: {err}", file.display());
            }
        }
        Err(err) => tracing::warn!("could not encode the {what}: {err}"),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Cached {
    Parsed(ParsedFile),
    /// Byte hash of a file that is not parsed (extension module, bytecode).
    Bytes([u8; 32]),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    stamp: StatStamp,
    value: Cached,
}

pub struct Index {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    dirty: Mutex<bool>,
}

impl Index {
    /// Loads the index for `root_dir` from `cache_dir` (none: in memory only).
    pub fn load(cache_dir: Option<&Path>, root_dir: &Path) -> Self {
        let file = index_file(cache_dir, root_dir, ".bin");
        let entries = load_file(file.as_deref()).unwrap_or_default();
        Self {
            file,
            entries: Mutex::new(entries),
            dirty: Mutex::new(false),
        }
    }

    pub fn get(&self, path: &Path, stamp: &StatStamp) -> Option<Cached> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(path)?;
        (entry.stamp == *stamp).then(|| entry.value.clone())
    }

    pub fn put(&self, path: &Path, stamp: StatStamp, value: Cached) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(path.to_path_buf(), Entry { stamp, value });
        }
        if let Ok(mut dirty) = self.dirty.lock() {
            *dirty = true;
        }
    }

    /// Writes the index back if anything was added.
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if !self.dirty.lock().map(|d| *d).unwrap_or(false) {
            return;
        }
        if let Ok(entries) = self.entries.lock() {
            save_file(file, &*entries, "parse index");
        }
    }
}

/// Per-file top-level statements for function-level analysis, in a file of
/// their own: loaded only when a function is analyzed, so plain module-level
/// analyses keep a small, fast index.
pub struct SymbolIndex {
    file: Option<PathBuf>,
    entries: HashMap<PathBuf, (StatStamp, Vec<TopStatement>)>,
    dirty: bool,
}

impl SymbolIndex {
    pub fn load(cache_dir: Option<&Path>, root_dir: &Path) -> Self {
        let file = index_file(cache_dir, root_dir, ".symbols.bin");
        let entries = load_file(file.as_deref()).unwrap_or_default();
        Self {
            file,
            entries,
            dirty: false,
        }
    }

    /// The statements of `path`, from the index when its stamp matches,
    /// else by parsing it again.
    pub fn statements(&mut self, path: &Path) -> Option<Vec<TopStatement>> {
        let stamp = StatStamp::of(&std::fs::metadata(path).ok()?);
        if let Some((s, statements)) = self.entries.get(path) {
            if *s == stamp {
                return Some(statements.clone());
            }
        }
        let parsed = crate::parse::parse_file(path).ok()?;
        self.put(path, stamp, parsed.statements.clone());
        Some(parsed.statements)
    }

    pub fn put(&mut self, path: &Path, stamp: StatStamp, statements: Vec<TopStatement>) {
        self.entries.insert(path.to_path_buf(), (stamp, statements));
        self.dirty = true;
    }

    pub fn save(&self) {
        if let (Some(file), true) = (&self.file, self.dirty) {
            save_file(file, &self.entries, "symbol index");
        }
    }
}

/// What a cached reach result depends on: every module of the walk with
/// its kind, identity and (for project files) stat stamp.
pub type ReachValidity = Vec<(
    String,
    String,
    Option<String>,
    Option<String>,
    Option<StatStamp>,
)>;

/// Function-level results per function, reused while the import graph and
/// every project file are unchanged: a warm `casher deps --function` then
/// costs what a module-level one does.
pub struct ReachCache {
    file: Option<PathBuf>,
    entries: HashMap<String, (ReachValidity, crate::reach::Reach)>,
}

impl ReachCache {
    pub fn load(cache_dir: Option<&Path>, root_dir: &Path) -> Self {
        let file = index_file(cache_dir, root_dir, ".reach.bin");
        let entries = load_file(file.as_deref()).unwrap_or_default();
        Self { file, entries }
    }

    pub fn get(&self, key: &str, validity: &ReachValidity) -> Option<crate::reach::Reach> {
        let (v, reach) = self.entries.get(key)?;
        (v == validity).then(|| reach.clone())
    }

    pub fn put(&mut self, key: String, validity: ReachValidity, reach: crate::reach::Reach) {
        self.entries.insert(key, (validity, reach));
        if let Some(file) = &self.file {
            save_file(file, &self.entries, "reach cache");
        }
    }
}
