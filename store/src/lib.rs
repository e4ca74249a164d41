//! casher's result store. This first part decides *where* the store lives,
//! shared by the CLI and the Python package so both always agree.

mod error;
mod location;

pub use error::{Result, StoreError};
pub use location::{cache_dir, ensure_cache_dir, CacheDirSource};
