//! `tracing` to stderr, filtered by `-v` or `CASHER_LOG` (e.g. `CASHER_LOG=debug`).

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8) {
    let filter = match std::env::var("CASHER_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match verbose {
            0 => "warn",
            1 => "info",
            _ => "debug",
        }),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
