//! The seccomp-BPF program installed in the child before `execve`: only
//! path-related system calls stop the tracee (`SECCOMP_RET_TRACE`); every
//! other call runs at full speed. System calls of another ABI (32-bit
//! `int 0x80`, x32) are all traced, so none slips past: the tracer marks
//! such a run uncacheable.

use crate::error::{Result, TraceError};

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const BPF_JSET_K: u16 = 0x45;
const BPF_JA: u16 = 0x05;
const AT_EMPTY_PATH: u32 = 0x1000;

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_TRACE: u32 = 0x7ff0_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;

/// Offsets into `struct seccomp_data`.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_ARG0: u32 = 16;

/// The system calls that name paths (or list directories) and so reveal
/// what a command reads and writes.
pub const TRACED: &[i64] = &[
    libc::SYS_open,
    libc::SYS_openat,
    libc::SYS_openat2,
    libc::SYS_creat,
    libc::SYS_stat,
    libc::SYS_lstat,
    libc::SYS_newfstatat,
    libc::SYS_statx,
    libc::SYS_access,
    libc::SYS_faccessat,
    libc::SYS_faccessat2,
    libc::SYS_readlink,
    libc::SYS_readlinkat,
    libc::SYS_getdents,
    libc::SYS_getdents64,
    libc::SYS_execve,
    libc::SYS_execveat,
    libc::SYS_rename,
    libc::SYS_renameat,
    libc::SYS_renameat2,
    libc::SYS_unlink,
    libc::SYS_unlinkat,
    libc::SYS_mkdir,
    libc::SYS_mkdirat,
    libc::SYS_rmdir,
    libc::SYS_link,
    libc::SYS_linkat,
    libc::SYS_symlink,
    libc::SYS_symlinkat,
    libc::SYS_truncate,
    libc::SYS_chdir,
    libc::SYS_mknod,
    libc::SYS_mknodat,
    libc::SYS_chmod,
    libc::SYS_fchmod,
    libc::SYS_fchmodat,
    libc::SYS_chown,
    libc::SYS_fchown,
    libc::SYS_lchown,
    libc::SYS_fchownat,
    libc::SYS_utime,
    libc::SYS_utimes,
    libc::SYS_utimensat,
    libc::SYS_futimesat,
    libc::SYS_open_by_handle_at,
    libc::SYS_getxattr,
    libc::SYS_lgetxattr,
    libc::SYS_fgetxattr,
    libc::SYS_setxattr,
    libc::SYS_lsetxattr,
    libc::SYS_fsetxattr,
    libc::SYS_removexattr,
    libc::SYS_lremovexattr,
    libc::SYS_fremovexattr,
    libc::SYS_connect,
    libc::SYS_bind,
    // Not a path: its answer is rewritten when the tracer pinned the
    // processes to one CPU (`Pinned::shown`).
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
];

/// System calls that use a descriptor (argument index given), traced only
/// for descriptors the command did not open itself: those it inherited from
/// casher's caller, and (for a `@cached` call, [`watch_program`]) those
/// its module's import left open. What goes through them cannot be
/// recorded (a write to a log the import opened, a query on its
/// connection), so using one makes the run uncacheable. `fcntl` and `dup`
/// are here because a copy of such a descriptor would escape the watch.
pub const FD_CALLS: &[(i64, u32)] = &[
    (libc::SYS_read, 0),
    (libc::SYS_pread64, 0),
    (libc::SYS_readv, 0),
    (libc::SYS_preadv, 0),
    (libc::SYS_preadv2, 0),
    (libc::SYS_write, 0),
    (libc::SYS_pwrite64, 0),
    (libc::SYS_writev, 0),
    (libc::SYS_pwritev, 0),
    (libc::SYS_pwritev2, 0),
    (libc::SYS_lseek, 0),
    (libc::SYS_dup, 0),
    (libc::SYS_dup2, 0),
    (libc::SYS_dup3, 0),
    (libc::SYS_fcntl, 0),
    (libc::SYS_ioctl, 0),
    (libc::SYS_fchdir, 0),
    (libc::SYS_ftruncate, 0),
    (libc::SYS_fallocate, 0),
    (libc::SYS_mmap, 4),
    (libc::SYS_sendfile, 0),
    (libc::SYS_sendfile, 1),
    (libc::SYS_splice, 0),
    (libc::SYS_splice, 2),
    (libc::SYS_tee, 0),
    (libc::SYS_tee, 1),
    (libc::SYS_vmsplice, 0),
    (libc::SYS_copy_file_range, 0),
    (libc::SYS_copy_file_range, 2),
    (libc::SYS_sendto, 0),
    (libc::SYS_sendmsg, 0),
    (libc::SYS_sendmmsg, 0),
    (libc::SYS_recvfrom, 0),
    (libc::SYS_recvmsg, 0),
    (libc::SYS_recvmmsg, 0),
    // A lock taken, a connection accepted, a socket's state changed: all
    // the descriptor's, none of them recorded. (Not `getsockname`: an
    // unclosed socket's finalizer names its address in every interpreter
    // that ends with one open.)
    (libc::SYS_flock, 0),
    (libc::SYS_accept, 0),
    (libc::SYS_accept4, 0),
    (libc::SYS_listen, 0),
    (libc::SYS_shutdown, 0),
    (libc::SYS_setsockopt, 0),
    (libc::SYS_epoll_ctl, 2),
];

