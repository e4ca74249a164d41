//! What each traced system call means for the filesystem, decoded at its
//! entry stop. Calls that only look are recorded right there (what they
//! will find is read by the tracer while the thread is stopped); calls that
//! change something, or whose result matters (`connect`), wait for their
//! exit stop.

use std::path::PathBuf;

use crate::effects::{Before, Recorder};
use crate::memory::{read_cstring, read_u64};
use crate::net::{peer, Peer};
use crate::observe::{Kind, Reveals, StatFacts};
use crate::paths::{absolute, fd_path, resolve_noting};

/// What a path-changing call does to a path, which decides what about its
/// earlier state the call's success reveals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Succeeds only if the path was absent (`mkdir`, `symlink`, `link`).
    Create,
    /// Succeeds only if it existed (`unlink`, `rmdir`, rename's source).
    Remove,
    /// Replaced whatever was there (rename's target).
    Replace,
    /// Changed in place: the old content and mode carry over (`chmod`,
    /// `truncate`, `utimensat`, `chown`).
    Change,
}

/// How a probe looks at its path.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    Stat {
        follow: bool,
    },
    /// `access`, `chdir`: type and permissions.
    Access,
    Readlink,
}

/// An entry decoded, waiting for its result.
#[derive(Debug)]
pub enum Pending {
    OpenWrite {
        path: PathBuf,
        flags: u64,
        before: Option<Before>,
    },
    Read {
        path: PathBuf,
        flags: u64,
    },
    Probe {
        path: PathBuf,
        how: Probe,
    },
    List {
        path: PathBuf,
    },
    Exec {
        path: PathBuf,
    },
    Mutate {
        paths: Vec<(PathBuf, Option<Before>, Role)>,
    },
    /// A socket call; `verb` says what it did.
    Socket {
        peer: Peer,
        verb: &'static str,
    },
    /// Never cacheable, whatever the result.
    Refuse(String),
    /// `read(0, ...)` on a terminal stdin.
    StdinRead,
    Nothing,
}

const O_ACCMODE: u64 = 0o3;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_EXCL: u64 = 0o200;
const O_TRUNC: u64 = 0o1000;
const O_NOFOLLOW: u64 = 0o400000;
const O_DIRECTORY: u64 = 0o200000;
const O_PATH: u64 = 0o10000000;
/// `__O_TMPFILE | O_DIRECTORY`: an unnamed file in the directory.
const O_TMPFILE: u64 = 0o20200000;
const AT_SYMLINK_NOFOLLOW: u64 = 0x100;
const RESOLVE_CACHED: u64 = 0x20;
const RENAME_NOREPLACE: u64 = 1;

const CWD: i64 = libc::AT_FDCWD as i64;

/// A path argument, resolved; the symlinks a `..` in it was applied after
/// are inputs (their targets decide where the path leads).
fn path_arg(
    tid: i32,
    dirfd: i64,
    addr: u64,
    links: &mut Vec<(PathBuf, Option<PathBuf>)>,
) -> Option<PathBuf> {
    let raw = read_cstring(tid, addr)?;
    resolve_noting(tid, dirfd, &raw, links)
}

/// A call that follows a final symlink acts on the link's target: the
/// link is an input (re-pointing it changes what a plain run writes) and
/// the target is what changes.
fn through_symlink(rec: &mut Recorder, path: PathBuf) -> PathBuf {
    // `/dev/stdout` and friends: resolving them here would name *our*
    // descriptors, not the command's.
    if rec.ignored(&path) {
        return path;
    }
    let Ok(meta) = std::fs::symlink_metadata(&path) else {
        return path;
    };
    if !meta.file_type().is_symlink() {
        return path;
    }
    let Ok(target) = std::fs::read_link(&path) else {
        return path;
    };
    rec.link(&path, Some(target.clone()));
    if let Ok(real) = std::fs::canonicalize(&path) {
        return real;
    }
    // Dangling: `O_CREAT` creates the target.
    absolute(path.parent(), target.as_os_str()).unwrap_or(path)
}

