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

/// Bumped whenever the index layout or anything stored in it changes
/// (including [`crate::normalize::NORMALIZED_FORMAT_VERSION`]).
const INDEX_FORMAT: u32 = 2 + 1000 * crate::normalize::NORMALIZED_FORMAT_VERSION;

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

#[derive(Default, Serialize, Deserialize)]
struct OnDisk {
    format: u32,
    entries: HashMap<PathBuf, Entry>,
}

pub struct Index {
    file: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, Entry>>,
    dirty: Mutex<bool>,
}

impl Index {
    /// Loads the index for `root_dir` from `cache_dir` (none: in memory only).
    pub fn load(cache_dir: Option<&Path>, root_dir: &Path) -> Self {
        let file = cache_dir.map(|dir| {
            let key = blake3::hash(root_dir.as_os_str().as_encoded_bytes());
            dir.join("index")
                .join(format!("{}.bin", &key.to_hex()[..32]))
        });
        let entries = file
            .as_deref()
            .and_then(|f| std::fs::read(f).ok())
            .and_then(|bytes| postcard::from_bytes::<OnDisk>(&bytes).ok())
            .filter(|disk| disk.format == INDEX_FORMAT)
            .map(|disk| disk.entries)
            .unwrap_or_default();
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

    /// Writes the index back if anything was added. Failure only costs speed
    /// next time, so it is logged, not returned.
    pub fn save(&self) {
        let Some(file) = &self.file else { return };
        if !self.dirty.lock().map(|d| *d).unwrap_or(false) {
            return;
        }
        let Ok(entries) = self.entries.lock() else {
            return;
        };
        let disk = OnDisk {
            format: INDEX_FORMAT,
            entries: entries.clone(),
        };
        match postcard::to_stdvec(&disk) {
            Ok(bytes) => {
                if let Err(err) = write_atomic(file, &bytes) {
                    tracing::warn!("could not save the parse index {}: {err}", file.display());
                }
            }
            Err(err) => tracing::warn!("could not encode the parse index: {err}"),
        }
    }
}
