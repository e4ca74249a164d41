//! Looking after the store: stats, listing, garbage collection, verification.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use crate::backend::{Backend, StoredVariant};
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

fn list_dir(path: &std::path::Path) -> Vec<std::fs::DirEntry> {
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
    fn objects(&self) -> Vec<(PathBuf, Option<ObjectId>, u64, std::fs::Metadata)> {
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

    fn all_variants(&self) -> Vec<StoredVariant> {
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

    /// Variants whose objects are gone go first (they can only miss);
    /// then least recently used variants until the store fits `max_size`
    /// (and nothing is older than `max_age`); then objects no record refers
    /// to, stray temp files past the grace period, temp files of killed
    /// restores, and key directories left empty. `bytes_freed` counts
    /// every removed file: records, objects and temp files.
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let mut report = GcReport::default();
        let mut variants = self.all_variants();
        variants.sort_by_key(|v| v.last_used_ns);
        let objects = self.objects();
        let sizes: HashMap<ObjectId, u64> =
            objects.iter().filter_map(|o| Some((o.1?, o.2))).collect();
        let mut refs: HashMap<ObjectId, usize> = HashMap::new();
        for v in &variants {
            for id in v.variant.objects() {
                *refs.entry(id).or_default() += 1;
            }
        }
        let mut total: u64 = objects.iter().map(|o| o.2).sum::<u64>()
            + variants.iter().map(|v| v.record_bytes).sum::<u64>();
        let now = crate::fsutil::now_ns();
        for v in &variants {
            let too_old = options
                .max_age
                .is_some_and(|age| now.saturating_sub(v.last_used_ns) > age.as_nanos() as u64);
            let broken = v.variant.objects().iter().any(|id| !sizes.contains_key(id));
            if total <= options.max_size && !too_old && !broken {
                continue;
            }
            self.backend.remove_variant(&v.name)?;
            report.variants_removed += 1;
            report.bytes_freed += v.record_bytes;
            total = total.saturating_sub(v.record_bytes);
            for id in v.variant.objects() {
                let count = refs.entry(id).or_default();
                *count = count.saturating_sub(1);
                if *count == 0 {
                    if let Some(size) = sizes.get(&id) {
                        if std::fs::remove_file(self.backend.object_path(&id)).is_ok() {
                            report.objects_removed += 1;
                            report.bytes_freed += size;
                            total = total.saturating_sub(*size);
                        }
                    }
                }
            }
        }
        // Orphans: unreferenced objects past the grace period.
        for (path, id, size, meta) in objects {
            let referenced = id.is_some_and(|id| refs.get(&id).copied().unwrap_or(0) > 0);
            if !referenced
                && self.older_than_grace(&meta)
                && path.exists()
                && std::fs::remove_file(&path).is_ok()
            {
                report.objects_removed += 1;
                report.bytes_freed += size;
            }
        }
        for tmp in list_dir(&self.backend.tmp_dir()) {
            if let Ok(meta) = tmp.metadata() {
                if self.older_than_grace(&meta) && std::fs::remove_file(tmp.path()).is_ok() {
                    report.temp_removed += 1;
                    report.bytes_freed += meta.len();
                }
            }
        }
        let (count, bytes) = crate::restore::clean_dead_journals(&self.backend);
        report.temp_removed += count;
        report.bytes_freed += bytes;
        // Records nobody can use (another format version, corrupt, or not
        // authentic) past the grace period: they would never be removed by
        // the LRU pass, which only sees usable records.
        for key in self.keys() {
            for entry in list_dir(&self.backend.key_dir(&key)) {
                let usable = entry.file_name().to_str().is_some_and(|file| {
                    !file.ends_with(".var") || self.backend.load_uncounted(&key, file).is_some()
                });
                let Ok(meta) = entry.metadata() else { continue };
                if !usable
                    && self.older_than_grace(&meta)
                    && std::fs::remove_file(entry.path()).is_ok()
                {
                    report.variants_removed += 1;
                    report.bytes_freed += meta.len();
                }
            }
        }
        // Key directories left empty: `cache show` must not find them. A
        // writer racing into one recreates it (see `write_atomic`).
        for key in self.keys() {
            let _ = std::fs::remove_dir(self.backend.key_dir(&key));
        }
        Ok(report)
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
    fn older_than_grace(&self, meta: &std::fs::Metadata) -> bool {
        let age = crate::fsutil::now_ns().saturating_sub(mtime_ns(meta));
        age >= self.config.grace.as_nanos() as u64
    }
}
