//! What each traced system call means for the filesystem, decoded at its
//! entry stop; the effect is recorded at its exit stop, once its result is
//! known.

use std::path::PathBuf;

use crate::effects::{Before, Recorder};
use crate::memory::{read_cstring, read_u64};
use crate::paths::{fd_path, resolve};

/// An entry decoded, waiting for its result.
#[derive(Debug)]
pub enum Pending {
    Open {
        path: PathBuf,
        write: bool,
        read_too: bool,
        before: Option<Before>,
    },
    Probe {
        path: PathBuf,
    },
    List {
        path: PathBuf,
    },
    Exec {
        path: PathBuf,
    },
    /// Changes to `paths` (rename: both old and new).
    Mutate {
        paths: Vec<(PathBuf, Option<Before>)>,
    },
    /// `read(0, ...)` on a terminal stdin.
    StdinRead,
    Nothing,
}

const O_ACCMODE: u64 = 0o3;
const O_WRONLY: u64 = 0o1;
const O_RDWR: u64 = 0o2;
const O_CREAT: u64 = 0o100;
const O_TRUNC: u64 = 0o1000;
const O_APPEND: u64 = 0o2000;
const AT_REMOVEDIR: u64 = 0x200;

fn path_arg(tid: i32, dirfd: i64, addr: u64) -> Option<PathBuf> {
    let raw = read_cstring(tid, addr)?;
    resolve(tid, dirfd, &raw)
}

fn open(rec: &Recorder, path: Option<PathBuf>, flags: u64) -> Pending {
    let Some(path) = path else {
        return Pending::Nothing;
    };
    let access = flags & O_ACCMODE;
    let write = access == O_WRONLY || access == O_RDWR || flags & (O_CREAT | O_TRUNC) != 0;
    // Reading the old content: O_RDWR without O_TRUNC, or appending.
    let read_too = write && flags & O_TRUNC == 0 && (access == O_RDWR || flags & O_APPEND != 0);
    let before = match (write, read_too) {
        (true, true) => rec.snapshot_read(&path),
        (true, false) => rec.snapshot(&path),
        _ => None,
    };
    Pending::Open {
        path,
        write,
        read_too,
        before,
    }
}

fn mutate(rec: &Recorder, paths: Vec<Option<PathBuf>>) -> Pending {
    Pending::Mutate {
        paths: paths
            .into_iter()
            .flatten()
            .map(|p| {
                let before = rec.snapshot(&p);
                (p, before)
            })
            .collect(),
    }
}

const CWD: i64 = libc::AT_FDCWD as i64;

/// Decodes a system-call entry of thread `tid`.
pub fn decode(rec: &Recorder, tid: i32, nr: i64, a: [u64; 6]) -> Pending {
    let fd = |i: usize| a[i] as i32 as i64;
    match nr {
        libc::SYS_open => open(rec, path_arg(tid, CWD, a[0]), a[1]),
        libc::SYS_openat => open(rec, path_arg(tid, fd(0), a[1]), a[2]),
        libc::SYS_openat2 => {
            let flags = read_u64(tid, a[2]).unwrap_or(0);
            open(rec, path_arg(tid, fd(0), a[1]), flags)
        }
        libc::SYS_creat => open(rec, path_arg(tid, CWD, a[0]), O_CREAT | O_WRONLY | O_TRUNC),
        libc::SYS_stat
        | libc::SYS_lstat
        | libc::SYS_access
        | libc::SYS_readlink
        | libc::SYS_chdir => {
            path_arg(tid, CWD, a[0]).map_or(Pending::Nothing, |path| Pending::Probe { path })
        }
        libc::SYS_newfstatat
        | libc::SYS_statx
        | libc::SYS_faccessat
        | libc::SYS_faccessat2
        | libc::SYS_readlinkat => {
            path_arg(tid, fd(0), a[1]).map_or(Pending::Nothing, |path| Pending::Probe { path })
        }
        libc::SYS_getdents | libc::SYS_getdents64 => {
            fd_path(tid, fd(0)).map_or(Pending::Nothing, |path| Pending::List { path })
        }
        libc::SYS_execve => {
            path_arg(tid, CWD, a[0]).map_or(Pending::Nothing, |path| Pending::Exec { path })
        }
        libc::SYS_execveat => {
            path_arg(tid, fd(0), a[1]).map_or(Pending::Nothing, |path| Pending::Exec { path })
        }
        libc::SYS_rename => mutate(
            rec,
            vec![path_arg(tid, CWD, a[0]), path_arg(tid, CWD, a[1])],
        ),
        libc::SYS_renameat | libc::SYS_renameat2 => mutate(
            rec,
            vec![path_arg(tid, fd(0), a[1]), path_arg(tid, fd(2), a[3])],
        ),
        libc::SYS_unlink | libc::SYS_rmdir | libc::SYS_mkdir | libc::SYS_truncate => {
            mutate(rec, vec![path_arg(tid, CWD, a[0])])
        }
        libc::SYS_unlinkat => {
            let _ = a[2] & AT_REMOVEDIR;
            mutate(rec, vec![path_arg(tid, fd(0), a[1])])
        }
        libc::SYS_mkdirat => mutate(rec, vec![path_arg(tid, fd(0), a[1])]),
        libc::SYS_link => mutate(rec, vec![path_arg(tid, CWD, a[1])]),
        libc::SYS_linkat => mutate(rec, vec![path_arg(tid, fd(2), a[3])]),
        libc::SYS_symlink => mutate(rec, vec![path_arg(tid, CWD, a[1])]),
        libc::SYS_symlinkat => mutate(rec, vec![path_arg(tid, fd(1), a[2])]),
        libc::SYS_read if a[0] == 0 => Pending::StdinRead,
        _ => Pending::Nothing,
    }
}

