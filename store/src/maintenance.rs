//! Looking after the store: stats, listing, garbage collection, verification.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::StoredVariant;
use crate::error::{Result, StoreError};
use crate::id::ObjectId;
use crate::local::mtime_ns;
use crate::record::Variant;
use crate::store::Store;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub entries: u64,
    pub variants: u64,
    pub objects: u64,
    pub bytes: u64,
    pub hits: u64,
    pub misses: u64,
    /// Records ignored because they did not authenticate.
    pub rejected: u64,
}

/// One row of `casher cache ls`.
#[derive(Debug, Clone)]
pub struct EntrySummary {
    pub key: String,
    pub description: String,
    pub variants: usize,
    pub bytes: u64,
    pub last_used_ns: u64,
}

#[derive(Debug, Clone)]
pub struct GcOptions {
    pub max_size: u64,
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    pub variants_removed: u64,
    pub objects_removed: u64,
    pub bytes_freed: u64,
    pub temp_removed: u64,
}

/// A problem `verify` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    CorruptObject(PathBuf),
    BadRecord { path: PathBuf, reason: String },
    MissingObject { record: PathBuf, object: ObjectId },
    Orphan(PathBuf),
    StrayTemp(PathBuf),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::CorruptObject(p) => write!(f, "corrupt object: {}", p.display()),
            Problem::BadRecord { path, reason } => {
                write!(f, "bad record: {}: {reason}", path.display())
            }
            Problem::MissingObject { record, object } => {
                write!(
                    f,
                    "record {} refers to missing object {object}",
                    record.display()
                )
            }
            Problem::Orphan(p) => write!(f, "orphaned object: {}", p.display()),
            Problem::StrayTemp(p) => write!(f, "leftover temp file: {}", p.display()),
        }
    }
}

pub(crate) fn list_dir(path: &std::path::Path) -> Vec<std::fs::DirEntry> {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .collect()
}

impl Store {
    /// All keys present, from the directory layout.
    pub fn keys(&self) -> Vec<String> {
        let mut keys = Vec::new();
        for shard in list_dir(&self.backend.entries_dir()) {
            for key in list_dir(&shard.path()) {
                if let Ok(name) = key.file_name().into_string() {
                    keys.push(name);
                }
            }
        }
        keys.sort();
        keys
    }

    /// Every object file with its size.
    pub(crate) fn objects(&self) -> Vec<(PathBuf, Option<ObjectId>, u64, std::fs::Metadata)> {
        let mut out = Vec::new();
        for shard in list_dir(&self.backend.objects_dir()) {
            for obj in list_dir(&shard.path()) {
                let Ok(meta) = obj.metadata() else { continue };
                let id = obj.file_name().to_str().and_then(ObjectId::from_hex);
                out.push((obj.path(), id, meta.len(), meta));
            }
        }
        out
    }

    pub(crate) fn all_variants(&self) -> Vec<StoredVariant> {
        self.keys()
            .iter()
            .flat_map(|k| self.backend.variants_uncounted(k))
            .collect()
    }

    pub fn stats(&self) -> Stats {
        let variants = self.all_variants();
        let keys: HashSet<&str> = variants.iter().map(|v| v.variant.key.as_str()).collect();
        let objects = self.objects();
        Stats {
            entries: keys.len() as u64,
            variants: variants.len() as u64,
            objects: objects.len() as u64,
            bytes: objects.iter().map(|o| o.2).sum::<u64>()
                + variants.iter().map(|v| v.record_bytes).sum::<u64>(),
            hits: self.counters.hits(),
            misses: self.counters.misses(),
            rejected: self.counters.rejected_count(),
        }
    }

