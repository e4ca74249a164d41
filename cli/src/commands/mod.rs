//! One file per subcommand.

pub mod deps;
