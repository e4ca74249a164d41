//! Turning a path argument into an absolute path the way the kernel would
//! see it at the time of the call: relative to the calling thread's working
//! directory or to the `dirfd` argument, both read from `/proc`.

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
    path.is_absolute().then_some(path)
}

/// Joins `path` onto `base` (when relative) and removes `.`, `..` and
/// repeated separators lexically.
pub fn absolute(base: Option<&Path>, path: &OsStr) -> Option<PathBuf> {
    let path = Path::new(path);
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base?.join(path)
    };
    let mut out = PathBuf::from("/");
    for component in joined.components() {
        match component {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
        }
    }
    Some(out)
}

/// Resolves a `(dirfd, path)` pair of thread `tid`. An empty path with
/// `AT_EMPTY_PATH` means the descriptor itself.
pub fn resolve(tid: i32, dirfd: i64, path: &OsStr) -> Option<PathBuf> {
    if path.as_bytes().is_empty() {
        return if dirfd == i64::from(libc::AT_FDCWD) {
            dir_of(tid, dirfd)
        } else {
            fd_path(tid, dirfd)
        };
    }
    if path.as_bytes().first() == Some(&b'/') {
        return absolute(None, path);
    }
    absolute(dir_of(tid, dirfd).as_deref(), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lexical_normalization() {
        let base = Path::new("/a/b");
        assert_eq!(
            absolute(Some(base), OsStr::new("c/../d/./e")).unwrap(),
            Path::new("/a/b/d/e")
        );
        assert_eq!(
            absolute(None, OsStr::new("/x//y/")).unwrap(),
            Path::new("/x/y")
        );
        assert_eq!(
            absolute(Some(base), OsStr::new("../../..")).unwrap(),
            Path::new("/")
        );
        assert!(absolute(None, OsStr::new("rel")).is_none());
    }
}
