//! The storage interface. The local directory store is one implementation
//! (`local.rs`); a remote tier (S3-compatible object storage) is another file
//! implementing the same trait, not a rewrite.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use crate::error::Result;
use crate::id::ObjectId;
use crate::record::Variant;

/// A variant as stored: its record and when it was last used.
#[derive(Debug, Clone)]
pub struct StoredVariant {
    /// Backend-specific name of the record, used to refresh or remove it.
    pub name: String,
    pub variant: Variant,
    pub last_used_ns: u64,
    pub record_bytes: u64,
}

pub trait Backend: Send + Sync {
    /// Stores content read from `reader` (streamed, bounded memory); returns
    /// its id and size. Identical content is stored once.
    fn put_object(&self, reader: &mut dyn Read) -> Result<(ObjectId, u64)>;

    /// Stores a local file, by reflink where possible.
    fn put_file(&self, path: &Path) -> Result<(ObjectId, u64)>;

    /// Moves a finished local file into the store (a function's return
    /// value buffer): hashed, then renamed to its address where the store
    /// is local, so the bytes are not copied. The file is gone afterwards.
    fn adopt_file(&self, path: &Path) -> Result<(ObjectId, u64)> {
        let stored = self.put_file(path)?;
        let _ = std::fs::remove_file(path);
        Ok(stored)
    }

    /// `adopt_file`, and the object's stamp when the adopted file itself
    /// became the object, unchanged since it was hashed: it then needs no
    /// second verification before it is mapped (`None`: it does).
    fn adopt_file_stamped(
        &self,
        path: &Path,
    ) -> Result<(ObjectId, u64, Option<crate::fsutil::Stamp>)> {
        let (id, size) = self.adopt_file(path)?;
        Ok((id, size, None))
    }

    /// A local path to a verified object, to be memory-mapped, and its stat
    /// stamp. `verified` is the stamp at which it was last verified: the
    /// object is re-hashed only when its stamp differs (a corrupt object is
    /// removed and an error). `None` when the backend keeps no local files.
    fn mappable_object(
        &self,
        _id: &ObjectId,
        _verified: Option<&crate::fsutil::Stamp>,
    ) -> Result<Option<(std::path::PathBuf, crate::fsutil::Stamp)>> {
        Ok(None)
    }

    /// Whether an object is present (not verified).
    fn has_object(&self, id: &ObjectId) -> bool;

    /// Reads a whole object, verified against its id. A corrupt object is
    /// removed and reported as [`crate::StoreError::CorruptObject`].
    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>>;

    /// Writes an object into `dest` (a new, empty file), verified while
    /// streaming; stops early when a restore is interrupted (SIGINT).
    fn copy_object_into(&self, id: &ObjectId, dest: &mut File) -> Result<()>;

    /// Streams an object to `out` in bounded memory, verifying it: an
    /// error after some bytes were written means it was corrupt (removed).
    fn stream_object(&self, id: &ObjectId, out: &mut dyn Write) -> Result<u64>;

    /// Checks an object against its id (reads it; bounded memory).
    fn verify_object(&self, id: &ObjectId) -> Result<()> {
        self.stream_object(id, &mut std::io::sink()).map(drop)
    }

    /// Where restores journal their temp files (so that files left by a
    /// killed restore can be removed later), if the backend has a place.
    fn journal_dir(&self) -> Option<std::path::PathBuf> {
        None
    }

    /// The record names of a key, newest first (cheap: no record is read).
    fn variant_names(&self, key: &str) -> Vec<String>;

    /// Reads one record. An unreadable record is `None` (and logged), never
    /// an error: it is a miss.
    fn load_variant(&self, name: &str) -> Option<StoredVariant>;

    /// The variants of a key, newest first. Unreadable records are skipped.
    fn variants(&self, key: &str) -> Result<Vec<StoredVariant>> {
        Ok(self
            .variant_names(key)
            .iter()
            .filter_map(|name| self.load_variant(name))
            .collect())
    }

    /// Adds a variant under its key. Replaces an older record with the same
    /// inputs; keeps at most `max_variants` per key, dropping the oldest.
    fn add_variant(&self, variant: &Variant, max_variants: usize) -> Result<()>;

    /// Rewrites a variant in place (refreshed stat snapshots).
    fn replace_variant(&self, name: &str, variant: &Variant) -> Result<()>;

    /// Marks a variant as just used (for LRU garbage collection).
    fn touch_variant(&self, name: &str);

    fn remove_variant(&self, name: &str) -> Result<()>;
}
