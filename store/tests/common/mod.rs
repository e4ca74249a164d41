#![allow(dead_code)] // each test crate uses part of it
//! What the store's integration tests share: a store in a fresh temporary
//! directory.

use std::path::PathBuf;

use casher_store::{Store, StoreConfig};

pub struct Env {
    _tmp: tempfile::TempDir,
    /// The temporary directory (canonical): inputs and outputs go here.
    pub root: PathBuf,
    /// `root/cache`, where the store lives.
    pub cache: PathBuf,
    pub store: Store,
}

pub fn env() -> Env {
    env_with(StoreConfig::default())
}

pub fn env_with(config: StoreConfig) -> Env {
    let tmp = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(tmp.path()).unwrap();
    let cache = root.join("cache");
    let store = Store::open(&cache, config).unwrap();
    Env {
        _tmp: tmp,
        root,
        cache,
        store,
    }
}
