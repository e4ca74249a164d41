//! casher's tracer: run a command tree under ptrace and report what it read,
//! what it changed, what it printed and how it ended.
//!
//! A seccomp-BPF filter makes only path-related system calls stop; the
//! rest run at full speed. Paths are resolved against each thread's working
//! directory or `dirfd` at the time of the call (read from `/proc`). The
//! crate never prints (it forwards the command's own output when asked).

mod affinity;
mod effects;
mod error;
mod exec;
mod filter;
mod finish;
mod inherited;
mod memory;
mod net;
mod observe;
mod paths;
mod session;
mod spawn;
mod stdio;
mod syscall;
mod tracer;

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

pub use effects::{ObservedInput, ObservedOutput, BEGIN_MARKER, IMPORTED_MARKER};
pub use error::{Result, TraceError};
pub use filter::watch_descriptors;
pub use inherited::traced_by_another_process;
pub use observe::{hash_file, Kind, Reveals, StatFacts, RECENT_NS};
pub use session::{CallOutput, Session, SessionConfig};
pub use stdio::{Chunk, OutputSink, Spilled, Stream};
pub use tracer::Exit;

use crate::spawn::{ChildFailure, ChildStdio};

/// Prefixes that are never inputs or outputs: kernel and device views
/// (`/dev/shm`, which holds ordinary files, is not ignored).
pub const DEFAULT_IGNORED: &[&str] = &["/proc", "/dev", "/sys"];

/// What to run and how.
#[derive(Debug, Clone)]
pub struct TraceConfig {
    pub argv: Vec<OsString>,
    /// Path prefixes to leave out (the store itself, `--ignore`).
    pub ignore: Vec<PathBuf>,
    /// Forward the command's output to ours as it runs.
    pub forward: bool,
    /// Our stdout and stderr are the same file: give the child one pipe for
    /// both, which keeps their interleaving exact.
    pub merge_stdio: bool,
    /// Bytes to feed as stdin (stdin was a file or pipe, already read).
    /// `None`: the child inherits our stdin.
    pub stdin_data: Option<Vec<u8>>,
    /// Stdin is a terminal: reading it makes the run uncacheable.
    pub stdin_is_tty: bool,
    /// Run the tracer and the traced tree on one CPU (faster stops, but no
    /// parallelism for the command).
    pub pin: bool,
    /// Forward output here instead of to our own stdout/stderr.
    pub sink: Option<OutputSink>,
    /// Cache runs that connect to sockets or the network (the user vouches
    /// that what comes back does not change).
    pub allow_network: bool,
    /// Called once if the command's main process exits while processes it
    /// started still run (a daemon, `sleep 5 &`): a shell would return now.
    /// Tracing goes on until they exit; such a run is never cacheable.
    pub on_main_exit: Option<MainExit>,
    /// The command is casher's own traced interpreter: what it reads before
    /// it probes [`BEGIN_MARKER`] (its start-up) is not an input. Never for
    /// a user's command, which could hide its reads that way.
    pub begin_marker: bool,
}

/// See [`TraceConfig::on_main_exit`].
#[derive(Clone)]
pub struct MainExit(pub std::sync::Arc<dyn Fn(Exit) + Send + Sync>);

impl std::fmt::Debug for MainExit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MainExit")
    }
}

/// Everything a traced run left behind.
#[derive(Debug, Clone)]
pub struct TraceReport {
    pub exit: Exit,
    pub inputs: Vec<ObservedInput>,
    pub outputs: Vec<ObservedOutput>,
    pub stdio: Vec<Chunk>,
    /// Reasons this run must not be cached (empty: cacheable).
    pub uncacheable: Vec<String>,
}

