//! A traced session: one long-lived traced process (a fork server) whose
//! forked children are *calls*. What the server observed up to its first
//! call is shared by every call (a call starts from that state, as a forked
//! process does); each call's own observations go to its own recorder, and
//! its report is delivered when the call's root process exits.
//!
//! The ptrace loop is the one of a plain run (`tracer::run`); only the
//! routing of observations differs (`Route`). The loop lives on a thread
//! of its own for the session's lifetime, because a tracee's tracer is a
//! thread. The server dies with that thread (`PR_SET_PDEATHSIG`) and with
//! the caller (`PTRACE_O_EXITKILL`), so it is never left behind.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::error::{Result, TraceError};
use crate::spawn::{self, ChildStdio};
use crate::stdio::{Capture, Chunk, OutputSink, Stream};
use crate::tracer;

mod route;
mod watch;
use crate::{child_failure, Pinned, TraceReport, DEFAULT_IGNORED};
use route::{stamp_as, Router, Shared};

/// What to start as the server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub argv: Vec<OsString>,
    /// Path prefixes to leave out (the store itself).
    pub ignore: Vec<PathBuf>,
    /// Run the session on one CPU (see `TraceConfig::pin`).
    pub pin: bool,
}

/// A running traced server.
pub struct Session {
    /// The process that started it: a process forked from that one
    /// inherits this value but not the tracer thread, and must leave the
    /// server alone.
    owner: u32,
    pid: i32,
    control: Option<OwnedFd>,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
    output: Option<CallOutput>,
    call_cpu: Option<usize>,
}

