//! The store as callers see it: look up a key, record a run, restore it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::auth::Keys;
use crate::backend::{Backend, StoredVariant};
use crate::counters::Counters;
use crate::error::Result;
use crate::local::LocalBackend;
use crate::location::{check_ownership, ensure_cache_dir};
use crate::lookup::{check_variant, Change, ChangeKind, Check, CodeOracle, Miss};
use crate::record::Variant;

/// Limits; see `docs/store-format.md`.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Variants kept per key (least recently used dropped first).
    pub max_variants: usize,
    /// Size bound for automatic garbage collection.
    pub max_size: u64,
    /// Automatic collection is considered at most this often.
    pub gc_interval_secs: u64,
    /// Unreferenced objects and temp files younger than this are left alone:
    /// a writer may be between storing objects and writing their record.
    pub grace: std::time::Duration,
    /// A hit refreshes its record's last-use time only if older than this
    /// (LRU needs no finer resolution, and hot hits skip a write).
    pub touch_interval: std::time::Duration,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            max_variants: 100,
            max_size: 10 << 30,
            gc_interval_secs: 3600,
            grace: std::time::Duration::from_secs(3600),
            touch_interval: std::time::Duration::from_secs(60),
        }
    }
}

pub struct Store {
    pub(crate) backend: LocalBackend,
    pub(crate) counters: Arc<Counters>,
    pub(crate) config: StoreConfig,
    cache_dir: PathBuf,
}

/// The answer of a lookup.
#[derive(Debug, Clone)]
pub enum Lookup {
    Hit(Box<StoredVariant>),
    Miss(Miss),
}

impl Store {
    /// Opens (creating if needed) the store inside a cache directory.
    /// A store someone else could steer (not owned by the current user, or
    /// writable by others, or reached through such a directory) is refused
    /// with [`crate::StoreError::Insecure`]: callers then run uncached.
    pub fn open(cache_dir: &Path, config: StoreConfig) -> Result<Self> {
        ensure_cache_dir(cache_dir)?;
        check_ownership(cache_dir)?;
        let keys = Keys::load_or_create(cache_dir)?;
        let counters = Arc::new(Counters::new(&cache_dir.join(crate::local::BUCKET)));
        let backend = LocalBackend::new(cache_dir, keys, Arc::clone(&counters));
        Ok(Self {
            backend,
            counters,
            config,
            cache_dir: cache_dir.to_path_buf(),
        })
    }

    /// Writes out buffered hit/miss counts (also done when dropped).
    pub fn flush_counters(&self) {
        self.counters.flush();
    }

    /// The store's 32-byte secret, for salting values that must not be
    /// recoverable from key names: `blake3::keyed_hash(secret, value)`.
    /// Never written anywhere but the store's `secret.key` (mode 0600).
    pub fn secret(&self) -> &[u8; 32] {
        self.backend.keys().secret()
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    pub fn backend(&self) -> &dyn Backend {
        &self.backend
    }

    /// The persistent (path, stamp) -> content hash cache of this store.
    pub fn hash_cache(&self) -> crate::hash_cache::HashCache {
        crate::hash_cache::HashCache::load(self.backend.root())
    }

    /// The newest variant of `key` whose inputs all still hold. The miss
    /// reason is the first changed input of the newest variant. Counts the
    /// hit or miss.
    pub fn lookup(&self, key: &str, oracle: &dyn CodeOracle) -> Result<Lookup> {
        let answer = self.peek(key, oracle)?;
        match &answer {
            Lookup::Hit(hit) => {
                let age = crate::fsutil::now_ns().saturating_sub(hit.last_used_ns);
                if u128::from(age) >= self.config.touch_interval.as_nanos() {
                    self.backend.touch_variant(&hit.name);
                }
                self.counters.hit();
            }
            Lookup::Miss(_) => self.counters.miss(),
        }
        Ok(answer)
    }

    /// Like [`Store::lookup`] but without counting or touching: for `--explain`.
    pub fn peek(&self, key: &str, oracle: &dyn CodeOracle) -> Result<Lookup> {
        let mut first_change: Option<Change> = None;
        // Records are read one at a time, newest first: a hit on the newest
        // variant never reads the others.
        for name in self.backend.variant_names(key) {
            let Some(stored) = self.backend.load_variant(&name) else {
                continue;
            };
            match check_variant(&stored.variant, oracle) {
                Check::Holds { refreshed } => {
                    let missing = stored
                        .variant
                        .objects()
                        .into_iter()
                        .find(|id| !self.backend.has_object(id));
                    if missing.is_some() {
                        first_change.get_or_insert(Change {
                            subject: stored.variant.description.clone(),
                            kind: ChangeKind::OutputMissing,
                        });
                        continue;
                    }
                    let mut stored = stored;
                    if let Some(inputs) = refreshed {
                        stored.variant.inputs = inputs;
                        if let Err(err) =
                            self.backend.replace_variant(&stored.name, &stored.variant)
                        {
                            tracing::debug!("could not refresh stat snapshots: {err}");
                        }
                    }
                    return Ok(Lookup::Hit(Box::new(stored)));
                }
                Check::Fails(change) => {
                    first_change.get_or_insert(change);
                }
            }
        }
        Ok(Lookup::Miss(
            first_change.map_or(Miss::NotSeen, Miss::Changed),
        ))
    }

    /// Records a variant (its objects must already be stored), then
    /// collects garbage if the store may have outgrown its bound.
    pub fn record(&self, variant: &Variant) -> Result<()> {
        self.backend
            .add_variant(variant, self.config.max_variants)?;
        self.maybe_collect();
        Ok(())
    }

    /// Cheap check on every write: one stat of the GC stamp. A full
    /// size scan happens at most once per `gc_interval_secs`.
    fn maybe_collect(&self) {
        let stamp = self.backend.root().join("gc.stamp");
        let due = match std::fs::metadata(&stamp).and_then(|m| m.modified()) {
            Ok(t) => t
                .elapsed()
                .map(|e| e.as_secs() >= self.config.gc_interval_secs)
                .unwrap_or(true),
            Err(_) => true,
        };
        if !due {
            return;
        }
        let _ = std::fs::write(&stamp, b"");
        let options = crate::maintenance::GcOptions {
            max_size: self.config.max_size,
            max_age: None,
        };
        if let Err(err) = self.gc(&options) {
            tracing::warn!("automatic garbage collection failed: {err}");
        }
    }
}
