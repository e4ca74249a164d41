//! The ptrace loop: follows the whole process tree (fork, vfork, clone,
//! exec), decodes each filtered system call at entry and records its effect
//! at exit.

use std::collections::{HashMap, HashSet};

use nix::sys::ptrace::{self, Options};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::affinity::Shown;
use crate::effects::Recorder;
use crate::error::{Result, TraceError};
use crate::filter::AUDIT_ARCH_X86_64;
use crate::syscall::{complete, complete_at_entry, decode, not_opened_by_the_run, Pending};

/// How the traced command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    /// The status a shell would report: the code, or 128 + the signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Exit::Code(c) => c,
            Exit::Signal(s) => 128 + s,
        }
    }
}

/// Where the loop sends what it sees. A plain run has one recorder for the
/// whole tree; a session (`crate::session`) gives each call its own, so the
/// loop itself stays one loop.
pub trait Route {
    /// The recorder that observes `pid`'s system calls.
    fn recorder(&mut self, pid: Pid) -> &mut Recorder;
    /// Whether `pid` may run: a new tracee whose parent's fork event has
    /// not been seen yet is held at its first stop until it has.
    fn knows(&mut self, _pid: Pid) -> bool {
        true
    }
    /// `parent` forked (`PTRACE_EVENT_FORK`/`VFORK`) or cloned `child`.
    fn forked(&mut self, _parent: Pid, _child: Pid, _event: i32) {}
    /// A reason `pid`'s run cannot be cached (also kept in the outcome).
    fn noted(&mut self, _pid: Pid, _reason: &str) {}
    /// `pid` is exiting (`PTRACE_EVENT_EXIT`): it makes no more system
    /// calls, though the kernel has yet to tear it down.
    fn exiting(&mut self, _pid: Pid, _exit: Exit) {}
    /// `pid` ended.
    fn exited(&mut self, _pid: Pid, _exit: Exit) {}
    /// Whether `pid` is casher's own code placing processes on CPUs (a
    /// fork server between calls), not a program choosing its CPUs.
    fn places(&mut self, _pid: Pid) -> bool {
        false
    }
}

impl Exit {
    /// From a wait status (as `PTRACE_GETEVENTMSG` gives it at the exit stop).
    fn of_status(status: i64) -> Exit {
        let status = status as i32;
        match status & 0x7f {
            0 => Exit::Code((status >> 8) & 0xff),
            signal => Exit::Signal(signal),
        }
    }
}

impl Route for Recorder {
    fn recorder(&mut self, _pid: Pid) -> &mut Recorder {
        self
    }
}

pub struct LoopOutcome {
    pub exit: Exit,
    pub uncacheable: Vec<String>,
}

/// Waits for the child's initial SIGSTOP and sets the tracing options.
/// `None`: the child exited before (it reported why through its pipe).
pub fn attach(pid: i32) -> Result<Option<()>> {
    let pid = Pid::from_raw(pid);
    match waitpid(pid, Some(WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD)) {
        Ok(WaitStatus::Stopped(_, Signal::SIGSTOP)) => {}
        Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) => return Ok(None),
        Ok(other) => {
            return Err(TraceError::Os(format!(
                "unexpected first stop of the child: {other:?}"
            )))
        }
        Err(e) => return Err(TraceError::Os(format!("waitpid: {e}"))),
    }
    let options = Options::PTRACE_O_EXITKILL
        | Options::PTRACE_O_TRACESECCOMP
        | Options::PTRACE_O_TRACESYSGOOD
        | Options::PTRACE_O_TRACECLONE
        | Options::PTRACE_O_TRACEFORK
        | Options::PTRACE_O_TRACEVFORK
        | Options::PTRACE_O_TRACEEXEC
        | Options::PTRACE_O_TRACEEXIT;
    ptrace::setoptions(pid, options)
        .map_err(|e| TraceError::PtraceRefused(format!("PTRACE_SETOPTIONS: {e}")))?;
    ptrace::cont(pid, None).map_err(|e| TraceError::Os(format!("PTRACE_CONT: {e}")))?;
    Ok(Some(()))
}

