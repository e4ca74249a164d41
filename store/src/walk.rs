//! Directory file descriptors for restores: every path below an allowed
//! root is reached one component at a time with `openat(O_NOFOLLOW |
//! O_DIRECTORY)`, and every write happens relative to the directory's
//! descriptor (`openat`, `renameat`, `symlinkat`, `unlinkat`). A symlink or
//! file planted in the way at any moment makes the walk fail (`ELOOP`,
//! `ENOTDIR`); it is never followed, so nothing is written outside the root.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

fn cstr(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Retries a call interrupted by a signal (our SIGINT handler runs without
/// `SA_RESTART` semantics for some calls).
fn retry(mut call: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        match check(call()) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// An open directory (`O_PATH`: usable as the base of `*at` calls only).
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
}

/// What is at a name inside a directory, without following a symlink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A regular file, its size and permission bits.
    File {
        size: u64,
        mode: u32,
    },
    Dir,
    Symlink,
    Other,
}

impl Dir {
    /// Opens an allowed root. The root itself is trusted (the user chose
    /// it), so symlinks in its own path are followed.
    pub(crate) fn open_root(path: &Path) -> io::Result<Self> {
        let c = cstr(path.as_os_str())?;
        // SAFETY: a valid NUL-terminated path; the result is checked.
        let fd = retry(|| unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Opens the subdirectory `name`, never through a symlink. With
    /// `create`, a missing one is made first (mode 0777 minus the umask,
    /// as `mkdir -p` would).
    pub(crate) fn open_dir(&self, name: &OsStr, create: bool) -> io::Result<Self> {
        let c = cstr(name)?;
        let open = || {
            // SAFETY: valid dirfd and NUL-terminated name; result checked.
            retry(|| unsafe {
                libc::openat(
                    self.fd.as_raw_fd(),
                    c.as_ptr(),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                )
            })
        };
        let fd = match open() {
            Err(e) if create && e.kind() == io::ErrorKind::NotFound => {
                match self.mkdir(name, 0o777) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
                open()?
            }
            other => other?,
        };
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(Self {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub(crate) fn mkdir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: valid dirfd and NUL-terminated name.
        retry(|| unsafe { libc::mkdirat(self.fd.as_raw_fd(), c.as_ptr(), mode) }).map(drop)
    }

    /// Sets a subdirectory's permission bits (never setuid/setgid/sticky).
    pub(crate) fn chmod_dir(&self, name: &OsStr, mode: u32) -> io::Result<()> {
        let c = cstr(name)?;
        // SAFETY: valid dirfd and NUL-terminated name; result checked.
        let fd = retry(|| unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: a valid descriptor.
        retry(|| unsafe { libc::fchmod(fd.as_raw_fd(), mode & 0o777) }).map(drop)
    }

    /// What `name` is, not following a symlink; `None` when absent.
    pub(crate) fn kind(&self, name: &OsStr) -> io::Result<Option<Kind>> {
        let c = cstr(name)?;
        // SAFETY: zeroed is a valid `stat`; fstatat writes into it.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid dirfd, NUL-terminated name, and a `stat` we own.
        let ret = retry(|| unsafe {
            libc::fstatat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        });
        match ret {
            Ok(_) => Ok(Some(match st.st_mode & libc::S_IFMT {
                libc::S_IFREG => Kind::File {
                    size: u64::try_from(st.st_size).unwrap_or(0),
                    mode: st.st_mode & 0o7777,
                },
                libc::S_IFDIR => Kind::Dir,
                libc::S_IFLNK => Kind::Symlink,
                _ => Kind::Other,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Opens a regular file for reading, never through a symlink and
    /// never blocking on a FIFO.
    pub(crate) fn open_file(&self, name: &OsStr) -> io::Result<File> {
        let c = cstr(name)?;
        // SAFETY: valid dirfd and NUL-terminated name; result checked.
        let fd = retry(|| unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Creates a new private file `name` (fails if anything is there).
    pub(crate) fn create_file(&self, name: &OsStr) -> io::Result<File> {
        let c = cstr(name)?;
        // SAFETY: valid dirfd and NUL-terminated name; result checked.
        let fd = retry(|| unsafe {
            libc::openat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        })?;
        // SAFETY: `fd` was just opened and is owned by nobody else.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    pub(crate) fn symlink(&self, target: &Path, name: &OsStr) -> io::Result<()> {
        let t = cstr(target.as_os_str())?;
        let c = cstr(name)?;
        // SAFETY: valid dirfd and NUL-terminated strings.
        retry(|| unsafe { libc::symlinkat(t.as_ptr(), self.fd.as_raw_fd(), c.as_ptr()) }).map(drop)
    }

    pub(crate) fn readlink(&self, name: &OsStr) -> io::Result<PathBuf> {
        let c = cstr(name)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize];
        // SAFETY: valid dirfd, NUL-terminated name, buffer of the given length.
        let n = unsafe {
            libc::readlinkat(
                self.fd.as_raw_fd(),
                c.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        buf.truncate(usize::try_from(n).unwrap_or(0));
        Ok(PathBuf::from(OsStr::from_bytes(&buf)))
    }

    /// Renames `from` to `to`, both inside this directory (atomic).
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let f = cstr(from)?;
        let t = cstr(to)?;
        let fd = self.fd.as_raw_fd();
        // SAFETY: valid dirfds and NUL-terminated names.
        retry(|| unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) }).map(drop)
    }

    /// Removes `name` (a directory with `dir`), not following symlinks.
    pub(crate) fn unlink(&self, name: &OsStr, dir: bool) -> io::Result<()> {
        let c = cstr(name)?;
        let flags = if dir { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: valid dirfd and NUL-terminated name.
        retry(|| unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), flags) }).map(drop)
    }

    /// The directory's current absolute path (for the restore journal).
    pub(crate) fn path(&self) -> io::Result<PathBuf> {
        std::fs::read_link(format!("/proc/self/fd/{}", self.fd.as_raw_fd()))
    }

    /// Walks `path` from `/`, never following a symlink.
    pub(crate) fn open_absolute(path: &Path) -> io::Result<Self> {
        let mut dir = Self::open_root(Path::new("/"))?;
        for part in path.components().skip(1) {
            dir = dir.open_dir(part.as_os_str(), false)?;
        }
        Ok(dir)
    }
}

/// Whether an error from a walk means "something in the way is not a
/// real directory" (a symlink or a file was planted).
pub(crate) fn is_redirect(err: &io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ELOOP | libc::ENOTDIR))
}
