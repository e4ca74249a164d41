//! Replaying a variant's filesystem effects, only inside allowed roots.
//!
//! A record names absolute paths. Before anything is written, every path is
//! checked: it must be absolute, contain no `..`, lie under an allowed root,
//! and reach its parent directory without passing through a symlink below
//! that root. This matters most once records come from a shared store.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::fsutil::{hash_file, temp_path};
use crate::id::ObjectId;
use crate::record::{Output, Variant};

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

/// Restores every output of `variant`. All paths are checked before the
/// first write, so a refused entry writes nothing.
pub fn restore(
    backend: &dyn Backend,
    variant: &Variant,
    roots: &AllowedRoots,
) -> Result<RestoreReport> {
    for output in &variant.outputs {
        roots.check(&output.path().path())?;
    }
    let mut report = RestoreReport::default();
    for output in &variant.outputs {
        let path = output.path().path();
        match output {
            Output::Dir { mode, .. } => {
                if !path.is_dir() {
                    std::fs::create_dir_all(&path).map_err(|e| StoreError::io(&path, e))?;
                    let _ = std::fs::set_permissions(
                        &path,
                        std::fs::Permissions::from_mode(*mode & 0o7777),
                    );
                    report.written += 1;
                }
            }
            Output::File {
                hash, mode, size, ..
            } => {
                if same_file_content(&path, *hash, *size) {
                    report.unchanged += 1;
                    continue;
                }
                let dir = parent_dir(&path)?;
                let tmp = temp_path(&dir);
                backend.copy_object_to(hash, &tmp)?;
                let done =
                    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(*mode & 0o7777))
                        .and_then(|()| std::fs::rename(&tmp, &path));
                if let Err(e) = done {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(StoreError::io(&path, e));
                }
                report.written += 1;
            }
            Output::Symlink { target, .. } => {
                if std::fs::read_link(&path).ok().as_deref() == Some(target.path().as_path()) {
                    report.unchanged += 1;
                    continue;
                }
                let dir = parent_dir(&path)?;
                let tmp = temp_path(&dir);
                symlink(target.path(), &tmp)
                    .and_then(|()| std::fs::rename(&tmp, &path))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&tmp);
                        StoreError::io(&path, e)
                    })?;
                report.written += 1;
            }
            Output::Deleted { .. } => match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.is_dir() => {
                    std::fs::remove_dir(&path).map_err(|e| StoreError::io(&path, e))?;
                    report.deleted += 1;
                }
                Ok(_) => {
                    std::fs::remove_file(&path).map_err(|e| StoreError::io(&path, e))?;
                    report.deleted += 1;
                }
                Err(_) => {}
            },
        }
    }
    Ok(report)
}

fn parent_dir(path: &Path) -> Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
    std::fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
    Ok(dir)
}

/// A file already holding exactly this content is left untouched (its
/// mtime stays, so build tools downstream see no change).
fn same_file_content(path: &Path, hash: ObjectId, size: u64) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.len() == size => {
            hash_file(path).is_ok_and(|(h, _)| ObjectId::from(h) == hash)
        }
        _ => false,
    }
}
