//! Starting the child: it asks to be traced, stops so the tracer can set its
//! options, installs the seccomp filter and executes the command.
//!
//! Everything the child needs is prepared before `fork`, because between
//! `fork` and `exec` only async-signal-safe calls are allowed.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;

use crate::error::{Result, TraceError};

/// What failed in the child before `exec`, reported through a pipe.
#[derive(Debug, Clone, Copy)]
pub enum ChildFailure {
    Ptrace(i32),
    Seccomp(i32),
    Exec(i32),
}

pub struct Spawned {
    pub pid: i32,
    /// Read end of the failure pipe (closed by a successful exec).
    pub failure: OwnedFd,
}

/// How the child's standard streams are connected.
pub struct ChildStdio {
    pub stdin: Option<RawFd>,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// A session's control socket, placed at descriptor 3.
    pub control: Option<RawFd>,
    /// Killed when the thread that started it ends (a session's server:
    /// never left behind by its caller).
    pub die_with_parent: bool,
}

fn pipe_cloexec() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors pipe2 returns.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(TraceError::Os(std::io::Error::last_os_error().to_string()));
    }
    // SAFETY: pipe2 just returned these two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

pub fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    pipe_cloexec()
}

pub fn spawn(
    argv: &[std::ffi::OsString],
    filter: &[libc::sock_filter],
    stdio: &ChildStdio,
) -> Result<Spawned> {
    let c_argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| TraceError::Spawn {
            program: argv
                .first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default(),
            reason: "an argument contains a NUL byte".to_owned(),
            errno: None,
        })?;
    let Some(program) = c_argv.first() else {
        return Err(TraceError::Spawn {
            program: String::new(),
            reason: "no command given".to_owned(),
            errno: None,
        });
    };
    let mut c_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|a| a.as_ptr()).collect();
    c_ptrs.push(std::ptr::null());
    let prog = libc::sock_fprog {
        len: u16::try_from(filter.len())
            .map_err(|_| TraceError::Os("seccomp program too long".into()))?,
        filter: filter.as_ptr().cast_mut(),
    };
    let (fail_read, fail_write) = pipe_cloexec()?;
    let fail_fd = fail_write.as_raw_fd();

    // SAFETY: the child only calls async-signal-safe functions (dup2, ptrace,
    // raise, prctl, execvp, write, _exit) on data prepared above.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(TraceError::Os(std::io::Error::last_os_error().to_string()));
    }
    if pid == 0 {
        // Child.
        unsafe {
            let report = |stage: u8| -> ! {
                let errno = *libc::__errno_location();
                let mut msg = [0u8; 5];
                msg[0] = stage;
                msg[1..].copy_from_slice(&errno.to_le_bytes());
                libc::write(fail_fd, msg.as_ptr().cast(), msg.len());
                libc::_exit(127);
            };
            if let Some(fd) = stdio.stdin {
                libc::dup2(fd, 0);
            }
            libc::dup2(stdio.stdout, 1);
            libc::dup2(stdio.stderr, 2);
            if let Some(fd) = stdio.control {
                libc::dup2(fd, 3);
            }
            if stdio.die_with_parent {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            }
            // The parent ignores SIGINT/SIGQUIT while the command runs; the
            // command gets the default dispositions back.
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            if libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0) != 0 {
                report(1);
            }
            libc::raise(libc::SIGSTOP);
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                report(2);
            }
            if libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &prog as *const libc::sock_fprog,
            ) != 0
            {
                report(2);
            }
            libc::execvp(program.as_ptr(), c_ptrs.as_ptr());
            report(3);
        }
    }
    drop(fail_write);
    Ok(Spawned {
        pid,
        failure: fail_read,
    })
}

/// What the child reported before exec, if anything.
pub fn read_failure(fd: &OwnedFd) -> Option<ChildFailure> {
    let mut msg = [0u8; 5];
    // SAFETY: reading into a local buffer of the given size.
    let n = unsafe { libc::read(fd.as_raw_fd(), msg.as_mut_ptr().cast(), msg.len()) };
    if n != 5 {
        return None;
    }
    let errno = i32::from_le_bytes([msg[1], msg[2], msg[3], msg[4]]);
    Some(match msg[0] {
        1 => ChildFailure::Ptrace(errno),
        2 => ChildFailure::Seccomp(errno),
        _ => ChildFailure::Exec(errno),
    })
}
