//! Turning a path argument into an absolute path the way the kernel would
//! resolve it at the time of the call: relative to the calling thread's
//! working directory or to the `dirfd` argument (both read from `/proc`),
//! with `..` applied *after* following the symlinks before it, and with the
//! `/proc/<pid>/{cwd,root,exe,fd/N}` and `/dev/fd/N` aliases of ordinary
//! files replaced by the files they name.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// The directory a `dirfd` argument (or `AT_FDCWD`) names, for thread `tid`.
pub fn dir_of(tid: i32, dirfd: i64) -> Option<PathBuf> {
    let link = if dirfd == i64::from(libc::AT_FDCWD) {
        format!("/proc/{tid}/cwd")
    } else {
        format!("/proc/{tid}/fd/{dirfd}")
    };
    std::fs::read_link(link).ok()
}

/// The file an open descriptor refers to.
pub fn fd_path(tid: i32, fd: i64) -> Option<PathBuf> {
    let path = std::fs::read_link(format!("/proc/{tid}/fd/{fd}")).ok()?;
    // Pipes, sockets and deleted files are not paths we can depend on.
    (path.is_absolute() && !path.as_os_str().as_bytes().ends_with(b" (deleted)")).then_some(path)
}

/// Joins `path` onto `base` (when relative) and removes `.` and repeated
/// separators. `..` is applied to the *physical* directory reached so far,
/// as the kernel does (`link/..` is the parent of the link's target); when
/// that directory does not exist, `..` is kept, so the path still fails
/// to resolve exactly as it did for the program.
pub fn absolute(base: Option<&Path>, path: &OsStr) -> Option<PathBuf> {
    absolute_noting(base, path, &mut Vec::new())
}

/// [`absolute`], also noting in `links` the symlinks (and their targets)
/// that a `..` was applied after, and (with no target) each path a `..`
/// was applied to, which must stay a directory: re-pointing a link or
/// removing what it points to changes where the path leads, so each is an
/// input of the call.
pub fn absolute_noting(
    base: Option<&Path>,
    path: &OsStr,
    links: &mut Vec<(PathBuf, Option<PathBuf>)>,
) -> Option<PathBuf> {
    let path = Path::new(path);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base?.join(path)
    };
    let mut out = PathBuf::from("/");
    // `out` has no symlink in it (it was just canonicalized, or is "/").
    let mut physical = true;
    let mut literal = false;
    for component in joined.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if literal {
                    out.push("..");
                    continue;
                }
                if !physical {
                    note_links(&out, links);
                    match std::fs::canonicalize(&out) {
                        Ok(real) => {
                            // `..` of it works only while it is a directory.
                            links.push((out.clone(), None));
                            out = real;
                            physical = true;
                        }
                        Err(_) => {
                            literal = true;
                            out.push("..");
                            continue;
                        }
                    }
                }
                out.pop();
            }
            Component::Normal(part) => {
                out.push(part);
                physical = false;
            }
        }
    }
    Some(out)
}

/// The symlinks among the prefixes of `path`.
fn note_links(path: &Path, links: &mut Vec<(PathBuf, Option<PathBuf>)>) {
    let mut prefix = PathBuf::from("/");
    for part in path.iter().skip(1) {
        prefix.push(part);
        if let Ok(target) = std::fs::read_link(&prefix) {
            if !links.iter().any(|(p, _)| *p == prefix) {
                links.push((prefix.clone(), Some(target)));
            }
        }
    }
}