impl Session {
    /// Starts `config.argv` traced, with one end of a socket pair as its
    /// descriptor 3 (the other end: `take_control`).
    pub fn start(config: &SessionConfig) -> Result<Session> {
        if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            return Err(TraceError::UnsupportedArch(std::env::consts::ARCH));
        }
        let (ours, theirs) = socket_pair()?;
        // The server's own output (import-time prints, a failed import's
        // traceback) is kept for diagnostics, never replayed.
        let (output, out_write, err_write) = CallOutput::open(None)?;
        let shared = Arc::new(Shared::default());
        let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<(i32, Option<usize>)>>();
        let config = config.clone();
        let loop_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("casher-session".to_owned())
            .spawn(move || {
                let pinned = config.pin.then(Pinned::to_current_cpu);
                let spawned = (|| {
                    let null = std::fs::File::open("/dev/null")
                        .map_err(|e| TraceError::Os(format!("/dev/null: {e}")))?;
                    let stdio = ChildStdio {
                        stdin: Some(null.as_raw_fd()),
                        stdout: out_write.as_raw_fd(),
                        stderr: err_write.as_raw_fd(),
                        control: Some(theirs.as_raw_fd()),
                        die_with_parent: true,
                    };
                    let spawned =
                        spawn::spawn(&config.argv, &crate::filter::program(false, &[]), &stdio)?;
                    let program = config.argv[0].to_string_lossy().into_owned();
                    if tracer::attach(spawned.pid)?.is_none() {
                        return Err(child_failure(&spawned.failure, &program));
                    }
                    Ok(spawned.pid)
                })();
                drop((theirs, out_write, err_write));
                let pid = match spawned {
                    Ok(pid) => pid,
                    Err(e) => {
                        let _ = started_tx.send(Err(e));
                        loop_shared.update(|s| s.done = true);
                        return;
                    }
                };
                let call_cpu = pinned.as_ref().and_then(Pinned::call_cpu);
                let _ = started_tx.send(Ok((pid, call_cpu)));
                let ignore = DEFAULT_IGNORED
                    .iter()
                    .map(PathBuf::from)
                    .chain(config.ignore.iter().cloned())
                    .collect();
                let mut router = Router::new(Pid::from_raw(pid), ignore, &loop_shared);
                let shown = pinned.as_ref().map(Pinned::shown);
                if let Err(e) = tracer::run(pid, &mut router, None, shown.as_deref()) {
                    tracing::debug!("the traced session of {pid} ended: {e}");
                }
                loop_shared.update(|s| s.done = true);
            })
            .map_err(|e| TraceError::Os(format!("starting the session thread: {e}")))?;
        let (pid, call_cpu) = started_rx
            .recv()
            .map_err(|_| TraceError::Os("the session thread ended before it started".into()))??;
        Ok(Session {
            owner: std::process::id(),
            pid,
            control: Some(ours),
            shared,
            thread: Some(thread),
            output: Some(output),
            call_cpu,
        })
    }

    /// The server's process id.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Our end of the control socket (once).
    pub fn take_control(&mut self) -> Option<OwnedFd> {
        self.control.take()
    }

    /// The server has finished importing: from now on, a process it forks
    /// is a call.
    pub fn mark_ready(&self) {
        self.shared.update(|s| s.ready = true);
    }

    /// The CPU its calls run on when the server may run on others (the
    /// server places itself and them: see `affinity::call_cpu`).
    pub fn call_cpu(&self) -> Option<usize> {
        self.call_cpu
    }

    /// Why the server must not serve another call (it ended, or one of the
    /// inputs it imported changed since), or `None`. Called before each
    /// call: from this moment on, a change to what the call reads happens
    /// while it runs (a child forked ahead of its request starts now, not
    /// at its fork), so no change falls between the check and the call.
    pub fn stale(&self) -> Option<String> {
        let state = self.shared.state.lock().ok()?;
        if state.done {
            return Some("the server exited".to_owned());
        }
        let imports = state.imports.as_ref()?;
        if !imports.problems.is_empty() {
            return Some(imports.problems.join("; "));
        }
        if imports.watch.as_ref().is_some_and(|w| !w.changed()) {
            return None;
        }
        imports
            .stamps
            .iter()
            .find(|(path, follow, identity, was)| stamp_as(path, *follow, *identity) != *was)
            .map(|(path, ..)| format!("{} changed", path.display()))
    }

    /// What the server observed up to its first call (every call's report
    /// includes these), once a call has started. They hold as long as
    /// `stale` says `None` before each call, so a caller may convert them
    /// once and reuse the result for every call of this session.
    pub fn imports(&self) -> Option<Arc<Vec<crate::ObservedInput>>> {
        let state = self.shared.state.lock().ok()?;
        state.imports.as_ref().map(|i| Arc::clone(&i.inputs))
    }

    /// Waits for the report of the call whose root process is `pid`.
    pub fn report(&self, pid: i32, timeout: Duration) -> Result<TraceReport> {
        let deadline = Instant::now() + timeout;
        let mut state = self
            .shared
            .state
            .lock()
            .map_err(|_| TraceError::Os("session state poisoned".into()))?;
        loop {
            if let Some(report) = state.reports.remove(&pid) {
                return Ok(report);
            }
            if state.done {
                return Err(TraceError::Os(format!(
                    "the traced server ended before call {pid} did"
                )));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(TraceError::Os(format!(
                    "call {pid} did not end within {} s",
                    timeout.as_secs()
                )));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, left)
                .map_err(|_| TraceError::Os("session state poisoned".into()))?
                .0;
        }
    }

    /// What the server itself printed so far (for diagnostics).
    pub fn server_output(&self) -> Vec<u8> {
        let chunks = self
            .output
            .as_ref()
            .map(|o| o.capture.take())
            .unwrap_or_default();
        chunks.into_iter().flat_map(|c| c.bytes).collect()
    }

    /// Ends the server and its calls (only in the process that started it).
    pub fn kill(&mut self) {
        if std::process::id() != self.owner {
            // Forked from the owner: the thread is not ours to join, and
            // the server is not ours to end.
            std::mem::forget(self.thread.take());
            std::mem::forget(self.output.take());
            return;
        }
        // SAFETY: signals the process we started; it is a zombie at worst
        // (reaped only by our own loop), so the pid is not reused meanwhile.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        if let Some(output) = self.output.take() {
            let _ = output.finish();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.kill();
    }
}

fn socket_pair() -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors socketpair returns.
    let rc = unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(TraceError::Os(format!(
            "socketpair: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: socketpair just returned these two fresh descriptors.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A call's stdout and stderr: pipes whose write ends go to the call, read
/// and forwarded live as they arrive, recorded in order.
pub struct CallOutput {
    capture: Capture,
    pumps: Vec<JoinHandle<()>>,
}

impl CallOutput {
    /// The output and the write ends of its stdout and stderr pipes.
    pub fn open(sink: Option<OutputSink>) -> Result<(CallOutput, OwnedFd, OwnedFd)> {
        let capture = Capture::default();
        let (out_read, out_write) = spawn::pipe()?;
        let (err_read, err_write) = spawn::pipe()?;
        let pumps = vec![
            capture.pump(out_read, Stream::Stdout, false, sink.clone()),
            capture.pump(err_read, Stream::Stderr, false, sink),
        ];
        Ok((CallOutput { capture, pumps }, out_write, err_write))
    }

    /// Waits until every writer closed its end; everything printed.
    pub fn finish(self) -> Vec<Chunk> {
        for pump in self.pumps {
            let _ = pump.join();
        }
        self.capture.take()
    }
}