fn open(rec: &mut Recorder, path: Option<PathBuf>, flags: u64) -> Pending {
    let Some(path) = path else {
        return Pending::Nothing;
    };
    if flags & O_TMPFILE == O_TMPFILE {
        // No path is created (`tempfile.TemporaryFile()`): that the
        // directory is one, and its mode, decide whether it works. A later
        // `linkat` that names the file is an effect of its own.
        return Pending::Read {
            path,
            flags: O_DIRECTORY,
        };
    }
    let access = flags & O_ACCMODE;
    let write = access == O_WRONLY || access == O_RDWR || flags & (O_CREAT | O_TRUNC) != 0;
    if !write {
        return Pending::Read { path, flags };
    }
    let path = if flags & O_NOFOLLOW == 0 {
        through_symlink(rec, path)
    } else {
        path
    };
    let before = rec.snapshot(&path, flags & O_TRUNC == 0);
    Pending::OpenWrite {
        path,
        flags,
        before,
    }
}

fn mutate(rec: &mut Recorder, paths: Vec<(Option<PathBuf>, Role)>) -> Pending {
    Pending::Mutate {
        paths: paths
            .into_iter()
            .filter_map(|(p, role)| p.map(|p| (p, role)))
            .map(|(p, role)| {
                let p = if role == Role::Change {
                    through_symlink(rec, p)
                } else {
                    p
                };
                let before = rec.snapshot(&p, role == Role::Change);
                (p, before, role)
            })
            .collect(),
    }
}

fn probe(path: Option<PathBuf>, how: Probe) -> Pending {
    path.map_or(Pending::Nothing, |path| Pending::Probe { path, how })
}

fn socket(tid: i32, addr: u64, len: u64, verb: &'static str) -> Pending {
    match peer(tid, addr, len) {
        Some(peer) => Pending::Socket { peer, verb },
        None => Pending::Nothing,
    }
}

/// Decodes a system-call entry of thread `tid`.
pub fn decode(rec: &mut Recorder, tid: i32, nr: i64, a: [u64; 6]) -> Pending {
    let mut links = Vec::new();
    let pending = decode_call(rec, tid, nr, a, &mut |dirfd, addr| {
        path_arg(tid, dirfd, addr, &mut links)
    });
    for (path, target) in links {
        match target {
            Some(target) => rec.link(&path, Some(target)),
            None => {
                if let Ok(meta) = std::fs::metadata(&path) {
                    rec.stat(&path, true, &meta, Reveals::Kind);
                }
            }
        }
    }
    pending
}