impl Pending {
    /// Only calls that change the filesystem wait for their result: for
    /// everything else, what the call will find is read here, at entry,
    /// which halves the stops (a later change by an untraced process is
    /// caught by the end-of-run check that inputs are older than the run).
    pub fn needs_exit(&self) -> bool {
        matches!(
            self,
            Pending::Open { write: true, .. } | Pending::Mutate { .. }
        )
    }
}

/// Records a call that does not change anything, at its entry.
pub fn complete_at_entry(rec: &mut Recorder, pending: Pending) -> Option<&'static str> {
    let exists = |path: &std::path::Path| std::fs::metadata(path).is_ok();
    let result = |ok: bool| {
        if ok {
            (true, 0)
        } else {
            (false, i64::from(libc::ENOENT))
        }
    };
    match &pending {
        Pending::Open { path, .. } | Pending::Probe { path } | Pending::Exec { path } => {
            let (ok, errno) = result(exists(path));
            complete(rec, pending, ok, errno)
        }
        Pending::List { .. } | Pending::StdinRead => complete(rec, pending, true, 0),
        Pending::Mutate { .. } | Pending::Nothing => None,
    }
}

/// Records the effect of a completed call. `ok` is false when it failed
/// with `errno` (`ENOENT`/`ENOTDIR` are "not there", an input too).
pub fn complete(
    rec: &mut Recorder,
    pending: Pending,
    ok: bool,
    errno: i64,
) -> Option<&'static str> {
    let missing = !ok && (errno == i64::from(libc::ENOENT) || errno == i64::from(libc::ENOTDIR));
    match pending {
        Pending::Open {
            path,
            write,
            read_too,
            before,
        } => {
            if ok && write {
                if let Some(before) = before {
                    rec.mutated(&path, before, read_too);
                }
            } else if ok {
                rec.read(&path);
            } else if missing {
                rec.probe(&path, false);
            }
        }
        Pending::Probe { path } => {
            if ok {
                rec.probe(&path, true);
            } else if missing {
                rec.probe(&path, false);
            }
        }
        Pending::List { path } => {
            if ok {
                rec.listed(&path);
            }
        }
        Pending::Exec { path } => {
            if ok {
                // The kernel also reads the `#!` interpreter and the ELF
                // loader, with no open() we could see.
                let script_interpreter = crate::exec::shebang(&path);
                let binary = script_interpreter.clone().unwrap_or_else(|| path.clone());
                rec.read(&path);
                if let Some(interpreter) = &script_interpreter {
                    rec.read(interpreter);
                }
                if let Some(loader) = crate::exec::elf_interpreter(&binary) {
                    rec.read(&loader);
                }
            } else if missing {
                rec.probe(&path, false);
            }
        }
        Pending::Mutate { paths } => {
            if ok {
                for (path, before) in paths {
                    if let Some(before) = before {
                        rec.mutated(&path, before, false);
                    }
                }
            }
        }
        Pending::StdinRead => {
            if ok {
                return Some("the command read from the terminal (stdin)");
            }
        }
        Pending::Nothing => {}
    }
    None
}
