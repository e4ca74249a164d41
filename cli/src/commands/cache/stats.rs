//! `casher cache stats [--json]`

use std::process::ExitCode;

use anyhow::Result;
use casher_store::Store;

use super::units::human_size;

#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print JSON: entries, variants, objects, bytes, hits, misses, rejected, cache_dir.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: &StatsArgs) -> Result<ExitCode> {
    let s = store.stats();
    if args.json {
        let value = serde_json::json!({
            "entries": s.entries, "variants": s.variants, "objects": s.objects,
            "bytes": s.bytes, "hits": s.hits, "misses": s.misses, "rejected": s.rejected,
            "cache_dir": store.cache_dir(),
        });
        crate::output::print_json(&value)?;
    } else {
        crate::output::print_lines(&[
            format!("cache dir: {}", store.cache_dir().display()),
            format!("entries:   {}", s.entries),
            format!("variants:  {}", s.variants),
            format!("objects:   {}", s.objects),
            format!("size:      {}", human_size(s.bytes)),
            format!("hits:      {}", s.hits),
            format!("misses:    {}", s.misses),
            format!(
                "rejected:  {} (records that did not authenticate)",
                s.rejected
            ),
        ])?;
    }
    Ok(ExitCode::SUCCESS)
}