/// Runs until every traced process has exited. `on_main_exit` is told
/// when the main process exits while others still run.
/// `shown_cpus`: the CPU mask a traced process asking for its own (or
/// another traced process's) affinity is given, in place of the one CPU the
/// tracer pinned it to (see `Pinned::shown`).
pub fn run(
    main: i32,
    route: &mut impl Route,
    on_main_exit: Option<&crate::MainExit>,
    shown_cpus: Option<&[u8]>,
) -> Result<LoopOutcome> {
    let main = Pid::from_raw(main);
    let mut pending: HashMap<Pid, Pending> = HashMap::new();
    // Every tracee seen and not yet reaped.
    let mut alive: HashSet<Pid> = HashSet::from([main]);
    let main_exit = |exit: Exit, alive: &HashSet<Pid>, list: &mut Vec<String>| {
        if alive.is_empty() {
            return;
        }
        list.push("the command left processes running in the background when it exited".to_owned());
        if let Some(hook) = on_main_exit {
            (hook.0)(exit);
        }
    };
    // New tracees held at their first stop until their parent's fork event.
    let mut held: HashSet<Pid> = HashSet::new();
    let mut shown = Shown::new(shown_cpus);
    let mut exit = None;
    let mut uncacheable: Vec<String> = Vec::new();
    let mut note = |reason: &str, list: &mut Vec<String>| {
        if !list.iter().any(|r| r == reason) {
            list.push(reason.to_owned());
        }
    };
    loop {
        let status = match waitpid(None, Some(WaitPidFlag::__WALL | WaitPidFlag::__WNOTHREAD)) {
            Ok(status) => status,
            Err(nix::errno::Errno::ECHILD) => break,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(TraceError::Os(format!("waitpid: {e}"))),
        };
        match status {
            WaitStatus::PtraceEvent(pid, _, event)
                if event == libc::PTRACE_EVENT_FORK
                    || event == libc::PTRACE_EVENT_VFORK
                    || event == libc::PTRACE_EVENT_CLONE =>
            {
                if let Ok(child) = ptrace::getevent(pid) {
                    let child = Pid::from_raw(child as i32);
                    alive.insert(child);
                    shown.forked(pid, child);
                    route.forked(pid, child, event);
                    if held.remove(&child) {
                        let _ = ptrace::cont(child, None);
                    }
                }
                let _ = if pending.contains_key(&pid) {
                    ptrace::syscall(pid, None)
                } else {
                    ptrace::cont(pid, None)
                };
            }
            WaitStatus::PtraceEvent(pid, _, event) if event == libc::PTRACE_EVENT_EXIT => {
                if let Ok(status) = ptrace::getevent(pid) {
                    route.exiting(pid, Exit::of_status(status));
                }
                let _ = ptrace::cont(pid, None);
            }
            WaitStatus::PtraceEvent(pid, _, event) if event == libc::PTRACE_EVENT_SECCOMP => {
                let call = stop_at_entry(pid, route, &mut pending, &mut uncacheable, &mut note);
                if let Some((nr, args)) = call {
                    let places = nr == libc::SYS_sched_setaffinity as u64 && route.places(pid);
                    shown.entry(pid, nr, args, |p| alive.contains(&p), places);
                }
                let _ = if pending.contains_key(&pid) || shown.waits(pid) {
                    ptrace::syscall(pid, None)
                } else {
                    ptrace::cont(pid, None)
                };
            }
            WaitStatus::PtraceSyscall(pid) => {
                let Ok(info) = ptrace::syscall_info(pid) else {
                    let _ = ptrace::cont(pid, None);
                    continue;
                };
                if info.op == libc::PTRACE_SYSCALL_INFO_EXIT {
                    if let Some(p) = pending.remove(&pid) {
                        // SAFETY: op == EXIT, so the `exit` member is the valid one.
                        let (rval, is_error) =
                            unsafe { (info.u.exit.sval, info.u.exit.is_error != 0) };
                        let errno = is_error.then(|| i32::try_from(-rval).unwrap_or(libc::EIO));
                        complete(route.recorder(pid), p, errno);
                    }
                    if shown.waits(pid) {
                        // SAFETY: op == EXIT, so the `exit` member is the valid one.
                        shown.exit(pid, unsafe { info.u.exit.sval });
                    }
                    let _ = ptrace::cont(pid, None);
                } else {
                    // A syscall-entry stop after the seccomp stop: go on to its exit.
                    let _ = ptrace::syscall(pid, None);
                }
            }
            WaitStatus::PtraceEvent(pid, _, _) => {
                // exec: new tracees are attached automatically.
                // Inside a traced call (execve), keep going to its exit stop.
                let _ = if pending.contains_key(&pid) {
                    ptrace::syscall(pid, None)
                } else {
                    ptrace::cont(pid, None)
                };
            }
            WaitStatus::Stopped(pid, signal) => {
                alive.insert(pid);
                // A new tracee's first stop carries SIGSTOP: swallow it.
                // Anything else is a real signal for the tracee: deliver it.
                let deliver = if signal == Signal::SIGSTOP && pid != main {
                    if !route.knows(pid) {
                        held.insert(pid);
                        // Its parent may have ended already.
                        end_orphans(&mut held, &alive, &mut uncacheable, &mut note);
                        continue;
                    }
                    None
                } else {
                    Some(signal)
                };
                let _ = ptrace::cont(pid, deliver);
            }
            WaitStatus::Exited(pid, code) => {
                pending.remove(&pid);
                shown.gone(pid);
                alive.remove(&pid);
                end_orphans(&mut held, &alive, &mut uncacheable, &mut note);
                route.exited(pid, Exit::Code(code));
                if pid == main {
                    exit = Some(Exit::Code(code));
                    main_exit(Exit::Code(code), &alive, &mut uncacheable);
                }
            }
            WaitStatus::Signaled(pid, signal, _) => {
                pending.remove(&pid);
                shown.gone(pid);
                alive.remove(&pid);
                end_orphans(&mut held, &alive, &mut uncacheable, &mut note);
                route.exited(pid, Exit::Signal(signal as i32));
                if pid == main {
                    exit = Some(Exit::Signal(signal as i32));
                    main_exit(Exit::Signal(signal as i32), &alive, &mut uncacheable);
                }
            }
            _ => {}
        }
    }
    Ok(LoopOutcome {
        exit: exit.unwrap_or(Exit::Code(1)),
        uncacheable,
    })
}

