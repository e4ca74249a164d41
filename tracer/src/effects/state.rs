//! What is recorded of one path while a run goes on.

use std::path::PathBuf;

use crate::observe::{ContentStamp, Reveals, StatFacts};

/// The state of a path just before the run first changed it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Before {
    pub(crate) existed: bool,
    pub(crate) hash: Option<[u8; 32]>,
    /// `lstat` of the path then.
    pub(crate) facts: Option<StatFacts>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Content {
    pub(super) stamp: ContentStamp,
    /// Hashed at the first read (the file was recently modified).
    pub(super) hash: Option<[u8; 32]>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PathState {
    pub(super) content: Option<Content>,
    /// `[lstat, stat]` results, with how much of them was revealed.
    pub(super) stat: [Option<(StatFacts, Reveals)>; 2],
    pub(super) link: Option<Option<PathBuf>>,
    pub(super) absent: bool,
    pub(super) no_entry: bool,
    pub(super) fails: Option<i32>,
    pub(super) listed: bool,
    pub(super) replaceable: bool,
    /// Order of the first and of the last change.
    pub(super) first_change: Option<u64>,
    pub(super) last_change: u64,
    pub(super) before: Option<Before>,
}

impl PathState {
    pub(super) fn observed_before(&self) -> bool {
        self.content.is_some()
            || self.stat.iter().any(Option::is_some)
            || self.link.is_some()
            || self.absent
            || self.no_entry
            || self.fails.is_some()
    }
}

impl Content {
    /// The content of a file opened for writing without truncation (an
    /// append): what the run's own write kept, not something it read.
    pub(super) const KEPT: ContentStamp = (0, 0, 0, 0);

    pub(crate) fn stamp(&self) -> ContentStamp {
        self.stamp
    }

    /// The run read it (not only kept it by writing without truncation).
    pub(crate) fn was_read(&self) -> bool {
        self.stamp != Self::KEPT
    }
    pub(crate) fn hash(&self) -> Option<[u8; 32]> {
        self.hash
    }
}

impl PathState {
    pub(crate) fn content(&self) -> Option<Content> {
        self.content
    }
    pub(crate) fn stats(&self) -> [Option<(StatFacts, Reveals)>; 2] {
        self.stat
    }
    pub(crate) fn link_target(&self) -> Option<&Option<PathBuf>> {
        self.link.as_ref()
    }
    pub(crate) fn was_absent(&self) -> bool {
        self.absent
    }
    pub(crate) fn had_no_entry(&self) -> bool {
        self.no_entry
    }
    pub(crate) fn failed(&self) -> Option<i32> {
        self.fails
    }
    pub(crate) fn was_listed(&self) -> bool {
        self.listed
    }
    pub(crate) fn was_replaceable(&self) -> bool {
        self.replaceable
    }
    pub(crate) fn changes(&self) -> Option<(u64, u64)> {
        self.first_change.map(|first| (first, self.last_change))
    }
    pub(crate) fn before(&self) -> Before {
        self.before.unwrap_or_default()
    }
}
