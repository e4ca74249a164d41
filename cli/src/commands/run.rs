//! `casher run [OPTIONS] -- CMD ARGS...`: run a command once, then, while
//! nothing it read has changed, restore what it wrote, replay what it
//! printed and exit with its status, without running it.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use casher_record::{replay_stdio, run_key, to_variant, RunContext, StdinIdentity};
use casher_store::{AllowedRoots, Lookup, Store};
use casher_tracer::{trace, traced_by_another_process, Exit, MainExit, TraceConfig};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The cache directory (default: CASHER_DIR, pyproject.toml, ~/.cache/casher).
    #[arg(long)]
    cache_dir: Option<PathBuf>,

    /// An environment variable whose value is part of the key (repeatable).
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,

    /// A path prefix whose files are neither inputs nor outputs (repeatable).
    #[arg(long = "ignore", value_name = "PREFIX")]
    ignore: Vec<PathBuf>,

    /// Also cache runs that exit non-zero.
    #[arg(long)]
    cache_failures: bool,

    /// Run and record even when a cached result exists.
    #[arg(long)]
    force: bool,

    /// Say whether this would be a hit, and if not, why; run nothing.
    /// Exits 0 for a hit, 1 for a miss, 2 when the cache is unavailable.
    #[arg(long)]
    explain: bool,

    /// Cache runs that connect to sockets or the network (by default such
    /// a run is not cached: what comes back is not a file casher can check).
    #[arg(long)]
    allow_network: bool,

    /// Run the command plainly: no tracing, no cache.
    #[arg(long)]
    no_cache: bool,

    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<OsString>,
}

fn is_tty(fd: i32) -> bool {
    // SAFETY: isatty only inspects the descriptor.
    unsafe { libc::isatty(fd) == 1 }
}

/// Our stdout and stderr are the same open file (a terminal, or `2>&1`).
fn same_stdout_stderr() -> bool {
    let id = |fd: i32| {
        // SAFETY: fstat writes into the struct we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        (unsafe { libc::fstat(fd, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
    };
    matches!((id(1), id(2)), (Some(a), Some(b)) if a == b)
}

/// Reads stdin when it is a file or a pipe: its content is an input.
fn read_stdin() -> Result<(StdinIdentity, Option<Vec<u8>>)> {
    if is_tty(0) {
        return Ok((StdinIdentity::Tty, None));
    }
    let stdin = std::io::stdin();
    // SAFETY: fstat writes into the struct we own.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(stdin.as_raw_fd(), &mut st) } != 0 {
        return Ok((StdinIdentity::Empty, None));
    }
    if st.st_mode & libc::S_IFMT == libc::S_IFCHR {
        // /dev/null and other devices: nothing we could key on.
        return Ok((StdinIdentity::Empty, None));
    }
    let mut data = Vec::new();
    stdin
        .lock()
        .read_to_end(&mut data)
        .context("cannot read stdin")?;
    Ok((StdinIdentity::content(&data), Some(data)))
}

fn exit(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1))
}

/// Runs the command untraced and uncached, exiting as a shell would.
fn run_plainly(command: &[OsString]) -> Result<ExitCode> {
    plain_status(command).map(exit)
}