/// A new tracee is held at its first stop until its parent's fork event
/// says whose it is. A parent killed (`SIGKILL`) after its `fork` made the
/// child but before it reported the event never reports it: its child
/// would stay stopped, and this loop would wait for it forever (a caller
/// ending right after a miss killed its fork server as it forked the next
/// call's child, and hung at exit). Whenever a tracee has ended or a child
/// is held (its parent may have ended first), each held child whose parent
/// is no traced process any more is ended too, and the run is not cached:
/// where it would have gone is unknown.
fn end_orphans(
    held: &mut HashSet<Pid>,
    alive: &HashSet<Pid>,
    uncacheable: &mut Vec<String>,
    note: &mut impl FnMut(&str, &mut Vec<String>),
) {
    let orphans: Vec<Pid> = held
        .iter()
        .copied()
        .filter(|&pid| parent_of(pid).is_none_or(|parent| !alive.contains(&parent)))
        .collect();
    for pid in orphans {
        held.remove(&pid);
        // SAFETY: `pid` is our tracee, stopped and not yet reaped (only
        // this loop reaps it), so the pid is not reused meanwhile.
        unsafe {
            libc::kill(pid.as_raw(), libc::SIGKILL);
        }
        note(
            "a process it started lost its parent before the tracer saw it start; it was ended",
            uncacheable,
        );
    }
}

/// The tracee whose event reports `pid`, as it stands now: its process
/// (`Tgid`) for a thread, its parent (`PPid`) for a process (one whose
/// parent ended has been given to init or a subreaper); None if it is gone.
pub(crate) fn parent_of(pid: Pid) -> Option<Pid> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<i32> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].trim().parse().ok()
    };
    let tgid = field("Tgid:")?;
    if tgid != pid.as_raw() {
        return Some(Pid::from_raw(tgid));
    }
    field("PPid:").map(Pid::from_raw)
}

/// Records the system call `pid` stopped at; returns its number and
/// arguments.
/// In casher's own interpreter while it imports the function's module: an
/// open that would truncate runs without `O_TRUNC`. The caller's own import
/// opened and truncated the same file already; truncating it again wiped
/// what the caller wrote since (a log opened with mode "w"). What the
/// import writes again lands on what the caller's import wrote (the same
/// bytes, for an import that writes the same).
/// Only a file this process (the caller: the tracer is a thread of it)
/// holds open, which its import opened: one the import writes and closes
/// again (a cache file it reads back) is truncated as the import means.
/// Not casher's own files (the store, `/proc/<pid>/fd/N` of a result).
fn keep_content(recorder: &Recorder, pid: Pid, nr: u64, args: &mut [u64; 6]) {
    let (slot, dirfd, addr) = match nr as i64 {
        libc::SYS_open => (1, i64::from(libc::AT_FDCWD), args[0]),
        libc::SYS_openat => (2, args[0] as i32 as i64, args[1]),
        _ => return,
    };
    let truncate = libc::O_TRUNC as u64;
    if args[slot] & truncate == 0 {
        return;
    }
    let Some(raw) = crate::memory::read_cstring(pid.as_raw(), addr) else {
        return;
    };
    let mut links = Vec::new();
    match crate::paths::resolve_noting(pid.as_raw(), dirfd, &raw, &mut links) {
        Some(path) if !recorder.ignored(&path) && held_open_here(&path) => {}
        _ => return,
    }
    let Ok(mut regs) = ptrace::getregs(pid) else {
        return;
    };
    let flags = args[slot] & !truncate;
    if slot == 1 {
        regs.rsi = flags;
    } else {
        regs.rdx = flags;
    }
    if ptrace::setregs(pid, regs).is_ok() {
        args[slot] = flags;
    }
}

