//! Where the cache lives: `--cache-dir` > `CASHER_DIR` > `[tool.casher]
//! cache-dir` in the nearest `pyproject.toml` > `$XDG_CACHE_HOME/casher` >
//! `~/.cache/casher`.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::error::{Result, StoreError};

/// Which rule chose the cache directory (shown by `casher cache stats`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDirSource {
    CommandLine,
    Environment,
    PyProject(PathBuf),
    Xdg,
    Home,
    Temp,
}

/// Resolves the cache directory for a run started in `cwd`.
pub fn cache_dir(explicit: Option<&Path>, cwd: &Path) -> Result<(PathBuf, CacheDirSource)> {
    if let Some(dir) = explicit {
        return Ok((absolute(cwd, dir), CacheDirSource::CommandLine));
    }
    if let Some(dir) = std::env::var_os("CASHER_DIR").filter(|v| !v.is_empty()) {
        return Ok((absolute(cwd, Path::new(&dir)), CacheDirSource::Environment));
    }
    if let Some((pyproject, dir)) = from_pyproject(cwd)? {
        return Ok((dir, CacheDirSource::PyProject(pyproject)));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return Ok((PathBuf::from(xdg).join("casher"), CacheDirSource::Xdg));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok((
            PathBuf::from(home).join(".cache").join("casher"),
            CacheDirSource::Home,
        ));
    }
    Ok((std::env::temp_dir().join("casher"), CacheDirSource::Temp))
}

fn absolute(cwd: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    }
}

/// The current effective uid.
fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// The nearest `pyproject.toml` at or above `cwd` decides, if it has a
/// `[tool.casher] cache-dir` (relative paths are relative to that file).
/// The search stops at the project root: the first directory holding a
/// `pyproject.toml` or a `.git`. A `pyproject.toml` owned by someone else
/// (say one planted in `/tmp`) is never taken, and stops the search.
fn from_pyproject(cwd: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    use std::os::unix::fs::MetadataExt;
    for dir in cwd.ancestors() {
        let candidate = dir.join("pyproject.toml");
        let Ok(meta) = std::fs::metadata(&candidate) else {
            if dir.join(".git").exists() {
                return Ok(None);
            }
            continue;
        };
        if meta.uid() != my_uid() {
            tracing::warn!(
                "ignoring {}: it is owned by uid {}, not by you (uid {}), so it may not choose your cache directory",
                candidate.display(),
                meta.uid(),
                my_uid()
            );
            return Ok(None);
        }
        let Ok(text) = std::fs::read_to_string(&candidate) else {
            return Ok(None);
        };
        let config_error = |message: String| StoreError::Config {
            path: candidate.clone(),
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| config_error(e.to_string()))?;
        let value = table
            .get("tool")
            .and_then(|t| t.get("casher"))
            .and_then(|t| t.get("cache-dir"));
        return match value {
            None => Ok(None),
            Some(toml::Value::String(s)) => {
                Ok(Some((candidate.clone(), absolute(dir, Path::new(s)))))
            }
            Some(_) => Err(config_error("cache-dir must be a string".to_owned())),
        };
    }
    Ok(None)
}