fn decode_call(
    rec: &mut Recorder,
    tid: i32,
    nr: i64,
    a: [u64; 6],
    p: &mut dyn FnMut(i64, u64) -> Option<PathBuf>,
) -> Pending {
    let fd = |i: usize| a[i] as i32 as i64;
    let nofollow = |flags: u64| flags & AT_SYMLINK_NOFOLLOW != 0;
    match nr {
        libc::SYS_open => open(rec, p(CWD, a[0]), a[1]),
        libc::SYS_openat => open(rec, p(fd(0), a[1]), a[2]),
        libc::SYS_openat2 => {
            let flags = read_u64(tid, a[2]).unwrap_or(0);
            let resolve_flags = read_u64(tid, a[2] + 16).unwrap_or(0);
            if resolve_flags & !RESOLVE_CACHED != 0 {
                return Pending::Refuse(
                    "the command opened a file with openat2 RESOLVE_* restrictions, which casher does not model"
                        .to_owned(),
                );
            }
            open(rec, p(fd(0), a[1]), flags)
        }
        libc::SYS_creat => open(rec, p(CWD, a[0]), O_CREAT | O_WRONLY | O_TRUNC),
        libc::SYS_getxattr | libc::SYS_lgetxattr | libc::SYS_fgetxattr => {
            xattr_read(read_cstring(tid, a[1]))
        }
        libc::SYS_setxattr
        | libc::SYS_lsetxattr
        | libc::SYS_fsetxattr
        | libc::SYS_removexattr
        | libc::SYS_lremovexattr
        | libc::SYS_fremovexattr => Pending::Refuse(
            "the command changed a file's extended attributes (setxattr, removexattr), which casher \
             does not record or restore"
                .to_owned(),
        ),
        libc::SYS_open_by_handle_at => Pending::Refuse(
            "the command opened a file by handle (open_by_handle_at), which casher cannot trace"
                .to_owned(),
        ),
        libc::SYS_stat => probe(p(CWD, a[0]), Probe::Stat { follow: true }),
        libc::SYS_lstat => probe(p(CWD, a[0]), Probe::Stat { follow: false }),
        libc::SYS_newfstatat => probe(
            p(fd(0), a[1]),
            Probe::Stat {
                follow: !nofollow(a[3]),
            },
        ),
        libc::SYS_statx => probe(
            p(fd(0), a[1]),
            Probe::Stat {
                follow: !nofollow(a[2]),
            },
        ),
        libc::SYS_access | libc::SYS_chdir => probe(p(CWD, a[0]), Probe::Access),
        libc::SYS_faccessat | libc::SYS_faccessat2 => probe(p(fd(0), a[1]), Probe::Access),
        libc::SYS_readlink => probe(p(CWD, a[0]), Probe::Readlink),
        libc::SYS_readlinkat => probe(p(fd(0), a[1]), Probe::Readlink),
        libc::SYS_getdents | libc::SYS_getdents64 => {
            fd_path(tid, fd(0)).map_or(Pending::Nothing, |path| Pending::List { path })
        }
        libc::SYS_execve => p(CWD, a[0]).map_or(Pending::Nothing, |path| Pending::Exec { path }),
        libc::SYS_execveat => {
            p(fd(0), a[1]).map_or(Pending::Nothing, |path| Pending::Exec { path })
        }
        libc::SYS_rename => mutate(
            rec,
            vec![(p(CWD, a[0]), Role::Remove), (p(CWD, a[1]), Role::Replace)],
        ),
        libc::SYS_renameat | libc::SYS_renameat2 => {
            let flags = if nr == libc::SYS_renameat2 { a[4] } else { 0 };
            let target = if flags & RENAME_NOREPLACE != 0 {
                Role::Create
            } else if flags != 0 {
                // RENAME_EXCHANGE: both must exist.
                Role::Remove
            } else {
                Role::Replace
            };
            mutate(
                rec,
                vec![(p(fd(0), a[1]), Role::Remove), (p(fd(2), a[3]), target)],
            )
        }
        libc::SYS_unlink | libc::SYS_rmdir => mutate(rec, vec![(p(CWD, a[0]), Role::Remove)]),
        libc::SYS_unlinkat => mutate(rec, vec![(p(fd(0), a[1]), Role::Remove)]),
        libc::SYS_mkdir | libc::SYS_mknod => mutate(rec, vec![(p(CWD, a[0]), Role::Create)]),
        libc::SYS_mkdirat | libc::SYS_mknodat => mutate(rec, vec![(p(fd(0), a[1]), Role::Create)]),
        libc::SYS_link => mutate(rec, vec![(p(CWD, a[1]), Role::Create)]),
        libc::SYS_linkat => mutate(rec, vec![(p(fd(2), a[3]), Role::Create)]),
        libc::SYS_symlink => mutate(rec, vec![(p(CWD, a[1]), Role::Create)]),
        libc::SYS_symlinkat => mutate(rec, vec![(p(fd(1), a[2]), Role::Create)]),
        libc::SYS_truncate
        | libc::SYS_chmod
        | libc::SYS_chown
        | libc::SYS_utime
        | libc::SYS_utimes => mutate(rec, vec![(p(CWD, a[0]), Role::Change)]),
        libc::SYS_lchown => {
            let path = p(CWD, a[0]);
            let before = path.as_ref().and_then(|p| rec.snapshot(p, true));
            Pending::Mutate {
                paths: path
                    .map(|p| (p, before, Role::Change))
                    .into_iter()
                    .collect(),
            }
        }
        libc::SYS_fchmodat | libc::SYS_fchownat | libc::SYS_futimesat => {
            mutate(rec, vec![(p(fd(0), a[1]), Role::Change)])
        }
        libc::SYS_utimensat => {
            // A NULL path is `futimens(fd)`.
            let path = if a[1] == 0 {
                fd_path(tid, fd(0))
            } else {
                p(fd(0), a[1])
            };
            mutate(rec, vec![(path, Role::Change)])
        }
        libc::SYS_fchmod | libc::SYS_fchown => {
            mutate(rec, vec![(fd_path(tid, fd(0)), Role::Change)])
        }
        libc::SYS_connect => socket(tid, a[1], a[2], "connected to"),
        libc::SYS_bind => socket(tid, a[1], a[2], "listened on"),
        libc::SYS_sendto => socket(tid, a[4], a[5], "sent data to"),
        libc::SYS_read if a[0] == 0 => Pending::StdinRead,
        _ => Pending::Nothing,
    }
}