/// Runs `config.argv` traced.
pub fn trace(config: &TraceConfig) -> Result<TraceReport> {
    if !cfg!(all(target_os = "linux", target_arch = "x86_64")) {
        return Err(TraceError::UnsupportedArch(std::env::consts::ARCH));
    }
    let tty_stdin = config.stdin_is_tty && config.stdin_data.is_none();
    let inherited = inherited::descriptors(tty_stdin);
    let filter = filter::program(tty_stdin, &inherited.fds);
    let capture = stdio::Capture::default();
    let (out_read, out_write) = spawn::pipe()?;
    let (err_pipe, err_write): (Option<OwnedFd>, Option<OwnedFd>) = if config.merge_stdio {
        (None, None)
    } else {
        let (r, w) = spawn::pipe()?;
        (Some(r), Some(w))
    };
    let (stdin_read, stdin_write) = match &config.stdin_data {
        Some(_) => {
            let (r, w) = spawn::pipe()?;
            (Some(r), Some(w))
        }
        None => (None, None),
    };
    let child_stdio = ChildStdio {
        stdin: stdin_read.as_ref().map(AsRawFd::as_raw_fd),
        stdout: out_write.as_raw_fd(),
        stderr: err_write.as_ref().unwrap_or(&out_write).as_raw_fd(),
        control: None,
        die_with_parent: false,
    };
    // Like a shell with a foreground job: Ctrl-C goes to the command, and
    // we report how it ended.
    let _signals = IgnoreInterrupts::new();
    // A ptrace stop wakes the tracer; on the same CPU that is a cheap
    // context switch, across CPUs an inter-processor wakeup (measured here:
    // ~4 us vs ~55 us per stop). The child inherits the mask at fork.
    let pinned = config.pin.then(Pinned::to_current_cpu);
    let spawned = spawn::spawn(&config.argv, &filter, &child_stdio)?;
    drop(out_write);
    drop(err_write);
    drop(stdin_read);
    let mut pumps = vec![capture.pump(
        out_read,
        Stream::Stdout,
        config.forward,
        forward_sink(config, 1),
    )];
    if let Some(err) = err_pipe {
        pumps.push(capture.pump(err, Stream::Stderr, config.forward, forward_sink(config, 2)));
    }
    let feeder = stdin_write.zip(config.stdin_data.clone()).map(|(w, data)| {
        std::thread::spawn(move || {
            use std::io::Write;
            let mut w = std::fs::File::from(w);
            let _ = w.write_all(&data);
        })
    });

    let program = config.argv[0].to_string_lossy().into_owned();
    let attached = tracer::attach(spawned.pid)?;
    if attached.is_none() {
        return Err(child_failure(&spawned.failure, &program));
    }
    let mut recorder = effects::Recorder::new(
        DEFAULT_IGNORED
            .iter()
            .map(PathBuf::from)
            .chain(config.ignore.iter().cloned())
            .collect(),
        config.allow_network,
        inherited.identities,
    );
    if config.begin_marker {
        recorder = recorder.await_begin();
    }
    if inherited.too_many {
        recorder.problem(
            "the command inherited too many open descriptors from its caller to watch".to_owned(),
        );
    }
    let shown = pinned.as_ref().map(Pinned::shown);
    let outcome = tracer::run(
        spawned.pid,
        &mut recorder,
        config.on_main_exit.as_ref(),
        shown.as_deref(),
    )?;
    for pump in pumps {
        let _ = pump.join();
    }
    if let Some(feeder) = feeder {
        let _ = feeder.join();
    }
    if outcome.exit == Exit::Code(127) {
        if let Some(failure) = spawn::read_failure(&spawned.failure) {
            return Err(describe(failure, &program));
        }
    }
    let (inputs, outputs, mut uncacheable) = recorder.finish();
    uncacheable.extend(outcome.uncacheable);
    Ok(TraceReport {
        exit: outcome.exit,
        inputs,
        outputs,
        stdio: capture.take(),
        uncacheable,
    })
}