/// The `SECCOMP_RET_DATA` of a stop on one of [`FD_CALLS`] for a watched
/// descriptor: the tracer refuses the run whatever the call is.
pub const NOT_OPENED_BY_THE_RUN: u32 = 1;

/// More inherited descriptors than this cannot be watched (jump offsets in
/// BPF are 8 bits): a run that inherits more is not cached.
pub const MAX_WATCHED_FDS: usize = 32;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// Builds the program. With `trace_stdin_reads`, `read(0, ...)` stops too
/// (used when stdin is a terminal: reading it makes a run uncacheable);
/// every call of [`FD_CALLS`] on one of `inherited` stops too.
pub fn program(trace_stdin_reads: bool, inherited: &[i32]) -> Vec<libc::sock_filter> {
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        // Another ABI: trace everything, so the tracer sees it.
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_TRACE),
        stmt(BPF_LD_W_ABS, OFF_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, 0, 1),
        stmt(BPF_RET_K, SECCOMP_RET_TRACE),
    ];
    // `fstat(fd)` is `newfstatat(fd, "", AT_EMPTY_PATH)` in glibc (statx
    // likewise): a question about an already open file, not a path lookup,
    // and the commonest call of all. Let those run without a stop.
    for (nr, flags_arg) in [(libc::SYS_newfstatat, 3u32), (libc::SYS_statx, 2u32)] {
        p.push(jump(BPF_JEQ_K, nr as u32, 0, 4));
        p.push(stmt(BPF_LD_W_ABS, OFF_ARG0 + 8 * flags_arg));
        p.push(jump(BPF_JSET_K, AT_EMPTY_PATH, 0, 1));
        p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
        p.push(stmt(BPF_RET_K, SECCOMP_RET_TRACE));
    }
    for &nr in TRACED {
        p.push(jump(BPF_JEQ_K, nr as u32, 0, 1));
        p.push(stmt(BPF_RET_K, SECCOMP_RET_TRACE));
    }
    // io_uring would perform file operations we cannot see: refuse it, and
    // programs fall back to ordinary system calls.
    p.push(jump(BPF_JEQ_K, libc::SYS_io_uring_setup as u32, 0, 1));
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ERRNO | libc::ENOSYS as u32));
    if trace_stdin_reads {
        // `read(0, ...)` of a terminal: the tracer refuses it itself.
        watch(&mut p, libc::SYS_read, 0, &[0], SECCOMP_RET_TRACE);
    }
    let fds: Vec<u32> = inherited
        .iter()
        .take(MAX_WATCHED_FDS)
        .map(|&fd| fd as u32)
        .collect();
    watch_all(&mut p, &fds, &[]);
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p
}

/// For each of [`FD_CALLS`] but `except` on one of `fds`: stop, tagged
/// [`NOT_OPENED_BY_THE_RUN`].
fn watch_all(p: &mut Vec<libc::sock_filter>, fds: &[u32], except: &[i64]) {
    if fds.is_empty() {
        return;
    }
    for &(nr, arg) in FD_CALLS.iter().filter(|(nr, _)| !except.contains(nr)) {
        watch(p, nr, arg, fds, SECCOMP_RET_TRACE | NOT_OPENED_BY_THE_RUN);
    }
}

/// `if nr == X { load arg; if arg is one of fds { return ret } else { load
/// nr again and go on } }`.
fn watch(p: &mut Vec<libc::sock_filter>, nr: i64, arg: u32, fds: &[u32], ret: u32) {
    let n = fds.len() as u8;
    p.push(jump(BPF_JEQ_K, nr as u32, 0, n + 4));
    p.push(stmt(BPF_LD_W_ABS, OFF_ARG0 + 8 * arg));
    for (i, fd) in fds.iter().enumerate() {
        p.push(jump(BPF_JEQ_K, *fd, n + 1 - i as u8, 0));
    }
    p.push(stmt(BPF_LD_W_ABS, OFF_NR));
    p.push(stmt(BPF_JA, 1));
    p.push(stmt(BPF_RET_K, ret));
}

