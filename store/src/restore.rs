//! Replaying a variant's filesystem effects, only inside allowed roots.
//!
//! A record names absolute paths. Before anything is written, every path is
//! checked: it must be absolute, contain no `..`, lie under an allowed root,
//! and reach its parent directory without passing through a symlink below
//! that root. Then every write goes through directory descriptors walked
//! from the root, so the check cannot be raced. This matters most once
//! records come from a shared store.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::fsutil::{hash_reader, temp_name};
use crate::id::ObjectId;
use crate::interrupt::{self, Journal, SignalGuard};
use crate::record::{Output, Variant};
use crate::walk::{self, Dir, Kind};

/// Where restores may write.
#[derive(Debug, Clone)]
pub struct AllowedRoots {
    roots: Vec<PathBuf>,
}

impl AllowedRoots {
    /// The working directory's tree, the system temp directory, the user's
    /// home, and every path in `CASHER_ALLOWED_ROOTS` (colon-separated).
    pub fn default_for(cwd: &Path) -> Self {
        let mut roots = vec![cwd.to_path_buf(), std::env::temp_dir()];
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            roots.push(PathBuf::from(home));
        }
        if let Some(extra) = std::env::var_os("CASHER_ALLOWED_ROOTS") {
            roots.extend(std::env::split_paths(&extra).filter(|p| p.is_absolute()));
        }
        Self::new(roots)
    }

    pub fn new(roots: Vec<PathBuf>) -> Self {
        let mut all = Vec::new();
        for root in roots {
            if let Ok(real) = std::fs::canonicalize(&root) {
                if !all.contains(&real) {
                    all.push(real);
                }
            }
            if !all.contains(&root) {
                all.push(root);
            }
        }
        Self { roots: all }
    }

    /// The deepest allowed root strictly above `path`.
    fn root_of(&self, path: &Path) -> Option<PathBuf> {
        self.roots
            .iter()
            .filter(|r| path.starts_with(r) && path != r.as_path())
            .max_by_key(|r| r.components().count())
            .cloned()
    }

    /// Checks a target path; returns it unchanged when it is safe to write.
    pub fn check(&self, path: &Path) -> Result<()> {
        let forbid = |reason: &str| StoreError::Forbidden {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        if !path.is_absolute() {
            return Err(forbid("the recorded path is not absolute"));
        }
        if path
            .components()
            .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
        {
            return Err(forbid("the path contains `..` or `.`"));
        }
        let Some(root) = self
            .roots
            .iter()
            .filter(|r| path.starts_with(r) && path != r.as_path())
            .max_by_key(|r| r.components().count())
        else {
            return Err(forbid("it is outside the allowed roots"));
        };
        // Every directory between the root and the file must be a real
        // directory (or not exist yet): a symlink could lead anywhere.
        let mut current = root.clone();
        let relative = path.strip_prefix(root).unwrap_or(path);
        let parts: Vec<_> = relative.components().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            current.push(part);
            match std::fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(forbid("a directory on the way is a symlink"));
                }
                Ok(meta) if !meta.is_dir() => return Err(forbid("a parent is not a directory")),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        Ok(())
    }
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    pub written: usize,
    pub unchanged: usize,
    pub deleted: usize,
}

