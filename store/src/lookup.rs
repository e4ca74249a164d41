//! Does a recorded variant still hold? Each input is checked for exactly
//! what the run observed (see `checks.rs`); this module holds the entry
//! point, the racy-clean rule and the reasons a lookup gives for a miss.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::checks::{check_input, InputCheck, StatMemo};
use crate::fsutil::Stamp;
use crate::id::ObjectId;
use crate::record::{Input, Variant};

/// A stat stamp whose mtime or ctime is not older than this before the
/// moment the content was hashed is never trusted: a later write within the
/// same timestamp tick (1 s on ext4 with 128-byte inodes, FAT's 2 s, or the
/// few ms a coarse kernel clock lags behind a precise one) would leave the
/// stamp unchanged with different content. Such inputs are re-hashed on
/// lookup until their stamp is old enough to be trusted.
pub const RACY_NS: i128 = 2_000_000_000;

/// The racy-clean rule: may `stamp`, observed with content hashed at
/// `hashed_at_ns` (ns since the epoch), stand for that content later?
pub fn stamp_trusted(stamp: &Stamp, hashed_at_ns: i128) -> bool {
    let newest = i128::from(stamp.mtime_ns.max(stamp.ctime_ns));
    newest + RACY_NS < hashed_at_ns
}

/// The stamp recorded for content whose stamp is not trusted: it never
/// equals a real one, so the lookup always hashes.
pub const UNKNOWN_STAMP: Stamp = Stamp {
    size: u64::MAX,
    mtime_ns: 0,
    ctime_ns: 0,
    ino: 0,
};

/// Answers "what is this code's hash now?" for `Input::Code`. The store does
/// not know how code is hashed; its callers (the CLI, the Python package)
/// pass the analyzer's answer in through this.
pub trait CodeOracle {
    fn code_hash(&self, name: &str, path: Option<&Path>) -> Option<String>;

    /// The digest of a context value (`Input::Context`: an environment
    /// variable, the umask) now. `None`: unknown, which fails the input.
    fn context(&self, _name: &str) -> Option<ObjectId> {
        None
    }
}

/// For callers that record no code inputs: every code input is a change.
pub struct NoCode;

impl CodeOracle for NoCode {
    fn code_hash(&self, _name: &str, _path: Option<&Path>) -> Option<String> {
        None
    }
}

/// Why a lookup missed: the feature behind `--explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No variant was ever recorded for this key.
    NotSeen,
    /// The newest variant's first input that no longer holds.
    Changed(Change),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// A path, or a code name.
    pub subject: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Modified {
        before: String,
        now: String,
    },
    Deleted,
    Appeared,
    Listing,
    Code {
        before: String,
        now: Option<String>,
    },
    Unreadable(String),
    OutputMissing,
    /// What `stat` shows changed (`what`: e.g. "mode 644 -> 755").
    Metadata(String),
    /// A symlink now points elsewhere (or is no longer/now a symlink).
    LinkTarget {
        before: String,
        now: String,
    },
    /// Resolving the path now fails differently (or succeeds).
    Resolution {
        before: String,
        now: String,
    },
    /// A context value (environment variable, umask) differs.
    Context,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::NotSeen => f.write_str("never run before"),
            Miss::Changed(change) => write!(f, "{change}"),
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.subject;
        match &self.kind {
            ChangeKind::Modified { before, now } => {
                write!(
                    f,
                    "{s} changed (content {} -> {})",
                    short(before),
                    short(now)
                )
            }
            ChangeKind::Deleted => write!(f, "{s} was deleted"),
            ChangeKind::Appeared => write!(f, "{s} now exists (it was absent)"),
            ChangeKind::Listing => write!(f, "directory {s} has different entries"),
            ChangeKind::Code { before, now } => {
                let now = now.as_deref().map_or("gone".to_owned(), short);
                let before = short(before);
                if let Some(rest) = s.strip_prefix("definition:") {
                    // definition:<function>:<qualified name>:<file>
                    let mut parts = rest.splitn(3, ':');
                    let function = parts.next().unwrap_or("");
                    let name = parts.next().unwrap_or("");
                    let file = parts.next().unwrap_or("");
                    write!(f, "code {name} in {file}, reached from {function}, changed (hash {before} -> {now})")
                } else if let Some(state) = s.strip_prefix("python:") {
                    write!(f, "the caller's {state} generator is in another state")
                } else if let Some(function) = s.strip_prefix("function:") {
                    write!(
                        f,
                        "the code reachable from {function} changed (hash {before} -> {now})"
                    )
                } else {
                    write!(f, "code {s} changed (hash {before} -> {now})")
                }
            }
            ChangeKind::Unreadable(why) => write!(f, "{s} cannot be read: {why}"),
            ChangeKind::OutputMissing => {
                write!(f, "a stored output of {s} is missing from the store")
            }
            ChangeKind::Metadata(what) => write!(f, "{s} changed ({what})"),
            ChangeKind::LinkTarget { before, now } => {
                write!(f, "symlink {s} changed (target {before} -> {now})")
            }
            ChangeKind::Resolution { before, now } => {
                write!(f, "looking up {s} now gives {now} (it gave {before})")
            }
            ChangeKind::Context => write!(f, "{s} differs"),
        }
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}

