//! From a stream of observed file accesses to the run's net effect: which
//! paths it depended on (inputs) and what it changed (outputs).
//!
//! - A path read, probed or listed before the run itself changed it is an
//!   input. A path the run created and then read is not: it is its own output.
//! - A path the run changed is an output with its final state: a temp file
//!   renamed over a target yields only the target; a file created and deleted
//!   yields nothing; a file that existed and was deleted is a deletion.
//! - A file read and later overwritten is an input with its content from
//!   before the first change (hashed at that moment).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A path a traced program can probe to say "what I depended on starts
/// here": everything recorded before (an interpreter's own start-up) is
/// dropped. It is under `/dev/null`, so it never exists.
pub const BEGIN_MARKER: &str = "/dev/null/.casher-begin";

/// An input of the run, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedInput {
    /// A file whose content mattered. `before` is its content hash from
    /// before the run changed it (only for files the run read, then changed).
    File {
        path: PathBuf,
        before: Option<[u8; 32]>,
    },
    /// A path looked for and not found.
    Absent { path: PathBuf },
    /// A directory whose entries were listed.
    Dir { path: PathBuf },
}

/// An output of the run: the final state of a path it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObservedOutput {
    File { path: PathBuf },
    Dir { path: PathBuf },
    Symlink { path: PathBuf, target: PathBuf },
    Deleted { path: PathBuf },
}

/// The state of a path just before the run first changed it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Before {
    existed: bool,
    hash: Option<[u8; 32]>,
}

#[derive(Debug, Default, Clone)]
struct PathState {
    read: bool,
    probed_exists: bool,
    probed_absent: bool,
    listed: bool,
    mutated: bool,
    before: Option<Before>,
}

/// Clone: a session's calls each start from the server's observations.
#[derive(Default, Clone)]
pub struct Recorder {
    ignore: Vec<PathBuf>,
    states: HashMap<PathBuf, PathState>,
    order: Vec<PathBuf>,
}

fn hash_file(path: &Path) -> Option<[u8; 32]> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_mmap(path).ok()?;
    Some(*hasher.finalize().as_bytes())
}

impl Recorder {
    pub fn new(ignore: Vec<PathBuf>) -> Self {
        Self {
            ignore,
            ..Self::default()
        }
    }

    pub fn ignored(&self, path: &Path) -> bool {
        self.ignore.iter().any(|prefix| path.starts_with(prefix))
    }

    fn state(&mut self, path: &Path) -> Option<&mut PathState> {
        if self.ignored(path) {
            return None;
        }
        if !self.states.contains_key(path) {
            self.order.push(path.to_path_buf());
        }
        Some(self.states.entry(path.to_path_buf()).or_default())
    }

    /// Content was read (open for reading, exec).
    pub fn read(&mut self, path: &Path) {
        if let Some(s) = self.state(path) {
            if !s.mutated {
                s.read = true;
            }
        }
    }

    /// A stat/access-like probe and its answer.
    pub fn probe(&mut self, path: &Path, exists: bool) {
        if path == Path::new(BEGIN_MARKER) {
            self.states.clear();
            self.order.clear();
            return;
        }
        if let Some(s) = self.state(path) {
            if s.mutated {
                return;
            }
            if exists {
                s.probed_exists = true;
            } else if !s.probed_exists && !s.read {
                s.probed_absent = true;
            }
        }
    }

    pub fn listed(&mut self, path: &Path) {
        if let Some(s) = self.state(path) {
            s.listed = true;
        }
    }

    /// Called before a system call that may change `path` runs: remembers
    /// what was there (and its content, if the run read it before).
    pub fn snapshot(&self, path: &Path) -> Option<Before> {
        if self.ignored(path) {
            return None;
        }
        if let Some(s) = self.states.get(path) {
            if let Some(before) = s.before {
                return Some(before);
            }
        }
        let meta = std::fs::symlink_metadata(path).ok();
        let read_before = self.states.get(path).is_some_and(|s| s.read);
        Some(Before {
            existed: meta.is_some(),
            hash: match meta {
                Some(m) if m.is_file() && read_before => hash_file(path),
                _ => None,
            },
        })
    }

