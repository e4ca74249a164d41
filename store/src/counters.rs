//! Hit and miss counters shared by every process: one byte appended per
//! event with `O_APPEND` (atomic, no lock), the count is the file size.

use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Counters {
    dir: PathBuf,
}

impl Counters {
    pub fn new(store_root: &Path) -> Self {
        Self {
            dir: store_root.join("stats"),
        }
    }

    fn bump(&self, name: &str) {
        let _ = std::fs::create_dir_all(&self.dir);
        let path = self.dir.join(name);
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = f.write_all(b".");
        }
    }

    fn read(&self, name: &str) -> u64 {
        std::fs::metadata(self.dir.join(name))
            .map(|m| m.len())
            .unwrap_or(0)
    }

    pub fn hit(&self) {
        self.bump("hits");
    }

    pub fn miss(&self) {
        self.bump("misses");
    }

    pub fn hits(&self) -> u64 {
        self.read("hits")
    }

    pub fn misses(&self) -> u64 {
        self.read("misses")
    }
}
