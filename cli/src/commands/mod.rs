//! One file per subcommand.

pub mod cache;
pub mod deps;
pub mod run;
