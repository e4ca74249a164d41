//! The local directory backend:
//!
//! ```text
//! store-v1/objects/ab/<64 hex>                       content, named by BLAKE3
//! store-v1/entries/ab/<key>/<created>-<inputs>.var   one record per variant
//! store-v1/tmp/                                      temp files before rename
//! ```
//!
//! Every file appears by rename from `tmp/`, so a crash at any point leaves
//! either the old state or the new, plus at worst a stray temp file that
//! `verify` reports and `gc` removes.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use crate::auth::Keys;
use crate::backend::{Backend, StoredVariant};
use crate::counters::Counters;
use crate::error::{Result, StoreError};
use crate::fsutil::{copy_hashing, hash_file, temp_path, write_atomic, Durability, Stamp};
use crate::id::ObjectId;
use crate::record::{Rejected, Variant};
use crate::shared_sets::SharedSets;

/// Name of the versioned bucket under the cache directory.
pub const BUCKET: &str = "store-v1";

pub struct LocalBackend {
    root: PathBuf,
    keys: Keys,
    counters: Arc<Counters>,
    /// Record names per key, with the key directory's stat when listed. A
    /// long-lived process (a Python session) re-lists only when the
    /// directory changed. A stale listing can only name a record that is
    /// gone (skipped) or miss a new one (a miss): never a wrong hit.
    listings:
        std::sync::Mutex<std::collections::HashMap<String, (crate::fsutil::Stamp, Vec<String>)>>,
    /// Inputs shared by many records, as this process last stored or read them.
    sets: SharedSets,
}

impl LocalBackend {
    pub(crate) fn new(cache_dir: &Path, keys: Keys, counters: Arc<Counters>) -> Self {
        Self {
            root: cache_dir.join(BUCKET),
            keys,
            counters,
            listings: std::sync::Mutex::new(std::collections::HashMap::new()),
            sets: SharedSets::default(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub fn entries_dir(&self) -> PathBuf {
        self.root.join("entries")
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.hex();
        self.objects_dir().join(&hex[..2]).join(hex)
    }

    pub fn key_dir(&self, key: &str) -> PathBuf {
        self.entries_dir()
            .join(key.get(..2).unwrap_or("__"))
            .join(key)
    }

    pub fn variant_path(&self, name: &str) -> PathBuf {
        // name = "<key>/<file>"
        let key = name.split('/').next().unwrap_or("");
        self.key_dir(key).join(name.split('/').nth(1).unwrap_or(""))
    }

    pub(crate) fn new_temp(&self) -> Result<(PathBuf, File)> {
        let dir = self.tmp_dir();
        std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        let path = temp_path(&dir);
        let file = File::create(&path).map_err(|e| StoreError::io(&path, e))?;
        Ok((path, file))
    }

    /// Moves a finished temp file to its content address (or drops it when
    /// that content is already stored).
    fn commit_object(&self, tmp: &Path, id: ObjectId) -> Result<()> {
        let dest = self.object_path(&id);
        if dest.exists() {
            let _ = std::fs::remove_file(tmp);
            return Ok(());
        }
        let shard = dest.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&shard).map_err(|e| StoreError::io(&shard, e))?;
        std::fs::rename(tmp, &dest).map_err(|e| {
            let _ = std::fs::remove_file(tmp);
            StoreError::io(&dest, e)
        })
    }

    /// Moves a hashed temp file to its address, or removes it on failure.
    pub(crate) fn publish(
        &self,
        tmp: &Path,
        hashed: std::io::Result<(blake3::Hash, u64)>,
    ) -> Result<(ObjectId, u64)> {
        match hashed {
            Ok((hash, size)) => {
                self.commit_object(tmp, hash.into())?;
                Ok((hash.into(), size))
            }
            Err(e) => {
                let _ = std::fs::remove_file(tmp);
                Err(StoreError::io(tmp, e))
            }
        }
    }

    /// The variants of a key for maintenance (`stats`, `ls`, `gc`): a
    /// record that does not authenticate is skipped without being counted
    /// again (lookups count it).
    pub(crate) fn variants_uncounted(&self, key: &str) -> Vec<StoredVariant> {
        self.variant_files(key)
            .iter()
            .filter_map(|file| self.decode_variant(key, file, false))
            .collect()
    }

    /// One record, for maintenance (a rejection is not counted).
    pub(crate) fn load_uncounted(&self, key: &str, file: &str) -> Option<StoredVariant> {
        self.decode_variant(key, file, false)
    }

    fn decode_variant(&self, key: &str, file: &str, count: bool) -> Option<StoredVariant> {
        let path = self.key_dir(key).join(file);
        let mut handle = File::open(&path).ok()?;
        let meta = handle.metadata().ok()?;
        let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        handle.read_to_end(&mut bytes).ok()?;
        let decoded = if count {
            self.decode(&bytes)
        } else {
            Variant::decode(&bytes, &self.keys)
        };
        // Every input in front: a lookup cannot use a record whose shared
        // inputs are gone (a miss); maintenance keeps it with its own
        // (`verify` names the missing object, `gc` removes the record).
        let decoded = decoded.and_then(|mut variant| match self.sets.resolve(self, &mut variant) {
            Err(reason) if count => Err(Rejected::Unreadable(reason)),
            _ => Ok(variant),
        });
        match decoded {
            Ok(variant) if variant.key == key => Some(StoredVariant {
                name: format!("{key}/{file}"),
                variant,
                last_used_ns: mtime_ns(&meta),
                record_bytes: meta.len(),
            }),
            Ok(_) => {
                tracing::warn!(
                    "{}: record filed under the wrong key; ignored",
                    path.display()
                );
                None
            }
            Err(reason) => {
                tracing::warn!(
                    "{}: {reason}; ignored (run `casher cache verify --repair`)",
                    path.display()
                );
                None
            }
        }
    }

    /// Decodes record bytes; a record that does not authenticate is
    /// counted (`casher cache stats`) before it is ignored.
    pub(crate) fn decode(&self, bytes: &[u8]) -> std::result::Result<Variant, Rejected> {
        let decoded = Variant::decode(bytes, &self.keys);
        if matches!(decoded, Err(Rejected::Unauthentic)) {
            self.counters.rejected();
        }
        decoded
    }

    /// The record's bytes and its inputs' id, its shared inputs stored
    /// first (once: see `shared_sets`).
    fn encode(&self, variant: &Variant) -> Result<(Vec<u8>, ObjectId)> {
        let (shared, identity) = self.sets.store(self, variant.shared_inputs())?;
        Ok((
            variant.encode(&self.keys, shared),
            variant.inputs_id_from(identity),
        ))
    }

    pub(crate) fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Record file names of a key, newest first.
    pub fn variant_files(&self, key: &str) -> Vec<String> {
        let dir = self.key_dir(key);
        let Ok(meta) = std::fs::metadata(&dir) else {
            return Vec::new();
        };
        let stamp = crate::fsutil::Stamp::of(&meta);
        if let Ok(listings) = self.listings.lock() {
            if let Some((s, names)) = listings.get(key) {
                if *s == stamp {
                    return names.clone();
                }
            }
        }
        let names = Self::list_records(&dir);
        if let Ok(mut listings) = self.listings.lock() {
            listings.insert(key.to_owned(), (stamp, names.clone()));
        }
        names
    }

    /// Forgets the listing of a key this process just changed (directory
    /// mtimes are coarse: the change may not show in the stamp).
    fn forget_listing(&self, key: &str) {
        if let Ok(mut listings) = self.listings.lock() {
            listings.remove(key);
        }
    }

    fn list_records(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".var"))
            .collect();
        names.sort_unstable_by(|a, b| b.cmp(a));
        names
    }
}

