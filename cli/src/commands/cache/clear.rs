//! `casher cache clear`

use std::process::ExitCode;

use anyhow::Result;
use casher_store::Store;

pub fn run(store: &Store) -> Result<ExitCode> {
    store.clear()?;
    eprintln!("casher: cleared {}", store.cache_dir().display());
    Ok(ExitCode::SUCCESS)
}
