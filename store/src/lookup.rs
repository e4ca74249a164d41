//! Does a recorded variant still hold? Cheapest check first: existence and
//! size, then the (size, mtime, ctime, inode) stamp, and only when the stamp
//! differs, the content hash.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::fsutil::{hash_file, Stamp};
use crate::id::ObjectId;
use crate::record::{Input, StoredPath, Variant};

/// Answers "what is this code's hash now?" for `Input::Code`. The store does
/// not know how code is hashed; its callers (the CLI, the Python package)
/// pass the analyzer's answer in through this.
pub trait CodeOracle {
    fn code_hash(&self, name: &str, path: Option<&Path>) -> Option<String>;
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
    Modified { before: String, now: String },
    Deleted,
    Appeared,
    Listing,
    Code { before: String, now: Option<String> },
    Unreadable(String),
    OutputMissing,
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

/// Hash of a directory listing: its sorted entry names, length-prefixed,
/// leaving out `own`: the names the run itself writes or deletes there.
/// Those are restored on a hit, so whether they exist beforehand must not
/// decide the lookup (or deleting an output would make every later
/// lookup a miss).
pub fn dir_listing_hash(path: &Path, own: &HashSet<Vec<u8>>) -> std::io::Result<ObjectId> {
    let mut names: Vec<Vec<u8>> = std::fs::read_dir(path)?
        .map(|e| e.map(|e| e.file_name().as_bytes().to_vec()))
        .filter(|name| name.as_ref().map_or(true, |n| !own.contains(n)))
        .collect::<std::io::Result<_>>()?;
    names.sort_unstable();
    let mut hasher = blake3::Hasher::new();
    hasher.update(b"casher.dir-listing.v1");
    for name in names {
        hasher.update(&(name.len() as u64).to_le_bytes());
        hasher.update(&name);
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
    for (i, input) in variant.inputs.iter().enumerate() {
        match check_input(input, oracle, &own) {
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

enum InputCheck {
    Same,
    SameContentNewStamp(Stamp),
    Changed(Change),
}

fn changed(path: &StoredPath, kind: ChangeKind) -> InputCheck {
    InputCheck::Changed(Change {
        subject: path.display(),
        kind,
    })
}

fn check_input(
    input: &Input,
    oracle: &dyn CodeOracle,
    own: &HashMap<PathBuf, HashSet<Vec<u8>>>,
) -> InputCheck {
    match input {
        Input::File { path, hash, stamp } => {
            let p = path.path();
            let meta = match std::fs::metadata(&p) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return changed(path, ChangeKind::Deleted)
                }
                Err(e) => return changed(path, ChangeKind::Unreadable(e.to_string())),
            };
            let now = Stamp::of(&meta);
            if now == *stamp {
                return InputCheck::Same;
            }
            if meta.is_dir() {
                return changed(
                    path,
                    ChangeKind::Unreadable("is now a directory".to_owned()),
                );
            }
            if now.size != stamp.size {
                let now_hash = hash_file(&p)
                    .map(|(h, _)| ObjectId::from(h).hex())
                    .unwrap_or_default();
                return changed(
                    path,
                    ChangeKind::Modified {
                        before: hash.hex(),
                        now: now_hash,
                    },
                );
            }
            match hash_file(&p) {
                Ok((h, _)) if ObjectId::from(h) == *hash => InputCheck::SameContentNewStamp(now),
                Ok((h, _)) => changed(
                    path,
                    ChangeKind::Modified {
                        before: hash.hex(),
                        now: ObjectId::from(h).hex(),
                    },
                ),
                Err(e) => changed(path, ChangeKind::Unreadable(e.to_string())),
            }
        }
        // "Absent" means resolving the path finds nothing (a dangling
        // symlink included), as the run's stat/open saw it.
        Input::Absent { path } => match std::fs::metadata(path.path()) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => InputCheck::Same,
            Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => InputCheck::Same,
            _ => changed(path, ChangeKind::Appeared),
        },
        Input::Dir { path, hash } => match dir_listing_hash(
            &path.path(),
            own.get(&path.path()).unwrap_or(&HashSet::new()),
        ) {
            Ok(now) if now == *hash => InputCheck::Same,
            Ok(_) => changed(path, ChangeKind::Listing),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                changed(path, ChangeKind::Deleted)
            }
            Err(e) => changed(path, ChangeKind::Unreadable(e.to_string())),
        },
        Input::Code { name, path, hash } => {
            let p = path.as_ref().map(StoredPath::path);
            let now = oracle.code_hash(name, p.as_deref());
            if now.as_deref() == Some(hash.as_str()) {
                InputCheck::Same
            } else {
                InputCheck::Changed(Change {
                    subject: name.clone(),
                    kind: ChangeKind::Code {
                        before: hash.clone(),
                        now,
                    },
                })
            }
        }
    }
}