/// Some descriptor of this process is open on the regular file at `path`.
fn held_open_here(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(target) = std::fs::metadata(path) else {
        return false;
    };
    if !target.is_file() {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    entries.filter_map(|e| e.ok()).any(|e| {
        std::fs::metadata(e.path())
            .is_ok_and(|m| m.dev() == target.dev() && m.ino() == target.ino())
    })
}

fn stop_at_entry(
    pid: Pid,
    route: &mut impl Route,
    pending: &mut HashMap<Pid, Pending>,
    uncacheable: &mut Vec<String>,
    note: &mut impl FnMut(&str, &mut Vec<String>),
) -> Option<(u64, [u64; 6])> {
    let Ok(info) = ptrace::syscall_info(pid) else {
        return None;
    };
    if info.op != libc::PTRACE_SYSCALL_INFO_SECCOMP {
        return None;
    }
    if info.arch != AUDIT_ARCH_X86_64 {
        let reason = "the command made 32-bit system calls, which casher does not trace";
        route.noted(pid, reason);
        note(reason, uncacheable);
        return None;
    }
    // SAFETY: op == SECCOMP, so the `seccomp` member is the valid one.
    let (nr, args, data) = unsafe {
        (
            info.u.seccomp.nr,
            info.u.seccomp.args,
            info.u.seccomp.ret_data,
        )
    };
    if nr & 0x4000_0000 != 0 {
        let reason = "the command made x32 system calls, which casher does not trace";
        route.noted(pid, reason);
        note(reason, uncacheable);
        return None;
    }
    let recorder = route.recorder(pid);
    let mut args = args;
    if recorder.in_import() {
        keep_content(recorder, pid, nr, &mut args);
    }
    let decoded = if data == crate::filter::NOT_OPENED_BY_THE_RUN {
        not_opened_by_the_run(nr as i64)
    } else {
        decode(recorder, pid.as_raw(), nr as i64, args)
    };
    if decoded.needs_exit() {
        pending.insert(pid, decoded);
    } else {
        complete_at_entry(recorder, decoded);
    }
    Some((nr, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process that sleeps until killed, and whether it still runs.
    fn sleeper() -> Pid {
        // SAFETY: the child only calls async-signal-safe `pause` and `_exit`.
        match unsafe { libc::fork() } {
            0 => unsafe {
                libc::pause();
                libc::_exit(0)
            },
            pid => Pid::from_raw(pid),
        }
    }

    #[test]
    fn a_held_child_whose_parent_ended_is_ended_and_one_whose_parent_lives_is_kept() {
        // An orphan: a child that forks a sleeper and exits at once (the
        // sleeper then belongs to init or a subreaper, never to us).
        let (read, write) = nix::unistd::pipe().unwrap();
        // SAFETY: the child only forks, writes and exits.
        let middle = unsafe { libc::fork() };
        if middle == 0 {
            let orphan = sleeper();
            let bytes = orphan.as_raw().to_le_bytes();
            unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(&write),
                    bytes.as_ptr().cast(),
                    4,
                );
                libc::_exit(0);
            }
        }
        waitpid(Pid::from_raw(middle), None).unwrap();
        let mut bytes = [0u8; 4];
        nix::unistd::read(&read, &mut bytes).unwrap();
        let orphan = Pid::from_raw(i32::from_le_bytes(bytes));
        let ours = sleeper();
        let me = Pid::from_raw(std::process::id() as i32);
        assert_eq!(parent_of(ours), Some(me));
        assert_ne!(parent_of(orphan), Some(me));

        let mut held = HashSet::from([orphan, ours]);
        let alive = HashSet::from([me]);
        let mut uncacheable = Vec::new();
        let mut note = |reason: &str, list: &mut Vec<String>| list.push(reason.to_owned());
        end_orphans(&mut held, &alive, &mut uncacheable, &mut note);

        assert_eq!(held, HashSet::from([ours]));
        assert_eq!(uncacheable.len(), 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while parent_of(orphan).is_some_and(|_| {
            let stat = std::fs::read_to_string(format!("/proc/{orphan}/stat")).unwrap_or_default();
            !stat.contains(") Z")
        }) {
            assert!(
                std::time::Instant::now() < deadline,
                "the orphan still runs"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // Ours is kept: it still runs until we end it.
        assert!(parent_of(ours).is_some());
        // A thread is reported by its process (us), not by our parent.
        let (tid_tx, tid_rx) = std::sync::mpsc::channel();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            // SAFETY: gettid has no preconditions.
            tid_tx.send(unsafe { libc::gettid() }).unwrap();
            let _ = done_rx.recv();
        });
        let tid = Pid::from_raw(tid_rx.recv().unwrap());
        assert_eq!(parent_of(tid), Some(me));
        done_tx.send(()).unwrap();
        thread.join().unwrap();
        nix::sys::signal::kill(ours, Signal::SIGKILL).unwrap();
        waitpid(ours, None).unwrap();
    }
}