/// Where a pump forwards output. When the caller may let go of the run
/// at the main process's exit (`on_main_exit`), each pump forwards through
/// its own duplicate of our stdout/stderr, closed when the pump ends: the
/// caller may then close its own, and whoever reads our output sees its end
/// as soon as the command's processes have all closed theirs.
fn forward_sink(config: &TraceConfig, fd: i32) -> Option<OutputSink> {
    if config.sink.is_some() || !config.forward || config.on_main_exit.is_none() {
        return config.sink.clone();
    }
    // SAFETY: duplicates a descriptor we hold; the new one is ours.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) };
    if dup < 0 {
        return None;
    }
    use std::os::fd::FromRawFd;
    // SAFETY: `dup` is a fresh descriptor owned by nothing else.
    let file = std::sync::Mutex::new(unsafe { std::fs::File::from_raw_fd(dup) });
    Some(OutputSink(std::sync::Arc::new(move |_, data: &[u8]| {
        use std::io::Write;
        if let Ok(mut f) = file.lock() {
            // A closed reader must not stop the capture.
            let _ = f.write_all(data);
        }
    })))
}

pub(crate) fn child_failure(fd: &OwnedFd, program: &str) -> TraceError {
    match spawn::read_failure(fd) {
        Some(failure) => describe(failure, program),
        None => TraceError::PtraceRefused("the child exited before it could be traced".to_owned()),
    }
}

fn describe(failure: ChildFailure, program: &str) -> TraceError {
    let text = |errno: i32| std::io::Error::from_raw_os_error(errno).to_string();
    match failure {
        ChildFailure::Ptrace(e) => TraceError::PtraceRefused(text(e)),
        ChildFailure::Seccomp(e) => TraceError::SeccompRefused(text(e)),
        ChildFailure::Exec(e) => TraceError::Spawn {
            program: program.to_owned(),
            reason: text(e),
            errno: Some(e),
        },
    }
}

/// Pins the calling thread to the CPU it runs on; restores the old mask on drop.
pub(crate) struct Pinned {
    old: libc::cpu_set_t,
    /// The CPU it pinned the thread to (`None`: it could not tell).
    cpu: Option<usize>,
}

impl Pinned {
    /// The CPUs the traced processes are shown (`sched_getaffinity`): the
    /// ones they would have had unpinned, so pinning changes only speed,
    /// never what a program decides from its CPU count (`nproc`, a thread
    /// pool's size, and with it how a sum is split).
    pub(crate) fn shown(&self) -> Vec<u8> {
        // SAFETY: `cpu_set_t` is plain bytes.
        unsafe {
            std::slice::from_raw_parts(
                (&raw const self.old).cast::<u8>(),
                std::mem::size_of::<libc::cpu_set_t>(),
            )
        }
        .to_vec()
    }

    pub(crate) fn to_current_cpu() -> Self {
        // SAFETY: plain libc calls on a zeroed cpu_set_t we own.
        unsafe {
            let mut old: libc::cpu_set_t = std::mem::zeroed();
            libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut old);
            let cpu = usize::try_from(libc::sched_getcpu()).ok();
            if let Some(cpu) = cpu {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu, &mut one);
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &one);
            }
            Self { old, cpu }
        }
    }

    /// The CPU a session's calls run on (see [`affinity::call_cpu`]).
    pub(crate) fn call_cpu(&self) -> Option<usize> {
        affinity::call_cpu(self.cpu?, &self.old)
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: restores the mask saved in `to_current_cpu`.
        unsafe {
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.old);
        }
    }
}

/// Ignores SIGINT and SIGQUIT for as long as it lives.
struct IgnoreInterrupts {
    old_int: libc::sighandler_t,
    old_quit: libc::sighandler_t,
}

impl IgnoreInterrupts {
    fn new() -> Self {
        // SAFETY: installing SIG_IGN has no preconditions; restored on drop.
        unsafe {
            Self {
                old_int: libc::signal(libc::SIGINT, libc::SIG_IGN),
                old_quit: libc::signal(libc::SIGQUIT, libc::SIG_IGN),
            }
        }
    }
}

impl Drop for IgnoreInterrupts {
    fn drop(&mut self) {
        // SAFETY: restores the dispositions saved in `new`.
        unsafe {
            libc::signal(libc::SIGINT, self.old_int);
            libc::signal(libc::SIGQUIT, self.old_quit);
        }
    }
}
