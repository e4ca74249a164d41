//! From a stream of observed file accesses to what the run depended on and
//! what it changed.
//!
//! Every observation is kept with its *value at the time* (what `stat`
//! returned, the link target, the content stamp), and only while the run
//! had not yet changed that path itself: what a run sees of its own writes
//! is not an input, but what it saw *before* its first write is, and is
//! reported as such (a counter file read then rewritten, a config created
//! only if missing).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod base;
mod observed;
mod state;
pub(crate) use base::Base;
pub use observed::{ObservedInput, ObservedOutput};
pub use state::Before;
pub(crate) use state::{Content, PathState};

use crate::finish::Step;
use crate::observe::{self, content_stamp, Kind, Reveals, StatFacts};

/// A path a traced program can probe to say "what I depended on starts
/// here": everything recorded before (an interpreter's own start-up) is
/// dropped. It is under `/dev/null`, so it never exists.
pub const BEGIN_MARKER: &str = "/dev/null/.casher-begin";

/// A path casher's traced interpreter (a fresh one per `@cached` miss)
/// probes once it has imported the function's module: what was recorded so
/// far becomes the call's start ([`Base`]), as a fork server's import is
/// for each of its calls. The import's own writes (a log it truncates or
/// appends to, a file it creates) are the caller's import's too, not
/// outputs of the call: a hit restoring them replaced the file the
/// caller's own import had open.
pub const IMPORTED_MARKER: &str = "/dev/null/.casher-imported";

/// Clone: a session snapshots its server's recorder once, at its first
/// call (each call then starts on it, see [`Recorder::on`]).
#[derive(Default, Clone)]
pub struct Recorder {
    ignore: Vec<PathBuf>,
    allow_network: bool,
    /// (device, inode) of descriptors inherited from casher's caller that
    /// the command may reach through `/dev/fd/N` or `/proc/self/fd/N`.
    inherited: Vec<(u64, u64)>,
    states: HashMap<PathBuf, PathState>,
    order: Vec<PathBuf>,
    changes: u64,
    problems: Vec<String>,
    /// A session's call: the server's observations it started from, shared
    /// by every call rather than copied into each (`states` and `order`
    /// then hold what this call observed on top; see [`Base`]).
    base: Option<Arc<Base>>,
    /// [`BEGIN_MARKER`] is still to be honoured (casher's own traced
    /// interpreter, once): never for a command's or a call's own probes,
    /// which would drop what they read before.
    awaits_begin: bool,
    /// [`IMPORTED_MARKER`] is still to be honoured (with `awaits_begin`).
    awaits_import: bool,
}

impl Recorder {
    pub fn new(ignore: Vec<PathBuf>, allow_network: bool, inherited: Vec<(u64, u64)>) -> Self {
        Self {
            ignore,
            allow_network,
            inherited,
            ..Self::default()
        }
    }

