//! What an observation means: which parts of a `stat` a program could act
//! on (and so must hold on lookup), and the run's context that is not a
//! file (environment, umask), checked per variant.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

use casher_store::{CodeOracle, FileKind, Input, Meta, ObjectId};
use casher_tracer::{Kind, Reveals, StatFacts};

fn kind(kind: Kind) -> FileKind {
    match kind {
        Kind::File => FileKind::File,
        Kind::Dir => FileKind::Dir,
        Kind::Symlink => FileKind::Symlink,
        Kind::Fifo => FileKind::Fifo,
        Kind::Socket => FileKind::Socket,
        Kind::CharDevice => FileKind::CharDevice,
        Kind::BlockDevice => FileKind::BlockDevice,
    }
}

/// The fields of a `stat` result that must hold on lookup:
/// - a call that revealed only existence (`unlink` succeeded): the type;
/// - `access`, `chdir`, `exec`: type and permissions;
/// - a full `stat` of a file: type, permissions, size, mtime, owner (what
///   `ls -l`, `make`, `tar` and Python's bytecode check use);
/// - of a directory: type, permissions, owner, size and mtime for `casher
///   run` (`stat dir`, `ls -ld`); not its size and mtime where the run
///   itself adds or removes entries (`relate_output_mtimes`): its own
///   writes (or a hit's restore) change them every time. Not for
///   `@cached`, where only Python's import system stats directories, to
///   refresh its own caches;
/// - of a symlink (`lstat`): type, size (the target's length), mtime.
///
/// Never the inode number, link count, atime or ctime (see
/// docs/limitations.md).
pub fn observed_meta(facts: &StatFacts, reveals: Reveals, dir_times: bool) -> Meta {
    let mut meta = Meta {
        kind: kind(facts.kind),
        mode: None,
        size: None,
        mtime_ns: None,
        mtime_window: None,
        owner: None,
    };
    if reveals >= Reveals::KindMode && facts.kind != Kind::Symlink {
        meta.mode = Some(facts.mode);
    }
    if reveals == Reveals::All {
        match facts.kind {
            Kind::Dir => {
                meta.owner = Some((facts.uid, facts.gid));
                if dir_times {
                    meta.size = Some(facts.size);
                    meta.mtime_ns = Some(facts.mtime_ns);
                }
            }
            Kind::Symlink => {
                meta.size = Some(facts.size);
                meta.mtime_ns = Some(facts.mtime_ns);
            }
            Kind::File => {
                meta.size = Some(facts.size);
                meta.mtime_ns = Some(facts.mtime_ns);
                meta.owner = Some((facts.uid, facts.gid));
            }
            _ => meta.owner = Some((facts.uid, facts.gid)),
        }
    }
    meta
}

/// A path the run looked at and then rewrote (an output) keeps its mtime
/// as a window among the exact mtimes of the run's other inputs, instead
/// of the exact value, which the run's own write (or a hit's restore)
/// replaces every time: `gcc -o main.o` stats `main.o` first, and must
/// still hit; `make` compares a target with its prerequisites, and that
/// order is what is kept.
pub fn relate_output_mtimes(inputs: &mut [Input], outputs: &[casher_store::Output]) {
    let written: std::collections::HashSet<&casher_store::StoredPath> =
        outputs.iter().map(casher_store::Output::path).collect();
    // Directories the run adds entries to or removes entries from: those
    // of its outputs, and of paths it found free of any entry (where it may
    // have created and removed a temp file).
    let no_entry = inputs.iter().filter_map(|i| match i {
        Input::NoEntry { path } => Some(path),
        _ => None,
    });
    let parents: std::collections::HashSet<casher_store::StoredPath> = outputs
        .iter()
        .map(casher_store::Output::path)
        .chain(no_entry)
        .filter_map(|p| p.path().parent().map(casher_store::StoredPath::new))
        .collect();
    let rewritten = |path: &casher_store::StoredPath, meta: &Meta| {
        written.contains(path) || (meta.kind == FileKind::Dir && parents.contains(path))
    };
    let mut anchors: Vec<i64> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::Meta { path, meta, .. } if !rewritten(path, meta) => meta.mtime_ns,
            _ => None,
        })
        .collect();
    anchors.sort_unstable();
    anchors.dedup();
    for input in inputs.iter_mut() {
        if let Input::Meta { path, meta, .. } = input {
            if let (true, Some(mtime)) = (rewritten(path, meta), meta.mtime_ns) {
                meta.mtime_ns = None;
                if meta.kind == FileKind::Dir {
                    meta.size = None;
                } else {
                    meta.mtime_window = Some(casher_store::MtimeWindow::of(mtime, &anchors));
                }
            }
        }
    }
}