/// `/proc/{self,thread-self,<pid>}/{cwd,root,exe,fd/N}/rest` and
/// `/dev/{fd/N,stdin,stdout,stderr}/rest`, as seen by thread `tid`, with
/// the link replaced by the ordinary file it names. `None`: not an alias
/// of an ordinary file (left to the ignore rules).
pub fn unalias(tid: i32, path: &Path) -> Option<PathBuf> {
    let parts: Vec<&OsStr> = path.iter().skip(1).collect();
    let (link, used) = match parts.as_slice() {
        [dev, fd, n, ..] if *dev == "dev" && *fd == "fd" => {
            (format!("/proc/{tid}/fd/{}", n.to_string_lossy()), 3)
        }
        [dev, name, ..]
            if *dev == "dev" && ["stdin", "stdout", "stderr"].contains(&name.to_str()?) =>
        {
            let n = ["stdin", "stdout", "stderr"]
                .iter()
                .position(|s| *s == name.to_str().unwrap_or(""))?;
            (format!("/proc/{tid}/fd/{n}"), 2)
        }
        [proc_, who, what, rest @ ..] if *proc_ == "proc" => {
            let who = match who.to_str()? {
                "self" | "thread-self" => tid.to_string(),
                pid if pid.bytes().all(|b| b.is_ascii_digit()) => pid.to_owned(),
                _ => return None,
            };
            match (what.to_str()?, rest) {
                ("cwd" | "root" | "exe", _) => (format!("/proc/{who}/{}", what.to_str()?), 3),
                ("fd", [n, ..]) => (format!("/proc/{who}/fd/{}", n.to_string_lossy()), 4),
                _ => return None,
            }
        }
        _ => return None,
    };
    let target = std::fs::read_link(link).ok()?;
    if !target.is_absolute() || target.as_os_str().as_bytes().ends_with(b" (deleted)") {
        return None;
    }
    let mut out = target;
    for part in parts.iter().skip(used) {
        out.push(part);
    }
    absolute(None, out.as_os_str())
}

/// Resolves a `(dirfd, path)` pair of thread `tid`. An empty path with
/// `AT_EMPTY_PATH` means the descriptor itself.
#[cfg(test)]
pub fn resolve(tid: i32, dirfd: i64, path: &OsStr) -> Option<PathBuf> {
    resolve_noting(tid, dirfd, path, &mut Vec::new())
}

/// [`resolve`], noting the symlinks `..` was applied after.
pub fn resolve_noting(
    tid: i32,
    dirfd: i64,
    path: &OsStr,
    links: &mut Vec<(PathBuf, Option<PathBuf>)>,
) -> Option<PathBuf> {
    let resolved = if path.as_bytes().is_empty() {
        if dirfd == i64::from(libc::AT_FDCWD) {
            dir_of(tid, dirfd)
        } else {
            fd_path(tid, dirfd)
        }
    } else if path.as_bytes().first() == Some(&b'/') {
        // Aliases first, before `..` is applied in *our* process's view.
        let raw = Path::new(path);
        if raw.starts_with("/proc") || raw.starts_with("/dev") {
            if let Some(real) = unalias(tid, raw) {
                return Some(real);
            }
        }
        absolute_noting(None, path, links)
    } else {
        absolute_noting(dir_of(tid, dirfd).as_deref(), path, links)
    }?;
    if resolved.starts_with("/proc") || resolved.starts_with("/dev") {
        if let Some(real) = unalias(tid, &resolved) {
            return Some(real);
        }
    }
    Some(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalization_where_nothing_is_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("a/b/c")).unwrap();
        assert_eq!(
            absolute(Some(&base.join("a/b")), OsStr::new("c/../d/./e")).unwrap(),
            base.join("a/b/d/e")
        );
        assert_eq!(
            absolute(None, OsStr::new("/x//y/")).unwrap(),
            Path::new("/x/y")
        );
        assert_eq!(
            absolute(Some(Path::new("/")), OsStr::new("../../..")).unwrap(),
            Path::new("/")
        );
        assert!(absolute(None, OsStr::new("rel")).is_none());
    }

    #[test]
    fn dotdot_after_a_symlink_goes_to_the_targets_parent() {
        let dir = tempfile::tempdir().unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(base.join("real/sub")).unwrap();
        std::os::unix::fs::symlink(base.join("real/sub"), base.join("link")).unwrap();
        assert_eq!(
            absolute(Some(&base), OsStr::new("link/../cfg")).unwrap(),
            base.join("real/cfg")
        );
        // A missing directory: `..` is kept, so the path fails as it did.
        let kept = absolute(Some(&base), OsStr::new("missing/../cfg")).unwrap();
        assert!(std::fs::metadata(&kept).is_err());
    }

    #[test]
    fn proc_self_aliases() {
        let me = std::process::id() as i32;
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            resolve(
                me,
                i64::from(libc::AT_FDCWD),
                OsStr::new("/proc/self/cwd/x")
            )
            .unwrap(),
            cwd.join("x")
        );
        assert!(unalias(me, Path::new("/proc/self/status")).is_none());
    }
}