    /// An open of `path` (a `/dev/fd/N`-like alias that stayed a kernel
    /// view: a pipe, a socket, a terminal): is it a descriptor inherited
    /// from the caller?
    pub fn check_inherited(&mut self, path: &Path) {
        if self.inherited.is_empty() || !(path.starts_with("/proc") || path.starts_with("/dev")) {
            return;
        }
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            if self.inherited.contains(&(meta.dev(), meta.ino())) {
                self.problem(format!(
                    "the command read {} (a descriptor inherited from its caller), whose data casher cannot record",
                    path.display()
                ));
            }
        }
    }

    /// A socket call reached `peer`.
    pub fn socket(&mut self, peer: &crate::net::Peer, verb: &str) {
        if !self.allow_network {
            self.problem(peer.describe(verb));
        }
    }

    /// Kernel and device views are not files (but `/dev/shm` is).
    pub fn ignored(&self, path: &Path) -> bool {
        if path.starts_with("/dev/shm") {
            return self
                .ignore
                .iter()
                .any(|p| p.starts_with("/dev/shm") && path.starts_with(p));
        }
        self.ignore.iter().any(|prefix| path.starts_with(prefix))
    }

    /// Says (once) why the run cannot be cached.
    pub fn problem(&mut self, reason: String) {
        if !self.problems.contains(&reason) {
            self.problems.push(reason);
        }
    }

    fn state(&mut self, path: &Path) -> Option<&mut PathState> {
        if self.ignored(path) {
            return None;
        }
        if !self.states.contains_key(path) {
            // A path the server observed starts from what it saw.
            let inherited = self.base.as_ref().and_then(|b| b.state(path)).cloned();
            if inherited.is_none() {
                self.order.push(path.to_path_buf());
            }
            self.states
                .insert(path.to_path_buf(), inherited.unwrap_or_default());
        }
        self.states.get_mut(path)
    }

    /// What is recorded of `path` so far.
    fn get(&self, path: &Path) -> Option<&PathState> {
        self.states
            .get(path)
            .or_else(|| self.base.as_ref().and_then(|b| b.state(path)))
    }

    /// State of a path the run has not changed yet (observations of a
    /// path after the run's own first change are not inputs).
    fn unchanged(&mut self, path: &Path) -> Option<&mut PathState> {
        self.state(path).filter(|s| s.first_change.is_none())
    }

    /// Content read (open for reading, exec); `meta` is its `stat` now.
    pub fn read(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let Some(s) = self.unchanged(path) else {
            return;
        };
        if s.content.is_none() {
            let stamp = content_stamp(meta);
            let hash = if observe::recent(&stamp, observe::now_ns()) {
                observe::hash_file(path)
            } else {
                None
            };
            s.content = Some(Content { stamp, hash });
        }
    }

    /// A `stat`-like call returned `meta`.
    pub fn stat(&mut self, path: &Path, follow: bool, meta: &std::fs::Metadata, reveals: Reveals) {
        self.facts(path, follow, StatFacts::of(meta), reveals);
    }

    pub fn facts(&mut self, path: &Path, follow: bool, facts: StatFacts, reveals: Reveals) {
        let Some(s) = self.unchanged(path) else {
            return;
        };
        let slot = &mut s.stat[usize::from(follow)];
        match slot {
            Some((_, r)) => *r = (*r).max(reveals),
            None => *slot = Some((facts, reveals)),
        }
    }

    /// A marker probe (it fails with `ENOENT` or `ENOTDIR`, depending on
    /// how the lookup is resolved), honoured once each and in order:
    /// [`crate::BEGIN_MARKER`] drops everything recorded so far,
    /// [`IMPORTED_MARKER`] makes it the base of what follows. True when
    /// `path` was one (it is no observation then).
    fn marker(&mut self, path: &Path) -> bool {
        if self.awaits_import && !self.awaits_begin && path == Path::new(IMPORTED_MARKER) {
            self.start_from_here();
            return true;
        }
        if !self.awaits_begin || path != Path::new(crate::BEGIN_MARKER) {
            return false;
        }
        self.awaits_begin = false;
        self.states.clear();
        self.order.clear();
        true
    }

    /// What was recorded so far becomes the base of what follows, as a
    /// session's server observations are for its calls.
    fn start_from_here(&mut self) {
        let snapshot = std::mem::take(self);
        let (inputs, _, _) = snapshot.clone().finish();
        let base = Arc::new(Base::new(snapshot, &inputs));
        *self = Recorder::on(&base);
    }

    /// Casher's own interpreter is importing the function's module (a fork
    /// server before its first call, a fresh interpreter before
    /// [`IMPORTED_MARKER`]): what it does then, the caller's import did.
    pub(crate) fn in_import(&self) -> bool {
        self.awaits_import && !self.awaits_begin
    }

    /// Honours [`BEGIN_MARKER`] once: for casher's own traced interpreter,
    /// whose start-up is not the call's; then [`IMPORTED_MARKER`] once.
    pub fn await_begin(mut self) -> Self {
        self.awaits_begin = true;
        self.awaits_import = true;
        self
    }

    /// Looked up and not found; `follow`: by a lookup that follows a
    /// final symlink (so a dangling one looks the same).
    pub fn absent(&mut self, path: &Path, follow: bool) {
        if self.marker(path) {
            return;
        }
        if let Some(s) = self.unchanged(path) {
            if follow {
                s.absent = true;
            } else {
                s.no_entry = true;
            }
        }
    }

    /// Looking the path up failed with `errno` (permission, loop, ...).
    pub fn fails(&mut self, path: &Path, errno: i32) {
        if self.marker(path) {
            return;
        }
        if let Some(s) = self.unchanged(path) {
            s.fails.get_or_insert(errno);
        }
    }

    /// `readlink` (or an open following a symlink) saw `target`.
    pub fn link(&mut self, path: &Path, target: Option<PathBuf>) {
        if let Some(s) = self.unchanged(path) {
            s.link.get_or_insert(target);
        }
    }

    pub fn listed(&mut self, path: &Path) {
        if let Some(s) = self.state(path) {
            s.listed = true;
        }
    }

    /// Opened a FIFO, socket or device the run did not create: what comes
    /// through it is not a file we can record.
    pub fn special(&mut self, path: &Path, kind: Kind) {
        if self.ignored(path) {
            return;
        }
        let created = self.get(path).is_some_and(|s| s.first_change.is_some());
        if !created {
            let what = match kind {
                Kind::Fifo => "a FIFO",
                Kind::Socket => "a socket",
                _ => "a device",
            };
            self.problem(format!(
                "the command opened {what} ({}), whose data casher cannot record",
                path.display()
            ));
        }
    }

    /// Called before a system call that may change `path` runs: what was
    /// there, with its content when the run read it before or `read_too`
    /// (the call itself uses the old content).
    pub fn snapshot(&self, path: &Path, read_too: bool) -> Option<Before> {
        if self.ignored(path) {
            return None;
        }
        let state = self.get(path);
        if let Some(before) = state.and_then(|s| s.before) {
            return Some(before);
        }
        let meta = std::fs::symlink_metadata(path).ok();
        let read_before = state.is_some_and(|s| s.content.is_some());
        Some(Before {
            existed: meta.is_some(),
            hash: match &meta {
                Some(m) if m.is_file() && (read_before || read_too) => observe::hash_file(path),
                _ => None,
            },
            facts: meta.as_ref().map(StatFacts::of),
        })
    }

    /// The change happened (the system call succeeded). With `also_read`,
    /// the old content (and mode) of an existing file was an input.
    pub fn mutated(&mut self, path: &Path, before: Before, also_read: bool) {
        if self.ignored(path) {
            return;
        }
        self.changes += 1;
        let seq = self.changes;
        if also_read && before.existed {
            if let Some(facts) = before.facts {
                if facts.kind == Kind::File {
                    self.facts(path, false, facts, Reveals::KindMode);
                    if let Some(s) = self.unchanged(path) {
                        if s.content.is_none() {
                            s.content = Some(Content {
                                stamp: Content::KEPT,
                                hash: before.hash,
                            });
                        }
                    }
                }
            }
        }
        let Some(s) = self.state(path) else {
            return;
        };
        if s.first_change.is_none() {
            s.before = Some(before);
            s.first_change = Some(seq);
        }
        s.last_change = seq;
    }

    /// Truncated or created without looking first (`O_TRUNC`, `creat`).
    pub fn replaced(&mut self, path: &Path) {
        if let Some(s) = self.state(path) {
            if s.first_change.is_none() && !s.observed_before() {
                s.replaceable = true;
            }
        }
    }

    /// The net effect, computed from the filesystem as the run left it.
    /// Returns inputs, outputs (in the order the run produced them) and
    /// reasons the run cannot be cached.
    pub fn finish(self) -> (Vec<ObservedInput>, Vec<ObservedOutput>, Vec<String>) {
        if let Some(base) = &self.base {
            let steps = base.merged(&self.states, &self.order);
            return crate::finish::finish(steps, self.problems);
        }
        let steps = self.order.iter().filter_map(|p| {
            let s = self.states.get(p)?;
            Some((p.as_path(), Step::Check(s)))
        });
        crate::finish::finish(steps, self.problems)
    }

    /// `finish` for a session's call: where it left a path as the server
    /// saw it and nothing on disk changed since the server's inputs were
    /// finished (`unchanged`), those inputs are this path's again, without
    /// checking the path once more. The cost is in what the call itself
    /// observed, not in the server's thousands of paths.
    pub(crate) fn finish_from(
        self,
        unchanged: bool,
    ) -> (Vec<ObservedInput>, Vec<ObservedOutput>, Vec<String>) {
        match &self.base {
            Some(base) if unchanged => {
                let steps = base.steps(&self.states, &self.order);
                crate::finish::finish(steps, self.problems)
            }
            _ => self.finish(),
        }
    }

    /// A session's call's recorder, on the server's `base`.
    pub(crate) fn on(base: &Arc<Base>) -> Recorder {
        let start = base.recorder();
        Recorder {
            ignore: start.ignore.clone(),
            allow_network: start.allow_network,
            inherited: start.inherited.clone(),
            states: HashMap::new(),
            order: Vec::new(),
            changes: start.changes,
            problems: start.problems.clone(),
            base: Some(Arc::clone(base)),
            awaits_begin: false,
            awaits_import: false,
        }
    }

    /// The paths observed so far.
    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.order
    }
}