/// Outcome of checking one variant.
pub(crate) enum Check {
    Holds {
        /// Inputs whose stamp changed while the content did not: the record
        /// can be refreshed so the next lookup takes the fast path.
        refreshed: Option<Vec<Input>>,
    },
    Fails(Change),
}

/// Hash of a directory listing: its sorted entry names with their types
/// (`find -type f` reads them from the listing), length-prefixed, leaving
/// out `own`: the names the run itself writes or deletes there. Those are
/// restored on a hit, so whether they exist beforehand must not decide the
/// lookup (or deleting an output would make every later lookup a miss).
pub fn dir_listing_hash(path: &Path, own: &HashSet<Vec<u8>>) -> std::io::Result<ObjectId> {
    let mut names: Vec<(Vec<u8>, u8)> = Vec::new();
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name().as_bytes().to_vec();
        if own.contains(&name) {
            continue;
        }
        // The type comes from the listing itself (d_type) on the common
        // filesystems: no extra stat.
        let kind = entry
            .file_type()
            .map(|t| crate::record::FileKind::of(t) as u8)
            .unwrap_or(u8::MAX);
        names.push((name, kind));
    }
    names.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"casher.dir-listing.v2");
    for (name, kind) in names {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(&name);
        hasher.update(&[kind]);
    }
    Ok(hasher.finalize().into())
}

/// Names of outputs, by parent directory.
pub fn output_names(outputs: &[crate::record::Output]) -> HashMap<PathBuf, HashSet<Vec<u8>>> {
    let mut map: HashMap<PathBuf, HashSet<Vec<u8>>> = HashMap::new();
    for output in outputs {
        let path = output.path().path();
        if let (Some(parent), Some(name)) = (path.parent(), path.file_name()) {
            map.entry(parent.to_path_buf())
                .or_default()
                .insert(name.as_bytes().to_vec());
        }
    }
    map
}

pub(crate) fn check_variant(variant: &Variant, oracle: &dyn CodeOracle) -> Check {
    let mut refreshed: Option<Vec<Input>> = None;
    // Only directory inputs need the names of the run's own outputs.
    let own = if variant
        .inputs
        .iter()
        .any(|i| matches!(i, Input::Dir { .. }))
    {
        output_names(&variant.outputs)
    } else {
        HashMap::new()
    };
    // One stat per path and link mode, shared by every input about it.
    let mut memo = StatMemo::default();
    for (i, input) in variant.inputs.iter().enumerate() {
        match check_input(input, oracle, &own, &mut memo) {
            InputCheck::Same => {}
            InputCheck::SameContentNewStamp(stamp) => {
                let inputs = refreshed.get_or_insert_with(|| variant.inputs.clone());
                if let Input::File { stamp: s, .. } = &mut inputs[i] {
                    *s = stamp;
                }
            }
            InputCheck::Changed(change) => return Check::Fails(change),
        }
    }
    Check::Holds { refreshed }
}
