//! What a run reports: its inputs and outputs, path by path.

use std::path::PathBuf;

use crate::observe::{Reveals, StatFacts};

/// An input of the run: something it observed about a path before it
/// changed that path (if it ever did).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedInput {
    /// A file whose content was read. `before` is its content hash when it
    /// was taken while the run was going (the run later changed the file,
    /// or the file was modified too recently for its stat stamp to be
    /// trusted); `None`: hash the file as it is now.
    File {
        path: PathBuf,
        before: Option<[u8; 32]>,
    },
    /// A path looked for (following symlinks) and not found: nothing
    /// there, or a dangling symlink.
    Absent { path: PathBuf },
    /// No directory entry at all at this path (an `lstat` failed, or the
    /// run created it): not even a dangling symlink.
    NoEntry { path: PathBuf },
    /// A directory whose entries were listed.
    Dir { path: PathBuf },
    /// What a `stat`-like call (following symlinks or not) returned, of
    /// which `reveals` says how much the call showed.
    Stat {
        path: PathBuf,
        follow: bool,
        facts: StatFacts,
        reveals: Reveals,
    },
    /// A symlink's target as `readlink` (or an open through it) saw it;
    /// `None`: the path exists and is not a symlink.
    Link {
        path: PathBuf,
        target: Option<PathBuf>,
    },
    /// Looking the path up failed with this errno (not "absent").
    Fails { path: PathBuf, errno: i32 },
    /// Truncated or created without being looked at first: the outcome is
    /// the same whether it was absent or a regular file of this mode.
    Replaceable { path: PathBuf, mode: u32 },
}

impl ObservedInput {
    /// The path observed.
    pub fn path(&self) -> &std::path::Path {
        match self {
            ObservedInput::File { path, .. }
            | ObservedInput::Absent { path }
            | ObservedInput::NoEntry { path }
            | ObservedInput::Dir { path }
            | ObservedInput::Stat { path, .. }
            | ObservedInput::Link { path, .. }
            | ObservedInput::Fails { path, .. }
            | ObservedInput::Replaceable { path, .. } => path,
        }
    }
}

/// An output of the run: the final state of a path it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedOutput {
    File { path: PathBuf },
    Dir { path: PathBuf },
    Symlink { path: PathBuf, target: PathBuf },
    Deleted { path: PathBuf },
}