/// The status of a plain run of the command (127: not found).
fn plain_status(command: &[OsString]) -> Result<i32> {
    use std::os::unix::process::ExitStatusExt;
    let status = match std::process::Command::new(&command[0])
        .args(&command[1..])
        .status()
    {
        Ok(status) => status,
        Err(err) => {
            eprintln!("casher: {}: {err}", command[0].to_string_lossy());
            let code = if err.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            };
            return Ok(code);
        }
    };
    Ok(status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

fn short(key: &str) -> &str {
    &key[..16.min(key.len())]
}

pub fn run(args: &RunArgs, verbose: bool) -> Result<ExitCode> {
    if args.no_cache {
        return run_plainly(&args.command);
    }
    if !args.explain && traced_by_another_process() {
        // Under an outer `casher run` (or strace, a debugger): a process has
        // one tracer, so the outer one sees and records the whole tree.
        eprintln!("casher: warning: casher is itself being traced (an outer `casher run`, strace or a debugger); running the command uncached");
        return run_plainly(&args.command);
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let (stdin, stdin_data) = read_stdin()?;
    let key = run_key(
        &args.command,
        &cwd,
        &args.env,
        (is_tty(1), is_tty(2)),
        &stdin,
    );
    let description = args
        .command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ");

    let store = match super::cache::open_store(args.cache_dir.as_deref()) {
        Ok(store) => Some(store),
        Err(err) => {
            eprintln!("casher: warning: the cache is unavailable, running without it: {err:#}");
            None
        }
    };
    // Context values are hashed with the store's secret: a digest in a
    // record cannot be matched against guessed values.
    let context = RunContext::current(&args.env, store.as_ref().map_or(&[0; 32], |s| s.secret()));
    if args.explain {
        let Some(store) = &store else {
            return Ok(ExitCode::from(2));
        };
        let (line, code) = match store.peek(&key, &context)? {
            Lookup::Hit(_) => (format!("hit {key}"), ExitCode::SUCCESS),
            Lookup::Miss(reason) => (format!("miss {key}: {reason}"), ExitCode::from(1)),
        };
        crate::output::print_lines(&[line])?;
        return Ok(code);
    }
    if let (Some(store), false) = (&store, args.force) {
        match store.lookup(&key, &context) {
            Ok(Lookup::Hit(hit)) => match replay(store, &hit.variant, &cwd) {
                Ok(()) => {
                    if verbose {
                        eprintln!("casher: hit {}", short(&key));
                    }
                    return Ok(exit(hit.variant.exit_code));
                }
                Err(err) => eprintln!("casher: warning: cannot replay the cached result, running the command: {err:#}"),
            },
            Ok(Lookup::Miss(reason)) => {
                if verbose {
                    eprintln!("casher: miss ({reason})");
                }
            }
            Err(err) => eprintln!("casher: warning: cache lookup failed, running the command: {err:#}"),
        }
    }
    let Some(store) = store else {
        return run_plainly(&args.command);
    };
    let mut ignore = args.ignore.clone();
    ignore.push(store.cache_dir().to_path_buf());
    if let Ok(real) = std::fs::canonicalize(store.cache_dir()) {
        ignore.push(real);
    }
    let config = TraceConfig {
        argv: args.command.clone(),
        ignore,
        forward: true,
        merge_stdio: same_stdout_stderr(),
        stdin_data,
        stdin_is_tty: stdin == StdinIdentity::Tty,
        pin: std::env::var_os("CASHER_NO_PIN").is_none(),
        sink: None,
        allow_network: args.allow_network,
        on_main_exit: None,
        begin_marker: false,
    };
    // From here on a forked child traces and records, and this process
    // exits with the command's status as soon as the command's main
    // process exits, even if it left processes running (as a shell would).
    let detach = Detach::fork()?;
    let mut config = config;
    let hook = detach.clone();
    config.on_main_exit = Some(MainExit(std::sync::Arc::new(move |exit: Exit| {
        eprintln!("casher: not cached: the command left processes running in the background");
        // Our own stdout/stderr go: only what the background processes
        // still hold keeps the caller's pipes open (the tracer forwards
        // through its own duplicates).
        // SAFETY: plain open/dup2 on descriptors of this process.
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if null >= 0 {
                libc::dup2(null, 1);
                libc::dup2(null, 2);
                libc::close(null);
            }
        }
        hook.release(exit.shell_code());
    })));
    let code = traced_miss(args, &config, &store, &key, &description, &context, verbose)?;
    detach.release(code);
    Ok(exit(code))
}

/// The miss path, in the forked child: trace, record, report.
fn traced_miss(
    args: &RunArgs,
    config: &TraceConfig,
    store: &Store,
    key: &str,
    description: &str,
    context: &RunContext,
    verbose: bool,
) -> Result<i32> {
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let traced_at = std::time::Instant::now();
    let report = match trace(config) {
        Ok(report) => report,
        Err(err) if err.refused() => {
            eprintln!("casher: warning: {err}\ncasher: running the command uncached");
            return plain_status(&args.command);
        }
        Err(err) => {
            if let Some(code) = err.shell_code() {
                eprintln!("casher: {err}");
                return Ok(code);
            }
            return Err(err.into());
        }
    };
    tracing::debug!(
        "traced in {:?}: {} inputs, {} outputs",
        traced_at.elapsed(),
        report.inputs.len(),
        report.outputs.len()
    );
    let recorded_at = std::time::Instant::now();
    let code = report.exit.shell_code();
    let cacheable = match report.exit {
        Exit::Code(0) => true,
        Exit::Code(_) => args.cache_failures,
        Exit::Signal(_) => false,
    };
    if report.uncacheable.is_empty() && cacheable {
        match to_variant(store, key, description, &report, created, None) {
            Ok(mut variant) => {
                // Context first: a changed PATH is the reason a lookup gives.
                let mut inputs = context.inputs();
                inputs.append(&mut variant.inputs);
                variant.inputs = inputs;
                if let Err(err) = store.record(&variant) {
                    eprintln!("casher: warning: not cached: {err}");
                }
            }
            Err(err) => eprintln!("casher: warning: not cached: {err}"),
        }
    } else if !report.uncacheable.is_empty() && !Detach::released() {
        // Always said: the user expects a cache and will not get one.
        eprintln!("casher: not cached: {}", report.uncacheable.join("; "));
    }
    tracing::debug!("recorded in {:?}", recorded_at.elapsed());
    if report.uncacheable.is_empty() && !cacheable && verbose {
        eprintln!("casher: not cached: the command exited with status {code} (use --cache-failures to cache it)");
    }
    Ok(code)
}

/// The parent side waits for the command's status; the child traces.
#[derive(Clone)]
struct Detach {
    /// Write end of the status pipe (in the child).
    fd: std::sync::Arc<std::os::fd::OwnedFd>,
}

static RELEASED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Detach {
    /// Forks. Returns in the child; the parent waits for a status on the
    /// pipe (or for the child to die) and exits with it.
    fn fork() -> Result<Self> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two descriptors.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error()).context("cannot create a pipe");
        }
        // SAFETY: fresh descriptors from pipe2.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: casher is single-threaded here (nothing has started a
        // thread before tracing), so the child may run normal code.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(std::io::Error::last_os_error()).context("cannot fork");
        }
        if pid == 0 {
            drop(read);
            // If casher is killed meanwhile, so is the tracer (and, through
            // PTRACE_O_EXITKILL, the command): as before.
            // SAFETY: plain prctl.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
            return Ok(Self {
                fd: std::sync::Arc::new(write),
            });
        }
        drop(write);
        // Like a shell waiting for its foreground job.
        // SAFETY: installing SIG_IGN has no preconditions.
        unsafe {
            libc::signal(libc::SIGINT, libc::SIG_IGN);
            libc::signal(libc::SIGQUIT, libc::SIG_IGN);
        }
        let mut buf = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            // SAFETY: reads into our buffer.
            let n =
                unsafe { libc::read(read.as_raw_fd(), buf[got..].as_mut_ptr().cast(), 4 - got) };
            if n > 0 {
                got += n as usize;
            } else if n == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR)
            {
                break;
            }
        }
        let code = if got == 4 {
            i32::from_le_bytes(buf)
        } else {
            // The child died without a word: report how.
            let mut status = 0;
            // SAFETY: waits for our own child.
            unsafe { libc::waitpid(pid, &mut status, 0) };
            if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            }
        };
        std::process::exit(code.clamp(0, 255));
    }

    /// Tells the waiting parent the status (once); after this nothing more
    /// is printed about the run.
    fn release(&self, code: i32) {
        use std::os::fd::AsRawFd;
        if RELEASED.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // SAFETY: plain prctl; the write is from our own buffer.
        unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, 0);
            let bytes = code.to_le_bytes();
            libc::write(self.fd.as_raw_fd(), bytes.as_ptr().cast(), 4);
        }
    }

    fn released() -> bool {
        RELEASED.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Restores outputs (all paths checked first), then replays output.
fn replay(store: &Store, variant: &casher_store::Variant, cwd: &std::path::Path) -> Result<()> {
    casher_store::restore(store.backend(), variant, &AllowedRoots::default_for(cwd))?;
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    replay_stdio(
        store.backend(),
        variant,
        &mut stdout.lock(),
        &mut stderr.lock(),
    )?;
    Ok(())
}
