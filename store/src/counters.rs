//! Hit and miss counters shared by every process: one byte appended per
//! event with `O_APPEND` (atomic, no lock), the count is the file size.
//! A process buffers its events and appends them in one write (at the
//! latest when the store is dropped), keeping hits cheap. Records that
//! failed authentication are counted the same way (`rejected`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Events buffered before they are written out.
const FLUSH_EVERY: u64 = 256;

pub struct Counters {
    dir: PathBuf,
    pending_hits: AtomicU64,
    pending_misses: AtomicU64,
}

impl Counters {
    pub fn new(store_root: &Path) -> Self {
        let dir = store_root.join("stats");
        let _ = std::fs::create_dir_all(&dir);
        Self {
            dir,
            pending_hits: AtomicU64::new(0),
            pending_misses: AtomicU64::new(0),
        }
    }

    fn append(&self, name: &str, count: u64) {
        if count == 0 {
            return;
        }
        let path = self.dir.join(name);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(&vec![b'.'; usize::try_from(count).unwrap_or(0)]);
        }
    }

    fn bump(&self, pending: &AtomicU64, name: &str) {
        if pending.fetch_add(1, Ordering::Relaxed) + 1 >= FLUSH_EVERY {
            self.append(name, pending.swap(0, Ordering::Relaxed));
        }
    }

    /// Writes out buffered events.
    pub fn flush(&self) {
        self.append("hits", self.pending_hits.swap(0, Ordering::Relaxed));
        self.append("misses", self.pending_misses.swap(0, Ordering::Relaxed));
    }

    fn read(&self, name: &str) -> u64 {
        std::fs::metadata(self.dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    pub fn hit(&self) {
        self.bump(&self.pending_hits, "hits");
    }

    pub fn miss(&self) {
        self.bump(&self.pending_misses, "misses");
    }

    /// A record that did not authenticate was ignored: written at once
    /// (rare, and worth seeing even if the process dies).
    pub fn rejected(&self) {
        self.append("rejected", 1);
    }

    pub fn rejected_count(&self) -> u64 {
        self.read("rejected")
    }

    pub fn hits(&self) -> u64 {
        self.read("hits") + self.pending_hits.load(Ordering::Relaxed)
    }

    pub fn misses(&self) -> u64 {
        self.read("misses") + self.pending_misses.load(Ordering::Relaxed)
    }
}

impl Drop for Counters {
    fn drop(&mut self) {
        self.flush();
    }
}