/// Reading an extended attribute. Its value is no recorded input (a hit
/// would answer for a changed one), so reading one a program keeps its own
/// data in (`user.*`, `trusted.*`) makes the run uncacheable. The
/// `security.*` and `system.*` ones `ls -l` and `cp` ask about on every
/// file (an SELinux label, an ACL) are let through: see
/// `docs/limitations.md`.
fn xattr_read(name: Option<std::ffi::OsString>) -> Pending {
    let name = name.unwrap_or_default();
    let bytes = name.as_encoded_bytes();
    if bytes.starts_with(b"security.") || bytes.starts_with(b"system.") {
        return Pending::Nothing;
    }
    Pending::Refuse(format!(
        "the command read the extended attribute {name:?}, which casher does not record as an input"
    ))
}

/// A stop the filter tagged [`crate::filter::NOT_OPENED_BY_THE_RUN`]: the
/// command used a descriptor it did not open, whatever the call.
pub fn not_opened_by_the_run(nr: i64) -> Pending {
    Pending::Refuse(format!(
        "the command used a file descriptor it did not open (system call {nr}): one inherited from \
         casher's caller, or one its module's import left open before a @cached call; what goes \
         through it cannot be recorded"
    ))
}

impl Pending {
    /// Only calls that change the filesystem, or whose success matters,
    /// wait for their result: for everything else, what the call will find
    /// is read at entry, which halves the stops (a later change by an
    /// untraced process is caught by the end-of-run checks).
    pub fn needs_exit(&self) -> bool {
        matches!(
            self,
            Pending::OpenWrite { .. } | Pending::Mutate { .. } | Pending::Socket { .. }
        )
    }
}

/// "No such file": an `Absent` observation. Any other failure (`ENOTDIR`
/// included: a program prints a different message) is kept with its errno.
fn is_absent(errno: i32) -> bool {
    errno == libc::ENOENT
}

/// Records what a lookup of `path` finds now (at a call's entry).
fn look(rec: &mut Recorder, path: &std::path::Path, follow: bool) -> Option<std::fs::Metadata> {
    let result = if follow {
        std::fs::metadata(path)
    } else {
        std::fs::symlink_metadata(path)
    };
    match result {
        Ok(meta) => Some(meta),
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(libc::EIO);
            if is_absent(errno) {
                rec.absent(path, follow);
            } else {
                rec.fails(path, errno);
            }
            None
        }
    }
}

