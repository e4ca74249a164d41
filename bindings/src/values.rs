//! A function's return value without copies: its large buffers (pickle
//! protocol 5, out-of-band) become store objects by rename, and a hit hands
//! Python the objects' paths to memory-map. An object is verified when it
//! is stored and again whenever its stat stamp differs from the one it was
//! verified at, so a hit does not re-hash gigabytes it already checked.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use casher_store::{ObjectId, Stamp, Store, StoreError, ValueBuffer};

/// Stamps at which objects were verified by this process (beyond the one
/// each record keeps): a re-created object is re-hashed once, not per hit.
#[derive(Default)]
pub(crate) struct Verified(Mutex<HashMap<ObjectId, Stamp>>);

impl Verified {
    fn get(&self, id: &ObjectId) -> Option<Stamp> {
        self.0.lock().ok().and_then(|m| m.get(id).copied())
    }

    fn set(&self, id: ObjectId, stamp: Stamp) {
        if let Ok(mut m) = self.0.lock() {
            m.insert(id, stamp);
        }
    }
}

/// Moves the buffer files a child wrote into the store, in order.
pub(crate) fn adopt(
    store: &Store,
    files: &[PathBuf],
    verified: &Verified,
) -> casher_store::Result<Vec<ValueBuffer>> {
    files
        .iter()
        .map(|file| {
            let (id, size, adopted) = store.backend().adopt_file_stamped(file)?;
            // Hashed just now as it became the object: not hashed twice.
            let (_, stamp) = store
                .backend()
                .mappable_object(&id, adopted.as_ref())?
                .ok_or_else(|| not_local(file))?;
            verified.set(id, stamp);
            Ok(ValueBuffer { id, size, stamp })
        })
        .collect()
}

/// The verified local paths of a value's buffers, to be memory-mapped.
pub(crate) fn paths(
    store: &Store,
    buffers: &[ValueBuffer],
    verified: &Verified,
) -> casher_store::Result<Vec<PathBuf>> {
    buffers
        .iter()
        .map(|b| {
            // This process's own verification is newer than the record's.
            let stamp = verified.get(&b.id).unwrap_or(b.stamp);
            let (path, now) = store
                .backend()
                .mappable_object(&b.id, Some(&stamp))?
                .ok_or_else(|| not_local(store.cache_dir()))?;
            verified.set(b.id, now);
            Ok(path)
        })
        .collect()
}

fn not_local(path: &std::path::Path) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other("this store keeps no local files to map"),
    }
}