pub fn mtime_ns(meta: &std::fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    (meta.mtime().max(0) as u64) * 1_000_000_000 + meta.mtime_nsec().max(0) as u64
}

impl Backend for LocalBackend {
    fn put_object(&self, reader: &mut dyn Read) -> Result<(ObjectId, u64)> {
        let (tmp, file) = self.new_temp()?;
        let mut writer = std::io::BufWriter::with_capacity(crate::fsutil::CHUNK, file);
        let result = copy_hashing(reader, &mut writer).and_then(|r| {
            writer.into_inner().map_err(|e| e.into_error())?;
            Ok(r)
        });
        self.publish(&tmp, result)
    }

    fn put_file(&self, path: &Path) -> Result<(ObjectId, u64)> {
        crate::local_io::put_file(self, path)
    }

    fn copy_object_into(&self, id: &ObjectId, dest: &mut File) -> Result<()> {
        crate::local_io::copy_object_into(self, id, dest)
    }

    fn stream_object(&self, id: &ObjectId, out: &mut dyn Write) -> Result<u64> {
        crate::local_io::stream_object(self, id, out)
    }

    fn adopt_file(&self, path: &Path) -> Result<(ObjectId, u64)> {
        // Same filesystem (the caller's file lives under the cache
        // directory): hash in place on all cores, then rename; no copy.
        if !path.starts_with(self.root.parent().unwrap_or(&self.root)) {
            let stored = self.put_file(path)?;
            let _ = std::fs::remove_file(path);
            return Ok(stored);
        }
        match hash_file(path) {
            Ok((hash, size)) => {
                self.commit_object(path, hash.into())?;
                Ok((hash.into(), size))
            }
            Err(e) => Err(StoreError::io(path, e)),
        }
    }

