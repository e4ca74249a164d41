//! `casher cache ls [--json]`

use std::process::ExitCode;

use anyhow::Result;
use casher_store::Store;

use super::units::{human_age, human_size};

#[derive(Debug, clap::Args)]
pub struct LsArgs {
    /// Print JSON: a list of {key, description, variants, bytes, last_used}.
    #[arg(long)]
    json: bool,
}

pub fn run(store: &Store, args: &LsArgs) -> Result<ExitCode> {
    let rows = store.list();
    if args.json {
        let value: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "key": r.key, "description": r.description, "variants": r.variants,
                    "bytes": r.bytes, "last_used": r.last_used_ns / 1_000_000_000,
                })
            })
            .collect();
        crate::output::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut lines = vec![format!(
        "{:<16} {:>8} {:>10} {:>9}  {}",
        "KEY", "VARIANTS", "SIZE", "USED", "WHAT"
    )];
    for r in &rows {
        lines.push(format!(
            "{:<16} {:>8} {:>10} {:>9}  {}",
            &r.key[..16.min(r.key.len())],
            r.variants,
            human_size(r.bytes),
            human_age(r.last_used_ns),
            r.description
        ));
    }
    crate::output::print_lines(&lines)?;
    Ok(ExitCode::SUCCESS)
}
