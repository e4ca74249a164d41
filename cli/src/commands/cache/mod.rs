//! `casher cache stats | ls | show KEY | gc | clear | verify`: look after the store.

mod clear;
mod gc;
mod ls;
mod show;
mod stats;
mod units;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use casher_store::{Store, StoreConfig};

#[derive(Debug, clap::Args)]
pub struct CacheArgs {
    /// The cache directory (default: CASHER_DIR, [tool.casher] cache-dir in
    /// pyproject.toml, $XDG_CACHE_HOME/casher, ~/.cache/casher).
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,

    #[command(subcommand)]
    command: CacheCommand,
}

#[derive(Debug, clap::Subcommand)]
enum CacheCommand {
    /// Entries, variants, objects, bytes, hits and misses.
    Stats(stats::StatsArgs),
    /// One row per entry: key, what was run, variants, size, last used.
    Ls(ls::LsArgs),
    /// The recorded inputs and outputs of one entry (a unique key prefix will do).
    Show(show::ShowArgs),
    /// Remove least recently used entries until the store fits.
    Gc(gc::GcArgs),
    /// Remove every entry and object.
    Clear,
    /// Re-hash every object and check every record; exit 1 if anything is wrong.
    Verify(verify::VerifyArgs),
}

/// Store limits from the environment: `CASHER_MAX_SIZE` (e.g. `10G`) and
/// `CASHER_MAX_VARIANTS`.
pub fn store_config() -> Result<StoreConfig> {
    let mut config = StoreConfig::default();
    if let Ok(size) = std::env::var("CASHER_MAX_SIZE") {
        config.max_size = units::parse_size(&size).context("invalid CASHER_MAX_SIZE")?;
    }
    if let Ok(n) = std::env::var("CASHER_MAX_VARIANTS") {
        config.max_variants = n
            .parse()
            .with_context(|| format!("invalid CASHER_MAX_VARIANTS {n:?}: expected a number"))?;
    }
    Ok(config)
}

/// Opens the store the same way every subcommand (and `casher run`) does.
pub fn open_store(explicit: Option<&std::path::Path>) -> Result<Store> {
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (dir, _) = casher_store::cache_dir(explicit, &cwd)?;
    Ok(Store::open(&dir, store_config()?)?)
}

pub fn run(args: &CacheArgs) -> Result<ExitCode> {
    let store = open_store(args.cache_dir.as_deref())?;
    match &args.command {
        CacheCommand::Stats(a) => stats::run(&store, a),
        CacheCommand::Ls(a) => ls::run(&store, a),
        CacheCommand::Show(a) => show::run(&store, a),
        CacheCommand::Gc(a) => gc::run(&store, a),
        CacheCommand::Clear => clear::run(&store),
        CacheCommand::Verify(a) => verify::run(&store, a),
    }
}