    /// For an open that both reads and changes (`O_RDWR`/`O_APPEND` without
    /// `O_TRUNC`): the old content is an input.
    pub fn snapshot_read(&self, path: &Path) -> Option<Before> {
        let meta = std::fs::symlink_metadata(path).ok();
        if self.ignored(path) {
            return None;
        }
        if let Some(before) = self.states.get(path).and_then(|s| s.before) {
            return Some(before);
        }
        Some(Before {
            existed: meta.is_some(),
            hash: match meta {
                Some(m) if m.is_file() => hash_file(path),
                _ => None,
            },
        })
    }

    /// The change happened (the system call succeeded).
    pub fn mutated(&mut self, path: &Path, before: Before, also_read: bool) {
        if let Some(s) = self.state(path) {
            if !s.mutated {
                s.before = Some(before);
                if also_read && before.existed {
                    s.read = true;
                }
            }
            s.mutated = true;
        }
    }

    /// The net effect, computed from the filesystem as the run left it.
    /// Returns inputs, outputs and reasons the run cannot be cached.
    pub fn finish(
        self,
        started_ns: i128,
    ) -> (Vec<ObservedInput>, Vec<ObservedOutput>, Vec<String>) {
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        let mut problems = Vec::new();
        let changed_during_run = |meta: &std::fs::Metadata| {
            let mtime = i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec());
            let ctime = i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec());
            mtime >= started_ns || ctime >= started_ns
        };
        for path in self.order {
            let Some(s) = self.states.get(&path) else {
                continue;
            };
            if s.mutated {
                let before = s.before.unwrap_or_default();
                if s.read {
                    inputs.push(ObservedInput::File {
                        path: path.clone(),
                        before: before.hash,
                    });
                }
                match std::fs::symlink_metadata(&path) {
                    Ok(meta) if meta.file_type().is_symlink() => {
                        if let Ok(target) = std::fs::read_link(&path) {
                            outputs.push(ObservedOutput::Symlink { path, target });
                        }
                    }
                    Ok(meta) if meta.is_dir() => {
                        if !before.existed {
                            outputs.push(ObservedOutput::Dir { path });
                        }
                    }
                    Ok(_) => outputs.push(ObservedOutput::File { path }),
                    Err(_) if before.existed => outputs.push(ObservedOutput::Deleted { path }),
                    Err(_) => {}
                }
                continue;
            }
            let meta = std::fs::metadata(&path);
            if s.listed {
                match &meta {
                    Ok(m) if m.is_dir() => inputs.push(ObservedInput::Dir { path: path.clone() }),
                    _ => problems.push(format!(
                        "{} was removed while the command ran",
                        path.display()
                    )),
                }
            }
            if s.read || s.probed_exists {
                match &meta {
                    Ok(m) if m.is_file() => {
                        if changed_during_run(m) {
                            problems
                                .push(format!("{} changed while the command ran", path.display()));
                        }
                        inputs.push(ObservedInput::File { path, before: None });
                    }
                    Ok(_) => {}
                    Err(_) => problems.push(format!(
                        "{} was removed while the command ran",
                        path.display()
                    )),
                }
                continue;
            }
            if s.probed_absent {
                if std::fs::metadata(&path).is_ok() {
                    problems.push(format!(
                        "{} appeared while the command ran (created outside the traced processes)",
                        path.display()
                    ));
                } else {
                    inputs.push(ObservedInput::Absent { path });
                }
            }
        }
        // Parents before children for creation, children before parents for deletion.
        outputs.sort_by_key(output_order);
        (inputs, outputs, problems)
    }
}

fn output_order(o: &ObservedOutput) -> (u8, std::cmp::Reverse<usize>, PathBuf) {
    match o {
        ObservedOutput::Dir { path } => (0, std::cmp::Reverse(0), path.clone()),
        ObservedOutput::File { path } | ObservedOutput::Symlink { path, .. } => {
            (1, std::cmp::Reverse(0), path.clone())
        }
        ObservedOutput::Deleted { path } => (
            2,
            std::cmp::Reverse(path.components().count()),
            path.clone(),
        ),
    }
}