/// Refuses a store someone else could steer, like ssh refuses a
/// `~/.ssh` others can write: the directory must be owned by the current
/// user and not writable by group or others; every directory above it must
/// be owned by the user or root and not writable by others unless sticky
/// (like `/tmp`); the store's own top directories likewise.
pub(crate) fn check_ownership(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let me = my_uid();
    let real = std::fs::canonicalize(dir).map_err(|e| StoreError::io(dir, e))?;
    let insecure = |path: &Path, reason: String, fix: String| StoreError::Insecure {
        path: path.to_path_buf(),
        reason,
        fix,
    };
    let own = |path: &Path, meta: &std::fs::Metadata| -> Result<()> {
        if meta.uid() != me {
            return Err(insecure(
                path,
                format!("is owned by uid {}, not by you (uid {me})", meta.uid()),
                "use a cache directory of your own (--cache-dir, CASHER_DIR or [tool.casher] cache-dir), or `chown -R` this one to you if it is yours".to_owned(),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(insecure(
                path,
                format!(
                    "is writable by group or others (mode {:04o})",
                    meta.mode() & 0o7777
                ),
                format!("`chmod go-w {}`", path.display()),
            ));
        }
        Ok(())
    };
    let meta = std::fs::metadata(&real).map_err(|e| StoreError::io(&real, e))?;
    own(&real, &meta)?;
    // Inside a directory only we can enter (0700, as casher creates it),
    // the modes of subdirectories do not matter (a umask of 002 makes them
    // group-writable, harmlessly); otherwise they must be ours and closed.
    let reachable = meta.mode() & 0o011 != 0;
    for sub in ["", "objects", "entries", "tmp", "stats", "restores"] {
        let path = real.join(crate::local::BUCKET).join(sub);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if meta.file_type().is_symlink() {
                return Err(insecure(
                    &path,
                    "is a symlink".to_owned(),
                    format!("remove it (`rm {}`)", path.display()),
                ));
            }
            if meta.uid() != me || reachable {
                own(&path, &meta)?;
            }
        }
    }
    for parent in real.ancestors().skip(1) {
        let meta = std::fs::metadata(parent).map_err(|e| StoreError::io(parent, e))?;
        if meta.uid() != me && meta.uid() != 0 {
            return Err(insecure(
                &real,
                format!(
                    "lies in {}, owned by uid {} (neither you nor root), who could replace it",
                    parent.display(),
                    meta.uid()
                ),
                "use a cache directory of your own (--cache-dir or CASHER_DIR)".to_owned(),
            ));
        }
        if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
            return Err(insecure(
                &real,
                format!(
                    "lies in {}, writable by group or others (mode {:04o}) without the sticky bit, so others could replace it",
                    parent.display(),
                    meta.mode() & 0o7777
                ),
                format!(
                    "`chmod go-w {}`, or use another cache directory",
                    parent.display()
                ),
            ));
        }
    }
    Ok(())
}

/// Creates the directory (mode 0700) with a `CACHEDIR.TAG` so backup tools
/// skip it, and a `.gitignore` so it is never committed by accident; then
/// checks that nobody else could steer it ([`check_ownership`]).
pub fn ensure_cache_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::CreateDir {
                path: dir.to_path_buf(),
                source,
            })?;
    }
    check_ownership(dir)?;
    // The directory exists and is ours: a failure now is a permission
    // problem, not a failure to create it.
    let not_writable = |source| StoreError::NotWritable {
        path: dir.to_path_buf(),
        source,
    };
    let tag = dir.join("CACHEDIR.TAG");
    if !tag.exists() {
        let mut f = std::fs::File::create(&tag).map_err(not_writable)?;
        f.write_all(
            b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by casher.\n",
        )
        .map_err(not_writable)?;
    }
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "*\n").map_err(not_writable)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pyproject_cache_dir_is_relative_to_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("pyproject.toml"),
            "[tool.casher]\ncache-dir = \".casher\"\n",
        )
        .unwrap();
        let sub = tmp.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        let found = from_pyproject(&sub).unwrap().unwrap();
        assert_eq!(found.1, tmp.path().join(".casher"));
    }

    #[test]
    fn pyproject_search_stops_at_the_project_root() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(
            tmp.path().join("pyproject.toml"),
            "[tool.casher]\ncache-dir = \"/elsewhere\"\n",
        )
        .unwrap();
        let project = tmp.path().join("project");
        std::fs::create_dir_all(project.join(".git")).unwrap();
        let sub = project.join("src");
        std::fs::create_dir_all(&sub).unwrap();
        assert_eq!(from_pyproject(&sub).unwrap(), None);
    }

    #[test]
    fn group_or_world_writable_store_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("c");
        ensure_cache_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = ensure_cache_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("writable by group or others"), "{err}");
        assert!(err.contains("chmod go-w"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        let inner = tmp.path().join("open/c");
        std::fs::create_dir_all(&inner).unwrap();
        std::fs::set_permissions(
            tmp.path().join("open"),
            std::fs::Permissions::from_mode(0o777),
        )
        .unwrap();
        let err = ensure_cache_dir(&inner).unwrap_err().to_string();
        assert!(err.contains("without the sticky bit"), "{err}");
    }

    #[test]
    fn explicit_wins_and_dir_is_marked() {
        let tmp = tempfile::tempdir().unwrap();
        let (dir, source) = cache_dir(Some(Path::new("c")), tmp.path()).unwrap();
        assert_eq!(source, CacheDirSource::CommandLine);
        ensure_cache_dir(&dir).unwrap();
        assert!(dir.join("CACHEDIR.TAG").is_file());
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            "*\n"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
