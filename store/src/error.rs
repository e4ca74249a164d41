//! The store's errors, each naming the path it concerns and what to do.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The cache directory could not be created or marked.
    #[error("cannot create the cache directory {}: {source}\nhint: set CASHER_DIR or pass --cache-dir to use another directory", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `pyproject.toml` that names the cache directory could not be read.
    #[error("{}: invalid [tool.casher] table: {message}", path.display())]
    Config { path: PathBuf, message: String },

    /// Reading or writing inside the store failed (full disk, read-only
    /// store, permissions). Callers treat this as "not cached", never as a
    /// failure of the user's run.
    #[error("cache store I/O failed on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An object's content does not match its name: it was corrupted or
    /// truncated. It has been removed; the lookup is a miss.
    #[error("corrupt cache object {} (removed)", path.display())]
    CorruptObject { path: PathBuf },

    /// A variant record could not be decoded (corrupt, truncated, or written
    /// by another format version).
    #[error("unreadable cache record {}: {reason}", path.display())]
    BadRecord { path: PathBuf, reason: String },

    /// A recorded output path lies outside the allowed roots, or reaches
    /// outside them through `..` or a symlink. Nothing was written.
    #[error("refusing to restore {}: {reason}\nhint: add its directory to CASHER_ALLOWED_ROOTS if this entry is trusted", path.display())]
    Forbidden { path: PathBuf, reason: String },

    /// Another process has been computing the same key for longer than the
    /// wait allows.
    #[error("waited {waited_s} s for process {holder} to finish computing key {key}; computing it here too\nhint: if process {holder} is stuck, end it")]
    Busy {
        key: String,
        holder: String,
        waited_s: u64,
    },

    /// No entry key starts with the given prefix, or more than one does.
    #[error("{message}")]
    KeyPrefix { message: String },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
