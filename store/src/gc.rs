//! Garbage collection: what `casher cache gc` and the automatic collection
//! after writes remove, and why each kind of file can go.

use std::collections::HashMap;

use crate::backend::Backend;
use crate::error::Result;
use crate::id::ObjectId;
use crate::maintenance::{list_dir, GcOptions, GcReport};
use crate::store::Store;

impl Store {
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
}