/// The program a `@cached` call's child adds to its own (filters stack:
/// the kernel keeps the stop, and the newest filter's data): every use of
/// a descriptor its module's import left open stops, tagged
/// [`NOT_OPENED_BY_THE_RUN`]. `None` when there are more than can be
/// watched.
pub fn watch_program(fds: &[i32]) -> Option<Vec<libc::sock_filter>> {
    if fds.len() > MAX_WATCHED_FDS {
        return None;
    }
    let fds: Vec<u32> = fds.iter().map(|&fd| fd as u32).collect();
    let mut p = vec![
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        // Another ABI: the base program traces everything already.
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        stmt(BPF_LD_W_ABS, OFF_NR),
    ];
    // Not `lseek`: moving the offset is no effect outside the process (a
    // call's write or read through it is), and a Python file object's
    // flush or close seeks (a call's child closes the import's files).
    watch_all(&mut p, &fds, &[libc::SYS_lseek]);
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    Some(p)
}

/// Adds [`watch_program`] for `fds` to this process's filters: a `@cached`
/// call's child does, before its call, for the descriptors its module's
/// import left open. From then on, a use of one stops it for its tracer.
pub fn watch_descriptors(fds: &[i32]) -> Result<()> {
    let program = watch_program(fds).ok_or_else(|| {
        TraceError::Os(format!(
            "{} descriptors left open are more than the {MAX_WATCHED_FDS} a filter can watch",
            fds.len()
        ))
    })?;
    let prog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| TraceError::Os("seccomp program too long".into()))?,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points into `program`, alive for both calls. No new
    // privileges is what a filter needs (a traced child has it already);
    // TSYNC puts the filter on every thread of the process, or fails.
    let failed = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            || libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::SECCOMP_FILTER_FLAG_TSYNC,
                &prog as *const libc::sock_fprog,
            ) != 0
    };
    if failed {
        return Err(TraceError::Os(format!(
            "installing the descriptor watch: {}",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `body` in a forked child with `watch_descriptors(fds)` installed;
    /// its exit code. Untraced, a stop the filter asks for fails the system
    /// call with ENOSYS, which is what the body checks.
    fn in_watched_child(fds: &[i32], body: impl FnOnce() -> i32) -> i32 {
        // SAFETY: the child only makes system calls and exits.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let code = if watch_descriptors(fds).is_ok() {
                body()
            } else {
                99
            };
            // SAFETY: ends the forked child without running the test harness.
            unsafe { libc::_exit(code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        libc::WEXITSTATUS(status)
    }

    fn enosys(result: isize) -> bool {
        result < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS)
    }

    #[test]
    fn a_watched_descriptor_stops_and_others_do_not() {
        let mut pipes = [[0; 2]; 3];
        for p in &mut pipes {
            // SAFETY: fills a two-int array.
            assert_eq!(unsafe { libc::pipe(p.as_mut_ptr()) }, 0);
        }
        let watched = [pipes[0][1], pipes[1][1]];
        let free = pipes[2][1];
        let code = in_watched_child(&watched, || {
            let byte = [1u8];
            // SAFETY: one-byte writes from a local buffer.
            let write = |fd| unsafe { libc::write(fd, byte.as_ptr().cast(), 1) };
            let mut failures = 0;
            for fd in watched {
                failures += i32::from(!enosys(write(fd)));
                // SAFETY: `dup` of an open descriptor.
                failures += i32::from(!enosys(unsafe { libc::dup(fd) } as isize));
            }
            failures += i32::from(write(free) != 1);
            // `lseek` is left to the call (a pipe answers ESPIPE, not ENOSYS).
            // SAFETY: a seek on an open descriptor.
            failures += i32::from(enosys(unsafe { libc::lseek(watched[0], 0, 1) } as isize));
            failures
        });
        assert_eq!(code, 0);
    }

    #[test]
    fn more_descriptors_than_a_filter_can_watch_are_refused() {
        let fds: Vec<i32> = (100..100 + MAX_WATCHED_FDS as i32 + 1).collect();
        assert!(watch_program(&fds).is_none());
        assert!(watch_program(&fds[1..]).is_some());
    }
}