/// A directory's times change with any entry: they are checked last, so a
/// miss names the entry that changed rather than its directory.
pub(crate) fn directory_times_last(inputs: Vec<Input>) -> Vec<Input> {
    let (dirs, mut rest): (Vec<Input>, Vec<Input>) = inputs
        .into_iter()
        .partition(|i| matches!(i, Input::Meta { meta, .. } if meta.kind == FileKind::Dir && meta.mtime_ns.is_some()));
    rest.extend(dirs);
    rest
}

// The tracer hashes files read within `RECENT_NS` of their last change as
// they are opened; that must cover every stamp the store will not trust.
const _: () = assert!(casher_tracer::RECENT_NS >= casher_store::RACY_NS);

/// Environment variables that choose which program runs and how it
/// behaves broadly: part of every `casher run` lookup by default.
pub const DEFAULT_ENV: &[&str] = &[
    "PATH",
    "LD_LIBRARY_PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "PYTHONHOME",
    "LANG",
    "LANGUAGE",
    "TZ",
    "PWD",
];

/// The name of the context entry covering every `LC_*` variable at once
/// (one that appears later must change it too).
pub const LOCALE_GROUP: &str = "env:LC_*";

/// The digest of a context value (`None`: unset), keyed with the store's
/// secret: values are never stored, and their digests cannot be matched
/// against guesses by whoever reads the store without the secret.
pub fn value_digest(secret: &[u8; 32], value: Option<&[u8]>) -> ObjectId {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(b"casher.context-value.v1");
    match value {
        Some(v) => {
            hasher.update(&[1]);
            hasher.update(&(v.len() as u64).to_le_bytes());
            hasher.update(v);
        }
        None => {
            hasher.update(&[0]);
        }
    }
    hasher.finalize().into()
}

/// A field of `/proc/self/status`.
fn status(field: &str) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let value = status.lines().find_map(|l| l.strip_prefix(field))?;
    Some(value.trim().to_owned())
}

fn umask() -> Option<u32> {
    u32::from_str_radix(&status("Umask:")?, 8).ok()
}

/// The CPUs this process may run on. A traced run is told them (its
/// `sched_getaffinity`, see the tracer's pinning), so what it prints or
/// computes may depend on them (`nproc`, a thread pool's size).
fn cpus() -> Option<String> {
    status("Cpus_allowed_list:")
}

/// The context of a `casher run` invocation: each selected environment
/// variable, the `LC_*` group, the umask and the CPUs it may use, as
/// (name, digest).
#[derive(Debug, Clone)]
pub struct RunContext {
    entries: Vec<(String, ObjectId)>,
}

impl RunContext {
    /// From this process's environment, with `extra` (`--env`) names.
    /// `secret` keys the digests (the store's secret).
    pub fn current(extra: &[String], secret: &[u8; 32]) -> Self {
        let vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        Self::from_env(&vars, extra, umask(), cpus().as_deref(), secret)
    }