/// Records a call that does not change anything, at its entry.
pub fn complete_at_entry(rec: &mut Recorder, pending: Pending) {
    match pending {
        Pending::Read { path, flags } => {
            rec.check_inherited(&path);
            let Some(meta) = look(rec, &path, flags & O_NOFOLLOW == 0) else {
                return;
            };
            let facts = StatFacts::of(&meta);
            // `O_PATH` reads nothing; `O_DIRECTORY` on a non-directory fails:
            // either way only the type was seen.
            if flags & O_PATH != 0 || (flags & O_DIRECTORY != 0 && facts.kind != Kind::Dir) {
                rec.facts(&path, flags & O_NOFOLLOW == 0, facts, Reveals::Kind);
                return;
            }
            match facts.kind {
                Kind::File => rec.read(&path, &meta),
                Kind::Dir => rec.facts(&path, true, facts, Reveals::KindMode),
                Kind::Symlink => rec.facts(&path, false, facts, Reveals::Kind),
                other => rec.special(&path, other),
            }
        }
        Pending::Probe { path, how } => match how {
            Probe::Stat { follow } => {
                if let Some(meta) = look(rec, &path, follow) {
                    rec.stat(&path, follow, &meta, Reveals::All);
                }
            }
            Probe::Access => {
                if let Some(meta) = look(rec, &path, true) {
                    rec.stat(&path, true, &meta, Reveals::KindMode);
                }
            }
            Probe::Readlink => {
                if let Some(meta) = look(rec, &path, false) {
                    let target = meta
                        .file_type()
                        .is_symlink()
                        .then(|| std::fs::read_link(&path).ok())
                        .flatten();
                    rec.link(&path, target);
                }
            }
        },
        Pending::List { path } => rec.listed(&path),
        Pending::Exec { path } => {
            let Some(meta) = look(rec, &path, true) else {
                return;
            };
            // Whether exec works depends on the mode too.
            rec.stat(&path, true, &meta, Reveals::KindMode);
            if !meta.is_file() {
                return;
            }
            rec.read(&path, &meta);
            // The kernel also reads the `#!` interpreter and the ELF
            // loader, with no open() we could see.
            let script_interpreter = crate::exec::shebang(&path);
            let binary = script_interpreter.clone().unwrap_or_else(|| path.clone());
            for extra in script_interpreter
                .into_iter()
                .chain(crate::exec::elf_interpreter(&binary))
            {
                if let Some(meta) = look(rec, &extra, true) {
                    if meta.is_file() {
                        rec.read(&extra, &meta);
                    }
                }
            }
        }
        Pending::Refuse(reason) => rec.problem(reason),
        Pending::StdinRead => rec.problem("the command read from the terminal (stdin)".to_owned()),
        Pending::OpenWrite { .. }
        | Pending::Mutate { .. }
        | Pending::Socket { .. }
        | Pending::Nothing => {}
    }
}

/// What a failed change reveals about the state it found.
fn failed_change(rec: &mut Recorder, path: &std::path::Path, before: Option<Before>, errno: i32) {
    if is_absent(errno) {
        rec.absent(path, false);
    } else if errno == libc::EEXIST || errno == libc::EISDIR || errno == libc::ENOTEMPTY {
        if let Some(facts) = before.and_then(|b| b.facts) {
            rec.facts(path, false, facts, Reveals::Kind);
        }
    } else {
        rec.fails(path, errno);
    }
}

/// Records the effect of a call that waited for its result: `errno` is
/// `None` on success.
pub fn complete(rec: &mut Recorder, pending: Pending, errno: Option<i32>) {
    match pending {
        Pending::OpenWrite {
            path,
            flags,
            before,
        } => match (errno, before) {
            (None, Some(before)) => {
                if flags & O_TRUNC != 0 {
                    rec.replaced(&path);
                } else if !before.existed {
                    rec.absent(&path, false);
                }
                rec.mutated(&path, before, flags & O_TRUNC == 0);
            }
            (None, None) => {}
            (Some(errno), before) => {
                let errno = if flags & O_EXCL != 0 && errno == libc::EEXIST {
                    libc::EEXIST
                } else {
                    errno
                };
                failed_change(rec, &path, before, errno);
            }
        },
        Pending::Mutate { paths } => {
            let single = paths.len() == 1;
            for (path, before, role) in paths {
                let Some(before) = before else {
                    continue;
                };
                match errno {
                    None => {
                        match role {
                            Role::Create => rec.absent(&path, false),
                            Role::Remove => {
                                if let Some(facts) = before.facts {
                                    rec.facts(&path, false, facts, Reveals::Kind);
                                }
                            }
                            Role::Replace | Role::Change => {}
                        }
                        rec.mutated(&path, before, role == Role::Change);
                    }
                    Some(errno) if single => failed_change(rec, &path, Some(before), errno),
                    Some(_) => rec.problem(format!(
                        "a rename involving {} failed, which casher does not model",
                        path.display()
                    )),
                }
            }
        }
        Pending::Socket { peer, verb } => {
            if errno.is_none() || errno == Some(libc::EINPROGRESS) {
                rec.socket(&peer, verb);
            }
        }
        other => complete_at_entry(rec, other),
    }
}
