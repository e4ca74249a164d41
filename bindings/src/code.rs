//! Code inputs for `@cached`: the normalized-AST hash of a project source
//! file, remembered per process by stat stamp so a hit re-checks code with
//! one `stat` per file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use casher_store::CodeOracle;

type Stamp = (u64, i64, i64, i64, i64, u64);

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    (
        meta.size(),
        meta.mtime(),
        meta.mtime_nsec(),
        meta.ctime(),
        meta.ctime_nsec(),
        meta.ino(),
    )
}

type Memo = Mutex<HashMap<PathBuf, (Stamp, Option<String>)>>;

fn memo() -> &'static Memo {
    static MEMO: OnceLock<Memo> = OnceLock::new();
    MEMO.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The normalized hash of a Python source file; `None` if it cannot be read
/// or does not parse (then the lookup misses, and the run reports it).
pub fn normalized_hash(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let now = stamp(&meta);
    if let Some((s, hash)) = memo().lock().ok()?.get(path) {
        if *s == now {
            return hash.clone();
        }
    }
    let hash = casher_analyzer::parse_file(path)
        .ok()
        .map(|parsed| blake3::Hash::from_bytes(parsed.hash).to_hex().to_string());
    if let Ok(mut memo) = memo().lock() {
        memo.insert(path.to_path_buf(), (now, hash.clone()));
    }
    hash
}

/// Project source: a `.py` file outside the interpreter's own trees.
pub struct LocalCode {
    pub non_local: Vec<PathBuf>,
}

impl LocalCode {
    pub fn hash_if_local(&self, path: &Path) -> Option<String> {
        if path.extension().is_none_or(|e| e != "py") {
            return None;
        }
        if self.non_local.iter().any(|root| path.starts_with(root)) {
            return None;
        }
        normalized_hash(path)
    }
}

/// Checks code inputs against the files as they are now.
pub struct Oracle;

impl CodeOracle for Oracle {
    fn code_hash(&self, _name: &str, path: Option<&Path>) -> Option<String> {
        normalized_hash(path?)
    }
}