/// Restores every output of `variant`, in the recorded order (parents
/// before children, so restored mtimes match a plain run). All paths are
/// checked before the first write, so a refused entry writes nothing; then
/// each is reached from its root by directory descriptors, never through
/// a symlink (see `walk.rs`), so a symlink planted during the restore
/// cannot redirect a write. Files are written to a temp file in their
/// directory and renamed into place; setuid, setgid and sticky bits are
/// never restored.
pub fn restore(
    backend: &dyn Backend,
    variant: &Variant,
    roots: &AllowedRoots,
) -> Result<RestoreReport> {
    let mut plans = Vec::with_capacity(variant.outputs.len());
    for output in &variant.outputs {
        let path = output.path().path();
        roots.check(&path)?;
        let root = roots.root_of(&path).unwrap_or_else(|| PathBuf::from("/"));
        plans.push((output, path, root));
    }
    let mut report = RestoreReport::default();
    if plans.is_empty() {
        return Ok(report);
    }
    let journal_dir = backend.journal_dir();
    if let Some(dir) = &journal_dir {
        interrupt::clean_dead(dir);
    }
    let _signals = SignalGuard::install();
    let mut journal = Journal::new(journal_dir);
    let mut parents = Parents::default();
    for (output, path, root) in plans {
        let forbid = |reason: &str| StoreError::Forbidden {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let walk_error = |e: std::io::Error| {
            if walk::is_redirect(&e) {
                forbid("a directory on the way is a symlink or not a directory")
            } else {
                StoreError::io(&path, e)
            }
        };
        let name = path
            .file_name()
            .ok_or_else(|| forbid("it has no file name"))?;
        let parent = parents.open(&root, &path).map_err(walk_error)?;
        let io = |e: std::io::Error| StoreError::io(&path, e);
        match output {
            Output::Dir { mode, .. } => match parent.kind(name).map_err(io)? {
                Some(Kind::Dir | Kind::Symlink) => {}
                Some(_) => return Err(forbid("a file is where a directory goes")),
                None => {
                    match parent.mkdir(name, 0o700) {
                        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                            return Err(io(e))
                        }
                        _ => {}
                    }
                    parent.chmod_dir(name, *mode).map_err(walk_error)?;
                    report.written += 1;
                }
            },
            Output::File {
                hash, mode, size, ..
            } => {
                if same_file_content(parent, name, *hash, *size, *mode) {
                    report.unchanged += 1;
                    continue;
                }
                let tmp = temp_name();
                if let Some(j) = journal.as_mut() {
                    let dir = parent.path().map_err(io)?;
                    j.note(&dir, tmp.as_ref()).map_err(io)?;
                }
                let written = (|| {
                    let mut file = parent.create_file(tmp.as_ref()).map_err(io)?;
                    backend.copy_object_into(hash, &mut file)?;
                    if interrupt::interrupted() {
                        return Err(StoreError::Interrupted { path: path.clone() });
                    }
                    file.set_permissions(std::fs::Permissions::from_mode(*mode & 0o777))
                        .map_err(io)?;
                    drop(file);
                    parent.rename(tmp.as_ref(), name).map_err(io)
                })();
                if let Err(err) = written {
                    let _ = parent.unlink(tmp.as_ref(), false);
                    return Err(err);
                }
                report.written += 1;
            }
            Output::Symlink { target, .. } => {
                if parent.readlink(name).ok().as_deref() == Some(target.path().as_path()) {
                    report.unchanged += 1;
                    continue;
                }
                let tmp = temp_name();
                if let Some(j) = journal.as_mut() {
                    let dir = parent.path().map_err(io)?;
                    j.note(&dir, tmp.as_ref()).map_err(io)?;
                }
                parent
                    .symlink(&target.path(), tmp.as_ref())
                    .and_then(|()| parent.rename(tmp.as_ref(), name))
                    .map_err(|e| {
                        let _ = parent.unlink(tmp.as_ref(), false);
                        io(e)
                    })?;
                report.written += 1;
            }
            Output::Deleted { .. } => match parent.kind(name).map_err(io)? {
                Some(Kind::Dir) => {
                    parent.unlink(name, true).map_err(io)?;
                    report.deleted += 1;
                }
                Some(_) => {
                    parent.unlink(name, false).map_err(io)?;
                    report.deleted += 1;
                }
                None => {}
            },
        }
        if matches!(output, Output::Deleted { .. }) {
            // A removed directory must not stay open as a parent.
            parents.open.clear();
        }
        if interrupt::interrupted() {
            return Err(StoreError::Interrupted { path });
        }
    }
    Ok(report)
}

/// Parent directories opened so far, by path: outputs in one directory
/// are reached with one walk.
#[derive(Default)]
struct Parents {
    open: Vec<(PathBuf, Dir)>,
}

impl Parents {
    /// The parent directory of `path`, walked from `root` (created as
    /// needed, never through a symlink).
    fn open(&mut self, root: &Path, path: &Path) -> std::io::Result<&Dir> {
        let parent = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        if let Some(i) = self.open.iter().position(|(p, _)| *p == parent) {
            return Ok(&self.open[i].1);
        }
        let mut dir = Dir::open_root(root)?;
        let relative = parent.strip_prefix(root).unwrap_or(Path::new(""));
        for part in relative.components() {
            dir = dir.open_dir(part.as_os_str(), true)?;
        }
        // Creating a child may follow; a few open parents are plenty.
        if self.open.len() >= 16 {
            self.open.remove(0);
        }
        self.open.push((parent, dir));
        Ok(&self.open.last().expect("just pushed").1)
    }
}

/// Removes temp files left by restores that were SIGKILLed (see
/// `interrupt.rs`); returns the number of files and bytes removed.
pub(crate) fn clean_dead_journals(backend: &dyn Backend) -> (u64, u64) {
    backend
        .journal_dir()
        .map_or((0, 0), |dir| interrupt::clean_dead(&dir))
}

/// A file already holding exactly this content is left untouched (its
/// mtime stays, so build tools downstream see no change); only its
/// permission bits are set if they differ (a `chmod` the run applied).
/// Returns whether the content matched.
fn same_file_content(parent: &Dir, name: &OsStr, hash: ObjectId, size: u64, mode: u32) -> bool {
    let Ok(Some(Kind::File {
        size: now,
        mode: now_mode,
    })) = parent.kind(name)
    else {
        return false;
    };
    if now != size {
        return false;
    }
    let Ok(file) = parent.open_file(name) else {
        return false;
    };
    let Ok(meta) = file.metadata() else {
        return false;
    };
    if !meta.is_file() {
        return false;
    }
    let same = file
        .try_clone()
        .and_then(hash_reader)
        .is_ok_and(|(h, n)| n == size && ObjectId::from(h) == hash);
    if same && now_mode & 0o7777 != mode & 0o777 {
        // Never setuid/setgid/sticky: only the permission bits.
        let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o777));
    }
    same
}
