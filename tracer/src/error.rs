//! The tracer's errors. Each says why tracing is impossible and how to run
//! the command anyway.

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// ptrace is not allowed here (seccomp policy of a container, Yama
    /// `ptrace_scope`, missing `CAP_SYS_PTRACE`, or already being traced).
    #[error("cannot trace the command: ptrace was refused ({0})\nhint: casher needs ptrace to see which files a command reads; in a container allow it (e.g. `--cap-add SYS_PTRACE`), or run without caching with `casher run --no-cache -- ...`")]
    PtraceRefused(String),

    /// The seccomp filter could not be installed.
    #[error("cannot trace the command: installing the seccomp filter failed ({0})\nhint: run without caching with `casher run --no-cache -- ...`")]
    SeccompRefused(String),

    /// Tracing is implemented for x86_64 Linux only.
    #[error("cannot trace commands on this architecture ({0}): casher's tracer supports x86_64 Linux\nhint: run without caching with `casher run --no-cache -- ...`")]
    UnsupportedArch(&'static str),

    /// The command could not be started (not found, not executable).
    #[error("cannot run {program}: {reason}")]
    Spawn {
        program: String,
        reason: String,
        /// The `execve` errno, when that is what failed.
        errno: Option<i32>,
    },

    /// An operating-system call of the tracer itself failed.
    #[error("tracing failed: {0}")]
    Os(String),
}

impl TraceError {
    /// The status a shell gives a command it could not start: 127 when it
    /// was not found, 126 when it could not be executed.
    pub fn shell_code(&self) -> Option<i32> {
        match self {
            TraceError::Spawn {
                errno: Some(errno), ..
            } => Some(if *errno == libc::ENOENT || *errno == libc::ENOTDIR {
                127
            } else {
                126
            }),
            _ => None,
        }
    }

    /// Tracing is impossible here (not a problem of the command): the
    /// command can still run plainly.
    pub fn refused(&self) -> bool {
        matches!(
            self,
            TraceError::PtraceRefused(_)
                | TraceError::SeccompRefused(_)
                | TraceError::UnsupportedArch(_)
        )
    }
}

pub type Result<T, E = TraceError> = std::result::Result<T, E>;