    pub fn list(&self) -> Vec<EntrySummary> {
        let sizes: HashMap<ObjectId, u64> = self
            .objects()
            .into_iter()
            .filter_map(|o| Some((o.1?, o.2)))
            .collect();
        let mut rows = Vec::new();
        for key in self.keys() {
            let variants = self.backend.variants_uncounted(&key);
            let Some(newest) = variants.first() else {
                continue;
            };
            let objects: HashSet<ObjectId> =
                variants.iter().flat_map(|v| v.variant.objects()).collect();
            rows.push(EntrySummary {
                key: key.clone(),
                description: newest.variant.description.clone(),
                variants: variants.len(),
                bytes: objects.iter().filter_map(|id| sizes.get(id)).sum::<u64>()
                    + variants.iter().map(|v| v.record_bytes).sum::<u64>(),
                last_used_ns: variants.iter().map(|v| v.last_used_ns).max().unwrap_or(0),
            });
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.last_used_ns));
        rows
    }

    /// The variants of the one key starting with `prefix`.
    pub fn show(&self, prefix: &str) -> Result<(String, Vec<StoredVariant>)> {
        let matches: Vec<(String, Vec<StoredVariant>)> = self
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| {
                let variants = self.backend.variants_uncounted(&k);
                (k, variants)
            })
            // A key whose records are all gone (or unusable) is no entry.
            .filter(|(_, variants)| !variants.is_empty())
            .collect();
        match matches.as_slice() {
            [(key, variants)] => Ok((key.clone(), variants.clone())),
            [] => Err(StoreError::KeyPrefix {
                message: format!(
                    "no entry key starts with {prefix:?}\nhint: `casher cache ls` lists the keys"
                ),
            }),
            many => Err(StoreError::KeyPrefix {
                message: format!(
                    "{} entry keys start with {prefix:?}; give more characters",
                    many.len()
                ),
            }),
        }
    }

    /// Re-hashes every object and checks every record and reference.
    /// With `repair`, removes what is broken.
    pub fn verify(&self, repair: bool) -> Vec<Problem> {
        let mut problems = Vec::new();
        let mut good: HashSet<ObjectId> = HashSet::new();
        let mut all: Vec<(PathBuf, Option<ObjectId>, std::fs::Metadata)> = Vec::new();
        for (path, id, _, meta) in self.objects() {
            let ok = id.is_some_and(|id| {
                crate::fsutil::hash_file(&path).is_ok_and(|(h, _)| ObjectId::from(h) == id)
            });
            if ok {
                good.extend(id);
                all.push((path, id, meta));
            } else {
                if repair {
                    let _ = std::fs::remove_file(&path);
                }
                problems.push(Problem::CorruptObject(path));
            }
        }
        let mut referenced: HashSet<ObjectId> = HashSet::new();
        for key in self.keys() {
            let dir = self.backend.key_dir(&key);
            for entry in list_dir(&dir) {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if !name.ends_with(".var") {
                    if name.starts_with(crate::fsutil::TEMP_PREFIX)
                        && entry.metadata().is_ok_and(|m| self.older_than_grace(&m))
                    {
                        if repair {
                            let _ = std::fs::remove_file(&path);
                        }
                        problems.push(Problem::StrayTemp(path));
                    }
                    continue;
                }
                let decoded = std::fs::read(&path)
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        Variant::decode(&b, self.backend.keys()).map_err(|r| r.to_string())
                    })
                    .and_then(|v| {
                        if v.key == key {
                            Ok(v)
                        } else {
                            Err("filed under the wrong key".to_owned())
                        }
                    });
                match decoded {
                    Ok(variant) => {
                        let missing: Vec<ObjectId> = variant
                            .objects()
                            .into_iter()
                            .filter(|id| !good.contains(id))
                            .collect();
                        referenced.extend(variant.objects());
                        if !missing.is_empty() && repair {
                            let _ = std::fs::remove_file(&path);
                        }
                        for object in missing {
                            problems.push(Problem::MissingObject {
                                record: path.clone(),
                                object,
                            });
                        }
                    }
                    Err(reason) => {
                        if repair {
                            let _ = std::fs::remove_file(&path);
                        }
                        problems.push(Problem::BadRecord { path, reason });
                    }
                }
            }
        }
        for (path, id, meta) in all {
            if id.is_some_and(|id| !referenced.contains(&id)) && self.older_than_grace(&meta) {
                if repair {
                    let _ = std::fs::remove_file(&path);
                }
                problems.push(Problem::Orphan(path));
            }
        }
        for tmp in list_dir(&self.backend.tmp_dir()) {
            if tmp.metadata().is_ok_and(|m| self.older_than_grace(&m)) {
                if repair {
                    let _ = std::fs::remove_file(tmp.path());
                }
                problems.push(Problem::StrayTemp(tmp.path()));
            }
        }
        problems
    }

    /// Removes every entry and object (the cache directory itself stays).
    pub fn clear(&self) -> Result<()> {
        let root = self.backend.root();
        match std::fs::remove_dir_all(root) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(root, e)),
        }
    }
}

impl Store {
    pub(crate) fn older_than_grace(&self, meta: &std::fs::Metadata) -> bool {
        let age = crate::fsutil::now_ns().saturating_sub(mtime_ns(meta));
        age >= self.config.grace.as_nanos() as u64
    }
}
