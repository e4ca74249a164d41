//! The `casher` command: thin glue over the analyzer, store and tracer.
//! Data goes to stdout, logs and errors to stderr.

mod commands;
mod logging;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Cache Python functions and commands, with their side effects, for as long
/// as the code, arguments, files and environment they depended on are unchanged.
#[derive(Debug, Parser)]
#[command(name = "casher", version, propagate_version = true)]
struct Cli {
    /// More logging on stderr (-v: info, -vv: debug). `CASHER_LOG` also works.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the code a file's (or function's) cache key covers.
    Deps(commands::deps::DepsArgs),
    /// Look after the store: stats, ls, show, gc, clear, verify.
    Cache(commands::cache::CacheArgs),
    /// Run a command, or replay it from the cache while nothing it read changed.
    Run(commands::run::RunArgs),
}

/// Exit code for usage errors and inputs we cannot work with.
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose);
    let result = match cli.command {
        Command::Deps(args) => commands::deps::run(&args),
        Command::Cache(args) => commands::cache::run(&args),
        Command::Run(args) => commands::run::run(&args, cli.verbose > 0),
    };
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// `casher deps ... | head` closes our stdout early: not an error.
fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || cause
                .downcast_ref::<serde_json::Error>()
                .and_then(|e| e.io_error_kind())
                == Some(std::io::ErrorKind::BrokenPipe)
    })
}
