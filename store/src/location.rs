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

/// The nearest `pyproject.toml` at or above `cwd` decides, if it has a
/// `[tool.casher] cache-dir` (relative paths are relative to that file).
fn from_pyproject(cwd: &Path) -> Result<Option<(PathBuf, PathBuf)>> {
    for dir in cwd.ancestors() {
        let candidate = dir.join("pyproject.toml");
        let Ok(text) = std::fs::read_to_string(&candidate) else {
            continue;
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

/// Creates the directory (mode 0700) with a `CACHEDIR.TAG` so backup tools
/// skip it, and a `.gitignore` so it is never committed by accident.
pub fn ensure_cache_dir(dir: &Path) -> Result<()> {
    let create_error = |source| StoreError::CreateDir {
        path: dir.to_path_buf(),
        source,
    };
    if !dir.is_dir() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(create_error)?;
    }
    let tag = dir.join("CACHEDIR.TAG");
    if !tag.exists() {
        let mut f = std::fs::File::create(&tag).map_err(create_error)?;
        f.write_all(
            b"Signature: 8a477f597d28d172789f06886806bc55\n# This file is a cache directory tag created by casher.\n",
        )
        .map_err(create_error)?;
    }
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "*\n").map_err(create_error)?;
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
