//! `casher cache verify [--repair]`: exit 0 when clean, 1 when problems were found.

use std::process::ExitCode;

use anyhow::Result;
use casher_store::Store;

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// Remove what is broken (corrupt objects, bad records, orphans, temp files).
    #[arg(long)]
    repair: bool,
}

pub fn run(store: &Store, args: &VerifyArgs) -> Result<ExitCode> {
    let problems = store.verify(args.repair);
    if problems.is_empty() {
        eprintln!("casher: the store is clean");
        return Ok(ExitCode::SUCCESS);
    }
    let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
    crate::output::print_lines(&lines)?;
    if args.repair {
        eprintln!("casher: found and removed {} problem(s)", problems.len());
    } else {
        eprintln!(
            "casher: found {} problem(s)\nhint: `casher cache verify --repair` removes them",
            problems.len()
        );
    }
    Ok(ExitCode::from(1))
}