    fn adopt_file_stamped(&self, path: &Path) -> Result<(ObjectId, u64, Option<Stamp>)> {
        let before = std::fs::metadata(path).map(|m| Stamp::of(&m)).ok();
        let (id, size) = self.adopt_file(path)?;
        // The object is the very inode that was hashed, with the size and
        // mtime it had before (a rename changes only its ctime).
        let after = std::fs::metadata(self.object_path(&id))
            .map(|m| Stamp::of(&m))
            .ok();
        let same =
            |b: &Stamp, a: &Stamp| (b.ino, b.size, b.mtime_ns) == (a.ino, a.size, a.mtime_ns);
        let stamp = match (before, after) {
            (Some(b), Some(a)) if same(&b, &a) => Some(a),
            _ => None,
        };
        Ok((id, size, stamp))
    }

    fn mappable_object(
        &self,
        id: &ObjectId,
        verified: Option<&Stamp>,
    ) -> Result<Option<(PathBuf, Stamp)>> {
        let path = self.object_path(id);
        let meta = std::fs::metadata(&path).map_err(|e| StoreError::io(&path, e))?;
        let stamp = Stamp::of(&meta);
        if verified == Some(&stamp) {
            return Ok(Some((path, stamp)));
        }
        let (hash, _) = hash_file(&path).map_err(|e| StoreError::io(&path, e))?;
        if ObjectId::from(hash) != *id {
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::CorruptObject { path });
        }
        Ok(Some((path, stamp)))
    }

    fn has_object(&self, id: &ObjectId) -> bool {
        self.object_path(id).is_file()
    }

    fn read_object(&self, id: &ObjectId) -> Result<Vec<u8>> {
        let path = self.object_path(id);
        let bytes = std::fs::read(&path).map_err(|e| StoreError::io(&path, e))?;
        if ObjectId::of(&bytes) != *id {
            let _ = std::fs::remove_file(&path);
            return Err(StoreError::CorruptObject { path });
        }
        Ok(bytes)
    }

    fn journal_dir(&self) -> Option<PathBuf> {
        Some(self.root.join("restores"))
    }

    fn variant_names(&self, key: &str) -> Vec<String> {
        self.variant_files(key)
            .into_iter()
            .map(|file| format!("{key}/{file}"))
            .collect()
    }

    fn load_variant(&self, name: &str) -> Option<StoredVariant> {
        let (key, file) = name.split_once('/')?;
        self.decode_variant(key, file, true)
    }

    fn add_variant(&self, variant: &Variant, max_variants: usize) -> Result<()> {
        let (bytes, inputs) = self.encode(variant)?;
        let inputs = inputs.hex();
        let suffix = format!("-{}.var", &inputs[..16]);
        let file = format!("{:020}{suffix}", variant.created_ns);
        let dir = self.key_dir(&variant.key);
        write_atomic(&dir.join(&file), &bytes, Durability::Verified)?;
        self.forget_listing(&variant.key);
        // The same inputs recorded earlier: superseded by this record. Only
        // older records (names start with the creation time): two writers
        // of the same inputs at once must not delete each other's record.
        let existing = self.variant_files(&variant.key);
        for old in existing
            .iter()
            .filter(|n| n.ends_with(&suffix) && n.as_str() < file.as_str())
        {
            let _ = std::fs::remove_file(dir.join(old));
        }
        let mut kept: Vec<(u64, String)> = self
            .variant_files(&variant.key)
            .into_iter()
            .filter_map(|n| {
                let meta = std::fs::metadata(dir.join(&n)).ok()?;
                Some((mtime_ns(&meta), n))
            })
            .collect();
        if kept.len() > max_variants.max(1) {
            kept.sort_unstable_by(|a, b| b.cmp(a));
            for (_, name) in kept.drain(max_variants.max(1)..) {
                if name != file {
                    let _ = std::fs::remove_file(dir.join(name));
                }
            }
        }
        self.forget_listing(&variant.key);
        Ok(())
    }

    fn replace_variant(&self, name: &str, variant: &Variant) -> Result<()> {
        write_atomic(
            &self.variant_path(name),
            &self.encode(variant)?.0,
            Durability::Verified,
        )
    }

    fn touch_variant(&self, name: &str) {
        use std::os::unix::ffi::OsStrExt;
        let path = self.variant_path(name);
        let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: a valid NUL-terminated path; a null `times` means "now".
        unsafe {
            libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), std::ptr::null(), 0);
        }
    }

    fn remove_variant(&self, name: &str) -> Result<()> {
        self.forget_listing(name.split('/').next().unwrap_or(""));
        let path = self.variant_path(name);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io(&path, e)),
        }
    }
}
