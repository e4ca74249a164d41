//! `casher cache gc [--max-size SIZE] [--max-age DURATION]`

use std::process::ExitCode;

use anyhow::Result;
use casher_store::{GcOptions, Store};

use super::units::{human_size, parse_duration, parse_size};

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Size bound, like 500K, 1M or 10G (default: CASHER_MAX_SIZE or 10G).
    #[arg(long)]
    max_size: Option<String>,

    /// Also remove entries unused for longer than this, like 12h or 30d.
    #[arg(long)]
    max_age: Option<String>,
}

pub fn run(store: &Store, args: &GcArgs) -> Result<ExitCode> {
    let max_size = match &args.max_size {
        Some(s) => parse_size(s)?,
        None => super::store_config()?.max_size,
    };
    let max_age = args.max_age.as_deref().map(parse_duration).transpose()?;
    let report = store.gc(&GcOptions { max_size, max_age })?;
    crate::output::print_lines(&[format!(
        "removed {} variant(s), {} object(s), {} temp file(s); freed {}",
        report.variants_removed,
        report.objects_removed,
        report.temp_removed,
        human_size(report.bytes_freed)
    )])?;
    Ok(ExitCode::SUCCESS)
}
