//! Content hashes of files by (path, stat stamp), kept across runs, so a
//! miss does not re-hash the compiler, the interpreter and every library
//! each time: a file whose size, mtime, ctime and inode are unchanged keeps
//! its hash (the same rule the lookup fast path uses).
//!
//! One file, replaced atomically; concurrent writers may drop each other's
//! additions, which only costs a re-hash later. Bounded in entries.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::fsutil::{hash_file, write_atomic, Durability, Stamp};
use crate::id::ObjectId;
use crate::lookup::stamp_trusted;
use crate::record::StoredPath;

const FORMAT: u32 = 2;
const MAX_ENTRIES: usize = 200_000;

#[derive(Serialize, Deserialize, Default)]
struct OnDisk {
    format: u32,
    entries: Vec<(StoredPath, Stamp, ObjectId)>,
}

pub struct HashCache {
    file: PathBuf,
    /// Read from the file at the first `hash`: most records of a fork
    /// server's calls hash nothing, and decoding thousands of entries for
    /// nothing cost each of them milliseconds.
    entries: Mutex<Option<HashMap<StoredPath, (Stamp, ObjectId)>>>,
    added: Mutex<bool>,
}

impl HashCache {
    pub fn load(store_root: &Path) -> Self {
        Self {
            file: store_root.join("hashes.bin"),
            entries: Mutex::new(None),
            added: Mutex::new(false),
        }
    }

    fn read(file: &Path) -> HashMap<StoredPath, (Stamp, ObjectId)> {
        std::fs::read(file)
            .ok()
            .and_then(|b| postcard::from_bytes::<OnDisk>(&b).ok())
            .filter(|d| d.format == FORMAT)
            .map(|d| d.entries.into_iter().map(|(p, s, h)| (p, (s, h))).collect())
            .unwrap_or_default()
    }

    /// The content hash of `path`, whose current metadata is `meta`.
    pub fn hash(&self, path: &Path, meta: &std::fs::Metadata) -> std::io::Result<ObjectId> {
        let key = StoredPath::new(path);
        let stamp = Stamp::of(meta);
        let known = self.entries.lock().ok().and_then(|mut e| {
            e.get_or_insert_with(|| Self::read(&self.file))
                .get(&key)
                .copied()
        });
        if let Some((s, h)) = known {
            if s == stamp {
                return Ok(h);
            }
        }
        let hashed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let (hash, _) = hash_file(path)?;
        let id = ObjectId::from(hash);
        // A file changed during hashing would have a new ctime: only a
        // stamp observed both before and after is remembered, and only one
        // old enough that a same-tick write cannot hide behind it.
        if stamp_trusted(&stamp, hashed_at)
            && std::fs::metadata(path).is_ok_and(|m| Stamp::of(&m) == stamp)
        {
            if let Ok(mut entries) = self.entries.lock() {
                if let Some(entries) = entries.as_mut() {
                    entries.insert(key, (stamp, id));
                }
            }
            if let Ok(mut added) = self.added.lock() {
                *added = true;
            }
        }
        Ok(id)
    }

    pub fn save(&self) {
        if !self.added.lock().map(|a| *a).unwrap_or(false) {
            return;
        }
        let Ok(entries) = self.entries.lock() else {
            return;
        };
        let Some(entries) = entries.as_ref() else {
            return;
        };
        let mut list: Vec<_> = entries
            .iter()
            .map(|(p, (s, h))| (p.clone(), *s, *h))
            .collect();
        if list.len() > MAX_ENTRIES {
            // Keep the most recently modified files: the likeliest to recur.
            list.sort_by_key(|(_, s, _)| std::cmp::Reverse(s.mtime_ns));
            list.truncate(MAX_ENTRIES);
        }
        let disk = OnDisk {
            format: FORMAT,
            entries: list,
        };
        if let Ok(bytes) = postcard::to_stdvec(&disk) {
            if let Err(err) = write_atomic(&self.file, &bytes, Durability::Synced) {
                tracing::debug!("could not save the hash cache: {err}");
            }
        }
    }
}
