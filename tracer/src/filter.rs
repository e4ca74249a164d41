//! The seccomp-BPF program installed in the child before `execve`: only
//! path-related system calls stop the tracee (`SECCOMP_RET_TRACE`); every
//! other call runs at full speed. System calls of another ABI (32-bit
//! `int 0x80`, x32) are all traced, so none slips past: the tracer marks
//! such a run uncacheable.

/// `AUDIT_ARCH_X86_64` from `<linux/audit.h>`.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JEQ_K: u16 = 0x15;
const BPF_JGE_K: u16 = 0x35;
const BPF_RET_K: u16 = 0x06;
const BPF_JSET_K: u16 = 0x45;
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
    libc::SYS_connect,
    libc::SYS_bind,
    // Not a path: its answer is rewritten when the tracer pinned the
    // processes to one CPU (`Pinned::shown`).
    libc::SYS_sched_getaffinity,
    libc::SYS_sched_setaffinity,
];

/// System calls that use a descriptor (argument index given), traced only
/// for descriptors the command inherited from casher's caller: their data
/// cannot be recorded, so using one makes the run uncacheable.
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
    (libc::SYS_fchdir, 0),
    (libc::SYS_ftruncate, 0),
    (libc::SYS_mmap, 4),
    (libc::SYS_sendfile, 1),
    (libc::SYS_splice, 0),
    (libc::SYS_copy_file_range, 0),
    (libc::SYS_recvfrom, 0),
    (libc::SYS_recvmsg, 0),
];

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
    for &(nr, arg) in FD_CALLS {
        let mut fds: Vec<u32> = inherited.iter().map(|&fd| fd as u32).collect();
        if trace_stdin_reads && nr == libc::SYS_read {
            fds.push(0);
        }
        fds.truncate(MAX_WATCHED_FDS);
        if fds.is_empty() {
            continue;
        }
        // if nr == X { load arg; if arg == fd1 || ... { TRACE } ALLOW }
        let n = fds.len() as u8;
        p.push(jump(BPF_JEQ_K, nr as u32, 0, n + 3));
        p.push(stmt(BPF_LD_W_ABS, OFF_ARG0 + 8 * arg));
        for (i, fd) in fds.iter().enumerate() {
            p.push(jump(BPF_JEQ_K, *fd, n - i as u8, 0));
        }
        p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
        p.push(stmt(BPF_RET_K, SECCOMP_RET_TRACE));
    }
    p.push(stmt(BPF_RET_K, SECCOMP_RET_ALLOW));
    p
}
