//! Pinning that does not show. The tracer pins a run to one CPU (a ptrace
//! stop costs far less there), yet a program asking which CPUs it may use
//! (`nproc`, a thread pool sizing itself, OpenBLAS splitting a sum) must be
//! told what it would be told untraced: `sched_getaffinity` is answered
//! with the mask the run had before pinning. A process that chose its CPUs
//! itself (`sched_setaffinity`, `taskset`), and its children, have that
//! mask for real, and are told the truth.

use std::collections::{HashMap, HashSet};

use nix::unistd::Pid;

enum Call {
    /// `sched_getaffinity` writing the mask at this address.
    Get(u64),
    /// `sched_setaffinity` of this process (0: the caller).
    Set(Pid),
}

pub(crate) struct Shown<'a> {
    /// The mask to show (`None`: not pinned, nothing to rewrite).
    cpus: Option<&'a [u8]>,
    calls: HashMap<Pid, Call>,
    chose: HashSet<Pid>,
}

impl<'a> Shown<'a> {
    pub(crate) fn new(cpus: Option<&'a [u8]>) -> Self {
        Self {
            cpus,
            calls: HashMap::new(),
            chose: HashSet::new(),
        }
    }

    /// At the entry of system call `nr` of `pid`; `traced`: whether a pid is
    /// one of the run's processes.
    /// `places`: the call is casher's own placement of `target` (see
    /// [`call_cpu`]), not a program choosing its CPUs: `target` stays
    /// pinned as far as it can tell, and is shown the caller's CPUs.
    pub(crate) fn entry(
        &mut self,
        pid: Pid,
        nr: u64,
        args: [u64; 6],
        traced: impl Fn(Pid) -> bool,
        places: bool,
    ) {
        if self.cpus.is_none() {
            return;
        }
        let target = match args[0] {
            0 => pid,
            other => Pid::from_raw(other as i32),
        };
        if places && nr == libc::SYS_sched_setaffinity as u64 {
            self.chose.remove(&target);
            return;
        }
        if nr == libc::SYS_sched_getaffinity as u64
            && traced(target)
            && !self.chose.contains(&target)
        {
            self.calls.insert(pid, Call::Get(args[2]));
        } else if nr == libc::SYS_sched_setaffinity as u64 && traced(target) {
            self.calls.insert(pid, Call::Set(target));
        }
    }

    /// Whether `pid` must stop at its system call's exit.
    pub(crate) fn waits(&self, pid: Pid) -> bool {
        self.calls.contains_key(&pid)
    }

    /// At the exit of `pid`'s system call, which returned `rval`.
    pub(crate) fn exit(&mut self, pid: Pid, rval: i64) {
        let (Some(call), Some(cpus)) = (self.calls.remove(&pid), self.cpus) else {
            return;
        };
        match call {
            Call::Set(target) if rval == 0 => {
                self.chose.insert(target);
            }
            Call::Set(_) => {}
            Call::Get(buffer) => {
                let Ok(written) = usize::try_from(rval) else {
                    return; // it failed
                };
                let mut answer = vec![0u8; written];
                let n = written.min(cpus.len());
                answer[..n].copy_from_slice(&cpus[..n]);
                crate::memory::write_bytes(pid.as_raw(), buffer, &answer);
            }
        }
    }

    /// A child has its parent's mask.
    pub(crate) fn forked(&mut self, parent: Pid, child: Pid) {
        if self.chose.contains(&parent) {
            self.chose.insert(child);
        }
    }

    pub(crate) fn gone(&mut self, pid: Pid) {
        self.calls.remove(&pid);
        self.chose.remove(&pid);
    }
}

/// The CPU a session's calls run on, when the run was pinned and the
/// caller may use other CPUs as well (`None` otherwise). The server runs
/// on the others once it has imported (`Route::places`): there it forks the
/// next call's process, and that process takes its copy-on-write faults
/// ahead, while the current call runs beside the tracer (its stops are
/// cheap there) and the caller waits, its CPU idle. Placement changes only
/// speed: a process asking for its CPUs is told the caller's either way.
pub(crate) fn call_cpu(tracer: usize, allowed: &libc::cpu_set_t) -> Option<usize> {
    let mut others = *allowed;
    // SAFETY: CPU_CLR and CPU_COUNT on a cpu_set_t we own.
    unsafe {
        libc::CPU_CLR(tracer, &mut others);
        (libc::CPU_COUNT(&others) > 0).then_some(tracer)
    }
}
