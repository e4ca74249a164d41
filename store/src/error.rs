//! The store's errors, each naming the path it concerns.

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
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
