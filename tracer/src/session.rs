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

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

use crate::effects::{ObservedInput, Recorder};
use crate::error::{Result, TraceError};
use crate::spawn::{self, ChildStdio};
use crate::stdio::{Capture, Chunk, OutputSink, Stream};
use crate::tracer::{self, Exit, Route};
use crate::{child_failure, now_ns, Pinned, TraceReport, DEFAULT_IGNORED};

/// What to start as the server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub argv: Vec<OsString>,
    /// Path prefixes to leave out (the store itself).
    pub ignore: Vec<PathBuf>,
    /// Run the session on one CPU (see `TraceConfig::pin`).
    pub pin: bool,
}

/// What identifies a file's state cheaply: the stat fast path.
type Stamp = (u64, u64, u64, i64, i64, i64, i64, u32);

fn stamp(path: &std::path::Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.mode(),
    ))
}

/// The server's inputs at its first call, with their stat stamps then.
struct Imports {
    stamps: Vec<(PathBuf, Option<Stamp>)>,
    problems: Vec<String>,
}

#[derive(Default)]
struct State {
    ready: bool,
    /// When the caller sent the current call (a child forked ahead of its
    /// request starts then, not at its fork).
    begun: i128,
    done: bool,
    imports: Option<Imports>,
    reports: HashMap<i32, TraceReport>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut State)) {
        if let Ok(mut state) = self.state.lock() {
            f(&mut state);
        }
        self.changed.notify_all();
    }
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
        let (started_tx, started_rx) = std::sync::mpsc::channel::<Result<i32>>();
        let config = config.clone();
        let loop_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("casher-session".to_owned())
            .spawn(move || {
                let _pinned = config.pin.then(Pinned::to_current_cpu);
                let started = now_ns();
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
                        spawn::spawn(&config.argv, &crate::filter::program(false), &stdio)?;
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
                let _ = started_tx.send(Ok(pid));
                let ignore = DEFAULT_IGNORED
                    .iter()
                    .map(PathBuf::from)
                    .chain(config.ignore.iter().cloned())
                    .collect();
                let mut router = Router::new(Pid::from_raw(pid), started, ignore, &loop_shared);
                if let Err(e) = tracer::run(pid, &mut router) {
                    tracing::debug!("the traced session of {pid} ended: {e}");
                }
                loop_shared.update(|s| s.done = true);
            })
            .map_err(|e| TraceError::Os(format!("starting the session thread: {e}")))?;
        let pid = started_rx
            .recv()
            .map_err(|_| TraceError::Os("the session thread ended before it started".into()))??;
        Ok(Session {
            owner: std::process::id(),
            pid,
            control: Some(ours),
            shared,
            thread: Some(thread),
            output: Some(output),
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

    /// Why the server must not serve another call (it ended, or one of the
    /// inputs it imported changed since), or `None`. Called before each
    /// call: from this moment on, a change to what the call reads happens
    /// while it runs (a child forked ahead of its request starts now, not
    /// at its fork), so no change falls between the check and the call.
    pub fn stale(&self) -> Option<String> {
        let mut state = self.shared.state.lock().ok()?;
        state.begun = now_ns();
        if state.done {
            return Some("the server exited".to_owned());
        }
        let imports = state.imports.as_ref()?;
        if !imports.problems.is_empty() {
            return Some(imports.problems.join("; "));
        }
        imports
            .stamps
            .iter()
            .find(|(path, was)| stamp(path) != *was)
            .map(|(path, _)| format!("{} changed", path.display()))
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

/// A call: its recorder (started from the server's), its live processes.
struct Call {
    recorder: Recorder,
    started: i128,
    live: HashSet<Pid>,
    problems: Vec<String>,
}

/// Sends each process's observations to the server's recorder (until the
/// first call), or to its call's.
struct Router<'a> {
    server: Pid,
    started: i128,
    shared: &'a Shared,
    server_recorder: Recorder,
    server_problems: Vec<String>,
    /// The server's state at its first call; every call starts from it.
    snapshot: Option<Recorder>,
    /// Where observations nobody will report go (the server after its
    /// first call, a call's processes outliving it).
    stray: Recorder,
    known: HashSet<Pid>,
    owner: HashMap<Pid, Pid>,
    calls: HashMap<Pid, Call>,
}

impl<'a> Router<'a> {
    fn new(server: Pid, started: i128, ignore: Vec<PathBuf>, shared: &'a Shared) -> Self {
        Router {
            server,
            started,
            shared,
            server_recorder: Recorder::new(ignore.clone()),
            server_problems: Vec::new(),
            snapshot: None,
            stray: Recorder::new(ignore),
            known: HashSet::from([server]),
            owner: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    fn ready(&self) -> bool {
        self.shared.state.lock().is_ok_and(|s| s.ready)
    }

    /// The server's recorder as it is now becomes every call's start; its
    /// inputs are stamped so the caller can tell when they change.
    fn take_snapshot(&mut self) -> (Recorder, Vec<String>) {
        if let Some(snapshot) = &self.snapshot {
            let problems = self
                .shared
                .state
                .lock()
                .ok()
                .and_then(|s| s.imports.as_ref().map(|i| i.problems.clone()))
                .unwrap_or_default();
            return (snapshot.clone(), problems);
        }
        let snapshot = self.server_recorder.clone();
        let (inputs, _, mut problems) = snapshot.clone().finish(self.started);
        problems.append(&mut self.server_problems);
        let stamps = inputs
            .into_iter()
            .map(|input| match input {
                ObservedInput::File { path, .. } | ObservedInput::Dir { path } => {
                    let now = stamp(&path);
                    (path, now)
                }
                ObservedInput::Absent { path } => (path, None),
            })
            .collect();
        let imports = Imports {
            stamps,
            problems: problems.clone(),
        };
        self.shared.update(|s| s.imports = Some(imports));
        self.snapshot = Some(snapshot.clone());
        (snapshot, problems)
    }

    fn deliver(&mut self, root: Pid, exit: Exit) {
        let Some(call) = self.calls.remove(&root) else {
            return;
        };
        let mut uncacheable = call.problems;
        if !call.live.is_empty() {
            uncacheable.push("the call left processes running after it returned".to_owned());
        }
        let begun = self.shared.state.lock().map(|s| s.begun).unwrap_or(0);
        let (inputs, outputs, problems) = call.recorder.finish(call.started.max(begun));
        uncacheable.extend(problems);
        let report = TraceReport {
            exit,
            inputs,
            outputs,
            stdio: Vec::new(),
            uncacheable,
        };
        self.shared.update(|s| {
            s.reports.insert(root.as_raw(), report);
        });
    }
}

impl Route for Router<'_> {
    fn recorder(&mut self, pid: Pid) -> &mut Recorder {
        match self.owner.get(&pid) {
            Some(root) => match self.calls.get_mut(root) {
                Some(call) => &mut call.recorder,
                None => &mut self.stray,
            },
            None if self.snapshot.is_some() => &mut self.stray,
            None => &mut self.server_recorder,
        }
    }

    fn knows(&mut self, pid: Pid) -> bool {
        self.known.contains(&pid)
    }

    fn forked(&mut self, parent: Pid, child: Pid, event: i32) {
        self.known.insert(child);
        if let Some(&root) = self.owner.get(&parent) {
            self.owner.insert(child, root);
            if let Some(call) = self.calls.get_mut(&root) {
                call.live.insert(child);
            }
        } else if parent == self.server && event != libc::PTRACE_EVENT_CLONE && self.ready() {
            let (recorder, problems) = self.take_snapshot();
            self.owner.insert(child, child);
            self.calls.insert(
                child,
                Call {
                    recorder,
                    started: now_ns(),
                    live: HashSet::new(),
                    problems,
                },
            );
        }
    }

    fn noted(&mut self, pid: Pid, reason: &str) {
        let list = match self.owner.get(&pid).and_then(|r| self.calls.get_mut(r)) {
            Some(call) => &mut call.problems,
            None if self.snapshot.is_none() => &mut self.server_problems,
            None => return,
        };
        if !list.iter().any(|r| r == reason) {
            list.push(reason.to_owned());
        }
    }

    fn exited(&mut self, pid: Pid, exit: Exit) {
        self.known.remove(&pid);
        let Some(root) = self.owner.remove(&pid) else {
            return;
        };
        if let Some(call) = self.calls.get_mut(&root) {
            call.live.remove(&pid);
        }
        if root == pid {
            self.deliver(root, exit);
        }
    }
}