    fn from_env(
        vars: &[(OsString, OsString)],
        extra: &[String],
        umask: Option<u32>,
        cpus: Option<&str>,
        secret: &[u8; 32],
    ) -> Self {
        let bytes = |v: &OsStr| v.as_bytes().to_vec();
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k.as_os_str() == name)
                .map(|(_, v)| bytes(v))
        };
        let mut names: Vec<&str> = DEFAULT_ENV.to_vec();
        names.extend(extra.iter().map(String::as_str));
        names.sort_unstable();
        names.dedup();
        let mut entries: Vec<(String, ObjectId)> = names
            .into_iter()
            .map(|name| {
                (
                    format!("env:{name}"),
                    value_digest(secret, get(name).as_deref()),
                )
            })
            .collect();
        let mut locale: Vec<(Vec<u8>, Vec<u8>)> = vars
            .iter()
            .filter(|(k, _)| k.as_bytes().starts_with(b"LC_"))
            .map(|(k, v)| (bytes(k), bytes(v)))
            .collect();
        locale.sort();
        let mut joined = Vec::new();
        for (k, v) in locale {
            for part in [k, v] {
                joined.extend_from_slice(&(part.len() as u64).to_le_bytes());
                joined.extend_from_slice(&part);
            }
        }
        entries.push((LOCALE_GROUP.to_owned(), value_digest(secret, Some(&joined))));
        let umask = umask.map(|u| u.to_le_bytes().to_vec());
        entries.push(("umask".to_owned(), value_digest(secret, umask.as_deref())));
        entries.push((
            "cpus".to_owned(),
            value_digest(secret, cpus.map(str::as_bytes)),
        ));
        Self { entries }
    }

    /// The entries as variant inputs.
    pub fn inputs(&self) -> Vec<Input> {
        self.entries
            .iter()
            .map(|(name, digest)| Input::Context {
                name: name.clone(),
                digest: *digest,
            })
            .collect()
    }
}

impl CodeOracle for RunContext {
    fn code_hash(&self, _name: &str, _path: Option<&std::path::Path>) -> Option<String> {
        None
    }

    fn context(&self, name: &str) -> Option<ObjectId> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, digest)| *digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(vars: &[(&str, &str)], extra: &[&str], umask: u32) -> RunContext {
        let vars: Vec<(OsString, OsString)> = vars
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        RunContext::from_env(&vars, &extra, Some(umask), Some("0-1"), &[9; 32])
    }

    #[test]
    fn every_selected_value_changes_its_entry() {
        let base = context(&[("PATH", "/bin"), ("HOME", "/h")], &[], 0o22);
        let digest = |c: &RunContext, n: &str| c.context(n).unwrap();
        let path2 = context(&[("PATH", "/usr/bin:/bin")], &[], 0o22);
        assert_ne!(digest(&base, "env:PATH"), digest(&path2, "env:PATH"));
        // HOME is not selected by default; --env selects it.
        assert!(base.context("env:HOME").is_none());
        let with_home = context(&[("HOME", "/h")], &["HOME"], 0o22);
        assert!(with_home.context("env:HOME").is_some());
        // A new LC_* variable changes the locale group.
        let lc = context(&[("PATH", "/bin"), ("LC_ALL", "C")], &[], 0o22);
        assert_ne!(digest(&base, LOCALE_GROUP), digest(&lc, LOCALE_GROUP));
        let umask = context(&[("PATH", "/bin")], &[], 0o77);
        assert_ne!(digest(&base, "umask"), digest(&umask, "umask"));
        // A caller restricted to other CPUs (`taskset`).
        let vars = [(OsString::from("PATH"), OsString::from("/bin"))];
        let one_cpu = RunContext::from_env(&vars, &[], Some(0o22), Some("1"), &[9; 32]);
        assert_ne!(digest(&base, "cpus"), digest(&one_cpu, "cpus"));
        // Unset and empty differ.
        let empty = context(&[("PATH", "/bin"), ("TZ", "")], &[], 0o22);
        assert_ne!(digest(&base, "env:TZ"), digest(&empty, "env:TZ"));
        // Another store's secret gives other digests for the same value.
        let vars = [(OsString::from("PATH"), OsString::from("/bin"))];
        let other = RunContext::from_env(&vars, &[], Some(0o22), Some("0-1"), &[8; 32]);
        assert_ne!(digest(&base, "env:PATH"), digest(&other, "env:PATH"));
    }

    #[test]
    fn directory_times_only_for_commands() {
        let dir = tempfile::tempdir().unwrap();
        let facts = StatFacts::of(&std::fs::metadata(dir.path()).unwrap());
        let meta = observed_meta(&facts, Reveals::All, false);
        assert_eq!(meta.kind, FileKind::Dir);
        assert!(meta.size.is_none() && meta.mtime_ns.is_none());
        assert!(meta.mode.is_some());
        assert!(observed_meta(&facts, Reveals::All, true).mtime_ns.is_some());
    }
}
